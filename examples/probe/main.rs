//! Looks at its own confinement from inside a task, and tries every known escape.
//!
//! ```text
//! probe check [--json] [--host-pid PID]... [--setuid PATH]... [--allow-fd N]... [--only NAME,...]
//!                     the confinement and every escape of the table; exits 1 if any check fails
//! probe sweep [--json] [--all]
//!                     every syscall number through the seccomp oracle, compared with Docker's;
//!                     exits 1 if something Docker refuses is allowed
//! probe syscalls      try each refused syscall harmlessly; print `NAME ERRNO` per line
//! probe fds           list open descriptors
//! probe fork N        fork up to N sleeping children; print `forked K ERRNO`
//! probe forkbomb      every process forks until the pids limit; the first prints `EAGAIN K`
//! probe alloc MIB     allocate and touch MIB of memory, then exit 0
//! probe spin THREADS  burn CPU on THREADS threads until killed
//! probe openfiles N   open /dev/null up to N times; print `opened K ERRNO`
//! probe segv          die of SIGSEGV
//! ```
//!
//! Each syscall is made so that, were it allowed, it would fail harmlessly with an
//! errno other than the sandbox's (a bad fd, a path that does not exist, an invalid
//! flag combination): the errno itself says whether the sandbox stopped it. It is safe
//! to run on a bare host, where most checks fail.
//!
//! Once built it needs nothing of the host's files but libc.

mod checks;
mod oracle;
mod sweep;
mod sys;

use std::process::ExitCode;

use nix::errno::Errno;

fn errno_of(ret: libc::c_long) -> String {
    if ret >= 0 {
        "OK".to_string()
    } else {
        format!("{:?}", Errno::last())
    }
}

macro_rules! raw {
    ($($arg:expr),+ $(,)?) => {
        // SAFETY: each attempt passes arguments that make the call fail without effect
        // (bad descriptors, null or absent paths, invalid flags) if it is not refused.
        errno_of(unsafe { libc::syscall($($arg as libc::c_long),+) })
    };
}

fn syscalls() -> Vec<(&'static str, String)> {
    let missing = c"/nonexistent-probe-dir";
    let nul = std::ptr::null::<libc::c_void>();
    let mut out = vec![
        ("unshare_user", raw!(libc::SYS_unshare, libc::CLONE_NEWUSER)),
        ("unshare_mount", raw!(libc::SYS_unshare, libc::CLONE_NEWNS)),
        (
            "unshare_user_ns_cgroup",
            raw!(
                libc::SYS_unshare,
                libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP
            ),
        ),
        (
            "unshare_user_net",
            raw!(libc::SYS_unshare, libc::CLONE_NEWUSER | libc::CLONE_NEWNET),
        ),
        // CLONE_NEWUSER with CLONE_FS is EINVAL when clone is allowed to look at it.
        (
            "clone_newuser",
            raw!(
                libc::SYS_clone,
                libc::CLONE_NEWUSER | libc::CLONE_FS,
                0,
                0,
                0,
                0
            ),
        ),
        ("clone3", raw!(libc::SYS_clone3, nul, 0)),
        (
            "mount",
            raw!(
                libc::SYS_mount,
                c"none".as_ptr(),
                missing.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                nul
            ),
        ),
        ("umount2", raw!(libc::SYS_umount2, missing.as_ptr(), 0)),
        (
            "pivot_root",
            raw!(libc::SYS_pivot_root, missing.as_ptr(), missing.as_ptr()),
        ),
        ("setns", raw!(libc::SYS_setns, -1, 0)),
        (
            "open_by_handle_at",
            raw!(libc::SYS_open_by_handle_at, -1, nul, 0),
        ),
        (
            "fsopen",
            raw!(libc::SYS_fsopen, c"nonexistent-fs".as_ptr(), 0),
        ),
        ("keyctl", raw!(libc::SYS_keyctl, 0, -1000, 0)),
        ("add_key", raw!(libc::SYS_add_key, nul, nul, nul, 0, 0)),
        ("request_key", raw!(libc::SYS_request_key, nul, nul, nul, 0)),
        ("bpf", raw!(libc::SYS_bpf, 9999, nul, 0)),
        (
            "perf_event_open",
            raw!(libc::SYS_perf_event_open, nul, 0, -1, -1, 0),
        ),
        ("userfaultfd", raw!(libc::SYS_userfaultfd, 0xffff)),
        ("io_uring_setup", raw!(libc::SYS_io_uring_setup, 0, nul)),
        (
            "finit_module",
            raw!(libc::SYS_finit_module, -1, c"".as_ptr(), 0),
        ),
        (
            "kexec_load",
            raw!(libc::SYS_kexec_load, 0, 0, nul, 0xffff_ffffu32),
        ),
        ("kcmp", raw!(libc::SYS_kcmp, 0, 0, 99, 0, 0)),
        (
            "ptrace_attach_1",
            raw!(libc::SYS_ptrace, libc::PTRACE_ATTACH, 99999, 0, 0),
        ),
        ("x32_getpid", raw!(0x4000_0000 | libc::SYS_getpid)),
        ("unknown_1000", raw!(1000)),
        (
            "socket_alg",
            raw!(libc::SYS_socket, libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        ),
        (
            "socket_vsock",
            raw!(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        ),
        (
            "socket_packet",
            raw!(libc::SYS_socket, libc::AF_PACKET, libc::SOCK_RAW, 0),
        ),
        ("tiocsti", raw!(libc::SYS_ioctl, -1, libc::TIOCSTI, nul)),
        ("personality_bad", raw!(libc::SYS_personality, 0x0040_0000)),
        ("chroot", raw!(libc::SYS_chroot, missing.as_ptr())),
        (
            "mknod_block",
            raw!(
                libc::SYS_mknodat,
                libc::AT_FDCWD,
                missing.as_ptr(),
                libc::S_IFBLK | 0o600,
                0x0801
            ),
        ),
        ("sethostname", raw!(libc::SYS_sethostname, nul, 100_000)),
    ];
    out.sort_by_key(|(name, _)| *name);
    out
}

fn list_fds() -> Result<Vec<String>, std::io::Error> {
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let mut fds: Vec<String> = dir
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), target)
        })
        .collect();
    fds.sort();
    // The directory handle read_dir used is gone now; drop its line.
    fds.retain(|l| !l.ends_with("/fd"));
    Ok(fds)
}

fn fork_until(n: usize) -> (usize, String) {
    for i in 0..n {
        // SAFETY: the child only sleeps until it is killed.
        match unsafe { libc::fork() } {
            -1 => return (i, format!("{:?}", Errno::last())),
            0 => loop {
                // SAFETY: pause has no arguments.
                unsafe { libc::pause() };
            },
            _ => {}
        }
    }
    (n, "OK".to_string())
}

fn alloc(mib: usize) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.chunks_mut(4096) {
            page[0] = 1;
        }
        chunks.push(chunk);
    }
    std::hint::black_box(&chunks);
}

/// Every process forks until the pids limit stops it; the first process prints
/// `EAGAIN K` (K: its own successful forks) at its first failure. Runs until killed.
fn forkbomb() -> ExitCode {
    // SAFETY: getpid has no arguments.
    let origin = unsafe { libc::getpid() };
    let mut forked = 0u64;
    let mut reported = false;
    loop {
        // SAFETY: the probe is single-threaded; the child runs this same loop.
        match unsafe { libc::fork() } {
            0 => forked = 0,
            -1 => {
                let errno = Errno::last();
                // SAFETY: getpid has no arguments.
                if !reported && unsafe { libc::getpid() } == origin {
                    println!("{errno:?} {forked}");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    reported = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => forked += 1,
        }
    }
}

/// Burns CPU on `threads` threads until killed.
fn spin(threads: usize) -> ExitCode {
    for _ in 1..threads {
        std::thread::spawn(|| loop {
            std::hint::spin_loop();
        });
    }
    println!("spinning on {threads} threads");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::hint::spin_loop();
    }
}

/// Opens /dev/null up to `n` times; prints `opened K ERRNO HIGHEST_FD`.
fn open_files(n: usize) {
    let mut files = Vec::new();
    let mut errno = "OK".to_string();
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                errno = e
                    .raw_os_error()
                    .map_or_else(|| e.to_string(), |e| format!("{:?}", Errno::from_raw(e)));
                break;
            }
        }
    }
    let highest = files.last().map_or(-1, std::os::fd::AsRawFd::as_raw_fd);
    println!("opened {} {errno} {highest}", files.len());
}

/// `probe check`: options, the checks, the report.
fn check(args: &[&str], initial_fds: Vec<(i32, String)>) -> ExitCode {
    let mut json = false;
    let mut host_pids = Vec::new();
    let mut setuid = Vec::new();
    let mut allow_fds = Vec::new();
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .copied()
                .ok_or_else(|| format!("{name} wants a value"))
        };
        let parsed: Result<(), String> = match arg {
            "--json" => {
                json = true;
                Ok(())
            }
            "--host-pid" => value("--host-pid").and_then(|v| {
                v.parse()
                    .map(|p| host_pids.push(p))
                    .map_err(|_| format!("--host-pid {v}: not a pid"))
            }),
            "--allow-fd" => value("--allow-fd").and_then(|v| {
                v.parse()
                    .map(|p| allow_fds.push(p))
                    .map_err(|_| format!("--allow-fd {v}: not a descriptor"))
            }),
            "--setuid" => value("--setuid").map(|v| setuid.push(std::path::PathBuf::from(v))),
            "--only" => value("--only").map(|v| only.extend(v.split(',').map(str::to_string))),
            other => Err(format!("unknown option {other}")),
        };
        if let Err(e) = parsed {
            eprintln!("probe check: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(unknown) = only
        .iter()
        .find(|o| !checks::CHECKS.iter().any(|(name, _)| name == o))
    {
        eprintln!("probe check: no check named {unknown}");
        return ExitCode::from(2);
    }
    let ctx = checks::Ctx::new(host_pids, setuid, allow_fds, initial_fds);
    let (results, oracle) = checks::run(&ctx, &only);
    let failed = results.iter().filter(|c| !c.pass).count();
    if json {
        let report = serde_json::json!({
            "checks": results.iter().map(checks::Check::json).collect::<Vec<_>>(),
            "passed": results.len() - failed,
            "failed": failed,
            "seccomp_oracle": match &oracle {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            },
        });
        println!("{report:#}");
    } else {
        for c in &results {
            let status = if c.pass { "PASS" } else { "FAIL" };
            let row = format!("[{}]", c.row);
            println!("{status} {:<32} {row:<6} {}", c.name, c.summary());
        }
        println!(
            "{} checks: {} passed, {failed} failed",
            results.len(),
            results.len() - failed
        );
        if let Err(e) = &oracle {
            println!("seccomp oracle unavailable, layers not shown: {e}");
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    // Before anything else opens a descriptor.
    let initial_fds = sys::open_fds();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["check", rest @ ..] => return check(rest, initial_fds),
        ["sweep", rest @ ..] => {
            let json = rest.contains(&"--json");
            let all = rest.contains(&"--all");
            if let Some(bad) = rest.iter().find(|a| !["--json", "--all"].contains(a)) {
                eprintln!("probe sweep: unknown option {bad}");
                return ExitCode::from(2);
            }
            return sweep::main(json, all);
        }
        ["syscalls"] => {
            for (name, result) in syscalls() {
                println!("{name} {result}");
            }
        }
        ["fds"] => match list_fds() {
            Ok(fds) => fds.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("probe: /proc/self/fd: {e}");
                return ExitCode::from(1);
            }
        },
        ["fork", n] => {
            let Ok(n) = n.parse() else {
                eprintln!("probe: fork wants a number");
                return ExitCode::from(2);
            };
            let (forked, errno) = fork_until(n);
            println!("forked {forked} {errno}");
        }
        ["forkbomb"] => return forkbomb(),
        ["alloc", mib] => {
            let Ok(mib) = mib.parse() else {
                eprintln!("probe: alloc wants a number");
                return ExitCode::from(2);
            };
            alloc(mib);
            println!("allocated {mib} MiB");
        }
        ["spin", threads] => {
            let Ok(threads) = threads.parse() else {
                eprintln!("probe: spin wants a number");
                return ExitCode::from(2);
            };
            return spin(threads);
        }
        ["openfiles", n] => {
            let Ok(n) = n.parse() else {
                eprintln!("probe: openfiles wants a number");
                return ExitCode::from(2);
            };
            open_files(n);
        }
        ["segv"] => {
            // SAFETY: deliberately faults; the point is to die of SIGSEGV.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
        }
        _ => {
            eprintln!(
                "usage: probe check [--json] [--host-pid PID]... [--setuid PATH]... [--allow-fd N]... [--only NAMES]\n       probe sweep [--json] [--all]\n       probe syscalls | fds | fork N | forkbomb | alloc MIB | spin THREADS | openfiles N | segv"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
