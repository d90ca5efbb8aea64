//! What the sweep of stale task cgroups costs a start, against the start itself.
//!
//! ```text
//! cargo bench --bench sweep
//! ```
//!
//! Each start sweeps its cgroup parent: fully at the first start of a process (the
//! parent listed in every hierarchy), quickly after (listed in one hierarchy). The
//! variants, interleaved so machine noise hits all of them alike, time the public
//! full sweep (`sweep_stale`) on parents made for the purpose:
//! - `full, 4 own tasks`: a parent holding 4 task cgroups of this live process in
//!   every hierarchy, skipped without a syscall: the usual case, nothing stale;
//! - `one hierarchy, 4 own tasks`: the same parent present in one hierarchy only,
//!   which is what a quick sweep lists;
//! - `full, 1000 own tasks` and `one hierarchy, 1000 own tasks`: the same with the
//!   1000 task cgroups of a launcher running 1000 tasks at once;
//! - `full, 50 live launchers`: 50 task cgroups of another live launcher (pid 1),
//!   one `kill(pid, 0)` each;
//! - `full, 1 stale task`: a dead launcher's task cgroup with two container cgroups
//!   to remove (made again before each sample, outside the timing);
//! - `start + wait`: a one-container task running `/bin/true`, `status()`, whose
//!   start makes a quick sweep of the default parent.
//!
//! Needs root and a cgroup filesystem; works below `tasksandbox-bench-<pid>` (removed
//! at the end), except the start. `TASKSANDBOX_BENCH_ITERS` sets the iteration count
//! (default 300).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tasksandbox::{Container, TaskSandbox};

fn hierarchy_roots() -> Vec<PathBuf> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    ["cpu", "cpuacct", "memory", "pids"]
        .iter()
        .map(|h| Path::new("/sys/fs/cgroup").join(h))
        .filter(|p| p.exists())
        .collect()
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(v[v.len() / 2]), us(v[v.len() * 9 / 10]))
}

/// Directories the benchmark made, removed (deepest first) when it is dropped.
struct Made(Vec<PathBuf>);

impl Made {
    fn mkdir(&mut self, roots: &[PathBuf], parent: &Path, names: &[String]) {
        for root in roots {
            for name in names {
                let mut dir = root.clone();
                for part in parent.join(name).components() {
                    dir.push(part);
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).expect("mkdir cgroup");
                        self.0.push(dir.clone());
                    }
                }
            }
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        self.0
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the sweep benchmark needs root");
        return;
    }
    let iters: usize = std::env::var("TASKSANDBOX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let roots = hierarchy_roots();
    let one = &roots[roots.len() - 1..];
    let me = std::process::id();
    let base = PathBuf::from(format!("tasksandbox-bench-{me}"));
    let own = |n: usize| -> Vec<String> { (0..n).map(|i| format!("{me}-0000abcd-{i}")).collect() };
    let mut made = Made(Vec::new());
    let parents: Vec<(&str, PathBuf)> = ["full4", "one4", "full1000", "one1000", "live50", "stale"]
        .iter()
        .map(|p| (*p, base.join(p)))
        .collect();
    made.mkdir(&roots, &parents[0].1, &own(4));
    made.mkdir(one, &parents[1].1, &own(4));
    made.mkdir(&roots, &parents[2].1, &own(1000));
    made.mkdir(one, &parents[3].1, &own(1000));
    let live: Vec<String> = (0..50).map(|i| format!("1-0000abcd-{i}")).collect();
    made.mkdir(&roots, &parents[4].1, &live);
    // Above PID_MAX_LIMIT: a launcher that cannot be alive.
    let stale = [
        "4194305-0000abcd-0/ctr-app".to_string(),
        "4194305-0000abcd-0/ctr-side".to_string(),
    ];
    made.mkdir(&roots, &parents[5].1, &[String::new()]);
    let sandbox = TaskSandbox::builder()
        .container(Container::new("true").command(["/bin/true"]))
        .build()
        .expect("task builds");
    // The process's first start makes the full sweep; the timed ones are quick.
    sandbox.status().expect("task runs");

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); parents.len() + 1];
    for _ in 0..iters {
        for (i, (name, parent)) in parents.iter().enumerate() {
            if *name == "stale" {
                for root in &roots {
                    for d in &stale {
                        std::fs::create_dir_all(root.join(parent).join(d)).expect("mkdir");
                    }
                }
            }
            let t = Instant::now();
            let swept = tasksandbox::sweep_stale(parent).expect("sweep");
            samples[i].push(t.elapsed());
            let expect = if *name == "stale" { roots.len() } else { 0 };
            assert_eq!(swept.removed.len(), expect, "{name}");
        }
        let t = Instant::now();
        let status = sandbox.status().expect("task runs");
        samples[parents.len()].push(t.elapsed());
        assert!(status.success());
    }
    drop(made);

    println!(
        "{} hierarchies ({}), {iters} iterations",
        roots.len(),
        if roots.len() == 1 {
            "cgroup v2"
        } else {
            "cgroup v1"
        }
    );
    println!("{:<34} {:>10} {:>10}", "variant", "median µs", "p90 µs");
    let names = [
        "full, 4 own tasks",
        "one hierarchy, 4 own tasks",
        "full, 1000 own tasks",
        "one hierarchy, 1000 own tasks",
        "full, 50 live launchers",
        "full, 1 stale task",
        "start + wait (/bin/true)",
    ];
    let results: Vec<(f64, f64)> = samples.into_iter().map(stats).collect();
    for (name, (median, p90)) in names.iter().zip(&results) {
        println!("{name:<34} {median:>10.1} {p90:>10.1}");
    }
    let start = results[names.len() - 1].0;
    println!(
        "of a start: quick sweep {:.2}% (4 tasks), {:.2}% (1000 tasks); full sweep {:.2}%",
        results[1].0 / start * 100.0,
        results[3].0 / start * 100.0,
        results[0].0 / start * 100.0,
    );
}
