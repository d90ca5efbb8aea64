//! tasksandbox: run workloads inside a locked-down, Fargate-style task boundary.

#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroup;

pub use capabilities::{Capabilities, Capability, CapabilityError};
pub use cgroup::{CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit};
