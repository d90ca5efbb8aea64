//! Exec into a running container (what ECS Exec gives): a new process inside the
//! container's namespaces and cgroup, with exactly the container's capabilities,
//! no_new_privs, Landlock domain (if any) and seccomp filter.
//!
//! The launcher clones a helper that joins the container's cgroup, enters all of its
//! namespaces at once through the workload's pidfd, and clones the process itself as
//! a sibling (`CLONE_PARENT`), so that it is the launcher's own child, waitable
//! through a pidfd. The process then runs the same last steps as a container's
//! workload ([`child::lock_down`]) and execs. Like the container child, neither the
//! helper nor the process allocates.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use libc::c_ulong;
use nix::fcntl::OFlag;

use super::child::{self, Context, ExecArgs, Failure};
use super::plan::ChildPlan;
use super::pointers;
use super::supervise::{ExitStatus, Output};
use crate::cgroup::TaskCgroup;
use crate::error::{Error, LaunchError, Step};
use crate::sys;

/// What the helper and the process need, prepared before the clone.
struct ExecFds<'a> {
    error_write: RawFd,
    pid_write: RawFd,
    cgroup_join: &'a [RawFd],
    target: RawFd,
    setns_flags: libc::c_int,
    stdio: [RawFd; 3],
    nofile: u64,
}

/// Runs `command` in the container whose workload `pidfd` refers to, and returns its
/// status and output. The process joins `cgroups` in order (the task's, then the
/// container's, so that hierarchies where the container has no cgroup of its own
/// still hold it in the task's). With a `timeout`, a process still running then is killed and
/// reported as `Signaled(SIGKILL)`.
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
    let plan = container_plan.for_exec(command)?;
    let argv = pointers(&plan.argv);
    let envp = pointers(&plan.envp);
    let exec = ExecArgs {
        argv: &argv,
        envp: &envp,
    };

    let pipe = |what: &str| {
        nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Error::host(format!("create the {what} pipe"), e))
    };
    let (error_read, error_write) = pipe("exec error")?;
    let (pid_read, pid_write) = pipe("exec pid")?;
    let (out_read, out_write) = pipe("exec stdout")?;
    let (err_read, err_write) = pipe("exec stderr")?;
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::host("open /dev/null", e))?;
    let mut join = Vec::new();
    for cgroup in cgroups {
        join.extend(cgroup.attach_files()?);
    }
    let join_fds: Vec<RawFd> = join.iter().map(AsRawFd::as_raw_fd).collect();
    let mut setns_flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if userns {
        setns_flags |= libc::CLONE_NEWUSER;
    }
    let fds = ExecFds {
        error_write: error_write.as_raw_fd(),
        pid_write: pid_write.as_raw_fd(),
        cgroup_join: &join_fds,
        target: pidfd.as_raw_fd(),
        setns_flags,
        stdio: [
            null.as_raw_fd(),
            out_write.as_raw_fd(),
            err_write.as_raw_fd(),
        ],
        nofile,
    };

    // SAFETY: the child runs only `helper`, raw syscalls on data built above, and
    // never returns.
    let (_, helper_pidfd) = match unsafe { sys::clone_pidfd(0) } {
        Ok(sys::Cloned::Child) => helper(&plan, &fds, &exec),
        Ok(sys::Cloned::Parent { pid, pidfd }) => {
            // SAFETY: CLONE_PIDFD gave us a new descriptor that nothing else owns.
            (pid, unsafe { OwnedFd::from_raw_fd(pidfd) })
        }
        Err(errno) => return Err(Error::host("clone the exec helper", errno)),
    };
    drop((error_write, pid_write, out_write, err_write, null, join));
    // The helper exits as soon as it has cloned the process (or failed).
    let helper_status = sys::waitid_pidfd(helper_pidfd.as_raw_fd(), 0);
    let mut pid_bytes = [0u8; 4];
    let got = sys::read_full(pid_read.as_raw_fd(), &mut pid_bytes)
        .map_err(|e| Error::host("read the exec'd process's pid", e))?;
    let process = if got == 4 {
        let pid = i32::from_ne_bytes(pid_bytes);
        // The process is this launcher's child and nobody else can reap it, so its
        // pid cannot have been reused.
        let fd = sys::pidfd_open(pid).map_err(|e| Error::host(format!("pidfd_open {pid}"), e))?;
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };

    // EOF on the error pipe: the process exec'd. Otherwise the helper or the process
    // says which step failed.
    let mut report = [0u8; Failure::WIRE_LEN];
    let n = sys::read_full(error_read.as_raw_fd(), &mut report)
        .map_err(|e| Error::host("read the exec result", e))?;
    let process = match process {
        Some(process) if n < Failure::WIRE_LEN => process,
        process => {
            if let Some(process) = &process {
                let _ = sys::waitid_pidfd(process.as_raw_fd(), 0);
            }
            return Err(exec_failure(container, command, &report, helper_status));
        }
    };

    let err_reader = std::thread::spawn(move || read_all(err_read));
    let deadline = timeout.map(|t| Instant::now() + t);
    let out_reader = std::thread::spawn(move || read_all(out_read));
    let status = wait_until(&process, deadline)?;
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn exec_failure(
    container: &str,
    command: &[OsString],
    report: &[u8; Failure::WIRE_LEN],
    helper: Result<Option<sys::WaitOutcome>, nix::errno::Errno>,
) -> Error {
    let failure = Failure::decode(report);
    let program = command
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let helper = match helper {
        Ok(Some(sys::WaitOutcome::Exited(0))) | Ok(None) => String::new(),
        Ok(Some(other)) => format!("; the helper ended: {other:?}"),
        Err(e) => format!("; the helper could not be waited for: {e}"),
    };
    LaunchError {
        container: container.to_string(),
        step: failure.map_or(Step::Fork, |f| f.step),
        detail: Some(format!("exec {program}{helper}")),
        // No report at all: the helper died before it could say why.
        errno: failure.map_or(nix::errno::Errno::ESRCH, |f| f.errno),
    }
    .into()
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = File::from(fd).read_to_end(&mut out);
    out
}

/// Waits for the process; past `deadline` it is killed.
fn wait_until(process: &OwnedFd, deadline: Option<Instant>) -> Result<ExitStatus, Error> {
    if let Some(deadline) = deadline {
        let mut fds = [libc::pollfd {
            fd: process.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        if sys::poll(&mut fds, ms).map_err(|e| Error::host("poll an exec'd process", e))? == 0 {
            let _ = sys::pidfd_send_signal(process.as_raw_fd(), libc::SIGKILL);
        }
    }
    let outcome = sys::waitid_pidfd(process.as_raw_fd(), 0)
        .and_then(|o| o.ok_or(nix::errno::Errno::ECHILD))
        .map_err(|e| Error::host("wait for an exec'd process", e))?;
    Ok(match outcome {
        sys::WaitOutcome::Exited(code) => ExitStatus::Exited(code),
        sys::WaitOutcome::Signaled(sig) => ExitStatus::Signaled(sig),
    })
}

/// The helper: into the container's cgroup and namespaces, then clone the process.
fn helper(plan: &ChildPlan, fds: &ExecFds, exec: &ExecArgs) -> ! {
    let failure = match enter(fds) {
        Ok(()) => {
            // SAFETY: this helper is single-threaded; the new process runs only
            // `process`, raw syscalls on data built before the first clone.
            match unsafe { sys::clone_plain(libc::CLONE_PARENT as c_ulong) } {
                Ok(0) => match process(plan, fds, exec) {
                    Ok(never) => match never {},
                    Err(failure) => child::report_and_exit(fds.error_write, failure),
                },
                Ok(pid) => {
                    let _ = sys::write_all(fds.pid_write, &pid.to_ne_bytes());
                    sys::exit_now(0)
                }
                Err(errno) => Failure {
                    step: Step::Fork,
                    errno,
                    detail: -1,
                },
            }
        }
        Err(failure) => failure,
    };
    child::report_and_exit(fds.error_write, failure)
}

fn enter(fds: &ExecFds) -> Result<(), Failure> {
    sys::reset_signals();
    for &fd in fds.cgroup_join {
        sys::write_all(fd, b"0").at(Step::JoinCgroup)?;
    }
    // One call, all namespaces of the workload: user first, as the kernel orders it.
    sys::setns(fds.target, fds.setns_flags).at(Step::JoinNamespaces)
}

/// The exec'd process, a child of the launcher inside the container.
fn process(plan: &ChildPlan, fds: &ExecFds, exec: &ExecArgs) -> Result<Infallible, Failure> {
    sys::setsid().at(Step::NewSession)?;
    sys::setrlimit(libc::RLIMIT_NOFILE, fds.nofile).at(Step::Rlimits)?;
    for (target, &fd) in fds.stdio.iter().enumerate() {
        sys::dup2(fd, target as RawFd).at(Step::Stdio)?;
    }
    child::close_other_fds(fds.nofile).at(Step::CloseFds)?;
    sys::chdir(&plan.working_dir).at(Step::WorkingDir)?;
    child::lock_down(plan)?;
    child::exec_plan(plan, exec)
}
