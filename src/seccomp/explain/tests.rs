//! The summary against fixed expected texts (golden files in `golden/`), and against
//! the profile model for every syscall number.
//!
//! `UPDATE_GOLDEN=1 cargo test --lib explain` rewrites the golden files from the
//! current output; review the diff before committing it.

#![cfg(target_arch = "x86_64")]

use std::path::Path;

use super::*;
use crate::capabilities::Capability;
use crate::seccomp::profile::{ENOSYS, EPERM};
use crate::seccomp::{SeccompPolicy, SyscallRule};

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN`.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/seccomp/explain/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            if e != a {
                panic!(
                    "{} differs at line {}:\nexpected: {e}\nactual:   {a}\n\nwhole output:\n{actual}",
                    path.display(),
                    i + 1
                );
            }
        }
        panic!(
            "{} differs in length ({} lines expected, {} actual):\n{actual}",
            path.display(),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

fn summary(profile: &SeccompProfile, caps: Capabilities) -> SeccompSummary {
    SeccompSummary::new(profile, caps).unwrap_or_else(|e| panic!("{e}"))
}

/// The small custom profile of the golden tests: every action, several rules on one
/// syscall, both widths, a capability-gated rule.
fn custom_profile() -> Result<SeccompProfile, SeccompError> {
    Ok(SeccompProfile::new(Action::Errno(libc::EACCES as u32))
        .with_rule(SyscallRule::new(
            ["read", "write", "close", "exit_group"],
            Action::Allow,
        ))
        .with_rule(SyscallRule::new(["getpid"], Action::Log))
        .with_rule(SyscallRule::new(["mount", "umount2"], Action::Errno(EPERM)))
        .with_rule(SyscallRule::new(["reboot"], Action::KillProcess))
        .with_rule(SyscallRule::new(["kexec_load"], Action::Trap))
        .with_rule(SyscallRule::new(["clone3"], Action::Errno(ENOSYS)))
        .with_rule(SyscallRule::new(["getppid"], Action::Errno(4000)))
        .with_rule(
            SyscallRule::new(["socket"], Action::Allow).with_arg(ArgCondition::dword(
                0,
                ArgOp::Eq,
                libc::AF_UNIX as u64,
            )?),
        )
        .with_rule(
            SyscallRule::new(["socket"], Action::Allow)
                .with_arg(ArgCondition::dword(0, ArgOp::Eq, libc::AF_INET as u64)?)
                .with_arg(ArgCondition::qword(1, ArgOp::Le, 2)?),
        )
        .with_rule(
            SyscallRule::new(["socket"], Action::Errno(libc::EAFNOSUPPORT as u32))
                .with_arg(ArgCondition::dword(0, ArgOp::Ge, 38)?),
        )
        .with_rule(
            SyscallRule::new(["mmap"], Action::Allow).with_arg(ArgCondition::qword(
                2,
                ArgOp::MaskedEq(libc::PROT_EXEC as u64),
                0,
            )?),
        )
        .with_rule(
            SyscallRule::new(["write"], Action::KillThread).with_arg(ArgCondition::qword(
                0,
                ArgOp::Gt,
                0xffff_ffff,
            )?),
        )
        .with_rule(
            SyscallRule::new(["ptrace"], Action::Allow)
                .requires_caps([caps::Capability::CAP_SYS_PTRACE]),
        ))
}

#[test]
fn default_profile_golden() {
    let text = summary(
        SeccompProfile::docker_default(),
        Capabilities::fargate_default(),
    )
    .to_string();
    golden("default-profile.txt", &text);
}

#[test]
fn custom_profile_golden() -> Result<(), SeccompError> {
    let profile = custom_profile()?;
    let text = summary(
        &profile,
        Capabilities::fargate_default().drop(Capability::Kill),
    );
    golden("custom-profile.txt", &text.to_string());
    // With CAP_SYS_PTRACE, ptrace joins the allowed syscalls.
    let traced = summary(&profile, Capabilities::fargate_default().with_sys_ptrace());
    assert!(traced.allowed.contains(&"ptrace"));
    assert!(!text.allowed.contains(&"ptrace"));
    Ok(())
}

#[cfg(feature = "policy")]
#[test]
fn custom_profile_json_golden() -> Result<(), SeccompError> {
    let json = summary(&custom_profile()?, Capabilities::none()).to_json();
    let text = serde_json::to_string_pretty(&json).unwrap_or_else(|e| panic!("{e}")) + "\n";
    golden("custom-profile.json", &text);
    Ok(())
}

#[cfg(feature = "policy")]
#[test]
fn default_profile_json_has_the_schema() {
    let s = summary(
        SeccompProfile::docker_default(),
        Capabilities::fargate_default(),
    );
    let json = s.to_json();
    assert_eq!(json["schema"], "tasksandbox.seccomp-summary");
    assert_eq!(json["version"], 1);
    assert_eq!(json["default_action"]["errno_name"], "EPERM");
    assert_eq!(
        json["allowed"].as_array().map(Vec::len),
        Some(s.allowed.len())
    );
    let clone = json["filtered"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["syscall"] == "clone"))
        .unwrap_or_else(|| panic!("clone is not filtered: {json}"));
    assert_eq!(
        clone["cases"][0]["when"][0],
        serde_json::json!({"arg": 0, "name": "flags", "bits": 64, "op": "masked_eq",
                           "value": "0x0", "mask": "0x7e020000"})
    );
    assert_eq!(clone["otherwise"]["errno"], 1);
    assert_eq!(json["guard"]["x32"]["errno_name"], "EPERM");
    assert_eq!(json["guard"]["unknown_numbers"]["errno_name"], "ENOSYS");
    assert_eq!(
        json["guard"]["other_architectures"]["action"],
        "kill_process"
    );
}

/// Argument vectors that reach every case of the profiles above.
fn argument_vectors(profile: &SeccompProfile) -> Vec<[u64; 6]> {
    let mut vectors = vec![[0; 6], [u64::MAX; 6], [1; 6]];
    for rule in profile.rules() {
        for c in rule.args() {
            let v = c.value();
            let outside = match c.op() {
                ArgOp::MaskedEq(mask) => v | !mask,
                _ => v ^ 0xffff_ffff_0000_0000,
            };
            for value in [v, v.wrapping_add(1), v.wrapping_sub(1), outside] {
                let mut args = [0; 6];
                args[usize::from(c.index())] = value;
                vectors.push(args);
                // And with the other conditions of the rule satisfied.
                let mut all = args;
                for other in rule.args().iter().filter(|o| o.index() != c.index()) {
                    all[usize::from(other.index())] = other.value();
                }
                vectors.push(all);
            }
        }
    }
    vectors
}

#[test]
fn summaries_decide_like_the_model() -> Result<(), SeccompError> {
    let default = Capabilities::fargate_default();
    let profiles = [SeccompProfile::docker_default().clone(), custom_profile()?];
    for profile in &profiles {
        let vectors = argument_vectors(profile);
        for caps in [
            default,
            default.with_sys_ptrace(),
            default.drop(Capability::SysChroot),
            Capabilities::none(),
        ] {
            let s = summary(profile, caps);
            let numbers = (0..=520u32).chain([0x4000_0000, 0x4000_0027, u32::MAX]);
            for nr in numbers {
                for args in &vectors {
                    assert_eq!(
                        s.decide(nr, args),
                        profile.decide(caps, i64::from(nr), args),
                        "syscall {nr} with {args:x?} for {caps}"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn policy_explains_its_profile() -> Result<(), SeccompError> {
    let caps = Capabilities::fargate_default();
    let s = SeccompPolicy::Default.explain(caps)?;
    assert_eq!(s, summary(SeccompProfile::docker_default(), caps));
    assert!(s.allowed.contains(&"read"));
    assert!(s
        .refused
        .iter()
        .any(|g| g.action == Action::Errno(ENOSYS) && g.syscalls == ["clone3"]));
    let filtered: Vec<String> = s.filtered.iter().map(ToString::to_string).collect();
    assert!(filtered
        .contains(&"clone: allowed if flags & 0x7e020000 == 0; otherwise EPERM".to_string()));
    // A mistake in the profile is the compiler's error.
    let bad =
        SeccompProfile::new(Action::Allow).with_rule(SyscallRule::new(["raed"], Action::Allow));
    assert!(matches!(
        SeccompSummary::new(&bad, caps),
        Err(SeccompError::UnknownSyscall { .. })
    ));
    Ok(())
}

#[test]
fn redundant_cases_are_left_out() -> Result<(), SeccompError> {
    let caps = Capabilities::fargate_default();
    // A conditional rule less restrictive than an unconditional one changes nothing.
    let profile = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::new(["getpid"], Action::Errno(5)))
        .with_rule(
            SyscallRule::new(["getpid"], Action::Allow).with_arg(ArgCondition::qword(
                0,
                ArgOp::Eq,
                1,
            )?),
        )
        // An earlier conditional errno changes the errno when it matches.
        .with_rule(
            SyscallRule::new(["getppid"], Action::Errno(7)).with_arg(ArgCondition::qword(
                0,
                ArgOp::Eq,
                1,
            )?),
        )
        .with_rule(SyscallRule::new(["getppid"], Action::Errno(5)))
        // A trailing case with the fallback's action changes nothing.
        .with_rule(
            SyscallRule::new(["gettid"], Action::Errno(EPERM)).with_arg(ArgCondition::qword(
                0,
                ArgOp::Eq,
                1,
            )?),
        );
    let s = summary(&profile, caps);
    assert!(s
        .refused
        .iter()
        .any(|g| g.action == Action::Errno(5) && g.syscalls == ["getpid"]));
    let getppid = s
        .filtered
        .iter()
        .find(|f| f.syscall == "getppid")
        .unwrap_or_else(|| panic!("getppid is not filtered: {s}"));
    assert_eq!(
        getppid.to_string(),
        "getppid: errno 7 if arg0 == 1; otherwise EIO"
    );
    assert!(!s.filtered.iter().any(|f| f.syscall == "gettid"));
    Ok(())
}

/// Found by the `seccomp_differential` fuzz target: an earlier conditional rule with the
/// fallback's own errno was left out, so a later one of the same rank seemed to decide.
#[test]
fn an_earlier_case_with_the_fallbacks_errno_shadows_later_ones() -> Result<(), SeccompError> {
    let caps = Capabilities::fargate_default();
    let profile = SeccompProfile::new(Action::KillProcess)
        .with_rule(
            SyscallRule::new(["getuid"], Action::Errno(7)).with_arg(ArgCondition::qword(
                0,
                ArgOp::Eq,
                1,
            )?),
        )
        .with_rule(
            SyscallRule::new(["getuid"], Action::Errno(9)).with_arg(ArgCondition::qword(
                1,
                ArgOp::Eq,
                1,
            )?),
        )
        .with_rule(SyscallRule::new(["getuid"], Action::Errno(7)));
    let s = summary(&profile, caps);
    let nr = syscalls::number("getuid").and_then(|n| u32::try_from(n).ok());
    let nr = nr.unwrap_or_else(|| panic!("getuid is an x86_64 syscall"));
    for args in [
        [1, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0; 6],
    ] {
        let model = profile.decide(caps, i64::from(nr), &args);
        assert_eq!(s.decide(nr, &args), model, "getuid({args:?})");
    }
    assert_eq!(
        profile.decide(caps, i64::from(nr), &[1, 1, 0, 0, 0, 0]),
        Action::Errno(7)
    );
    let getuid = s
        .filtered
        .iter()
        .find(|f| f.syscall == "getuid")
        .unwrap_or_else(|| panic!("getuid is not filtered: {s}"));
    assert_eq!(
        getuid.to_string(),
        "getuid: errno 7 if arg0 == 1; EBADF if arg1 == 1; otherwise errno 7"
    );
    Ok(())
}
