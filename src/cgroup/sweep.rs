//! Removing the cgroups of launchers that died without tearing their tasks down.
//!
//! A launcher killed with SIGKILL takes its task's processes along (the task init
//! exits when its control socket closes, and the kernel kills its pid namespace), but
//! nobody is left to remove the task's cgroup directories. Task cgroups are named
//! `<launcher pid>-<8 hex digits>-<n>` under their parent, so a later launcher can
//! tell whose they were. [`sweep_in`] removes, under one parent, the task cgroups
//! whose launcher is dead:
//!
//! * only names of that exact shape are looked at; nothing else under the parent
//!   (another program's cgroups, the shared parent itself) is touched;
//! * a launcher pid that is alive keeps its cgroups, whoever has the pid now (a pid
//!   reused by an unrelated process only delays the sweep until that one exits);
//! * a cgroup that still holds a process is never touched: its children are removed
//!   bottom-up with `rmdir`, which the kernel refuses (`EBUSY`) for a cgroup with a
//!   process in it, after `cgroup.procs` was read empty. Nothing is ever killed.
//!
//! A full sweep lists the parent in every hierarchy. A quick one lists it in one
//! hierarchy only, the last a task cgroup is made in (on cgroup v1 `pids`, where
//! mounted), and looks in the others only for the names of dead launchers it found
//! there: it misses only the directories of a launcher killed in the middle of making
//! its cgroups, which the next full sweep finds. The cost when nothing is stale is
//! that listing and one `kill(pid, 0)` per other launcher seen; the launcher's own
//! cgroups are skipped without a syscall.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Swept;

/// How deep a stale task cgroup is walked (task → container → nothing deeper today).
const MAX_DEPTH: usize = 8;

/// The launcher pid a task cgroup's name starts with, if `name` has the shape the
/// crate gives task cgroups: `<pid>-<8 hex digits>-<n>`.
pub(super) fn launcher_pid(name: &str) -> Option<i32> {
    let mut parts = name.split('-');
    let (pid, nonce, n) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let plain = parts.next().is_none()
        && digits(pid)
        && digits(n)
        && nonce.len() == 8
        && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    plain
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|p: &i32| *p > 0)
}

/// The names of the task cgroups directly under `dir` whose launcher `alive` says is
/// dead.
fn stale_names(dir: &Path, alive: &dyn Fn(i32) -> bool) -> Vec<std::ffi::OsString> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %dir.display(), %err, "cgroup sweep: parent not listed");
            }
            return Vec::new();
        }
    };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            name.to_str()
                .and_then(launcher_pid)
                .is_some_and(|pid| pid != me && !alive(pid))
                && entry.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|entry| entry.file_name())
        .collect()
}

/// Sweeps `<root>/<parent>` for every hierarchy root in `roots`: removes the task
/// cgroups whose launcher `alive` says is dead, wherever they hold no process.
///
/// With `quick` set to one of the roots, only that root's parent is listed, and the
/// other roots are looked at only for the stale names found there.
pub(super) fn sweep_in(
    roots: &[PathBuf],
    quick: Option<&Path>,
    parent: &Path,
    alive: &dyn Fn(i32) -> bool,
) -> Swept {
    let mut swept = Swept::default();
    let quick_names = quick.map(|root| stale_names(&root.join(parent), alive));
    for root in roots {
        let dir = root.join(parent);
        let names = match &quick_names {
            Some(names) => names
                .iter()
                .filter(|name| dir.join(name).is_dir())
                .cloned()
                .collect(),
            None => stale_names(&dir, alive),
        };
        for name in names {
            let path = dir.join(name);
            if remove_tree(&path, 0) {
                swept.removed.push(path);
            } else {
                swept.busy.push(path);
            }
        }
    }
    swept.removed.sort();
    swept.busy.sort();
    swept
}

/// Removes the cgroup `dir` and the cgroups below it, bottom-up, where none holds a
/// process; returns whether `dir` itself is gone.
fn remove_tree(dir: &Path, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let mut children_gone = true;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                children_gone &= remove_tree(&entry.path(), depth + 1);
            }
        }
    }
    if !children_gone || !procs_empty(dir) {
        return false;
    }
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => true,
        Err(err) => {
            // EBUSY: a process got in after all; the kernel keeps the cgroup.
            tracing::debug!(path = %dir.display(), %err, "cgroup sweep: left in place");
            false
        }
    }
}

/// Whether `cgroup.procs` of `dir` lists no process (a missing file counts as empty:
/// the directory is then no cgroup, and `rmdir` decides).
fn procs_empty(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(text) => text.trim().is_empty(),
        Err(err) => err.kind() == io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::{launcher_pid, sweep_in};

    #[test]
    fn only_task_cgroup_names_give_a_launcher_pid() {
        assert_eq!(launcher_pid("859-b0504d32-0"), Some(859));
        assert_eq!(launcher_pid("4194305-DEADBEEF-12"), Some(4_194_305));
        for name in [
            "859",
            "859-b0504d32",
            "859-b0504d32-0-1",
            "859-b0504d3-0",
            "859-b0504d32z-0",
            "859-g0504d32-0",
            "-b0504d32-0",
            "859-b0504d32-",
            "0-b0504d32-0",
            "x859-b0504d32-0",
            "99999999999-b0504d32-0",
            "tasksandbox",
            "ctr-app",
            "init",
        ] {
            assert_eq!(launcher_pid(name), None, "{name}");
        }
    }

    fn mkdirs(root: &Path, paths: &[&str]) {
        for p in paths {
            fs::create_dir_all(root.join(p)).unwrap();
        }
    }

    #[test]
    fn a_fake_tree_loses_exactly_the_empty_cgroups_of_dead_launchers() {
        // Two hierarchies, as on cgroup v1; pids 100 and 300 are dead, 200 alive.
        let tmp = tempfile::tempdir().unwrap();
        let roots: Vec<PathBuf> = ["cpu", "memory"]
            .iter()
            .map(|h| tmp.path().join(h))
            .collect();
        for root in &roots {
            mkdirs(
                root,
                &[
                    "tasksandbox/100-0000abcd-0/ctr-app",
                    "tasksandbox/100-0000abcd-0/ctr-side",
                    "tasksandbox/200-0000abcd-0/ctr-app",
                    "tasksandbox/300-0000abcd-1/ctr-app",
                    "tasksandbox/300-0000abcd-1/ctr-side",
                    "tasksandbox/not-a-task",
                    "tasksandbox/100-nothex00-0",
                    "other/100-0000abcd-5",
                ],
            );
            // A process still in 300's app container (a fake cgroup.procs).
            fs::write(
                root.join("tasksandbox/300-0000abcd-1/ctr-app/cgroup.procs"),
                "42\n",
            )
            .unwrap();
            // A plain file with a task cgroup's name is no cgroup.
            fs::write(root.join("tasksandbox/100-0000abcd-9"), "").unwrap();
        }
        let alive = |pid: i32| pid != 100 && pid != 300;
        let swept = sweep_in(&roots, None, Path::new("tasksandbox"), &alive);
        let mut removed: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.join("tasksandbox/100-0000abcd-0"))
            .collect();
        removed.sort();
        assert_eq!(swept.removed, removed);
        let mut busy: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.join("tasksandbox/300-0000abcd-1"))
            .collect();
        busy.sort();
        assert_eq!(swept.busy, busy);
        for root in &roots {
            let t = root.join("tasksandbox");
            assert!(!t.join("100-0000abcd-0").exists());
            // The live launcher's, the busy container (and so its task), and every
            // name of another shape or another parent stay.
            for kept in [
                "200-0000abcd-0/ctr-app",
                "300-0000abcd-1/ctr-app/cgroup.procs",
                "not-a-task",
                "100-nothex00-0",
                "100-0000abcd-9",
            ] {
                assert!(t.join(kept).exists(), "{kept}");
            }
            // The empty container of the dead launcher goes even beside a busy one.
            assert!(!t.join("300-0000abcd-1/ctr-side").exists());
            assert!(root.join("other/100-0000abcd-5").exists());
        }
        // A missing parent is nothing to sweep.
        let none = sweep_in(&roots, None, Path::new("absent"), &alive);
        assert!(none.removed.is_empty() && none.busy.is_empty());
    }

    #[test]
    fn a_quick_sweep_lists_one_hierarchy_and_misses_only_half_made_cgroups() {
        let tmp = tempfile::tempdir().unwrap();
        let roots: Vec<PathBuf> = ["cpu", "pids"].iter().map(|h| tmp.path().join(h)).collect();
        // 100 died with its cgroups complete; 300 died after making the cpu one only.
        for root in &roots {
            mkdirs(root, &["tasksandbox/100-0000abcd-0/ctr-app"]);
        }
        mkdirs(&roots[0], &["tasksandbox/300-0000abcd-0"]);
        let dead = |_: i32| false;
        let quick = sweep_in(&roots, Some(&roots[1]), Path::new("tasksandbox"), &dead);
        let mut removed: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.join("tasksandbox/100-0000abcd-0"))
            .collect();
        removed.sort();
        assert_eq!(quick.removed, removed);
        assert!(roots[0].join("tasksandbox/300-0000abcd-0").exists());
        let full = sweep_in(&roots, None, Path::new("tasksandbox"), &dead);
        assert_eq!(
            full.removed,
            vec![roots[0].join("tasksandbox/300-0000abcd-0")]
        );
    }

    #[test]
    fn a_launchers_own_cgroups_are_never_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let name = format!("tasksandbox/{me}-0000abcd-0");
        mkdirs(tmp.path(), &[&name]);
        // Even were its own pid reported dead.
        let swept = sweep_in(
            &[tmp.path().to_path_buf()],
            None,
            Path::new("tasksandbox"),
            &|_| false,
        );
        assert!(swept.removed.is_empty());
        assert!(tmp.path().join(name).exists());
    }

    #[test]
    fn on_the_host_a_dead_launchers_cgroups_go_and_a_busy_one_stays_untouched() {
        let Some(layout) = super::super::imp::system_layout() else {
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the cgroup tests as root"
            );
            eprintln!("skipped: needs root");
            return;
        }
        let roots = super::super::imp::hierarchy_roots(layout);
        let parent = PathBuf::from(format!("tasksandbox-test/sweep-{}", std::process::id()));
        // Pids above PID_MAX_LIMIT (4194304): no launcher can have them.
        let (gone, busy) = ("4194305-0000abcd-0", "4194306-0000abcd-0");
        for root in &roots {
            for dir in [gone, busy] {
                fs::create_dir_all(root.join(&parent).join(dir).join("ctr-app")).unwrap();
            }
        }
        // A process in the busy task's container, in every hierarchy.
        let mut sleeper = std::process::Command::new("/bin/sleep")
            .arg("60")
            .spawn()
            .unwrap();
        for root in &roots {
            fs::write(
                root.join(&parent).join(busy).join("ctr-app/cgroup.procs"),
                sleeper.id().to_string(),
            )
            .unwrap();
        }
        let swept = crate::cgroup::sweep_stale(&parent).unwrap();
        let still_running = sleeper.try_wait().unwrap().is_none();
        // Clean up before asserting.
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        for root in &roots {
            for dir in [
                format!("{busy}/ctr-app"),
                busy.to_string(),
                format!("{gone}/ctr-app"),
                gone.to_string(),
                String::new(),
            ] {
                let _ = fs::remove_dir(root.join(&parent).join(dir));
            }
        }
        assert!(still_running, "the sweep never kills");
        let expect = |dir: &str| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = roots.iter().map(|r| r.join(&parent).join(dir)).collect();
            v.sort();
            v
        };
        assert_eq!(swept.removed, expect(gone));
        assert_eq!(swept.busy, expect(busy));
    }
}
