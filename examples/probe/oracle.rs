//! Asks the seccomp filters this process runs under what they decide for a call,
//! without the call ever reaching the kernel.
//!
//! A forked child starts a worker thread that stacks one more filter of its own: "a
//! call whose sixth argument is [`COOKIE`] goes to a user-space supervisor"
//! (`SECCOMP_RET_USER_NOTIF`); every other call is allowed. The kernel runs every filter
//! of the stack and keeps the most severe action, and `SECCOMP_RET_ERRNO` outranks
//! `SECCOMP_RET_USER_NOTIF`. So, for a call made by the worker with the cookie:
//!
//! - if the sandbox's filters refuse it, the worker gets their errno (`EPERM`,
//!   `ENOSYS`, ...) and nothing is notified;
//! - if they allow it, the call is handed to the child's main thread (the supervisor),
//!   which answers [`ORACLE_ERRNO`], an errno no kernel uses. The call is not executed.
//!
//! The first call is always `getpid`, which every profile allows: if it does not come
//! back with [`ORACLE_ERRNO`], the oracle is not working and no verdict is given. The
//! sixth argument is free for the cookie because no rule of the sandbox's profiles
//! looks at it (Docker's and the crate's conditions are on the first three arguments).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use crate::sys::errno_name;

/// Marks the calls the oracle's filter hands to the supervisor.
pub const COOKIE: u64 = 0x7072_6f62_652d_6f72; // "probe-or"
/// The errno the supervisor answers with: no kernel returns it.
pub const ORACLE_ERRNO: i32 = 4000;

/// What the sandbox's seccomp filters do with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed: it would reach the kernel.
    Allowed,
    /// Refused with this errno, without reaching the kernel.
    Refused(i32),
}

impl Verdict {
    /// `allowed` or the errno name.
    pub fn text(self) -> String {
        match self {
            Verdict::Allowed => "allowed".to_string(),
            Verdict::Refused(e) => errno_name(e),
        }
    }
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00F3;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// `offsetof(struct seccomp_data, arch)`.
const OFF_ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, args[5])`, low and high halves (little-endian).
const OFF_ARG5_LO: u32 = 16 + 5 * 8;
const OFF_ARG5_HI: u32 = OFF_ARG5_LO + 4;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The worker's filter: native calls carrying the cookie are notified, all else allowed.
fn program() -> [libc::sock_filter; 8] {
    [
        insn(BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        insn(BPF_JEQ_K, 0, 5, AUDIT_ARCH_NATIVE),
        insn(BPF_LD_W_ABS, 0, 0, OFF_ARG5_LO),
        insn(BPF_JEQ_K, 0, 3, COOKIE as u32),
        insn(BPF_LD_W_ABS, 0, 0, OFF_ARG5_HI),
        insn(BPF_JEQ_K, 0, 1, (COOKIE >> 32) as u32),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

/// The verdicts of the sandbox's filters for each `(nr, args)`; the sixth argument is
/// replaced by the cookie. Fails if the oracle cannot be set up or does not answer.
pub fn verdicts(calls: &[(i64, [u64; 6])]) -> Result<Vec<Verdict>, String> {
    let mut all: Vec<(i64, [u64; 6])> = Vec::with_capacity(calls.len() + 1);
    all.push((libc::SYS_getpid, [0; 6]));
    all.extend_from_slice(calls);
    for (_, args) in &mut all {
        args[5] = COOKIE;
    }
    let raw = run_in_child(&all)?;
    match raw.first() {
        Some(&(-1, ORACLE_ERRNO)) => {}
        Some(&(ret, errno)) => {
            return Err(format!(
                "the oracle is not working: getpid came back as {ret} ({})",
                errno_name(errno)
            ))
        }
        None => return Err("the oracle gave no answer".to_string()),
    }
    let verdicts = raw[1..]
        .iter()
        .zip(calls)
        .map(|(&(ret, errno), &(nr, _))| match (ret, errno) {
            (-1, ORACLE_ERRNO) => Ok(Verdict::Allowed),
            (-1, errno) => Ok(Verdict::Refused(errno)),
            (ret, _) => Err(format!(
                "syscall {nr} reached the kernel under the oracle (returned {ret})"
            )),
        })
        .collect::<Result<Vec<_>, String>>()?;
    if verdicts.len() != calls.len() {
        return Err(format!(
            "the oracle answered {} of {} calls",
            verdicts.len(),
            calls.len()
        ));
    }
    Ok(verdicts)
}

/// Forks; the child runs the worker and the supervisor and writes `ret errno` lines.
fn run_in_child(calls: &[(i64, [u64; 6])]) -> Result<Vec<(i64, i32)>, String> {
    let mut fds = [0; 2];
    // SAFETY: a live two-element array for the pipe's ends.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "pipe: {}",
            errno_name(nix::errno::Errno::last_raw())
        ));
    }
    // SAFETY: the probe is single-threaded when it asks the oracle; the child allocates
    // and starts a thread, which is fine in a child of a single-threaded process, and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the read end belongs to the parent. A new session has no controlling
        // terminal, so no call made here could touch the caller's.
        unsafe {
            libc::close(fds[0]);
            libc::setsid();
        }
        let text = match child(calls) {
            Ok(results) => results
                .iter()
                .map(|(ret, errno)| format!("{ret} {errno}\n"))
                .collect::<String>(),
            Err(e) => format!("error {e}\n"),
        };
        // SAFETY: writing a live buffer to our pipe, then leaving at once.
        unsafe {
            let mut off = 0;
            while off < text.len() {
                let n = libc::write(fds[1], text[off..].as_ptr().cast(), text.len() - off);
                if n <= 0 {
                    break;
                }
                off += n as usize;
            }
            libc::_exit(0)
        }
    }
    // SAFETY: the write end belongs to the child; the read end is ours from here on.
    let mut read_end = unsafe {
        libc::close(fds[1]);
        std::fs::File::from(OwnedFd::from_raw_fd(fds[0]))
    };
    if pid < 0 {
        return Err("fork failed".to_string());
    }
    let mut text = String::new();
    let read = read_end.read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    read.map_err(|e| format!("reading the oracle: {e}"))?;
    if let Some(err) = text.strip_prefix("error ") {
        return Err(err.trim().to_string());
    }
    if libc::WIFSIGNALED(status) {
        return Err(format!(
            "the oracle was killed by signal {}",
            libc::WTERMSIG(status)
        ));
    }
    text.lines()
        .map(|l| {
            let (ret, errno) = l.split_once(' ').ok_or("bad oracle line")?;
            Ok((
                ret.parse().map_err(|_| "bad oracle line")?,
                errno.parse().map_err(|_| "bad oracle line")?,
            ))
        })
        .collect::<Result<_, &str>>()
        .map_err(str::to_string)
}

/// In the child: the worker thread makes the calls, this thread supervises.
fn child(calls: &[(i64, [u64; 6])]) -> Result<Vec<(i64, i32)>, String> {
    let (fd_tx, fd_rx) = mpsc::channel::<Result<i32, i32>>();
    let done = Arc::new(AtomicBool::new(false));
    let worker_done = Arc::clone(&done);
    let calls = calls.to_vec();
    let worker = std::thread::spawn(move || {
        let listener = install();
        let ok = listener.is_ok();
        let _ = fd_tx.send(listener);
        let mut results = Vec::with_capacity(calls.len());
        if ok {
            for (nr, a) in calls {
                // SAFETY: the call carries the cookie, so this thread's own filter hands
                // it to the supervisor (or the sandbox's filters refuse it): it never
                // reaches the kernel (checked with getpid first, see `verdicts`).
                let ret = unsafe {
                    libc::syscall(
                        nr as libc::c_long,
                        a[0] as libc::c_long,
                        a[1] as libc::c_long,
                        a[2] as libc::c_long,
                        a[3] as libc::c_long,
                        a[4] as libc::c_long,
                        a[5] as libc::c_long,
                    )
                };
                let errno = if ret == -1 {
                    nix::errno::Errno::last_raw()
                } else {
                    0
                };
                results.push((ret, errno));
                if ret != -1 {
                    // Something reached the kernel: stop at once.
                    break;
                }
            }
        }
        worker_done.store(true, Ordering::SeqCst);
        results
    });
    let listener = match fd_rx.recv() {
        Ok(Ok(fd)) => fd,
        Ok(Err(errno)) => {
            let _ = worker.join();
            return Err(format!(
                "cannot install the oracle's filter: {}",
                errno_name(errno)
            ));
        }
        Err(_) => return Err("the oracle's worker died".to_string()),
    };
    supervise(listener, &done);
    // SAFETY: closing the listener, no longer used.
    unsafe { libc::close(listener) };
    worker
        .join()
        .map_err(|_| "the oracle's worker panicked".to_string())
}

/// Installs the worker's filter on the calling thread only; returns the listener.
fn install() -> Result<i32, i32> {
    let prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: constant arguments; no_new_privs is required to install a filter without
    // CAP_SYS_ADMIN and only affects this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(nix::errno::Errno::last_raw());
    }
    // SAFETY: `fprog` points to a valid program that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(fd as i32)
    }
}

/// Answers every notification with [`ORACLE_ERRNO`] until the worker is done.
fn supervise(listener: i32, done: &AtomicBool) {
    loop {
        let mut pfd = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n > 0 && pfd.revents & libc::POLLIN != 0 {
            // SAFETY: the kernel wants a zeroed struct; all-zero is valid for it.
            let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: a live, zeroed seccomp_notif for the kernel to fill.
            let got = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
            if got == 0 {
                let mut resp = libc::seccomp_notif_resp {
                    id: notif.id,
                    val: 0,
                    error: -ORACLE_ERRNO,
                    flags: 0,
                };
                // SAFETY: a live response for the notification just received. A failure
                // (the worker was interrupted) needs no handling: it retries the call.
                unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
            }
            continue;
        }
        if done.load(Ordering::SeqCst) || (n > 0 && pfd.revents & libc::POLLHUP != 0) {
            break;
        }
    }
}
