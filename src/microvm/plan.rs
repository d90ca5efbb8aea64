//! What a VMM backend returns: the pure plan of one launch, and the [`Vmm`] trait.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::seccomp::SeccompProfile;

use super::spec::VmSpec;
use super::MicrovmError;

/// The directory inside the jail that holds everything of the VM.
pub const JAIL_VM_DIR: &str = "/vm";
/// The kernel, inside the jail.
pub const JAIL_KERNEL: &str = "/vm/kernel";
/// The initrd, inside the jail.
pub const JAIL_INITRD: &str = "/vm/initrd";
/// The directory of the disks inside the jail (`/vm/disks/<id>`).
pub const JAIL_DISK_DIR: &str = "/vm/disks";
/// The read-only directory of the plan's files inside the jail.
pub const JAIL_CONFIG_DIR: &str = "/vm/config";
/// The directory the VMM may write inside the jail: sockets, logs.
pub const JAIL_RUN_DIR: &str = "/vm/run";

/// A file the launch writes before the VMM starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// The file's name, in [`JAIL_CONFIG_DIR`] or, when `writable`, [`JAIL_RUN_DIR`].
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
    /// Whether the VMM writes to it (a log): it then lives in the run directory and
    /// belongs to the jail's uid.
    pub writable: bool,
}

impl PlannedFile {
    /// The file's path inside the jail.
    pub fn jail_path(&self) -> PathBuf {
        let dir = if self.writable {
            JAIL_RUN_DIR
        } else {
            JAIL_CONFIG_DIR
        };
        Path::new(dir).join(&self.name)
    }
}

/// A host file the jail binds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailBind {
    /// The host path.
    pub host: PathBuf,
    /// The path inside the jail.
    pub jail: PathBuf,
    /// Whether the VMM may only read it.
    pub read_only: bool,
}

/// A host file the VMM reads besides the VM's own: firmware, a plug-in module. The
/// jail binds it read-only at the same path (a plug-in, an ELF shared object, with the
/// libraries it needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// The path, on the host and inside the jail.
    pub path: PathBuf,
    /// Whether the launch fails without it; an optional file is bound only where the
    /// host has it (a plug-in some builds of the VMM have built in).
    pub required: bool,
}

impl HostFile {
    /// A file the VMM cannot run without.
    pub fn required(path: impl Into<PathBuf>) -> Self {
        HostFile {
            path: path.into(),
            required: true,
        }
    }

    /// A file bound only where the host has it.
    pub fn optional(path: impl Into<PathBuf>) -> Self {
        HostFile {
            path: path.into(),
            required: false,
        }
    }
}

/// What to run for one VM: the VMM's command line and environment, the files to write,
/// the host files to bind into the jail, the device nodes it opens and the sockets it
/// will create. Paths in the command line are paths inside the jail (under
/// [`JAIL_VM_DIR`]), so a plan does not depend on where the host keeps things.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VmmPlan {
    /// The backend's name.
    pub vmm: &'static str,
    /// The program, looked up in the jail's `PATH` when it has no `/`.
    pub program: String,
    /// Its arguments (without the program).
    pub args: Vec<String>,
    /// Its environment (the jail adds `PATH` and `HOSTNAME`).
    pub env: Vec<(String, String)>,
    /// Files written before the VMM starts.
    pub files: Vec<PlannedFile>,
    /// Host files bound into the jail: kernel, initrd, disks.
    pub binds: Vec<JailBind>,
    /// Device nodes the VMM opens (`/dev/kvm`, `/dev/net/tun`, `/dev/vhost-vsock`),
    /// bound into the jail's `/dev`.
    pub devices: Vec<PathBuf>,
    /// Sockets the VMM creates, inside the jail (under [`JAIL_RUN_DIR`]).
    pub sockets: Vec<PathBuf>,
}

impl VmmPlan {
    /// An empty plan for `vmm` running `program`.
    pub fn new(vmm: &'static str, program: impl Into<String>) -> Self {
        VmmPlan {
            vmm,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            files: Vec::new(),
            binds: Vec::new(),
            devices: Vec::new(),
            sockets: Vec::new(),
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds a device node, once.
    pub fn device(&mut self, path: &str) -> &mut Self {
        let path = PathBuf::from(path);
        if !self.devices.contains(&path) {
            self.devices.push(path);
        }
        self
    }

    /// The whole command line, program first.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// A stable text form of the plan, one item per line (what the golden tests
    /// compare).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "vmm: {}", self.vmm);
        let _ = writeln!(out, "program: {}", self.program);
        for arg in &self.args {
            let _ = writeln!(out, "arg: {arg}");
        }
        for (key, value) in &self.env {
            let _ = writeln!(out, "env: {key}={value}");
        }
        for bind in &self.binds {
            let _ = writeln!(
                out,
                "bind: {} -> {} ({})",
                bind.host.display(),
                bind.jail.display(),
                if bind.read_only { "ro" } else { "rw" }
            );
        }
        for device in &self.devices {
            let _ = writeln!(out, "device: {}", device.display());
        }
        for socket in &self.sockets {
            let _ = writeln!(out, "socket: {}", socket.display());
        }
        for file in &self.files {
            let _ = writeln!(
                out,
                "file: {} ({})",
                file.jail_path().display(),
                if file.writable { "rw" } else { "ro" }
            );
            for line in String::from_utf8_lossy(&file.contents).lines() {
                let _ = writeln!(out, "| {line}");
            }
        }
        out
    }
}

impl fmt::Display for VmmPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A virtual machine monitor the crate can plan a launch for.
///
/// [`plan`](Vmm::plan) is pure: it reads no file and starts nothing, so its output can
/// be golden-tested and inspected. The launch ([`MicroVm`](super::MicroVm)) then
/// writes the plan's files, binds its paths and devices into the jail, and runs the
/// command there.
pub trait Vmm: fmt::Debug + Send + Sync {
    /// The backend's name (`qemu`, `firecracker`, `cloud-hypervisor`).
    fn name(&self) -> &'static str;

    /// What to run for `spec`. Fails on what this VMM cannot do with the spec.
    fn plan(&self, spec: &VmSpec) -> Result<VmmPlan, MicrovmError>;

    /// Memory the VMM process needs on top of the guest's, in MiB: the jail's memory
    /// limit is the guest memory plus this.
    fn memory_overhead_mib(&self, spec: &VmSpec) -> u64;

    /// The most threads the VMM may hold at once (the jail's pids limit).
    fn pids_limit(&self, spec: &VmSpec) -> u64 {
        64 + u64::from(spec.vcpus)
    }

    /// The seccomp profile the jail installs before exec'ing the VMM.
    fn seccomp_profile(&self, spec: &VmSpec) -> SeccompProfile;

    /// Host files the VMM reads besides the VM's (firmware, plug-in modules), given
    /// where its binary is on the host (`program`, absolute): the jail's root holds
    /// only these, the binary and its shared libraries, and the VM's directory and
    /// devices. None by default (a static VMM such as Firecracker).
    fn host_files(&self, spec: &VmSpec, program: &Path) -> Vec<HostFile> {
        let _ = (spec, program);
        Vec::new()
    }
}

/// The kernel, initrd and disks, as binds into the jail, in the order of the spec
/// (the root disk first).
pub(crate) fn file_binds(spec: &VmSpec) -> Vec<JailBind> {
    let mut binds = vec![JailBind {
        host: spec.kernel.clone(),
        jail: PathBuf::from(JAIL_KERNEL),
        read_only: true,
    }];
    if let Some(initrd) = &spec.initrd {
        binds.push(JailBind {
            host: initrd.clone(),
            jail: PathBuf::from(JAIL_INITRD),
            read_only: true,
        });
    }
    for disk in ordered_disks(spec) {
        binds.push(JailBind {
            host: disk.path.clone(),
            jail: disk_path(&disk.id),
            read_only: disk.read_only,
        });
    }
    binds
}

/// The disks with the root disk first (it becomes `/dev/vda`).
pub(crate) fn ordered_disks(spec: &VmSpec) -> Vec<&super::Disk> {
    let mut disks: Vec<&super::Disk> = spec.disks.iter().filter(|d| d.root).collect();
    disks.extend(spec.disks.iter().filter(|d| !d.root));
    disks
}

/// A disk's path inside the jail.
pub(crate) fn disk_path(id: &str) -> PathBuf {
    Path::new(JAIL_DISK_DIR).join(id)
}

/// A run-directory file's path inside the jail.
pub(crate) fn run_path(name: &str) -> PathBuf {
    Path::new(JAIL_RUN_DIR).join(name)
}

/// The kernel command line: the console, the root device, the caller's arguments,
/// then the backend's `extra`.
pub(crate) fn kernel_cmdline(spec: &VmSpec, root: bool, extra: &[&str]) -> String {
    let mut args: Vec<String> = Vec::new();
    if spec.serial_console {
        args.push("console=ttyS0".into());
    }
    if root {
        if let Some(disk) = ordered_disks(spec).first().filter(|d| d.root) {
            args.push("root=/dev/vda".into());
            args.push(if disk.read_only { "ro" } else { "rw" }.into());
        }
    }
    args.extend(spec.kernel_args.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.join(" ")
}

/// Writes `s` as a JSON string literal (with quotes).
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
