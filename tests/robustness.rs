//! A task never outlives its launcher, and starting tasks from many threads at once
//! neither deadlocks nor loses an exit.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{can_start_tasks, example, loops_backed_by, mounts_of};
use tasksandbox::{Condition, Container, ExitStatus, TaskSandbox};

/// Host pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    // A rewritten command line keeps the length of the old one, padded with NULs.
    let trim = |c: &[u8]| {
        let end = c.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        c[..end].to_vec()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| trim(&c) == trim(&want))
        })
        .collect()
}

/// The task cgroups launcher `pid` made under the default parent, in every hierarchy
/// (cgroup v1 controllers, or the v2 root).
fn cgroups_of(pid: i32) -> Vec<std::path::PathBuf> {
    let prefix = format!("{pid}-");
    let roots = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .chain([std::path::PathBuf::from("/sys/fs/cgroup")]);
    roots
        .filter_map(|root| std::fs::read_dir(root.join("tasksandbox")).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killing_the_launcher_kills_the_whole_task() {
    if !can_start_tasks() {
        return;
    }
    let runner = example("run");
    let runner_s = runner.to_str().unwrap();
    // Its ephemeral storage, on disk, kept in a directory of this test's own.
    let storage_dir = tempfile::tempdir().unwrap();
    let storage_dir_s = storage_dir.path().to_str().unwrap();
    // A workload that uses the storage and would run for an hour, and a child of it
    // in the background.
    let script = "echo data > /data/file && /bin/sleep 3601 & exec /bin/sleep 3600";
    let runner_args = [
        "--storage",
        "/data:64",
        "--storage-dir",
        storage_dir_s,
        "--",
        "/bin/sh",
        "-c",
        script,
    ];
    /// Kills the launcher if the test fails half-way, so nothing is left running.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut launcher = Reap(
        std::process::Command::new(&runner)
            .args(runner_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let launcher_pid = launcher.0.id() as i32;
    wait_until("the workload to run", || {
        !pids_running(&["/bin/sleep", "3600"]).is_empty()
            && !pids_running(&["/bin/sleep", "3601"]).is_empty()
    });
    // The task init is the launcher's child, named for what it is.
    let inits: Vec<i32> = pids_running(&["tasksandbox-init"])
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == format!("PPid:\t{launcher_pid}")))
        })
        .collect();
    assert_eq!(inits.len(), 1, "one task init: {inits:?}");
    let launcher_argv: Vec<&str> = std::iter::once(runner_s).chain(runner_args).collect();
    assert!(pids_running(&launcher_argv).len() == 1);
    assert!(!cgroups_of(launcher_pid).is_empty(), "the task's cgroups");
    // The storage: one loop device bound to an unnamed file of the directory, mounted
    // in the task alone.
    let devices = loops_backed_by(storage_dir.path());
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert!(!mounts_of(&devices[0]).is_empty());
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(&devices[0]), "{host}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    launcher.0.wait().unwrap();
    wait_until("every process of the task to be gone", || {
        pids_running(&["/bin/sleep", "3600"]).is_empty()
            && pids_running(&["/bin/sleep", "3601"]).is_empty()
            && !std::path::Path::new(&format!("/proc/{}", inits[0])).exists()
    });
    // Nothing of the storage is left: no loop device bound to its file, no mount of
    // it, no file.
    common::assert_storage_gone(storage_dir.path(), Some(&devices[0]));

    // The next start on the host is not disturbed by what the dead launcher left.
    let out = TaskSandbox::builder()
        .container(Container::new("next").command(["/bin/sh", "-c", "echo fine"]))
        .build()
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"fine\n");
    // That start swept the cgroups the dead launcher left.
    assert_eq!(cgroups_of(launcher_pid), Vec::<std::path::PathBuf>::new());
}

#[test]
fn sixteen_threads_start_tasks_at_once_without_losing_an_exit() {
    if !can_start_tasks() {
        return;
    }
    const THREADS: usize = 16;
    const TASKS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..TASKS {
                    // Each task's exit code is its own, so a mixed-up or lost exit shows.
                    let code = (t * TASKS + i) % 200 + 1;
                    let side_code = (code + 7) % 200 + 1;
                    let sandbox = TaskSandbox::builder()
                        .container(
                            Container::new("side")
                                .command(["/bin/sh", "-c", &format!("exit {side_code}")])
                                .essential(false),
                        )
                        .container(
                            Container::new("app")
                                .command(["/bin/sh", "-c", &format!("exit {code}")])
                                .depends_on("side", Condition::Complete),
                        )
                        .build()
                        .unwrap();
                    let exit = sandbox.start().unwrap().wait().unwrap();
                    assert_eq!(exit.status(), ExitStatus::Exited(code as i32), "{exit}");
                    assert_eq!(
                        exit.container("side").unwrap().status,
                        Some(ExitStatus::Exited(side_code as i32))
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }
}
