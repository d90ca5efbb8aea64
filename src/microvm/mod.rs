//! MicroVMs: one VM per task, the VMM itself jailed.
//!
//! Fargate runs each task in its own microVM, and its VMM runs without root, under
//! seccomp and cgroups (Firecracker's jailer). This module gives a runtime the same:
//!
//! 1. **A pure plan.** A [`VmSpec`] (kernel, initrd, command line, vCPUs and memory
//!    from the task's [`TaskSize`](crate::TaskSize), disks, network interfaces,
//!    vsock, serial console, boot timeout) and a [`Vmm`] backend ([`Qemu`]'s
//!    `microvm` machine, [`Firecracker`] with `--no-api --config-file`,
//!    [`CloudHypervisor`]) give a [`VmmPlan`]: argv, environment, files to write,
//!    host files to bind, device nodes, sockets to expect. Planning touches nothing.
//! 2. **Named, ordered launch hooks** ([`Hooks`], [`default_hooks`]): `validate` →
//!    `prepare` → `pre_spawn` → `spawn` → `post_spawn` → `wait` → `on_exit` →
//!    `cleanup`, each a list of named hooks a runtime can insert into, replace or
//!    remove from.
//! 3. **The VMM runs jailed** ([`Jail`]) by the crate's own launcher: a
//!    [`TaskSandbox`](crate::TaskSandbox) whose one container runs the VMM in a
//!    read-only root holding only the VMM binary, its ELF interpreter and shared
//!    libraries and the backend's firmware ([`JailRoot`]), the VM's files (nosuid,
//!    nodev, noexec) and private nodes of the plan's devices ([`JailDevice`]); as a
//!    non-root uid (host uid 101000 for a root launcher); with no capabilities,
//!    `no_new_privs`, a VMM seccomp allowlist ([`vmm_seccomp_profile`]); new pid,
//!    mount, IPC, UTS and cgroup namespaces, and a new network namespace or, for a
//!    spec with interfaces, the VM's own with its taps ([`VmNetns`]); and a cgroup
//!    sized for guest memory plus the VMM's overhead. The spec's boot timeout bounds
//!    the boot: the plan's sockets and the spec's boot marker.
//! 4. **Accelerator choice** ([`detect_accelerator`]): KVM where `/dev/kvm` is
//!    backed by `kvm_intel` or `kvm_amd`; QEMU's TCG otherwise, with the reason (no
//!    `/dev/kvm`, or a nested PVM `/dev/kvm` that cannot boot stock kernels) and the
//!    kernel options TCG needs ([`TCG_KERNEL_ARGS`]).
//!
//! [`guest`] builds a minimal busybox initramfs that runs one command and reports its
//! output and exit status on the serial console; `examples/microvm.rs` boots it.

mod accel;
mod cloud_hypervisor;
mod console;
mod elf;
mod firecracker;
pub mod guest;
mod hooks;
mod jail;
mod launch;
mod net;
mod plan;
mod qemu;
mod root;
mod spec;
mod sys;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use accel::{
    detect_accelerator, AcceleratorChoice, HostVirt, KVM_API_VERSION, TCG_KERNEL_ARGS,
};
pub use cloud_hypervisor::{CloudHypervisor, API_SOCKET as CLOUD_HYPERVISOR_API_SOCKET};
pub use console::{ConsoleLog, MAX_LOG_BYTES};
pub use firecracker::{
    Firecracker, CONFIG_FILE as FIRECRACKER_CONFIG_FILE, MAX_BOOT_ARGS as FIRECRACKER_MAX_BOOT_ARGS,
};
pub use hooks::{Hook, HookFn, Hooks, Stage};
pub use jail::{
    accessible, sweep_stale_jail_dirs, vmm_seccomp_profile, Jail, JailDevice, JailDir,
    DEFAULT_ROOT_BASE_DIR, JAIL_USER, VMM_PID_IN_JAIL, VMM_SYSCALLS,
};
pub use launch::{default_hooks, LaunchContext, MicroVm, RunningVm, VmExit};
pub use net::VmNetns;
pub use plan::{
    HostFile, JailBind, PlannedFile, Vmm, VmmPlan, JAIL_CONFIG_DIR, JAIL_DISK_DIR, JAIL_INITRD,
    JAIL_KERNEL, JAIL_RUN_DIR, JAIL_VM_DIR,
};
pub use qemu::{Qemu, QMP_SOCKET as QEMU_QMP_SOCKET, TCG_TB_SIZE_MIB};
pub use root::JailRoot;
pub use spec::{
    Accelerator, Disk, NetInterface, VmSpec, Vsock, DEFAULT_BOOT_TIMEOUT, MAX_VCPUS,
    MIN_GUEST_MEMORY_MIB,
};

use crate::process::ExitStatus;

/// Why a microVM could not be planned, started or waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MicrovmError {
    /// A field of the [`VmSpec`] is invalid.
    #[error("VM spec: {field} = {value:?} is invalid: {reason}")]
    Spec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// The backend cannot run what the spec asks for.
    #[error("{vmm} cannot run {what}")]
    Unsupported {
        /// The backend.
        vmm: &'static str,
        /// What it cannot do, and why.
        what: String,
    },
    /// A host file of the VM (kernel, initrd, disk, busybox) cannot be used.
    #[error("{path:?} {reason}")]
    HostFile {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A device node of the plan cannot be used.
    #[error("device {path:?} {reason}")]
    Device {
        /// The device.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The jail cannot be built as configured.
    #[error("VMM jail: {reason}")]
    Jail {
        /// Why.
        reason: String,
    },
    /// A host operation failed.
    #[error("cannot {what}")]
    Io {
        /// The operation and its path.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The crate's launcher refused or failed to start or supervise the jail.
    #[error("the VMM's jail task failed")]
    Task(#[from] crate::error::Error),
    /// The jail's task definition was refused.
    #[error("the VMM's jail task is invalid")]
    TaskConfig(#[from] crate::error::ConfigError),
    /// The VMM exited while the launch waited for it to boot.
    #[error("the VMM exited ({status}) while waiting for {waiting_for}: {messages}")]
    VmmExited {
        /// How it ended.
        status: ExitStatus,
        /// What the launch was waiting for.
        waiting_for: String,
        /// The start of what it wrote to stderr.
        messages: String,
    },
    /// The VM did not boot in time.
    #[error("the VM did not boot within {timeout:?}: no {waiting_for}")]
    BootTimeout {
        /// The spec's boot timeout.
        timeout: Duration,
        /// What did not appear.
        waiting_for: String,
    },
    /// A hook failed.
    #[error("hook {hook:?} ({stage}) failed")]
    HookFailed {
        /// The hook's name.
        hook: String,
        /// Its stage.
        stage: Stage,
        /// Its error.
        #[source]
        source: Box<MicrovmError>,
    },
    /// No hook has this name.
    #[error("no launch hook is named {name:?}")]
    UnknownHook {
        /// The name asked for.
        name: String,
    },
    /// A hook of this name exists already.
    #[error("a launch hook named {name:?} exists already")]
    DuplicateHook {
        /// The name.
        name: String,
    },
    /// Hooks must stay in stage order.
    #[error("launch hook {hook:?} cannot go there: {reason}")]
    HookOrder {
        /// The hook being placed.
        hook: String,
        /// Why.
        reason: String,
    },
    /// A hook needed something an earlier stage makes, and it is not there (that
    /// stage's hook was removed or replaced).
    #[error("{what} is not there")]
    NotReady {
        /// What is missing.
        what: &'static str,
    },
    /// The jail directory is on a filesystem mounted `nodev`, where the private device
    /// nodes of the VMM could not be opened.
    #[error(
        "the jail directory {path:?} is on a filesystem mounted nodev, where the VMM's device \
         nodes cannot be opened; set Jail::base_dir to a directory on a filesystem without \
         nodev (the default for root is {})",
        jail::DEFAULT_ROOT_BASE_DIR
    )]
    DeviceNodesNotAllowed {
        /// The jail directory (or its base).
        path: PathBuf,
    },
    /// The guest image cannot be built.
    #[error("guest image: {reason}")]
    Guest {
        /// Why.
        reason: String,
    },
}
