//! QEMU's `microvm` machine: a minimal x86 board without PCI or ACPI, virtio over MMIO.

use std::path::Path;

use crate::seccomp::SeccompProfile;

use super::elf::normalize;
use super::jail;
use super::plan::{
    disk_path, file_binds, kernel_cmdline, ordered_disks, run_path, HostFile, Vmm, VmmPlan,
    JAIL_INITRD, JAIL_KERNEL,
};
use super::spec::{Accelerator, VmSpec};
use super::{MicrovmError, TCG_KERNEL_ARGS};

/// The name of QEMU's QMP socket in the jail's run directory: the launch waits for
/// it (within the boot timeout), and a runtime can drive the VM through it (the host
/// path is `ctx.jail_dir.host_path(...)` of `/vm/run/qmp.sock`).
pub const QMP_SOCKET: &str = "qmp.sock";

/// The size of TCG's translation cache, in MiB. QEMU's default (1 GiB on 64-bit hosts)
/// would dominate the jail's memory limit; 64 MiB holds a Linux guest's hot code.
pub const TCG_TB_SIZE_MIB: u64 = 64;

/// QEMU with `-M microvm`, on KVM or under TCG.
///
/// The plan runs `qemu-system-x86_64` with no default devices, no user config, no
/// display and no reboot (a guest reboot ends the VMM); the serial console is the
/// VMM's standard output; a QMP server listens on [`QMP_SOCKET`] in the run directory,
/// and the plan expects it, so the launch's boot timeout bounds QEMU's start. Disks
/// are `virtio-blk-device`s, interfaces
/// `virtio-net-device`s on a tap (`/dev/net/tun`), vsock a `vhost-vsock-device`
/// (`/dev/vhost-vsock`; QEMU exposes it through the host's `AF_VSOCK`, so the spec's
/// socket name is not used). Under [`Accelerator::Tcg`] it adds
/// [`TCG_KERNEL_ARGS`] to the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    program: String,
}

impl Default for Qemu {
    fn default() -> Self {
        Qemu::new()
    }
}

impl Qemu {
    /// `qemu-system-x86_64`, from the jail's `PATH` (the host's `/usr/bin`).
    pub fn new() -> Self {
        Qemu {
            program: "qemu-system-x86_64".into(),
        }
    }

    /// Another QEMU binary (a path inside the jail, or a name on its `PATH`).
    #[must_use]
    pub fn program(mut self, program: impl Into<String>) -> Self {
        self.program = program.into();
        self
    }
}

impl Vmm for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn plan(&self, spec: &VmSpec) -> Result<VmmPlan, MicrovmError> {
        spec.validate()?;
        let mut plan = VmmPlan::new(self.name(), self.program.clone());
        plan.args(["-M", "microvm"]);
        match spec.accelerator {
            Accelerator::Kvm => {
                plan.args(["-accel", "kvm", "-cpu", "host"]);
                plan.device("/dev/kvm");
            }
            Accelerator::Tcg => {
                plan.args([
                    "-accel".to_string(),
                    format!("tcg,tb-size={TCG_TB_SIZE_MIB}"),
                ]);
            }
        }
        plan.args([
            "-m".to_string(),
            spec.memory_mib.to_string(),
            "-smp".to_string(),
            spec.vcpus.to_string(),
        ]);
        plan.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        let qmp = run_path(QMP_SOCKET);
        plan.args([
            "-qmp".to_string(),
            format!("unix:{},server=on,wait=off", qmp.display()),
        ]);
        plan.sockets.push(qmp);
        if spec.serial_console {
            plan.args(["-serial", "stdio"]);
        }
        plan.args(["-kernel", JAIL_KERNEL]);
        if spec.initrd.is_some() {
            plan.args(["-initrd", JAIL_INITRD]);
        }
        let extra: &[&str] = match spec.accelerator {
            Accelerator::Tcg => &TCG_KERNEL_ARGS,
            Accelerator::Kvm => &[],
        };
        plan.args(["-append".to_string(), kernel_cmdline(spec, true, extra)]);
        for disk in ordered_disks(spec) {
            plan.args([
                "-drive".to_string(),
                format!(
                    "id={},file={},format=raw,if=none,readonly={}",
                    disk.id,
                    disk_path(&disk.id).display(),
                    if disk.read_only { "on" } else { "off" }
                ),
                "-device".to_string(),
                format!("virtio-blk-device,drive={}", disk.id),
            ]);
        }
        for iface in &spec.interfaces {
            plan.args([
                "-netdev".to_string(),
                format!(
                    "tap,id={},ifname={},script=no,downscript=no",
                    iface.id, iface.tap
                ),
                "-device".to_string(),
                format!(
                    "virtio-net-device,netdev={},mac={}",
                    iface.id,
                    iface.mac_string()
                ),
            ]);
            plan.device("/dev/net/tun");
        }
        if let Some(vsock) = &spec.vsock {
            plan.args([
                "-device".to_string(),
                format!("vhost-vsock-device,guest-cid={}", vsock.guest_cid),
            ]);
            plan.device("/dev/vhost-vsock");
        }
        plan.binds = file_binds(spec);
        Ok(plan)
    }

    fn memory_overhead_mib(&self, spec: &VmSpec) -> u64 {
        // QEMU's own heap, libraries and device state, plus the translation cache under
        // TCG.
        match spec.accelerator {
            Accelerator::Kvm => 128,
            Accelerator::Tcg => 128 + TCG_TB_SIZE_MIB,
        }
    }

    fn seccomp_profile(&self, _spec: &VmSpec) -> SeccompProfile {
        jail::vmm_seccomp_profile(&[])
    }

    /// What QEMU opens, seen by booting it: the `microvm` machine's firmware (qboot,
    /// `bios-microvm.bin`) and the option ROM that loads `-kernel`
    /// (`linuxboot_dma.bin`) from its data directory, and under TCG the `accel-tcg`
    /// plug-in where QEMU is built with modules (Debian's is), from its module
    /// directory. QEMU finds both relative to its binary (`<bindir>/../share/qemu`,
    /// `<bindir>/../lib/<multiarch>/qemu`).
    fn host_files(&self, spec: &VmSpec, program: &Path) -> Vec<HostFile> {
        let prefix = normalize(&program.join("../.."));
        let data = prefix.join("share/qemu");
        let mut files = vec![
            HostFile::required(data.join("bios-microvm.bin")),
            HostFile::required(data.join("linuxboot_dma.bin")),
        ];
        if spec.accelerator == Accelerator::Tcg {
            for dir in ["lib/x86_64-linux-gnu/qemu", "lib64/qemu", "lib/qemu"] {
                files.push(HostFile::optional(
                    prefix.join(dir).join("accel-tcg-x86_64.so"),
                ));
            }
        }
        files
    }
}
