//! Task policies: every sample round-trips and builds, errors of `build()` are placed
//! on the key that caused them, and `explain` of a sample matches its golden text.
//!
//! `UPDATE_GOLDEN=1 cargo test --test policy` rewrites the explain golden files in
//! tests/golden/ (review the diff).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tasksandbox::policy::{Policy, PolicyErrorKind};
use tasksandbox::ConfigError;

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/policies")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// Paths relative to the repository, as the samples' comments name them.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .to_path_buf()
}

#[test]
fn every_sample_round_trips_through_its_canonical_text() {
    for file in samples() {
        let policy = Policy::from_file(&file).unwrap_or_else(|e| panic!("{}", e.render()));
        let canonical = policy.to_toml();
        // Parsed again from the same directory (relative paths keep their meaning),
        // the canonical text is the same policy, and its own canonical text.
        let again = Policy::parse(&canonical, &file)
            .unwrap_or_else(|e| panic!("{}\n{canonical}", e.render()));
        assert_eq!(again, policy, "{}:\n{canonical}", file.display());
        assert_eq!(again.to_toml(), canonical, "{}", file.display());
        if !can_start_tasks() {
            continue;
        }
        // Both build, to the same enforcement.
        let built = policy.build().unwrap_or_else(|e| panic!("{}", e.render()));
        let rebuilt = again.build().unwrap_or_else(|e| panic!("{}", e.render()));
        assert_eq!(
            built.explain().to_json(),
            rebuilt.explain().to_json(),
            "{}",
            file.display()
        );
        assert_eq!(
            built.container_names().collect::<Vec<_>>(),
            policy
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_sample_runs() {
    if !can_start_tasks() {
        return;
    }
    for file in samples() {
        let exit = Policy::from_file(&file)
            .and_then(|p| p.build())
            .unwrap_or_else(|e| panic!("{}", e.render()))
            .status()
            .expect("the task runs");
        assert!(exit.success(), "{}: {exit}", relative(&file).display());
        // Non-essential containers ran too (the sidecar waits for a health check).
        assert!(
            exit.containers
                .iter()
                .all(|c| c.status.is_some_and(|s| s.success())),
            "{}: {exit}",
            relative(&file).display()
        );
    }
}

/// Builds `text` (as a file in the samples' directory) and returns the error's
/// (line, column, key path, message).
fn build_error(text: &str) -> (usize, usize, String, String) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/test.toml");
    let policy = Policy::parse(text, &file).unwrap_or_else(|e| panic!("{}", e.render()));
    let err = policy.build().expect_err("the policy is refused");
    (
        err.line(),
        err.column(),
        err.key_path().to_string(),
        err.message(),
    )
}

#[track_caller]
fn assert_build_refused(text: &str, line: usize, column: usize, path: &str, message: &str) {
    let (l, c, p, m) = build_error(text);
    assert_eq!((l, c, p.as_str()), (line, column, path), "{m}\n{text}");
    assert!(m.contains(message), "{m:?} lacks {message:?}");
}

const TWO: &str = "[[container]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";

#[test]
fn build_errors_are_placed_on_their_key() {
    // Dependencies (ConfigError::Dependency).
    assert_build_refused(
        &format!("{TWO}\n[[container]]\nname = \"b\"\ncommand = [\"/bin/true\"]\ndepends_on = [{{ container = \"a\" }}, {{ container = \"db\" }}]\n"),
        8,
        36,
        "container[1].depends_on[1]",
        "depends_on \"db\" (START): no container of the task has this name",
    );
    assert_build_refused(
        &format!("{TWO}\n[[container]]\nname = \"b\"\ncommand = [\"/bin/true\"]\ndepends_on = [{{ container = \"a\", condition = \"HEALTHY\" }}]\n"),
        8,
        15,
        "container[1].depends_on[0]",
        "HEALTHY needs a container with a health check",
    );
    // Names, hostnames, paths.
    assert_build_refused(
        &format!("{TWO}\n[[container]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n"),
        6,
        8,
        "container[1].name",
        "container name \"a\" is used twice",
    );
    assert_build_refused(
        "[[container]]\nname = \"a b\"\ncommand = [\"/bin/true\"]\n",
        2,
        8,
        "container[0].name",
        "only letters, digits",
    );
    assert_build_refused(
        &format!("{TWO}working_dir = \"tmp\"\n"),
        4,
        15,
        "container[0].working_dir",
        "must be an absolute path",
    );
    assert_build_refused(
        &format!("[task]\nhostname = \"-bad\"\n\n{TWO}"),
        2,
        12,
        "task.hostname",
        "cannot start or end with `-`",
    );
    assert_build_refused(
        &format!("{TWO}hostname = \"one\"\n\n[[container]]\nname = \"b\"\ncommand = [\"/bin/true\"]\nhostname = \"two\"\n"),
        9,
        12,
        "container[1].hostname",
        "share one UTS namespace",
    );
    assert_build_refused(
        &format!("{TWO}env = {{ \"A=B\" = \"x\" }}\n"),
        4,
        17,
        "container[0].env.A=B",
        "contains `=`",
    );
    // Sizes: Fargate's table, and per-container ceilings.
    assert_build_refused(
        &format!("[task]\ncpu = 256\nmemory = 4096\n\n{TWO}"),
        3,
        10,
        "task.memory",
        "memory = 4096 MiB is not valid with cpu = 256 on Fargate; valid memory (MiB): 512, 1024, 2048",
    );
    assert_build_refused(
        &format!("[task]\ncpu = 300\nmemory = 1024\n\n{TWO}"),
        2,
        7,
        "task.cpu",
        "cpu = 300 is not a Fargate CPU value",
    );
    assert_build_refused(
        &format!("[task]\ncpu = 256\n\n{TWO}"),
        2,
        7,
        "task.cpu",
        "needs both cpu and memory; add `memory`",
    );
    assert_build_refused(
        &format!("[task]\ncpu = 256\nmemory = 512\n\n{TWO}cpu = 512\n"),
        8,
        7,
        "container[0].cpu",
        "512 must be 1..=256 (the task's CPU)",
    );
    // The task needs an essential container.
    assert_build_refused(
        &format!("{TWO}essential = false\n"),
        4,
        13,
        "container[0].essential",
        "at least one essential container",
    );
    // nofile is one limit for the task.
    assert_build_refused(
        &format!("{TWO}ulimits = [{{ name = \"nofile\", soft = 10, hard = 10 }}]\n\n[[container]]\nname = \"b\"\ncommand = [\"/bin/true\"]\nulimits = [{{ name = \"nofile\", soft = 20, hard = 20 }}]\n"),
        9,
        11,
        "container[1].ulimits",
        "nofile 20 differs from 10, set by container \"a\"",
    );
    // Host paths, resolved against the policy's directory.
    assert_build_refused(
        &format!("{TWO}seccomp = \"profiles/missing.json\"\n"),
        4,
        11,
        "container[0].seccomp",
        "examples/policies/profiles/missing.json: cannot read the seccomp profile",
    );
    assert_build_refused(
        &format!("{TWO}secrets = [{{ name = \"t\", value_from = \"env:TASKSANDBOX_TEST_UNSET_VARIABLE\" }}]\n"),
        4,
        39,
        "container[0].secrets[0].value_from",
        "the environment variable TASKSANDBOX_TEST_UNSET_VARIABLE is not set",
    );
    assert_build_refused(
        &format!("{TWO}secrets = [{{ name = \"t\", value_from = \"file:no-such-secret\" }}]\n"),
        4,
        39,
        "container[0].secrets[0].value_from",
        "examples/policies/no-such-secret",
    );
    assert_build_refused(
        &format!(
            "{TWO}secrets = [{{ name = \"../t\", value_from = \"file:secrets/api-token\" }}]\n"
        ),
        4,
        12,
        "container[0].secrets[0]",
        "must be 1 to 255 letters",
    );
    if !can_start_tasks() {
        return; // the rest builds mounts and id maps as root
    }
    assert_build_refused(
        &format!("{TWO}rootfs = \"no-such-rootfs\"\n"),
        4,
        10,
        "container[0].rootfs",
        "examples/policies/no-such-rootfs\" cannot be used",
    );
    assert_build_refused(
        &format!("{TWO}mounts = [\n  {{ source = \"/usr\", destination = \"/u\" }},\n  {{ source = \"/usr\", destination = \"/proc/x\" }},\n]\n"),
        6,
        3,
        "container[0].mounts[1]",
        "cannot be under /proc",
    );
    assert_build_refused(
        &format!("{TWO}mounts = [{{ ephemeral = true, destination = \"scratch\" }}]\n"),
        4,
        11,
        "container[0].mounts[0]",
        "must be an absolute path",
    );
    assert_build_refused(
        &format!("{TWO}user = \"70000:0\"\n"),
        4,
        8,
        "container[0].user",
        "user 70000:0 is outside the task's id map (0..65536)",
    );
}

#[test]
fn a_build_error_is_rendered_with_its_line() {
    let file = Path::new("examples/policies/test.toml");
    let text = format!("{TWO}\n[[container]]\nname = \"b\"\ncommand = [\"/bin/true\"]\ndepends_on = [{{ container = \"db\", condition = \"SUCCESS\" }}]\n");
    let err = Policy::parse(&text, file).unwrap().build().unwrap_err();
    assert!(matches!(
        err.kind(),
        PolicyErrorKind::Config(ConfigError::Dependency { .. })
    ));
    assert_eq!(
        err.render(),
        "error: container \"b\": depends_on \"db\" (SUCCESS): no container of the task has this name\n \
         --> examples/policies/test.toml:8:15\n  \
         |\n\
         8 | depends_on = [{ container = \"db\", condition = \"SUCCESS\" }]\n  \
         |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ container[1].depends_on[0]\n"
    );
}

fn check_golden(name: &str, actual: &str, host_layout: bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        assert!(
            host_layout,
            "golden files are written on a host of their layout"
        );
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if name.ends_with(".json") {
        // Compared as JSON: key order is not part of the schema.
        let mut want: serde_json::Value = serde_json::from_str(&expected).expect("golden JSON");
        let mut got: serde_json::Value = serde_json::from_str(actual).expect("explain JSON");
        if !host_layout {
            for value in [&mut want, &mut got] {
                for c in value["containers"].as_array_mut().into_iter().flatten() {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("mounts");
                        c.remove("masked_paths");
                    }
                }
            }
        }
        assert!(
            want == got,
            "{} differs (UPDATE_GOLDEN=1 rewrites it):\n{actual}",
            path.display()
        );
    } else {
        let (want, got) = if host_layout {
            (expected.clone(), actual.to_string())
        } else {
            (without_host_layout(&expected), without_host_layout(actual))
        };
        assert!(
            want == got,
            "{} differs (UPDATE_GOLDEN=1 rewrites it):\n{actual}",
            path.display()
        );
    }
}

/// The text of an explanation without what depends on the host's root layout: each
/// container's `mounts` and `masked paths` fields (a field starts at two spaces of
/// indentation; its continuation lines are indented further).
fn without_host_layout(text: &str) -> String {
    let mut skipping = false;
    let mut out = String::new();
    for line in text.lines() {
        let field = line.strip_prefix("  ").filter(|l| !l.starts_with(' '));
        if let Some(field) = field {
            skipping = field == "mounts" || field.starts_with("masked paths");
        } else if !line.starts_with(' ') {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether this host lays out what the golden explanation shows of it: a merged /usr
/// (`/bin`, `/sbin`, `/lib`, `/lib64` are symlinks, which the default root recreates
/// instead of binding), and no per-CPU `thermal_throttle` directories (which would
/// add masked paths). Debian 12 and later on x86_64 VMs are such hosts.
fn host_matches_golden() -> bool {
    let symlink = |p: &str| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let merged = ["/bin", "/sbin", "/lib", "/lib64"]
        .iter()
        .all(|p| symlink(p))
        && ["/lib32", "/libx32"].iter().all(|p| !Path::new(p).exists());
    let thermal = std::fs::read_dir("/sys/devices/system/cpu")
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.path().join("thermal_throttle").exists())
        })
        .unwrap_or(false);
    merged && !thermal
}

#[test]
fn explain_of_a_sample_matches_its_golden_text() {
    if !can_start_tasks() {
        return; // the golden explanation is root's: id map 0 100000 65536
    }
    // Elsewhere the mounts and masked paths differ; everything else must not.
    let host_layout = host_matches_golden();
    let file = Path::new("examples/policies/web-with-sidecar.toml");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = Policy::from_file(dir.join(file)).unwrap();
    let explanation = policy
        .explain()
        .unwrap_or_else(|e| panic!("{}", e.render()));
    check_golden(
        "explain-web-with-sidecar.txt",
        &explanation.to_string(),
        host_layout,
    );
    let json = explanation.to_json_string();
    check_golden("explain-web-with-sidecar.json", &json, host_layout);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["schema"], "tasksandbox.explain/v1");
}

#[test]
fn explain_reads_the_built_task() {
    if !can_start_tasks() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = Policy::from_file(dir.join("examples/policies/web-with-sidecar.toml")).unwrap();
    let e = policy.explain().unwrap();
    let app = &e.containers[0];
    // Non-root user: bounding set only; drops applied; SYS_PTRACE only where added.
    assert_eq!(
        app.capabilities.bounding,
        0xa80425fb & !(1 << 13) & !(1 << 27)
    );
    assert_eq!(app.capabilities.effective, 0);
    let side = &e.containers[1];
    assert_eq!(side.capabilities.bounding, 1 << 19);
    assert_eq!(side.capabilities.effective, 1 << 19);
    // With SYS_PTRACE the default profile allows kcmp, pidfd_getfd, process_madvise.
    let refused = |c: &tasksandbox::explain::ContainerExplanation, name: &str| {
        c.seccomp
            .refused
            .iter()
            .any(|(_, names)| names.contains(&name))
    };
    assert!(refused(app, "kcmp") && !refused(side, "kcmp"));
    assert!(side.seccomp.allowed.contains(&"kcmp"));
    // Dropping SYS_CHROOT refuses chroot.
    assert!(refused(side, "chroot") && app.seccomp.allowed.contains(&"chroot"));
    assert!(app
        .seccomp
        .argument_filtered
        .iter()
        .any(|l| l.starts_with("clone: allowed if flags & 0x7e020000 == 0")));
    // Every syscall of the table has one verdict.
    for c in [app, side] {
        let s = &c.seccomp;
        let refused: usize = s.refused.iter().map(|(_, n)| n.len()).sum();
        assert_eq!(
            s.allowed.len() + refused + s.argument_filtered.len(),
            tasksandbox::seccomp::syscalls::all().len()
        );
    }
    assert!(app.readonly_rootfs && !side.readonly_rootfs);
    assert_eq!(app.secrets, ["api-token"]);
    assert!(
        app.landlock && !side.landlock,
        "pid_mode task: Landlock without SYS_PTRACE"
    );
    let share = app
        .mounts
        .iter()
        .find(|m| m.target == "/srv/share")
        .unwrap();
    assert_eq!(share.source.as_deref(), Some("/usr/share"));
    assert_eq!(share.flags, ["rec", "ro"]);
    assert_eq!(e.task.nofile, 4096);
    assert_eq!(e.task.ephemeral_storage_bytes, Some(21 << 30));
    assert_eq!(app.limits.memory_bytes, Some(512 << 20));
}

#[test]
fn the_host_layout_filter_drops_only_mounts_and_masked_paths() {
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/explain-web-with-sidecar.txt"
    ))
    .unwrap();
    let filtered = without_host_layout(&golden);
    for gone in [
        "  mounts",
        "bind /usr (rec,ro)",
        "masked paths",
        "/proc/kcore",
    ] {
        assert!(golden.contains(gone) && !filtered.contains(gone), "{gone}");
    }
    for kept in [
        "  read-only root     no",
        "  read-only paths    /proc/bus",
        "    allowed (307): accept",
        "container \"sidecar\"",
    ] {
        assert!(filtered.contains(kept), "{kept}");
    }
    let dropped = golden.lines().count() - filtered.lines().count();
    let mounts = golden.lines().filter(|l| l.starts_with("    /")).count();
    let masked = golden
        .lines()
        .skip_while(|l| !l.starts_with("  masked paths"))
        .take_while(|l| !l.starts_with("  read-only paths"))
        .count();
    // Two containers: each has a `mounts` header, its mounts and its masked paths.
    assert_eq!(dropped, 2 + mounts + 2 * masked);
}

#[test]
fn the_readmes_explain_excerpt_is_the_golden_text() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/explain-web-with-sidecar.txt"
    ))
    .unwrap();
    let start = readme
        .find("```text\ncontainer \"sidecar\"")
        .expect("the README quotes the sidecar's explanation");
    let excerpt = &readme[start + "```text\n".len()..];
    let excerpt = &excerpt[..excerpt.find("```").expect("end of the excerpt")];
    // Every quoted line is the golden's, in order; `...` stands for lines left out.
    let mut lines = golden.lines().skip_while(|l| *l != "container \"sidecar\"");
    for quoted in excerpt.lines().filter(|l| l.trim() != "...") {
        assert!(
            lines.any(|l| l == quoted),
            "the README quotes a line the golden text does not have (in this order): {quoted:?}"
        );
    }
}
