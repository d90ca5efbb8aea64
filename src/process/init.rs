//! The task init: pid 1 of the task's pid namespace, holder of its user, network, IPC
//! and UTS namespaces, parent of every container's workload and reaper of orphans.
//!
//! It is a copy of the launcher that never execs, so, like the container child, it
//! must not allocate, lock or panic for its whole life: it runs raw syscalls on data
//! built before the fork. It dies with the task: when the launcher closes its end of
//! the control socket (drop, or the launcher process dying in any way), init exits,
//! and the kernel kills every process left in the task's pid namespace, containers'
//! nested namespaces included.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::c_ulong;
use nix::errno::Errno;

use super::child::{self, ChildFds, Context, ExecArgs, Failure};
use super::wire::{Event, Request, MSG_LEN};
use crate::error::Step;
use crate::storage::{Backing, StoragePlan};
use crate::sys;
use crate::task::ContainerSpec;

/// What init needs, all prepared by the launcher before the fork.
pub(crate) struct InitArgs<'a> {
    /// Released (one byte) once the id maps are written.
    pub sync_read: RawFd,
    /// Close-on-exec pipe on which a failed set-up step is reported; closing it says
    /// init is ready.
    pub error_write: RawFd,
    /// Init's end of the control socket.
    pub sock: RawFd,
    /// Cgroup files to write `0` to (joining init's cgroup).
    pub cgroup_join: &'a [RawFd],
    /// Every descriptor above to keep, sorted: all others are closed at once.
    pub keep: &'a [RawFd],
    /// Whether `setgroups` may be called.
    pub setgroups: bool,
    /// The task's hostname.
    pub hostname: &'a [u8],
    /// The ephemeral storage to mount, if a container uses it.
    pub storage: Option<&'a StoragePlan>,
    /// The detached mount of disk-backed storage, made by the launcher (-1 if none).
    pub storage_fd: RawFd,
    /// The joined network namespace's sysfs (a detached mount) and where to attach
    /// it for the containers to bind.
    pub sysfs: Option<(RawFd, &'a CStr)>,
    /// Whether to bring up loopback: only in the task's own network namespace, not in
    /// one it joined.
    pub loopback: bool,
    /// Clone flags of a container (`CLONE_NEWNS`, and `CLONE_NEWPID` unless the task
    /// shares its pid namespace).
    pub container_flags: c_ulong,
    /// The containers' nofile limit.
    pub nofile: u64,
    /// Where the launcher's command line lives in memory, to be written over.
    pub argv_area: Option<(usize, usize)>,
}

/// Init's entry point. Never returns.
pub(crate) fn main(
    args: &InitArgs,
    containers: &[ContainerSpec],
    exec: &[ExecArgs],
    pids: &mut [libc::pid_t],
) -> ! {
    let sigchld = match set_up(args) {
        Ok(fd) => fd,
        Err(failure) => child::report_and_exit(args.error_write, failure),
    };
    // Ready: EOF on the error pipe tells the launcher.
    sys::close(args.error_write);
    serve(args, sigchld, containers, exec, pids)
}

/// The set-up, in order; a failed step is reported to the launcher.
fn set_up(args: &InitArgs) -> Result<RawFd, Failure> {
    sys::reset_signals();

    // 1. Only what this task needs: descriptors of other tasks started concurrently
    //    from other threads of the launcher must not be held here (a held control
    //    socket would keep another task's init from seeing its launcher die).
    sys::close_all_except(args.keep).at(Step::CloseFds)?;

    // 2. Its own name, and not the launcher's command line: with a shared pid
    //    namespace containers see init's /proc/1/cmdline and comm, and the embedding
    //    program's arguments are none of their business.
    if let Some(area) = args.argv_area {
        // SAFETY: the area was read from this process's own /proc/self/stat before the
        // fork, and nothing in init reads its arguments.
        unsafe { sys::overwrite_cmdline(area, b"tasksandbox-init") };
    }
    let _ = sys::set_name(c"tasksandbox-init");

    // 3. Wait for the id maps. EOF means the launcher gave up: leave quietly.
    let mut go = [0u8; 1];
    match sys::read_full(args.sync_read, &mut go).at(Step::WaitForLauncher)? {
        1 => {}
        _ => sys::exit_now(127),
    }
    sys::close(args.sync_read);

    // 4. Root of the user namespace.
    if args.setgroups {
        sys::setgroups(&[]).at(Step::User)?;
    }
    sys::setresgid(0).at(Step::User)?;
    sys::setresuid(0).at(Step::User)?;

    // 5. Into init's cgroup, then a session of its own.
    for &fd in args.cgroup_join {
        sys::write_all(fd, b"0").at(Step::JoinCgroup)?;
        sys::close(fd);
    }
    sys::setsid().at(Step::NewSession)?;

    // 6. Not dumpable: no process of the task, even one allowed to ptrace, can trace
    //    init or reach its memory, root or descriptors through /proc.
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).at(Step::User)?;

    // 7. Mounts made in this namespace (and the containers' copies) never propagate
    //    back to the host's.
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_SLAVE, None).at(Step::Mount)?;

    // 8. The ephemeral storage, where containers will bind it from: the launcher's
    //    detached ext4 mount moved into this namespace (it exists nowhere else), or a
    //    tmpfs for in-memory storage.
    if let Some(storage) = args.storage {
        match &storage.backing {
            Backing::Disk { .. } => {
                sys::move_mount_fd(args.storage_fd, &storage.target).at(Step::Storage)?;
                sys::close(args.storage_fd);
            }
            Backing::Memory { data } => sys::mount(
                Some(c"tasksandbox-storage"),
                &storage.target,
                Some(c"tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(data),
            )
            .at(Step::Storage)?,
        }
    }

    // 8b. The sysfs of a joined network namespace, where containers will bind it from
    //     (made by the launcher inside that namespace; this user namespace could not).
    if let Some((fd, target)) = args.sysfs {
        sys::move_mount_fd(fd, target).at(Step::Mount)?;
        sys::close(fd);
    }

    // 9. The task's hostname, and the loopback of its own network namespace (a joined
    //    one is the caller's and left as it is), shared by every container.
    sys::sethostname(args.hostname).at(Step::Hostname)?;
    if args.loopback {
        sys::loopback_up().at(Step::Loopback)?;
    }

    // 10. Exits of children arrive on a signalfd.
    sys::sigchld_fd().at(Step::WaitForLauncher)
}

/// Serves the launcher's requests and reports container exits until the launcher
/// goes away.
fn serve(
    args: &InitArgs,
    sigchld: RawFd,
    containers: &[ContainerSpec],
    exec: &[ExecArgs],
    pids: &mut [libc::pid_t],
) -> ! {
    let mut fds = [
        libc::pollfd {
            fd: args.sock,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sigchld,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        if sys::poll(&mut fds, -1).is_err() {
            sys::exit_now(1);
        }
        if fds[1].revents != 0 {
            sys::drain(sigchld);
            while let Some(reaped) = sys::reap_any() {
                // Orphans reparented to init are reaped and forgotten.
                if let Some(index) = pids.iter().position(|p| *p == reaped.pid) {
                    pids[index] = 0;
                    send(
                        args.sock,
                        Event::Exited {
                            index: index as u32,
                            status: reaped.status,
                        },
                        &[],
                    );
                }
            }
        }
        if fds[0].revents != 0 {
            let mut msg = [0u8; MSG_LEN];
            let mut passed = [-1; sys::MAX_PASSED_FDS];
            match sys::recv_with_fds(args.sock, &mut msg, &mut passed) {
                // The launcher is gone, or let the task go: so does init, and with it
                // every process of the task.
                Ok((0, _)) | Err(_) => sys::exit_now(0),
                Ok((_, count)) => {
                    let passed = &mut passed[..count];
                    // A launcher with a closed standard stream can have a descriptor
                    // arrive as 0, 1 or 2, where the child's dup2 would clobber it.
                    for fd in passed.iter_mut().filter(|fd| **fd < 3) {
                        if let Ok(moved) = sys::dup_at_least(*fd, 3) {
                            sys::close(*fd);
                            *fd = moved;
                        }
                    }
                    let passed = &*passed;
                    if let Some(request) = Request::decode(&msg) {
                        handle(args, request, passed, containers, exec, pids);
                    }
                    for &fd in passed {
                        sys::close(fd);
                    }
                }
            }
        }
    }
}

fn send(sock: RawFd, event: Event, fds: &[RawFd]) {
    // A launcher that stopped listening is seen as EOF on the next poll.
    let _ = sys::send_with_fds(sock, &event.encode(), fds);
}

fn handle(
    args: &InitArgs,
    request: Request,
    passed: &[RawFd],
    containers: &[ContainerSpec],
    exec: &[ExecArgs],
    pids: &mut [libc::pid_t],
) {
    let Request::Start {
        index,
        stdio_mask,
        cgroup_fds,
    } = request;
    let i = index as usize;
    let stdio_count = stdio_mask.count_ones() as usize;
    let (Some(container), Some(exec), Some(&error_write)) =
        (containers.get(i), exec.get(i), passed.first())
    else {
        return send(
            args.sock,
            Event::StartFailed {
                index,
                errno: Errno::EINVAL as i32,
            },
            &[],
        );
    };
    let Some(rest) = passed.get(1..1 + stdio_count + cgroup_fds as usize) else {
        return send(
            args.sock,
            Event::StartFailed {
                index,
                errno: Errno::EINVAL as i32,
            },
            &[],
        );
    };
    let mut stdio = [-1; 3];
    let mut next = 0;
    for (stream, slot) in stdio.iter_mut().enumerate() {
        if stdio_mask & (1 << stream) != 0 {
            *slot = rest[next];
            next += 1;
        }
    }
    let fds = ChildFds {
        error_write,
        cgroup_join: &rest[next..],
        stdio,
        nofile: args.nofile,
    };
    // SAFETY: init is single-threaded; the child runs only `child::main` on data built
    // before init was forked, and never returns.
    match unsafe { sys::clone_pidfd(args.container_flags) } {
        Ok(sys::Cloned::Child) => child::main(&container.plan, &fds, exec),
        Ok(sys::Cloned::Parent { pid, pidfd }) => {
            pids[i] = pid;
            send(args.sock, Event::Started { index, pid }, &[pidfd]);
            sys::close(pidfd);
        }
        Err(errno) => send(
            args.sock,
            Event::StartFailed {
                index,
                errno: errno as i32,
            },
            &[],
        ),
    }
}
