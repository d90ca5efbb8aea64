//! Resource exhaustion from inside a task: each bomb stops at its task's limit, is
//! reported as such, and the host and a second task carry on. The limits are cgroup
//! limits: without the `cgroups` feature there is nothing to test.
#![cfg(feature = "cgroups")]

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use tasksandbox::{Container, ExitStatus, Stdio, TaskSandbox, TaskSize};

/// A second task that keeps allocating and freeing 16 MiB for about two seconds, then
/// says `alive`: it must carry on while its neighbour blows up.
fn neighbour() -> tasksandbox::TaskSandbox {
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do /probe alloc 16 >/dev/null || exit 1; sleep 0.2; done; echo alive";
    TaskSandbox::builder()
        .size(TaskSize::memory_only(128).expect("size"))
        .container(
            probe(&[])
                .command(["/bin/sh", "-c", script])
                .stdout(Stdio::Piped),
        )
        .build()
        .expect("neighbour builds")
}

/// The first line the task prints, within `timeout`.
fn first_line(stdout: std::fs::File, timeout: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(timeout).ok()
}

#[test]
fn memory_bomb_is_oom_killed_in_its_cgroup_while_a_neighbour_carries_on() {
    if !can_start_tasks() {
        return;
    }
    const LIMIT_MIB: u64 = 64;
    let neighbour = neighbour().start().expect("neighbour starts");

    let bomb = TaskSandbox::builder()
        .size(TaskSize::memory_only(LIMIT_MIB).expect("size"))
        .container(probe(&["alloc", "4096"]))
        .build()
        .expect("bomb builds");
    let mut task = bomb.start().expect("bomb starts");
    let status = task.wait().expect("bomb ends");
    assert_eq!(
        status.status(),
        ExitStatus::OutOfMemory,
        "reported as out of memory"
    );
    let stats = task.stats().expect("bomb stats");
    assert!(
        stats.task.oom_kills >= 1,
        "the kill happened in the bomb's cgroup: {stats:?}"
    );
    assert!(
        stats.task.memory_peak_bytes <= LIMIT_MIB << 20,
        "never charged more than its limit: {stats:?}"
    );
    drop(task);

    // The neighbour was not touched: still running, no OOM kill in its cgroup, and it
    // finishes its work.
    let mut neighbour = neighbour;
    assert_eq!(
        neighbour.try_wait().expect("try_wait"),
        None,
        "neighbour still runs"
    );
    assert_eq!(
        neighbour.stats().expect("neighbour stats").task.oom_kills,
        0
    );
    let out = neighbour.wait_with_output().expect("neighbour ends");
    assert!(out.status.success(), "{}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");

    // And the host: this process can still allocate and touch memory.
    let mut host = vec![0u8; 64 << 20];
    host.iter_mut().step_by(4096).for_each(|b| *b = 1);
    assert_eq!(
        host.iter().step_by(4096).filter(|b| **b == 1).count(),
        16384
    );
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    if !can_start_tasks() {
        return;
    }
    const LIMIT: u64 = 32;
    let bomb = TaskSandbox::builder()
        .pids_limit(LIMIT)
        .size(TaskSize::memory_only(512).expect("size"))
        .container(probe(&["forkbomb"]).stdout(Stdio::Piped))
        .build()
        .expect("bomb builds");
    let mut task = bomb.start().expect("bomb starts");
    let stdout = task.take_stdout("probe").expect("piped stdout");
    // Every process of the bomb forks until the kernel says EAGAIN at the limit.
    let line = first_line(stdout, Duration::from_secs(20)).expect("the bomb hit a limit");
    assert!(
        line.starts_with("EAGAIN "),
        "fork failed with EAGAIN: {line}"
    );

    // The task sits at its limit and never above it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut at_limit = false;
    let mut most = 0;
    while Instant::now() < deadline {
        let pids = task.stats().expect("stats").task.pids_current;
        most = most.max(pids);
        assert!(pids <= LIMIT, "{pids} processes, limit {LIMIT}");
        if pids == LIMIT {
            at_limit = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(at_limit, "the bomb filled its limit (most seen: {most})");
    for _ in 0..10 {
        assert!(task.stats().expect("stats").task.pids_current <= LIMIT);
        std::thread::sleep(Duration::from_millis(20));
    }

    // Meanwhile a second task and the host start processes as usual.
    let other = TaskSandbox::builder()
        .pids_limit(LIMIT)
        .container(Container::new("other").command(["/bin/sh", "-c", "/bin/true && echo ok"]))
        .build()
        .expect("second task builds");
    let out = other.output().expect("second task runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let host = std::process::Command::new("/bin/true")
        .status()
        .expect("the host can fork");
    assert!(host.success());

    task.kill().expect("kill");
    assert_eq!(
        task.wait().expect("wait").status(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

#[test]
fn cpu_hog_is_held_to_its_quota() {
    if !can_start_tasks() {
        return;
    }
    // 256 units: a quarter of a CPU. The hog spins on two threads, so without the
    // quota it would take up to two CPUs.
    const UNITS: u32 = 256;
    let quota = f64::from(UNITS) / 1024.0;
    let hog = TaskSandbox::builder()
        .size(TaskSize::fargate(UNITS, 512).expect("size"))
        .container(probe(&["spin", "2"]).stdout(Stdio::Piped))
        .build()
        .expect("hog builds");
    let mut task = hog.start().expect("hog starts");
    let stdout = task.take_stdout("probe").expect("piped stdout");
    let line = first_line(stdout, Duration::from_secs(10)).expect("hog started");
    assert!(line.starts_with("spinning"), "{line}");
    std::thread::sleep(Duration::from_millis(300));

    // CPU used over one second of wall time, as the task's cgroup counts it. The
    // quota is a ceiling: every window must stay within 15% above it. The machine is
    // shared, so a window may get less than the quota; one window within 15% of it
    // shows the quota is what holds the hog (up to five windows are measured).
    let mut windows = Vec::new();
    for _ in 0..5 {
        let (u0, t0) = (
            task.stats().expect("stats").task.cpu_usage_ns,
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs(1));
        let (u1, t1) = (
            task.stats().expect("stats").task.cpu_usage_ns,
            Instant::now(),
        );
        let used = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
        assert!(
            used <= quota * 1.15,
            "used {used:.3} CPU in one second, quota {quota} (windows so far: {windows:?})"
        );
        windows.push(used);
        if (used - quota).abs() <= quota * 0.15 {
            break;
        }
    }
    let last = windows.last().copied().unwrap_or(0.0);
    assert!(
        (last - quota).abs() <= quota * 0.15,
        "no one-second window within 15% of the quota {quota}: {windows:?}"
    );
    eprintln!("cpu hog: quota {quota} CPU, measured {windows:?}");
    task.kill().expect("kill");
}

#[test]
fn open_file_flood_stops_at_the_nofile_limit() {
    if !can_start_tasks() {
        return;
    }
    const NOFILE: u64 = 256;
    let sandbox = TaskSandbox::builder()
        .nofile(NOFILE)
        .container(probe(&["openfiles", "100000"]))
        .build()
        .expect("flood builds");
    let out = sandbox.output().expect("flood runs");
    assert!(out.status.success(), "{}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"opened"), "{stdout}");
    assert_eq!(fields.get(2), Some(&"EMFILE"), "{stdout}");
    // Descriptors 0-2 are stdio; the flood fills every other one below the limit.
    let opened: u64 = fields[1].parse().expect("count");
    let highest: u64 = fields[3].parse().expect("highest fd");
    assert_eq!(opened, NOFILE - 3, "{stdout}");
    assert_eq!(highest, NOFILE - 1, "{stdout}");
    // The launcher's own limit is untouched.
    let file = std::fs::File::open("/dev/null").expect("the host still opens files");
    drop(file);
}

#[test]
fn filling_the_default_root_ends_at_the_task_memory_limit() {
    // The default root filesystem is a tmpfs as large as the task's memory, whose
    // pages are charged to the task's memory cgroup: a write that fills it ends at
    // the memory limit (an OOM kill inside the task, or ENOSPC should the tmpfs fill
    // first), never on the host's disk.
    if !can_start_tasks() {
        return;
    }
    const LIMIT_MIB: u64 = 64;
    let script = format!(
        "df -m / | tail -1; dd if=/dev/zero of=/fill bs=1M count={} 2>&1; echo dd=$?",
        LIMIT_MIB * 4
    );
    let filler = TaskSandbox::builder()
        .size(TaskSize::memory_only(LIMIT_MIB).expect("size"))
        .container(
            Container::new("fill")
                .command(["/bin/sh", "-c", &script])
                .stdout(Stdio::Piped),
        )
        .build()
        .expect("builds");
    let mut task = filler.start().expect("starts");
    let mut stdout = task.take_stdout("fill").expect("stdout");
    let exit = task.wait().expect("ends");
    let stats = task.stats().expect("stats");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).expect("read stdout");
    // tmpfs of LIMIT_MIB: `tasksandbox-root 64 ...`.
    let df: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        df.get(..2),
        Some(&["tasksandbox-root", "64"][..]),
        "the root is a tmpfs of the task's memory: {out}"
    );
    // The fill is stopped: by an OOM kill at the task's memory limit, inside its
    // cgroup, or by ENOSPC from a full tmpfs. The tmpfs pages belong to no process, so
    // the kernel's victim may be any process of the task, its init included (then the
    // whole task ends by SIGKILL: the memory limit is the task's).
    let enospc = out.contains("No space left on device");
    assert!(
        enospc || stats.task.oom_kills >= 1,
        "stopped by the limit: {exit}: {out} {stats:?}"
    );
    // dd did not write it all: it failed, was killed (dd=137), or took the task along.
    assert!(!out.contains("dd=0"), "{exit}: {out}");
    assert!(
        stats.task.memory_peak_bytes <= LIMIT_MIB << 20,
        "the fill was charged to the task, within its limit: {stats:?}"
    );
    drop(task);
    // Nothing of it is on the host: the root's mount point there is an empty directory.
    let mountpoint = std::path::Path::new("/run/tasksandbox/root");
    if mountpoint.exists() {
        assert_eq!(
            std::fs::read_dir(mountpoint).unwrap().count(),
            0,
            "the host's view of the root's mount point"
        );
    }
}
