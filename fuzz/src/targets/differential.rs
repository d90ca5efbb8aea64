//! The differential target: a generated profile, a generated set of capabilities and
//! generated syscalls (number, architecture, arguments). For every call, the profile
//! model ([`SeccompProfile::decide_call`]), the compiled programs run in this crate's
//! own interpreter ([`super::cbpf`]) and the crate's interpreter
//! ([`CompiledSeccomp::evaluate`]) must give the same `SECCOMP_RET_*` value.
//!
//! The input is decoded with `arbitrary` into a structure that reaches the interesting
//! cases often: syscalls the rules name, x32 numbers (bit 30), numbers outside the
//! table, foreign `AUDIT_ARCH_*` values, conditions of every comparison at both widths,
//! argument values at and around the conditions' values, several rules per syscall with
//! every action, capability and kernel filters, and the built-in profile as a base.

use arbitrary::{Arbitrary, Unstructured};
use tasksandbox::seccomp::bpf::{SeccompData, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386};
use tasksandbox::seccomp::{
    self, syscalls, Action, Arch, ArgCondition, ArgOp, ArgWidth, CompiledSeccomp, KernelVersion,
    SeccompError, SeccompProfile, SeccompSummary, SyscallId, SyscallRule,
};
use tasksandbox::{Capabilities, Capability};

use super::cbpf;

/// At most this many rules, syscalls per rule, conditions per rule and calls are
/// taken from an input, so that one input runs in well under a millisecond.
const MAX_RULES: usize = 24;
const MAX_SYSCALLS_PER_RULE: usize = 6;
const MAX_CONDITIONS: usize = 6;
const MAX_CALLS: usize = 48;

/// Syscalls with argument rules in the built-in profile, and a few common ones.
const HOT_SYSCALLS: &[&str] = &[
    "clone",
    "clone3",
    "socket",
    "ioctl",
    "personality",
    "getpid",
    "read",
    "ptrace",
    "chroot",
    "kill",
];

/// Names of syscalls of other architectures only (skipped when compiling).
const OTHER_ARCH_NAMES: &[&str] = &["chown32", "clock_settime64", "arm_fadvise64_64", "set_tls"];

/// Values conditions and arguments are often made of.
const SPECIAL_VALUES: &[u64] = &[
    0,
    1,
    2,
    38,
    40,
    0x5412,
    0x541c,
    0x7e02_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0028,
    0x1_0000_5412,
    0x8000_0000_0000_0000,
    0xffff_ffff_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Syscall numbers at the edges of the table, the x32 bit and the sign bit.
const EDGE_NUMBERS: &[u32] = &[
    0,
    335,
    336,
    337,
    423,
    424,
    469,
    470,
    511,
    512,
    0x3fff_ffff,
    0x4000_0000,
    0x4000_0001,
    0x4000_01ff,
    0x7fff_ffff,
    0x8000_0000,
    0xbfff_ffff,
    0xffff_ffff,
];

/// Capabilities rules may require or exclude: the allowlist's and some beyond it.
const RULE_CAPS: &[caps::Capability] = &[
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_NET_RAW,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_DAC_READ_SEARCH,
];

const ARCHES: &[Arch] = &[
    Arch::X86_64,
    Arch::X32,
    Arch::X86,
    Arch::Aarch64,
    Arch::S390x,
    Arch::Ppc64le,
];

#[derive(Debug, Arbitrary)]
enum ActionSpec {
    Allow,
    Errno(u8),
    /// Often above the kernel's 4095: an error the compiler must report.
    WideErrno(u16),
    KillProcess,
    KillThread,
    Trap,
    Log,
}

impl ActionSpec {
    fn action(&self) -> Action {
        match *self {
            ActionSpec::Allow => Action::Allow,
            ActionSpec::Errno(e) => Action::Errno(u32::from(e)),
            ActionSpec::WideErrno(e) => Action::Errno(u32::from(e)),
            ActionSpec::KillProcess => Action::KillProcess,
            ActionSpec::KillThread => Action::KillThread,
            ActionSpec::Trap => Action::Trap,
            ActionSpec::Log => Action::Log,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum SyscallSpec {
    /// The n-th syscall of the table, by name.
    Name(u16),
    /// The n-th syscall of the table, by number.
    Number(u16),
    Hot(u8),
    /// Any number: outside the table it is an error the compiler must report.
    RawNumber(i32),
    OtherArch(u8),
    /// A name that is no syscall anywhere: an error the compiler must report.
    Unknown,
}

#[derive(Debug, Arbitrary)]
enum ValueSpec {
    Small(u8),
    Word(u32),
    Wide(u64),
    High(u32),
    Special(u8),
}

impl ValueSpec {
    fn value(&self) -> u64 {
        match *self {
            ValueSpec::Small(v) => u64::from(v),
            ValueSpec::Word(v) => u64::from(v),
            ValueSpec::Wide(v) => v,
            ValueSpec::High(v) => u64::from(v) << 32,
            ValueSpec::Special(i) => pick(SPECIAL_VALUES, i),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum OpSpec {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq(ValueSpec),
}

#[derive(Debug, Arbitrary)]
struct ConditionSpec {
    index: u8,
    op: OpSpec,
    value: ValueSpec,
    dword: bool,
    /// Keep the value as generated (it may be refused) rather than fitting it to the
    /// width and the mask.
    raw: bool,
}

impl ConditionSpec {
    fn condition(&self) -> Result<ArgCondition, SeccompError> {
        let index = if self.raw { self.index } else { self.index % 6 };
        let width = if self.dword {
            ArgWidth::Dword
        } else {
            ArgWidth::Qword
        };
        let fit = |v: u64| {
            if self.dword && !self.raw {
                v & 0xffff_ffff
            } else {
                v
            }
        };
        let mut value = fit(self.value.value());
        let op = match &self.op {
            OpSpec::Eq => ArgOp::Eq,
            OpSpec::Ne => ArgOp::Ne,
            OpSpec::Lt => ArgOp::Lt,
            OpSpec::Le => ArgOp::Le,
            OpSpec::Gt => ArgOp::Gt,
            OpSpec::Ge => ArgOp::Ge,
            OpSpec::MaskedEq(mask) => {
                let mask = fit(mask.value());
                if !self.raw {
                    value &= mask;
                }
                ArgOp::MaskedEq(mask)
            }
        };
        ArgCondition::new(index, op, value, width)
    }
}

#[derive(Debug, Arbitrary)]
enum KernelSpec {
    Older,
    Running,
    Newer,
    Any(u8, u8),
}

impl KernelSpec {
    fn version(&self) -> KernelVersion {
        let running = KernelVersion::running().unwrap_or(KernelVersion::new(6, 0));
        match *self {
            KernelSpec::Older => KernelVersion::new(running.major, running.minor.saturating_sub(1)),
            KernelSpec::Running => running,
            KernelSpec::Newer => KernelVersion::new(running.major, running.minor + 1),
            KernelSpec::Any(major, minor) => {
                KernelVersion::new(u32::from(major % 8), u32::from(minor % 32))
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum FilterSpec {
    RequiresCap(u8),
    UnlessCap(u8),
    OnlyOn(u8),
    ExceptOn(u8),
    MinKernel(KernelSpec),
    UnlessKernel(KernelSpec),
}

#[derive(Debug, Arbitrary)]
struct RuleSpec {
    syscalls: Vec<SyscallSpec>,
    action: ActionSpec,
    conditions: Vec<ConditionSpec>,
    filters: Vec<FilterSpec>,
}

#[derive(Debug, Arbitrary)]
enum BaseSpec {
    Empty(ActionSpec),
    /// The built-in default profile.
    Builtin,
}

#[derive(Debug, Arbitrary)]
struct CapsSpec {
    /// Bit n drops the n-th capability of the allowlist.
    drop: u16,
    ptrace: bool,
}

impl CapsSpec {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::fargate_default();
        for (bit, cap) in Capability::ALL.into_iter().enumerate() {
            if self.drop & (1 << bit) != 0 {
                caps = caps.drop(cap);
            }
        }
        if self.ptrace {
            caps = caps.with_sys_ptrace();
        }
        caps
    }
}

#[derive(Debug, Arbitrary)]
enum NrSpec {
    /// The n-th syscall some rule names.
    Named(u8),
    Table(u16),
    /// The x32 ABI's view of the n-th syscall some rule names.
    X32Named(u8),
    Edge(u8),
    Raw(u32),
}

#[derive(Debug, Arbitrary)]
enum ArchSpec {
    Native,
    I386,
    Aarch64,
    Raw(u32),
}

#[derive(Debug, Arbitrary)]
enum Tweak {
    Exact,
    Plus(u8),
    Minus(u8),
    FlipHigh(u32),
    Or(u64),
    /// Bits outside the mask of a masked condition set.
    OutsideMask,
}

#[derive(Debug, Arbitrary)]
enum ArgSpec {
    /// The value of the n-th condition of the profile, tweaked.
    Near(u8, Tweak),
    Value(ValueSpec),
}

#[derive(Debug, Arbitrary)]
struct CallSpec {
    /// Usually native; sometimes another `AUDIT_ARCH_*`.
    arch: Option<ArchSpec>,
    nr: NrSpec,
    args: [ArgSpec; 6],
}

#[derive(Debug, Arbitrary)]
struct Input {
    base: BaseSpec,
    rules: Vec<RuleSpec>,
    caps: CapsSpec,
    calls: Vec<CallSpec>,
}

fn pick<T: Copy>(items: &[T], i: impl Into<usize>) -> T {
    items[i.into() % items.len()]
}

/// Which compile errors the generated profile deserves.
#[derive(Debug, Default)]
struct Expected {
    unknown_name: bool,
    unknown_number: bool,
    errno_out_of_range: bool,
    empty_rule: bool,
}

/// Builds the profile an input describes, and what errors it may cause.
fn build(input: &Input) -> (SeccompProfile, Expected) {
    let table = syscalls::all();
    let mut expected = Expected::default();
    let mut profile = match &input.base {
        BaseSpec::Empty(action) => SeccompProfile::new(action.action()),
        BaseSpec::Builtin => SeccompProfile::docker_default().clone(),
    };
    let check_errno = |action: Action, expected: &mut Expected| {
        if matches!(action, Action::Errno(e) if e > seccomp::MAX_ERRNO) {
            expected.errno_out_of_range = true;
        }
    };
    check_errno(profile.default_action(), &mut expected);
    for spec in input.rules.iter().take(MAX_RULES) {
        let mut ids = Vec::new();
        for syscall in spec.syscalls.iter().take(MAX_SYSCALLS_PER_RULE) {
            let id = match *syscall {
                SyscallSpec::Name(i) if !table.is_empty() => {
                    SyscallId::Name(pick(table, i).0.to_string())
                }
                SyscallSpec::Number(i) if !table.is_empty() => SyscallId::Number(pick(table, i).1),
                SyscallSpec::Name(_) | SyscallSpec::Number(_) => continue,
                SyscallSpec::Hot(i) => SyscallId::Name(pick(HOT_SYSCALLS, i).to_string()),
                SyscallSpec::RawNumber(nr) => {
                    if syscalls::name(i64::from(nr)).is_none() {
                        expected.unknown_number = true;
                    }
                    SyscallId::Number(i64::from(nr))
                }
                SyscallSpec::OtherArch(i) => SyscallId::Name(pick(OTHER_ARCH_NAMES, i).to_string()),
                SyscallSpec::Unknown => {
                    expected.unknown_name = true;
                    SyscallId::Name("no_such_syscall".to_string())
                }
            };
            ids.push(id);
        }
        if ids.is_empty() {
            expected.empty_rule = true;
        }
        let action = spec.action.action();
        check_errno(action, &mut expected);
        let mut rule = SyscallRule::for_syscalls(ids, action);
        for condition in spec.conditions.iter().take(MAX_CONDITIONS) {
            // A condition the model refuses is left out.
            if let Ok(condition) = condition.condition() {
                rule = rule.with_arg(condition);
            }
        }
        for filter in spec.filters.iter().take(4) {
            rule = match filter {
                FilterSpec::RequiresCap(i) => rule.requires_caps([pick(RULE_CAPS, *i)]),
                FilterSpec::UnlessCap(i) => rule.unless_caps([pick(RULE_CAPS, *i)]),
                FilterSpec::OnlyOn(i) => rule.only_on([pick(ARCHES, *i)]),
                FilterSpec::ExceptOn(i) => rule.except_on([pick(ARCHES, *i)]),
                FilterSpec::MinKernel(k) => rule.min_kernel(k.version()),
                FilterSpec::UnlessKernel(k) => rule.unless_kernel(k.version()),
            };
        }
        profile.push_rule(rule);
    }
    (profile, expected)
}

/// Every condition of the profile, for arguments near their values.
fn conditions(profile: &SeccompProfile) -> Vec<ArgCondition> {
    profile
        .rules()
        .iter()
        .flat_map(|r| r.args().iter().copied())
        .collect()
}

/// The numbers on the build target of the syscalls the profile's rules name.
fn named_numbers(profile: &SeccompProfile) -> Vec<i64> {
    profile
        .rules()
        .iter()
        .flat_map(|r| r.syscalls())
        .filter_map(|id| match id {
            SyscallId::Name(name) => syscalls::number(name),
            SyscallId::Number(nr) => Some(*nr),
        })
        .collect()
}

fn argument(spec: &ArgSpec, conditions: &[ArgCondition]) -> u64 {
    match spec {
        ArgSpec::Value(v) => v.value(),
        ArgSpec::Near(_, _) if conditions.is_empty() => 0,
        ArgSpec::Near(i, tweak) => {
            let c = pick(conditions, *i);
            let v = c.value();
            match *tweak {
                Tweak::Exact => v,
                Tweak::Plus(d) => v.wrapping_add(u64::from(d)),
                Tweak::Minus(d) => v.wrapping_sub(u64::from(d)),
                Tweak::FlipHigh(h) => v ^ (u64::from(h) << 32),
                Tweak::Or(bits) => v | bits,
                Tweak::OutsideMask => match c.op() {
                    ArgOp::MaskedEq(mask) => v | !mask,
                    _ => !v,
                },
            }
        }
    }
}

fn call(spec: &CallSpec, named: &[i64], conditions: &[ArgCondition]) -> SeccompData {
    let table = syscalls::all();
    let nr: i64 = match spec.nr {
        NrSpec::Named(i) if !named.is_empty() => pick(named, i),
        NrSpec::X32Named(i) if !named.is_empty() => pick(named, i) | 0x4000_0000,
        NrSpec::Named(_) | NrSpec::X32Named(_) => 0,
        NrSpec::Table(i) if !table.is_empty() => pick(table, i).1,
        NrSpec::Table(i) => i64::from(i),
        NrSpec::Edge(i) => i64::from(pick(EDGE_NUMBERS, i)),
        NrSpec::Raw(nr) => i64::from(nr),
    };
    let mut data = SeccompData::native(nr, [0; 6]);
    for (arg, spec) in data.args.iter_mut().zip(&spec.args) {
        *arg = argument(spec, conditions);
    }
    if let Some(arch) = &spec.arch {
        data.arch = match *arch {
            ArchSpec::Native => data.arch,
            ArchSpec::I386 => AUDIT_ARCH_I386,
            ArchSpec::Aarch64 => AUDIT_ARCH_AARCH64,
            ArchSpec::Raw(a) => a,
        };
    }
    data
}

/// The compiled programs as plain instructions for [`cbpf`].
pub(super) fn programs(compiled: &CompiledSeccomp) -> Vec<Vec<cbpf::Insn>> {
    compiled
        .programs()
        .iter()
        .map(|p| {
            p.iter()
                .map(|i| cbpf::Insn {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect()
        })
        .collect()
}

/// Asserts that the model, the compiled programs in [`cbpf`] and the crate's
/// interpreter agree on `data`.
pub(super) fn check_call(
    profile: &SeccompProfile,
    compiled: &CompiledSeccomp,
    programs: &[Vec<cbpf::Insn>],
    caps: Capabilities,
    data: &SeccompData,
) {
    let model = profile.decide_call(caps, data);
    let bpf = cbpf::run_stack(programs, data);
    assert_eq!(
        bpf,
        model.to_ret(),
        "the compiled programs return {bpf:#x} ({:?}) where the model says {model:?} for \
         {data:x?} with capabilities {caps}",
        Action::from_ret(bpf)
    );
    let crate_bpf = compiled.evaluate(data);
    assert_eq!(
        crate_bpf, bpf,
        "the crate's interpreter returns {crate_bpf:#x}, this one {bpf:#x}, for {data:x?}"
    );
}

/// Checks a compile error against what the profile deserves.
pub(super) fn check_error(error: &SeccompError, deserved: impl Fn(&SeccompError) -> bool) {
    assert!(
        deserved(error),
        "the profile should compile, but: {error} ({error:?})"
    );
}

/// The differential target.
pub fn seccomp_differential(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (profile, expected) = build(&input);
    let caps = input.caps.capabilities();
    let compiled = match seccomp::compile(&profile, caps) {
        Ok(compiled) => compiled,
        Err(error) => {
            return check_error(&error, |e| match e {
                SeccompError::UnknownSyscall { .. } => expected.unknown_name,
                SeccompError::UnknownSyscallNumber { .. } => expected.unknown_number,
                SeccompError::ErrnoOutOfRange { .. } => expected.errno_out_of_range,
                SeccompError::EmptyRule { .. } => expected.empty_rule,
                SeccompError::ProgramTooLong { .. } | SeccompError::UnsupportedArch { .. } => true,
                _ => false,
            })
        }
    };
    assert!(
        !(expected.unknown_name
            || expected.unknown_number
            || expected.errno_out_of_range
            || expected.empty_rule),
        "a profile with a mistake compiled: {expected:?}"
    );
    let programs = programs(&compiled);
    let summary = SeccompSummary::new(&profile, caps)
        .unwrap_or_else(|e| panic!("the profile compiles but cannot be summarized: {e}"));
    let named = named_numbers(&profile);
    let conditions = conditions(&profile);
    for spec in input.calls.iter().take(MAX_CALLS) {
        let data = call(spec, &named, &conditions);
        check_call(&profile, &compiled, &programs, caps, &data);
        check_summary(&summary, &profile, caps, &data);
    }
}

/// Asserts that the summary of the profile tells what the model decides for a
/// native call.
pub(super) fn check_summary(
    summary: &SeccompSummary,
    profile: &SeccompProfile,
    caps: Capabilities,
    data: &SeccompData,
) {
    if data.arch != SeccompData::native(0, [0; 6]).arch {
        return;
    }
    let model = profile.decide_call(caps, data);
    let said = summary.decide(data.nr as u32, &data.args);
    assert_eq!(
        said, model,
        "the summary says {said:?} where the model says {model:?} for {data:x?} \
         with capabilities {caps}, profile {profile:?}"
    );
}
