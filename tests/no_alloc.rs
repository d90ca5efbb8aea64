//! Nothing allocates between clone and exec: this test binary's allocator aborts any
//! process that is not the test process itself, so a child that allocated before
//! exec would die of SIGABRT instead of running its command.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use tasksandbox::{Container, ExitStatus, TaskSandbox};

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
}
