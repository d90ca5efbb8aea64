//! The runner example, as a newcomer uses it, and as an unprivileged user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(example("run"))
        .args(args)
        .output()
        .expect("runner starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_code_and_signal_pass_through() {
    if !can_start_tasks() {
        return;
    }
    let out = run(&["--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err\n"));
    let probe = format!("{}:/probe", example("probe").display());
    let out = run(&["--volume", &probe, "--", "/probe", "segv"]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSEGV));
}

#[test]
fn out_of_memory_is_said_and_exits_137() {
    if !can_start_tasks() {
        return;
    }
    let probe = format!("{}:/probe", example("probe").display());
    let out = run(&[
        "--memory", "48", "--volume", &probe, "--", "/probe", "alloc", "512",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("out of memory"),
        "{}",
        text(&out.stderr)
    );
}

/// A size that is not a row of Fargate's table, with `--fargate`.
const NOT_FARGATE: &[&str] = &[
    "--fargate",
    "--cpu",
    "256",
    "--memory",
    "4096",
    "--",
    "true",
];

#[test]
fn errors_print_their_chain_and_exit_2() {
    let cases: [&[&str]; 6] = [
        NOT_FARGATE,
        &["--drop-cap", "SYS_ADMIN", "--", "true"],
        &["--cpu", "lots", "--", "true"],
        &["--volume", "nonsense", "--", "true"],
        &["--bogus"],
        &[],
    ];
    for args in cases {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(NOT_FARGATE);
    let err = text(&out.stderr);
    assert!(
        err.contains("caused by: memory = 4096 MiB is not valid with cpu = 256"),
        "{err}"
    );
    assert!(err.contains("512, 1024, 2048"), "{err}");
    if can_start_tasks() {
        let out = run(&["--", "/no/such/binary"]);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains("step `exec`") && err.contains("ENOENT"),
            "{err}"
        );
    }
}

/// A copy of the runner any user can execute (the build tree may sit under a
/// directory only root can enter).
fn runner_for_everyone(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("run");
    std::fs::copy(example("run"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn as_nobody(runner: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(runner)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("setpriv runs")
}

#[test]
fn unprivileged_caller_keeps_the_lockdown() {
    if !can_start_tasks() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runner = runner_for_everyone(dir.path());

    // Without a delegated cgroup the limits cannot be applied: a clear refusal.
    let out = as_nobody(&runner, &["--", "/bin/true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not writable by uid 65534"), "{err}");
    assert!(err.contains("delegate"), "{err}");

    // Best effort: it runs, says what it skipped, and everything else holds.
    let out = as_nobody(
        &runner,
        &[
            "--best-effort",
            "--",
            "/bin/sh",
            "-c",
            "cat /proc/self/status /proc/self/uid_map; ls /sys/class/net; unshare -U true 2>&1 || echo unshare refused",
        ],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("not applied: CPU limit"), "{stderr}");
    assert!(stderr.contains("not applied: memory limit"), "{stderr}");
    assert_eq!(status_field(&stdout, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&stdout, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&stdout, "NoNewPrivs"), "1");
    assert_eq!(status_field(&stdout, "Seccomp"), "2");
    let map_line = stdout
        .lines()
        .find(|l| l.split_whitespace().count() == 3 && l.trim_start().starts_with('0'))
        .expect("uid_map line");
    assert_eq!(
        map_line.split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert!(stdout.lines().any(|l| l == "lo"), "{stdout}");
    assert!(stdout.contains("unshare refused"), "{stdout}");
}

fn sample(name: &str) -> String {
    format!("{}/examples/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn policy_runs_every_container_and_exits_with_the_task_status() {
    if !can_start_tasks() {
        return;
    }
    let out = run(&["--policy", &sample("web-with-sidecar.toml")]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("[app] app up\n"), "{stdout}");
    assert!(
        stdout.contains("[sidecar] sidecar sees the app healthy\n"),
        "{stdout}"
    );
    // The essential container's exit code is the task's.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("fail.toml");
    std::fs::write(
        &policy,
        "[[container]]\nname = \"a\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 7\"]\n",
    )
    .unwrap();
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("essential container \"a\" exited"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn policy_errors_print_like_rustc_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.toml");
    std::fs::write(
        &policy,
        "[[container]]\nname = \"a\"\ncommand = [\"/bin/true\"]\ncapabilities = { add = [\"SYS_PTRACE\", \"NET_ADMIN\"] }\n",
    )
    .unwrap();
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: CAP_NET_ADMIN cannot be added: only SYS_PTRACE can be added to a container's capabilities\n \
             --> {}:4:39\n  \
             |\n\
             4 | capabilities = {{ add = [\"SYS_PTRACE\", \"NET_ADMIN\"] }}\n  \
             |                                       ^^^^^^^^^^^ container[0].capabilities.add[1]\n",
            policy.display()
        )
    );
    // An error of build() is placed too.
    std::fs::write(
        &policy,
        "[task]\ncpu = 256\nmemory = 3000\n\n[[container]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n",
    )
    .unwrap();
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: memory = 3000 MiB is not valid with cpu = 256 on Fargate"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:3:10\n", policy.display())),
        "{err}"
    );
    assert!(
        err.ends_with("3 | memory = 3000\n  |          ^^^^ task.memory\n"),
        "{err}"
    );
    // A missing file, and options that make no sense with a policy.
    let out = run(&["--policy", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: cannot read the policy file: "));
    let out = run(&["--policy", policy.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("takes no command"));
    let out = run(&["--policy", policy.to_str().unwrap(), "--ptrace"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_prints_and_starts_nothing() {
    if !can_start_tasks() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Writable by the task's root (host uid 100000).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = dir.path().join("ran");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!(
            "[[container]]\nname = \"a\"\ncommand = [\"/bin/touch\", \"/out/ran\"]\nmounts = [{{ source = \"{}\", destination = \"/out\", read_only = false }}]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = run(&["--policy", policy.to_str().unwrap(), "--explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("task\n  user namespace "), "{stdout}");
    assert!(stdout.contains("\ncontainer \"a\"\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "/out                   bind {} (rec)",
            dir.path().display()
        )),
        "{stdout}"
    );
    let out = run(&["--policy", policy.to_str().unwrap(), "--explain=json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["schema"], "tasksandbox.explain/v1");
    assert_eq!(json["containers"][0]["name"], "a");
    assert!(!marker.exists(), "--explain must not start the task");
    // Then it runs for real.
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(marker.exists());
    // The one-container mode explains too.
    let out = run(&["--ptrace", "--explain", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("CAP_SYS_PTRACE"),
        "{}",
        text(&out.stdout)
    );
}
