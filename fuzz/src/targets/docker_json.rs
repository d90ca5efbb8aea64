//! Docker's semantics evaluated straight on a profile's JSON, written for the fuzz
//! targets independently of the crate's loader: the loader and the profile model must
//! decide every native call in the syscall table as this reading does.
//!
//! It follows the documented choices of `SeccompProfile::from_json` where Docker has
//! none: `socket`'s and `personality`'s argument 0 and `ioctl`'s argument 1 are
//! compared as 32-bit values; and the crate lets no `ioctl(TIOCSTI)` or
//! `ioctl(TIOCLINUX)` through: what a profile would allow or log of them gets `EPERM`. Only profiles the loader accepted are read, so anything
//! unexpected here is a disagreement, and panics.

use serde_json::Value;
use tasksandbox::seccomp::{syscalls, Action, KernelVersion};
use tasksandbox::{Capabilities, Capability};

/// The architecture names of the build target in Docker's `arches`.
const NATIVE_ARCH_NAMES: &[&str] = if cfg!(target_arch = "x86_64") {
    &["amd64", "x86_64"]
} else {
    &[]
};

/// The `int` arguments compared as 32 bits, as `(syscall, index)`.
const DWORD_ARGS: &[(&str, u64)] = &[("socket", 0), ("personality", 0), ("ioctl", 1)];

fn get<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
                .collect()
        })
        .unwrap_or_default()
}

/// The action of `object[key]` with the errno of `object[errno_key]`.
fn action(object: &Value, key: &str, errno_key: &str) -> Action {
    let errno = get(object, errno_key)
        .map(|e| e.as_u64().unwrap_or_else(|| panic!("errno {e}")))
        .unwrap_or(1);
    match get(object, key).and_then(Value::as_str) {
        Some("SCMP_ACT_ALLOW") => Action::Allow,
        Some("SCMP_ACT_ERRNO") => {
            Action::Errno(u32::try_from(errno).unwrap_or_else(|_| panic!("errno {errno}")))
        }
        Some("SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD") => Action::KillThread,
        Some("SCMP_ACT_KILL_PROCESS") => Action::KillProcess,
        Some("SCMP_ACT_TRAP") => Action::Trap,
        Some("SCMP_ACT_LOG") => Action::Log,
        other => panic!("the loader accepted the action {other:?}"),
    }
}

/// Lower is more restrictive: the kernel's order.
fn restrictiveness(action: Action) -> u8 {
    match action {
        Action::KillProcess => 0,
        Action::KillThread => 1,
        Action::Trap => 2,
        Action::Errno(_) => 3,
        Action::Log => 4,
        _ => 5,
    }
}

fn held(caps: Capabilities, name: &str) -> bool {
    Capability::from_name(name).is_ok_and(|c| caps.contains(c))
}

fn kernel(text: &str) -> KernelVersion {
    let (major, minor) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("the loader accepted the kernel version {text}"));
    let number = |s: &str| {
        s.parse()
            .unwrap_or_else(|_| panic!("the loader accepted the kernel version {text}"))
    };
    KernelVersion::new(number(major), number(minor))
}

/// Whether rule `rule` is part of the profile for `caps` (Docker's includes/excludes).
fn applies(rule: &Value, caps: Capabilities) -> bool {
    let running = KernelVersion::running();
    if let Some(excludes) = get(rule, "excludes") {
        if strings(get(excludes, "arches"))
            .iter()
            .any(|a| NATIVE_ARCH_NAMES.contains(a))
            || strings(get(excludes, "caps")).iter().any(|c| held(caps, c))
        {
            return false;
        }
        if let Some(min) = get(excludes, "minKernel").and_then(Value::as_str) {
            // Unknown running kernel: a rule with a kernel condition does not apply.
            if running.is_none_or(|k| k >= kernel(min)) {
                return false;
            }
        }
    }
    if let Some(includes) = get(rule, "includes") {
        let arches = strings(get(includes, "arches"));
        if !arches.is_empty() && !arches.iter().any(|a| NATIVE_ARCH_NAMES.contains(a)) {
            return false;
        }
        if !strings(get(includes, "caps")).iter().all(|c| held(caps, c)) {
            return false;
        }
        if let Some(min) = get(includes, "minKernel").and_then(Value::as_str) {
            if running.is_none_or(|k| k < kernel(min)) {
                return false;
            }
        }
    }
    true
}

fn arg_matches(condition: &Value, name: &str, args: &[u64; 6]) -> bool {
    let number = |key: &str| get(condition, key).and_then(Value::as_u64);
    let index = number("index").unwrap_or_else(|| panic!("index of {condition}"));
    let value = number("value").unwrap_or_else(|| panic!("value of {condition}"));
    let value_two = number("valueTwo").unwrap_or(0);
    let mut arg = args[usize::try_from(index).unwrap_or(usize::MAX).min(5)];
    if DWORD_ARGS.contains(&(name, index)) {
        arg &= 0xffff_ffff;
    }
    match get(condition, "op").and_then(Value::as_str) {
        Some("SCMP_CMP_EQ") => arg == value,
        Some("SCMP_CMP_NE") => arg != value,
        Some("SCMP_CMP_LT") => arg < value,
        Some("SCMP_CMP_LE") => arg <= value,
        Some("SCMP_CMP_GT") => arg > value,
        Some("SCMP_CMP_GE") => arg >= value,
        Some("SCMP_CMP_MASKED_EQ") => arg & value == value_two,
        other => panic!("the loader accepted the comparison {other:?}"),
    }
}

/// What the profile `json` does with the native syscall `nr` (in the table) with
/// `args`, for a container holding `caps`: the most restrictive of the matching
/// rules' actions, the first of equally restrictive ones, else the default action.
pub fn decide(json: &Value, caps: Capabilities, nr: i64, args: &[u64; 6]) -> Action {
    let name = syscalls::name(nr).unwrap_or_else(|| panic!("{nr} is not in the table"));
    let mut decision: Option<Action> = None;
    let rules = get(json, "syscalls").and_then(Value::as_array);
    for rule in rules.into_iter().flatten() {
        let names = match get(rule, "name").and_then(Value::as_str) {
            Some(one) => vec![one],
            None => strings(get(rule, "names")),
        };
        if !names.contains(&name) || !applies(rule, caps) {
            continue;
        }
        let conditions = get(rule, "args").and_then(Value::as_array);
        if !conditions
            .into_iter()
            .flatten()
            .all(|c| arg_matches(c, name, args))
        {
            continue;
        }
        let action = action(rule, "action", "errnoRet");
        if decision.is_none_or(|best| restrictiveness(action) < restrictiveness(best)) {
            decision = Some(action);
        }
    }
    let decision = decision.unwrap_or_else(|| action(json, "defaultAction", "defaultErrnoRet"));
    // The crate's terminal guard: no injection is let through.
    const TIOCSTI: u32 = 0x5412;
    const TIOCLINUX: u32 = 0x541c;
    let injection = name == "ioctl" && [TIOCSTI, TIOCLINUX].contains(&(args[1] as u32));
    match decision {
        Action::Allow | Action::Log if injection => Action::Errno(1), // EPERM
        decision => decision,
    }
}
