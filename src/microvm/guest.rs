//! A minimal guest: an initramfs holding a static busybox, the kernel modules it is
//! given, and an `/init` that loads them, runs one command, prints its output and exit
//! status between markers on the serial console, and powers off.
//!
//! The guest kernel and its modules live in one directory, [`guest_dir`]
//! (`$TASKSANDBOX_GUEST_DIR`, by default `/var/cache/tasksandbox/guest`), which
//! `scripts/fetch-guest-kernel.sh` fills: `vmlinuz` and `modules/*.ko`.
//!
//! ```no_run
//! use tasksandbox::microvm::guest::{guest_dir, modules_with_dependencies, parse_console, CommandInitramfs};
//! use tasksandbox::microvm::{MicroVm, Qemu, VmSpec};
//! use tasksandbox::TaskSize;
//!
//! let dir = guest_dir();
//! let modules = modules_with_dependencies(&dir.join("modules"), &["virtio_mmio", "virtio_blk"])?;
//! let image = CommandInitramfs::new("/bin/busybox", ["uname", "-r"]).modules(modules);
//! let spec = VmSpec::new("vm1", dir.join("vmlinuz"), TaskSize::custom(1024, 256)?);
//! // The initrd, and the boot marker its /init prints: the boot timeout then bounds the boot.
//! let spec = image.boot(spec, "/tmp/initrd.cpio".as_ref())?;
//! let exit = MicroVm::new(Qemu::new(), spec)?.run()?;
//! if let Some(result) = parse_console(&exit.console) {
//!     println!("{} (exit {})", result.output, result.exit_code);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use super::MicrovmError;

/// The line before the command's output, printed once the guest's userland runs (its
/// modules loaded): [`CommandInitramfs::boot`] makes it the spec's boot marker.
pub const BEGIN_MARKER: &str = "@@tasksandbox-guest-begin@@";

/// The variable that names the guest directory (kernel and modules).
pub const GUEST_DIR_ENV: &str = "TASKSANDBOX_GUEST_DIR";
/// The guest directory when [`GUEST_DIR_ENV`] is not set.
pub const DEFAULT_GUEST_DIR: &str = "/var/cache/tasksandbox/guest";

/// The guest directory: `$TASKSANDBOX_GUEST_DIR` if it is set to an absolute path,
/// else [`DEFAULT_GUEST_DIR`]. `scripts/fetch-guest-kernel.sh` fills it with `vmlinuz`
/// and `modules/<name>.ko`.
pub fn guest_dir() -> PathBuf {
    match std::env::var_os(GUEST_DIR_ENV) {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_GUEST_DIR),
    }
}

/// The modules `names` (files `<name>.ko` in `dir`) and every module they depend on,
/// in an order `insmod` can load them: dependencies first. Dependencies are read from
/// each module's `depends=` entry (its `.modinfo`); a module built into the kernel is
/// not a dependency, so a missing file is an error naming the module that needs it.
pub fn modules_with_dependencies(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, MicrovmError> {
    fn visit(
        dir: &Path,
        name: &str,
        needed_by: Option<&str>,
        stack: &mut Vec<String>,
        out: &mut Vec<(String, PathBuf)>,
    ) -> Result<(), MicrovmError> {
        let name = name.replace('-', "_");
        if out.iter().any(|(n, _)| *n == name) {
            return Ok(());
        }
        if stack.contains(&name) {
            return Err(MicrovmError::Guest {
                reason: format!(
                    "the modules in {} depend on each other in a cycle: {}",
                    dir.display(),
                    stack.join(" -> ")
                ),
            });
        }
        let path = dir.join(format!("{name}.ko"));
        let bytes = fs::read(&path).map_err(|e| MicrovmError::HostFile {
            path: path.clone(),
            reason: match needed_by {
                Some(by) => format!("(needed by {by}) cannot be read: {e}"),
                None => format!("cannot be read: {e}"),
            },
        })?;
        let depends = module_depends(&bytes).ok_or_else(|| MicrovmError::HostFile {
            path: path.clone(),
            reason: "is not a kernel module (no .modinfo `depends=` entry)".into(),
        })?;
        stack.push(name.clone());
        for dep in depends.split(',').filter(|d| !d.is_empty()) {
            visit(dir, dep, Some(&name), stack, out)?;
        }
        stack.pop();
        out.push((name, path));
        Ok(())
    }
    let mut out = Vec::new();
    for name in names {
        visit(dir, name, None, &mut Vec::new(), &mut out)?;
    }
    Ok(out.into_iter().map(|(_, path)| path).collect())
}

/// The value of a kernel module's `depends=` entry (empty when it needs nothing).
fn module_depends(ko: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\0depends=";
    let at = ko.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &ko[at..];
    let end = rest.iter().position(|b| *b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}
/// The start of the line after it: `@@tasksandbox-guest-exit@@ <code>`.
pub const EXIT_MARKER: &str = "@@tasksandbox-guest-exit@@";

/// A cpio archive in the `newc` format the kernel unpacks as an initramfs.
#[derive(Debug, Clone, Default)]
pub struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Cpio {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), MicrovmError> {
        let too_big = || MicrovmError::Guest {
            reason: format!("{name} is too large for a cpio newc archive"),
        };
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big())?;
        let ino = self.next_ino;
        self.next_ino += 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check: each 8 hex digits.
        let fields = [
            ino,
            mode,
            0,
            0,
            if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
            0,
            size,
            0,
            0,
            0,
            0,
            namesize,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// Adds a directory (`name` without a leading `/`).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<&mut Self, MicrovmError> {
        self.entry(name, S_IFDIR | (perm & 0o7777), &[])?;
        Ok(self)
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<&mut Self, MicrovmError> {
        self.entry(name, S_IFREG | (perm & 0o7777), data)?;
        Ok(self)
    }

    /// Adds a symbolic link `name` → `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<&mut Self, MicrovmError> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes())?;
        Ok(self)
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // The trailer is an entry with ino 0 named TRAILER!!!.
        self.next_ino = 0;
        let _ = self.entry("TRAILER!!!", 0, &[]);
        // The kernel reads the archive in 512-byte blocks.
        while self.out.len() % 512 != 0 {
            self.out.push(0);
        }
        self.out
    }
}

/// Quotes `arg` for a POSIX shell.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// An initramfs whose `/init` runs one command in the guest.
#[derive(Debug, Clone)]
pub struct CommandInitramfs {
    busybox: PathBuf,
    command: Vec<String>,
    modules: Vec<PathBuf>,
}

impl CommandInitramfs {
    /// Runs `command` (looked up in busybox's applets and `/bin`) with the static
    /// busybox at `busybox` as the guest's whole userland.
    pub fn new<I, S>(busybox: impl Into<PathBuf>, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandInitramfs {
            busybox: busybox.into(),
            command: command.into_iter().map(Into::into).collect(),
            modules: Vec::new(),
        }
    }

    /// Kernel modules (`.ko` files of the guest kernel) that `/init` loads, in this
    /// order, before it runs the command: see [`modules_with_dependencies`].
    #[must_use]
    pub fn modules<I, P>(mut self, modules: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.modules.extend(modules.into_iter().map(Into::into));
        self
    }

    fn module_names(&self) -> Result<Vec<String>, MicrovmError> {
        self.modules
            .iter()
            .map(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| n.ends_with(".ko"))
                    .filter(|n| super::spec::check_file_name("guest module", n).is_ok())
                    .map(str::to_string)
                    .ok_or_else(|| MicrovmError::HostFile {
                        path: path.clone(),
                        reason: "is not named like a kernel module (<name>.ko)".into(),
                    })
            })
            .collect()
    }

    /// The `/init` script.
    pub fn init_script(&self) -> String {
        let command: Vec<String> = self.command.iter().map(|a| shell_quote(a)).collect();
        let mut insmod = String::new();
        for name in self.module_names().unwrap_or_default() {
            insmod.push_str(&format!(
                "insmod /lib/modules/{name} || echo \"insmod {name} failed\"\n"
            ));
        }
        format!(
            "#!/bin/busybox sh\n\
             /bin/busybox --install -s /bin\n\
             export PATH=/bin\n\
             mount -t proc proc /proc\n\
             mount -t sysfs sysfs /sys\n\
             mount -t devtmpfs devtmpfs /dev 2>/dev/null\n\
             {insmod}\
             echo {BEGIN_MARKER}\n\
             {}\n\
             echo \"{EXIT_MARKER} $?\"\n\
             poweroff -f\n",
            command.join(" ")
        )
    }

    /// Builds the archive: `/bin/busybox`, `/init`, the modules in `/lib/modules`,
    /// and the directories they need.
    /// Fails if busybox cannot be read or is dynamically linked (the guest has no
    /// libraries; Debian's `busybox-static` has the right one).
    pub fn build(&self) -> Result<Vec<u8>, MicrovmError> {
        if self.command.is_empty() {
            return Err(MicrovmError::Guest {
                reason: "the guest command is empty".into(),
            });
        }
        let busybox = fs::read(&self.busybox).map_err(|e| MicrovmError::HostFile {
            path: self.busybox.clone(),
            reason: e.to_string(),
        })?;
        match elf_is_static(&busybox) {
            Some(true) => {}
            Some(false) => {
                return Err(MicrovmError::HostFile {
                    path: self.busybox.clone(),
                    reason: "is dynamically linked; the guest needs a static busybox \
                             (Debian: busybox-static)"
                        .into(),
                })
            }
            None => {
                return Err(MicrovmError::HostFile {
                    path: self.busybox.clone(),
                    reason: "is not an x86_64 ELF executable".into(),
                })
            }
        }
        let names = self.module_names()?;
        let mut cpio = Cpio::new();
        for dir in ["bin", "dev", "proc", "sys", "tmp"] {
            cpio.dir(dir, 0o755)?;
        }
        cpio.file("bin/busybox", 0o755, &busybox)?;
        if !self.modules.is_empty() {
            cpio.dir("lib", 0o755)?;
            cpio.dir("lib/modules", 0o755)?;
        }
        for (path, name) in self.modules.iter().zip(&names) {
            let ko = fs::read(path).map_err(|e| MicrovmError::HostFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            cpio.file(&format!("lib/modules/{name}"), 0o644, &ko)?;
        }
        cpio.symlink("bin/sh", "busybox")?;
        cpio.file("init", 0o755, self.init_script().as_bytes())?;
        Ok(cpio.finish())
    }

    /// Builds the archive and writes it to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), MicrovmError> {
        let cpio = self.build()?;
        fs::write(path, cpio).map_err(|e| MicrovmError::Io {
            what: format!("write {}", path.display()),
            source: e,
        })
    }

    /// Writes the archive to `path` and makes `spec` boot it: `path` becomes its
    /// initrd and [`BEGIN_MARKER`], which `/init` prints once the guest's userland
    /// runs, its boot marker, so the launch's `post_spawn` stage waits for it and the
    /// spec's boot timeout bounds the boot (a guest that hangs before `/init` fails the
    /// start with [`MicrovmError::BootTimeout`]).
    pub fn boot(&self, spec: super::VmSpec, path: &Path) -> Result<super::VmSpec, MicrovmError> {
        self.write_to(path)?;
        Ok(spec.initrd(path).boot_marker(BEGIN_MARKER))
    }
}

/// Whether a 64-bit little-endian x86_64 ELF has no `PT_INTERP` (is statically
/// linked); `None` if it is not such an ELF.
pub fn elf_is_static(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    const EM_X86_64: u16 = 62;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if elf.get(0..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    if u16_at(18)? != EM_X86_64 {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(at)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The command's output and exit status, read back from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResult {
    /// What the command printed (stdout and stderr, as the console shows them), with
    /// the terminal's `\r\n` turned back into `\n`.
    pub output: String,
    /// Its exit status.
    pub exit_code: i32,
}

/// Finds the markers of [`CommandInitramfs`]'s `/init` in a console log.
pub fn parse_console(console: &str) -> Option<GuestResult> {
    let console = console.replace("\r\n", "\n");
    let begin = console.find(&format!("{BEGIN_MARKER}\n"))? + BEGIN_MARKER.len() + 1;
    let rest = &console[begin..];
    let exit_at = rest.find(EXIT_MARKER)?;
    let output = rest[..exit_at].to_string();
    let code_line = rest[exit_at + EXIT_MARKER.len()..].lines().next()?;
    let exit_code = code_line.trim().parse().ok()?;
    Some(GuestResult { output, exit_code })
}
