//! Seccomp: the profile model, the built-in default profile, and its compilation to the
//! BPF programs a container's process installs just before `execve`.
//!
//! A container asks for a [`SeccompPolicy`]: the built-in default, or a custom
//! [`SeccompProfile`]. There is no "unconfined". [`SeccompPolicy::compile`] turns it
//! into a [`CompiledSeccomp`] once, before any process exists; the launcher's child then
//! only installs [`CompiledSeccomp::programs`], in order, one `seccomp(2)` call each.
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
//!
//! and, for every profile (imported ones too), the guard adds:
//!
//! - `ioctl(TIOCSTI)` (fake terminal input) and `ioctl(TIOCLINUX)` are never let
//!   through, `cmd` compared as 32 bits: what the profile would allow or log of them
//!   is refused with `EPERM`, so a profile that allows `ioctl`, as Docker's does, still
//!   refuses them, and one that refuses them keeps its answer (see
//!   [`SeccompProfile`]'s semantics);
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
//!
//! # Installing
//!
//! The programs must be installed in the order [`CompiledSeccomp::programs`] returns
//! them (the allowlist, then the guard), after `prctl(PR_SET_NO_NEW_PRIVS, 1)`, each
//! with `seccomp(SECCOMP_SET_MODE_FILTER, 0, &sock_fprog)`. The kernel keeps, among
//! `ERRNO` results, the errno of the filter installed last: installed the other way
//! round, `clone3` and unknown numbers would get `EPERM` instead of `ENOSYS`.
//!
//! ```
//! use tasksandbox::seccomp::SeccompPolicy;
//! use tasksandbox::Capabilities;
//! # if !tasksandbox::seccomp::syscalls::ARCH_SUPPORTED { return Ok(()); }
//! let compiled = SeccompPolicy::Default.compile(Capabilities::fargate_default())?;
//! for program in compiled.programs() {
//!     // In the child, with no allocation: a `libc::sock_fprog` on the stack.
//!     let (ptr, len) = (program.as_ptr(), program.len());
//!     # let _ = (ptr, len);
//! }
//! assert!(compiled.instruction_count() < 4096);
//! # Ok::<(), tasksandbox::seccomp::SeccompError>(())
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use seccompiler::BpfProgram;

use crate::capabilities::{Capabilities, Capability};

pub mod bpf;
mod compile;
mod default;
pub mod explain;
#[cfg(feature = "policy")]
mod json;
mod profile;
pub mod syscalls;

#[cfg(test)]
mod tests;

pub use compile::compile;
pub use explain::SeccompSummary;
#[cfg(feature = "policy")]
pub use json::{JsonLocation, ProfileError, MAX_JSON_NESTING};
pub use profile::{
    Action, Arch, ArgCondition, ArgOp, ArgWidth, KernelVersion, SeccompProfile, SyscallId,
    SyscallRule, MAX_ERRNO,
};

/// The seccomp policy of a container. There is no way to ask for no filter.
#[derive(Debug, Clone, Default)]
pub enum SeccompPolicy {
    /// The built-in default profile ([`SeccompProfile::docker_default`]).
    #[default]
    Default,
    /// A custom profile, compiled when the sandbox is built.
    Profile(Arc<SeccompProfile>),
}

impl SeccompPolicy {
    /// Compiles the policy for a container holding `caps`.
    ///
    /// The default profile is compiled at most once per process for each combination
    /// of the capabilities that change it (`CAP_SYS_CHROOT`, `CAP_SYS_PTRACE`) and
    /// shared; a custom profile is compiled on every call, so compile it once when the
    /// sandbox is built and keep the `Arc`.
    pub fn compile(&self, caps: Capabilities) -> Result<Arc<CompiledSeccomp>, SeccompError> {
        match self {
            SeccompPolicy::Default => compile_default(caps),
            SeccompPolicy::Profile(profile) => compile::compile(profile, caps).map(Arc::new),
        }
    }

    /// What the policy enforces for a container holding `caps`, as a
    /// [`SeccompSummary`] (human-readable with `Display`, JSON with `to_json`).
    pub fn explain(&self, caps: Capabilities) -> Result<SeccompSummary, SeccompError> {
        SeccompSummary::new(self.profile(), caps)
    }

    /// The profile the policy stands for.
    pub fn profile(&self) -> &SeccompProfile {
        match self {
            SeccompPolicy::Default => SeccompProfile::docker_default(),
            SeccompPolicy::Profile(profile) => profile,
        }
    }
}

/// The capabilities of the allowlist that change the default profile's programs.
const DEFAULT_PROFILE_CAPS: [Capability; 2] = [Capability::SysChroot, Capability::SysPtrace];

fn compile_default(caps: Capabilities) -> Result<Arc<CompiledSeccomp>, SeccompError> {
    static CACHE: [OnceLock<Arc<CompiledSeccomp>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    // Only these capabilities change the programs, so compile for exactly them: what is
    // cached does not depend on which container asked first.
    let chroot = caps.contains(Capability::SysChroot);
    let ptrace = caps.contains(Capability::SysPtrace);
    let mut relevant = Capabilities::fargate_default().keep_only(
        DEFAULT_PROFILE_CAPS
            .into_iter()
            .filter(|&c| caps.contains(c)),
    );
    if ptrace {
        relevant = relevant.with_sys_ptrace();
    }
    let key = usize::from(chroot) | usize::from(ptrace) << 1;
    let compile = || compile::compile(SeccompProfile::docker_default(), relevant).map(Arc::new);
    let Some(slot) = CACHE.get(key) else {
        // Two bits index four slots; this branch cannot run.
        return compile();
    };
    if let Some(compiled) = slot.get() {
        return Ok(Arc::clone(compiled));
    }
    let compiled = compile()?;
    Ok(Arc::clone(slot.get_or_init(|| compiled)))
}

/// Which of the compiled programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProgramKind {
    /// The allowlist, built with seccompiler.
    Allowlist,
    /// The guard: architecture, x32, unknown numbers, non-ALLOW rules.
    Guard,
}

impl fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgramKind::Allowlist => "allowlist",
            ProgramKind::Guard => "guard",
        })
    }
}

// The launcher hands `programs()` to the kernel as `struct sock_filter` arrays.
const _: () = assert!(
    std::mem::size_of::<seccompiler::sock_filter>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<seccompiler::sock_filter>()
            == std::mem::align_of::<libc::sock_filter>()
);

/// A compiled profile: complete BPF programs, ready to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledSeccomp {
    programs: Vec<BpfProgram>,
    kinds: Vec<ProgramKind>,
}

impl CompiledSeccomp {
    /// BPF programs in the order they must be installed with
    /// `seccomp(SECCOMP_SET_MODE_FILTER)`: the allowlist first (absent if the profile's
    /// default action is ALLOW), the guard last.
    ///
    /// Each is a complete `Vec<sock_filter>`; `sock_filter` has the layout of the
    /// kernel's `struct sock_filter`, so `(program.as_ptr(), program.len())` make a
    /// `struct sock_fprog` without allocating.
    pub fn programs(&self) -> &[BpfProgram] {
        &self.programs
    }

    /// Which program each of [`CompiledSeccomp::programs`] is.
    pub fn kinds(&self) -> &[ProgramKind] {
        &self.kinds
    }

    /// The total number of BPF instructions of all programs.
    pub fn instruction_count(&self) -> usize {
        self.programs.iter().map(Vec::len).sum()
    }

    /// What the installed programs would return for `data`: the `SECCOMP_RET_*` value,
    /// computed by the [interpreter](bpf::run_all) with the kernel's rules.
    pub fn evaluate(&self, data: &bpf::SeccompData) -> u32 {
        bpf::run_all(&self.programs, data)
    }
}

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
    /// A program has too many instructions for the kernel (4096 at most).
    #[error(
        "the seccomp {program} program has {len} instructions; the kernel accepts fewer than 4096"
    )]
    ProgramTooLong {
        /// Which program.
        program: ProgramKind,
        /// Its length.
        len: usize,
    },
    /// seccompiler refused to build the allowlist.
    #[error("seccompiler could not build the {program} program")]
    Backend {
        /// Which program.
        program: ProgramKind,
        /// seccompiler's error.
        #[source]
        source: seccompiler::BackendError,
    },
    /// A compiled program that the kernel would refuse (a bug of this crate).
    #[error("the compiled seccomp {program} program would be refused by the kernel")]
    InvalidProgram {
        /// Which program.
        program: ProgramKind,
        /// What is wrong with it.
        #[source]
        source: bpf::BpfError,
    },
    /// The crate was built for an architecture the seccomp layer does not support.
    #[error("seccomp profiles cannot be compiled for {arch}: only x86_64 is supported")]
    UnsupportedArch {
        /// The build target's architecture.
        arch: &'static str,
    },
}
