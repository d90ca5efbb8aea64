//! The launcher: the parent's side of a start, and supervision of what it started.
//!
//! A start is one linear sequence (see [`spawn`]): make the cgroup, open the pipes,
//! `clone` into new namespaces, write the id maps, put the child in the cgroup, let it
//! go, and read back either EOF (it exec'd) or the step that failed.

mod child;
pub(crate) mod plan;
mod supervise;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;

pub use supervise::{ExitStatus, Output, RunningTask};

use self::child::{ChildFds, ExecArgs, Failure};
use crate::cgroup::{Join, TaskCgroup};
use crate::container::Stdio;
use crate::error::{Error, LaunchError, Step};
use crate::namespaces::{ResolvedIds, TASK_CLONE_FLAGS};
use crate::sys;
use crate::task::Inner;

/// The parent ends of the workload's piped streams.
#[derive(Default)]
pub(crate) struct ParentStdio {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// Opens what each standard stream of the child needs; returns the child's ends (kept
/// open until the child has them) and the parent's.
fn open_stdio(streams: [Stdio; 3]) -> Result<(Vec<OwnedFd>, [RawFd; 3], ParentStdio), Error> {
    let mut keep = Vec::new();
    let mut child_fds = [-1; 3];
    let mut parent = ParentStdio::default();
    for (index, stdio) in streams.into_iter().enumerate() {
        let child_end = match stdio {
            Stdio::Inherit => continue,
            Stdio::Null => {
                let flags = if index == 0 {
                    OFlag::O_RDONLY
                } else {
                    OFlag::O_WRONLY
                };
                nix::fcntl::open(
                    "/dev/null",
                    flags | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| Error::host("open /dev/null", e))?
            }
            Stdio::Piped => {
                let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                    .map_err(|e| Error::host("create a stdio pipe", e))?;
                let (child_end, parent_end) = if index == 0 {
                    (read, write)
                } else {
                    (write, read)
                };
                let file = Some(File::from(parent_end));
                match index {
                    0 => parent.stdin = file,
                    1 => parent.stdout = file,
                    _ => parent.stderr = file,
                }
                child_end
            }
        };
        let child_end = above_stdio(child_end)?;
        child_fds[index] = child_end.as_raw_fd();
        keep.push(child_end);
    }
    Ok((keep, child_fds, parent))
}

/// Moves `fd` to a number above 2, so the child's `dup2` onto 0–2 cannot clobber it.
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, Error> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .map_err(|e| Error::host("move a descriptor above 2", e))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Writes the child's uid and gid maps (and `setgroups` policy).
fn write_id_maps(pid: libc::pid_t, ids: &ResolvedIds) -> Result<(), Error> {
    let ResolvedIds::Mapped {
        map,
        deny_setgroups,
    } = ids
    else {
        return Ok(());
    };
    let write = |file: &str, contents: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, contents).map_err(|e| Error::host(format!("write {path}"), e))
    };
    write("uid_map", format!("0 {} {}\n", map.host_uid, map.count))?;
    if *deny_setgroups {
        write("setgroups", "deny\n".to_string())?;
    }
    write("gid_map", format!("0 {} {}\n", map.host_gid, map.count))
}

/// A child that has been cloned but not yet handed to a [`RunningTask`]: killed and
/// reaped if the start fails half-way, unless disarmed.
struct KillOnDrop<'a> {
    pidfd: &'a OwnedFd,
    armed: bool,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = sys::waitid_pidfd(self.pidfd.as_raw_fd(), 0);
        }
    }
}

/// Starts the task's container.
pub(crate) fn spawn(inner: &Inner, stdio: [Stdio; 3]) -> Result<RunningTask, Error> {
    let plan = &inner.plan;

    // 1. The task cgroup, with every limit written before any process is in it.
    let (cgroup, not_applied) = TaskCgroup::create(
        &inner.cgroup_parent,
        &inner.next_cgroup_name(),
        &inner.limits,
        inner.best_effort,
    )?;

    // 2. Pipes: one to release the child, one (close-on-exec) to hear its failure,
    //    and the standard streams.
    let (sync_read, sync_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::host("create the sync pipe", e))?;
    let (error_read, error_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::host("create the error pipe", e))?;
    let (child_stdio, stdio_fds, parent_stdio) = open_stdio(stdio)?;
    let join = cgroup.join()?;
    let join_fds: Vec<RawFd> = match &join {
        Join::SelfAttach(files) => files.iter().map(AsRawFd::as_raw_fd).collect(),
        Join::ByPid => Vec::new(),
    };

    // 3. Everything the child touches, as plain pointers and integers.
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let fds = ChildFds {
        sync_read: sync_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
        cgroup_join: &join_fds,
        stdio: stdio_fds,
        nofile: inner.nofile,
    };
    let exec = ExecArgs {
        argv: &argv,
        envp: &envp,
    };

    // 4. Clone into the new namespaces.
    let flags = TASK_CLONE_FLAGS | inner.ids.clone_flag();
    // SAFETY: the child runs only `child::main`, which makes raw syscalls on data built
    // above and never returns.
    let (pid, pidfd) = match unsafe { sys::clone_pidfd(flags) } {
        Ok(sys::Cloned::Child) => child::main(plan, &fds, &exec),
        Ok(sys::Cloned::Parent { pid, pidfd }) => {
            // SAFETY: CLONE_PIDFD gave us a new descriptor that nothing else owns.
            (pid, unsafe { OwnedFd::from_raw_fd(pidfd) })
        }
        Err(errno) => return Err(Error::host("clone the task's first process", errno)),
    };
    let mut guard = KillOnDrop {
        pidfd: &pidfd,
        armed: true,
    };
    let by_pid = matches!(join, Join::ByPid);
    drop((sync_read, error_write, child_stdio, join));

    // 5. Id maps (and, where the child cannot join the cgroup itself, the cgroup),
    //    then release the child.
    write_id_maps(pid, &inner.ids)?;
    if by_pid {
        cgroup.add_process(pid)?;
    }
    sys::write_all(sync_write.as_raw_fd(), &[1])
        .map_err(|e| Error::host("release the child", e))?;
    drop(sync_write);

    // 6. EOF on the error pipe: the child exec'd. Otherwise it says which step failed.
    let mut report = [0u8; Failure::WIRE_LEN];
    let n = sys::read_full(error_read.as_raw_fd(), &mut report)
        .map_err(|e| Error::host("read the child's launch result", e))?;
    if n == Failure::WIRE_LEN {
        // The guard kills and reaps what is left of the child.
        return Err(launch_error(inner, Failure::decode(&report)).into());
    }
    guard.armed = false;
    drop(guard);
    let report = inner.report(cgroup.path().map(ToOwned::to_owned), not_applied);
    Ok(RunningTask::new(pid, pidfd, cgroup, parent_stdio, report))
}

fn launch_error(inner: &Inner, failure: Option<Failure>) -> LaunchError {
    let container = inner.plan.container.clone();
    let Some(failure) = failure else {
        return LaunchError {
            container,
            step: Step::WaitForLauncher,
            detail: Some("the child sent a report that cannot be read".into()),
            errno: nix::errno::Errno::EIO,
        };
    };
    let detail = usize::try_from(failure.detail)
        .ok()
        .and_then(|i| inner.plan.mounts.get(i))
        .map(ToString::to_string)
        .or_else(|| match failure.step {
            Step::Exec => Some(format!(
                "{} (tried {})",
                inner
                    .plan
                    .argv
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                inner
                    .plan
                    .exec_candidates
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Step::WorkingDir => Some(inner.plan.working_dir.to_string_lossy().into_owned()),
            _ => None,
        });
    LaunchError {
        container,
        step: failure.step,
        detail,
        errno: failure.errno,
    }
}
