//! The child plan: everything the child needs between `clone` and `execve`, computed
//! before the fork so the child only makes raw syscalls.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};

use crate::capabilities::Capabilities;
use crate::container::{Container, DEFAULT_PATH};
use crate::error::ConfigError;
use crate::mounts::{self, MountOp, RootContext};
use crate::seccomp::CompiledSeccomp;

/// The precomputed launch of one container.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// The container's name, for errors (read by the parent only).
    pub container: String,
    /// The root filesystem operations, in order.
    pub mounts: Vec<MountOp>,
    /// The working directory inside the new root.
    pub working_dir: CString,
    /// uid and gid inside the task.
    pub uid: u32,
    pub gid: u32,
    /// Whether `setgroups` may be called (not in an unprivileged user namespace).
    pub setgroups: bool,
    /// Capability numbers to drop from the bounding set.
    pub bounding_drop: Vec<u32>,
    /// Permitted and effective set after the switch to the container user.
    pub capabilities: Capabilities,
    /// The seccomp programs, in installation order.
    pub seccomp: Arc<CompiledSeccomp>,
    /// Paths to try with `execve`, in order (the command resolved against `PATH`).
    pub exec_candidates: Vec<CString>,
    /// argv and envp strings.
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Whether to enter a Landlock domain of its own (see [`PidMode::Task`]).
    ///
    /// [`PidMode::Task`]: crate::PidMode::Task
    pub landlock: bool,
}

/// Highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn cap_last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63)
    })
}

fn cstring(container: &str, field: &'static str, value: &OsStr) -> Result<CString, ConfigError> {
    CString::new(value.as_bytes()).map_err(|_| ConfigError::NulByte {
        container: container.to_string(),
        field,
        value: value.to_string_lossy().into_owned(),
    })
}

impl ChildPlan {
    pub(crate) fn new(
        container: &Container,
        root: &RootContext,
        setgroups: bool,
        seccomp: Arc<CompiledSeccomp>,
        landlock: bool,
    ) -> Result<Self, ConfigError> {
        let name = container.name.as_str();
        let argv = container
            .command
            .iter()
            .map(|a| cstring(name, "command", a))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = environment(container, root.hostname)?;
        let path_var = container
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_bytes().to_vec())
            .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
        let program = container.command.first().ok_or(ConfigError::EmptyCommand {
            container: name.to_string(),
        })?;
        let exec_candidates = resolve_program(name, program, &path_var)?;
        let bounding_drop = (0..=cap_last_cap())
            .filter(|n| *n >= 64 || container.capabilities.mask() & (1u64 << n) == 0)
            .collect();
        Ok(ChildPlan {
            container: name.to_string(),
            mounts: mounts::plan(container, root)?,
            working_dir: cstring(name, "working_dir", container.working_dir.as_os_str())?,
            uid: container.user.uid,
            gid: container.user.gid,
            setgroups,
            bounding_drop,
            capabilities: container.capabilities,
            seccomp,
            exec_candidates,
            argv,
            envp,
            landlock,
        })
    }
}

impl ChildPlan {
    /// The plan of a process exec'd into this container: the same user,
    /// capabilities, Landlock rule (in a domain of its own), seccomp filter,
    /// environment and working directory, running `command` (looked up in the container's `PATH`), with no
    /// mounts (it joins the container's mount namespace).
    pub(crate) fn for_exec(&self, command: &[OsString]) -> Result<ChildPlan, ConfigError> {
        let name = self.container.as_str();
        let program =
            command
                .first()
                .filter(|p| !p.is_empty())
                .ok_or(ConfigError::EmptyCommand {
                    container: name.to_string(),
                })?;
        let argv = command
            .iter()
            .map(|a| cstring(name, "command", a))
            .collect::<Result<Vec<_>, _>>()?;
        let path_var = self
            .envp
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(DEFAULT_PATH.as_bytes());
        Ok(ChildPlan {
            container: self.container.clone(),
            mounts: Vec::new(),
            working_dir: self.working_dir.clone(),
            uid: self.uid,
            gid: self.gid,
            setgroups: self.setgroups,
            bounding_drop: self.bounding_drop.clone(),
            capabilities: self.capabilities,
            seccomp: Arc::clone(&self.seccomp),
            exec_candidates: resolve_program(name, program, path_var)?,
            argv,
            envp: self.envp.clone(),
            landlock: self.landlock,
        })
    }
}

/// The workload's environment: what the container sets, plus `PATH`, `HOSTNAME` and
/// `HOME` where it sets none.
fn environment(container: &Container, hostname: &str) -> Result<Vec<CString>, ConfigError> {
    let name = container.name.as_str();
    let mut vars: Vec<(OsString, OsString)> = container.env.clone();
    let defaults = [
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOSTNAME", hostname.to_string()),
        (
            "HOME",
            if container.user.is_root() {
                "/root"
            } else {
                "/"
            }
            .to_string(),
        ),
    ];
    for (key, value) in defaults {
        if !vars.iter().any(|(k, _)| k == key) {
            vars.push((key.into(), value.into()));
        }
    }
    vars.iter()
        .map(|(k, v)| {
            let mut entry = k.clone();
            entry.push("=");
            entry.push(v);
            cstring(name, "env", &entry)
        })
        .collect()
}

/// The paths `execve` will try for `program`: itself if it contains a `/`, otherwise
/// each absolute directory of `PATH` joined with it.
fn resolve_program(
    container: &str,
    program: &OsStr,
    path_var: &[u8],
) -> Result<Vec<CString>, ConfigError> {
    if program.as_bytes().contains(&b'/') {
        return Ok(vec![cstring(container, "command", program)?]);
    }
    let mut out = Vec::new();
    for dir in path_var
        .split(|b| *b == b':')
        .filter(|d| d.starts_with(b"/"))
    {
        let mut full = dir.to_vec();
        if !full.ends_with(b"/") {
            full.push(b'/');
        }
        full.extend_from_slice(program.as_bytes());
        out.push(cstring(container, "command", OsStr::from_bytes(&full))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lookup() {
        let c = resolve_program("a", OsStr::new("sh"), b"/usr/bin:relative:/bin/").unwrap();
        assert_eq!(
            c,
            vec![
                CString::new("/usr/bin/sh").unwrap(),
                CString::new("/bin/sh").unwrap()
            ]
        );
        let c = resolve_program("a", OsStr::new("./x"), b"/bin").unwrap();
        assert_eq!(c, vec![CString::new("./x").unwrap()]);
    }

    #[test]
    fn environment_defaults() {
        let c = Container::new("web")
            .command(["x"])
            .env("PATH", "/opt/bin")
            .env("A", "1");
        let env: Vec<String> = environment(&c, "web")
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(env, ["PATH=/opt/bin", "A=1", "HOSTNAME=web", "HOME=/root"]);
    }
}
