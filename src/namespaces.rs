//! Namespaces of a task and the uid/gid maps of its user namespace.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use libc::c_ulong;

use crate::error::ConfigError;

/// A contiguous range of host ids that ids `0..count` inside the task map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdMap {
    /// First host uid (container uid 0 maps here).
    pub host_uid: u32,
    /// First host gid (container gid 0 maps here).
    pub host_gid: u32,
    /// Number of ids mapped.
    pub count: u32,
}

impl IdMap {
    /// The map a root caller gets by default: 65536 ids from host id 100000.
    pub const DEFAULT: IdMap = IdMap {
        host_uid: 100_000,
        host_gid: 100_000,
        count: 65_536,
    };

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let err = |reason| ConfigError::IdMap {
            host_base: self.host_uid,
            count: self.count,
            reason,
        };
        if self.count == 0 {
            return Err(err("the map must hold at least one id"));
        }
        if self.host_uid == 0 || self.host_gid == 0 {
            return Err(err(
                "container root must not map onto host root: that is what the user namespace is for",
            ));
        }
        if self.host_uid.checked_add(self.count).is_none()
            || self.host_gid.checked_add(self.count).is_none()
        {
            return Err(err("the range runs past the largest id"));
        }
        Ok(())
    }
}

/// Whether, and how, a task gets its own user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserNamespace {
    /// A user namespace (the default). A root caller maps [`IdMap::DEFAULT`]; any other
    /// caller maps container root onto its own uid and gid, and only root exists inside.
    #[default]
    Auto,
    /// A user namespace with this map (the caller must be root to write it).
    Map(IdMap),
    /// No user namespace: container root is host root, held back only by the
    /// capability allowlist, seccomp and the other namespaces. For hosts without user
    /// namespaces; needs a root caller.
    Disabled,
}

/// The id maps a task will really get, resolved against the caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolvedIds {
    /// A user namespace with these maps.
    Mapped {
        map: IdMap,
        /// Unprivileged caller: `setgroups` must be denied before writing gid_map.
        deny_setgroups: bool,
    },
    /// No user namespace.
    Host,
}

impl ResolvedIds {
    pub(crate) fn resolve(
        userns: UserNamespace,
        euid: u32,
        egid: u32,
    ) -> Result<Self, ConfigError> {
        Ok(match userns {
            UserNamespace::Auto if euid == 0 => ResolvedIds::Mapped {
                map: IdMap::DEFAULT,
                deny_setgroups: false,
            },
            UserNamespace::Auto => ResolvedIds::Mapped {
                map: IdMap {
                    host_uid: euid,
                    host_gid: egid,
                    count: 1,
                },
                deny_setgroups: true,
            },
            UserNamespace::Map(map) => {
                map.validate()?;
                ResolvedIds::Mapped {
                    map,
                    deny_setgroups: false,
                }
            }
            UserNamespace::Disabled => ResolvedIds::Host,
        })
    }

    /// How many ids exist inside (`None`: all of them).
    pub(crate) fn count(&self) -> Option<u32> {
        match self {
            ResolvedIds::Mapped { map, .. } => Some(map.count),
            ResolvedIds::Host => None,
        }
    }

    /// Whether gid `gid` exists inside the task.
    pub(crate) fn has_gid(&self, gid: u32) -> bool {
        self.count().is_none_or(|count| gid < count)
    }

    /// Whether the container may call `setgroups`.
    pub(crate) fn setgroups_allowed(&self) -> bool {
        !matches!(
            self,
            ResolvedIds::Mapped {
                deny_setgroups: true,
                ..
            }
        )
    }

    /// The clone flag for the user namespace, if any.
    pub(crate) fn clone_flag(&self) -> c_ulong {
        match self {
            ResolvedIds::Mapped { .. } => libc::CLONE_NEWUSER as c_ulong,
            ResolvedIds::Host => 0,
        }
    }
}

impl fmt::Display for ResolvedIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedIds::Mapped { map, .. } => write!(
                f,
                "uid 0..{n} -> host {u}..{ue}, gid 0..{n} -> host {g}..{ge}",
                n = map.count,
                u = map.host_uid,
                ue = u64::from(map.host_uid) + u64::from(map.count),
                g = map.host_gid,
                ge = u64::from(map.host_gid) + u64::from(map.count),
            ),
            ResolvedIds::Host => f.write_str("no user namespace (host ids)"),
        }
    }
}

/// The network namespace of a task.
///
/// By default a task gets a new one holding only loopback, which its init brings up.
/// A runtime that wires the task's network itself (CNI plugins, a bridge, a tap for a
/// VM) makes a namespace first and has the task join it: the task init is then
/// created inside it, by a short-lived launcher thread that entered it before the
/// task's user namespace was made (a process inside that user namespace could not
/// join a namespace owned by the host's). A joined namespace is the caller's: the task
/// does not touch its interfaces (not even `lo`), and it outlives the task. The
/// containers' `/sys` is a read-only sysfs of the joined namespace, made by the
/// launcher (sysfs of a namespace the task's user namespace does not own cannot be
/// mounted from inside).
///
/// ```no_run
/// use tasksandbox::{Container, NetworkNamespace, TaskSandbox};
///
/// // `ip netns add web` made /run/netns/web and a CNI plugin wired it.
/// let task = TaskSandbox::builder()
///     .network_namespace(NetworkNamespace::path("/run/netns/web"))
///     .container(Container::new("app").command(["/bin/ip", "addr"]))
///     .build()?;
/// # Ok::<(), tasksandbox::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum NetworkNamespace {
    /// A new network namespace with only loopback, up (the default).
    #[default]
    New,
    /// Join the namespace at this path (`/run/netns/<name>`, `/proc/<pid>/ns/net`),
    /// opened at each start.
    Path(PathBuf),
    /// Join the namespace this descriptor refers to (an open `/proc/<pid>/ns/net` or
    /// nsfs file), kept open by the task definition.
    Fd(Arc<OwnedFd>),
}

impl NetworkNamespace {
    /// Join the namespace at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        NetworkNamespace::Path(path.into())
    }

    /// Join the namespace `fd` refers to.
    pub fn fd(fd: OwnedFd) -> Self {
        NetworkNamespace::Fd(Arc::new(fd))
    }

    /// What the task will be in, in words (`new`, `/run/netns/web`, `fd 7`).
    pub fn describe(&self) -> String {
        match self {
            NetworkNamespace::New => "new".into(),
            NetworkNamespace::Path(path) => path.display().to_string(),
            NetworkNamespace::Fd(fd) => format!("fd {}", fd.as_raw_fd()),
        }
    }

    /// Checks that a namespace to join is there and is a network namespace.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let err = |reason: String| ConfigError::NetworkNamespace {
            namespace: self.describe(),
            reason,
        };
        match self {
            NetworkNamespace::New => Ok(()),
            NetworkNamespace::Path(path) if !path.is_absolute() => {
                Err(err("the path must be absolute".into()))
            }
            NetworkNamespace::Path(_) | NetworkNamespace::Fd(_) => match self.open() {
                Ok(Some(fd)) => check_is_netns(fd.as_raw_fd()).map_err(err),
                Ok(None) => Ok(()),
                Err(e) => Err(err(format!("cannot be opened: {e}"))),
            },
        }
    }

    /// A descriptor of the namespace to join (`None` for a new one).
    pub(crate) fn open(&self) -> std::io::Result<Option<JoinFd>> {
        match self {
            NetworkNamespace::New => Ok(None),
            NetworkNamespace::Fd(fd) => Ok(Some(JoinFd::Shared(Arc::clone(fd)))),
            NetworkNamespace::Path(path) => {
                let fd = nix::fcntl::open(
                    path.as_path(),
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )?;
                Ok(Some(JoinFd::Owned(fd)))
            }
        }
    }
}

/// An open network namespace to join.
#[derive(Debug)]
pub(crate) enum JoinFd {
    Owned(OwnedFd),
    Shared(Arc<OwnedFd>),
}

impl AsRawFd for JoinFd {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            JoinFd::Owned(fd) => fd.as_raw_fd(),
            JoinFd::Shared(fd) => fd.as_raw_fd(),
        }
    }
}

/// Whether `fd` is a network namespace, or why not.
fn check_is_netns(fd: RawFd) -> Result<(), String> {
    match crate::sys::ns_type(fd) {
        Ok(kind) if kind == libc::CLONE_NEWNET => Ok(()),
        Ok(_) => Err("is a namespace of another kind, not a network namespace".into()),
        Err(e) => Err(format!("is not a namespace file ({e})")),
    }
}

/// The namespaces every task gets besides the user namespace: pid, mount, network,
/// UTS and IPC at clone time; the cgroup namespace is entered once the process is in
/// its cgroup.
pub(crate) const TASK_CLONE_FLAGS: c_ulong = (libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC) as c_ulong;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_gets_the_default_range() {
        let ids = ResolvedIds::resolve(UserNamespace::Auto, 0, 0).unwrap();
        assert_eq!(
            ids,
            ResolvedIds::Mapped {
                map: IdMap::DEFAULT,
                deny_setgroups: false
            }
        );
        assert!(ids.has_gid(5));
        assert_eq!(
            ids.to_string(),
            "uid 0..65536 -> host 100000..165536, gid 0..65536 -> host 100000..165536"
        );
    }

    #[test]
    fn unprivileged_maps_itself_only() {
        let ids = ResolvedIds::resolve(UserNamespace::Auto, 1000, 1001).unwrap();
        assert!(!ids.setgroups_allowed());
        assert!(!ids.has_gid(5));
        assert_eq!(ids.count(), Some(1));
    }

    #[test]
    fn bad_maps_are_refused() {
        for (map, reason) in [
            (
                IdMap {
                    host_uid: 1,
                    host_gid: 1,
                    count: 0,
                },
                "at least one id",
            ),
            (
                IdMap {
                    host_uid: 0,
                    host_gid: 1,
                    count: 10,
                },
                "host root",
            ),
            (
                IdMap {
                    host_uid: u32::MAX - 5,
                    host_gid: 1,
                    count: 10,
                },
                "largest id",
            ),
        ] {
            let err = ResolvedIds::resolve(UserNamespace::Map(map), 0, 0).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
}
