//! Namespaces of a task and the uid/gid maps of its user namespace.

use std::fmt;

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
