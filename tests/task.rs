//! Tasks of several containers: what they share (localhost, IPC, UTS, storage, with
//! `pid_mode = task` the pid namespace) and what they do not; ECS's lifecycle
//! (essential, depends_on, health checks, stop with a grace period); exec; secrets;
//! stats; logs. Every check looks from inside the task at what the kernel reports.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{can_start_tasks, example, status_field};
use tasksandbox::{
    Capabilities, Condition, Container, ContainerState, EphemeralStorage, EventKind, ExitStatus,
    Health, HealthCheck, LogStream, PidMode, RunningTask, Secret, Stdio, StopReason, TaskSandbox,
    TaskSandboxBuilder, User, Volume,
};

/// A container running `sh -c script` with its stdout piped.
fn sh(name: &str, script: &str) -> Container {
    Container::new(name)
        .command(["/bin/sh", "-c", script])
        .stdout(Stdio::Piped)
}

/// Starts the task, waits for it, and returns each container's stdout.
fn run(builder: TaskSandboxBuilder) -> (tasksandbox::TaskExit, BTreeMap<String, String>) {
    let sandbox = builder.build().expect("task builds");
    let names: Vec<String> = sandbox.container_names().map(str::to_string).collect();
    let mut task = sandbox.start().expect("task starts");
    let exit = task.wait().expect("task ends");
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(mut f) = task.take_stdout(&name) {
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            out.insert(name, text);
        }
    }
    (exit, out)
}

fn wait_for(task: &RunningTask, what: &str, cond: impl Fn(&RunningTask) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(task) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const NS: &str = "for n in net ipc uts mnt pid; do echo $n $(readlink /proc/self/ns/$n); done";

#[test]
fn containers_share_network_ipc_uts_and_nothing_else() {
    if !can_start_tasks() {
        return;
    }
    // Both alive at once: a namespace's number is reused once it is gone.
    let (exit, out) = run(TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(sh("a", &format!("{NS}; exec sleep 1000")).essential(false))
        .container(sh("b", &format!("sleep 0.2; {NS}")).depends_on("a", Condition::Start)));
    assert!(exit.success(), "{exit}");
    let parse = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (a, b) = (parse(&out["a"]), parse(&out["b"]));
    for shared in ["net", "ipc", "uts"] {
        assert_eq!(a[shared], b[shared], "{shared} is shared");
    }
    for own in ["mnt", "pid"] {
        assert_ne!(a[own], b[own], "{own} is per container");
    }
    // And none of them is the host's.
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(a["net"], host.to_string_lossy());
}

#[test]
fn sidecar_reaches_the_app_over_localhost() {
    if !can_start_tasks() {
        return;
    }
    let out = std::process::Command::new(example("sidecar"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sidecar received: hello from the app container\n"
    );
}

#[test]
fn mount_namespaces_are_separate_and_storage_is_shared() {
    if !can_start_tasks() {
        return;
    }
    let (exit, out) = run(TaskSandbox::builder()
        .ephemeral_storage(EphemeralStorage::custom_mib(16).unwrap())
        .container(
            sh(
                "a",
                "echo mine > /tmp/a-only && echo shared > /data/file && echo ok",
            )
            .ephemeral_storage_at("/data")
            .essential(false),
        )
        .container(
            sh(
                "b",
                "test ! -e /tmp/a-only && echo no-a-file; cat /mnt/storage/file; \
                 grep -w /mnt/storage /proc/self/mounts | cut -d' ' -f3",
            )
            .ephemeral_storage_at("/mnt/storage")
            .depends_on("a", Condition::Success),
        ));
    assert!(exit.success(), "{exit}");
    assert_eq!(out["a"], "ok\n");
    assert_eq!(out["b"], "no-a-file\nshared\next4\n");
}

#[test]
fn writing_past_the_storage_limit_is_enospc_and_harms_nothing_else() {
    if !can_start_tasks() {
        return;
    }
    let (exit, out) = run(TaskSandbox::builder()
        .ephemeral_storage(EphemeralStorage::custom_mib(8).unwrap())
        .container(
            sh(
                "filler",
                "dd if=/dev/zero of=/data/fill bs=1M count=32 2>/tmp/err; \
                 echo dd=$?; grep -o 'No space left on device' /tmp/err | head -1; \
                 echo size=$(( $(stat -c %s /data/fill) / 1048576 ))",
            )
            .ephemeral_storage_at("/data")
            .essential(false),
        )
        .container(
            sh(
                "neighbour",
                "dd if=/dev/zero of=/tmp/own bs=1M count=4 2>/dev/null && echo own-root-ok; \
                 rm /data/fill && echo freed && echo again > /data/next && cat /data/next",
            )
            .ephemeral_storage_at("/data")
            .depends_on("filler", Condition::Complete),
        ));
    assert!(exit.success(), "{exit}");
    let filler = &out["filler"];
    assert!(
        filler.starts_with("dd=1\nNo space left on device\n"),
        "{filler}"
    );
    // Everything up to the limit was written, nothing past it.
    let size: u64 = filler
        .trim_end()
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((6..=8).contains(&size), "{filler}");
    assert_eq!(out["neighbour"], "own-root-ok\nfreed\nagain\n");
    // The host's mount point never held the data: the volume was mounted in the task.
    let host_dir = std::fs::read_dir("/run/tasksandbox/storage").unwrap();
    assert_eq!(host_dir.count(), 0);
}

/// The pid of the process whose command line is `/bin/sleep <marker>`, from inside.
const FIND: &str = "for p in /proc/[0-9]*; do \
    if [ \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" = \"/bin/sleep 1234.5 \" ]; then echo ${p#/proc/}; fi; done";

#[test]
fn pid_mode_task_shares_the_pid_namespace_and_only_ptrace_reaches_a_sibling() {
    if !can_start_tasks() {
        return;
    }
    let probe = |caps: Capabilities| {
        format!(
            "pid=$({FIND}); test -n \"$pid\" || exit 9; echo pid1=$(cat /proc/1/comm); \
             if head -c1 /proc/$pid/environ >/dev/null 2>&1; then echo environ=read; else echo environ=denied; fi; \
             if ls /proc/$pid/root/ >/dev/null 2>&1; then echo root=read; else echo root=denied; fi; \
             echo caps={}",
            caps.len()
        )
    };
    let plain = Capabilities::fargate_default();
    let ptrace = plain.with_sys_ptrace();
    let mut task = TaskSandbox::builder()
        .pid_mode(PidMode::Task)
        .container(Container::new("target").command(["/bin/sleep", "1234.5"]))
        .container(
            sh("plain", &probe(plain))
                .essential(false)
                .depends_on("target", Condition::Start),
        )
        .container(
            sh("tracer", &probe(ptrace))
                .capabilities(ptrace)
                .essential(false)
                .depends_on("plain", Condition::Complete),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the probes", |t| {
        matches!(t.state("tracer"), Some(ContainerState::Exited(_)))
    });
    let read = |task: &mut RunningTask, name: &str| {
        let mut s = String::new();
        task.take_stdout(name)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let plain_out = read(&mut task, "plain");
    let tracer_out = read(&mut task, "tracer");
    assert!(
        plain_out.starts_with("pid1="),
        "the sibling is visible: {plain_out}"
    );
    assert!(
        plain_out.contains("environ=denied\nroot=denied\n"),
        "{plain_out}"
    );
    assert!(
        tracer_out.contains("environ=read\nroot=read\n"),
        "{tracer_out}"
    );
    let report = task.report();
    assert!(report
        .containers
        .iter()
        .any(|c| c.name == "plain" && c.landlock));
    assert!(report
        .containers
        .iter()
        .any(|c| c.name == "tracer" && !c.landlock));
    // In the default pid mode a container sees only its own processes.
    let (_, out) = run(TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            Container::new("target")
                .command(["/bin/sleep", "1234.5"])
                .essential(false),
        )
        .container(
            sh(
                "look",
                &format!("pid=$({FIND}); echo found=[$pid]; ls -d /proc/[0-9]* | wc -l"),
            )
            .depends_on("target", Condition::Start),
        ));
    assert_eq!(out["look"].lines().next(), Some("found=[]"));
    task.kill().unwrap();
}

#[test]
fn essential_exit_stops_the_task_and_non_essential_exit_does_not() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(300))
        .container(Container::new("app").command(["/bin/sleep", "1000"]))
        .container(
            Container::new("helper")
                .command(["/bin/sh", "-c", "exit 3"])
                .essential(false),
        )
        .container(
            // Ignores SIGTERM (pid 1 without a handler): killed after the timeout.
            Container::new("stubborn")
                .command(["/bin/sleep", "1000"])
                .essential(false),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the helper to exit", |t| {
        t.state("helper") == Some(ContainerState::Exited(ExitStatus::Exited(3)))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        task.try_wait().unwrap(),
        None,
        "a non-essential exit keeps the task"
    );
    let killed_at = Instant::now();
    task.signal("app", libc::SIGKILL).unwrap();
    let exit = task.wait().unwrap();
    let took = killed_at.elapsed();
    assert_eq!(
        exit.reason,
        StopReason::EssentialExited {
            container: "app".into()
        }
    );
    assert_eq!(exit.status(), ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(
        exit.container("helper").unwrap().status,
        Some(ExitStatus::Exited(3))
    );
    assert_eq!(
        exit.container("stubborn").unwrap().status,
        Some(ExitStatus::Signaled(libc::SIGKILL))
    );
    assert!(
        took >= Duration::from_millis(300),
        "the stop timeout was not waited: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn depends_on_complete_success_and_healthy() {
    if !can_start_tasks() {
        return;
    }
    // COMPLETE: b starts only after a has exited, whatever its status.
    let sandbox = TaskSandbox::builder()
        .container(sh("a", "sleep 0.2; exit 4").essential(false))
        .container(sh("b", "echo b").depends_on("a", Condition::Complete))
        .build()
        .unwrap();
    let mut task = sandbox.start().unwrap();
    let exit = task.wait().unwrap();
    assert!(exit.success(), "{exit}");
    let events = task.events();
    let pos = |f: &dyn Fn(&EventKind) -> bool| events.iter().position(|e| f(&e.kind)).unwrap();
    let a_exit = pos(&|k| matches!(k, EventKind::Exited { container, .. } if container == "a"));
    let b_start = pos(&|k| matches!(k, EventKind::Started { container, .. } if container == "b"));
    assert!(a_exit < b_start, "{events:?}");

    // SUCCESS that fails: the essential dependent never starts and the task stops.
    let (exit, _) = run(TaskSandbox::builder()
        .container(sh("a", "exit 1").essential(false))
        .container(sh("b", "echo never").depends_on("a", Condition::Success)));
    assert_eq!(
        exit.reason,
        StopReason::DependencyFailed {
            container: "b".into(),
            dependency: "a".into()
        }
    );
    assert_eq!(exit.container("b").unwrap().status, None);

    // HEALTHY: b waits for a's health check to pass.
    let sandbox = TaskSandbox::builder()
        .container(
            sh("a", "sleep 0.3; touch /tmp/ready; exec sleep 1000").health_check(
                HealthCheck::new(["/bin/test", "-e", "/tmp/ready"])
                    .interval(Duration::from_millis(50))
                    .retries(100),
            ),
        )
        .container(
            sh("b", "echo b-ran")
                .essential(false)
                .depends_on("a", Condition::Healthy),
        )
        .build()
        .unwrap();
    let mut task = sandbox.start().unwrap();
    wait_for(&task, "b to run", |t| {
        matches!(t.state("b"), Some(ContainerState::Exited(_)))
    });
    assert_eq!(task.health("a"), Some(Health::Healthy));
    let events = task.events();
    let healthy = events
        .iter()
        .position(|e| {
            matches!(
                &e.kind,
                EventKind::HealthChanged {
                    health: Health::Healthy,
                    ..
                }
            )
        })
        .unwrap();
    let b_start = events
        .iter()
        .position(|e| matches!(&e.kind, EventKind::Started { container, .. } if container == "b"))
        .unwrap();
    assert!(healthy < b_start, "{events:?}");
    task.kill().unwrap();
    assert_eq!(task.wait().unwrap().reason, StopReason::Requested);
}

#[test]
fn an_unhealthy_essential_container_stops_the_task() {
    if !can_start_tasks() {
        return;
    }
    let (exit, _) = run(TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            Container::new("app")
                .command(["/bin/sleep", "1000"])
                .health_check(
                    HealthCheck::new(["/bin/false"])
                        .interval(Duration::from_millis(30))
                        .retries(2),
                ),
        ));
    assert_eq!(
        exit.reason,
        StopReason::EssentialUnhealthy {
            container: "app".into()
        }
    );
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_grace_period() {
    if !can_start_tasks() {
        return;
    }
    let grace = Duration::from_millis(500);
    let mut task = TaskSandbox::builder()
        .container(sh(
            "polite",
            "trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done",
        ))
        .container(sh("deaf", "trap '' TERM; while :; do sleep 0.05; done").essential(false))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "both running", |t| {
        matches!(t.state("deaf"), Some(ContainerState::Running { .. }))
    });
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let exit = task.stop(grace).unwrap();
    let took = asked.elapsed();
    assert_eq!(exit.reason, StopReason::Requested);
    assert_eq!(
        exit.container("polite").unwrap().status,
        Some(ExitStatus::Exited(0))
    );
    assert_eq!(
        exit.container("deaf").unwrap().status,
        Some(ExitStatus::Signaled(libc::SIGKILL))
    );
    assert!(
        took >= grace,
        "SIGKILL came before the grace period ended: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let mut bye = String::new();
    task.take_stdout("polite")
        .unwrap()
        .read_to_string(&mut bye)
        .unwrap();
    assert_eq!(bye, "bye\n");
}

/// What a process reports of itself: its /proc/self/status, then what `unshare -U`
/// (refused by seccomp) and a chown to another owner (refused without CAP_CHOWN) give.
const SELF_REPORT: &str = "cat /proc/self/status; echo ---; \
    test -x /usr/bin/unshare || echo no-unshare; \
    unshare -U true 2>&1; echo unshare=$?; chown 1:1 /tmp/x 2>&1; echo chown=$?";

/// Execs into a container of `user` and compares, line by line, what the exec'd
/// process and the workload each read of themselves.
fn exec_matches_the_workload(user: User) {
    let caps = Capabilities::fargate_default()
        .drop(tasksandbox::Capability::NetRaw)
        .drop(tasksandbox::Capability::Chown);
    let mut task = TaskSandbox::builder()
        .container(
            Container::new("app")
                .command([
                    "/bin/sh",
                    "-c",
                    &format!(
                        "touch /tmp/x; {{ {SELF_REPORT}; }} > /tmp/report.tmp 2>&1; \
                         mv /tmp/report.tmp /tmp/report; exec sleep 1000"
                    ),
                ])
                .capabilities(caps)
                .user(user)
                .env("GREETING", "hi"),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the workload's report", |t| {
        t.exec("app", ["/bin/test", "-e", "/tmp/report"])
            .is_ok_and(|o| o.status.success())
    });
    let out = task.exec("app", ["/bin/cat", "/tmp/report"]).unwrap();
    let workload = String::from_utf8_lossy(&out.stdout).into_owned();
    let out = task.exec("app", ["/bin/sh", "-c", SELF_REPORT]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mine_status, mine_refusals) = mine.split_once("---\n").unwrap();
    let (workload_status, workload_refusals) = workload.split_once("---\n").unwrap();
    let keys: Vec<&str> = mine_status
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("Cap"))
        .chain([
            "NoNewPrivs",
            "Seccomp",
            "Seccomp_filters",
            "Uid",
            "Gid",
            "Groups",
        ])
        .collect();
    assert_eq!(keys.iter().filter(|k| k.starts_with("Cap")).count(), 5);
    for key in keys {
        assert_eq!(
            status_field(mine_status, key),
            status_field(workload_status, key),
            "{key} of the exec'd process differs from the workload's ({user:?})"
        );
    }
    assert_eq!(status_field(mine_status, "NoNewPrivs"), "1");
    assert_eq!(status_field(mine_status, "Seccomp"), "2");
    let filters: u32 = status_field(mine_status, "Seccomp_filters")
        .parse()
        .unwrap();
    assert!(filters >= 1);
    let uid = format!("{}\t", user.uid);
    assert!(status_field(mine_status, "Uid").starts_with(&uid));
    let effective = u64::from_str_radix(status_field(mine_status, "CapEff"), 16).unwrap();
    if user.is_root() {
        assert_eq!(effective, caps.mask(), "root holds the container's set");
    } else {
        assert_eq!(effective, 0);
    }
    // Refused the same way, with EPERM, on both sides.
    assert_eq!(mine_refusals, workload_refusals);
    assert!(!mine_refusals.contains("no-unshare"), "{mine_refusals}");
    let lines: Vec<&str> = mine_refusals.lines().collect();
    assert_eq!(lines.len(), 4, "{mine_refusals}");
    assert!(
        lines[0].ends_with("Operation not permitted") && lines[1] == "unshare=1",
        "{mine_refusals}"
    );
    assert!(
        lines[2].ends_with("Operation not permitted") && lines[3] == "chown=1",
        "{mine_refusals}"
    );

    let out = task
        .exec("app", ["/bin/sh", "-c", "echo $GREETING; readlink /proc/self/ns/mnt /proc/1/ns/mnt; cat /proc/self/cgroup | md5sum; cat /proc/1/cgroup | md5sum"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "hi");
    assert_eq!(lines[1], lines[2], "same mount namespace");
    assert_eq!(lines[3], lines[4], "same cgroup");
    // Into a container that is not running: an error, not a hang.
    task.signal("app", libc::SIGKILL).unwrap();
    task.wait().unwrap();
    assert!(task.exec("app", ["/bin/true"]).is_err());
}

#[test]
fn exec_runs_with_exactly_the_containers_restrictions() {
    if !can_start_tasks() {
        return;
    }
    exec_matches_the_workload(User::new(1000, 1000));
    exec_matches_the_workload(User::ROOT);
}

/// A value no other test, task or run uses.
fn unique_secret() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("s3cr3t-{}-{nanos:09}", std::process::id())
}

/// Host pids of every process that can read `value` in a file under its
/// `/run/secrets` (seen through `/proc/<pid>/root`).
fn holders_of(value: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(entry.path().join("root/run/secrets")) else {
            continue;
        };
        if files
            .flatten()
            .any(|f| std::fs::read(f.path()).is_ok_and(|b| b == value.as_bytes()))
        {
            out.push(pid);
        }
    }
    out
}

/// Host pids of processes in mount namespace `ns` (`mnt:[inode]`), or holding a
/// descriptor to it.
fn in_namespace(ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        if std::fs::read_link(path.join("ns/mnt")).is_ok_and(|l| l.to_string_lossy() == ns) {
            out.push(name.clone());
        }
        if let Ok(fds) = std::fs::read_dir(path.join("fd")) {
            if fds
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == ns))
            {
                out.push(format!("{name} (descriptor)"));
            }
        }
    }
    out
}

#[test]
fn secrets_are_private_files_never_environment() {
    if !can_start_tasks() {
        return;
    }
    let value = unique_secret();
    let sandbox = TaskSandbox::builder()
        .container(
            sh(
                "app",
                "stat -c '%a %u %g' /run/secrets/token; cat /run/secrets/token; echo; \
                 grep -l s3cr3t /proc/[0-9]*/environ 2>/dev/null | wc -l; \
                 while read -r id parent dev root at opts rest; do \
                   [ \"$at\" = /run/secrets ] || continue; set -- $rest; \
                   while [ \"$1\" != - ]; do shift; done; echo \"${opts%%,*} $2\"; \
                 done < /proc/self/mountinfo; \
                 touch /run/secrets/new 2>/dev/null || echo read-only; exec sleep 1000",
            )
            .user(User::new(1000, 1000))
            .secret(Secret::new("token", value.clone()))
            .depends_on("other", Condition::Complete),
        )
        .container(sh("other", "ls /run/secrets 2>&1 | head -1").essential(false))
        .build()
        .unwrap();
    let mut task = sandbox.start().unwrap();
    wait_for(&task, "app to start", |t| {
        !matches!(t.state("app"), Some(ContainerState::Pending))
    });
    let mut out = task.take_stdout("app").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while text.lines().count() < 5 {
            match out.read(&mut buf) {
                Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
            let _ = tx.send(text.clone());
        }
    });
    let mut text = String::new();
    while text.lines().count() < 5 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(more) => text = more,
            Err(_) => panic!("the app's report stopped short: {text:?}"),
        }
    }
    // 0400, the container user's; on a tmpfs of its own, mounted read-only.
    assert_eq!(
        text,
        format!("400 1000 1000\n{value}\n0\nro tmpfs\nread-only\n")
    );
    // No process of the host (the task's included) has it in its environment.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            assert!(
                !String::from_utf8_lossy(&env).contains(&value),
                "{:?}",
                entry.path()
            );
        }
    }
    // The file is seen from the host through the workload's root, and through no
    // other process's: not the other container's, not the init's.
    let Some(ContainerState::Running { pid }) = task.state("app") else {
        panic!("app is not running");
    };
    assert_eq!(holders_of(&value), [pid]);
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let ns = ns.to_string_lossy().into_owned();

    task.kill().unwrap();
    let mut other = String::new();
    task.wait().unwrap();
    task.take_stdout("other")
        .unwrap()
        .read_to_string(&mut other)
        .unwrap();
    assert!(
        other.contains("No such file"),
        "another container has no secrets: {other}"
    );
    // Gone with the task: no process can read it, and nothing holds the mount
    // namespace its tmpfs was mounted in.
    assert_eq!(holders_of(&value), Vec::<u32>::new());
    assert_eq!(in_namespace(&ns), Vec::<String>::new(), "{ns}");
}

/// Whether `text` holds `secret`, as text or as the list of numbers `Debug` prints
/// for bytes (in any layout).
fn shows(text: &str, secret: &[u8]) -> bool {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let numbers = secret
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",");
    text.contains(&*String::from_utf8_lossy(secret)) || squeezed.contains(&numbers)
}

#[test]
fn no_debug_output_holds_a_secret() {
    let value = unique_secret();
    let secret = value.as_bytes();
    // The check itself catches what it must.
    assert!(shows(&format!("{:?}", secret.to_vec()), secret));
    assert!(shows(&format!("{:#?}", secret.to_vec()), secret));
    assert!(shows(&format!("{:?}", value), secret));

    let container = sh("app", "cat /run/secrets/token").secret(Secret::new("token", secret));
    let builder = TaskSandbox::builder().container(container.clone());
    let mut seen = vec![
        format!("{container:?}"),
        format!("{container:#?}"),
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{:?}", Secret::new("token", secret)),
    ];
    let sandbox = builder.build().unwrap();
    seen.push(format!("{sandbox:?}"));
    seen.push(format!("{sandbox:#?}"));
    let explanation = sandbox.explain();
    seen.push(format!("{explanation:?}"));
    seen.push(explanation.to_string());
    seen.push(explanation.to_json_string());

    // The same from a policy file naming the secret's file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), secret).unwrap();
    let policy_file = dir.path().join("task.toml");
    let text = "[[container]]\nname = \"app\"\ncommand = [\"/bin/true\"]\n\
                secrets = [{ name = \"token\", value_from = \"file:token\" }]\n";
    std::fs::write(&policy_file, text).unwrap();
    let policy = tasksandbox::policy::Policy::from_file(&policy_file).unwrap();
    seen.push(format!("{policy:?}"));
    seen.push(policy.to_toml());
    seen.push(format!("{:?}", policy.builder().unwrap()));
    let from_policy = policy.build().unwrap();
    seen.push(format!("{from_policy:#?}"));
    seen.push(policy.explain().unwrap().to_json_string());

    if can_start_tasks() {
        let mut task = sandbox.start().unwrap();
        seen.push(format!("{task:?}"));
        seen.push(format!("{:?}", task.report()));
        let exit = task.wait().unwrap();
        seen.push(format!("{exit:?}"));
        seen.push(format!("{:?}", task.events()));
        let mut out = String::new();
        task.take_stdout("app")
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        // It was delivered, so the sandbox really held it.
        assert_eq!(out, value);
    }
    for (i, text) in seen.iter().enumerate() {
        assert!(!shows(text, secret), "output {i} shows the secret:\n{text}");
    }
}

#[test]
fn stats_move_when_the_workload_allocates() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .container(
            Container::new("hog")
                .command([
                    "/bin/sh",
                    "-c",
                    "read go; x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo ready; read never",
                ])
                .stdin(Stdio::Piped)
                .stdout(Stdio::Piped),
        )
        .container(
            Container::new("idle")
                .command(["/bin/sleep", "1000"])
                .essential(false),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "both running", |t| {
        matches!(t.state("idle"), Some(ContainerState::Running { .. }))
    });
    let before = task.stats().unwrap();
    let mut stdin = task.take_stdin("hog").unwrap();
    std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    let mut ready = [0u8; 6];
    task.take_stdout("hog")
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let after = task.stats().unwrap();
    let (b, a) = (&before.containers["hog"], &after.containers["hog"]);
    assert!(
        a.memory_current_bytes >= b.memory_current_bytes + (50 << 20),
        "{b:?} -> {a:?}"
    );
    assert!(a.memory_peak_bytes >= a.memory_current_bytes);
    assert!(a.cpu_usage_ns > b.cpu_usage_ns);
    assert!(after.task.memory_current_bytes >= a.memory_current_bytes);
    assert!(
        after.task.pids_current >= 3,
        "init, the two workloads: {:?}",
        after.task
    );
    assert!(after.containers["idle"].memory_current_bytes < (10 << 20));
    drop(stdin);
    task.kill().unwrap();
}

#[test]
fn output_goes_to_files_and_to_the_log_sink_tagged_by_container() {
    if !can_start_tasks() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.log");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&lines);
    let (exit, _) = run(TaskSandbox::builder()
        .log_sink(move |l| {
            record.lock().unwrap().push(format!(
                "{} {} {}",
                l.container,
                l.stream,
                String::from_utf8_lossy(l.line)
            ))
        })
        .container(
            Container::new("a")
                .command(["/bin/sh", "-c", "echo to-file; echo err-to-log >&2"])
                .stdout(Stdio::File(file.clone()))
                .stderr(Stdio::Log)
                .essential(false),
        )
        .container(
            Container::new("b")
                .command(["/bin/sh", "-c", "echo one; echo two; printf three"])
                .stdout(Stdio::Log)
                .depends_on("a", Condition::Complete),
        ));
    assert!(exit.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "to-file\n");
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "a stderr err-to-log",
            "b stdout one",
            "b stdout three",
            "b stdout two"
        ]
    );
    let _ = LogStream::Stdout;
}

/// Host pids of processes whose command line holds `marker`.
fn running_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<u32>().is_ok())
        .collect()
}

/// `parent` (a cgroup path relative to each hierarchy's root) in every hierarchy
/// that has it.
fn cgroup_dirs(parent: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    std::iter::once(root.to_path_buf())
        .chain(std::fs::read_dir(root).unwrap().flatten().map(|e| e.path()))
        .map(|h| h.join(parent))
        .filter(|d| d.is_dir())
        .collect()
}

#[test]
fn a_failed_container_launch_fails_the_start_and_leaves_nothing() {
    if !can_start_tasks() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let marker = format!("1000.{nanos:09}");
    // A parent cgroup of its own, so that what this task made can be told apart.
    let parent = format!("tasksandbox/failed-launch-{}-{nanos}", std::process::id());
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let sandbox = TaskSandbox::builder()
        .cgroup_parent(&parent)
        .log_sink(move |line| {
            let _ = tx
                .lock()
                .unwrap()
                .send(String::from_utf8_lossy(line.line).into_owned());
        })
        .container(
            Container::new("ok")
                .command([
                    "/bin/sh",
                    "-c",
                    &format!("echo started; exec /bin/sleep {marker}"),
                ])
                .stdout(Stdio::Log)
                .essential(false),
        )
        .container(Container::new("bad").command(["/nonexistent/program"]))
        .build()
        .unwrap();
    let err = sandbox.start().unwrap_err();
    let text = err.chain();
    assert!(text.contains("container \"bad\": step `exec`"), "{text}");
    // The first container did run...
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).as_deref(),
        Ok("started")
    );
    // ...and was killed with the task: nothing of it is left.
    assert_eq!(running_with(&marker), Vec::<String>::new());
    // The task's cgroups were made under the parent, and are all gone.
    let dirs = cgroup_dirs(&parent);
    assert!(!dirs.is_empty(), "no hierarchy has {parent}");
    for dir in &dirs {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    for dir in dirs {
        std::fs::remove_dir(&dir).unwrap();
    }
    let volume = Volume::bind("/nonexistent-source", "/x");
    assert!(TaskSandbox::builder()
        .container(Container::new("v").command(["true"]).volume(volume))
        .build()
        .is_err());
}

#[test]
fn the_task_init_is_out_of_reach_even_with_sys_ptrace() {
    if !can_start_tasks() {
        return;
    }
    let ptrace = Capabilities::fargate_default().with_sys_ptrace();
    let (exit, out) = run(TaskSandbox::builder().pid_mode(PidMode::Task).container(
        sh(
            "tracer",
            "echo comm=$(cat /proc/1/comm); echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline); \
             if head -c1 /proc/1/environ >/dev/null 2>&1; then echo environ=read; else echo environ=denied; fi; \
             if ls /proc/1/root/ >/dev/null 2>&1; then echo root=read; else echo root=denied; fi",
        )
        .capabilities(ptrace),
    ));
    assert!(exit.success(), "{exit}");
    assert_eq!(
        out["tracer"],
        // comm holds 15 bytes.
        "comm=tasksandbox-ini\ncmdline=tasksandbox-init\nenviron=denied\nroot=denied\n"
    );
}

#[test]
fn the_landlock_domain_refuses_block_device_nodes_and_nothing_else() {
    if !can_start_tasks() {
        return;
    }
    // Without a user namespace container root holds CAP_MKNOD over the host's, so
    // only Landlock stands between it and a block device node (which the nodev
    // mounts would keep it from opening anyway). Character devices, files and
    // directories are untouched by the domain.
    let script = "cd /tmp; for t in 'b 7 200' 'c 1 3'; do \
        if mknod node $t 2>/tmp/err; then echo \"${t%% *}=made\"; rm node; \
        else echo \"${t%% *}=$(sed 's/.*: //' /tmp/err)\"; fi; done; \
        mkdir d && echo data > d/f && cat d/f && rm -r d";
    let (exit, out) = run(TaskSandbox::builder()
        .user_namespace(tasksandbox::UserNamespace::Disabled)
        .pid_mode(PidMode::Task)
        .container(sh("landlocked", script).essential(false))
        .container(
            sh("tracer", script)
                .capabilities(Capabilities::fargate_default().with_sys_ptrace())
                .depends_on("landlocked", Condition::Complete),
        ));
    assert!(exit.success(), "{exit}");
    assert_eq!(out["landlocked"], "b=Permission denied\nc=made\ndata\n");
    assert_eq!(out["tracer"], "b=made\nc=made\ndata\n");
}

#[test]
fn an_earlier_oom_kill_does_not_make_a_later_sigkill_out_of_memory() {
    if !can_start_tasks() {
        return;
    }
    // A child of the workload runs out of memory and is killed; the workload lives
    // on, says so, and later either is SIGKILLed or runs out of memory itself.
    let hog = "head -c 400000000 /dev/zero | tail > /dev/null";
    let sandbox = |then: &str| {
        TaskSandbox::builder()
            .container(sh("app", &format!("{hog}; echo survived; {then}")).memory_limit(64 << 20))
            .build()
            .unwrap()
    };
    let survived = |task: &mut RunningTask| {
        let mut line = [0u8; 9];
        task.take_stdout("app")
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        assert_eq!(&line, b"survived\n");
        assert!(task.stats().unwrap().containers["app"].oom_kills >= 1);
    };

    let mut task = sandbox("exec sleep 1000").start().unwrap();
    survived(&mut task);
    task.signal("app", libc::SIGKILL).unwrap();
    let exit = task.wait().unwrap();
    assert_eq!(exit.status(), ExitStatus::Signaled(libc::SIGKILL), "{exit}");
    assert!(!task
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::OutOfMemory { .. })));

    // The workload itself out of memory after that: still told apart.
    let mut task = sandbox("x=$(head -c 400000000 /dev/zero | tr '\\0' a)")
        .start()
        .unwrap();
    survived(&mut task);
    let exit = task.wait().unwrap();
    assert_eq!(exit.status(), ExitStatus::OutOfMemory, "{exit}");
}
