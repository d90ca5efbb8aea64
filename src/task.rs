//! The typed front door: [`TaskSandbox::builder`] describes a task, `build()` checks
//! everything and precomputes the launch, `start()` runs it.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::capabilities::{Capabilities, Capability};
use crate::cgroup::{CgroupLimits, Limit};
use crate::container::{Condition, Container, HealthCheck, Stdio};
use crate::error::{ConfigError, Error};
use crate::lifecycle::{PidMode, TaskExit};
use crate::logs::{LogLine, LogSink};
use crate::mounts::RootContext;
use crate::namespaces::{NetworkNamespace, ResolvedIds, UserNamespace};
use crate::process::plan::ChildPlan;
use crate::process::{self, Output, RunningTask};
use crate::seccomp::SeccompPolicy;
use crate::size::{EphemeralStorage, TaskSize};
use crate::storage::{Backing, StoragePlan};

/// Fargate's default nofile ulimit.
pub const DEFAULT_NOFILE: u64 = 65_535;
/// Fargate's largest nofile ulimit.
pub const MAX_NOFILE: u64 = 1_048_576;
/// The pids limit a task gets unless told otherwise.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// ECS's default stop timeout: SIGTERM, then SIGKILL after this long.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// ECS's longest stop timeout. [`RunningTask::stop`](crate::RunningTask::stop) cuts a
/// longer grace period to this.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest [`Container::start_timeout`] (Fargate's).
pub const MAX_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether every limit must be applied, or the task may start without the ones the
/// host cannot give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Enforcement {
    /// `start()` fails if any limit cannot be applied (the default).
    #[default]
    Required,
    /// `start()` goes on without the limits the host cannot give (no cgroup
    /// delegation, nofile above the host's hard limit), and
    /// [`EnforcementReport::not_applied`] lists them.
    BestEffort,
}

/// What was really enforced for a started task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnforcementReport {
    /// The user namespace and its id maps.
    pub user_namespace: String,
    /// The network namespace: `new (loopback up)`, or `joined <path or fd>` for a
    /// namespace given with
    /// [`TaskSandboxBuilder::network_namespace`].
    pub network_namespace: String,
    /// The task's cgroup (relative to the hierarchy root), if one was made.
    pub cgroup: Option<PathBuf>,
    /// Limits that were asked for and not applied (only with
    /// [`Enforcement::BestEffort`]).
    pub not_applied: Vec<String>,
    /// The nofile limit in force.
    pub nofile: u64,
    /// The capability allowlist (the bounding set) of the first container.
    pub capabilities: Capabilities,
    /// Number of seccomp filters installed (first container).
    pub seccomp_filters: usize,
    /// Whether the containers share one PID namespace.
    pub pid_mode: PidMode,
    /// What each container got.
    pub containers: Vec<ContainerReport>,
}

/// What one container of a started task got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerReport {
    /// The container.
    pub name: String,
    /// Its capability allowlist.
    pub capabilities: Capabilities,
    /// Number of seccomp filters installed.
    pub seccomp_filters: usize,
    /// Whether it runs in its own Landlock domain (pid mode `task`, no
    /// `SYS_PTRACE`), which keeps it from tracing its siblings.
    pub landlock: bool,
}

/// Builder of a [`TaskSandbox`]; see [`TaskSandbox::builder`].
#[derive(Clone)]
pub struct TaskSandboxBuilder {
    size: TaskSize,
    pids_limit: u64,
    nofile: Option<u64>,
    containers: Vec<Container>,
    user_namespace: UserNamespace,
    enforcement: Enforcement,
    cgroup_parent: PathBuf,
    runtime_dir: Option<PathBuf>,
    pid_mode: PidMode,
    ephemeral_storage: EphemeralStorage,
    storage_dir: PathBuf,
    stop_timeout: Duration,
    hostname: Option<String>,
    log_sink: Option<LogSink>,
    network_namespace: NetworkNamespace,
}

impl std::fmt::Debug for TaskSandboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSandboxBuilder")
            .field("size", &self.size)
            .field("pids_limit", &self.pids_limit)
            .field("nofile", &self.nofile)
            .field("containers", &self.containers)
            .field("user_namespace", &self.user_namespace)
            .field("enforcement", &self.enforcement)
            .field("cgroup_parent", &self.cgroup_parent)
            .field("runtime_dir", &self.runtime_dir)
            .field("pid_mode", &self.pid_mode)
            .field("ephemeral_storage", &self.ephemeral_storage)
            .field("storage_dir", &self.storage_dir)
            .field("stop_timeout", &self.stop_timeout)
            .field("hostname", &self.hostname)
            .field("log_sink", &self.log_sink.as_ref().map(|_| "<fn>"))
            .field("network_namespace", &self.network_namespace)
            .finish()
    }
}

/// A validated task, ready to start any number of times.
///
/// Building does all the work that does not depend on a particular start: checking
/// every field, compiling the seccomp profiles, resolving the commands, laying out the
/// root filesystems. [`TaskSandbox::start`] then only creates the cgroups and the
/// processes.
///
/// ```no_run
/// use tasksandbox::{Condition, Container, TaskSandbox, TaskSize};
///
/// let sandbox = TaskSandbox::builder()
///     .size(TaskSize::fargate(256, 512)?)
///     .container(Container::new("app").command(["/bin/echo", "hello from the task"]))
///     .container(
///         Container::new("sidecar")
///             .command(["/bin/sleep", "1"])
///             .essential(false)
///             .depends_on("app", Condition::Start),
///     )
///     .build()?;
/// let exit = sandbox.start()?.wait()?;
/// assert!(exit.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskSandbox {
    pub(crate) inner: Arc<Inner>,
}

/// One container of a built task.
#[derive(Debug)]
pub(crate) struct ContainerSpec {
    pub name: Arc<str>,
    pub plan: ChildPlan,
    pub stdio: [Stdio; 3],
    pub essential: bool,
    /// Dependencies, as indices into [`Inner::containers`].
    pub depends_on: Vec<(usize, Condition)>,
    pub health_check: Option<HealthCheck>,
    /// How long dependents wait for this container to meet their condition.
    pub start_timeout: Option<Duration>,
    /// Limits of the container's own cgroup inside the task's.
    pub limits: CgroupLimits,
    /// The seccomp policy `plan.seccomp` was compiled from (for `explain`).
    pub seccomp_policy: SeccompPolicy,
}

/// The built task, shared by every start.
pub(crate) struct Inner {
    pub containers: Vec<ContainerSpec>,
    pub ids: ResolvedIds,
    pub limits: CgroupLimits,
    pub best_effort: bool,
    pub cgroup_parent: PathBuf,
    pub nofile: u64,
    /// What will not be enforced, known at build (best effort only).
    pub notes: Vec<String>,
    pub pid_mode: PidMode,
    pub stop_timeout: Duration,
    pub hostname: Vec<u8>,
    pub storage: Option<StoragePlan>,
    pub log_sink: Option<LogSink>,
    /// The network namespace to join, or a new one.
    pub netns: NetworkNamespace,
    /// Where the task init attaches the joined namespace's sysfs, for containers to
    /// bind at `/sys` (only when joining one).
    pub sysfs_stage: Option<CString>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("containers", &self.containers)
            .field("ids", &self.ids)
            .field("limits", &self.limits)
            .field("pid_mode", &self.pid_mode)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

static TASK_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Inner {
    /// A cgroup name unique on this host: the launcher's pid, a random number drawn
    /// once per process (a crashed launcher whose pid comes back must not collide
    /// with what it left), and a counter.
    pub(crate) fn next_cgroup_name(&self) -> String {
        static NONCE: OnceLock<u32> = OnceLock::new();
        let nonce = NONCE.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u32
        });
        let n = TASK_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{}-{nonce:08x}-{n}", std::process::id())
    }

    pub(crate) fn report(
        &self,
        cgroup: Option<PathBuf>,
        not_applied: Vec<Limit>,
    ) -> EnforcementReport {
        let mut notes: Vec<String> = not_applied.iter().map(|l| format!("{l} limit")).collect();
        notes.extend(self.notes.iter().cloned());
        let first = &self.containers[0].plan;
        EnforcementReport {
            user_namespace: self.ids.to_string(),
            network_namespace: match &self.netns {
                NetworkNamespace::New => "new (loopback up)".to_string(),
                joined => format!("joined {} (left as it is)", joined.describe()),
            },
            cgroup,
            not_applied: notes,
            nofile: self.nofile,
            capabilities: first.capabilities,
            seccomp_filters: first.seccomp.programs().len(),
            pid_mode: self.pid_mode,
            containers: self
                .containers
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.to_string(),
                    capabilities: c.plan.capabilities,
                    seccomp_filters: c.plan.seccomp.programs().len(),
                    landlock: c.plan.landlock,
                })
                .collect(),
        }
    }

    /// The index of the container named `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| &*c.name == name)
    }
}

impl TaskSandbox {
    /// Starts describing a task.
    pub fn builder() -> TaskSandboxBuilder {
        TaskSandboxBuilder {
            size: TaskSize::default(),
            pids_limit: DEFAULT_PIDS_LIMIT,
            nofile: None,
            containers: Vec::new(),
            user_namespace: UserNamespace::Auto,
            enforcement: Enforcement::Required,
            cgroup_parent: PathBuf::from("tasksandbox"),
            runtime_dir: None,
            pid_mode: PidMode::Container,
            ephemeral_storage: EphemeralStorage::default(),
            storage_dir: PathBuf::from(crate::storage::DEFAULT_STORAGE_DIR),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            hostname: None,
            log_sink: None,
            network_namespace: NetworkNamespace::New,
        }
    }

    /// Starts the task: its cgroups, the task init holding its namespaces, then every
    /// container whose dependencies allow (the others start as their conditions are
    /// met). Fails only on what the host refuses, naming the step; a container whose
    /// launch fails here fails the start, and nothing is left behind.
    pub fn start(&self) -> Result<RunningTask, Error> {
        process::start(&self.inner, None)
    }

    /// Starts the task and waits for it to end.
    pub fn status(&self) -> Result<TaskExit, Error> {
        self.start()?.wait()
    }

    /// Starts the task with the first container's stdout and stderr piped, waits, and
    /// returns what it printed (other containers' streams go where they were set to).
    pub fn output(&self) -> Result<Output, Error> {
        let stdin = match self.inner.containers[0].stdio[0] {
            Stdio::Inherit => Stdio::Null,
            ref other => other.clone(),
        };
        process::start(&self.inner, Some([stdin, Stdio::Piped, Stdio::Piped]))?.wait_with_output()
    }

    /// The names of the task's containers, in the order they were added.
    pub fn container_names(&self) -> impl Iterator<Item = &str> {
        self.inner.containers.iter().map(|c| &*c.name)
    }
}

impl TaskSandboxBuilder {
    /// The task's CPU and memory ceiling (1 vCPU, 2 GiB by default).
    #[must_use]
    pub fn size(mut self, size: TaskSize) -> Self {
        self.size = size;
        self
    }

    /// The most processes and threads the task may hold at once (4096 by default).
    #[must_use]
    pub fn pids_limit(mut self, limit: u64) -> Self {
        self.pids_limit = limit;
        self
    }

    /// The nofile ulimit, soft and hard (1..=1048576). By default Fargate's 65535, or
    /// the launcher's own hard limit if that is lower and cannot be raised (the
    /// report says so).
    #[must_use]
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// Adds a container. Containers start in the order added, each once its
    /// dependencies are met.
    #[must_use]
    pub fn container(mut self, container: Container) -> Self {
        self.containers.push(container);
        self
    }

    /// Whether containers share one PID namespace ([`PidMode::Container`] by
    /// default).
    #[must_use]
    pub fn pid_mode(mut self, mode: PidMode) -> Self {
        self.pid_mode = mode;
        self
    }

    /// The size of the task's ephemeral storage (Fargate's 20 GiB, on disk, by
    /// default), made at each start if a container mounts it.
    #[must_use]
    pub fn ephemeral_storage(mut self, storage: EphemeralStorage) -> Self {
        self.ephemeral_storage = storage;
        self
    }

    /// The host directory holding the backing files of disk-backed ephemeral storage
    /// (`/var/lib/tasksandbox/storage` by default; made if missing, mode 0700). The
    /// files have no name and are sparse: they take only the disk space the task
    /// writes, and nothing of them stays once the task is gone. `build()` checks the
    /// directory when a container mounts the storage.
    #[must_use]
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_dir = dir.into();
        self
    }

    /// How long the task waits between SIGTERM and SIGKILL when it stops on its own
    /// (an essential container exited or is unhealthy, ...) and on
    /// [`RunningTask::shutdown`] (30 s by default, at most 120 s, as ECS's
    /// `stopTimeout`). [`RunningTask::stop`] takes a grace period of its own.
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// The task's hostname, shared by its containers (by default the first
    /// container's hostname, or its name).
    #[must_use]
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Where lines of streams set to [`Stdio::Log`] go. Called on the task's log
    /// thread; without a sink, lines go to the launcher's stdout/stderr prefixed with
    /// `[container] `.
    #[must_use]
    pub fn log_sink(mut self, sink: impl Fn(&LogLine<'_>) + Send + Sync + 'static) -> Self {
        self.log_sink = Some(Arc::new(sink));
        self
    }

    /// The task's network namespace: a new one with loopback only (the default), or
    /// an existing one to join, made and wired by the runtime (see
    /// [`NetworkNamespace`]). `build()` checks that it is a network namespace.
    #[must_use]
    pub fn network_namespace(mut self, netns: NetworkNamespace) -> Self {
        self.network_namespace = netns;
        self
    }

    /// The user namespace ([`UserNamespace::Auto`] by default).
    #[must_use]
    pub fn user_namespace(mut self, userns: UserNamespace) -> Self {
        self.user_namespace = userns;
        self
    }

    /// Required (the default) or best-effort enforcement of limits.
    #[must_use]
    pub fn enforcement(mut self, enforcement: Enforcement) -> Self {
        self.enforcement = enforcement;
        self
    }

    /// The cgroup under which task cgroups are made, relative to each hierarchy root
    /// (`tasksandbox` by default). An unprivileged caller names its delegated cgroup here.
    #[must_use]
    pub fn cgroup_parent(mut self, parent: impl Into<PathBuf>) -> Self {
        self.cgroup_parent = parent.into();
        self
    }

    /// The directory holding the launcher's mount points for default root filesystems
    /// and the ephemeral storage (`/run/tasksandbox` for root,
    /// `$XDG_RUNTIME_DIR/tasksandbox` or `/tmp/tasksandbox-<uid>` otherwise).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Checks the whole definition and precomputes the launch.
    pub fn build(self) -> Result<TaskSandbox, ConfigError> {
        if self.containers.is_empty() {
            return Err(ConfigError::NoContainer);
        }
        for (i, c) in self.containers.iter().enumerate() {
            if self.containers[..i].iter().any(|o| o.name == c.name) {
                return Err(ConfigError::DuplicateContainer {
                    name: c.name.clone(),
                });
            }
        }
        if self.pids_limit == 0 {
            return Err(ConfigError::PidsLimit { value: 0 });
        }
        if self.stop_timeout > MAX_STOP_TIMEOUT {
            return Err(ConfigError::Invalid {
                field: "task.stop_timeout".into(),
                reason: format!(
                    "{:?} is longer than the maximum, {}s",
                    self.stop_timeout,
                    MAX_STOP_TIMEOUT.as_secs()
                ),
            });
        }
        for c in &self.containers {
            validate_container(c, &self.size)?;
        }
        validate_container_shares(&self.containers, &self.size)?;
        let depends = resolve_dependencies(&self.containers)?;
        if !self.containers.iter().any(|c| c.essential) {
            return Err(ConfigError::NoEssentialContainer);
        }
        let hostname = self.task_hostname()?;
        self.network_namespace.validate()?;
        let joined_netns = !matches!(self.network_namespace, NetworkNamespace::New);
        // Containers with their own /sys bind the joined namespace's sysfs.
        let needs_sysfs_stage =
            joined_netns && self.containers.iter().any(|c| c.bare_root.is_none());

        let (nofile, nofile_note) = self.resolve_nofile()?;
        let mut notes: Vec<String> = nofile_note.into_iter().collect();
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let ids = ResolvedIds::resolve(self.user_namespace, euid, egid)?;
        if let Some(count) = ids.count() {
            if let Some(c) = self
                .containers
                .iter()
                .find(|c| c.user.uid >= count || c.user.gid >= count)
            {
                return Err(ConfigError::UserNotMapped {
                    container: c.name.clone(),
                    uid: c.user.uid,
                    gid: c.user.gid,
                    count,
                });
            }
        }

        let runtime_dir = match self.runtime_dir {
            Some(ref dir) if dir.is_absolute() => dir.clone(),
            Some(ref dir) => return Err(ConfigError::RuntimeDir { path: dir.clone() }),
            None => default_runtime_dir(euid),
        };
        let mountpoint = runtime_dir.join("root");
        let storage_dir = runtime_dir.join("storage");
        let sysfs_dir = runtime_dir.join("sys");
        let root = RootContext {
            mountpoint: &mountpoint,
            tmpfs_bytes: self.size.memory_bytes(),
            has_tty_gid: ids.has_gid(5),
            hostname: &hostname,
            storage: &storage_dir,
            sysfs_stage: needs_sysfs_stage.then_some(sysfs_dir.as_path()),
        };
        let needs_default_root = self.containers.iter().any(|c| c.rootfs.is_none());
        let needs_storage = self.containers.iter().any(|c| !c.storage_mounts.is_empty());
        for (needed, dir) in [
            (needs_default_root, &mountpoint),
            (needs_storage, &storage_dir),
            (needs_sysfs_stage, &sysfs_dir),
        ] {
            if needed {
                prepare_mountpoint(&runtime_dir, dir).map_err(|reason| {
                    ConfigError::RuntimeDir {
                        path: PathBuf::from(format!("{} ({reason})", dir.display())),
                    }
                })?;
            }
        }
        let mut containers = Vec::with_capacity(self.containers.len());
        // ECS's rule: when some container has CPU units, one without gets the least.
        let any_cpu_units = self.containers.iter().any(|c| c.cpu_units.is_some());
        for (c, depends_on) in self.containers.iter().zip(depends) {
            let seccomp = c
                .seccomp
                .compile(c.capabilities)
                .map_err(|e| ConfigError::Seccomp {
                    container: c.name.clone(),
                    message: e.to_string(),
                })?;
            // Siblings that see each other's processes are kept apart by Landlock's
            // ptrace scoping, unless this container opted into tracing them.
            let mut landlock =
                self.pid_mode == PidMode::Task && !c.capabilities.contains(Capability::SysPtrace);
            if landlock
                && crate::sys::landlock_abi().is_none()
                && self.enforcement == Enforcement::BestEffort
            {
                landlock = false;
                notes.push(format!(
                    "landlock domain of container {:?} (the kernel has no Landlock): it can trace its siblings",
                    c.name
                ));
            }
            let plan = ChildPlan::new(c, &root, ids.setgroups_allowed(), seccomp, landlock)?;
            containers.push(ContainerSpec {
                name: Arc::from(c.name.as_str()),
                plan,
                stdio: [c.stdin.clone(), c.stdout.clone(), c.stderr.clone()],
                essential: c.essential,
                depends_on,
                health_check: c.health_check.clone(),
                start_timeout: c.start_timeout,
                // A container's CPU is a relative share, its memory a hard limit and a
                // soft reservation, inside the task's (ECS's container-level semantics).
                limits: CgroupLimits {
                    cpu_units: None,
                    cpu_share_units: c
                        .cpu_units
                        .or(any_cpu_units.then_some(crate::cgroup::MIN_CPU_SHARE_UNITS)),
                    memory_bytes: c.memory_limit,
                    memory_reservation_bytes: c.memory_reservation,
                    pids_max: None,
                },
                seccomp_policy: c.seccomp.clone(),
            });
        }
        let storage = if needs_storage {
            Some(self.storage_plan(&storage_dir, &ids)?)
        } else {
            None
        };
        Ok(TaskSandbox {
            inner: Arc::new(Inner {
                containers,
                ids,
                limits: CgroupLimits {
                    cpu_units: self.size.cpu_units(),
                    cpu_share_units: None,
                    memory_bytes: Some(self.size.memory_bytes()),
                    memory_reservation_bytes: None,
                    pids_max: Some(self.pids_limit),
                },
                best_effort: self.enforcement == Enforcement::BestEffort,
                cgroup_parent: self.cgroup_parent,
                nofile,
                notes,
                pid_mode: self.pid_mode,
                stop_timeout: self.stop_timeout,
                hostname: hostname.into_bytes(),
                storage,
                log_sink: self.log_sink,
                netns: self.network_namespace,
                sysfs_stage: if needs_sysfs_stage {
                    Some(CString::new(sysfs_dir.as_os_str().as_bytes()).map_err(|_| {
                        ConfigError::RuntimeDir {
                            path: sysfs_dir.clone(),
                        }
                    })?)
                } else {
                    None
                },
            }),
        })
    }

    /// The ephemeral storage's plan: checks the storage directory (disk) or that the
    /// volume fits in the task's memory (in memory).
    fn storage_plan(
        &self,
        mountpoint: &Path,
        ids: &ResolvedIds,
    ) -> Result<StoragePlan, ConfigError> {
        let storage = &self.ephemeral_storage;
        let backing = if storage.is_in_memory() {
            if storage.bytes() > self.size.memory_bytes() {
                return Err(ConfigError::Invalid {
                    field: "task.ephemeral_storage".into(),
                    reason: format!(
                        "in-memory storage of {} MiB is larger than the task's memory ({} MiB): \
                         its contents would be memory the task cannot have; use disk-backed storage",
                        storage.bytes() >> 20,
                        self.size.memory_mib()
                    ),
                });
            }
            Backing::Memory {
                data: CString::new(format!("mode=0755,size={}", storage.bytes())).map_err(
                    |_| ConfigError::RuntimeDir {
                        path: mountpoint.to_path_buf(),
                    },
                )?,
            }
        } else {
            crate::storage::check_dir(&self.storage_dir).map_err(|reason| {
                ConfigError::StorageDir {
                    path: self.storage_dir.clone(),
                    reason,
                }
            })?;
            let owner = match ids {
                ResolvedIds::Mapped { map, .. } => (map.host_uid, map.host_gid),
                ResolvedIds::Host => (
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                ),
            };
            Backing::Disk {
                dir: self.storage_dir.clone(),
                owner,
            }
        };
        Ok(StoragePlan {
            target: CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| {
                ConfigError::RuntimeDir {
                    path: mountpoint.to_path_buf(),
                }
            })?,
            bytes: storage.bytes(),
            backing,
        })
    }

    /// The one hostname of the task's UTS namespace.
    fn task_hostname(&self) -> Result<String, ConfigError> {
        let mut chosen: Option<(&str, &str)> = self.hostname.as_deref().map(|h| ("task", h));
        for c in &self.containers {
            let Some(h) = c.hostname.as_deref() else {
                continue;
            };
            match chosen {
                None => chosen = Some((&c.name, h)),
                Some((_, existing)) if existing == h => {}
                Some((owner, existing)) => {
                    return Err(ConfigError::Invalid {
                        field: format!("container {:?}: hostname", c.name),
                        reason: format!(
                            "{h:?} differs from {existing:?} (set by {owner}): the containers of a task share one UTS namespace"
                        ),
                    })
                }
            }
        }
        let (owner, hostname) = chosen.unwrap_or(("task", self.containers[0].name.as_str()));
        validate_hostname(owner, hostname)?;
        Ok(hostname.to_string())
    }

    /// The nofile limit to set: the one asked for, or Fargate's default lowered to the
    /// launcher's hard limit when that cannot be raised.
    fn resolve_nofile(&self) -> Result<(u64, Option<String>), ConfigError> {
        if let Some(value) = self.nofile {
            if !(1..=MAX_NOFILE).contains(&value) {
                return Err(ConfigError::Nofile {
                    value,
                    max: MAX_NOFILE,
                });
            }
            return Ok((value, None));
        }
        let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .unwrap_or((DEFAULT_NOFILE, DEFAULT_NOFILE));
        if hard >= DEFAULT_NOFILE || can_raise_rlimits() {
            Ok((DEFAULT_NOFILE, None))
        } else {
            Ok((
                hard,
                Some(format!(
                    "nofile {DEFAULT_NOFILE} (the launcher's hard limit is {hard} and it lacks CAP_SYS_RESOURCE; {hard} applied)"
                )),
            ))
        }
    }
}

/// Resolves every container's `depends_on` to indices, refusing unknown names, self
/// references, cycles and conditions the dependency cannot meet.
fn resolve_dependencies(
    containers: &[Container],
) -> Result<Vec<Vec<(usize, Condition)>>, ConfigError> {
    let mut out = Vec::with_capacity(containers.len());
    for c in containers {
        let mut deps = Vec::with_capacity(c.depends_on.len());
        for (dep, condition) in &c.depends_on {
            let err = |reason: &str| ConfigError::Dependency {
                container: c.name.clone(),
                dependency: dep.clone(),
                condition: *condition,
                reason: reason.to_string(),
            };
            let Some(index) = containers.iter().position(|o| &o.name == dep) else {
                return Err(err("no container of the task has this name"));
            };
            if *dep == c.name {
                return Err(err("a container cannot depend on itself"));
            }
            let target = &containers[index];
            match condition {
                Condition::Complete | Condition::Success if target.essential => {
                    return Err(err(
                        "COMPLETE and SUCCESS need a non-essential container (an essential one ends the task when it exits)",
                    ))
                }
                Condition::Healthy if target.health_check.is_none() => {
                    return Err(err("HEALTHY needs a container with a health check"))
                }
                _ => {}
            }
            deps.push((index, *condition));
        }
        out.push(deps);
    }
    // Depth-first search for a cycle.
    fn visit(
        node: usize,
        deps: &[Vec<(usize, Condition)>],
        state: &mut [u8],
        containers: &[Container],
    ) -> Result<(), ConfigError> {
        state[node] = 1;
        for &(next, condition) in &deps[node] {
            match state[next] {
                1 => {
                    return Err(ConfigError::Dependency {
                        container: containers[node].name.clone(),
                        dependency: containers[next].name.clone(),
                        condition,
                        reason: "the dependencies form a cycle".into(),
                    })
                }
                0 => visit(next, deps, state, containers)?,
                _ => {}
            }
        }
        state[node] = 2;
        Ok(())
    }
    let mut state = vec![0u8; containers.len()];
    for node in 0..containers.len() {
        if state[node] == 0 {
            visit(node, &out, &mut state, containers)?;
        }
    }
    Ok(out)
}

fn can_raise_rlimits() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
}

fn default_runtime_dir(euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/run/tasksandbox");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => Path::new(&dir).join("tasksandbox"),
        _ => std::env::temp_dir().join(format!("tasksandbox-{euid}")),
    }
}

/// Makes the empty directory default root filesystems are mounted on (in each task's
/// private mount namespace, so one directory serves every task). It must be a real
/// directory owned by the caller, reachable by the task's mapped root.
fn prepare_mountpoint(runtime_dir: &Path, mountpoint: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let euid = nix::unistd::geteuid().as_raw();
    for dir in [runtime_dir, mountpoint] {
        match std::fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
        let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
        if !meta.is_dir() || meta.uid() != euid {
            return Err(format!(
                "{} must be a directory owned by uid {euid}, not a symlink or another user's",
                dir.display()
            ));
        }
        if meta.permissions().mode() & 0o011 != 0o011 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn validate_container(c: &Container, size: &TaskSize) -> Result<(), ConfigError> {
    let name = c.name.as_str();
    let name_err = |reason| ConfigError::ContainerName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 255 {
        return Err(name_err("it must be 1 to 255 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(name_err("only letters, digits, `-` and `_` are allowed"));
    }
    if c.command.is_empty() || c.command[0].is_empty() {
        return Err(ConfigError::EmptyCommand {
            container: name.to_string(),
        });
    }
    for (key, _) in &c.env {
        let reason = if key.is_empty() {
            Some("it is empty")
        } else if key.as_bytes().contains(&b'=') {
            Some("it contains `=`")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ConfigError::EnvName {
                container: name.to_string(),
                name: key.to_string_lossy().into_owned(),
                reason,
            });
        }
    }
    if !c.working_dir.is_absolute() {
        return Err(ConfigError::NotAbsolute {
            container: name.to_string(),
            field: "working_dir",
            path: c.working_dir.clone(),
        });
    }
    if let Some(h) = &c.hostname {
        validate_hostname(name, h)?;
    }
    let invalid = |field: &str, reason: String| ConfigError::Invalid {
        field: format!("container {name:?}: {field}"),
        reason,
    };
    for (index, stdio) in [&c.stdin, &c.stdout, &c.stderr].into_iter().enumerate() {
        let field = ["stdin", "stdout", "stderr"][index];
        match stdio {
            Stdio::Log if index == 0 => {
                return Err(invalid(field, "Log is for output streams only".into()))
            }
            Stdio::File(path) if !path.is_absolute() => {
                return Err(ConfigError::NotAbsolute {
                    container: name.to_string(),
                    field: "stdio file",
                    path: path.clone(),
                })
            }
            _ => {}
        }
    }
    for (i, secret) in c.secrets.iter().enumerate() {
        let ok_name = !secret.name.is_empty()
            && secret.name.len() <= 255
            && secret.name != "."
            && secret.name != ".."
            && secret
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok_name {
            return Err(invalid(
                &format!("secrets[{i}]"),
                format!(
                    "name {:?} must be 1 to 255 letters, digits, `-`, `_` or `.` (a file name)",
                    secret.name
                ),
            ));
        }
        if c.secrets[..i].iter().any(|s| s.name == secret.name) {
            return Err(invalid(
                &format!("secrets[{i}]"),
                format!("name {:?} is used twice", secret.name),
            ));
        }
    }
    for path in &c.storage_mounts {
        if !path.is_absolute() {
            return Err(ConfigError::NotAbsolute {
                container: name.to_string(),
                field: "ephemeral storage mount",
                path: path.clone(),
            });
        }
    }
    if let Some(timeout) = c.start_timeout {
        if timeout.is_zero() || timeout > MAX_START_TIMEOUT {
            return Err(invalid(
                "start_timeout",
                format!(
                    "{timeout:?} must be more than zero and at most {}s",
                    MAX_START_TIMEOUT.as_secs()
                ),
            ));
        }
    }
    if let Some(check) = &c.health_check {
        if check.command.first().is_none_or(|a| a.is_empty()) {
            return Err(invalid("health_check.command", "is empty".into()));
        }
        for (field, value) in [("interval", check.interval), ("timeout", check.timeout)] {
            if value.is_zero() {
                return Err(invalid(
                    &format!("health_check.{field}"),
                    "must be more than zero".into(),
                ));
            }
        }
        if check.retries == 0 {
            return Err(invalid("health_check.retries", "must be 1 or more".into()));
        }
    }
    if let Some(units) = c.cpu_units {
        let task = size.cpu_units().unwrap_or(crate::size::MAX_CPU_UNITS);
        if units == 0 || units > task {
            return Err(invalid(
                "cpu_units",
                format!("{units} must be 1..={task} (the task's CPU)"),
            ));
        }
    }
    let task_memory = size.memory_bytes();
    let min = crate::size::MIN_MEMORY_MIB << 20;
    for (field, value) in [
        ("memory_limit", c.memory_limit),
        ("memory_reservation", c.memory_reservation),
    ] {
        if let Some(bytes) = value {
            if bytes < min || bytes > task_memory {
                return Err(invalid(
                    field,
                    format!("{bytes} bytes must be {min}..={task_memory} (the task's memory)"),
                ));
            }
        }
    }
    if let (Some(reservation), Some(limit)) = (c.memory_reservation, c.memory_limit) {
        if reservation > limit {
            return Err(invalid(
                "memory_reservation",
                format!(
                    "{reservation} bytes is more than the container's memory_limit, {limit} bytes"
                ),
            ));
        }
    }
    Ok(())
}

/// What the containers reserve together must fit in the task, as ECS requires: their
/// CPU units, and their memory reservations (a container with only a hard limit
/// reserves its limit). The error names the container that goes over.
fn validate_container_shares(containers: &[Container], size: &TaskSize) -> Result<(), ConfigError> {
    let over =
        |c: &Container, field: &str, what: &str, parts: &[String], total: String, task: String| {
            ConfigError::Invalid {
                field: format!("container {:?}: {field}", c.name),
                reason: format!(
                    "the containers' {what} add up to {total} ({}), more than the task's {task}",
                    parts.join(" + ")
                ),
            }
        };
    if let Some(task_cpu) = size.cpu_units() {
        let (mut total, mut parts) = (0u64, Vec::new());
        for c in containers {
            let Some(units) = c.cpu_units else { continue };
            total += u64::from(units);
            parts.push(format!("{} {units}", c.name));
            if total > u64::from(task_cpu) {
                return Err(over(
                    c,
                    "cpu_units",
                    "CPU units",
                    &parts,
                    total.to_string(),
                    task_cpu.to_string(),
                ));
            }
        }
    }
    let task_memory = size.memory_bytes();
    let (mut total, mut parts) = (0u64, Vec::new());
    for c in containers {
        let Some(reserved) = c.memory_reservation.or(c.memory_limit) else {
            continue;
        };
        total = total.saturating_add(reserved);
        parts.push(format!(
            "{} {}",
            c.name,
            crate::explain::text::size(reserved)
        ));
        if total > task_memory {
            let field = if c.memory_reservation.is_some() {
                "memory_reservation"
            } else {
                "memory_limit"
            };
            return Err(over(
                c,
                field,
                "memory reservations (or limits, where no reservation is set)",
                &parts,
                crate::explain::text::size(total),
                crate::explain::text::size(task_memory),
            ));
        }
    }
    Ok(())
}

fn validate_hostname(container: &str, hostname: &str) -> Result<(), ConfigError> {
    let err = |reason| ConfigError::Hostname {
        container: container.to_string(),
        hostname: hostname.to_string(),
        reason,
    };
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(err("it must be 1 to 64 characters"));
    }
    for label in hostname.split('.') {
        let bytes = OsStr::new(label).as_bytes();
        if bytes.is_empty() || bytes.len() > 63 {
            return Err(err("each dot-separated label must be 1 to 63 characters"));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        {
            return Err(err("only letters, digits and `-` are allowed"));
        }
        if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
            return Err(err("a label cannot start or end with `-`"));
        }
    }
    Ok(())
}
