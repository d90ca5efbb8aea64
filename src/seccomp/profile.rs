//! The profile model: what a seccomp profile says, independent of how it is compiled.
//!
//! A [`SeccompProfile`] is a default action and a list of [`SyscallRule`]s, the same
//! shape as Docker's JSON profiles: each rule names syscalls, gives an [`Action`], may
//! require argument conditions (all must hold), and may apply only when the container
//! holds (or lacks) some capabilities, runs on some architectures, or runs on a recent
//! enough kernel.
//!
//! [`SeccompProfile::decide`] evaluates the model directly. It is the specification the
//! compiled BPF programs are tested against.

use std::fmt;
use std::sync::OnceLock;

use crate::capabilities::{Capabilities, Capability};

use super::syscalls;
use super::SeccompError;

/// `EPERM`, the errno of refused syscalls.
pub(crate) const EPERM: u32 = libc::EPERM as u32;
/// `ENOSYS`, the errno of syscalls that do not exist (or must look as if they did not).
pub(crate) const ENOSYS: u32 = libc::ENOSYS as u32;
/// The largest errno a seccomp filter can return (the kernel's `MAX_ERRNO`).
pub const MAX_ERRNO: u32 = 4095;

/// What happens to a syscall.
///
/// When several filters or rules give different actions for one call, the most
/// restrictive wins, in the kernel's order: [`Action::KillProcess`],
/// [`Action::KillThread`], [`Action::Trap`], [`Action::Errno`], [`Action::Log`],
/// [`Action::Allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// The syscall runs.
    Allow,
    /// The syscall fails with this errno (at most [`MAX_ERRNO`]) without running.
    Errno(u32),
    /// The whole process is killed by `SIGSYS`.
    KillProcess,
    /// The calling thread is killed by `SIGSYS`.
    KillThread,
    /// The calling thread receives a `SIGSYS` it can handle.
    Trap,
    /// The syscall runs and is logged by the kernel's audit subsystem.
    Log,
}

impl Action {
    /// The `SECCOMP_RET_*` value a filter returns for this action.
    ///
    /// An errno above [`MAX_ERRNO`] is cut to its low 16 bits, as the kernel would read
    /// it; [`compile`](super::compile) refuses such actions before that can happen.
    pub fn to_ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(errno) => libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Log => libc::SECCOMP_RET_LOG,
        }
    }

    /// The action a `SECCOMP_RET_*` value stands for, if it is one of [`Action`]'s.
    ///
    /// `SECCOMP_RET_TRACE` and `SECCOMP_RET_USER_NOTIF` give `None`, and so does a
    /// `SECCOMP_RET_TRAP` with data.
    pub fn from_ret(ret: u32) -> Option<Action> {
        let data = ret & libc::SECCOMP_RET_DATA;
        match ret & libc::SECCOMP_RET_ACTION_FULL {
            libc::SECCOMP_RET_ALLOW if data == 0 => Some(Action::Allow),
            libc::SECCOMP_RET_ERRNO => Some(Action::Errno(data)),
            libc::SECCOMP_RET_KILL_PROCESS if data == 0 => Some(Action::KillProcess),
            libc::SECCOMP_RET_KILL_THREAD if data == 0 => Some(Action::KillThread),
            libc::SECCOMP_RET_TRAP if data == 0 => Some(Action::Trap),
            libc::SECCOMP_RET_LOG if data == 0 => Some(Action::Log),
            _ => None,
        }
    }

    /// Whether the call runs: [`Action::Allow`] and [`Action::Log`].
    pub(crate) fn lets_through(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    /// Rank of the action, lower is more restrictive (the kernel's order).
    pub(crate) fn severity(self) -> u8 {
        match self {
            Action::KillProcess => 0,
            Action::KillThread => 1,
            Action::Trap => 2,
            Action::Errno(_) => 3,
            Action::Log => 4,
            Action::Allow => 5,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("allow"),
            Action::Errno(errno) => write!(f, "errno {errno}"),
            Action::KillProcess => f.write_str("kill process"),
            Action::KillThread => f.write_str("kill thread"),
            Action::Trap => f.write_str("trap"),
            Action::Log => f.write_str("log"),
        }
    }
}

/// How an argument is compared with a condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgOp {
    /// `arg == value`
    Eq,
    /// `arg != value`
    Ne,
    /// `arg < value` (unsigned)
    Lt,
    /// `arg <= value` (unsigned)
    Le,
    /// `arg > value` (unsigned)
    Gt,
    /// `arg >= value` (unsigned)
    Ge,
    /// `arg & mask == value`; the value must have no bit outside the mask.
    MaskedEq(u64),
}

/// How many bits of an argument a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgWidth {
    /// The low 32 bits. Right for arguments the kernel declares `int` or `unsigned int`
    /// (`socket`'s domain, `ioctl`'s cmd, `personality`): the kernel ignores the high
    /// bits, so a 64-bit comparison would let `0x1_0000_0028` through as `AF_VSOCK`.
    Dword,
    /// All 64 bits. Right for `long` and pointer-sized arguments (`clone`'s flags).
    Qword,
}

/// One comparison of a syscall argument with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArgCondition {
    index: u8,
    op: ArgOp,
    value: u64,
    width: ArgWidth,
}

impl ArgCondition {
    /// The largest argument index (syscalls have six arguments, 0 to 5).
    pub const MAX_INDEX: u8 = 5;

    /// A condition on argument `index` (0 to 5).
    ///
    /// Fails if the index is out of range, if a [`ArgWidth::Dword`] value or mask does
    /// not fit in 32 bits, or if a [`ArgOp::MaskedEq`] value has bits outside its mask
    /// (it could never match).
    pub fn new(index: u8, op: ArgOp, value: u64, width: ArgWidth) -> Result<Self, SeccompError> {
        if index > Self::MAX_INDEX {
            return Err(SeccompError::ArgIndexOutOfRange { index });
        }
        if width == ArgWidth::Dword {
            let mask = match op {
                ArgOp::MaskedEq(mask) => mask,
                _ => 0,
            };
            if value > u64::from(u32::MAX) || mask > u64::from(u32::MAX) {
                return Err(SeccompError::DwordValueTooWide { index, value, mask });
            }
        }
        if let ArgOp::MaskedEq(mask) = op {
            if value & !mask != 0 {
                return Err(SeccompError::MaskedValueOutsideMask { index, value, mask });
            }
        }
        Ok(ArgCondition {
            index,
            op,
            value,
            width,
        })
    }

    /// A condition on the low 32 bits of argument `index`.
    pub fn dword(index: u8, op: ArgOp, value: u64) -> Result<Self, SeccompError> {
        Self::new(index, op, value, ArgWidth::Dword)
    }

    /// A condition on all 64 bits of argument `index`.
    pub fn qword(index: u8, op: ArgOp, value: u64) -> Result<Self, SeccompError> {
        Self::new(index, op, value, ArgWidth::Qword)
    }

    /// The argument's index, 0 to 5.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The comparison.
    pub fn op(&self) -> ArgOp {
        self.op
    }

    /// The value compared with.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// How many bits of the argument are compared.
    pub fn width(&self) -> ArgWidth {
        self.width
    }

    /// Whether the syscall arguments `args` satisfy the condition.
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let raw = args.get(usize::from(self.index)).copied().unwrap_or(0);
        let arg = match self.width {
            ArgWidth::Dword => raw & u64::from(u32::MAX),
            ArgWidth::Qword => raw,
        };
        match self.op {
            ArgOp::Eq => arg == self.value,
            ArgOp::Ne => arg != self.value,
            ArgOp::Lt => arg < self.value,
            ArgOp::Le => arg <= self.value,
            ArgOp::Gt => arg > self.value,
            ArgOp::Ge => arg >= self.value,
            ArgOp::MaskedEq(mask) => arg & mask == self.value,
        }
    }

    /// Whether no call satisfying `eq` (a 32-bit equality) can satisfy this condition:
    /// both look at the same argument's low 32 bits, and `eq`'s value fails this one.
    pub(crate) fn excludes_dword(&self, eq: &ArgCondition) -> bool {
        let mut args = [0; 6];
        args[usize::from(eq.index.min(Self::MAX_INDEX))] = eq.value;
        self.index == eq.index
            && self.width == ArgWidth::Dword
            && eq.width == ArgWidth::Dword
            && eq.op == ArgOp::Eq
            && !self.matches(&args)
    }
}

/// A syscall named by a rule: by name (resolved for the build target when compiled), or
/// by number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyscallId {
    /// A name, as in the kernel's tables (`"openat"`).
    Name(String),
    /// A number of the build target's architecture.
    Number(i64),
}

impl SyscallId {
    fn is(&self, nr: i64, name: Option<&str>) -> bool {
        match self {
            SyscallId::Number(n) => *n == nr,
            SyscallId::Name(n) => name == Some(n.as_str()),
        }
    }
}

impl fmt::Display for SyscallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyscallId::Name(name) => f.write_str(name),
            SyscallId::Number(nr) => write!(f, "#{nr}"),
        }
    }
}

/// An architecture, as profiles name them (Docker's `arches` use Go's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    /// x86_64 (Go's `amd64`).
    X86_64,
    /// The x32 ABI of x86_64.
    X32,
    /// 32-bit x86 (`x86`, `386`).
    X86,
    /// 64-bit ARM (Go's `arm64`).
    Aarch64,
    /// 32-bit ARM.
    Arm,
    /// 64-bit RISC-V.
    Riscv64,
    /// 64-bit little-endian PowerPC.
    Ppc64le,
    /// 64-bit big-endian PowerPC.
    Ppc64,
    /// 32-bit PowerPC.
    Ppc,
    /// 64-bit IBM Z.
    S390x,
    /// 31-bit IBM Z.
    S390,
    /// 64-bit LoongArch.
    Loong64,
    /// 32-bit MIPS (big-endian).
    Mips,
    /// 32-bit MIPS (little-endian).
    Mipsel,
    /// 64-bit MIPS (big-endian).
    Mips64,
    /// 64-bit MIPS (little-endian).
    Mipsel64,
    /// MIPS n32 ABI (big-endian).
    Mips64n32,
    /// MIPS n32 ABI (little-endian).
    Mipsel64n32,
}

impl Arch {
    /// The architecture this crate was built for, if the model knows it.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else if cfg!(target_arch = "s390x") {
            Some(Arch::S390x)
        } else if cfg!(target_arch = "loongarch64") {
            Some(Arch::Loong64)
        } else {
            None
        }
    }

    /// Parses the names Docker's profiles use in `arches` (`"amd64"`, `"arm64"`,
    /// `"ppc64le"`, ...). Unknown names give `None`.
    pub fn from_docker_name(name: &str) -> Option<Arch> {
        Some(match name {
            "amd64" | "x86_64" => Arch::X86_64,
            "x32" => Arch::X32,
            "x86" | "386" | "i386" => Arch::X86,
            "arm64" | "aarch64" => Arch::Aarch64,
            "arm" => Arch::Arm,
            "riscv64" => Arch::Riscv64,
            "ppc64le" => Arch::Ppc64le,
            "ppc64" => Arch::Ppc64,
            "ppc" => Arch::Ppc,
            "s390x" => Arch::S390x,
            "s390" => Arch::S390,
            "loong64" | "loongarch64" => Arch::Loong64,
            "mips" => Arch::Mips,
            "mipsle" | "mipsel" => Arch::Mipsel,
            "mips64" => Arch::Mips64,
            "mips64le" | "mipsel64" => Arch::Mipsel64,
            "mips64n32" => Arch::Mips64n32,
            "mips64len32" | "mipsel64n32" => Arch::Mipsel64n32,
            _ => return None,
        })
    }
}

/// A kernel release, major and minor (`4.8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// The major number.
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

impl KernelVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        KernelVersion { major, minor }
    }

    /// Parses a release string as `uname -r` prints it (`"6.18.44-fc"`).
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The release of the running kernel, read once per process.
    ///
    /// `None` if it cannot be read or parsed; rules with a minimum kernel then do not
    /// apply, which refuses rather than allows.
    pub fn running() -> Option<Self> {
        static RUNNING: OnceLock<Option<KernelVersion>> = OnceLock::new();
        *RUNNING.get_or_init(|| {
            // SAFETY: `utsname` is plain old data; all-zero bytes are a valid value.
            let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
            // SAFETY: `uts` is a valid, writable `utsname` that outlives the call.
            if unsafe { libc::uname(&mut uts) } != 0 {
                return None;
            }
            let release: Vec<u8> = uts
                .release
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            KernelVersion::parse(std::str::from_utf8(&release).ok()?)
        })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A rule of a profile: these syscalls, under these conditions, get this action.
///
/// The conditions of [`SyscallRule::with_arg`] must all hold (AND); to allow a syscall
/// for several argument patterns, write several rules (OR). The filters of
/// [`SyscallRule::requires_caps`], [`SyscallRule::unless_caps`],
/// [`SyscallRule::only_on`], [`SyscallRule::except_on`], [`SyscallRule::min_kernel`]
/// and [`SyscallRule::unless_kernel`] decide whether the rule is part of the profile at all for
/// a given container, exactly as Docker's `includes` and `excludes` do.
///
/// ```
/// use tasksandbox::seccomp::{Action, ArgCondition, ArgOp, SyscallRule};
/// let rule = SyscallRule::new(["socket"], Action::Allow)
///     .with_arg(ArgCondition::dword(0, ArgOp::Lt, 38)?);
/// # Ok::<(), tasksandbox::seccomp::SeccompError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    syscalls: Vec<SyscallId>,
    action: Action,
    args: Vec<ArgCondition>,
    requires_caps: Vec<caps::Capability>,
    unless_caps: Vec<caps::Capability>,
    only_on: Vec<Arch>,
    except_on: Vec<Arch>,
    min_kernel: Option<KernelVersion>,
    unless_kernel: Option<KernelVersion>,
}

impl SyscallRule {
    /// A rule for the syscalls `names`, with no conditions.
    pub fn new<I>(names: I, action: Action) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::for_syscalls(names.into_iter().map(|n| SyscallId::Name(n.into())), action)
    }

    /// A rule for the syscalls numbered `numbers` on the build target.
    pub fn numbers(numbers: impl IntoIterator<Item = i64>, action: Action) -> Self {
        Self::for_syscalls(numbers.into_iter().map(SyscallId::Number), action)
    }

    /// A rule for syscalls given by name or number.
    pub fn for_syscalls(syscalls: impl IntoIterator<Item = SyscallId>, action: Action) -> Self {
        SyscallRule {
            syscalls: syscalls.into_iter().collect(),
            action,
            args: Vec::new(),
            requires_caps: Vec::new(),
            unless_caps: Vec::new(),
            only_on: Vec::new(),
            except_on: Vec::new(),
            min_kernel: None,
            unless_kernel: None,
        }
    }

    /// Adds an argument condition; the rule matches only if all of them hold.
    #[must_use]
    pub fn with_arg(mut self, condition: ArgCondition) -> Self {
        self.args.push(condition);
        self
    }

    /// The rule applies only to containers holding all of `caps` (Docker's
    /// `includes.caps`). A capability outside the allowlist is never held, so such a
    /// rule never applies.
    #[must_use]
    pub fn requires_caps(mut self, caps: impl IntoIterator<Item = caps::Capability>) -> Self {
        self.requires_caps.extend(caps);
        self
    }

    /// The rule does not apply to containers holding any of `caps` (Docker's
    /// `excludes.caps`).
    #[must_use]
    pub fn unless_caps(mut self, caps: impl IntoIterator<Item = caps::Capability>) -> Self {
        self.unless_caps.extend(caps);
        self
    }

    /// The rule applies only on these architectures (Docker's `includes.arches`).
    #[must_use]
    pub fn only_on(mut self, arches: impl IntoIterator<Item = Arch>) -> Self {
        self.only_on.extend(arches);
        self
    }

    /// The rule does not apply on these architectures (Docker's `excludes.arches`).
    #[must_use]
    pub fn except_on(mut self, arches: impl IntoIterator<Item = Arch>) -> Self {
        self.except_on.extend(arches);
        self
    }

    /// The rule applies only on kernels at least this recent (Docker's
    /// `includes.minKernel`), checked against the running kernel.
    #[must_use]
    pub fn min_kernel(mut self, version: KernelVersion) -> Self {
        self.min_kernel = Some(version);
        self
    }

    /// The rule does not apply on kernels at least this recent (Docker's
    /// `excludes.minKernel`), checked against the running kernel: it is for older
    /// kernels only.
    #[must_use]
    pub fn unless_kernel(mut self, version: KernelVersion) -> Self {
        self.unless_kernel = Some(version);
        self
    }

    /// The syscalls the rule names.
    pub fn syscalls(&self) -> &[SyscallId] {
        &self.syscalls
    }

    /// The action for matching calls.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The argument conditions, all of which must hold.
    pub fn args(&self) -> &[ArgCondition] {
        &self.args
    }

    /// Capabilities that must all be held for the rule to apply.
    pub fn required_caps(&self) -> &[caps::Capability] {
        &self.requires_caps
    }

    /// Capabilities any of which makes the rule not apply.
    pub fn excluding_caps(&self) -> &[caps::Capability] {
        &self.unless_caps
    }

    /// Architectures the rule is limited to (empty: all).
    pub fn only_arches(&self) -> &[Arch] {
        &self.only_on
    }

    /// Architectures the rule does not apply on.
    pub fn except_arches(&self) -> &[Arch] {
        &self.except_on
    }

    /// The oldest kernel the rule applies on.
    pub fn minimum_kernel(&self) -> Option<KernelVersion> {
        self.min_kernel
    }

    /// The kernel from which on the rule no longer applies.
    pub fn excluding_kernel(&self) -> Option<KernelVersion> {
        self.unless_kernel
    }

    /// Whether the rule is part of the profile for a container holding `caps`, on the
    /// build target's architecture and the running kernel.
    ///
    /// If the running kernel's version cannot be read, a rule with a kernel condition
    /// does not apply.
    pub fn applies_to(&self, caps: Capabilities) -> bool {
        let native = Arch::native();
        self.requires_caps.iter().all(|&c| holds(caps, c))
            && !self.unless_caps.iter().any(|&c| holds(caps, c))
            && (self.only_on.is_empty() || native.is_some_and(|a| self.only_on.contains(&a)))
            && !native.is_some_and(|a| self.except_on.contains(&a))
            && match self.min_kernel {
                None => true,
                Some(min) => KernelVersion::running().is_some_and(|k| k >= min),
            }
            && match self.unless_kernel {
                None => true,
                Some(max) => KernelVersion::running().is_some_and(|k| k < max),
            }
    }

    /// Whether the call `nr` (named `name` on this architecture) with `args` matches.
    fn matches(&self, nr: i64, name: Option<&str>, args: &[u64; 6]) -> bool {
        self.syscalls.iter().any(|s| s.is(nr, name)) && self.args.iter().all(|c| c.matches(args))
    }
}

/// Whether a container with the allowlist `caps` holds the Linux capability `cap`.
/// Capabilities outside the allowlist are never held.
pub(crate) fn holds(caps: Capabilities, cap: caps::Capability) -> bool {
    Capability::ALL
        .iter()
        .any(|&c| c.to_caps() == cap && caps.contains(c))
}

/// A seccomp profile: a default action and rules.
///
/// Build one in code with [`SeccompProfile::new`] and [`SeccompProfile::with_rule`], or
/// start from [`SeccompProfile::docker_default`]. Nothing is checked until it is
/// compiled ([`compile`](super::compile)), which names the first mistake it finds.
///
/// # Semantics
///
/// For a call on the build target's architecture:
/// 1. A number with the x32 bit (`0x4000_0000`) on x86_64 is refused with `EPERM`, and
///    a number outside the syscall table gets `ENOSYS`, unless the default action is
///    more restrictive than an errno (then the default action).
/// 2. Otherwise the rules that apply to the container (capabilities, architecture,
///    kernel) and match the call (syscall and every argument condition) are collected.
///    None: the default action. Otherwise the most restrictive of their actions; among
///    several `Errno` rules, the first in profile order.
/// 3. Terminal-input injection, `ioctl(fd, TIOCSTI, ..)` and `ioctl(fd, TIOCLINUX, ..)`
///    (`cmd` compared as the 32 bits the kernel reads), is never let through: where
///    step 2 gives [`Action::Allow`] or [`Action::Log`], it is refused with `EPERM`
///    instead. Where the profile refuses it, its answer stands. So an imported profile
///    that allows `ioctl` (Docker's does) still refuses terminal injection.
///
/// A call from another architecture or ABI (i386 via `int 0x80`) kills the process;
/// [`decide_call`](Self::decide_call) includes that case, [`decide`](Self::decide)
/// looks at native calls only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProfile {
    default_action: Action,
    rules: Vec<SyscallRule>,
}

impl SeccompProfile {
    /// An empty profile: every call gets `default_action`.
    pub fn new(default_action: Action) -> Self {
        SeccompProfile {
            default_action,
            rules: Vec::new(),
        }
    }

    /// Appends a rule.
    #[must_use]
    pub fn with_rule(mut self, rule: SyscallRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Appends a rule.
    pub fn push_rule(&mut self, rule: SyscallRule) {
        self.rules.push(rule);
    }

    /// The action for calls no rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[SyscallRule] {
        &self.rules
    }

    /// The built-in default profile: Docker's default profile, rule for rule, with the
    /// 32-bit argument comparisons described in [the module documentation](super).
    /// What every profile gets besides (the terminal guard, the x32, unknown-number and
    /// other-architecture answers) is in the semantics above.
    pub fn docker_default() -> &'static SeccompProfile {
        static PROFILE: OnceLock<SeccompProfile> = OnceLock::new();
        PROFILE.get_or_init(super::default::docker_default)
    }

    /// What the profile does with syscall `nr` called with `args` by a container holding
    /// `caps`, on the build target's architecture (see the semantics above).
    ///
    /// `nr` is read as the kernel reads it, as a 32-bit number (`-1` is `0xffff_ffff`).
    /// Rules naming syscalls that do not exist on this architecture never match.
    pub fn decide(&self, caps: Capabilities, nr: i64, args: &[u64; 6]) -> Action {
        // The kernel hands seccomp the low 32 bits of the number.
        let nr = i64::from(nr as i32);
        let bits = nr as u32;
        let guard = if cfg!(target_arch = "x86_64") && bits & X32_SYSCALL_BIT != 0 {
            Some(GUARD_X32)
        } else if syscalls::name(nr).is_none() {
            Some(GUARD_UNKNOWN_NUMBER)
        } else {
            None
        };
        if let Some(guard) = guard {
            // Unknown numbers match no rule.
            return self.guarded(guard);
        }
        let name = syscalls::name(nr);
        let mut decision: Option<Action> = None;
        for rule in &self.rules {
            if !rule.matches(nr, name, args) || !rule.applies_to(caps) {
                continue;
            }
            decision = match decision {
                Some(best) if best.severity() <= rule.action.severity() => Some(best),
                _ => Some(rule.action),
            };
        }
        let decision = decision.unwrap_or(self.default_action);
        let injection = || TERMINAL_INJECTION.iter().any(|[c]| c.matches(args));
        if decision.lets_through() && name == Some("ioctl") && injection() {
            return TERMINAL_GUARD;
        }
        decision
    }

    /// What the profile does with the call `data` (number, architecture, arguments) by a
    /// container holding `caps`: [`decide`](Self::decide), except that a call made
    /// through another architecture's convention (`data.arch` is not the build target's
    /// `AUDIT_ARCH_*` value, [`NATIVE_AUDIT_ARCH`](super::bpf::NATIVE_AUDIT_ARCH))
    /// kills the process.
    ///
    /// This is the specification of the compiled programs:
    /// [`CompiledSeccomp::evaluate`](super::CompiledSeccomp::evaluate) of the same
    /// `data` returns `decide_call(..).to_ret()`.
    ///
    /// ```
    /// use tasksandbox::seccomp::bpf::{SeccompData, AUDIT_ARCH_I386};
    /// use tasksandbox::seccomp::{Action, SeccompProfile};
    /// use tasksandbox::Capabilities;
    /// let profile = SeccompProfile::docker_default();
    /// let caps = Capabilities::fargate_default();
    /// let mut call = SeccompData::native(39, [0; 6]); // getpid on x86_64
    /// # if cfg!(target_arch = "x86_64") {
    /// assert_eq!(profile.decide_call(caps, &call), Action::Allow);
    /// # }
    /// call.arch = AUDIT_ARCH_I386;
    /// assert_eq!(profile.decide_call(caps, &call), Action::KillProcess);
    /// ```
    pub fn decide_call(&self, caps: Capabilities, data: &super::bpf::SeccompData) -> Action {
        if data.arch != super::bpf::NATIVE_AUDIT_ARCH {
            return GUARD_OTHER_ARCH;
        }
        self.decide(caps, i64::from(data.nr), &data.args)
    }

    /// The result of a guard answer `guard` for a call no rule can match: the guard's
    /// answer, unless the default action is more restrictive.
    pub(crate) fn guarded(&self, guard: Action) -> Action {
        if guard.severity() <= self.default_action.severity() {
            guard
        } else {
            self.default_action
        }
    }

    /// The capabilities of the allowlist that can change this profile's compiled form.
    pub fn relevant_capabilities(&self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| {
                self.rules.iter().any(|r| {
                    r.requires_caps.contains(&c.to_caps()) || r.unless_caps.contains(&c.to_caps())
                })
            })
            .collect()
    }
}

/// `TIOCSTI`: push a byte into a terminal's input queue.
pub(crate) const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX`: virtual console requests, some of which can also inject input.
pub(crate) const TIOCLINUX: u64 = 0x541C;
/// The `cmd` conditions of terminal-input injection: `ioctl(fd, TIOCSTI, ..)` (fake
/// input into a terminal, the classic way out of a shared tty) and
/// `ioctl(fd, TIOCLINUX, ..)`, compared as the 32 bits the kernel reads, so high bits
/// cannot smuggle them through. Never let through by any profile (semantics, step 3).
pub(crate) const TERMINAL_INJECTION: [[ArgCondition; 1]; 2] = [
    [ArgCondition {
        index: 1,
        op: ArgOp::Eq,
        value: TIOCSTI,
        width: ArgWidth::Dword,
    }],
    [ArgCondition {
        index: 1,
        op: ArgOp::Eq,
        value: TIOCLINUX,
        width: ArgWidth::Dword,
    }],
];

/// The terminal guard's answer to an injection the profile would let through.
pub(crate) const TERMINAL_GUARD: Action = Action::Errno(EPERM);

/// The bit that marks an x32-ABI syscall number on x86_64 (`__X32_SYSCALL_BIT`).
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The guard program's answer to an x32-ABI number (x86_64 only).
pub(crate) const GUARD_X32: Action = Action::Errno(EPERM);
/// The guard program's answer to a number outside the syscall table.
pub(crate) const GUARD_UNKNOWN_NUMBER: Action = Action::Errno(ENOSYS);
/// What both programs do with a call made through another architecture's convention.
pub(crate) const GUARD_OTHER_ARCH: Action = Action::KillProcess;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for action in [
            Action::Allow,
            Action::Errno(1),
            Action::Errno(38),
            Action::KillProcess,
            Action::KillThread,
            Action::Trap,
            Action::Log,
        ] {
            assert_eq!(Action::from_ret(action.to_ret()), Some(action));
        }
        assert_eq!(Action::from_ret(libc::SECCOMP_RET_TRACE), None);
    }

    #[test]
    fn conditions_validate() {
        assert!(matches!(
            ArgCondition::dword(6, ArgOp::Eq, 1),
            Err(SeccompError::ArgIndexOutOfRange { index: 6 })
        ));
        assert!(matches!(
            ArgCondition::dword(0, ArgOp::Eq, 1 << 32),
            Err(SeccompError::DwordValueTooWide { .. })
        ));
        assert!(matches!(
            ArgCondition::dword(0, ArgOp::MaskedEq(1 << 40), 0),
            Err(SeccompError::DwordValueTooWide { .. })
        ));
        assert!(matches!(
            ArgCondition::qword(0, ArgOp::MaskedEq(0xf0), 0x0f),
            Err(SeccompError::MaskedValueOutsideMask { .. })
        ));
        assert!(ArgCondition::qword(0, ArgOp::Eq, u64::MAX).is_ok());
    }

    #[test]
    fn dword_ignores_high_bits() -> Result<(), SeccompError> {
        let vsock = ArgCondition::dword(0, ArgOp::Eq, 40)?;
        assert!(vsock.matches(&[0x1_0000_0028, 0, 0, 0, 0, 0]));
        let vsock64 = ArgCondition::qword(0, ArgOp::Eq, 40)?;
        assert!(!vsock64.matches(&[0x1_0000_0028, 0, 0, 0, 0, 0]));
        let gt = ArgCondition::dword(0, ArgOp::Gt, 40)?;
        assert!(!gt.matches(&[0x1_0000_0028, 0, 0, 0, 0, 0]));
        Ok(())
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v669"),
            Some(KernelVersion::new(6, 18))
        );
        assert_eq!(KernelVersion::parse("4.8"), Some(KernelVersion::new(4, 8)));
        assert_eq!(KernelVersion::parse("x"), None);
        assert!(KernelVersion::new(4, 10) > KernelVersion::new(4, 8));
        assert!(KernelVersion::running().is_some());
    }

    #[test]
    fn kernel_conditions_bound_both_ways() {
        let caps = Capabilities::fargate_default();
        let Some(running) = KernelVersion::running() else {
            panic!("the running kernel's version cannot be read");
        };
        let next = KernelVersion::new(running.major, running.minor + 1);
        let rule = || SyscallRule::new(["getpid"], Action::Allow);
        assert!(rule().min_kernel(running).applies_to(caps));
        assert!(!rule().min_kernel(next).applies_to(caps));
        // Docker's `excludes.minKernel`: only for kernels older than the version.
        assert!(rule().unless_kernel(next).applies_to(caps));
        assert!(!rule().unless_kernel(running).applies_to(caps));
        assert!(rule()
            .min_kernel(KernelVersion::new(4, 8))
            .unless_kernel(next)
            .applies_to(caps));
    }

    #[test]
    fn calls_from_other_architectures_are_killed() {
        use crate::seccomp::bpf::{SeccompData, AUDIT_ARCH_I386, NATIVE_AUDIT_ARCH};
        let caps = Capabilities::fargate_default();
        let allow_all = SeccompProfile::new(Action::Allow);
        for arch in [AUDIT_ARCH_I386, 0, u32::MAX, NATIVE_AUDIT_ARCH ^ 1] {
            let call = SeccompData {
                arch,
                ..SeccompData::native(0, [0; 6])
            };
            assert_eq!(allow_all.decide_call(caps, &call), Action::KillProcess);
        }
        let call = SeccompData::native(0, [0; 6]);
        assert_eq!(
            allow_all.decide_call(caps, &call),
            allow_all.decide(caps, 0, &[0; 6])
        );
    }

    #[test]
    fn caps_outside_the_allowlist_are_never_held() {
        let all = Capabilities::fargate_default().with_sys_ptrace();
        assert!(!holds(all, caps::Capability::CAP_SYS_ADMIN));
        assert!(holds(all, caps::Capability::CAP_SYS_PTRACE));
        assert!(!holds(
            Capabilities::fargate_default(),
            caps::Capability::CAP_SYS_PTRACE
        ));
    }

    #[test]
    #[cfg(target_arch = "x86_64")] // syscall numbers of x86_64
    fn most_restrictive_rule_wins_and_first_errno() {
        let caps = Capabilities::fargate_default();
        let getpid = 39;
        let profile = SeccompProfile::new(Action::Errno(EPERM))
            .with_rule(SyscallRule::new(["getpid"], Action::Allow))
            .with_rule(SyscallRule::new(["getpid"], Action::Errno(5)))
            .with_rule(SyscallRule::new(["getpid"], Action::Errno(7)))
            .with_rule(SyscallRule::new(["getppid"], Action::Log))
            .with_rule(SyscallRule::new(["getppid"], Action::Trap));
        assert_eq!(profile.decide(caps, getpid, &[0; 6]), Action::Errno(5));
        assert_eq!(profile.decide(caps, 110, &[0; 6]), Action::Trap);
        assert_eq!(profile.decide(caps, 0, &[0; 6]), Action::Errno(EPERM));
        assert_eq!(profile.decide(caps, 1000, &[0; 6]), Action::Errno(ENOSYS));
        let killer = SeccompProfile::new(Action::KillProcess);
        assert_eq!(killer.decide(caps, 1000, &[0; 6]), Action::KillProcess);
    }
}
