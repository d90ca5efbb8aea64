//! Errors: one type per layer, wrapped by [`Error`].
//!
//! [`ConfigError`] comes from [`TaskSandboxBuilder::build`](crate::TaskSandboxBuilder::build)
//! and names the field and the value that were wrong. [`LaunchError`] comes from
//! [`TaskSandbox::start`](crate::TaskSandbox::start) when the host refused a step, and
//! names the container, the step and the errno.

use std::fmt;
use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::cgroup::CgroupError;
use crate::seccomp::SeccompError;
use crate::size::SizeError;

/// Any error of the crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task definition is invalid (from `build()`).
    #[error("invalid task definition")]
    Config(#[from] ConfigError),
    /// The seccomp profile could not be compiled.
    #[error("seccomp profile")]
    Seccomp(#[from] SeccompError),
    /// The task cgroup could not be made, limited, joined, read or removed.
    #[error("task cgroup")]
    Cgroup(#[from] CgroupError),
    /// A step of the launch failed inside the new task.
    #[error("the task could not start")]
    Launch(#[from] LaunchError),
    /// The task's disk-backed ephemeral storage could not be made.
    #[error("the task's ephemeral storage could not be made")]
    Storage(#[from] crate::storage::StorageError),
    /// The host refused an operation of the launcher itself.
    #[error("{operation} failed")]
    Host {
        /// What the launcher was doing, with the path or pid it concerned.
        operation: String,
        /// The host's answer.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn host(operation: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Host {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// The whole chain of causes, outermost first, joined by `": "`.
    ///
    /// ```
    /// # use tasksandbox::{Error, ConfigError};
    /// let err = Error::from(ConfigError::NoContainer);
    /// assert_eq!(err.chain(), "invalid task definition: a task needs at least one container");
    /// ```
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            out.push_str(": ");
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }
}

/// Result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A task definition that `build()` refuses. Each variant names the container, the
/// field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The task size is not valid.
    #[error("task size")]
    Size(#[from] SizeError),
    /// No container was added.
    #[error("a task needs at least one container")]
    NoContainer,
    /// Two containers have the same name.
    #[error("container name {name:?} is used twice")]
    DuplicateContainer {
        /// The name.
        name: String,
    },
    /// A container name that is empty, too long or not `[A-Za-z0-9_-]`.
    #[error("container name {name:?} is invalid: {reason}")]
    ContainerName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A container without a command.
    #[error("container {container:?}: command is empty")]
    EmptyCommand {
        /// The container.
        container: String,
    },
    /// A string that will be passed to the kernel contains a NUL byte.
    #[error("container {container:?}: {field} {value:?} contains a NUL byte")]
    NulByte {
        /// The container.
        container: String,
        /// The field (`command`, `env`, `working_dir`, ...).
        field: &'static str,
        /// The value, lossily converted to UTF-8.
        value: String,
    },
    /// A path that must be absolute is not.
    #[error("container {container:?}: {field} {path:?} must be an absolute path")]
    NotAbsolute {
        /// The container.
        container: String,
        /// The field (`working_dir`, `volume destination`, ...).
        field: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// An environment variable name that is empty or contains `=`.
    #[error("container {container:?}: environment variable name {name:?} is invalid: {reason}")]
    EnvName {
        /// The container.
        container: String,
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A hostname that is not a valid RFC 1123 host name.
    #[error("container {container:?}: hostname {hostname:?} is invalid: {reason}")]
    Hostname {
        /// The container.
        container: String,
        /// The hostname.
        hostname: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The root filesystem does not exist or is not a directory.
    #[error("container {container:?}: rootfs {path:?} {reason}")]
    Rootfs {
        /// The container.
        container: String,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A volume whose source or destination cannot be used.
    #[error("container {container:?}: volume {source_path:?} -> {destination:?}: {reason}")]
    Volume {
        /// The container.
        container: String,
        /// The host path.
        source_path: PathBuf,
        /// The path inside the container.
        destination: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The pids limit must be at least 1.
    #[error("pids_limit = {value} is invalid: it must be at least 1")]
    PidsLimit {
        /// The value asked for.
        value: u64,
    },
    /// The nofile ulimit must be 1..=1048576.
    #[error("nofile = {value} is out of range: it must be 1..={max}")]
    Nofile {
        /// The value asked for.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// The container user does not exist in the task's uid/gid map.
    #[error("container {container:?}: user {uid}:{gid} is outside the task's id map (0..{count})")]
    UserNotMapped {
        /// The container.
        container: String,
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
        /// How many ids the map holds.
        count: u32,
    },
    /// A uid/gid map that cannot be used.
    #[error("id map {host_base}+{count} is invalid: {reason}")]
    IdMap {
        /// First host id.
        host_base: u32,
        /// Number of ids.
        count: u32,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The directory of disk-backed ephemeral storage cannot be used.
    #[error("storage_dir {path:?}: {reason}")]
    StorageDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A runtime directory that is not an absolute path.
    #[error("runtime_dir {path:?} must be an absolute path")]
    RuntimeDir {
        /// The path.
        path: PathBuf,
    },
    /// The container's seccomp profile could not be compiled.
    #[error("container {container:?}: seccomp profile: {message}")]
    Seccomp {
        /// The container.
        container: String,
        /// The compiler's message.
        message: String,
    },
    /// A `depends_on` entry that names no container of the task, the container
    /// itself, a cycle, or a condition the other container cannot meet.
    #[error("container {container:?}: depends_on {dependency:?} ({condition}): {reason}")]
    Dependency {
        /// The container with the dependency.
        container: String,
        /// The container it depends on.
        dependency: String,
        /// The condition.
        condition: crate::container::Condition,
        /// Why it cannot be.
        reason: String,
    },
    /// No container of the task is essential.
    #[error("a task needs at least one essential container")]
    NoEssentialContainer,
    /// A field of a container or of the task that is out of range or inconsistent.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where: `task.stop_timeout`, `container "app": health_check.interval`, ...
        field: String,
        /// What is wrong, with the accepted range.
        reason: String,
    },
    /// The network namespace to join cannot be used.
    #[error("network namespace {namespace}: {reason}")]
    NetworkNamespace {
        /// The namespace (its path, or `fd N`).
        namespace: String,
        /// Why.
        reason: String,
    },
}

/// The step of the launch, inside the new task, that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the launcher to write the id maps and join the cgroup.
    WaitForLauncher,
    /// Joining the task cgroup.
    JoinCgroup,
    /// Leaving the launcher's session (`setsid`).
    NewSession,
    /// Entering a new cgroup namespace.
    CgroupNamespace,
    /// Building the root filesystem (a mount, a directory, a file).
    Mount,
    /// Switching to the new root (`pivot_root`).
    PivotRoot,
    /// Setting the hostname.
    Hostname,
    /// Bringing up the loopback interface.
    Loopback,
    /// Setting resource limits (`setrlimit`).
    Rlimits,
    /// Redirecting standard input, output and error.
    Stdio,
    /// Closing inherited file descriptors.
    CloseFds,
    /// Changing to the working directory.
    WorkingDir,
    /// Dropping the capability bounding set.
    BoundingSet,
    /// Switching to the container user (`setgroups`, `setresgid`, `setresuid`).
    User,
    /// Setting the permitted/effective/inheritable/ambient capabilities.
    Capabilities,
    /// Setting no_new_privs.
    NoNewPrivs,
    /// Installing the seccomp filters.
    Seccomp,
    /// Executing the command.
    Exec,
    /// Entering the running container's namespaces (exec).
    JoinNamespaces,
    /// Creating the process inside them (exec).
    Fork,
    /// Entering a Landlock domain (containers without `SYS_PTRACE` in a task whose
    /// containers share a pid namespace).
    Landlock,
    /// Mounting the task's ephemeral storage (task init).
    Storage,
}

impl Step {
    pub(crate) const ALL: [Step; 22] = [
        Step::WaitForLauncher,
        Step::JoinCgroup,
        Step::NewSession,
        Step::CgroupNamespace,
        Step::Mount,
        Step::PivotRoot,
        Step::Hostname,
        Step::Loopback,
        Step::Rlimits,
        Step::Stdio,
        Step::CloseFds,
        Step::WorkingDir,
        Step::BoundingSet,
        Step::User,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
        Step::JoinNamespaces,
        Step::Fork,
        Step::Landlock,
        Step::Storage,
    ];

    pub(crate) fn code(self) -> i32 {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) as i32
    }

    pub(crate) fn from_code(code: i32) -> Option<Step> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Step::ALL.get(i).copied())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Step::WaitForLauncher => "wait for the launcher",
            Step::JoinCgroup => "join the task cgroup",
            Step::NewSession => "new session",
            Step::CgroupNamespace => "cgroup namespace",
            Step::Mount => "mount",
            Step::PivotRoot => "pivot_root",
            Step::Hostname => "hostname",
            Step::Loopback => "loopback up",
            Step::Rlimits => "rlimits",
            Step::Stdio => "stdio",
            Step::CloseFds => "close fds",
            Step::WorkingDir => "working directory",
            Step::BoundingSet => "capability bounding set",
            Step::User => "switch user",
            Step::Capabilities => "capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::JoinNamespaces => "join the container's namespaces",
            Step::Fork => "fork into the container",
            Step::Landlock => "landlock domain",
            Step::Storage => "ephemeral storage",
        };
        f.write_str(name)
    }
}

/// A step of the launch that failed inside the new task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?}: step `{step}`{}: {errno}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct LaunchError {
    /// The container.
    pub container: String,
    /// The step.
    pub step: Step,
    /// What the step was doing (the mount, the path), when there is more to say.
    pub detail: Option<String>,
    /// The kernel's answer.
    pub errno: Errno,
}

impl From<SizeError> for Error {
    fn from(err: SizeError) -> Self {
        Error::Config(ConfigError::Size(err))
    }
}
