//! The VM's network namespace and its tap devices.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use super::sys;
use super::MicrovmError;

/// The network namespace a VM's jail runs in, with the tap devices of its
/// interfaces.
///
/// For a spec with network interfaces the launch's `make-netns` hook (`prepare`
/// stage) makes a new namespace (only loopback, up), or takes the one a runtime put
/// in [`LaunchContext::netns`](super::LaunchContext::netns) before it
/// ([`VmNetns::existing`]); creates each interface's tap device there (`IFF_TAP |
/// IFF_NO_PI`, persistent, owned by the jail's host uid and gid, so the unprivileged
/// VMM can attach to it); and has the jail join it. The `cleanup` stage deletes the
/// taps and drops the namespace: one the launch made is gone with the VM.
///
/// To wire the VM to the outside, a runtime inserts a hook after `make-netns` that
/// works inside the namespace, for example a veth pair with one end moved to the
/// host and a bridge to the tap:
///
/// ```no_run
/// use std::process::Command;
/// use tasksandbox::microvm::{Hook, MicroVm, Stage};
///
/// # fn wire(vm: &mut MicroVm) -> Result<(), tasksandbox::microvm::MicrovmError> {
/// vm.hooks_mut().insert_after(
///     "make-netns",
///     Hook::new("wire-veth", Stage::Prepare, |ctx| {
///         let netns = ctx.netns.as_ref().expect("the VM has interfaces");
///         // Commands started on this thread run in the VM's namespace.
///         netns.run_in(|| {
///             Command::new("ip")
///                 .args(["link", "add", "veth-vm", "type", "veth", "peer", "veth-host", "netns", "1"])
///                 .status()
///         })?
///         .map_err(|e| tasksandbox::microvm::MicrovmError::Io { what: "run ip".into(), source: e })?;
///         Ok(())
///     }),
/// )?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct VmNetns {
    fd: Arc<OwnedFd>,
    made: bool,
    taps: Vec<String>,
}

impl VmNetns {
    /// A namespace the runtime made (an open `/run/netns/<name>` or
    /// `/proc/<pid>/ns/net`): the launch creates the taps in it, the jail joins it, and
    /// it outlives the VM (its taps do not).
    pub fn existing(fd: OwnedFd) -> Self {
        VmNetns {
            fd: Arc::new(fd),
            made: false,
            taps: Vec::new(),
        }
    }

    /// A new network namespace whose loopback is up.
    pub(crate) fn create() -> Result<Self, MicrovmError> {
        let fd = on_thread(None, "make the VM's network namespace", || {
            crate::sys::unshare(libc::CLONE_NEWNET).map_err(|e| MicrovmError::Io {
                what: "unshare a network namespace".into(),
                source: e.into(),
            })?;
            let fd = nix::fcntl::open(
                "/proc/thread-self/ns/net",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| MicrovmError::Io {
                what: "open /proc/thread-self/ns/net".into(),
                source: e.into(),
            })?;
            crate::sys::loopback_up().map_err(|e| MicrovmError::Io {
                what: "bring up lo in the VM's network namespace".into(),
                source: e.into(),
            })?;
            Ok(fd)
        })?;
        Ok(VmNetns {
            fd: Arc::new(fd),
            made: true,
            taps: Vec::new(),
        })
    }

    /// The namespace's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A path to the namespace while the launch holds it:
    /// `/proc/<launcher pid>/fd/<n>`, which `nsenter --net=PATH` and `setns` accept.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }

    /// Whether the launch made the namespace (and so it goes with the VM).
    pub fn made_by_launch(&self) -> bool {
        self.made
    }

    /// The tap devices the launch created in it.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    /// Runs `f` on a short-lived thread inside the namespace, and returns what it
    /// returned. Processes `f` starts (`std::process::Command`) start in the
    /// namespace too; the caller's threads stay where they are.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, MicrovmError> {
        on_thread(
            Some(self.fd.as_raw_fd()),
            "run in the VM's network namespace",
            || Ok(f()),
        )
    }

    /// The shared descriptor, for the jail's task to join.
    pub(crate) fn shared(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd)
    }

    /// Creates the persistent tap `name`, owned by `uid`:`gid`.
    pub(crate) fn create_tap(
        &mut self,
        name: &str,
        uid: u32,
        gid: u32,
    ) -> Result<(), MicrovmError> {
        let io = |what: &str, e: nix::errno::Errno| MicrovmError::Io {
            what: format!("{what} for tap {name} in the VM's network namespace"),
            source: e.into(),
        };
        on_thread(Some(self.fd.as_raw_fd()), "create a tap device", || {
            let tun = open_tun()?;
            let fd = tun.as_raw_fd();
            match sys::tun_set_iff(fd, name, true) {
                Ok(()) => {}
                Err(nix::errno::Errno::EBUSY) => {
                    return Err(MicrovmError::Device {
                        path: PathBuf::from(name),
                        reason: "is a network device that exists already in the VM's \
                                 network namespace; the launch makes each interface's tap"
                            .into(),
                    })
                }
                Err(e) => return Err(io("TUNSETIFF", e)),
            }
            sys::tun_set_owner(fd, uid).map_err(|e| io("TUNSETOWNER", e))?;
            sys::tun_set_group(fd, gid).map_err(|e| io("TUNSETGROUP", e))?;
            sys::tun_set_persist(fd, true).map_err(|e| io("TUNSETPERSIST", e))
        })?;
        self.taps.push(name.to_string());
        Ok(())
    }

    /// Deletes the taps the launch created.
    pub(crate) fn delete_taps(&mut self) -> Result<(), MicrovmError> {
        let mut first_error = None;
        for name in std::mem::take(&mut self.taps) {
            let result = on_thread(Some(self.fd.as_raw_fd()), "delete a tap device", || {
                let tun = open_tun()?;
                let io = |what: &str, e: nix::errno::Errno| MicrovmError::Io {
                    what: format!("{what} to delete tap {name}"),
                    source: e.into(),
                };
                sys::tun_set_iff(tun.as_raw_fd(), &name, false).map_err(|e| io("TUNSETIFF", e))?;
                sys::tun_set_persist(tun.as_raw_fd(), false).map_err(|e| io("TUNSETPERSIST", e))
            });
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn open_tun() -> Result<OwnedFd, MicrovmError> {
    nix::fcntl::open(
        "/dev/net/tun",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| MicrovmError::Device {
        path: PathBuf::from("/dev/net/tun"),
        reason: format!("cannot be opened: {e}"),
    })
}

/// Runs `f` on a new thread, after joining the network namespace `netns` if given:
/// namespace changes stay on that thread, which exits when `f` returns.
fn on_thread<T: Send>(
    netns: Option<std::os::fd::RawFd>,
    what: &str,
    f: impl FnOnce() -> Result<T, MicrovmError> + Send,
) -> Result<T, MicrovmError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(fd) = netns {
                    crate::sys::setns(fd, libc::CLONE_NEWNET).map_err(|e| MicrovmError::Io {
                        what: format!("{what}: join the VM's network namespace"),
                        source: e.into(),
                    })?;
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(MicrovmError::Io {
                    what: what.to_string(),
                    source: std::io::Error::other("the thread panicked"),
                })
            })
    })
}
