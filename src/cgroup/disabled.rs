//! The cgroup backend of a build without the `cgroups` feature: nothing can be
//! enforced, and the API says so.

use std::path::Path;

use super::{CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit};

/// A created cgroup. Without the `cgroups` feature none can exist, so the type has
/// no values and every method is unreachable.
#[derive(Debug)]
pub(super) enum Active {}

impl Active {
    pub(super) fn add_process(&self, _pid: i32) -> Result<(), CgroupError> {
        match *self {}
    }

    pub(super) fn join(&self) -> Result<super::Join, CgroupError> {
        match *self {}
    }

    pub(super) fn attach_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
        match *self {}
    }

    pub(super) fn oom_kills(&self) -> u64 {
        match *self {}
    }

    pub(super) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match *self {}
    }

    pub(super) fn rel_path(&self) -> &Path {
        match *self {}
    }

    pub(super) fn destroy(self) -> Result<(), CgroupError> {
        match self {}
    }
}

pub(super) fn detect() -> Result<CgroupVersion, CgroupError> {
    Err(CgroupError::Unsupported)
}

/// No cgroup was ever made by this build, and none can be removed.
pub(super) fn sweep_stale(_parent: &Path, _full: bool) -> Result<super::Swept, CgroupError> {
    Err(CgroupError::Unsupported)
}

/// Strict enforcement is impossible; best effort gets an empty cgroup and every
/// requested limit back as not applied.
pub(super) fn create(
    _parent: &Path,
    _name: &str,
    limits: &CgroupLimits,
    best_effort: bool,
) -> Result<(Option<Active>, Vec<Limit>), CgroupError> {
    if best_effort {
        Ok((None, limits.requested()))
    } else {
        Err(CgroupError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CgroupError, CgroupLimits, Limit, TaskCgroup};
    use std::path::Path;

    const ALL: CgroupLimits = CgroupLimits {
        cpu_units: Some(512),
        cpu_share_units: None,
        memory_bytes: Some(64 << 20),
        memory_reservation_bytes: None,
        pids_max: Some(32),
    };

    #[test]
    fn strict_create_is_unsupported() {
        let err = TaskCgroup::create(Path::new("tasksandbox"), "t", &ALL, false)
            .expect_err("strict create must fail without the feature");
        assert!(matches!(err, CgroupError::Unsupported), "{err}");
        assert!(err.to_string().contains("`cgroups` feature"));
        assert!(matches!(
            super::super::detect(),
            Err(CgroupError::Unsupported)
        ));
    }

    #[test]
    fn best_effort_create_lists_every_limit() {
        let (cg, skipped) = TaskCgroup::create(Path::new("tasksandbox"), "t", &ALL, true)
            .expect("best effort never fails without the feature");
        assert_eq!(skipped, vec![Limit::Cpu, Limit::Memory, Limit::Pids]);
        assert!(cg.path().is_none());
        assert_eq!(cg.oom_kills(), 0);
        assert_eq!(cg.stats().expect("empty stats"), Default::default());
        cg.add_process(1).expect("no-op");
        cg.destroy().expect("no-op");
    }
}
