//! The escape suite: the probe (`examples/probe`) tries every known container escape
//! from inside a task, and each technique has a test named after it, so that a
//! regression names the hole.
//!
//! The probe runs once per configuration (the default task, one with the
//! `SYS_PTRACE` opt-in, and a `pid_mode = task` task beside a sibling, with and
//! without the opt-in) and its JSON report is shared by the tests of that
//! configuration; each test fails if its own check fails.
//!
//! A check the probe reports as SKIP (what it looks at does not exist here, or the
//! run gave it nothing to aim at) fails its test too, unless the test confirms from
//! the host's side that the reason holds ([`justified_skip`]): a skip never passes
//! silently where the check could have been made.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;
use tasksandbox::seccomp::{Action, SeccompProfile};
use tasksandbox::{Capabilities, Capability, Condition, Container, PidMode, TaskSandbox, Volume};

/// Docker's default seccomp profile, kept as reference data beside the crate.
#[cfg(feature = "policy")]
const DOCKER_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/docker-default-seccomp.json"
);

/// Where the task sees the setuid copy of the probe.
const SETUID_PROBE: &str = "/suid/probe-setuid";

/// The host uid of the task's root under the default user namespace map.
const TASK_ROOT_ON_HOST: u32 = 100_000;

/// A probe run: its exit status and parsed JSON.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    json: Value,
    /// Whether the probe was told to aim at siblings (`--siblings`).
    siblings: bool,
}

impl Run {
    fn checks(&self) -> BTreeMap<String, &Value> {
        self.json["checks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check(&self, name: &str) -> &Value {
        self.checks().get(name).copied().unwrap_or_else(|| {
            panic!(
                "the probe has no check {name}\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `probe ARGS` in a default task holding `caps`, with a setuid copy of the probe
/// owned by the task's root mounted at /suid.
fn run_probe(caps: Capabilities, args: &[&str]) -> Run {
    let dir = setuid_copy();
    let container = probe(args)
        .capabilities(caps)
        .volume(Volume::bind(dir.path(), "/suid"));
    run_task(TaskSandbox::builder(), container)
}

/// A directory holding a copy of the probe owned by the task's root (host uid 100000)
/// with the setuid bit: were no_new_privs missing, a task user other than root would
/// become root by running it.
fn setuid_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    let copy = dir.path().join("probe-setuid");
    std::fs::copy(example("probe"), &copy).expect("copy the probe");
    std::os::unix::fs::chown(&copy, Some(TASK_ROOT_ON_HOST), Some(TASK_ROOT_ON_HOST))
        .expect("chown the copy");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755))
        .expect("set the setuid bit");
    dir
}

/// Runs the probe `container` in a task built by `builder`; its stdout is JSON.
fn run_task(builder: tasksandbox::TaskSandboxBuilder, container: tasksandbox::Container) -> Run {
    run_built(builder.container(container))
}

/// Runs the task `builder` describes; the stdout of its first container is JSON.
fn run_built(builder: tasksandbox::TaskSandboxBuilder) -> Run {
    let out = output(builder);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}):\n{stdout}\n{stderr}"));
    Run {
        success: out.status.success(),
        stdout,
        stderr,
        json,
        siblings: false,
    }
}

fn check_run(caps: Capabilities) -> Run {
    let pid = std::process::id().to_string();
    run_probe(
        caps,
        &[
            "check",
            "--json",
            "--host-pid",
            &pid,
            "--setuid",
            SETUID_PROBE,
        ],
    )
}

/// The probe's report in a default task (`None` when tasks cannot be started here).
fn default_run() -> Option<&'static Run> {
    static RUN: OnceLock<Run> = OnceLock::new();
    can_start_tasks().then(|| RUN.get_or_init(|| check_run(Capabilities::fargate_default())))
}

/// The probe's report in a task with the `SYS_PTRACE` opt-in.
fn ptrace_run() -> Option<&'static Run> {
    static RUN: OnceLock<Run> = OnceLock::new();
    can_start_tasks()
        .then(|| RUN.get_or_init(|| check_run(Capabilities::fargate_default().with_sys_ptrace())))
}

/// Why a check the probe skipped in `run` could not have been made, as the host
/// confirms it; `None` when the skip is not justified (the check should have run).
fn justified_skip(run: &Run, name: &str) -> Option<String> {
    match name {
        // The task has the host's kernel: the file is absent from both or neither.
        "proc_sysrq_trigger" if !std::path::Path::new("/proc/sysrq-trigger").exists() => {
            Some("this kernel has no /proc/sysrq-trigger".to_string())
        }
        "pid_mode_task_sibling" if !run.siblings => {
            Some("this run has no sibling to aim at".to_string())
        }
        _ => None,
    }
}

/// Whether check `name` held in `run`: it passed, or it was skipped for a reason the
/// host confirms. A skip is noted on stderr.
fn held(run: &Run, name: &str) -> bool {
    let check = run.check(name);
    match check["status"].as_str() {
        Some("pass") => check["pass"] == Value::Bool(true),
        Some("skip") => match justified_skip(run, name) {
            Some(why) => {
                eprintln!("note: {name} skipped ({why}): {}", check["summary"]);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Asserts that check `name` passed in `run` (or was skipped for a reason the host
/// confirms).
fn assert_passes(run: &Run, name: &str) {
    let check = run.check(name);
    assert!(
        held(run, name),
        "{name} {}: the sandbox did not hold, or the check was not made.\n  technique: {}\n  expected:  {}\n  observed:  {}",
        check["status"],
        check["technique"],
        check["expect"],
        check["summary"]
    );
}

/// The checks of `run` that did not hold, with what they observed.
fn failures(run: &Run) -> Vec<String> {
    run.checks()
        .iter()
        .filter(|(name, _)| !held(run, name))
        .map(|(name, c)| format!("{name} ({}): {}", c["status"], c["summary"]))
        .collect()
}

/// What an attempt gave: its result and, for a syscall, the seccomp layer's verdict.
type Outcome = (String, Option<String>);

/// The attempts of a check as `what -> (result, seccomp layer)`.
fn attempts(check: &Value) -> BTreeMap<String, Outcome> {
    check["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    (
                        a["what"].as_str().unwrap_or("").to_string(),
                        (
                            a["result"].as_str().unwrap_or("").to_string(),
                            a["seccomp"].as_str().map(str::to_string),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that every syscall check `name` made was refused by seccomp itself (the
/// layer the README's table names), as the probe's seccomp oracle reports it.
fn assert_seccomp_stops(run: &Run, name: &str) {
    for (what, (result, layer)) in attempts(run.check(name)) {
        if let Some(layer) = layer {
            assert_eq!(
                Some(layer.as_str()),
                Some(format!("seccomp {result}").as_str()),
                "{name}: {what} should be refused by seccomp"
            );
        }
    }
}

/// One test per check of the probe, named after it: it fails if that check fails.
/// Checks whose technique seccomp stops also assert that it is seccomp that stops it.
/// `name @ run` takes the report of `run()` instead of the default task's.
macro_rules! escape_tests {
    ($( $name:ident $(@ $run:ident)? $(=> $layer:ident)? ),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(run) = escape_tests!(@run $($run)?) else { return };
                assert_passes(run, stringify!($name));
                $( escape_tests!(@layer $layer, run, stringify!($name)); )?
            }
        )*
        /// Every test above, by name.
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
    (@run) => { default_run() };
    (@run $run:ident) => { $run() };
    (@layer seccomp, $run:ident, $name:expr) => {
        assert_seccomp_stops($run, $name)
    };
}

escape_tests! {
    capabilities,
    no_new_privs,
    seccomp_mode,
    uid_gid_maps,
    namespaces,
    devices,
    interfaces,
    masked_paths,
    read_only_paths,
    cve_2019_5736_proc_exe,
    cve_2024_21626_leaked_fds_cwd,
    cve_2022_0492_release_agent => seccomp,
    shocker_open_by_handle_at => seccomp,
    cve_2022_0185_fsconfig => seccomp,
    cve_2020_15257_abstract_sockets,
    cve_2021_22555_netfilter_userns,
    proc_sysrq_trigger,
    core_pattern,
    mknod_block_device,
    mount_host_disk => seccomp,
    host_pid_visibility,
    ptrace_host_process,
    pid_mode_task_sibling @ pid_task_run,
    kernel_module_load => seccomp,
    tiocsti => seccomp,
    setuid_escalation,
    nested_user_namespace => seccomp,
    io_uring => seccomp,
    bpf => seccomp,
    perf_event_open => seccomp,
    keyring => seccomp,
    userfaultfd => seccomp,
    af_packet_raw_socket,
    af_vsock_af_alg_sockets => seccomp,
    masked_path_race => seccomp,
    cgroupfs_not_writable => seccomp,
    sysfs_read_only,
    x32_syscalls => seccomp,
    chroot_breakout,
}

#[test]
fn every_check_of_the_probe_has_a_test() {
    let Some(run) = default_run() else { return };
    let checks: BTreeSet<String> = run.checks().into_keys().collect();
    let tested: BTreeSet<String> = TESTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        checks, tested,
        "a check without a test, or a test without a check"
    );
}

#[test]
fn probe_exits_zero_and_its_seccomp_oracle_works() {
    let Some(run) = default_run() else { return };
    assert!(
        run.success,
        "probe check failed in a default task:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(run.json["failed"], 0);
    assert_eq!(run.json["seccomp_oracle"], "ok");
}

#[test]
fn setuid_copy_owned_by_task_root_keeps_the_callers_euid() {
    // The probe ran the setuid copy as uid 65534; with no_new_privs the euid stays.
    let Some(run) = default_run() else { return };
    let tried = attempts(run.check("setuid_escalation"));
    let (what, (result, _)) = tried
        .iter()
        .find(|(what, _)| what.starts_with(&format!("exec {SETUID_PROBE}")))
        .unwrap_or_else(|| panic!("the setuid copy was not tried: {tried:?}"));
    assert!(
        what.contains("(owner 0)"),
        "owned by the task's root: {what}"
    );
    assert!(what.contains("as uid 65534"), "{what}");
    assert_eq!(result, "euid 65534", "{what}");
    // On a nosuid mount the euid would stay anyway: only elsewhere does this show that
    // it is no_new_privs that holds it.
    if what.contains("nosuid") {
        eprintln!("note: {} is on a nosuid mount", env!("CARGO_TARGET_TMPDIR"));
    }
}

#[test]
fn every_check_passes_for_a_non_root_user() {
    // A task user other than root holds no capability; a setuid file of the task's
    // root still does not make it root.
    if !can_start_tasks() {
        return;
    }
    let pid = std::process::id().to_string();
    let dir = setuid_copy();
    let container = probe(&[
        "check",
        "--json",
        "--host-pid",
        &pid,
        "--setuid",
        SETUID_PROBE,
    ])
    .user(tasksandbox::User::new(1000, 1000))
    .volume(Volume::bind(dir.path(), "/suid"));
    let run = run_task(TaskSandbox::builder(), container);
    let failed = failures(&run);
    assert!(failed.is_empty(), "as uid 1000: {failed:#?}");
    assert!(run.success);
    let tried = attempts(run.check("setuid_escalation"));
    let setuid = tried
        .iter()
        .find(|(what, _)| what.starts_with(&format!("exec {SETUID_PROBE}")))
        .map(|(_, (result, _))| result.as_str());
    assert_eq!(setuid, Some("euid 1000"), "{tried:?}");
    let caps = attempts(run.check("capabilities"));
    assert_eq!(
        caps.get("CapEff").map(|r| r.0.as_str()),
        Some("0000000000000000")
    );
}

#[test]
fn host_pid_is_aimed_at() {
    // The checks of the host pid really aimed at this test process.
    let Some(run) = default_run() else { return };
    let pid = std::process::id();
    let tried = attempts(run.check("ptrace_host_process"));
    assert_eq!(
        tried
            .get(&format!("ptrace(PTRACE_ATTACH, {pid})"))
            .map(|r| r.0.as_str()),
        Some("ESRCH")
    );
    assert_eq!(
        tried
            .get(&format!("process_vm_readv({pid}, NULL)"))
            .map(|r| r.0.as_str()),
        Some("ESRCH")
    );
    let seen = attempts(run.check("host_pid_visibility"));
    assert_eq!(
        seen.get(&format!("kill({pid}, 0)")).map(|r| r.0.as_str()),
        Some("ESRCH")
    );
}

#[test]
fn af_packet_raw_socket_without_net_raw() {
    // Row 26 of the table: with NET_RAW dropped, no packet socket at all.
    if !can_start_tasks() {
        return;
    }
    let caps = Capabilities::fargate_default().drop(Capability::NetRaw);
    let run = run_probe(caps, &["check", "--json", "--only", "af_packet_raw_socket"]);
    assert_passes(&run, "af_packet_raw_socket");
    let tried = attempts(run.check("af_packet_raw_socket"));
    assert_eq!(
        tried
            .get("socket(AF_PACKET, SOCK_RAW, 0)")
            .map(|r| r.0.as_str()),
        Some("EPERM"),
        "{tried:?}"
    );
}

// --- The SYS_PTRACE opt-in ---------------------------------------------------------

#[test]
fn sys_ptrace_every_check_still_passes() {
    let Some(run) = ptrace_run() else { return };
    let failed = failures(run);
    assert!(failed.is_empty(), "with SYS_PTRACE: {failed:#?}");
    assert!(run.success);
}

#[test]
fn sys_ptrace_changes_only_the_ptrace_family() {
    let (Some(default), Some(ptrace)) = (default_run(), ptrace_run()) else {
        return;
    };
    let flatten = |run: &Run| -> BTreeMap<String, Outcome> {
        run.checks()
            .iter()
            .flat_map(|(name, check)| {
                attempts(check)
                    .into_iter()
                    .map(move |(what, r)| (format!("{name}: {what}"), r))
            })
            .collect()
    };
    let (a, b) = (flatten(default), flatten(ptrace));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same attempts in both runs"
    );
    let changed: BTreeMap<&String, (&Outcome, &Outcome)> = a
        .iter()
        .filter_map(|(k, va)| b.get(k).filter(|vb| *vb != va).map(|vb| (k, (va, vb))))
        .collect();
    let pid = std::process::id();
    let kcmp = format!("ptrace_host_process: kcmp({pid}, {pid}, KCMP_VM)");
    let expected: BTreeSet<String> = [
        "capabilities: CapBnd".to_string(),
        "capabilities: CapPrm".to_string(),
        "capabilities: CapEff".to_string(),
        kcmp.clone(),
        "ptrace_host_process: pidfd_getfd(-1, 0, 0)".to_string(),
        "ptrace_host_process: process_madvise(-1, NULL, 0, MADV_COLD, 0)".to_string(),
    ]
    .into_iter()
    .collect();
    let got: BTreeSet<String> = changed.keys().map(|k| k.to_string()).collect();
    assert_eq!(got, expected, "changes with SYS_PTRACE: {changed:#?}");
    // The ptrace family now reaches the kernel, which still finds nothing to reach:
    // the host pid does not exist in the task, and -1 is no pidfd.
    let now = |k: &str| b.get(k).cloned().unwrap_or_default();
    assert_eq!(
        now(&kcmp),
        ("ESRCH".to_string(), Some("kernel".to_string()))
    );
    assert_eq!(
        now("ptrace_host_process: pidfd_getfd(-1, 0, 0)"),
        ("EBADF".to_string(), Some("kernel".to_string()))
    );
    assert_eq!(
        now("capabilities: CapEff"),
        (format!("{:016x}", 0xa804_25fb_u64 | 1 << 19), None)
    );
}

// --- pid_mode = task: a sibling in view ----------------------------------------------

/// Runs `probe check --siblings` in a `pid_mode = task` task, beside a sibling
/// container (`sleep`, not essential) that starts first; the probe holds `caps`.
fn pid_task_check(caps: Capabilities) -> Run {
    let pid = std::process::id().to_string();
    let dir = setuid_copy();
    let container = probe(&[
        "check",
        "--json",
        "--host-pid",
        &pid,
        "--setuid",
        SETUID_PROBE,
        "--siblings",
    ])
    .capabilities(caps)
    .volume(Volume::bind(dir.path(), "/suid"))
    .depends_on("sibling", Condition::Start);
    // The probe comes first: its output is the task's.
    let builder = TaskSandbox::builder()
        .pid_mode(PidMode::Task)
        .container(container)
        .container(
            Container::new("sibling")
                .command(["/bin/sleep", "3600"])
                .essential(false),
        );
    let mut run = run_built(builder);
    run.siblings = true;
    run
}

/// The probe's report in a `pid_mode = task` task with the default capabilities.
fn pid_task_run() -> Option<&'static Run> {
    static RUN: OnceLock<Run> = OnceLock::new();
    can_start_tasks().then(|| RUN.get_or_init(|| pid_task_check(Capabilities::fargate_default())))
}

/// The same with the `SYS_PTRACE` opt-in.
fn pid_task_ptrace_run() -> Option<&'static Run> {
    static RUN: OnceLock<Run> = OnceLock::new();
    can_start_tasks().then(|| {
        RUN.get_or_init(|| pid_task_check(Capabilities::fargate_default().with_sys_ptrace()))
    })
}

#[test]
fn pid_mode_task_every_check_passes() {
    let Some(run) = pid_task_run() else { return };
    let failed = failures(run);
    assert!(failed.is_empty(), "pid_mode = task: {failed:#?}");
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.check("pid_mode_task_sibling")["status"], "pass");
}

#[test]
fn pid_mode_task_with_sys_ptrace_every_check_passes() {
    let Some(run) = pid_task_ptrace_run() else {
        return;
    };
    let failed = failures(run);
    assert!(
        failed.is_empty(),
        "pid_mode = task, SYS_PTRACE: {failed:#?}"
    );
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.check("pid_mode_task_sibling")["status"], "pass");
}

/// The sibling's pid (in the task's pid namespace) the probe aimed at, and every
/// attempt of the sibling check.
fn sibling_attempts(run: &Run) -> (i32, BTreeMap<String, Outcome>) {
    let tried = attempts(run.check("pid_mode_task_sibling"));
    let siblings: Vec<i32> = tried
        .keys()
        .filter_map(|k| k.strip_prefix("sibling ")?.parse().ok())
        .collect();
    assert_eq!(siblings.len(), 1, "one sibling in view: {tried:#?}");
    assert_eq!(
        tried[&format!("sibling {}", siblings[0])].0,
        "sleep",
        "{tried:#?}"
    );
    (siblings[0], tried)
}

fn result(tried: &BTreeMap<String, Outcome>, what: &str) -> String {
    tried
        .get(what)
        .map(|r| r.0.clone())
        .unwrap_or_else(|| panic!("{what} was not tried: {tried:#?}"))
}

#[test]
fn pid_mode_task_sibling_is_reachable_only_with_sys_ptrace() {
    let (Some(plain), Some(ptrace)) = (pid_task_run(), pid_task_ptrace_run()) else {
        return;
    };
    // Without the opt-in, the probe's own Landlock domain shuts every door.
    let (pid, tried) = sibling_attempts(plain);
    assert_eq!(result(&tried, "CAP_SYS_PTRACE"), "not held");
    assert_eq!(
        result(&tried, &format!("ptrace(PTRACE_ATTACH, {pid})")),
        "EPERM"
    );
    assert_eq!(
        result(&tried, &format!("process_vm_readv({pid}, NULL)")),
        "EPERM"
    );
    assert_eq!(
        result(&tried, &format!("open(/proc/{pid}/environ)")),
        "EACCES"
    );
    assert_eq!(
        result(&tried, &format!("readlink(/proc/{pid}/root)")),
        "EACCES"
    );
    // The kernel, not seccomp, refuses: the family is allowed by the profile.
    assert_eq!(
        plain.check("pid_mode_task_sibling")["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["what"] == format!("ptrace(PTRACE_ATTACH, {pid})"))
            .unwrap()["seccomp"],
        "kernel"
    );
    // With it: attached (and detached, the sibling running on), its memory read
    // (address 0: EFAULT), its environment and root opened.
    let (pid, tried) = sibling_attempts(ptrace);
    assert_eq!(result(&tried, "CAP_SYS_PTRACE"), "held");
    assert_eq!(
        result(&tried, &format!("ptrace(PTRACE_ATTACH, {pid})")),
        "OK"
    );
    assert_eq!(
        result(&tried, &format!("ptrace(PTRACE_DETACH, {pid})")),
        "OK"
    );
    let state = result(&tried, &format!("state of {pid} after the detach"));
    assert!(
        state == "S" || state == "R",
        "the sibling runs on after the detach: {state}"
    );
    assert_eq!(
        result(&tried, &format!("process_vm_readv({pid}, NULL)")),
        "EFAULT"
    );
    assert_eq!(result(&tried, &format!("open(/proc/{pid}/environ)")), "OK");
    assert_eq!(result(&tried, &format!("readlink(/proc/{pid}/root)")), "OK");
    // The task init and the host stay out of reach either way.
    for run in [plain, ptrace] {
        let (_, tried) = sibling_attempts(run);
        // comm is cut at 15 bytes.
        assert_eq!(result(&tried, "pid 1"), "tasksandbox-ini");
        assert_eq!(result(&tried, "ptrace(PTRACE_ATTACH, 1)"), "EPERM");
        assert_eq!(result(&tried, "process_vm_readv(1, NULL)"), "EPERM");
        assert_eq!(result(&tried, "open(/proc/1/environ)"), "EACCES");
        assert_eq!(result(&tried, "readlink(/proc/1/root)"), "EACCES");
        let host = std::process::id();
        let ptrace_host = attempts(run.check("ptrace_host_process"));
        assert_eq!(
            result(&ptrace_host, &format!("ptrace(PTRACE_ATTACH, {host})")),
            "ESRCH"
        );
        assert_eq!(
            result(&ptrace_host, &format!("process_vm_readv({host}, NULL)")),
            "ESRCH"
        );
    }
}

#[test]
fn pid_mode_task_mknod_is_refused_by_the_landlock_domain() {
    // In a pid_mode = task container without SYS_PTRACE the Landlock domain answers
    // mknod of a block device before the kernel's own check: EACCES, shown to be an
    // LSM's by a FIFO made in the same directory.
    let Some(run) = pid_task_run() else { return };
    let tried = attempts(run.check("mknod_block_device"));
    let blocks: Vec<&String> = tried.keys().filter(|k| k.starts_with("mknodat(")).collect();
    assert!(!blocks.is_empty(), "{tried:#?}");
    for what in blocks {
        assert_eq!(tried[what].0, "EACCES", "{what}");
        let fifo = what
            .replace("mknodat(", "mknod(")
            .replace("sda, S_IFBLK, 8:0", "fifo, S_IFIFO");
        assert_eq!(
            result(&tried, &fifo),
            "OK: the EACCES comes from an LSM",
            "{what}"
        );
    }
    // With the opt-in there is no domain: the kernel's EPERM.
    let Some(ptrace) = pid_task_ptrace_run() else {
        return;
    };
    for (what, (out, _)) in attempts(ptrace.check("mknod_block_device")) {
        if what.starts_with("mknodat(") {
            assert_eq!(out, "EPERM", "{what}");
        }
    }
}

// --- A static probe in an empty root ----------------------------------------------

/// The probe linked statically (`-C target-feature=+crt-static`), built once into
/// `target/static` as the README says, without the crate's default features (the
/// probe needs none of them).
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
fn static_probe() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target dir")
                .join("static");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let started = std::time::Instant::now();
            let out = std::process::Command::new(cargo)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .args([
                    "build",
                    "--example",
                    "probe",
                    "--no-default-features",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                    "--target-dir",
                ])
                .arg(&target)
                .output()
                .expect("run cargo");
            assert!(
                out.status.success(),
                "building the static probe: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "note: the static probe was built (or found up to date) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            target.join("x86_64-unknown-linux-gnu/debug/examples/probe")
        })
        .clone()
}

/// Whether the ELF file at `path` asks for a program interpreter (a dynamic loader):
/// a `PT_INTERP` program header.
fn has_interpreter(path: &std::path::Path) -> bool {
    let elf = std::fs::read(path).expect("read the ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
#[test]
fn a_static_probe_in_a_root_of_nothing_but_itself_passes_every_check() {
    // Nothing of the host's files in the task: no libc, no loader, no /usr. The probe
    // and its setuid copy are the only files; every check must still hold.
    if !can_start_tasks() {
        return;
    }
    let probe = static_probe();
    assert!(!has_interpreter(&probe), "{} is static", probe.display());
    assert!(has_interpreter(&example("probe")), "the usual build is not");
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(&probe, root.path().join("probe")).expect("copy the probe");
    let suid = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::set_permissions(suid.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = suid.path().join("probe-setuid");
    std::fs::copy(&probe, &copy).expect("copy the probe");
    std::os::unix::fs::chown(&copy, Some(TASK_ROOT_ON_HOST), Some(TASK_ROOT_ON_HOST)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let pid = std::process::id().to_string();
    let container = Container::new("static")
        .rootfs(root.path())
        .volume(Volume::bind(suid.path(), "/suid"))
        .command([
            "/probe",
            "check",
            "--json",
            "--host-pid",
            &pid,
            "--setuid",
            SETUID_PROBE,
        ]);
    let run = run_task(TaskSandbox::builder(), container);
    let failed = failures(&run);
    assert!(failed.is_empty(), "static probe, empty root: {failed:#?}");
    assert!(run.success);
    // The root held the probe and the mount points the sandbox made, nothing else.
    let mut entries: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["dev", "probe", "proc", "suid", "sys"]);
    // The setuid copy really ran (no other setuid program exists in this root).
    let tried = attempts(run.check("setuid_escalation"));
    let setuid = tried
        .iter()
        .find(|(what, _)| what.starts_with(&format!("exec {SETUID_PROBE}")))
        .map(|(_, (result, _))| result.as_str());
    assert_eq!(setuid, Some("euid 65534"), "{tried:?}");
}

// --- The README's quoted output ----------------------------------------------------

/// The checks whose detail depends on what the host's kernel has (the OCI paths it
/// lacks, its sysfs files, a setuid program of its own): their lines are compared by
/// status, name and row only. Everything else must read as the README quotes it.
const HOST_DEPENDENT: [&str; 7] = [
    "masked_paths",
    "read_only_paths",
    "proc_sysrq_trigger",
    "core_pattern",
    "sysfs_read_only",
    "setuid_escalation",
    "namespaces",
];

/// The first fenced block after the line of `readme` containing `marker`.
fn quoted_after<'a>(readme: &'a str, marker: &str) -> Vec<&'a str> {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("the README has no {marker:?}"));
    let rest = &readme[start..];
    let open = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let body = &rest[open..];
    let close = body.find("```").expect("the block's end");
    body[..close].lines().collect()
}

/// `line` with the digits following each of `prefixes` replaced by `PID`.
fn without_pid(line: &str, pid: &str) -> String {
    line.replace(&format!("({pid}"), "(PID")
        .replace(&format!(" {pid})"), " PID)")
        .replace(&format!(" {pid},"), " PID,")
}

#[test]
fn the_readme_quotes_what_the_probe_prints() {
    if !can_start_tasks() {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    // The README's command, as written, from the crate's directory, with this test
    // process standing in for the shell.
    let command = readme
        .lines()
        .find(|l| l.starts_with("target/debug/examples/run ") && l.contains("/probe check"))
        .expect("the README's probe command");
    let me = std::process::id().to_string();
    let args: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("$PWD", env!("CARGO_MANIFEST_DIR"))
                .replace("$$", &me)
        })
        .collect();
    let out = std::process::Command::new(example("run"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&args)
        .output()
        .expect("run the README's command");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{command}: {}\n{printed}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let quoted = quoted_after(&readme, "Its output for a default task");
    // The README's pid is whatever its kill(<pid>, 0) line says.
    let readme_pid: String = quoted
        .iter()
        .find_map(|l| l.split("kill(").nth(1))
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .expect("a kill(<pid>, 0) line");
    let ours: Vec<String> = printed.lines().map(|l| without_pid(l, &me)).collect();
    let theirs: Vec<String> = quoted.iter().map(|l| without_pid(l, &readme_pid)).collect();
    assert_eq!(ours.len(), theirs.len(), "line count:\n{printed}");
    let head = |l: &str| -> (String, String, String) {
        let mut parts = l.split_whitespace();
        let status = parts.next().unwrap_or("").to_string();
        let name = parts.next().unwrap_or("").to_string();
        let row = parts.next().unwrap_or("").to_string();
        (status, name, row)
    };
    for (ours, theirs) in ours.iter().zip(&theirs) {
        let (a, b) = (head(ours), head(theirs));
        if ours.contains(" checks: ") {
            // The summary: the same number of checks, none failed.
            assert_eq!(a.0, b.0, "the number of checks");
            assert!(ours.contains(" 0 failed") && theirs.contains(" 0 failed"));
        } else if HOST_DEPENDENT.contains(&a.1.as_str()) {
            assert_eq!(
                (&a.1, &a.2),
                (&b.1, &b.2),
                "{ours}\nvs the README's\n{theirs}"
            );
            let ok = |s: &str| s == "PASS" || (a.1 == "proc_sysrq_trigger" && s == "SKIP");
            assert!(ok(&a.0) && ok(&b.0), "{ours}\n{theirs}");
        } else {
            assert_eq!(ours, theirs, "the README quotes another output");
        }
    }
    // The sweep's summary, below it, is what `probe sweep` prints.
    let out = std::process::Command::new(example("run"))
        .args([
            "--volume",
            &format!("{}:/probe", example("probe").display()),
            "--",
            "/probe",
            "sweep",
        ])
        .output()
        .expect("run the sweep");
    let printed = String::from_utf8_lossy(&out.stdout);
    let quoted = quoted_after(&readme, "For a default task:");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        quoted,
        "the README's sweep output"
    );
}

// --- On a bare host ------------------------------------------------------------------

/// What the probe could leave on a bare host if an attempt were not harmless: entries
/// named after its paths in the directories it makes nodes in, and mounts on them.
fn probe_traces() -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/", "/tmp", "/dev/shm", "/var/tmp", "/run", "/root"] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("nonexistent-probe") || name.starts_with("probe-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains("nonexistent-probe") || l.contains("/probe-"))
            .map(str::to_string),
    );
    found
}

#[test]
fn the_probe_on_the_bare_host_is_harmless_and_order_free() {
    // Run without a sandbox (as root here), every attempt must fail harmlessly or
    // undo itself: no node, directory or mount is left, the hostname is the same.
    // The calls that succeed there (`unshare`) run in a child, so the ones after them
    // answer as the host would: sethostname with an over-long name is EINVAL for the
    // host's root, not the EPERM of a new user namespace the probe would otherwise
    // have moved into. ptrace aims at a pid that does not exist.
    if !can_start_tasks() {
        return;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let before = probe_traces();
    let out = std::process::Command::new(example("probe"))
        .arg("syscalls")
        .output()
        .expect("run the probe on the host");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(results.get("unshare_user"), Some(&"OK"), "{stdout}");
    assert_eq!(results.get("unshare_mount"), Some(&"OK"), "{stdout}");
    assert_eq!(results.get("sethostname"), Some(&"EINVAL"), "{stdout}");
    assert_eq!(
        results.get("ptrace_attach_absent"),
        Some(&"ESRCH"),
        "{stdout}"
    );
    // The block node is made in a directory of the probe's own, and removed.
    assert_eq!(results.get("mknod_block"), Some(&"OK"), "{stdout}");
    assert_eq!(probe_traces(), before, "probe syscalls left something");
    // The whole check, on the bare host, fails (or skips) everything and leaves
    // nothing either.
    let out = std::process::Command::new(example("probe"))
        .args(["check", "--json"])
        .output()
        .expect("run the probe on the host");
    assert!(!out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        json["passed"], 0,
        "no check passes without a sandbox: {json:#}"
    );
    assert_eq!(probe_traces(), before, "probe check left something");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname
    );
}

#[test]
fn the_probe_makes_no_attempt_when_its_missing_path_exists() {
    // Its harmless mounts are aimed at /nonexistent-probe-dir on the grounds that it
    // does not exist; were it a directory, a mount on a bare host would succeed. The
    // task's root is its own: the directory is made there, not on the host.
    if !can_start_tasks() {
        return;
    }
    let out = output(
        TaskSandbox::builder().container(
            Container::new("sh")
                .command([
                    "/bin/sh",
                    "-c",
                    "mkdir /nonexistent-probe-dir && /probe syscalls; echo rc=$?",
                ])
                .volume(Volume::bind(example("probe"), "/probe")),
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "rc=2", "{stdout}{stderr}");
    assert!(stderr.contains("/nonexistent-probe-dir exists"), "{stderr}");
}

// --- Skips -----------------------------------------------------------------------------

#[test]
fn a_skip_is_shown_in_the_text_and_the_json_and_is_no_failure() {
    if !can_start_tasks() {
        return;
    }
    let out = output(TaskSandbox::builder().container(probe(&[
        "check",
        "--only",
        "pid_mode_task_sibling,no_new_privs",
    ])));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("SKIP pid_mode_task_sibling") && l.contains("skipped: ")),
        "{text}"
    );
    assert!(
        text.contains("2 checks: 1 passed, 0 failed, 1 skipped"),
        "{text}"
    );
    let Some(run) = default_run() else { return };
    let skipped = run
        .checks()
        .values()
        .filter(|c| c["status"] == "skip")
        .count();
    assert_eq!(run.json["skipped"], skipped);
    let sibling = run.check("pid_mode_task_sibling");
    assert_eq!(sibling["pass"], Value::Bool(false));
    assert!(sibling["skipped"].is_string(), "{sibling}");
}

#[test]
fn paths_the_task_lacks_are_absent_on_the_host_too() {
    // "absent (not checked)" is only believed where the host has no such path either:
    // the task runs on the host's kernel.
    let Some(run) = default_run() else { return };
    let mut absent = 0;
    for name in ["masked_paths", "read_only_paths"] {
        for (what, (out, _)) in attempts(run.check(name)) {
            if out.starts_with("absent") {
                absent += 1;
                assert!(
                    !std::path::Path::new(&what).exists(),
                    "{name}: {what} is absent in the task but present on the host"
                );
            }
        }
    }
    eprintln!("{absent} masked or read-only paths absent from this kernel");
}

// --- The syscall sweep ----------------------------------------------------------------

#[cfg(feature = "policy")]
fn sweep(caps: Capabilities) -> Value {
    let run = run_probe(caps, &["sweep", "--json"]);
    assert!(run.success, "probe sweep: {}\n{}", run.stdout, run.stderr);
    run.json
}

#[cfg(feature = "policy")]
fn docker_profile() -> SeccompProfile {
    SeccompProfile::from_json_file(std::path::Path::new(DOCKER_JSON))
        .unwrap_or_else(|e| panic!("{DOCKER_JSON}: {e}"))
}

#[cfg(feature = "policy")]
/// The errno name (or `allowed`) Docker's profile gives each swept call, next to what
/// the task's filters gave; returns the mismatches and the EPERM set Docker predicts.
fn compare_with_docker(sweep: &Value, caps: Capabilities) -> (Vec<String>, BTreeSet<String>) {
    let docker = docker_profile();
    let mut mismatches = Vec::new();
    let mut docker_eperm = BTreeSet::new();
    let calls = sweep["calls"].as_array().expect("calls");
    assert!(
        calls.len() > 500,
        "the sweep covers the table: {}",
        calls.len()
    );
    for call in calls {
        let nr = call["nr"].as_i64().expect("nr");
        let args: Vec<u64> = call["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_u64().expect("arg"))
            .collect();
        let args: [u64; 6] = args.try_into().expect("six arguments");
        let expected = match docker.decide(caps, nr, &args) {
            Action::Allow => "allowed".to_string(),
            Action::Errno(e) => format!("{:?}", nix::errno::Errno::from_raw(e as i32)),
            other => format!("{other:?}"),
        };
        let observed = call["verdict"].as_str().unwrap_or("");
        if observed != expected {
            mismatches.push(format!(
                "{nr} {}: task {observed}, Docker {expected}",
                call["name"]
            ));
        }
        if let (Some(name), false) = (call["name"].as_str(), call["x32"].as_bool().unwrap_or(true))
        {
            if expected == "EPERM" {
                docker_eperm.insert(name.to_string());
            }
        }
    }
    (mismatches, docker_eperm)
}

#[cfg(feature = "policy")]
fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(feature = "policy")]
#[test]
fn seccomp_sweep_matches_docker_default() {
    if !can_start_tasks() {
        return;
    }
    let caps = Capabilities::fargate_default();
    let sweep = sweep(caps);
    let (mismatches, docker_eperm) = compare_with_docker(&sweep, caps);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    // The probe's own list of Docker's refusals (printed for embedders) is the one the
    // JSON gives, and the task refuses exactly those with EPERM.
    assert_eq!(names(&sweep["docker_refused"]), docker_eperm);
    assert_eq!(names(&sweep["refused_eperm"]), docker_eperm);
    assert!(names(&sweep["docker_refuses_but_allowed"]).is_empty());
    for name in [
        "mount",
        "unshare",
        "setns",
        "bpf",
        "keyctl",
        "kexec_load",
        "open_by_handle_at",
    ] {
        assert!(docker_eperm.contains(name), "{name}");
    }
    // What the crate adds to Docker: every x32 number EPERM, unassigned numbers ENOSYS.
    let calls = sweep["calls"].as_array().expect("calls");
    for call in calls {
        if call["x32"] == Value::Bool(true) {
            assert_eq!(call["verdict"], "EPERM", "{call}");
        } else if call["name"].is_null() {
            assert_eq!(call["verdict"], "ENOSYS", "{call}");
        }
    }
    // The sweep covers the whole x32 table (0..=547 with bit 30), every native
    // number up to 1023 but the two seccomp never sees, and numbers far above.
    let swept: BTreeSet<i64> = calls.iter().filter_map(|c| c["nr"].as_i64()).collect();
    let x32: BTreeSet<i64> = (0..=547).map(|n| 0x4000_0000 | n).collect();
    assert!(x32.is_subset(&swept), "every x32 number is swept");
    let native: BTreeSet<i64> = (0..=1023).filter(|n| ![335, 336].contains(n)).collect();
    assert!(native.is_subset(&swept), "every native number up to 1023");
    for far in [0x0001_0000i64, 0x3fff_ffff, 0x8000_0000, 0xbfff_ffff] {
        assert!(swept.contains(&far), "{far:#x} is swept");
    }
    assert_eq!(swept.len(), x32.len() + native.len() + 4);
}

#[cfg(feature = "policy")]
#[test]
fn seccomp_sweep_with_sys_ptrace_matches_docker() {
    if !can_start_tasks() {
        return;
    }
    let caps = Capabilities::fargate_default().with_sys_ptrace();
    let with = sweep(caps);
    let (mismatches, docker_eperm) = compare_with_docker(&with, caps);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(names(&with["refused_eperm"]), docker_eperm);
    let without = sweep(Capabilities::fargate_default());
    let unlocked: BTreeSet<String> = names(&without["refused_eperm"])
        .difference(&names(&with["refused_eperm"]))
        .cloned()
        .collect();
    let expected: BTreeSet<String> = ["kcmp", "pidfd_getfd", "process_madvise"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        unlocked, expected,
        "SYS_PTRACE unlocks only the ptrace family"
    );
    assert!(names(&with["refused_eperm"]).is_subset(&names(&without["refused_eperm"])));
}

/// A custom seccomp profile is what the sweep reports, too: the oracle asks the task's
/// filters, whatever they are.
#[test]
fn sweep_reports_a_custom_profile() {
    if !can_start_tasks() {
        return;
    }
    let mut profile = SeccompProfile::docker_default().clone();
    profile.push_rule(tasksandbox::seccomp::SyscallRule::new(
        ["getcwd"],
        Action::Errno(libc::EACCES as u32),
    ));
    let container = probe(&["sweep", "--json"]).seccomp(tasksandbox::SeccompPolicy::Profile(
        std::sync::Arc::new(profile),
    ));
    let out = output(TaskSandbox::builder().container(container));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let getcwd = json["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .find(|c| c["name"] == "getcwd")
        .expect("getcwd swept");
    assert_eq!(getcwd["verdict"], "EACCES");
}

// --- The checks have teeth ------------------------------------------------------------

#[test]
fn the_probe_notices_syscalls_seccomp_lets_through() {
    // A profile that allows what the default refuses: the checks must fail, and the
    // oracle must say the calls reached the kernel.
    if !can_start_tasks() {
        return;
    }
    let opened = [
        "keyctl",
        "add_key",
        "request_key",
        "perf_event_open",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ];
    let profile =
        SeccompProfile::docker_default()
            .clone()
            .with_rule(tasksandbox::seccomp::SyscallRule::new(
                opened,
                Action::Allow,
            ));
    let container = probe(&[
        "check",
        "--json",
        "--only",
        "keyring,perf_event_open,io_uring",
    ])
    .seccomp(tasksandbox::SeccompPolicy::Profile(std::sync::Arc::new(
        profile,
    )));
    let run = run_task(TaskSandbox::builder(), container);
    assert!(!run.success, "the probe exits non-zero when a check fails");
    for name in ["keyring", "perf_event_open", "io_uring"] {
        let check = run.check(name);
        assert_eq!(
            check["pass"],
            Value::Bool(false),
            "{name}: {}",
            check["summary"]
        );
        for (what, (_, layer)) in attempts(check) {
            assert_eq!(layer.as_deref(), Some("kernel"), "{name}: {what}");
        }
    }
}

#[test]
fn the_probe_notices_a_missing_user_namespace() {
    if !can_start_tasks() {
        return;
    }
    let run = run_task(
        TaskSandbox::builder().user_namespace(tasksandbox::UserNamespace::Disabled),
        probe(&[
            "check",
            "--json",
            "--only",
            "uid_gid_maps,namespaces,devices",
        ]),
    );
    assert!(!run.success);
    assert_eq!(run.check("uid_gid_maps")["pass"], Value::Bool(false));
    assert_eq!(run.check("namespaces")["pass"], Value::Bool(false));
    // The other namespaces and the minimal /dev are still there.
    assert_passes(&run, "devices");
    let ns = attempts(run.check("namespaces"));
    assert_eq!(ns.get("user").map(|r| r.0.as_str()), Some("the host's"));
    assert_eq!(ns.get("pid").map(|r| r.0.as_str()), Some("own"));
}
