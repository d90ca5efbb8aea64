//! The JSON profile target: any text given to [`SeccompProfile::from_json`] either
//! loads or gives an error that says where the mistake is; a profile that loads
//! compiles (unless its programs would be too long) for several capability sets, and on
//! calls made from the profile's own syscalls and argument values the compiled programs
//! decide like the model, and the model like Docker's semantics read straight from the
//! JSON ([`super::docker_json`]).

use tasksandbox::seccomp::bpf::{SeccompData, AUDIT_ARCH_I386};
use tasksandbox::seccomp::{
    self, syscalls, ArgOp, ProfileError, SeccompError, SeccompProfile, SeccompSummary,
};
use tasksandbox::{Capabilities, Capability};

use serde_json::Value;

use super::differential::{check_call, check_error, check_summary, programs};
use super::docker_json;

/// At most this many calls are checked per capability set, so that a large profile
/// (Docker's default names some 400 syscalls) still runs in milliseconds.
const MAX_CALLS: usize = 1500;

/// The JSON profile target.
pub fn json_profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let profile = match SeccompProfile::from_json(&text) {
        Ok(profile) => profile,
        Err(error) => return check_load_error(&error, &text),
    };
    // The loader parsed the same text.
    let json: Option<Value> = serde_json::from_str(&text).ok();
    let default = Capabilities::fargate_default();
    for caps in [
        default,
        default.with_sys_ptrace(),
        default.drop(Capability::SysChroot),
        Capabilities::none(),
    ] {
        let compiled = match seccomp::compile(&profile, caps) {
            Ok(compiled) => compiled,
            Err(error) => {
                // The loader already refused unknown names and errnos out of range.
                check_error(&error, |e| {
                    matches!(
                        e,
                        SeccompError::ProgramTooLong { .. } | SeccompError::UnsupportedArch { .. }
                    )
                });
                return;
            }
        };
        let programs = programs(&compiled);
        let summary = SeccompSummary::new(&profile, caps)
            .unwrap_or_else(|e| panic!("the profile compiles but cannot be summarized: {e}"));
        for data in calls(&profile).take(MAX_CALLS) {
            check_call(&profile, &compiled, &programs, caps, &data);
            check_summary(&summary, &profile, caps, &data);
            check_json_reading(json.as_ref(), &profile, caps, &data);
        }
    }
}

/// For a native call of a syscall in the table, the model must decide as Docker's
/// semantics read from the JSON.
fn check_json_reading(
    json: Option<&Value>,
    profile: &SeccompProfile,
    caps: Capabilities,
    data: &SeccompData,
) {
    let json = json.unwrap_or_else(|| panic!("the loader accepted text serde_json refuses"));
    let nr = i64::from(data.nr);
    if data.arch != SeccompData::native(0, [0; 6]).arch || syscalls::name(nr).is_none() {
        return;
    }
    let model = profile.decide_call(caps, data);
    let docker = docker_json::decide(json, caps, nr, &data.args);
    assert_eq!(
        model, docker,
        "the loaded profile decides {model:?}, the JSON read as Docker does says {docker:?}, \
         for {data:x?} with capabilities {caps}"
    );
}

/// Loading failed: the error must say where, with a line and column inside the text.
fn check_load_error(error: &ProfileError, text: &str) {
    let message = error.to_string();
    let (line, column) = match error {
        ProfileError::Syntax { line, column, .. } | ProfileError::TooDeep { line, column, .. } => {
            (*line, *column)
        }
        ProfileError::Read { .. } => panic!("no file was read: {message}"),
        _ => {
            let at = error
                .location()
                .unwrap_or_else(|| panic!("no location in {error:?}"));
            assert!(
                message.starts_with(&format!("{at}: ")),
                "the message does not start with the location {at}: {message}"
            );
            at.line_column
                .unwrap_or_else(|| panic!("no line and column in {error:?}"))
        }
    };
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} of a {}-line text: {message}",
        lines.len()
    );
    let width = lines[line - 1].chars().count() + 1;
    assert!(
        column <= width,
        "column {column} of a {width}-column line: {message}"
    );
}

/// Calls made from the profile: each syscall its rules name, natively and as x32,
/// with arguments at and around each condition's value; a few numbers outside the
/// table; and one call from another architecture.
fn calls(profile: &SeccompProfile) -> impl Iterator<Item = SeccompData> + '_ {
    let mut numbers: Vec<i64> = profile
        .rules()
        .iter()
        .flat_map(|r| r.syscalls())
        .filter_map(|id| match id {
            seccomp::SyscallId::Name(name) => syscalls::number(name),
            seccomp::SyscallId::Number(nr) => Some(*nr),
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers.extend([400, 1000, -1]);
    numbers.into_iter().flat_map(move |nr| {
        let mut vectors = vec![[0u64; 6], [u64::MAX; 6]];
        for rule in profile.rules() {
            let named = rule.syscalls().iter().any(|id| match id {
                seccomp::SyscallId::Name(name) => syscalls::number(name) == Some(nr),
                seccomp::SyscallId::Number(n) => *n == nr,
            });
            if !named {
                continue;
            }
            for c in rule.args() {
                let v = c.value();
                let outside = match c.op() {
                    ArgOp::MaskedEq(mask) => v | !mask,
                    _ => v ^ 0xffff_ffff_0000_0000,
                };
                for value in [v, v.wrapping_add(1), v.wrapping_sub(1), outside] {
                    let mut args = [0u64; 6];
                    if let Some(slot) = args.get_mut(usize::from(c.index())) {
                        *slot = value;
                    }
                    vectors.push(args);
                }
            }
        }
        let mut calls = Vec::new();
        for args in vectors {
            calls.push(SeccompData::native(nr, args));
            calls.push(SeccompData::native(nr | 0x4000_0000, args));
        }
        calls.push(SeccompData {
            arch: AUDIT_ARCH_I386,
            ..SeccompData::native(nr, [0; 6])
        });
        calls
    })
}
