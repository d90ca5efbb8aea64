//! Nothing allocates between clone and exec: this test binary's allocator aborts any
//! process that is not the test process itself, so a child that allocated before
//! exec would die of SIGABRT instead of running its command. That holds for the
//! task init, the container's child, and for exec: its helper (a copy of the
//! launcher that lives as long as the exec'd process) and the process itself, for
//! `RunningTask::exec` and health checks alike.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use std::time::{Duration, Instant};

use tasksandbox::{Container, ExitStatus, Health, HealthCheck, Step, TaskSandbox};

mod common;

static OWNER: AtomicI64 = AtomicI64::new(0);

struct OwnerOnly;

fn check_owner() {
    let owner = OWNER.load(Ordering::Relaxed);
    if owner != 0 {
        // SAFETY: getpid has no arguments and cannot fail.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        if pid != owner {
            // SAFETY: abort never returns; it is what this test looks for.
            unsafe { libc::abort() };
        }
    }
}

// SAFETY: every call is forwarded to the system allocator after the owner check.
unsafe impl GlobalAlloc for OwnerOnly {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_owner();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check_owner();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_owner();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: OwnerOnly = OwnerOnly;

#[test]
fn the_child_never_allocates() {
    if !common::can_start_tasks() {
        return;
    }
    let sandbox = TaskSandbox::builder()
        .container(Container::new("c").command(["/bin/sh", "-c", "exit 3"]))
        .build()
        .unwrap();
    // SAFETY: getpid has no arguments and cannot fail.
    OWNER.store(
        unsafe { libc::syscall(libc::SYS_getpid) },
        Ordering::Relaxed,
    );
    for _ in 0..5 {
        assert_eq!(sandbox.status().unwrap().status(), ExitStatus::Exited(3));
    }
    // A failed step is reported without allocating too.
    let failing = TaskSandbox::builder()
        .container(Container::new("c").command(["/no/such/command"]))
        .build()
        .unwrap();
    assert!(matches!(
        failing.start(),
        Err(tasksandbox::Error::Launch(_))
    ));

    // Exec, and a health check (an exec run by the launcher's health-check thread).
    let sandbox = TaskSandbox::builder()
        .container(
            Container::new("c")
                .command(["/bin/sleep", "1000"])
                .health_check(
                    HealthCheck::new(["/bin/sh", "-c", "exit 0"])
                        .interval(Duration::from_millis(20))
                        .retries(1),
                ),
        )
        .build()
        .unwrap();
    let task = sandbox.start().unwrap();
    for i in 0..5 {
        let out = task
            .exec("c", ["/bin/sh", "-c", "echo out; exit 4"])
            .unwrap();
        // A process that allocated would have died of SIGABRT before its exec.
        assert_eq!(out.status, ExitStatus::Exited(4), "exec {i}");
        assert_eq!(out.stdout, b"out\n");
    }
    // A failed exec is reported, step and errno, without allocating: a helper or
    // process that allocated would die before it could say which step failed.
    match task.exec("c", ["/no/such/command"]) {
        Err(tasksandbox::Error::Launch(err)) => {
            assert_eq!(err.step, Step::Exec, "{err}");
            assert_eq!(err.errno, nix::errno::Errno::ENOENT, "{err}");
        }
        other => panic!("{other:?}"),
    }
    // Healthy only once a health check has exited 0.
    let deadline = Instant::now() + Duration::from_secs(20);
    while task.health("c") != Some(Health::Healthy) {
        assert!(
            Instant::now() < deadline,
            "never healthy: {:?}",
            task.events()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A timed-out exec's kill is asked of the helper, which must not allocate
    // either: if it died instead, the timed-out checks' processes would live on.
    let timed_out = TaskSandbox::builder()
        .stop_timeout(Duration::from_millis(100))
        .container(
            Container::new("c")
                .command(["/bin/sleep", "1000"])
                .essential(false)
                .health_check(
                    HealthCheck::new(["/bin/sleep", "999"])
                        .interval(Duration::from_millis(20))
                        .timeout(Duration::from_millis(50))
                        .retries(5),
                ),
        )
        .container(Container::new("main").command(["/bin/sleep", "1000"]))
        .build()
        .unwrap();
    let mut task = timed_out.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while task.health("c") != Some(Health::Unhealthy) {
        assert!(
            Instant::now() < deadline,
            "never unhealthy: {:?}",
            task.events()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let count = "n=0; for p in /proc/[0-9]*; do c=; { IFS= read -r c < $p/cmdline; } 2>/dev/null; \
                 [ \"$c\" = /bin/sleep999 ] && n=$((n + 1)); done; echo $n";
    let out = task.exec("c", ["/bin/sh", "-c", count]).unwrap();
    let left: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(left <= 1, "{left} timed-out checks still run");
    task.kill().unwrap();
    task.wait().unwrap();
}
