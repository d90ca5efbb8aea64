#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroup;
pub mod container;
pub mod error;
pub mod explain;
pub mod lifecycle;
pub mod logs;
pub mod microvm;
pub mod mounts;
pub mod namespaces;
#[cfg(feature = "policy")]
mod nesting;
#[cfg(feature = "policy")]
pub mod policy;
mod process;
pub mod seccomp;
pub mod size;
pub mod storage;
mod sys;
pub mod task;

pub use capabilities::{Capabilities, Capability, CapabilityError};
pub use cgroup::{
    sweep_stale, CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit, Swept,
};
pub use container::{Condition, Container, HealthCheck, Secret, Stdio, User, Volume};
pub use error::{ConfigError, Error, LaunchError, Step};
pub use explain::Explanation;
pub use lifecycle::{
    ContainerExit, ContainerState, EventKind, Health, PidMode, StopReason, TaskEvent, TaskExit,
    TaskStats,
};
pub use logs::{LogLine, LogSink, LogStream};
pub use microvm::{MicroVm, MicrovmError, VmSpec, Vmm};
pub use namespaces::{IdMap, NetworkNamespace, UserNamespace};
pub use process::{ExitStatus, Output, RunningTask};
pub use seccomp::{CompiledSeccomp, SeccompError, SeccompPolicy, SeccompProfile};
pub use size::{EphemeralStorage, SizeError, TaskSize};
pub use storage::{StorageError, StorageStep};
pub use task::{ContainerReport, Enforcement, EnforcementReport, TaskSandbox, TaskSandboxBuilder};
