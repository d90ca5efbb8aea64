//! What a microVM is: [`VmSpec`], independent of the VMM that will run it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::size::TaskSize;

use super::MicrovmError;

/// The largest number of vCPUs a spec may ask for.
pub const MAX_VCPUS: u32 = 32;

/// The smallest guest memory a spec may ask for, in MiB.
pub const MIN_GUEST_MEMORY_MIB: u64 = 16;

/// How the guest's CPUs are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accelerator {
    /// Hardware virtualization through `/dev/kvm` (Intel VT-x or AMD-V).
    Kvm,
    /// QEMU's TCG software emulation: no device, slower, works everywhere. Only QEMU
    /// offers it; it needs the `tsc_early_khz` and `lapic_timer_period` kernel options
    /// ([`TCG_KERNEL_ARGS`](super::TCG_KERNEL_ARGS)), which the QEMU backend adds.
    Tcg,
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        })
    }
}

/// A virtio block device of the guest, backed by a host file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    pub(crate) read_only: bool,
    pub(crate) root: bool,
}

impl Disk {
    /// A read-only disk named `id` (letters, digits, `_`; at most 64) backed by the
    /// host file `path`.
    pub fn new(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Disk {
            id: id.into(),
            path: path.into(),
            read_only: true,
            root: false,
        }
    }

    /// Makes the disk writable by the guest (and so by the jailed VMM: the backing
    /// file must be writable by the jail's host uid).
    #[must_use]
    pub fn writable(mut self) -> Self {
        self.read_only = false;
        self
    }

    /// Marks the disk as the guest's root device (`root=/dev/vda`, first on the bus).
    /// A spec has at most one.
    #[must_use]
    pub fn root(mut self) -> Self {
        self.root = true;
        self
    }

    /// The disk's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The backing file on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the guest may only read it.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether it is the root device.
    pub fn is_root(&self) -> bool {
        self.root
    }
}

/// A virtio network interface of the guest, backed by a tap device in the VM's network
/// namespace, which the launch creates (see [`VmNetns`](super::VmNetns)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInterface {
    pub(crate) id: String,
    pub(crate) tap: String,
    pub(crate) mac: [u8; 6],
}

impl NetInterface {
    /// An interface named `id`, on the tap device `tap` (created by the launch in the
    /// VM's network namespace), with the guest MAC `mac`.
    pub fn new(id: impl Into<String>, tap: impl Into<String>, mac: [u8; 6]) -> Self {
        NetInterface {
            id: id.into(),
            tap: tap.into(),
            mac,
        }
    }

    /// The interface's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tap device's name.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// The guest MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A virtio-vsock device: the guest's context id and, for VMMs that proxy vsock over
/// a Unix socket (Firecracker, Cloud Hypervisor), the socket's name in the jail's run
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vsock {
    pub(crate) guest_cid: u32,
    pub(crate) socket: String,
}

impl Vsock {
    /// A vsock device with guest context id `guest_cid` (3 or more: 0–2 are reserved)
    /// and the Unix socket `socket` (a file name) in the jail's run directory.
    pub fn new(guest_cid: u32, socket: impl Into<String>) -> Self {
        Vsock {
            guest_cid,
            socket: socket.into(),
        }
    }

    /// The guest's context id.
    pub fn guest_cid(&self) -> u32 {
        self.guest_cid
    }

    /// The socket's file name.
    pub fn socket(&self) -> &str {
        &self.socket
    }
}

/// One microVM: kernel, initrd, command line, size, devices, and how long it may take
/// to boot.
///
/// Sizes come from the task's [`TaskSize`]: one vCPU per 1024 CPU units (rounded up,
/// at least one), and the task's memory as guest memory. The jail around the VMM is
/// sized from these plus the VMM's own overhead.
///
/// ```
/// use std::time::Duration;
/// use tasksandbox::microvm::{Disk, VmSpec};
/// use tasksandbox::TaskSize;
///
/// let spec = VmSpec::new("web-1", "/srv/vm/vmlinuz", TaskSize::fargate(2048, 4096)?)
///     .initrd("/srv/vm/initrd.cpio")
///     .kernel_arg("quiet")
///     .disk(Disk::new("data", "/srv/vm/data.img"))
///     .boot_timeout(Duration::from_secs(5));
/// assert_eq!(spec.vcpu_count(), 2);
/// assert_eq!(spec.memory_mib(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub(crate) id: String,
    pub(crate) kernel: PathBuf,
    pub(crate) initrd: Option<PathBuf>,
    pub(crate) kernel_args: Vec<String>,
    pub(crate) vcpus: u32,
    pub(crate) memory_mib: u64,
    pub(crate) cpu_units: Option<u32>,
    pub(crate) disks: Vec<Disk>,
    pub(crate) interfaces: Vec<NetInterface>,
    pub(crate) vsock: Option<Vsock>,
    pub(crate) serial_console: bool,
    pub(crate) boot_timeout: Duration,
    pub(crate) boot_marker: Option<String>,
    pub(crate) accelerator: Accelerator,
}

/// The boot timeout of a spec that sets none.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30);

impl VmSpec {
    /// A VM named `id` (letters, digits, `-`; 1 to 60 characters) booting the host
    /// file `kernel`, sized from the task's `size`, with a serial console, on KVM.
    pub fn new(id: impl Into<String>, kernel: impl Into<PathBuf>, size: TaskSize) -> Self {
        let vcpus = size
            .cpu_units()
            .map_or(1, |units| units.div_ceil(1024).max(1));
        VmSpec {
            id: id.into(),
            kernel: kernel.into(),
            initrd: None,
            kernel_args: Vec::new(),
            vcpus,
            memory_mib: size.memory_mib(),
            cpu_units: size.cpu_units(),
            disks: Vec::new(),
            interfaces: Vec::new(),
            vsock: None,
            serial_console: true,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            boot_marker: None,
            accelerator: Accelerator::Kvm,
        }
    }

    /// The initial ramdisk (a cpio archive, compressed or not).
    #[must_use]
    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }

    /// Appends one kernel command-line argument (`quiet`, `init=/sbin/init`). The
    /// backend adds its own (`console=ttyS0`, `root=`, the TCG timer options).
    #[must_use]
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// Overrides the vCPU count derived from the task size.
    #[must_use]
    pub fn vcpus(mut self, vcpus: u32) -> Self {
        self.vcpus = vcpus;
        self
    }

    /// Overrides the guest memory derived from the task size, in MiB.
    #[must_use]
    pub fn memory(mut self, mib: u64) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Adds a disk.
    #[must_use]
    pub fn disk(mut self, disk: Disk) -> Self {
        self.disks.push(disk);
        self
    }

    /// Adds a network interface.
    #[must_use]
    pub fn interface(mut self, interface: NetInterface) -> Self {
        self.interfaces.push(interface);
        self
    }

    /// Gives the guest a vsock device.
    #[must_use]
    pub fn vsock(mut self, vsock: Vsock) -> Self {
        self.vsock = Some(vsock);
        self
    }

    /// Whether the guest gets a serial console on `ttyS0`, read back through the
    /// VMM's standard output (on by default).
    #[must_use]
    pub fn serial_console(mut self, on: bool) -> Self {
        self.serial_console = on;
        self
    }

    /// How long the VM may take from spawn to booted: the sockets of the plan exist
    /// and, if set, the [boot marker](Self::boot_marker) appeared on the serial
    /// console (30 s by default). Past it the start fails with
    /// [`MicrovmError::BootTimeout`] and the VMM is killed. It bounds only what the
    /// launch can see: a spec without a boot marker, on a backend without sockets,
    /// is not bounded by it ([`CommandInitramfs::boot`](super::guest::CommandInitramfs::boot)
    /// sets the marker of the crate's own initramfs).
    #[must_use]
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// A line the guest prints on its serial console once it has booted; the launch's
    /// `post_spawn` stage waits for it.
    #[must_use]
    pub fn boot_marker(mut self, marker: impl Into<String>) -> Self {
        self.boot_marker = Some(marker.into());
        self
    }

    /// The accelerator ([`Accelerator::Kvm`] by default; see
    /// [`detect_accelerator`](super::detect_accelerator) to choose from the host).
    #[must_use]
    pub fn accelerator(mut self, accelerator: Accelerator) -> Self {
        self.accelerator = accelerator;
        self
    }

    /// The VM's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kernel on the host.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The initrd on the host, if any.
    pub fn initrd_path(&self) -> Option<&Path> {
        self.initrd.as_deref()
    }

    /// The caller's kernel arguments.
    pub fn kernel_args(&self) -> &[String] {
        &self.kernel_args
    }

    /// The number of vCPUs.
    pub fn vcpu_count(&self) -> u32 {
        self.vcpus
    }

    /// Guest memory in MiB.
    pub fn memory_mib(&self) -> u64 {
        self.memory_mib
    }

    /// The task's CPU units, which become the jail's CPU quota (`None`: no quota).
    pub fn cpu_units(&self) -> Option<u32> {
        self.cpu_units
    }

    /// The disks.
    pub fn disks(&self) -> &[Disk] {
        &self.disks
    }

    /// The network interfaces.
    pub fn interfaces(&self) -> &[NetInterface] {
        &self.interfaces
    }

    /// The vsock device.
    pub fn vsock_device(&self) -> Option<&Vsock> {
        self.vsock.as_ref()
    }

    /// Whether the guest has a serial console.
    pub fn has_serial_console(&self) -> bool {
        self.serial_console
    }

    /// The boot timeout.
    pub fn boot_timeout_duration(&self) -> Duration {
        self.boot_timeout
    }

    /// The boot marker, if any.
    pub fn boot_marker_line(&self) -> Option<&str> {
        self.boot_marker.as_deref()
    }

    /// The accelerator.
    pub fn accelerator_kind(&self) -> Accelerator {
        self.accelerator
    }

    /// Checks what every backend needs; backends check their own limits on top.
    /// Touches no file: whether the files exist is checked by the launch's
    /// `validate` stage.
    pub fn validate(&self) -> Result<(), MicrovmError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(MicrovmError::Spec {
                field,
                value,
                reason,
            })
        };
        if self.id.is_empty()
            || self.id.len() > 60
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || self.id.starts_with('-')
            || self.id.ends_with('-')
        {
            return bad(
                "id",
                self.id.clone(),
                "1 to 60 letters, digits and inner `-`",
            );
        }
        check_host_path("kernel", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            check_host_path("initrd", initrd)?;
        }
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return bad("vcpus", self.vcpus.to_string(), "1 to 32 vCPUs");
        }
        if self.memory_mib < MIN_GUEST_MEMORY_MIB {
            return bad(
                "memory",
                format!("{} MiB", self.memory_mib),
                "a guest needs at least 16 MiB",
            );
        }
        for arg in &self.kernel_args {
            if arg.is_empty() || arg.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
                return bad(
                    "kernel_arg",
                    arg.clone(),
                    "one non-empty argument without whitespace",
                );
            }
        }
        let mut ids: Vec<&str> = Vec::new();
        let mut roots = 0;
        for disk in &self.disks {
            check_device_id("disk id", &disk.id)?;
            if ids.contains(&disk.id.as_str()) {
                return bad("disk id", disk.id.clone(), "disk ids must be unique");
            }
            ids.push(&disk.id);
            check_host_path("disk path", &disk.path)?;
            roots += usize::from(disk.root);
        }
        if roots > 1 {
            return bad(
                "disk",
                format!("{roots} root disks"),
                "at most one disk can be the root device",
            );
        }
        let mut ifaces: Vec<&str> = Vec::new();
        for iface in &self.interfaces {
            check_device_id("interface id", &iface.id)?;
            if ifaces.contains(&iface.id.as_str()) {
                return bad(
                    "interface id",
                    iface.id.clone(),
                    "interface ids must be unique",
                );
            }
            ifaces.push(&iface.id);
            if iface.tap.is_empty()
                || iface.tap.len() > 15
                || !iface
                    .tap
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad(
                    "tap",
                    iface.tap.clone(),
                    "a Linux interface name: 1 to 15 letters, digits, `-`, `_`",
                );
            }
            if iface.mac[0] & 1 != 0 {
                return bad(
                    "mac",
                    iface.mac_string(),
                    "a guest MAC must be unicast (lowest bit of the first byte clear)",
                );
            }
        }
        if let Some(vsock) = &self.vsock {
            if vsock.guest_cid < 3 {
                return bad(
                    "vsock guest_cid",
                    vsock.guest_cid.to_string(),
                    "context ids 0, 1 and 2 are reserved; use 3 or more",
                );
            }
            check_file_name("vsock socket", &vsock.socket)?;
        }
        if let Some(marker) = &self.boot_marker {
            if marker.is_empty() || marker.contains('\n') {
                return bad("boot_marker", marker.clone(), "one non-empty line");
            }
        }
        if self.boot_timeout.is_zero() {
            return bad("boot_timeout", "0 s".into(), "must be more than zero");
        }
        Ok(())
    }
}

fn check_host_path(field: &'static str, path: &Path) -> Result<(), MicrovmError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if !path.is_absolute() || bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
        return Err(MicrovmError::Spec {
            field,
            value: path.display().to_string(),
            reason: "an absolute UTF-8 host path",
        });
    }
    Ok(())
}

fn check_device_id(field: &'static str, id: &str) -> Result<(), MicrovmError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(MicrovmError::Spec {
            field,
            value: id.to_string(),
            reason: "1 to 64 letters, digits and `_`",
        });
    }
    Ok(())
}

pub(crate) fn check_file_name(field: &'static str, name: &str) -> Result<(), MicrovmError> {
    if name.is_empty()
        || name.len() > 64
        || name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(MicrovmError::Spec {
            field,
            value: name.to_string(),
            reason: "a file name of 1 to 64 letters, digits, `-`, `_`, `.`",
        });
    }
    Ok(())
}
