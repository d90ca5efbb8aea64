//! What a built task will enforce, container by container: [`TaskSandbox::explain`].
//!
//! The explanation is read from the built task itself, from the very data the launcher
//! hands to each container's process: the id maps and clone flags, the capability
//! masks and bounding-set drops of the child plan, the compiled seccomp programs, the
//! list of mount operations the child executes, the cgroup limits. Nothing is restated
//! from the definition, so what `explain` prints is what `start` does.
//!
//! Its [`Display`](std::fmt::Display) is for people; with the `policy` feature,
//! [`Explanation::to_json`] gives a JSON document whose schema,
//! `tasksandbox.explain/v1`, is documented in `docs/explain-schema.md`.
//!
//! ```
//! use tasksandbox::{Container, TaskSandbox};
//! # if !tasksandbox::seccomp::syscalls::ARCH_SUPPORTED { return Ok(()); }
//! let sandbox = TaskSandbox::builder()
//!     .container(Container::new("app").command(["/bin/true"]))
//!     .runtime_dir(std::env::temp_dir().join("tasksandbox-doc-explain"))
//!     .build()?;
//! let explanation = sandbox.explain();
//! let app = &explanation.containers[0];
//! assert_eq!(app.capabilities.bounding, 0xa80425fb);
//! assert!(app.masked_paths.iter().any(|p| p == "/proc/kcore"));
//! println!("{explanation}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "policy")]
mod json;
mod seccomp;
pub(crate) mod text;

use std::ffi::CString;
use std::time::Duration;

pub use seccomp::SeccompExplanation;

use crate::cgroup::CgroupLimits;
use crate::container::{Condition, Stdio, User};
use crate::lifecycle::PidMode;
use crate::mounts::{MountOp, SECRETS_DIR};
use crate::namespaces::{IdMap, ResolvedIds};
use crate::task::{ContainerSpec, TaskSandbox};

/// The schema name and version of [`Explanation::to_json`].
pub const SCHEMA: &str = "tasksandbox.explain/v1";

/// What a built task will enforce. See [the module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// What the task as a whole gets.
    pub task: TaskExplanation,
    /// Each container, in the order they were added.
    pub containers: Vec<ContainerExplanation>,
}

/// What the task as a whole gets: the namespaces its containers share, its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskExplanation {
    /// The user namespace's id map; `None` without a user namespace (container ids
    /// are host ids).
    pub id_map: Option<IdMap>,
    /// Whether the containers share one pid namespace.
    pub pid_mode: PidMode,
    /// The hostname of the task's UTS namespace.
    pub hostname: String,
    /// The task cgroup's limits.
    pub limits: Limits,
    /// The nofile ulimit of every process, soft and hard.
    pub nofile: u64,
    /// Time between SIGTERM and SIGKILL when the task stops.
    pub stop_timeout: Duration,
    /// The size limit of the task's ephemeral storage, in bytes, if a container
    /// mounts it.
    pub ephemeral_storage_bytes: Option<u64>,
    /// Whether that storage is in memory (a tmpfs) rather than on disk.
    pub ephemeral_storage_in_memory: bool,
    /// Whether limits the host cannot give are skipped (best-effort enforcement).
    pub best_effort: bool,
    /// What is already known, at build, not to be enforced (best effort only).
    pub not_enforced: Vec<String>,
    /// The existing network namespace the task joins (its path, or `fd N`); `None`:
    /// a new one with only loopback.
    pub network_namespace: Option<String>,
}

/// cgroup limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// CPU units (1024 per vCPU): a CFS quota of `units × 100 ms / 1024` per 100 ms,
    /// and a relative weight. `None`: no CPU limit. The task's CPU.
    pub cpu_units: Option<u32>,
    /// A relative CPU share in CPU units (a weight, no quota). A container's CPU.
    pub cpu_share_units: Option<u32>,
    /// Memory, in bytes, without swap: a hard limit. `None`: the enclosing cgroup's.
    pub memory_bytes: Option<u64>,
    /// Memory reserved, in bytes: a soft limit.
    pub memory_reservation_bytes: Option<u64>,
    /// Processes and threads at once. `None`: the enclosing cgroup's.
    pub pids_max: Option<u64>,
}

impl From<&CgroupLimits> for Limits {
    fn from(l: &CgroupLimits) -> Self {
        Limits {
            cpu_units: l.cpu_units,
            cpu_share_units: l.cpu_share_units,
            memory_bytes: l.memory_bytes,
            memory_reservation_bytes: l.memory_reservation_bytes,
            pids_max: l.pids_max,
        }
    }
}

/// A namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NamespaceKind {
    /// User ids and capabilities.
    User,
    /// Process ids.
    Pid,
    /// Mounts.
    Mount,
    /// Network interfaces, sockets.
    Network,
    /// Hostname.
    Uts,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// The cgroup root.
    Cgroup,
}

impl NamespaceKind {
    /// The short name (`user`, `pid`, `mnt`, `net`, `uts`, `ipc`, `cgroup`), as in
    /// `/proc/<pid>/ns`.
    pub fn name(self) -> &'static str {
        match self {
            NamespaceKind::User => "user",
            NamespaceKind::Pid => "pid",
            NamespaceKind::Mount => "mnt",
            NamespaceKind::Network => "net",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Cgroup => "cgroup",
        }
    }
}

/// Whose namespace a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NamespaceScope {
    /// The task's, shared by its containers.
    Task,
    /// Its own.
    Container,
    /// The host's (only the user namespace, when it is disabled).
    Host,
    /// An existing one the task joined (the network namespace given to the
    /// builder), left as it is.
    Joined,
}

impl NamespaceScope {
    /// `task`, `container`, `host` or `joined`.
    pub fn name(self) -> &'static str {
        match self {
            NamespaceScope::Task => "task",
            NamespaceScope::Container => "container",
            NamespaceScope::Host => "host",
            NamespaceScope::Joined => "joined",
        }
    }
}

/// The capability sets of a container's process after its launch, as kernel masks
/// (bit N is capability number N, as in `/proc/<pid>/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapabilitySets {
    /// The bounding set: the allowlist.
    pub bounding: u64,
    /// Permitted: the allowlist for uid 0, empty for other users.
    pub permitted: u64,
    /// Effective: as permitted.
    pub effective: u64,
    /// Inheritable: always empty.
    pub inheritable: u64,
    /// Ambient: always empty.
    pub ambient: u64,
}

/// One mount of a container's root filesystem, with the path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountEntry {
    /// Where, inside the container (`/` is its root).
    pub target: String,
    /// What kind: `bind`, or the filesystem type (`tmpfs`, `proc`, ...).
    pub kind: String,
    /// The host path of a bind; the source name of other mounts.
    pub source: Option<String>,
    /// Mount flags (`rec`, `ro`, `nosuid`, `nodev`, `noexec`, `strictatime`).
    /// `ro` includes a bind made read-only right after it.
    pub flags: Vec<&'static str>,
    /// Filesystem options (`mode=755,size=65536k`).
    pub options: Option<String>,
}

/// Where a standard stream of a container goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdioTarget {
    /// The launcher's own stream.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe to the embedding runtime.
    Piped,
    /// A host file.
    File(String),
    /// The task's log sink.
    Log,
}

/// What one container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerExplanation {
    /// The container's name.
    pub name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The user and group it runs as, inside the task.
    pub user: User,
    /// Its working directory.
    pub working_dir: String,
    /// Whether its exit stops the task.
    pub essential: bool,
    /// The containers it waits for, and on what.
    pub depends_on: Vec<(String, Condition)>,
    /// Whether it has a health check.
    pub health_check: bool,
    /// Standard input, output and error.
    pub stdio: [StdioTarget; 3],
    /// Its namespaces, and whose they are.
    pub namespaces: Vec<(NamespaceKind, NamespaceScope)>,
    /// Its capability sets.
    pub capabilities: CapabilitySets,
    /// `no_new_privs` (always set).
    pub no_new_privs: bool,
    /// Whether it runs in a Landlock domain of its own (kept from tracing siblings).
    pub landlock: bool,
    /// Its seccomp filters.
    pub seccomp: SeccompExplanation,
    /// Its mounts, in the order they are made.
    pub mounts: Vec<MountEntry>,
    /// Paths hidden (an empty read-only tmpfs over a directory, `/dev/null` over a
    /// file; absent paths are skipped).
    pub masked_paths: Vec<String>,
    /// Paths made read-only (absent paths are skipped).
    pub readonly_paths: Vec<String>,
    /// Whether the root filesystem is read-only.
    pub readonly_rootfs: bool,
    /// The secrets delivered under `/run/secrets` (names only).
    pub secrets: Vec<String>,
    /// The limits of its own cgroup inside the task's.
    pub limits: Limits,
}

impl TaskSandbox {
    /// What the task will enforce, per container. See [`Explanation`].
    pub fn explain(&self) -> Explanation {
        let inner = &self.inner;
        let task = TaskExplanation {
            id_map: match inner.ids {
                ResolvedIds::Mapped { map, .. } => Some(map),
                ResolvedIds::Host => None,
            },
            pid_mode: inner.pid_mode,
            hostname: String::from_utf8_lossy(&inner.hostname).into_owned(),
            limits: Limits::from(&inner.limits),
            nofile: inner.nofile,
            stop_timeout: inner.stop_timeout,
            ephemeral_storage_bytes: inner.storage.as_ref().map(|s| s.bytes),
            ephemeral_storage_in_memory: inner
                .storage
                .as_ref()
                .is_some_and(|s| matches!(s.backing, crate::storage::Backing::Memory { .. })),
            best_effort: inner.best_effort,
            not_enforced: inner.notes.clone(),
            network_namespace: match &inner.netns {
                crate::namespaces::NetworkNamespace::New => None,
                joined => Some(joined.describe()),
            },
        };
        let user_scope = match inner.ids {
            ResolvedIds::Mapped { .. } => NamespaceScope::Task,
            ResolvedIds::Host => NamespaceScope::Host,
        };
        let containers = inner
            .containers
            .iter()
            .map(|c| container(c, inner, user_scope))
            .collect();
        Explanation { task, containers }
    }
}

fn lossy(c: &CString) -> String {
    String::from_utf8_lossy(c.as_bytes()).into_owned()
}

fn container(
    c: &ContainerSpec,
    inner: &crate::task::Inner,
    user_scope: NamespaceScope,
) -> ContainerExplanation {
    let plan = &c.plan;
    let pid_scope = match inner.pid_mode {
        PidMode::Task => NamespaceScope::Task,
        PidMode::Container => NamespaceScope::Container,
    };
    // The launch's clone flags: user, pid, net, uts, ipc for the task init; mnt (and
    // pid, unless shared) for each container, which unshares its cgroup namespace
    // once in its cgroup.
    let namespaces = vec![
        (NamespaceKind::User, user_scope),
        (NamespaceKind::Pid, pid_scope),
        (NamespaceKind::Mount, NamespaceScope::Container),
        (
            NamespaceKind::Network,
            match inner.netns {
                crate::namespaces::NetworkNamespace::New => NamespaceScope::Task,
                _ => NamespaceScope::Joined,
            },
        ),
        (NamespaceKind::Uts, NamespaceScope::Task),
        (NamespaceKind::Ipc, NamespaceScope::Task),
        (NamespaceKind::Cgroup, NamespaceScope::Container),
    ];
    // The bounding set keeps every capability the kernel knows that the plan does
    // not drop.
    let last = plan.bounding_drop.iter().copied().max().unwrap_or(0);
    let known = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let dropped = plan
        .bounding_drop
        .iter()
        .filter(|n| **n < 64)
        .fold(0u64, |m, n| m | (1u64 << n));
    let bounding = known & !dropped;
    let granted = if plan.uid == 0 {
        plan.capabilities.mask()
    } else {
        0
    };
    let (mounts, masked_paths, readonly_paths, readonly_rootfs, secrets) = mounts(&plan.mounts);
    let stdio = |s: &Stdio| match s {
        Stdio::Inherit => StdioTarget::Inherit,
        Stdio::Null => StdioTarget::Null,
        Stdio::Piped => StdioTarget::Piped,
        Stdio::File(p) => StdioTarget::File(p.to_string_lossy().into_owned()),
        Stdio::Log => StdioTarget::Log,
    };
    ContainerExplanation {
        name: c.name.to_string(),
        command: plan.argv.iter().map(lossy).collect(),
        user: User::new(plan.uid, plan.gid),
        working_dir: lossy(&plan.working_dir),
        essential: c.essential,
        depends_on: c
            .depends_on
            .iter()
            .map(|(i, cond)| (inner.containers[*i].name.to_string(), *cond))
            .collect(),
        health_check: c.health_check.is_some(),
        stdio: [stdio(&c.stdio[0]), stdio(&c.stdio[1]), stdio(&c.stdio[2])],
        namespaces,
        capabilities: CapabilitySets {
            bounding,
            permitted: granted,
            effective: granted,
            inheritable: 0,
            ambient: 0,
        },
        no_new_privs: true,
        landlock: plan.landlock,
        seccomp: SeccompExplanation::new(&c.seccomp_policy, plan.capabilities, &plan.seccomp),
        mounts,
        masked_paths,
        readonly_paths,
        readonly_rootfs,
        secrets,
        limits: Limits::from(&c.limits),
    }
}

const FLAG_NAMES: [(libc::c_ulong, &str); 7] = [
    (libc::MS_REC, "rec"),
    (libc::MS_RDONLY, "ro"),
    (libc::MS_NOSUID, "nosuid"),
    (libc::MS_NODEV, "nodev"),
    (libc::MS_NOEXEC, "noexec"),
    (libc::MS_STRICTATIME, "strictatime"),
    (libc::MS_REMOUNT, "remount"),
];

type MountSummary = (Vec<MountEntry>, Vec<String>, Vec<String>, bool, Vec<String>);

/// Reads the mount plan: the mounts (with paths inside the container), the masked and
/// read-only paths, whether the root is read-only, the secrets' names.
fn mounts(ops: &[MountOp]) -> MountSummary {
    // Targets before pivot_root are host paths under the new root.
    let root: Vec<u8> = ops
        .iter()
        .find_map(|op| match op {
            MountOp::PivotRoot { new_root } => Some(new_root.as_bytes().to_vec()),
            _ => None,
        })
        .unwrap_or_default();
    let inside = |target: &CString| -> String {
        let bytes = target.as_bytes();
        match bytes.strip_prefix(root.as_slice()) {
            Some(rest) if !root.is_empty() && (rest.is_empty() || rest.starts_with(b"/")) => {
                if rest.is_empty() {
                    "/".to_string()
                } else {
                    String::from_utf8_lossy(rest).into_owned()
                }
            }
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    };
    let secrets_prefix = format!("{SECRETS_DIR}/");
    let mut entries: Vec<MountEntry> = Vec::new();
    let mut masked = Vec::new();
    let mut readonly = Vec::new();
    let mut readonly_rootfs = false;
    let mut secrets = Vec::new();
    for op in ops {
        match op {
            MountOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let bind = flags & libc::MS_BIND != 0;
                entries.push(MountEntry {
                    target: inside(target),
                    kind: match fstype {
                        Some(fs) if !bind => lossy(fs),
                        _ => "bind".to_string(),
                    },
                    source: source.as_ref().map(lossy),
                    flags: FLAG_NAMES
                        .iter()
                        .filter(|(bit, _)| flags & bit != 0)
                        .map(|(_, name)| *name)
                        .collect(),
                    options: data.as_ref().map(lossy),
                });
            }
            MountOp::ReadOnly { target, .. } if target.as_bytes() == b"/" => {
                readonly_rootfs = true;
                if let Some(root) = entries.iter_mut().find(|e| e.target == "/") {
                    add_ro(root);
                }
            }
            MountOp::ReadOnly { target, .. } => {
                let target = inside(target);
                if let Some(e) = entries.iter_mut().rev().find(|e| e.target == target) {
                    add_ro(e);
                }
            }
            MountOp::SetAttrs { target, attrs, .. } => {
                let target = inside(target);
                if let Some(e) = entries.iter_mut().rev().find(|e| e.target == target) {
                    for name in crate::mounts::attr_names(*attrs) {
                        if name == "ro" {
                            add_ro(e);
                        } else if !e.flags.contains(&name) {
                            e.flags.push(name);
                        }
                    }
                }
            }
            MountOp::Mask { path } => masked.push(lossy(path)),
            MountOp::ReadOnlyPath { path } => readonly.push(lossy(path)),
            MountOp::WriteFile { path, .. } => {
                if let Some(name) = inside(path).strip_prefix(&secrets_prefix) {
                    secrets.push(name.to_string());
                }
            }
            _ => {}
        }
    }
    (entries, masked, readonly, readonly_rootfs, secrets)
}

fn add_ro(entry: &mut MountEntry) {
    if !entry.flags.contains(&"ro") {
        // Keep the order of FLAG_NAMES: `ro` right after `rec`.
        let at = usize::from(entry.flags.first() == Some(&"rec"));
        entry.flags.insert(at, "ro");
    }
}
