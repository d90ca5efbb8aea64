//! A started task: the supervisor thread that runs its lifecycle (dependencies,
//! health checks, essential containers, stop with a grace period), and the
//! [`RunningTask`] handle that waits on it, execs into it, reads its streams and
//! tears it down.
//!
//! One supervisor thread per task owns the launcher's end of the control socket: it
//! launches containers as their dependencies are met, turns the init's exit reports
//! into statuses, and decides when the task stops. Exits are learned from the init
//! over the socket and the init's own end from its pidfd, never from `SIGCHLD`, so
//! tasks can be started and waited on from any number of threads.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;

use super::wire::{Event, Request, MSG_LEN};
use super::{launch_error, prepare_stream, Cgroups, PreparedStream};
use crate::container::{Condition, Stdio};
use crate::error::Error;
use crate::lifecycle::{
    ContainerExit, ContainerState, EventKind, Health, StopReason, TaskEvent, TaskExit, TaskStats,
};
use crate::logs::{LogSource, LogStream};
use crate::sys;
use crate::task::{EnforcementReport, Inner};

/// How a task's workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal (not for running out of memory).
    Signaled(i32),
    /// The kernel's OOM killer killed it for reaching a memory limit: it died of
    /// SIGKILL, and its container's count of OOM kills had moved since it started
    /// (or since [`RunningTask::signal`] last sent it SIGKILL). A SIGKILL sent from
    /// outside the crate right after another process of the same container was
    /// OOM-killed cannot be told apart from this.
    OutOfMemory,
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(*code),
            _ => None,
        }
    }

    /// The signal that killed it (`SIGKILL` for an out-of-memory kill).
    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(sig) => Some(*sig),
            ExitStatus::OutOfMemory => Some(libc::SIGKILL),
            ExitStatus::Exited(_) => None,
        }
    }

    /// Whether the OOM killer ended it.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, ExitStatus::OutOfMemory)
    }

    /// The status as a shell reports it: the code, or 128 + the signal number.
    pub fn shell_code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::Signaled(sig) => 128 + sig,
            ExitStatus::OutOfMemory => 128 + libc::SIGKILL,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => {
                let name = nix::sys::signal::Signal::try_from(*sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}"));
                write!(f, "killed by {name}")
            }
            ExitStatus::OutOfMemory => f.write_str("killed by the OOM killer: out of memory"),
        }
    }
}

/// What a finished task printed, with how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How the workload ended.
    pub status: ExitStatus,
    /// Its standard output, if piped.
    pub stdout: Vec<u8>,
    /// Its standard error, if piped.
    pub stderr: Vec<u8>,
}

/// A container as the supervisor tracks it.
#[derive(Debug)]
pub(crate) struct ContainerSlot {
    pub state: ContainerState,
    pub health: Health,
    /// The workload's pidfd, while it may run.
    pub pidfd: Option<Arc<OwnedFd>>,
    pub started_at: Option<Instant>,
    /// Parent ends of piped streams, until taken.
    pub streams: [Option<File>; 3],
    /// The OOM kill counts ([`Shared::oom_kills`]) when the workload was last known
    /// not to be dying of one: at its launch, and just before this crate sent it
    /// SIGKILL. A SIGKILL death is an OOM kill only if the counts moved since.
    pub oom_baseline: (u64, u64),
}

/// The task being stopped.
#[derive(Debug)]
struct Stopping {
    reason: StopReason,
    deadline: Instant,
    signalled: bool,
    killed: bool,
}

/// Everything the supervisor and the handle share, under one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub containers: Vec<ContainerSlot>,
    pub events: Vec<TaskEvent>,
    stop_request: Option<Duration>,
    stopping: Option<Stopping>,
    /// Why the task must stop, found while launching (a failed launch).
    trouble: Option<StopReason>,
    pub exit: Option<TaskExit>,
}

impl State {
    fn event(&mut self, kind: EventKind) {
        self.events.push(TaskEvent {
            at: SystemTime::now(),
            kind,
        });
    }
}

/// What the supervisor, health checks and the handle share.
pub(crate) struct Shared {
    pub inner: Arc<Inner>,
    pub state: Mutex<State>,
    pub changed: Condvar,
    pub init_pid: libc::pid_t,
    init_pidfd: OwnedFd,
    wake_read: OwnedFd,
    wake_write: OwnedFd,
    cgroups: Mutex<Option<Arc<Cgroups>>>,
    pub report: EnforcementReport,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("init_pid", &self.init_pid)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        inner: Arc<Inner>,
        init_pid: libc::pid_t,
        init_pidfd: OwnedFd,
        cgroups: Cgroups,
        report: EnforcementReport,
    ) -> Result<Arc<Shared>, Error> {
        let (wake_read, wake_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| Error::host("create the supervisor's wake pipe", e))?;
        let containers = inner
            .containers
            .iter()
            .map(|_| ContainerSlot {
                state: ContainerState::Pending,
                health: Health::Unknown,
                pidfd: None,
                started_at: None,
                streams: [None, None, None],
                oom_baseline: (0, 0),
            })
            .collect();
        Ok(Arc::new(Shared {
            inner,
            state: Mutex::new(State {
                containers,
                events: Vec::new(),
                stop_request: None,
                stopping: None,
                trouble: None,
                exit: None,
            }),
            changed: Condvar::new(),
            init_pid,
            init_pidfd,
            wake_read,
            wake_write,
            cgroups: Mutex::new(Some(Arc::new(cgroups))),
            report,
            threads: Mutex::new(Vec::new()),
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the supervisor to look at the state again.
    fn wake(&self) {
        let _ = sys::write_all(self.wake_write.as_raw_fd(), &[1]);
    }

    fn cgroups(&self) -> Option<Arc<Cgroups>> {
        self.cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn kill_init(&self) {
        let _ = sys::pidfd_send_signal(self.init_pidfd.as_raw_fd(), libc::SIGKILL);
    }

    /// The OOM kills counted for container `index`: in its own cgroup, and in the
    /// task's when it is the task's only container (on cgroup v1 a container without
    /// a memory limit has no memory cgroup of its own).
    fn oom_kills(&self, index: usize) -> (u64, u64) {
        let Some(cgroups) = self.cgroups() else {
            return (0, 0);
        };
        let own = cgroups.containers[index]
            .as_ref()
            .map_or(0, |cg| cg.oom_kills());
        let task = if self.inner.containers.len() == 1 {
            cgroups.task.oom_kills()
        } else {
            0
        };
        (own, task)
    }
}

/// Decodes a raw wait status, telling an OOM kill apart with the cgroups' counters.
fn exit_status(raw: i32, oom: impl FnOnce() -> bool) -> ExitStatus {
    if libc::WIFEXITED(raw) {
        ExitStatus::Exited(libc::WEXITSTATUS(raw))
    } else {
        let signal = libc::WTERMSIG(raw);
        if signal == libc::SIGKILL && oom() {
            ExitStatus::OutOfMemory
        } else {
            ExitStatus::Signaled(signal)
        }
    }
}

/// The launcher's end of the control socket, and what only its owner does: launch
/// containers and read the init's reports. Owned by `start()` while the first
/// containers launch, then by the supervisor thread.
pub(crate) struct Control {
    sock: OwnedFd,
    shared: Arc<Shared>,
    first_stdio: Option<[Stdio; 3]>,
    init_gone: bool,
    /// The task cgroup's OOM kills when a container's exit was last recorded: a count
    /// above it when the init dies is the init's.
    task_oom_seen: u64,
}

impl Control {
    pub(crate) fn new(sock: OwnedFd, shared: Arc<Shared>, first_stdio: Option<[Stdio; 3]>) -> Self {
        Control {
            sock,
            shared,
            first_stdio,
            init_gone: false,
            task_oom_seen: 0,
        }
    }

    /// Launches, in order, every pending container whose dependencies are met, until
    /// none is left; the first failure is returned.
    pub(crate) fn start_ready(&mut self) -> Result<(), Error> {
        while let Some(index) = self.next_ready() {
            self.launch(index)?;
        }
        Ok(())
    }

    /// The first pending container whose dependencies are all met.
    fn next_ready(&self) -> Option<usize> {
        let state = self.shared.lock();
        if state.stopping.is_some() || state.exit.is_some() {
            return None;
        }
        let inner = &self.shared.inner;
        (0..inner.containers.len()).find(|&i| {
            matches!(state.containers[i].state, ContainerState::Pending)
                && inner.containers[i]
                    .depends_on
                    .iter()
                    .all(|&(dep, condition)| met(&state.containers[dep], condition))
        })
    }

    /// Launches container `index` through the init and waits until it has exec'd (or
    /// failed, which is returned).
    fn launch(&mut self, index: usize) -> Result<(), Error> {
        let result = self.try_launch(index);
        if result.is_err() {
            let mut state = self.shared.lock();
            let slot = &mut state.containers[index];
            if matches!(slot.state, ContainerState::Pending) {
                slot.state = ContainerState::NotStarted;
            }
            self.shared.changed.notify_all();
        }
        result
    }

    fn try_launch(&mut self, index: usize) -> Result<(), Error> {
        let inner = Arc::clone(&self.shared.inner);
        let spec = &inner.containers[index];
        let stdio = match (index, &self.first_stdio) {
            (0, Some(first)) => first.clone(),
            _ => spec.stdio.clone(),
        };
        let mut child_fds: Vec<OwnedFd> = Vec::new();
        let mut parents: [Option<File>; 3] = [None, None, None];
        let mut mask = 0u32;
        let (error_read, error_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::host("create the error pipe", e))?;
        child_fds.push(error_write);
        for (stream, how) in stdio.iter().enumerate() {
            if let PreparedStream::Child { child, parent } = prepare_stream(stream, how)? {
                mask |= 1 << stream;
                child_fds.push(child);
                parents[stream] = parent;
            }
        }
        let cgroups = self.shared.cgroups();
        let attach = match cgroups.as_ref().and_then(|c| c.containers[index].as_ref()) {
            Some(cgroup) => cgroup.attach_files()?,
            None => Vec::new(),
        };
        let cgroup_fds = attach.len() as u32;
        child_fds.extend(attach);
        // Kills counted before this workload exists are not its.
        let baseline = self.shared.oom_kills(index);
        self.shared.lock().containers[index].oom_baseline = baseline;
        let raw: Vec<RawFd> = child_fds.iter().map(AsRawFd::as_raw_fd).collect();
        let request = Request::Start {
            index: index as u32,
            stdio_mask: mask,
            cgroup_fds,
        };
        sys::send_with_fds(self.sock.as_raw_fd(), &request.encode(), &raw)
            .map_err(|e| Error::host(format!("ask the task init to start {:?}", spec.name), e))?;
        // The init holds its own copies now; ours must go for the error pipe to see EOF.
        drop(child_fds);

        // The init answers with the new process (or why there is none); exits of other
        // containers may come first.
        let pidfd = loop {
            match self.receive(-1)? {
                Some((Event::Started { index: i, .. }, Some(fd))) if i as usize == index => {
                    break fd
                }
                Some((Event::StartFailed { index: i, errno }, _)) if i as usize == index => {
                    return Err(Error::host(
                        format!("clone container {:?}", spec.name),
                        Errno::from_raw(errno),
                    ))
                }
                Some(_) => continue,
                None => {
                    return Err(Error::host(
                        format!("start container {:?}", spec.name),
                        Errno::ESRCH,
                    ))
                }
            }
        };
        super::failpoint::hit(super::failpoint::Failpoint::ContainerCloned);
        let mut report = [0u8; super::Failure::WIRE_LEN];
        let n = sys::read_full(error_read.as_raw_fd(), &mut report)
            .map_err(|e| Error::host("read the container's launch result", e))?;
        if n == super::Failure::WIRE_LEN {
            return Err(launch_error(&inner, index, super::Failure::decode(&report)).into());
        }
        super::failpoint::hit(super::failpoint::Failpoint::ContainerExeced);
        let pid = sys::pidfd_pid(pidfd.as_raw_fd()).unwrap_or(0) as u32;

        let mut logs = Vec::new();
        let mut state = self.shared.lock();
        let slot = &mut state.containers[index];
        if matches!(slot.state, ContainerState::Pending) {
            slot.state = ContainerState::Running { pid };
        }
        slot.pidfd = Some(Arc::new(pidfd));
        slot.started_at = Some(Instant::now());
        for (stream, parent) in parents.into_iter().enumerate() {
            match (&stdio[stream], parent) {
                (Stdio::Log, Some(file)) => logs.push(LogSource {
                    container: Arc::clone(&spec.name),
                    stream: if stream == 1 {
                        LogStream::Stdout
                    } else {
                        LogStream::Stderr
                    },
                    file,
                }),
                (_, parent) => slot.streams[stream] = parent,
            }
        }
        state.event(EventKind::Started {
            container: spec.name.to_string(),
            pid,
        });
        drop(state);
        self.shared.changed.notify_all();

        let mut threads = Vec::new();
        if !logs.is_empty() {
            let sink = inner
                .log_sink
                .clone()
                .unwrap_or_else(crate::logs::default_sink);
            threads.push(std::thread::spawn(move || crate::logs::pump(logs, sink)));
        }
        if spec.health_check.is_some() {
            let shared = Arc::clone(&self.shared);
            threads.push(std::thread::spawn(move || health_loop(&shared, index)));
        }
        self.shared
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(threads);
        Ok(())
    }

    /// Reads one message from the init (waiting up to `timeout_ms`, -1 forever) and
    /// applies it; `None` on timeout. An init that went away is recorded and gives
    /// `None` at once.
    fn receive(&mut self, timeout_ms: i32) -> Result<Option<(Event, Option<OwnedFd>)>, Error> {
        if self.init_gone {
            return Ok(None);
        }
        let mut fds = [libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if sys::poll(&mut fds, timeout_ms).map_err(|e| Error::host("poll the control socket", e))?
            == 0
        {
            return Ok(None);
        }
        let mut msg = [0u8; MSG_LEN];
        let mut passed = [-1; 2];
        // An error reading is the same as EOF: the init cannot be heard any more.
        let (n, count) =
            sys::recv_with_fds(self.sock.as_raw_fd(), &mut msg, &mut passed).unwrap_or_default();
        // SAFETY: the descriptors were just received and belong to nobody else.
        let mut owned: Vec<OwnedFd> = passed[..count]
            .iter()
            .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        if n == 0 {
            self.init_gone = true;
            return Ok(None);
        }
        let Some(event) = Event::decode(&msg) else {
            // Cannot happen with this crate's init; answered with an event for no
            // container, which every caller passes over.
            return Ok(Some((
                Event::StartFailed {
                    index: u32::MAX,
                    errno: 0,
                },
                None,
            )));
        };
        if let Event::Exited { index, status } = event {
            self.record_exit(index as usize, status);
        }
        Ok(Some((event, owned.pop())))
    }

    fn record_exit(&mut self, index: usize, raw: i32) {
        let inner = &self.shared.inner;
        let Some(spec) = inner.containers.get(index) else {
            return;
        };
        self.task_oom_seen = self.task_oom_kills();
        // An OOM kill of another process of the container (a child, an exec'd
        // process) earlier moved the counts too: only a move since the baseline is
        // this death's.
        let now = self.shared.oom_kills(index);
        let mut state = self.shared.lock();
        let slot = &mut state.containers[index];
        let (own, task) = slot.oom_baseline;
        let status = exit_status(raw, || now.0 > own || now.1 > task);
        slot.state = ContainerState::Exited(status);
        slot.pidfd = None;
        if status.is_out_of_memory() {
            state.event(EventKind::OutOfMemory {
                container: spec.name.to_string(),
            });
        }
        state.event(EventKind::Exited {
            container: spec.name.to_string(),
            status,
        });
        drop(state);
        self.shared.changed.notify_all();
    }

    /// The supervisor thread's loop.
    fn supervise(mut self) {
        loop {
            let plan = self.decide();
            for pidfd in &plan.terminate {
                let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGTERM);
            }
            if plan.kill {
                self.shared.kill_init();
            }
            if plan.finished || self.init_gone {
                self.finish();
                return;
            }
            if let Some(index) = plan.launch {
                if let Err(err) = self.launch(index) {
                    let mut state = self.shared.lock();
                    state.trouble.get_or_insert(StopReason::LaunchFailed {
                        container: self.shared.inner.containers[index].name.to_string(),
                        error: err.chain(),
                    });
                }
                continue;
            }
            // Wait for the init, a request from the handle or a health check, or the
            // stop deadline.
            let timeout = plan.deadline.map_or(-1, |d| {
                let left = d.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
            });
            let mut fds = [
                libc::pollfd {
                    fd: self.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.shared.wake_read.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if sys::poll(&mut fds, timeout).is_err() {
                self.init_gone = true;
                continue;
            }
            if fds[1].revents != 0 {
                sys::drain(self.shared.wake_read.as_raw_fd());
            }
            if fds[0].revents != 0 && self.receive(0).is_err() {
                self.init_gone = true;
            }
        }
    }

    /// Looks at the state and decides the next actions.
    fn decide(&mut self) -> Plan {
        let inner = Arc::clone(&self.shared.inner);
        let mut state = self.shared.lock();
        let now = Instant::now();
        let mut plan = Plan::default();

        // A stop asked for by the handle (the shortest grace wins).
        if let Some(grace) = state.stop_request.take() {
            let deadline = now + grace;
            match &mut state.stopping {
                Some(stopping) => stopping.deadline = stopping.deadline.min(deadline),
                None => begin_stop(&mut state, StopReason::Requested, grace),
            }
        }
        // Containers that can never start: a dependency cannot meet its condition any
        // more, or did not meet it within its start timeout. The earliest timeout
        // still running is when to look again.
        let mut next_timeout: Option<Instant> = None;
        for i in 0..inner.containers.len() {
            if !matches!(state.containers[i].state, ContainerState::Pending) {
                continue;
            }
            let blocked = inner.containers[i]
                .depends_on
                .iter()
                .find(|&&(dep, condition)| impossible(&state.containers[dep], condition));
            let mut timed_out = None;
            for &(dep, condition) in &inner.containers[i].depends_on {
                let (slot, spec) = (&state.containers[dep], &inner.containers[dep]);
                let (Some(timeout), Some(started)) = (spec.start_timeout, slot.started_at) else {
                    continue;
                };
                if met(slot, condition) {
                    continue;
                }
                let expires = started + timeout;
                if now >= expires {
                    timed_out.get_or_insert((dep, condition, timeout));
                } else {
                    next_timeout = Some(next_timeout.map_or(expires, |t| t.min(expires)));
                }
            }
            let stopping = state.stopping.is_some();
            let container = inner.containers[i].name.to_string();
            if let Some(&(dep, _)) = blocked {
                state.containers[i].state = ContainerState::NotStarted;
                if inner.containers[i].essential {
                    state.trouble.get_or_insert(StopReason::DependencyFailed {
                        container,
                        dependency: inner.containers[dep].name.to_string(),
                    });
                }
            } else if let Some((dep, condition, timeout)) = timed_out {
                state.containers[i].state = ContainerState::NotStarted;
                let dependency = inner.containers[dep].name.to_string();
                state.event(EventKind::DependencyTimedOut {
                    container: container.clone(),
                    dependency: dependency.clone(),
                    condition,
                    timeout,
                });
                if inner.containers[i].essential {
                    state.trouble.get_or_insert(StopReason::DependencyTimedOut {
                        container,
                        dependency,
                        condition,
                        timeout,
                    });
                }
            } else if stopping {
                state.containers[i].state = ContainerState::NotStarted;
            }
        }
        // Why the task must stop, if it must.
        if state.stopping.is_none() {
            let reason = state.trouble.take().or_else(|| {
                inner
                    .containers
                    .iter()
                    .zip(&state.containers)
                    .find_map(|(spec, slot)| {
                        if !spec.essential {
                            return None;
                        }
                        let container = spec.name.to_string();
                        match (slot.state, slot.health) {
                            (ContainerState::Exited(_), _) => {
                                Some(StopReason::EssentialExited { container })
                            }
                            (ContainerState::Running { .. }, Health::Unhealthy) => {
                                Some(StopReason::EssentialUnhealthy { container })
                            }
                            _ => None,
                        }
                    })
            });
            if let Some(reason) = reason {
                begin_stop(&mut state, reason, inner.stop_timeout);
            }
        }
        let all_done = state.containers.iter().all(|c| {
            matches!(
                c.state,
                ContainerState::Exited(_) | ContainerState::NotStarted
            )
        });
        let running: Vec<Arc<OwnedFd>> = state
            .containers
            .iter()
            .filter_map(|c| c.pidfd.clone())
            .collect();
        match &mut state.stopping {
            Some(stopping) => {
                if !stopping.signalled {
                    stopping.signalled = true;
                    plan.terminate = running;
                }
                if now >= stopping.deadline && !stopping.killed {
                    stopping.killed = true;
                    plan.kill = true;
                }
                plan.deadline = (!stopping.killed).then_some(stopping.deadline);
            }
            None => {
                drop(state);
                plan.launch = self.next_ready();
                plan.finished = all_done && plan.launch.is_none();
                plan.deadline = next_timeout;
                return plan;
            }
        }
        plan.finished = all_done;
        plan
    }

    /// The OOM kills counted in the task's cgroup (0 without one).
    fn task_oom_kills(&self) -> u64 {
        self.shared.cgroups().map_or(0, |c| c.task.oom_kills())
    }

    /// Every container is done (or the init died): end the init, which takes every
    /// process left in the task with it, and publish the task's exit.
    fn finish(&mut self) {
        self.shared.kill_init();
        let init_status = sys::waitid_pidfd(self.shared.init_pidfd.as_raw_fd(), 0);
        // An init SIGKILLed while the task's OOM count moved past what the containers'
        // exits account for was the OOM killer's victim.
        let init_oom = matches!(
            init_status,
            Ok(Some(sys::WaitOutcome::Signaled(libc::SIGKILL)))
        ) && self.task_oom_kills() > self.task_oom_seen;
        let inner = &self.shared.inner;
        let mut state = self.shared.lock();
        let init_died = self.init_gone && state.stopping.is_none();
        for slot in &mut state.containers {
            match slot.state {
                ContainerState::Running { .. } => {
                    slot.state = ContainerState::Exited(ExitStatus::Signaled(libc::SIGKILL));
                }
                ContainerState::Pending => slot.state = ContainerState::NotStarted,
                _ => {}
            }
            slot.pidfd = None;
        }
        let reason = match state.stopping.take() {
            Some(stopping) => stopping.reason,
            None if init_died && init_oom => StopReason::InitOutOfMemory,
            None if init_died => StopReason::InitDied,
            None => state.trouble.take().unwrap_or_else(|| {
                // Every container ended on its own: the first essential one decided.
                inner
                    .containers
                    .iter()
                    .find(|c| c.essential)
                    .map(|c| StopReason::EssentialExited {
                        container: c.name.to_string(),
                    })
                    .unwrap_or(StopReason::Requested)
            }),
        };
        let containers = inner
            .containers
            .iter()
            .zip(&state.containers)
            .map(|(spec, slot)| ContainerExit {
                name: spec.name.to_string(),
                essential: spec.essential,
                status: match slot.state {
                    ContainerState::Exited(status) => Some(status),
                    _ => None,
                },
            })
            .collect();
        state.exit = Some(TaskExit { reason, containers });
        state.event(EventKind::Stopped);
        drop(state);
        self.shared.changed.notify_all();
    }
}

/// What the supervisor does next.
#[derive(Default)]
struct Plan {
    terminate: Vec<Arc<OwnedFd>>,
    kill: bool,
    launch: Option<usize>,
    finished: bool,
    deadline: Option<Instant>,
}

fn begin_stop(state: &mut State, reason: StopReason, grace: Duration) {
    state.event(EventKind::Stopping {
        reason: reason.clone(),
        grace,
    });
    state.stopping = Some(Stopping {
        reason,
        deadline: Instant::now() + grace,
        signalled: false,
        killed: false,
    });
}

/// Whether `dep` satisfies `condition` now.
fn met(dep: &ContainerSlot, condition: Condition) -> bool {
    match (condition, dep.state) {
        (Condition::Start, ContainerState::Running { .. } | ContainerState::Exited(_)) => true,
        (Condition::Complete, ContainerState::Exited(_)) => true,
        (Condition::Success, ContainerState::Exited(status)) => status.success(),
        (Condition::Healthy, ContainerState::Running { .. }) => dep.health == Health::Healthy,
        _ => false,
    }
}

/// Whether `dep` can never satisfy `condition`.
fn impossible(dep: &ContainerSlot, condition: Condition) -> bool {
    match (condition, dep.state) {
        (_, ContainerState::NotStarted) => true,
        (Condition::Success, ContainerState::Exited(status)) => !status.success(),
        (Condition::Healthy, ContainerState::Exited(_)) => true,
        _ => false,
    }
}

/// Runs container `index`'s health check every interval until the task stops.
fn health_loop(shared: &Shared, index: usize) {
    let spec = &shared.inner.containers[index];
    let Some(check) = &spec.health_check else {
        return;
    };
    let mut failures = 0u32;
    loop {
        // Sleep one interval, waking early if the task stops.
        {
            let state = shared.lock();
            let (state, _) = shared
                .changed
                .wait_timeout_while(state, check.interval, |s| {
                    s.exit.is_none()
                        && s.stopping.is_none()
                        && !matches!(s.containers[index].state, ContainerState::Exited(_))
                })
                .unwrap_or_else(|p| p.into_inner());
            if state.exit.is_some()
                || state.stopping.is_some()
                || !matches!(
                    state.containers[index].state,
                    ContainerState::Running { .. }
                )
            {
                return;
            }
        }
        let healthy = run_exec(shared, index, &check.command, Some(check.timeout))
            .is_ok_and(|out| out.status.success());
        let mut state = shared.lock();
        let in_start_period = state.containers[index]
            .started_at
            .is_some_and(|t| t.elapsed() < check.start_period);
        let before = state.containers[index].health;
        let after = if healthy {
            failures = 0;
            Health::Healthy
        } else {
            if !in_start_period {
                failures += 1;
            }
            if failures >= check.retries {
                Health::Unhealthy
            } else {
                before
            }
        };
        let changed = after != before;
        if changed {
            state.containers[index].health = after;
            state.event(EventKind::HealthChanged {
                container: spec.name.to_string(),
                health: after,
            });
        }
        let done = state.exit.is_some() || state.stopping.is_some();
        drop(state);
        if changed {
            shared.changed.notify_all();
            shared.wake();
        }
        if done {
            return;
        }
    }
}

/// Execs `command` in container `index`, if its workload runs.
fn run_exec(
    shared: &Shared,
    index: usize,
    command: &[OsString],
    timeout: Option<Duration>,
) -> Result<Output, Error> {
    let spec = &shared.inner.containers[index];
    let pidfd = {
        let state = shared.lock();
        match (
            &state.containers[index].pidfd,
            state.containers[index].state,
        ) {
            (Some(pidfd), ContainerState::Running { .. }) => Arc::clone(pidfd),
            _ => {
                return Err(Error::host(
                    format!("exec into container {:?}: it is not running", &*spec.name),
                    Errno::ESRCH,
                ))
            }
        }
    };
    let cgroups = shared.cgroups();
    let join: Vec<&crate::cgroup::TaskCgroup> = match &cgroups {
        Some(c) => c.exec_join(index),
        None => Vec::new(),
    };
    super::exec::run(
        &spec.name,
        &spec.plan,
        command,
        &pidfd,
        &join,
        shared.inner.ids.clone_flag() != 0,
        shared.inner.nofile,
        timeout,
    )
}

/// A running task, shaped like [`std::process::Child`]: wait for it, stop it, exec
/// into its containers, read their streams and usage. Dropping it kills every process
/// of the task and removes its cgroups.
#[derive(Debug)]
pub struct RunningTask {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

impl RunningTask {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RunningTask {
            shared,
            supervisor: None,
        }
    }

    /// Hands `control` to the supervisor thread.
    pub(crate) fn supervise(&mut self, control: Control) -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name("tasksandbox-supervisor".into())
            .spawn(move || control.supervise())
            .map_err(|e| Error::host("start the task's supervisor thread", e))?;
        self.supervisor = Some(handle);
        Ok(())
    }

    fn index(&self, container: &str) -> Result<usize, Error> {
        self.shared.inner.index_of(container).ok_or_else(|| {
            Error::host(
                format!("find container {container:?} in the task"),
                Errno::ENOENT,
            )
        })
    }

    /// The host pid of the first container's workload (0 if it is not running).
    pub fn id(&self) -> u32 {
        match self.shared.lock().containers[0].state {
            ContainerState::Running { pid } => pid,
            _ => 0,
        }
    }

    /// The host pid of the task init, pid 1 of the task's pid namespace.
    pub fn init_pid(&self) -> u32 {
        self.shared.init_pid as u32
    }

    /// Where container `container` is in its life; `None` if there is no such
    /// container.
    pub fn state(&self, container: &str) -> Option<ContainerState> {
        let index = self.shared.inner.index_of(container)?;
        Some(self.shared.lock().containers[index].state)
    }

    /// The health of container `container` from its health check.
    pub fn health(&self, container: &str) -> Option<Health> {
        let index = self.shared.inner.index_of(container)?;
        Some(self.shared.lock().containers[index].health)
    }

    /// Everything that has happened to the task so far, oldest first.
    pub fn events(&self) -> Vec<TaskEvent> {
        self.shared.lock().events.clone()
    }

    /// What was really enforced for this task.
    pub fn report(&self) -> &EnforcementReport {
        &self.shared.report
    }

    /// CPU, memory, pids and OOM kills of the task and of each container that has
    /// started, from their cgroups.
    pub fn stats(&self) -> Result<TaskStats, Error> {
        let Some(cgroups) = self.shared.cgroups() else {
            return Err(Error::host("read stats of a removed task", Errno::ESRCH));
        };
        let mut stats = TaskStats {
            task: cgroups.task.stats()?,
            ..TaskStats::default()
        };
        let started: Vec<bool> = self
            .shared
            .lock()
            .containers
            .iter()
            .map(|c| {
                !matches!(
                    c.state,
                    ContainerState::Pending | ContainerState::NotStarted
                )
            })
            .collect();
        for (index, spec) in self.shared.inner.containers.iter().enumerate() {
            if let (true, Some(cgroup)) = (started[index], &cgroups.containers[index]) {
                stats
                    .containers
                    .insert(spec.name.to_string(), cgroup.stats()?);
            }
        }
        // cgroup v1 counts an OOM kill in the victim's cgroup only, v2 up the tree too:
        // the task's count is at least the sum of its containers'.
        let in_containers: u64 = stats.containers.values().map(|c| c.oom_kills).sum();
        stats.task.oom_kills = stats.task.oom_kills.max(in_containers);
        Ok(stats)
    }

    /// Takes the parent end of container `container`'s piped stdin.
    pub fn take_stdin(&mut self, container: &str) -> Option<File> {
        self.take_stream(container, 0)
    }

    /// Takes the parent end of container `container`'s piped stdout.
    pub fn take_stdout(&mut self, container: &str) -> Option<File> {
        self.take_stream(container, 1)
    }

    /// Takes the parent end of container `container`'s piped stderr.
    pub fn take_stderr(&mut self, container: &str) -> Option<File> {
        self.take_stream(container, 2)
    }

    fn take_stream(&mut self, container: &str, stream: usize) -> Option<File> {
        let index = self.shared.inner.index_of(container)?;
        self.shared.lock().containers[index].streams[stream].take()
    }

    /// Waits for the task to stop (an essential container exited, a stop was asked,
    /// ...) and every process of it to be gone. Closes the containers' piped stdin
    /// first, as [`std::process::Child::wait`] does.
    pub fn wait(&mut self) -> Result<TaskExit, Error> {
        let mut state = self.shared.lock();
        for slot in &mut state.containers {
            slot.streams[0] = None;
        }
        let state = self
            .shared
            .changed
            .wait_while(state, |s| s.exit.is_none())
            .unwrap_or_else(|p| p.into_inner());
        state
            .exit
            .clone()
            .ok_or_else(|| Error::host("wait for the task", Errno::ECHILD))
    }

    /// The task's exit if it has stopped, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<TaskExit>, Error> {
        Ok(self.shared.lock().exit.clone())
    }

    /// Waits up to `timeout` for the task to stop.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<TaskExit>, Error> {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.exit.is_none())
            .unwrap_or_else(|p| p.into_inner());
        Ok(state.exit.clone())
    }

    /// Stops the task: SIGTERM to every container's workload, SIGKILL to whatever is
    /// left after `grace`, then waits for the end. A grace longer than ECS's maximum,
    /// [`MAX_STOP_TIMEOUT`](crate::task::MAX_STOP_TIMEOUT) (120 s), is cut to it (the
    /// [`EventKind::Stopping`] event shows the grace applied). If the task is already
    /// stopping, the earlier of the two deadlines holds.
    pub fn stop(&mut self, grace: Duration) -> Result<TaskExit, Error> {
        self.request_stop(grace.min(crate::task::MAX_STOP_TIMEOUT));
        self.wait()
    }

    /// Stops the task as ECS's `StopTask` does: [`stop`](Self::stop) with the task's
    /// own [`stop_timeout`](Self::stop_timeout) as the grace period (30 s unless
    /// [`TaskSandboxBuilder::stop_timeout`](crate::TaskSandboxBuilder::stop_timeout)
    /// said otherwise).
    pub fn shutdown(&mut self) -> Result<TaskExit, Error> {
        self.stop(self.shared.inner.stop_timeout)
    }

    /// The task's stop timeout: the grace period of [`shutdown`](Self::shutdown) and
    /// of a stop the task decides itself (an essential container exited).
    pub fn stop_timeout(&self) -> Duration {
        self.shared.inner.stop_timeout
    }

    /// Kills every process of the task at once. Does not wait.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.request_stop(Duration::ZERO);
        Ok(())
    }

    fn request_stop(&self, grace: Duration) {
        let mut state = self.shared.lock();
        if state.exit.is_some() {
            return;
        }
        state.stop_request = Some(state.stop_request.map_or(grace, |g| g.min(grace)));
        drop(state);
        self.shared.wake();
        if self.supervisor.is_none() {
            // A task whose start failed has no supervisor: end it here.
            self.shared.kill_init();
        }
    }

    /// Sends `signal` to container `container`'s workload. In a container with its
    /// own pid namespace the workload is pid 1 there, so only signals it handles,
    /// and `SIGKILL`, have an effect.
    pub fn signal(&self, container: &str, signal: i32) -> Result<(), Error> {
        let index = self.index(container)?;
        let pidfd = {
            let mut state = self.shared.lock();
            if signal == libc::SIGKILL {
                // A death by this SIGKILL is not an OOM kill unless one comes first.
                state.containers[index].oom_baseline = self.shared.oom_kills(index);
            }
            state.containers[index].pidfd.clone()
        };
        let Some(pidfd) = pidfd else {
            return Ok(());
        };
        match sys::pidfd_send_signal(pidfd.as_raw_fd(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::host(format!("signal container {container:?}"), e)),
        }
    }

    /// Runs `command` inside container `container` (as ECS Exec does): its
    /// namespaces, its cgroup, its user, capabilities, no_new_privs and seccomp
    /// filter, so it can never be more privileged than the container. In a container
    /// with a Landlock domain ([`PidMode::Task`](crate::PidMode::Task) without
    /// `SYS_PTRACE`) it gets a domain of its own under the same rule: it reaches its
    /// own descendants only, not the workload nor any other process of the task.
    ///
    /// Waits for the process to exit and returns its status and what it wrote until
    /// then; a background child it leaves running is not waited for, even if it
    /// holds the process's stdout or stderr. Works whatever the embedding program
    /// does with `SIGCHLD` or `waitpid`: the process is never waited for by pid.
    pub fn exec<I, S>(&self, container: &str, command: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let index = self.index(container)?;
        let command: Vec<OsString> = command.into_iter().map(|a| a.as_ref().to_owned()).collect();
        run_exec(&self.shared, index, &command, None)
    }

    /// Waits for the end and collects the first container's piped output.
    pub fn wait_with_output(mut self) -> Result<Output, Error> {
        let name = self.shared.inner.containers[0].name.to_string();
        drop(self.take_stdin(&name));
        let stdout = self.take_stdout(&name);
        let stderr = self.take_stderr(&name);
        let err_reader = stderr.map(|mut f| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                buf
            })
        });
        let mut out = Vec::new();
        if let Some(mut f) = stdout {
            f.read_to_end(&mut out)
                .map_err(|e| Error::host("read the task's stdout", e))?;
        }
        let err = err_reader
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let exit = self.wait()?;
        Ok(Output {
            status: exit.status(),
            stdout: out,
            stderr: err,
        })
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.request_stop(Duration::ZERO);
        match self.supervisor.take() {
            Some(handle) => {
                let _ = handle.join();
            }
            None => {
                let _ = sys::waitid_pidfd(self.shared.init_pidfd.as_raw_fd(), 0);
            }
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for thread in threads {
            let _ = thread.join();
        }
        let cgroups = self
            .shared
            .cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(cgroups) = cgroups.and_then(|c| Arc::try_unwrap(c).ok()) {
            cgroups.destroy();
        }
    }
}
