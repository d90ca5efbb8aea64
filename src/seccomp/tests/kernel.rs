//! The compiled programs installed in a real process: the kernel's errnos.
//!
//! A forked child installs the programs exactly as the launcher will (no_new_privs, one
//! `seccomp(SECCOMP_SET_MODE_FILTER)` per program, in order), makes raw syscalls whose
//! arguments are harmless even if a filter failed to stop them, and reports the errnos
//! through a pipe. Between fork and `_exit` the child allocates nothing: the test
//! harness is multi-threaded.

use std::os::fd::RawFd;

use seccompiler::BpfProgram;

use super::*;

/// One probe: a syscall and its six arguments.
#[derive(Clone, Copy)]
struct Probe {
    what: &'static str,
    nr: libc::c_long,
    args: [u64; 6],
    /// The errno expected, or 0 for success.
    want: i32,
}

const fn probe(what: &'static str, nr: libc::c_long, args: [u64; 6], want: i32) -> Probe {
    Probe {
        what,
        nr,
        args,
        want,
    }
}

/// An fd that is never open: an allowed `ioctl` on it fails with `EBADF`, so an
/// unfiltered `TIOCSTI` could not inject anything.
const BAD_FD: u64 = 0x7fff_fff0;

fn probes() -> Vec<Probe> {
    use libc::*;
    let a = |v: c_int| v as u64;
    vec![
        probe("getpid", SYS_getpid, [0; 6], 0),
        probe(
            "unshare(CLONE_NEWUSER)",
            SYS_unshare,
            [a(CLONE_NEWUSER), 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "unshare(CLONE_NEWNS)",
            SYS_unshare,
            [a(CLONE_NEWNS), 0, 0, 0, 0, 0],
            EPERM,
        ),
        // CLONE_NEWUSER|CLONE_FS is EINVAL if it reaches the kernel: no child either way.
        probe(
            "clone(CLONE_NEWUSER|CLONE_FS)",
            SYS_clone,
            [a(CLONE_NEWUSER | CLONE_FS), 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe("clone3", SYS_clone3, [0; 6], ENOSYS),
        probe("syscall 1000", 1000, [0; 6], ENOSYS),
        probe("syscall 400 (gap)", 400, [0; 6], ENOSYS),
        probe("x32 getpid", 0x4000_0000 | SYS_getpid, [0; 6], EPERM),
        probe("x32 read", 0x4000_0000, [0; 6], EPERM),
        probe(
            "ioctl(TIOCSTI)",
            SYS_ioctl,
            [BAD_FD, TIOCSTI, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "ioctl(0xffffffff_00005412)",
            SYS_ioctl,
            [BAD_FD, 0xffff_ffff_0000_5412, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "ioctl(TIOCLINUX)",
            SYS_ioctl,
            [BAD_FD, TIOCLINUX, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "ioctl(FIONREAD)",
            SYS_ioctl,
            [BAD_FD, FIONREAD, 0, 0, 0, 0],
            EBADF,
        ),
        probe(
            "socket(AF_VSOCK)",
            SYS_socket,
            [a(AF_VSOCK), a(SOCK_STREAM), 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "socket(AF_ALG)",
            SYS_socket,
            [a(AF_ALG), a(SOCK_SEQPACKET), 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "socket(0x1_0000_0028)",
            SYS_socket,
            [0x1_0000_0028, a(SOCK_STREAM), 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "io_uring_setup",
            SYS_io_uring_setup,
            [1, 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe("kcmp", SYS_kcmp, [0; 6], EPERM),
        probe(
            "open_by_handle_at",
            SYS_open_by_handle_at,
            [BAD_FD, 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe("bpf", SYS_bpf, [0; 6], EPERM),
        probe("keyctl", SYS_keyctl, [0; 6], EPERM),
        probe("userfaultfd", SYS_userfaultfd, [0; 6], EPERM),
        probe("perf_event_open", SYS_perf_event_open, [0; 6], EPERM),
        probe("fsopen", SYS_fsopen, [0; 6], EPERM),
        probe("mount", SYS_mount, [0; 6], EPERM),
        probe(
            "finit_module",
            SYS_finit_module,
            [BAD_FD, 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "personality(0x400000)",
            SYS_personality,
            [0x40_0000, 0, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "personality(query)",
            SYS_personality,
            [0xffff_ffff, 0, 0, 0, 0, 0],
            0,
        ),
        // The filter is compiled without CAP_SYS_CHROOT; the path does not exist.
        probe("chroot", SYS_chroot, [0; 6], EPERM),
    ]
}

const MAX_PROBES: usize = 64;

/// The child's side. Only raw syscalls and stack memory: no allocation, no locks.
///
/// # Safety
///
/// Must only be called in a freshly forked child; it never returns.
unsafe fn child(programs: &[BpfProgram], probes: &[Probe], out: RawFd) -> ! {
    let mut results = [0i32; MAX_PROBES];
    // No core file when a probe is killed.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on stack data that outlives them.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            libc::_exit(100);
        }
    }
    for program in programs {
        let fprog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            // seccompiler's `sock_filter` is `#[repr(C)]` with the kernel's layout.
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `fprog` points to a live program of `len` instructions.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            // SAFETY: ends the child without running any destructor.
            unsafe { libc::_exit(101) };
        }
    }
    for (slot, p) in results.iter_mut().zip(probes) {
        let [a0, a1, a2, a3, a4, a5] = p.args;
        // SAFETY: the probes' arguments are integers or null pointers; every syscall
        // either fails or has no effect outside this short-lived child.
        let r = unsafe { libc::syscall(p.nr, a0, a1, a2, a3, a4, a5) };
        // SAFETY: reads this thread's errno.
        *slot = if r == -1 {
            unsafe { *libc::__errno_location() }
        } else {
            0
        };
    }
    let bytes = std::mem::size_of_val(&results);
    // SAFETY: writes the stack array to the pipe, then ends the child.
    unsafe {
        libc::write(out, results.as_ptr().cast(), bytes);
        libc::_exit(0)
    }
}

/// Forks, runs `body` in the child with the write end of a pipe, and returns the child's
/// wait status and what it wrote.
fn in_child(body: impl FnOnce(RawFd)) -> (libc::c_int, Vec<u8>) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    // SAFETY: the child only runs `body`, which makes raw syscalls and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: closes our copy of the read end; no allocation.
        unsafe { libc::close(read_end) };
        body(write_end);
        // SAFETY: `body` is meant to `_exit`; if it returns, end the child here.
        unsafe { libc::_exit(102) };
    }
    // SAFETY: closes the parent's write end so that reading sees EOF.
    unsafe { libc::close(write_end) };
    let mut status = 0;
    // SAFETY: waits for our own child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    let mut buf = vec![0u8; 4 * MAX_PROBES];
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(read_end, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    buf.truncate(len);
    // SAFETY: closes the read end we own.
    unsafe { libc::close(read_end) };
    (status, buf)
}

fn errno_name(errno: i32) -> String {
    match errno {
        0 => "success".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EBADF => "EBADF".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EFAULT => "EFAULT".into(),
        other => format!("errno {other}"),
    }
}

#[test]
fn installed_filters_give_the_kernels_errnos() {
    let caps = Capabilities::fargate_default().drop(Capability::SysChroot);
    let compiled = default_compiled(caps);
    let probes = probes();
    assert!(probes.len() <= MAX_PROBES);
    let programs: &[BpfProgram] = compiled.programs();
    let (status, bytes) = in_child(|out| {
        // SAFETY: we are the freshly forked child.
        unsafe { child(programs, &probes, out) }
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed to install the filters: status {status:#x}"
    );
    let results: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(results.len(), MAX_PROBES);
    let mut failures = Vec::new();
    for (p, &got) in probes.iter().zip(&results) {
        if got != p.want {
            failures.push(format!(
                "{}: want {}, got {}",
                p.what,
                errno_name(p.want),
                errno_name(got)
            ));
        }
        // The model agrees with the kernel too.
        let model = SeccompProfile::docker_default().decide(caps, p.nr, &p.args);
        if let Action::Errno(e) = model {
            assert_eq!(e as i32, p.want, "model: {}", p.what);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `getpid` through the i386 `int 0x80` gate; returns the result register.
///
/// # Safety
///
/// Makes a raw 32-bit syscall; only for a forked child.
unsafe fn int80_getpid() -> u32 {
    let mut ret: u32 = 20; // __NR_getpid on i386
                           // SAFETY: `int 0x80` with eax=20 is getpid on i386; the kernel zeroes r8-r11.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("eax") ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        );
    }
    ret
}

#[test]
fn other_architectures_are_killed_by_the_kernel() {
    // Is the i386 ABI there at all? Without it `int 0x80` faults before seccomp runs.
    let (status, _) = in_child(|_| {
        // SAFETY: forked child; raw syscalls only.
        unsafe {
            let pid = libc::syscall(libc::SYS_getpid) as u32;
            libc::_exit(if int80_getpid() == pid { 0 } else { 1 })
        }
    });
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        eprintln!("skipped: this kernel has no i386 syscall entry (status {status:#x})");
        return;
    }
    let compiled = default_compiled(Capabilities::fargate_default());
    let programs: &[BpfProgram] = compiled.programs();
    let (status, _) = in_child(|_| {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: forked child; installs the programs as in `child`, then makes the
        // i386 call, which must kill it.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(100);
            }
            for program in programs {
                let fprog = libc::sock_fprog {
                    len: program.len() as libc::c_ushort,
                    filter: program.as_ptr() as *mut libc::sock_filter,
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &fprog as *const libc::sock_fprog,
                ) != 0
                {
                    libc::_exit(101);
                }
            }
            int80_getpid();
            libc::_exit(0)
        }
    });
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
        "an i386 syscall must kill the process with SIGSYS, status {status:#x}"
    );
}
