//! Tear-down is total: a thousand tasks that use every feature (several containers
//! with depends_on, a health check, exec, piped and logged streams, ephemeral storage
//! on disk, a secret), started and dropped (while running, after they ended, after a
//! stop), leave no process, zombie, cgroup, mount, descriptor, thread, namespace, loop
//! device or storage file behind.
//!
//! Only what belongs to this launcher is counted, so other tests and other launchers
//! on the host do not move the counts: the tasks' cgroups live under a parent of this
//! test's own, their processes are those in it, and the namespaces counted are those
//! the tasks' processes, this process's descriptors and its mounts hold. Alone in its
//! own test binary, so nothing else in this process moves its own counts.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{can_start_tasks, loops_backed_by};
use tasksandbox::{
    Condition, Container, EphemeralStorage, HealthCheck, Secret, Stdio, TaskSandbox,
};

/// What a leak would show up in.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    fds: usize,
    threads: usize,
    mounts: usize,
    children: usize,
    /// Processes in a cgroup under our parent, as `pid comm`.
    task_processes: BTreeSet<String>,
    /// Cgroups under our parent, in every hierarchy.
    cgroups: BTreeSet<String>,
    /// Namespaces held by the tasks' processes, our descriptors and our mounts.
    namespaces: BTreeSet<String>,
    /// Loop devices bound to a file of our storage directory.
    loop_devices: Vec<String>,
    /// Files in our storage directory.
    storage_files: usize,
}

/// Where this test's tasks keep their cgroups and storage.
struct Scope {
    /// The tasks' cgroup parent, relative to each hierarchy's root.
    cgroup_parent: PathBuf,
    storage: tempfile::TempDir,
}

impl Drop for Scope {
    fn drop(&mut self) {
        // The parent is left by the crate for later tasks; this test made it.
        for root in hierarchy_roots() {
            let _ = std::fs::remove_dir(root.join(&self.cgroup_parent));
        }
    }
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

/// Every mounted cgroup hierarchy: each v1 hierarchy and the cgroup2 mount, whatever
/// the layout (v1, pure v2, or hybrid).
fn hierarchy_roots() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            matches!(fields.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2"))
                .then(|| PathBuf::from(fields[4]))
        })
        .collect()
}

/// Every cgroup below `<root>/<parent>`, in every hierarchy.
fn cgroups(parent: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for root in hierarchy_roots() {
        let mut stack = vec![root.join(parent)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.insert(e.path().display().to_string());
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

/// Pids of processes in a cgroup under `parent` (in any hierarchy: the paths of
/// `/proc/<pid>/cgroup` are those of our cgroup namespace, the host's).
fn task_pids(parent: &Path) -> Vec<String> {
    let prefix = format!("/{}/", parent.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).ok()?;
            cgroup
                .lines()
                .any(|l| {
                    l.splitn(3, ':')
                        .nth(2)
                        .is_some_and(|p| p.starts_with(&prefix))
                })
                .then(|| pid.to_string())
        })
        .collect()
}

/// Namespaces held by the tasks' processes, by this process's descriptors, and by
/// mounts in this process's mount namespace (a namespace bound to a file).
fn namespaces(pids: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pid in pids {
        for ns in ["net", "pid", "mnt", "ipc", "uts", "user", "cgroup"] {
            if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")) {
                out.insert(link.to_string_lossy().into_owned());
            }
        }
    }
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        if ["net:", "pid:", "mnt:", "ipc:", "uts:", "user:", "cgroup:"]
            .iter()
            .any(|k| link.starts_with(k))
        {
            out.insert(link);
        }
    }
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if line
            .split(" - ")
            .nth(1)
            .is_some_and(|r| r.starts_with("nsfs "))
        {
            out.insert(line.to_string());
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

fn footprint(scope: &Scope) -> Footprint {
    let pids = task_pids(&scope.cgroup_parent);
    let task_processes = pids
        .iter()
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} {}", comm.trim())
        })
        .collect();
    Footprint {
        fds: count_dir("/proc/self/fd"),
        threads: count_dir("/proc/self/task"),
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        children: children(),
        namespaces: namespaces(&pids),
        task_processes,
        cgroups: cgroups(&scope.cgroup_parent),
        loop_devices: loops_backed_by(scope.storage.path()),
        storage_files: count_dir(&scope.storage.path().display().to_string()),
    }
}

#[test]
fn a_thousand_tasks_leave_nothing_behind() {
    if !can_start_tasks() {
        return;
    }
    let scope = Scope {
        cgroup_parent: PathBuf::from(format!("tasksandbox-leaks-{}", std::process::id())),
        storage: tempfile::tempdir().unwrap(),
    };
    let logged = Arc::new(AtomicUsize::new(0));
    let sink_count = Arc::clone(&logged);
    let sandbox = TaskSandbox::builder()
        .cgroup_parent(&scope.cgroup_parent)
        .storage_dir(scope.storage.path())
        .ephemeral_storage(EphemeralStorage::custom_mib(64).unwrap())
        .stop_timeout(Duration::from_millis(10))
        .log_sink(move |_| {
            sink_count.fetch_add(1, Ordering::Relaxed);
        })
        // Healthy at its first check; logs a line; runs until the task stops.
        .container(
            Container::new("side")
                .command(["/bin/sh", "-c", "echo up >&2; exec sleep 1000"])
                .stderr(Stdio::Log)
                .ephemeral_storage_at("/data")
                .essential(false)
                .health_check(
                    HealthCheck::new(["/bin/true"])
                        .interval(Duration::from_millis(10))
                        .retries(1),
                ),
        )
        // Once the side is healthy: reads its secret, writes the storage, prints.
        .container(
            Container::new("app")
                .command([
                    "/bin/sh",
                    "-c",
                    "cat /run/secrets/token > /data/token && cat /data/token",
                ])
                .stdout(Stdio::Piped)
                .stderr(Stdio::Log)
                .secret(Secret::new("token", "s3cret"))
                .ephemeral_storage_at("/data")
                .depends_on("side", Condition::Healthy),
        )
        .build()
        .unwrap();
    // One start first, so that what lives for the whole process (the seccomp cache,
    // the runtime directory's mount points) is there before counting.
    sandbox.start().unwrap().wait().unwrap();
    let before = steady_footprint(&scope);
    assert!(before.task_processes.is_empty(), "{before:?}");
    for i in 0..1000 {
        let mut task = sandbox.start().unwrap();
        let exec = task
            .exec("side", ["/bin/sh", "-c", "test -d /data"])
            .unwrap();
        assert!(exec.status.success(), "cycle {i}: exec {:?}", exec.status);
        match i % 3 {
            // Dropped while it may still run (its health check may be in flight).
            0 => drop(task),
            // Ended by its essential container.
            1 => {
                let exit = task.wait().unwrap();
                assert!(exit.success(), "cycle {i}: {exit}");
                let mut out = String::new();
                std::io::Read::read_to_string(&mut task.take_stdout("app").unwrap(), &mut out)
                    .unwrap();
                assert_eq!(out, "s3cret", "cycle {i}");
            }
            // Stopped.
            _ => {
                task.stop(Duration::from_millis(10)).unwrap();
            }
        }
    }
    assert!(
        logged.load(Ordering::Relaxed) >= 1000,
        "the log sink got lines"
    );
    let after = settled_footprint(&scope, &before);
    assert_eq!(before, after, "something outlived its task");
}

/// The footprint once it has had a moment to settle: the first one equal to `before`
/// within two seconds, or the last one taken. A joined thread can still be listed in
/// /proc/self/task for a moment: the kernel wakes `pthread_join` (the tid futex, in
/// `exit_mm`) before it unhashes the thread (`exit_notify`), so a count taken right
/// after the last drop may see a thread that is already gone in all but name. What
/// truly leaks stays, and fails the comparison.
fn settled_footprint(scope: &Scope, before: &Footprint) -> Footprint {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let now = footprint(scope);
        if now == *before || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The footprint once two readings 20 ms apart agree (at most two seconds of trying),
/// so that the warm-up task's threads, gone but for the kernel's last step, are not
/// counted in the baseline.
fn steady_footprint(scope: &Scope) -> Footprint {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut last = footprint(scope);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = footprint(scope);
        if now == last || std::time::Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}
