//! The typed front door: [`TaskSandbox::builder`] describes a task, `build()` checks
//! everything and precomputes the launch, `start()` runs it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::capabilities::Capabilities;
use crate::cgroup::{CgroupLimits, Limit};
use crate::container::{Container, Stdio};
use crate::error::{ConfigError, Error};
use crate::mounts::RootContext;
use crate::namespaces::{ResolvedIds, UserNamespace};
use crate::process::plan::ChildPlan;
use crate::process::{self, ExitStatus, Output, RunningTask};
use crate::size::TaskSize;

/// Fargate's default nofile ulimit.
pub const DEFAULT_NOFILE: u64 = 65_535;
/// Fargate's largest nofile ulimit.
pub const MAX_NOFILE: u64 = 1_048_576;
/// The pids limit a task gets unless told otherwise.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

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
    /// The task's cgroup (relative to the hierarchy root), if one was made.
    pub cgroup: Option<PathBuf>,
    /// Limits that were asked for and not applied (only with
    /// [`Enforcement::BestEffort`]).
    pub not_applied: Vec<String>,
    /// The nofile limit in force.
    pub nofile: u64,
    /// The capability allowlist (the bounding set).
    pub capabilities: Capabilities,
    /// Number of seccomp filters installed.
    pub seccomp_filters: usize,
}

/// Builder of a [`TaskSandbox`]; see [`TaskSandbox::builder`].
#[derive(Debug, Clone)]
pub struct TaskSandboxBuilder {
    size: TaskSize,
    pids_limit: u64,
    nofile: Option<u64>,
    containers: Vec<Container>,
    user_namespace: UserNamespace,
    enforcement: Enforcement,
    cgroup_parent: PathBuf,
    runtime_dir: Option<PathBuf>,
}

/// A validated task, ready to start any number of times.
///
/// Building does all the work that does not depend on a particular start: checking
/// every field, compiling the seccomp profile, resolving the command, laying out the
/// root filesystem. [`TaskSandbox::start`] then only creates the cgroup and the
/// processes.
///
/// ```no_run
/// use tasksandbox::{Container, TaskSandbox, TaskSize};
///
/// let sandbox = TaskSandbox::builder()
///     .size(TaskSize::fargate(256, 512)?)
///     .container(Container::new("app").command(["/bin/echo", "hello from the task"]))
///     .build()?;
/// let status = sandbox.start()?.wait()?;
/// assert!(status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskSandbox {
    inner: Arc<Inner>,
}

/// The built task, shared by every start.
#[derive(Debug)]
pub(crate) struct Inner {
    pub plan: ChildPlan,
    pub ids: ResolvedIds,
    pub limits: CgroupLimits,
    pub best_effort: bool,
    pub cgroup_parent: PathBuf,
    pub nofile: u64,
    pub nofile_note: Option<String>,
    pub stdio: [Stdio; 3],
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
        notes.extend(self.nofile_note.clone());
        EnforcementReport {
            user_namespace: self.ids.to_string(),
            cgroup,
            not_applied: notes,
            nofile: self.nofile,
            capabilities: self.plan.capabilities,
            seccomp_filters: self.plan.seccomp.programs().len(),
        }
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
        }
    }

    /// Starts the task: a cgroup, new namespaces, the locked-down container process.
    /// Fails only on what the host refuses, naming the step.
    pub fn start(&self) -> Result<RunningTask, Error> {
        process::spawn(&self.inner, self.inner.stdio)
    }

    /// Starts the task and waits for it to end.
    pub fn status(&self) -> Result<ExitStatus, Error> {
        self.start()?.wait()
    }

    /// Starts the task with stdout and stderr piped (whatever the container said),
    /// waits, and returns what it printed.
    pub fn output(&self) -> Result<Output, Error> {
        let stdin = match self.inner.stdio[0] {
            Stdio::Inherit => Stdio::Null,
            other => other,
        };
        process::spawn(&self.inner, [stdin, Stdio::Piped, Stdio::Piped])?.wait_with_output()
    }

    /// The name of the task's container.
    pub fn container_name(&self) -> &str {
        &self.inner.plan.container
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

    /// Adds a container. A task holds one container for now.
    #[must_use]
    pub fn container(mut self, container: Container) -> Self {
        self.containers.push(container);
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

    /// The directory holding the launcher's mount point for default root filesystems
    /// (`/run/tasksandbox` for root, `$XDG_RUNTIME_DIR/tasksandbox` or
    /// `/tmp/tasksandbox-<uid>` otherwise).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Checks the whole definition and precomputes the launch.
    pub fn build(self) -> Result<TaskSandbox, ConfigError> {
        let container = match self.containers.as_slice() {
            [] => return Err(ConfigError::NoContainer),
            [one] => one,
            [first, rest @ ..] => {
                if let Some(dup) = rest.iter().find(|c| c.name == first.name) {
                    return Err(ConfigError::DuplicateContainer {
                        name: dup.name.clone(),
                    });
                }
                // Several containers per task share one boundary; until that lands a
                // task runs its first container only, so refuse rather than ignore.
                return Err(ConfigError::ContainerName {
                    name: rest[0].name.clone(),
                    reason: "a task runs one container in this version",
                });
            }
        };
        if self.pids_limit == 0 {
            return Err(ConfigError::PidsLimit { value: 0 });
        }
        validate_container(container)?;

        let (nofile, nofile_note) = self.resolve_nofile()?;
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let ids = ResolvedIds::resolve(self.user_namespace, euid, egid)?;
        if let Some(count) = ids.count() {
            if container.user.uid >= count || container.user.gid >= count {
                return Err(ConfigError::UserNotMapped {
                    container: container.name.clone(),
                    uid: container.user.uid,
                    gid: container.user.gid,
                    count,
                });
            }
        }

        let runtime_dir = match self.runtime_dir {
            Some(dir) if dir.is_absolute() => dir,
            Some(dir) => return Err(ConfigError::RuntimeDir { path: dir }),
            None => default_runtime_dir(euid),
        };
        let mountpoint = runtime_dir.join("root");
        let root = RootContext {
            mountpoint: &mountpoint,
            tmpfs_bytes: self.size.memory_bytes(),
            has_tty_gid: ids.has_gid(5),
        };
        let seccomp = container
            .seccomp
            .compile(container.capabilities)
            .map_err(|e| ConfigError::Seccomp {
                container: container.name.clone(),
                message: e.to_string(),
            })?;
        let plan = ChildPlan::new(container, &root, ids.setgroups_allowed(), seccomp)?;
        if container.rootfs.is_none() {
            prepare_mountpoint(&runtime_dir, &mountpoint).map_err(|reason| {
                ConfigError::RuntimeDir {
                    path: PathBuf::from(format!("{} ({reason})", mountpoint.display())),
                }
            })?;
        }
        Ok(TaskSandbox {
            inner: Arc::new(Inner {
                plan,
                ids,
                limits: CgroupLimits {
                    cpu_units: self.size.cpu_units(),
                    memory_bytes: Some(self.size.memory_bytes()),
                    pids_max: Some(self.pids_limit),
                },
                best_effort: self.enforcement == Enforcement::BestEffort,
                cgroup_parent: self.cgroup_parent,
                nofile,
                nofile_note,
                stdio: [container.stdin, container.stdout, container.stderr],
            }),
        })
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

fn validate_container(c: &Container) -> Result<(), ConfigError> {
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
    validate_hostname(name, c.effective_hostname())
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
