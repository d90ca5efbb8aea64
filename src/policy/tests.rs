//! Every refusal of the policy format, at its exact place.

use super::*;
use crate::capabilities::Capability;
use crate::container::{Condition, User};
use crate::lifecycle::PidMode;
use std::path::Path;

/// Parses `text` and returns the error's (line, column, key path, message).
fn refusal(text: &str) -> (usize, usize, String, String) {
    let err = Policy::parse(text, "p.toml").expect_err("the policy is refused");
    (
        err.line(),
        err.column(),
        err.key_path().to_string(),
        err.message(),
    )
}

/// A policy with one container whose table ends with `extra`.
fn one(extra: &str) -> String {
    format!("[[container]]\nname = \"app\"\ncommand = [\"/bin/true\"]\n{extra}\n")
}

#[track_caller]
fn assert_refused(text: &str, line: usize, column: usize, path: &str, message: &str) {
    let (l, c, p, m) = refusal(text);
    assert_eq!((l, c, p.as_str()), (line, column, path), "{m}\n{text}");
    assert!(m.contains(message), "{m:?} lacks {message:?}");
}

#[test]
fn privileged_is_refused_anywhere() {
    let msg = "there is no privileged mode";
    assert_refused(
        "privileged = true\n[[container]]\n",
        1,
        1,
        "privileged",
        msg,
    );
    assert_refused("[task]\nprivileged = true\n", 2, 1, "task.privileged", msg);
    assert_refused(
        &one("privileged = true"),
        4,
        1,
        "container[0].privileged",
        msg,
    );
    assert_refused(
        &one("capabilities = { privileged = true }"),
        4,
        18,
        "container[0].capabilities.privileged",
        msg,
    );
    assert_refused(
        &one("mounts = [{ source = \"/usr\", destination = \"/u\", privileged = false }]"),
        4,
        50,
        "container[0].mounts[0].privileged",
        msg,
    );
    // Even before an unknown key that comes first in the table.
    assert_refused(
        &one("bogus = 1\nprivileged = false"),
        5,
        1,
        "container[0].privileged",
        msg,
    );
    // In a later container, before the first container's own mistake; in any case;
    // deep inside a table no schema walks.
    assert_refused(
        "[[container]]\nname = 1\n[[container]]\nPrivileged = true\n",
        4,
        1,
        "container[1].Privileged",
        msg,
    );
    assert_refused(
        &one("health_check = { command = [\"true\"], x = { y = [{ privileged = 0 }] } }"),
        4,
        51,
        "container[0].health_check.x.y[0].privileged",
        msg,
    );
    // The first in the text wins.
    assert_refused(
        "[task]\nprivileged = 1\n[[container]]\nprivileged = 1\n",
        2,
        1,
        "task.privileged",
        msg,
    );
    // An environment variable is not a key of the format.
    let p = Policy::parse(&one("env = { privileged = \"yes\" }"), "p.toml").unwrap();
    assert_eq!(p.containers[0].env["privileged"], "yes");
}

#[test]
fn capabilities_other_than_sys_ptrace_cannot_be_added() {
    let text = "[[container]]\nname = \"a\"\ncommand = [\"x\"]\n\n[[container]]\nname = \"b\"\ncommand = [\"x\"]\ncapabilities = { add = [\"SYS_PTRACE\", \"SYS_ADMIN\"] }\n";
    assert_refused(
        text,
        8,
        39,
        "container[1].capabilities.add[1]",
        "CAP_SYS_ADMIN cannot be added: only SYS_PTRACE can be added",
    );
    assert_refused(
        &one("capabilities = { add = [\"cap_net_admin\"] }"),
        4,
        25,
        "container[0].capabilities.add[0]",
        "CAP_NET_ADMIN cannot be added",
    );
    assert_refused(
        &one("capabilities = { add = [\"CHOWN\"] }"),
        4,
        25,
        "container[0].capabilities.add[0]",
        "CAP_CHOWN cannot be added: only SYS_PTRACE can be added to a container's capabilities (it is one of the 14 defaults",
    );
    assert_refused(
        &one("capabilities = { add = [\"ALL\"] }"),
        4,
        25,
        "container[0].capabilities.add[0]",
        "ALL cannot be added",
    );
    assert_refused(
        &one("capabilities = { drop = [\"FLY\"] }"),
        4,
        26,
        "container[0].capabilities.drop[0]",
        "`FLY` is not a Linux capability",
    );
    assert_refused(
        &one("capabilities = { add = \"SYS_PTRACE\" }"),
        4,
        24,
        "container[0].capabilities.add",
        "expected an array of capability names, found a string",
    );
}

#[test]
fn unknown_keys_are_refused_with_a_suggestion() {
    assert_refused(
        &one("comand = [\"x\"]"),
        4,
        1,
        "container[0].comand",
        "unknown key `comand` (did you mean `command`?)",
    );
    assert_refused(
        "[task]\npidMode = \"task\"\n",
        2,
        1,
        "task.pidMode",
        "unknown key `pidMode` (did you mean `pid_mode`?)",
    );
    assert_refused(
        "[[containers]]\nname = \"a\"\n",
        1,
        3,
        "containers",
        "unknown key `containers` (did you mean `container`?)",
    );
    assert_refused(
        &one("health_check = { command = [\"x\"], interval = 5 }"),
        4,
        35,
        "container[0].health_check.interval",
        "did you mean `interval_secs`?",
    );
    let (_, _, _, m) = refusal("[task]\nfoo = 1\n");
    assert!(m.contains("expected one of: cpu, memory, fargate"), "{m}");
}

#[test]
fn keys_fargate_rejects_say_why() {
    for (key, why) in [
        ("devices", "no host devices"),
        ("shared_memory_size", "/dev/shm"),
        ("tmpfs", "ephemeral = true"),
        ("docker_security_options", "use `seccomp`"),
        ("disable_networking", "only loopback"),
        ("dns_servers", "loopback"),
        ("dns_search_domains", "loopback"),
        ("extra_hosts", "/etc/hosts"),
        ("gpu", "no GPUs"),
        ("ipc_mode", "IPC namespace"),
        ("links", "localhost"),
        ("max_swap", "without swap"),
        ("swappiness", "without swap"),
    ] {
        assert_refused(
            &one(&format!("{key} = 1")),
            4,
            1,
            &format!("container[0].{key}"),
            &format!("`{key}` is not accepted: "),
        );
        assert!(
            refusal(&one(&format!("{key} = 1"))).3.contains(why),
            "{key}"
        );
    }
    // ECS's camelCase names are recognized too.
    assert_refused(
        &one("sharedMemorySize = 64"),
        4,
        1,
        "container[0].sharedMemorySize",
        "`shared_memory_size` is not accepted",
    );
    assert_refused(
        "[task]\nipc_mode = \"host\"\n",
        2,
        1,
        "task.ipc_mode",
        "`ipc_mode` is not accepted",
    );
}

#[test]
fn wrong_types_and_ranges() {
    assert_refused(
        "[task]\ncpu = \"256\"\n",
        2,
        7,
        "task.cpu",
        "expected an integer, found a string",
    );
    assert_refused(
        "[task]\nstop_timeout_secs = 121\n",
        2,
        21,
        "task.stop_timeout_secs",
        "121 is out of range: it must be 0..=120 seconds",
    );
    assert_refused(
        "[task]\nephemeral_storage_gib = 500\n",
        2,
        25,
        "task.ephemeral_storage_gib",
        "500 is out of range: it must be 20..=200 GiB on Fargate",
    );
    assert_refused(
        "[task]\npids_limit = -1\n",
        2,
        14,
        "task.pids_limit",
        "-1 is out of range",
    );
    assert_refused(
        "[task]\npid_mode = \"host\"\n",
        2,
        12,
        "task.pid_mode",
        "pid_mode \"host\" is not accepted",
    );
    assert_refused(
        "task = 3\n",
        1,
        8,
        "task",
        "expected a table, found an integer",
    );
    assert_refused(
        &one("essential = \"no\""),
        4,
        13,
        "container[0].essential",
        "expected a boolean",
    );
    assert_refused(
        &one("env = { A = 1 }"),
        4,
        13,
        "container[0].env.A",
        "expected a string, found an integer",
    );
    assert_refused(
        &one("user = \"root\""),
        4,
        8,
        "container[0].user",
        "\"root\" is not \"uid\" or \"uid:gid\"",
    );
    assert_refused(
        &one("ulimits = [{ name = \"nofile\", soft = 1024, hard = 4096 }]"),
        4,
        38,
        "container[0].ulimits[0].soft",
        "soft (1024) must equal hard (4096)",
    );
    assert_refused(
        &one("ulimits = [{ name = \"nproc\", soft = 1, hard = 1 }]"),
        4,
        21,
        "container[0].ulimits[0].name",
        "only the \"nofile\" ulimit",
    );
    assert_refused(
        &one("ulimits = [{ name = \"nofile\", soft = 2000000, hard = 2000000 }]"),
        4,
        38,
        "container[0].ulimits[0].soft",
        "2000000 is out of range: it must be 1..=1048576",
    );
    assert_refused(
        &one("depends_on = [{ container = \"db\", condition = \"healthy\" }]"),
        4,
        47,
        "container[0].depends_on[0].condition",
        "not one of START, COMPLETE, SUCCESS, HEALTHY",
    );
    assert_refused(
        &one("stdin = \"log\""),
        4,
        9,
        "container[0].stdin",
        "\"log\" is not one of \"inherit\", \"null\" or { file = \"PATH\" }",
    );
    assert_refused(
        &one("seccomp = \"unconfined\""),
        4,
        11,
        "container[0].seccomp",
        "every container runs under a seccomp profile",
    );
    assert_refused(
        "version = 2\n[[container]]\n",
        1,
        11,
        "version",
        "2 is out of range",
    );
}

#[test]
fn mounts_and_secrets() {
    assert_refused(
        &one("mounts = [{ source = \"/usr\" }]"),
        4,
        11,
        "container[0].mounts[0]",
        "missing key `destination`",
    );
    assert_refused(
        &one("mounts = [{ ephemeral = true, source = \"/x\", destination = \"/s\" }]"),
        4,
        40,
        "container[0].mounts[0].source",
        "it has no source",
    );
    assert_refused(
        &one("secrets = [{ name = \"t\", value = \"hunter2\" }]"),
        4,
        26,
        "container[0].secrets[0].value",
        "a secret's value is never written in the policy",
    );
    assert_refused(
        &one("secrets = [{ name = \"t\", value_from = \"vault:x\" }]"),
        4,
        39,
        "container[0].secrets[0].value_from",
        "is not \"env:NAME\"",
    );
}

#[test]
fn missing_keys_point_at_the_table() {
    assert_refused(
        "[[container]]\ncommand = [\"x\"]\n",
        1,
        1,
        "container[0]",
        "missing key `name`",
    );
    assert_refused(
        "[[container]]\nname = \"a\"\ncommand = []\n",
        3,
        11,
        "container[0].command",
        "the command is empty",
    );
    assert_refused("[task]\ncpu = 256\n", 1, 1, "", "missing key `container`");
    assert_refused(
        "[task]\ncpu = 256\nmemory = 512\n\n[[container]]\nname = \"a\"\n",
        5,
        1,
        "container[0]",
        "missing key `command`",
    );
}

#[test]
fn syntax_errors_have_a_place() {
    let (line, col, path, msg) = refusal("[task]\ncpu = 256\nmemory = = 512\n");
    assert_eq!((line, col, path.as_str()), (3, 10, ""), "{msg}");
    let (line, _, _, msg) = refusal("[task]\ncpu = 1\ncpu = 2\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("duplicate"), "{msg}");
}

#[test]
fn rendering_is_rustc_style() {
    let text = one("capabilities = { add = [\"SYS_ADMIN\"] }");
    let err = Policy::parse(&text, "policies/app.toml").unwrap_err();
    assert_eq!(
        err.render(),
        "error: CAP_SYS_ADMIN cannot be added: only SYS_PTRACE can be added to a container's capabilities\n \
         --> policies/app.toml:4:25\n  \
         |\n\
         4 | capabilities = { add = [\"SYS_ADMIN\"] }\n  \
         |                         ^^^^^^^^^^^ container[0].capabilities.add[0]\n"
    );
    assert_eq!(
        err.to_string(),
        "policies/app.toml:4:25: container[0].capabilities.add[0]: CAP_SYS_ADMIN cannot be added: only SYS_PTRACE can be added to a container's capabilities"
    );
    // Wide line numbers widen the gutter.
    let text = format!("{}[task]\ncpu = \"x\"\n", "\n".repeat(99));
    let rendered = Policy::parse(&text, "p.toml").unwrap_err().render();
    assert!(
        rendered
            .contains("   --> p.toml:101:7\n    |\n101 | cpu = \"x\"\n    |       ^^^ task.cpu\n"),
        "{rendered}"
    );
}

#[test]
fn a_full_policy_parses_to_the_model() {
    let text = r#"
[task]
cpu = 512
memory = 1024
pid_mode = "task"
stop_timeout_secs = 10

[[container]]
name = "app"
command = ["/bin/app", "--port", "80"]
env = { B = "2", A = "1" }
user = { uid = 1000 }
capabilities = { drop = ["net_raw", "CAP_MKNOD", "SYS_ADMIN", "NET_RAW"], add = ["CAP_SYS_PTRACE"] }
health_check = { command = ["CMD-SHELL", "curl -f localhost", "|| exit 1"] }
ulimits = [{ name = "nofile", soft = 1024, hard = 1024 }]
stdout = { file = "app.log" }

[[container]]
name = "side"
command = ["side"]
essential = false
depends_on = [{ container = "app" }, { container = "app", condition = "HEALTHY" }]
"#;
    let p = Policy::parse(text, "/etc/policies/p.toml").unwrap();
    assert_eq!(p.task.cpu, Some(512));
    assert_eq!(p.task.pid_mode, PidMode::Task);
    let app = &p.containers[0];
    assert_eq!(app.user, Some(User::new(1000, 1000)));
    assert_eq!(
        app.env.iter().collect::<Vec<_>>(),
        [
            (&"A".to_string(), &"1".to_string()),
            (&"B".to_string(), &"2".to_string())
        ]
    );
    assert_eq!(
        app.capabilities.drop,
        [Capability::NetRaw, Capability::Mknod]
    );
    assert!(app.capabilities.add_sys_ptrace);
    let check = app.health_check.as_ref().unwrap();
    assert_eq!(
        check.command,
        ["/bin/sh", "-c", "curl -f localhost || exit 1"]
    );
    assert_eq!(
        (check.interval_secs, check.timeout_secs, check.retries),
        (30, 5, 3)
    );
    assert_eq!(app.nofile, Some(1024));
    assert_eq!(app.stdout, StdioPolicy::File("app.log".into()));
    assert_eq!(
        p.resolve(std::path::Path::new("app.log")),
        std::path::Path::new("/etc/policies/app.log")
    );
    let side = &p.containers[1];
    assert!(!side.essential);
    assert_eq!(
        side.depends_on,
        [
            ("app".to_string(), Condition::Start),
            ("app".to_string(), Condition::Healthy)
        ]
    );
    // The canonical text parses back to the same policy.
    let again = Policy::parse(&p.to_toml(), "again.toml").unwrap();
    assert_eq!(again, p);
}

#[test]
fn relative_policy_files_give_absolute_host_paths() {
    let cwd = std::env::current_dir().unwrap();
    for (file, dir) in [
        ("p.toml", cwd.clone()),
        ("policies/p.toml", cwd.join("policies")),
        ("/etc/p.toml", "/etc".into()),
    ] {
        let p = Policy::parse(&one("rootfs = \"images/app\""), file).unwrap();
        let resolved = p.resolve(p.containers[0].rootfs.as_deref().unwrap());
        assert!(resolved.is_absolute(), "{}", resolved.display());
        assert_eq!(resolved, dir.join("images/app"), "{file}");
        // Absolute paths are kept as written.
        assert_eq!(p.resolve(Path::new("/srv/x")), Path::new("/srv/x"));
    }
    let p: Policy = one("").parse().unwrap();
    assert_eq!(p.resolve(Path::new("a")), cwd.join("a"));
}

#[test]
fn memory_reservation_and_start_timeout() {
    let p = Policy::parse(
        &one("memory = 512\nmemory_reservation = 256\nstart_timeout_secs = 30"),
        "/p.toml",
    )
    .unwrap();
    let c = &p.containers[0];
    assert_eq!(
        (c.memory_reservation, c.start_timeout_secs),
        (Some(256), Some(30))
    );
    assert_eq!(Policy::parse(&p.to_toml(), "/p.toml").unwrap(), p);
    let built = p.builder().unwrap();
    let explained = built.build().unwrap().explain();
    assert_eq!(
        explained.containers[0].limits.memory_reservation_bytes,
        Some(256 << 20)
    );
    assert_refused(
        &one("start_timeout_secs = 121"),
        4,
        22,
        "container[0].start_timeout_secs",
        "1..=120 seconds",
    );
    assert_refused(
        &one("start_timeout_secs = 0"),
        4,
        22,
        "container[0].start_timeout_secs",
        "1..=120 seconds",
    );
    assert_refused(
        &one("memory_reservation = 5"),
        4,
        22,
        "container[0].memory_reservation",
        "6..=",
    );
    // ECS's camelCase is pointed at the key.
    let (_, _, path, message) = refusal(&one("memoryReservation = 5"));
    assert_eq!(path, "container[0].memoryReservation");
    assert!(message.contains("memory_reservation"), "{message}");
    // The builder's rules apply, placed on the key: a reservation above the limit.
    let p = Policy::parse(&one("memory = 256\nmemory_reservation = 512"), "/p.toml").unwrap();
    let err = p.build().unwrap_err();
    assert_eq!(
        (err.line(), err.key_path()),
        (5, "container[0].memory_reservation"),
        "{err}"
    );
}

#[test]
fn canonical_text_escapes_and_keeps_markers() {
    let p = Policy::parse(
        &one("env = { \"odd key\" = \"a\\\"b\\\\c\\n\\u0001\" }\nhealth_check = { command = [\"CMD\", \"CMD-SHELL\", \"x\"] }"),
        "p.toml",
    )
    .unwrap();
    assert_eq!(
        p.containers[0].health_check.as_ref().unwrap().command,
        ["CMD-SHELL", "x"]
    );
    let text = p.to_toml();
    assert_eq!(Policy::parse(&text, "p.toml").unwrap(), p, "{text}");
}

/// The property a fuzz target checks, on mutations of the samples: parsing never
/// panics, an error has a place on a line of the text, and whatever parses
/// round-trips through its canonical text.
#[test]
fn mutated_samples_never_panic_and_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    let pieces: [&str; 12] = [
        "\"",
        "=",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\n",
        "é",
        "privileged = true\n",
        "\t",
        "0x1f",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..3000 {
        let mut text = texts[round % texts.len()].clone();
        for _ in 0..1 + next(3) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => text.insert_str(at, pieces[next(pieces.len())]),
                1 => {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => text.truncate(at),
            }
        }
        match Policy::parse(&text, "m.toml") {
            Ok(p) => {
                let canonical = p.to_toml();
                let again = Policy::parse(&canonical, "m.toml")
                    .unwrap_or_else(|e| panic!("{}\n{canonical}", e.render()));
                assert_eq!(again, p, "{text}\n---\n{canonical}");
                assert_eq!(again.to_toml(), canonical);
            }
            Err(e) => {
                assert!(
                    e.line() >= 1 && e.line() <= text.lines().count().max(1) + 1,
                    "{text}"
                );
                assert!(e.column() >= 1);
                let _ = e.render();
            }
        }
    }
}

/// Nesting past any sensible depth (arrays, inline tables, dotted keys, table
/// headers) is a syntax error placed in the text, never a stack overflow, even on a
/// thread with half of Rust's default stack (in a debug build).
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let run = || {
        let deep = 100_000;
        for text in [
            format!("x = {}{}", "[".repeat(deep), "]".repeat(deep)),
            format!("x = {}", "[".repeat(deep)),
            format!("x = {}{}", "{a=".repeat(deep), "}".repeat(deep)),
            format!("{} = 1", vec!["a"; deep].join(".")),
            format!("[{}]", vec!["a"; deep].join(".")),
            format!(
                "[[container]]\nname = \"a\"\ncommand = {}",
                "[".repeat(deep)
            ),
        ] {
            let err = Policy::parse(&text, "deep.toml").unwrap_err();
            assert!(matches!(err.kind(), PolicyErrorKind::Syntax(_)), "{err}");
            assert!(err.line() >= 1, "{err}");
        }
    };
    // A small stack, as some runtimes give their worker threads: the nesting limit
    // keeps the toml crate's recursion short even in a debug build.
    std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn nesting_is_limited_outside_strings_and_comments() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // 32 levels are the parser's to judge (here: an unknown key); 33 are refused at the
    // bracket that opens the 33rd.
    let err = Policy::parse(&format!("x = {}", nested(32)), "n.toml").unwrap_err();
    assert!(
        matches!(err.kind(), PolicyErrorKind::UnknownKey { .. }),
        "{err}"
    );
    let err = Policy::parse(&format!("\nx = {}", nested(33)), "n.toml").unwrap_err();
    assert!(matches!(err.kind(), PolicyErrorKind::Syntax(_)), "{err}");
    assert_eq!((err.line(), err.column()), (2, 5 + 32), "{err}");
    assert!(err.to_string().contains("at most 32 deep"), "{err}");
    // Brackets in strings of every kind (with escaped quotes) and in comments are not
    // nesting.
    let many = "[{".repeat(40);
    let text = format!(
        r#"# {many}
[task]
cpu = 256 # {many}

[[container]]
name = "a"
command = ["{many}", '{many}', """
{many}\"""", '''
{many}''', "\"{many}"]
env = {{ "{many}" = "x" }}
"#
    );
    let p = Policy::parse(&text, "n.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.containers[0].command.len(), 5);
    assert_eq!(p.containers[0].command[2], format!("{many}\""));
}
