//! The cgroup backend, built on cgroups-rs.
//!
//! cgroups-rs's controller types ([`CpuController`], [`MemController`],
//! [`PidController`]) write the limits, move processes in (`cgroup.procs`) and remove
//! the directories (with its retries). They are built directly from the layout that
//! is detected once per process: a [`cgroups_rs::fs::Cgroup`] is not used, because
//! building one re-reads `/proc/self/mountinfo` every time and its v2 hierarchy is
//! fixed at `/sys/fs/cgroup`, which would make the v2 logic impossible to test.
//!
//! Files are read and written directly only where cgroups-rs cannot do what is
//! needed:
//!
//! * the task's directory is made with `mkdir`, not cgroups-rs's `create_dir_all`, so
//!   an existing cgroup of the same name is refused instead of silently joined;
//! * cgroup v2 `cgroup.subtree_control`: cgroups-rs enables controllers only under
//!   `/sys/fs/cgroup`, ignores failures and writes on every call; here a controller
//!   is written only when missing, and a failure is reported;
//! * cgroup v2 `cpu.max`: cgroups-rs reads the file before writing it even when quota
//!   and period are both given; one write is enough;
//! * cgroup v2 `cgroup.kill`: cgroups-rs offers it only on a `Cgroup`;
//! * `cgroup.procs` when killing: cgroups-rs turns an unreadable line into pid 0,
//!   which `kill(2)` reads as "the caller's process group";
//! * statistics and OOM counters: cgroups-rs's readers read up to a dozen files per
//!   call, turn read errors into zeros, and parse `memory.oom_control` with
//!   `unwrap`; here exactly the needed files are read and failures are reported.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, MaxValue};
use cgroups_rs::CgroupPid;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit};

/// The CFS period, in microseconds.
pub(super) const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
const MIN_CFS_QUOTA_US: u64 = 1_000;
/// The range of cgroup v1 `cpu.shares`.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
/// How long [`kill_all`] keeps killing before giving up on a cgroup.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// The CFS quota for `units` Fargate CPU units (1024 = one vCPU), in microseconds
/// per [`CFS_PERIOD_US`].
pub(super) fn cfs_quota_us(units: u32) -> u64 {
    (u64::from(units) * CFS_PERIOD_US / 1024).max(MIN_CFS_QUOTA_US)
}

/// The cgroup v1 `cpu.shares` for `units` CPU units.
pub(super) fn cpu_shares(units: u32) -> u64 {
    u64::from(units).clamp(MIN_SHARES, MAX_SHARES)
}

/// The cgroup v2 `cpu.weight` (1..=10000) for cgroup v1 `shares` (2..=262144).
pub(super) fn cpu_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

/// Where the cgroup filesystems are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Layout {
    /// cgroup v1: the mount point of each hierarchy the crate uses, if mounted.
    V1(V1Mounts),
    /// cgroup v2: the root of the unified hierarchy.
    V2 {
        /// The mount point, `/sys/fs/cgroup` on a real host.
        root: PathBuf,
    },
}

impl Layout {
    fn version(&self) -> CgroupVersion {
        match self {
            Layout::V1(_) => CgroupVersion::V1,
            Layout::V2 { .. } => CgroupVersion::V2,
        }
    }
}

/// The cgroup v1 hierarchies the crate uses. Two fields hold the same path when the
/// controllers share a hierarchy (`cpu,cpuacct`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct V1Mounts {
    pub(super) cpu: Option<PathBuf>,
    pub(super) cpuacct: Option<PathBuf>,
    pub(super) memory: Option<PathBuf>,
    pub(super) pids: Option<PathBuf>,
}

static LAYOUT: OnceLock<Option<Layout>> = OnceLock::new();

/// The host's layout, probed on first use and cached for the life of the process.
pub(super) fn system_layout() -> Option<&'static Layout> {
    LAYOUT.get_or_init(probe_layout).as_ref()
}

fn probe_layout() -> Option<Layout> {
    let layout = if hierarchies::is_cgroup2_unified_mode() {
        Some(Layout::V2 {
            root: PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT),
        })
    } else {
        let mut mounts = V1Mounts::default();
        // Only `cgroup` (v1) mounts are listed; the first mount of a hierarchy wins.
        for mount in hierarchies::mountinfo_self() {
            let has = |controller: &str| mount.super_opts.iter().any(|opt| opt == controller);
            for (slot, controller) in [
                (&mut mounts.cpu, "cpu"),
                (&mut mounts.cpuacct, "cpuacct"),
                (&mut mounts.memory, "memory"),
                (&mut mounts.pids, "pids"),
            ] {
                if slot.is_none() && has(controller) {
                    *slot = Some(mount.mount_point.clone());
                }
            }
        }
        if mounts != V1Mounts::default() {
            Some(Layout::V1(mounts))
        } else {
            // A hybrid layout whose controllers all sit on the cgroup2 side.
            let unified = Path::new(hierarchies::UNIFIED_MOUNTPOINT).join("unified");
            let offered =
                fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
            (!offered.trim().is_empty()).then_some(Layout::V2 { root: unified })
        }
    };
    tracing::debug!(?layout, "detected the cgroup layout");
    layout
}

pub(super) fn detect() -> Result<CgroupVersion, CgroupError> {
    system_layout().map(Layout::version).ok_or_else(not_mounted)
}

/// Every hierarchy root a task cgroup can have a directory in, without repeats.
pub(super) fn hierarchy_roots(layout: &Layout) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = match layout {
        Layout::V1(m) => [&m.cpu, &m.cpuacct, &m.memory, &m.pids]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        Layout::V2 { root } => vec![root.clone()],
    };
    roots.sort();
    roots.dedup();
    roots
}

/// The hierarchy every complete task cgroup has a directory in and makes last: on
/// v1 the last of cpu, cpuacct, memory, pids that is mounted (see [`create_v1`]).
fn last_made_root(layout: &Layout) -> Option<&Path> {
    match layout {
        Layout::V1(m) => [&m.pids, &m.memory, &m.cpuacct, &m.cpu]
            .into_iter()
            .flatten()
            .next()
            .map(PathBuf::as_path),
        Layout::V2 { root } => Some(root),
    }
}

pub(super) fn sweep_stale(parent: &Path, full: bool) -> Result<super::Swept, CgroupError> {
    // The same check a task cgroup's parent gets, with a name that always passes.
    relative_path(parent, "x")?;
    let layout = system_layout().ok_or_else(not_mounted)?;
    let quick = if full { None } else { last_made_root(layout) };
    Ok(super::sweep::sweep_in(
        &hierarchy_roots(layout),
        quick,
        parent,
        &crate::sys::process_exists,
    ))
}

fn not_mounted() -> CgroupError {
    CgroupError::NotMounted {
        path: PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT),
    }
}

/// `<parent>/<name>`, checked to stay below the hierarchy roots.
pub(super) fn relative_path(parent: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    if !parent
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(CgroupError::InvalidPath {
            path: parent.to_path_buf(),
            reason: "the parent must be a relative path of plain components (no leading `/`, \
                     no `.` or `..`)",
        });
    }
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CgroupError::InvalidPath {
            path: PathBuf::from(name),
            reason: "the name must be a single non-empty path component",
        });
    }
    Ok(parent.join(name))
}

/// A task cgroup that exists: its directories and the handles to read it.
#[derive(Debug)]
pub(super) struct Active {
    version: CgroupVersion,
    /// `<parent>/<name>`.
    rel: PathBuf,
    /// One handle per directory created (one per v1 hierarchy used, one on v2).
    members: Vec<Member>,
    /// The directory with the CPU usage counter (v1 `cpuacct`, v2 the cgroup itself).
    cpu_usage: Option<PathBuf>,
    /// The directory with the memory controller's files, if it is attached.
    memory: Option<PathBuf>,
    /// The pids controller, if attached.
    pids: Option<PidController>,
}

/// One directory of the task cgroup and a cgroups-rs handle on it. The core files
/// (`cgroup.procs`) and removal work the same through every controller type.
struct Member {
    dir: PathBuf,
    handle: Box<dyn Controller + Send + Sync>,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member").field("dir", &self.dir).finish()
    }
}

impl Active {
    pub(super) fn rel_path(&self) -> &Path {
        &self.rel
    }

    pub(super) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let target = u64::try_from(pid)
            .map(CgroupPid::from)
            .map_err(|_| CgroupError::InvalidPid { pid })?;
        for member in &self.members {
            member
                .handle
                .add_task_by_tgid(&target)
                .map_err(|err| CgroupError::AddProcess {
                    pid,
                    path: member.dir.clone(),
                    source: cg_io(err),
                })?;
        }
        Ok(())
    }

    pub(super) fn join(&self) -> Result<super::Join, CgroupError> {
        if self.version == CgroupVersion::V2 {
            return Ok(super::Join::ByPid);
        }
        let mut files = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let path = member.dir.join("tasks");
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| CgroupError::Write {
                    path,
                    value: "0".to_string(),
                    source,
                })?;
            files.push(OwnedFd::from(file));
        }
        Ok(super::Join::SelfAttach(files))
    }

    /// Files a process writes `0` to in order to move itself in: v1 `tasks` in each
    /// hierarchy, v2 `cgroup.procs`. The kernel checks the credentials of the opener
    /// (the launcher), not of the writer.
    pub(super) fn attach_files(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        let file = match self.version {
            CgroupVersion::V1 => "tasks",
            CgroupVersion::V2 => "cgroup.procs",
        };
        let mut files = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let path = member.dir.join(file);
            let opened = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| CgroupError::Write {
                    path,
                    value: "0".to_string(),
                    source,
                })?;
            files.push(OwnedFd::from(opened));
        }
        Ok(files)
    }

    pub(super) fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else {
            return 0;
        };
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| keyed_value(&text, "oom_kill"))
            .unwrap_or(0)
    }

    pub(super) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let mut stats = CgroupStats::default();
        if let Some(dir) = &self.cpu_usage {
            stats.cpu_usage_ns = match self.version {
                CgroupVersion::V1 => read_u64(&dir.join("cpuacct.usage"))?,
                CgroupVersion::V2 => {
                    read_keyed(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000)
                }
            };
        }
        if let Some(dir) = &self.memory {
            match self.version {
                CgroupVersion::V1 => {
                    stats.memory_current_bytes = read_u64(&dir.join("memory.usage_in_bytes"))?;
                    stats.memory_peak_bytes = read_u64(&dir.join("memory.max_usage_in_bytes"))?;
                }
                CgroupVersion::V2 => {
                    stats.memory_current_bytes = read_u64(&dir.join("memory.current"))?;
                    // memory.peak exists from Linux 5.19 on.
                    let peak = dir.join("memory.peak");
                    stats.memory_peak_bytes = match fs::metadata(&peak) {
                        Err(err) if err.kind() == io::ErrorKind::NotFound => 0,
                        _ => read_u64(&peak)?,
                    };
                }
            }
        }
        if let Some(pids) = &self.pids {
            stats.pids_current = pids.get_pid_current().map_err(|err| CgroupError::Read {
                path: pids.path().join("pids.current"),
                source: cg_io(err),
            })?;
        }
        stats.oom_kills = self.oom_kills();
        Ok(stats)
    }

    pub(super) fn destroy(mut self) -> Result<(), CgroupError> {
        // The usual case: the task's processes are gone (its pid 1 was reaped, which
        // takes its whole pid namespace along), so the directories come out at once.
        self.members
            .retain(|member| fs::remove_dir(&member.dir).is_err());
        if self.members.is_empty() {
            return Ok(());
        }
        if self.version == CgroupVersion::V2 {
            // cgroup.kill (Linux 5.14+) kills the whole subtree at once, with no pid to
            // race against; the loop below then only waits for the exits.
            for member in &self.members {
                let file = member.dir.join("cgroup.kill");
                if file.exists() {
                    if let Err(err) = write_file(&file, "1") {
                        tracing::debug!(path = %file.display(), %err, "cgroup.kill failed");
                    }
                }
            }
        }
        let dirs: Vec<PathBuf> = self.members.iter().map(|m| m.dir.clone()).collect();
        kill_all(&dirs);
        let mut first_err = None;
        for member in &self.members {
            // cgroups-rs retries a busy rmdir for 150 ms and removes empty child cgroups.
            if member.handle.delete().is_ok() {
                continue;
            }
            // Something below the task cgroup still holds processes: kill the whole
            // subtree, then try once more.
            kill_all(&subtree_dirs(&member.dir));
            if let Err(err) = member.handle.delete() {
                first_err.get_or_insert(CgroupError::Remove {
                    path: member.dir.clone(),
                    source: cg_io(err),
                });
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// How a `create` is going: which limits were given up on, under best effort.
struct Outcome {
    best_effort: bool,
    skipped: Vec<Limit>,
}

impl Outcome {
    /// A step that `limits` need failed with `err`. Strict: that is the error.
    /// Best effort: the limits are noted as not applied. Steps that no limit needs
    /// (statistics only) never fail a create.
    fn failed(
        &mut self,
        limits: impl IntoIterator<Item = Limit>,
        err: CgroupError,
    ) -> Result<(), CgroupError> {
        let limits: Vec<Limit> = limits.into_iter().collect();
        if limits.is_empty() {
            tracing::debug!(error = %err, "cgroup statistics will be incomplete");
            return Ok(());
        }
        if !self.best_effort {
            return Err(err);
        }
        tracing::warn!(?limits, error = %err, "cgroup limits not applied (best effort)");
        self.skipped.extend(limits);
        Ok(())
    }
}

/// Directories made by a `create` in progress, removed again unless it succeeds.
#[derive(Default)]
struct Created {
    dirs: Vec<PathBuf>,
}

impl Created {
    fn keep(mut self) {
        self.dirs.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            if let Err(err) = fs::remove_dir(dir) {
                tracing::warn!(path = %dir.display(), %err, "removing a half-made cgroup failed");
            }
        }
    }
}

pub(super) fn create(
    parent: &Path,
    name: &str,
    limits: &CgroupLimits,
    best_effort: bool,
) -> Result<(Option<Active>, Vec<Limit>), CgroupError> {
    let rel = relative_path(parent, name)?;
    create_in(system_layout(), &rel, limits, best_effort)
}

/// [`create`] in a given layout (the host's, or a fake tree in tests).
pub(super) fn create_in(
    layout: Option<&Layout>,
    rel: &Path,
    limits: &CgroupLimits,
    best_effort: bool,
) -> Result<(Option<Active>, Vec<Limit>), CgroupError> {
    let mut outcome = Outcome {
        best_effort,
        skipped: Vec::new(),
    };
    let active = match layout {
        Some(Layout::V1(mounts)) => create_v1(mounts, rel, limits, &mut outcome)?,
        Some(Layout::V2 { root }) => create_v2(root, rel, limits, &mut outcome)?,
        None if best_effort => {
            tracing::warn!(error = %not_mounted(), "no task cgroup (best effort)");
            None
        }
        None => return Err(not_mounted()),
    };
    let mut skipped = match active {
        Some(_) => outcome.skipped,
        None => limits.requested(),
    };
    skipped.sort_unstable();
    skipped.dedup();
    Ok((active, skipped))
}

/// The v1 hierarchies, in the order their directories are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V1Kind {
    Cpu,
    CpuAcct,
    Memory,
    Pids,
}

fn create_v1(
    mounts: &V1Mounts,
    rel: &Path,
    limits: &CgroupLimits,
    outcome: &mut Outcome,
) -> Result<Option<Active>, CgroupError> {
    // The cpu hierarchy is used only for a CPU limit; cpuacct, memory and pids also
    // serve the statistics.
    let plan = [
        (
            V1Kind::Cpu,
            mounts.cpu.as_deref().filter(|_| limits.wants_cpu()),
            limits.wants_cpu().then_some(Limit::Cpu),
        ),
        (V1Kind::CpuAcct, mounts.cpuacct.as_deref(), None),
        (
            V1Kind::Memory,
            mounts.memory.as_deref(),
            limits.wants_memory().then_some(Limit::Memory),
        ),
        (
            V1Kind::Pids,
            mounts.pids.as_deref(),
            limits.pids_max.map(|_| Limit::Pids),
        ),
    ];
    let mut created = Created::default();
    let mut members: Vec<Member> = Vec::with_capacity(plan.len());
    // (directory, mount point) of each hierarchy in use.
    let mut dirs: [Option<(PathBuf, &Path)>; 4] = Default::default();
    let mut first_err = None;
    for (index, (kind, mount, limit)) in plan.into_iter().enumerate() {
        let Some(mount) = mount else {
            if let Some(limit) = limit {
                outcome.failed(
                    [limit],
                    CgroupError::MissingController {
                        controller: limit.controller(),
                        limit,
                        path: PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT),
                    },
                )?;
            }
            continue;
        };
        let dir = mount.join(rel);
        // Hierarchies mounted together (cpu,cpuacct) share one directory.
        if !members.iter().any(|m| m.dir == dir) {
            match make_leaf(&dir) {
                Ok(()) => created.dirs.push(dir.clone()),
                Err(err @ CgroupError::AlreadyExists { .. }) => return Err(err),
                Err(err) => {
                    match limit {
                        // Kept in case no directory at all can be made.
                        None if first_err.is_none() => first_err = Some(err),
                        _ => outcome.failed(limit, err)?,
                    }
                    continue;
                }
            }
            members.push(Member {
                dir: dir.clone(),
                handle: v1_handle(kind, &dir, mount),
            });
        }
        if let Some(slot) = dirs.get_mut(index) {
            *slot = Some((dir, mount));
        }
    }
    if created.dirs.is_empty() {
        return if outcome.best_effort {
            Ok(None)
        } else {
            Err(first_err.unwrap_or_else(not_mounted))
        };
    }
    let [cpu, cpuacct, memory, pids] = dirs;

    if let (Some(units), Some((dir, mount))) = (limits.cpu_units, &cpu) {
        if let Err(err) = set_cpu_v1(dir, mount, units) {
            outcome.failed([Limit::Cpu], err)?;
        }
    } else if let (Some(units), Some((dir, mount))) = (limits.cpu_share_units, &cpu) {
        if let Err(err) = set_shares_v1(dir, mount, units) {
            outcome.failed([Limit::Cpu], err)?;
        }
    }
    if let (Some(bytes), Some((dir, mount))) = (limits.memory_bytes, &memory) {
        if let Err(err) = set_memory_v1(dir, mount, bytes) {
            outcome.failed([Limit::Memory], err)?;
        }
    }
    if let (Some(bytes), Some((dir, mount))) = (limits.memory_reservation_bytes, &memory) {
        if let Err(err) = set_reservation_v1(dir, mount, bytes) {
            outcome.failed([Limit::Memory], err)?;
        }
    }
    let pids = pids.map(|(dir, mount)| PidController::new(dir, mount.to_path_buf(), false));
    if let (Some(max), Some(pids)) = (limits.pids_max, &pids) {
        if let Err(err) = set_pids(pids, max) {
            outcome.failed([Limit::Pids], err)?;
        }
    }

    created.keep();
    Ok(Some(Active {
        version: CgroupVersion::V1,
        rel: rel.to_path_buf(),
        members,
        cpu_usage: cpuacct.map(|(dir, _)| dir),
        memory: memory.map(|(dir, _)| dir),
        pids,
    }))
}

fn v1_handle(kind: V1Kind, dir: &Path, mount: &Path) -> Box<dyn Controller + Send + Sync> {
    let (dir, mount) = (dir.to_path_buf(), mount.to_path_buf());
    match kind {
        V1Kind::Cpu => Box::new(CpuController::new(dir, mount, false)),
        V1Kind::CpuAcct => Box::new(CpuAcctController::new(dir, mount)),
        V1Kind::Memory => Box::new(MemController::new(dir, mount, false)),
        V1Kind::Pids => Box::new(PidController::new(dir, mount, false)),
    }
}

fn set_cpu_v1(dir: &Path, mount: &Path, units: u32) -> Result<(), CgroupError> {
    let cpu = CpuController::new(dir.to_path_buf(), mount.to_path_buf(), false);
    cpu.set_cfs_period(CFS_PERIOD_US)
        .map_err(|err| write_error(dir, "cpu.cfs_period_us", CFS_PERIOD_US, cg_io(err)))?;
    let quota = cfs_quota_us(units);
    cpu.set_cfs_quota(i64::try_from(quota).unwrap_or(i64::MAX))
        .map_err(|err| write_error(dir, "cpu.cfs_quota_us", quota, cg_io(err)))?;
    let shares = cpu_shares(units);
    cpu.set_shares(shares)
        .map_err(|err| write_error(dir, "cpu.shares", shares, cg_io(err)))
}

fn set_shares_v1(dir: &Path, mount: &Path, units: u32) -> Result<(), CgroupError> {
    let shares = cpu_shares(units);
    CpuController::new(dir.to_path_buf(), mount.to_path_buf(), false)
        .set_shares(shares)
        .map_err(|err| write_error(dir, "cpu.shares", shares, cg_io(err)))
}

fn set_reservation_v1(dir: &Path, mount: &Path, bytes: u64) -> Result<(), CgroupError> {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    MemController::new(dir.to_path_buf(), mount.to_path_buf(), false)
        .set_soft_limit(bytes)
        .map_err(|err| write_error(dir, "memory.soft_limit_in_bytes", bytes, cg_io(err)))
}

fn set_memory_v1(dir: &Path, mount: &Path, bytes: u64) -> Result<(), CgroupError> {
    let memory = MemController::new(dir.to_path_buf(), mount.to_path_buf(), false);
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    // The memory limit first: memory+swap may never be set below it.
    memory
        .set_limit(bytes)
        .map_err(|err| write_error(dir, "memory.limit_in_bytes", bytes, cg_io(err)))?;
    if let Err(err) = memory.set_memswap_limit(bytes) {
        let file = dir.join("memory.memsw.limit_in_bytes");
        if file.exists() {
            return Err(write_error(
                dir,
                "memory.memsw.limit_in_bytes",
                bytes,
                cg_io(err),
            ));
        }
        tracing::debug!(path = %file.display(), "swap is not accounted; no memory+swap limit");
    }
    Ok(())
}

fn set_pids(pids: &PidController, max: u64) -> Result<(), CgroupError> {
    let value = i64::try_from(max).map_or(MaxValue::Max, MaxValue::Value);
    pids.set_pid_max(value)
        .map_err(|err| write_error(pids.path(), "pids.max", value, cg_io(err)))
}

fn create_v2(
    root: &Path,
    rel: &Path,
    limits: &CgroupLimits,
    outcome: &mut Outcome,
) -> Result<Option<Active>, CgroupError> {
    // The controllers to switch on, each with the limit that needs it (none: wanted
    // for the statistics only).
    let mut wanted: Vec<(&'static str, Option<Limit>)> = Vec::with_capacity(3);
    if limits.wants_cpu() {
        wanted.push(("cpu", Some(Limit::Cpu)));
    }
    wanted.push(("memory", limits.wants_memory().then_some(Limit::Memory)));
    wanted.push(("pids", limits.pids_max.map(|_| Limit::Pids)));

    let leaf = root.join(rel);
    let mut setup = || -> Result<(), CgroupError> {
        let mut node = root.to_path_buf();
        enable_controllers(&node, &mut wanted, outcome)?;
        for component in rel.parent().into_iter().flat_map(Path::components) {
            node.push(component);
            ensure_dir(&node)?;
            enable_controllers(&node, &mut wanted, outcome)?;
        }
        make_leaf(&leaf)
    };
    match setup() {
        Ok(()) => {}
        Err(err @ CgroupError::AlreadyExists { .. }) => return Err(err),
        Err(err) if outcome.best_effort => {
            tracing::warn!(error = %err, "no task cgroup (best effort)");
            return Ok(None);
        }
        Err(err) => return Err(err),
    }
    let created = Created {
        dirs: vec![leaf.clone()],
    };
    let enabled = |controller: &str| wanted.iter().any(|(c, _)| *c == controller);

    if let Some(units) = limits.cpu_units.filter(|_| enabled("cpu")) {
        if let Err(err) = set_cpu_v2(&leaf, root, units) {
            outcome.failed([Limit::Cpu], err)?;
        }
    } else if let Some(units) = limits.cpu_share_units.filter(|_| enabled("cpu")) {
        if let Err(err) = set_weight_v2(&leaf, root, units) {
            outcome.failed([Limit::Cpu], err)?;
        }
    }
    if let Some(bytes) = limits.memory_bytes.filter(|_| enabled("memory")) {
        if let Err(err) = set_memory_v2(&leaf, root, bytes) {
            outcome.failed([Limit::Memory], err)?;
        }
    }
    if let Some(bytes) = limits
        .memory_reservation_bytes
        .filter(|_| enabled("memory"))
    {
        let low = i64::try_from(bytes).unwrap_or(i64::MAX);
        // On v2 cgroups-rs writes the soft limit to memory.low.
        if let Err(err) =
            MemController::new(leaf.clone(), root.to_path_buf(), true).set_soft_limit(low)
        {
            outcome.failed(
                [Limit::Memory],
                write_error(&leaf, "memory.low", low, cg_io(err)),
            )?;
        }
    }
    let pids = enabled("pids").then(|| PidController::new(leaf.clone(), root.to_path_buf(), true));
    if let (Some(max), Some(pids)) = (limits.pids_max, &pids) {
        if let Err(err) = set_pids(pids, max) {
            outcome.failed([Limit::Pids], err)?;
        }
    }

    let memory = enabled("memory").then(|| leaf.clone());
    created.keep();
    Ok(Some(Active {
        version: CgroupVersion::V2,
        rel: rel.to_path_buf(),
        members: vec![Member {
            dir: leaf.clone(),
            handle: Box::new(CpuController::new(leaf.clone(), root.to_path_buf(), true)),
        }],
        // usage_usec of cpu.stat is there even without the cpu controller.
        cpu_usage: Some(leaf),
        memory,
        pids,
    }))
}

/// Makes sure every controller in `wanted` is on in `node`'s `cgroup.subtree_control`,
/// so that `node`'s children get it. Writes only what is missing. A controller that
/// cannot be switched on leaves `wanted`, and its limit fails (see [`Outcome::failed`]).
fn enable_controllers(
    node: &Path,
    wanted: &mut Vec<(&'static str, Option<Limit>)>,
    outcome: &mut Outcome,
) -> Result<(), CgroupError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let control = node.join("cgroup.subtree_control");
    let on = match read_file(&control) {
        Ok(text) => text,
        Err(err) => return drop_controllers(wanted, |_| true, err, outcome),
    };
    if wanted.iter().all(|(c, _)| has_word(&on, c)) {
        return Ok(());
    }
    let listed = node.join("cgroup.controllers");
    let available = match read_file(&listed) {
        Ok(text) => text,
        Err(err) => return drop_controllers(wanted, |c| !has_word(&on, c), err, outcome),
    };
    // What the parent does not hand down cannot be switched on here.
    let absent: Vec<(&'static str, Option<Limit>)> = wanted
        .iter()
        .filter(|(c, _)| !has_word(&on, c) && !has_word(&available, c))
        .copied()
        .collect();
    for (controller, limit) in absent {
        wanted.retain(|(c, _)| *c != controller);
        match limit {
            Some(limit) => outcome.failed(
                [limit],
                CgroupError::MissingController {
                    controller,
                    limit,
                    path: node.to_path_buf(),
                },
            )?,
            None => tracing::debug!(
                controller,
                path = %node.display(),
                "controller not available; its statistics will read 0"
            ),
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !has_word(&on, c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let value = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    match write_file(&control, &value) {
        Ok(()) => Ok(()),
        Err(source) => {
            let err = if is_denied(&source) {
                CgroupError::NotDelegated {
                    path: node.to_path_buf(),
                    uid: euid(),
                }
            } else {
                CgroupError::EnableControllers {
                    path: control,
                    controllers: value,
                    source,
                }
            };
            drop_controllers(wanted, |c| missing.contains(&c), err, outcome)
        }
    }
}

/// Removes the controllers matching `which` from `wanted`, failing their limits with `err`.
fn drop_controllers(
    wanted: &mut Vec<(&'static str, Option<Limit>)>,
    which: impl Fn(&str) -> bool,
    err: CgroupError,
    outcome: &mut Outcome,
) -> Result<(), CgroupError> {
    let mut limits = Vec::new();
    wanted.retain(|(c, limit)| {
        if which(c) {
            limits.extend(*limit);
            false
        } else {
            true
        }
    });
    outcome.failed(limits, err)
}

fn set_cpu_v2(leaf: &Path, root: &Path, units: u32) -> Result<(), CgroupError> {
    let value = format!("{} {}", cfs_quota_us(units), CFS_PERIOD_US);
    write_file(&leaf.join("cpu.max"), &value)
        .map_err(|source| write_error(leaf, "cpu.max", &value, source))?;
    set_weight_v2(leaf, root, units)
}

fn set_weight_v2(leaf: &Path, root: &Path, units: u32) -> Result<(), CgroupError> {
    let weight = cpu_weight(cpu_shares(units));
    // On v2 cgroups-rs writes the value as is to cpu.weight.
    CpuController::new(leaf.to_path_buf(), root.to_path_buf(), true)
        .set_shares(weight)
        .map_err(|err| write_error(leaf, "cpu.weight", weight, cg_io(err)))
}

fn set_memory_v2(leaf: &Path, root: &Path, bytes: u64) -> Result<(), CgroupError> {
    let memory = MemController::new(leaf.to_path_buf(), root.to_path_buf(), true);
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    memory
        .set_limit(bytes)
        .map_err(|err| write_error(leaf, "memory.max", bytes, cg_io(err)))?;
    if let Err(err) = memory.set_memswap_limit(0) {
        let file = leaf.join("memory.swap.max");
        if file.exists() {
            return Err(write_error(leaf, "memory.swap.max", 0, cg_io(err)));
        }
        tracing::debug!(path = %file.display(), "swap is not accounted; no swap limit");
    }
    Ok(())
}

/// Makes the task's own directory, and its parents if they are missing. An existing
/// one is refused.
fn make_leaf(dir: &Path) -> Result<(), CgroupError> {
    // The parents exist but for the first task: try the leaf first, saving a lookup.
    let mut result = fs::create_dir(dir);
    if let (Err(err), Some(parent)) = (&result, dir.parent()) {
        if err.kind() == io::ErrorKind::NotFound {
            fs::create_dir_all(parent).map_err(|source| mkdir_error(parent, source))?;
            result = fs::create_dir(dir);
        }
    }
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(CgroupError::AlreadyExists {
            path: dir.to_path_buf(),
        }),
        Err(err) => Err(mkdir_error(dir, err)),
    }
}

/// Makes a parent cgroup unless it exists (parents are shared between tasks).
fn ensure_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(mkdir_error(dir, err)),
    }
}

fn mkdir_error(dir: &Path, source: io::Error) -> CgroupError {
    if is_denied(&source) {
        // The cgroup that refused is the deepest one that exists.
        let refused = dir.ancestors().find(|p| p.is_dir()).unwrap_or(dir);
        CgroupError::NotDelegated {
            path: refused.to_path_buf(),
            uid: euid(),
        }
    } else {
        CgroupError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }
    }
}

fn write_error(dir: &Path, file: &str, value: impl fmt::Display, source: io::Error) -> CgroupError {
    let path = dir.join(file);
    // cgroupfs answers EACCES to an open with O_CREAT of a file it does not have:
    // that is a missing file (a controller not attached), not a permission problem.
    let source = if is_denied(&source) && fs::symlink_metadata(&path).is_err() {
        io::Error::from_raw_os_error(libc::ENOENT)
    } else {
        source
    };
    if is_denied(&source) {
        CgroupError::NotDelegated {
            path: dir.to_path_buf(),
            uid: euid(),
        }
    } else {
        CgroupError::Write {
            path,
            value: value.to_string(),
            source,
        }
    }
}

fn is_denied(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The `io::Error` under a cgroups-rs error, so that the errno stays matchable.
fn cg_io(err: cgroups_rs::fs::error::Error) -> io::Error {
    use std::error::Error as _;
    let errno = err
        .source()
        .and_then(|cause| cause.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error);
    match errno {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::other(err),
    }
}

/// Writes `value` to a cgroup file, opened the way cgroups-rs opens them (`O_CREAT`,
/// which cgroupfs refuses with `EACCES` for a file that does not exist).
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_file(path)?;
    text.trim().parse().map_err(|_| parse_error(path, &text))
}

fn read_keyed(path: &Path, key: &str) -> Result<u64, CgroupError> {
    let text = read_file(path)?;
    keyed_value(&text, key).ok_or_else(|| parse_error(path, &text))
}

fn parse_error(path: &Path, text: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        content: text.chars().take(200).collect(),
    }
}

/// The value of `key` in a flat keyed file (`key value` per line).
pub(super) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next())
            .flatten()
            .and_then(|value| value.parse().ok())
    })
}

fn has_word(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// The pids listed in `dir/cgroup.procs`; only positive ones (a missing or unreadable
/// file lists none).
fn read_procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| {
            text.lines()
                .filter_map(|line| line.trim().parse::<i32>().ok())
                .filter(|pid| *pid > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in `dirs` until they are empty (or [`KILL_TIMEOUT`] passes).
///
/// The caller's own process is never signalled; if it is inside, the directory stays
/// busy and its removal reports that. A pid is read and then killed, so in the
/// instant between the two the process could exit and its pid be reused; cgroup v2's
/// `cgroup.kill`, used first where it exists, has no such window.
fn kill_all(dirs: &[PathBuf]) {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let deadline = Instant::now() + KILL_TIMEOUT;
    let mut pause = Duration::from_micros(50);
    loop {
        let mut left = 0usize;
        for dir in dirs {
            for pid in read_procs(dir).into_iter().filter(|pid| *pid != me) {
                left += 1;
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(err) => tracing::debug!(pid, %err, "killing a process of a cgroup failed"),
                }
            }
        }
        if left == 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// `dir` and every cgroup below it.
fn subtree_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut next = 0;
    while let Some(current) = dirs.get(next).cloned() {
        next += 1;
        if let Ok(entries) = fs::read_dir(&current) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(entry.path());
                }
            }
        }
    }
    dirs
}
