//! Unit tests of the microVM module that need no VMM and no root.

use std::sync::{Arc, Mutex};

use super::elf;
use super::guest::{elf_is_static, parse_console, shell_quote, CommandInitramfs, Cpio};
use super::plan::json_string;
use super::*;
use crate::capabilities::Capabilities;
use crate::seccomp::{syscalls, SeccompPolicy, SeccompProfile};
use crate::size::TaskSize;
use crate::ExitStatus;

fn spec() -> VmSpec {
    VmSpec::new(
        "vm1",
        "/k/vmlinuz",
        TaskSize::custom(1024, 256).expect("valid size"),
    )
}

#[test]
fn sizes_come_from_the_task() {
    let vcpus = |cpu, mem| {
        VmSpec::new(
            "a",
            "/k",
            TaskSize::fargate(cpu, mem).expect("fargate size"),
        )
        .vcpu_count()
    };
    assert_eq!(vcpus(256, 512), 1);
    assert_eq!(vcpus(512, 1024), 1);
    assert_eq!(vcpus(1024, 2048), 1);
    assert_eq!(vcpus(2048, 4096), 2);
    assert_eq!(vcpus(4096, 8192), 4);
    assert_eq!(vcpus(16384, 32768), 16);
    let s = VmSpec::new("a", "/k", TaskSize::custom(1500, 300).expect("size"));
    assert_eq!(
        (s.vcpu_count(), s.memory_mib(), s.cpu_units()),
        (2, 300, Some(1500))
    );
    let s = VmSpec::new("a", "/k", TaskSize::memory_only(64).expect("size"));
    assert_eq!((s.vcpu_count(), s.cpu_units()), (1, None));
}

#[test]
fn specs_are_validated() {
    let bad: Vec<(VmSpec, &str)> = vec![
        (spec().vcpus(0), "vcpus"),
        (spec().vcpus(33), "vcpus"),
        (spec().memory(8), "memory"),
        (VmSpec::new("", "/k", TaskSize::default()), "id"),
        (VmSpec::new("a b", "/k", TaskSize::default()), "id"),
        (VmSpec::new("-a", "/k", TaskSize::default()), "id"),
        (VmSpec::new("a", "relative", TaskSize::default()), "kernel"),
        (spec().initrd("initrd"), "initrd"),
        (spec().kernel_arg("two words"), "kernel_arg"),
        (spec().kernel_arg(""), "kernel_arg"),
        (
            spec().disk(Disk::new("a", "/d")).disk(Disk::new("a", "/e")),
            "disk id",
        ),
        (spec().disk(Disk::new("a-b", "/d")), "disk id"),
        (
            spec()
                .disk(Disk::new("a", "/d").root())
                .disk(Disk::new("b", "/e").root()),
            "disk",
        ),
        (spec().vsock(Vsock::new(2, "v.sock")), "vsock guest_cid"),
        (spec().vsock(Vsock::new(3, "../v.sock")), "vsock socket"),
        (
            spec().interface(NetInterface::new("eth0", "tap0", [1, 0, 0, 0, 0, 1])),
            "mac",
        ),
        (
            spec().interface(NetInterface::new(
                "eth0",
                "a-very-long-tap-name",
                [2, 0, 0, 0, 0, 1],
            )),
            "tap",
        ),
        (spec().boot_marker("two\nlines"), "boot_marker"),
        (
            spec().boot_timeout(std::time::Duration::ZERO),
            "boot_timeout",
        ),
    ];
    for (spec, field) in bad {
        match spec.validate() {
            Err(MicrovmError::Spec { field: f, .. }) => assert_eq!(f, field, "{spec:?}"),
            other => panic!("{spec:?}: expected a {field} error, got {other:?}"),
        }
    }
    assert!(spec()
        .disk(Disk::new("root_fs", "/d").root().writable())
        .vsock(Vsock::new(3, "v.sock"))
        .validate()
        .is_ok());
}

#[test]
fn accelerator_is_kvm_only_with_a_hardware_vendor_module() {
    let host = |dev_kvm, api: Option<Result<i32, String>>, intel, amd, pvm| HostVirt {
        dev_kvm,
        kvm_api: api,
        kvm_intel: intel,
        kvm_amd: amd,
        kvm_pvm: pvm,
    };
    let ok = || Some(Ok(KVM_API_VERSION));
    let cases = [
        (
            host(true, ok(), true, false, false),
            Accelerator::Kvm,
            "kvm_intel",
        ),
        (
            host(true, ok(), false, true, false),
            Accelerator::Kvm,
            "kvm_amd",
        ),
        // This build machine: a nested PVM /dev/kvm that answers the API.
        (
            host(true, ok(), false, false, true),
            Accelerator::Tcg,
            "PVM",
        ),
        (
            host(false, None, false, false, false),
            Accelerator::Tcg,
            "no /dev/kvm",
        ),
        (
            host(false, None, true, false, false),
            Accelerator::Tcg,
            "no /dev/kvm",
        ),
        (
            host(
                true,
                Some(Err("cannot open /dev/kvm: EACCES".into())),
                true,
                false,
                false,
            ),
            Accelerator::Tcg,
            "cannot open",
        ),
        (
            host(true, Some(Ok(11)), true, false, false),
            Accelerator::Tcg,
            "API version 11",
        ),
        (
            host(true, ok(), false, false, false),
            Accelerator::Tcg,
            "neither",
        ),
    ];
    for (host, accel, reason) in cases {
        let choice = AcceleratorChoice::decide(&host);
        assert_eq!(choice.accelerator, accel, "{host:?}");
        assert!(
            choice.reason.contains(reason),
            "{host:?}: {}",
            choice.reason
        );
        if accel == Accelerator::Tcg {
            assert!(
                choice.reason.contains("falling back to TCG"),
                "{}",
                choice.reason
            );
        }
    }
}

#[test]
fn this_host_gets_a_reasoned_choice() {
    let host = HostVirt::probe();
    let choice = AcceleratorChoice::decide(&host);
    assert!(!choice.reason.is_empty());
    if host.kvm_pvm && !host.kvm_intel && !host.kvm_amd {
        assert_eq!(choice.accelerator, Accelerator::Tcg, "{choice}");
    }
}

#[test]
fn qemu_adds_the_tcg_timer_options_only_under_tcg() {
    let tcg = Qemu::new()
        .plan(&spec().accelerator(Accelerator::Tcg))
        .expect("plans");
    let append = |plan: &VmmPlan| {
        let i = plan
            .args
            .iter()
            .position(|a| a == "-append")
            .expect("-append");
        plan.args[i + 1].clone()
    };
    for opt in TCG_KERNEL_ARGS {
        assert!(
            append(&tcg).split(' ').any(|a| a == opt),
            "{}",
            append(&tcg)
        );
    }
    assert!(tcg.devices.is_empty());
    let kvm = Qemu::new().plan(&spec()).expect("plans");
    assert!(!append(&kvm).contains("tsc_early_khz"));
    assert_eq!(kvm.devices, [std::path::PathBuf::from("/dev/kvm")]);
}

#[test]
fn kvm_only_backends_refuse_tcg() {
    let tcg = spec().accelerator(Accelerator::Tcg);
    for vmm in [&Firecracker::new() as &dyn Vmm, &CloudHypervisor::new()] {
        assert!(matches!(
            vmm.plan(&tcg),
            Err(MicrovmError::Unsupported { .. })
        ));
    }
}

#[test]
fn json_strings_are_escaped() {
    let mut out = String::new();
    json_string(&mut out, "a\"b\\c\nd\u{1}é");
    assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
}

// -- seccomp -----------------------------------------------------------------------

const CLONE_THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;

#[test]
#[cfg(target_arch = "x86_64")]
fn vmm_profile_is_narrower_than_dockers() {
    let caps = Capabilities::none();
    let vmm = vmm_seccomp_profile(&[]);
    let docker = SeccompProfile::docker_default();
    let arg_sets: [[u64; 6]; 4] = [
        [0; 6],
        [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0],
        [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        [3, libc::TCGETS, 0, 0, 0, 0],
    ];
    let mut allowed = 0;
    for &(name, nr) in syscalls::all() {
        for args in &arg_sets {
            if vmm.decide(caps, nr, args) == crate::seccomp::Action::Allow {
                allowed += 1;
                assert_eq!(
                    docker.decide(caps, nr, args),
                    crate::seccomp::Action::Allow,
                    "{name}{args:?} is allowed for the VMM but not by Docker's profile"
                );
            }
        }
    }
    assert!(allowed > 100, "{allowed}");
}

#[test]
#[cfg(target_arch = "x86_64")]
fn vmm_profile_refuses_what_a_vmm_does_not_need() {
    use crate::seccomp::Action;
    let caps = Capabilities::none();
    let vmm = vmm_seccomp_profile(&[]);
    let docker = SeccompProfile::docker_default();
    let nr = |name| syscalls::number(name).expect("known syscall");
    let eperm = Action::Errno(libc::EPERM as u32);
    let fork_flags = (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
    // (call, args): allowed by Docker's default, refused for the VMM.
    let refused: [(&str, [u64; 6]); 14] = [
        // Signals to another thread group, or to any thread without naming its group.
        ("tgkill", [2, 2, 9, 0, 0, 0]),
        ("tkill", [1, 9, 0, 0, 0, 0]),
        ("ptrace", [0; 6]),
        ("process_vm_readv", [0; 6]),
        ("process_vm_writev", [0; 6]),
        ("personality", [0; 6]),
        ("kill", [1, 9, 0, 0, 0, 0]),
        ("fork", [0; 6]),
        ("vfork", [0; 6]),
        ("clone", [fork_flags, 0, 0, 0, 0, 0]),
        ("socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
        ("execveat", [0; 6]),
        ("setuid", [0; 6]),
        ("mkdirat", [0; 6]),
    ];
    for (call, args) in refused {
        assert_eq!(
            docker.decide(caps, nr(call), &args),
            Action::Allow,
            "{call}"
        );
        assert_eq!(vmm.decide(caps, nr(call), &args), eperm, "{call}");
    }
    // What QEMU does, and what the launcher needs to exec it.
    for (call, args) in [
        ("clone", [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0]),
        ("socket", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
        ("mprotect", [0; 6]),
        ("ppoll", [0; 6]),
        ("ioctl", [0, libc::TCGETS, 0, 0, 0, 0]),
        ("seccomp", [0; 6]),
        ("execve", [0; 6]),
        // raise() and pthread_kill(): its own thread group, pid 1 of its namespace.
        ("tgkill", [1, 7, libc::SIGUSR1 as u64, 0, 0, 0]),
    ] {
        assert_eq!(vmm.decide(caps, nr(call), &args), Action::Allow, "{call}");
    }
    assert_eq!(
        vmm.decide(caps, nr("clone3"), &[0; 6]),
        Action::Errno(libc::ENOSYS as u32)
    );
    assert_eq!(
        vmm.decide(caps, nr("ioctl"), &[0, libc::TIOCSTI, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(vmm.decide(caps, nr("io_uring_setup"), &[0; 6]), eperm);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn vmm_profile_compiles_and_matches_its_model() {
    use crate::seccomp::bpf::SeccompData;
    let profile = vmm_seccomp_profile(&[]);
    let caps = Capabilities::none();
    let compiled = SeccompPolicy::Profile(Arc::new(profile.clone()))
        .compile(caps)
        .expect("the VMM profile compiles");
    assert!(compiled.instruction_count() < 4096);
    for &(name, nr) in syscalls::all() {
        for args in [[0u64; 6], [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0]] {
            let want = profile.decide(caps, nr, &args).to_ret();
            let got = compiled.evaluate(&SeccompData::native(nr, args));
            assert_eq!(got, want, "{name}{args:?}");
        }
    }
}

// -- hooks -------------------------------------------------------------------------

fn noop(name: &str, stage: Stage) -> Hook {
    Hook::new(name, stage, |_| Ok(()))
}

#[test]
fn default_hooks_run_in_stage_order() {
    let hooks = default_hooks();
    let order = hooks.order();
    assert!(order.windows(2).all(|w| w[0].0 <= w[1].0), "{order:?}");
    let stages: Vec<Stage> = order.iter().map(|(s, _)| *s).collect();
    for stage in Stage::ALL {
        assert!(stages.contains(&stage), "no default {stage} hook");
    }
    assert_eq!(
        hooks.names(),
        [
            "check-files",
            "resolve-vmm",
            "check-devices",
            "make-jail-dir",
            "make-netns",
            "size-jail",
            "spawn-vmm",
            "wait-for-sockets",
            "wait-for-boot-marker",
            "wait-vmm",
            "drain-console",
            "collect-stats",
            "stop-vmm",
            "remove-netns",
            "remove-jail-dir",
        ]
    );
}

#[test]
fn hooks_insert_replace_and_remove_by_name() {
    let mut hooks = default_hooks();
    hooks
        .insert_after("spawn-vmm", noop("log-pid", Stage::PostSpawn))
        .expect("after spawn");
    hooks
        .insert_before("check-files", noop("fetch-kernel", Stage::Validate))
        .expect("first");
    hooks
        .push(noop("make-disk", Stage::Prepare))
        .expect("end of prepare");
    let names: Vec<String> = hooks.names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names[0], "fetch-kernel");
    let at = |n: &str| names.iter().position(|x| x == n).expect(n);
    assert_eq!(at("log-pid"), at("spawn-vmm") + 1);
    assert_eq!(at("make-disk"), at("make-netns") + 1);
    assert!(at("make-disk") < at("size-jail"));

    let old = hooks
        .replace(
            "wait-for-boot-marker",
            noop("wait-for-api", Stage::PostSpawn),
        )
        .expect("replace");
    assert_eq!(old.name(), "wait-for-boot-marker");
    assert!(!hooks.contains("wait-for-boot-marker"));
    let names = hooks.names();
    assert_eq!(
        names.iter().position(|n| *n == "wait-for-api"),
        Some(at("wait-for-boot-marker"))
    );

    let removed = hooks.remove("check-devices").expect("remove");
    assert_eq!(
        (removed.name(), removed.stage()),
        ("check-devices", Stage::Validate)
    );
    assert!(!hooks.contains("check-devices"));
}

#[test]
fn hooks_refuse_bad_places_and_names() {
    let mut hooks = default_hooks();
    let before = hooks.names().join(",");
    // A cleanup hook cannot run before spawn; a validate hook not after prepare.
    assert!(matches!(
        hooks.insert_before("spawn-vmm", noop("x", Stage::Cleanup)),
        Err(MicrovmError::HookOrder { .. })
    ));
    assert!(matches!(
        hooks.insert_after("make-jail-dir", noop("x", Stage::Validate)),
        Err(MicrovmError::HookOrder { .. })
    ));
    assert!(matches!(
        hooks.replace("size-jail", noop("x", Stage::Wait)),
        Err(MicrovmError::HookOrder { .. })
    ));
    assert!(matches!(
        hooks.push(noop("spawn-vmm", Stage::Spawn)),
        Err(MicrovmError::DuplicateHook { .. })
    ));
    assert!(matches!(
        hooks.replace("spawn-vmm", noop("stop-vmm", Stage::Spawn)),
        Err(MicrovmError::DuplicateHook { .. })
    ));
    assert!(matches!(
        hooks.insert_after("no-such-hook", noop("x", Stage::Spawn)),
        Err(MicrovmError::UnknownHook { .. })
    ));
    assert!(matches!(
        hooks.remove("no-such-hook"),
        Err(MicrovmError::UnknownHook { .. })
    ));
    // Nothing changed on the way.
    assert_eq!(hooks.names().join(","), before);
}

/// A launch whose hooks only record that they ran.
fn recording_vm(fail_at: Option<&'static str>) -> (MicroVm, Arc<Mutex<Vec<String>>>) {
    let mut vm = MicroVm::new(Qemu::new(), spec().accelerator(Accelerator::Tcg)).expect("plans");
    let log = Arc::new(Mutex::new(Vec::new()));
    let names: Vec<String> = vm.hooks().names().iter().map(|s| s.to_string()).collect();
    for name in names {
        let stage = vm
            .hooks()
            .order()
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(s, _)| *s)
            .expect("listed");
        let log = Arc::clone(&log);
        let fail = fail_at == Some(name.as_str());
        let own = name.clone();
        vm.hooks_mut()
            .replace(
                &name,
                Hook::new(name.clone(), stage, move |ctx| {
                    log.lock().expect("log").push(format!("{stage}:{own}"));
                    if stage == Stage::Wait {
                        ctx.status = Some(ExitStatus::Exited(0));
                    }
                    if fail {
                        return Err(MicrovmError::Guest {
                            reason: "test failure".into(),
                        });
                    }
                    Ok(())
                }),
            )
            .expect("replace");
    }
    (vm, log)
}

#[test]
fn a_launch_runs_every_stage_in_order() {
    let (vm, log) = recording_vm(None);
    let running = vm.start().expect("starts");
    let started = log.lock().expect("log").clone();
    assert_eq!(
        started.last().map(String::as_str),
        Some("post_spawn:wait-for-boot-marker")
    );
    let exit = running.wait().expect("waits");
    assert_eq!(exit.status, ExitStatus::Exited(0));
    let log = log.lock().expect("log").clone();
    let want: Vec<String> = default_hooks()
        .order()
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    assert_eq!(log, want);
}

#[test]
fn a_failed_stage_stops_the_launch_and_cleans_up() {
    let (vm, log) = recording_vm(Some("make-jail-dir"));
    let err = vm.start().expect_err("prepare fails");
    match &err {
        MicrovmError::HookFailed { hook, stage, .. } => {
            assert_eq!((hook.as_str(), *stage), ("make-jail-dir", Stage::Prepare));
        }
        other => panic!("{other:?}"),
    }
    let log = log.lock().expect("log").clone();
    assert_eq!(
        log,
        [
            "validate:check-files",
            "validate:resolve-vmm",
            "validate:check-devices",
            "prepare:make-jail-dir",
            "cleanup:stop-vmm",
            "cleanup:remove-netns",
            "cleanup:remove-jail-dir",
        ]
    );
}

#[test]
fn cleanup_runs_every_hook_even_after_a_failure() {
    let (vm, log) = recording_vm(Some("stop-vmm"));
    let err = vm
        .start()
        .expect("starts")
        .wait()
        .expect_err("cleanup fails");
    assert!(matches!(err, MicrovmError::HookFailed { ref hook, .. } if hook == "stop-vmm"));
    let log = log.lock().expect("log").clone();
    assert_eq!(
        log.last().map(String::as_str),
        Some("cleanup:remove-jail-dir")
    );
}

#[test]
fn dropping_a_started_vm_runs_cleanup() {
    let (vm, log) = recording_vm(None);
    drop(vm.start().expect("starts"));
    let log = log.lock().expect("log").clone();
    assert_eq!(
        &log[log.len() - 3..],
        [
            "cleanup:stop-vmm",
            "cleanup:remove-netns",
            "cleanup:remove-jail-dir"
        ]
    );
    assert!(!log.iter().any(|l| l.starts_with("wait:")));
}

#[test]
fn removed_spawn_is_reported_not_panicked() {
    let mut vm = MicroVm::new(Qemu::new(), spec().accelerator(Accelerator::Tcg)).expect("plans");
    for name in [
        "check-files",
        "resolve-vmm",
        "check-devices",
        "make-jail-dir",
        "spawn-vmm",
        "wait-for-sockets",
    ] {
        vm.hooks_mut().remove(name).expect("default hook");
    }
    let err = vm
        .start()
        .expect("nothing to wait for")
        .wait()
        .expect_err("no VMM");
    let MicrovmError::HookFailed { hook, source, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(hook, "wait-vmm");
    assert!(matches!(*source, MicrovmError::NotReady { .. }));
}

// -- guest -------------------------------------------------------------------------

#[test]
fn cpio_entries_are_newc() {
    let mut cpio = Cpio::new();
    cpio.dir("bin", 0o755).expect("dir");
    cpio.file("init", 0o755, b"#!/bin/sh\n").expect("file");
    let bytes = cpio.finish();
    assert_eq!(bytes.len() % 512, 0);
    assert_eq!(&bytes[..6], b"070701");
    let field = |entry: &[u8], i: usize| {
        u32::from_str_radix(
            std::str::from_utf8(&entry[6 + 8 * i..14 + 8 * i]).expect("hex"),
            16,
        )
        .expect("hex")
    };
    assert_eq!(field(&bytes, 1), 0o040755); // mode
    assert_eq!(field(&bytes, 11), 4); // "bin\0"
                                      // Header (110) + "bin\0" = 114, padded to 116.
    let second = &bytes[116..];
    assert_eq!(&second[..6], b"070701");
    assert_eq!(field(second, 1), 0o100755);
    assert_eq!(field(second, 6), 10);
    assert_eq!(&second[110..115], b"init\0");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("TRAILER!!!"));
}

fn elf(interp: bool) -> Vec<u8> {
    let mut e = vec![0u8; 0x40 + 2 * 56];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[18..20].copy_from_slice(&62u16.to_le_bytes());
    e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    e[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
    e[0x40..0x44].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    let second = if interp { 3u32 } else { 1 };
    e[0x40 + 56..0x44 + 56].copy_from_slice(&second.to_le_bytes());
    e
}

#[test]
fn static_elves_are_told_apart() {
    assert_eq!(elf_is_static(&elf(false)), Some(true));
    assert_eq!(elf_is_static(&elf(true)), Some(false));
    assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
    let mut truncated = elf(true);
    truncated.truncate(0x50);
    assert_eq!(elf_is_static(&truncated), None);
}

#[test]
fn the_init_script_quotes_the_command() {
    let init = CommandInitramfs::new("/bin/busybox", ["sh", "-c", "echo 'hi'; exit 3"]);
    let script = init.init_script();
    assert!(
        script.contains(r#"'sh' '-c' 'echo '\''hi'\''; exit 3'"#),
        "{script}"
    );
    assert!(script.ends_with("poweroff -f\n"));
    assert_eq!(shell_quote("a b"), "'a b'");
    let empty = CommandInitramfs::new("/bin/busybox", Vec::<String>::new());
    assert!(matches!(empty.build(), Err(MicrovmError::Guest { .. })));
}

#[test]
fn console_output_is_parsed_between_markers() {
    let console = "[    0.3] noise\r\n@@tasksandbox-guest-begin@@\r\nline 1\r\nline 2\r\n\
                   @@tasksandbox-guest-exit@@ 3\r\n[    1.4] reboot: Power down\r\n";
    let result = parse_console(console).expect("markers");
    assert_eq!(result.output, "line 1\nline 2\n");
    assert_eq!(result.exit_code, 3);
    assert!(parse_console("no markers").is_none());
    assert!(parse_console("@@tasksandbox-guest-begin@@\nunfinished").is_none());
}

#[test]
fn console_log_waits_for_a_marker() {
    use std::time::{Duration, Instant};
    let log = ConsoleLog::new();
    let writer = log.clone();
    let t = std::thread::spawn(move || {
        writer.push(b"boot... rea");
        std::thread::sleep(Duration::from_millis(20));
        writer.push(b"dy\n");
        writer.close();
    });
    assert!(log.wait_for(b"ready", Instant::now() + Duration::from_secs(5)));
    t.join().expect("writer");
    assert!(!log.wait_for(b"never", Instant::now() + Duration::from_secs(5)));
    assert!(log.is_closed());
    assert_eq!(log.text(), "boot... ready\n");
}

// -- jail --------------------------------------------------------------------------

#[test]
fn launch_handles_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<MicroVm>();
    send::<RunningVm>();
    send::<Hooks>();
    send::<MicrovmError>();
}

#[test]
fn the_jail_directory_holds_the_plans_files() {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: giving the run directory to the jail's uid needs root");
        return;
    }
    let base = tempfile::tempdir().expect("tempdir");
    let plan = Firecracker::new()
        .with_logs()
        .plan(&spec().initrd("/k/initrd").vsock(Vsock::new(3, "v.sock")))
        .expect("plans");
    let dir = JailDir::create(base.path(), "vm1", &plan, 101_000, 101_000).expect("creates");
    let config = std::fs::metadata(dir.config_dir().join("firecracker.json")).expect("config");
    assert_eq!((config.mode() & 0o777, config.uid()), (0o644, 0));
    let log = std::fs::metadata(dir.run_dir().join("firecracker.log")).expect("log");
    assert_eq!(
        (log.mode() & 0o777, log.uid(), log.gid()),
        (0o600, 101_000, 101_000)
    );
    let run = std::fs::metadata(dir.run_dir()).expect("run");
    assert_eq!((run.mode() & 0o777, run.uid()), (0o700, 101_000));
    assert_eq!(
        dir.host_path(Path::new("/vm/run/v.sock")),
        Some(dir.run_dir().join("v.sock"))
    );
    assert_eq!(dir.host_path(Path::new("/vm/kernel")), None);
    let [config_vol, run_vol] = dir.volumes();
    assert!(config_vol.is_read_only() && !run_vol.is_read_only());
    assert_eq!(run_vol.destination(), Path::new(JAIL_RUN_DIR));
    assert!(accessible(
        &dir.config_dir().join("firecracker.json"),
        101_000,
        101_000,
        false
    )
    .is_ok());
    assert!(accessible(
        &dir.run_dir().join("firecracker.log"),
        101_000,
        101_000,
        true
    )
    .is_ok());
    assert!(accessible(
        &dir.run_dir().join("firecracker.log"),
        101_001,
        101_001,
        false
    )
    .is_err());
    dir.remove().expect("removes");
    assert!(!dir.path().exists());
    dir.remove().expect("removing twice is fine");
}

#[test]
fn a_failed_jail_directory_leaves_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: giving the run directory to the jail's uid needs root");
        return;
    }
    let base = tempfile::tempdir().expect("tempdir");
    let plan = Firecracker::new()
        .with_logs()
        .plan(&spec().initrd("/k/initrd"))
        .expect("plans");
    // The last file of the plan fails to be written: the config, the run directory
    // and the first log exist by then.
    jail::failpoint::fail_writing("firecracker.metrics");
    let err = JailDir::create(base.path(), "vm1", &plan, 101_000, 101_000)
        .expect_err("the injected failure");
    assert!(
        matches!(&err, MicrovmError::Io { what, .. } if what.contains("firecracker.metrics")),
        "{err:?}"
    );
    let left: Vec<_> = std::fs::read_dir(base.path())
        .expect("base")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A planned file name that is a path is refused before anything is made.
    let mut bad = plan.clone();
    bad.files[0].name = "../escape.json".into();
    let err = JailDir::create(base.path(), "vm1", &bad, 101_000, 101_000).expect_err("refused");
    assert!(matches!(err, MicrovmError::Spec { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(base.path()).expect("base").count(), 0);
}

#[test]
fn guest_modules_come_with_their_dependencies_first() {
    use super::guest::modules_with_dependencies;
    let dir = tempfile::tempdir().expect("tempdir");
    let module = |name: &str, depends: &str| {
        let mut ko = b"\x7fELF....\0license=GPL\0".to_vec();
        ko.extend_from_slice(format!("depends={depends}\0vermagic=6.1\0").as_bytes());
        std::fs::write(dir.path().join(format!("{name}.ko")), ko).expect("write");
    };
    module("virtio_net", "virtio_ring,virtio,net_failover");
    module("net_failover", "failover");
    module("failover", "");
    module("virtio", "");
    module("virtio_ring", "");
    module("virtio_mmio", "virtio,virtio_ring");
    let names = |paths: Vec<std::path::PathBuf>| -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let order =
        modules_with_dependencies(dir.path(), &["virtio_mmio", "virtio-net"]).expect("resolves");
    assert_eq!(
        names(order),
        [
            "virtio",
            "virtio_ring",
            "virtio_mmio",
            "failover",
            "net_failover",
            "virtio_net"
        ]
    );
    module("virtio_blk", "virtio,missing_one");
    let err = modules_with_dependencies(dir.path(), &["virtio_blk"]).expect_err("missing");
    assert!(
        err.to_string().contains("missing_one.ko")
            && err.to_string().contains("needed by virtio_blk"),
        "{err}"
    );
    std::fs::write(dir.path().join("junk.ko"), b"not a module").expect("write");
    assert!(modules_with_dependencies(dir.path(), &["junk"]).is_err());
    // The init script loads them in order, before the marker.
    let script = CommandInitramfs::new("/bin/busybox", ["true"])
        .modules([
            dir.path().join("virtio.ko"),
            dir.path().join("virtio_mmio.ko"),
        ])
        .init_script();
    let a = script
        .find("insmod /lib/modules/virtio.ko")
        .expect("virtio");
    let b = script
        .find("insmod /lib/modules/virtio_mmio.ko")
        .expect("mmio");
    let begin = script.find(guest::BEGIN_MARKER).expect("marker");
    assert!(a < b && b < begin, "{script}");
}

#[test]
fn the_elf_closure_is_what_the_loader_loaded() {
    // This test binary was loaded by the real loader: what it mapped is the oracle.
    let exe = std::env::current_exe().expect("test binary");
    let closure = elf::closure(&exe, &[]).expect("resolves");
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).expect("canonical");
    let mut resolved: Vec<std::path::PathBuf> = closure
        .interpreter
        .iter()
        .chain(&closure.libraries)
        .map(|p| canonical(p))
        .collect();
    resolved.sort();
    resolved.dedup();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let exe = canonical(&exe);
    // Executable mappings: what the loader loaded (not, say, debug files a backtrace
    // reads).
    let mut mapped: Vec<std::path::PathBuf> = maps
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|perms| perms.contains('x'))
        })
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(std::path::PathBuf::from)
        .filter(|p| *p != exe && elf::read(p).ok().flatten().is_some())
        .map(|p| canonical(&p))
        .collect();
    mapped.sort();
    mapped.dedup();
    assert!(!resolved.is_empty(), "a dynamically linked test binary");
    assert_eq!(resolved, mapped);
}

#[test]
fn ld_so_conf_includes_are_followed_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("ld.so.conf");
    let d = dir.path().join("ld.so.conf.d");
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::write(
        &conf,
        "/opt/first\ninclude ld.so.conf.d/*.conf\n# a comment\n/opt/last # trailing\n",
    )
    .expect("write");
    std::fs::write(d.join("b.conf"), "/opt/b\n").expect("write");
    std::fs::write(
        d.join("a.conf"),
        "/opt/a1\n/opt/a2\ninclude /nonexistent/*.conf\n",
    )
    .expect("write");
    std::fs::write(d.join("ignored.txt"), "/opt/no\n").expect("write");
    let dirs = elf::ld_so_conf_dirs(&conf);
    let dirs: Vec<&str> = dirs.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(
        dirs,
        ["/opt/first", "/opt/a1", "/opt/a2", "/opt/b", "/opt/last"]
    );
}

#[test]
fn elf_files_that_are_not_are_told_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("script");
    std::fs::write(&text, b"#!/bin/sh\necho hi\n").expect("write");
    assert_eq!(elf::read(&text).expect("reads"), None);
    let truncated = dir.path().join("truncated");
    let mut bytes = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
    bytes.truncate(70);
    std::fs::write(&truncated, &bytes).expect("write");
    assert!(elf::read(&truncated).is_err());
    assert!(elf::closure(&text, &[]).is_err());
}

#[test]
fn jail_directories_of_dead_launchers_are_swept_and_nothing_else() {
    let base = tempfile::tempdir().expect("tempdir");
    // A pid that was alive a moment ago and is not any more.
    let mut child = std::process::Command::new("/bin/true")
        .spawn()
        .expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait");
    assert!(!crate::sys::process_exists(dead as i32));
    let me = std::process::id();
    let make = |name: &str| {
        let dir = base.path().join(name);
        std::fs::create_dir_all(dir.join("config")).expect("mkdir");
        std::fs::create_dir_all(dir.join("run")).expect("mkdir");
        std::fs::write(dir.join("config/vm.json"), "{}").expect("write");
        dir
    };
    let stale = make(&format!("vm1-{dead}-0"));
    let own = make(&format!("vm1-{me}-1"));
    let alive = make("vm1-1-0");
    let unrelated = make(&format!("not-a-jail-{dead}"));
    let malformed = make(&format!("-{dead}-0"));
    // A stale directory with a mount point in it is left alone: nothing is removed
    // through a mount.
    let mounted = make(&format!("vm2-{dead}-3"));
    let is_root = nix::unistd::geteuid().is_root();
    if is_root {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(mounted.join("run"))
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs: {status}");
        std::fs::write(mounted.join("run/keep"), "x").expect("write into the mount");
    }

    let removed = sweep_stale_jail_dirs(base.path());

    if is_root {
        assert!(mounted.join("run/keep").exists());
        let status = std::process::Command::new("umount")
            .arg(mounted.join("run"))
            .status()
            .expect("run umount");
        assert!(status.success(), "umount: {status}");
    }
    assert_eq!(removed, vec![stale.clone()]);
    assert!(!stale.exists());
    for kept in [&own, &alive, &unrelated, &malformed] {
        assert!(kept.join("config/vm.json").exists(), "{}", kept.display());
    }
    assert_eq!(is_root, mounted.exists());
}
