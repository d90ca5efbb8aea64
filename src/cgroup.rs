//! TEMPORARY stub until the cgroup module lands.
#![allow(missing_docs, dead_code)]
use std::path::{Path, PathBuf};
#[derive(Debug, Clone)]
pub struct CgroupLimits {
    pub cpu_units: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub pids_max: Option<u64>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Cpu,
    Memory,
    Pids,
}
impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
#[derive(Debug, Clone, Default)]
pub struct CgroupStats {
    pub cpu_usage_ns: u64,
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: u64,
    pub pids_current: u64,
    pub oom_kills: u64,
}
#[derive(Debug, thiserror::Error)]
#[error("cgroup")]
pub struct CgroupError;
#[derive(Debug)]
pub(crate) struct TaskCgroup {
    path: Option<PathBuf>,
}
impl TaskCgroup {
    pub(crate) fn create(
        _parent: &Path,
        _name: &str,
        _limits: &CgroupLimits,
        _best_effort: bool,
    ) -> Result<(TaskCgroup, Vec<Limit>), CgroupError> {
        Ok((TaskCgroup { path: None }, vec![]))
    }
    pub(crate) fn add_process(&self, _pid: i32) -> Result<(), CgroupError> {
        Ok(())
    }
    pub(crate) fn oom_kills(&self) -> u64 {
        0
    }
    pub(crate) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        Ok(CgroupStats::default())
    }
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    pub(crate) fn destroy(self) -> Result<(), CgroupError> {
        Ok(())
    }
}
