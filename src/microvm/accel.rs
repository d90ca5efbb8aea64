//! Choosing the accelerator: KVM where the host has working hardware virtualization,
//! QEMU's TCG emulation otherwise, and why.

use std::fmt;
use std::path::Path;

use super::spec::Accelerator;

/// The kernel command-line options a Linux guest needs under TCG. Without them the
/// guest's early TSC and local-APIC timer calibration against emulated timers does
/// not finish, and the boot hangs.
pub const TCG_KERNEL_ARGS: [&str; 2] = ["tsc_early_khz=2600000", "lapic_timer_period=6250000"];

/// What the host shows about virtualization, gathered by [`HostVirt::probe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostVirt {
    /// `/dev/kvm` exists and is a character device.
    pub dev_kvm: bool,
    /// `KVM_GET_API_VERSION` on `/dev/kvm`: `Ok(12)` on every KVM since 2.6.22, or why
    /// it could not be asked.
    pub kvm_api: Option<Result<i32, String>>,
    /// `/sys/module/kvm_intel` exists (Intel VT-x).
    pub kvm_intel: bool,
    /// `/sys/module/kvm_amd` exists (AMD-V).
    pub kvm_amd: bool,
    /// `/sys/module/kvm_pvm` exists: KVM served by PVM, a paravirtualized nested
    /// hypervisor that runs only PVM-enabled guest kernels.
    pub kvm_pvm: bool,
}

impl HostVirt {
    /// Looks at this host: `/dev/kvm`, its API version, and which KVM vendor module
    /// the kernel has (`/sys/module/kvm_*`, which lists built-in modules too).
    pub fn probe() -> Self {
        use std::os::unix::fs::FileTypeExt;
        let dev_kvm = std::fs::metadata("/dev/kvm").is_ok_and(|m| m.file_type().is_char_device());
        let kvm_api = dev_kvm.then(kvm_api_version);
        let module = |name: &str| Path::new("/sys/module").join(name).exists();
        HostVirt {
            dev_kvm,
            kvm_api,
            kvm_intel: module("kvm_intel"),
            kvm_amd: module("kvm_amd"),
            kvm_pvm: module("kvm_pvm"),
        }
    }
}

/// `KVM_GET_API_VERSION`, `_IO(KVMIO, 0x00)`.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
/// The only KVM API version there has been since Linux 2.6.22.
pub const KVM_API_VERSION: i32 = 12;

fn kvm_api_version() -> Result<i32, String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int; the
    // descriptor is open for the duration of the call.
    let version = unsafe { libc::ioctl(file.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if version < 0 {
        return Err(format!(
            "KVM_GET_API_VERSION failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(version)
}

/// The accelerator chosen for this host, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceleratorChoice {
    /// The accelerator.
    pub accelerator: Accelerator,
    /// Why, in a sentence (for logs and the example's output).
    pub reason: String,
}

impl fmt::Display for AcceleratorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.accelerator, self.reason)
    }
}

impl AcceleratorChoice {
    /// Decides from what the host shows: KVM only with `kvm_intel` or `kvm_amd` behind
    /// a working `/dev/kvm`; TCG otherwise, with the reason.
    ///
    /// A PVM `/dev/kvm` answers the KVM API (it even creates VMs), so the API alone
    /// cannot tell it apart: the vendor module decides.
    pub fn decide(host: &HostVirt) -> Self {
        let tcg = |reason: String| AcceleratorChoice {
            accelerator: Accelerator::Tcg,
            reason: format!("{reason}; falling back to TCG emulation"),
        };
        if !host.dev_kvm {
            return tcg("no /dev/kvm on this host".into());
        }
        match &host.kvm_api {
            Some(Ok(KVM_API_VERSION)) | None => {}
            Some(Ok(other)) => {
                return tcg(format!(
                    "/dev/kvm reports API version {other}, not {KVM_API_VERSION}"
                ))
            }
            Some(Err(why)) => return tcg(why.clone()),
        }
        let vendor = match (host.kvm_intel, host.kvm_amd) {
            (true, _) => Some("kvm_intel (Intel VT-x)"),
            (_, true) => Some("kvm_amd (AMD-V)"),
            _ => None,
        };
        match vendor {
            Some(vendor) => AcceleratorChoice {
                accelerator: Accelerator::Kvm,
                reason: format!("/dev/kvm is served by {vendor}"),
            },
            None if host.kvm_pvm => tcg(
                "/dev/kvm is a nested PVM device (kvm_pvm), which cannot boot stock guest kernels"
                    .into(),
            ),
            None => tcg(
                "/dev/kvm is served by neither kvm_intel nor kvm_amd, so no hardware virtualization is known to back it"
                    .into(),
            ),
        }
    }
}

/// Chooses the accelerator for this host ([`HostVirt::probe`] then
/// [`AcceleratorChoice::decide`]).
pub fn detect_accelerator() -> AcceleratorChoice {
    AcceleratorChoice::decide(&HostVirt::probe())
}
