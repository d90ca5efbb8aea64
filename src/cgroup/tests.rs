//! Tests of the cgroup layer.
//!
//! cgroup v1 is exercised for real (these machines run v1 controllers, as root); the
//! v2 logic runs against fake trees in temporary directories, plus, where the host
//! mounts an empty cgroup2 next to v1 (`/sys/fs/cgroup/unified`), for real with the
//! core files only. Every test works below its own parent cgroup,
//! `tasksandbox-test/<test>-<pid>`, so that tests can run in parallel.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::imp::{self, Layout, V1Mounts};
use super::{CgroupError, CgroupLimits, CgroupStats, CgroupVersion, Limit, TaskCgroup};

const ALL: CgroupLimits = CgroupLimits {
    cpu_units: Some(512),
    cpu_share_units: None,
    memory_bytes: Some(64 << 20),
    memory_reservation_bytes: None,
    pids_max: Some(64),
};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The host's v1 mounts, when the host runs v1 and the test runs as root.
fn host_v1() -> Option<V1Mounts> {
    match imp::system_layout() {
        Some(Layout::V1(mounts)) if is_root() => Some(mounts.clone()),
        _ => {
            eprintln!("skipped: needs cgroup v1 and root");
            None
        }
    }
}

fn v1_roots(mounts: &V1Mounts) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = [&mounts.cpu, &mounts.cpuacct, &mounts.memory, &mounts.pids]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    roots.dedup();
    roots
}

/// [`TaskCgroup::create`] in a given layout instead of the host's.
fn create_in(
    layout: &Layout,
    parent: &Path,
    name: &str,
    limits: &CgroupLimits,
    best_effort: bool,
) -> Result<(TaskCgroup, Vec<Limit>), CgroupError> {
    let rel = imp::relative_path(parent, name)?;
    let (active, skipped) = imp::create_in(Some(layout), &rel, limits, best_effort)?;
    Ok((TaskCgroup { active }, skipped))
}

/// The parent cgroup of one test in each hierarchy root; removed when dropped.
struct TestParent {
    rel: PathBuf,
    roots: Vec<PathBuf>,
}

impl TestParent {
    fn new(test: &str, roots: Vec<PathBuf>) -> Self {
        let rel = PathBuf::from(format!("tasksandbox-test/{test}-{}", std::process::id()));
        TestParent { rel, roots }
    }

    fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.rel)
    }

    /// The cgroups left below this parent, in every root.
    fn leftovers(&self) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter_map(|root| fs::read_dir(self.dir(root)).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect()
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        for root in &self.roots {
            let _ = fs::remove_dir(self.dir(root));
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("5")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning sleep")
}

fn pid_of(child: &Child) -> i32 {
    i32::try_from(child.id()).expect("pid fits in i32")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
        .trim()
        .to_owned()
}

fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

fn assert_killed(mut child: Child) {
    let status = child.wait().expect("waiting for the child");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

/// Polls `done` for up to `secs` seconds.
fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

// ---- pure logic ------------------------------------------------------------------

#[test]
fn cpu_units_map_to_quota_shares_and_weight() {
    assert_eq!(imp::cfs_quota_us(1024), 100_000);
    assert_eq!(imp::cfs_quota_us(256), 25_000);
    assert_eq!(imp::cfs_quota_us(512), 50_000);
    assert_eq!(imp::cfs_quota_us(4096), 400_000);
    assert_eq!(imp::cfs_quota_us(16384), 1_600_000);
    // Never below the kernel's 1 ms minimum.
    assert_eq!(imp::cfs_quota_us(1), 1_000);
    assert_eq!(imp::cfs_quota_us(0), 1_000);
    assert_eq!(
        imp::cfs_quota_us(u32::MAX),
        u64::from(u32::MAX) * 100_000 / 1024
    );

    assert_eq!(imp::cpu_shares(0), 2);
    assert_eq!(imp::cpu_shares(1), 2);
    assert_eq!(imp::cpu_shares(1024), 1024);
    assert_eq!(imp::cpu_shares(u32::MAX), 262_144);

    assert_eq!(imp::cpu_weight(2), 1);
    assert_eq!(imp::cpu_weight(512), 20);
    assert_eq!(imp::cpu_weight(1024), 39);
    assert_eq!(imp::cpu_weight(262_144), 10_000);
    assert_eq!(imp::cpu_weight(0), 1);
    assert_eq!(imp::cpu_weight(u64::MAX), 10_000);
}

#[test]
fn keyed_files_are_read_by_exact_key() {
    let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_eq!(imp::keyed_value(oom_control, "oom_kill"), Some(3));
    let events = "low 0\nhigh 0\nmax 7\noom 2\noom_group_kill 9\noom_kill 1\n";
    assert_eq!(imp::keyed_value(events, "oom_kill"), Some(1));
    assert_eq!(imp::keyed_value(events, "oom"), Some(2));
    assert_eq!(imp::keyed_value("usage_usec 12\n", "oom_kill"), None);
    assert_eq!(imp::keyed_value("oom_kill lots\n", "oom_kill"), None);
    assert_eq!(imp::keyed_value("", "oom_kill"), None);
}

#[test]
fn limits_list_what_is_requested() {
    assert_eq!(ALL.requested(), [Limit::Cpu, Limit::Memory, Limit::Pids]);
    assert!(CgroupLimits::default().requested().is_empty());
    let memory_only = CgroupLimits {
        memory_bytes: Some(1),
        ..CgroupLimits::default()
    };
    assert_eq!(memory_only.requested(), [Limit::Memory]);
    assert_eq!(Limit::Cpu.to_string(), "CPU");
    assert_eq!(Limit::Pids.controller(), "pids");
}

#[test]
fn paths_that_leave_the_hierarchy_are_refused() {
    for parent in ["/abs", "../up", "a/../b", "./a"] {
        for best_effort in [false, true] {
            let err = TaskCgroup::create(Path::new(parent), "t", &ALL, best_effort)
                .err()
                .unwrap_or_else(|| panic!("parent {parent:?} accepted"));
            assert!(
                matches!(&err, CgroupError::InvalidPath { path, .. } if path == Path::new(parent)),
                "{err}"
            );
        }
    }
    for name in ["", ".", "..", "a/b", "/", "nul\0"] {
        let err = TaskCgroup::create(Path::new("tasksandbox"), name, &ALL, true)
            .err()
            .unwrap_or_else(|| panic!("name {name:?} accepted"));
        assert!(matches!(err, CgroupError::InvalidPath { .. }), "{err}");
    }
    assert_eq!(
        imp::relative_path(Path::new(""), "t").expect("an empty parent is the root"),
        Path::new("t")
    );
}

#[test]
fn only_positive_pids_are_added() {
    let empty = TaskCgroup { active: None };
    for pid in [0, -1, i32::MIN] {
        let err = empty.add_process(pid).expect_err("non-positive pid");
        assert!(
            matches!(err, CgroupError::InvalidPid { pid: p } if p == pid),
            "{err}"
        );
    }
    empty
        .add_process(1)
        .expect("an empty cgroup ignores processes");
    assert_eq!(empty.stats().expect("empty stats"), CgroupStats::default());
    assert_eq!(empty.path(), None);
}

#[test]
fn handles_and_errors_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TaskCgroup>();
    send_sync::<CgroupError>();
    send_sync::<CgroupStats>();
}

#[test]
fn detection_is_cached_and_matches_the_mounts() {
    let first = super::detect();
    let second = super::detect();
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => return,
        _ => panic!("detection changed: {first:?} then {second:?}"),
    }
    let version = first.expect("checked above");
    match imp::system_layout() {
        Some(Layout::V2 { root }) => {
            assert_eq!(version, CgroupVersion::V2);
            // Pure v2, or a hybrid layout whose controllers are all on the v2 side.
            if cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode() {
                assert_eq!(root, Path::new("/sys/fs/cgroup"));
            } else {
                assert_eq!(root, Path::new("/sys/fs/cgroup/unified"));
            }
        }
        Some(Layout::V1(mounts)) => {
            assert_eq!(version, CgroupVersion::V1);
            assert!(!cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode());
            assert_ne!(mounts, &V1Mounts::default());
        }
        None => panic!("detect() succeeded without a layout"),
    }
}

#[test]
fn errors_name_the_path_and_the_way_out() {
    let err = CgroupError::NotDelegated {
        path: PathBuf::from("/sys/fs/cgroup/tasksandbox"),
        uid: 1000,
    };
    assert_eq!(
        err.to_string(),
        "the cgroup /sys/fs/cgroup/tasksandbox is not writable by uid 1000; delegate a cgroup \
         to this user (e.g. systemd `Delegate=yes`) or ask for best-effort enforcement"
    );
    let err = CgroupError::MissingController {
        controller: "pids",
        limit: Limit::Pids,
        path: PathBuf::from("/sys/fs/cgroup/tasksandbox"),
    };
    assert_eq!(
        err.to_string(),
        "cannot apply the pids limit: the pids cgroup controller is not available under \
         /sys/fs/cgroup/tasksandbox"
    );
}

// ---- cgroup v1, for real ---------------------------------------------------------

#[test]
fn v1_create_writes_every_limit_before_any_process() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-limits", v1_roots(&mounts));
    let (cg, skipped) =
        TaskCgroup::create(&parent.rel, "t", &ALL, false).expect("creating the cgroup");
    assert!(skipped.is_empty(), "{skipped:?}");
    let rel = parent.rel.join("t");
    assert_eq!(cg.path(), Some(rel.as_path()));

    let cpu = mounts.cpu.as_ref().expect("cpu hierarchy").join(&rel);
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    let memory = mounts.memory.as_ref().expect("memory hierarchy").join(&rel);
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read(&memory.join("memory.memsw.limit_in_bytes")),
            "67108864"
        );
    }
    let pids = mounts.pids.as_ref().expect("pids hierarchy").join(&rel);
    assert_eq!(read(&pids.join("pids.max")), "64");
    let cpuacct = mounts
        .cpuacct
        .as_ref()
        .expect("cpuacct hierarchy")
        .join(&rel);
    assert!(cpuacct.is_dir());
    for dir in [&cpu, &memory, &pids, &cpuacct] {
        assert!(procs(dir).is_empty(), "{} is not empty", dir.display());
    }
    // Hierarchies the crate does not use are left alone.
    for other in ["cpuset", "devices", "freezer", "blkio", "systemd"] {
        let dir = Path::new("/sys/fs/cgroup").join(other).join(&rel);
        assert!(!dir.exists(), "{} was created", dir.display());
    }

    cg.destroy().expect("destroying the cgroup");
    for dir in [&cpu, &memory, &pids, &cpuacct] {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

/// A container's cgroup: a CPU share with no quota, a hard memory limit and a soft
/// reservation.
const CONTAINER: CgroupLimits = CgroupLimits {
    cpu_units: None,
    cpu_share_units: Some(256),
    memory_bytes: Some(32 << 20),
    memory_reservation_bytes: Some(16 << 20),
    pids_max: None,
};

#[test]
fn v1_container_share_and_reservation_have_no_quota() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-container", v1_roots(&mounts));
    let (cg, skipped) = TaskCgroup::create(&parent.rel, "t", &CONTAINER, false).expect("create");
    assert!(skipped.is_empty(), "{skipped:?}");
    let rel = parent.rel.join("t");
    let cpu = mounts.cpu.as_ref().expect("cpu hierarchy").join(&rel);
    assert_eq!(read(&cpu.join("cpu.shares")), "256");
    // A share, not a ceiling: no CFS quota.
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
    let memory = mounts.memory.as_ref().expect("memory hierarchy").join(&rel);
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "33554432");
    assert_eq!(read(&memory.join("memory.soft_limit_in_bytes")), "16777216");
    cg.destroy().expect("destroy");
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_cpu_hierarchy_is_used_only_for_a_cpu_limit() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-no-cpu", v1_roots(&mounts));
    let limits = CgroupLimits {
        memory_bytes: Some(32 << 20),
        ..CgroupLimits::default()
    };
    let (cg, skipped) = TaskCgroup::create(&parent.rel, "t", &limits, false).expect("create");
    assert!(skipped.is_empty());
    let rel = parent.rel.join("t");
    let cpu = mounts.cpu.as_ref().expect("cpu hierarchy");
    let cpuacct = mounts.cpuacct.as_ref().expect("cpuacct hierarchy");
    if cpu != cpuacct {
        assert!(
            !cpu.join(&rel).exists(),
            "cpu cgroup made without a CPU limit"
        );
    }
    assert!(cpuacct.join(&rel).is_dir());
    let pids = mounts.pids.as_ref().expect("pids hierarchy").join(&rel);
    assert_eq!(read(&pids.join("pids.max")), "max");
    cg.destroy().expect("destroy");
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_process_joins_every_hierarchy_and_destroy_kills_it() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-process", v1_roots(&mounts));
    let child = sleeper();
    let (cg, _) = TaskCgroup::create(&parent.rel, "t", &ALL, false).expect("create");
    cg.add_process(pid_of(&child)).expect("adding the process");
    let rel = parent.rel.join("t");
    for root in v1_roots(&mounts) {
        assert_eq!(
            procs(&root.join(&rel)),
            [pid_of(&child)],
            "{}",
            root.display()
        );
    }
    assert_eq!(cg.oom_kills(), 0);
    let stats = cg.stats().expect("stats");
    assert_eq!(stats.pids_current, 1);
    assert_eq!(stats.oom_kills, 0);

    cg.destroy().expect("destroy with a process inside");
    assert_killed(child);
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_drop_kills_and_removes() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-drop", v1_roots(&mounts));
    let child = sleeper();
    let (cg, _) = TaskCgroup::create(&parent.rel, "t", &ALL, false).expect("create");
    cg.add_process(pid_of(&child)).expect("add");
    drop(cg);
    assert_killed(child);
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_stats_see_the_work_of_the_processes() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-stats", v1_roots(&mounts));
    let (cg, _) = TaskCgroup::create(&parent.rel, "t", &ALL, false).expect("create");
    assert_eq!(cg.oom_kills(), 0, "a fresh cgroup has no OOM kill");
    let fresh = cg.stats().expect("stats of a fresh cgroup");
    assert_eq!(fresh.pids_current, 0);
    assert_eq!(fresh.cpu_usage_ns, 0);
    // The shell waits for a line, so it is inside before it works.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read go; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning sh");
    cg.add_process(pid_of(&child)).expect("add");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("starting the shell");
    }
    let mut last = CgroupStats::default();
    let worked = eventually(10, || {
        last = cg.stats().expect("stats");
        last.cpu_usage_ns > 1_000_000 && last.memory_peak_bytes > 0 && last.pids_current == 1
    });
    assert!(worked, "{last:?}");
    assert!(last.memory_peak_bytes >= last.memory_current_bytes);
    cg.destroy().expect("destroy");
    assert_killed(child);
}

#[test]
fn v1_memory_limit_oom_kills_are_counted() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-oom", v1_roots(&mounts));
    let limits = CgroupLimits {
        memory_bytes: Some(16 << 20),
        ..CgroupLimits::default()
    };
    let (cg, _) = TaskCgroup::create(&parent.rel, "t", &limits, false).expect("create");
    // `tail` keeps the last line in memory until it ends, and /dev/zero has no newline.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read go; head -c 256M /dev/zero | tail -n 1 >/dev/null; sleep 5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning sh");
    cg.add_process(pid_of(&child)).expect("add");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("starting the shell");
    }
    assert!(eventually(20, || cg.oom_kills() >= 1), "no OOM kill seen");
    let stats = cg.stats().expect("stats");
    assert!(stats.oom_kills >= 1);
    assert!(stats.memory_peak_bytes <= 16 << 20, "{stats:?}");
    cg.destroy().expect("destroy");
    assert_killed(child);
}

#[test]
fn v1_many_cycles_leave_nothing_behind() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-cycles", v1_roots(&mounts));
    let start = Instant::now();
    for i in 0..200 {
        let (cg, skipped) = TaskCgroup::create(&parent.rel, &format!("c{i}"), &ALL, false)
            .unwrap_or_else(|err| panic!("cycle {i}: {err}"));
        assert!(skipped.is_empty());
        cg.destroy()
            .unwrap_or_else(|err| panic!("cycle {i}: {err}"));
    }
    eprintln!("200 create/destroy cycles: {:?}", start.elapsed());
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_existing_cgroup_is_refused_not_joined() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-exists", v1_roots(&mounts));
    let (first, _) = TaskCgroup::create(&parent.rel, "t", &ALL, false).expect("create");
    for best_effort in [false, true] {
        let err =
            TaskCgroup::create(&parent.rel, "t", &ALL, best_effort).expect_err("the name is taken");
        assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err}");
    }
    // The first one is untouched.
    let cpu = mounts.cpu.as_ref().expect("cpu").join(parent.rel.join("t"));
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    first.destroy().expect("destroy");
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

#[test]
fn v1_missing_controller_strict_fails_clean_best_effort_reports() {
    let Some(mounts) = host_v1() else { return };
    let parent = TestParent::new("v1-missing", v1_roots(&mounts));
    let without_pids = Layout::V1(V1Mounts {
        pids: None,
        ..mounts.clone()
    });

    let err =
        create_in(&without_pids, &parent.rel, "t", &ALL, false).expect_err("no pids hierarchy");
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "pids",
                limit: Limit::Pids,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        parent.leftovers().is_empty(),
        "strict failure left {:?}",
        parent.leftovers()
    );

    let (cg, skipped) =
        create_in(&without_pids, &parent.rel, "t", &ALL, true).expect("best effort");
    assert_eq!(skipped, [Limit::Pids]);
    let rel = parent.rel.join("t");
    let cpu = mounts.cpu.as_ref().expect("cpu").join(&rel);
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    let memory = mounts.memory.as_ref().expect("memory").join(&rel);
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
    let pids = mounts.pids.as_ref().expect("pids").join(&rel);
    assert!(!pids.exists());
    assert_eq!(cg.stats().expect("stats").pids_current, 0);
    cg.destroy().expect("destroy");
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());

    // With no cgroup filesystem at all.
    let (active, skipped) = imp::create_in(None, &rel, &ALL, true).expect("best effort");
    assert!(active.is_none());
    assert_eq!(skipped, [Limit::Cpu, Limit::Memory, Limit::Pids]);
    let err = imp::create_in(None, &rel, &ALL, false).expect_err("strict");
    assert!(matches!(err, CgroupError::NotMounted { .. }), "{err}");
}

// ---- unprivileged callers --------------------------------------------------------

const UNPRIVILEGED_ENV: &str = "TASKSANDBOX_CGROUP_TEST_FAKE_ROOTS";
const NOBODY: u32 = 65534;

/// Runs [`unprivileged_child`] in a copy of this test binary as uid 65534.
#[test]
fn unprivileged_caller_gets_not_delegated_or_best_effort() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to uid {NOBODY}");
        return;
    }
    // Fake v2 trees owned by root: one that needs its controllers switched on, one
    // that has them already (so the first write is the mkdir).
    let needs_enabling = FakeV2::new("cpu memory pids");
    let enabled = FakeV2::new("cpu memory pids");
    fs::write(
        enabled.root().join("cgroup.subtree_control"),
        "cpu memory pids",
    )
    .expect("writing the fake tree");
    for fake in [&needs_enabling, &enabled] {
        fs::set_permissions(fake.root(), fs::Permissions::from_mode(0o755))
            .expect("opening the fake tree to others");
    }
    let roots = format!(
        "{}:{}",
        needs_enabling.root().display(),
        enabled.root().display()
    );
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([
            "--exact",
            "cgroup::tests::unprivileged_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNPRIVILEGED_ENV, roots)
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: uid {NOBODY} cannot run the test binary: {err}");
            return;
        }
        Err(err) => panic!("running the test binary as uid {NOBODY}: {err}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
#[ignore = "run as uid 65534 by unprivileged_caller_gets_not_delegated_or_best_effort"]
fn unprivileged_child() {
    let Some(roots) = std::env::var_os(UNPRIVILEGED_ENV) else {
        return;
    };
    assert_eq!(nix::unistd::geteuid().as_raw(), NOBODY);
    let parent = Path::new("tasksandbox-test/unprivileged");
    let expect_not_delegated = |result: Result<(TaskCgroup, Vec<Limit>), CgroupError>,
                                under: &Path| {
        let err = result.expect_err("an unprivileged create must fail");
        match &err {
            CgroupError::NotDelegated { path, uid } => {
                assert_eq!(*uid, NOBODY);
                assert!(path.starts_with(under), "{err}");
            }
            _ => panic!("expected NotDelegated, got {err}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("is not writable by uid {NOBODY}")),
            "{message}"
        );
        assert!(message.contains("Delegate=yes"), "{message}");
        assert!(message.contains("best-effort"), "{message}");
    };
    let expect_nothing = |result: Result<(TaskCgroup, Vec<Limit>), CgroupError>| {
        let (cg, skipped) = result.expect("best effort never fails on permissions");
        assert_eq!(skipped, [Limit::Cpu, Limit::Memory, Limit::Pids]);
        assert!(cg.path().is_none());
        cg.add_process(1)
            .expect("an empty cgroup ignores processes");
    };

    // The host's own cgroup filesystem.
    if imp::system_layout().is_some() {
        expect_not_delegated(
            TaskCgroup::create(parent, "t", &ALL, false),
            Path::new("/sys/fs/cgroup"),
        );
        expect_nothing(TaskCgroup::create(parent, "t", &ALL, true));
    }
    // Fake v2 trees: refused at the subtree_control write, then at the mkdir.
    let roots = roots.to_str().expect("utf-8 paths").to_owned();
    for root in roots.split(':') {
        let layout = Layout::V2 {
            root: PathBuf::from(root),
        };
        expect_not_delegated(
            create_in(&layout, parent, "t", &ALL, false),
            Path::new(root),
        );
        expect_nothing(create_in(&layout, parent, "t", &ALL, true));
        assert!(!Path::new(root).join("tasksandbox-test").exists());
    }
}

// ---- cgroup v2 -------------------------------------------------------------------

/// A fake cgroup2 root in a temporary directory: `cgroup.controllers` lists what the
/// "kernel" offers, `cgroup.subtree_control` starts empty.
struct FakeV2 {
    dir: tempfile::TempDir,
}

impl FakeV2 {
    fn new(controllers: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = FakeV2 { dir };
        fake.populate(fake.root(), controllers);
        fake
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn layout(&self) -> Layout {
        Layout::V2 {
            root: self.root().to_path_buf(),
        }
    }

    /// Writes the core files the kernel shows in every cgroup.
    fn populate(&self, dir: &Path, controllers: &str) {
        fs::create_dir_all(dir).expect("making a fake cgroup");
        fs::write(dir.join("cgroup.controllers"), controllers).expect("fake file");
        fs::write(dir.join("cgroup.subtree_control"), "").expect("fake file");
        fs::write(dir.join("cgroup.procs"), "").expect("fake file");
    }

    /// A parent cgroup as the kernel would show it after its parent enabled `controllers`.
    fn node(&self, rel: &str, controllers: &str) -> PathBuf {
        let dir = self.root().join(rel);
        self.populate(&dir, controllers);
        dir
    }
}

/// Destroys a cgroup of a fake tree: empties its directory first (the kernel would
/// let rmdir through interface files; a plain directory does not).
fn destroy_fake(cg: TaskCgroup, leaf: &Path) {
    for entry in fs::read_dir(leaf)
        .expect("listing the fake cgroup")
        .flatten()
    {
        fs::remove_file(entry.path()).expect("emptying the fake cgroup");
    }
    cg.destroy().expect("destroying the fake cgroup");
    assert!(!leaf.exists());
}

#[test]
fn v2_fake_enables_controllers_and_writes_limits() {
    let fake = FakeV2::new("cpuset cpu io memory hugetlb pids rdma misc");
    let parent = fake.node("tasksandbox", "cpu memory pids");
    let (cg, skipped) = create_in(&fake.layout(), Path::new("tasksandbox"), "t", &ALL, false)
        .expect("create in the fake tree");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(cg.path(), Some(Path::new("tasksandbox/t")));
    // Switched on all at once, in the root and in the parent.
    assert_eq!(
        read(&fake.root().join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        read(&parent.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    let leaf = parent.join("t");
    assert_eq!(read(&leaf.join("cpu.max")), "50000 100000");
    assert_eq!(read(&leaf.join("cpu.weight")), "20");
    assert_eq!(read(&leaf.join("memory.max")), "67108864");
    assert_eq!(read(&leaf.join("memory.swap.max")), "0");
    assert_eq!(read(&leaf.join("pids.max")), "64");
    // Nothing else was written.
    let mut files: Vec<String> = fs::read_dir(&leaf)
        .expect("listing the leaf")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "cpu.max",
            "cpu.weight",
            "memory.max",
            "memory.swap.max",
            "pids.max"
        ]
    );

    // Adding a process writes its pid to cgroup.procs. Our own pid: the fake cannot
    // move anything, and teardown never signals the caller.
    let me = i32::try_from(std::process::id()).expect("pid");
    cg.add_process(me).expect("add in the fake tree");
    assert_eq!(read(&leaf.join("cgroup.procs")), me.to_string());
    destroy_fake(cg, &leaf);
}

#[test]
fn v2_fake_writes_nothing_to_parents_that_have_the_controllers() {
    let fake = FakeV2::new("cpu memory pids");
    fs::write(
        fake.root().join("cgroup.subtree_control"),
        "memory pids cpu",
    )
    .expect("fake");
    let parent = fake.node("a/b", "cpu memory pids");
    fs::write(parent.join("cgroup.subtree_control"), "cpu memory pids io").expect("fake");
    let middle = fake.root().join("a");
    fs::write(middle.join("cgroup.controllers"), "cpu memory pids").expect("fake");
    fs::write(middle.join("cgroup.subtree_control"), "cpu pids memory").expect("fake");

    let (cg, skipped) =
        create_in(&fake.layout(), Path::new("a/b"), "t", &ALL, false).expect("create");
    assert!(skipped.is_empty());
    assert_eq!(
        read(&fake.root().join("cgroup.subtree_control")),
        "memory pids cpu"
    );
    assert_eq!(
        read(&middle.join("cgroup.subtree_control")),
        "cpu pids memory"
    );
    assert_eq!(
        read(&parent.join("cgroup.subtree_control")),
        "cpu memory pids io"
    );
    destroy_fake(cg, &parent.join("t"));
}

#[test]
fn v2_fake_enables_only_what_is_missing() {
    let fake = FakeV2::new("cpu memory pids");
    fs::write(fake.root().join("cgroup.subtree_control"), "memory").expect("fake");
    let parent = fake.node("tasksandbox", "cpu memory pids");
    let limits = CgroupLimits {
        cpu_units: Some(2048),
        ..CgroupLimits::default()
    };
    let (cg, skipped) = create_in(
        &fake.layout(),
        Path::new("tasksandbox"),
        "t",
        &limits,
        false,
    )
    .expect("create");
    assert!(skipped.is_empty());
    assert_eq!(
        read(&fake.root().join("cgroup.subtree_control")),
        "+cpu +pids"
    );
    let leaf = parent.join("t");
    assert_eq!(read(&leaf.join("cpu.max")), "200000 100000");
    assert_eq!(read(&leaf.join("cpu.weight")), "79");
    assert!(
        !leaf.join("memory.max").exists(),
        "no memory limit was asked for"
    );
    destroy_fake(cg, &leaf);
}

#[test]
fn v2_fake_missing_controller_strict_fails_clean_best_effort_reports() {
    // The kernel offers no pids controller.
    let fake = FakeV2::new("cpu memory");
    let parent = fake.node("tasksandbox", "cpu memory");

    let err = create_in(&fake.layout(), Path::new("tasksandbox"), "t", &ALL, false)
        .expect_err("no pids controller");
    match &err {
        CgroupError::MissingController {
            controller,
            limit,
            path,
        } => {
            assert_eq!(*controller, "pids");
            assert_eq!(*limit, Limit::Pids);
            assert_eq!(path, fake.root());
        }
        _ => panic!("expected MissingController, got {err}"),
    }
    assert!(!parent.join("t").exists(), "strict failure left the cgroup");

    let (cg, skipped) =
        create_in(&fake.layout(), Path::new("tasksandbox"), "t", &ALL, true).expect("best effort");
    assert_eq!(skipped, [Limit::Pids]);
    let leaf = parent.join("t");
    assert_eq!(read(&leaf.join("cpu.max")), "50000 100000");
    assert_eq!(read(&leaf.join("memory.max")), "67108864");
    assert!(!leaf.join("pids.max").exists());
    assert_eq!(read(&parent.join("cgroup.subtree_control")), "+cpu +memory");
    destroy_fake(cg, &leaf);

    // A controller wanted only for statistics never fails a strict create.
    let (cg, skipped) = create_in(
        &fake.layout(),
        Path::new("tasksandbox"),
        "u",
        &CgroupLimits {
            memory_bytes: Some(1 << 30),
            ..CgroupLimits::default()
        },
        false,
    )
    .expect("strict create without a pids limit");
    assert!(skipped.is_empty());
    destroy_fake(cg, &parent.join("u"));
}

#[test]
fn v2_fake_container_gets_a_weight_a_hard_limit_and_memory_low() {
    let fake = FakeV2::new("cpu memory pids");
    fake.node("tasksandbox", "cpu memory pids");
    let task = fake.node("tasksandbox/task", "cpu memory pids");
    let (cg, skipped) = create_in(
        &fake.layout(),
        Path::new("tasksandbox/task"),
        "ctr-app",
        &CONTAINER,
        false,
    )
    .expect("create in the fake tree");
    assert!(skipped.is_empty(), "{skipped:?}");
    // The task cgroup hands cpu and memory down to its containers.
    assert_eq!(
        read(&task.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    let leaf = task.join("ctr-app");
    assert_eq!(
        read(&leaf.join("cpu.weight")),
        imp::cpu_weight(256).to_string()
    );
    assert_eq!(read(&leaf.join("memory.max")), "33554432");
    assert_eq!(read(&leaf.join("memory.swap.max")), "0");
    assert_eq!(read(&leaf.join("memory.low")), "16777216");
    let mut files: Vec<String> = fs::read_dir(&leaf)
        .expect("listing the leaf")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // No cpu.max: a share is not a ceiling.
    assert_eq!(
        files,
        ["cpu.weight", "memory.low", "memory.max", "memory.swap.max"]
    );
    destroy_fake(cg, &leaf);

    // A reservation alone needs only the memory controller; a share alone only cpu.
    let reservation_only = CgroupLimits {
        memory_reservation_bytes: Some(8 << 20),
        ..CgroupLimits::default()
    };
    assert_eq!(reservation_only.requested(), [Limit::Memory]);
    let (cg, _) = create_in(
        &fake.layout(),
        Path::new("tasksandbox/task"),
        "ctr-side",
        &reservation_only,
        false,
    )
    .expect("create");
    let leaf = task.join("ctr-side");
    assert_eq!(read(&leaf.join("memory.low")), "8388608");
    assert!(!leaf.join("memory.max").exists());
    assert!(!leaf.join("cpu.weight").exists());
    destroy_fake(cg, &leaf);
}

#[test]
fn v2_fake_container_without_the_memory_controller_fails_its_reservation() {
    let fake = FakeV2::new("cpu pids");
    fake.node("tasksandbox", "cpu pids");
    let limits = CgroupLimits {
        memory_reservation_bytes: Some(8 << 20),
        ..CgroupLimits::default()
    };
    let err = create_in(
        &fake.layout(),
        Path::new("tasksandbox"),
        "c",
        &limits,
        false,
    )
    .expect_err("no memory controller");
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "memory",
                limit: Limit::Memory,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v2_fake_stats_and_oom_kills_are_read() {
    let fake = FakeV2::new("cpu memory pids");
    let parent = fake.node("tasksandbox", "cpu memory pids");
    let (cg, _) =
        create_in(&fake.layout(), Path::new("tasksandbox"), "t", &ALL, false).expect("create");
    let leaf = parent.join("t");
    let write = |file: &str, text: &str| fs::write(leaf.join(file), text).expect("fake");
    write(
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    write("memory.current", "4096\n");
    write("memory.peak", "8192\n");
    write("pids.current", "3\n");
    write(
        "memory.events",
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    assert_eq!(cg.oom_kills(), 1);
    assert_eq!(
        cg.stats().expect("stats"),
        CgroupStats {
            cpu_usage_ns: 1_500_000,
            memory_current_bytes: 4096,
            memory_peak_bytes: 8192,
            pids_current: 3,
            oom_kills: 1,
        }
    );
    // memory.peak appeared in Linux 5.19.
    fs::remove_file(leaf.join("memory.peak")).expect("fake");
    assert_eq!(cg.stats().expect("stats").memory_peak_bytes, 0);
    // A garbled counter is an error that names the file.
    write("memory.current", "lots\n");
    let err = cg.stats().expect_err("garbled counter");
    assert!(
        matches!(&err, CgroupError::Parse { path, .. } if path == &leaf.join("memory.current")),
        "{err}"
    );
    destroy_fake(cg, &leaf);
}

#[test]
fn v2_fake_destroy_uses_cgroup_kill_and_reports_a_busy_cgroup() {
    let fake = FakeV2::new("cpu memory pids");
    let parent = fake.node("tasksandbox", "cpu memory pids");
    let (cg, _) =
        create_in(&fake.layout(), Path::new("tasksandbox"), "t", &ALL, false).expect("create");
    let leaf = parent.join("t");
    fs::write(leaf.join("cgroup.kill"), "").expect("fake");
    // The fake directory holds plain files, so it cannot be removed: a busy cgroup.
    let err = cg.destroy().expect_err("the fake directory is not empty");
    assert!(
        matches!(&err, CgroupError::Remove { path, .. } if path == &leaf),
        "{err}"
    );
    assert_eq!(read(&leaf.join("cgroup.kill")), "1");
}

/// The host's empty cgroup2 next to v1 (hybrid layout): no controllers, but the core
/// files are real: mkdir, cgroup.procs, cgroup.kill, cpu.stat, rmdir.
#[test]
fn v2_real_core_files_on_the_hybrid_unified_mount() {
    let root = Path::new("/sys/fs/cgroup/unified");
    if !is_root() || !root.join("cgroup.controllers").exists() {
        eprintln!(
            "skipped: needs root and a cgroup2 mount at {}",
            root.display()
        );
        return;
    }
    let layout = Layout::V2 {
        root: root.to_path_buf(),
    };
    let offered = read(&root.join("cgroup.controllers"));
    let parent = TestParent::new("v2-unified", vec![root.to_path_buf()]);

    // No limits: a strict create succeeds even though no controller is offered.
    let child = sleeper();
    let (cg, skipped) =
        create_in(&layout, &parent.rel, "t", &CgroupLimits::default(), false).expect("create");
    assert!(skipped.is_empty());
    let leaf = root.join(&parent.rel).join("t");
    cg.add_process(pid_of(&child)).expect("add");
    assert_eq!(procs(&leaf), [pid_of(&child)]);
    let stats = cg.stats().expect("stats from the real cpu.stat");
    assert_eq!(stats.pids_current, 0, "no pids controller here");
    assert_eq!(cg.oom_kills(), 0);
    cg.destroy().expect("destroy through cgroup.kill");
    assert_killed(child);
    assert!(!leaf.exists());

    if offered.is_empty() {
        // A limit needs a controller the hierarchy does not have.
        let err = create_in(&layout, &parent.rel, "t", &ALL, false)
            .expect_err("no controllers on this cgroup2");
        assert!(
            matches!(&err, CgroupError::MissingController { path, .. } if path == root),
            "{err}"
        );
        assert!(!leaf.exists());
        let (cg, skipped) = create_in(&layout, &parent.rel, "t", &ALL, true).expect("best effort");
        assert_eq!(skipped, [Limit::Cpu, Limit::Memory, Limit::Pids]);
        assert!(leaf.is_dir(), "best effort still makes the cgroup");
        cg.destroy().expect("destroy");
    }
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}

// ---- timing (not an assertion) ---------------------------------------------------

/// Prints what create + add + destroy cost, with cgroups-rs controllers as used here,
/// with plain file operations doing the same, and with cgroups-rs's own `Cgroup`.
/// The variants run interleaved, in rounds; the median round is printed.
/// Run: `cargo test --release --lib -- --ignored --nocapture timing`.
#[test]
#[ignore = "prints timings; run by hand"]
fn timing_create_add_destroy() {
    use cgroups_rs::fs::{hierarchies, Cgroup, MaxValue, Resources};

    let Some(mounts) = host_v1() else { return };
    const ROUNDS: usize = 7;
    const N: u32 = 200;
    let parent = TestParent::new("v1-timing", v1_roots(&mounts));
    let no_cpu = CgroupLimits {
        cpu_units: None,
        ..ALL
    };
    let mut resources = Resources::default();
    resources.cpu.shares = Some(512);
    resources.cpu.period = Some(100_000);
    resources.cpu.quota = Some(50_000);
    resources.memory.memory_hard_limit = Some(64 << 20);
    resources.memory.memory_swap_limit = Some(64 << 20);
    resources.pid.maximum_number_of_processes = Some(MaxValue::Value(64));

    let task_cgroup = |tag: &str, limits: &CgroupLimits| {
        for i in 0..N {
            let (cg, _) =
                TaskCgroup::create(&parent.rel, &format!("{tag}{i}"), limits, false).expect("c");
            cg.destroy().expect("d");
        }
    };
    let plain = |tag: &str| {
        for i in 0..N {
            let rel = parent.rel.join(format!("{tag}{i}"));
            let dirs: Vec<PathBuf> = v1_roots(&mounts).iter().map(|r| r.join(&rel)).collect();
            for dir in &dirs {
                fs::create_dir(dir).expect("mkdir");
            }
            let cpu = mounts.cpu.as_ref().expect("cpu").join(&rel);
            let memory = mounts.memory.as_ref().expect("memory").join(&rel);
            let pids = mounts.pids.as_ref().expect("pids").join(&rel);
            for (file, value) in [
                (cpu.join("cpu.cfs_period_us"), "100000"),
                (cpu.join("cpu.cfs_quota_us"), "50000"),
                (cpu.join("cpu.shares"), "512"),
                (memory.join("memory.limit_in_bytes"), "67108864"),
                (memory.join("memory.memsw.limit_in_bytes"), "67108864"),
                (pids.join("pids.max"), "64"),
            ] {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()))
                    .expect("write");
            }
            for dir in &dirs {
                let _ = fs::read_to_string(dir.join("cgroup.procs"));
            }
            for dir in &dirs {
                fs::remove_dir(dir).expect("rmdir");
            }
        }
    };
    // cgroups-rs's Cgroup, as its README suggests using it (re-reads the mount table).
    let whole = |tag: &str| {
        for i in 0..N {
            let rel = parent.rel.join(format!("{tag}{i}"));
            let cg = Cgroup::new_with_specified_controllers(
                hierarchies::auto(),
                rel.to_string_lossy().into_owned(),
                Some(
                    ["cpu", "cpuacct", "memory", "pids"]
                        .map(String::from)
                        .to_vec(),
                ),
            )
            .expect("cgroups-rs create");
            cg.apply(&resources).expect("cgroups-rs apply");
            cg.delete().expect("cgroups-rs delete");
        }
    };

    let mut rounds: [Vec<Duration>; 4] = Default::default();
    let mut split: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS {
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            f();
            start.elapsed() / N
        };
        rounds[0].push(time(&|| task_cgroup(&format!("a{round}-"), &ALL)));
        rounds[1].push(time(&|| plain(&format!("b{round}-"))));
        rounds[2].push(time(&|| task_cgroup(&format!("c{round}-"), &no_cpu)));
        rounds[3].push(time(&|| whole(&format!("d{round}-"))));
        // With a process inside at the end: (create, add, destroy) of each task; the
        // first migration after a pause can wait for an RCU grace period, so this
        // takes the median task rather than the mean.
        for i in 0..N / 10 {
            let child = sleeper();
            let t0 = Instant::now();
            let (cg, _) =
                TaskCgroup::create(&parent.rel, &format!("e{round}-{i}"), &ALL, false).expect("c");
            let t1 = Instant::now();
            cg.add_process(pid_of(&child)).expect("a");
            let t2 = Instant::now();
            cg.destroy().expect("d");
            let t3 = Instant::now();
            for (all, sample) in split.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                all.push(sample);
            }
            assert_killed(child);
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let [ours, direct, three, cgroup] = rounds.map(median);
    let [create, add, destroy] = split.map(median);
    eprintln!(
        "per task, cgroup v1, median of {ROUNDS} rounds of {N}:\n  \
         TaskCgroup create+destroy, 4 dirs, all limits   {ours:?}\n  \
         plain file ops, same work                       {direct:?}\n  \
         TaskCgroup create+destroy, no CPU limit, 3 dirs {three:?}\n  \
         cgroups-rs Cgroup::new+apply+delete             {cgroup:?}\n  \
         with a process: create {create:?} + add {add:?} + destroy {destroy:?} \
         (kill and exit of the process included)"
    );
    assert!(parent.leftovers().is_empty(), "{:?}", parent.leftovers());
}
