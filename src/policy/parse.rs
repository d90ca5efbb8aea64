//! From TOML text to the typed policy, keeping the place of every key and value.
//!
//! The text is parsed by the `toml` crate's spanned document parser
//! ([`toml::de::DeTable::parse`]), which keeps the byte range of every key and every
//! value, including keys no schema knows and values of the wrong type. The document is
//! then walked by hand, table by table: each table's keys are checked against the keys
//! of that place (`privileged` first, then the keys Fargate rejects, then unknown
//! keys), each value's type and range against the key's. A derived deserializer would
//! stop at the first unknown field with the span of the enclosing table at best; the
//! walk puts every error on the key or value it is about, with its key path.

use std::collections::HashMap;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::Spanned;

use super::error::{PolicyError, PolicyErrorKind};
use super::model::*;
use crate::capabilities::{Capability, CapabilityError};
use crate::container::{Condition, User};
use crate::lifecycle::PidMode;

type Value<'i> = Spanned<DeValue<'i>>;
type Res<T> = Result<T, PolicyError>;

/// Where each key path's key and value are in the text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    map: HashMap<String, (Range<usize>, Range<usize>)>,
}

impl Spans {
    /// The value's span at `path`, or the nearest enclosing path that has one.
    pub(crate) fn find(&self, path: &str) -> Option<(String, Range<usize>)> {
        let mut path = path.to_string();
        loop {
            if let Some((_, value)) = self.map.get(&path) {
                return Some((path, value.clone()));
            }
            let cut = path.rfind(['.', '['])?;
            path.truncate(cut);
        }
    }

    fn insert(&mut self, path: &str, key: Range<usize>, value: Range<usize>) {
        self.map.insert(path.to_string(), (key, value));
    }
}

/// What the text holds.
pub(crate) struct Parsed {
    pub task: TaskPolicy,
    pub containers: Vec<ContainerPolicy>,
    pub spans: Spans,
}

/// Keys refused wherever they appear, with why. `privileged` is refused before these,
/// by [`first_privileged`].
const REJECTED: &[(&str, &str)] = &[
    ("devices", "Fargate gives containers no host devices, and neither does a policy"),
    ("shared_memory_size", "Fargate does not accept it; /dev/shm is a 64 MiB tmpfs"),
    ("tmpfs", "Fargate does not accept linuxParameters.tmpfs; use `mounts = [{ ephemeral = true, destination = \"...\" }]` for the task's ephemeral storage"),
    ("docker_security_options", "Fargate does not accept it; use `seccomp` and `capabilities`"),
    ("disable_networking", "Fargate does not accept it; the task's network namespace already holds only loopback"),
    ("dns_servers", "Fargate does not accept it; the task has no network beyond loopback"),
    ("dns_search_domains", "Fargate does not accept it; the task has no network beyond loopback"),
    ("extra_hosts", "Fargate does not accept it; /etc/hosts names only localhost and the task's hostname"),
    ("gpu", "Fargate has no GPUs, and a task gets no host devices"),
    ("ipc_mode", "Fargate does not accept it; the containers of a task share one IPC namespace of their own"),
    ("links", "Fargate does not accept it; the containers of a task reach each other on localhost"),
    ("max_swap", "Fargate does not accept it; tasks run without swap"),
    ("swappiness", "Fargate does not accept it; tasks run without swap"),
    ("network_mode", "a task always has its own network namespace holding only loopback; there is no other mode"),
    ("system_controls", "the crate sets no sysctls"),
    ("linux_parameters", "write `capabilities` directly in the container; Fargate's other linuxParameters (devices, tmpfs, sharedMemorySize, maxSwap, swappiness) are refused"),
    ("user_namespace", "the user namespace is the embedding runtime's choice (`TaskSandboxBuilder::user_namespace`), not the policy's"),
];

const TOP_KEYS: &[&str] = &["version", "task", "container"];
const TASK_KEYS: &[&str] = &[
    "cpu",
    "memory",
    "fargate",
    "pid_mode",
    "ephemeral_storage_gib",
    "stop_timeout_secs",
    "pids_limit",
    "hostname",
];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "rootfs",
    "command",
    "env",
    "user",
    "working_dir",
    "essential",
    "depends_on",
    "readonly_rootfs",
    "hostname",
    "ulimits",
    "capabilities",
    "seccomp",
    "mounts",
    "secrets",
    "health_check",
    "stdin",
    "stdout",
    "stderr",
    "cpu",
    "memory",
    "memory_reservation",
    "start_timeout_secs",
];

/// The largest number of seconds a duration key takes (a day).
const MAX_SECS: u64 = 86_400;

struct Cx<'a> {
    file: &'a Path,
    src: &'a str,
    spans: Spans,
}

/// The keys of one table, checked, in the order of the text.
struct Fields<'a, 'i> {
    path: String,
    span: Range<usize>,
    entries: Vec<(&'a str, &'a Value<'i>)>,
}

impl<'a, 'i> Fields<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `pidMode` → `pid_mode`.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(key: &str, expected: &[&'static str]) -> Option<&'static str> {
    let snake = snake_case(key);
    if let Some(exact) = expected.iter().find(|k| **k == snake) {
        return Some(exact);
    }
    // `interval` for `interval_secs`: the key without its unit.
    if let Some(with_unit) = expected.iter().find(|k| {
        k.strip_prefix(snake.as_str())
            .is_some_and(|rest| rest.starts_with('_'))
    }) {
        return Some(with_unit);
    }
    expected
        .iter()
        .map(|k| (edit_distance(&snake, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl<'a> Cx<'a> {
    fn err(&self, span: Range<usize>, path: &str, kind: PolicyErrorKind) -> PolicyError {
        PolicyError::at(self.file, self.src, span, path, kind)
    }

    fn invalid(&self, v: &Value<'_>, path: &str, msg: impl Into<String>) -> PolicyError {
        self.err(v.span(), path, PolicyErrorKind::Invalid(msg.into()))
    }

    fn wrong_type(&self, v: &Value<'_>, path: &str, expected: &'static str) -> PolicyError {
        self.err(
            v.span(),
            path,
            PolicyErrorKind::WrongType {
                expected,
                found: type_name(v.get_ref()),
            },
        )
    }

    /// Checks the keys of the table `v` at `path` against `allowed`.
    fn fields<'v, 'i>(
        &mut self,
        v: &'v Value<'i>,
        path: &str,
        allowed: &[&'static str],
    ) -> Res<Fields<'v, 'i>> {
        let DeValue::Table(table) = v.get_ref() else {
            return Err(self.wrong_type(v, path, "a table"));
        };
        self.table_fields(table, v.span(), path, allowed)
    }

    fn table_fields<'v, 'i>(
        &mut self,
        table: &'v DeTable<'i>,
        span: Range<usize>,
        path: &str,
        allowed: &[&'static str],
    ) -> Res<Fields<'v, 'i>> {
        let mut entries: Vec<(&'v Spanned<DeString<'i>>, &'v Value<'i>)> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in &entries {
            let key: &str = k.get_ref();
            let key_path = join(path, key);
            if allowed.contains(&key) {
                self.spans.insert(&key_path, k.span(), v.span());
                continue;
            }
            let snake = snake_case(key);
            if let Some((name, reason)) = REJECTED.iter().find(|(name, _)| *name == snake) {
                return Err(self.err(
                    k.span(),
                    &key_path,
                    PolicyErrorKind::Rejected {
                        key: (*name).to_string(),
                        reason,
                    },
                ));
            }
            return Err(self.err(
                k.span(),
                &key_path,
                PolicyErrorKind::UnknownKey {
                    key: key.to_string(),
                    expected: allowed.to_vec(),
                    suggestion: suggest(key, allowed),
                },
            ));
        }
        Ok(Fields {
            path: path.to_string(),
            span,
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.get_ref().as_ref(), v))
                .collect(),
        })
    }

    fn missing(
        &self,
        fields: &Fields<'_, '_>,
        key: &'static str,
        why: &'static str,
    ) -> PolicyError {
        self.err(
            fields.span.clone(),
            &fields.path,
            PolicyErrorKind::Missing { key, why },
        )
    }

    fn string(&self, v: &Value<'_>, path: &str) -> Res<String> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.wrong_type(v, path, "a string")),
        }
    }

    fn boolean(&self, v: &Value<'_>, path: &str) -> Res<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(v, path, "a boolean (true or false)")),
        }
    }

    fn uint(&self, v: &Value<'_>, path: &str, range: RangeInclusive<u64>, unit: &str) -> Res<u64> {
        let DeValue::Integer(i) = v.get_ref() else {
            return Err(self.wrong_type(v, path, "an integer"));
        };
        let digits = i.as_str().replace('_', "");
        let value = i128::from_str_radix(&digits, i.radix())
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| range.contains(n));
        value.ok_or_else(|| {
            self.invalid(
                v,
                path,
                format!(
                    "{i} is out of range: it must be {}..={}{unit}",
                    range.start(),
                    range.end()
                ),
            )
        })
    }

    fn u32(&self, v: &Value<'_>, path: &str, range: RangeInclusive<u32>, unit: &str) -> Res<u32> {
        let n = self.uint(
            v,
            path,
            u64::from(*range.start())..=u64::from(*range.end()),
            unit,
        )?;
        // In range, so it fits.
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn array<'v, 'i>(
        &self,
        v: &'v Value<'i>,
        path: &str,
        what: &'static str,
    ) -> Res<&'v DeArray<'i>> {
        match v.get_ref() {
            DeValue::Array(a) => Ok(a),
            _ => Err(self.wrong_type(v, path, what)),
        }
    }

    /// An array's elements with their key paths, recorded.
    fn elements<'v, 'i>(
        &mut self,
        v: &'v Value<'i>,
        path: &str,
        what: &'static str,
    ) -> Res<Vec<(String, &'v Value<'i>)>> {
        let array = self.array(v, path, what)?;
        Ok(array
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = format!("{path}[{i}]");
                self.spans.insert(&p, item.span(), item.span());
                (p, item)
            })
            .collect())
    }

    fn strings(&mut self, v: &Value<'_>, path: &str) -> Res<Vec<String>> {
        self.elements(v, path, "an array of strings")?
            .into_iter()
            .map(|(p, item)| self.string(item, &p))
            .collect()
    }

    fn path_value(&self, v: &Value<'_>, path: &str) -> Res<PathBuf> {
        let s = self.string(v, path)?;
        if s.is_empty() {
            return Err(self.invalid(v, path, "the path is empty"));
        }
        Ok(PathBuf::from(s))
    }
}

/// Parses `src`, the text of `file`.
pub(crate) fn parse(file: &Path, src: &str) -> Res<Parsed> {
    let mut cx = Cx {
        file,
        src,
        spans: Spans::default(),
    };
    // Nesting deeper than any policy needs is refused before the toml crate, which
    // recurses once per level, could run a small thread's stack out.
    if let Some(at) = crate::nesting::too_deep(src, MAX_NESTING) {
        return Err(cx.err(
            at..at + 1,
            "",
            PolicyErrorKind::Syntax(format!(
                "arrays and inline tables nest at most {MAX_NESTING} deep in a policy"
            )),
        ));
    }
    let doc = DeTable::parse(src).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(
            span,
            "",
            PolicyErrorKind::Syntax(e.message().trim().to_string()),
        )
    })?;
    // `privileged` is refused wherever it is, before any other mistake is reported:
    // the one refusal that matters most must not hide behind a typo elsewhere.
    if let Some((span, path)) = first_privileged(doc.get_ref()) {
        return Err(cx.err(span, &path, PolicyErrorKind::Privileged));
    }
    let top = cx.table_fields(doc.get_ref(), 0..0, "", TOP_KEYS)?;
    if let Some(v) = top.get("version") {
        cx.uint(v, "version", 1..=1, " (the only version of the format)")?;
    }
    let task = match top.get("task") {
        Some(v) => task(&mut cx, v)?,
        None => TaskPolicy::default(),
    };
    let Some(list) = top.get("container") else {
        return Err(cx.err(
            0..0,
            "",
            PolicyErrorKind::Missing {
                key: "container",
                why: "a task needs at least one [[container]]",
            },
        ));
    };
    let mut containers = Vec::new();
    for (path, item) in cx.elements(list, "container", "an array of tables ([[container]])")? {
        containers.push(container(&mut cx, item, &path)?);
    }
    if containers.is_empty() {
        return Err(cx.invalid(list, "container", "a task needs at least one container"));
    }
    Ok(Parsed {
        task,
        containers,
        spans: cx.spans,
    })
}

/// How deep arrays and inline tables may nest (`[` and `{` outside strings and
/// comments, table headers included). The format's keys need 2 (`health_check = {
/// command = [..] }`, `mounts = [{ .. }]`); the toml crate's own limit is far higher,
/// and in a debug build costs a few KiB of stack per level.
const MAX_NESTING: usize = 32;

/// The first `privileged` key of the document in the order of the text, at any depth
/// (any case: `Privileged` too), with its key path. Walked with an explicit stack, not
/// recursion. The names of environment variables (`env`) are not keys of the format
/// and are not looked at.
fn first_privileged(doc: &DeTable<'_>) -> Option<(Range<usize>, String)> {
    enum Node<'a, 'i> {
        Table(&'a DeTable<'i>),
        Array(&'a DeArray<'i>),
    }
    let mut stack = vec![(Node::Table(doc), String::new())];
    let mut first: Option<(Range<usize>, String)> = None;
    while let Some((node, path)) = stack.pop() {
        match node {
            Node::Table(table) => {
                for (k, v) in table.iter() {
                    let key: &str = k.get_ref();
                    let child = join(&path, key);
                    if key.eq_ignore_ascii_case("privileged")
                        && first.as_ref().is_none_or(|(s, _)| k.span().start < s.start)
                    {
                        first = Some((k.span(), child.clone()));
                    }
                    if key == "env" {
                        continue;
                    }
                    match v.get_ref() {
                        DeValue::Table(t) => stack.push((Node::Table(t), child)),
                        DeValue::Array(a) => stack.push((Node::Array(a), child)),
                        _ => {}
                    }
                }
            }
            Node::Array(array) => {
                for (i, v) in array.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    match v.get_ref() {
                        DeValue::Table(t) => stack.push((Node::Table(t), child)),
                        DeValue::Array(a) => stack.push((Node::Array(a), child)),
                        _ => {}
                    }
                }
            }
        }
    }
    first
}

fn task(cx: &mut Cx<'_>, v: &Value<'_>) -> Res<TaskPolicy> {
    let f = cx.fields(v, "task", TASK_KEYS)?;
    let mut t = TaskPolicy::default();
    if let Some(v) = f.get("fargate") {
        t.fargate = cx.boolean(v, &f.path("fargate"))?;
    }
    if let Some(v) = f.get("cpu") {
        t.cpu = Some(cx.u32(
            v,
            &f.path("cpu"),
            1..=crate::size::MAX_CPU_UNITS,
            " CPU units",
        )?);
    }
    if let Some(v) = f.get("memory") {
        t.memory = Some(cx.uint(
            v,
            &f.path("memory"),
            crate::size::MIN_MEMORY_MIB..=1 << 40,
            " MiB",
        )?);
    }
    if let Some(v) = f.get("pid_mode") {
        let path = f.path("pid_mode");
        t.pid_mode = match cx.string(v, &path)?.as_str() {
            "task" => PidMode::Task,
            "container" => PidMode::Container,
            other => {
                return Err(cx.invalid(
                    v,
                    &path,
                    format!(
                        "pid_mode {other:?} is not accepted: \"task\" shares one pid namespace among the task's containers, \"container\" (the default) gives each its own; as on Fargate, never the host's"
                    ),
                ))
            }
        };
    }
    if let Some(v) = f.get("ephemeral_storage_gib") {
        let path = f.path("ephemeral_storage_gib");
        let range = if t.fargate { 20..=200 } else { 1..=1024 };
        let unit = if t.fargate {
            " GiB on Fargate (set `fargate = false` for other sizes)"
        } else {
            " GiB"
        };
        t.ephemeral_storage_gib = Some(cx.uint(v, &path, range, unit)?);
    }
    if let Some(v) = f.get("stop_timeout_secs") {
        let max = crate::task::MAX_STOP_TIMEOUT.as_secs();
        t.stop_timeout_secs =
            Some(cx.uint(v, &f.path("stop_timeout_secs"), 0..=max, " seconds")?);
    }
    if let Some(v) = f.get("pids_limit") {
        t.pids_limit = Some(cx.uint(v, &f.path("pids_limit"), 1..=u64::from(u32::MAX), "")?);
    }
    if let Some(v) = f.get("hostname") {
        t.hostname = Some(cx.string(v, &f.path("hostname"))?);
    }
    Ok(t)
}

fn container(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<ContainerPolicy> {
    let f = cx.fields(v, path, CONTAINER_KEYS)?;
    let name = match f.get("name") {
        Some(v) => cx.string(v, &f.path("name"))?,
        None => return Err(cx.missing(&f, "name", "every container needs a name")),
    };
    let mut c = ContainerPolicy::new(name);
    match f.get("command") {
        Some(v) => {
            let p = f.path("command");
            c.command = cx.strings(v, &p)?;
            if c.command.first().is_none_or(String::is_empty) {
                return Err(cx.invalid(v, &p, "the command is empty"));
            }
        }
        None => {
            return Err(cx.missing(
                &f,
                "command",
                "what the container runs, as an array: [\"/bin/app\", \"--flag\"]",
            ))
        }
    }
    if let Some(v) = f.get("rootfs") {
        c.rootfs = Some(cx.path_value(v, &f.path("rootfs"))?);
    }
    if let Some(v) = f.get("env") {
        let p = f.path("env");
        let DeValue::Table(table) = v.get_ref() else {
            return Err(cx.wrong_type(v, &p, "a table of strings ({ NAME = \"value\" })"));
        };
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, val) in entries {
            let kp = format!("{p}.{}", k.get_ref());
            cx.spans.insert(&kp, k.span(), val.span());
            let value = cx.string(val, &kp)?;
            c.env.insert(k.get_ref().to_string(), value);
        }
    }
    if let Some(v) = f.get("user") {
        c.user = Some(user(cx, v, &f.path("user"))?);
    }
    if let Some(v) = f.get("working_dir") {
        c.working_dir = Some(cx.string(v, &f.path("working_dir"))?);
    }
    if let Some(v) = f.get("essential") {
        c.essential = cx.boolean(v, &f.path("essential"))?;
    }
    if let Some(v) = f.get("depends_on") {
        for (p, item) in cx.elements(v, &f.path("depends_on"), "an array of tables")? {
            let d = cx.fields(item, &p, &["container", "condition"])?;
            let Some(target) = d.get("container") else {
                return Err(cx.missing(&d, "container", "the name of the container depended on"));
            };
            let target = cx.string(target, &d.path("container"))?;
            let condition = match d.get("condition") {
                None => Condition::Start,
                Some(v) => {
                    let cp = d.path("condition");
                    match cx.string(v, &cp)?.as_str() {
                        "START" => Condition::Start,
                        "COMPLETE" => Condition::Complete,
                        "SUCCESS" => Condition::Success,
                        "HEALTHY" => Condition::Healthy,
                        other => {
                            return Err(cx.invalid(
                                v,
                                &cp,
                                format!("condition {other:?} is not one of START, COMPLETE, SUCCESS, HEALTHY"),
                            ))
                        }
                    }
                }
            };
            c.depends_on.push((target, condition));
        }
    }
    if let Some(v) = f.get("readonly_rootfs") {
        c.readonly_rootfs = cx.boolean(v, &f.path("readonly_rootfs"))?;
    }
    if let Some(v) = f.get("hostname") {
        c.hostname = Some(cx.string(v, &f.path("hostname"))?);
    }
    if let Some(v) = f.get("ulimits") {
        c.nofile = ulimits(cx, v, &f.path("ulimits"))?;
    }
    if let Some(v) = f.get("capabilities") {
        c.capabilities = capabilities(cx, v, &f.path("capabilities"))?;
    }
    if let Some(v) = f.get("seccomp") {
        let p = f.path("seccomp");
        c.seccomp = match cx.string(v, &p)?.as_str() {
            "default" => SeccompSource::Default,
            "unconfined" => {
                return Err(cx.err(
                    v.span(),
                    &p,
                    PolicyErrorKind::Rejected {
                        key: "seccomp = \"unconfined\"".into(),
                        reason: "every container runs under a seccomp profile: \"default\" or a Docker/OCI JSON profile file",
                    },
                ))
            }
            "" => return Err(cx.invalid(v, &p, "seccomp is empty: \"default\" or the path of a Docker/OCI JSON profile")),
            path => SeccompSource::File(PathBuf::from(path)),
        };
    }
    if let Some(v) = f.get("mounts") {
        for (p, item) in cx.elements(v, &f.path("mounts"), "an array of tables")? {
            c.mounts.push(mount(cx, item, &p)?);
        }
    }
    if let Some(v) = f.get("secrets") {
        for (p, item) in cx.elements(v, &f.path("secrets"), "an array of tables")? {
            c.secrets.push(secret(cx, item, &p)?);
        }
    }
    if let Some(v) = f.get("health_check") {
        c.health_check = Some(health_check(cx, v, &f.path("health_check"))?);
    }
    for (key, slot) in [
        ("stdin", &mut c.stdin),
        ("stdout", &mut c.stdout),
        ("stderr", &mut c.stderr),
    ] {
        if let Some(v) = f.get(key) {
            *slot = stdio(cx, v, &f.path(key), key == "stdin")?;
        }
    }
    if let Some(v) = f.get("cpu") {
        c.cpu = Some(cx.u32(
            v,
            &f.path("cpu"),
            1..=crate::size::MAX_CPU_UNITS,
            " CPU units",
        )?);
    }
    if let Some(v) = f.get("memory") {
        c.memory = Some(cx.uint(
            v,
            &f.path("memory"),
            crate::size::MIN_MEMORY_MIB..=1 << 40,
            " MiB",
        )?);
    }
    if let Some(v) = f.get("memory_reservation") {
        c.memory_reservation = Some(cx.uint(
            v,
            &f.path("memory_reservation"),
            crate::size::MIN_MEMORY_MIB..=1 << 40,
            " MiB",
        )?);
    }
    if let Some(v) = f.get("start_timeout_secs") {
        let max = crate::task::MAX_START_TIMEOUT.as_secs();
        c.start_timeout_secs =
            Some(cx.uint(v, &f.path("start_timeout_secs"), 1..=max, " seconds")?);
    }
    Ok(c)
}

fn user(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<User> {
    match v.get_ref() {
        DeValue::String(s) => s.parse::<User>().map_err(|_| {
            cx.invalid(
                v,
                path,
                format!("{s:?} is not \"uid\" or \"uid:gid\" with numeric ids"),
            )
        }),
        DeValue::Integer(_) => {
            let uid = cx.u32(v, path, 0..=u32::MAX, "")?;
            Ok(User::new(uid, uid))
        }
        DeValue::Table(_) => {
            let f = cx.fields(v, path, &["uid", "gid"])?;
            let Some(uid) = f.get("uid") else {
                return Err(cx.missing(&f, "uid", "the numeric user id"));
            };
            let uid = cx.u32(uid, &f.path("uid"), 0..=u32::MAX, "")?;
            let gid = match f.get("gid") {
                Some(g) => cx.u32(g, &f.path("gid"), 0..=u32::MAX, "")?,
                None => uid,
            };
            Ok(User::new(uid, gid))
        }
        _ => Err(cx.wrong_type(v, path, "\"uid:gid\", a uid, or { uid, gid }")),
    }
}

fn ulimits(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<Option<u64>> {
    let mut nofile = None;
    for (p, item) in cx.elements(v, path, "an array of tables")? {
        let f = cx.fields(item, &p, &["name", "soft", "hard"])?;
        let Some(name) = f.get("name") else {
            return Err(cx.missing(&f, "name", "the limit's name: \"nofile\""));
        };
        let np = f.path("name");
        if cx.string(name, &np)? != "nofile" {
            return Err(cx.invalid(
                name,
                &np,
                "only the \"nofile\" ulimit can be set (Fargate's default is 65535)",
            ));
        }
        if nofile.is_some() {
            return Err(cx.invalid(name, &np, "\"nofile\" is set twice"));
        }
        let max = crate::task::MAX_NOFILE;
        let (Some(soft), Some(hard)) = (f.get("soft"), f.get("hard")) else {
            return Err(cx.missing(
                &f,
                if f.get("soft").is_none() {
                    "soft"
                } else {
                    "hard"
                },
                "both limits, equal",
            ));
        };
        let soft_n = cx.uint(soft, &f.path("soft"), 1..=max, "")?;
        let hard_n = cx.uint(hard, &f.path("hard"), 1..=max, "")?;
        if soft_n != hard_n {
            return Err(cx.invalid(
                soft,
                &f.path("soft"),
                format!("soft ({soft_n}) must equal hard ({hard_n}): the task sets one nofile limit as both"),
            ));
        }
        nofile = Some(soft_n);
    }
    Ok(nofile)
}

fn capabilities(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<CapabilitiesPolicy> {
    let f = cx.fields(v, path, &["add", "drop"])?;
    let mut caps = CapabilitiesPolicy::default();
    if let Some(v) = f.get("drop") {
        for (p, item) in cx.elements(v, &f.path("drop"), "an array of capability names")? {
            let name = cx.string(item, &p)?;
            if name.eq_ignore_ascii_case("ALL") {
                caps.drop_all = true;
                continue;
            }
            match Capability::from_name(&name) {
                Ok(cap) => {
                    if !caps.drop.contains(&cap) {
                        caps.drop.push(cap);
                    }
                }
                // A real capability the task could never hold: dropping it is a no-op.
                Err(CapabilityError::NotAllowed { .. }) => {}
                Err(e) => return Err(cx.err(item.span(), &p, PolicyErrorKind::Capability(e))),
            }
        }
    }
    caps.drop.sort_by_key(|c| c.number());
    if let Some(v) = f.get("add") {
        for (p, item) in cx.elements(v, &f.path("add"), "an array of capability names")? {
            let name = cx.string(item, &p)?;
            let refuse = |name: String, default: bool| {
                cx.err(
                    item.span(),
                    &p,
                    PolicyErrorKind::CapabilityNotAddable { name, default },
                )
            };
            match Capability::from_name(&name) {
                Ok(Capability::SysPtrace) => caps.add_sys_ptrace = true,
                Ok(cap) => return Err(refuse(cap.name(), true)),
                Err(CapabilityError::NotAllowed { name }) => return Err(refuse(name, false)),
                Err(_) if name.eq_ignore_ascii_case("ALL") => {
                    return Err(refuse("ALL".into(), false))
                }
                Err(e) => return Err(cx.err(item.span(), &p, PolicyErrorKind::Capability(e))),
            }
        }
    }
    Ok(caps)
}

fn mount(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<MountPolicy> {
    let f = cx.fields(
        v,
        path,
        &["source", "destination", "read_only", "ephemeral"],
    )?;
    let ephemeral = match f.get("ephemeral") {
        Some(e) => cx.boolean(e, &f.path("ephemeral"))?,
        None => false,
    };
    let Some(dest) = f.get("destination") else {
        return Err(cx.missing(&f, "destination", "the absolute path inside the container"));
    };
    let destination = cx.path_value(dest, &f.path("destination"))?;
    if ephemeral {
        if let Some(s) = f.get("source") {
            return Err(cx.invalid(
                s,
                &f.path("source"),
                "an ephemeral mount is the task's ephemeral storage: it has no source",
            ));
        }
        if let Some(r) = f.get("read_only") {
            if cx.boolean(r, &f.path("read_only"))? {
                return Err(cx.invalid(
                    r,
                    &f.path("read_only"),
                    "the task's ephemeral storage is always writable",
                ));
            }
        }
        return Ok(MountPolicy::Ephemeral { destination });
    }
    let Some(src) = f.get("source") else {
        return Err(cx.missing(
            &f,
            "source",
            "the host path to bind (or `ephemeral = true` for the task's ephemeral storage)",
        ));
    };
    let source = cx.path_value(src, &f.path("source"))?;
    let read_only = match f.get("read_only") {
        Some(r) => cx.boolean(r, &f.path("read_only"))?,
        None => true,
    };
    Ok(MountPolicy::Bind {
        source,
        destination,
        read_only,
    })
}

fn secret(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<SecretPolicy> {
    if let DeValue::Table(t) = v.get_ref() {
        if let Some((k, _)) = t.iter().find(|(k, _)| k.get_ref() == "value") {
            return Err(cx.err(
                k.span(),
                &join(path, "value"),
                PolicyErrorKind::Rejected {
                    key: "value".into(),
                    reason: "a secret's value is never written in the policy, which is configuration that gets committed, copied and logged; use value_from = \"env:NAME\" or \"file:PATH\"",
                },
            ));
        }
    }
    let f = cx.fields(v, path, &["name", "value_from"])?;
    let Some(name) = f.get("name") else {
        return Err(cx.missing(&f, "name", "the file name under /run/secrets"));
    };
    let name = cx.string(name, &f.path("name"))?;
    let Some(from) = f.get("value_from") else {
        return Err(cx.missing(
            &f,
            "value_from",
            "where the value comes from: \"env:NAME\" or \"file:PATH\"",
        ));
    };
    let fp = f.path("value_from");
    let text = cx.string(from, &fp)?;
    let value_from = match text.split_once(':') {
        Some(("env", var)) if !var.is_empty() => SecretSource::Env(var.to_string()),
        Some(("file", file)) if !file.is_empty() => SecretSource::File(PathBuf::from(file)),
        _ => {
            return Err(cx.invalid(
                from,
                &fp,
                format!("{text:?} is not \"env:NAME\" (the launcher's environment) or \"file:PATH\" (a host file)"),
            ))
        }
    };
    Ok(SecretPolicy { name, value_from })
}

fn health_check(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Res<HealthCheckPolicy> {
    let f = cx.fields(
        v,
        path,
        &[
            "command",
            "interval_secs",
            "timeout_secs",
            "retries",
            "start_period_secs",
        ],
    )?;
    let Some(cmd) = f.get("command") else {
        return Err(cx.missing(&f, "command", "the check to run, as an array"));
    };
    let cp = f.path("command");
    let mut command = cx.strings(cmd, &cp)?;
    // ECS's forms: ["CMD", argv...] and ["CMD-SHELL", "shell command"].
    match command.first().map(String::as_str) {
        Some("CMD") => {
            command.remove(0);
        }
        Some("CMD-SHELL") => {
            let script = command[1..].join(" ");
            if script.trim().is_empty() {
                return Err(cx.invalid(cmd, &cp, "CMD-SHELL needs a shell command after it"));
            }
            command = vec!["/bin/sh".into(), "-c".into(), script];
        }
        _ => {}
    }
    if command.first().is_none_or(String::is_empty) {
        return Err(cx.invalid(cmd, &cp, "the health check's command is empty"));
    }
    let secs = |cx: &Cx<'_>, key: &str, default: u64, min: u64| -> Res<u64> {
        match f.get(key) {
            Some(v) => cx.uint(v, &f.path(key), min..=MAX_SECS, " seconds"),
            None => Ok(default),
        }
    };
    Ok(HealthCheckPolicy {
        command,
        interval_secs: secs(cx, "interval_secs", 30, 1)?,
        timeout_secs: secs(cx, "timeout_secs", 5, 1)?,
        retries: match f.get("retries") {
            Some(v) => cx.u32(v, &f.path("retries"), 1..=1000, "")?,
            None => 3,
        },
        start_period_secs: secs(cx, "start_period_secs", 0, 0)?,
    })
}

fn stdio(cx: &mut Cx<'_>, v: &Value<'_>, path: &str, input: bool) -> Res<StdioPolicy> {
    let forms = if input {
        "\"inherit\", \"null\" or { file = \"PATH\" }"
    } else {
        "\"inherit\", \"null\", \"log\" or { file = \"PATH\" }"
    };
    match v.get_ref() {
        DeValue::String(s) => match s.as_ref() {
            "inherit" => Ok(StdioPolicy::Inherit),
            "null" => Ok(StdioPolicy::Null),
            "log" if !input => Ok(StdioPolicy::Log),
            other => Err(cx.invalid(v, path, format!("{other:?} is not one of {forms}"))),
        },
        DeValue::Table(_) => {
            let f = cx.fields(v, path, &["file"])?;
            let Some(file) = f.get("file") else {
                return Err(cx.missing(&f, "file", "the host file's path"));
            };
            Ok(StdioPolicy::File(cx.path_value(file, &f.path("file"))?))
        }
        _ => Err(cx.wrong_type(v, path, forms)),
    }
}
