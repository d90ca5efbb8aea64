//! What a seccomp profile enforces, as a typed summary: which syscalls a container is
//! allowed, which are refused and how, which depend on their arguments, and what the
//! guard program adds for every profile.
//!
//! [`SeccompSummary::new`] computes the summary from the rules the compiler builds the
//! programs from (the profile's rules that apply to the container's capabilities, the
//! running kernel and the build target, resolved to syscall numbers), with the
//! compiler's precedence: the most restrictive matching rule wins, the first of several
//! `Errno` rules, the default action if none matches. Its
//! [`Display`](std::fmt::Display) is for people; with the `policy` feature,
//! [`SeccompSummary::to_json`] gives a versioned JSON document (schema below).
//!
//! ```
//! use tasksandbox::seccomp::{SeccompProfile, SeccompSummary};
//! use tasksandbox::Capabilities;
//! # if !tasksandbox::seccomp::syscalls::ARCH_SUPPORTED { return Ok(()); }
//! let summary =
//!     SeccompSummary::new(SeccompProfile::docker_default(), Capabilities::fargate_default())?;
//! let clone = summary.filtered.iter().find(|f| f.syscall == "clone").expect("filtered");
//! assert_eq!(
//!     clone.to_string(),
//!     "clone: allowed if flags & 0x7e020000 == 0; otherwise EPERM"
//! );
//! println!("{summary}");
//! # Ok::<(), tasksandbox::seccomp::SeccompError>(())
//! ```
//!
//! # JSON schema, version 1
//!
//! ```text
//! {
//!   "schema": "tasksandbox.seccomp-summary",
//!   "version": 1,
//!   "arch": "x86_64",
//!   "capabilities": ["CAP_CHOWN", ...],
//!   "default_action": ACTION,
//!   "allowed": ["accept", ...],                 // unconditionally, sorted by name
//!   "logged": [...],                            // allowed and logged (SCMP_ACT_LOG)
//!   "refused": [{"action": ACTION, "syscalls": [...]}, ...],
//!                                               // one group per action, most restrictive
//!                                               // first, then by errno
//!   "filtered": [{                              // decided by the arguments, sorted by name
//!     "syscall": "clone", "number": 56,
//!     "cases": [{"action": ACTION, "when": [CONDITION, ...]}, ...],
//!                                               // the first case whose conditions all
//!                                               // hold decides
//!     "otherwise": ACTION
//!   }, ...],
//!   "guard": {
//!     "x32": ACTION or null,                    // null where there is no x32 ABI
//!     "unknown_numbers": ACTION,
//!     "known_ranges": [[0, 336], [424, 469]],   // numbers outside get unknown_numbers
//!     "other_architectures": ACTION
//!   }
//! }
//! ACTION    = {"action": "allow" | "errno" | "kill_process" | "kill_thread" | "trap" | "log",
//!              "errno": 1, "errno_name": "EPERM"}   // errno and errno_name only for "errno";
//!                                                   // errno_name null if it has none
//! CONDITION = {"arg": 0, "name": "flags", "bits": 64 | 32,
//!              "op": "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "masked_eq",
//!              "value": "0x0", "mask": "0x7e020000"}  // mask only for masked_eq;
//!                                                     // values as hex strings (64-bit safe)
//! ```
//!
//! A later version may add keys; a change to existing keys bumps `version`.

use std::collections::BTreeMap;
use std::fmt;

use crate::capabilities::Capabilities;

use super::compile::resolve_rules;
use super::profile::{
    Action, ArgCondition, ArgOp, ArgWidth, SeccompProfile, GUARD_OTHER_ARCH, GUARD_UNKNOWN_NUMBER,
    GUARD_X32,
};
use super::{syscalls, SeccompError};

/// What a profile enforces for one container. See [the module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeccompSummary {
    /// The architecture the profile was resolved for (the build target's).
    pub arch: &'static str,
    /// The capabilities the summary is for.
    pub capabilities: Capabilities,
    /// The profile's default action.
    pub default_action: Action,
    /// Syscalls allowed whatever their arguments, sorted by name.
    pub allowed: Vec<&'static str>,
    /// Syscalls allowed and logged whatever their arguments, sorted by name.
    pub logged: Vec<&'static str>,
    /// Syscalls refused whatever their arguments, grouped by action: the most
    /// restrictive first, errnos in increasing order.
    pub refused: Vec<ActionGroup>,
    /// Syscalls whose arguments decide, sorted by name.
    pub filtered: Vec<FilteredSyscall>,
    /// What the guard program adds for calls no rule can match.
    pub guard: GuardSummary,
}

/// Syscalls that all get one action.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionGroup {
    /// The action.
    pub action: Action,
    /// The syscalls, sorted by name.
    pub syscalls: Vec<&'static str>,
}

/// A syscall whose arguments decide what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilteredSyscall {
    /// The syscall's name.
    pub syscall: &'static str,
    /// Its number on the build target.
    pub number: u32,
    /// The cases, in order: the first whose conditions all hold decides.
    pub cases: Vec<Case>,
    /// The action when no case holds.
    pub otherwise: Action,
}

/// One case of a [`FilteredSyscall`]: an action if all conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Case {
    /// The action.
    pub action: Action,
    /// The conditions, all of which must hold.
    pub when: Vec<ArgCondition>,
}

/// What the guard program does for every profile, whatever its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardSummary {
    /// The action for x32-ABI numbers (bit `0x4000_0000`); `None` where the build
    /// target has no x32 ABI.
    pub x32: Option<Action>,
    /// The action for numbers outside [`GuardSummary::known_ranges`].
    pub unknown_numbers: Action,
    /// The inclusive ranges of the build target's syscall table.
    pub known_ranges: Vec<(u32, u32)>,
    /// The action for calls made through another architecture's convention.
    pub other_architectures: Action,
}

impl FilteredSyscall {
    /// What happens to a call with `args`: the first case whose conditions all hold,
    /// else [`FilteredSyscall::otherwise`].
    pub fn decide(&self, args: &[u64; 6]) -> Action {
        self.cases
            .iter()
            .find(|case| case.when.iter().all(|c| c.matches(args)))
            .map_or(self.otherwise, |case| case.action)
    }
}

impl SeccompSummary {
    /// Summarizes `profile` for a container holding `caps`, on the build target.
    ///
    /// Fails as [`compile`](super::compile) does on a mistake in the profile (a syscall
    /// that exists nowhere, an errno out of range), or on an unsupported architecture.
    pub fn new(profile: &SeccompProfile, caps: Capabilities) -> Result<Self, SeccompError> {
        let rules = resolve_rules(profile, caps)?;
        let default = profile.default_action();

        // The rules naming each number, in profile order.
        let mut by_number: BTreeMap<u32, Vec<(Action, &[ArgCondition])>> = BTreeMap::new();
        for rule in &rules {
            for &nr in &rule.numbers {
                let entry = by_number.entry(nr).or_default();
                // A rule naming a syscall twice is one rule for it.
                if !entry
                    .last()
                    .is_some_and(|(a, c)| *a == rule.action && **c == rule.args[..])
                {
                    entry.push((rule.action, &rule.args[..]));
                }
            }
        }

        let mut allowed = Vec::new();
        let mut logged = Vec::new();
        let mut refused: BTreeMap<(u8, u32), Vec<&'static str>> = BTreeMap::new();
        let mut filtered = Vec::new();
        for &(name, nr) in syscalls::all() {
            let Ok(nr) = u32::try_from(nr) else { continue };
            let matching = by_number.get(&nr).map_or(&[][..], Vec::as_slice);
            match verdict(matching, default) {
                Verdict::Always(Action::Allow) => allowed.push(name),
                Verdict::Always(Action::Log) => logged.push(name),
                Verdict::Always(action) => refused.entry(group_key(action)).or_default().push(name),
                Verdict::Depends { cases, otherwise } => filtered.push(FilteredSyscall {
                    syscall: name,
                    number: nr,
                    cases,
                    otherwise,
                }),
            }
        }
        allowed.sort_unstable();
        logged.sort_unstable();
        filtered.sort_by_key(|f| f.syscall);
        let refused = refused
            .into_iter()
            .map(|((severity, data), mut syscalls)| {
                syscalls.sort_unstable();
                ActionGroup {
                    action: action_of_key(severity, data),
                    syscalls,
                }
            })
            .collect();

        Ok(SeccompSummary {
            arch: std::env::consts::ARCH,
            capabilities: caps,
            default_action: default,
            allowed,
            logged,
            refused,
            filtered,
            guard: GuardSummary {
                x32: cfg!(target_arch = "x86_64").then(|| profile.guarded(GUARD_X32)),
                unknown_numbers: profile.guarded(GUARD_UNKNOWN_NUMBER),
                known_ranges: syscalls::known_ranges(),
                other_architectures: GUARD_OTHER_ARCH,
            },
        })
    }

    /// What happens to the native call `nr` with `args`, read from the summary (for
    /// numbers in the table; others get [`GuardSummary::unknown_numbers`] or the x32
    /// action). It agrees with [`SeccompProfile::decide`]; the tests check it does.
    pub fn decide(&self, nr: u32, args: &[u64; 6]) -> Action {
        if let Some(x32) = self.guard.x32.filter(|_| nr & 0x4000_0000 != 0) {
            return x32;
        }
        let Some(name) = syscalls::name(i64::from(nr)) else {
            return self.guard.unknown_numbers;
        };
        if let Some(f) = self.filtered.iter().find(|f| f.number == nr) {
            return f.decide(args);
        }
        if self.allowed.contains(&name) {
            return Action::Allow;
        }
        if self.logged.contains(&name) {
            return Action::Log;
        }
        self.refused
            .iter()
            .find(|g| g.syscalls.contains(&name))
            .map_or(self.default_action, |g| g.action)
    }
}

/// What the rules naming one syscall make of it.
enum Verdict {
    Always(Action),
    Depends { cases: Vec<Case>, otherwise: Action },
}

/// The verdict for a syscall named by `rules` (in profile order), as the model and the
/// programs decide: the most restrictive matching rule, the first of equally
/// restrictive ones, else `default`.
fn verdict(rules: &[(Action, &[ArgCondition])], default: Action) -> Verdict {
    // The rule that always matches and wins among those that always match.
    let mut always: Option<(usize, Action)> = None;
    for (i, &(action, args)) in rules.iter().enumerate() {
        if args.is_empty() && always.is_none_or(|(_, best)| action.severity() < best.severity()) {
            always = Some((i, action));
        }
    }
    // The conditional rules that can decide when they match: more restrictive than the
    // rule that always matches, or as restrictive and earlier. One that gives the
    // fallback's own action is kept too: it shadows the later cases of its rank.
    let mut cases: Vec<(usize, Case)> = rules
        .iter()
        .enumerate()
        .filter(|(_, (_, args))| !args.is_empty())
        .filter(|&(i, &(action, _))| match always {
            None => true,
            Some((j, best)) => {
                action.severity() < best.severity()
                    || (action.severity() == best.severity() && i < j)
            }
        })
        .map(|(i, &(action, args))| {
            (
                i,
                Case {
                    action,
                    when: args.to_vec(),
                },
            )
        })
        .collect();
    // First match wins: the most restrictive first, profile order among equals.
    cases.sort_by_key(|(i, case)| (case.action.severity(), *i));
    let otherwise = always.map_or(default, |(_, action)| action);
    let mut cases: Vec<Case> = cases.into_iter().map(|(_, case)| case).collect();
    // Trailing cases that give the fallback's action change nothing.
    while cases.last().is_some_and(|case| case.action == otherwise) {
        cases.pop();
    }
    if cases.is_empty() {
        Verdict::Always(otherwise)
    } else {
        Verdict::Depends { cases, otherwise }
    }
}

/// Orders refusals: most restrictive first, then by errno.
fn group_key(action: Action) -> (u8, u32) {
    let data = match action {
        Action::Errno(errno) => errno,
        _ => 0,
    };
    (action.severity(), data)
}

fn action_of_key(severity: u8, data: u32) -> Action {
    match severity {
        0 => Action::KillProcess,
        1 => Action::KillThread,
        2 => Action::Trap,
        3 => Action::Errno(data),
        4 => Action::Log,
        _ => Action::Allow,
    }
}

/// The symbolic name of an errno a profile is likely to use.
pub fn errno_name(errno: u32) -> Option<&'static str> {
    const NAMES: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::ENODEV, "ENODEV"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::EROFS, "EROFS"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
        (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| u32::try_from(*n) == Ok(errno))
        .map(|(_, name)| *name)
}

/// The names of the arguments conditions are commonly written on, for display; other
/// arguments are shown as `arg0` to `arg5`.
const ARG_NAMES: &[(&str, &[&str])] = &[
    (
        "clone",
        &["flags", "newsp", "parent_tid", "child_tid", "tls"],
    ),
    ("clone3", &["uargs", "size"]),
    ("socket", &["domain", "type", "protocol"]),
    ("socketpair", &["domain", "type", "protocol", "sv"]),
    ("personality", &["persona"]),
    ("ioctl", &["fd", "cmd", "arg"]),
    ("fcntl", &["fd", "cmd", "arg"]),
    ("prctl", &["option", "arg2", "arg3", "arg4", "arg5"]),
    ("kill", &["pid", "sig"]),
    ("mmap", &["addr", "length", "prot", "flags", "fd", "offset"]),
    ("mprotect", &["addr", "len", "prot"]),
    ("unshare", &["flags"]),
    ("setns", &["fd", "nstype"]),
];

fn arg_name(syscall: &str, index: u8) -> Option<&'static str> {
    ARG_NAMES
        .iter()
        .find(|(name, _)| *name == syscall)
        .and_then(|(_, args)| args.get(usize::from(index)).copied())
}

/// An action as the summary says it: `allowed`, `EPERM`, `errno 512`, `process killed`.
struct Said(Action);

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Action::Allow => f.write_str("allowed"),
            Action::Errno(errno) => match errno_name(errno) {
                Some(name) => f.write_str(name),
                None => write!(f, "errno {errno}"),
            },
            Action::KillProcess => f.write_str("process killed"),
            Action::KillThread => f.write_str("thread killed"),
            Action::Trap => f.write_str("SIGSYS (trap)"),
            Action::Log => f.write_str("allowed and logged"),
        }
    }
}

/// A value as conditions show it: decimal below 256, hexadecimal from there.
struct Value(u64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0x100 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

/// A condition as the summary shows it: `flags & 0x7e020000 == 0`, `(u32)domain < 38`.
struct Shown<'a> {
    syscall: &'a str,
    condition: &'a ArgCondition,
}

impl Shown<'_> {
    /// The argument: `flags`, `(u32)domain`, `arg3`.
    fn write_arg(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.condition;
        if c.width() == ArgWidth::Dword {
            f.write_str("(u32)")?;
        }
        match arg_name(self.syscall, c.index()) {
            Some(name) => f.write_str(name),
            None => write!(f, "arg{}", c.index()),
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.condition;
        self.write_arg(f)?;
        let op = match c.op() {
            ArgOp::Eq => "==",
            ArgOp::Ne => "!=",
            ArgOp::Lt => "<",
            ArgOp::Le => "<=",
            ArgOp::Gt => ">",
            ArgOp::Ge => ">=",
            ArgOp::MaskedEq(mask) => {
                return write!(f, " & {mask:#x} == {}", Value(c.value()));
            }
        };
        write!(f, " {op} {}", Value(c.value()))
    }
}

impl fmt::Display for FilteredSyscall {
    /// `clone: allowed if flags & 0x7e020000 == 0; otherwise EPERM`. Consecutive cases
    /// with one action are joined with `or if`, or, when each is one equality on the
    /// same argument, written `ARG is one of A, B, C`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.syscall)?;
        let mut rest = self.cases.as_slice();
        let mut first = true;
        while let Some(case) = rest.first() {
            let run = rest.iter().take_while(|c| c.action == case.action).count();
            let (group, tail) = rest.split_at(run);
            rest = tail;
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{} if ", Said(case.action))?;
            if let Some(values) = one_of(group) {
                let shown = Shown {
                    syscall: self.syscall,
                    condition: &group[0].when[0],
                };
                shown.write_arg(f)?;
                f.write_str(" is one of ")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Value(*value))?;
                }
                continue;
            }
            for (i, case) in group.iter().enumerate() {
                if i > 0 {
                    f.write_str(", or if ")?;
                }
                for (j, condition) in case.when.iter().enumerate() {
                    if j > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(
                        f,
                        "{}",
                        Shown {
                            syscall: self.syscall,
                            condition
                        }
                    )?;
                }
            }
        }
        write!(f, "; otherwise {}", Said(self.otherwise))
    }
}

/// The values of `cases` if there are several and each is one `==` on the same
/// argument, compared with the same width.
fn one_of(cases: &[Case]) -> Option<Vec<u64>> {
    let first = cases.first()?.when.first()?;
    let values: Option<Vec<u64>> = cases
        .iter()
        .map(|case| match case.when.as_slice() {
            [c] if c.op() == ArgOp::Eq
                && c.index() == first.index()
                && c.width() == first.width() =>
            {
                Some(c.value())
            }
            _ => None,
        })
        .collect();
    values.filter(|v| v.len() > 1)
}

/// Writes `names` after `label`, wrapped at 88 columns with a hanging indent.
fn write_names(f: &mut fmt::Formatter<'_>, label: &str, names: &[&str]) -> fmt::Result {
    const WIDTH: usize = 88;
    const INDENT: &str = "    ";
    write!(f, "  {label} ({}):", names.len())?;
    let mut column = WIDTH; // start a new line for the first name
    for name in names {
        if column + 1 + name.len() > WIDTH {
            write!(f, "\n{INDENT}{name}")?;
            column = INDENT.len() + name.len();
        } else {
            write!(f, " {name}")?;
            column += 1 + name.len();
        }
    }
    writeln!(f)
}

impl fmt::Display for SeccompSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seccomp on {}, for capabilities {}",
            self.arch,
            if self.capabilities.is_empty() {
                "(none)".to_string()
            } else {
                self.capabilities.to_string()
            }
        )?;
        writeln!(f, "  default: {}", Said(self.default_action))?;
        write_names(f, "allowed", &self.allowed)?;
        if !self.logged.is_empty() {
            write_names(f, "allowed and logged", &self.logged)?;
        }
        for group in &self.refused {
            let label = match group.action {
                Action::Errno(_) => format!("refused with {}", Said(group.action)),
                other => format!("{}", Said(other)),
            };
            write_names(f, &label, &group.syscalls)?;
        }
        writeln!(f, "  argument-filtered ({}):", self.filtered.len())?;
        for filtered in &self.filtered {
            writeln!(f, "    {filtered}")?;
        }
        writeln!(f, "  guard (for every profile):")?;
        if let Some(x32) = self.guard.x32 {
            writeln!(f, "    x32 ABI numbers (bit 0x40000000 set): {}", Said(x32))?;
        }
        let mut gaps = Vec::new();
        let mut next = 0u32;
        for &(lo, hi) in &self.guard.known_ranges {
            if lo > next {
                gaps.push(if lo - 1 == next {
                    format!("{next}")
                } else {
                    format!("{next}-{}", lo - 1)
                });
            }
            next = hi.saturating_add(1);
        }
        gaps.push(format!("{next} and above"));
        writeln!(
            f,
            "    numbers outside the syscall table ({}): {}",
            gaps.join(", "),
            Said(self.guard.unknown_numbers)
        )?;
        writeln!(
            f,
            "    calls through another architecture's convention (i386 int 0x80): {}",
            Said(self.guard.other_architectures)
        )
    }
}

#[cfg(feature = "policy")]
mod json {
    use serde_json::{json, Value as Json};

    use super::*;

    fn action(action: Action) -> Json {
        let kind = match action {
            Action::Allow => "allow",
            Action::Errno(_) => "errno",
            Action::KillProcess => "kill_process",
            Action::KillThread => "kill_thread",
            Action::Trap => "trap",
            Action::Log => "log",
        };
        match action {
            Action::Errno(errno) => {
                json!({"action": kind, "errno": errno, "errno_name": errno_name(errno)})
            }
            _ => json!({ "action": kind }),
        }
    }

    fn condition(syscall: &str, c: &ArgCondition) -> Json {
        let (op, mask) = match c.op() {
            ArgOp::Eq => ("eq", None),
            ArgOp::Ne => ("ne", None),
            ArgOp::Lt => ("lt", None),
            ArgOp::Le => ("le", None),
            ArgOp::Gt => ("gt", None),
            ArgOp::Ge => ("ge", None),
            ArgOp::MaskedEq(mask) => ("masked_eq", Some(mask)),
        };
        let mut out = json!({
            "arg": c.index(),
            "name": arg_name(syscall, c.index()),
            "bits": match c.width() { ArgWidth::Dword => 32, ArgWidth::Qword => 64 },
            "op": op,
            "value": format!("{:#x}", c.value()),
        });
        if let (Some(mask), Some(map)) = (mask, out.as_object_mut()) {
            map.insert("mask".to_string(), json!(format!("{mask:#x}")));
        }
        out
    }

    impl SeccompSummary {
        /// The name of the JSON schema, the value of `"schema"`.
        pub const JSON_SCHEMA: &'static str = "tasksandbox.seccomp-summary";
        /// The version of the JSON schema, the value of `"version"`.
        pub const JSON_VERSION: u32 = 1;

        /// The summary as JSON, in the schema of [the module documentation](super).
        pub fn to_json(&self) -> Json {
            json!({
                "schema": Self::JSON_SCHEMA,
                "version": Self::JSON_VERSION,
                "arch": self.arch,
                "capabilities": self.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>(),
                "default_action": action(self.default_action),
                "allowed": self.allowed,
                "logged": self.logged,
                "refused": self.refused.iter().map(|g| json!({
                    "action": action(g.action),
                    "syscalls": g.syscalls,
                })).collect::<Vec<_>>(),
                "filtered": self.filtered.iter().map(|f| json!({
                    "syscall": f.syscall,
                    "number": f.number,
                    "cases": f.cases.iter().map(|case| json!({
                        "action": action(case.action),
                        "when": case.when.iter().map(|c| condition(f.syscall, c)).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "otherwise": action(f.otherwise),
                })).collect::<Vec<_>>(),
                "guard": {
                    "x32": self.guard.x32.map(action),
                    "unknown_numbers": action(self.guard.unknown_numbers),
                    "known_ranges": self.guard.known_ranges,
                    "other_architectures": action(self.guard.other_architectures),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests;
