//! The JSON loader: Docker's reference profile against the built-in profile, every
//! error with its location, and a small OCI profile against the model it stands for.

use super::*;
use crate::seccomp::profile::ENOSYS;
use crate::seccomp::profile::{TIOCLINUX, TIOCSTI};

fn load(text: &str) -> SeccompProfile {
    SeccompProfile::from_json(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error(text: &str) -> ProfileError {
    match SeccompProfile::from_json(text) {
        Ok(profile) => panic!("loaded, but should not have: {text}\n{profile:?}"),
        Err(e) => e,
    }
}

/// `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rules]}`.
fn with_rules(rules: &str) -> String {
    format!(r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{rules}]}}"#)
}

/// Asserts the error of `text` is `$variant` and reads `$message` once its line and
/// column are taken out; the line and column are checked by [`check_position`].
macro_rules! check_error {
    ($text:expr, $variant:pat, $message:expr) => {{
        let text: &str = &$text;
        let e = error(text);
        assert!(matches!(e, $variant), "wrong kind {e:?} for {text}");
        let mut message = e.to_string();
        if let Some(at) = e.location() {
            let Some((line, column)) = at.line_column else {
                panic!("no line and column in {e:?}");
            };
            message = message.replacen(&format!(" (line {line}, column {column})"), "", 1);
            check_position(text, &e);
        }
        assert_eq!(message, $message, "for {text}");
    }};
}

/// Asserts that the line and column of `e` point where its path says: at the key for
/// an unknown key, at the object for a missing key, else at a value that follows its
/// key (`"op": `) or an array's `[` or `,`.
fn check_position(text: &str, e: &ProfileError) {
    let Some(at) = e.location() else { return };
    let Some((line, column)) = at.line_column else {
        panic!("no line and column in {e:?}");
    };
    let line_start: usize = text.split('\n').take(line - 1).map(|l| l.len() + 1).sum();
    let offset = line_start
        + text[line_start..]
            .char_indices()
            .nth(column - 1)
            .map_or(text.len() - line_start, |(i, _)| i);
    let (before, after) = text.split_at(offset);
    let before = before.trim_end();
    let last_key = at.path.rsplit(['.', '[']).next().unwrap_or("");
    match e {
        ProfileError::UnknownKey { .. } => {
            assert!(
                after.starts_with(&format!("\"{last_key}\"")),
                "{e}: {after}"
            )
        }
        ProfileError::MissingKey { .. } => assert!(after.starts_with('{'), "{e}: {after}"),
        _ if at.path.ends_with(']') => {
            assert!(before.ends_with(['[', ',']), "{e}: {before}")
        }
        _ if at.path.is_empty() => assert!(before.is_empty(), "{e}: {before}"),
        _ => {
            let key = before
                .strip_suffix(':')
                .map(str::trim_end)
                .unwrap_or_else(|| panic!("{e}: no key before {after}"));
            assert!(key.ends_with(&format!("\"{last_key}\"")), "{e}: {key}");
        }
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let text = "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [}\n}";
    let e = error(text);
    assert!(
        matches!(
            e,
            ProfileError::Syntax {
                line: 3,
                column: 16,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the seccomp profile is not valid JSON at line 3, column 16"
    );
    check_error!(
        "",
        ProfileError::Syntax {
            line: 1,
            column: 0,
            ..
        },
        "the seccomp profile is not valid JSON at line 1, column 0"
    );
}

#[test]
fn errors_give_line_and_column() {
    let text = r#"{
    "defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQUAL"}
            ]
        }
    ]
}"#;
    let e = error(text);
    assert_eq!(
        e.to_string(),
        "syscalls[1].args[1].op (line 10, column 48): unknown comparison `SCMP_CMP_EQUAL`"
    );
    assert_eq!(
        e.location(),
        Some(&JsonLocation {
            path: "syscalls[1].args[1].op".to_string(),
            line_column: Some((10, 48)),
        })
    );
    // An unknown key points at the key; a missing one at the object lacking it.
    let e = error(&text.replace(
        r#""action": "SCMP_ACT_ALLOW","#,
        r#""acton": "SCMP_ACT_ALLOW","#,
    ));
    assert_eq!(
        e.to_string(),
        "syscalls[1].acton (line 7, column 13): unknown key"
    );
    let e = error(&text.replace(r#""action": "SCMP_ACT_ALLOW","#, ""));
    assert_eq!(
        e.to_string(),
        "syscalls[1].action (line 5, column 9): missing"
    );
    // Columns count characters, not bytes, in every error.
    let e = error(r#"{"defaultAction": "SCMP_ACT_ERRNO", "comment": "é", "flagz": 1}"#);
    assert_eq!(e.to_string(), "flagz (line 1, column 53): unknown key");
}

#[test]
fn oci_flags_and_listeners() {
    // The flags that change nothing for the crate's filters load.
    let text = r#"{
    "defaultAction": "SCMP_ACT_ERRNO",
    "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    "listenerPath": null,
    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
}"#;
    assert_eq!(
        load(text),
        load(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#
        )
    );
    // The others are refused at the entry, with why.
    let spec = text.replace(
        "\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"",
        "\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"",
    );
    let e = error(&spec);
    assert!(
        matches!(&e, ProfileError::UnsupportedFlag { flag, .. } if flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "flags[1] (line 3, column 44): filter flag `SECCOMP_FILTER_FLAG_SPEC_ALLOW` is not \
         supported: it turns off the kernel's speculative store bypass mitigation for the task"
    );
    check_position(&spec, &e);
    for (flag, reason) in [
        ("SECCOMP_FILTER_FLAG_LOG", "log nothing but"),
        ("SECCOMP_FILTER_FLAG_NEW_LISTENER", "SCMP_ACT_NOTIFY"),
        ("SECCOMP_FILTER_FLAG_TSYNC_ESRCH", "SCMP_ACT_NOTIFY"),
        ("SECCOMP_FILTER_FLAG_BOGUS", "no such flag"),
    ] {
        let e = error(&text.replace("\"SECCOMP_FILTER_FLAG_TSYNC\"", &format!("\"{flag}\"")));
        assert!(
            e.to_string().starts_with("flags[0] (line 3, column 15): "),
            "{e}"
        );
        assert!(e.to_string().contains(reason), "{e}");
    }
    check_error!(
        text.replace("[\"SECCOMP_FILTER_FLAG_TSYNC\",", "[1,"),
        ProfileError::WrongType { .. },
        "flags[0]: expected a string"
    );
    // A notification listener is a feature the crate does not have: refused at the key.
    for key in ["listenerPath", "listenerMetadata"] {
        let e = error(&text.replace(
            "\"listenerPath\": null",
            &format!("\"{key}\": \"/run/agent.sock\""),
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "{key} (line 4, column 5): not supported: user-space notification \
                 (SCMP_ACT_NOTIFY) is not supported"
            )
        );
    }
}

/// Found by the `json_profile` fuzz target: serde_json counts columns in bytes, so a
/// syntax error after non-ASCII text was placed past the end of its line.
#[test]
fn syntax_error_columns_count_characters() {
    let text = "{\"defaultAction\": \"SCMP_ACT_\u{fffd}\u{fffd}\u{fffd}";
    let e = error(text);
    assert!(
        matches!(
            e,
            ProfileError::Syntax {
                line: 1,
                column: 31,
                ..
            }
        ),
        "{e:?}"
    );
    // The string runs to the end: the error is at its last character.
    assert_eq!(text.chars().count(), 31);
}

#[test]
fn unknown_keys_are_errors_where_they_are() {
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": 1}"#,
        ProfileError::UnknownKey { .. },
        "defaultErrno: unknown key"
    );
    check_error!(
        with_rules(r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "nmaes": []}"#),
        ProfileError::UnknownKey { .. },
        "syscalls[0].nmaes: unknown key"
    );
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
               {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 1, "valu": 1, "op": "SCMP_CMP_EQ"}]}"#
        ),
        ProfileError::UnknownKey { .. },
        "syscalls[1].args[1].valu: unknown key"
    );
    check_error!(
        with_rules(r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"cap": []}}"#),
        ProfileError::UnknownKey { .. },
        "syscalls[0].includes.cap: unknown key"
    );
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"maxKernel": "5.0"}}"#
        ),
        ProfileError::UnknownKey { .. },
        "syscalls[0].excludes.maxKernel: unknown key"
    );
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitecture": []}]}"#,
        ProfileError::UnknownKey { .. },
        "archMap[0].subArchitecture: unknown key"
    );
}

#[test]
fn missing_and_mistyped_values() {
    check_error!(
        r#"{"syscalls": []}"#,
        ProfileError::MissingKey { .. },
        "defaultAction: missing"
    );
    check_error!(
        with_rules(r#"{"action": "SCMP_ACT_ALLOW"}"#),
        ProfileError::MissingKey { .. },
        "syscalls[0].names: missing"
    );
    check_error!(
        with_rules(r#"{"names": ["read"]}"#),
        ProfileError::MissingKey { .. },
        "syscalls[0].action: missing"
    );
    check_error!(
        with_rules(
            r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1}]}"#
        ),
        ProfileError::MissingKey { .. },
        "syscalls[0].args[0].op: missing"
    );
    check_error!(
        with_rules(r#"{"names": ["read"], "name": "write", "action": "SCMP_ACT_ALLOW"}"#),
        ProfileError::NameAndNames { .. },
        "syscalls[0]: `name` and `names` both given; use one"
    );
    check_error!(
        with_rules(r#"{"names": "read", "action": "SCMP_ACT_ALLOW"}"#),
        ProfileError::WrongType { .. },
        "syscalls[0].names: expected an array"
    );
    check_error!(
        with_rules(r#"{"names": ["read", 3], "action": "SCMP_ACT_ALLOW"}"#),
        ProfileError::WrongType { .. },
        "syscalls[0].names[1]: expected a string"
    );
    check_error!(
        with_rules(
            r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}"#
        ),
        ProfileError::WrongType { .. },
        "syscalls[0].args[0].value: expected an unsigned 64-bit integer"
    );
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "comment": 1}"#,
        ProfileError::WrongType { .. },
        "comment: expected a string"
    );
    check_error!(
        r#"[]"#,
        ProfileError::WrongType { .. },
        "the profile: expected an object"
    );
}

#[test]
fn unknown_actions() {
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_DENY"}"#,
        ProfileError::UnknownAction { .. },
        "defaultAction: unknown or unsupported action `SCMP_ACT_DENY`"
    );
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
               {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}"#
        ),
        ProfileError::UnknownAction { .. },
        "syscalls[1].action: unknown or unsupported action `SCMP_ACT_NOTIFY`"
    );
}

#[test]
fn errno_out_of_range_or_misplaced() {
    check_error!(
        with_rules(r#"{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4096}"#),
        ProfileError::ErrnoOutOfRange { errno: 4096, .. },
        "syscalls[0].errnoRet: errno 4096 is out of range: a seccomp filter can return 0 to 4095"
    );
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
        ProfileError::ErrnoOutOfRange { errno: 70000, .. },
        "defaultErrnoRet: errno 70000 is out of range: a seccomp filter can return 0 to 4095"
    );
    check_error!(
        with_rules(r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}"#),
        ProfileError::ErrnoWithoutErrnoAction { .. },
        "syscalls[0].errnoRet: an errno is only meaningful with SCMP_ACT_ERRNO"
    );
    let edge = load(&with_rules(
        r#"{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4095}"#,
    ));
    assert_eq!(edge.rules()[0].action(), Action::Errno(4095));
}

#[test]
fn unknown_ops() {
    check_error!(
        with_rules(
            r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 1, "value": 1, "op": "SCMP_CMP_BETWEEN"}]}"#
        ),
        ProfileError::UnknownOp { .. },
        "syscalls[0].args[1].op: unknown comparison `SCMP_CMP_BETWEEN`"
    );
    check_error!(
        with_rules(
            r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}"#
        ),
        ProfileError::ValueTwoUnused { .. },
        "syscalls[0].args[0].valueTwo: valueTwo is only used by SCMP_CMP_MASKED_EQ"
    );
}

#[test]
fn argument_index_out_of_range() {
    for index in [6, 300] {
        check_error!(
            with_rules(&format!(
                r#"{{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                    "args": [{{"index": {index}, "value": 1, "op": "SCMP_CMP_EQ"}}]}}"#
            )),
            ProfileError::ArgIndexOutOfRange { .. },
            format!(
                "syscalls[0].args[0].index: argument index {index} is out of range: syscalls \
                 have arguments 0 to 5"
            )
        );
    }
    let last = load(&with_rules(
        r#"{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 5, "value": 1, "op": "SCMP_CMP_EQ"}]}"#,
    ));
    assert_eq!(last.rules()[0].args()[0].index(), 5);
}

#[test]
fn conditions_the_model_refuses() {
    // socket's domain is compared as 32 bits: a wider value could never match.
    let e = error(&with_rules(
        r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_EQ"}]}"#,
    ));
    assert!(
        matches!(
            &e,
            ProfileError::InvalidCondition {
                at,
                source: SeccompError::DwordValueTooWide { index: 0, value: 0x1_0000_0000, .. },
            } if at.path == "syscalls[0].args[0]"
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("syscalls[0].args[0] (line 2, column 22): "),
        "{e}"
    );
    // The same value on a 64-bit argument is fine.
    load(&with_rules(
        r#"{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_EQ"}]}"#,
    ));
    let e = error(&with_rules(
        r#"{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 2, "value": 240, "valueTwo": 15, "op": "SCMP_CMP_MASKED_EQ"}]}"#,
    ));
    assert!(
        matches!(
            &e,
            ProfileError::InvalidCondition {
                at,
                source: SeccompError::MaskedValueOutsideMask { index: 2, value: 15, mask: 240 },
            } if at.path == "syscalls[0].args[0]"
        ),
        "{e:?}"
    );
}

#[test]
fn empty_and_unknown_names() {
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
               {"names": [], "action": "SCMP_ACT_ALLOW"}"#
        ),
        ProfileError::EmptyNames { .. },
        "syscalls[1].names: names no syscall"
    );
    if syscalls::ARCH_SUPPORTED {
        check_error!(
            with_rules(r#"{"names": ["read", "raed"], "action": "SCMP_ACT_ALLOW"}"#),
            ProfileError::UnknownSyscall { .. },
            "syscalls[0].names[1]: `raed` is not a Linux syscall"
        );
        check_error!(
            with_rules(r#"{"name": "raed", "action": "SCMP_ACT_ALLOW"}"#),
            ProfileError::UnknownSyscall { .. },
            "syscalls[0].name: `raed` is not a Linux syscall"
        );
        // A syscall of another architecture is fine (and skipped when compiling).
        load(&with_rules(
            r#"{"names": ["chown32"], "action": "SCMP_ACT_ALLOW"}"#,
        ));
    }
}

#[test]
fn unknown_capabilities_arches_and_kernels() {
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_WIZARD"]}}"#
        ),
        ProfileError::UnknownCapability { .. },
        "syscalls[0].includes.caps[1]: unknown capability `CAP_SYS_WIZARD`"
    );
    check_error!(
        with_rules(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "excludes": {"arches": ["amd64", "vax"]}}"#
        ),
        ProfileError::UnknownArch { .. },
        "syscalls[0].excludes.arches[1]: unknown architecture `vax`"
    );
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x86_64"]}"#,
        ProfileError::UnknownArch { .. },
        "architectures[0]: unknown architecture `x86_64`"
    );
    check_error!(
        r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_Z80"]}]}"#,
        ProfileError::UnknownArch { .. },
        "archMap[0].subArchitectures[1]: unknown architecture `SCMP_ARCH_Z80`"
    );
    for text in ["4", "4.x", "v4.8", "4.8-rc1", ""] {
        for place in ["includes", "excludes"] {
            check_error!(
                with_rules(&format!(
                    r#"{{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "{place}": {{"minKernel": "{text}"}}}}"#
                )),
                ProfileError::InvalidKernelVersion { .. },
                format!(
                    "syscalls[0].{place}.minKernel: `{text}` is not a kernel version (major.minor)"
                )
            );
        }
    }
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = dir.path().join("missing.json");
    let e = SeccompProfile::from_json_file(&missing)
        .err()
        .unwrap_or_else(|| panic!("loaded a missing file"));
    assert!(
        matches!(&e, ProfileError::Read { file, .. } if *file == missing),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("cannot read the seccomp profile {}", missing.display())
    );
}

#[test]
fn oci_profile_loads_to_the_expected_model() -> Result<(), SeccompError> {
    let text = r#"{
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"name": "openat", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "comment": "OCI's single-name form", "args": null},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ", "comment": "AF_UNIX"},
                      {"index": 2, "value": 7, "op": "SCMP_CMP_LE", "valueTwo": 0}]},
            {"names": ["clone"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 268435456,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_LOG",
             "includes": {"caps": ["CAP_KILL"], "arches": ["amd64"], "minKernel": "5.4",
                          "comment": "only for containers that may signal"},
             "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
            {"names": ["tkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"minKernel": "6.1"}},
            {"names": ["ioctl", "fcntl", "ioctl"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_NE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL_THREAD",
             "args": [{"index": 3, "value": 1, "op": "SCMP_CMP_GE"},
                      {"index": 4, "value": 9, "op": "SCMP_CMP_GT"},
                      {"index": 5, "value": 9, "op": "SCMP_CMP_LT"}]}
        ]
    }"#;
    let expected =
        SeccompProfile::new(Action::KillProcess)
            .with_rule(SyscallRule::new(["read", "write"], Action::Allow))
            .with_rule(SyscallRule::new(["openat"], Action::Errno(13)))
            .with_rule(SyscallRule::new(["mkdir"], Action::Errno(EPERM)))
            .with_rule(
                SyscallRule::new(["socket"], Action::Allow)
                    .with_arg(ArgCondition::dword(0, ArgOp::Eq, 1)?)
                    .with_arg(ArgCondition::qword(2, ArgOp::Le, 7)?),
            )
            .with_rule(
                SyscallRule::new(["clone"], Action::Trap).with_arg(ArgCondition::qword(
                    0,
                    ArgOp::MaskedEq(0x7E02_0000),
                    0x1000_0000,
                )?),
            )
            .with_rule(
                SyscallRule::new(["kill"], Action::Log)
                    .requires_caps([caps::Capability::CAP_KILL])
                    .only_on([Arch::X86_64])
                    .min_kernel(KernelVersion::new(5, 4))
                    .unless_caps([caps::Capability::CAP_SYS_ADMIN])
                    .except_on([Arch::S390x]),
            )
            .with_rule(
                SyscallRule::new(["tkill"], Action::Errno(ENOSYS))
                    .unless_kernel(KernelVersion::new(6, 1)),
            )
            // ioctl's cmd is 32 bits, fcntl's second argument 64: split, in place.
            .with_rule(
                SyscallRule::new(["ioctl", "ioctl"], Action::KillThread)
                    .with_arg(ArgCondition::dword(1, ArgOp::Ne, 0x5412)?),
            )
            .with_rule(
                SyscallRule::new(["fcntl"], Action::KillThread).with_arg(ArgCondition::qword(
                    1,
                    ArgOp::Ne,
                    0x5412,
                )?),
            )
            .with_rule(
                SyscallRule::new(["getpid"], Action::KillThread)
                    .with_arg(ArgCondition::qword(3, ArgOp::Ge, 1)?)
                    .with_arg(ArgCondition::qword(4, ArgOp::Gt, 9)?)
                    .with_arg(ArgCondition::qword(5, ArgOp::Lt, 9)?),
            );
    assert_eq!(load(text), expected);

    // The default errno, given or not.
    let p = load(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}"#);
    assert_eq!(p, SeccompProfile::new(Action::Errno(ENOSYS)));
    let p = load(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": null}"#);
    assert_eq!(p, SeccompProfile::new(Action::Errno(EPERM)));
    let p = load(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}"#);
    assert_eq!(p, SeccompProfile::new(Action::Allow));
    Ok(())
}

/// Docker's reference profile against the built-in profile.
#[cfg(target_arch = "x86_64")]
mod docker_reference {
    use std::path::Path;

    use super::*;
    use crate::capabilities::{Capabilities, Capability};
    use crate::seccomp::bpf::SeccompData;
    use crate::seccomp::default::CLONE_NAMESPACE_FLAGS;
    use crate::seccomp::{compile, CompiledSeccomp};

    const DOCKER_JSON: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/docker-default-seccomp.json"
    );

    /// Docker's reference profile, or `None` (the test is skipped) if the file is
    /// absent outside CI. In CI a missing file fails.
    fn reference() -> Option<SeccompProfile> {
        let path = Path::new(DOCKER_JSON);
        if !path.exists() && std::env::var_os("CI").is_none() {
            eprintln!("skipped: {DOCKER_JSON} is absent (and CI is unset)");
            return None;
        }
        Some(SeccompProfile::from_json_file(path).unwrap_or_else(|e| panic!("{DOCKER_JSON}: {e}")))
    }

    fn numbers() -> Vec<i64> {
        let mut numbers: Vec<i64> = (0..=1100).collect();
        numbers.extend((0..=600).map(|n| 0x4000_0000 | n));
        numbers.extend([-1, 0x1_0000_0027]);
        numbers
    }

    /// Argument vectors that exercise every argument rule of both profiles.
    fn argument_vectors() -> Vec<[u64; 6]> {
        let mut vectors = vec![[0; 6], [1; 6], [u64::MAX; 6]];
        // socket's domain, argument 0.
        let domains = (0..=45).chain([0x1_0000_0026, 0x1_0000_0028, 0xffff_ffff_0000_0026]);
        vectors.extend(domains.map(|d| [d, 1, 0, 0, 0, 0]));
        // personality's persona, argument 0.
        for persona in [
            0,
            8,
            0x2_0000,
            0x2_0008,
            0xffff_ffff,
            0x40_0000,
            0x1_0000_0008,
            0xffff_ffff_ffff_ffff,
        ] {
            vectors.push([persona, 0, 0, 0, 0, 0]);
        }
        // clone's flags, argument 0 (and 1, where s390 has them).
        let sigchld = libc::SIGCHLD as u64;
        let threads = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        for flags in [
            sigchld,
            threads,
            CLONE_NAMESPACE_FLAGS,
            libc::CLONE_NEWUSER as u64 | sigchld,
            libc::CLONE_NEWNS as u64 | threads,
            libc::CLONE_NEWNET as u64,
            1 << 32 | sigchld,
        ] {
            vectors.push([flags, 0, 0, 0, 0, 0]);
            vectors.push([0, flags, 0, 0, 0, 0]);
        }
        // ioctl's cmd, argument 1.
        for cmd in [
            TIOCSTI,
            TIOCLINUX,
            0xffff_ffff_0000_5412,
            0x1_0000_541C,
            libc::FIONREAD,
            libc::TIOCGWINSZ,
        ] {
            vectors.push([0, cmd, 0, 0, 0, 0]);
        }
        vectors
    }

    fn evaluate(compiled: &CompiledSeccomp, nr: i64, args: [u64; 6]) -> u32 {
        compiled.evaluate(&SeccompData::native(nr, args))
    }

    #[test]
    fn dockers_json_decides_like_the_builtin_profile() -> Result<(), SeccompError> {
        let Some(docker) = reference() else {
            return Ok(());
        };
        let builtin = SeccompProfile::docker_default();
        // As data: Docker's rules, with the shared argument widths, are the built-in
        // profile, rule for rule. What the sandbox adds (no terminal injection, the
        // x32, unknown-number and other-architecture answers) every profile gets.
        assert!(
            &docker == builtin,
            "Docker's JSON differs from the built-in profile"
        );

        let default = Capabilities::fargate_default();
        let caps_variants = [default, default.with_sys_ptrace(), Capabilities::none()];
        let numbers = numbers();
        let vectors = argument_vectors();
        for caps in caps_variants {
            let ours = compile(builtin, caps)?;
            let theirs = compile(&docker, caps)?;
            for &nr in &numbers {
                for &args in &vectors {
                    let want = builtin.decide(caps, nr, &args);
                    let got = docker.decide(caps, nr, &args);
                    assert_eq!(got, want, "decide {nr:#x} {args:x?} for {caps}");
                    let want_ret = evaluate(&ours, nr, args);
                    assert_eq!(want_ret, want.to_ret(), "built-in BPF {nr:#x} {args:x?}");
                    assert_eq!(
                        evaluate(&theirs, nr, args),
                        want_ret,
                        "BPF {nr:#x} {args:x?} for {caps}"
                    );
                    // Terminal injection is refused by the imported profile too,
                    // whatever the high bits of `cmd`.
                    if nr == 16 && [TIOCSTI, TIOCLINUX].contains(&(args[1] & 0xffff_ffff)) {
                        assert_eq!(got, Action::Errno(EPERM), "{args:x?}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn int_arguments_compare_32_bits_as_in_the_builtin() {
        let Some(docker) = reference() else {
            return;
        };
        let caps = Capabilities::fargate_default().drop(Capability::NetRaw);
        let socket = 41;
        // AF_VSOCK with a high bit: Docker's 64-bit `> 40` would let it through.
        assert_eq!(
            docker.decide(caps, socket, &[0x1_0000_0028, 1, 0, 0, 0, 0]),
            Action::Errno(EPERM)
        );
        assert_eq!(
            docker.decide(caps, socket, &[libc::AF_INET as u64, 1, 0, 0, 0, 0]),
            Action::Allow
        );
    }
}

#[test]
fn deep_nesting_is_refused_before_parsing_even_on_a_small_stack() {
    let run = || {
        // 32 levels are the loader's to judge (a comment is a string); the 33rd is
        // refused where it opens.
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(
            r#"{{"defaultAction": "SCMP_ACT_ERRNO", "comment": {}}}"#,
            nested(31)
        );
        let e = error(&text);
        assert!(matches!(e, ProfileError::WrongType { .. }), "{e:?}");
        for text in [
            format!(
                "{{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"comment\": {}}}",
                nested(32)
            ),
            format!("{{\"é\": 1,\n \"comment\": {}", "[".repeat(100_000)),
        ] {
            let e = error(&text);
            assert!(
                matches!(
                    e,
                    ProfileError::TooDeep {
                        line: 2,
                        column: 44,
                        max: 32
                    }
                ),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                "the seccomp profile nests arrays and objects deeper than 32 levels at line 2, \
                 column 44"
            );
            assert!(e.location().is_none());
        }
    };
    // A small stack, as some runtimes give their worker threads.
    std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(run)
        .unwrap_or_else(|e| panic!("{e}"))
        .join()
        .unwrap_or_else(|_| panic!("the loader failed on a small stack"));
}
