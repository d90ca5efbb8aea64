//! Cloud Hypervisor, configured entirely on its command line.

use crate::seccomp::SeccompProfile;

use super::jail;
use super::plan::{
    disk_path, file_binds, kernel_cmdline, ordered_disks, run_path, Vmm, VmmPlan, JAIL_INITRD,
    JAIL_KERNEL,
};
use super::spec::{Accelerator, VmSpec};
use super::MicrovmError;

/// The name of the API socket in the jail's run directory.
pub const API_SOCKET: &str = "cloud-hypervisor.sock";

/// Cloud Hypervisor: `cloud-hypervisor --api-socket path=/vm/run/cloud-hypervisor.sock
/// --kernel ... --cmdline ... --cpus boot=N --memory size=NM ...`.
///
/// Disks are `--disk path=...,readonly=on|off,id=...` (the root disk first),
/// interfaces `--net tap=...,mac=...,id=...`, vsock `--vsock cid=N,socket=...`; the
/// serial console is the VMM's standard output (`--serial tty --console off`). The plan
/// expects the API socket, so the launch waits for it. Cloud Hypervisor needs KVM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudHypervisor {}

impl CloudHypervisor {
    /// `cloud-hypervisor` from the jail's `PATH`.
    pub fn new() -> Self {
        CloudHypervisor {}
    }
}

impl Vmm for CloudHypervisor {
    fn name(&self) -> &'static str {
        "cloud-hypervisor"
    }

    fn plan(&self, spec: &VmSpec) -> Result<VmmPlan, MicrovmError> {
        spec.validate()?;
        if spec.accelerator != Accelerator::Kvm {
            return Err(MicrovmError::Unsupported {
                vmm: "cloud-hypervisor",
                what: format!(
                    "the {} accelerator: Cloud Hypervisor runs on KVM only",
                    spec.accelerator
                ),
            });
        }
        let mut plan = VmmPlan::new(self.name(), "cloud-hypervisor");
        let api = run_path(API_SOCKET);
        plan.args([
            "--api-socket".to_string(),
            format!("path={}", api.display()),
            "--kernel".to_string(),
            JAIL_KERNEL.to_string(),
        ]);
        if spec.initrd.is_some() {
            plan.args(["--initramfs", JAIL_INITRD]);
        }
        plan.args([
            "--cmdline".to_string(),
            kernel_cmdline(spec, true, &[]),
            "--cpus".to_string(),
            format!("boot={}", spec.vcpus),
            "--memory".to_string(),
            format!("size={}M", spec.memory_mib),
        ]);
        for disk in ordered_disks(spec) {
            plan.args([
                "--disk".to_string(),
                format!(
                    "path={},readonly={},id={}",
                    disk_path(&disk.id).display(),
                    if disk.read_only { "on" } else { "off" },
                    disk.id
                ),
            ]);
        }
        for iface in &spec.interfaces {
            plan.args([
                "--net".to_string(),
                format!(
                    "tap={},mac={},id={}",
                    iface.tap,
                    iface.mac_string(),
                    iface.id
                ),
            ]);
            plan.device("/dev/net/tun");
        }
        if let Some(vsock) = &spec.vsock {
            let socket = run_path(&vsock.socket);
            plan.args([
                "--vsock".to_string(),
                format!("cid={},socket={}", vsock.guest_cid, socket.display()),
            ]);
            plan.sockets.push(socket);
        }
        plan.args([
            "--serial",
            if spec.serial_console { "tty" } else { "off" },
            "--console",
            "off",
        ]);
        plan.device("/dev/kvm");
        plan.sockets.insert(0, api);
        plan.binds = file_binds(spec);
        Ok(plan)
    }

    fn memory_overhead_mib(&self, _spec: &VmSpec) -> u64 {
        64
    }

    fn seccomp_profile(&self, _spec: &VmSpec) -> SeccompProfile {
        // Cloud Hypervisor installs its own per-thread filters on top.
        jail::vmm_seccomp_profile(&[])
    }
}
