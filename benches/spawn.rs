//! Spawn-to-exit of `/bin/true` under full lockdown, against baselines measured in the
//! same run.
//!
//! ```text
//! cargo build --release --examples && cargo bench --bench spawn
//! ```
//!
//! Variants, run round-robin so machine noise hits all of them alike:
//! - `fork+exec+wait`: `std::process::Command` running `/bin/true`, nothing else;
//! - `C baseline`: benches/baseline.c, a C program doing only clone into the same
//!   namespaces, a cgroup with the same limits, the id maps and exec (compiled here
//!   with `cc -O2`), as a whole process;
//! - `runner`: the `run` example (whole process: parse, build, start, wait);
//! - `in-process`: one reused `TaskSandbox`, `status()` per iteration.
//!
//! Needs root (the baseline and the tasks make cgroups). Prints median and p90 per
//! variant and the ratios the README reports. `TASKSANDBOX_BENCH_ITERS` sets the
//! iteration count (default 300).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tasksandbox::{Container, TaskSandbox, TaskSize};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn compile_baseline(out: &Path) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline.c");
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("cc failed on {}", src.display()))
}

fn cgroup_version() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "v1"
    }
}

fn run_quiet(cmd: &mut Command) {
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

struct Variant<'a> {
    name: &'static str,
    run: Box<dyn FnMut() + 'a>,
    samples: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("spawn: bench");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("spawn bench: needs root (cgroups and the C baseline); skipped");
        return;
    }
    let iters: usize = std::env::var("TASKSANDBOX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let target = target_dir();
    let baseline = target.join("tasksandbox-baseline");
    compile_baseline(&baseline).expect("compile benches/baseline.c");
    let runner = target.join("examples/run");
    assert!(
        runner.exists(),
        "{} is missing: run `cargo build --release --examples` first",
        runner.display()
    );
    let sandbox = TaskSandbox::builder()
        .size(TaskSize::fargate(1024, 2048).expect("fargate size"))
        .container(Container::new("bench").command(["/bin/true"]))
        .build()
        .expect("build the task");
    let cg = cgroup_version();

    let mut variants = vec![
        Variant {
            name: "fork+exec+wait /bin/true",
            run: Box::new(|| run_quiet(&mut Command::new("/bin/true"))),
            samples: Vec::new(),
        },
        Variant {
            name: "C baseline: clone(ns)+cgroup+exec",
            run: Box::new(|| run_quiet(Command::new(&baseline).args([cg, "/bin/true"]))),
            samples: Vec::new(),
        },
        Variant {
            name: "runner example, whole process",
            run: Box::new(|| {
                run_quiet(Command::new(&runner).args([
                    "--cpu",
                    "1024",
                    "--memory",
                    "2048",
                    "--",
                    "/bin/true",
                ]))
            }),
            samples: Vec::new(),
        },
        Variant {
            name: "in-process, reused TaskSandbox",
            run: Box::new(|| assert!(sandbox.status().expect("task runs").success())),
            samples: Vec::new(),
        },
    ];
    for variant in &mut variants {
        for _ in 0..20 {
            (variant.run)();
        }
    }
    for _ in 0..iters {
        for variant in &mut variants {
            let start = Instant::now();
            (variant.run)();
            variant.samples.push(start.elapsed());
        }
    }
    println!("spawn-to-exit of /bin/true, {iters} iterations each, round-robin (cgroup {cg})");
    println!("{:<36} {:>12} {:>12}", "variant", "median", "p90");
    let mut medians = Vec::new();
    for variant in &mut variants {
        variant.samples.sort();
        let median = percentile(&variant.samples, 0.5);
        let p90 = percentile(&variant.samples, 0.9);
        medians.push(median);
        println!(
            "{:<36} {:>9.0} µs {:>9.0} µs",
            variant.name,
            median.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6
        );
    }
    let ratio = |a: usize, b: usize| medians[a].as_secs_f64() / medians[b].as_secs_f64();
    println!(
        "runner / C baseline:          {:.2}x (target <= 1.3x)",
        ratio(2, 1)
    );
    println!("in-process / C baseline:      {:.2}x", ratio(3, 1));
    println!("runner / fork+exec+wait:      {:.2}x", ratio(2, 0));
}
