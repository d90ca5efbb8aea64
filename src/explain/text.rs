//! The human-readable form of an explanation.

use std::fmt::{self, Display, Formatter, Write as _};

use super::seccomp::action_text;
use super::*;

/// Capability names of a kernel mask, `none` when empty.
pub(crate) fn cap_names(mask: u64) -> Vec<String> {
    (0..64u8)
        .filter(|n| mask & (1u64 << n) != 0)
        .map(|n| {
            caps::all()
                .into_iter()
                .find(|c| c.index() == n)
                .map_or_else(|| format!("CAP_{n}"), |c| c.to_string())
        })
        .collect()
}

fn mask_line(mask: u64) -> String {
    let names = cap_names(mask);
    if names.is_empty() {
        format!("{mask:016x} (none)")
    } else {
        format!("{mask:016x} {}", names.join(","))
    }
}

pub(crate) fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// cgroup limits; an absent limit is the enclosing cgroup's (`unset` for the task,
/// `the task's` for a container).
fn limits(l: &Limits, unset: &str) -> String {
    let mut parts = Vec::new();
    match (l.cpu_units, l.cpu_share_units) {
        (Some(units), _) => parts.push(format!(
            "cpu {units} units ({} vCPU)",
            trim_float(f64::from(units) / 1024.0)
        )),
        (None, Some(units)) => parts.push(format!("cpu share {units} units (a weight)")),
        (None, None) => parts.push(format!("cpu {unset}")),
    }
    match l.memory_bytes {
        Some(b) => parts.push(format!("memory {} (no swap)", size(b))),
        None => parts.push(format!("memory {unset}")),
    }
    if let Some(b) = l.memory_reservation_bytes {
        parts.push(format!("memory reservation {} (soft)", size(b)));
    }
    match l.pids_max {
        Some(n) => parts.push(format!("pids {n}")),
        None => parts.push(format!("pids {unset}")),
    }
    parts.join(", ")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Words wrapped at 88 columns, continuation lines indented by `indent`.
fn wrapped(out: &mut String, first: &str, words: &[&str], sep: &str, indent: usize) {
    let mut line = first.to_string();
    let mut first_word = true;
    for (i, w) in words.iter().enumerate() {
        let piece = if i + 1 < words.len() {
            format!("{w}{sep}")
        } else {
            (*w).to_string()
        };
        if !first_word && line.len() + piece.len() > 88 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
        }
        line.push_str(&piece);
        first_word = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn stdio(s: &StdioTarget) -> String {
    match s {
        StdioTarget::Inherit => "inherit".into(),
        StdioTarget::Null => "null".into(),
        StdioTarget::Piped => "piped".into(),
        StdioTarget::File(p) => format!("file {p}"),
        StdioTarget::Log => "log".into(),
    }
}

impl Display for Explanation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let t = &self.task;
        out.push_str("task\n");
        let ids = match t.id_map {
            Some(m) => format!(
                "uid 0..{n} -> host {u}..{ue}, gid 0..{n} -> host {g}..{ge}",
                n = m.count,
                u = m.host_uid,
                ue = u64::from(m.host_uid) + u64::from(m.count),
                g = m.host_gid,
                ge = u64::from(m.host_gid) + u64::from(m.count),
            ),
            None => "none: container ids are host ids".to_string(),
        };
        let _ = writeln!(out, "  user namespace     {ids}");
        let pid = match t.pid_mode {
            PidMode::Task => "task (one pid namespace shared by the containers)",
            PidMode::Container => "container (a pid namespace per container)",
        };
        let _ = writeln!(out, "  pid mode           {pid}");
        let _ = writeln!(out, "  hostname           {}", t.hostname);
        if let Some(netns) = &t.network_namespace {
            let _ = writeln!(
                out,
                "  network namespace  joined {netns} (left as it is: no loopback set-up)"
            );
        }
        let _ = writeln!(
            out,
            "  cgroup             {}",
            limits(&t.limits, "unlimited")
        );
        let _ = writeln!(out, "  nofile             {} (soft and hard)", t.nofile);
        let _ = writeln!(
            out,
            "  stop timeout       {} s (SIGTERM, then SIGKILL)",
            t.stop_timeout.as_secs()
        );
        match t.ephemeral_storage_bytes {
            Some(b) => {
                let kind = if t.ephemeral_storage_in_memory {
                    "in memory, tmpfs"
                } else {
                    "on disk, ext4"
                };
                let _ = writeln!(out, "  ephemeral storage  {} ({kind})", size(b));
            }
            None => out.push_str("  ephemeral storage  not mounted by any container\n"),
        }
        let _ = writeln!(
            out,
            "  enforcement        {}",
            if t.best_effort {
                "best effort"
            } else {
                "required"
            }
        );
        for note in &t.not_enforced {
            let _ = writeln!(out, "  not enforced       {note}");
        }
        for c in &self.containers {
            out.push('\n');
            container(&mut out, c);
        }
        f.write_str(&out)
    }
}

fn container(out: &mut String, c: &ContainerExplanation) {
    let _ = writeln!(out, "container {:?}", c.name);
    let command: Vec<String> = c
        .command
        .iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect();
    let _ = writeln!(out, "  command            {}", command.join(" "));
    let _ = writeln!(out, "  user               {}:{}", c.user.uid, c.user.gid);
    let _ = writeln!(out, "  working dir        {}", c.working_dir);
    let _ = writeln!(
        out,
        "  essential          {}",
        if c.essential { "yes" } else { "no" }
    );
    if !c.depends_on.is_empty() {
        let deps: Vec<String> = c
            .depends_on
            .iter()
            .map(|(name, cond)| format!("{name} {cond}"))
            .collect();
        let _ = writeln!(out, "  depends on         {}", deps.join(", "));
    }
    if c.health_check {
        out.push_str("  health check       yes\n");
    }
    let _ = writeln!(
        out,
        "  stdio              stdin {}, stdout {}, stderr {}",
        stdio(&c.stdio[0]),
        stdio(&c.stdio[1]),
        stdio(&c.stdio[2])
    );
    let ns: Vec<String> = c
        .namespaces
        .iter()
        .map(|(k, s)| format!("{} {}", k.name(), s.name()))
        .collect();
    let _ = writeln!(out, "  namespaces         {}", ns.join(", "));
    let caps = &c.capabilities;
    out.push_str("  capabilities\n");
    for (set, mask) in [
        ("bounding", caps.bounding),
        ("permitted", caps.permitted),
        ("effective", caps.effective),
        ("inheritable", caps.inheritable),
        ("ambient", caps.ambient),
    ] {
        let _ = writeln!(out, "    {set:<16} {}", mask_line(mask));
    }
    let _ = writeln!(
        out,
        "  no_new_privs       {}",
        if c.no_new_privs { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "  landlock           {}",
        if c.landlock {
            "own domain (cannot trace its siblings)"
        } else {
            "no"
        }
    );
    seccomp(out, &c.seccomp);
    out.push_str("  mounts\n");
    for m in &c.mounts {
        let mut line = format!("    {:<22} {}", m.target, m.kind);
        if let Some(src) = &m.source {
            if m.kind == "bind" {
                let _ = write!(line, " {src}");
            }
        }
        if !m.flags.is_empty() {
            let _ = write!(line, " ({})", m.flags.join(","));
        }
        if let Some(opts) = &m.options {
            let _ = write!(line, " {opts}");
        }
        out.push_str(&line);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "  read-only root     {}",
        if c.readonly_rootfs { "yes" } else { "no" }
    );
    let masked: Vec<&str> = c.masked_paths.iter().map(String::as_str).collect();
    wrapped(out, "  masked paths       ", &masked, ", ", 21);
    let ro: Vec<&str> = c.readonly_paths.iter().map(String::as_str).collect();
    wrapped(out, "  read-only paths    ", &ro, ", ", 21);
    if !c.secrets.is_empty() {
        let _ = writeln!(
            out,
            "  secrets            {} (under /run/secrets, mode 0400)",
            c.secrets.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  cgroup             {}",
        limits(&c.limits, "the task's")
    );
}

fn seccomp(out: &mut String, s: &SeccompExplanation) {
    let programs: Vec<String> = s
        .programs
        .iter()
        .map(|(k, n)| format!("{k} ({n} instructions)"))
        .collect();
    let _ = writeln!(
        out,
        "  seccomp            {} profile, default action {}; programs: {}",
        if s.default_profile {
            "default"
        } else {
            "custom"
        },
        action_text(s.default_action),
        programs.join(", ")
    );
    wrapped(
        out,
        &format!("    allowed ({}): ", s.allowed.len()),
        &s.allowed,
        " ",
        6,
    );
    for (action, names) in &s.refused {
        wrapped(
            out,
            &format!("    refused, {}: ", action_text(*action)),
            names,
            " ",
            6,
        );
    }
    if !s.argument_filtered.is_empty() {
        let _ = writeln!(out, "    argument-filtered:");
        for line in &s.argument_filtered {
            let _ = writeln!(out, "      {line}");
        }
    }
}
