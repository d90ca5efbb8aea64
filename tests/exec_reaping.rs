//! Exec when the embedding program reaps children behind the crate's back: with
//! `SIGCHLD` set to `SIG_IGN` (the kernel then reaps every child that exits with
//! `SIGCHLD` at once), and with a thread calling `waitpid(-1, ..)` in a loop. Either
//! would lose the exec'd process's status, or let its pid be reused, if the crate
//! found it by pid. Alone in its own test binary: it changes the process's signal
//! dispositions and steals its children.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::can_start_tasks;
use tasksandbox::{Container, ExitStatus, RunningTask, TaskSandbox};

fn start() -> RunningTask {
    TaskSandbox::builder()
        .container(Container::new("app").command(["/bin/sleep", "1000"]))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Execs 100 commands of known status and output, some killed by a signal.
fn execs_report_what_happened(task: &RunningTask, part: &str) {
    for i in 0..100 {
        let code = i % 7;
        let script = format!("echo run {i}; exit {code}");
        let out = task
            .exec("app", ["/bin/sh", "-c", &script])
            .unwrap_or_else(|e| panic!("{part}: exec {i}: {}", e.chain()));
        assert_eq!(out.status, ExitStatus::Exited(code), "exec {i}");
        assert_eq!(out.stdout, format!("run {i}\n").into_bytes());
    }
    let out = task
        .exec("app", ["/bin/sh", "-c", "kill -TERM $$"])
        .unwrap();
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGTERM));
}

#[test]
fn exec_keeps_its_process_when_the_embedder_reaps_children() {
    if !can_start_tasks() {
        return;
    }

    // 1. A thread that reaps any child it can, as a careless embedder would.
    let stop = Arc::new(AtomicBool::new(false));
    let stolen = Arc::new(AtomicUsize::new(0));
    let reaper = {
        let (stop, stolen) = (Arc::clone(&stop), Arc::clone(&stolen));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut status = 0;
                // SAFETY: status is a valid out-pointer.
                if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {
                    stolen.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    {
        let task = start();
        execs_report_what_happened(&task, "reaper thread");
    }
    stop.store(true, Ordering::Relaxed);
    reaper.join().unwrap();

    // 2. SIGCHLD ignored: children that exit with SIGCHLD are reaped by the kernel.
    // SAFETY: setting a disposition; nothing in this binary relies on SIGCHLD.
    let previous = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR);
    {
        let task = start();
        execs_report_what_happened(&task, "SIGCHLD ignored");
    }
    // SAFETY: restoring the disposition found.
    unsafe { libc::signal(libc::SIGCHLD, previous) };
    eprintln!(
        "the reaper thread took {} children",
        stolen.load(Ordering::Relaxed)
    );
}
