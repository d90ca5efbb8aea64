//! Tear-down is total: a thousand tasks started and dropped (while running, after
//! they ended, after a stop) leave no process, zombie, cgroup, mount, descriptor,
//! thread or namespace behind. Alone in its own test binary, so nothing else in the
//! process moves the counts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::can_start_tasks;
use tasksandbox::{Condition, Container, TaskSandbox};

/// What a leak would show up in, as seen from the launcher's process and the host.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    fds: usize,
    threads: usize,
    mounts: usize,
    children: usize,
    task_processes: usize,
    cgroups: BTreeSet<String>,
    namespaces: BTreeSet<String>,
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

/// Host processes running as a uid of the tasks' default range (100000..165536).
fn task_processes() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
                .is_some_and(|uid| (100_000..165_536).contains(&uid))
        })
        .count()
}

/// Our task cgroups (named after this process's pid) in every v1 hierarchy.
fn cgroups() -> BTreeSet<String> {
    let prefix = format!("{}-", std::process::id());
    let mut out = BTreeSet::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hierarchy.path().join("tasksandbox");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) {
                    out.insert(format!("{}/{name}", hierarchy.path().display()));
                }
            }
        }
    }
    out
}

/// Namespaces held by any process of the host (a namespace outliving its task would
/// need a process, a descriptor or a mount; the first two are counted here by
/// namespace identity).
fn namespaces() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        for ns in ["net", "pid", "mnt", "ipc", "uts", "user", "cgroup"] {
            if let Ok(link) = std::fs::read_link(e.path().join("ns").join(ns)) {
                out.insert(link.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Children of this process not yet reaped (zombies included).
fn children() -> usize {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            n += text.split_whitespace().count();
        }
    }
    n
}

fn footprint() -> Footprint {
    Footprint {
        fds: count_dir("/proc/self/fd"),
        threads: count_dir("/proc/self/task"),
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        children: children(),
        task_processes: task_processes(),
        cgroups: cgroups(),
        namespaces: namespaces(),
    }
}

#[test]
fn a_thousand_tasks_leave_nothing_behind() {
    if !can_start_tasks() {
        return;
    }
    let sandbox = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(10))
        .container(Container::new("app").command(["/bin/sh", "-c", "exit 0"]))
        .container(
            Container::new("side")
                .command(["/bin/sleep", "1000"])
                .essential(false)
                .depends_on("app", Condition::Start),
        )
        .build()
        .unwrap();
    // One start first, so that what lives for the whole process (the seccomp cache,
    // the runtime directory's mount points) is there before counting.
    sandbox.start().unwrap().wait().unwrap();
    let before = steady_footprint();
    for i in 0..1000 {
        let mut task = sandbox.start().unwrap();
        match i % 3 {
            // Dropped while it may still run.
            0 => drop(task),
            // Ended by its essential container.
            1 => {
                let exit = task.wait().unwrap();
                assert!(exit.success(), "cycle {i}: {exit}");
            }
            // Stopped.
            _ => {
                task.stop(Duration::from_millis(10)).unwrap();
            }
        }
    }
    let after = settled_footprint(&before);
    assert_eq!(before, after, "something outlived its task");
}

/// The footprint once it has had a moment to settle: the first one equal to `before`
/// within two seconds, or the last one taken. A joined thread can still be listed in
/// /proc/self/task for a moment: the kernel wakes `pthread_join` (the tid futex, in
/// `exit_mm`) before it unhashes the thread (`exit_notify`), so a count taken right
/// after the last drop may see a thread that is already gone in all but name. What
/// truly leaks stays, and fails the comparison.
fn settled_footprint(before: &Footprint) -> Footprint {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let now = footprint();
        if now == *before || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The footprint once two readings 20 ms apart agree (at most two seconds of trying),
/// so that the warm-up task's threads, gone but for the kernel's last step, are not
/// counted in the baseline.
fn steady_footprint() -> Footprint {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut last = footprint();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = footprint();
        if now == last || std::time::Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}
