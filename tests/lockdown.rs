//! A task, seen from inside: what the kernel reports to the workload.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use common::*;
use tasksandbox::{
    Capabilities, Capability, Container, Error, ExitStatus, Step, TaskSandbox, TaskSize, User,
    Volume,
};

const ALLOWLIST: &str = "00000000a80425fb";

fn proc_status(container: Container) -> String {
    sh_in(TaskSandbox::builder(), container, "cat /proc/self/status")
}

#[test]
fn root_holds_exactly_the_allowlist() {
    if !can_start_tasks() {
        return;
    }
    let status = proc_status(Container::new("caps"));
    assert_eq!(status_field(&status, "CapBnd"), ALLOWLIST);
    assert_eq!(status_field(&status, "CapPrm"), ALLOWLIST);
    assert_eq!(status_field(&status, "CapEff"), ALLOWLIST);
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
}

#[test]
fn non_root_user_keeps_only_the_bounding_set() {
    if !can_start_tasks() {
        return;
    }
    let status = proc_status(Container::new("user").user(User::new(1000, 1000)));
    assert_eq!(status_field(&status, "CapBnd"), ALLOWLIST);
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    let uid = status_field(&status, "Uid");
    assert_eq!(uid.split_whitespace().collect::<Vec<_>>(), ["1000"; 4]);
}

#[test]
fn sys_ptrace_opt_in_and_drops_change_the_sets() {
    if !can_start_tasks() {
        return;
    }
    let caps = Capabilities::fargate_default()
        .drop(Capability::NetRaw)
        .with_sys_ptrace();
    let status = proc_status(Container::new("caps").capabilities(caps));
    let expected = format!("{:016x}", 0xa80425fb_u64 & !(1 << 13) | (1 << 19));
    assert_eq!(status_field(&status, "CapBnd"), expected);
    assert_eq!(status_field(&status, "CapEff"), expected);
}

#[test]
fn uid_map_is_not_the_identity() {
    if !can_start_tasks() {
        return;
    }
    let map = sh("cat /proc/self/uid_map /proc/self/gid_map");
    let rows: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [["0", "100000", "65536"], ["0", "100000", "65536"]]);
}

#[test]
fn only_loopback_exists_and_is_up() {
    if !can_start_tasks() {
        return;
    }
    let out = sh("ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "interfaces: {out}");
    assert_eq!(lines.len(), 3, "only lo: {out}");
    let flags = u32::from_str_radix(lines[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP set on lo: {out}");
}

#[test]
fn hostname_is_the_tasks() {
    if !can_start_tasks() {
        return;
    }
    let out = sh_in(
        TaskSandbox::builder(),
        Container::new("web").hostname("web-task-1"),
        "hostname; cat /proc/sys/kernel/hostname",
    );
    assert_eq!(out, "web-task-1\nweb-task-1\n");
}

#[test]
fn pid_namespace_hides_the_host() {
    if !can_start_tasks() {
        return;
    }
    let out = sh("echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the workload is pid 1");
    let pids: usize = lines[1].trim().parse().unwrap();
    assert!(pids <= 4, "only the task's processes are visible: {pids}");
}

#[test]
fn masked_paths_are_masked() {
    if !can_start_tasks() {
        return;
    }
    let out = sh(
        "for f in /proc/timer_list /proc/keys /proc/interrupts /proc/sched_debug; do \
           [ -e $f ] && echo \"$f $(stat -c %t:%T $f) $(wc -c < $f)\"; done; \
         for d in /proc/acpi /proc/scsi /sys/firmware /sys/devices/virtual/powercap; do \
           [ -e $d ] && echo \"$d $(ls -A $d | wc -l)\"; done; true",
    );
    assert!(!out.is_empty());
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [path, dev, size] => {
                assert_eq!(*dev, "1:3", "{path} is /dev/null");
                assert_eq!(*size, "0", "{path} reads empty");
            }
            [path, entries] => assert_eq!(*entries, "0", "{path} is empty"),
            _ => panic!("unexpected line {line}"),
        }
    }
}

#[test]
fn read_only_paths_refuse_writes() {
    if !can_start_tasks() {
        return;
    }
    let out = sh(
        "[ -e /proc/sysrq-trigger ] && { echo x 2>&1 > /proc/sysrq-trigger || true; }; \
         echo '|/x' 2>&1 > /proc/sys/kernel/core_pattern || true; \
         touch /sys/x 2>&1 || true; touch /usr/x 2>&1 || true",
    );
    let refusals = out.matches("Read-only file system").count();
    let expected = if std::path::Path::new("/proc/sysrq-trigger").exists() {
        4
    } else {
        3
    };
    assert_eq!(refusals, expected, "{out}");
}

#[test]
fn refused_syscalls_give_the_right_errno() {
    if !can_start_tasks() {
        return;
    }
    let out = output(TaskSandbox::builder().container(probe(&["syscalls"])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let expect = [
        ("unshare_user", "EPERM"),
        ("unshare_mount", "EPERM"),
        ("unshare_user_ns_cgroup", "EPERM"),
        ("unshare_user_net", "EPERM"),
        ("clone_newuser", "EPERM"),
        ("clone3", "ENOSYS"),
        ("mount", "EPERM"),
        ("umount2", "EPERM"),
        ("pivot_root", "EPERM"),
        ("setns", "EPERM"),
        ("open_by_handle_at", "EPERM"),
        ("fsopen", "EPERM"),
        ("keyctl", "EPERM"),
        ("add_key", "EPERM"),
        ("request_key", "EPERM"),
        ("bpf", "EPERM"),
        ("perf_event_open", "EPERM"),
        ("userfaultfd", "EPERM"),
        ("io_uring_setup", "EPERM"),
        ("finit_module", "EPERM"),
        ("kexec_load", "EPERM"),
        ("kcmp", "EPERM"),
        ("x32_getpid", "EPERM"),
        ("unknown_1000", "ENOSYS"),
        ("socket_alg", "EPERM"),
        ("socket_vsock", "EPERM"),
        ("tiocsti", "EPERM"),
        ("personality_bad", "EPERM"),
        ("mknod_block", "EPERM"),
        ("ptrace_attach_absent", "ESRCH"),
    ];
    for (name, errno) in expect {
        assert_eq!(results.get(name).map(String::as_str), Some(errno), "{name}");
    }
}

#[test]
fn sys_ptrace_unlocks_kcmp_only_with_the_opt_in() {
    if !can_start_tasks() {
        return;
    }
    let caps = Capabilities::fargate_default().with_sys_ptrace();
    let out = output(TaskSandbox::builder().container(probe(&["syscalls"]).capabilities(caps)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kcmp ESRCH"),
        "kcmp reached the kernel: {stdout}"
    );
    assert!(stdout.contains("unshare_user EPERM"), "{stdout}");
}

#[test]
fn only_stdio_descriptors_survive() {
    if !can_start_tasks() {
        return;
    }
    // A descriptor the launcher holds without close-on-exec must not reach the task.
    // SAFETY: opening a path with constant arguments; the fd is closed below.
    let leaked = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2);
    let out = output(TaskSandbox::builder().container(probe(&["fds"])));
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(leaked) };
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(fds, ["0", "1", "2"]);
    let cwd = sh("readlink /proc/self/cwd; readlink /proc/self/root");
    assert_eq!(cwd, "/\n/\n");
}

#[test]
fn memory_hog_is_out_of_memory() {
    if !can_start_tasks() {
        return;
    }
    let sandbox = TaskSandbox::builder()
        .size(TaskSize::memory_only(64).unwrap())
        .container(probe(&["alloc", "1024"]))
        .build()
        .unwrap();
    let status = sandbox.status().unwrap();
    assert_eq!(status.status(), ExitStatus::OutOfMemory);
    assert_eq!(status.shell_code(), 137);
    // The same task within its limit runs to completion.
    let small = TaskSandbox::builder()
        .size(TaskSize::memory_only(64).unwrap())
        .container(probe(&["alloc", "8"]))
        .build()
        .unwrap();
    assert!(small.status().unwrap().success());
}

#[test]
fn fork_loop_stops_at_the_pids_limit() {
    if !can_start_tasks() {
        return;
    }
    let out = output(
        TaskSandbox::builder()
            .pids_limit(16)
            .container(probe(&["fork", "200"])),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"forked"), "{stdout}");
    let forked: u32 = fields[1].parse().unwrap();
    assert_eq!(fields[2], "EAGAIN", "{stdout}");
    assert!(forked < 16, "stopped below the limit: {forked}");
}

#[test]
fn exit_codes_and_signals_come_back() {
    if !can_start_tasks() {
        return;
    }
    let code = TaskSandbox::builder()
        .container(Container::new("c").command(["/bin/sh", "-c", "exit 7"]))
        .build()
        .unwrap();
    assert_eq!(code.status().unwrap().status(), ExitStatus::Exited(7));

    let segv = TaskSandbox::builder()
        .container(probe(&["segv"]))
        .build()
        .unwrap();
    assert_eq!(
        segv.status().unwrap().status(),
        ExitStatus::Signaled(libc::SIGSEGV)
    );

    let sleeper = TaskSandbox::builder()
        .container(Container::new("s").command(["sleep", "60"]))
        .build()
        .unwrap();
    let mut task = sleeper.start().unwrap();
    assert_eq!(task.try_wait().unwrap(), None);
    task.kill().unwrap();
    assert_eq!(
        task.wait().unwrap().status(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

#[test]
fn a_failed_step_names_itself() {
    if !can_start_tasks() {
        return;
    }
    let missing = TaskSandbox::builder()
        .container(Container::new("c").command(["no-such-command-xyz"]))
        .build()
        .unwrap();
    match missing.start() {
        Err(Error::Launch(e)) => {
            assert_eq!(e.step, Step::Exec);
            assert_eq!(e.errno, nix::errno::Errno::ENOENT);
            assert!(e.to_string().contains("no-such-command-xyz"), "{e}");
        }
        other => panic!("expected a launch error, got {other:?}"),
    }
    let bad_dir = TaskSandbox::builder()
        .container(
            Container::new("c")
                .command(["true"])
                .working_dir("/no/such/dir"),
        )
        .build()
        .unwrap();
    match bad_dir.start() {
        Err(Error::Launch(e)) => {
            assert_eq!(e.step, Step::WorkingDir);
            assert!(e.to_string().contains("/no/such/dir"), "{e}");
        }
        other => panic!("expected a launch error, got {other:?}"),
    }
}

#[test]
fn volumes_are_read_only_unless_asked() {
    if !can_start_tasks() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("in"), "from host\n").unwrap();
    let ro = sh_in(
        TaskSandbox::builder(),
        Container::new("v").volume(Volume::bind(dir.path(), "/data")),
        "cat /data/in; touch /data/x 2>&1 || true",
    );
    assert!(ro.starts_with("from host\n"), "{ro}");
    assert!(ro.contains("Read-only file system"), "{ro}");
    sh_in(
        TaskSandbox::builder(),
        Container::new("v").volume(Volume::bind(dir.path(), "/srv/data").read_write()),
        "echo from task > /srv/data/out",
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "from task\n"
    );
}

#[test]
fn default_root_holds_nothing_else_of_the_host() {
    if !can_start_tasks() {
        return;
    }
    let out = sh("ls -A /; cat /etc/passwd | cut -d: -f1");
    let lines: Vec<&str> = out.lines().collect();
    for entry in &lines {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "run",
                "sbin", "sys", "tmp", "usr", "var", "nobody"
            ]
            .contains(entry),
            "unexpected entry {entry} in {out}"
        );
    }
    assert!(lines.contains(&"usr") && lines.contains(&"etc") && lines.contains(&"proc"));
}

#[test]
fn custom_rootfs_and_read_only_root() {
    if !can_start_tasks() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["usr", "etc", "marker-dir"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), root.path().join(link)).unwrap();
    }
    let container = Container::new("custom")
        .rootfs(root.path())
        .readonly_rootfs(true)
        .volume(Volume::bind("/usr", "/usr"));
    let out = sh_in(
        TaskSandbox::builder(),
        container,
        "ls -d /marker-dir; touch /new 2>&1 || true; echo ok > /dev/null && echo dev-writable",
    );
    assert!(out.starts_with("/marker-dir\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("dev-writable"), "{out}");
}

#[test]
fn nofile_limit_is_set() {
    if !can_start_tasks() {
        return;
    }
    let sandbox = TaskSandbox::builder()
        .nofile(4096)
        .container(Container::new("n").command(["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"]))
        .build()
        .unwrap();
    let out = sandbox.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4096\n4096\n");
    // The default is Fargate's 65535, or the launcher's hard limit where it cannot be
    // raised, which the report then says.
    let default = TaskSandbox::builder()
        .container(
            Container::new("n")
                .command(["/bin/sh", "-c", "ulimit -n"])
                .stdout(tasksandbox::Stdio::Piped),
        )
        .build()
        .unwrap();
    let task = default.start().unwrap();
    let report = task.report().clone();
    assert!(report.nofile == 65_535 || report.not_applied.iter().any(|n| n.contains("nofile")));
    let out = task.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        report.nofile.to_string()
    );
}
