//! Every raw syscall of the crate, each wrapped once.
//!
//! These wrappers take only `&CStr`, integers and plain structs, never allocate, and
//! return the errno as [`Errno`]: they are what the child runs between `clone` and
//! `execve`, where nothing may allocate. `nix` covers the rest of the crate's syscalls.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_int, c_ulong};
use nix::errno::Errno;

/// Result of a raw syscall.
pub(crate) type SysResult<T = ()> = Result<T, Errno>;

fn check(ret: c_int) -> SysResult {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn check_long(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// What `clone` returned.
pub(crate) enum Cloned {
    /// In the parent: the child's pid and a pidfd for it.
    Parent { pid: libc::pid_t, pidfd: RawFd },
    /// In the child.
    Child,
}

/// `clone(flags | CLONE_PIDFD | SIGCHLD)` with fork semantics (no new stack).
///
/// # Safety
/// The child is a copy of the calling thread only: until it execs or exits it must not
/// allocate, take locks, or touch state other threads may have left inconsistent.
pub(crate) unsafe fn clone_pidfd(flags: c_ulong) -> SysResult<Cloned> {
    let mut pidfd: c_int = -1;
    // SAFETY: with a null stack, clone behaves like fork; the parent_tid argument (the
    // third on x86_64 and aarch64) receives the pidfd because of CLONE_PIDFD. The caller
    // upholds the post-fork rules for the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::CLONE_PIDFD as c_ulong | libc::SIGCHLD as c_ulong,
            0usize,
            &mut pidfd as *mut c_int,
            0usize,
            0usize,
        )
    };
    match check_long(ret)? {
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: pid as libc::pid_t,
            pidfd,
        }),
    }
}

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult {
    // SAFETY: all pointers are valid NUL-terminated strings or null, as mount(2) allows.
    check(unsafe {
        libc::mount(
            opt_ptr(source),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            opt_ptr(data).cast(),
        )
    })
}

/// `umount2(2)`.
pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult {
    // SAFETY: target is a valid NUL-terminated string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// `mount_setattr(2)` setting and clearing attributes on the mount at `path`, and on
/// its submounts when `recursive`.
pub(crate) fn mount_setattr(path: &CStr, recursive: bool, set: u64, clear: u64) -> SysResult {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: c_int = 0x8000;
    // SAFETY: path is NUL-terminated; attr is a valid mount_attr of the size passed.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            if recursive {
                AT_RECURSIVE as c_ulong
            } else {
                0
            },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// The mount flags (`MS_NOSUID`, ...) of the filesystem mounted at `path`, as
/// `statvfs(3)` reports them, translated to `mount(2)` flags.
pub(crate) fn mount_flags(path: &CStr) -> SysResult<c_ulong> {
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st is a valid out-pointer.
    check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
    let pairs = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(st_flag, _)| st.f_flag & *st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | *ms))
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult {
    // SAFETY: both are NUL-terminated strings.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// `umask(2)`.
pub(crate) fn umask(mask: libc::mode_t) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) };
}

/// Unblocks every signal and resets every disposition to the default, so the workload
/// does not inherit the launcher's (Rust ignores SIGPIPE, runtimes block signals).
pub(crate) fn reset_signals() {
    // SAFETY: sigset_t is plain old data; sigemptyset initializes it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: empty is a valid sigset_t; SIG_SETMASK with a valid set cannot fail.
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    }
    for signal in 1..libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting the default disposition; invalid numbers just fail.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &CStr) -> SysResult {
    // SAFETY: path is NUL-terminated.
    check(unsafe { libc::chdir(path.as_ptr()) })
}

/// `mkdir(2)`; an existing entry is not an error.
pub(crate) fn mkdir_exist_ok(path: &CStr, mode: libc::mode_t) -> SysResult {
    // SAFETY: path is NUL-terminated.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

/// `symlink(2)`; an existing entry is not an error.
pub(crate) fn symlink_exist_ok(target: &CStr, link: &CStr) -> SysResult {
    // SAFETY: both are NUL-terminated.
    match check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

/// Creates (or truncates) `path` with `mode` and writes `contents` to it.
pub(crate) fn write_file(path: &CStr, contents: &[u8], mode: libc::mode_t) -> SysResult {
    let fd = open(
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        mode,
    )?;
    let result = write_all(fd, contents);
    close(fd);
    result
}

/// `open(2)`.
pub(crate) fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> SysResult<RawFd> {
    // SAFETY: path is NUL-terminated; mode is read only with O_CREAT.
    let fd = unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        Ok(fd)
    }
}

/// `close(2)`, ignoring errors (the descriptor is gone either way on Linux).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code owns.
    unsafe { libc::close(fd) };
}

/// Writes the whole buffer, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        buf = buf.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Reads into `buf` until it is full or EOF; returns the number of bytes read.
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or(&mut []);
        // SAFETY: rest is a valid writable slice of the given length.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => break,
            n if n < 0 => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            },
            n => filled += n as usize,
        }
    }
    Ok(filled)
}

/// `dup2(2)`, or clearing close-on-exec when `from == to`.
pub(crate) fn dup2(from: RawFd, to: RawFd) -> SysResult {
    if from == to {
        // SAFETY: F_SETFD on a descriptor this process holds.
        return check(unsafe { libc::fcntl(from, libc::F_SETFD, 0) });
    }
    // SAFETY: duplicating descriptors this process holds.
    check(unsafe { libc::dup2(from, to) })
}

/// `close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC)`: every descriptor from `first`
/// up is closed by the coming `execve`.
pub(crate) fn cloexec_from(first: c_int) -> SysResult {
    const CLOSE_RANGE_CLOEXEC: c_ulong = 1 << 2;
    // SAFETY: close_range only changes this process's descriptor flags.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)`, for kernels without `close_range`.
pub(crate) fn set_cloexec(fd: RawFd) -> SysResult {
    // SAFETY: F_SETFD on any integer is safe; a closed fd gives EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })
}

/// `sethostname(2)`.
pub(crate) fn sethostname(name: &[u8]) -> SysResult {
    // SAFETY: name is a valid slice of the given length.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// `setsid(2)`.
pub(crate) fn setsid() -> SysResult {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() })
}

/// `unshare(2)`.
pub(crate) fn unshare(flags: c_int) -> SysResult {
    // SAFETY: only namespace flags are passed.
    check(unsafe { libc::unshare(flags) })
}

/// `setrlimit(2)` with soft = hard = `value`.
pub(crate) fn setrlimit(resource: libc::__rlimit_resource_t, value: u64) -> SysResult {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: limit is a valid rlimit.
    check(unsafe { libc::setrlimit(resource, &limit) })
}

/// `prctl(2)` with integer arguments.
pub(crate) fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult {
    // SAFETY: the options used here take integer arguments only.
    check(unsafe { libc::prctl(option, arg2, arg3, 0 as c_ulong, 0 as c_ulong) })
}

// The id-changing calls below go straight to the kernel: glibc's wrappers broadcast
// the change to every thread it knows of and wait for them, and in a child cloned from
// a multi-threaded process those threads do not exist, so the wait never ends. The raw
// syscalls change the calling thread, which in the child is the whole process.

/// `setgroups(2)` for the calling thread.
pub(crate) fn setgroups(groups: &[libc::gid_t]) -> SysResult {
    // SAFETY: groups is a valid slice of the given length.
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
        .map(drop)
}

/// `setresgid(2)` for the calling thread, with all three ids equal.
pub(crate) fn setresgid(gid: libc::gid_t) -> SysResult {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// `setresuid(2)` for the calling thread, with all three ids equal.
pub(crate) fn setresuid(uid: libc::uid_t) -> SysResult {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// `capset(2)` for the calling thread: effective, permitted, inheritable as 64-bit masks.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> SysResult {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data have the layout of the v3 capability ABI (two data words).
    check_long(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
        .map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)` for one classic-BPF program.
pub(crate) fn seccomp_set_filter(program: &[seccompiler::sock_filter]) -> SysResult {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, as libc's is.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: prog points to `len` valid instructions that outlive the call (the kernel
    // copies them).
    check_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as c_ulong,
            &prog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// Brings the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> SysResult {
    // SAFETY: socket with constant arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(Errno::last());
    }
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads an ifreq from the valid pointer.
    let ret = check(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req as *const libc::ifreq) });
    close(sock);
    ret
}

/// `execve(2)`; returns only on failure.
pub(crate) fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Errno {
    // SAFETY: argv and envp are null-terminated arrays of pointers to NUL-terminated
    // strings that outlive the call (the caller built them before the fork).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// `_exit(2)`: leaves without running destructors or atexit handlers.
pub(crate) fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit never returns and touches no process state that could be corrupt.
    unsafe { libc::_exit(code) }
}

/// `pidfd_send_signal(2)`.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, signal: c_int) -> SysResult {
    // SAFETY: integer arguments; a null siginfo means "as kill(2) would".
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            ptr::null::<libc::siginfo_t>(),
            0 as c_ulong,
        )
    })
    .map(drop)
}

/// The outcome of `waitid` on a pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Exited with a code.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

/// `waitid(P_PIDFD, pidfd, WEXITED | extra)`, retrying on EINTR; `None` when the
/// process is still running (only with `WNOHANG`).
pub(crate) fn waitid_pidfd(pidfd: RawFd, extra_flags: c_int) -> SysResult<Option<WaitOutcome>> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is valid and means "no child"
        // after WNOHANG.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid out-pointer; pidfd is an open pidfd.
        let ret = unsafe {
            libc::waitid(
                P_PIDFD,
                pidfd as libc::id_t,
                &mut info,
                libc::WEXITED | extra_flags,
            )
        };
        if ret == -1 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        // SAFETY: after a successful waitid the pid and status fields are initialized.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => WaitOutcome::Exited(status),
            _ => WaitOutcome::Signaled(status),
        }));
    }
}
