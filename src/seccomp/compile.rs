//! Compilation of a profile into the BPF programs to install.
//!
//! A profile becomes (at most) two programs, installed in this order:
//!
//! 1. **The allowlist**: every syscall named by a rule that applies to the container,
//!    with the rule's argument conditions, returns ALLOW; everything else gets the
//!    profile's default action. A binary search over the syscall number finds the
//!    syscall; `seccompiler` compiles the argument conditions. A call from another
//!    architecture kills the process. Left out when the default action is ALLOW, since
//!    it could only say ALLOW.
//! 2. **The guard** (hand-written here): kills calls from another architecture; refuses
//!    x32-ABI numbers with `EPERM`; answers numbers outside the syscall table with
//!    `ENOSYS`; then returns the action of the first matching non-ALLOW rule, rules
//!    ordered from the most restrictive action to the least (profile order among
//!    equals); otherwise ALLOW.
//!
//! The kernel runs every installed filter and keeps the most restrictive result; among
//! `ERRNO` results, the errno of the most recently installed filter. Installing the
//! guard last therefore lets its `ENOSYS` and its rules' errnos override the
//! allowlist's default `EPERM`, while a kill from either program still kills. That gives
//! exactly the semantics of [`SeccompProfile::decide`], which the tests check through
//! the [interpreter](super::bpf) for every syscall number.
//!
//! A profile needing several errno values needs no extra filter: they all live in the
//! guard, whose first match decides.

use std::borrow::Cow;
use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::capabilities::Capabilities;

use super::bpf::{self, op, NATIVE_AUDIT_ARCH};
use super::profile::{
    Action, ArgCondition, ArgOp, ArgWidth, SeccompProfile, SyscallId, GUARD_OTHER_ARCH,
    GUARD_UNKNOWN_NUMBER, GUARD_X32, TERMINAL_GUARD, TERMINAL_INJECTION, X32_SYSCALL_BIT,
};
use super::{syscalls, CompiledSeccomp, ProgramKind, SeccompError};

/// A rule of the profile that applies to the container, with its syscalls resolved to
/// numbers of the build target: what the programs are built from, and what
/// [`explain`](super::explain) summarizes.
pub(crate) struct ResolvedRule<'a> {
    /// The syscall numbers, in the rule's order.
    pub(crate) numbers: Vec<u32>,
    pub(crate) action: Action,
    /// The argument conditions, all of which must hold: the profile rule's, or made
    /// for the terminal guard.
    pub(crate) args: Cow<'a, [ArgCondition]>,
}

/// Compiles `profile` for a container holding `caps`.
///
/// Fails on the first mistake in the profile (a syscall name that exists on no
/// architecture, a number outside the table, an errno above 4095), if a program would
/// be too long for the kernel, or if seccompiler refuses the allowlist.
pub fn compile(
    profile: &SeccompProfile,
    caps: Capabilities,
) -> Result<CompiledSeccomp, SeccompError> {
    let target_arch = target_arch()?;
    let rules = resolve_rules(profile, caps)?;

    let mut programs = Vec::with_capacity(2);
    let mut kinds = Vec::with_capacity(2);
    if profile.default_action() != Action::Allow {
        programs.push(allowlist(&rules, profile.default_action(), target_arch)?);
        kinds.push(ProgramKind::Allowlist);
    }
    programs.push(guard(&rules)?);
    kinds.push(ProgramKind::Guard);

    for (program, kind) in programs.iter().zip(&kinds) {
        bpf::check(program).map_err(|source| SeccompError::InvalidProgram {
            program: *kind,
            source,
        })?;
    }
    Ok(CompiledSeccomp { programs, kinds })
}

/// The rules of `profile` that apply to a container holding `caps`, in profile order,
/// then the terminal guard's (step 3 of [`SeccompProfile`]'s semantics), resolved for
/// the build target, after checking the whole profile.
pub(crate) fn resolve_rules(
    profile: &SeccompProfile,
    caps: Capabilities,
) -> Result<Vec<ResolvedRule<'_>>, SeccompError> {
    target_arch()?;
    check_action(profile.default_action(), None)?;
    let mut rules = Vec::new();
    for (index, rule) in profile.rules().iter().enumerate() {
        check_action(rule.action(), Some(index))?;
        if rule.syscalls().is_empty() {
            return Err(SeccompError::EmptyRule { rule: index });
        }
        // Resolve every name, even of rules that do not apply to these capabilities: a
        // typo is a mistake whatever the container holds.
        let mut numbers = Vec::new();
        for syscall in rule.syscalls() {
            if let Some(nr) = resolve(syscall, index)? {
                numbers.push(nr);
            }
        }
        if !numbers.is_empty() && rule.applies_to(caps) {
            rules.push(ResolvedRule {
                numbers,
                action: rule.action(),
                args: Cow::Borrowed(rule.args()),
            });
        }
    }
    // The terminal guard (step 3), as rules after the profile's own, so that the
    // profile's refusals keep precedence: where the default action lets calls through,
    // one EPERM rule per injecting `cmd`; where it refuses them, one per injecting `cmd`
    // and per rule of the profile that lets `ioctl` through, with that rule's
    // conditions too, so that a call no rule matches still gets the default action.
    if let Some(ioctl) = syscalls::number("ioctl").and_then(|nr| u32::try_from(nr).ok()) {
        let guard = |args: &[ArgCondition], injection: &ArgCondition| ResolvedRule {
            numbers: vec![ioctl],
            action: TERMINAL_GUARD,
            args: Cow::Owned(args.iter().chain([injection]).copied().collect()),
        };
        let mut guards = Vec::new();
        for [injection] in &TERMINAL_INJECTION {
            if profile.default_action().lets_through() {
                guards.push(guard(&[], injection));
                continue;
            }
            for rule in &rules {
                if rule.action.lets_through()
                    && rule.numbers.contains(&ioctl)
                    && !rule.args.iter().any(|c| c.excludes_dword(injection))
                {
                    guards.push(guard(&rule.args, injection));
                }
            }
        }
        rules.extend(guards);
    }
    Ok(rules)
}

fn target_arch() -> Result<TargetArch, SeccompError> {
    if cfg!(target_arch = "x86_64") && syscalls::ARCH_SUPPORTED {
        Ok(TargetArch::x86_64)
    } else {
        Err(SeccompError::UnsupportedArch {
            arch: std::env::consts::ARCH,
        })
    }
}

fn check_action(action: Action, rule: Option<usize>) -> Result<(), SeccompError> {
    match action {
        Action::Errno(errno) if errno > super::profile::MAX_ERRNO => {
            Err(SeccompError::ErrnoOutOfRange { errno, rule })
        }
        _ => Ok(()),
    }
}

/// The number of `syscall` on the build target; `None` for a name that exists only on
/// other architectures (skipped, as libseccomp does).
fn resolve(syscall: &SyscallId, rule: usize) -> Result<Option<u32>, SeccompError> {
    let nr = match syscall {
        SyscallId::Name(name) => match syscalls::number(name) {
            Some(nr) => nr,
            None if syscalls::exists_elsewhere(name) => return Ok(None),
            None => {
                return Err(SeccompError::UnknownSyscall {
                    name: name.clone(),
                    rule,
                })
            }
        },
        SyscallId::Number(nr) if syscalls::name(*nr).is_some() => *nr,
        SyscallId::Number(nr) => {
            return Err(SeccompError::UnknownSyscallNumber { number: *nr, rule });
        }
    };
    // Table numbers are small and non-negative.
    u32::try_from(nr)
        .map(Some)
        .map_err(|_| SeccompError::UnknownSyscallNumber { number: nr, rule })
}

/// The allowlist program: calls matching any rule return ALLOW, others the default.
///
/// seccompiler compiles the argument conditions of each syscall that has some. The
/// program around them is a binary search over the syscall number: a number allowed
/// whatever its arguments returns ALLOW at its leaf, a number with conditions enters
/// its seccompiler block, any other number gets the default action. A linear
/// chain of ~370 syscalls would cost the kernel about a millisecond at every install
/// (it emulates the filter for each syscall number to build its action cache) and
/// hundreds of comparisons per unlisted call; the search costs a dozen.
fn allowlist(
    rules: &[ResolvedRule<'_>],
    default: Action,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    // None: allowed whatever the arguments; Some: allowed if one of the patterns holds.
    let mut chains: BTreeMap<u32, Option<Vec<Vec<ArgCondition>>>> = BTreeMap::new();
    for rule in rules {
        for &nr in &rule.numbers {
            let chain = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
            if rule.args.is_empty() {
                *chain = None;
            } else if let Some(patterns) = chain {
                if !patterns.iter().any(|p| p[..] == rule.args[..]) {
                    patterns.push(rule.args.to_vec());
                }
            }
        }
    }
    let backend = |source| SeccompError::Backend {
        program: ProgramKind::Allowlist,
        source,
    };
    let too_large = |e| match e {
        seccompiler::BackendError::FilterTooLarge(len) => SeccompError::ProgramTooLong {
            program: ProgramKind::Allowlist,
            len,
        },
        other => backend(other),
    };

    // Each syscall with conditions becomes its own small seccompiler program, entered
    // only with that number loaded: its comparison of the number always holds, its
    // rules end in ALLOW or the default, and its jumps stay inside it. Only its
    // prologue (the arch check and the load of the number, done once by this program)
    // is dropped.
    let mut asm = Assembler::default();
    let mut blocks = BTreeMap::new();
    for (nr, chain) in &chains {
        let Some(patterns) = chain else { continue };
        let mut seccompiler_rules = Vec::new();
        for pattern in patterns {
            let conditions = pattern
                .iter()
                .map(condition_to_seccompiler)
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            seccompiler_rules.push(SeccompRule::new(conditions).map_err(backend)?);
        }
        let filter = SeccompFilter::new(
            BTreeMap::from([(i64::from(*nr), seccompiler_rules)]),
            action_to_seccompiler(default),
            action_to_seccompiler(Action::Allow),
            arch,
        )
        .map_err(backend)?;
        let program = BpfProgram::try_from(filter).map_err(too_large)?;
        let body = program
            .get(SECCOMPILER_PROLOGUE..)
            .filter(|_| is_seccompiler_prologue(&program))
            .ok_or_else(|| SeccompError::InvalidProgram {
                program: ProgramKind::Allowlist,
                source: bpf::BpfError::BadInstruction {
                    pc: 0,
                    code: program.first().map_or(0, |i| i.code),
                    k: program.first().map_or(0, |i| i.k),
                },
            })?;
        let mut first = None;
        for insn in body.iter().rev() {
            first = Some(asm.push(insn.clone()));
        }
        if let Some(label) = first {
            blocks.insert(*nr, label);
        }
        if asm.len() >= bpf::MAX_INSNS {
            return Err(SeccompError::ProgramTooLong {
                program: ProgramKind::Allowlist,
                len: asm.len(),
            });
        }
    }
    let refuse = asm.ret(default);
    let allow = asm.ret(Action::Allow);

    let listed: Vec<(u32, Label)> = chains
        .keys()
        .map(|nr| (*nr, blocks.get(nr).copied().unwrap_or(allow)))
        .collect();
    // (Each statement below falls through to the instruction emitted before it.)
    let entry = dispatch(&mut asm, &listed, refuse);
    if entry.0 != asm.len() {
        // Nothing listed: the search is empty and the entry is the default return.
        let distance = u32::try_from(asm.distance(entry)).unwrap_or(u32::MAX);
        asm.stmt(op::JA, distance);
    }
    let load_nr = asm.stmt(op::LD_ABS, OFFSET_NR);
    let kill = asm.ret(GUARD_OTHER_ARCH);
    asm.jump(op::JEQ_K, NATIVE_AUDIT_ARCH, load_nr, kill);
    asm.stmt(op::LD_ABS, OFFSET_ARCH);

    let program = asm.finish();
    if program.len() >= bpf::MAX_INSNS {
        return Err(SeccompError::ProgramTooLong {
            program: ProgramKind::Allowlist,
            len: program.len(),
        });
    }
    Ok(program)
}

/// Instructions seccompiler puts before the first syscall comparison: load the arch,
/// compare it, kill on mismatch, load the number.
const SECCOMPILER_PROLOGUE: usize = 4;

fn is_seccompiler_prologue(program: &[sock_filter]) -> bool {
    matches!(
        program,
        [a, b, c, d, ..]
            if a.code == op::LD_ABS && a.k == OFFSET_ARCH
                && b.code == op::JEQ_K && b.k == NATIVE_AUDIT_ARCH
                && c.code == op::RET_K
                && d.code == op::LD_ABS && d.k == OFFSET_NR
    )
}

/// A binary search over `listed` (sorted by number), with the number in the
/// accumulator: each listed number continues at its label, anything else at `miss`.
fn dispatch(asm: &mut Assembler, listed: &[(u32, Label)], miss: Label) -> Label {
    if listed.len() <= 3 {
        let mut next = miss;
        for &(nr, target) in listed.iter().rev() {
            next = asm.jump(op::JEQ_K, nr, target, next);
        }
        return next;
    }
    let (low, high) = listed.split_at(listed.len() / 2);
    let pivot = high[0].0;
    let high_label = dispatch(asm, high, miss);
    let low_label = dispatch(asm, low, miss);
    asm.jump(op::JGE_K, pivot, high_label, low_label)
}

fn action_to_seccompiler(action: Action) -> seccompiler::SeccompAction {
    use seccompiler::SeccompAction as S;
    match action {
        Action::Allow => S::Allow,
        Action::Errno(errno) => S::Errno(errno),
        Action::KillProcess => S::KillProcess,
        Action::KillThread => S::KillThread,
        Action::Trap => S::Trap,
        Action::Log => S::Log,
    }
}

fn condition_to_seccompiler(
    c: &ArgCondition,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    let width = match c.width() {
        ArgWidth::Dword => SeccompCmpArgLen::Dword,
        ArgWidth::Qword => SeccompCmpArgLen::Qword,
    };
    let op = match c.op() {
        ArgOp::Eq => SeccompCmpOp::Eq,
        ArgOp::Ne => SeccompCmpOp::Ne,
        ArgOp::Lt => SeccompCmpOp::Lt,
        ArgOp::Le => SeccompCmpOp::Le,
        ArgOp::Gt => SeccompCmpOp::Gt,
        ArgOp::Ge => SeccompCmpOp::Ge,
        ArgOp::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
    };
    SeccompCondition::new(c.index(), width, op, c.value())
}

/// The guard program (see the module documentation).
fn guard(rules: &[ResolvedRule<'_>]) -> Result<BpfProgram, SeccompError> {
    // Non-ALLOW rules, most restrictive first; the sort is stable, so profile order
    // decides among equals (the first Errno rule wins).
    let mut denials: Vec<&ResolvedRule<'_>> =
        rules.iter().filter(|r| r.action != Action::Allow).collect();
    denials.sort_by_key(|r| r.action.severity());

    // The program is assembled backwards, from the last instruction to the first, so
    // that every (forward) jump target is already placed when the jump is emitted.
    let mut asm = Assembler::default();
    let kill = asm.ret(GUARD_OTHER_ARCH);
    let enosys = asm.ret(GUARD_UNKNOWN_NUMBER);
    let eperm = asm.ret(GUARD_X32);
    let mut next = asm.ret(Action::Allow);

    for rule in denials.iter().rev() {
        for &nr in rule.numbers.iter().rev() {
            let matched = asm.ret(rule.action);
            let mut pass = matched;
            for condition in rule.args.iter().rev() {
                pass = asm.condition(condition, pass, next);
            }
            asm.jump(op::JEQ_K, nr, pass, next);
            next = asm.stmt(op::LD_ABS, OFFSET_NR);
        }
    }

    // Numbers outside the table: ENOSYS. The ranges are visited from the highest down,
    // so the emitted code tests them from the lowest up.
    let ranges = syscalls::known_ranges();
    let mut upper_bound: Option<u32> = None;
    for &(lo, hi) in ranges.iter().rev() {
        // Gap above this range: (hi, upper_bound) exclusive, or everything above.
        let above = match upper_bound {
            None => asm.jump(op::JGT_K, hi, enosys, next),
            Some(bound) => {
                // hi < nr < bound  <=>  nr >= hi + 1 and nr <= bound - 1
                let in_gap = asm.jump(op::JGE_K, bound, next, enosys);
                asm.jump(op::JGT_K, hi, in_gap, next)
            }
        };
        next = above;
        upper_bound = Some(lo);
    }
    if let Some(lowest) = upper_bound.filter(|&lo| lo > 0) {
        next = asm.jump(op::JGE_K, lowest, next, enosys);
    }

    // (Each statement below falls through to the instruction emitted before it.)
    if cfg!(target_arch = "x86_64") {
        asm.jump(op::JSET_K, X32_SYSCALL_BIT, eperm, next);
    }
    next = asm.stmt(op::LD_ABS, OFFSET_NR);
    asm.jump(op::JEQ_K, NATIVE_AUDIT_ARCH, next, kill);
    asm.stmt(op::LD_ABS, OFFSET_ARCH);

    let program = asm.finish();
    if program.len() >= bpf::MAX_INSNS {
        return Err(SeccompError::ProgramTooLong {
            program: ProgramKind::Guard,
            len: program.len(),
        });
    }
    Ok(program)
}

const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARGS: u32 = 16;

/// An instruction of the program being assembled, counted from the end: label `n` is
/// the instruction emitted when `n - 1` instructions (all placed after it) already were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// A backwards assembler for forward-only classic BPF.
///
/// Instructions are emitted last-first; a jump's targets are labels of instructions
/// already emitted. A conditional jump whose target is more than 255 instructions away
/// goes through an unconditional `ja` (32-bit offset) placed right after it.
#[derive(Default)]
struct Assembler {
    reversed: Vec<sock_filter>,
}

impl Assembler {
    fn len(&self) -> usize {
        self.reversed.len()
    }

    fn push(&mut self, insn: sock_filter) -> Label {
        self.reversed.push(insn);
        Label(self.reversed.len())
    }

    fn stmt(&mut self, code: u16, k: u32) -> Label {
        self.push(sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        })
    }

    fn ret(&mut self, action: Action) -> Label {
        self.stmt(op::RET_K, action.to_ret())
    }

    /// Instructions between the next emitted instruction and `target`.
    fn distance(&self, target: Label) -> usize {
        self.reversed.len() - target.0
    }

    /// A conditional jump to `jt` if the comparison holds, else to `jf`.
    fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) -> Label {
        let jt = self.near(jt);
        let jf = self.near(jf);
        let offset = |asm: &Self, target: Label| {
            u8::try_from(asm.distance(target))
                .expect("near() places every conditional jump target within 255 instructions")
        };
        let (t, f) = (offset(self, jt), offset(self, jf));
        self.push(sock_filter {
            code,
            jt: t,
            jf: f,
            k,
        })
    }

    /// `target`, or a trampoline to it if a conditional jump could not reach it.
    fn near(&mut self, target: Label) -> Label {
        // One more trampoline may still be placed between the jump and `target`.
        if self.distance(target) < usize::from(u8::MAX) {
            return target;
        }
        let k = u32::try_from(self.distance(target)).unwrap_or(u32::MAX);
        self.stmt(op::JA, k)
    }

    /// Tests `c`, continuing at `pass` if it holds and at `fail` if not.
    fn condition(&mut self, c: &ArgCondition, pass: Label, fail: Label) -> Label {
        let low_offset = OFFSET_ARGS + 8 * u32::from(c.index());
        let high_offset = low_offset + 4;
        let value = c.value();
        let (v_hi, v_lo) = ((value >> 32) as u32, value as u32);

        // The low word, compared unsigned (the whole test for a Dword condition).
        match c.op() {
            ArgOp::Eq => self.jump(op::JEQ_K, v_lo, pass, fail),
            ArgOp::Ne => self.jump(op::JEQ_K, v_lo, fail, pass),
            ArgOp::Gt => self.jump(op::JGT_K, v_lo, pass, fail),
            ArgOp::Ge => self.jump(op::JGE_K, v_lo, pass, fail),
            ArgOp::Lt => self.jump(op::JGE_K, v_lo, fail, pass),
            ArgOp::Le => self.jump(op::JGT_K, v_lo, fail, pass),
            ArgOp::MaskedEq(mask) => {
                self.jump(op::JEQ_K, v_lo, pass, fail);
                self.stmt(op::AND_K, mask as u32)
            }
        };
        let low_label = self.stmt(op::LD_ABS, low_offset);
        if c.width() == ArgWidth::Dword {
            return low_label;
        }
        // Qword: decide on the high word when it differs, else on the low word.
        match c.op() {
            ArgOp::Eq => {
                self.jump(op::JEQ_K, v_hi, low_label, fail);
            }
            ArgOp::Ne => {
                self.jump(op::JEQ_K, v_hi, low_label, pass);
            }
            ArgOp::Gt | ArgOp::Ge => {
                let equal = self.jump(op::JEQ_K, v_hi, low_label, fail);
                self.jump(op::JGT_K, v_hi, pass, equal);
            }
            ArgOp::Lt | ArgOp::Le => {
                let equal = self.jump(op::JEQ_K, v_hi, low_label, pass);
                self.jump(op::JGT_K, v_hi, fail, equal);
            }
            ArgOp::MaskedEq(mask) => {
                self.jump(op::JEQ_K, v_hi, low_label, fail);
                self.stmt(op::AND_K, (mask >> 32) as u32);
            }
        }
        self.stmt(op::LD_ABS, high_offset)
    }

    fn finish(mut self) -> BpfProgram {
        self.reversed.reverse();
        self.reversed
    }
}
