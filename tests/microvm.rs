//! Real boots of a jailed QEMU `microvm`: the guest's output, the VMM's confinement
//! as the host kernel reports it (its identity, namespaces, cgroup limits, root and
//! mounts, read from /proc on the host while it runs), its devices and network, and
//! that nothing is left after the VM exits, is killed, or fails to boot.
//!
//! They need root, `qemu-system-x86_64`, a static busybox and the guest kernel with
//! its modules (`scripts/fetch-guest-kernel.sh`, which fills
//! `$TASKSANDBOX_GUEST_DIR`, by default /var/cache/tasksandbox/guest). Without them
//! they are skipped with a note, except on CI (`CI` set), where they fail.

mod common;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tasksandbox::microvm::guest::{
    guest_dir, modules_with_dependencies, parse_console, CommandInitramfs,
};
use tasksandbox::microvm::{
    detect_accelerator, vmm_seccomp_profile, Disk, Hook, JailDevice, JailRoot, MicroVm,
    MicrovmError, NetInterface, Qemu, Stage, VmNetns, VmSpec, Vmm, VmmPlan, JAIL_USER,
};
use tasksandbox::{Container, ExitStatus, IdMap, SeccompProfile, TaskSandbox, TaskSize};

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
    modules: PathBuf,
    dir: tempfile::TempDir,
}

impl Guest {
    /// A spec booting an initramfs that runs `command` after loading `modules` (and
    /// what they depend on), written in a directory the jail's uid can read, with
    /// the initramfs's boot marker.
    fn spec(&self, id: &str, command: &[&str], modules: &[&str]) -> VmSpec {
        let modules = modules_with_dependencies(&self.modules, modules).expect("guest modules");
        let path = self.dir.path().join(format!("{id}.cpio"));
        let spec = VmSpec::new(id, &self.kernel, TaskSize::custom(1024, 256).expect("size"))
            .kernel_arg("quiet")
            .kernel_arg("panic=-1")
            .accelerator(detect_accelerator().accelerator);
        CommandInitramfs::new("/bin/busybox", command.iter().copied())
            .modules(modules)
            .boot(spec, &path)
            .expect("initramfs")
    }

    /// A file in the test's directory owned by the jail's host uid.
    fn jail_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        let (uid, gid) = jail_host_ids();
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        path
    }
}

fn jail_host_ids() -> (u32, u32) {
    (
        IdMap::DEFAULT.host_uid + JAIL_USER.uid,
        IdMap::DEFAULT.host_gid + JAIL_USER.gid,
    )
}

fn guest() -> Option<Guest> {
    if !can_start_tasks() {
        return None;
    }
    let dir = guest_dir();
    let kernel = dir.join("vmlinuz");
    if !kernel.is_file() {
        return missing(&format!("the guest kernel {}", kernel.display()));
    }
    let modules = dir.join("modules");
    if !modules.join("virtio_net.ko").is_file() {
        return missing(&format!("the guest modules in {}", modules.display()));
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
    Some(Guest {
        kernel,
        modules,
        dir,
    })
}

/// What a hook right after spawn saw of the VMM: enough to check that nothing of it
/// is left afterwards.
#[derive(Debug, Default, Clone)]
struct Seen {
    pid: u32,
    init_pid: u32,
    jail_dir: PathBuf,
    cgroup_rel: Option<PathBuf>,
    devices: Vec<JailDevice>,
}

/// Adds a post_spawn hook right after `spawn-vmm` recording [`Seen`].
fn observe(vm: &mut MicroVm) -> Arc<Mutex<Option<Seen>>> {
    let slot = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    vm.hooks_mut()
        .insert_after(
            "spawn-vmm",
            Hook::new("observe", Stage::PostSpawn, move |ctx| {
                let seen = Seen {
                    pid: ctx.vmm_pid().expect("spawned"),
                    init_pid: ctx.task.as_ref().map_or(0, |t| t.init_pid()),
                    jail_dir: ctx
                        .jail_dir
                        .as_ref()
                        .map(|d| d.path().to_path_buf())
                        .unwrap_or_default(),
                    cgroup_rel: ctx.task.as_ref().and_then(|t| t.report().cgroup.clone()),
                    devices: ctx.jail.devices.clone(),
                };
                *out.lock().expect("slot") = Some(seen);
                Ok(())
            }),
        )
        .expect("hook");
    slot
}

/// The cgroup limits of the jail, read from the host's cgroup files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Limits {
    memory: u64,
    swap: Option<String>,
    pids: u64,
    cpu_quota: Option<(u64, u64)>,
}

fn read_limits(rel: &Path) -> Limits {
    let read = |path: PathBuf| -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let num = |s: Option<String>| -> u64 { s.and_then(|s| s.parse().ok()).unwrap_or(0) };
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        let v1 = |ctrl: &str, file: &str| {
            read(Path::new("/sys/fs/cgroup").join(ctrl).join(rel).join(file))
        };
        Limits {
            memory: num(v1("memory", "memory.limit_in_bytes")),
            swap: v1("memory", "memory.memsw.limit_in_bytes"),
            pids: num(v1("pids", "pids.max")),
            cpu_quota: v1("cpu", "cpu.cfs_quota_us")
                .zip(v1("cpu", "cpu.cfs_period_us"))
                .and_then(|(q, p)| Some((q.parse().ok()?, p.parse().ok()?))),
        }
    } else {
        let v2 = |file: &str| read(Path::new("/sys/fs/cgroup").join(rel).join(file));
        Limits {
            memory: num(v2("memory.max")),
            swap: v2("memory.swap.max"),
            pids: num(v2("pids.max")),
            cpu_quota: v2("cpu.max").and_then(|s| {
                let (q, p) = s.split_once(' ')?;
                Some((q.parse().ok()?, p.parse().ok()?))
            }),
        }
    }
}

/// What a hook after the boot marker saw of the running VMM, from the host.
#[derive(Debug, Default, Clone)]
struct Inspected {
    status: String,
    cgroup: String,
    environ: Vec<String>,
    namespaces_shared: Vec<String>,
    net_ns: String,
    /// Every path under the VMM's root, with its kind (d, f, c, s, l, ?).
    tree: Vec<(String, char)>,
    mountinfo: String,
    /// The files mapped into the VMM's memory.
    mapped: BTreeSet<String>,
    root: JailRoot,
    limits: Limits,
}

fn walk(base: &Path, rel: &str, out: &mut Vec<(String, char)>) {
    let Ok(entries) = std::fs::read_dir(base.join(rel.trim_start_matches('/'))) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = format!("{rel}/{}", entry.file_name().to_string_lossy());
        // The metadata of what is mounted there, not of the directory entry under it.
        let kind = match std::fs::symlink_metadata(entry.path()).map(|m| m.file_type()) {
            Ok(t) if t.is_dir() => 'd',
            Ok(t) if t.is_file() => 'f',
            Ok(t) if t.is_char_device() => 'c',
            Ok(t) if t.is_socket() => 's',
            Ok(t) if t.is_symlink() => 'l',
            _ => '?',
        };
        out.push((path.clone(), kind));
        if kind == 'd' {
            walk(base, &path, out);
        }
    }
}

/// Adds a post_spawn hook right after `wait-for-boot-marker` recording [`Inspected`].
fn inspect(vm: &mut MicroVm) -> Arc<Mutex<Option<Inspected>>> {
    let slot = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    vm.hooks_mut()
        .insert_after(
            "wait-for-boot-marker",
            Hook::new("inspect", Stage::PostSpawn, move |ctx| {
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
                let mut tree = Vec::new();
                walk(&proc.join("root"), "", &mut tree);
                let mapped = read("maps")
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(5))
                    .filter(|p| p.starts_with('/') && !p.starts_with("/memfd:"))
                    .map(String::from)
                    .collect();
                let rel = ctx
                    .task
                    .as_ref()
                    .and_then(|t| t.report().cgroup.clone())
                    .expect("a cgroup");
                let seen = Inspected {
                    status: read("status"),
                    cgroup: read("cgroup"),
                    environ: std::fs::read(proc.join("environ"))
                        .unwrap_or_default()
                        .split(|b| *b == 0)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect(),
                    namespaces_shared,
                    net_ns: std::fs::read_link(proc.join("ns/net"))
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    tree,
                    mountinfo: read("mountinfo"),
                    mapped,
                    root: ctx.jail.root.clone(),
                    limits: read_limits(&rel),
                };
                *out.lock().expect("slot") = Some(seen);
                Ok(())
            }),
        )
        .expect("hook");
    slot
}

/// Nothing of the VM is left on the host: no process, no cgroup, no jail directory,
/// no private device node, no mount.
fn assert_nothing_left(seen: &Seen) {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", seen.pid)).unwrap_or_default();
    assert!(
        stat.is_empty() || !stat.contains(&format!("({}", "qemu")),
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
    for device in &seen.devices {
        assert!(!device.node.exists(), "{} is left", device.node.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let jail = seen.jail_dir.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l.contains(jail.as_ref())),
        "a mount of the jail is left"
    );
}

/// A mountinfo line's mount point, options and file system type.
fn mounts(mountinfo: &str) -> Vec<(String, Vec<String>, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some((
                fields.get(4)?.to_string(),
                fields.get(5)?.split(',').map(String::from).collect(),
                fields.get(dash + 1)?.to_string(),
            ))
        })
        .collect()
}

/// The jail's root holds the VMM, its libraries and firmware (from `root`), the VM's
/// files `vm_files`, the devices `devices` and nothing else; everything is read-only
/// but the run directory (and writable disks), and only the VMM and its libraries
/// can be executed.
fn assert_minimal_root(seen: &Inspected, vm_files: &[&str], devices: &[&str]) {
    let root = &seen.root;
    assert!(root.program.is_absolute(), "{root:?}");
    let mut files: BTreeSet<String> = root
        .paths()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.extend(vm_files.iter().map(|f| f.to_string()));
    files.extend(devices.iter().map(|f| f.to_string()));
    let mut dirs: BTreeSet<String> = ["/vm/config", "/vm/run", "/dev"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for file in &files {
        for dir in Path::new(file).ancestors().skip(1) {
            if dir != Path::new("/") {
                dirs.insert(dir.to_string_lossy().into_owned());
            }
        }
    }
    let found: BTreeSet<String> = seen.tree.iter().map(|(p, _)| p.clone()).collect();
    for (path, kind) in &seen.tree {
        let expected = match kind {
            'd' => dirs.contains(path),
            // Whatever the VMM makes in its run directory (its QMP socket).
            _ if path.starts_with("/vm/run/") => true,
            'f' | 'c' => files.contains(path),
            _ => false,
        };
        assert!(expected, "{path} ({kind}) should not be in the jail's root");
    }
    for path in &files {
        assert!(
            found.contains(path),
            "{path} is missing from the jail's root"
        );
    }
    for top in ["/proc", "/sys", "/etc", "/tmp", "/root", "/home"] {
        assert!(!found.contains(top), "{top} is in the jail's root");
    }
    let execs: BTreeSet<String> = std::iter::once(&root.program)
        .chain(&root.libraries)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for (point, options, fstype) in mounts(&seen.mountinfo) {
        let has = |o: &str| options.iter().any(|x| x == o);
        assert!(
            !["proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"].contains(&fstype.as_str()),
            "{point} is a {fstype} mount"
        );
        if point == "/" {
            assert!(
                has("ro") && fstype == "tmpfs",
                "the root: {options:?} {fstype}"
            );
        } else if point == "/dev" {
            assert!(
                has("ro") && has("noexec") && has("nosuid"),
                "/dev: {options:?}"
            );
        } else if point.starts_with("/vm") {
            assert!(
                has("nosuid") && has("nodev") && has("noexec"),
                "{point}: {options:?}"
            );
            let writable = point == "/vm/run" || point.starts_with("/vm/disks/");
            assert!(writable || has("ro"), "{point} is writable: {options:?}");
        } else if execs.contains(&point) {
            assert!(has("ro") && !has("noexec"), "{point}: {options:?}");
        } else if files.contains(&point) && !point.starts_with("/dev/") {
            assert!(has("ro") && has("noexec"), "{point}: {options:?}");
        } else {
            assert!(
                devices.contains(&point.as_str()),
                "an unexpected mount on {point}"
            );
        }
    }
    // What the VMM really mapped is what the jail resolved, and all of it: every
    // library was loaded, and nothing came from elsewhere.
    for mapped in &seen.mapped {
        let path = mapped.trim_end_matches(" (deleted)");
        assert!(
            execs.contains(path) || path.starts_with("/vm/"),
            "the VMM mapped {path}, which the jail did not resolve"
        );
    }
    for lib in &execs {
        assert!(
            seen.mapped.contains(lib),
            "{lib} was resolved but the VMM never loaded it; mapped: {:?}",
            seen.mapped
        );
    }
}

#[test]
fn jailed_qemu_boots_and_runs_a_command() {
    let Some(guest) = guest() else { return };
    // A read-only disk proves the plan's binds reach the jail (QEMU opens it).
    let disk = guest.dir.path().join("data.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk");
    let spec = guest
        .spec(
            "boot-test",
            &[
                "sh",
                "-c",
                "echo hello from the guest; uname -r; sleep 2; exit 7",
            ],
            &[],
        )
        .disk(Disk::new("data", &disk));
    let memory = spec.memory_mib() + Qemu::new().memory_overhead_mib(&spec);
    let pids = Qemu::new().pids_limit(&spec);
    let mut vm = MicroVm::new(Qemu::new(), spec)
        .expect("plans")
        .timeout(Duration::from_secs(180));
    let seen = observe(&mut vm);
    let inspected = inspect(&mut vm);
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
    let inspected = inspected.lock().expect("slot").clone().expect("booted");
    // The VMM's identity and confinement, as the host kernel reports them.
    let (host_uid, host_gid) = jail_host_ids();
    let status = &inspected.status;
    let uid = status_field(status, "Uid");
    let gid = status_field(status, "Gid");
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        [host_uid.to_string().as_str(); 4]
    );
    assert_eq!(
        gid.split_whitespace().collect::<Vec<_>>(),
        [host_gid.to_string().as_str(); 4]
    );
    assert_eq!(status_field(status, "NoNewPrivs"), "1");
    assert_eq!(status_field(status, "Seccomp"), "2");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(status, set), "0000000000000000", "{set}");
    }
    // Its own pid, mount, network, IPC, UTS, user and cgroup namespaces.
    assert!(
        inspected.namespaces_shared.is_empty(),
        "{:?}",
        inspected.namespaces_shared
    );
    // Its cgroup is the jail's (or a child of it), sized for the VM: guest memory
    // plus the backend's overhead (memory and memory+swap alike), the backend's pids
    // limit, the task's CPU units as a CFS quota.
    let rel = seen
        .cgroup_rel
        .as_ref()
        .expect("cgroup")
        .to_string_lossy()
        .into_owned();
    assert!(
        inspected
            .cgroup
            .lines()
            .any(|l| l.ends_with(&format!("/{rel}")) || l.contains(&format!("/{rel}/"))),
        "{rel} not in\n{}",
        inspected.cgroup
    );
    let limits = &inspected.limits;
    assert_eq!(limits.memory, memory << 20, "{limits:?}");
    if let Some(swap) = &limits.swap {
        // cgroup v1: memory+swap equals memory (no swap); v2: no swap at all.
        assert!(
            swap == &(memory << 20).to_string() || swap == "0",
            "{limits:?}"
        );
    }
    assert_eq!(limits.pids, pids, "{limits:?}");
    assert_eq!(limits.cpu_quota, Some((100_000, 100_000)), "{limits:?}");
    // Its root holds the VMM, its libraries and firmware, the VM's files and nothing
    // else.
    assert_minimal_root(
        &inspected,
        &["/vm/kernel", "/vm/initrd", "/vm/disks/data"],
        &[],
    );
    let program = inspected.root.program.to_string_lossy().into_owned();
    assert!(program.ends_with("/qemu-system-x86_64"), "{program}");
    assert!(
        inspected
            .root
            .files
            .iter()
            .any(|f| f.ends_with("bios-microvm.bin")),
        "{:?}",
        inspected.root.files
    );

    assert_nothing_left(&seen);
}

#[test]
fn a_pre_spawn_hook_changes_the_jail() {
    let Some(guest) = guest() else { return };
    let spec = guest.spec("hook-test", &["sleep", "2"], &[]);
    let sized = spec.memory_mib() + Qemu::new().memory_overhead_mib(&spec);
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    vm.hooks_mut()
        .insert_after(
            "size-jail",
            Hook::new("resize", Stage::PreSpawn, |ctx| {
                ctx.jail.pids_limit = 80;
                ctx.jail.memory_mib += 32;
                ctx.jail
                    .env
                    .push(("TASKSANDBOX_FROM_HOOK".into(), "pre-spawn".into()));
                Ok(())
            }),
        )
        .expect("hook");
    let seen = observe(&mut vm);
    let inspected = inspect(&mut vm);
    let exit = vm.run().expect("runs");
    assert_eq!(exit.status, ExitStatus::Exited(0), "{}", exit.vmm_stderr);
    let inspected = inspected.lock().expect("slot").clone().expect("booted");
    assert_eq!(inspected.limits.pids, 80);
    assert_eq!(inspected.limits.memory, (sized + 32) << 20);
    assert!(
        inspected
            .environ
            .iter()
            .any(|v| v == "TASKSANDBOX_FROM_HOOK=pre-spawn"),
        "{:?}",
        inspected.environ
    );
    assert_nothing_left(&seen.lock().expect("slot").clone().expect("spawned"));
}

#[test]
fn a_writable_disk_is_written_by_the_guest() {
    let Some(guest) = guest() else { return };
    let disk = guest.jail_file("scratch.img", &vec![0u8; 1 << 20]);
    let spec = guest
        .spec(
            "disk-test",
            &[
                "sh",
                "-c",
                "ls /dev/vda && echo written by the guest | dd of=/dev/vda conv=fsync 2>/dev/null",
            ],
            &["virtio_mmio", "virtio_blk"],
        )
        .disk(Disk::new("scratch", &disk).writable());
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    let seen = observe(&mut vm);
    let exit = vm.run().expect("runs");
    let result = parse_console(&exit.console)
        .unwrap_or_else(|| panic!("no guest result:\n{}", exit.console));
    assert_eq!(result.exit_code, 0, "{}", result.output);
    let written = std::fs::read(&disk).expect("read the disk back");
    assert!(
        written.starts_with(b"written by the guest\n"),
        "{:?}",
        String::from_utf8_lossy(&written[..64])
    );
    assert_nothing_left(&seen.lock().expect("slot").clone().expect("spawned"));
}

#[test]
fn a_vm_past_its_timeout_is_killed_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let spec = guest.spec("timeout-test", &["sleep", "600"], &[]);
    let mut vm = MicroVm::new(Qemu::new(), spec)
        .expect("plans")
        .timeout(Duration::from_secs(4));
    let seen = observe(&mut vm);
    let exit = vm.run().expect("the VM runs");
    assert!(exit.timed_out);
    assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

#[test]
fn a_boot_marker_that_never_comes_fails_the_start_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let spec = guest
        .spec("marker-test", &["sleep", "600"], &[])
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

/// The crate's own initramfs gives the spec its boot marker, so a guest that hangs
/// before its init says it has begun fails `run()` with a timeout instead of blocking
/// it forever.
#[test]
fn a_guest_that_hangs_at_boot_ends_in_a_boot_timeout() {
    let Some(guest) = guest() else { return };
    let timeout = Duration::from_secs(6);
    let spec = guest
        .spec("hang-test", &["true"], &[])
        .boot_timeout(timeout);
    assert!(
        spec.boot_marker_line().is_some(),
        "the initramfs sets a marker"
    );
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    // The guest's init becomes busybox's `sleep`: the kernel boots, and nothing ever
    // prints the marker. Arguments after `--` on the kernel command line go to init,
    // so this goes at the very end of the planned command line.
    vm.hooks_mut()
        .push(Hook::new("init-never-starts", Stage::PreSpawn, |ctx| {
            let at = ctx
                .plan
                .args
                .iter()
                .position(|a| a == "-append")
                .ok_or_else(|| MicrovmError::Guest {
                    reason: "the plan has no -append".into(),
                })?;
            ctx.plan.args[at + 1].push_str(" rdinit=/bin/busybox -- sleep 600");
            Ok(())
        }))
        .expect("hook");
    let seen = observe(&mut vm);
    let err = vm.run().expect_err("never boots");
    match &err {
        MicrovmError::HookFailed { hook, source, .. } => {
            assert_eq!(hook, "wait-for-boot-marker");
            match &**source {
                MicrovmError::BootTimeout {
                    timeout: t,
                    waiting_for,
                } => {
                    assert_eq!(*t, timeout);
                    assert!(
                        waiting_for.contains("@@tasksandbox-guest-begin@@"),
                        "{waiting_for}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

#[test]
fn dropping_a_running_vm_kills_it_and_leaves_nothing() {
    let Some(guest) = guest() else { return };
    let spec = guest.spec("drop-test", &["sleep", "600"], &[]);
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    let seen = observe(&mut vm);
    let running = vm.start().expect("starts");
    assert!(running.vmm_pid().is_some());
    drop(running);
    let seen = seen.lock().expect("slot").clone().expect("the hook ran");
    assert_nothing_left(&seen);
}

/// The network namespace `fd` refers to, as `/proc/*/ns/net` shows it.
fn netns_id(fd: &impl AsRawFd) -> String {
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("fstat")
        .ino();
    format!("net:[{ino}]")
}

/// Who still refers to the network namespace `id`: processes, or descriptors of this
/// process.
fn holders_of(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for pid in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .is_ok_and(|l| l.to_string_lossy() == id)
        {
            out.push(format!("process {pid}"));
        }
    }
    for fd in std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(Result::ok)
    {
        if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == id) {
            out.push(format!("fd {}", fd.file_name().to_string_lossy()));
        }
    }
    out
}

const MAC: [u8; 6] = [0x02, 0xfc, 0x00, 0x00, 0x00, 0x05];

/// Boots a VM with one interface on tap `tsbtap0`, recording what a hook after
/// `make-netns` saw of the namespace and its tap.
fn boot_with_an_interface(
    guest: &Guest,
    id: &str,
    netns: Option<VmNetns>,
) -> (
    tasksandbox::microvm::VmExit,
    String,
    String,
    Seen,
    Inspected,
) {
    let spec = guest
        .spec(
            id,
            &["sh", "-c", "cat /sys/class/net/eth0/address; sleep 1"],
            &["virtio_mmio", "virtio_net"],
        )
        .interface(NetInterface::new("net0", "tsbtap0", MAC));
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    let wired = Arc::new(Mutex::new((String::new(), String::new())));
    let slot = Arc::clone(&wired);
    if let Some(netns) = netns {
        vm.hooks_mut()
            .insert_before(
                "make-netns",
                Hook::new("give-netns", Stage::Prepare, move |ctx| {
                    ctx.netns = Some(netns.clone());
                    Ok(())
                }),
            )
            .expect("hook");
    }
    vm.hooks_mut()
        .insert_after(
            "make-netns",
            Hook::new("look-at-netns", Stage::Prepare, move |ctx| {
                let netns = ctx.netns.as_ref().expect("the VM's namespace");
                let id = netns_id(&netns.fd());
                // A later hook works inside the namespace (to wire it, for example).
                let link = netns
                    .run_in(|| {
                        std::process::Command::new("ip")
                            .args(["-d", "-o", "link", "show", "tsbtap0"])
                            .output()
                    })?
                    .map_err(|e| MicrovmError::Io {
                        what: "run ip link".into(),
                        source: e,
                    })?;
                *slot.lock().expect("slot") =
                    (id, String::from_utf8_lossy(&link.stdout).into_owned());
                Ok(())
            }),
        )
        .expect("hook");
    let seen = observe(&mut vm);
    let inspected = inspect(&mut vm);
    let exit = vm.run().expect("runs");
    let (id, link) = wired.lock().expect("slot").clone();
    let seen = seen.lock().expect("slot").clone().expect("spawned");
    let inspected = inspected.lock().expect("slot").clone().expect("booted");
    (exit, id, link, seen, inspected)
}

fn assert_guest_has_the_interface(
    exit: &tasksandbox::microvm::VmExit,
    link: &str,
    inspected: &Inspected,
    id: &str,
) {
    let result = parse_console(&exit.console)
        .unwrap_or_else(|| panic!("no guest result:\n{}\n{}", exit.console, exit.vmm_stderr));
    assert_eq!(result.exit_code, 0, "{}", result.output);
    // The guest sees eth0 with the planned MAC.
    assert_eq!(
        result.output.trim(),
        "02:fc:00:00:00:05",
        "{}",
        exit.console
    );
    // The tap is persistent and belongs to the jail's uid and gid, so the
    // unprivileged VMM could attach to it; it is in the VM's namespace, not the host's.
    let (uid, gid) = jail_host_ids();
    assert!(
        link.contains("tun type tap")
            && link.contains("persist on")
            && link.contains(&format!("user {uid}"))
            && link.contains(&format!("group {gid}")),
        "{link}"
    );
    assert!(
        !Path::new("/sys/class/net/tsbtap0").exists(),
        "a tap on the host"
    );
    // The VMM ran in that namespace, with /dev/net/tun in its /dev.
    assert_eq!(inspected.net_ns, id);
    assert!(
        inspected
            .tree
            .iter()
            .any(|(p, k)| p == "/dev/net/tun" && *k == 'c'),
        "{:?}",
        inspected.tree
    );
}

#[test]
fn a_vm_interface_is_a_tap_in_the_vms_own_namespace() {
    let Some(guest) = guest() else { return };
    let (exit, id, link, seen, inspected) = boot_with_an_interface(&guest, "net-test", None);
    assert_guest_has_the_interface(&exit, &link, &inspected, &id);
    assert_minimal_root(&inspected, &["/vm/kernel", "/vm/initrd"], &["/dev/net/tun"]);
    assert_nothing_left(&seen);
    // The namespace the launch made is gone with the VM: nothing refers to it.
    assert!(holders_of(&id).is_empty(), "{:?}", holders_of(&id));
}

#[test]
fn a_runtimes_namespace_gets_the_taps_and_keeps_living() {
    let Some(guest) = guest() else { return };
    // The runtime's namespace: made here on a thread, as `ip netns add` would.
    let ours: OwnedFd = std::thread::spawn(|| {
        // SAFETY: unshare with a constant flag, on this thread only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        std::fs::File::open("/proc/thread-self/ns/net")
            .expect("netns")
            .into()
    })
    .join()
    .expect("thread");
    let our_id = netns_id(&ours);
    let given = VmNetns::existing(ours.try_clone().expect("dup"));
    assert!(!given.made_by_launch());
    let (exit, id, link, seen, inspected) = boot_with_an_interface(&guest, "own-net", Some(given));
    assert_eq!(id, our_id);
    assert_guest_has_the_interface(&exit, &link, &inspected, &id);
    assert_nothing_left(&seen);
    // Still there (this test holds it), without the VM's tap.
    assert_eq!(holders_of(&id).len(), 1, "{:?}", holders_of(&id));
    let dev = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only, to a namespace descriptor we own.
            assert_eq!(
                unsafe { libc::setns(ours.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev")
        })
        .join()
        .expect("thread")
    });
    assert!(!dev.contains("tsbtap0"), "the tap outlived the VM:\n{dev}");
}

/// A backend that runs this test binary as its "VMM", to look at the jail from inside
/// (see [`vmm_probe_helper`]), with one device.
#[derive(Debug)]
struct Probe {
    device: &'static str,
}

const PROBE_ENV: &str = "TASKSANDBOX_VMM_PROBE";

impl Vmm for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn plan(&self, _spec: &VmSpec) -> Result<VmmPlan, MicrovmError> {
        let exe = std::env::current_exe().expect("test binary");
        let mut plan = VmmPlan::new("probe", exe.to_string_lossy());
        plan.args([
            "--exact",
            "vmm_probe_helper",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]);
        plan.env.push((PROBE_ENV.into(), "1".into()));
        plan.device(self.device);
        Ok(plan)
    }

    fn memory_overhead_mib(&self, _spec: &VmSpec) -> u64 {
        64
    }

    fn seccomp_profile(&self, _spec: &VmSpec) -> SeccompProfile {
        vmm_seccomp_profile(&[])
    }
}

/// Run as the probe's "VMM" inside a jail: opens /dev/kvm as the jail's uid and asks
/// its API version, tries to signal a thread group other than its own, lists its
/// /dev, then waits to be killed. Does nothing as an ordinary test.
#[test]
fn vmm_probe_helper() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let api = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        // SAFETY: KVM_GET_API_VERSION (_IO(0xAE, 0)) takes no argument.
        Ok(kvm) => unsafe { libc::ioctl(kvm.as_raw_fd(), 0xAE00, 0) }.to_string(),
        Err(e) => format!("open failed: {e}"),
    };
    // SAFETY: a signal 0 to a thread group that is not this one; harmless either way.
    let ret = unsafe { libc::syscall(libc::SYS_tgkill, 2, 2, 0) };
    let tgkill = if ret == 0 {
        "allowed".to_string()
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(0)
            .to_string()
    };
    let dev: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    println!(
        "probe uid={uid} tgkill-other={tgkill} dev={}",
        dev.join(",")
    );
    println!("kvm-api-version={api}");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn the_jail_opens_dev_kvm_through_a_private_node() {
    if !can_start_tasks() {
        return;
    }
    if !Path::new("/dev/kvm").exists() {
        let _ = missing("/dev/kvm");
        return;
    }
    let host = std::fs::metadata("/dev/kvm").expect("/dev/kvm");
    let spec = VmSpec::new("kvm-probe", "/unused/kernel", TaskSize::default())
        .boot_marker("kvm-api-version=")
        .boot_timeout(Duration::from_secs(30));
    let mut vm = MicroVm::new(Probe { device: "/dev/kvm" }, spec).expect("plans");
    let node = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&node);
    vm.hooks_mut()
        .insert_after(
            "wait-for-boot-marker",
            Hook::new("look-at-node", Stage::PostSpawn, move |ctx| {
                let device = ctx.jail.devices.first().expect("a device").clone();
                let meta = std::fs::metadata(&device.node).expect("the private node");
                let status = std::fs::read_to_string(format!(
                    "/proc/{}/status",
                    ctx.vmm_pid().expect("pid")
                ))
                .expect("status");
                *slot.lock().expect("slot") = Some((device, meta, status));
                Ok(())
            }),
        )
        .expect("hook");
    let seen = observe(&mut vm);
    let mut running = vm.start().expect("the probe starts");
    // Give the helper's second line the time to arrive.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !running.console().text().contains("kvm-api-version=")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let console = running.console().text();
    running.kill().expect("kill");
    let exit = running.wait().expect("waits");
    assert!(!exit.timed_out);
    let line = console
        .lines()
        .find(|l| l.starts_with("kvm-api-version="))
        .unwrap_or_else(|| panic!("{console}\n{}", exit.vmm_stderr));
    assert_eq!(line, "kvm-api-version=12", "{console}");
    let probe = console
        .lines()
        .find(|l| l.starts_with("probe "))
        .expect("probe line");
    // Non-root inside (the jail's user), only the asked-for device, and no signal to
    // another thread group.
    assert!(probe.contains(&format!("uid={}", JAIL_USER.uid)), "{probe}");
    assert!(probe.ends_with("dev=kvm"), "{probe}");
    assert!(
        probe.contains(&format!("tgkill-other={}", libc::EPERM)),
        "{probe}"
    );
    let (device, meta, status) = node.lock().expect("slot").clone().expect("the hook ran");
    // The private node: the host device's numbers, the jail's ids, mode 0600; the
    // VMM a non-root host uid.
    let (uid, gid) = jail_host_ids();
    assert_eq!(device.path, Path::new("/dev/kvm"));
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), host.rdev());
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (uid, gid, 0o600)
    );
    assert_eq!(
        status_field(&status, "Uid").split_whitespace().next(),
        Some(uid.to_string().as_str())
    );
    // The host's own node is as it was.
    let after = std::fs::metadata("/dev/kvm").expect("/dev/kvm");
    assert_eq!((after.uid(), after.mode()), (host.uid(), host.mode()));
    assert_nothing_left(&seen.lock().expect("slot").clone().expect("spawned"));
}

#[test]
fn a_jail_directory_that_cannot_hold_device_nodes_is_refused() {
    if !can_start_tasks() {
        return;
    }
    // A nodev tmpfs as the base directory, in a mount namespace of this thread only.
    let err = std::thread::spawn(|| {
        let base = tempfile::tempdir().expect("tempdir");
        // SAFETY: unshare and mount on this thread's own new mount namespace.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0
            );
        }
        let target =
            std::ffi::CString::new(base.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: as above.
        let ret = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NODEV,
                std::ptr::null(),
            )
        };
        assert_eq!(ret, 0);
        let spec = VmSpec::new("nodev", "/unused/kernel", TaskSize::default());
        let mut vm = MicroVm::new(
            Probe {
                device: "/dev/null",
            },
            spec,
        )
        .expect("plans");
        vm.jail_mut().base_dir = base.path().join("jails");
        let err = vm.start().expect_err("refused");
        // SAFETY: unmount what this thread mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        err
    })
    .join()
    .expect("thread");
    match &err {
        MicrovmError::HookFailed { hook, source, .. } => {
            assert_eq!(hook, "check-devices");
            assert!(
                matches!(**source, MicrovmError::DeviceNodesNotAllowed { .. }),
                "{source:?}"
            );
            assert!(source.to_string().contains("nodev"), "{source}");
        }
        other => panic!("{other:?}"),
    }
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
fn the_example_boots_and_reports_the_vmm() {
    let Some(_guest) = guest() else { return };
    let out = std::process::Command::new(example("microvm"))
        .args(["--", "sh", "-c", "echo from the example; exit 3"])
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let (uid, _) = jail_host_ids();
    let vmm = stdout
        .lines()
        .find(|l| l.starts_with("vmm: "))
        .unwrap_or_else(|| panic!("no vmm line:\n{stdout}"));
    let prefix = format!("vmm: uid={uid} no_new_privs=1 seccomp=2 cgroup=/");
    assert!(vmm.starts_with(&prefix), "{vmm}");
    assert!(vmm.contains("tasksandbox"), "the jail's cgroup: {vmm}");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "from the example")
        .unwrap_or_else(|| panic!("no guest output:\n{stdout}"));
    assert_eq!(lines.get(at + 1), Some(&"guest exit status: 3"), "{stdout}");
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

#[test]
fn a_tap_name_taken_in_the_namespace_is_refused_and_nothing_is_left() {
    let Some(guest) = guest() else { return };
    // `lo` exists in every network namespace: the launch makes its taps, never reuses.
    let spec = guest
        .spec("taken-tap", &["true"], &[])
        .interface(NetInterface::new("net0", "lo", MAC));
    let mut vm = MicroVm::new(Qemu::new(), spec).expect("plans");
    let dir = Arc::new(Mutex::new(PathBuf::new()));
    let slot = Arc::clone(&dir);
    vm.hooks_mut()
        .insert_after(
            "make-jail-dir",
            Hook::new("record-dir", Stage::Prepare, move |ctx| {
                *slot.lock().expect("slot") = ctx.require_jail_dir()?.path().to_path_buf();
                Ok(())
            }),
        )
        .expect("hook");
    let err = vm.start().expect_err("refused");
    match &err {
        MicrovmError::HookFailed { hook, source, .. } => {
            assert_eq!(hook, "make-netns");
            assert!(
                matches!(**source, MicrovmError::Device { .. }),
                "{source:?}"
            );
            assert!(source.to_string().contains("exists already"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    let dir = dir.lock().expect("slot").clone();
    assert!(
        !dir.as_os_str().is_empty() && !dir.exists(),
        "{} is left",
        dir.display()
    );
}
