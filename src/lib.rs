//! tasksandbox: run workloads inside a locked-down, Fargate-style task boundary.

#![warn(missing_docs)]

pub mod capabilities;
pub mod seccomp;

pub use capabilities::{Capabilities, Capability, CapabilityError};
pub use seccomp::{CompiledSeccomp, SeccompError, SeccompPolicy, SeccompProfile};
