//! ECS's lifecycle details: a dependency's start timeout, the stop timeout (its 30 s
//! default, `shutdown()`, and the rule for a grace above 120 s), and health checks'
//! start period and timeout. Timings are checked against the task's events, never by
//! waiting out the long defaults.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::can_start_tasks;
use tasksandbox::task::{DEFAULT_STOP_TIMEOUT, MAX_STOP_TIMEOUT};
use tasksandbox::{
    Condition, ConfigError, Container, ContainerState, EventKind, ExitStatus, Health, HealthCheck,
    RunningTask, StopReason, TaskEvent, TaskSandbox,
};

fn wait_for(task: &RunningTask, what: &str, cond: impl Fn(&RunningTask) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(task) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A workload that leaves on SIGTERM at once (it is pid 1 of its pid namespace, so
/// it needs a handler).
fn polite(name: &str) -> Container {
    Container::new(name).command([
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.02; done",
    ])
}

/// A workload that ignores SIGTERM.
fn deaf(name: &str) -> Container {
    Container::new(name).command([
        "/bin/sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.02; done",
    ])
}

fn stopping_grace(events: &[TaskEvent]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Stopping { grace, .. } => Some(*grace),
            _ => None,
        })
        .collect()
}

fn event_time(events: &[TaskEvent], what: impl Fn(&EventKind) -> bool) -> SystemTime {
    events
        .iter()
        .find(|e| what(&e.kind))
        .map(|e| e.at)
        .unwrap_or_else(|| panic!("no such event in {events:?}"))
}

/// A dependent of a container that never becomes healthy gives up after that
/// container's start timeout, and says why; an essential dependent stops the task.
#[test]
fn a_dependency_that_misses_its_start_timeout_is_given_up_on() {
    if !can_start_tasks() {
        return;
    }
    let timeout = Duration::from_millis(400);
    let sandbox = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(200))
        .container(
            polite("db")
                .essential(false)
                .health_check(
                    HealthCheck::new(["/bin/false"])
                        .interval(Duration::from_millis(50))
                        .retries(1000),
                )
                .start_timeout(timeout),
        )
        .container(
            polite("worker")
                .essential(false)
                .depends_on("db", Condition::Healthy),
        )
        .container(polite("app").depends_on("db", Condition::Healthy))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut task = sandbox.start().unwrap();
    let exit = task.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(
        exit.reason,
        StopReason::DependencyTimedOut {
            container: "app".into(),
            dependency: "db".into(),
            condition: Condition::Healthy,
            timeout,
        },
        "{exit}"
    );
    assert_eq!(
        exit.reason.to_string(),
        "essential container \"app\" cannot start: dependency \"db\" did not reach HEALTHY within its start timeout of 400ms"
    );
    assert!(took >= timeout, "gave up before the timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(exit.container("app").unwrap().status, None);
    assert_eq!(exit.container("worker").unwrap().status, None);
    // db was stopped with the task, cleanly.
    assert_eq!(
        exit.container("db").unwrap().status,
        Some(ExitStatus::Exited(0))
    );
    // Both dependents' reasons are recorded, no earlier than the timeout after db's
    // start.
    let events = task.events();
    let db_started = event_time(
        &events,
        |k| matches!(k, EventKind::Started { container, .. } if container == "db"),
    );
    for dependent in ["worker", "app"] {
        let gave_up = event_time(&events, |k| {
            *k == EventKind::DependencyTimedOut {
                container: dependent.into(),
                dependency: "db".into(),
                condition: Condition::Healthy,
                timeout,
            }
        });
        let after = gave_up.duration_since(db_started).unwrap();
        assert!(after >= timeout, "{dependent} gave up after {after:?}");
    }
}

/// A dependency that meets the condition in time is not given up on, and a non-essential
/// dependent that gives up does not stop the task.
#[test]
fn a_start_timeout_met_in_time_or_missed_by_a_non_essential_dependent() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(200))
        .container(
            Container::new("init")
                .command(["/bin/sh", "-c", "sleep 0.1"])
                .essential(false)
                .start_timeout(Duration::from_secs(5)),
        )
        .container(
            Container::new("slow")
                .command(["/bin/sleep", "1000"])
                .essential(false)
                .start_timeout(Duration::from_millis(200)),
        )
        .container(
            polite("after-init")
                .essential(false)
                .depends_on("init", Condition::Success),
        )
        .container(
            polite("after-slow")
                .essential(false)
                .depends_on("slow", Condition::Complete),
        )
        .container(polite("app"))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "after-init to run, after-slow to give up", |t| {
        matches!(t.state("after-init"), Some(ContainerState::Running { .. }))
            && t.state("after-slow") == Some(ContainerState::NotStarted)
    });
    // The task carries on.
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(
        task.state("app"),
        Some(ContainerState::Running { .. })
    ));
    assert_eq!(task.try_wait().unwrap(), None);
    assert!(task.events().iter().any(|e| e.kind
        == EventKind::DependencyTimedOut {
            container: "after-slow".into(),
            dependency: "slow".into(),
            condition: Condition::Complete,
            timeout: Duration::from_millis(200),
        }));
    assert_eq!(
        task.stop(Duration::from_secs(5)).unwrap().reason,
        StopReason::Requested
    );
}

#[test]
fn start_timeouts_out_of_range_are_refused() {
    for timeout in [Duration::ZERO, Duration::from_secs(121)] {
        let err = TaskSandbox::builder()
            .container(
                Container::new("app")
                    .command(["true"])
                    .start_timeout(timeout),
            )
            .build()
            .unwrap_err();
        match err {
            ConfigError::Invalid { field, reason } => {
                assert_eq!(field, "container \"app\": start_timeout");
                assert!(reason.contains("at most 120s"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Without a stop timeout set, the task's is ECS's 30 s: `shutdown()` and the stop
/// after an essential container exits both use it (shown by the `Stopping` event,
/// without waiting it out: the workloads leave on SIGTERM).
#[test]
fn the_default_stop_timeout_is_30_s_for_shutdown_and_essential_exits() {
    if !can_start_tasks() {
        return;
    }
    assert_eq!(DEFAULT_STOP_TIMEOUT, Duration::from_secs(30));
    let sandbox = TaskSandbox::builder()
        .container(polite("app"))
        .container(polite("side").essential(false))
        .build()
        .unwrap();
    let mut task = sandbox.start().unwrap();
    assert_eq!(task.stop_timeout(), Duration::from_secs(30));
    wait_for(&task, "both running", |t| {
        matches!(t.state("side"), Some(ContainerState::Running { .. }))
    });
    // The shells install their traps first thing; give them that moment.
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let exit = task.shutdown().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert_eq!(exit.reason, StopReason::Requested);
    assert_eq!(stopping_grace(&task.events()), [Duration::from_secs(30)]);
    assert!(exit
        .containers
        .iter()
        .all(|c| c.status == Some(ExitStatus::Exited(0))));

    // An essential container that exits: its siblings get the same grace.
    let mut task = TaskSandbox::builder()
        .container(Container::new("app").command(["/bin/sh", "-c", "sleep 0.3"]))
        .container(polite("side").essential(false))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let exit = task.wait().unwrap();
    assert_eq!(
        exit.reason,
        StopReason::EssentialExited {
            container: "app".into()
        }
    );
    assert_eq!(stopping_grace(&task.events()), [Duration::from_secs(30)]);
    assert_eq!(
        exit.container("side").unwrap().status,
        Some(ExitStatus::Exited(0))
    );
}

/// `shutdown()` waits the task's stop timeout before SIGKILL, and `stop(grace)` its
/// own grace; a grace above 120 s is cut to 120 s.
#[test]
fn shutdown_uses_the_stop_timeout_and_stop_grace_is_capped_at_120_s() {
    if !can_start_tasks() {
        return;
    }
    let timeout = Duration::from_millis(400);
    let mut task = TaskSandbox::builder()
        .stop_timeout(timeout)
        .container(polite("app"))
        .container(deaf("deaf").essential(false))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "both running", |t| {
        matches!(t.state("deaf"), Some(ContainerState::Running { .. }))
    });
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let exit = task.shutdown().unwrap();
    let took = asked.elapsed();
    assert!(took >= timeout, "SIGKILL before the stop timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(
        exit.container("deaf").unwrap().status,
        Some(ExitStatus::Signaled(libc::SIGKILL))
    );
    assert_eq!(stopping_grace(&task.events()), [timeout]);

    // A grace of ten minutes is cut to ECS's maximum.
    let mut task = TaskSandbox::builder()
        .container(polite("app"))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "running", |t| {
        matches!(t.state("app"), Some(ContainerState::Running { .. }))
    });
    std::thread::sleep(Duration::from_millis(100));
    let exit = task.stop(Duration::from_secs(600)).unwrap();
    assert_eq!(
        exit.container("app").unwrap().status,
        Some(ExitStatus::Exited(0))
    );
    assert_eq!(MAX_STOP_TIMEOUT, Duration::from_secs(120));
    assert_eq!(stopping_grace(&task.events()), [MAX_STOP_TIMEOUT]);
}

/// Failures during the start period do not count: the container turns unhealthy only
/// once the period is over, however many checks failed before.
#[test]
fn health_check_failures_in_the_start_period_do_not_count() {
    if !can_start_tasks() {
        return;
    }
    let period = Duration::from_millis(800);
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            polite("app").health_check(
                HealthCheck::new(["/bin/false"])
                    .interval(Duration::from_millis(40))
                    .retries(1)
                    .start_period(period),
            ),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    let exit = task.wait().unwrap();
    assert_eq!(
        exit.reason,
        StopReason::EssentialUnhealthy {
            container: "app".into()
        }
    );
    let events = task.events();
    let started = event_time(&events, |k| matches!(k, EventKind::Started { .. }));
    let unhealthy = event_time(&events, |k| {
        matches!(
            k,
            EventKind::HealthChanged {
                health: Health::Unhealthy,
                ..
            }
        )
    });
    let after = unhealthy.duration_since(started).unwrap();
    assert!(
        after >= period,
        "unhealthy {after:?} after start, within the start period"
    );
    assert!(after < Duration::from_secs(10), "{after:?}");
}

/// A check that passes during the start period makes the container healthy at once.
#[test]
fn a_health_check_passing_in_the_start_period_is_healthy_at_once() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            Container::new("app")
                .command([
                    "/bin/sh",
                    "-c",
                    "trap 'exit 0' TERM; sleep 0.2; touch /tmp/ready; while :; do sleep 0.02; done",
                ])
                .health_check(
                    HealthCheck::new(["/bin/test", "-e", "/tmp/ready"])
                        .interval(Duration::from_millis(40))
                        .retries(1)
                        .start_period(Duration::from_secs(60)),
                ),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "healthy", |t| {
        t.health("app") == Some(Health::Healthy)
    });
    task.stop(Duration::from_secs(5)).unwrap();
}

/// A check that runs longer than its timeout counts as failed, so a hanging check
/// makes the container unhealthy in a few timeouts, not when the check ends.
#[test]
fn a_health_check_past_its_timeout_fails() {
    if !can_start_tasks() {
        return;
    }
    let timeout = Duration::from_millis(150);
    let started = Instant::now();
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            polite("app").health_check(
                HealthCheck::new(["/bin/sleep", "30"])
                    .interval(Duration::from_millis(40))
                    .timeout(timeout)
                    .retries(2),
            ),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    let exit = task.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(
        exit.reason,
        StopReason::EssentialUnhealthy {
            container: "app".into()
        }
    );
    // Two failed checks: at least two timeouts, far less than one check's 30 s.
    assert!(took >= timeout * 2, "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn an_init_chosen_by_the_oom_killer_is_reported_as_the_task_out_of_memory() {
    // Pages of the default root (a tmpfs charged to the task) belong to no process,
    // so when they fill the task's memory the OOM killer picks the process of the task
    // with the most resident memory. The filler is kept smaller than the init (a copy
    // of this test process) so that the init is the victim: the task must say it ran
    // out of memory, not that its init died of some outside SIGKILL.
    if !can_start_tasks() {
        return;
    }
    // Make this process (and so its copy, the init) clearly the largest: 16 MiB,
    // touched.
    let ballast = vec![1u8; 16 << 20];
    let sandbox = TaskSandbox::builder()
        .size(tasksandbox::TaskSize::memory_only(48).unwrap())
        .container(Container::new("fill").command([
            "/bin/sh",
            "-c",
            "while :; do /bin/cat /dev/zero > /fill; done",
        ]))
        .build()
        .unwrap();
    let mut task = sandbox.start().unwrap();
    let exit = task.wait().unwrap();
    assert!(ballast.iter().all(|&b| b == 1));
    assert_eq!(exit.reason, StopReason::InitOutOfMemory, "{exit}");
    assert_eq!(
        exit.reason.to_string(),
        "the task ran out of memory and its init was OOM-killed"
    );
}
