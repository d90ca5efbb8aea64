//! The task's ephemeral storage: one volume, with a size limit, shared by the
//! containers that mount it ([`Container::ephemeral_storage_at`]).
//!
//! # Disk-backed (the default)
//!
//! Each start of a task whose containers mount the storage makes a fresh volume:
//!
//! 1. an unnamed file (`O_TMPFILE`) of the volume's size in the storage directory
//!    ([`TaskSandboxBuilder::storage_dir`], `/var/lib/tasksandbox/storage` by default),
//!    sparse, so it takes on disk only what is written. It never has a name, so there
//!    is nothing to unlink and nothing a killed launcher could leave on disk. (On a
//!    filesystem without `O_TMPFILE` the file is made with a unique name and unlinked
//!    at once, before anything else is done with it.)
//! 2. a loop device bound to it with `LOOP_CONFIGURE` and `LO_FLAGS_AUTOCLEAR`: the
//!    device unbinds itself when it is last closed, so its life is that of the
//!    filesystem mounted on it. Direct I/O where the host filesystem allows it, so the
//!    data is not cached twice.
//! 3. `mkfs.ext4` on the device, which takes milliseconds even for 200 GiB: lazy inode
//!    tables, no discard, no reserved blocks, the root directory owned by the host uid
//!    of the task's root (so container root can write there through its user
//!    namespace). The volume never outlives its task, so what only protects data
//!    across a crash or helps a later `fsck` is left out: no journal, no backup
//!    superblocks; the metadata is packed at the start, so the file holds only a few
//!    extents and freeing it is quick.
//! 4. a *detached* mount of it (`fsopen`, `fsmount`), made by the launcher, which
//!    holds the privilege ext4 needs: `nosuid,nodev`, `noinit_itable` (no background
//!    zeroing of inode tables that already read as zeros) and `nobarrier` (no cache
//!    flushes to the host disk: a task's `fsync` cannot make this volume outlive the
//!    task anyway). The mount is in no mount namespace: it is a descriptor, handed to
//!    the task init, which moves it (`move_mount`) into the task's own mount
//!    namespace, where each container binds it. The host's mount table never shows
//!    it, and nothing outside the task can reach it.
//!
//! The launcher then closes its descriptors (the file, the device, the mount). From
//! then on the only thing holding the volume is the task's mount namespaces: when the
//! task ends (dropped, or its launcher killed, which ends the init), the mount goes,
//! the filesystem is unmounted, the loop device unbinds itself and the unnamed file is
//! freed. A start that fails half-way leaves nothing either: each step's descriptor
//! undoes it when closed.
//!
//! The size limit is the filesystem's: a write past it fails with `ENOSPC` and harms
//! nothing else. What is written counts against the host disk, not the task's memory
//! (apart from the page cache, which the kernel reclaims). The files are sparse: the
//! storage directory must have room for what the tasks really write; nothing is
//! reserved in advance.
//!
//! Needs `CAP_SYS_ADMIN` (loop devices, mounting ext4) and `mkfs.ext4` (e2fsprogs).
//!
//! # In memory
//!
//! [`EphemeralStorage::in_memory_mib`] gives a tmpfs instead, mounted by the task init
//! itself (so it also works for an unprivileged launcher). Its contents are memory,
//! charged to the container that writes them, so it cannot be larger than the task's
//! memory.
//!
//! [`Container::ephemeral_storage_at`]: crate::Container::ephemeral_storage_at
//! [`TaskSandboxBuilder::storage_dir`]: crate::TaskSandboxBuilder::storage_dir
//! [`EphemeralStorage::in_memory_mib`]: crate::EphemeralStorage::in_memory_mib

use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

use crate::sys;

/// Where disk-backed ephemeral storage keeps its (unnamed) backing files by default.
pub const DEFAULT_STORAGE_DIR: &str = "/var/lib/tasksandbox/storage";

/// How many times a free loop device is looked for when others take it first.
const LOOP_ATTEMPTS: usize = 64;

/// What backs the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backing {
    /// ext4 on a loop device over a sparse file in `dir`, its root owned by `owner`
    /// (host uid and gid).
    Disk { dir: PathBuf, owner: (u32, u32) },
    /// A tmpfs mounted by the task init with these options.
    Memory { data: CString },
}

/// The ephemeral storage of a built task.
#[derive(Debug)]
pub(crate) struct StoragePlan {
    /// Where the task init puts the volume, in its mount namespace (containers bind it
    /// from there).
    pub target: CString,
    /// The size limit, in bytes.
    pub bytes: u64,
    pub backing: Backing,
}

impl StoragePlan {
    /// Makes this start's volume: for disk-backed storage a detached mount, to be
    /// handed to the task init; nothing for in-memory storage (the init mounts it).
    pub(crate) fn prepare(&self) -> Result<Option<OwnedFd>, StorageError> {
        match &self.backing {
            Backing::Memory { .. } => Ok(None),
            Backing::Disk { dir, owner } => make_volume(dir, self.bytes, *owner).map(Some),
        }
    }
}

/// The step of making the ephemeral storage that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageStep {
    /// Creating and sizing the sparse backing file in the storage directory.
    BackingFile,
    /// Binding a free loop device to the backing file.
    LoopDevice,
    /// Formatting the volume with `mkfs.ext4` (or finding it).
    Format,
    /// Mounting the volume (`fsopen`, `fsconfig`, `fsmount`).
    Mount,
}

impl fmt::Display for StorageStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageStep::BackingFile => "backing file",
            StorageStep::LoopDevice => "loop device",
            StorageStep::Format => "format",
            StorageStep::Mount => "mount",
        })
    }
}

/// Making a task's disk-backed ephemeral storage failed (from
/// [`TaskSandbox::start`](crate::TaskSandbox::start)). Nothing of it is left behind.
#[derive(Debug, thiserror::Error)]
#[error(
    "step `{step}` ({}){}",
    path.display(),
    detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct StorageError {
    /// The step.
    pub step: StorageStep,
    /// What it worked on: the storage directory, the loop device, `mkfs.ext4`.
    pub path: PathBuf,
    /// More about what went wrong (the formatter's or the kernel's message, a hint).
    pub detail: Option<String>,
    /// The host's answer.
    #[source]
    pub source: io::Error,
}

impl StorageError {
    fn new(step: StorageStep, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        StorageError {
            step,
            path: path.into(),
            detail: None,
            source: source.into(),
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// The four steps of the module documentation. Every descriptor made on the way is
/// closed on return, which undoes what it held.
fn make_volume(dir: &Path, bytes: u64, owner: (u32, u32)) -> Result<OwnedFd, StorageError> {
    // Looked for first: without it, nothing else is worth doing.
    let mkfs = find_mkfs()?;
    let file = backing_file(dir)?;
    file.set_len(bytes)
        .map_err(|e| StorageError::new(StorageStep::BackingFile, dir, e))?;
    let (device_path, device) = attach(&file)?;
    // The loop device holds the file now.
    drop(file);
    format(&mkfs, &device_path, owner)?;
    let mount = mount(&device_path)?;
    // The filesystem holds the device now; when it goes, the device unbinds itself.
    drop(device);
    Ok(mount)
}

/// A new nameless file in `dir` (`O_TMPFILE`), readable and writable by root only.
fn open_tmpfile(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
}

/// A new, empty, nameless file in `dir`.
fn backing_file(dir: &Path) -> Result<File, StorageError> {
    let err = |e| StorageError::new(StorageStep::BackingFile, dir, e);
    match open_tmpfile(dir) {
        Ok(file) => return Ok(file),
        // The filesystem has no O_TMPFILE: a named file, unlinked at once.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {}
        Err(e) => return Err(err(e)),
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        ".tasksandbox-storage-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(err)?;
    std::fs::remove_file(&path).map_err(err)?;
    Ok(file)
}

/// Binds a free loop device to `file`, detaching itself on its last close.
fn attach(file: &File) -> Result<(PathBuf, File), StorageError> {
    const CONTROL: &str = "/dev/loop-control";
    let err = |path: &str, e: io::Error| StorageError::new(StorageStep::LoopDevice, path, e);
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(CONTROL)
        .map_err(|e| err(CONTROL, e).detail("the loop driver's control device"))?;
    let mut flags = sys::LO_FLAGS_AUTOCLEAR | sys::LO_FLAGS_DIRECT_IO;
    let mut attempt = 0;
    loop {
        let number = sys::loop_get_free(control.as_raw_fd())
            .map_err(|e| err(CONTROL, e.into()).detail("no free loop device"))?;
        let path = format!("/dev/loop{number}");
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| err(&path, e))?;
        match sys::loop_configure(
            device.as_raw_fd(),
            file.as_raw_fd(),
            flags,
            b"tasksandbox-storage",
        ) {
            Ok(()) => return Ok((PathBuf::from(path), device)),
            // Another thread or process took it between the two calls.
            Err(Errno::EBUSY) if attempt + 1 < LOOP_ATTEMPTS => attempt += 1,
            // A host filesystem without direct I/O: cached I/O then.
            Err(Errno::EINVAL) if flags & sys::LO_FLAGS_DIRECT_IO != 0 => {
                flags &= !sys::LO_FLAGS_DIRECT_IO;
            }
            Err(e) => return Err(err(&path, e.into())),
        }
    }
}

/// `mkfs.ext4`, looked for in `PATH` and the usual sbin directories.
fn find_mkfs() -> Result<PathBuf, StorageError> {
    const NAME: &str = "mkfs.ext4";
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .collect();
    for dir in &dirs {
        let candidate = dir.join(NAME);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(
        StorageError::new(StorageStep::Format, NAME, io::ErrorKind::NotFound).detail(format!(
            "not found in {}; install e2fsprogs, or use EphemeralStorage::in_memory_mib",
            searched.join(":")
        )),
    )
}

/// Formats `device` as ext4 for a volume that lives only as long as its task.
fn format(mkfs: &Path, device: &Path, owner: (u32, u32)) -> Result<(), StorageError> {
    let out = Command::new(mkfs)
        .env_clear()
        .args(["-q", "-F", "-b", "4096", "-i", "16384", "-m", "0"])
        .args(["-O", "^has_journal,^resize_inode,sparse_super2"])
        .arg("-E")
        .arg(format!(
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard,num_backup_sb=0,\
             packed_meta_blocks=1,root_owner={}:{}",
            owner.0, owner.1
        ))
        .arg(device)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| StorageError::new(StorageStep::Format, mkfs, e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(StorageError::new(
        StorageStep::Format,
        mkfs,
        io::Error::other(format!("{}", out.status)),
    )
    .detail(format!("on {}: {}", device.display(), stderr.trim())))
}

/// A detached mount of the ext4 filesystem on `device`.
fn mount(device: &Path) -> Result<OwnedFd, StorageError> {
    let err = |e: Errno| StorageError::new(StorageStep::Mount, device, io::Error::from(e));
    let source = CString::new(device.as_os_str().as_bytes())
        .map_err(|_| err(Errno::EINVAL).detail("the device path holds a NUL byte"))?;
    let raw = sys::fsopen(c"ext4").map_err(|e| err(e).detail("fsopen(ext4)"))?;
    // SAFETY: fsopen returned a new descriptor that nothing else owns.
    let context = unsafe { OwnedFd::from_raw_fd(raw) };
    let fs = context.as_raw_fd();
    let configured = sys::fsconfig_string(fs, c"source", &source)
        // Inode tables are not zeroed in the background: the file is sparse, so
        // they read as zeros already, and zeroing would write to the host disk.
        .and_then(|()| sys::fsconfig_flag(fs, c"noinit_itable"))
        // No cache flushes: durability means nothing for a volume gone with its task.
        .and_then(|()| sys::fsconfig_flag(fs, c"nobarrier"))
        .and_then(|()| sys::fsconfig_create(fs));
    if let Err(e) = configured {
        let mut failure = err(e);
        failure.detail = Some(kernel_messages(&context).unwrap_or_else(|| "fsconfig".into()));
        return Err(failure);
    }
    let raw = sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
        .map_err(|e| err(e).detail("fsmount"))?;
    // SAFETY: fsmount returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// What the kernel logged on a filesystem context (`e ...`, `w ...` lines).
fn kernel_messages(context: &OwnedFd) -> Option<String> {
    let mut lines = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        match nix::unistd::read(context, &mut buf) {
            Ok(n) if n > 0 => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => break,
        }
    }
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// Checks at build time that the storage directory exists or can be made, is a
/// directory, and can hold the backing files. Returns what is wrong.
pub(crate) fn check_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_absolute() {
        return Err("it must be an absolute path".into());
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(format!(
                "it does not exist and cannot be made: {e} (disk-backed storage needs a \
                 privileged launcher; EphemeralStorage::in_memory_mib needs no directory)"
            ))
        }
        Err(e) => return Err(format!("it does not exist and cannot be made: {e}")),
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    // The same open a start makes, closed at once: the file never has a name.
    match open_tmpfile(dir) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
                .map_err(|e| format!("files cannot be made in it: {e}"))
        }
        Err(e) => Err(format!("files cannot be made in it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Prints what each step of making a 20 GiB volume costs, and of its tear-down:
    /// the unmount (the last close of the mount), then the loop device's last close,
    /// which unbinds it and frees the backing file. Median and worst of 20, as root:
    /// `cargo test --release --lib -- --ignored --nocapture timing_volume`.
    #[test]
    #[ignore = "prints timings; run by hand"]
    fn timing_volume() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("a directory on disk");
        let names = [
            "backing file",
            "loop device",
            "mkfs.ext4",
            "mount",
            "unmount",
            "unbind and free",
        ];
        let mut steps: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
        for _ in 0..20 {
            let mut t = Instant::now();
            let mut lap = |i: usize| {
                steps[i].push(t.elapsed());
                t = Instant::now();
            };
            let mkfs = find_mkfs().expect("mkfs.ext4");
            let file = backing_file(dir.path()).expect("file");
            file.set_len(20 << 30).expect("size");
            lap(0);
            let (path, device) = attach(&file).expect("loop");
            drop(file);
            lap(1);
            format(&mkfs, &path, (0, 0)).expect("mkfs");
            lap(2);
            let mount = mount(&path).expect("mount");
            lap(3);
            drop(mount);
            lap(4);
            drop(device);
            let name = path
                .file_name()
                .expect("loopN")
                .to_string_lossy()
                .into_owned();
            while Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists() {
                std::thread::sleep(Duration::from_micros(100));
            }
            lap(5);
        }
        for (name, mut v) in names.iter().zip(steps) {
            v.sort();
            eprintln!(
                "{name:<16} median {:?}, max {:?}",
                v[v.len() / 2],
                v[v.len() - 1]
            );
        }
    }
}
