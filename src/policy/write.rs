//! The canonical TOML text of a policy.

use std::fmt::Write as _;
use std::path::Path;

use super::model::*;
use super::Policy;
use crate::lifecycle::PidMode;

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// A bare key where TOML allows one, else a quoted key.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

fn strings(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

fn stdio(s: &StdioPolicy) -> Option<String> {
    match s {
        StdioPolicy::Inherit => None,
        StdioPolicy::Null => Some("\"null\"".into()),
        StdioPolicy::Log => Some("\"log\"".into()),
        StdioPolicy::File(p) => Some(format!("{{ file = {} }}", path(p))),
    }
}

pub(super) fn to_toml(policy: &Policy) -> String {
    let mut out = String::from("version = 1\n");
    let t = &policy.task;
    let mut task = Vec::new();
    if let Some(cpu) = t.cpu {
        task.push(format!("cpu = {cpu}"));
    }
    if let Some(memory) = t.memory {
        task.push(format!("memory = {memory}"));
    }
    if !t.fargate {
        task.push("fargate = false".into());
    }
    if t.pid_mode == PidMode::Task {
        task.push("pid_mode = \"task\"".into());
    }
    if let Some(gib) = t.ephemeral_storage_gib {
        task.push(format!("ephemeral_storage_gib = {gib}"));
    }
    if let Some(secs) = t.stop_timeout_secs {
        task.push(format!("stop_timeout_secs = {secs}"));
    }
    if let Some(n) = t.pids_limit {
        task.push(format!("pids_limit = {n}"));
    }
    if let Some(h) = &t.hostname {
        task.push(format!("hostname = {}", quote(h)));
    }
    if !task.is_empty() {
        out.push_str("\n[task]\n");
        for line in task {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for c in &policy.containers {
        out.push_str("\n[[container]]\n");
        container(&mut out, c);
    }
    out
}

fn container(out: &mut String, c: &ContainerPolicy) {
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("name = {}", quote(&c.name)));
    if let Some(rootfs) = &c.rootfs {
        line(format!("rootfs = {}", path(rootfs)));
    }
    line(format!("command = {}", strings(&c.command)));
    if !c.env.is_empty() {
        let env: Vec<String> = c
            .env
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
            .collect();
        line(format!("env = {{ {} }}", env.join(", ")));
    }
    if let Some(user) = c.user {
        line(format!("user = \"{}:{}\"", user.uid, user.gid));
    }
    if let Some(dir) = &c.working_dir {
        line(format!("working_dir = {}", quote(dir)));
    }
    if !c.essential {
        line("essential = false".into());
    }
    if !c.depends_on.is_empty() {
        let deps: Vec<String> = c
            .depends_on
            .iter()
            .map(|(name, cond)| {
                format!("{{ container = {}, condition = \"{cond}\" }}", quote(name))
            })
            .collect();
        line(format!("depends_on = [{}]", deps.join(", ")));
    }
    if c.readonly_rootfs {
        line("readonly_rootfs = true".into());
    }
    if let Some(h) = &c.hostname {
        line(format!("hostname = {}", quote(h)));
    }
    if let Some(n) = c.nofile {
        line(format!(
            "ulimits = [{{ name = \"nofile\", soft = {n}, hard = {n} }}]"
        ));
    }
    let caps = &c.capabilities;
    if caps.drop_all || !caps.drop.is_empty() || caps.add_sys_ptrace {
        let mut parts = Vec::new();
        if caps.drop_all {
            parts.push("drop = [\"ALL\"]".to_string());
        } else if !caps.drop.is_empty() {
            let names: Vec<String> = caps
                .drop
                .iter()
                .map(|cap| quote(cap.name().trim_start_matches("CAP_")))
                .collect();
            parts.push(format!("drop = [{}]", names.join(", ")));
        }
        if caps.add_sys_ptrace {
            parts.push("add = [\"SYS_PTRACE\"]".into());
        }
        line(format!("capabilities = {{ {} }}", parts.join(", ")));
    }
    if let SeccompSource::File(p) = &c.seccomp {
        line(format!("seccomp = {}", path(p)));
    }
    if !c.mounts.is_empty() {
        let mounts: Vec<String> = c
            .mounts
            .iter()
            .map(|m| match m {
                MountPolicy::Bind {
                    source,
                    destination,
                    read_only,
                } => format!(
                    "  {{ source = {}, destination = {}, read_only = {read_only} }},",
                    path(source),
                    path(destination)
                ),
                MountPolicy::Ephemeral { destination } => format!(
                    "  {{ ephemeral = true, destination = {} }},",
                    path(destination)
                ),
            })
            .collect();
        line(format!("mounts = [\n{}\n]", mounts.join("\n")));
    }
    if !c.secrets.is_empty() {
        let secrets: Vec<String> = c
            .secrets
            .iter()
            .map(|s| {
                let from = match &s.value_from {
                    SecretSource::Env(var) => format!("env:{var}"),
                    SecretSource::File(p) => format!("file:{}", p.to_string_lossy()),
                };
                format!(
                    "  {{ name = {}, value_from = {} }},",
                    quote(&s.name),
                    quote(&from)
                )
            })
            .collect();
        line(format!("secrets = [\n{}\n]", secrets.join("\n")));
    }
    if let Some(h) = &c.health_check {
        // A command that itself starts with ECS's markers keeps them behind `CMD`.
        let mut command = h.command.clone();
        if matches!(
            command.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL")
        ) {
            command.insert(0, "CMD".into());
        }
        line(format!(
            "health_check = {{ command = {}, interval_secs = {}, timeout_secs = {}, retries = {}, start_period_secs = {} }}",
            strings(&command),
            h.interval_secs,
            h.timeout_secs,
            h.retries,
            h.start_period_secs
        ));
    }
    for (name, s) in [
        ("stdin", &c.stdin),
        ("stdout", &c.stdout),
        ("stderr", &c.stderr),
    ] {
        if let Some(v) = stdio(s) {
            line(format!("{name} = {v}"));
        }
    }
    if let Some(cpu) = c.cpu {
        line(format!("cpu = {cpu}"));
    }
    if let Some(memory) = c.memory {
        line(format!("memory = {memory}"));
    }
    if let Some(mib) = c.memory_reservation {
        line(format!("memory_reservation = {mib}"));
    }
    if let Some(secs) = c.start_timeout_secs {
        line(format!("start_timeout_secs = {secs}"));
    }
}
