//! Firecracker, started with `--no-api --config-file`: the whole VM in one JSON file.

use std::fmt::Write as _;

use crate::seccomp::SeccompProfile;

use super::jail;
use super::plan::{
    disk_path, file_binds, json_string, kernel_cmdline, ordered_disks, run_path, PlannedFile, Vmm,
    VmmPlan, JAIL_CONFIG_DIR, JAIL_INITRD, JAIL_KERNEL,
};
use super::spec::{Accelerator, VmSpec};
use super::MicrovmError;

/// The name of the configuration file in the jail's config directory.
pub const CONFIG_FILE: &str = "firecracker.json";
/// The longest kernel command line Firecracker accepts on x86_64, in bytes.
pub const MAX_BOOT_ARGS: usize = 2048;
/// The most vCPUs Firecracker runs.
pub const MAX_VCPUS: u32 = 32;

/// Firecracker without its API server: `firecracker --no-api --config-file
/// /vm/config/firecracker.json --id <vm>`.
///
/// The configuration holds `boot-source` (kernel, boot arguments, initrd), `drives`
/// (the root disk first, marked `is_root_device`; Firecracker adds `root=` itself),
/// `machine-config` (vCPUs, memory, SMT off), `network-interfaces`, `vsock` (its Unix
/// socket in the jail's run directory) and, with [`Firecracker::with_logs`], `logger`
/// and `metrics` files. Firecracker's rules are checked when planning: `vcpu_count` 1
/// or even and at most 32, `guest_cid` 3 or more, at most one root device, unique ids,
/// boot arguments of at most 2048 bytes, and something to boot from (an initrd, or
/// exactly one root disk). Firecracker needs KVM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firecracker {
    logs: bool,
}

impl Firecracker {
    /// Firecracker from the jail's `PATH`.
    pub fn new() -> Self {
        Firecracker::default()
    }

    /// Also writes Firecracker's log and metrics to `firecracker.log` and
    /// `firecracker.metrics` in the jail's run directory.
    #[must_use]
    pub fn with_logs(mut self) -> Self {
        self.logs = true;
        self
    }

    /// The JSON configuration for `spec` (keys in a fixed order).
    pub fn config(&self, spec: &VmSpec) -> Result<String, MicrovmError> {
        spec.validate()?;
        let unsupported = |what: String| MicrovmError::Unsupported {
            vmm: "firecracker",
            what,
        };
        if spec.accelerator != Accelerator::Kvm {
            return Err(unsupported(format!(
                "the {} accelerator: Firecracker runs on KVM only",
                spec.accelerator
            )));
        }
        if spec.vcpus > MAX_VCPUS || (spec.vcpus != 1 && spec.vcpus % 2 != 0) {
            return Err(unsupported(format!(
                "{} vCPUs: vcpu_count must be 1 or an even number up to {MAX_VCPUS}",
                spec.vcpus
            )));
        }
        if spec.initrd.is_none() && !spec.disks.iter().any(|d| d.root) {
            return Err(unsupported(
                "a VM with neither an initrd nor a root disk: Firecracker boots from \
                 `boot-source.initrd_path` or from the drive marked `is_root_device`, so give \
                 the spec an initrd or one disk made `.root()`"
                    .into(),
            ));
        }
        let boot_args = kernel_cmdline(spec, false, &["reboot=k", "pci=off"]);
        if boot_args.len() > MAX_BOOT_ARGS {
            return Err(unsupported(format!(
                "a kernel command line of {} bytes (at most {MAX_BOOT_ARGS})",
                boot_args.len()
            )));
        }

        let mut out = String::from("{\n");
        let s = |v: &str| {
            let mut q = String::new();
            json_string(&mut q, v);
            q
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "  \"boot-source\": {{\n    \"kernel_image_path\": {},\n    \"boot_args\": {}",
            s(JAIL_KERNEL),
            s(&boot_args)
        );
        if spec.initrd.is_some() {
            let _ = write!(out, ",\n    \"initrd_path\": {}", s(JAIL_INITRD));
        }
        out.push_str("\n  },\n  \"drives\": [");
        for (i, disk) in ordered_disks(spec).into_iter().enumerate() {
            let _ = write!(
                out,
                "{}\n    {{\n      \"drive_id\": {},\n      \"path_on_host\": {},\n      \
                 \"is_root_device\": {},\n      \"is_read_only\": {}\n    }}",
                if i == 0 { "" } else { "," },
                s(&disk.id),
                s(&disk_path(&disk.id).to_string_lossy()),
                disk.root,
                disk.read_only
            );
        }
        if !spec.disks.is_empty() {
            out.push_str("\n  ");
        }
        let _ = write!(
            out,
            "],\n  \"machine-config\": {{\n    \"vcpu_count\": {},\n    \"mem_size_mib\": {},\n    \
             \"smt\": false\n  }},\n  \"network-interfaces\": [",
            spec.vcpus, spec.memory_mib
        );
        for (i, iface) in spec.interfaces.iter().enumerate() {
            let _ = write!(
                out,
                "{}\n    {{\n      \"iface_id\": {},\n      \"host_dev_name\": {},\n      \
                 \"guest_mac\": {}\n    }}",
                if i == 0 { "" } else { "," },
                s(&iface.id),
                s(&iface.tap),
                s(&iface.mac_string())
            );
        }
        if !spec.interfaces.is_empty() {
            out.push_str("\n  ");
        }
        out.push(']');
        if let Some(vsock) = &spec.vsock {
            let _ = write!(
                out,
                ",\n  \"vsock\": {{\n    \"guest_cid\": {},\n    \"uds_path\": {}\n  }}",
                vsock.guest_cid,
                s(&run_path(&vsock.socket).to_string_lossy())
            );
        }
        if self.logs {
            let _ = write!(
                out,
                ",\n  \"logger\": {{\n    \"log_path\": {},\n    \"level\": \"Info\"\n  }},\n  \
                 \"metrics\": {{\n    \"metrics_path\": {}\n  }}",
                s(&run_path("firecracker.log").to_string_lossy()),
                s(&run_path("firecracker.metrics").to_string_lossy())
            );
        }
        out.push_str("\n}\n");
        Ok(out)
    }
}

impl Vmm for Firecracker {
    fn name(&self) -> &'static str {
        "firecracker"
    }

    fn plan(&self, spec: &VmSpec) -> Result<VmmPlan, MicrovmError> {
        let config = self.config(spec)?;
        let mut plan = VmmPlan::new(self.name(), "firecracker");
        plan.args([
            "--no-api".to_string(),
            "--config-file".to_string(),
            format!("{JAIL_CONFIG_DIR}/{CONFIG_FILE}"),
            "--id".to_string(),
            spec.id.clone(),
        ]);
        plan.files.push(PlannedFile {
            name: CONFIG_FILE.into(),
            contents: config.into_bytes(),
            writable: false,
        });
        if self.logs {
            for name in ["firecracker.log", "firecracker.metrics"] {
                plan.files.push(PlannedFile {
                    name: name.into(),
                    contents: Vec::new(),
                    writable: true,
                });
            }
        }
        plan.device("/dev/kvm");
        if !spec.interfaces.is_empty() {
            plan.device("/dev/net/tun");
        }
        if let Some(vsock) = &spec.vsock {
            plan.sockets.push(run_path(&vsock.socket));
        }
        plan.binds = file_binds(spec);
        Ok(plan)
    }

    fn memory_overhead_mib(&self, _spec: &VmSpec) -> u64 {
        // Firecracker documents an overhead under 5 MiB; leave room for its threads.
        32
    }

    fn seccomp_profile(&self, _spec: &VmSpec) -> SeccompProfile {
        // Firecracker installs its own, narrower, per-thread filters on top.
        jail::vmm_seccomp_profile(&[])
    }
}
