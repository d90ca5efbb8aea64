//! Hostile root filesystems: an image that plants symlinks where the sandbox mounts
//! (`/dev`, `/proc`, `/sys`, `/dev/null`, a masked path, a volume's destination),
//! before the task is built or swapped in between build and start, as in runc's 2025
//! advisories (CVE-2025-31133, CVE-2025-52565, CVE-2025-52881). The start must either
//! fail with a typed error or mask correctly; the host's files the symlinks point at
//! are never written to nor shown to the task.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{can_start_tasks, example};
use tasksandbox::{ConfigError, Container, Error, TaskSandbox, Volume};

/// A host file an image must never reach, and a host directory beside it.
struct Canary {
    dir: tempfile::TempDir,
}

const SECRET: &str = "host secret: must never be seen or changed\n";

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, SECRET).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        Canary { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// What the host directory holds, with each entry's size and mtime.
    fn state(&self) -> Vec<(String, u64, i64)> {
        let mut out: Vec<(String, u64, i64)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.len(),
                    m.mtime(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn assert_untouched(&self, before: &[(String, u64, i64)]) {
        assert_eq!(self.state(), before, "the host directory changed");
        assert_eq!(std::fs::read_to_string(self.file()).unwrap(), SECRET);
    }
}

/// A root filesystem with a shell: the host's `/usr` bound read-only over `usr`, and
/// the merged-/usr symlinks, relative and inside the root.
fn rootfs() -> tempfile::TempDir {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.path().join("usr")).unwrap();
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        symlink(target, root.path().join(link)).unwrap();
    }
    root
}

/// A container in `root` running `script` with the host's /usr bound in.
fn shell(root: &Path, script: &str) -> Container {
    Container::new("image")
        .rootfs(root)
        .volume(Volume::bind("/usr", "/usr"))
        .command(["/bin/sh", "-c", script])
}

/// The script's stdout, asserting it succeeded.
fn run_ok(container: Container) -> String {
    let out = TaskSandbox::builder()
        .container(container)
        .build()
        .expect("builds")
        .output()
        .expect("starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What each masked or null path looks like inside, and whether it reads empty.
const LOOK: &str = "for p in /dev/null /proc/keys /proc/timer_list /proc/interrupts; do \
    echo \"$p $(stat -c '%F %t:%T' $p) $(head -c 64 $p | wc -c)\"; done; \
    ls -A /sys/firmware | wc -l; \
    grep -c 'host secret' /dev/null /proc/keys /proc/timer_list 2>/dev/null; \
    echo x > /dev/null && echo wrote-null";

/// Asserts the output of [`LOOK`]: the null device and the masks are char 1:3 and
/// empty, /sys/firmware is empty, nothing shows the secret.
fn assert_masked(out: &str) {
    for p in [
        "/dev/null",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/interrupts",
    ] {
        assert!(
            out.lines()
                .any(|l| l == format!("{p} character special file 1:3 0")),
            "{p} is not the null device:\n{out}"
        );
    }
    assert!(!out.contains(":1\n") || !out.contains("secret"), "{out}");
    assert!(out.contains("wrote-null"), "{out}");
    let firmware = out.lines().nth(4).unwrap_or("");
    assert_eq!(firmware, "0", "/sys/firmware is empty: {out}");
}

fn rootfs_error(err: &ConfigError) -> Option<(&Path, &str)> {
    match err {
        ConfigError::Rootfs { path, reason, .. } => Some((path, reason)),
        _ => None,
    }
}

#[test]
fn a_rootfs_whose_dev_proc_or_sys_is_a_symlink_is_refused() {
    if !can_start_tasks() {
        return;
    }
    for dir in ["dev", "proc", "sys"] {
        let canary = Canary::new();
        let before = canary.state();
        let root = rootfs();
        symlink(canary.dir.path(), root.path().join(dir)).unwrap();
        let err = TaskSandbox::builder()
            .container(shell(root.path(), "true"))
            .build()
            .expect_err("a symlinked mount point");
        let (path, reason) = rootfs_error(&err).unwrap_or_else(|| panic!("{dir}: {err:?}"));
        assert_eq!(path, root.path().join(dir), "{err}");
        assert!(reason.contains("symlink"), "{reason}");
        canary.assert_untouched(&before);
    }
}

#[test]
fn image_symlinks_below_dev_proc_and_sys_are_covered_by_fresh_mounts() {
    // The image's /dev/null, /proc/keys, /proc/sys/kernel/core_pattern and
    // /sys/firmware point at the host's file and directory: the task sees its own
    // /dev, procfs and sysfs over them, masked.
    if !can_start_tasks() {
        return;
    }
    let canary = Canary::new();
    let before = canary.state();
    let root = rootfs();
    for dir in ["dev", "proc/sys/kernel", "sys"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    for link in [
        "dev/null",
        "dev/zero",
        "proc/keys",
        "proc/timer_list",
        "proc/sys/kernel/core_pattern",
    ] {
        symlink(canary.file(), root.path().join(link)).unwrap();
    }
    symlink(canary.dir.path(), root.path().join("sys/firmware")).unwrap();
    let out = run_ok(shell(root.path(), LOOK));
    assert_masked(&out);
    canary.assert_untouched(&before);
}

#[test]
fn a_volume_whose_destination_goes_through_a_symlink_is_refused() {
    // The image's /data is a symlink to a host directory: a volume at /data/x would
    // have its mount point made there, on the host.
    if !can_start_tasks() {
        return;
    }
    let canary = Canary::new();
    let before = canary.state();
    let root = rootfs();
    symlink(canary.dir.path(), root.path().join("data")).unwrap();
    for destination in ["/data/x", "/data"] {
        let err = TaskSandbox::builder()
            .container(
                shell(root.path(), "true").volume(Volume::bind(example("probe"), destination)),
            )
            .build()
            .expect_err("a volume through a symlink");
        let (path, reason) = rootfs_error(&err).unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(path, root.path().join("data"), "{err}");
        assert!(reason.contains("symlink"), "{reason}");
        canary.assert_untouched(&before);
    }
}

#[test]
fn a_rootfs_swapped_for_symlinks_between_build_and_start_is_refused() {
    // Built on a clean image; before the start, the image's /dev becomes a symlink to
    // a directory (absolute, so that inside the new root it names a directory of the
    // image) whose `null` is a symlink to the task's core_pattern: were /dev/null
    // resolved there, every mask would be a writable bind of core_pattern.
    if !can_start_tasks() {
        return;
    }
    let canary = Canary::new();
    let before = canary.state();
    for swapped in ["dev", "proc", "sys", "usr"] {
        let root = rootfs();
        let sandbox = TaskSandbox::builder()
            .container(shell(root.path(), LOOK))
            .build()
            .expect("a clean image builds");
        let fake = root.path().join("fake");
        std::fs::create_dir(&fake).unwrap();
        symlink("/proc/sys/kernel/core_pattern", fake.join("null")).unwrap();
        std::fs::remove_dir(root.path().join(swapped)).unwrap();
        // Absolute: on the host it names the canary's directory, in the new root the
        // image's /fake... both of which the sandbox must not use.
        symlink(canary.dir.path(), root.path().join(swapped)).unwrap();
        match sandbox.output() {
            Err(Error::Launch(err)) => {
                // The child's check of the mount point, right before the mount.
                eprintln!("{swapped}: refused at start: {err}");
                assert_eq!(err.step, tasksandbox::Step::Mount, "{err}");
                assert_eq!(err.errno, nix::errno::Errno::ELOOP, "{err}");
                let detail = err.detail.clone().unwrap_or_default();
                assert!(
                    detail.contains(&format!("{}/{swapped}", root.path().display()))
                        && detail.contains("no symlink"),
                    "{err}"
                );
            }
            Err(err) => panic!("{swapped}: not the mount point's check: {err:?}"),
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert_masked(&stdout);
            }
        }
        canary.assert_untouched(&before);
    }
}

/// Asserts that `result` is the refusal to exec the launcher's own binary.
fn assert_launcher_refused<T>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::Launch(err)) => {
            assert_eq!(err.step, tasksandbox::Step::Exec, "{what}: {err}");
            assert_eq!(err.errno, nix::errno::Errno::EACCES, "{what}: {err}");
        }
        Err(other) => panic!("{what}: not the refusal of the launcher's binary: {other:?}"),
        Ok(_) => panic!("{what}: the launcher's binary ran inside the container"),
    }
}

#[test]
fn an_image_program_that_leads_to_proc_self_exe_is_refused() {
    // CVE-2019-5736 starts so: the image's program is /proc/self/exe, which in a child
    // that has not exec'd yet is the launcher's own binary. It never runs inside.
    if !can_start_tasks() {
        return;
    }
    let root = rootfs();
    symlink("/proc/self/exe", root.path().join("entry")).unwrap();
    let image = Container::new("image")
        .rootfs(root.path())
        .volume(Volume::bind("/usr", "/usr"))
        .command(["/entry"]);
    let built = TaskSandbox::builder().container(image).build().unwrap();
    assert_launcher_refused("an image's /entry", built.output());
    let direct = TaskSandbox::builder()
        .container(Container::new("direct").command(["/proc/self/exe", "--list"]))
        .build()
        .unwrap();
    assert_launcher_refused("/proc/self/exe", direct.output());
    // The launcher's binary bound in on purpose is the caller's choice, and runs.
    let me = std::env::current_exe().unwrap();
    let bound = TaskSandbox::builder()
        .container(
            Container::new("bound")
                .volume(Volume::bind(&me, "/self"))
                .command(["/self", "--list"]),
        )
        .build()
        .unwrap()
        .output()
        .expect("a bound launcher binary runs");
    assert!(bound.status.success(), "{}", bound.status);
    assert!(String::from_utf8_lossy(&bound.stdout).contains("proc_self_exe"));
    // Nor through an exec into a running container.
    let mut task = TaskSandbox::builder()
        .container(Container::new("app").command(["/bin/sleep", "60"]))
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert_launcher_refused("exec", task.exec("app", ["/proc/self/exe"]));
    let fine = task
        .exec("app", ["/bin/true"])
        .expect("an ordinary exec works");
    assert!(fine.status.success());
    task.kill().unwrap();
}
