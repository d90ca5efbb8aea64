//! Spawn-to-exit of `/bin/true` under full lockdown, against baselines measured in the
//! same run.
//!
//! ```text
//! cargo build --release --examples && cargo bench --bench spawn
//! ```
//!
//! Variants, run in interleaved blocks of 25 so machine noise hits all of them alike:
//! - `fork+exec+wait`: `std::process::Command` running `/bin/true`, nothing else;
//! - `C baseline`: benches/baseline.c, a C program doing only clone into the same
//!   namespaces, a cgroup with the same limits, the id maps and exec (compiled here
//!   with `cc -O2`), as a whole process;
//! - `runner`: the `run` example (whole process: parse, build, start, wait);
//! - `in-process`: one reused `TaskSandbox`, `status()` per iteration;
//! - for reference, where installed: bubblewrap (`bwrap --unshare-all`, binding `/usr`
//!   read-only, with `/proc` and `/dev`; it applies neither cgroups nor seccomp), runc
//!   and crun (`run` of an OCI bundle whose root binds `/usr` read-only); a runtime
//!   that cannot run on the host (crun refuses cgroup v1 hybrid layouts) is skipped
//!   with a note.
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
    let bundle = tempfile::tempdir().expect("bundle dir");

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
    let reference = reference_variants(bundle.path());
    variants.extend(reference);
    for variant in &mut variants {
        for _ in 0..20 {
            (variant.run)();
        }
    }
    // Blocks of consecutive runs per variant, the blocks interleaved: machine noise
    // hits every variant alike, and each variant runs after itself, so kernel state a
    // start leaves behind (the cgroup attach lock's RCU grace period, for one) favours
    // none of them.
    const BLOCK: usize = 25;
    let rounds = iters.div_ceil(BLOCK);
    for _ in 0..rounds {
        for variant in &mut variants {
            for _ in 0..BLOCK {
                let start = Instant::now();
                (variant.run)();
                variant.samples.push(start.elapsed());
            }
        }
    }
    println!(
        "spawn-to-exit of /bin/true, {} iterations each in blocks of {BLOCK} (cgroup {cg})",
        rounds * BLOCK
    );
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
    for (i, variant) in variants.iter().enumerate().skip(4) {
        println!("{} / runner: {:.2}x", variant.name, ratio(i, 2));
    }
}

fn installed(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// An OCI bundle running /bin/true on a root that binds the host's /usr read-only.
fn oci_bundle(dir: &Path, runtime: &Path) -> Option<()> {
    let rootfs = dir.join("rootfs");
    for sub in ["usr", "proc", "dev", "sys"] {
        std::fs::create_dir_all(rootfs.join(sub)).ok()?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        let _ = std::os::unix::fs::symlink(target, rootfs.join(link));
    }
    let _ = std::fs::remove_file(dir.join("config.json"));
    let made = Command::new(runtime)
        .arg("spec")
        .current_dir(dir)
        .status()
        .ok()?;
    made.success().then_some(())?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let mut spec: serde_json::Value = serde_json::from_str(&text).ok()?;
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"] = serde_json::json!({"path": "rootfs", "readonly": true});
    spec["mounts"].as_array_mut()?.push(serde_json::json!(
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}
    ));
    std::fs::write(dir.join("config.json"), spec.to_string()).ok()
}

fn reference_variants(dir: &Path) -> Vec<Variant<'_>> {
    let mut out = Vec::new();
    if let Some(bwrap) = installed("bwrap") {
        out.push(Variant {
            name: "bubblewrap (no cgroup, no seccomp)",
            run: Box::new(move || {
                run_quiet(Command::new(&bwrap).args([
                    "--unshare-all",
                    "--die-with-parent",
                    "--ro-bind",
                    "/usr",
                    "/usr",
                    "--symlink",
                    "usr/bin",
                    "/bin",
                    "--symlink",
                    "usr/lib",
                    "/lib",
                    "--symlink",
                    "usr/lib64",
                    "/lib64",
                    "--symlink",
                    "usr/sbin",
                    "/sbin",
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "/bin/true",
                ]))
            }),
            samples: Vec::new(),
        });
    }
    let mut counter = 0u64;
    for (runtime, name) in [("runc", "runc run"), ("crun", "crun run")] {
        let Some(path) = installed(runtime) else {
            continue;
        };
        let bundle = dir.join(runtime);
        if std::fs::create_dir_all(&bundle).is_err() || oci_bundle(&bundle, &path).is_none() {
            eprintln!("spawn bench: could not make an OCI bundle for {runtime}; skipped");
            continue;
        }
        let id_prefix = format!("tasksandbox-bench-{runtime}-{}", std::process::id());
        let works = Command::new(&path)
            .args(["run", "-b"])
            .arg(&bundle)
            .arg(format!("{id_prefix}-probe"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match works {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                eprintln!(
                    "spawn bench: {runtime} cannot run here ({}); skipped",
                    why.trim()
                );
                continue;
            }
            Err(e) => {
                eprintln!("spawn bench: {runtime}: {e}; skipped");
                continue;
            }
        }
        out.push(Variant {
            name,
            run: Box::new(move || {
                counter += 1;
                let mut cmd = Command::new(&path);
                cmd.arg("run")
                    .arg("-b")
                    .arg(&bundle)
                    .arg(format!("{id_prefix}-{counter}"));
                run_quiet(&mut cmd)
            }),
            samples: Vec::new(),
        });
    }
    out
}
