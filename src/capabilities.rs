//! The closed capability allowlist.
//!
//! A task's containers can hold at most Fargate's 14 default capabilities plus
//! `SYS_PTRACE`, and only `SYS_PTRACE` is opt-in. [`Capability`] names exactly those
//! fifteen: there is no value of the type for `CAP_SYS_ADMIN` or any other capability,
//! so no code path can ask for one. Names coming from text (a policy file, a command
//! line) go through [`Capability::from_name`], which refuses every other Linux
//! capability with an error that names it.

use std::fmt;
use std::str::FromStr;

use bitflags::bitflags;

bitflags! {
    /// The set of allowlisted capabilities, one bit per [`Capability`].
    ///
    /// The bit positions are the kernel's capability numbers, so [`CapSet::bits`] is
    /// the mask the kernel shows in `/proc/<pid>/status` (`CapBnd`, `CapPrm`, ...).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct CapSet: u64 {
        const CHOWN = 1 << 0;
        const DAC_OVERRIDE = 1 << 1;
        const FOWNER = 1 << 3;
        const FSETID = 1 << 4;
        const KILL = 1 << 5;
        const SETGID = 1 << 6;
        const SETUID = 1 << 7;
        const SETPCAP = 1 << 8;
        const NET_BIND_SERVICE = 1 << 10;
        const NET_RAW = 1 << 13;
        const SYS_CHROOT = 1 << 18;
        const SYS_PTRACE = 1 << 19;
        const MKNOD = 1 << 27;
        const AUDIT_WRITE = 1 << 29;
        const SETFCAP = 1 << 31;
    }
}

/// One capability of the allowlist.
///
/// The first fourteen are Docker's (and Fargate's) defaults; [`Capability::SysPtrace`]
/// is the single one that may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `CAP_CHOWN`: change file owners.
    Chown,
    /// `CAP_DAC_OVERRIDE`: bypass file permission checks.
    DacOverride,
    /// `CAP_FOWNER`: bypass checks that need the file owner.
    Fowner,
    /// `CAP_FSETID`: keep set-user-ID bits on modification.
    Fsetid,
    /// `CAP_KILL`: signal processes of other users.
    Kill,
    /// `CAP_SETGID`: change group IDs.
    Setgid,
    /// `CAP_SETUID`: change user IDs.
    Setuid,
    /// `CAP_SETPCAP`: drop from the bounding set, change inheritable capabilities.
    Setpcap,
    /// `CAP_NET_BIND_SERVICE`: bind ports below 1024.
    NetBindService,
    /// `CAP_NET_RAW`: raw and packet sockets.
    NetRaw,
    /// `CAP_SYS_CHROOT`: `chroot(2)`.
    SysChroot,
    /// `CAP_MKNOD`: create special files.
    Mknod,
    /// `CAP_AUDIT_WRITE`: write to the audit log.
    AuditWrite,
    /// `CAP_SETFCAP`: set file capabilities.
    Setfcap,
    /// `CAP_SYS_PTRACE`: trace processes. The only capability that can be added; it
    /// also unlocks the ptrace-family syscalls in the default seccomp profile.
    SysPtrace,
}

impl Capability {
    /// Every capability of the allowlist, defaults first, `SysPtrace` last.
    pub const ALL: [Capability; 15] = [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fowner,
        Capability::Fsetid,
        Capability::Kill,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::NetRaw,
        Capability::SysChroot,
        Capability::Mknod,
        Capability::AuditWrite,
        Capability::Setfcap,
        Capability::SysPtrace,
    ];

    /// The `caps` crate's name for this capability (and through it the kernel number).
    pub fn to_caps(self) -> caps::Capability {
        use caps::Capability as C;
        match self {
            Capability::Chown => C::CAP_CHOWN,
            Capability::DacOverride => C::CAP_DAC_OVERRIDE,
            Capability::Fowner => C::CAP_FOWNER,
            Capability::Fsetid => C::CAP_FSETID,
            Capability::Kill => C::CAP_KILL,
            Capability::Setgid => C::CAP_SETGID,
            Capability::Setuid => C::CAP_SETUID,
            Capability::Setpcap => C::CAP_SETPCAP,
            Capability::NetBindService => C::CAP_NET_BIND_SERVICE,
            Capability::NetRaw => C::CAP_NET_RAW,
            Capability::SysChroot => C::CAP_SYS_CHROOT,
            Capability::Mknod => C::CAP_MKNOD,
            Capability::AuditWrite => C::CAP_AUDIT_WRITE,
            Capability::Setfcap => C::CAP_SETFCAP,
            Capability::SysPtrace => C::CAP_SYS_PTRACE,
        }
    }

    /// The kernel's number for this capability (`CAP_CHOWN` is 0).
    pub fn number(self) -> u8 {
        self.to_caps().index()
    }

    /// The canonical name, `CAP_` prefix included (`"CAP_NET_RAW"`).
    pub fn name(self) -> String {
        self.to_caps().to_string()
    }

    fn bit(self) -> CapSet {
        CapSet::from_bits_retain(1u64 << self.number())
    }

    /// Parses a capability name as policies and command lines write it: with or
    /// without the `CAP_` prefix, in any case (`"NET_RAW"`, `"cap_net_raw"`).
    ///
    /// A real Linux capability outside the allowlist (`SYS_ADMIN`) gives
    /// [`CapabilityError::NotAllowed`]; anything else gives
    /// [`CapabilityError::Unknown`].
    pub fn from_name(name: &str) -> Result<Capability, CapabilityError> {
        let canonical = caps::to_canonical(name.trim());
        let Ok(cap) = caps::Capability::from_str(&canonical) else {
            return Err(CapabilityError::Unknown {
                name: name.to_string(),
            });
        };
        Capability::ALL
            .into_iter()
            .find(|c| c.to_caps() == cap)
            .ok_or(CapabilityError::NotAllowed { name: canonical })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_caps(), f)
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::from_name(s)
    }
}

/// A capability name that cannot be part of a task's allowlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// Not the name of any Linux capability.
    #[error("`{name}` is not a Linux capability")]
    Unknown {
        /// The name as given.
        name: String,
    },
    /// A Linux capability outside the allowlist: only Fargate's 14 defaults and
    /// `CAP_SYS_PTRACE` can be held by a task.
    #[error(
        "{name} cannot be granted: a task holds at most Fargate's 14 default capabilities, \
         and CAP_SYS_PTRACE is the only one that can be added"
    )]
    NotAllowed {
        /// The canonical name (`CAP_SYS_ADMIN`).
        name: String,
    },
}

/// A container's capability allowlist: a subset of Fargate's 14 defaults, plus
/// `CAP_SYS_PTRACE` when explicitly asked for.
///
/// Built from [`Capabilities::fargate_default`] by dropping, or from
/// [`Capabilities::none`] by keeping; [`Capabilities::with_sys_ptrace`] is the only way
/// to add anything beyond the defaults.
///
/// ```
/// use tasksandbox::{Capabilities, Capability};
/// let caps = Capabilities::fargate_default().drop(Capability::NetRaw).with_sys_ptrace();
/// assert!(caps.contains(Capability::SysPtrace));
/// assert!(!caps.contains(Capability::NetRaw));
/// assert_eq!(Capabilities::fargate_default().mask(), 0xa80425fb);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities(CapSet);

impl Capabilities {
    /// Fargate's (and Docker's) 14 default capabilities.
    pub const fn fargate_default() -> Self {
        Capabilities(CapSet::all().difference(CapSet::SYS_PTRACE))
    }

    /// No capability at all.
    pub const fn none() -> Self {
        Capabilities(CapSet::empty())
    }

    /// Removes one capability (dropping one that is absent changes nothing).
    #[must_use]
    pub fn drop(self, cap: Capability) -> Self {
        Capabilities(self.0.difference(cap.bit()))
    }

    /// Keeps only the given capabilities of this set.
    #[must_use]
    pub fn keep_only(self, keep: impl IntoIterator<Item = Capability>) -> Self {
        let wanted = keep
            .into_iter()
            .fold(CapSet::empty(), |set, cap| set.union(cap.bit()));
        Capabilities(self.0.intersection(wanted))
    }

    /// Re-adds a default capability that was dropped. `SysPtrace` is not a default: use
    /// [`Capabilities::with_sys_ptrace`], which says what it does.
    pub fn restore(self, cap: Capability) -> Result<Self, CapabilityError> {
        if cap == Capability::SysPtrace {
            return Err(CapabilityError::NotAllowed {
                name: "CAP_SYS_PTRACE (use with_sys_ptrace to opt in)".to_string(),
            });
        }
        Ok(Capabilities(self.0.union(cap.bit())))
    }

    /// Adds `CAP_SYS_PTRACE`, the only capability beyond the defaults. It also unlocks
    /// `kcmp`, `pidfd_getfd` and `process_madvise` in the default seccomp profile.
    #[must_use]
    pub fn with_sys_ptrace(self) -> Self {
        Capabilities(self.0.union(CapSet::SYS_PTRACE))
    }

    /// Whether `cap` is in the set.
    pub fn contains(self, cap: Capability) -> bool {
        self.0.contains(cap.bit())
    }

    /// The kernel bitmask of the set (bit N is capability number N).
    pub fn mask(self) -> u64 {
        self.0.bits()
    }

    /// The capabilities of the set, in kernel-number order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        let mut all = Capability::ALL;
        all.sort_by_key(|c| c.number());
        all.into_iter().filter(move |c| self.contains(*c))
    }

    /// Number of capabilities in the set.
    pub fn len(self) -> usize {
        self.0.bits().count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::fargate_default()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.iter().map(Capability::name).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mask_is_dockers() {
        assert_eq!(
            Capabilities::fargate_default().mask(),
            0x0000_0000_a804_25fb
        );
        assert_eq!(Capabilities::fargate_default().len(), 14);
    }

    #[test]
    fn bits_are_kernel_numbers() {
        for cap in Capability::ALL {
            assert_eq!(cap.bit().bits(), cap.to_caps().bitmask());
        }
    }

    #[test]
    fn sys_ptrace_is_opt_in() {
        let caps = Capabilities::fargate_default();
        assert!(!caps.contains(Capability::SysPtrace));
        let traced = caps.with_sys_ptrace();
        assert!(traced.contains(Capability::SysPtrace));
        assert_eq!(traced.mask(), 0xa80425fb | (1 << 19));
        assert!(caps.restore(Capability::SysPtrace).is_err());
    }

    #[test]
    fn drop_and_keep() {
        let caps = Capabilities::fargate_default().drop(Capability::NetRaw);
        assert!(!caps.contains(Capability::NetRaw));
        assert_eq!(caps.len(), 13);
        let only =
            Capabilities::fargate_default().keep_only([Capability::Chown, Capability::SysPtrace]);
        assert_eq!(only.iter().collect::<Vec<_>>(), vec![Capability::Chown]);
        assert_eq!(
            caps.restore(Capability::NetRaw).unwrap(),
            Capabilities::fargate_default()
        );
    }

    #[test]
    fn names_parse_and_refuse() {
        assert_eq!(Capability::from_name("net_raw"), Ok(Capability::NetRaw));
        assert_eq!(
            Capability::from_name("CAP_SYS_PTRACE"),
            Ok(Capability::SysPtrace)
        );
        assert_eq!(
            Capability::from_name("SYS_ADMIN"),
            Err(CapabilityError::NotAllowed {
                name: "CAP_SYS_ADMIN".into()
            })
        );
        assert_eq!(
            Capability::from_name("FLY"),
            Err(CapabilityError::Unknown { name: "FLY".into() })
        );
        assert_eq!(Capability::SysChroot.to_string(), "CAP_SYS_CHROOT");
    }
}
