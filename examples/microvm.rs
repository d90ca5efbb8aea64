//! Boots a Debian cloud kernel with a busybox initramfs in a jailed QEMU `microvm`,
//! runs a command inside the guest and prints its output and exit status.
//!
//! ```sh
//! scripts/fetch-guest-kernel.sh          # once: the kernel into $TASKSANDBOX_GUEST_DIR
//! cargo run --release --example microvm -- uname -a
//! ```
//!
//! Options (before the command): `--kernel PATH` (default `vmlinuz` in the guest
//! directory: `$TASKSANDBOX_GUEST_DIR`, else `/var/cache/tasksandbox/guest`),
//! `--busybox PATH` (default `/bin/busybox`, which must be static: Debian's
//! `busybox-static`), `--memory MIB` (256), `--cpu UNITS` (1024), `--timeout SECS`
//! (60). The guest boots within the spec's boot timeout (30 s) or the launch fails.
//! Exits with the guest command's status; 2 on errors, 124 when the VM was killed at
//! the timeout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tasksandbox::microvm::guest::{guest_dir, parse_console, CommandInitramfs, BEGIN_MARKER};
use tasksandbox::microvm::{detect_accelerator, Hook, MicroVm, Qemu, Stage, VmSpec};
use tasksandbox::TaskSize;

struct Args {
    kernel: PathBuf,
    busybox: PathBuf,
    memory: u64,
    cpu: u32,
    timeout: Duration,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        kernel: guest_dir().join("vmlinuz"),
        busybox: PathBuf::from("/bin/busybox"),
        memory: 256,
        cpu: 1024,
        timeout: Duration::from_secs(60),
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--kernel" => args.kernel = value("--kernel")?.into(),
            "--busybox" => args.busybox = value("--busybox")?.into(),
            "--memory" => {
                args.memory = value("--memory")?
                    .parse()
                    .map_err(|_| "--memory takes MiB")?
            }
            "--cpu" => {
                args.cpu = value("--cpu")?
                    .parse()
                    .map_err(|_| "--cpu takes CPU units")?
            }
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .map_err(|_| "--timeout takes seconds")?;
                args.timeout = Duration::from_secs(secs);
            }
            "--" => {
                args.command.extend(it.by_ref());
            }
            "-h" | "--help" => {
                return Err(
                    "usage: microvm [--kernel PATH] [--busybox PATH] [--memory MIB] \
                     [--cpu UNITS] [--timeout SECS] [--] CMD [ARGS...]"
                        .into(),
                )
            }
            _ => {
                args.command.push(arg);
                args.command.extend(it.by_ref());
            }
        }
    }
    if args.command.is_empty() {
        return Err("give the command to run in the guest (see --help)".into());
    }
    Ok(args)
}

/// `Key:\tvalue` of a /proc status file.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or("?")
}

/// The VMM's cgroup: the memory controller's on cgroup v1, the unified one on v2.
fn cgroup_of(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let line = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':').skip(1);
                parts.next().zip(parts.next())
            })
            .find(|(ctrl, _)| pred(ctrl))
            .map(|(_, path)| path.to_string())
    };
    line(&|c| c.split(',').any(|c| c == "memory"))
        .or_else(|| line(&|c| c.is_empty()))
        .unwrap_or_else(|| "?".into())
}

fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let accel = detect_accelerator();
    println!("accelerator: {accel}");

    let dir = tempfile_dir()?;
    let spec = VmSpec::new(
        "microvm-example",
        &args.kernel,
        TaskSize::custom(args.cpu, args.memory)?,
    )
    .kernel_arg("quiet")
    .kernel_arg("panic=-1")
    .accelerator(accel.accelerator);
    // The initrd, and the marker its /init prints once booted: the boot is bounded.
    let spec = CommandInitramfs::new(&args.busybox, args.command.clone())
        .boot(spec, &dir.join("initrd.cpio"))?;
    let mut vm = MicroVm::new(Qemu::new(), spec)?.timeout(args.timeout);
    vm.hooks_mut().insert_before(
        "wait-for-sockets",
        Hook::new("report-vmm", Stage::PostSpawn, |ctx| {
            if let Some(pid) = ctx.vmm_pid() {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let uid = field(&status, "Uid")
                    .split_whitespace()
                    .next()
                    .unwrap_or("?");
                println!(
                    "vmm: uid={uid} no_new_privs={} seccomp={} cgroup={}",
                    field(&status, "NoNewPrivs"),
                    field(&status, "Seccomp"),
                    cgroup_of(pid)
                );
            }
            Ok(())
        }),
    )?;
    let started = Instant::now();
    let exit = vm.run();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let exit = exit?;
    if exit.timed_out {
        eprintln!("the VM was killed after {:?}", args.timeout);
        return Ok(ExitCode::from(124));
    }
    let Some(result) = parse_console(&exit.console) else {
        eprintln!(
            "the guest did not report its command ({}); console:\n{}\nVMM stderr:\n{}",
            exit.status, exit.console, exit.vmm_stderr
        );
        return Ok(ExitCode::from(2));
    };
    debug_assert!(exit.console.contains(BEGIN_MARKER));
    print!("{}", result.output);
    println!("guest exit status: {}", result.exit_code);
    println!("vmm {} after {:.2} s", exit.status, elapsed.as_secs_f64());
    if let Some(stats) = &exit.stats {
        println!(
            "vmm cgroup: cpu {:.2} s, peak memory {} MiB",
            stats.cpu_usage_ns as f64 / 1e9,
            stats.memory_peak_bytes >> 20
        );
    }
    Ok(ExitCode::from(u8::try_from(result.exit_code).unwrap_or(1)))
}

/// A private directory the jail's uid can read (the initrd is bound from it).
fn tempfile_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("tasksandbox-microvm-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
    Ok(dir)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            let mut msg = format!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                msg.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}
