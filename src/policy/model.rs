//! The typed content of a policy file: what [`parse`](super::Policy::parse) makes of
//! the text, before it becomes a [`TaskSandboxBuilder`](crate::TaskSandboxBuilder).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::capabilities::Capability;
use crate::container::{Condition, User};
use crate::lifecycle::PidMode;

/// The `[task]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskPolicy {
    /// `cpu`: CPU units (1024 per vCPU).
    pub cpu: Option<u32>,
    /// `memory`: MiB.
    pub memory: Option<u64>,
    /// `fargate`: whether `cpu` × `memory` must be a row of Fargate's table and
    /// `ephemeral_storage_gib` in Fargate's range (true by default).
    pub fargate: bool,
    /// `pid_mode`.
    pub pid_mode: PidMode,
    /// `ephemeral_storage_gib`.
    pub ephemeral_storage_gib: Option<u64>,
    /// `stop_timeout_secs`.
    pub stop_timeout_secs: Option<u64>,
    /// `pids_limit`.
    pub pids_limit: Option<u64>,
    /// `hostname`: the task's, shared by its containers.
    pub hostname: Option<String>,
}

impl Default for TaskPolicy {
    fn default() -> Self {
        TaskPolicy {
            cpu: None,
            memory: None,
            fargate: true,
            pid_mode: PidMode::Container,
            ephemeral_storage_gib: None,
            stop_timeout_secs: None,
            pids_limit: None,
            hostname: None,
        }
    }
}

/// One `[[container]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerPolicy {
    /// `name`.
    pub name: String,
    /// `rootfs`, as written (relative paths are relative to the policy's directory).
    pub rootfs: Option<PathBuf>,
    /// `command`.
    pub command: Vec<String>,
    /// `env`.
    pub env: BTreeMap<String, String>,
    /// `user`.
    pub user: Option<User>,
    /// `working_dir`.
    pub working_dir: Option<String>,
    /// `essential` (true by default).
    pub essential: bool,
    /// `depends_on`.
    pub depends_on: Vec<(String, Condition)>,
    /// `readonly_rootfs`.
    pub readonly_rootfs: bool,
    /// `hostname`.
    pub hostname: Option<String>,
    /// The `nofile` entry of `ulimits` (soft = hard).
    pub nofile: Option<u64>,
    /// `capabilities`.
    pub capabilities: CapabilitiesPolicy,
    /// `seccomp`.
    pub seccomp: SeccompSource,
    /// `mounts`.
    pub mounts: Vec<MountPolicy>,
    /// `secrets`.
    pub secrets: Vec<SecretPolicy>,
    /// `health_check`.
    pub health_check: Option<HealthCheckPolicy>,
    /// `stdin`.
    pub stdin: StdioPolicy,
    /// `stdout`.
    pub stdout: StdioPolicy,
    /// `stderr`.
    pub stderr: StdioPolicy,
    /// `cpu`: this container's CPU ceiling inside the task's, in CPU units.
    pub cpu: Option<u32>,
    /// `memory`: this container's memory ceiling inside the task's, in MiB.
    pub memory: Option<u64>,
    /// `memory_reservation`: this container's soft memory limit, in MiB.
    pub memory_reservation: Option<u64>,
    /// `start_timeout_secs`: how long its dependents wait for it to meet their
    /// condition.
    pub start_timeout_secs: Option<u64>,
}

impl ContainerPolicy {
    pub(crate) fn new(name: String) -> Self {
        ContainerPolicy {
            name,
            rootfs: None,
            command: Vec::new(),
            env: BTreeMap::new(),
            user: None,
            working_dir: None,
            essential: true,
            depends_on: Vec::new(),
            readonly_rootfs: false,
            hostname: None,
            nofile: None,
            capabilities: CapabilitiesPolicy::default(),
            seccomp: SeccompSource::Default,
            mounts: Vec::new(),
            secrets: Vec::new(),
            health_check: None,
            stdin: StdioPolicy::Inherit,
            stdout: StdioPolicy::Inherit,
            stderr: StdioPolicy::Inherit,
            cpu: None,
            memory: None,
            memory_reservation: None,
            start_timeout_secs: None,
        }
    }
}

/// `capabilities = { drop = [...], add = [...] }`: drops apply to Fargate's 14
/// defaults first, then the add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CapabilitiesPolicy {
    /// `drop = ["ALL"]`.
    pub drop_all: bool,
    /// The defaults dropped, in kernel-number order, without duplicates (names of
    /// Linux capabilities outside the allowlist drop nothing and are not kept).
    pub drop: Vec<Capability>,
    /// Whether `add = ["SYS_PTRACE"]`.
    pub add_sys_ptrace: bool,
}

/// `seccomp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SeccompSource {
    /// `"default"`: the built-in profile.
    #[default]
    Default,
    /// A Docker/OCI JSON profile, as written (relative to the policy's directory).
    File(PathBuf),
}

/// One entry of `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountPolicy {
    /// `{ source, destination, read_only }`: a host path bound into the container.
    Bind {
        /// Host path, as written (relative to the policy's directory).
        source: PathBuf,
        /// Path inside the container.
        destination: PathBuf,
        /// Read-only (the default) or not.
        read_only: bool,
    },
    /// `{ ephemeral = true, destination }`: the task's ephemeral storage.
    Ephemeral {
        /// Path inside the container.
        destination: PathBuf,
    },
}

/// One entry of `secrets`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretPolicy {
    /// `name`: the file under `/run/secrets`.
    pub name: String,
    /// `value_from`.
    pub value_from: SecretSource,
}

/// Where a secret's value is read from when the policy becomes a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// `"env:NAME"`: the launcher's environment variable `NAME`.
    Env(String),
    /// `"file:PATH"`: a host file (relative to the policy's directory).
    File(PathBuf),
}

/// `health_check`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheckPolicy {
    /// `command`.
    pub command: Vec<String>,
    /// `interval_secs` (30 by default).
    pub interval_secs: u64,
    /// `timeout_secs` (5 by default).
    pub timeout_secs: u64,
    /// `retries` (3 by default).
    pub retries: u32,
    /// `start_period_secs` (0 by default).
    pub start_period_secs: u64,
}

/// `stdin`, `stdout`, `stderr`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StdioPolicy {
    /// `"inherit"`: the launcher's stream (the default).
    #[default]
    Inherit,
    /// `"null"`: `/dev/null`.
    Null,
    /// `"log"`: the task's log sink (output only).
    Log,
    /// `{ file = "PATH" }`: a host file, appended to (read, for stdin).
    File(PathBuf),
}
