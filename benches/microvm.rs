//! Boot-to-exit of a QEMU `microvm` guest, jailed by the crate against the same QEMU
//! command run directly, interleaved in one run.
//!
//! ```sh
//! scripts/fetch-guest-kernel.sh && cargo bench --bench microvm [-- RUNS]
//! ```
//!
//! Each run boots the guest kernel with a busybox initramfs whose `/init` runs `true`
//! and powers off. "jailed" is a whole [`MicroVm::run`]: the launch's hooks (resolving
//! the VMM's libraries for its minimal root, the jail directory), the jail task
//! (namespaces, cgroup, pivot_root into that root, seccomp), QEMU until it exits, and
//! the cleanup. "unjailed" is the plan's command line with the jail's paths replaced
//! by the host's (the run directory, where the QMP socket goes, by a scratch
//! directory), spawned with `std::process::Command`, its serial console read to the
//! end. Both check the guest's exit marker, so only real boots count. The guest
//! kernel is `vmlinuz` in `$TASKSANDBOX_GUEST_DIR` (by default
//! /var/cache/tasksandbox/guest), where the script puts it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tasksandbox::microvm::guest::{guest_dir, parse_console, CommandInitramfs};
use tasksandbox::microvm::{detect_accelerator, MicroVm, Qemu, VmSpec, Vmm, JAIL_RUN_DIR};
use tasksandbox::TaskSize;

fn spec(kernel: &Path, initrd: &Path) -> VmSpec {
    let spec = VmSpec::new(
        "bench",
        kernel,
        TaskSize::custom(1024, 256).expect("valid size"),
    )
    .kernel_arg("quiet")
    .kernel_arg("panic=-1")
    .accelerator(detect_accelerator().accelerator);
    CommandInitramfs::new("/bin/busybox", ["true"])
        .boot(spec, initrd)
        .expect("initramfs")
}

fn jailed(spec: &VmSpec) -> Duration {
    let start = Instant::now();
    let exit = MicroVm::new(Qemu::new(), spec.clone())
        .expect("plans")
        .timeout(Duration::from_secs(120))
        .run()
        .expect("the jailed VM runs");
    let elapsed = start.elapsed();
    let result = parse_console(&exit.console).expect("the guest reported");
    assert_eq!(result.exit_code, 0);
    elapsed
}

/// The plan's command with each jail path replaced by the host path bound there, and
/// the run directory by `run`.
fn unjailed_command(spec: &VmSpec, run: &Path) -> Vec<String> {
    let plan = Qemu::new().plan(spec).expect("plans");
    plan.argv()
        .into_iter()
        .map(|arg| {
            let mut arg = arg;
            for bind in &plan.binds {
                let jail = bind.jail.to_string_lossy();
                let host = bind.host.to_string_lossy();
                if arg == jail {
                    arg = host.into_owned();
                }
            }
            arg.replace(&format!("{JAIL_RUN_DIR}/"), &format!("{}/", run.display()))
        })
        .collect()
}

fn unjailed(argv: &[String]) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu starts");
    let mut console = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut console).expect("console");
    }
    let status = child.wait().expect("qemu exits");
    let elapsed = start.elapsed();
    assert!(status.success(), "{status}");
    let result = parse_console(&console).expect("the guest reported");
    assert_eq!(result.exit_code, 0);
    elapsed
}

/// Min, median, p90 and max, in seconds.
fn stats(mut samples: Vec<Duration>) -> [f64; 4] {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i].as_secs_f64()
    };
    [at(0.0), at(0.5), at(0.9), at(1.0)]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the jailed boots need root");
        return;
    }
    let kernel = guest_dir().join("vmlinuz");
    if !kernel.is_file() {
        println!(
            "skipped: no guest kernel at {} (scripts/fetch-guest-kernel.sh)",
            kernel.display()
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tasksandbox-microvm-bench")
        .tempdir()
        .expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let initrd = dir.path().join("initrd.cpio");
    let spec = spec(&kernel, &initrd);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("run dir");
    let argv = unjailed_command(&spec, &run);
    println!("accelerator: {}", detect_accelerator());
    println!("command: {}", argv.join(" "));

    // One of each first, untimed: page cache, QEMU's first start.
    jailed(&spec);
    unjailed(&argv);
    let (mut jail_times, mut plain_times) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if i % 2 == 0 {
            jail_times.push(jailed(&spec));
            plain_times.push(unjailed(&argv));
        } else {
            plain_times.push(unjailed(&argv));
            jail_times.push(jailed(&spec));
        }
    }
    let jailed = stats(jail_times);
    let plain = stats(plain_times);
    println!("{runs} boots of each, interleaved; boot-to-exit in seconds");
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>8}",
        "variant", "min", "median", "p90", "max"
    );
    for (name, [min, median, p90, max]) in [("unjailed", plain), ("jailed", jailed)] {
        println!("{name:<10} {min:>8.3} {median:>8.3} {p90:>8.3} {max:>8.3}");
    }
    println!(
        "jailed / unjailed: {:.3}x (median), {:.3}x (min)",
        jailed[1] / plain[1],
        jailed[0] / plain[0]
    );
}
