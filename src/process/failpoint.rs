//! Failpoints: the launcher kills itself at a chosen step of a start, so that tests
//! can show a start interrupted anywhere leaves nothing behind (`tests/faults.rs`).
//!
//! Compiled into debug builds only (`cfg(debug_assertions)`): in a release build
//! [`hit`] is empty and the environment is never read. In a debug build, the first
//! start of the process reads [`ENV`] (`TASKSANDBOX_FAILPOINT`), before it forks
//! anything; when a start reaches the step of that name, the launcher sends itself
//! SIGKILL. Every failpoint is on the launcher's side of a fork, never in a child.

/// The steps of a start where the launcher can be made to die, in the order a start
/// reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failpoint {
    /// The task's cgroups exist; no process has been made.
    CgroupsMade,
    /// The task init has been cloned and waits for its id maps.
    InitCloned,
    /// The id maps are written; the init has not been released.
    IdMapsWritten,
    /// The init is ready; no container has been asked for.
    InitReady,
    /// The init reports a container's clone; its exec is not yet confirmed.
    ContainerCloned,
    /// A container has exec'd its workload.
    ContainerExeced,
}

impl Failpoint {
    /// Every failpoint, in the order a start reaches them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const ALL: [Failpoint; 6] = [
        Failpoint::CgroupsMade,
        Failpoint::InitCloned,
        Failpoint::IdMapsWritten,
        Failpoint::InitReady,
        Failpoint::ContainerCloned,
        Failpoint::ContainerExeced,
    ];

    /// The value of [`ENV`] that arms it.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Failpoint::CgroupsMade => "after-cgroups",
            Failpoint::InitCloned => "after-init-clone",
            Failpoint::IdMapsWritten => "after-id-maps",
            Failpoint::InitReady => "after-init-ready",
            Failpoint::ContainerCloned => "after-container-clone",
            Failpoint::ContainerExeced => "after-container-exec",
        }
    }
}

/// The environment variable naming the armed failpoint (debug builds only).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub(crate) const ENV: &str = "TASKSANDBOX_FAILPOINT";

/// Reads [`ENV`] once per process; called by a start before it forks anything.
#[cfg(debug_assertions)]
pub(crate) fn arm() {
    let _ = armed();
}

#[cfg(debug_assertions)]
fn armed() -> Option<&'static str> {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ARMED.get_or_init(|| std::env::var(ENV).ok()).as_deref()
}

/// Kills the launcher (SIGKILL to its own process) if `point` is armed.
#[cfg(debug_assertions)]
pub(crate) fn hit(point: Failpoint) {
    if armed() == Some(point.name()) {
        // A fault, not a shutdown: nothing of the launcher's runs after this.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
    }
}

/// Release builds: nothing is armed.
#[cfg(not(debug_assertions))]
pub(crate) fn arm() {}

/// Release builds: no failpoint exists.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn hit(_point: Failpoint) {}

#[cfg(test)]
mod tests {
    use super::Failpoint;

    #[test]
    fn failpoint_names_are_distinct() {
        let mut names: Vec<&str> = Failpoint::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Failpoint::ALL.len());
    }
}
