//! Seccomp: the profile model, the built-in default profile, and its compilation to the
//! BPF programs a container's process installs just before `execve`.
//!
//! A [`SeccompProfile`] is the model of a profile: a default action and rules, the
//! shape of Docker's JSON profiles.
//!
//! # The default profile
//!
//! [`SeccompProfile::docker_default`] has the semantics of Docker's default profile on
//! x86_64: `EPERM` for everything not allowed; about 360 syscalls allowed
//! unconditionally; `ptrace`, `process_vm_readv` and `process_vm_writev` allowed (kernel
//! 4.8 and later); with `CAP_SYS_PTRACE` also `kcmp`, `pidfd_getfd` and
//! `process_madvise`; `chroot` only with `CAP_SYS_CHROOT`; `clone` only without
//! namespace flags; `clone3` answered with `ENOSYS` so that libc falls back to `clone`;
//! `personality` limited to harmless personas; `socket` refusing `AF_ALG` and
//! `AF_VSOCK`; `io_uring_*`, `mount`, `unshare`, `bpf`, `keyctl` and the other
//! privileged syscalls refused (their capability-gated rules need capabilities a task
//! can never hold).
//!
//! It closes what Docker's profile leaves open:
//!
//! - `int`-typed arguments (`socket`'s domain, `ioctl`'s cmd, `personality`) are
//!   compared as 32-bit values, as the kernel reads them: `socket(0x1_0000_0028, ..)`
//!   passes Docker's 64-bit `> 40` test but is `AF_VSOCK` to the kernel.
//! - `ioctl(TIOCSTI)` (fake terminal input) and `ioctl(TIOCLINUX)` are refused with
//!   `EPERM`.
//!
//! and, for every profile, compiled filters will add:
//!
//! - x32-ABI syscall numbers (bit `0x4000_0000` set, still `AUDIT_ARCH_X86_64`) are
//!   refused with `EPERM`;
//! - numbers that are no syscall of the architecture (the gap 337..=423 on x86_64, and
//!   everything above 469) get `ENOSYS`, as from a kernel that does not know them;
//! - a syscall made through another architecture's convention (i386 via `int 0x80`,
//!   `AUDIT_ARCH_I386`) **kills the process** (`SECCOMP_RET_KILL_PROCESS`). Killing,
//!   rather than an errno, is what seccompiler's own arch check does, and the kernel
//!   keeps the most restrictive result of all filters; it is also the right answer:
//!   no container workload legitimately switches ABI, and a dead process is a clearer
//!   signal than a mysterious errno.

mod default;
mod profile;
pub mod syscalls;

pub use profile::{
    Action, Arch, ArgCondition, ArgOp, ArgWidth, KernelVersion, SeccompProfile, SyscallId,
    SyscallRule, MAX_ERRNO,
};

/// Why a profile cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// A rule names something that is no syscall on any Linux architecture.
    #[error("rule {rule} of the seccomp profile names `{name}`, which is not a Linux syscall")]
    UnknownSyscall {
        /// The name as written.
        name: String,
        /// The rule's index in the profile.
        rule: usize,
    },
    /// A rule names a number that is no syscall of the build target's architecture.
    #[error(
        "rule {rule} of the seccomp profile names syscall number {number}, which is not a \
         syscall on {arch}",
        arch = std::env::consts::ARCH
    )]
    UnknownSyscallNumber {
        /// The number.
        number: i64,
        /// The rule's index in the profile.
        rule: usize,
    },
    /// A rule names no syscall at all.
    #[error("rule {rule} of the seccomp profile names no syscall")]
    EmptyRule {
        /// The rule's index in the profile.
        rule: usize,
    },
    /// An `Errno` action with a value the kernel cannot return.
    #[error(
        "errno {errno} {place} is out of range: a seccomp filter can return errno 0 to {max}",
        place = match rule { Some(r) => format!("of rule {r}"), None => "of the default action".to_string() },
        max = profile::MAX_ERRNO
    )]
    ErrnoOutOfRange {
        /// The errno.
        errno: u32,
        /// The rule's index, or `None` for the default action.
        rule: Option<usize>,
    },
    /// An argument condition on an argument that does not exist.
    #[error("argument index {index} is out of range: syscalls have arguments 0 to 5")]
    ArgIndexOutOfRange {
        /// The index.
        index: u8,
    },
    /// A 32-bit condition with a value or mask that does not fit in 32 bits.
    #[error(
        "condition on argument {index} compares 32 bits but its value {value:#x} or mask \
         {mask:#x} does not fit in 32 bits"
    )]
    DwordValueTooWide {
        /// The argument index.
        index: u8,
        /// The value.
        value: u64,
        /// The mask (0 unless masked).
        mask: u64,
    },
    /// A masked-equality condition that could never match.
    #[error(
        "condition on argument {index} can never match: value {value:#x} has bits outside \
         mask {mask:#x}"
    )]
    MaskedValueOutsideMask {
        /// The argument index.
        index: u8,
        /// The value.
        value: u64,
        /// The mask.
        mask: u64,
    },
    /// The crate was built for an architecture the seccomp layer does not support.
    #[error("seccomp profiles cannot be compiled for {arch}: only x86_64 is supported")]
    UnsupportedArch {
        /// The build target's architecture.
        arch: &'static str,
    },
}
