//! The task cgroup: CPU, memory and pids limits, usage statistics, and removal.
//!
//! A task gets one cgroup, created with its limits written *before* any process is
//! moved into it, so the workload's first instruction already runs under them.
//!
//! Both cgroup layouts are supported and told apart at run time, once per process
//! ([`detect`]; the mount table is not read again per task):
//!
//! * **cgroup v2** (unified): one directory `<root>/<parent>/<name>`; the `cpu`,
//!   `memory` and `pids` controllers are switched on in `cgroup.subtree_control` of
//!   every ancestor that does not have them yet (a parent that has them costs one
//!   read and no write).
//! * **cgroup v1**: one directory per hierarchy that is used, and only those: `cpu`
//!   (only when a CPU limit is asked for), `cpuacct` (CPU usage), `memory` and `pids`.
//!   Hierarchies mounted together (`cpu,cpuacct`) share one directory.
//!
//! The parent cgroups are made when missing and left in place afterwards: they are
//! shared by every task, and removing one could race with a task being created.
//!
//! Limits map as follows (Fargate CPU units: 1024 = one vCPU):
//!
//! | limit | cgroup v1 | cgroup v2 |
//! |---|---|---|
//! | CPU units `u` (a ceiling: the task) | `cpu.cfs_period_us` = 100000, `cpu.cfs_quota_us` = `u * 100000 / 1024`, `cpu.shares` = `u` | `cpu.max` = `"<quota> 100000"`, `cpu.weight` = `1 + (shares - 2) * 9999 / 262142` |
//! | CPU share `s` (relative: a container) | `cpu.shares` = `s` | `cpu.weight` as above |
//! | memory bytes `m` (hard) | `memory.limit_in_bytes` = `m`, then `memory.memsw.limit_in_bytes` = `m` (no swap) when swap is accounted | `memory.max` = `m`, `memory.swap.max` = 0 |
//! | memory reservation `r` (soft) | `memory.soft_limit_in_bytes` = `r` | `memory.low` = `r` |
//! | pids `p` | `pids.max` = `p` | `pids.max` = `p` |
//!
//! The quota never goes below the kernel's minimum of 1000 µs, and shares are kept in
//! the kernel's range 2..=262144.
//!
//! Without the `cgroups` cargo feature the same API exists, but nothing can be
//! enforced: [`detect`] and a strict create fail with [`CgroupError::Unsupported`].
//!
//! A launcher that dies without tearing its tasks down (SIGKILL, a crash) leaves
//! their cgroup directories behind, empty. Every start sweeps its cgroup parent for
//! such directories of dead launchers and removes them ([`sweep_stale`], also
//! callable on its own).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(feature = "cgroups")]
mod imp;
#[cfg(feature = "cgroups")]
mod sweep;
#[cfg(feature = "cgroups")]
use imp as backend;

#[cfg(not(feature = "cgroups"))]
mod disabled;
#[cfg(not(feature = "cgroups"))]
use disabled as backend;

#[cfg(all(test, feature = "cgroups"))]
mod tests;

/// Which cgroup layout the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// cgroup v1: one hierarchy per controller (or per group of controllers).
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "cgroup v1",
            CgroupVersion::V2 => "cgroup v2",
        })
    }
}

/// What [`sweep_stale`] found: task cgroups of launchers that are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// The task cgroup directories removed (absolute paths; on cgroup v1 one per
    /// hierarchy the task used).
    pub removed: Vec<PathBuf>,
    /// Those of dead launchers left in place because a process is still inside one
    /// of them (the sweep never kills anything).
    pub busy: Vec<PathBuf>,
}

/// Removes the cgroups that launchers which are no longer running left under
/// `parent` (relative to each hierarchy's root, as given to
/// [`TaskSandboxBuilder::cgroup_parent`](crate::TaskSandboxBuilder::cgroup_parent);
/// `tasksandbox` by default).
///
/// Task cgroups are named `<launcher pid>-<8 hex digits>-<n>`. For each one whose
/// launcher pid is no live process, the directory and the container cgroups below it
/// are removed bottom-up, each only once its `cgroup.procs` reads empty, and with
/// `rmdir`, which the kernel refuses for a cgroup that holds a process: a cgroup with
/// a process in it is never touched, and nothing is killed. A live pid keeps its
/// cgroups even if it now belongs to an unrelated process (they go at a later sweep).
/// Nothing under `parent` but names of that shape is looked at.
///
/// This is the full sweep: it lists the parent in every hierarchy. Each
/// [`TaskSandbox::start`](crate::TaskSandbox::start) sweeps its own parent first:
/// fully at the first start of the process, then quickly, listing the parent in one
/// hierarchy only (on cgroup v1 the last one a task cgroup is made in), which misses
/// only the directories of a launcher killed while it was making them. Launchers that
/// share a parent must share a pid namespace, or one could take another's live pid
/// for a dead one (its cgroups would still be left alone once a process is in them,
/// but a cgroup made and not yet joined could go).
///
/// Fails with [`CgroupError::InvalidPath`] for a parent that is not a plain relative
/// path, [`CgroupError::NotMounted`] when no cgroup filesystem is mounted, and
/// [`CgroupError::Unsupported`] without the `cgroups` feature.
pub fn sweep_stale(parent: impl AsRef<Path>) -> Result<Swept, CgroupError> {
    backend::sweep_stale(parent.as_ref(), true)
}

/// The sweep a start makes on the task's cgroup parent: full the first time this
/// process sweeps that parent, quick after; logged, never failing the start.
pub(crate) fn sweep_before_start(parent: &Path) {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let full = {
        let mut swept = SWEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = !swept.iter().any(|p| p == parent);
        if first {
            swept.push(parent.to_path_buf());
        }
        first
    };
    match backend::sweep_stale(parent, full) {
        Ok(swept) => {
            for path in &swept.removed {
                tracing::info!(path = %path.display(), "removed the cgroup of a launcher that is gone");
            }
            for path in &swept.busy {
                tracing::warn!(path = %path.display(), "the cgroup of a launcher that is gone still holds a process");
            }
        }
        Err(err) => tracing::debug!(error = %err, "cgroup sweep skipped"),
    }
}

/// Detects the host's cgroup layout.
///
/// The mount table is read once per process and the answer cached; later calls cost
/// nothing. Fails with [`CgroupError::NotMounted`] when no cgroup filesystem is
/// mounted, and with [`CgroupError::Unsupported`] when the crate was built without
/// its `cgroups` feature.
pub fn detect() -> Result<CgroupVersion, CgroupError> {
    backend::detect()
}

/// The smallest CPU share, in CPU units (v1 `cpu.shares` 2, v2 `cpu.weight` 1): what a
/// container without units gets when a sibling has some.
pub(crate) const MIN_CPU_SHARE_UNITS: u32 = 2;

/// The limits of one task cgroup. `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupLimits {
    /// CPU in Fargate units: 1024 is one vCPU. Becomes a CFS quota (a hard cap) and
    /// a relative weight. The task's CPU.
    pub cpu_units: Option<u32>,
    /// A relative CPU share in the same units, with no cap: under contention the
    /// cgroup gets CPU in proportion to its share among its siblings (v1
    /// `cpu.shares`, v2 `cpu.weight`). A container's CPU, as ECS's container `cpu`.
    /// Ignored when `cpu_units` is set (which sets the weight too).
    pub cpu_share_units: Option<u32>,
    /// Memory in bytes, without swap on top: a hard limit, reaching it OOM-kills.
    pub memory_bytes: Option<u64>,
    /// Memory in bytes the cgroup is meant to keep under contention, a soft limit (v1
    /// `memory.soft_limit_in_bytes`, v2 `memory.low`): ECS's `memoryReservation`.
    pub memory_reservation_bytes: Option<u64>,
    /// The most processes (and threads) the task may have at once.
    pub pids_max: Option<u64>,
}

impl CgroupLimits {
    /// The limits that are set, in the order CPU, memory, pids.
    pub(crate) fn requested(&self) -> Vec<Limit> {
        let mut out = Vec::with_capacity(3);
        if self.wants_cpu() {
            out.push(Limit::Cpu);
        }
        if self.wants_memory() {
            out.push(Limit::Memory);
        }
        if self.pids_max.is_some() {
            out.push(Limit::Pids);
        }
        out
    }

    /// Whether a CPU ceiling or share is set (the cpu controller is needed).
    pub(crate) fn wants_cpu(&self) -> bool {
        self.cpu_units.is_some() || self.cpu_share_units.is_some()
    }

    /// Whether a memory limit or reservation is set (the memory controller is needed).
    pub(crate) fn wants_memory(&self) -> bool {
        self.memory_bytes.is_some() || self.memory_reservation_bytes.is_some()
    }
}

/// Names one kind of cgroup limit, e.g. one that could not be applied under
/// best-effort enforcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Limit {
    /// The CPU limit or share ([`CgroupLimits::cpu_units`],
    /// [`CgroupLimits::cpu_share_units`]).
    Cpu,
    /// The memory limit or reservation ([`CgroupLimits::memory_bytes`],
    /// [`CgroupLimits::memory_reservation_bytes`]).
    Memory,
    /// The process-count limit ([`CgroupLimits::pids_max`]).
    Pids,
}

impl Limit {
    /// The cgroup controller that enforces this limit.
    pub fn controller(self) -> &'static str {
        match self {
            Limit::Cpu => "cpu",
            Limit::Memory => "memory",
            Limit::Pids => "pids",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Cpu => "CPU",
            Limit::Memory => "memory",
            Limit::Pids => "pids",
        })
    }
}

/// Usage counters of a task cgroup. A counter whose controller is not attached to the
/// cgroup (best-effort enforcement, or a controller the host lacks) reads 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupStats {
    /// CPU time used by the task's processes, in nanoseconds (v1 `cpuacct.usage`,
    /// v2 `usage_usec` of `cpu.stat`).
    pub cpu_usage_ns: u64,
    /// Memory charged to the task now, in bytes (v1 `memory.usage_in_bytes`, v2
    /// `memory.current`).
    pub memory_current_bytes: u64,
    /// The most memory charged to the task at any time, in bytes (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`; 0 on kernels before 5.19 with v2).
    pub memory_peak_bytes: u64,
    /// Processes and threads in the task now (`pids.current`).
    pub pids_current: u64,
    /// Processes of the task killed by the OOM killer (`oom_kill` of v1
    /// `memory.oom_control` or v2 `memory.events`).
    pub oom_kills: u64,
}

/// What went wrong while setting up, using or removing a task cgroup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// The crate was built without its `cgroups` feature, so no limit can be enforced.
    #[error(
        "cgroup limits are unsupported: tasksandbox was built without its `cgroups` feature; \
         enable the feature or ask for best-effort enforcement"
    )]
    Unsupported,
    /// No cgroup filesystem is mounted where the crate looks for one.
    #[error(
        "detecting the cgroup layout: no cgroup2 filesystem at {} and no cgroup v1 \
         controller hierarchy in /proc/self/mountinfo",
        path.display()
    )]
    NotMounted {
        /// Where a cgroup filesystem was expected.
        path: PathBuf,
    },
    /// The caller may not create cgroups under `path`.
    #[error(
        "the cgroup {} is not writable by uid {uid}; delegate a cgroup to this user \
         (e.g. systemd `Delegate=yes`) or ask for best-effort enforcement",
        path.display()
    )]
    NotDelegated {
        /// The cgroup directory that refused the change.
        path: PathBuf,
        /// The effective uid of the caller.
        uid: u32,
    },
    /// The controller that enforces `limit` is not available.
    #[error(
        "cannot apply the {limit} limit: the {controller} cgroup controller is not available \
         under {}",
        path.display()
    )]
    MissingController {
        /// The controller's name (`cpu`, `memory`, `pids`).
        controller: &'static str,
        /// The limit that needed it.
        limit: Limit,
        /// The cgroup v2 directory whose `cgroup.controllers` lacks it, or the cgroup
        /// v1 mount root under which no hierarchy has it.
        path: PathBuf,
    },
    /// A cgroup of that name exists already; task cgroup names must be unique.
    #[error("creating cgroup {}: it exists already (task cgroup names must be unique)", path.display())]
    AlreadyExists {
        /// The existing cgroup directory.
        path: PathBuf,
    },
    /// The parent or name given for a task cgroup is not a plain relative path.
    #[error("invalid task cgroup path {}: {reason}", path.display())]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Only a positive pid names one process; 0 would move the caller itself.
    #[error("refusing to add pid {pid} to a cgroup: only a positive pid names one process")]
    InvalidPid {
        /// The pid that was given.
        pid: i32,
    },
    /// Creating a cgroup directory failed.
    #[error("creating cgroup directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Switching controllers on in a cgroup v2 `cgroup.subtree_control` failed.
    /// `EBUSY` means that cgroup holds processes itself, which cgroup v2 forbids once
    /// its children get controllers: pick a parent that holds none.
    #[error("enabling controllers {controllers:?} in {}", path.display())]
    EnableControllers {
        /// The `cgroup.subtree_control` file.
        path: PathBuf,
        /// What was written, e.g. `+cpu +memory`.
        controllers: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup interface file failed.
    #[error("writing {value:?} to {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup interface file failed.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cgroup interface file held something the crate does not understand.
    #[error("parsing {}: unexpected content {content:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (possibly shortened).
        content: String,
    },
    /// Moving a process into the cgroup failed.
    #[error("moving pid {pid} into cgroup {}", path.display())]
    AddProcess {
        /// The process.
        pid: i32,
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed (after killing its processes and retrying).
    #[error("removing cgroup {}", path.display())]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The cause; `EBUSY` means a process is still inside.
        #[source]
        source: io::Error,
    },
}

/// How the task's first process joins its cgroup, before it execs.
#[derive(Debug)]
pub(crate) enum Join {
    /// The child writes `0` to each of these files (cgroup v1 `tasks` files, opened by
    /// the launcher, whose credentials the kernel checks). A thread moving itself skips
    /// the global lock a move by pid takes, whose first taking waits for an RCU grace
    /// period: milliseconds per start on v1.
    SelfAttach(Vec<std::os::fd::OwnedFd>),
    /// The launcher moves the child by pid ([`TaskCgroup::add_process`]).
    #[cfg_attr(not(feature = "cgroups"), allow(dead_code))]
    ByPid,
}

/// The cgroup of one task: created with its limits, joined by the task's processes,
/// removed (with every process left in it killed) by [`TaskCgroup::destroy`] or on drop.
///
/// A `TaskCgroup` may hold nothing at all (best-effort enforcement where no cgroup
/// could be created); then every operation is a no-op and [`TaskCgroup::path`] is
/// `None`.
#[derive(Debug)]
pub(crate) struct TaskCgroup {
    active: Option<backend::Active>,
}

impl TaskCgroup {
    /// Creates the task cgroup `<parent>/<name>` in every hierarchy that is needed,
    /// with `limits` written before any process is in it.
    ///
    /// `parent` is relative to each hierarchy's root (the launcher's default is
    /// `tasksandbox`) and is created if missing; `name` must be unique per task.
    ///
    /// With `best_effort == false`, any requested limit that cannot be applied (no
    /// delegation, a missing controller) is an error, as is a cgroup that cannot be
    /// created at all, and nothing is left behind. With `best_effort == true`, the
    /// limits that were not applied are returned instead; if no cgroup at all could be
    /// created, the returned `TaskCgroup` holds nothing and every requested limit is
    /// listed. An invalid path or an existing cgroup of the same name is an error
    /// either way.
    pub(crate) fn create(
        parent: &Path,
        name: &str,
        limits: &CgroupLimits,
        best_effort: bool,
    ) -> Result<(TaskCgroup, Vec<Limit>), CgroupError> {
        let (active, skipped) = backend::create(parent, name, limits, best_effort)?;
        Ok((TaskCgroup { active }, skipped))
    }

    /// How the task's first process is to join the cgroup.
    pub(crate) fn join(&self) -> Result<Join, CgroupError> {
        match &self.active {
            Some(active) => active.join(),
            None => Ok(Join::SelfAttach(Vec::new())),
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup, in every hierarchy.
    ///
    /// Called by the launcher while the child waits, before it execs.
    pub(crate) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::InvalidPid { pid });
        }
        match &self.active {
            Some(active) => active.add_process(pid),
            None => Ok(()),
        }
    }

    /// Files a process writes `0` to in order to move itself into this cgroup, on v1
    /// and v2 alike (empty when the `TaskCgroup` holds nothing).
    pub(crate) fn attach_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
        match &self.active {
            Some(active) => active.attach_files(),
            None => Ok(Vec::new()),
        }
    }

    /// How many of the task's processes the OOM killer has killed; 0 when unknown.
    pub(crate) fn oom_kills(&self) -> u64 {
        self.active.as_ref().map_or(0, |active| active.oom_kills())
    }

    /// The task's usage counters.
    pub(crate) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match &self.active {
            Some(active) => active.stats(),
            None => Ok(CgroupStats::default()),
        }
    }

    /// The cgroup's path relative to the hierarchy roots (`<parent>/<name>`), for
    /// reports; `None` when the `TaskCgroup` holds nothing.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.active.as_ref().map(|active| active.rel_path())
    }

    /// Kills every process left in the cgroup and removes its directory from every
    /// hierarchy, retrying briefly while the kernel still reports it busy.
    pub(crate) fn destroy(mut self) -> Result<(), CgroupError> {
        match self.active.take() {
            Some(active) => active.destroy(),
            None => Ok(()),
        }
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            let rel = active.rel_path().to_path_buf();
            if let Err(err) = active.destroy() {
                tracing::warn!(
                    cgroup = %rel.display(),
                    error = %err,
                    "removing a dropped task cgroup failed"
                );
            }
        }
    }
}
