//! The JSON form of an explanation (`tasksandbox.explain/v1`, documented in
//! `docs/explain-schema.md`).

use serde_json::{json, Value};

use super::seccomp::errno_name;
use super::text::cap_names;
use super::*;
use crate::seccomp::Action;

fn limits(l: &Limits) -> Value {
    json!({
        "cpu_units": l.cpu_units,
        "cpu_share_units": l.cpu_share_units,
        "memory_bytes": l.memory_bytes,
        "memory_reservation_bytes": l.memory_reservation_bytes,
        "pids_max": l.pids_max,
    })
}

fn caps(mask: u64) -> Value {
    json!({ "mask": format!("{mask:016x}"), "names": cap_names(mask) })
}

fn action(a: Action) -> Value {
    match a {
        Action::Errno(e) => json!({ "action": "errno", "errno": e, "errno_name": errno_name(e) }),
        Action::Allow => json!({ "action": "allow" }),
        Action::KillProcess => json!({ "action": "kill_process" }),
        Action::KillThread => json!({ "action": "kill_thread" }),
        Action::Trap => json!({ "action": "trap" }),
        Action::Log => json!({ "action": "log" }),
    }
}

fn stdio(s: &StdioTarget) -> Value {
    match s {
        StdioTarget::Inherit => json!("inherit"),
        StdioTarget::Null => json!("null"),
        StdioTarget::Piped => json!("piped"),
        StdioTarget::Log => json!("log"),
        StdioTarget::File(p) => json!({ "file": p }),
    }
}

impl Explanation {
    /// The explanation as a JSON document of schema [`SCHEMA`]
    /// (`tasksandbox.explain/v1`), described in `docs/explain-schema.md`.
    pub fn to_json(&self) -> Value {
        let t = &self.task;
        let mut task = json!({
            "user_namespace": t.id_map.map(|m| json!({
                "uid_map": [{ "container": 0, "host": m.host_uid, "count": m.count }],
                "gid_map": [{ "container": 0, "host": m.host_gid, "count": m.count }],
            })),
            "pid_mode": match t.pid_mode { PidMode::Task => "task", PidMode::Container => "container" },
            "hostname": t.hostname,
            "cgroup": limits(&t.limits),
            "nofile": t.nofile,
            "stop_timeout_secs": t.stop_timeout.as_secs(),
            "ephemeral_storage_bytes": t.ephemeral_storage_bytes,
            "ephemeral_storage_in_memory": t.ephemeral_storage_in_memory,
            "enforcement": if t.best_effort { "best_effort" } else { "required" },
            "not_enforced": t.not_enforced,
        });
        if let (Some(netns), Some(obj)) = (&t.network_namespace, task.as_object_mut()) {
            obj.insert("network_namespace".into(), json!(netns));
        }
        let containers: Vec<Value> = self.containers.iter().map(container).collect();
        json!({
            "schema": SCHEMA,
            "task": task,
            "containers": containers,
        })
    }

    /// [`Explanation::to_json`] as pretty-printed text, with a final newline.
    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn container(c: &ContainerExplanation) -> Value {
    let namespaces: serde_json::Map<String, Value> = c
        .namespaces
        .iter()
        .map(|(k, s)| (k.name().to_string(), json!(s.name())))
        .collect();
    let s = &c.seccomp;
    let seccomp = json!({
        "profile": if s.default_profile { "default" } else { "custom" },
        "default_action": action(s.default_action),
        "programs": s.programs.iter().map(|(k, n)| json!({ "kind": k.to_string(), "instructions": n })).collect::<Vec<_>>(),
        "allowed": s.allowed,
        "refused": s.refused.iter().map(|(a, names)| json!({ "action": action(*a), "syscalls": names })).collect::<Vec<_>>(),
        "argument_filtered": s.argument_filtered,
    });
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| {
            json!({
                "target": m.target,
                "kind": m.kind,
                "source": m.source,
                "flags": m.flags,
                "options": m.options,
            })
        })
        .collect();
    json!({
        "name": c.name,
        "command": c.command,
        "user": { "uid": c.user.uid, "gid": c.user.gid },
        "working_dir": c.working_dir,
        "essential": c.essential,
        "depends_on": c.depends_on.iter().map(|(n, cond)| json!({ "container": n, "condition": cond.to_string() })).collect::<Vec<_>>(),
        "health_check": c.health_check,
        "stdio": { "stdin": stdio(&c.stdio[0]), "stdout": stdio(&c.stdio[1]), "stderr": stdio(&c.stdio[2]) },
        "namespaces": namespaces,
        "capabilities": {
            "bounding": caps(c.capabilities.bounding),
            "permitted": caps(c.capabilities.permitted),
            "effective": caps(c.capabilities.effective),
            "inheritable": caps(c.capabilities.inheritable),
            "ambient": caps(c.capabilities.ambient),
        },
        "no_new_privs": c.no_new_privs,
        "landlock": c.landlock,
        "seccomp": seccomp,
        "mounts": mounts,
        "masked_paths": c.masked_paths,
        "readonly_paths": c.readonly_paths,
        "readonly_rootfs": c.readonly_rootfs,
        "secrets": c.secrets,
        "cgroup": limits(&c.limits),
    })
}
