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
    // SAFETY: the caller upholds the post-fork rules for the child.
    unsafe { clone_pidfd_signal(flags, libc::SIGCHLD) }
}

/// `clone(flags | CLONE_PIDFD)` with no exit signal: the child's end sends its parent
/// nothing, is never reaped behind the caller's back (not by `SIGCHLD` set to
/// `SIG_IGN`, nor by a `waitpid(-1, ..)` elsewhere in the process, which skips such
/// children), and is waited for only with `__WALL` (see [`waitid_pidfd`]). For a
/// child that never execs: the kernel gives a child that execs `SIGCHLD` back.
///
/// # Safety
/// As [`clone_pidfd`].
pub(crate) unsafe fn clone_pidfd_quiet(flags: c_ulong) -> SysResult<Cloned> {
    // SAFETY: the caller upholds the post-fork rules for the child.
    unsafe { clone_pidfd_signal(flags, 0) }
}

/// # Safety
/// As [`clone_pidfd`].
unsafe fn clone_pidfd_signal(flags: c_ulong, exit_signal: c_int) -> SysResult<Cloned> {
    let mut pidfd: c_int = -1;
    // SAFETY: with a null stack, clone behaves like fork; the parent_tid argument (the
    // third on x86_64 and aarch64) receives the pidfd because of CLONE_PIDFD. The caller
    // upholds the post-fork rules for the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::CLONE_PIDFD as c_ulong | exit_signal as c_ulong,
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

/// `lstat(2)`: the entry itself, a symlink not followed.
pub(crate) fn lstat(path: &CStr) -> SysResult<libc::stat> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st is a valid out-pointer.
    check(unsafe { libc::lstat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `stat(2)`: what `path` names, symlinks followed.
pub(crate) fn stat(path: &CStr) -> SysResult<libc::stat> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st is a valid out-pointer.
    check(unsafe { libc::stat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `openat2(2)` of `path` as an `O_PATH` descriptor, refusing to resolve it through a
/// `/proc` magic link (`RESOLVE_NO_MAGICLINKS`: `ELOOP` then). The caller closes it.
pub(crate) fn open_path_no_magiclinks(path: &CStr) -> SysResult<RawFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: path is NUL-terminated; how is a valid open_how of the size passed.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
    .map(|fd| fd as RawFd)
}

/// `fstat(2)`.
pub(crate) fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer; a bad fd is only an error.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `open_tree(2)` of the file `fd` refers to (`AT_EMPTY_PATH`), as a detached clone
/// of its mount (`OPEN_TREE_CLONE`), close-on-exec.
pub(crate) fn open_tree_clone(fd: RawFd) -> SysResult<RawFd> {
    const OPEN_TREE_CLONE: c_ulong = 1;
    const OPEN_TREE_CLOEXEC: c_ulong = libc::O_CLOEXEC as c_ulong;
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH names `fd` itself.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd,
            c"".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as c_ulong,
        )
    })
    .map(|fd| fd as RawFd)
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

/// `waitid(P_PIDFD, pidfd, WEXITED | __WALL | extra)`, retrying on EINTR; `None` when
/// the process is still running (only with `WNOHANG`). `__WALL` so that children
/// with no exit signal ([`clone_pidfd_quiet`]) are waited for too.
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
                libc::WEXITED | libc::__WALL | extra_flags,
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

/// `kill(-pgid, signal)`: signals every process of the process group `pgid`. The
/// caller must know the group's leader is not yet reaped, or the number may name
/// another group.
pub(crate) fn kill_process_group(pgid: libc::pid_t, signal: c_int) -> SysResult {
    if pgid <= 1 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: integer arguments; a negative pid names a process group.
    check(unsafe { libc::kill(-pgid, signal) })
}

/// Sets `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: RawFd) -> SysResult {
    // SAFETY: F_GETFL/F_SETFL on a descriptor this process holds.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(Errno::last());
    }
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })
}

/// `read(2)` once, retrying on EINTR: the number of bytes read, 0 at EOF.
pub(crate) fn read_some(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid writable slice of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Whether process `pid` exists (in the caller's pid namespace): `kill(pid, 0)`, where
/// `EPERM` means it exists and belongs to someone else.
pub(crate) fn process_exists(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// `setns(2)`: with a pidfd and several `CLONE_NEW*` flags, joins those namespaces of
/// that process at once.
pub(crate) fn setns(fd: RawFd, flags: c_int) -> SysResult {
    // SAFETY: integer arguments.
    check(unsafe { libc::setns(fd, flags) })
}

/// The kind of namespace `fd` refers to (`NS_GET_NSTYPE`): a `CLONE_NEW*` flag.
pub(crate) fn ns_type(fd: RawFd) -> SysResult<c_int> {
    /// `_IO(NSIO, 0x3)`.
    const NS_GET_NSTYPE: c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns an int.
    let ret = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// A new sysfs instance of the calling thread's network namespace, as a detached
/// mount ([`fsopen`], [`fsconfig_create`], [`fsmount`]): read-only, nosuid, nodev,
/// noexec, close-on-exec. It is attached nowhere until [`move_mount_fd`].
pub(crate) fn sysfs_mount_fd() -> SysResult<RawFd> {
    let fs = fsopen(c"sysfs")?;
    let mounted = fsconfig_create(fs).and_then(|()| {
        fsmount(
            fs,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        )
    });
    close(fs);
    mounted
}

/// Closes every descriptor from 3 up except those in `keep` (sorted ascending).
pub(crate) fn close_all_except(keep: &[RawFd]) -> SysResult {
    let mut first: libc::c_uint = 3;
    for &fd in keep {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd < first {
            continue;
        }
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, libc::c_uint::MAX)
}

fn close_range(first: libc::c_uint, last: libc::c_uint) -> SysResult {
    // SAFETY: close_range only closes descriptors of this process.
    match check_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as c_ulong) }) {
        Ok(_) => Ok(()),
        Err(Errno::ENOSYS) => {
            // Kernels before 5.9: one close per possible descriptor up to a bound.
            let last = last.min(65_536);
            for fd in first..=last {
                close(fd as RawFd);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Blocks `SIGCHLD` for the calling thread and returns a close-on-exec, non-blocking
/// signalfd that reports it.
pub(crate) fn sigchld_fd() -> SysResult<RawFd> {
    // SAFETY: sigset_t is plain old data; sigemptyset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t for all three calls.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
    }
    // SAFETY: set is valid; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        Ok(fd)
    }
}

/// Empties a non-blocking descriptor (a signalfd or eventfd) of what it holds.
pub(crate) fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: buf is a valid writable buffer of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
    }
}

/// `poll(2)` on `fds`, retrying on EINTR; `timeout_ms < 0` waits forever.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> SysResult<usize> {
    loop {
        // SAFETY: fds is a valid slice of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// One child reaped by [`reap_any`]: its pid and raw wait status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub pid: libc::pid_t,
    pub status: c_int,
}

/// `waitpid(-1, WNOHANG)`: one exited child of the caller, if any.
pub(crate) fn reap_any() -> Option<Reaped> {
    let mut status: c_int = 0;
    // SAFETY: status is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
    (pid > 0).then_some(Reaped { pid, status })
}

/// Maximum descriptors carried by one [`send_with_fds`] message.
pub(crate) const MAX_PASSED_FDS: usize = 16;

/// Control-message buffer big enough for [`MAX_PASSED_FDS`] descriptors, aligned as
/// `cmsghdr` requires.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

/// `sendmsg(2)` of `data` with `fds` attached (`SCM_RIGHTS`); no allocation.
pub(crate) fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> SysResult {
    if fds.len() > MAX_PASSED_FDS {
        return Err(Errno::E2BIG);
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    // SAFETY: msghdr is plain old data; all-zero is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(bytes as u32) } as usize;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points to `space` bytes (≤ 128 for 16 fds), aligned for
        // cmsghdr; CMSG_FIRSTHDR returns a pointer inside it, CMSG_DATA past its
        // header, with room for `bytes` bytes.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
            ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), bytes);
        }
    }
    loop {
        // SAFETY: msg describes valid buffers that outlive the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return if n as usize == data.len() {
                Ok(())
            } else {
                Err(Errno::EMSGSIZE)
            };
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// `recvmsg(2)` of one message into `data`, with up to `fds.len()` passed descriptors
/// stored (close-on-exec) in `fds`. Returns (bytes, descriptors); (0, 0) is EOF.
pub(crate) fn recv_with_fds(
    sock: RawFd,
    data: &mut [u8],
    fds: &mut [RawFd],
) -> SysResult<(usize, usize)> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    // SAFETY: msghdr is plain old data; all-zero is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    let n = loop {
        // SAFETY: msg describes valid writable buffers that outlive the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    };
    let mut count = 0;
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed
    // control messages; the CMSG_* macros walk them within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let header = libc::CMSG_LEN(0) as usize;
                let payload = ((*cmsg).cmsg_len as usize).saturating_sub(header);
                let data = libc::CMSG_DATA(cmsg);
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    let mut fd: RawFd = -1;
                    ptr::copy_nonoverlapping(
                        data.add(i * std::mem::size_of::<RawFd>()),
                        (&mut fd as *mut RawFd).cast::<u8>(),
                        std::mem::size_of::<RawFd>(),
                    );
                    match fds.get_mut(count) {
                        Some(slot) => {
                            *slot = fd;
                            count += 1;
                        }
                        // More than asked for: not ours to keep.
                        None => close(fd),
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, count))
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: message boundaries kept, EOF
/// when the other end is closed.
pub(crate) fn seqpacket_pair() -> SysResult<(RawFd, RawFd)> {
    let mut fds = [-1; 2];
    // SAFETY: fds is a valid out-array of two ints.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((fds[0], fds[1]))
}

/// `chown(2)` (ids as the caller's user namespace sees them).
pub(crate) fn chown(path: &CStr, uid: u32, gid: u32) -> SysResult {
    // SAFETY: path is NUL-terminated.
    check(unsafe { libc::chown(path.as_ptr(), uid, gid) })
}

/// The pid, as this process's pid namespace sees it, of the process a pidfd refers
/// to (the `Pid:` line of `/proc/self/fdinfo/<fd>`). Allocates: launcher side only.
pub(crate) fn pidfd_pid(pidfd: RawFd) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|pid: &libc::pid_t| *pid > 0)
}

/// Puts the calling thread in a new Landlock domain. What matters is the domain
/// itself: the kernel refuses to let a process in a domain trace, or read the memory
/// or `/proc` details of, any process outside it. A ruleset must handle some access
/// right, and this one handles one, `MAKE_BLOCK`, with no rule allowing it: creating
/// a block device node is refused (`EACCES`). With a user namespace `mknod` of any
/// device is refused before that (`EPERM`: it needs `CAP_MKNOD` over the host's user
/// namespace); without one, this is what refuses it. Every other file access is left
/// as it was. Needs no_new_privs.
pub(crate) fn landlock_own_domain() -> SysResult {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
    }
    const LANDLOCK_ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
    let attr = RulesetAttr {
        handled_access_fs: LANDLOCK_ACCESS_FS_MAKE_BLOCK,
    };
    // SAFETY: attr is a valid landlock_ruleset_attr prefix of the size passed (the
    // kernel accepts the ABI 1 size).
    let ruleset = check_long(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0 as c_ulong,
        )
    })? as RawFd;
    // SAFETY: ruleset is the descriptor just created; no flags.
    let result = check_long(unsafe {
        libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0 as c_ulong)
    })
    .map(drop);
    close(ruleset);
    result
}

/// The Landlock ABI version the kernel offers, if any.
pub(crate) fn landlock_abi() -> Option<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: c_ulong = 1;
    // SAFETY: with the VERSION flag, the attribute pointer must be null and size 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (ret > 0).then_some(ret)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy numbered `min` or above.
pub(crate) fn dup_at_least(fd: RawFd, min: RawFd) -> SysResult<RawFd> {
    // SAFETY: duplicating a descriptor this process holds.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        Err(Errno::last())
    } else {
        Ok(new)
    }
}

/// Sets the calling thread's name (`/proc/<pid>/comm`), truncated by the kernel to 15
/// bytes.
pub(crate) fn set_name(name: &CStr) -> SysResult {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string from the pointer.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            name.as_ptr(),
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    })
}

/// Where this process's command line lives in its memory (`arg_start`, `arg_end`
/// of `/proc/self/stat`), read once. Allocates: launcher side only.
pub(crate) fn argv_area() -> Option<(usize, usize)> {
    static AREA: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *AREA.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // arg_start and arg_end are fields 48 and 49; `rest` starts at field 3.
        let start: usize = fields.get(45)?.parse().ok()?;
        let end: usize = fields.get(46)?.parse().ok()?;
        (start != 0 && end > start).then_some((start, end))
    })
}

/// Replaces this process's command line, as `/proc/<pid>/cmdline` shows it, with
/// `name`, by writing over the memory `area` (from [`argv_area`], read before the
/// fork). For a forked copy of the launcher that never execs: its argv may hold what
/// the task must not read.
///
/// # Safety
/// `area` must be this process's own argv area, and nothing in the process may read
/// its arguments afterwards.
pub(crate) unsafe fn overwrite_cmdline(area: (usize, usize), name: &[u8]) {
    let (start, end) = area;
    let len = end - start;
    // SAFETY: the caller guarantees [start, end) is this process's argv area: mapped,
    // writable, and no longer read by anything in this single-threaded process.
    unsafe {
        ptr::write_bytes(start as *mut u8, 0, len);
        ptr::copy_nonoverlapping(
            name.as_ptr(),
            start as *mut u8,
            name.len().min(len.saturating_sub(1)),
        );
    }
}

// ---- ephemeral storage: loop devices and the new mount API ---------------------------

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`.
const LOOP_CTL_GET_FREE: c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` on a loop device (Linux 5.8).
const LOOP_CONFIGURE: c_ulong = 0x4C0A;
/// The loop device detaches itself when it is last closed.
pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// The loop device reads and writes its backing file with direct I/O.
pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel copies exactly its own sizes of these.
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// `ioctl(control, LOOP_CTL_GET_FREE)`: the number of a free loop device (made if
/// none is free).
pub(crate) fn loop_get_free(control: RawFd) -> SysResult<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
    let ret = unsafe { libc::ioctl(control, LOOP_CTL_GET_FREE as _) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as u32)
    }
}

/// `ioctl(device, LOOP_CONFIGURE)`: binds loop device `device` to `backing` in one
/// step, with `flags` (`LO_FLAGS_*`) and the file name the device reports. `EBUSY`:
/// the device was taken in the meantime.
pub(crate) fn loop_configure(device: RawFd, backing: RawFd, flags: u32, name: &[u8]) -> SysResult {
    let Ok(fd) = u32::try_from(backing) else {
        return Err(Errno::EBADF);
    };
    let mut lo_file_name = [0u8; 64];
    let len = name.len().min(63);
    lo_file_name[..len].copy_from_slice(&name[..len]);
    let config = LoopConfig {
        fd,
        block_size: 0,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name,
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a struct loop_config, which `config` is, laid out
    // as the kernel's.
    check(unsafe { libc::ioctl(device, LOOP_CONFIGURE as _, &config as *const LoopConfig) })
}

const FSOPEN_CLOEXEC: c_ulong = 1;
const FSCONFIG_SET_FLAG: c_ulong = 0;
const FSCONFIG_SET_STRING: c_ulong = 1;
const FSCONFIG_CMD_CREATE: c_ulong = 6;
const FSMOUNT_CLOEXEC: c_ulong = 1;
/// `MOUNT_ATTR_NOSUID` of `fsmount(2)`.
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV` of `fsmount(2)`.
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_RDONLY` of `fsmount(2)`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOEXEC` of `fsmount(2)`.
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOVE_MOUNT_F_EMPTY_PATH: c_ulong = 0x4;

fn check_fd(ret: libc::c_long) -> SysResult<RawFd> {
    check_long(ret).map(|fd| fd as RawFd)
}

/// `fsopen(2)` with `FSOPEN_CLOEXEC`: a filesystem context for `fstype`.
pub(crate) fn fsopen(fstype: &CStr) -> SysResult<RawFd> {
    // SAFETY: fstype is NUL-terminated.
    check_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(2)`: sets string parameter `key` to `value` on context `fs`.
pub(crate) fn fsconfig_string(fs: RawFd, key: &CStr, value: &CStr) -> SysResult {
    // SAFETY: key and value are NUL-terminated; aux is unused for this command.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0 as c_int,
        )
    })
    .map(drop)
}

/// `fsconfig(2)`: sets flag `key` on context `fs`.
pub(crate) fn fsconfig_flag(fs: RawFd, key: &CStr) -> SysResult {
    // SAFETY: key is NUL-terminated; value must be null and aux 0 for a flag.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            ptr::null::<libc::c_char>(),
            0 as c_int,
        )
    })
    .map(drop)
}

/// `fsconfig(2)` `FSCONFIG_CMD_CREATE`: makes the superblock of context `fs`.
pub(crate) fn fsconfig_create(fs: RawFd) -> SysResult {
    // SAFETY: the command takes no key or value.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            ptr::null::<libc::c_char>(),
            ptr::null::<libc::c_char>(),
            0 as c_int,
        )
    })
    .map(drop)
}

/// `fsmount(2)` with `FSMOUNT_CLOEXEC`: a detached mount of context `fs`'s
/// superblock with `attrs` (`MOUNT_ATTR_*`), attached nowhere until moved.
pub(crate) fn fsmount(fs: RawFd, attrs: u64) -> SysResult<RawFd> {
    // SAFETY: plain integer arguments.
    check_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) })
}

/// `move_mount(2)` of the detached mount `from` onto `target` in the caller's mount
/// namespace.
pub(crate) fn move_mount_fd(from: RawFd, target: &CStr) -> SysResult {
    // SAFETY: the empty path with MOVE_MOUNT_F_EMPTY_PATH names `from` itself; target
    // is NUL-terminated.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}
