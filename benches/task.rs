//! Start-to-stopped of a task of one app and two sidecars, against baselines measured
//! in the same run.
//!
//! ```text
//! cargo build --release --examples && cargo bench --bench task
//! ```
//!
//! Variants, in interleaved blocks of 20 so machine noise hits all of them alike:
//! - `3 processes`: three plain processes (`std::process::Command`), each the same
//!   program as the task's containers, started, sent SIGTERM and waited for: what
//!   running the workloads costs with no isolation at all.
//!
//! In every variant a workload counts as started once it handles SIGTERM (read from
//! its `/proc/<pid>/status`), so that every stop is a clean one;
//! - `1 container`: a task of the app alone, `start()` then `stop(grace)`;
//! - `1 container + storage`: the same with the task's ephemeral storage (on disk, the
//!   default 20 GiB) mounted in it: what making the volume (sparse file, loop device,
//!   `mkfs.ext4`, mount) and its tear-down add;
//! - `1 container + tmpfs`: the same with in-memory storage (64 MiB) instead;
//! - `app + 2 sidecars`: the app (an HTTP server on 127.0.0.1) and two sidecars that
//!   depend on its start, `start()` (which returns once all three run) then
//!   `stop(grace)` (SIGTERM to each; every workload exits on it).
//!
//! The workloads are the `sidecar` example (`serve`, `idle`). Needs root. Prints
//! median and p90 per variant and the ratios the README reports. A workload that does
//! not handle SIGTERM within 10 s fails the run (exit status 1) instead of hanging it.
//! `TASKSANDBOX_BENCH_ITERS` sets the iteration count (default 200).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tasksandbox::{Condition, Container, EphemeralStorage, TaskSandbox, TaskSize, Volume};

const GRACE: Duration = Duration::from_secs(10);
/// How long a workload may take to be ready (handle SIGTERM) before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Waits until process `pid` handles SIGTERM (its `SigCgt` has bit 15), so the stop
/// that follows is a clean one in every variant; fails after [`READY_TIMEOUT`] (the
/// process died, or never installs the handler).
fn wait_handling_term(pid: u32) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (libc::SIGTERM - 1)) != 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "pid {pid} did not handle SIGTERM within {READY_TIMEOUT:?} ({})",
                if status.is_empty() {
                    "it is gone"
                } else {
                    "it is still running"
                }
            ));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("task: bench");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("task bench: needs root; skipped");
        return;
    }
    let iters: usize = std::env::var("TASKSANDBOX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let program = target_dir().join("examples/sidecar");
    assert!(
        program.exists(),
        "{} is missing: run `cargo build --release --examples` first",
        program.display()
    );
    let container = |name: &str, role: &str| {
        Container::new(name)
            .volume(Volume::bind(&program, "/sidecar"))
            .command(["/sidecar", role])
    };
    let size = TaskSize::fargate(1024, 2048).expect("fargate size");
    let one = TaskSandbox::builder()
        .size(size)
        .container(container("app", "serve"))
        .build()
        .expect("build");
    let one_storage = TaskSandbox::builder()
        .size(size)
        .container(container("app", "serve").ephemeral_storage_at("/data"))
        .build()
        .expect("build");
    let one_tmpfs = TaskSandbox::builder()
        .size(size)
        .ephemeral_storage(EphemeralStorage::in_memory_mib(64).expect("size"))
        .container(container("app", "serve").ephemeral_storage_at("/data"))
        .build()
        .expect("build");
    let three = TaskSandbox::builder()
        .size(size)
        .container(container("app", "serve"))
        .container(
            container("envoy", "idle")
                .essential(false)
                .depends_on("app", Condition::Start),
        )
        .container(
            container("logs", "idle")
                .essential(false)
                .depends_on("app", Condition::Start),
        )
        .build()
        .expect("build");

    let plain = || -> Result<Duration, String> {
        let started = Instant::now();
        let children: Vec<_> = ["serve", "idle", "idle"]
            .iter()
            .map(|role| {
                Command::new(&program)
                    .arg(role)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let ready = children
            .iter()
            .try_for_each(|child| wait_handling_term(child.id()));
        for mut child in children {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let signal = if ready.is_ok() {
                nix::sys::signal::Signal::SIGTERM
            } else {
                nix::sys::signal::Signal::SIGKILL
            };
            let _ = nix::sys::signal::kill(pid, signal);
            child.wait().expect("wait");
        }
        ready.map(|()| started.elapsed())
    };
    let task = |sandbox: &TaskSandbox| -> Result<Duration, String> {
        let started = Instant::now();
        let mut task = sandbox.start().map_err(|e| e.chain())?;
        for name in sandbox.container_names() {
            match task.state(name) {
                Some(tasksandbox::ContainerState::Running { pid }) => {
                    // On failure, dropping the task kills it.
                    wait_handling_term(pid).map_err(|e| format!("container {name}: {e}"))?
                }
                other => return Err(format!("{name} is not running: {other:?}")),
            }
        }
        let exit = task.stop(GRACE).map_err(|e| e.chain())?;
        let took = started.elapsed();
        if !exit
            .containers
            .iter()
            .all(|c| c.status.is_some_and(|s| s.success()))
        {
            return Err(format!("every workload exits 0 on SIGTERM: {exit}"));
        }
        Ok(took)
    };

    let names = [
        "3 processes",
        "1 container",
        "1 container + storage",
        "1 container + tmpfs",
        "app + 2 sidecars",
    ];
    let run = |variant: usize| match variant {
        0 => plain(),
        1 => task(&one),
        2 => task(&one_storage),
        3 => task(&one_tmpfs),
        _ => task(&three),
    };
    let sample = |variant: usize| {
        run(variant).unwrap_or_else(|err| {
            eprintln!("task bench: FAILED in `{}`: {err}", names[variant]);
            std::process::exit(1);
        })
    };
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    // Warm-up: page cache, the seccomp cache, the runtime directory.
    for variant in 0..names.len() {
        sample(variant);
    }
    let block = 20;
    while samples[0].len() < iters {
        for (i, s) in samples.iter_mut().enumerate() {
            for _ in 0..block {
                s.push(sample(i));
            }
        }
    }
    let base = stats(samples[0].clone()).0;
    println!(
        "{:<24} {:>10} {:>10} {:>8}",
        "variant", "median ms", "p90 ms", "ratio"
    );
    for (name, s) in names.iter().zip(samples) {
        let (median, p90) = stats(s);
        println!(
            "{name:<24} {median:>10.2} {p90:>10.2} {:>7.2}x",
            median / base
        );
    }
}
