//! Exec into a running container (what ECS Exec gives): a new process inside the
//! container's namespaces and cgroup, with exactly the container's capabilities,
//! no_new_privs, Landlock rule and seccomp filter.
//!
//! The launcher clones a helper. The helper is a copy of the launcher, whose memory
//! holds other tasks' plans (their secrets among them) and whose descriptors reach the
//! host, so before anything else it puts itself out of the container's reach: not
//! dumpable, the launcher's command line written over, every descriptor it does not
//! need closed. Then it enters the workload's namespaces through its pidfd (all but
//! the cgroup namespace) and clones the process, which joins the container's cgroups,
//! then its cgroup namespace, runs the same last steps as a container's workload
//! ([`child::lock_down`]) and execs. Like the container child, neither the helper nor
//! the process allocates.
//!
//! The helper stays the process's parent, and the only one to reap it: it holds the
//! process's pidfd (from `CLONE_PIDFD`), waits for it and sends its status to the
//! launcher over a socket. The launcher never addresses the process by pid and never
//! waits for it itself, so an embedding program that ignores `SIGCHLD` or calls
//! `waitpid(-1, ..)` can neither steal its status nor have its pid reused under the
//! crate. The helper itself has no exit signal (see [`sys::clone_pidfd_quiet`]) and
//! never execs, so it cannot be reaped behind the launcher's back either.
//!
//! The launcher collects the process's output while it runs and returns when the
//! helper reports its end, with what it wrote by then; descendants left running that
//! still hold its pipes are not waited for. Past a timeout the launcher asks the
//! helper to kill the process and its process group (it leads one: it called
//! `setsid`); the helper does so before reaping it, while the group's number is still
//! its own. The helper does the same if the launcher goes away.

use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::child::{self, Context, ExecArgs, Failure};
use super::plan::ChildPlan;
use super::supervise::{ExitStatus, Output};
use super::{above_stdio, pointers};
use crate::cgroup::TaskCgroup;
use crate::error::{Error, LaunchError, Step};
use crate::sys;

/// What the helper and the process need, prepared before the clone.
struct ExecFds<'a> {
    error_write: RawFd,
    /// The helper's end of the socket to the launcher.
    sock: RawFd,
    /// Every descriptor from 3 up the helper keeps (sorted); the rest are closed.
    keep: &'a [RawFd],
    /// What the process keeps past its standard streams: the error pipe only.
    keep_in_process: [RawFd; 1],
    /// Cgroup files the process writes `0` to, joining the container's cgroups.
    cgroup_join: &'a [RawFd],
    /// The workload's pidfd, whose namespaces are entered.
    target: RawFd,
    /// The namespaces the helper enters; the process then enters the cgroup
    /// namespace once it is in the container's cgroup.
    setns_flags: libc::c_int,
    stdio: [RawFd; 3],
    nofile: u64,
    /// Where the launcher's command line lives, to be written over.
    argv_area: Option<(usize, usize)>,
}

/// The helper's report of how the process ended: 8 bytes, a kind (0 exited, 1 killed
/// by a signal) and the code or signal.
const STATUS_LEN: usize = 8;

/// The launcher's request to the helper: kill the process and its group.
const KILL: [u8; 1] = [1];

/// Runs `command` in the container whose workload `pidfd` refers to, and returns its
/// status and output. The process joins `cgroups` in order (the task's, then the
/// container's, so that hierarchies where the container has no cgroup of its own
/// still hold it in the task's). With a `timeout`, a process still running then is
/// killed with its process group and reported as `Signaled(SIGKILL)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    container: &str,
    container_plan: &ChildPlan,
    command: &[OsString],
    pidfd: &OwnedFd,
    cgroups: &[&TaskCgroup],
    userns: bool,
    nofile: u64,
    timeout: Option<Duration>,
) -> Result<Output, Error> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let plan = container_plan.for_exec(command)?;
    let argv = pointers(&plan.argv);
    let envp = pointers(&plan.envp);
    let exec = ExecArgs {
        argv: &argv,
        envp: &envp,
    };

    // Every descriptor the helper or the process holds is above 2, where the
    // process's dup2 onto its standard streams cannot clobber it.
    let pipe = |what: &str| -> Result<(OwnedFd, OwnedFd), Error> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Error::host(format!("create the {what} pipe"), e))?;
        Ok((above_stdio(read)?, above_stdio(write)?))
    };
    let (error_read, error_write) = pipe("exec error")?;
    let (out_read, out_write) = pipe("exec stdout")?;
    let (err_read, err_write) = pipe("exec stderr")?;
    let (sock, helper_sock) =
        sys::seqpacket_pair().map_err(|e| Error::host("create the exec socket", e))?;
    // SAFETY: socketpair returned two new descriptors that nothing else owns.
    let (sock, helper_sock) = unsafe {
        (
            OwnedFd::from_raw_fd(sock),
            OwnedFd::from_raw_fd(helper_sock),
        )
    };
    let helper_sock = above_stdio(helper_sock)?;
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::host("open /dev/null", e))?;
    let null = above_stdio(null)?;
    let mut join = Vec::new();
    for cgroup in cgroups {
        for file in cgroup.attach_files()? {
            join.push(above_stdio(file)?);
        }
    }
    let join_fds: Vec<RawFd> = join.iter().map(AsRawFd::as_raw_fd).collect();
    let mut setns_flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if userns {
        setns_flags |= libc::CLONE_NEWUSER;
    }
    let stdio = [
        null.as_raw_fd(),
        out_write.as_raw_fd(),
        err_write.as_raw_fd(),
    ];
    let mut keep = vec![
        error_write.as_raw_fd(),
        helper_sock.as_raw_fd(),
        pidfd.as_raw_fd(),
    ];
    keep.extend(stdio);
    keep.extend(&join_fds);
    keep.sort_unstable();
    let fds = ExecFds {
        error_write: error_write.as_raw_fd(),
        sock: helper_sock.as_raw_fd(),
        keep: &keep,
        keep_in_process: [error_write.as_raw_fd()],
        cgroup_join: &join_fds,
        target: pidfd.as_raw_fd(),
        setns_flags,
        stdio,
        nofile,
        argv_area: sys::argv_area(),
    };

    // SAFETY: the child runs only `helper`, raw syscalls on data built above, and
    // never returns.
    let helper_pidfd = match unsafe { sys::clone_pidfd_quiet(0) } {
        Ok(sys::Cloned::Child) => helper(&plan, &fds, &exec),
        Ok(sys::Cloned::Parent { pidfd, .. }) => {
            // SAFETY: CLONE_PIDFD gave us a new descriptor that nothing else owns.
            unsafe { OwnedFd::from_raw_fd(pidfd) }
        }
        Err(errno) => return Err(Error::host("clone the exec helper", errno)),
    };
    drop((error_write, helper_sock, out_write, err_write, null, join));
    let helper = Helper {
        pidfd: helper_pidfd,
        sock,
    };

    // EOF on the error pipe: the process exec'd (or died before it could report).
    // Otherwise the helper or the process says which step failed.
    let mut report = [0u8; Failure::WIRE_LEN];
    let n = match sys::read_full(error_read.as_raw_fd(), &mut report) {
        Ok(n) => n,
        Err(errno) => {
            helper.finish(Some(errno));
            return Err(Error::host("read the exec result", errno));
        }
    };
    if n == Failure::WIRE_LEN {
        let ended = helper.finish(None);
        return Err(exec_failure(container, command, Some(&report), ended));
    }
    let (status, stdout, stderr) = helper.collect([out_read, err_read], deadline);
    match status {
        Ok(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Err(ended) => Err(exec_failure(container, command, None, ended)),
    }
}

/// The launcher's side of a running helper.
struct Helper {
    pidfd: OwnedFd,
    sock: OwnedFd,
}

impl Helper {
    /// Reads the process's stdout and stderr until the helper reports its end, then
    /// drains what is left in the pipes without waiting for EOF. Past `deadline` the
    /// helper is asked to kill it. Returns its status, or what became of a helper that
    /// ended without one.
    fn collect(
        self,
        streams: [OwnedFd; 2],
        deadline: Option<Instant>,
    ) -> (Result<ExitStatus, HelperEnd>, Vec<u8>, Vec<u8>) {
        let mut out: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut open = [true, true];
        let mut killed = false;
        let mut buf = vec![0u8; 64 * 1024];
        let status = loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if open[0] { streams[0].as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if open[1] { streams[1].as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout_ms = match deadline {
                Some(deadline) if !killed => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
                }
                _ => -1,
            };
            match sys::poll(&mut fds, timeout_ms) {
                Ok(0) => {
                    // Out of time. A helper that cannot be told kills it anyway when
                    // this socket closes.
                    let _ = sys::send_with_fds(self.sock.as_raw_fd(), &KILL, &[]);
                    killed = true;
                    continue;
                }
                Ok(_) => {}
                Err(errno) => break Err(HelperEnd::Unheard(errno)),
            }
            for (i, stream) in streams.iter().enumerate() {
                if fds[i + 1].revents != 0 {
                    match sys::read_some(stream.as_raw_fd(), &mut buf) {
                        Ok(0) | Err(_) => open[i] = false,
                        Ok(n) => out[i].extend_from_slice(&buf[..n]),
                    }
                }
            }
            if fds[0].revents != 0 {
                break self.status();
            }
        };
        // The process has ended: everything it wrote is in the pipes.
        for (i, stream) in streams.iter().enumerate() {
            if !open[i] || sys::set_nonblocking(stream.as_raw_fd()).is_err() {
                continue;
            }
            while let Ok(n @ 1..) = sys::read_some(stream.as_raw_fd(), &mut buf) {
                out[i].extend_from_slice(&buf[..n]);
            }
        }
        let status = match status {
            Ok(status) => {
                self.reap();
                Ok(status)
            }
            Err(HelperEnd::Unheard(errno)) => Err(self.finish(Some(errno))),
            Err(_) => Err(self.finish(None)),
        };
        let [stdout, stderr] = out;
        (status, stdout, stderr)
    }

    /// The helper's report of the process's end; an error if it ended without one.
    fn status(&self) -> Result<ExitStatus, HelperEnd> {
        let mut msg = [0u8; STATUS_LEN];
        let mut no_fds = [-1; 1];
        match sys::recv_with_fds(self.sock.as_raw_fd(), &mut msg, &mut no_fds) {
            Ok((STATUS_LEN, count)) => {
                for &fd in &no_fds[..count] {
                    sys::close(fd);
                }
                let word = |i: usize| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(&msg[i * 4..i * 4 + 4]);
                    i32::from_ne_bytes(w)
                };
                Ok(match word(0) {
                    0 => ExitStatus::Exited(word(1)),
                    _ => ExitStatus::Signaled(word(1)),
                })
            }
            Ok(_) => Err(HelperEnd::Silent),
            Err(errno) => Err(HelperEnd::Unheard(errno)),
        }
    }

    /// Reaps a helper that has reported (it exits right after).
    fn reap(self) {
        let _ = sys::waitid_pidfd(self.pidfd.as_raw_fd(), 0);
    }

    /// Ends a helper that did not report: closing the socket makes it kill the
    /// process, if any, and exit; then it is reaped and what it became is returned.
    fn finish(self, errno: Option<Errno>) -> HelperEnd {
        drop(self.sock);
        let waited = sys::waitid_pidfd(self.pidfd.as_raw_fd(), 0);
        if let Some(errno) = errno {
            return HelperEnd::Unheard(errno);
        }
        match waited {
            Ok(Some(sys::WaitOutcome::Exited(0))) | Ok(None) => HelperEnd::Silent,
            Ok(Some(outcome)) => HelperEnd::Ended(outcome),
            Err(errno) => HelperEnd::Unheard(errno),
        }
    }
}

/// A helper that ended without the process's status.
#[derive(Debug)]
enum HelperEnd {
    /// It exited normally but said nothing (the process never ran).
    Silent,
    /// It ended this way.
    Ended(sys::WaitOutcome),
    /// It could not be heard or waited for.
    Unheard(Errno),
}

fn exec_failure(
    container: &str,
    command: &[OsString],
    report: Option<&[u8; Failure::WIRE_LEN]>,
    helper: HelperEnd,
) -> Error {
    let failure = report.and_then(Failure::decode);
    let program = command
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let helper = match helper {
        // A step that failed says all there is to say.
        _ if failure.is_some() => String::new(),
        HelperEnd::Silent => String::new(),
        HelperEnd::Ended(outcome) => format!("; the helper ended: {outcome:?}"),
        HelperEnd::Unheard(e) => format!("; the helper could not be heard: {e}"),
    };
    LaunchError {
        container: container.to_string(),
        step: failure.map_or(Step::Fork, |f| f.step),
        detail: Some(format!("exec {program}{helper}")),
        // No report at all: the helper died before it could say why.
        errno: failure.map_or(Errno::ESRCH, |f| f.errno),
    }
    .into()
}

/// The helper: out of reach, into the container's namespaces, then clone the process
/// and stay its parent until it ends.
fn helper(plan: &ChildPlan, fds: &ExecFds, exec: &ExecArgs) -> ! {
    let failure = match enter(fds) {
        // SAFETY: this helper is single-threaded; the new process runs only
        // `process`, raw syscalls on data built before the first clone.
        Ok(()) => match unsafe { sys::clone_pidfd(0) } {
            Ok(sys::Cloned::Child) => match process(plan, fds, exec) {
                Ok(never) => match never {},
                Err(failure) => child::report_and_exit(fds.error_write, failure),
            },
            Ok(sys::Cloned::Parent { pid, pidfd }) => watch(fds.sock, pid, pidfd),
            Err(errno) => Failure {
                step: Step::Fork,
                errno,
                detail: -1,
            },
        },
        Err(failure) => failure,
    };
    child::report_and_exit(fds.error_write, failure)
}

/// The helper's steps up to the container's namespaces, in order.
fn enter(fds: &ExecFds) -> Result<(), Failure> {
    // 1. Out of reach before any process of the container can see this one or a
    //    child of it. Not dumpable: no process of the task, even one with
    //    SYS_PTRACE, can trace it or open its memory, environment or descriptors
    //    (the process inherits this until its exec, which makes it the container's
    //    like any program it runs). The launcher's command line, which /proc shows
    //    to anyone, written over. Every descriptor but those the two need, closed.
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).at(Step::JoinNamespaces)?;
    if let Some(area) = fds.argv_area {
        // SAFETY: the area was read from this process's own /proc/self/stat before the
        // clone, and nothing in the helper or the process reads its arguments.
        unsafe { sys::overwrite_cmdline(area, b"tasksandbox-exec") };
    }
    let _ = sys::set_name(c"tasksandbox-exec");
    sys::close_all_except(fds.keep).at(Step::CloseFds)?;
    sys::reset_signals();

    // 2. One call, the workload's namespaces: user first, as the kernel orders it.
    sys::setns(fds.target, fds.setns_flags).at(Step::JoinNamespaces)
}

/// The helper once the process runs: it reaps nothing else, so the process's pid and
/// process group stay its own until it is reaped here. Kills both when the launcher
/// asks, or goes away; sends the launcher the status, then exits.
fn watch(sock: RawFd, pid: libc::pid_t, pidfd: RawFd) -> ! {
    // The error pipe's last copy outside the process goes, so that its exec shows as
    // EOF; the process's other descriptors go too.
    let mut keep = [sock, pidfd];
    keep.sort_unstable();
    let _ = sys::close_all_except(&keep);
    let mut fds = [
        libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let kill = || {
        let _ = sys::kill_process_group(pid, libc::SIGKILL);
        let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
    };
    loop {
        match sys::poll(&mut fds, -1) {
            Ok(_) if fds[0].revents != 0 => break,
            // Asked to kill, or the launcher gone: kill, once, and wait for the end.
            Ok(_) => {
                kill();
                fds[1].fd = -1;
            }
            Err(_) => {
                kill();
                break;
            }
        }
    }
    let (kind, value) = match sys::waitid_pidfd(pidfd, 0) {
        Ok(Some(sys::WaitOutcome::Exited(code))) => (0i32, code),
        Ok(Some(sys::WaitOutcome::Signaled(signal))) => (1, signal),
        _ => sys::exit_now(1),
    };
    let mut msg = [0u8; STATUS_LEN];
    msg[..4].copy_from_slice(&kind.to_ne_bytes());
    msg[4..].copy_from_slice(&value.to_ne_bytes());
    let _ = sys::send_with_fds(sock, &msg, &[]);
    sys::exit_now(0)
}

/// The exec'd process, in the container's namespaces but its cgroup namespace.
fn process(plan: &ChildPlan, fds: &ExecFds, exec: &ExecArgs) -> Result<Infallible, Failure> {
    // Into the container's cgroups (this thread moves itself, through files the
    // launcher opened), then its cgroup namespace, rooted there.
    for &fd in fds.cgroup_join {
        sys::write_all(fd, b"0").at(Step::JoinCgroup)?;
    }
    sys::setns(fds.target, libc::CLONE_NEWCGROUP).at(Step::JoinNamespaces)?;
    sys::setsid().at(Step::NewSession)?;
    sys::setrlimit(libc::RLIMIT_NOFILE, fds.nofile).at(Step::Rlimits)?;
    for (target, &fd) in fds.stdio.iter().enumerate() {
        sys::dup2(fd, target as RawFd).at(Step::Stdio)?;
    }
    // Nothing but its standard streams and the error pipe, which closes at exec.
    sys::close_all_except(&fds.keep_in_process).at(Step::CloseFds)?;
    sys::chdir(&plan.working_dir).at(Step::WorkingDir)?;
    child::lock_down(plan)?;
    child::exec_plan(plan, exec)
}
