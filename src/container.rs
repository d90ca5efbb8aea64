//! A container of a task: what to run, as whom, on which root filesystem.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::capabilities::Capabilities;
use crate::seccomp::SeccompPolicy;

/// A user and group inside the task (`uid:gid`). Root (`0:0`) by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct User {
    /// User id inside the task.
    pub uid: u32,
    /// Group id inside the task.
    pub gid: u32,
}

impl User {
    /// `0:0`.
    pub const ROOT: User = User { uid: 0, gid: 0 };

    /// A user and group.
    pub const fn new(uid: u32, gid: u32) -> Self {
        User { uid, gid }
    }

    /// Whether this is uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

impl std::str::FromStr for User {
    type Err = String;

    /// Parses `uid` or `uid:gid` (numeric; the gid defaults to the uid).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (uid, gid) = s.split_once(':').unwrap_or((s, s));
        let parse = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{s:?} is not uid[:gid] with numeric ids"))
        };
        Ok(User::new(parse(uid)?, parse(gid)?))
    }
}

/// A host directory or file bound into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub(crate) source: PathBuf,
    pub(crate) destination: PathBuf,
    pub(crate) read_only: bool,
}

impl Volume {
    /// Binds `source` (a host path) at `destination` (an absolute path inside the
    /// container), read-only.
    pub fn bind(source: impl Into<PathBuf>, destination: impl Into<PathBuf>) -> Self {
        Volume {
            source: source.into(),
            destination: destination.into(),
            read_only: true,
        }
    }

    /// Makes the bind writable.
    #[must_use]
    pub fn read_write(mut self) -> Self {
        self.read_only = false;
        self
    }

    /// The host path.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The path inside the container.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Whether the bind is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// Where a standard stream of the workload goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stdio {
    /// The launcher's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe whose other end the [`RunningTask`](crate::RunningTask) hands out
    /// ([`RunningTask::take_stdout`](crate::RunningTask::take_stdout) and friends).
    Piped,
    /// A host file, created if missing and appended to (for stdin: read). Opened by
    /// the launcher at start, with the launcher's credentials.
    File(PathBuf),
    /// Lines go to the task's log sink
    /// ([`TaskSandboxBuilder::log_sink`](crate::TaskSandboxBuilder::log_sink)), tagged
    /// with the container and the stream; without a sink, to the launcher's own
    /// stdout or stderr, prefixed with `[container] `. Output only.
    Log,
}

/// When a container may start, relative to another container of the task (ECS's
/// `dependsOn` conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Condition {
    /// Once the other container has started.
    Start,
    /// Once the other container has exited, whatever its status (it must not be
    /// essential).
    Complete,
    /// Once the other container has exited with code 0 (it must not be essential).
    Success,
    /// Once the other container's health check has passed (it needs one).
    Healthy,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        })
    }
}

/// A health-check command, run inside the container (as
/// [`RunningTask::exec`](crate::RunningTask::exec) runs a command) every `interval`;
/// exit code 0 is healthy. After `retries` failures in a row (not counting failures
/// during `start_period`) the container is unhealthy; an unhealthy essential container
/// stops the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub(crate) command: Vec<OsString>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) start_period: Duration,
}

impl HealthCheck {
    /// A health check running `command` with ECS's defaults: every 30 s, 5 s timeout,
    /// 3 retries, no start period.
    pub fn new<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        HealthCheck {
            command: command.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }

    /// Time between two checks (more than zero).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long one check may run before it counts as failed (more than zero).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Failures in a row that make the container unhealthy (1 or more).
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Grace period after start during which failures do not count.
    #[must_use]
    pub fn start_period(mut self, period: Duration) -> Self {
        self.start_period = period;
        self
    }
}

/// A secret: delivered as the file `/run/secrets/<name>` (mode 0400, owned by the
/// container's user) on an in-memory filesystem private to the container, never
/// through the environment. Its value never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub(crate) name: String,
    pub(crate) value: Vec<u8>,
}

impl Secret {
    /// A secret named `name` (letters, digits, `-`, `_`, `.`; the file name under
    /// `/run/secrets`).
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Secret {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// One container of a task.
///
/// ```
/// use tasksandbox::{Container, Volume, User};
/// let app = Container::new("app")
///     .command(["/bin/sh", "-c", "echo hello"])
///     .env("GREETING", "hello")
///     .user(User::new(1000, 1000))
///     .volume(Volume::bind("/srv/data", "/data"));
/// assert_eq!(app.name(), "app");
/// ```
#[derive(Debug, Clone)]
pub struct Container {
    pub(crate) name: String,
    pub(crate) command: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) working_dir: PathBuf,
    pub(crate) user: User,
    pub(crate) rootfs: Option<PathBuf>,
    pub(crate) readonly_rootfs: bool,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) devices: Vec<PathBuf>,
    pub(crate) hostname: Option<String>,
    pub(crate) capabilities: Capabilities,
    pub(crate) seccomp: SeccompPolicy,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) essential: bool,
    pub(crate) depends_on: Vec<(String, Condition)>,
    pub(crate) health_check: Option<HealthCheck>,
    pub(crate) storage_mounts: Vec<PathBuf>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) cpu_units: Option<u32>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) memory_reservation: Option<u64>,
    pub(crate) start_timeout: Option<Duration>,
    /// A root holding only what is listed (the microVM jail's), instead of the
    /// default root or `rootfs`.
    pub(crate) bare_root: Option<crate::mounts::BareRoot>,
}

/// The `PATH` a container gets when its environment sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Container {
    /// A container named `name`, running as root in `/`, with Fargate's default
    /// capabilities, the default seccomp profile and the default root filesystem.
    pub fn new(name: impl Into<String>) -> Self {
        Container {
            name: name.into(),
            command: Vec::new(),
            env: Vec::new(),
            working_dir: PathBuf::from("/"),
            user: User::ROOT,
            rootfs: None,
            readonly_rootfs: false,
            volumes: Vec::new(),
            devices: Vec::new(),
            hostname: None,
            capabilities: Capabilities::fargate_default(),
            seccomp: SeccompPolicy::Default,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            essential: true,
            depends_on: Vec::new(),
            health_check: None,
            storage_mounts: Vec::new(),
            secrets: Vec::new(),
            cpu_units: None,
            memory_limit: None,
            memory_reservation: None,
            start_timeout: None,
            bare_root: None,
        }
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command and its arguments. A command without `/` is looked up in the
    /// container's `PATH`.
    #[must_use]
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.push(arg.as_ref().to_owned());
        self
    }

    /// Sets an environment variable (the workload sees only what is set here, plus a
    /// default `PATH` and `HOSTNAME`).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let key = key.as_ref().to_owned();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    /// The working directory, an absolute path inside the container (`/` by default).
    #[must_use]
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// The user and group the workload runs as, inside the task.
    #[must_use]
    pub fn user(mut self, user: User) -> Self {
        self.user = user;
        self
    }

    /// The root filesystem: a host directory holding the container image. Without it
    /// the container gets the default root: read-only binds of the host's `/usr`,
    /// `/bin`, `/sbin`, `/lib*` and a small generated `/etc`, on a private tmpfs.
    #[must_use]
    pub fn rootfs(mut self, dir: impl Into<PathBuf>) -> Self {
        self.rootfs = Some(dir.into());
        self
    }

    /// Mounts the root filesystem read-only (`/proc`, `/dev` and volumes keep their own
    /// modes).
    #[must_use]
    pub fn readonly_rootfs(mut self, read_only: bool) -> Self {
        self.readonly_rootfs = read_only;
        self
    }

    /// Adds a bind volume.
    #[must_use]
    pub fn volume(mut self, volume: Volume) -> Self {
        self.volumes.push(volume);
        self
    }

    /// Binds the host's device node `path` (for example `/dev/kvm` or `/dev/net/tun`)
    /// into the container's `/dev`, at the same path. The node keeps the host's owner
    /// and mode, so the container's user must be allowed to open it there; no
    /// capability or cgroup rule is added. `build()` checks that `path` is a character
    /// device under `/dev` other than the minimal set the container always gets.
    #[must_use]
    pub fn device(mut self, path: impl Into<PathBuf>) -> Self {
        self.devices.push(path.into());
        self
    }

    /// The hostname. The containers of a task share one UTS namespace, so they share
    /// one hostname: the task's ([`TaskSandboxBuilder::hostname`](crate::TaskSandboxBuilder::hostname)),
    /// else the first container's, else the first container's name. Two containers
    /// asking for different hostnames is an error.
    #[must_use]
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// The capability allowlist (Fargate's 14 defaults unless changed).
    #[must_use]
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    /// The seccomp policy (the default profile unless changed).
    #[must_use]
    pub fn seccomp(mut self, policy: SeccompPolicy) -> Self {
        self.seccomp = policy;
        self
    }

    /// Where the workload's standard input comes from.
    #[must_use]
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = stdio;
        self
    }

    /// Where the workload's standard output goes.
    #[must_use]
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    /// Where the workload's standard error goes.
    #[must_use]
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// Whether the task stops when this container exits (true by default, as in ECS).
    /// A task needs at least one essential container.
    #[must_use]
    pub fn essential(mut self, essential: bool) -> Self {
        self.essential = essential;
        self
    }

    /// Starts this container only once `container` meets `condition`. If it never
    /// can (it exited before becoming healthy, it failed where success was needed),
    /// this container never starts and, if essential, the task stops.
    #[must_use]
    pub fn depends_on(mut self, container: impl Into<String>, condition: Condition) -> Self {
        self.depends_on.push((container.into(), condition));
        self
    }

    /// How long the containers that depend on this one wait for it to meet their
    /// condition, from the moment it starts (ECS's `startTimeout`, on the container
    /// depended on; Fargate accepts 2 to 120 s): when it has not, say, become healthy
    /// or completed in time, they give up and never start (an essential one stops the
    /// task with [`StopReason::DependencyTimedOut`](crate::StopReason::DependencyTimedOut)),
    /// and the task's events say why. Without it, dependents wait as long as the
    /// condition can still be met. More than zero, at most 120 s.
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// A health check (needed by dependents waiting for [`Condition::Healthy`]).
    #[must_use]
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health_check = Some(check);
        self
    }

    /// Mounts the task's ephemeral storage, read-write, at `path` (absolute, inside
    /// the container). Every container that asks sees the same files.
    #[must_use]
    pub fn ephemeral_storage_at(mut self, path: impl Into<PathBuf>) -> Self {
        self.storage_mounts.push(path.into());
        self
    }

    /// Delivers a secret as `/run/secrets/<name>`.
    #[must_use]
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// This container's share of the task's CPU, in CPU units (1024 = one vCPU), as
    /// ECS's container-level `cpu`: a relative weight, not a ceiling. When the
    /// containers compete for the task's CPU, each gets CPU in proportion to its units
    /// (cgroup v1 `cpu.shares`, v2 `cpu.weight`); CPU no other container wants can be
    /// used by any of them, up to the task's own ceiling. The units of all containers
    /// must add up to no more than the task's. Without it, a container has the
    /// kernel's default weight when no container of the task sets units, and otherwise
    /// the smallest share (2 units, as ECS gives a container without `cpu`), so that
    /// a container without units never outweighs one that asked for them.
    #[must_use]
    pub fn cpu_units(mut self, units: u32) -> Self {
        self.cpu_units = Some(units);
        self
    }

    /// A hard memory limit for this container inside the task's, in bytes, as ECS's
    /// container-level `memory`: reaching it OOM-kills inside this container only. At
    /// most the task's memory.
    #[must_use]
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// A soft memory limit (a reservation) for this container, in bytes, as ECS's
    /// `memoryReservation`: under memory pressure in the task, the kernel reclaims
    /// from containers above their reservation before it touches those within it
    /// (cgroup v1 `memory.soft_limit_in_bytes`, v2 `memory.low`); nothing is killed
    /// for going over it. At most [`memory_limit`](Self::memory_limit); the
    /// reservations of all containers (a container with only a limit counts its limit)
    /// must add up to no more than the task's memory.
    #[must_use]
    pub fn memory_reservation(mut self, bytes: u64) -> Self {
        self.memory_reservation = Some(bytes);
        self
    }
}
