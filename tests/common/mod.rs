//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tasksandbox::{Container, Output, TaskSandbox, TaskSandboxBuilder, Volume};

/// Whether these tests can start tasks: they need root (CI runs as root). Off CI, a
/// non-root run skips them with a note; on CI a non-root run fails.
pub fn can_start_tasks() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the task tests as root"
    );
    eprintln!("skipped: starting tasks needs root");
    false
}

/// A built example of this crate (cargo builds examples before integration tests).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// A container running the probe example, bound read-only at /probe.
pub fn probe(args: &[&str]) -> Container {
    Container::new("probe")
        .volume(Volume::bind(example("probe"), "/probe"))
        .command(std::iter::once("/probe").chain(args.iter().copied()))
}

/// Builds and runs a one-container task, returning its output.
pub fn output(builder: TaskSandboxBuilder) -> Output {
    builder
        .build()
        .expect("task builds")
        .output()
        .expect("task runs")
}

/// Runs `sh -c SCRIPT` in a default task and returns its stdout, asserting success.
pub fn sh(script: &str) -> String {
    sh_in(TaskSandbox::builder(), Container::new("sh"), script)
}

/// Runs `sh -c SCRIPT` in `container` of `builder`, asserting success.
pub fn sh_in(builder: TaskSandboxBuilder, container: Container, script: &str) -> String {
    let out = output(builder.container(container.command(["/bin/sh", "-c", script])));
    assert!(
        out.status.success(),
        "{script}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key:` in a /proc/self/status dump.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} not in status:\n{status}"))
}

/// Loop devices whose backing file is in `dir` (`/sys/block/loopN/loop/backing_file`
/// shows the file's path, `#<inode> (deleted)` for an unnamed one).
pub fn loops_backed_by(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| f.starts_with(&prefix))
        })
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .collect()
}

/// Mounts of `device` in any mount namespace of the host, as `pid: line`.
pub fn mounts_of(device: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("mountinfo")) else {
            continue;
        };
        for line in text.lines() {
            let source = line
                .split(" - ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().nth(1));
            if source == Some(device) {
                out.push(format!("{}: {line}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Asserts that nothing is left of ephemeral storage kept in `dir` whose loop device
/// was `device` (if known): no loop device bound to a file of `dir`, no file in `dir`,
/// and, if `device` is unbound (not taken by another start since), no mount of it
/// anywhere. A mount of the volume left anywhere would keep its device bound to its
/// file. The kernel releases the volume as the task's last process exits, but may
/// defer the final unmount to a work queue: what is still bound after two seconds is
/// a leak.
pub fn assert_storage_gone(dir: &Path, device: Option<&str>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut bound = loops_backed_by(dir);
    while !bound.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        bound = loops_backed_by(dir);
    }
    assert!(bound.is_empty(), "loop devices still bound: {bound:?}");
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert!(
        files.is_empty(),
        "files left in {}: {files:?}",
        dir.display()
    );
    let Some(device) = device else { return };
    let name = device.trim_start_matches("/dev/");
    if !Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists() {
        assert_eq!(mounts_of(device), Vec::<String>::new());
    }
}
