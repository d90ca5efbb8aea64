//! The root filesystem plan: every mount, directory, symlink and file the child makes,
//! computed before the fork.
//!
//! The plan is a flat list of `MountOp`s the child executes in order: build the new
//! root (a bind of the container's rootfs onto itself, or a private tmpfs holding
//! read-only binds of the host's `/usr`, `/bin`, `/sbin`, `/lib*` and a generated
//! `/etc`), bind the volumes, mount a minimal `/dev`, `/proc` and a read-only `/sys`,
//! `pivot_root` into it, then mask and write-protect the OCI default paths, which are
//! now resolved inside the new root.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use libc::c_ulong;
use nix::errno::Errno;

use crate::container::{Container, Volume};
use crate::error::ConfigError;
use crate::sys;

/// The OCI default masked paths: files are covered by `/dev/null`, directories by an
/// empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// The OCI default read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The device nodes of the minimal `/dev`, bound from the host's.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The host directories the default root filesystem binds read-only (or recreates as
/// symlinks where the host has symlinks, as on merged-/usr systems).
const DEFAULT_ROOT_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

const MS_BIND_REC: c_ulong = libc::MS_BIND | libc::MS_REC;
const SECURE: c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// One operation of the root filesystem plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountOp {
    /// `mount(2)`.
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// Make a bind mount read-only, with its submounts when `recursive`.
    ReadOnly { target: CString, recursive: bool },
    /// Add `MOUNT_ATTR_*` flags (read-only, nosuid, nodev, noexec) to a mount, with
    /// its submounts when `recursive`.
    SetAttrs {
        target: CString,
        recursive: bool,
        attrs: u64,
    },
    /// `mkdir`, existing entries allowed.
    Mkdir { path: CString, mode: libc::mode_t },
    /// An empty file to bind a file onto, existing entries allowed.
    Touch { path: CString },
    /// `symlink`, existing entries allowed.
    Symlink { target: CString, link: CString },
    /// A generated file, owned by `owner` (uid, gid inside the task) when given.
    WriteFile {
        path: CString,
        contents: FileContents,
        mode: libc::mode_t,
        owner: Option<(u32, u32)>,
    },
    /// `chown` of a path (uid, gid inside the task).
    Chown { path: CString, uid: u32, gid: u32 },
    /// Switch to `new_root` and detach the old root.
    PivotRoot { new_root: CString },
    /// Hide a path inside the new root: a read-only empty tmpfs over a directory, the
    /// new root's `/dev/null` over a file; absent paths are skipped.
    Mask { path: CString },
    /// Make a path inside the new root read-only; absent paths are skipped.
    ReadOnlyPath { path: CString },
    /// Fail unless `path` is a directory (`dir`) or a regular file, not a symlink:
    /// checked in the child right before it mounts on a path of a container's rootfs,
    /// which may have changed since the plan was made.
    RequireReal { path: CString, dir: bool },
}

/// The bytes of a generated file. A secret's value is one, so `Debug` shows only how
/// many there are.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FileContents(pub(crate) Vec<u8>);

impl fmt::Debug for FileContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl fmt::Display for MountOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |c: &CString| String::from_utf8_lossy(c.as_bytes()).into_owned();
        match self {
            MountOp::Mount {
                source,
                target,
                fstype,
                flags,
                ..
            } => {
                let what = match (fstype, source) {
                    (Some(fs), _) => show(fs),
                    (None, Some(src)) if flags & libc::MS_BIND != 0 => {
                        format!("bind {}", show(src))
                    }
                    _ => "remount".to_string(),
                };
                write!(f, "mount {what} on {}", show(target))
            }
            MountOp::ReadOnly { target, .. } => write!(f, "make {} read-only", show(target)),
            MountOp::SetAttrs { target, attrs, .. } => {
                write!(f, "make {} {}", show(target), attr_names(*attrs).join(","))
            }
            MountOp::Mkdir { path, .. } => write!(f, "mkdir {}", show(path)),
            MountOp::Touch { path } => write!(f, "create {}", show(path)),
            MountOp::Symlink { target, link } => {
                write!(f, "symlink {} -> {}", show(link), show(target))
            }
            MountOp::WriteFile { path, .. } => write!(f, "write {}", show(path)),
            MountOp::Chown { path, uid, gid } => write!(f, "chown {uid}:{gid} {}", show(path)),
            MountOp::PivotRoot { new_root } => write!(f, "pivot_root into {}", show(new_root)),
            MountOp::Mask { path } => write!(f, "mask {}", show(path)),
            MountOp::ReadOnlyPath { path } => write!(f, "make {} read-only", show(path)),
            MountOp::RequireReal { path, dir } => write!(
                f,
                "check that {} is a {} and no symlink",
                show(path),
                if *dir { "directory" } else { "file" }
            ),
        }
    }
}

impl MountOp {
    /// Runs the operation. Called in the child: must not allocate.
    pub(crate) fn apply(&self) -> Result<(), Errno> {
        match self {
            MountOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => sys::mount(
                source.as_deref(),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
            MountOp::ReadOnly { target, recursive } => make_read_only(target, *recursive),
            MountOp::SetAttrs {
                target,
                recursive,
                attrs,
            } => set_attrs(target, *recursive, *attrs),
            MountOp::Mkdir { path, mode } => sys::mkdir_exist_ok(path, *mode),
            MountOp::Touch { path } => {
                let fd = sys::open(
                    path,
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                )?;
                sys::close(fd);
                Ok(())
            }
            MountOp::Symlink { target, link } => sys::symlink_exist_ok(target, link),
            MountOp::WriteFile {
                path,
                contents,
                mode,
                owner,
            } => {
                sys::write_file(path, &contents.0, *mode)?;
                match owner {
                    Some((uid, gid)) => sys::chown(path, *uid, *gid),
                    None => Ok(()),
                }
            }
            MountOp::Chown { path, uid, gid } => sys::chown(path, *uid, *gid),
            MountOp::PivotRoot { new_root } => pivot_into(new_root),
            MountOp::Mask { path } => mask(path),
            MountOp::ReadOnlyPath { path } => {
                match sys::mount(Some(path), path, None, MS_BIND_REC, None) {
                    Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(e),
                    Ok(()) => make_read_only(path, true),
                }
            }
            MountOp::RequireReal { path, dir } => {
                let st = sys::lstat(path)?;
                match (st.st_mode & libc::S_IFMT, dir) {
                    (libc::S_IFDIR, true) | (libc::S_IFREG, false) => Ok(()),
                    (libc::S_IFLNK, _) => Err(Errno::ELOOP),
                    (_, true) => Err(Errno::ENOTDIR),
                    (_, false) => Err(Errno::EISDIR),
                }
            }
        }
    }
}

/// Makes the mount at `target` read-only (submounts too when `recursive`); on kernels
/// without `mount_setattr`, remounts the top mount keeping its locked flags.
fn make_read_only(target: &std::ffi::CStr, recursive: bool) -> Result<(), Errno> {
    set_attrs(target, recursive, MOUNT_ATTR_RDONLY)
}

/// Adds the `MOUNT_ATTR_*` flags `attrs` to the mount at `target` (submounts too when
/// `recursive`); on kernels without `mount_setattr`, remounts the top mount with them,
/// keeping its locked flags.
fn set_attrs(target: &std::ffi::CStr, recursive: bool, attrs: u64) -> Result<(), Errno> {
    match sys::mount_setattr(target, recursive, attrs, 0) {
        Err(Errno::ENOSYS) => {
            let mut flags = sys::mount_flags(target)? | libc::MS_BIND | libc::MS_REMOUNT;
            for (attr, flag) in [
                (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
                (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
                (MOUNT_ATTR_NODEV, libc::MS_NODEV),
                (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
            ] {
                if attrs & attr != 0 {
                    flags |= flag;
                }
            }
            sys::mount(None, target, None, flags, None)
        }
        other => other,
    }
}

/// The names of `MOUNT_ATTR_*` flags (`ro`, `nosuid`, `nodev`, `noexec`).
pub(crate) fn attr_names(attrs: u64) -> Vec<&'static str> {
    [
        (MOUNT_ATTR_RDONLY, "ro"),
        (MOUNT_ATTR_NOSUID, "nosuid"),
        (MOUNT_ATTR_NODEV, "nodev"),
        (MOUNT_ATTR_NOEXEC, "noexec"),
    ]
    .iter()
    .filter(|(bit, _)| attrs & bit != 0)
    .map(|(_, name)| *name)
    .collect()
}

fn pivot_into(new_root: &std::ffi::CStr) -> Result<(), Errno> {
    sys::chdir(new_root)?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
    // leaves the new root alone, with no directory of the host left to reach.
    sys::pivot_root(c".", c".")?;
    sys::umount2(c".", libc::MNT_DETACH)?;
    sys::chdir(c"/")
}

fn mask(path: &std::ffi::CStr) -> Result<(), Errno> {
    mask_with(path, c"/dev/null")
}

/// Masks `path` (see [`MountOp::Mask`]); a file is covered by `null`, which must be
/// the null device itself.
///
/// What `null` names is opened without following a final symlink and checked to be
/// the character device 1:3, and it is that open file which is bound over `path`
/// (`open_tree` and `move_mount`): an image cannot make a mask a bind of another file
/// by putting a symlink, or anything else, where `/dev/null` is looked up, even in a
/// race with the start (runc's CVE-2025-31133). On kernels without `open_tree` (before
/// 5.2) the checked path is bound by name.
pub(crate) fn mask_with(path: &std::ffi::CStr, null: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st a valid out-pointer.
    if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
        return match Errno::last() {
            Errno::ENOENT => Ok(()),
            e => Err(e),
        };
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return sys::mount(
            Some(c"tmpfs"),
            path,
            Some(c"tmpfs"),
            libc::MS_RDONLY | SECURE,
            Some(c"size=0,mode=0555"),
        );
    }
    let fd = sys::open(null, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)?;
    let result = bind_null_fd(fd, null, path);
    sys::close(fd);
    result
}

/// Binds the null device open as `fd` (opened from `null`) over `path`, after checking
/// that it is one.
fn bind_null_fd(
    fd: std::os::fd::RawFd,
    null: &std::ffi::CStr,
    path: &std::ffi::CStr,
) -> Result<(), Errno> {
    let st = sys::fstat(fd)?;
    let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 1
        && libc::minor(st.st_rdev) == 3;
    if !is_null {
        return Err(Errno::ENODEV);
    }
    match sys::open_tree_clone(fd) {
        Ok(tree) => {
            let moved = sys::move_mount_fd(tree, path);
            sys::close(tree);
            moved
        }
        Err(Errno::ENOSYS) => sys::mount(Some(null), path, None, libc::MS_BIND, None),
        Err(e) => Err(e),
    }
}

/// A root filesystem holding only what is listed, for a process that needs nothing
/// else of the host (the microVM jail's VMM): a read-only tmpfs with the listed host
/// files bound at their own paths, the container's volumes (nosuid, nodev, noexec),
/// and a `/dev` with only the listed device nodes; no `/etc`, `/proc` or `/sys`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BareRoot {
    /// Host files bound read-only at the same path, where exec and executable
    /// mappings stay allowed: a program, its ELF interpreter, its libraries.
    pub executables: Vec<PathBuf>,
    /// Host files bound read-only at the same path, nosuid, nodev, noexec (data).
    pub files: Vec<PathBuf>,
    /// Device nodes: the host node, and the path inside (under `/dev`).
    pub devices: Vec<(PathBuf, PathBuf)>,
}

/// What the plan needs to know about the task and the host.
pub(crate) struct RootContext<'a> {
    /// The directory the default root filesystem's tmpfs is mounted on.
    pub mountpoint: &'a Path,
    /// Size limit of the default root's tmpfs, in bytes.
    pub tmpfs_bytes: u64,
    /// Whether gid 5 (tty) exists inside the task, for devpts's `gid=5`.
    pub has_tty_gid: bool,
    /// The task's hostname, for the generated `/etc/hosts` and `/etc/hostname`.
    pub hostname: &'a str,
    /// Where the task init mounts the ephemeral storage, in the mount namespace the
    /// containers are cloned from.
    pub storage: &'a Path,
    /// Where the task init attaches the sysfs of a joined network namespace, which
    /// containers bind at `/sys` (`None`: the task has its own network namespace,
    /// whose sysfs containers mount themselves).
    pub sysfs_stage: Option<&'a Path>,
}

/// Where secrets are delivered inside a container.
pub const SECRETS_DIR: &str = "/run/secrets";

fn cstring(container: &str, field: &'static str, bytes: &[u8]) -> Result<CString, ConfigError> {
    CString::new(bytes).map_err(|_| ConfigError::NulByte {
        container: container.to_string(),
        field,
        value: String::from_utf8_lossy(bytes).into_owned(),
    })
}

fn join(root: &Path, inside: &str) -> Vec<u8> {
    let mut out = root.as_os_str().as_bytes().to_vec();
    if !inside.starts_with('/') {
        out.push(b'/');
    }
    out.extend_from_slice(inside.as_bytes());
    out
}

/// Builds the plan for `container`. Checks the rootfs and volume sources on the host.
pub(crate) fn plan(container: &Container, ctx: &RootContext) -> Result<Vec<MountOp>, ConfigError> {
    if let Some(bare) = &container.bare_root {
        return bare_plan(container, bare, ctx);
    }
    let name = container.name.as_str();
    let c = |field, bytes: &[u8]| cstring(name, field, bytes);
    let mut ops = Vec::new();

    // 1. The new root: the container's rootfs bound onto itself (so it is a mount point
    //    pivot_root accepts), or a private tmpfs populated from the host.
    let root: PathBuf = match &container.rootfs {
        Some(rootfs) => {
            check_rootfs(name, rootfs)?;
            let root = c("rootfs", rootfs.as_os_str().as_bytes())?;
            ops.push(MountOp::Mount {
                source: Some(root.clone()),
                target: root,
                fstype: None,
                flags: MS_BIND_REC,
                data: None,
            });
            // The rootfs belongs to the caller, not to the task's mapped root, so its
            // mount points are made here, by the caller, before any process exists.
            for dir in ["proc", "dev", "sys"] {
                ensure_mountpoint(name, rootfs, Path::new(dir), true)?;
            }
            rootfs.clone()
        }
        None => {
            default_root(container, ctx, &mut ops)?;
            ctx.mountpoint.to_path_buf()
        }
    };

    // 2. Volumes, made read-only right after their bind unless asked otherwise, then
    //    the task's ephemeral storage wherever this container asked for it.
    let storage_volumes: Vec<Volume> = container
        .storage_mounts
        .iter()
        .map(|dest| Volume::bind(ctx.storage, dest).read_write())
        .collect();
    let mut destinations: Vec<&Path> = Vec::new();
    for volume in container.volumes.iter().chain(&storage_volumes) {
        check_volume(name, volume, &destinations)?;
        destinations.push(&volume.destination);
        let dest = volume.destination.to_string_lossy();
        let target = c("volume destination", &join(&root, &dest))?;
        let source_is_dir = fs::metadata(&volume.source)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        // In a container's own rootfs the mount point is made here, by the caller,
        // refusing any symlink on the way: one in the image could point the mount
        // point's creation at a host directory.
        if let Some(rootfs) = &container.rootfs {
            ensure_mountpoint(name, rootfs, &volume.destination, source_is_dir)?;
        }
        let mut prefix = root.clone();
        let parents: Vec<_> = volume.destination.components().collect();
        let last = parents.len().saturating_sub(1);
        for (i, part) in parents.iter().enumerate() {
            let Component::Normal(part) = part else {
                continue;
            };
            prefix.push(part);
            let path = c("volume destination", prefix.as_os_str().as_bytes())?;
            let dir = i != last || source_is_dir;
            if dir {
                ops.push(MountOp::Mkdir {
                    path: path.clone(),
                    mode: 0o755,
                });
            } else {
                ops.push(MountOp::Touch { path: path.clone() });
            }
            // And checked again at start: the image may have changed since.
            if container.rootfs.is_some() {
                ops.push(MountOp::RequireReal { path, dir });
            }
        }
        ops.push(MountOp::Mount {
            source: Some(c("volume source", volume.source.as_os_str().as_bytes())?),
            target: target.clone(),
            fstype: None,
            flags: MS_BIND_REC,
            data: None,
        });
        if volume.read_only {
            ops.push(MountOp::ReadOnly {
                target,
                recursive: true,
            });
        }
    }

    // 2b. Secrets: files on a small private tmpfs, readable by the container's user
    //     only, the directory made read-only once they are written.
    if !container.secrets.is_empty() {
        secrets(container, &root, &mut ops)?;
    }

    // 3. A minimal /dev: a small tmpfs holding binds of the host's harmless devices, a
    //    private devpts instance, shm and mqueue.
    let at = |inside: &str| c("rootfs", &join(&root, inside));
    // The mount points of a container's own rootfs were checked when the plan was
    // made; they are checked again in the child, right before the mounts, since the
    // image may have been changed in between (a symlink there would send the mount
    // elsewhere, and leave the task without its /dev, /proc or /sys).
    if container.rootfs.is_some() {
        for dir in ["/dev", "/proc", "/sys"] {
            ops.push(MountOp::RequireReal {
                path: at(dir)?,
                dir: true,
            });
        }
    }
    ops.push(MountOp::Mount {
        source: Some(c"tmpfs".into()),
        target: at("/dev")?,
        fstype: Some(c"tmpfs".into()),
        flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
        data: Some(c"mode=755,size=65536k".into()),
    });
    for dev in DEVICES {
        let target = at(&format!("/dev/{dev}"))?;
        ops.push(MountOp::Touch {
            path: target.clone(),
        });
        ops.push(MountOp::Mount {
            source: Some(c("device", format!("/dev/{dev}").as_bytes())?),
            target,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    // Device nodes the container asked for, bound from the host at the same path.
    for device in &container.devices {
        check_device(name, device, &container.devices)?;
        let inside = device.to_string_lossy();
        let mut prefix = root.join("dev");
        let parts: Vec<_> = device.components().skip(2).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            prefix.push(part);
            ops.push(MountOp::Mkdir {
                path: c("device", prefix.as_os_str().as_bytes())?,
                mode: 0o755,
            });
        }
        let target = at(&inside)?;
        ops.push(MountOp::Touch {
            path: target.clone(),
        });
        ops.push(MountOp::Mount {
            source: Some(c("device", device.as_os_str().as_bytes())?),
            target,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    for dir in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        ops.push(MountOp::Mkdir {
            path: at(dir)?,
            mode: 0o755,
        });
    }
    let pts_data = if ctx.has_tty_gid {
        c"newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        c"newinstance,ptmxmode=0666,mode=0620"
    };
    ops.push(MountOp::Mount {
        source: Some(c"devpts".into()),
        target: at("/dev/pts")?,
        fstype: Some(c"devpts".into()),
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(pts_data.into()),
    });
    ops.push(MountOp::Mount {
        source: Some(c"shm".into()),
        target: at("/dev/shm")?,
        fstype: Some(c"tmpfs".into()),
        flags: SECURE,
        data: Some(c"mode=1777,size=65536k".into()),
    });
    ops.push(MountOp::Mount {
        source: Some(c"mqueue".into()),
        target: at("/dev/mqueue")?,
        fstype: Some(c"mqueue".into()),
        flags: SECURE,
        data: None,
    });
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: c("symlink", target.as_bytes())?,
            link: at(link)?,
        });
    }

    // 4. /proc for the task's pid namespace, and a read-only /sys of its network
    //    namespace.
    ops.push(MountOp::Mount {
        source: Some(c"proc".into()),
        target: at("/proc")?,
        fstype: Some(c"proc".into()),
        flags: SECURE,
        data: None,
    });
    match ctx.sysfs_stage {
        None => ops.push(MountOp::Mount {
            source: Some(c"sysfs".into()),
            target: at("/sys")?,
            fstype: Some(c"sysfs".into()),
            flags: SECURE | libc::MS_RDONLY,
            data: None,
        }),
        // The joined namespace's sysfs, which the launcher made and init attached
        // (read-only, nosuid, nodev, noexec already).
        Some(stage) => {
            let target = at("/sys")?;
            ops.push(MountOp::Mount {
                source: Some(c("sysfs", stage.as_os_str().as_bytes())?),
                target: target.clone(),
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
            });
            ops.push(MountOp::ReadOnly {
                target,
                recursive: false,
            });
        }
    }

    // 5. Into the new root; nothing of the host is reachable past this point.
    ops.push(MountOp::PivotRoot {
        new_root: c("rootfs", root.as_os_str().as_bytes())?,
    });

    // 6. The OCI masked and read-only paths, resolved inside the new root.
    for path in MASKED_PATHS
        .iter()
        .map(|p| p.to_string())
        .chain(thermal_throttle_paths())
    {
        ops.push(MountOp::Mask {
            path: c("masked path", path.as_bytes())?,
        });
    }
    for path in READONLY_PATHS {
        ops.push(MountOp::ReadOnlyPath {
            path: c("read-only path", path.as_bytes())?,
        });
    }
    if container.readonly_rootfs {
        ops.push(MountOp::ReadOnly {
            target: c"/".into(),
            recursive: false,
        });
    }
    Ok(ops)
}

/// Makes every directory of `inside` (an absolute path) under `root`, then the last
/// component as a directory (`dir`) or an empty file to mount on.
fn mount_point(
    name: &str,
    root: &Path,
    inside: &Path,
    dir: bool,
    ops: &mut Vec<MountOp>,
) -> Result<CString, ConfigError> {
    let parts: Vec<_> = inside
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut prefix = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        let path = cstring(name, "bare root path", prefix.as_os_str().as_bytes())?;
        if i + 1 == parts.len() && !dir {
            ops.push(MountOp::Touch { path });
        } else {
            ops.push(MountOp::Mkdir { path, mode: 0o755 });
        }
    }
    cstring(name, "bare root path", prefix.as_os_str().as_bytes())
}

/// The plan of a [`BareRoot`].
fn bare_plan(
    container: &Container,
    bare: &BareRoot,
    ctx: &RootContext,
) -> Result<Vec<MountOp>, ConfigError> {
    let name = container.name.as_str();
    let root = ctx.mountpoint;
    let c = |field, bytes: &[u8]| cstring(name, field, bytes);
    let file_err = |path: &Path, reason: String| ConfigError::Volume {
        container: name.to_string(),
        source_path: path.to_path_buf(),
        destination: path.to_path_buf(),
        reason,
    };
    let mut ops = vec![MountOp::Mount {
        source: Some(c"tasksandbox-root".into()),
        target: c("rootfs", root.as_os_str().as_bytes())?,
        fstype: Some(c"tmpfs".into()),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: Some(c"mode=755,size=1m".into()),
    }];
    // 1. Host files at their own paths: programs and libraries executable, data not.
    let all = bare.executables.iter().map(|p| (p, true));
    for (path, exec) in all.chain(bare.files.iter().map(|p| (p, false))) {
        let plain = path
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)));
        if !path.is_absolute() || !plain {
            return Err(file_err(
                path,
                "must be an absolute path without `.` or `..`".into(),
            ));
        }
        match fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(file_err(path, "is not a regular file".into())),
            Err(e) => return Err(file_err(path, format!("cannot be used: {e}"))),
        }
        let target = mount_point(name, root, path, false, &mut ops)?;
        ops.push(MountOp::Mount {
            source: Some(c("bare root file", path.as_os_str().as_bytes())?),
            target: target.clone(),
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        ops.push(MountOp::SetAttrs {
            target,
            recursive: false,
            attrs: if exec {
                attrs
            } else {
                attrs | MOUNT_ATTR_NOEXEC
            },
        });
    }
    // 2. The volumes: nothing on them can be run, or be a device or setuid.
    let mut destinations: Vec<&Path> = Vec::new();
    for volume in &container.volumes {
        check_volume(name, volume, &destinations)?;
        destinations.push(&volume.destination);
        let is_dir = fs::metadata(&volume.source).is_ok_and(|m| m.is_dir());
        let target = mount_point(name, root, &volume.destination, is_dir, &mut ops)?;
        ops.push(MountOp::Mount {
            source: Some(c("volume source", volume.source.as_os_str().as_bytes())?),
            target: target.clone(),
            fstype: None,
            flags: MS_BIND_REC,
            data: None,
        });
        let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        ops.push(MountOp::SetAttrs {
            target,
            recursive: true,
            attrs: if volume.read_only {
                attrs | MOUNT_ATTR_RDONLY
            } else {
                attrs
            },
        });
    }
    // 3. /dev with the listed nodes only, read-only once they are bound.
    let dev = mount_point(name, root, Path::new("/dev"), true, &mut ops)?;
    ops.push(MountOp::Mount {
        source: Some(c"tmpfs".into()),
        target: dev.clone(),
        fstype: Some(c"tmpfs".into()),
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(c"mode=755,size=64k".into()),
    });
    for (node, inside) in &bare.devices {
        let plain = inside
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside.starts_with("/dev") || inside.components().count() < 3 || !plain {
            return Err(file_err(
                inside,
                "a device must be an absolute path under /dev without `.` or `..`".into(),
            ));
        }
        use std::os::unix::fs::FileTypeExt;
        match fs::symlink_metadata(node) {
            Ok(meta) if meta.file_type().is_char_device() => {}
            Ok(_) => return Err(file_err(node, "is not a character device".into())),
            Err(e) => return Err(file_err(node, format!("cannot be used: {e}"))),
        }
        let target = mount_point(name, root, inside, false, &mut ops)?;
        ops.push(MountOp::Mount {
            source: Some(c("device", node.as_os_str().as_bytes())?),
            target,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    ops.push(MountOp::ReadOnly {
        target: dev,
        recursive: false,
    });
    // 4. Into it, and the root read-only.
    ops.push(MountOp::PivotRoot {
        new_root: c("rootfs", root.as_os_str().as_bytes())?,
    });
    ops.push(MountOp::ReadOnly {
        target: c"/".into(),
        recursive: false,
    });
    Ok(ops)
}

/// `/sys/devices/system/cpu/cpu*/thermal_throttle`, as the host has them.
fn thermal_throttle_paths() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/devices/system/cpu") else {
        return Vec::new();
    };
    let mut paths: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_bytes();
            name.starts_with(b"cpu") && name.len() > 3 && name[3..].iter().all(u8::is_ascii_digit)
        })
        .map(|e| e.path().join("thermal_throttle"))
        .filter(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    paths
}

fn default_root(
    container: &Container,
    ctx: &RootContext,
    ops: &mut Vec<MountOp>,
) -> Result<(), ConfigError> {
    let name = container.name.as_str();
    let c = |field, bytes: &[u8]| cstring(name, field, bytes);
    let root = ctx.mountpoint;
    let at = |inside: &str| c("rootfs", &join(root, inside));
    let size = format!("mode=755,size={}", ctx.tmpfs_bytes);
    ops.push(MountOp::Mount {
        source: Some(c"tasksandbox-root".into()),
        target: c("rootfs", root.as_os_str().as_bytes())?,
        fstype: Some(c"tmpfs".into()),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: Some(c("rootfs", size.as_bytes())?),
    });
    for dir in DEFAULT_ROOT_DIRS {
        let host = Path::new("/").join(dir);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let Ok(target) = fs::read_link(&host) else {
                continue;
            };
            ops.push(MountOp::Symlink {
                target: c("rootfs", target.as_os_str().as_bytes())?,
                link: at(dir)?,
            });
        } else if meta.is_dir() {
            let target = at(dir)?;
            ops.push(MountOp::Mkdir {
                path: target.clone(),
                mode: 0o755,
            });
            ops.push(MountOp::Mount {
                source: Some(c("rootfs", host.as_os_str().as_bytes())?),
                target: target.clone(),
                fstype: None,
                flags: MS_BIND_REC,
                data: None,
            });
            ops.push(MountOp::ReadOnly {
                target,
                recursive: true,
            });
        }
    }
    for (dir, mode) in [
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("proc", 0o555),
        ("dev", 0o755),
        ("sys", 0o555),
        ("run", 0o755),
        ("var", 0o755),
    ] {
        ops.push(MountOp::Mkdir {
            path: at(dir)?,
            mode,
        });
    }
    let hostname = ctx.hostname;
    let files: [(&str, String, libc::mode_t); 5] = [
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into(),
            0o644,
        ),
        ("/etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n".into(), 0o644),
        (
            "/etc/hosts",
            format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            0o644,
        ),
        (
            "/etc/resolv.conf",
            "# The task has no network beyond loopback.\nnameserver 127.0.0.1\n".into(),
            0o644,
        ),
        ("/etc/hostname", format!("{hostname}\n"), 0o644),
    ];
    for (path, contents, mode) in files {
        ops.push(MountOp::WriteFile {
            path: at(path)?,
            contents: FileContents(contents.into_bytes()),
            mode,
            owner: None,
        });
    }
    Ok(())
}

/// The operations delivering `container`'s secrets under [`SECRETS_DIR`] in `root`.
fn secrets(container: &Container, root: &Path, ops: &mut Vec<MountOp>) -> Result<(), ConfigError> {
    let name = container.name.as_str();
    let c = |field, bytes: &[u8]| cstring(name, field, bytes);
    if let Some(rootfs) = &container.rootfs {
        ensure_mountpoint(name, rootfs, Path::new("run/secrets"), true)?;
    }
    let dir = join(root, SECRETS_DIR);
    ops.push(MountOp::Mkdir {
        path: c("secret", &join(root, "/run"))?,
        mode: 0o755,
    });
    ops.push(MountOp::Mkdir {
        path: c("secret", &dir)?,
        mode: 0o755,
    });
    if container.rootfs.is_some() {
        for path in [join(root, "/run"), dir.clone()] {
            ops.push(MountOp::RequireReal {
                path: c("secret", &path)?,
                dir: true,
            });
        }
    }
    let total: usize = container.secrets.iter().map(|s| s.value.len()).sum();
    // Room for every file plus a page each of slack; capped to what the secrets need.
    let size = total + 4096 * (container.secrets.len() + 1);
    ops.push(MountOp::Mount {
        source: Some(c"secrets".into()),
        target: c("secret", &dir)?,
        fstype: Some(c"tmpfs".into()),
        flags: SECURE,
        data: Some(c("secret", format!("mode=0500,size={size}").as_bytes())?),
    });
    let (uid, gid) = (container.user.uid, container.user.gid);
    for secret in &container.secrets {
        let mut path = dir.clone();
        path.push(b'/');
        path.extend_from_slice(secret.name.as_bytes());
        ops.push(MountOp::WriteFile {
            path: c("secret", &path)?,
            contents: FileContents(secret.value.clone()),
            mode: 0o400,
            owner: Some((uid, gid)),
        });
    }
    ops.push(MountOp::Chown {
        path: c("secret", &dir)?,
        uid,
        gid,
    });
    ops.push(MountOp::ReadOnly {
        target: c("secret", &dir)?,
        recursive: false,
    });
    Ok(())
}

/// Makes `inside` (relative to `rootfs`) exist as a directory (or, when `dir` is
/// false, a file) to mount on. Refuses any symlink on the way: a symlink in an image
/// could point the mount outside the root.
fn ensure_mountpoint(
    container: &str,
    rootfs: &Path,
    inside: &Path,
    dir: bool,
) -> Result<(), ConfigError> {
    let err = |path: &Path, reason: String| ConfigError::Rootfs {
        container: container.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let parts: Vec<_> = inside
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut path = rootfs.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let want_dir = dir || i + 1 < parts.len();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(err(
                    &path,
                    "is a symlink; mount points in a rootfs must be real paths".into(),
                ));
            }
            Ok(meta) if meta.is_dir() == want_dir => {}
            Ok(_) => {
                let kind = if want_dir { "a directory" } else { "a file" };
                return Err(err(&path, format!("must be {kind} to mount on")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let made = if want_dir {
                    fs::create_dir(&path)
                } else {
                    fs::File::create(&path).map(drop)
                };
                made.map_err(|e| err(&path, format!("cannot be created as a mount point: {e}")))?;
            }
            Err(e) => return Err(err(&path, format!("cannot be used: {e}"))),
        }
    }
    Ok(())
}

fn check_rootfs(container: &str, rootfs: &Path) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::Rootfs {
        container: container.to_string(),
        path: rootfs.to_path_buf(),
        reason,
    };
    if !rootfs.is_absolute() {
        return Err(err("must be an absolute path".into()));
    }
    if fs::canonicalize(rootfs).is_ok_and(|p| p == Path::new("/")) {
        return Err(err(
            "is the host's root; a task never gets the host's filesystem".into(),
        ));
    }
    match fs::metadata(rootfs) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(err("is not a directory".into())),
        Err(e) => Err(err(format!("cannot be used: {e}"))),
    }
}

/// A device node the container asked for: an absolute, plain path under `/dev`, a
/// character device on the host, not one the minimal `/dev` already has, asked once.
fn check_device(container: &str, device: &Path, all: &[PathBuf]) -> Result<(), ConfigError> {
    use std::os::unix::fs::FileTypeExt;
    let err = |reason: String| ConfigError::Volume {
        container: container.to_string(),
        source_path: device.to_path_buf(),
        destination: device.to_path_buf(),
        reason,
    };
    let plain = device
        .components()
        .skip(1)
        .all(|c| matches!(c, Component::Normal(_)));
    if !device.is_absolute()
        || !plain
        || !device.starts_with("/dev")
        || device.components().count() < 3
    {
        return Err(err(
            "a device must be an absolute path under /dev without `.` or `..`".into(),
        ));
    }
    if device.as_os_str().as_bytes().contains(&0) {
        return Err(err("contains a NUL byte".into()));
    }
    let reserved = [
        "pts", "shm", "mqueue", "ptmx", "fd", "stdin", "stdout", "stderr",
    ];
    if let Some(Component::Normal(first)) = device.components().nth(2) {
        if DEVICES
            .iter()
            .chain(reserved.iter())
            .any(|d| first == std::ffi::OsStr::new(d))
        {
            return Err(err("the minimal /dev already provides this path".into()));
        }
    }
    if all.iter().filter(|d| *d == device).count() > 1 {
        return Err(err("the device is asked for twice".into()));
    }
    match fs::symlink_metadata(device) {
        Ok(meta) if meta.file_type().is_char_device() => Ok(()),
        Ok(_) => Err(err("is not a character device on the host".into())),
        Err(e) => Err(err(format!("cannot be used: {e}"))),
    }
}

fn check_volume(container: &str, volume: &Volume, earlier: &[&Path]) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::Volume {
        container: container.to_string(),
        source_path: volume.source.clone(),
        destination: volume.destination.clone(),
        reason,
    };
    if !volume.source.is_absolute() {
        return Err(err("the source must be an absolute host path".into()));
    }
    if let Err(e) = fs::metadata(&volume.source) {
        return Err(err(format!("the source cannot be used: {e}")));
    }
    let dest = &volume.destination;
    if !dest.is_absolute() {
        return Err(err("the destination must be an absolute path".into()));
    }
    if dest
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(err("the destination must not contain `.` or `..`".into()));
    }
    if dest == Path::new("/") {
        return Err(err(
            "the destination cannot be `/`; use rootfs for the root".into(),
        ));
    }
    for reserved in ["/proc", "/dev", "/sys"] {
        if dest.starts_with(reserved) {
            return Err(err(format!(
                "the destination cannot be under {reserved}, which the sandbox owns"
            )));
        }
    }
    if earlier.iter().any(|d| *d == dest) {
        return Err(err("another volume already has this destination".into()));
    }
    if dest.as_os_str().as_bytes().contains(&0) || volume.source.as_os_str().as_bytes().contains(&0)
    {
        return Err(err("contains a NUL byte".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RootContext<'static> {
        RootContext {
            mountpoint: Path::new("/run/tasksandbox/root"),
            tmpfs_bytes: 1 << 20,
            has_tty_gid: true,
            hostname: "app",
            storage: Path::new("/run/tasksandbox/storage"),
            sysfs_stage: None,
        }
    }

    #[test]
    fn default_root_plan_shape() {
        let ops = plan(&Container::new("app").command(["true"]), &ctx()).unwrap();
        let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
        assert_eq!(text[0], "mount tmpfs on /run/tasksandbox/root");
        let pivot = text
            .iter()
            .position(|t| t.starts_with("pivot_root"))
            .unwrap();
        // Everything that names a host path comes before pivot_root; masks come after.
        assert!(text[pivot + 1..]
            .iter()
            .all(|t| t.starts_with("mask") || t.starts_with("make /proc")));
        assert!(text.contains(&"mount proc on /run/tasksandbox/root/proc".to_string()));
        assert!(text.contains(&"mask /proc/kcore".to_string()));
        assert!(text.contains(&"make /proc/sys read-only".to_string()));
        assert!(text.contains(&"write /run/tasksandbox/root/etc/passwd".to_string()));
    }

    #[test]
    fn volumes_are_checked() {
        let base = Container::new("app").command(["true"]);
        let bad = [
            (Volume::bind("relative", "/data"), "absolute host path"),
            (
                Volume::bind("/nonexistent-source-xyz", "/data"),
                "cannot be used",
            ),
            (
                Volume::bind("/usr", "data"),
                "destination must be an absolute",
            ),
            (Volume::bind("/usr", "/a/../b"), "`.` or `..`"),
            (Volume::bind("/usr", "/"), "cannot be `/`"),
            (Volume::bind("/usr", "/proc/x"), "under /proc"),
        ];
        for (volume, reason) in bad {
            let err = plan(&base.clone().volume(volume), &ctx()).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
        let twice = base
            .volume(Volume::bind("/usr", "/d"))
            .volume(Volume::bind("/etc", "/d"));
        assert!(plan(&twice, &ctx())
            .unwrap_err()
            .to_string()
            .contains("already"));
    }

    #[test]
    fn devices_are_bound_and_checked() {
        let base = Container::new("app").command(["true"]);
        let bad = [
            ("dev/kvm", "absolute path under /dev"),
            ("/dev/../etc/passwd", "absolute path under /dev"),
            ("/etc/passwd", "absolute path under /dev"),
            ("/dev", "absolute path under /dev"),
            ("/dev/null", "already provides"),
            ("/dev/pts/0", "already provides"),
            ("/dev/nonexistent-device-xyz", "cannot be used"),
        ];
        for (device, reason) in bad {
            let err = plan(&base.clone().device(device), &ctx()).unwrap_err();
            assert!(err.to_string().contains(reason), "{device}: {err}");
        }
        if !Path::new("/dev/net/tun").exists() {
            return; // the host has no tun device to bind
        }
        let twice = base.clone().device("/dev/net/tun").device("/dev/net/tun");
        assert!(plan(&twice, &ctx())
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let ops = plan(&base.device("/dev/net/tun"), &ctx()).unwrap();
        let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
        let bind = "mount bind /dev/net/tun on /run/tasksandbox/root/dev/net/tun".to_string();
        let mkdir = "mkdir /run/tasksandbox/root/dev/net".to_string();
        let dev = text
            .iter()
            .position(|t| t == "mount tmpfs on /run/tasksandbox/root/dev");
        let (dev, mkdir, bind) = (
            dev.unwrap(),
            text.iter().position(|t| *t == mkdir).unwrap(),
            text.iter().position(|t| *t == bind).unwrap(),
        );
        assert!(dev < mkdir && mkdir < bind, "{text:#?}");
    }

    #[test]
    fn rootfs_is_checked() {
        let err = plan(
            &Container::new("a").rootfs("/nonexistent-rootfs-xyz"),
            &ctx(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot be used"), "{err}");
        let err = plan(&Container::new("a").rootfs("/etc/passwd"), &ctx()).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn a_mask_binds_only_the_null_device_itself() {
        // In a mount namespace of this test's own thread: a mask's source is refused
        // unless it is the character device 1:3 itself, whatever symlink or file
        // stands where /dev/null is looked up.
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "CI runs this as root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        let result = std::thread::spawn(move || -> Result<Vec<String>, String> {
            use std::ffi::CString;
            use std::os::unix::fs::{symlink, FileTypeExt};
            sys::unshare(libc::CLONE_NEWNS).map_err(|e| e.to_string())?;
            sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
                .map_err(|e| e.to_string())?;
            let cs = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
            sys::mount(Some(c"tmpfs"), &cs(&base), Some(c"tmpfs"), 0, None)
                .map_err(|e| e.to_string())?;
            fs::write(base.join("secret"), "secret").unwrap();
            symlink("/dev/null", base.join("link-to-null")).unwrap();
            symlink(base.join("secret"), base.join("link-to-secret")).unwrap();
            let mut out = Vec::new();
            for candidate in ["secret", "link-to-null", "link-to-secret"] {
                let target = base.join(format!("target-{candidate}"));
                fs::write(&target, "masked file").unwrap();
                let got = mask_with(&cs(&target), &cs(&base.join(candidate)));
                out.push(format!("{candidate}: {got:?}"));
            }
            let target = base.join("target-dev-null");
            fs::write(&target, "masked file").unwrap();
            let got = mask_with(&cs(&target), c"/dev/null");
            let meta = fs::metadata(&target).unwrap();
            out.push(format!(
                "/dev/null: {got:?} char {} {}",
                meta.file_type().is_char_device(),
                fs::read(&target).unwrap().len()
            ));
            Ok(out)
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(
            result,
            [
                "secret: Err(ENODEV)",
                "link-to-null: Err(ENODEV)",
                "link-to-secret: Err(ENODEV)",
                "/dev/null: Ok(()) char true 0",
            ]
        );
    }
}
