//! Each container's own cgroup inside the task's, with ECS's container-level
//! semantics: `cpu_units` a relative share (no quota), `memory_limit` a hard limit,
//! `memory_reservation` a soft one; what the containers reserve together must fit in
//! the task. Read from the host, in the cgroup files the kernel enforces.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::can_start_tasks;
use tasksandbox::{
    CgroupVersion, ConfigError, Container, ContainerState, EventKind, ExitStatus, RunningTask,
    Stdio, TaskSandbox, TaskSandboxBuilder, TaskSize,
};

const MIB: u64 = 1 << 20;

/// Where the cgroup hierarchy holding `controller` is mounted: the v1 hierarchy that
/// has it, or the cgroup2 mount (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` next
/// to v1).
fn hierarchy(version: CgroupVersion, controller: &str) -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut cgroup2 = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (point, fstype) = (fields[4], fields[dash + 1]);
        let options = fields.get(dash + 3).copied().unwrap_or("");
        match fstype {
            "cgroup"
                if version == CgroupVersion::V1 && options.split(',').any(|o| o == controller) =>
            {
                return PathBuf::from(point);
            }
            "cgroup2" => cgroup2 = cgroup2.or(Some(PathBuf::from(point))),
            _ => {}
        }
    }
    cgroup2.unwrap_or_else(|| panic!("no cgroup hierarchy with {controller}"))
}

/// The content of `file` in container `container`'s cgroup (or the task's, for
/// `None`), in the hierarchy of `controller`; `None` if the file is not there.
fn cgroup_file(
    task: &RunningTask,
    container: Option<&str>,
    controller: &str,
    file: &str,
) -> Option<String> {
    let version = tasksandbox::cgroup::detect().unwrap();
    let rel = task.report().cgroup.clone().expect("the task has a cgroup");
    let mut dir = hierarchy(version, controller).join(rel);
    if let Some(name) = container {
        dir.push(format!("ctr-{name}"));
    }
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn running(task: &RunningTask, name: &str) -> bool {
    matches!(task.state(name), Some(ContainerState::Running { .. }))
}

fn wait_for(task: &RunningTask, what: &str, cond: impl Fn(&RunningTask) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(task) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn each_container_gets_its_share_limit_and_reservation() {
    if !can_start_tasks() {
        return;
    }
    let idle = |name: &str| {
        Container::new(name)
            .command(["/bin/sleep", "1000"])
            .essential(false)
    };
    let mut task = TaskSandbox::builder()
        .size(TaskSize::fargate(1024, 2048).unwrap())
        .stop_timeout(Duration::from_millis(50))
        .container(
            Container::new("app")
                .command(["/bin/sleep", "1000"])
                .cpu_units(512)
                .memory_limit(1024 * MIB)
                .memory_reservation(512 * MIB),
        )
        .container(idle("side").cpu_units(256).memory_reservation(256 * MIB))
        .container(idle("plain"))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "all running", |t| {
        ["app", "side", "plain"].iter().all(|n| running(t, n))
    });
    let version = tasksandbox::cgroup::detect().unwrap();
    let file = |container, controller, file| cgroup_file(&task, container, controller, file);
    match version {
        CgroupVersion::V1 => {
            // The task has the ceiling: a quota of one vCPU.
            assert_eq!(file(None, "cpu", "cpu.cfs_quota_us").unwrap(), "100000");
            assert_eq!(file(None, "cpu", "cpu.shares").unwrap(), "1024");
            // A container has a share, and no quota of its own.
            assert_eq!(file(Some("app"), "cpu", "cpu.shares").unwrap(), "512");
            assert_eq!(file(Some("app"), "cpu", "cpu.cfs_quota_us").unwrap(), "-1");
            assert_eq!(file(Some("side"), "cpu", "cpu.shares").unwrap(), "256");
            assert_eq!(file(Some("side"), "cpu", "cpu.cfs_quota_us").unwrap(), "-1");
            assert_eq!(
                file(Some("app"), "memory", "memory.limit_in_bytes").unwrap(),
                (1024 * MIB).to_string()
            );
            assert_eq!(
                file(Some("app"), "memory", "memory.soft_limit_in_bytes").unwrap(),
                (512 * MIB).to_string()
            );
            assert_eq!(
                file(Some("side"), "memory", "memory.soft_limit_in_bytes").unwrap(),
                (256 * MIB).to_string()
            );
            // No hard limit of its own: the task's applies (the kernel's "unlimited").
            let side_limit: u64 = file(Some("side"), "memory", "memory.limit_in_bytes")
                .unwrap()
                .parse()
                .unwrap();
            assert!(side_limit > 1 << 60, "{side_limit}");
            assert_eq!(
                file(None, "memory", "memory.limit_in_bytes").unwrap(),
                (2048 * MIB).to_string()
            );
            // `plain` set no units while its siblings did: the least share (ECS's 2),
            // so it never outweighs them.
            assert_eq!(file(Some("plain"), "cpu", "cpu.shares").unwrap(), "2");
            assert_eq!(
                file(Some("plain"), "cpu", "cpu.cfs_quota_us").unwrap(),
                "-1"
            );
        }
        CgroupVersion::V2 => {
            assert_eq!(file(None, "cpu", "cpu.max").unwrap(), "100000 100000");
            assert_eq!(file(Some("app"), "cpu", "cpu.max").unwrap(), "max 100000");
            assert_eq!(file(Some("app"), "cpu", "cpu.weight").unwrap(), "20");
            assert_eq!(file(Some("side"), "cpu", "cpu.weight").unwrap(), "10");
            assert_eq!(
                file(Some("app"), "memory", "memory.max").unwrap(),
                (1024 * MIB).to_string()
            );
            assert_eq!(
                file(Some("app"), "memory", "memory.low").unwrap(),
                (512 * MIB).to_string()
            );
            assert_eq!(
                file(Some("side"), "memory", "memory.low").unwrap(),
                (256 * MIB).to_string()
            );
            assert_eq!(file(Some("side"), "memory", "memory.max").unwrap(), "max");
            assert_eq!(file(Some("plain"), "memory", "memory.low").unwrap(), "0");
            assert_eq!(file(Some("plain"), "cpu", "cpu.weight").unwrap(), "1");
        }
    }
    // Each workload is in its container's cgroup.
    for name in ["app", "side", "plain"] {
        let Some(ContainerState::Running { pid }) = task.state(name) else {
            panic!("{name} is not running");
        };
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let memory = cgroups
            .lines()
            .find(|l| l.contains(":memory:") || l.starts_with("0::"))
            .unwrap_or_else(|| panic!("{name}: {cgroups}"));
        assert!(
            memory.ends_with(&format!("/ctr-{name}")),
            "{name}: {memory}"
        );
    }
    task.kill().unwrap();
}

/// A container that reaches its own memory limit is OOM-killed, reported as such for
/// that container alone, and its sibling carries on: the task does not stop, and
/// the sibling is not touched.
#[test]
fn a_container_killed_at_its_own_memory_limit_leaves_its_sibling_running() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .size(TaskSize::custom(1024, 256).unwrap())
        .stop_timeout(Duration::from_secs(10))
        .container(
            // The shell itself grows past 32 MiB: the workload is what gets killed.
            Container::new("hog")
                .command([
                    "/bin/sh",
                    "-c",
                    "sleep 0.3; x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
                ])
                .memory_limit(32 * MIB)
                .essential(false),
        )
        .container(
            Container::new("steady")
                .command([
                    "/bin/sh",
                    "-c",
                    "trap 'echo count=$i; exit 0' TERM; i=0; \
                     while :; do i=$((i+1)); sleep 0.02; done",
                ])
                .memory_limit(64 * MIB)
                .stdout(Stdio::Piped),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the hog to be killed", |t| {
        matches!(t.state("hog"), Some(ContainerState::Exited(_)))
    });
    assert_eq!(
        task.state("hog"),
        Some(ContainerState::Exited(ExitStatus::OutOfMemory))
    );
    let events = task.events();
    assert!(
        events.iter().any(|e| e.kind
            == EventKind::OutOfMemory {
                container: "hog".into()
            }),
        "{events:?}"
    );
    // The sibling carries on, untouched by the OOM killer, and the task with it.
    std::thread::sleep(Duration::from_millis(200));
    assert!(running(&task, "steady"), "{:?}", task.state("steady"));
    assert_eq!(task.try_wait().unwrap(), None);
    let stats = task.stats().unwrap();
    assert!(stats.containers["hog"].oom_kills >= 1, "{stats:?}");
    assert_eq!(stats.containers["steady"].oom_kills, 0, "{stats:?}");
    let exit = task.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(
        exit.container("steady").unwrap().status,
        Some(ExitStatus::Exited(0)),
        "{exit}"
    );
    assert_eq!(
        exit.container("hog").unwrap().status,
        Some(ExitStatus::OutOfMemory)
    );
    let mut out = String::new();
    task.take_stdout("steady")
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let count: u32 = out
        .trim()
        .strip_prefix("count=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(count > 10, "{out}");
}

fn refuse(builder: TaskSandboxBuilder) -> (String, String) {
    match builder.build() {
        Err(ConfigError::Invalid { field, reason }) => (field, reason),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

fn app(name: &str) -> Container {
    Container::new(name).command(["/bin/true"])
}

/// What the containers reserve together must fit in the task, and a reservation in
/// its container's limit: typed errors from `build()`, naming the container that
/// goes over.
#[test]
fn reservations_must_fit_in_the_task() {
    let task = || TaskSandbox::builder().size(TaskSize::fargate(512, 1024).unwrap());

    let (field, reason) = refuse(
        task()
            .container(app("a").cpu_units(256))
            .container(app("b").cpu_units(128))
            .container(app("c").cpu_units(256)),
    );
    assert_eq!(field, "container \"c\": cpu_units");
    assert_eq!(
        reason,
        "the containers' CPU units add up to 640 (a 256 + b 128 + c 256), more than the task's 512"
    );
    // Up to the task's CPU, exactly, is fine.
    assert!(task()
        .container(app("a").cpu_units(256))
        .container(app("b").cpu_units(256))
        .build()
        .is_ok());

    let (field, reason) = refuse(
        task()
            .container(app("a").memory_reservation(512 * MIB))
            .container(app("b").memory_limit(768 * MIB)),
    );
    assert_eq!(field, "container \"b\": memory_limit");
    assert!(
        reason.contains("add up to 1280 MiB (a 512 MiB + b 768 MiB), more than the task's 1 GiB"),
        "{reason}"
    );
    let (field, _) = refuse(
        task()
            .container(
                app("a")
                    .memory_limit(1024 * MIB)
                    .memory_reservation(256 * MIB),
            )
            .container(app("b").memory_reservation(800 * MIB)),
    );
    assert_eq!(field, "container \"b\": memory_reservation");
    // A limit above the reservation counts the reservation: these fit.
    assert!(task()
        .container(
            app("a")
                .memory_limit(1024 * MIB)
                .memory_reservation(512 * MIB)
        )
        .container(
            app("b")
                .memory_limit(1024 * MIB)
                .memory_reservation(512 * MIB)
        )
        .build()
        .is_ok());

    let (field, reason) = refuse(
        task().container(
            app("a")
                .memory_limit(128 * MIB)
                .memory_reservation(256 * MIB),
        ),
    );
    assert_eq!(field, "container \"a\": memory_reservation");
    assert!(
        reason.contains("more than the container's memory_limit"),
        "{reason}"
    );

    let (field, reason) = refuse(task().container(app("a").memory_limit(2048 * MIB)));
    assert_eq!(field, "container \"a\": memory_limit");
    assert!(reason.contains("(the task's memory)"), "{reason}");
    let (field, _) = refuse(task().container(app("a").memory_reservation(2048 * MIB)));
    assert_eq!(field, "container \"a\": memory_reservation");
    let (field, _) = refuse(task().container(app("a").cpu_units(0)));
    assert_eq!(field, "container \"a\": cpu_units");

    // Without a task CPU value, container shares are not summed.
    assert!(TaskSandbox::builder()
        .size(TaskSize::memory_only(1024).unwrap())
        .container(app("a").cpu_units(4096))
        .container(app("b").cpu_units(4096))
        .build()
        .is_ok());
}
