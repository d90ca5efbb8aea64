//! The child's side of the launch: one linear sequence of raw syscalls from `clone` to
//! `execve`.
//!
//! Runs in a copy of one thread of a possibly multi-threaded process, so it must not
//! allocate, lock or panic: every string, mask and program it uses was built before the
//! fork (see [`ChildPlan`]), and every call goes through [`crate::sys`].

use std::convert::Infallible;
use std::os::fd::RawFd;

use libc::c_ulong;
use nix::errno::Errno;

use super::plan::ChildPlan;
use crate::error::Step;
use crate::sys;

/// Descriptors the child uses, all opened by the launcher and passed to the task init,
/// which cloned this child.
pub(crate) struct ChildFds<'a> {
    /// Write end of the close-on-exec pipe failures are reported on.
    pub error_write: RawFd,
    /// Cgroup files to write `0` to, moving this process into its container cgroup.
    pub cgroup_join: &'a [RawFd],
    /// What becomes stdin, stdout and stderr (`-1`: keep the inherited one).
    pub stdio: [RawFd; 3],
    /// The nofile limit to set.
    pub nofile: u64,
}

/// Pointer arrays for `execve`, built by the parent from the plan's strings.
pub(crate) struct ExecArgs<'a> {
    pub argv: &'a [*const libc::c_char],
    pub envp: &'a [*const libc::c_char],
}

/// A failed step: what the parent turns into a [`LaunchError`](crate::LaunchError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub step: Step,
    pub errno: Errno,
    /// Index of the mount operation, for [`Step::Mount`] and [`Step::PivotRoot`].
    pub detail: i32,
}

impl Failure {
    pub(crate) const WIRE_LEN: usize = 12;

    pub(crate) fn encode(&self) -> [u8; Self::WIRE_LEN] {
        let mut out = [0u8; Self::WIRE_LEN];
        let words = [self.step.code(), self.errno as i32, self.detail];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8; Self::WIRE_LEN]) -> Option<Failure> {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[i * 4..i * 4 + 4]);
            i32::from_ne_bytes(w)
        };
        Some(Failure {
            step: Step::from_code(word(0))?,
            errno: Errno::from_raw(word(1)),
            detail: word(2),
        })
    }
}

pub(crate) trait Context<T> {
    fn at(self, step: Step) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|errno| Failure {
            step,
            errno,
            detail: -1,
        })
    }
}

/// The child's entry point: runs the plan and execs, or reports the failed step to
/// the parent and exits 127.
pub(crate) fn main(plan: &ChildPlan, fds: &ChildFds, exec: &ExecArgs) -> ! {
    let failure = match run(plan, fds, exec) {
        Ok(never) => match never {},
        Err(failure) => failure,
    };
    report_and_exit(fds.error_write, failure)
}

/// Writes `failure` to the error pipe and exits 127. Nothing more can be done if the
/// launcher is gone; the exit code says it anyway.
pub(crate) fn report_and_exit(error_write: RawFd, failure: Failure) -> ! {
    let _ = sys::write_all(error_write, &failure.encode());
    sys::exit_now(127)
}

fn run(plan: &ChildPlan, fds: &ChildFds, exec: &ExecArgs) -> Result<Infallible, Failure> {
    // Cloned by the task init, which is root of the task's user namespace and holds
    // its network, IPC and UTS namespaces; this process got a new mount namespace (and,
    // unless the task shares one, a new pid namespace) from that clone.
    sys::reset_signals();

    // 1. Into the container's cgroup, before anything of the workload's runs. This
    //    thread moves itself, through files the launcher opened.
    for &fd in fds.cgroup_join {
        sys::write_all(fd, b"0").at(Step::JoinCgroup)?;
    }

    // 2. A new session: no controlling terminal to push input into (TIOCSTI).
    sys::setsid().at(Step::NewSession)?;

    // 3. A cgroup namespace rooted at the container's cgroup, now that we are in it.
    sys::unshare(libc::CLONE_NEWCGROUP).at(Step::CgroupNamespace)?;

    // 4. The root filesystem, pivot_root, masked and read-only paths. Modes in the
    //    plan are exact, so no umask while building it.
    sys::umask(0);
    for (index, op) in plan.mounts.iter().enumerate() {
        op.apply().map_err(|errno| Failure {
            step: Step::Mount,
            errno,
            detail: index as i32,
        })?;
    }
    sys::umask(0o022);

    // 5. Resource limits the kernel keeps per process.
    sys::setrlimit(libc::RLIMIT_NOFILE, fds.nofile).at(Step::Rlimits)?;

    // 6. Standard streams, then every other inherited descriptor closed at exec (the
    //    error pipe is close-on-exec already and stays usable until then).
    for (target, &fd) in fds.stdio.iter().enumerate() {
        if fd >= 0 {
            sys::dup2(fd, target as RawFd).at(Step::Stdio)?;
        }
    }
    close_other_fds(fds.nofile).at(Step::CloseFds)?;

    // 7. The working directory, inside the new root.
    sys::chdir(&plan.working_dir).at(Step::WorkingDir)?;

    // 8.-11. Capabilities, user, no_new_privs, Landlock, seccomp: the same sequence
    //    an exec'd process goes through.
    lock_down(plan)?;

    // 12. Exec, trying each resolved path as execvp does.
    exec_plan(plan, exec)
}

/// The last steps before exec, shared with processes exec'd into a running container
/// (see [`super::exec`]): drop capabilities from the bounding set, switch to the
/// container user, set the exact capability sets, no_new_privs, the Landlock domain if
/// any, and seccomp last.
pub(crate) fn lock_down(plan: &ChildPlan) -> Result<(), Failure> {
    // Capabilities: the bounding set first (needs CAP_SETPCAP), then the user switch
    // (needs CAP_SETUID/SETGID; a non-root uid loses permitted and effective here),
    // then the exact sets, then nothing ambient.
    for &cap in &plan.bounding_drop {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(e).at(Step::BoundingSet),
        }
    }
    if plan.setgroups {
        sys::setgroups(&[plan.gid]).at(Step::User)?;
    }
    sys::setresgid(plan.gid).at(Step::User)?;
    sys::setresuid(plan.uid).at(Step::User)?;
    let granted = if plan.uid == 0 {
        plan.capabilities.mask()
    } else {
        0
    };
    sys::capset(granted, granted, 0).at(Step::Capabilities)?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
        0,
    )
    .at(Step::Capabilities)?;

    // No privilege can be gained through exec from here on.
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).at(Step::NoNewPrivs)?;

    // A Landlock domain of its own: the kernel then refuses to let this process trace
    // or inspect any process outside the domain (its siblings in a shared pid
    // namespace). The domain's one rule refuses creating block device nodes; every
    // other file access is as it was (see `sys::landlock_own_domain`).
    if plan.landlock {
        sys::landlock_own_domain().at(Step::Landlock)?;
    }

    // Seccomp last: every syscall above would be refused by the profile.
    for program in plan.seccomp.programs() {
        sys::seccomp_set_filter(program).at(Step::Seccomp)?;
    }
    Ok(())
}

/// The launcher's own executable (device, inode), noted by the launcher before it
/// forks (see [`note_launcher_exe`]).
static LAUNCHER_EXE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Notes which file the launcher runs. Its children are copies of it that have not
/// exec'd yet, so their `/proc/self/exe` is that file: an image that points its
/// program at `/proc/self/exe` (CVE-2019-5736's first move) would have the child
/// exec the launcher's own binary inside the container. Launcher side only.
pub(crate) fn note_launcher_exe() {
    use std::os::unix::fs::MetadataExt;
    LAUNCHER_EXE
        .get_or_init(|| std::fs::metadata("/proc/self/exe").map_or((0, 0), |m| (m.dev(), m.ino())));
}

/// Whether `path` reaches the launcher's executable through a `/proc` magic link
/// (`/proc/self/exe`, `/proc/<pid>/exe`, `/proc/self/fd/<n>`), which is how an image
/// gets at a file it was never given. The launcher's binary bound in on purpose (a
/// volume: the `sidecar` example runs itself so) is reached without one. A path that
/// cannot be looked at is not: `execve` then answers for it. Where the kernel has no
/// `openat2` (before 5.6), any path to the launcher's executable counts.
fn leads_to_launcher_exe(path: &std::ffi::CStr) -> bool {
    let is_launcher = match (LAUNCHER_EXE.get(), sys::stat(path)) {
        (Some(&(dev, ino)), Ok(st)) => ino != 0 && st.st_dev == dev && st.st_ino == ino,
        _ => false,
    };
    if !is_launcher {
        return false;
    }
    match sys::open_path_no_magiclinks(path) {
        Ok(fd) => {
            sys::close(fd);
            false
        }
        Err(Errno::ELOOP | Errno::ENOSYS) => true,
        Err(_) => false,
    }
}

/// Execs the plan's program, trying each resolved path as execvp does. A path that
/// leads to the launcher's own executable through a `/proc` magic link is refused
/// (`EACCES`): the launcher's binary never runs inside a container unless it was
/// bound there.
pub(crate) fn exec_plan(plan: &ChildPlan, exec: &ExecArgs) -> Result<Infallible, Failure> {
    let mut errno = Errno::ENOENT;
    for path in &plan.exec_candidates {
        if leads_to_launcher_exe(path) {
            return Err(Errno::EACCES).at(Step::Exec);
        }
        match sys::execve(path, exec.argv, exec.envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => errno = Errno::EACCES,
            other => return Err(other).at(Step::Exec),
        }
    }
    Err(errno).at(Step::Exec)
}

/// Marks every descriptor above 2 close-on-exec: `close_range` where the kernel has it,
/// else one `fcntl` per possible descriptor.
pub(crate) fn close_other_fds(nofile: u64) -> Result<(), Errno> {
    match sys::cloexec_from(3) {
        Err(Errno::ENOSYS | Errno::EINVAL) => {
            let last = RawFd::try_from(nofile).unwrap_or(RawFd::MAX);
            for fd in 3..last {
                match sys::set_cloexec(fd) {
                    Ok(()) | Err(Errno::EBADF) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trips() {
        let f = Failure {
            step: Step::Seccomp,
            errno: Errno::EACCES,
            detail: 7,
        };
        assert_eq!(Failure::decode(&f.encode()), Some(f));
    }
}
