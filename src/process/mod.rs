//! The launcher: the parent's side of a start, and supervision of what it started.
//!
//! A start is one linear sequence (see [`start`]): make the ephemeral storage's volume
//! (when it is on disk) and the cgroups, open the pipes and the control socket, `clone` the task init into new namespaces, write its id
//! maps, let it go, and read back either EOF (ready) or the step that failed. Then each
//! container whose dependencies allow is launched through the init
//! ([`Control::launch`]), and a supervisor thread takes over the rest of the task's
//! life (see [`supervise`]).

mod child;
mod exec;
pub(crate) mod failpoint;
mod init;
pub(crate) mod plan;
mod supervise;
mod wire;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::fcntl::OFlag;

pub use supervise::{ExitStatus, Output, RunningTask};

use self::child::{ExecArgs, Failure};
use self::failpoint::{hit, Failpoint};
use self::supervise::{Control, Shared};
use crate::cgroup::{CgroupLimits, CgroupVersion, Join, TaskCgroup};
use crate::container::Stdio;
use crate::error::{Error, LaunchError, Step};
use crate::lifecycle::PidMode;
use crate::namespaces::{JoinFd, ResolvedIds, TASK_CLONE_FLAGS};
use crate::sys;
use crate::task::Inner;

/// The cgroups of one started task: the task's, init's own leaf (cgroup v2 only,
/// where processes may not sit in a cgroup that has children), and one per container.
#[derive(Debug)]
pub(crate) struct Cgroups {
    pub task: TaskCgroup,
    pub init: Option<TaskCgroup>,
    pub containers: Vec<Option<TaskCgroup>>,
}

impl Cgroups {
    /// The cgroups a process exec'd into container `index` joins, in order: on v1 the
    /// task's first (the container has directories only in the hierarchies it needs),
    /// then the container's; on v2 the container's leaf alone.
    pub(crate) fn exec_join(&self, index: usize) -> Vec<&TaskCgroup> {
        let container = self.containers.get(index).and_then(Option::as_ref);
        let mut out = Vec::with_capacity(2);
        if self.init.is_none() {
            out.push(&self.task);
        }
        out.extend(container);
        out
    }

    /// Removes every cgroup, innermost first.
    fn destroy(self) {
        let inner = self.containers.into_iter().flatten().chain(self.init);
        for cgroup in inner.chain(std::iter::once(self.task)) {
            if let Err(err) = cgroup.destroy() {
                tracing::warn!(error = %err, "task cgroup not removed");
            }
        }
    }
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

/// Writes the init's uid and gid maps (and `setgroups` policy).
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

/// A process that has been cloned but not yet handed to its owner: killed and
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

/// Pointer arrays for `execve`, built from a plan's strings.
pub(super) fn pointers(strings: &[std::ffi::CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Runs `f` on a short-lived thread that first joined the network namespace `netns`,
/// so that what `f` creates there (a sysfs instance, the task init) belongs to that
/// namespace while no thread of the caller changes namespace.
///
/// This is how a task joins an existing network namespace: `setns(CLONE_NEWNET)` into
/// a namespace owned by the host's user namespace needs `CAP_SYS_ADMIN` there, which
/// the task init, once in its own user namespace, no longer has, so the join happens
/// before, in the thread that then clones init without `CLONE_NEWNET`. Nothing of
/// the task is tied to that thread: init is watched through its pidfd, waited for by
/// the launcher's other threads (Linux lets any thread of a process wait for the
/// children of another), and no parent-death signal is set, so the thread's exit
/// changes nothing for it.
fn in_netns<T: Send>(
    netns: &JoinFd,
    what: &str,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    struct Job<F>(F);
    impl<F> Job<F> {
        fn into_inner(self) -> F {
            self.0
        }
    }
    // SAFETY: the job holds references to the launch's plan (raw pointers into strings
    // owned by the task definition and by `start`'s stack) that outlive the scope
    // below; while the thread runs them, the calling thread only waits for it, so
    // nothing is used from two threads at once.
    unsafe impl<F> Send for Job<F> {}
    let job = Job(f);
    let fd = netns.as_raw_fd();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let f = job.into_inner();
                sys::setns(fd, libc::CLONE_NEWNET).map_err(|e| {
                    Error::host("join the network namespace to start the task in", e)
                })?;
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::host(
                    what,
                    std::io::Error::other("the launcher thread in the network namespace panicked"),
                ))
            })
    })
}

/// Makes the task's cgroups: the task's with its limits, init's leaf on v2, one per
/// container with its own limits. Returns them with the limits not applied.
fn create_cgroups(inner: &Inner) -> Result<(Cgroups, Vec<crate::cgroup::Limit>), Error> {
    let (task, mut not_applied) = TaskCgroup::create(
        &inner.cgroup_parent,
        &inner.next_cgroup_name(),
        &inner.limits,
        inner.best_effort,
    )?;
    let mut cgroups = Cgroups {
        task,
        init: None,
        containers: Vec::with_capacity(inner.containers.len()),
    };
    let Some(rel) = cgroups.task.path().map(ToOwned::to_owned) else {
        cgroups
            .containers
            .resize_with(inner.containers.len(), || None);
        return Ok((cgroups, not_applied));
    };
    if matches!(crate::cgroup::detect(), Ok(CgroupVersion::V2)) {
        let (init, _) =
            TaskCgroup::create(&rel, "init", &CgroupLimits::default(), inner.best_effort)?;
        cgroups.init = Some(init);
    }
    for container in &inner.containers {
        // On error `cgroups` is dropped, which removes what was made so far.
        let (cgroup, skipped) = TaskCgroup::create(
            &rel,
            &format!("ctr-{}", container.name),
            &container.limits,
            inner.best_effort,
        )?;
        not_applied.extend(skipped);
        cgroups.containers.push(Some(cgroup));
    }
    not_applied.sort_unstable();
    not_applied.dedup();
    Ok((cgroups, not_applied))
}

/// Starts a task: cgroups, the task init, then every container whose dependencies
/// allow. `first_stdio` replaces the first container's streams (for `output()`).
pub(crate) fn start(
    inner: &Arc<Inner>,
    first_stdio: Option<[Stdio; 3]>,
) -> Result<RunningTask, Error> {
    // 0. Fault injection (debug builds only) is armed, and what launchers that died
    //    left under the same parent goes.
    failpoint::arm();
    child::note_launcher_exe();
    crate::cgroup::sweep_before_start(&inner.cgroup_parent);

    //    Then the network namespace to join, if the task does not get its own, and the
    //    sysfs of that namespace for the containers' /sys (made by a thread inside
    //    it: a sysfs instance belongs to the namespace of whoever makes it).
    let netns = inner.netns.open().map_err(|e| {
        Error::host(
            format!("open the network namespace {}", inner.netns.describe()),
            e,
        )
    })?;
    let sysfs: Option<OwnedFd> = match (&netns, &inner.sysfs_stage) {
        (Some(netns), Some(_)) => Some(in_netns(
            netns,
            "make the joined namespace's sysfs",
            || {
                let fd = sys::sysfs_mount_fd()
                    .map_err(|e| Error::host("make a sysfs of the joined network namespace", e))?;
                // SAFETY: fsmount returned a new descriptor that nothing else owns.
                above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
            },
        )?),
        _ => None,
    };

    // 1. The ephemeral storage's volume, if it is on disk: a detached mount that only
    //    the task init will attach. Then the cgroups, with every limit written before
    //    any process is in them.
    let storage = match &inner.storage {
        Some(plan) => plan.prepare()?,
        None => None,
    };
    let storage_fd = storage.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    let (cgroups, not_applied) = create_cgroups(inner)?;
    hit(Failpoint::CgroupsMade);
    let init_cgroup = cgroups.init.as_ref().unwrap_or(&cgroups.task);

    // 2. The control socket, a pipe to release init, a close-on-exec pipe to hear its
    //    failure, and the files through which it joins its cgroup.
    let (launcher_sock, init_sock) =
        sys::seqpacket_pair().map_err(|e| Error::host("create the control socket", e))?;
    // SAFETY: socketpair returned two new descriptors that nothing else owns.
    let (launcher_sock, init_sock) = unsafe {
        (
            OwnedFd::from_raw_fd(launcher_sock),
            OwnedFd::from_raw_fd(init_sock),
        )
    };
    let (sync_read, sync_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::host("create the sync pipe", e))?;
    let (error_read, error_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::host("create the error pipe", e))?;
    let join = init_cgroup.join()?;
    let join_fds: Vec<RawFd> = match &join {
        Join::SelfAttach(files) => files.iter().map(AsRawFd::as_raw_fd).collect(),
        Join::ByPid => Vec::new(),
    };

    // 3. Everything init and the containers touch, as plain pointers and integers.
    let strings: Vec<(Vec<*const libc::c_char>, Vec<*const libc::c_char>)> = inner
        .containers
        .iter()
        .map(|c| (pointers(&c.plan.argv), pointers(&c.plan.envp)))
        .collect();
    let exec_args: Vec<ExecArgs> = strings
        .iter()
        .map(|(argv, envp)| ExecArgs { argv, envp })
        .collect();
    let mut pids: Vec<libc::pid_t> = vec![0; inner.containers.len()];
    let mut keep: Vec<RawFd> = vec![
        sync_read.as_raw_fd(),
        error_write.as_raw_fd(),
        init_sock.as_raw_fd(),
    ];
    keep.extend(&join_fds);
    keep.extend(storage.as_ref().map(AsRawFd::as_raw_fd));
    keep.extend(sysfs.as_ref().map(AsRawFd::as_raw_fd));
    keep.sort_unstable();
    let mut container_flags = libc::CLONE_NEWNS as libc::c_ulong;
    if inner.pid_mode == PidMode::Container {
        container_flags |= libc::CLONE_NEWPID as libc::c_ulong;
    }
    let args = init::InitArgs {
        sync_read: sync_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
        sock: init_sock.as_raw_fd(),
        cgroup_join: &join_fds,
        keep: &keep,
        setgroups: inner.ids.setgroups_allowed(),
        hostname: &inner.hostname,
        storage: inner.storage.as_ref(),
        storage_fd,
        sysfs: sysfs
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .zip(inner.sysfs_stage.as_deref()),
        loopback: netns.is_none(),
        container_flags,
        nofile: inner.nofile,
        argv_area: sys::argv_area(),
    };

    // 4. Clone the task init into the task's namespaces: a new network namespace, or,
    //    from a thread that joined it, the one given.
    let mut flags = TASK_CLONE_FLAGS | inner.ids.clone_flag();
    if netns.is_some() {
        flags &= !(libc::CLONE_NEWNET as libc::c_ulong);
    }
    let mut clone_init = || {
        // SAFETY: the child runs only `init::main`, which makes raw syscalls on data
        // built above and never returns.
        match unsafe { sys::clone_pidfd(flags) } {
            Ok(sys::Cloned::Child) => init::main(&args, &inner.containers, &exec_args, &mut pids),
            Ok(sys::Cloned::Parent { pid, pidfd }) => {
                // SAFETY: CLONE_PIDFD gave us a new descriptor that nothing else owns.
                Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
            }
            Err(errno) => Err(Error::host("clone the task init", errno)),
        }
    };
    let (pid, pidfd) = match &netns {
        None => clone_init()?,
        Some(netns) => in_netns(netns, "clone the task init", clone_init)?,
    };
    hit(Failpoint::InitCloned);
    let mut guard = KillOnDrop {
        pidfd: &pidfd,
        armed: true,
    };
    let by_pid = matches!(join, Join::ByPid);
    // The init holds its own copies of the storage's mount and the sysfs now.
    drop((
        sync_read,
        error_write,
        init_sock,
        join,
        args,
        exec_args,
        storage,
    ));
    drop((strings, pids, sysfs, netns));

    // 5. Id maps (and, where init cannot join its cgroup itself, the cgroup), then
    //    release init.
    write_id_maps(pid, &inner.ids)?;
    if by_pid {
        init_cgroup.add_process(pid)?;
    }
    hit(Failpoint::IdMapsWritten);
    sys::write_all(sync_write.as_raw_fd(), &[1])
        .map_err(|e| Error::host("release the task init", e))?;
    drop(sync_write);

    // 6. EOF on the error pipe: init is ready. Otherwise it says which step failed.
    let mut report = [0u8; Failure::WIRE_LEN];
    let n = sys::read_full(error_read.as_raw_fd(), &mut report)
        .map_err(|e| Error::host("read the task init's set-up result", e))?;
    if n == Failure::WIRE_LEN {
        return Err(init_error(Failure::decode(&report)).into());
    }
    guard.armed = false;
    drop(guard);
    hit(Failpoint::InitReady);

    // 7. The running task, then its first containers; a failure here drops the task,
    //    which kills init (and so everything) and removes the cgroups.
    let report = inner.report(cgroups.task.path().map(ToOwned::to_owned), not_applied);
    let shared = Shared::new(Arc::clone(inner), pid, pidfd, cgroups, report)?;
    let mut control = Control::new(launcher_sock, Arc::clone(&shared), first_stdio);
    let mut task = RunningTask::new(shared);
    control.start_ready()?;
    task.supervise(control)?;
    Ok(task)
}

fn init_error(failure: Option<Failure>) -> LaunchError {
    LaunchError {
        container: "(task init)".to_string(),
        step: failure.map_or(Step::WaitForLauncher, |f| f.step),
        detail: failure
            .is_none()
            .then(|| "the task init sent a report that cannot be read".into()),
        errno: failure.map_or(nix::errno::Errno::EIO, |f| f.errno),
    }
}

/// The launch error of container `index` from its child's report.
fn launch_error(inner: &Inner, index: usize, failure: Option<Failure>) -> LaunchError {
    let plan = &inner.containers[index].plan;
    let container = plan.container.clone();
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
        .and_then(|i| plan.mounts.get(i))
        .map(ToString::to_string)
        .or_else(|| match failure.step {
            Step::Exec => Some(format!(
                "{} (tried {})",
                plan.argv
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                plan.exec_candidates
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Step::WorkingDir => Some(plan.working_dir.to_string_lossy().into_owned()),
            _ => None,
        });
    LaunchError {
        container,
        step: failure.step,
        detail,
        errno: failure.errno,
    }
}

/// A container's standard stream as the launcher prepared it: what the child gets,
/// and the launcher's end, if any.
pub(crate) enum PreparedStream {
    /// Keep the init's (the launcher's) stream.
    Inherit,
    /// Give the child this descriptor; keep `parent` (a pipe's other end).
    Child {
        child: OwnedFd,
        parent: Option<File>,
    },
}

/// Opens what standard stream `index` of a container needs.
pub(crate) fn prepare_stream(index: usize, stdio: &Stdio) -> Result<PreparedStream, Error> {
    let input = index == 0;
    let child = match stdio {
        Stdio::Inherit => return Ok(PreparedStream::Inherit),
        Stdio::Null => nix::fcntl::open(
            "/dev/null",
            if input {
                OFlag::O_RDONLY
            } else {
                OFlag::O_WRONLY
            } | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::host("open /dev/null", e))?,
        Stdio::File(path) => {
            let flags = if input {
                OFlag::O_RDONLY
            } else {
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND
            };
            nix::fcntl::open(
                path,
                flags | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o640),
            )
            .map_err(|e| Error::host(format!("open {}", path.display()), e))?
        }
        Stdio::Piped | Stdio::Log => {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Error::host("create a stdio pipe", e))?;
            let (child, parent) = if input { (read, write) } else { (write, read) };
            return Ok(PreparedStream::Child {
                child: above_stdio(child)?,
                parent: Some(File::from(parent)),
            });
        }
    };
    Ok(PreparedStream::Child {
        child: above_stdio(child)?,
        parent: None,
    })
}
