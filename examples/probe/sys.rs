//! Raw syscalls and small helpers the checks share.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// A directory that does not exist: a mount, chroot or umount aimed at it fails with
/// `ENOENT` when the call is allowed to reach the kernel. The probe refuses to run
/// attempts when it exists ([`missing_is_missing`]).
pub const MISSING: &CStr = c"/nonexistent-probe-dir";

/// Whether [`MISSING`] really does not exist. Were it there (a directory someone
/// made), a mount aimed at it on a bare host would succeed, so the probe makes no
/// attempt then.
pub fn missing_is_missing() -> bool {
    matches!(
        lstat_errno(Path::new(MISSING.to_str().unwrap_or("/"))),
        Err(libc::ENOENT)
    )
}

/// The result of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded with this return value.
    Ok(i64),
    /// The call failed with this errno.
    Err(i32),
    /// The attempt ran in a child that died before reporting (its wait status).
    Crashed(i32),
}

impl Outcome {
    /// Whether the call failed with `errno`.
    pub fn is(self, errno: i32) -> bool {
        self == Outcome::Err(errno)
    }

    /// Whether the call failed with one of `errnos`.
    pub fn is_any(self, errnos: &[i32]) -> bool {
        matches!(self, Outcome::Err(e) if errnos.contains(&e))
    }

    /// `OK`, an errno name, or how the child died.
    pub fn text(self) -> String {
        match self {
            Outcome::Ok(_) => "OK".to_string(),
            Outcome::Err(e) => errno_name(e),
            Outcome::Crashed(status) => crash_text(status),
        }
    }
}

/// `EPERM` for 1, `errno 4000` for numbers libc does not name.
pub fn errno_name(errno: i32) -> String {
    match Errno::from_raw(errno) {
        Errno::UnknownErrno => format!("errno {errno}"),
        known => format!("{known:?}"),
    }
}

fn crash_text(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("child killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!(
            "child exited {} without a result",
            libc::WEXITSTATUS(status)
        )
    }
}

fn last_errno() -> i32 {
    Errno::last_raw()
}

/// Makes syscall `nr` with six arguments.
///
/// Every caller passes arguments that make the call fail without effect when it
/// reaches the kernel (a bad descriptor, a missing path, invalid flags), or runs it in
/// a child made for the purpose ([`in_child`]).
pub fn syscall(nr: i64, args: [u64; 6]) -> Outcome {
    // SAFETY: see above; pointer arguments are null, point to live buffers of the
    // caller, or to NUL-terminated strings that outlive the call.
    let ret = unsafe {
        libc::syscall(
            nr as libc::c_long,
            args[0] as libc::c_long,
            args[1] as libc::c_long,
            args[2] as libc::c_long,
            args[3] as libc::c_long,
            args[4] as libc::c_long,
            args[5] as libc::c_long,
        )
    };
    if ret == -1 {
        Outcome::Err(last_errno())
    } else {
        Outcome::Ok(ret)
    }
}

/// A pid no process has: above `PID_MAX_LIMIT` (4194304, the most `pid_max` can be),
/// and checked with `kill(pid, 0)` giving `ESRCH`. `None` if even that pid answers
/// (the check is made rather than assumed, so that an attempt aimed at it can never
/// stop a real process).
pub fn absent_pid() -> Option<i32> {
    [i32::MAX, 4_194_305, 4_194_999]
        .into_iter()
        .find(|&pid| syscall(libc::SYS_kill, [pid as u64, 0, 0, 0, 0, 0]).is(libc::ESRCH))
}

/// Turns a libc return value (`-1` and errno on failure) into an [`Outcome`].
pub fn outcome(ret: libc::c_long) -> Outcome {
    if ret == -1 {
        Outcome::Err(last_errno())
    } else {
        Outcome::Ok(ret)
    }
}

/// Closes `fd` if the outcome is a new descriptor.
pub fn close_if_fd(outcome: Outcome) {
    if let Outcome::Ok(fd) = outcome {
        if let Ok(fd) = i32::try_from(fd) {
            // SAFETY: the descriptor was just returned to us and is not used again.
            unsafe { libc::close(fd) };
        }
    }
}

/// A path as a C string (paths from the kernel or our own constants hold no NUL).
pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|_| c"/".to_owned())
}

/// `open(path, flags)`; a descriptor it returns is closed at once, nothing is written.
pub fn try_open(path: &Path, flags: i32) -> Outcome {
    let path = cpath(path);
    // SAFETY: a NUL-terminated path; the descriptor, if any, is closed below.
    let ret = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
    let result = outcome(ret as libc::c_long);
    close_if_fd(result);
    result
}

/// `faccessat(path, W_OK, AT_EACCESS)`: may this process write `path`? Opens nothing.
pub fn can_write(path: &Path) -> Outcome {
    let path = cpath(path);
    // SAFETY: a NUL-terminated path and constant flags.
    let ret =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    outcome(ret as libc::c_long)
}

/// `lstat`.
pub fn lstat(path: &Path) -> Option<libc::stat> {
    lstat_errno(path).ok()
}

/// `lstat`, with the errno on failure.
pub fn lstat_errno(path: &Path) -> Result<libc::stat, i32> {
    let path = cpath(path);
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable `stat`.
    let ret = unsafe { libc::lstat(path.as_ptr(), &mut st) };
    if ret == 0 {
        Ok(st)
    } else {
        Err(last_errno())
    }
}

/// `stat` (follows symlinks).
pub fn stat(path: &Path) -> Option<libc::stat> {
    let path = cpath(path);
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable `stat`.
    let ret = unsafe { libc::stat(path.as_ptr(), &mut st) };
    (ret == 0).then_some(st)
}

/// The mount flags (`ST_RDONLY`, `ST_NOSUID`, ...) of the filesystem holding `path`.
pub fn mount_flags(path: &Path) -> Option<u64> {
    let path = cpath(path);
    // SAFETY: an all-zero `statvfs` is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable `statvfs`.
    let ret = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (ret == 0).then_some(st.f_flag)
}

/// Whether `path` is on a read-only mount.
pub fn read_only(path: &Path) -> bool {
    mount_flags(path).is_some_and(|f| f & libc::ST_RDONLY != 0)
}

/// `major:minor` of a device number.
pub fn dev_text(rdev: libc::dev_t) -> String {
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// The inode number of `/proc/self/ns/<name>`, from the link text `name:[inode]`.
pub fn ns_inode(name: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/ns/{name}")).ok()?;
    let text = link.to_string_lossy().into_owned();
    let inode = text.split_once(":[")?.1.strip_suffix(']')?;
    inode.parse().ok()
}

/// Runs `attempt` in a forked child and returns what it reported.
///
/// For attempts that change the calling process when they succeed (`unshare`,
/// `chroot`, `setresuid`, a raw `clone`): on a host without a sandbox they do succeed,
/// and the probe itself must stay as it was. The probe is single-threaded when it
/// calls this, so the child may allocate.
pub fn in_child(attempt: impl FnOnce() -> Outcome) -> Outcome {
    let mut fds = [0; 2];
    // SAFETY: a live two-element array for the pipe's ends.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Outcome::Err(last_errno());
    }
    let [read_end, write_end] = fds;
    // SAFETY: the probe is single-threaded here; the child only runs `attempt`, writes
    // its result and exits without running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let result = attempt();
        let (tag, value): (u8, i64) = match result {
            Outcome::Ok(v) => (0, v),
            Outcome::Err(e) => (1, i64::from(e)),
            Outcome::Crashed(s) => (2, i64::from(s)),
        };
        let mut buf = [0u8; 9];
        buf[0] = tag;
        buf[1..].copy_from_slice(&value.to_le_bytes());
        // SAFETY: writing a live buffer to our pipe, then leaving at once.
        unsafe {
            libc::write(write_end, buf.as_ptr().cast(), buf.len());
            libc::_exit(0)
        }
    }
    // SAFETY: the parent's copy of the write end is not used again.
    unsafe { libc::close(write_end) };
    if pid < 0 {
        let err = last_errno();
        // SAFETY: closing our read end.
        unsafe { libc::close(read_end) };
        return Outcome::Err(err);
    }
    let mut buf = [0u8; 9];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of a live buffer.
        let n = unsafe { libc::read(read_end, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n <= 0 {
            if n < 0 && last_errno() == libc::EINTR {
                continue;
            }
            break;
        }
        got += n as usize;
    }
    let mut status = 0;
    // SAFETY: closing our read end and reaping our own child.
    unsafe {
        libc::close(read_end);
        libc::waitpid(pid, &mut status, 0);
    }
    if got < buf.len() {
        return Outcome::Crashed(status);
    }
    let mut value = [0u8; 8];
    value.copy_from_slice(&buf[1..]);
    let value = i64::from_le_bytes(value);
    match buf[0] {
        0 => Outcome::Ok(value),
        1 => Outcome::Err(value as i32),
        _ => Outcome::Crashed(value as i32),
    }
}

/// The open descriptors of this process with their targets, read with `getdents64`
/// from a descriptor of known number, which is left out.
pub fn open_fds() -> Vec<(i32, String)> {
    // SAFETY: a constant path.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Vec::new();
    }
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: reading directory entries into a live buffer of the given length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                buf.as_mut_ptr(),
                buf.len() as libc::c_long,
            )
        };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
            if let Ok(fd) = std::str::from_utf8(name).unwrap_or("").parse::<i32>() {
                if fd != dir {
                    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    fds.push((fd, target));
                }
            }
            off += reclen.max(1);
        }
    }
    // SAFETY: closing the directory descriptor opened above.
    unsafe { libc::close(dir) };
    fds.sort();
    fds
}

/// A `/proc/self/status` field (the text after `key:`, trimmed).
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// The capability names, by bit number.
pub const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `CAP_NET_RAW`'s bit.
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_SYS_CHROOT`'s bit.
pub const CAP_SYS_CHROOT: u32 = 18;
/// `CAP_SYS_PTRACE`'s bit.
pub const CAP_SYS_PTRACE: u32 = 19;

/// Names of the capabilities in `mask`.
pub fn cap_names(mask: u64) -> String {
    let names: Vec<&str> = (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| CAP_NAMES.get(b).copied().unwrap_or("?"))
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}
