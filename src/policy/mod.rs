//! Task policies: a task described in a TOML file, in the vocabulary of an ECS task
//! definition (in snake_case), turned into the same [`TaskSandboxBuilder`] code uses.
//!
//! ```toml
//! [task]
//! cpu = 256          # CPU units, 1024 per vCPU
//! memory = 512       # MiB; with cpu, a row of Fargate's table unless fargate = false
//!
//! [[container]]
//! name = "app"
//! command = ["/bin/sh", "-c", "echo hello"]
//! capabilities = { drop = ["NET_RAW"], add = ["SYS_PTRACE"] }
//! ```
//!
//! [`Policy::parse`] checks the text: unknown keys, wrong types, values out of range,
//! `privileged` anywhere, capabilities other than `SYS_PTRACE` in `capabilities.add`,
//! the keys Fargate rejects. [`Policy::build`] turns it into a builder (reading the
//! seccomp profiles and secrets it names) and calls
//! [`build`](TaskSandboxBuilder::build), so every rule of the builder applies; a
//! [`ConfigError`] from it is placed back on the key that caused it. Every error is a
//! [`PolicyError`] with the file, line, column and key path, and
//! [`PolicyError::render`] prints it as rustc prints a diagnostic.
//!
//! `docs/policy.md` documents every key, its default and its range;
//! `examples/policies/` holds annotated samples.
//!
//! ```
//! use tasksandbox::policy::Policy;
//! let err = Policy::parse(
//!     "[[container]]\nname = \"app\"\ncommand = [\"true\"]\ncapabilities = { add = [\"SYS_ADMIN\"] }\n",
//!     "app.toml",
//! )
//! .unwrap_err();
//! assert_eq!((err.line(), err.column()), (4, 25));
//! assert_eq!(err.key_path(), "container[0].capabilities.add[0]");
//! println!("{}", err.render());
//! ```

mod error;
mod model;
mod parse;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{PolicyError, PolicyErrorKind};
pub use model::{
    CapabilitiesPolicy, ContainerPolicy, HealthCheckPolicy, MountPolicy, SeccompSource,
    SecretPolicy, SecretSource, StdioPolicy, TaskPolicy,
};

use crate::capabilities::Capabilities;
use crate::container::{Container, HealthCheck, Secret, Stdio, Volume};
use crate::error::ConfigError;
use crate::seccomp::{SeccompPolicy, SeccompProfile};
use crate::size::{EphemeralStorage, SizeError, TaskSize};
use crate::task::{TaskSandbox, TaskSandboxBuilder};

/// A parsed task policy: the task and its containers, and where each key was in the
/// text (to place errors found later).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The `[task]` table.
    pub task: TaskPolicy,
    /// The `[[container]]` tables, in the order of the file.
    pub containers: Vec<ContainerPolicy>,
    file: PathBuf,
    /// The directory relative host paths are resolved against: the file's, made
    /// absolute when the policy was parsed.
    dir: PathBuf,
    source: String,
    spans: parse::Spans,
}

impl PartialEq for Policy {
    /// Two policies are equal when they describe the same task, wherever their text
    /// came from.
    fn eq(&self, other: &Self) -> bool {
        self.task == other.task && self.containers == other.containers
    }
}

impl Policy {
    /// Parses the text of a policy. `file` names it in errors, and relative host paths
    /// in it (`rootfs`, mount sources, seccomp profiles, secret files, stdio files) are
    /// relative to `file`'s directory; a relative `file` is taken from the current
    /// directory now, so the builder always gets absolute paths.
    pub fn parse(text: &str, file: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let file = file.as_ref();
        let parsed = parse::parse(file, text)?;
        Ok(Policy {
            task: parsed.task,
            containers: parsed.containers,
            file: file.to_path_buf(),
            dir: base_dir(file),
            source: text.to_string(),
            spans: parsed.spans,
        })
    }

    /// Reads and parses the policy file `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::read(path, e))?;
        Policy::parse(&text, path)
    }

    /// The file the policy was read from, as named.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The canonical TOML text of the policy: every key the policy sets, in the order
    /// of `docs/policy.md`, defaults left out, relative paths kept as written. Parsing
    /// it gives an equal [`Policy`].
    pub fn to_toml(&self) -> String {
        write::to_toml(self)
    }

    /// The builder the policy describes: the task's size, limits and containers.
    /// Reads the seccomp profiles and the secrets the policy names. Host-side
    /// settings that are not the policy's to choose (user namespace, enforcement,
    /// cgroup parent, runtime directory, log sink, network namespace, storage
    /// directory, in-memory storage) keep their defaults: set them on
    /// the builder, and pass a [`ConfigError`] from its `build()` to
    /// [`Policy::locate`].
    pub fn builder(&self) -> Result<TaskSandboxBuilder, PolicyError> {
        let mut b = TaskSandbox::builder().size(self.size()?);
        let t = &self.task;
        b = b.pid_mode(t.pid_mode);
        if let Some(gib) = t.ephemeral_storage_gib {
            let storage = if t.fargate {
                EphemeralStorage::fargate_gib(gib)
            } else {
                EphemeralStorage::custom_mib(gib.saturating_mul(1024))
            };
            b = b.ephemeral_storage(storage.map_err(|e| {
                self.error_at("task.ephemeral_storage_gib", PolicyErrorKind::Size(e))
            })?);
        }
        if let Some(secs) = t.stop_timeout_secs {
            b = b.stop_timeout(Duration::from_secs(secs));
        }
        if let Some(n) = t.pids_limit {
            b = b.pids_limit(n);
        }
        if let Some(h) = &t.hostname {
            b = b.hostname(h);
        }
        let mut nofile: Option<(u64, usize)> = None;
        for (i, c) in self.containers.iter().enumerate() {
            if let Some(n) = c.nofile {
                match nofile {
                    Some((m, first)) if m != n => {
                        return Err(self.error_at(
                            &format!("container[{i}].ulimits"),
                            PolicyErrorKind::Invalid(format!(
                                "nofile {n} differs from {m}, set by container {:?}: the task's containers share one nofile limit",
                                self.containers[first].name
                            )),
                        ))
                    }
                    Some(_) => {}
                    None => nofile = Some((n, i)),
                }
            }
            b = b.container(self.container(i, c)?);
        }
        if let Some((n, _)) = nofile {
            b = b.nofile(n);
        }
        Ok(b)
    }

    /// Builds the task the policy describes ([`Policy::builder`], then
    /// [`build`](TaskSandboxBuilder::build)), with every error placed in the policy.
    pub fn build(&self) -> Result<TaskSandbox, PolicyError> {
        self.builder()?.build().map_err(|e| self.locate(e))
    }

    /// What the task the policy describes will enforce ([`Policy::build`], then
    /// [`TaskSandbox::explain`]).
    pub fn explain(&self) -> Result<crate::explain::Explanation, PolicyError> {
        Ok(self.build()?.explain())
    }

    /// Places an error of [`TaskSandboxBuilder::build`] for this policy's builder on
    /// the key that caused it (or the nearest one that says where).
    pub fn locate(&self, err: ConfigError) -> PolicyError {
        let path = self.config_error_path(&err);
        self.error_at(&path, PolicyErrorKind::Config(err))
    }

    /// An error at the value of `path` (or of the nearest enclosing key present).
    fn error_at(&self, path: &str, kind: PolicyErrorKind) -> PolicyError {
        match self.spans.find(path) {
            Some((found, span)) => {
                // A missing key is reported on the table that lacks it, named by
                // the key path asked for.
                let shown = if found == path {
                    found
                } else {
                    path.to_string()
                };
                PolicyError::at(&self.file, &self.source, span, shown, kind)
            }
            None => PolicyError::at(&self.file, &self.source, 0..0, path, kind),
        }
    }

    /// `path` as the builder gets it: absolute, relative paths taken from the policy's
    /// directory.
    fn resolve(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }

    fn size(&self) -> Result<TaskSize, PolicyError> {
        let t = &self.task;
        let default = TaskSize::default();
        let size = match (t.fargate, t.cpu, t.memory) {
            (true, None, None) => Ok(default),
            (true, Some(cpu), Some(mem)) => TaskSize::fargate(cpu, mem),
            (true, Some(_), None) | (true, None, Some(_)) => {
                let (present, missing) = if t.cpu.is_some() {
                    ("cpu", "memory")
                } else {
                    ("memory", "cpu")
                };
                return Err(self.error_at(
                    &format!("task.{present}"),
                    PolicyErrorKind::Invalid(format!(
                        "a Fargate task size needs both cpu and memory; add `{missing}`, or set `fargate = false`"
                    )),
                ));
            }
            (false, Some(cpu), mem) => TaskSize::custom(cpu, mem.unwrap_or(default.memory_mib())),
            (false, None, Some(mem)) => TaskSize::memory_only(mem),
            (false, None, None) => Ok(default),
        };
        size.map_err(|e| {
            let key = match e {
                SizeError::FargateCpu { .. } | SizeError::CpuOutOfRange { .. } => "task.cpu",
                _ => "task.memory",
            };
            self.error_at(key, PolicyErrorKind::Size(e))
        })
    }

    fn container(&self, i: usize, c: &ContainerPolicy) -> Result<Container, PolicyError> {
        let at = |key: &str| format!("container[{i}].{key}");
        let mut out = Container::new(&c.name).command(&c.command);
        for (k, v) in &c.env {
            out = out.env(k, v);
        }
        if let Some(rootfs) = &c.rootfs {
            out = out.rootfs(self.resolve(rootfs));
        }
        if let Some(user) = c.user {
            out = out.user(user);
        }
        if let Some(dir) = &c.working_dir {
            out = out.working_dir(dir);
        }
        out = out
            .essential(c.essential)
            .readonly_rootfs(c.readonly_rootfs);
        for (dep, condition) in &c.depends_on {
            out = out.depends_on(dep, *condition);
        }
        if let Some(h) = &c.hostname {
            out = out.hostname(h);
        }
        let mut caps = if c.capabilities.drop_all {
            Capabilities::none()
        } else {
            Capabilities::fargate_default()
        };
        for cap in &c.capabilities.drop {
            caps = caps.drop(*cap);
        }
        if c.capabilities.add_sys_ptrace {
            caps = caps.with_sys_ptrace();
        }
        out = out.capabilities(caps);
        if let SeccompSource::File(path) = &c.seccomp {
            let path = self.resolve(path);
            let profile = SeccompProfile::from_json_file(&path).map_err(|source| {
                self.error_at(&at("seccomp"), PolicyErrorKind::Seccomp { path, source })
            })?;
            out = out.seccomp(SeccompPolicy::Profile(std::sync::Arc::new(profile)));
        }
        for m in &c.mounts {
            out = match m {
                MountPolicy::Bind {
                    source,
                    destination,
                    read_only,
                } => {
                    let v = Volume::bind(self.resolve(source), destination);
                    out.volume(if *read_only { v } else { v.read_write() })
                }
                MountPolicy::Ephemeral { destination } => out.ephemeral_storage_at(destination),
            };
        }
        for (j, s) in c.secrets.iter().enumerate() {
            let value = match &s.value_from {
                SecretSource::Env(var) => std::env::var_os(var)
                    .map(std::os::unix::ffi::OsStringExt::into_vec)
                    .ok_or_else(|| format!("the environment variable {var} is not set")),
                SecretSource::File(file) => {
                    let path = self.resolve(file);
                    std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
                }
            }
            .map_err(|msg| {
                self.error_at(
                    &at(&format!("secrets[{j}].value_from")),
                    PolicyErrorKind::Secret(msg),
                )
            })?;
            out = out.secret(Secret::new(&s.name, value));
        }
        if let Some(h) = &c.health_check {
            out = out.health_check(
                HealthCheck::new(&h.command)
                    .interval(Duration::from_secs(h.interval_secs))
                    .timeout(Duration::from_secs(h.timeout_secs))
                    .retries(h.retries)
                    .start_period(Duration::from_secs(h.start_period_secs)),
            );
        }
        let stdio = |s: &StdioPolicy| match s {
            StdioPolicy::Inherit => Stdio::Inherit,
            StdioPolicy::Null => Stdio::Null,
            StdioPolicy::Log => Stdio::Log,
            StdioPolicy::File(p) => Stdio::File(self.resolve(p)),
        };
        out = out
            .stdin(stdio(&c.stdin))
            .stdout(stdio(&c.stdout))
            .stderr(stdio(&c.stderr));
        if let Some(units) = c.cpu {
            out = out.cpu_units(units);
        }
        if let Some(mib) = c.memory {
            out = out.memory_limit(mib.saturating_mul(1 << 20));
        }
        if let Some(mib) = c.memory_reservation {
            out = out.memory_reservation(mib.saturating_mul(1 << 20));
        }
        if let Some(secs) = c.start_timeout_secs {
            out = out.start_timeout(Duration::from_secs(secs));
        }
        Ok(out)
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.name == name)
    }

    /// The key path of the policy that caused `err`.
    fn config_error_path(&self, err: &ConfigError) -> String {
        let container = |name: &str, key: &str| match self.index_of(name) {
            Some(i) if key.is_empty() => format!("container[{i}]"),
            Some(i) => format!("container[{i}].{key}"),
            None => String::new(),
        };
        match err {
            ConfigError::Size(SizeError::FargateCpu { .. } | SizeError::CpuOutOfRange { .. }) => {
                "task.cpu".into()
            }
            ConfigError::Size(SizeError::StorageOutOfRange { .. }) => {
                "task.ephemeral_storage_gib".into()
            }
            ConfigError::Size(_) => "task.memory".into(),
            ConfigError::NoContainer => "container".into(),
            ConfigError::DuplicateContainer { name } => {
                match self
                    .containers
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.name == *name)
                    .nth(1)
                {
                    Some((i, _)) => format!("container[{i}].name"),
                    None => container(name, "name"),
                }
            }
            ConfigError::ContainerName { name, .. } => container(name, "name"),
            ConfigError::EmptyCommand { container: name } => container(name, "command"),
            ConfigError::NulByte {
                container: name,
                field,
                value,
            } => {
                let key = match *field {
                    "env" => {
                        let var = value.split('=').next().unwrap_or_default();
                        return container(name, &format!("env.{var}"));
                    }
                    "volume destination" | "volume source" => {
                        return self.mount_path(name, |_| true)
                    }
                    "secret" => "secrets",
                    other => other,
                };
                container(name, key)
            }
            ConfigError::NotAbsolute {
                container: name,
                field,
                path,
            } => match *field {
                "working_dir" => container(name, "working_dir"),
                "ephemeral storage mount" => self.mount_path(
                    name,
                    |m| matches!(m, MountPolicy::Ephemeral { destination } if destination == path),
                ),
                "stdio file" => {
                    let key = self
                        .index_of(name)
                        .and_then(|i| {
                            let c = &self.containers[i];
                            [("stdin", &c.stdin), ("stdout", &c.stdout), ("stderr", &c.stderr)]
                                .into_iter()
                                .find(|(_, s)| matches!(s, StdioPolicy::File(p) if self.resolve(p) == *path))
                                .map(|(k, _)| k)
                        })
                        .unwrap_or("stdout");
                    container(name, &format!("{key}.file"))
                }
                _ => container(name, ""),
            },
            ConfigError::EnvName {
                container: name,
                name: var,
                ..
            } => container(name, &format!("env.{var}")),
            ConfigError::Hostname {
                container: name, ..
            } if name == "task" && self.index_of("task").is_none() => "task.hostname".into(),
            ConfigError::Hostname {
                container: name, ..
            } => container(name, "hostname"),
            ConfigError::Rootfs {
                container: name, ..
            } => container(name, "rootfs"),
            ConfigError::Volume {
                container: name,
                destination,
                ..
            } => self.mount_path(name, |m| match m {
                MountPolicy::Bind { destination: d, .. }
                | MountPolicy::Ephemeral { destination: d } => d == destination,
            }),
            ConfigError::PidsLimit { .. } => "task.pids_limit".into(),
            ConfigError::Nofile { .. } => self
                .containers
                .iter()
                .position(|c| c.nofile.is_some())
                .map(|i| format!("container[{i}].ulimits"))
                .unwrap_or_default(),
            ConfigError::UserNotMapped {
                container: name, ..
            } => container(name, "user"),
            ConfigError::Seccomp {
                container: name, ..
            } => container(name, "seccomp"),
            ConfigError::Dependency {
                container: name,
                dependency,
                ..
            } => match self.index_of(name) {
                Some(i) => match self.containers[i]
                    .depends_on
                    .iter()
                    .position(|(d, _)| d == dependency)
                {
                    Some(j) => format!("container[{i}].depends_on[{j}]"),
                    None => format!("container[{i}].depends_on"),
                },
                None => String::new(),
            },
            ConfigError::NoEssentialContainer => self
                .containers
                .iter()
                .position(|_| true)
                .map(|i| format!("container[{i}].essential"))
                .unwrap_or_default(),
            ConfigError::Invalid { field, .. } => self.invalid_field_path(field),
            _ => String::new(),
        }
    }

    /// The key path of a mount of container `name` matching `pred`.
    fn mount_path(&self, name: &str, pred: impl Fn(&MountPolicy) -> bool) -> String {
        match self.index_of(name) {
            Some(i) => match self.containers[i].mounts.iter().position(pred) {
                Some(j) => format!("container[{i}].mounts[{j}]"),
                None => format!("container[{i}].mounts"),
            },
            None => String::new(),
        }
    }

    /// The key path for a [`ConfigError::Invalid`] field: `task.stop_timeout`,
    /// `container "app": health_check.interval`, `container "app": secrets[1]`.
    fn invalid_field_path(&self, field: &str) -> String {
        match field {
            "task.stop_timeout" => return "task.stop_timeout_secs".into(),
            "task.ephemeral_storage" => return "task.ephemeral_storage_gib".into(),
            _ => {}
        }
        let Some(rest) = field.strip_prefix("container ") else {
            return String::new();
        };
        let Some((quoted, key)) = rest.split_once(": ") else {
            return String::new();
        };
        let name = quoted.trim_matches('"');
        let Some(i) = self.index_of(name) else {
            return String::new();
        };
        let key = match key {
            "cpu_units" => "cpu".to_string(),
            "memory_limit" => "memory".to_string(),
            "start_timeout" => "start_timeout_secs".to_string(),
            k if k.starts_with("health_check.")
                && !k.ends_with("command")
                && !k.ends_with("retries") =>
            {
                format!("{k}_secs")
            }
            k => k.to_string(),
        };
        format!("container[{i}].{key}")
    }
}

/// The absolute directory of `file` (the current directory for a bare file name), or
/// the directory as named if the current directory cannot be read.
fn base_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(dir),
        Err(_) => dir.to_path_buf(),
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    /// Parses a policy that did not come from a file (errors name it `<policy>`;
    /// relative paths are relative to the current directory).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::parse(s, "<policy>")
    }
}

#[cfg(test)]
mod tests;
