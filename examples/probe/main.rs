//! Looks at its own confinement from inside a task, and tries every known escape.
//!
//! ```text
//! probe check [--json] [--host-pid PID]... [--setuid COPY]... [--allow-fd N]...
//!             [--siblings | --sibling-pid PID...] [--only NAME,...]
//!                     the confinement and every escape of the table; exits 1 if any check
//!                     fails. A check that finds nothing to try here (a file this kernel
//!                     lacks, no sibling named) is SKIP: shown and counted, not a failure.
//!                     --siblings aims the ptrace family at every other process in view
//!                     but pid 1 (in a task with pid_mode = task), attaching and detaching
//!                     at once; it is refused in the host's pid namespace. --setuid names
//!                     a setuid copy of the probe, run as another uid (`COPY ids`)
//! probe sweep [--json] [--all]
//!                     every syscall number through the seccomp oracle, compared with Docker's;
//!                     exits 1 if something Docker refuses is allowed
//! probe syscalls      try each refused syscall harmlessly; print `NAME ERRNO` per line
//! probe ids           print `uid REAL EFFECTIVE SAVED` and `gid ...` (what a setuid
//!                     copy of the probe runs with: `check --setuid` execs it so)
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
//! Built as usual it needs the host's libc and loader; built statically it needs
//! nothing of the host's files at all:
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build --example probe \
//!     --no-default-features --target x86_64-unknown-linux-gnu --target-dir target/static
//! ```

mod checks;
mod oracle;
mod sweep;
mod sys;

use std::process::ExitCode;

use nix::errno::Errno;

/// `probe syscalls`: each refused syscall tried once, harmlessly, as `(name, result)`.
///
/// Attempts that would change the probe if they succeeded (`unshare`, a raw `clone`,
/// `chroot`, `personality`) run in a forked child, so no result depends on the order they are made
/// in; `ptrace` is aimed at a pid that cannot exist ([`sys::absent_pid`]).
fn syscalls() -> Vec<(&'static str, String)> {
    let missing = sys::MISSING.as_ptr() as u64;
    let s = |text: &std::ffi::CStr| text.as_ptr() as u64;
    let call = |nr: i64, args: &[u64]| {
        let mut all = [0u64; 6];
        all[..args.len()].copy_from_slice(args);
        sys::syscall(nr, all)
    };
    let in_child = |nr: i64, args: &[u64]| {
        let mut all = [0u64; 6];
        all[..args.len()].copy_from_slice(args);
        sys::in_child(|| {
            let out = sys::syscall(nr, all);
            if nr == libc::SYS_clone && out == sys::Outcome::Ok(0) {
                // SAFETY: a process created against expectations leaves at once.
                unsafe { libc::_exit(0) };
            }
            out
        })
    };
    let flags = |f: libc::c_int| f as u64;
    let bad_fd = u64::MAX;
    let ptrace_attach = match sys::absent_pid() {
        Some(pid) => call(libc::SYS_ptrace, &[libc::PTRACE_ATTACH as u64, pid as u64]).text(),
        None => "not tried: no pid was found free".to_string(),
    };
    let mut out = vec![
        (
            "unshare_user",
            in_child(libc::SYS_unshare, &[flags(libc::CLONE_NEWUSER)]),
        ),
        (
            "unshare_mount",
            in_child(libc::SYS_unshare, &[flags(libc::CLONE_NEWNS)]),
        ),
        (
            "unshare_user_ns_cgroup",
            in_child(
                libc::SYS_unshare,
                &[flags(
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP,
                )],
            ),
        ),
        (
            "unshare_user_net",
            in_child(
                libc::SYS_unshare,
                &[flags(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)],
            ),
        ),
        // CLONE_NEWUSER with CLONE_FS is EINVAL when clone is allowed to look at it.
        (
            "clone_newuser",
            in_child(
                libc::SYS_clone,
                &[flags(libc::CLONE_NEWUSER | libc::CLONE_FS)],
            ),
        ),
        ("clone3", call(libc::SYS_clone3, &[0, 0])),
        (
            "mount",
            call(libc::SYS_mount, &[s(c"none"), missing, s(c"tmpfs"), 0, 0]),
        ),
        ("umount2", call(libc::SYS_umount2, &[missing, 0])),
        (
            "pivot_root",
            call(libc::SYS_pivot_root, &[missing, missing]),
        ),
        ("setns", call(libc::SYS_setns, &[bad_fd, 0])),
        (
            "open_by_handle_at",
            call(libc::SYS_open_by_handle_at, &[bad_fd, 0, 0]),
        ),
        ("fsopen", call(libc::SYS_fsopen, &[s(c"nonexistent-fs"), 0])),
        ("keyctl", call(libc::SYS_keyctl, &[0, (-1000i64) as u64, 0])),
        ("add_key", call(libc::SYS_add_key, &[0, 0, 0, 0, 0])),
        ("request_key", call(libc::SYS_request_key, &[0, 0, 0, 0])),
        ("bpf", call(libc::SYS_bpf, &[9999, 0, 0])),
        (
            "perf_event_open",
            call(libc::SYS_perf_event_open, &[0, 0, bad_fd, bad_fd, 0]),
        ),
        ("userfaultfd", call(libc::SYS_userfaultfd, &[0xffff])),
        ("io_uring_setup", call(libc::SYS_io_uring_setup, &[0, 0])),
        (
            "finit_module",
            call(libc::SYS_finit_module, &[bad_fd, s(c""), 0]),
        ),
        (
            "kexec_load",
            call(libc::SYS_kexec_load, &[0, 0, 0, 0xffff_ffff]),
        ),
        ("kcmp", call(libc::SYS_kcmp, &[0, 0, 99, 0, 0])),
        ("x32_getpid", call(0x4000_0000 | libc::SYS_getpid, &[])),
        ("unknown_1000", call(1000, &[])),
        (
            "socket_alg",
            call(
                libc::SYS_socket,
                &[flags(libc::AF_ALG), flags(libc::SOCK_SEQPACKET), 0],
            ),
        ),
        (
            "socket_vsock",
            call(
                libc::SYS_socket,
                &[flags(libc::AF_VSOCK), flags(libc::SOCK_STREAM), 0],
            ),
        ),
        (
            "socket_packet",
            call(
                libc::SYS_socket,
                &[flags(libc::AF_PACKET), flags(libc::SOCK_RAW), 0],
            ),
        ),
        (
            "tiocsti",
            // TIOCSTI (the generic ioctl number, x86 and arm alike).
            call(libc::SYS_ioctl, &[bad_fd, 0x5412, 0]),
        ),
        // Were it allowed, it would change the probe's own execution domain.
        (
            "personality_bad",
            in_child(libc::SYS_personality, &[0x0040_0000]),
        ),
        ("chroot", in_child(libc::SYS_chroot, &[missing])),
        ("mknod_block", mknod_block()),
        ("sethostname", call(libc::SYS_sethostname, &[0, 100_000])),
    ]
    .into_iter()
    .map(|(name, out)| {
        // A descriptor returned against expectations is not kept.
        if name.starts_with("socket")
            || ["fsopen", "userfaultfd", "io_uring_setup", "perf_event_open"].contains(&name)
        {
            sys::close_if_fd(out);
        }
        (name, out.text())
    })
    .collect::<Vec<_>>();
    out.push(("ptrace_attach_absent", ptrace_attach));
    out.sort_by_key(|(name, _)| *name);
    out
}

/// `mknodat(sda, S_IFBLK, 8:1)` in a fresh directory of the probe's own, which is
/// removed again (with the node, if a bare host let it be made).
fn mknod_block() -> sys::Outcome {
    for dir in ["/dev/shm", "/tmp"] {
        let mut template = format!("{dir}/probe-XXXXXX\0").into_bytes();
        // SAFETY: a writable NUL-terminated template mkdtemp fills in.
        if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
            continue;
        }
        template.pop();
        let tmp = std::path::PathBuf::from(String::from_utf8_lossy(&template).into_owned());
        let node = sys::cpath(&tmp.join("sda"));
        let out = sys::syscall(
            libc::SYS_mknodat,
            [
                libc::AT_FDCWD as u64,
                node.as_ptr() as u64,
                u64::from(libc::S_IFBLK | 0o600),
                libc::makedev(8, 1),
                0,
                0,
            ],
        );
        let _ = std::fs::remove_file(tmp.join("sda"));
        let _ = std::fs::remove_dir(&tmp);
        return out;
    }
    sys::Outcome::Err(libc::EROFS)
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
    let mut siblings: Option<Vec<i32>> = None;
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
            "--sibling-pid" => value("--sibling-pid").and_then(|v| {
                v.parse()
                    .map(|p| siblings.get_or_insert_with(Vec::new).push(p))
                    .map_err(|_| format!("--sibling-pid {v}: not a pid"))
            }),
            "--siblings" => {
                // Listed now, before any check forks a child of the probe's own.
                // SAFETY: getpid has no arguments.
                let me = unsafe { libc::getpid() };
                let seen = checks::visible_pids().unwrap_or_default();
                siblings
                    .get_or_insert_with(Vec::new)
                    .extend(seen.into_iter().filter(|&p| p != 1 && p != me));
                Ok(())
            }
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
    if let Some(list) = &mut siblings {
        list.sort_unstable();
        list.dedup();
    }
    let ctx = checks::Ctx::new(host_pids, setuid, allow_fds, initial_fds, siblings);
    let (results, oracle) = checks::run(&ctx, &only);
    let count = |s: checks::Status| results.iter().filter(|c| c.status() == s).count();
    let (passed, failed, skipped) = (
        count(checks::Status::Pass),
        count(checks::Status::Fail),
        count(checks::Status::Skip),
    );
    if json {
        let report = serde_json::json!({
            "checks": results.iter().map(checks::Check::json).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "seccomp_oracle": match &oracle {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            },
        });
        println!("{report:#}");
    } else {
        for c in &results {
            let row = format!("[{}]", c.row);
            println!(
                "{} {:<32} {row:<6} {}",
                c.status().text(),
                c.name,
                c.summary()
            );
        }
        println!(
            "{} checks: {passed} passed, {failed} failed, {skipped} skipped",
            results.len()
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
    let attempts = matches!(
        args.first().map(String::as_str),
        Some("check" | "syscalls" | "sweep")
    );
    if attempts && !sys::missing_is_missing() {
        eprintln!(
            "probe: {} exists; its attempts are aimed at that path on the grounds that it does not, so none is made",
            sys::MISSING.to_string_lossy()
        );
        return ExitCode::from(2);
    }
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
        ["ids"] => {
            let (mut r, mut e, mut s) = (0, 0, 0);
            let (mut rg, mut eg, mut sg) = (0, 0, 0);
            // SAFETY: live out-pointers for the three ids each.
            unsafe {
                libc::getresuid(&mut r, &mut e, &mut s);
                libc::getresgid(&mut rg, &mut eg, &mut sg);
            }
            println!("uid {r} {e} {s}");
            println!("gid {rg} {eg} {sg}");
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
                "usage: probe check [--json] [--host-pid PID]... [--setuid PATH]... [--allow-fd N]... [--siblings | --sibling-pid PID...] [--only NAMES]\n       probe sweep [--json] [--all]\n       probe syscalls | ids | fds | fork N | forkbomb | alloc MIB | spin THREADS | openfiles N | segv"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
