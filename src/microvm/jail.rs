//! The VMM's jail: a task of this crate whose one container runs the VMM.
//!
//! What Firecracker's jailer does, made from the crate's own launcher: a read-only
//! root holding only the VMM binary, its ELF interpreter and shared libraries, the
//! backend's firmware and plug-ins ([`JailRoot`]), the kernel, initrd and disks of the
//! plan (read-only unless a disk is writable), the plan's files, a writable run
//! directory (nosuid, nodev, noexec, like every file of the VM), and private device
//! nodes for the devices the plan asks for, owned by the jail's uid; no `/proc`,
//! `/sys` or `/etc`. The only files that can be executed are the VMM binary, its
//! interpreter and libraries, so the `execve` the profile must allow (it is installed
//! before the jail execs the VMM) can only run the VMM again. A non-root uid and gid
//! (an unprivileged host uid through the user namespace); no capabilities;
//! `no_new_privs`; a seccomp allowlist narrower than Docker's default; new pid,
//! mount, IPC, UTS and cgroup namespaces; a new network namespace, or the VM's; and
//! a cgroup sized for the VM.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::capabilities::Capabilities;
use crate::container::{Container, Stdio, User, Volume};
use crate::mounts::BareRoot;
use crate::namespaces::{IdMap, NetworkNamespace, UserNamespace};
use crate::seccomp::{Action, ArgCondition, ArgOp, SeccompPolicy, SeccompProfile, SyscallRule};
use crate::size::TaskSize;
use crate::task::TaskSandbox;

use super::plan::{VmmPlan, JAIL_CONFIG_DIR, JAIL_RUN_DIR};
use super::root::JailRoot;
use super::spec::check_file_name;
use super::MicrovmError;

/// The user the VMM runs as inside the jail when the launcher is root: uid and gid
/// 1000, which the user namespace maps to host uid and gid 101000.
pub const JAIL_USER: User = User::new(1000, 1000);

/// The syscalls every VMM of the crate may make. Measured with `strace -f` of QEMU
/// 7.2 booting Linux under TCG and KVM-style threading (the loader, glibc start-up,
/// threads, the main loop, virtio block I/O, the serial console), plus the polling,
/// timer and Unix-socket calls of Firecracker's and Cloud Hypervisor's API servers.
pub const VMM_SYSCALLS: &[&str] = &[
    // Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "memfd_create",
    "membarrier",
    // Files (the loader, the kernel, disks, the console).
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "openat",
    "close",
    "close_range",
    "lseek",
    "newfstatat",
    "fstat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents64",
    "getcwd",
    "fchdir",
    "fcntl",
    "ioctl",
    "dup",
    "dup3",
    "pipe2",
    "statfs",
    "fstatfs",
    "fsync",
    "fdatasync",
    "fallocate",
    "ftruncate",
    "flock",
    "unlink",
    "unlinkat",
    // Waiting and time.
    "futex",
    "ppoll",
    "poll",
    "pselect6",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "eventfd2",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_delete",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "sched_yield",
    "sched_getaffinity",
    // Signal handling. Sending is `tgkill` to its own thread group only (a rule below:
    // the VMM is pid 1 of its own pid namespace); `kill`, `tkill` and the
    // `*sigqueueinfo` calls are not allowed at all.
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sigaltstack",
    // Threads and process state.
    "set_robust_list",
    "get_robust_list",
    "set_tid_address",
    "rseq",
    "arch_prctl",
    "prctl",
    "prlimit64",
    "getrlimit",
    "sysinfo",
    "uname",
    "getrandom",
    "getpid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "exit",
    "exit_group",
    // Unix-socket servers (QMP, API sockets, vsock proxies).
    "bind",
    "listen",
    "accept4",
    "connect",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "shutdown",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    // The jail installs its second seccomp program under the first one, then execs the
    // VMM. More filters can only narrow what is allowed (and Firecracker and Cloud
    // Hypervisor install their own). `execve` stays allowed because the filter is in
    // place before the exec; in the jail's root the only executable files are the VMM,
    // its interpreter and libraries (everything else is on noexec mounts), so it can
    // only run the VMM again.
    "seccomp",
    "execve",
];

/// The VMM's pid in its own pid namespace: the jail's container is the first
/// process of a new pid namespace.
pub const VMM_PID_IN_JAIL: u64 = 1;

/// `clone`'s flags that create namespaces (Docker's mask), plus `CLONE_THREAD`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;

/// The seccomp profile of a VMM's jail: `EPERM` for everything but
/// [`VMM_SYSCALLS`] and `extra`, `clone` only for threads (`CLONE_THREAD` set, no
/// namespace flag: no fork, no new namespace), `clone3` answered `ENOSYS` (glibc then
/// uses `clone`), `socket` and `socketpair` only for `AF_UNIX`, `tgkill` only to
/// thread group [`VMM_PID_IN_JAIL`] (itself: the profile is made for a process that is
/// pid 1 of its pid namespace, as the jail's VMM is, where no other process is
/// visible anyway), and, as in every profile, `ioctl`'s `TIOCSTI`/`TIOCLINUX` refused.
///
/// Every syscall it allows is allowed by Docker's default profile too, for a task
/// without capabilities; it refuses what Docker's allows and a VMM does not need:
/// `fork`/`vfork`/process-creating `clone`, `ptrace` and `process_vm_*`, `kill` of
/// other processes, `personality`, `io_uring_*`, non-Unix sockets, `chmod`/`chown`,
/// `mkdir`, `rename`, `link`/`symlink`, `mknod`, the `set*id` family, `mbind` and the
/// memory-policy calls, `execveat`, and more.
pub fn vmm_seccomp_profile(extra: &[&str]) -> SeccompProfile {
    let mut profile =
        SeccompProfile::new(Action::Errno(libc::EPERM as u32)).with_rule(SyscallRule::new(
            VMM_SYSCALLS.iter().chain(extra).map(|s| s.to_string()),
            Action::Allow,
        ));
    // These conditions are valid by construction: in-range indices, 32-bit values in
    // Dword conditions, values inside their masks.
    if let Ok(thread) = ArgCondition::qword(
        0,
        ArgOp::MaskedEq(CLONE_THREAD | CLONE_NAMESPACE_FLAGS),
        CLONE_THREAD,
    ) {
        profile.push_rule(SyscallRule::new(["clone"], Action::Allow).with_arg(thread));
    }
    if let Ok(own) = ArgCondition::dword(0, ArgOp::Eq, VMM_PID_IN_JAIL) {
        profile.push_rule(SyscallRule::new(["tgkill"], Action::Allow).with_arg(own));
    }
    for call in ["socket", "socketpair"] {
        if let Ok(unix) = ArgCondition::dword(0, ArgOp::Eq, libc::AF_UNIX as u64) {
            profile.push_rule(SyscallRule::new([call], Action::Allow).with_arg(unix));
        }
    }
    profile.push_rule(SyscallRule::new(
        ["clone3"],
        Action::Errno(libc::ENOSYS as u32),
    ));
    profile
}

/// A device node of the jail: a private node the launch made in the VM's directory
/// (the host device's major and minor numbers, owned by the jail's uid and gid, mode
/// 0600), and the path it appears at inside the jail. A launcher that is not root
/// cannot make device nodes; its jail runs as its own uid and gets the host's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailDevice {
    /// The private node on the host.
    pub node: PathBuf,
    /// Its path inside the jail (`/dev/kvm`).
    pub path: PathBuf,
}

/// How the VMM is confined. Filled in by the launch's default hooks; a `pre_spawn` hook
/// may change it. The capability set is always empty and the host uid never 0: the
/// spawn refuses a jail that would run the VMM as host root.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Jail {
    /// The user inside the jail's user namespace.
    pub user: User,
    /// The user namespace's id map; `None` lets the launcher choose (an unprivileged
    /// launcher maps only its own uid, as root inside).
    pub id_map: Option<IdMap>,
    /// The seccomp profile.
    pub seccomp: SeccompProfile,
    /// The CPU quota in CPU units (`None`: none).
    pub cpu_units: Option<u32>,
    /// The memory limit, in MiB: guest memory plus the VMM's overhead.
    pub memory_mib: u64,
    /// The pids limit.
    pub pids_limit: u64,
    /// The VMM binary, its libraries and the backend's host files (resolved by the
    /// `validate` stage).
    pub root: JailRoot,
    /// Host paths bound into the jail (the VM's directory, kernel, initrd, disks):
    /// nosuid, nodev, noexec.
    pub volumes: Vec<Volume>,
    /// Device nodes of the jail's `/dev` (made by the `prepare` stage).
    pub devices: Vec<JailDevice>,
    /// The network namespace the VMM runs in: a new one with only loopback, or (for a
    /// VM with network interfaces) the one the `prepare` stage made for the VM.
    pub network_namespace: NetworkNamespace,
    /// The VMM's environment.
    pub env: Vec<(String, String)>,
    /// The cgroup the jail's cgroup goes under (the launcher's default when `None`).
    pub cgroup_parent: Option<PathBuf>,
    /// Where per-VM jail directories are made on the host. It must be on a
    /// filesystem that allows device nodes (not mounted `nodev`) when the plan has
    /// devices.
    pub base_dir: PathBuf,
}

impl Jail {
    /// The default jail for a launcher running as `euid`: [`JAIL_USER`] in
    /// [`IdMap::DEFAULT`] for root, root of a one-id map (the launcher's own uid) for
    /// anyone else.
    pub fn new(euid: u32) -> Self {
        let (user, id_map) = if euid == 0 {
            (JAIL_USER, Some(IdMap::DEFAULT))
        } else {
            (User::ROOT, None)
        };
        Jail {
            user,
            id_map,
            seccomp: vmm_seccomp_profile(&[]),
            cpu_units: None,
            memory_mib: 0,
            pids_limit: 64,
            root: JailRoot::default(),
            volumes: Vec::new(),
            devices: Vec::new(),
            network_namespace: NetworkNamespace::New,
            env: Vec::new(),
            cgroup_parent: None,
            base_dir: default_base_dir(euid),
        }
    }

    /// The host uid and gid the VMM runs as.
    pub fn host_ids(&self) -> (u32, u32) {
        match self.id_map {
            Some(map) => (
                map.host_uid.saturating_add(self.user.uid),
                map.host_gid.saturating_add(self.user.gid),
            ),
            None => (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        }
    }

    /// The task that runs `plan` in this jail.
    pub(crate) fn sandbox(
        &self,
        name: &str,
        plan: &VmmPlan,
        serial: bool,
    ) -> Result<TaskSandbox, MicrovmError> {
        let (host_uid, host_gid) = self.host_ids();
        if host_uid == 0 || host_gid == 0 {
            return Err(MicrovmError::Jail {
                reason: format!(
                    "the VMM would run as host uid {host_uid} gid {host_gid}; a jailed VMM never runs as host root"
                ),
            });
        }
        if self.root.program.as_os_str().is_empty() {
            return Err(MicrovmError::NotReady {
                what: "the jail's root (resolved by the validate stage's resolve-vmm hook)",
            });
        }
        let argv: Vec<OsString> = std::iter::once(self.root.program.clone().into_os_string())
            .chain(plan.args.iter().map(OsString::from))
            .collect();
        let mut container = Container::new(name)
            .command(argv)
            .user(self.user)
            .capabilities(Capabilities::none())
            .seccomp(SeccompPolicy::Profile(Arc::new(self.seccomp.clone())))
            .stdin(Stdio::Null)
            .stdout(if serial { Stdio::Piped } else { Stdio::Null })
            .stderr(Stdio::Piped);
        let mut env: Vec<(&str, String)> = Vec::new();
        if !self.root.library_path.is_empty() {
            let dirs: Vec<String> = self
                .root
                .library_path
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            env.push(("LD_LIBRARY_PATH", dirs.join(":")));
        }
        for (key, value) in plan.env.iter().chain(&self.env) {
            env.retain(|(k, _)| k != key);
            env.push((key, value.clone()));
        }
        for (key, value) in env {
            container = container.env(key, value);
        }
        for volume in &self.volumes {
            container = container.volume(volume.clone());
        }
        container.bare_root = Some(BareRoot {
            executables: std::iter::once(self.root.program.clone())
                .chain(self.root.libraries.iter().cloned())
                .collect(),
            files: self.root.files.clone(),
            devices: self
                .devices
                .iter()
                .map(|d| (d.node.clone(), d.path.clone()))
                .collect(),
        });
        let size = match self.cpu_units {
            Some(units) => TaskSize::custom(units, self.memory_mib),
            None => TaskSize::memory_only(self.memory_mib),
        }
        .map_err(|e| MicrovmError::Jail {
            reason: format!("the jail's size: {e}"),
        })?;
        let mut builder = TaskSandbox::builder()
            .size(size)
            .pids_limit(self.pids_limit)
            .network_namespace(self.network_namespace.clone())
            .container(container);
        if let Some(map) = self.id_map {
            builder = builder.user_namespace(UserNamespace::Map(map));
        }
        if let Some(parent) = &self.cgroup_parent {
            builder = builder.cgroup_parent(parent);
        }
        Ok(builder.build()?)
    }
}

/// Whether device nodes on the filesystem of `path` (or of its nearest existing
/// parent) can be opened: it is not mounted `nodev`.
pub(crate) fn check_device_nodes_allowed(path: &Path) -> Result<(), MicrovmError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = nix::sys::statvfs::statvfs(existing).map_err(|e| MicrovmError::Io {
        what: format!("statvfs {}", existing.display()),
        source: e.into(),
    })?;
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV) {
        return Err(MicrovmError::DeviceNodesNotAllowed {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Where root makes jail directories by default (as Firecracker's jailer uses
/// `/srv/jailer`): on the root filesystem, which allows device nodes (`/run` is
/// usually a `nodev` tmpfs).
pub const DEFAULT_ROOT_BASE_DIR: &str = "/srv/tasksandbox/microvm";

fn default_base_dir(euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from(DEFAULT_ROOT_BASE_DIR);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => {
            Path::new(&dir).join("tasksandbox").join("microvm")
        }
        _ => std::env::temp_dir()
            .join(format!("tasksandbox-{euid}"))
            .join("microvm"),
    }
}

/// Failures injected into [`JailDir::create`] by the unit tests.
#[cfg(test)]
pub(crate) mod failpoint {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static FAIL: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    }

    /// Makes the next write of a file named `name` fail on this thread.
    pub(crate) fn fail_writing(name: &str) {
        FAIL.with(|f| *f.borrow_mut() = Some(PathBuf::from(name)));
    }

    pub(super) fn check(target: &Path) -> Result<(), super::MicrovmError> {
        let hit = FAIL.with(|f| {
            let mut f = f.borrow_mut();
            let hit = f
                .as_deref()
                .is_some_and(|n| target.file_name() == Some(n.as_os_str()));
            if hit {
                *f = None;
            }
            hit
        });
        if hit {
            return Err(super::MicrovmError::Io {
                what: format!("write {}", target.display()),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            });
        }
        Ok(())
    }
}

#[cfg(not(test))]
mod failpoint {
    pub(super) fn check(_: &std::path::Path) -> Result<(), super::MicrovmError> {
        Ok(())
    }
}

/// A VM's directory on the host: `config/` (the plan's read-only files, bound at
/// [`JAIL_CONFIG_DIR`]), `run/` (owned by the jail's uid, bound writable at
/// [`JAIL_RUN_DIR`]) and `dev/` (private device nodes for the plan's devices, as
/// Firecracker's jailer makes them: the host device's major and minor numbers, owned
/// by the jail's uid and gid, mode 0600, so the host's own nodes keep their modes).
/// Removed by the launch's `cleanup` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailDir {
    path: PathBuf,
    devices: Vec<JailDevice>,
}

static JAIL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The launcher pid in a jail directory's name, `<name>-<pid>-<n>`, if it has that
/// shape (a VM name has no `-`).
fn jail_dir_launcher(name: &str) -> Option<i32> {
    let mut parts = name.rsplitn(3, '-');
    let (n, pid, vm) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(n) && digits(pid) && !vm.is_empty())
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|&p: &i32| p > 0)
}

/// Whether the tree at `dir` lies on the filesystem `dev` alone: no mount point in it
/// (with `lstat`: a symbolic link is not followed).
fn on_one_filesystem(dir: &Path, dev: u64, depth: usize) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return false;
    };
    if meta.dev() != dev {
        return false;
    }
    if !meta.is_dir() {
        return true;
    }
    if depth == 0 {
        return false;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .all(|e| on_one_filesystem(&e.path(), dev, depth - 1))
}

/// Removes the jail directories under `base` that launchers which died left behind:
/// those named `<name>-<pid>-<n>` whose launcher pid no longer exists. A directory is
/// kept if the pid is alive (whoever has it now), or if anything in it is on another
/// filesystem (a mount point: nothing is removed through one). Returns what was
/// removed. [`MicroVm::run`](super::MicroVm::run) sweeps its base directory before
/// making a jail directory.
pub fn sweep_stale_jail_dirs(base: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let (Ok(base_meta), Ok(entries)) = (fs::metadata(base), fs::read_dir(base)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(jail_dir_launcher) else {
            continue;
        };
        if pid == me || crate::sys::process_exists(pid) {
            continue;
        }
        let path = entry.path();
        // config/, run/ and dev/ under the directory: a few levels suffice.
        if !on_one_filesystem(&path, base_meta.dev(), 4) {
            tracing::warn!(path = %path.display(), "stale jail directory holds a mount point or is unreadable; left in place");
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stale jail directory not removed")
            }
        }
    }
    removed
}

impl JailDir {
    /// Makes `<base>/<name>-<pid>-<n>` with its `config/` and `run/`, writes `plan`'s
    /// files, and gives `run/` to `host_uid`:`host_gid`. Fails on a planned file whose
    /// name is not a plain file name before making anything; on a later failure it
    /// removes what it made.
    pub fn create(
        base: &Path,
        name: &str,
        plan: &VmmPlan,
        host_uid: u32,
        host_gid: u32,
    ) -> Result<JailDir, MicrovmError> {
        let io = |what: &str, path: &Path, e: std::io::Error| MicrovmError::Io {
            what: format!("{what} {}", path.display()),
            source: e,
        };
        // Every parent must let the jail's uid search it.
        let mut made = PathBuf::new();
        for part in base.components() {
            made.push(part);
            match fs::DirBuilder::new().mode(0o755).create(&made) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &made, e)),
            }
        }
        for file in &plan.files {
            check_file_name("planned file", &file.name)?;
        }
        // The jail binds from here, as the jail's mapped root, who is no owner of the
        // host's directories: every one on the way must let others search it.
        accessible(base, host_uid, host_gid, false).map_err(|reason| MicrovmError::Jail {
            reason: format!(
                "the jail cannot reach its base directory {}: {reason}",
                base.display()
            ),
        })?;
        let n = JAIL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{name}-{}-{n}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| io("create", &path, e))?;
        let mut dir = JailDir {
            path,
            devices: Vec::new(),
        };
        // From here on a failure removes what was made.
        match dir.fill(plan, host_uid, host_gid) {
            Ok(()) => Ok(dir),
            Err(err) => {
                if let Err(e) = fs::remove_dir_all(&dir.path) {
                    tracing::warn!(path = %dir.path.display(), error = %e, "half-made jail directory not removed");
                }
                Err(err)
            }
        }
    }

    /// Makes `config/`, `run/` and `dev/` in the new directory, writes the plan's
    /// files and makes its device nodes.
    fn fill(&mut self, plan: &VmmPlan, host_uid: u32, host_gid: u32) -> Result<(), MicrovmError> {
        let io = |what: &str, path: &Path, e: std::io::Error| MicrovmError::Io {
            what: format!("{what} {}", path.display()),
            source: e,
        };
        let config = self.config_dir();
        let run = self.run_dir();
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&config)
            .map_err(|e| io("create", &config, e))?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&run)
            .map_err(|e| io("create", &run, e))?;
        for file in &plan.files {
            let target = if file.writable { &run } else { &config }.join(&file.name);
            failpoint::check(&target)?;
            fs::write(&target, &file.contents).map_err(|e| io("write", &target, e))?;
            let mode = if file.writable { 0o600 } else { 0o644 };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| io("chmod", &target, e))?;
            if file.writable {
                std::os::unix::fs::chown(&target, Some(host_uid), Some(host_gid))
                    .map_err(|e| io("chown", &target, e))?;
            }
        }
        std::os::unix::fs::chown(&run, Some(host_uid), Some(host_gid))
            .map_err(|e| io("chown", &run, e))?;
        if !plan.devices.is_empty() && !nix::unistd::geteuid().is_root() {
            // An unprivileged launcher cannot make device nodes; its jail runs as its
            // own uid, so the host's nodes give the VMM what the launcher has.
            for device in &plan.devices {
                self.devices.push(JailDevice {
                    node: device.clone(),
                    path: device.clone(),
                });
            }
        } else if !plan.devices.is_empty() {
            check_device_nodes_allowed(&self.path)?;
            let dev = self.path.join("dev");
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&dev)
                .map_err(|e| io("create", &dev, e))?;
            for device in &plan.devices {
                let node = dev.join(node_name(device)?);
                make_private_node(device, &node, host_uid, host_gid)?;
                self.devices.push(JailDevice {
                    node,
                    path: device.clone(),
                });
            }
        }
        Ok(())
    }

    /// The private device nodes, and where they go in the jail.
    pub fn devices(&self) -> &[JailDevice] {
        &self.devices
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host directory bound at [`JAIL_CONFIG_DIR`].
    pub fn config_dir(&self) -> PathBuf {
        self.path.join("config")
    }

    /// The host directory bound at [`JAIL_RUN_DIR`].
    pub fn run_dir(&self) -> PathBuf {
        self.path.join("run")
    }

    /// The host path of `jail_path`, a path under [`JAIL_RUN_DIR`] or
    /// [`JAIL_CONFIG_DIR`] inside the jail.
    pub fn host_path(&self, jail_path: &Path) -> Option<PathBuf> {
        if let Ok(rest) = jail_path.strip_prefix(JAIL_RUN_DIR) {
            return Some(self.run_dir().join(rest));
        }
        jail_path
            .strip_prefix(JAIL_CONFIG_DIR)
            .ok()
            .map(|rest| self.config_dir().join(rest))
    }

    /// The volumes that bring the directory into the jail.
    pub fn volumes(&self) -> [Volume; 2] {
        [
            Volume::bind(self.config_dir(), JAIL_CONFIG_DIR),
            Volume::bind(self.run_dir(), JAIL_RUN_DIR).read_write(),
        ]
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<(), MicrovmError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MicrovmError::Io {
                what: format!("remove {}", self.path.display()),
                source: e,
            }),
        }
    }
}

/// The file name of the private node for `device` (`/dev/net/tun` → `net-tun`).
fn node_name(device: &Path) -> Result<String, MicrovmError> {
    let rest = device
        .strip_prefix("/dev")
        .ok()
        .filter(|r| {
            r.components().count() > 0
                && r.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .ok_or_else(|| MicrovmError::Device {
            path: device.to_path_buf(),
            reason: "must be a plain path under /dev".into(),
        })?;
    Ok(rest.to_string_lossy().replace('/', "-"))
}

/// Makes `node`, a character device with the numbers of the host's `device`, owned by
/// `uid`:`gid`, mode 0600.
fn make_private_node(device: &Path, node: &Path, uid: u32, gid: u32) -> Result<(), MicrovmError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = fs::metadata(device).map_err(|e| MicrovmError::Device {
        path: device.to_path_buf(),
        reason: format!("is missing on this host: {e}"),
    })?;
    if !meta.file_type().is_char_device() {
        return Err(MicrovmError::Device {
            path: device.to_path_buf(),
            reason: "is not a character device".into(),
        });
    }
    let io = |what: &str, e: std::io::Error| MicrovmError::Io {
        what: format!("{what} {}", node.display()),
        source: e,
    };
    nix::sys::stat::mknod(
        node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        meta.rdev(),
    )
    .map_err(|e| io("mknod", e.into()))?;
    // The umask may have taken bits away; the mode is exact.
    fs::set_permissions(node, fs::Permissions::from_mode(0o600)).map_err(|e| io("chmod", e))?;
    std::os::unix::fs::chown(node, Some(uid), Some(gid)).map_err(|e| io("chown", e))
}

/// Whether host uid `uid` (gid `gid`, no supplementary groups) may open `path` for
/// reading (and writing, with `write`), from its mode bits and those of its parents.
/// Access control lists are not read: a file shared with the jail only through an
/// ACL is reported as inaccessible.
pub fn accessible(path: &Path, uid: u32, gid: u32, write: bool) -> Result<(), String> {
    let allows = |meta: &fs::Metadata, bits: u32| {
        let mode = meta.mode();
        let shift = if meta.uid() == uid {
            6
        } else if meta.gid() == gid {
            3
        } else {
            0
        };
        (mode >> shift) & bits == bits
    };
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let want = if write { 0o6 } else { 0o4 };
    if !allows(&meta, want) {
        return Err(format!(
            "{} (mode {:o}, owner {}:{}) is not {} by uid {uid} gid {gid}",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            if write {
                "readable and writable"
            } else {
                "readable"
            }
        ));
    }
    let canonical = fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for dir in canonical.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !allows(&meta, 0o1) {
            return Err(format!(
                "{} (mode {:o}, owner {}:{}) cannot be searched by uid {uid} gid {gid}",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ));
        }
    }
    Ok(())
}
