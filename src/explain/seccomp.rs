//! The seccomp part of an explanation.
//!
//! This is the one place that turns a container's seccomp data into what `explain`
//! shows: [`SeccompExplanation::new`] gets the policy the filters were compiled from,
//! the container's capabilities and the compiled programs. The per-syscall verdicts
//! here are read from the compiled programs themselves, run by the crate's BPF
//! interpreter for a call of every syscall of the table with all arguments zero;
//! syscalls whose arguments decide (by a rule of the profile or the terminal guard)
//! are listed apart, with their conditions as the seccomp module's summary states them.

use std::sync::Arc;

use crate::capabilities::Capabilities;
use crate::seccomp::bpf::SeccompData;
use crate::seccomp::explain::SeccompSummary;
use crate::seccomp::{syscalls, Action, CompiledSeccomp, ProgramKind, SeccompPolicy};

/// What a container's seccomp filters do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeccompExplanation {
    /// Whether the policy is the built-in default profile (else a custom profile).
    pub default_profile: bool,
    /// The profile's default action (for syscalls no rule names).
    pub default_action: Action,
    /// The programs installed, in order, with their instruction counts.
    pub programs: Vec<(ProgramKind, usize)>,
    /// Syscalls allowed (called with all arguments zero), sorted by name.
    pub allowed: Vec<&'static str>,
    /// Syscalls refused (called with all arguments zero), grouped by action: the most
    /// restrictive first, errnos in increasing order; names sorted.
    pub refused: Vec<(Action, Vec<&'static str>)>,
    /// Syscalls whose arguments decide what happens to them (for these capabilities),
    /// sorted by name, each with its conditions as
    /// [`SeccompSummary`](crate::seccomp::explain::SeccompSummary) states them
    /// (`clone: allowed if flags & 0x7e020000 == 0; otherwise EPERM`).
    pub argument_filtered: Vec<String>,
}

fn rank(action: Action) -> (u8, u32) {
    match action {
        Action::KillProcess => (0, 0),
        Action::KillThread => (1, 0),
        Action::Trap => (2, 0),
        Action::Errno(e) => (3, e),
        Action::Log => (4, 0),
        _ => (5, 0),
    }
}

impl SeccompExplanation {
    /// Reads what `compiled` (compiled from `policy` for `caps`) does.
    pub(crate) fn new(
        policy: &SeccompPolicy,
        caps: Capabilities,
        compiled: &Arc<CompiledSeccomp>,
    ) -> Self {
        let profile = policy.profile();
        // The syscalls whose arguments decide, with their conditions, from the summary
        // (made from the same resolved rules, guard included, as the programs).
        let filtered = SeccompSummary::new(profile, caps)
            .map(|s| s.filtered)
            .unwrap_or_default();
        let mut allowed = Vec::new();
        let mut refused: Vec<(Action, Vec<&'static str>)> = Vec::new();
        for &(name, nr) in syscalls::all() {
            if filtered.iter().any(|f| f.syscall == name) {
                continue;
            }
            let ret = compiled.evaluate(&SeccompData::native(nr, [0; 6]));
            match Action::from_ret(ret) {
                Some(Action::Allow) => allowed.push(name),
                Some(action) => match refused.iter_mut().find(|(a, _)| *a == action) {
                    Some((_, names)) => names.push(name),
                    None => refused.push((action, vec![name])),
                },
                None => {}
            }
        }
        allowed.sort_unstable();
        for (_, names) in &mut refused {
            names.sort_unstable();
        }
        refused.sort_by_key(|(a, _)| rank(*a));
        SeccompExplanation {
            default_profile: matches!(policy, SeccompPolicy::Default),
            default_action: profile.default_action(),
            programs: compiled
                .kinds()
                .iter()
                .zip(compiled.programs())
                .map(|(k, p)| (*k, p.len()))
                .collect(),
            allowed,
            refused,
            argument_filtered: filtered.iter().map(ToString::to_string).collect(),
        }
    }
}

/// `EPERM` for 1: the symbolic name of an errno, if it has one.
pub(crate) fn errno_name(errno: u32) -> Option<String> {
    let e = nix::errno::Errno::from_raw(i32::try_from(errno).ok()?);
    (e != nix::errno::Errno::UnknownErrno).then(|| format!("{e:?}"))
}

/// An action as `explain` shows it: `EPERM (errno 1)`, `kill process`.
pub(crate) fn action_text(action: Action) -> String {
    match action {
        Action::Errno(e) => match errno_name(e) {
            Some(name) => format!("{name} (errno {e})"),
            None => format!("errno {e}"),
        },
        other => other.to_string(),
    }
}
