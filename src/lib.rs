#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroup;
pub mod container;
pub mod error;
pub mod microvm;
pub mod mounts;
pub mod namespaces;
mod process;
pub mod seccomp;
pub mod size;
mod sys;
pub mod task;

pub use capabilities::{Capabilities, Capability, CapabilityError};
pub use cgroup::{CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit};
pub use container::{Container, Stdio, User, Volume};
pub use error::{ConfigError, Error, LaunchError, Step};
pub use microvm::{MicroVm, MicrovmError, VmSpec, Vmm};
pub use namespaces::{IdMap, UserNamespace};
pub use process::{ExitStatus, Output, RunningTask};
pub use seccomp::{CompiledSeccomp, SeccompError, SeccompPolicy, SeccompProfile};
pub use size::{SizeError, TaskSize};
pub use task::{Enforcement, EnforcementReport, TaskSandbox, TaskSandboxBuilder};
