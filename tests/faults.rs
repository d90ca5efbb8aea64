//! Fault injection: the launcher killed at each step of a start leaves nothing behind,
//! and the next start works.
//!
//! The `run` example is the launcher. A debug build of the crate reads
//! `TASKSANDBOX_FAILPOINT` (see `src/process/failpoint.rs`) and, when a start reaches
//! the step of that name, the launcher sends itself SIGKILL. This test process makes
//! itself a child subreaper, so every process the launcher left (the task init, its
//! containers) is reparented to it: once those are reaped, no process of the task is
//! left, and so none holds a namespace of the task.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{can_start_tasks, example};
use tasksandbox::{Container, TaskSandbox};

/// The failpoints of a start, in the order it reaches them.
const FAILPOINTS: [&str; 6] = [
    "after-cgroups",
    "after-init-clone",
    "after-id-maps",
    "after-init-ready",
    "after-container-clone",
    "after-container-exec",
];

/// The task cgroups launcher `pid` made under the default parent, in every hierarchy.
fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("{pid}-");
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
        .filter_map(|root| std::fs::read_dir(root.join("tasksandbox")).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Every process in the cgroup `dir` or below it.
fn procs_below(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(procs_below(&entry.path()));
        }
    }
    out
}

/// The pids whose parent is this process.
fn children() -> Vec<i32> {
    let me = format!("PPid:\t{}", std::process::id());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == me))
        })
        .collect()
}

/// Host pids whose command line is `argv`.
fn running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Mounts of the host's mount namespace under the runtime directory, and nsfs mounts
/// (a namespace kept alive by a bind of its file).
fn held_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" /run/tasksandbox") || l.contains(" - nsfs "))
        .map(str::to_string)
        .collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps every child that has exited (orphans of the launcher come to us).
fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: reaping our own exited children, with a live status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if pid <= 0 {
            return;
        }
    }
}

#[test]
fn killing_the_launcher_at_each_step_of_a_start_leaves_nothing() {
    if !can_start_tasks() {
        return;
    }
    if !cfg!(debug_assertions) {
        // The failpoints exist only in debug builds (the examples share the profile).
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the fault injection in a debug build"
        );
        eprintln!("skipped: failpoints are compiled into debug builds only");
        return;
    }
    // SAFETY: a prctl without pointers, on this process.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let before = held_mounts();
    let me = std::process::id();
    let mut launchers = Vec::new();
    for (i, point) in FAILPOINTS.iter().enumerate() {
        let mark = format!("{}.{me}", 3000 + i);
        let mut launcher = Command::new(example("run"))
            .env("TASKSANDBOX_FAILPOINT", point)
            .args(["--", "/bin/sleep", &mark])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = launcher.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = launcher.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = launcher.kill();
                panic!("{point}: the launcher did not die at its failpoint");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut launcher.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{point}: the launcher is killed there ({status}): {stderr}"
        );

        // No process of the task: whatever the launcher left came to us (the task
        // init, alive or a zombie, from the init's clone on), and dies.
        let orphans = children();
        if i > 0 {
            assert!(
                !orphans.is_empty(),
                "{point}: the task init came to the subreaper"
            );
        }
        wait_until(&format!("{point}: the task's processes to go"), || {
            reap();
            children().is_empty()
        });
        assert!(running(&["/bin/sleep", &mark]).is_empty(), "{point}");
        let cgroups = cgroups_of(pid);
        assert!(!cgroups.is_empty(), "{point}: the cgroups were made");
        for cgroup in &cgroups {
            assert_eq!(
                procs_below(cgroup),
                Vec::<String>::new(),
                "{point}: {cgroup:?}"
            );
        }
        // No mount of the task in the host's namespace, no namespace pinned.
        assert_eq!(held_mounts(), before, "{point}");
        launchers.push((point, pid));
    }

    // The next start works, sweeps the dead launchers' cgroups and leaves nothing.
    let out = TaskSandbox::builder()
        .container(Container::new("next").command(["/bin/sh", "-c", "echo fine"]))
        .build()
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"fine\n");
    for (point, pid) in launchers {
        assert_eq!(cgroups_of(pid), Vec::<PathBuf>::new(), "{point}");
    }
    assert_eq!(cgroups_of(me), Vec::<PathBuf>::new());
    reap();
    assert!(children().is_empty());
    assert_eq!(held_mounts(), before);
}
