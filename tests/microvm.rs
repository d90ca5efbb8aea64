//! Real boots of a jailed QEMU `microvm`: the guest's output, the VMM's confinement
//! as the host kernel reports it, and that nothing is left afterwards.
//!
//! They need root, `qemu-system-x86_64`, a static busybox and a guest kernel
//! (`scripts/fetch-guest-kernel.sh`, or `TASKSANDBOX_GUEST_KERNEL`). Without them they
//! are skipped with a note, except on CI (`CI` set), where they fail.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tasksandbox::microvm::guest::{parse_console, CommandInitramfs};
use tasksandbox::microvm::{
    detect_accelerator, Disk, Hook, MicroVm, MicrovmError, Qemu, Stage, VmSpec, JAIL_USER,
};
use tasksandbox::{Container, ExitStatus, IdMap, TaskSandbox, TaskSize};

const DEFAULT_KERNEL: &str = "/var/cache/tasksandbox/guest/vmlinuz";

/// Skips (or, on CI, fails) when something the boot needs is missing.
fn missing(what: &str) -> Option<Guest> {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide {what} (see .ci/run and scripts/fetch-guest-kernel.sh)"
    );
    eprintln!("skipped: {what} is missing");
    None
}

struct Guest {
    kernel: PathBuf,
    dir: tempfile::TempDir,
}

impl Guest {
    /// An initramfs running `command`, in a directory the jail's uid can read.
    fn initrd(&self, name: &str, command: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        CommandInitramfs::new("/bin/busybox", command.iter().copied())
            .write_to(&path)
            .expect("initramfs");
        path
    }

    fn spec(&self, id: &str, initrd: &Path) -> VmSpec {
        VmSpec::new(id, &self.kernel, TaskSize::custom(1024, 256).expect("size"))
            .initrd(initrd)
            .kernel_arg("quiet")
            .kernel_arg("panic=-1")
            .accelerator(detect_accelerator().accelerator)
    }
}

fn guest() -> Option<Guest> {
    if !can_start_tasks() {
        return None;
    }
    let kernel = std::env::var_os("TASKSANDBOX_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KERNEL));
    if !kernel.is_file() {
        return missing(&format!("the guest kernel {}", kernel.display()));
    }
    let qemu = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()))
        .unwrap_or(false);
    if !qemu {
        return missing("qemu-system-x86_64 (package qemu-system-x86)");
    }
    let busybox = std::fs::read("/bin/busybox").unwrap_or_default();
    if tasksandbox::microvm::guest::elf_is_static(&busybox) != Some(true) {
        return missing("a static /bin/busybox (package busybox-static)");
    }
    let dir = tempfile::Builder::new()
        .prefix("tasksandbox-microvm-test")
        .tempdir()
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Some(Guest { kernel, dir })
}

/// What a post_spawn hook saw of the running VMM.
#[derive(Debug, Default, Clone)]
struct Seen {
    pid: u32,
    init_pid: u32,
    status: String,
    cgroup: String,
    namespaces_shared: Vec<String>,
    root: BTreeSet<String>,
    vm_dir: BTreeSet<String>,
    jail_dir: PathBuf,
    cgroup_rel: Option<PathBuf>,
}

fn list(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds a post_spawn hook recording the VMM's confinement into the returned slot.
fn observe(vm: &mut MicroVm) -> Arc<Mutex<Option<Seen>>> {
    let slot = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    vm.hooks_mut()
        .insert_after(
            "spawn-vmm",
            Hook::new("observe", Stage::PostSpawn, move |ctx| {
                let pid = ctx.vmm_pid().expect("spawned");
                let proc = PathBuf::from(format!("/proc/{pid}"));
                let read = |f: &str| std::fs::read_to_string(proc.join(f)).unwrap_or_default();
                let namespaces_shared = ["pid", "mnt", "net", "ipc", "uts", "user", "cgroup"]
                    .iter()
                    .filter(|ns| {
                        let theirs = std::fs::read_link(proc.join("ns").join(ns)).ok();
                        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
                        theirs.is_some() && theirs == ours
                    })
                    .map(|ns| ns.to_string())
                    .collect();
                let seen = Seen {
                    pid,
                    init_pid: ctx.task.as_ref().map_or(0, |t| t.init_pid()),
                    status: read("status"),
                    cgroup: read("cgroup"),
                    namespaces_shared,
                    root: list(&proc.join("root")),
                    vm_dir: list(&proc.join("root/vm")),
                    jail_dir: ctx
                        .jail_dir
                        .as_ref()
                        .map(|d| d.path().to_path_buf())
                        .unwrap_or_default(),
                    cgroup_rel: ctx.task.as_ref().and_then(|t| t.report().cgroup.clone()),
                };
                *out.lock().expect("slot") = Some(seen);
                Ok(())
            }),
        )
        .expect("hook");
    slot
}

/// Nothing of the VM is left on the host: no process, no cgroup, no jail directory,
/// no mount.
fn assert_nothing_left(seen: &Seen) {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", seen.pid)).unwrap_or_default();
    assert!(
        !stat.contains("qemu"),
        "the VMM process {} is still there: {stat}",
        seen.pid
    );
    assert_ne!(seen.init_pid, 0);
    assert!(
        !Path::new(&format!("/proc/{}", seen.init_pid)).exists(),
        "the jail's task init {} is still there",
        seen.init_pid
    );
    let rel = seen.cgroup_rel.as_ref().expect("the jail had a cgroup");
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    hierarchies.extend(
        std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroupfs")
            .filter_map(Result::ok)
            .map(|e| e.path()),
    );
    for hierarchy in hierarchies {
        let dir = hierarchy.join(rel);
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert!(
        !seen.jail_dir.as_os_str().is_empty() && !seen.jail_dir.exists(),
        "the jail directory {} is left",
        seen.jail_dir.display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let jail = seen.jail_dir.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l.contains(jail.as_ref())),
        "a mount of the jail is left"
    );
}

#[test]
fn jailed_qemu_boots_and_runs_a_command() {
    let Some(guest) = guest() else { return };
    let initrd = guest.initrd(
        "cmd.cpio",
        &["sh", "-c", "echo hello from the guest; uname -r; exit 7"],
    );
    // A read-only disk proves the plan's binds reach the jail (QEMU opens it).
    let disk = guest.dir.path().join("data.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk");
    let spec = guest
        .spec("boot-test", &initrd)
        .disk(Disk::new("data", &disk));
    let mut vm = MicroVm::new(Qemu::new(), spec)
        .expect("plans")
        .timeout(Duration::from_secs(180));
    let seen = observe(&mut vm);
    let exit = vm.run().expect("the VM runs");
    assert!(!exit.timed_out, "timed out; console:\n{}", exit.console);
    assert_eq!(
        exit.status,
        ExitStatus::Exited(0),
        "stderr: {}",
        exit.vmm_stderr
    );
    let result = parse_console(&exit.console)
        .unwrap_or_else(|| panic!("no guest markers in the console:\n{}", exit.console));
    let mut lines = result.output.lines();
    assert_eq!(lines.next(), Some("hello from the guest"));
    let release = lines.next().expect("uname -r");
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert!(
        !release.is_empty() && release != host_release.trim(),
        "the guest ran its own kernel, not the host's: {release}"
    );
    assert_eq!(result.exit_code, 7);

    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    // The VMM's identity and confinement, as the host kernel reports them.
    let uid = status_field(&seen.status, "Uid");
    let gid = status_field(&seen.status, "Gid");
    let host_uid = (IdMap::DEFAULT.host_uid + JAIL_USER.uid).to_string();
    let host_gid = (IdMap::DEFAULT.host_gid + JAIL_USER.gid).to_string();
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        [host_uid.as_str(); 4]
    );
    assert_eq!(
        gid.split_whitespace().collect::<Vec<_>>(),
        [host_gid.as_str(); 4]
    );
    assert_eq!(status_field(&seen.status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&seen.status, "Seccomp"), "2");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&seen.status, set), "0000000000000000", "{set}");
    }
    // Its own pid, mount, network, IPC, UTS, user and cgroup namespaces.
    assert!(
        seen.namespaces_shared.is_empty(),
        "{:?}",
        seen.namespaces_shared
    );
    // Its cgroup is the jail's (or a child of it).
    let rel = seen
        .cgroup_rel
        .as_ref()
        .expect("cgroup")
        .to_string_lossy()
        .into_owned();
    assert!(
        seen.cgroup
            .lines()
            .any(|l| l.ends_with(&format!("/{rel}")) || l.contains(&format!("/{rel}/"))),
        "{rel} not in\n{}",
        seen.cgroup
    );
    // Its root holds the system directories, the VM's files and nothing else.
    let allowed: BTreeSet<String> = [
        "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "root", "tmp", "proc",
        "dev", "sys", "run", "var", "vm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(seen.root.is_subset(&allowed), "{:?}", seen.root);
    let vm_dir: Vec<&str> = seen.vm_dir.iter().map(String::as_str).collect();
    assert_eq!(vm_dir, ["config", "disks", "initrd", "kernel", "run"]);

    assert_nothing_left(&seen);
}

#[test]
fn a_vm_past_its_timeout_is_killed_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let initrd = guest.initrd("sleep.cpio", &["sleep", "600"]);
    let mut vm = MicroVm::new(Qemu::new(), guest.spec("timeout-test", &initrd))
        .expect("plans")
        .timeout(Duration::from_secs(3));
    let seen = observe(&mut vm);
    let exit = vm.run().expect("the VM runs");
    assert!(exit.timed_out);
    assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

#[test]
fn a_boot_timeout_fails_the_start_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let initrd = guest.initrd("marker.cpio", &["sleep", "600"]);
    let spec = guest
        .spec("marker-test", &initrd)
        .boot_marker("a line the guest never prints")
        .boot_timeout(Duration::from_millis(500));
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    let seen = observe(&mut vm);
    let err = vm.start().expect_err("no marker");
    match &err {
        MicrovmError::HookFailed { hook, source, .. } => {
            assert_eq!(hook, "wait-for-boot-marker");
            assert!(
                matches!(**source, MicrovmError::BootTimeout { .. }),
                "{source:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

#[test]
fn dropping_a_running_vm_kills_it_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let initrd = guest.initrd("drop.cpio", &["sleep", "600"]);
    let mut vm = MicroVm::new(Qemu::new(), guest.spec("drop-test", &initrd)).expect("plans");
    let seen = observe(&mut vm);
    let running = vm.start().expect("starts");
    assert!(running.vmm_pid().is_some());
    drop(running);
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

#[test]
fn files_the_jail_cannot_read_are_refused_before_anything_starts() {
    let Some(guest) = guest() else { return };
    let missing_kernel = VmSpec::new("missing", "/nonexistent/vmlinuz", TaskSize::default())
        .accelerator(detect_accelerator().accelerator);
    let err = MicroVm::new(Qemu::new(), missing_kernel)
        .expect("plans")
        .start()
        .expect_err("no kernel");
    let MicrovmError::HookFailed { hook, source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(hook, "check-files");
    assert!(
        source.to_string().contains("/nonexistent/vmlinuz"),
        "{source}"
    );

    use std::os::unix::fs::PermissionsExt;
    let private = guest.dir.path().join("private-kernel");
    std::fs::write(&private, b"not really a kernel").expect("write");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let spec = VmSpec::new("private", &private, TaskSize::default())
        .accelerator(detect_accelerator().accelerator);
    let err = MicroVm::new(Qemu::new(), spec)
        .expect("plans")
        .start()
        .expect_err("unreadable");
    let MicrovmError::HookFailed { hook, source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(hook, "check-files");
    assert!(source.to_string().contains("could not open it"), "{source}");
}

#[test]
fn device_nodes_are_bound_into_dev() {
    if !can_start_tasks() {
        return;
    }
    if !Path::new("/dev/net/tun").exists() {
        let _ = missing("/dev/net/tun");
        return;
    }
    let out = output(TaskSandbox::builder().container(
        Container::new("dev").device("/dev/net/tun").command([
            "/bin/sh",
            "-c",
            "stat -c '%F %t:%T' /dev/net/tun; ls /dev",
        ]),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("character special file a:c8"));
    let dev: BTreeSet<&str> = lines.collect();
    assert!(dev.contains("net") && dev.contains("null"), "{dev:?}");
    assert!(!dev.contains("kvm"), "only the asked-for devices: {dev:?}");
}
