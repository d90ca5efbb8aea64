//! Exec into a running container, seen from inside: nothing of the launcher shows in
//! the window before the exec'd program starts, `exec` returns when its process ends
//! (not when descendants holding its pipes do), a health check that times out takes
//! its process group along, and a process exec'd into a Landlock-confined container
//! reaches nothing its workload cannot.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::can_start_tasks;
use tasksandbox::{
    Capabilities, Condition, Container, ContainerState, Health, HealthCheck, Output, PidMode,
    RunningTask, StopReason, TaskSandbox,
};

fn wait_for(task: &RunningTask, what: &str, cond: impl Fn(&RunningTask) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(task) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `script` with `sh -c` in `container`, asserting it succeeds.
fn exec_sh(task: &RunningTask, container: &str, script: &str) -> String {
    let out = task
        .exec(container, ["/bin/sh", "-c", script])
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()));
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A watcher, all shell builtins (so it forks nothing and loops fast): over and over,
/// every process it can see is looked at. Recorded in /tmp/leak: a command line
/// holding `$NEEDLE` (the launcher's argv), and any process whose `environ` or `mem`
/// could be opened that is not one of the container's own programs. Recorded in
/// /tmp/seen: each sighting of a process still in the pre-exec window.
const WATCHER: &str = r#"
: > /tmp/leak; : > /tmp/seen; rounds=0
while [ ! -e /tmp/stop ]; do
  rounds=$((rounds + 1))
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    c=; m=
    { IFS= read -r c < $d/cmdline; } 2>/dev/null
    { IFS= read -r m < $d/comm; } 2>/dev/null
    case $c in *"$NEEDLE"*) echo "cmdline $p [$m] $c" >> /tmp/leak;; esac
    [ "$m" = tasksandbox-exe ] && echo "$p" >> /tmp/seen
    for f in environ mem; do
      if { true < $d/$f; } 2>/dev/null; then
        m2=; { IFS= read -r m2 < $d/comm; } 2>/dev/null
        case $m2 in true|sh|sleep|cat|touch|'') ;; *) echo "$f $p [$m2]" >> /tmp/leak;; esac
      fi
    done
  done
done
echo $rounds > /tmp/rounds
exec sleep 1000
"#;

/// The launcher's argv[0] without its directory: what its command line would show.
fn needle() -> String {
    let argv0 = std::env::args().next().expect("argv[0]");
    let name = std::path::Path::new(&argv0)
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    assert!(name.len() >= 6, "{name}");
    name
}

/// Execs `/bin/true` into `target` from two threads, 1000 times and on until the
/// watcher in `watcher` has seen the pre-exec window 20 times (or 3000 execs), then
/// returns what it found.
fn hammer(task: &RunningTask, target: &str, watcher: &str) -> (String, usize, usize) {
    wait_for(task, "the watcher", |t| {
        t.exec(watcher, ["/bin/cat", "/tmp/seen"])
            .is_ok_and(|o| o.status.success())
    });
    let mut execs = 0;
    let mut seen = 0;
    while execs < 1000 || (execs < 3000 && seen < 20) {
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let out = task.exec(target, ["/bin/true"]).expect("exec /bin/true");
                        assert!(out.status.success(), "{}", out.status);
                    }
                });
            }
        });
        execs += 100;
        seen = exec_sh(task, watcher, "cat /tmp/seen").lines().count();
    }
    exec_sh(task, watcher, "touch /tmp/stop");
    wait_for(task, "the watcher to stop", |t| {
        t.exec(watcher, ["/bin/cat", "/tmp/rounds"])
            .is_ok_and(|o| o.status.success())
    });
    let rounds = exec_sh(task, watcher, "cat /tmp/rounds");
    eprintln!(
        "{execs} execs; the watcher looked {} times and saw the pre-exec window {seen} times",
        rounds.trim()
    );
    let leak = exec_sh(task, watcher, "cat /tmp/leak");
    let lines: Vec<&str> = leak.lines().collect();
    let shown = lines
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let summary = match lines.len() {
        0 => String::new(),
        n => format!("{n} sightings, first: {shown}"),
    };
    (summary, execs, seen)
}

fn watcher(name: &str) -> Container {
    Container::new(name)
        .command(["/bin/sh", "-c", WATCHER])
        .capabilities(Capabilities::fargate_default().with_sys_ptrace())
        .env("NEEDLE", needle())
}

#[test]
fn the_pre_exec_window_shows_nothing_of_the_launcher() {
    if !can_start_tasks() {
        return;
    }
    // Root in the container, with SYS_PTRACE: the strongest observer a task can hold,
    // looking at processes exec'd into its own container.
    let task = TaskSandbox::builder()
        .container(watcher("app"))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (leak, execs, seen) = hammer(&task, "app", "app");
    assert_eq!(leak, "", "seen from inside during {execs} execs");
    // The watcher really looked at exec'd processes before they exec'd.
    assert!(
        seen >= 1,
        "the pre-exec window was never seen in {execs} execs"
    );
}

#[test]
fn a_sibling_with_sys_ptrace_sees_nothing_of_the_launcher_either() {
    if !can_start_tasks() {
        return;
    }
    // pid_mode = task: processes exec'd into `target` are visible to `watcher`.
    let task = TaskSandbox::builder()
        .pid_mode(PidMode::Task)
        .container(Container::new("target").command(["/bin/sleep", "1000"]))
        .container(watcher("watcher").depends_on("target", Condition::Start))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (leak, execs, seen) = hammer(&task, "target", "watcher");
    assert_eq!(leak, "", "seen from the sibling during {execs} execs");
    assert!(
        seen >= 1,
        "the pre-exec window was never seen in {execs} execs"
    );
}

/// Runs `f` on another thread and gives its result, failing after 20 s.
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("it did not return within 20 s")
}

#[test]
fn exec_returns_when_its_process_exits_with_everything_it_wrote() {
    if !can_start_tasks() {
        return;
    }
    let task = std::sync::Arc::new(
        TaskSandbox::builder()
            .container(Container::new("app").command(["/bin/sleep", "1000"]))
            .build()
            .unwrap()
            .start()
            .unwrap(),
    );
    // More than a pipe holds, then a background child that keeps both pipes open for
    // far longer than the test waits.
    let t = std::sync::Arc::clone(&task);
    let out: Output = within_20s(move || {
        t.exec(
            "app",
            [
                "/bin/sh",
                "-c",
                "head -c 300000 /dev/zero | tr '\\0' a; echo; echo to-stderr >&2; \
                 sleep 1000 & exit 5",
            ],
        )
        .unwrap()
    });
    assert_eq!(out.status, tasksandbox::ExitStatus::Exited(5));
    assert_eq!(out.stdout.len(), 300_001);
    assert!(out.stdout[..300_000].iter().all(|&b| b == b'a'));
    assert_eq!(text(&out.stderr), "to-stderr\n");
    // The background child was left running, as the shell asked.
    let left = exec_sh(&task, "app", LIVE_SLEEPS);
    assert_eq!(left.trim(), "2", "the workload and the background sleep");
}

#[test]
fn a_health_check_that_backgrounds_a_child_is_judged_on_its_own_exit() {
    if !can_start_tasks() {
        return;
    }
    let task = TaskSandbox::builder()
        .container(
            Container::new("app")
                .command(["/bin/sleep", "1000"])
                .health_check(
                    HealthCheck::new(["/bin/sh", "-c", "sleep 1000 & exit 0"])
                        .interval(Duration::from_millis(50))
                        .timeout(Duration::from_secs(2))
                        .retries(1),
                ),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the container to be healthy", |t| {
        t.health("app") == Some(Health::Healthy)
    });
}

/// How many `sleep` processes of the container are alive (not zombies).
const LIVE_SLEEPS: &str = "n=0; for f in /proc/[0-9]*/stat; do \
    { read -r l < $f; } 2>/dev/null; case $l in *'(sleep) '[RSD]*) n=$((n + 1));; esac; \
    done; echo $n";

#[test]
fn a_health_check_past_its_timeout_is_killed_with_its_process_group() {
    if !can_start_tasks() {
        return;
    }
    let mut task = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            // Not essential: it stays while unhealthy. No sleep of its own.
            Container::new("app")
                .command(["/bin/sh", "-c", "exec tail -f /dev/null"])
                .essential(false)
                .health_check(
                    HealthCheck::new(["/bin/sh", "-c", "sleep 1001 & sleep 1001"])
                        .interval(Duration::from_millis(100))
                        .timeout(Duration::from_millis(300))
                        .retries(5),
                ),
        )
        .container(Container::new("main").command(["/bin/sleep", "1000"]))
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for(&task, "the container to turn unhealthy", |t| {
        t.health("app") == Some(Health::Unhealthy)
    });
    // Five checks have timed out; each left a background sleep unless its group was
    // killed. At most the one check now running may have its two.
    // (Killed ones stay zombies: the workload, pid 1 there, reaps nothing.)
    let sleeps: usize = exec_sh(&task, "app", LIVE_SLEEPS).trim().parse().unwrap();
    assert!(sleeps <= 2, "{sleeps} sleeps left by timed-out checks");
    task.kill().unwrap();
    let exit = task.wait().unwrap();
    assert_eq!(exit.reason, StopReason::Requested);
    assert!(matches!(
        task.state("app"),
        Some(ContainerState::Exited(_) | ContainerState::NotStarted)
    ));
}

/// The fields of /proc/<pid>/status as a map.
fn status_of(pid: &str) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_exec_helper_holds_nothing_but_its_socket_and_the_processes_pidfd() {
    if !can_start_tasks() {
        return;
    }
    let task = std::sync::Arc::new(
        TaskSandbox::builder()
            .container(Container::new("app").command(["/bin/sleep", "1000"]))
            .build()
            .unwrap()
            .start()
            .unwrap(),
    );
    let t = std::sync::Arc::clone(&task);
    let running = std::thread::spawn(move || t.exec("app", ["/bin/sleep", "3.217"]).unwrap());
    // The exec'd process, seen from the host, and its parent, the helper.
    let deadline = Instant::now() + Duration::from_secs(20);
    let process = loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"/bin/sleep\x003.217\x00")
        });
        if let Some(e) = found {
            break e.file_name().to_string_lossy().into_owned();
        }
        assert!(Instant::now() < deadline, "the exec'd process never showed");
        std::thread::sleep(Duration::from_millis(5));
    };
    let helper = status_of(&process)["PPid"].clone();
    let status = status_of(&helper);
    assert_eq!(status["PPid"], std::process::id().to_string());
    assert_eq!(status["Name"], "tasksandbox-exe");
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap();
    let shown = String::from_utf8_lossy(&cmdline);
    assert_eq!(shown.trim_end_matches('\0'), "tasksandbox-exec");
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{helper}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().unwrap() > 2)
        .map(|e| {
            std::fs::read_link(e.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .map(|l| {
            // A pidfd reads `anon_inode:[pidfd]`, or `pidfd:[..]` on kernels with pidfs.
            if l == "anon_inode:[pidfd]" || l.starts_with("pidfd:") {
                "pidfd".to_string()
            } else {
                l.split(':').next().unwrap_or_default().to_string()
            }
        })
        .collect();
    fds.sort();
    assert_eq!(fds, ["pidfd", "socket"], "beyond 0-2");
    let out = running.join().unwrap();
    assert!(out.status.success(), "{}", out.status);
    // And the exec'd program itself has its standard streams only.
    let out = exec_sh(&task, "app", "ls /proc/self/fd");
    assert_eq!(out, "0\n1\n2\n3\n", "3 is the directory ls reads");
}

/// Tries to reach process `$1` (named `$2` in the output) the ways a tracer would:
/// open its environment and memory, list its root, read where a descriptor leads.
const REACH: &str = r#"reach() {
  for f in environ mem; do
    if { true < /proc/$1/$f; } 2>/dev/null; then echo "$2 $f=open"; else echo "$2 $f=denied"; fi
  done
  if ls /proc/$1/root/ >/dev/null 2>&1; then echo "$2 root=open"; else echo "$2 root=denied"; fi
  if readlink /proc/$1/fd/0 >/dev/null 2>&1; then echo "$2 fd=open"; else echo "$2 fd=denied"; fi
}
find() {
  for p in /proc/[0-9]*; do
    [ "$({ tr '\0' ' ' < $p/cmdline; } 2>/dev/null)" = "/bin/sleep $1 " ] && echo ${p#/proc/}
  done
}
sibling=$(find 1234.5); test -n "$sibling" || exit 9
reach $sibling sibling
reach 1 init
sleep 100 & reach $! own-child; kill $!
"#;

#[test]
fn an_exec_into_a_landlocked_container_reaches_no_more_than_its_workload() {
    if !can_start_tasks() {
        return;
    }
    // pid_mode = task, and no SYS_PTRACE: the workload runs in a Landlock domain of
    // its own. A process exec'd into it gets a new domain, not the workload's.
    let task = TaskSandbox::builder()
        .pid_mode(PidMode::Task)
        .container(Container::new("sibling").command(["/bin/sleep", "1234.5"]))
        .container(
            Container::new("app")
                .command([
                    "/bin/sh",
                    "-c",
                    &format!("{{ {REACH} }} > /tmp/r.tmp 2>&1; mv /tmp/r.tmp /tmp/report; exec /bin/sleep 4321.5"),
                ])
                .depends_on("sibling", Condition::Start),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert!(task
        .report()
        .containers
        .iter()
        .any(|c| c.name == "app" && c.landlock));
    wait_for(&task, "the workload's report", |t| {
        t.exec("app", ["/bin/test", "-e", "/tmp/report"])
            .is_ok_and(|o| o.status.success())
    });
    let workload = exec_sh(&task, "app", "cat /tmp/report");
    let exec = exec_sh(
        &task,
        "app",
        &format!("{REACH} workload=$(find 4321.5); test -n \"$workload\" || exit 8; reach $workload workload"),
    );
    let denied = |who: &str| {
        ["environ", "mem", "root", "fd"]
            .iter()
            .map(|what| format!("{who} {what}=denied\n"))
            .collect::<String>()
    };
    let open = denied("own-child").replace("denied", "open");
    // The workload: its own child is in reach (so the probe can tell), its sibling
    // and the init are not.
    assert_eq!(
        workload,
        format!("{}{}{open}", denied("sibling"), denied("init"))
    );
    // The exec'd process reaches exactly that, and not the workload either: the two
    // are in different domains, so each is out of the other's reach.
    assert_eq!(exec, format!("{workload}{}", denied("workload")));
}

/// A `Duration` as `{:.0?}` prints it (`96ms`, `2s`), back as a `Duration`.
fn parse_debug_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("{text}"));
    let per_second = match unit {
        "s" => 1.0,
        "ms" => 1e3,
        "µs" => 1e6,
        "ns" => 1e9,
        _ => panic!("unit of {text}"),
    };
    Duration::from_secs_f64(number / per_second)
}

#[test]
fn the_exec_example_prints_the_output_and_status_then_stops_within_the_grace() {
    if !can_start_tasks() {
        return;
    }
    // What `cargo run --example exec -- COMMAND` runs.
    let out = std::process::Command::new(common::example("exec"))
        .args([
            "/bin/sh",
            "-c",
            "echo hello from the container; id -u; exit 3",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(
        lines[..3],
        ["hello from the container", "0", "exec exit status: 3"]
    );
    // `task stopped in 96ms (grace 5s): stop requested; app: exit code 0`: the
    // workload ended on SIGTERM, before the grace was up.
    let rest = lines[3]
        .strip_prefix("task stopped in ")
        .unwrap_or_else(|| panic!("{}", lines[3]));
    let (took, rest) = rest.split_once(" (grace ").unwrap();
    let (grace, rest) = rest.split_once("): ").unwrap();
    assert_eq!(rest, "stop requested; app: exit code 0");
    assert!(
        parse_debug_duration(took) < parse_debug_duration(grace),
        "{}",
        lines[3]
    );

    // Its default command shows the confinement.
    let out = std::process::Command::new(common::example("exec"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in ["NoNewPrivs:\t1", "Seccomp:\t2", "exec exit status: 0"] {
        assert!(stdout.lines().any(|l| l == line), "{line} in {stdout}");
    }
}
