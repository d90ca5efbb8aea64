//! What a running task reports about itself: container states, why it stopped, its
//! events and its usage.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::cgroup::CgroupStats;
use crate::container::Condition;
use crate::process::ExitStatus;

/// Whether the containers of a task share one PID namespace (ECS's `pidMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PidMode {
    /// Each container has its own PID namespace, its workload is pid 1 there (the
    /// default).
    #[default]
    Container,
    /// All containers share the task's PID namespace, whose pid 1 is the task init:
    /// containers see each other's processes. Only a container with the
    /// `SYS_PTRACE` opt-in can trace or inspect a sibling (the others are each put
    /// in their own Landlock domain, which the kernel does not let them reach out
    /// of).
    Task,
}

/// Where a container of a running task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContainerState {
    /// Waiting for its dependencies.
    Pending,
    /// Its workload runs, as this host pid.
    Running {
        /// The workload's pid on the host.
        pid: u32,
    },
    /// It ran and ended.
    Exited(ExitStatus),
    /// It never started: its dependencies cannot be met, its launch failed, or the
    /// task stopped first.
    NotStarted,
}

/// A container's health, from its health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// No health check, or no verdict yet.
    Unknown,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

/// Why a task stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// An essential container exited (ECS: "Essential container in task exited").
    EssentialExited {
        /// The container.
        container: String,
    },
    /// An essential container's health check failed.
    EssentialUnhealthy {
        /// The container.
        container: String,
    },
    /// An essential container can never start: a dependency cannot be met.
    DependencyFailed {
        /// The container that cannot start.
        container: String,
        /// The dependency.
        dependency: String,
    },
    /// An essential container gave up on a dependency that did not meet its
    /// condition within the dependency's
    /// [`start_timeout`](crate::Container::start_timeout).
    DependencyTimedOut {
        /// The container that cannot start.
        container: String,
        /// The dependency.
        dependency: String,
        /// The condition it did not meet.
        condition: Condition,
        /// The dependency's start timeout.
        timeout: Duration,
    },
    /// A container's launch failed after the task had started.
    LaunchFailed {
        /// The container.
        container: String,
        /// The error, as text.
        error: String,
    },
    /// [`RunningTask::stop`](crate::RunningTask::stop) or
    /// [`RunningTask::kill`](crate::RunningTask::kill) was called.
    Requested,
    /// The task's init process died (killed from outside).
    InitDied,
    /// The task ran out of memory and the kernel's OOM killer chose the task init,
    /// which ends the whole task. Pages of the default root or of in-memory storage
    /// belong to no process, so when they fill the task's memory the victim can be
    /// any process of the task, the init included.
    InitOutOfMemory,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::EssentialExited { container } => {
                write!(f, "essential container {container:?} exited")
            }
            StopReason::EssentialUnhealthy { container } => {
                write!(f, "essential container {container:?} is unhealthy")
            }
            StopReason::DependencyFailed {
                container,
                dependency,
            } => write!(
                f,
                "essential container {container:?} cannot start: dependency {dependency:?} cannot be met"
            ),
            StopReason::DependencyTimedOut {
                container,
                dependency,
                condition,
                timeout,
            } => write!(
                f,
                "essential container {container:?} cannot start: dependency {dependency:?} did not reach {condition} within its start timeout of {timeout:?}"
            ),
            StopReason::LaunchFailed { container, error } => {
                write!(f, "container {container:?} failed to start: {error}")
            }
            StopReason::Requested => f.write_str("stop requested"),
            StopReason::InitDied => f.write_str("the task init died"),
            StopReason::InitOutOfMemory => {
                f.write_str("the task ran out of memory and its init was OOM-killed")
            }
        }
    }
}

/// How one container of a stopped task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// The container's name.
    pub name: String,
    /// Whether it was essential.
    pub essential: bool,
    /// Its exit status; `None` if it never started.
    pub status: Option<ExitStatus>,
}

/// How a task ended: why, and how each container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskExit {
    /// Why the task stopped.
    pub reason: StopReason,
    /// Every container, in the order they were added.
    pub containers: Vec<ContainerExit>,
}

impl TaskExit {
    /// The task's status: that of the essential container whose exit stopped it, or
    /// else of the first container that ran (for a one-container task, its
    /// workload's status). A task where nothing ran reports `Signaled(SIGKILL)`.
    pub fn status(&self) -> ExitStatus {
        let deciding = match &self.reason {
            StopReason::EssentialExited { container }
            | StopReason::EssentialUnhealthy { container } => self.container(container),
            _ => None,
        };
        deciding
            .and_then(|c| c.status)
            .or_else(|| self.containers.iter().find_map(|c| c.status))
            .unwrap_or(ExitStatus::Signaled(libc::SIGKILL))
    }

    /// The exit of the container named `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerExit> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Whether [`TaskExit::status`] is exit code 0.
    pub fn success(&self) -> bool {
        self.status().success()
    }

    /// The exit code of [`TaskExit::status`], if it exited.
    pub fn code(&self) -> Option<i32> {
        self.status().code()
    }

    /// The signal of [`TaskExit::status`], if one ended it.
    pub fn signal(&self) -> Option<i32> {
        self.status().signal()
    }

    /// Whether [`TaskExit::status`] is an out-of-memory kill.
    pub fn is_out_of_memory(&self) -> bool {
        self.status().is_out_of_memory()
    }

    /// [`TaskExit::status`] as a shell reports it.
    pub fn shell_code(&self) -> i32 {
        self.status().shell_code()
    }
}

impl fmt::Display for TaskExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        for c in &self.containers {
            match c.status {
                Some(status) => write!(f, "; {}: {status}", c.name)?,
                None => write!(f, "; {}: not started", c.name)?,
            }
        }
        Ok(())
    }
}

/// Something that happened to a task, with when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// When the launcher saw it.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A container's workload started.
    Started {
        /// The container.
        container: String,
        /// Its pid on the host.
        pid: u32,
    },
    /// A container's health changed.
    HealthChanged {
        /// The container.
        container: String,
        /// The new health.
        health: Health,
    },
    /// A container's workload ended.
    Exited {
        /// The container.
        container: String,
        /// How.
        status: ExitStatus,
    },
    /// A container gave up waiting: its dependency did not meet the condition within
    /// the dependency's start timeout. The container will not start.
    DependencyTimedOut {
        /// The container that gave up.
        container: String,
        /// The dependency.
        dependency: String,
        /// The condition it did not meet.
        condition: Condition,
        /// The dependency's start timeout.
        timeout: Duration,
    },
    /// The OOM killer killed a process of a container.
    OutOfMemory {
        /// The container.
        container: String,
    },
    /// The task began to stop.
    Stopping {
        /// Why.
        reason: StopReason,
        /// The grace period before SIGKILL.
        grace: Duration,
    },
    /// Every process of the task is gone.
    Stopped,
}

/// Usage counters of a task and of each of its containers, from their cgroups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskStats {
    /// The whole task (every container, the task init, exec'd processes).
    pub task: CgroupStats,
    /// Each container that has started, by name.
    pub containers: BTreeMap<String, CgroupStats>,
}
