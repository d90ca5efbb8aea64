//! Tests of the whole layer: the model against the compiled programs (through the
//! interpreter), the default profile against Docker's JSON, and the programs installed
//! in a real process.

#![cfg(target_arch = "x86_64")]

use super::bpf::{self, SeccompData, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386};
use super::default::CLONE_NAMESPACE_FLAGS;
use super::profile::{ENOSYS, EPERM};
use super::profile::{TIOCLINUX, TIOCSTI};
use super::*;

mod docker;
mod kernel;

const NO_ARGS: [u64; 6] = [0; 6];

fn nr(name: &str) -> i64 {
    syscalls::number(name).unwrap_or_else(|| panic!("{name} is not an x86_64 syscall"))
}

/// What the compiled programs do with a native call, through the interpreter.
fn run(compiled: &CompiledSeccomp, nr: i64, args: [u64; 6]) -> Action {
    let ret = compiled.evaluate(&SeccompData::native(nr, args));
    Action::from_ret(ret).unwrap_or_else(|| panic!("unexpected return value {ret:#x}"))
}

/// The decision of the model and of the compiled programs, which must agree.
fn decide(
    profile: &SeccompProfile,
    compiled: &CompiledSeccomp,
    caps: Capabilities,
    nr: i64,
    args: [u64; 6],
) -> Action {
    let model = profile.decide(caps, nr, &args);
    let bpf = run(compiled, nr, args);
    assert_eq!(
        model, bpf,
        "model and BPF disagree on syscall {nr:#x} with args {args:x?} for caps {caps}"
    );
    model
}

fn default_compiled(caps: Capabilities) -> Arc<CompiledSeccomp> {
    SeccompPolicy::Default
        .compile(caps)
        .unwrap_or_else(|e| panic!("the default profile must compile: {e}"))
}

/// Capability sets that change the default profile, and some that do not.
fn cap_variants() -> Vec<Capabilities> {
    let default = Capabilities::fargate_default();
    vec![
        default,
        default.with_sys_ptrace(),
        default.drop(Capability::SysChroot),
        default.drop(Capability::SysChroot).with_sys_ptrace(),
        default.drop(Capability::NetRaw),
        Capabilities::none(),
    ]
}

#[test]
fn default_profile_specific_cases() {
    let profile = SeccompProfile::docker_default();
    let caps = Capabilities::fargate_default();
    let compiled = default_compiled(caps);
    let check = |name: &str, args: [u64; 6], want: Action| {
        let got = decide(profile, &compiled, caps, nr(name), args);
        assert_eq!(got, want, "{name}({args:x?})");
    };
    let eperm = Action::Errno(EPERM);
    let sigchld = libc::SIGCHLD as u64;
    let newuser = libc::CLONE_NEWUSER as u64;

    check("clone", [newuser | sigchld, 0, 0, 0, 0, 0], eperm);
    check("clone", [sigchld, 0, 0, 0, 0, 0], Action::Allow);
    let threads = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    check("clone", [threads, 0, 0, 0, 0, 0], Action::Allow);
    for flag in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        assert_ne!(flag as u64 & CLONE_NAMESPACE_FLAGS, 0);
        check("clone", [flag as u64 | sigchld, 0, 0, 0, 0, 0], eperm);
    }
    check("clone3", NO_ARGS, Action::Errno(ENOSYS));
    check("unshare", [newuser, 0, 0, 0, 0, 0], eperm);
    check("setns", NO_ARGS, eperm);

    check("personality", [8, 0, 0, 0, 0, 0], Action::Allow);
    check("personality", [0xffff_ffff, 0, 0, 0, 0, 0], Action::Allow);
    check("personality", [0x40_0000, 0, 0, 0, 0, 0], eperm);

    check(
        "socket",
        [libc::AF_INET as u64, 1, 0, 0, 0, 0],
        Action::Allow,
    );
    check(
        "socket",
        [libc::AF_UNIX as u64, 1, 0, 0, 0, 0],
        Action::Allow,
    );
    check("socket", [39, 1, 0, 0, 0, 0], Action::Allow);
    check("socket", [libc::AF_ALG as u64, 5, 0, 0, 0, 0], eperm);
    check("socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0], eperm);
    check("socket", [0x1_0000_0028, 1, 0, 0, 0, 0], eperm);
    check("socket", [0xffff_ffff_0000_0026, 1, 0, 0, 0, 0], eperm);

    check("ioctl", [0, TIOCSTI, 0, 0, 0, 0], eperm);
    check("ioctl", [0, 0xffff_ffff_0000_5412, 0, 0, 0, 0], eperm);
    check("ioctl", [0, TIOCLINUX, 0, 0, 0, 0], eperm);
    check("ioctl", [0, libc::FIONREAD, 0, 0, 0, 0], Action::Allow);
    check("ioctl", [0, libc::TIOCGWINSZ, 0, 0, 0, 0], Action::Allow);

    for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        check(name, NO_ARGS, eperm);
    }
    for name in ["kcmp", "pidfd_getfd", "process_madvise"] {
        check(name, NO_ARGS, eperm);
    }
    for name in ["ptrace", "process_vm_readv", "process_vm_writev"] {
        check(name, NO_ARGS, Action::Allow);
    }
    check("chroot", NO_ARGS, Action::Allow);
    check("arch_prctl", NO_ARGS, Action::Allow);
    check("modify_ldt", NO_ARGS, Action::Allow);
    check("uretprobe", NO_ARGS, Action::Allow);
    check("uprobe", NO_ARGS, eperm);
    check("open_by_handle_at", NO_ARGS, eperm);
    check("getpid", NO_ARGS, Action::Allow);

    // Numbers: x32, gaps, beyond the table.
    let run_nr = |nr: i64| decide(profile, &compiled, caps, nr, NO_ARGS);
    assert_eq!(run_nr(0x4000_0000), eperm, "x32 read");
    assert_eq!(run_nr(0x4000_0000 | 39), eperm, "x32 getpid");
    assert_eq!(run_nr(0x4000_0000 | 512), eperm, "x32 rt_sigaction");
    assert_eq!(run_nr(1000), Action::Errno(ENOSYS));
    assert_eq!(run_nr(400), Action::Errno(ENOSYS));
    assert_eq!(run_nr(337), Action::Errno(ENOSYS));
    assert_eq!(run_nr(423), Action::Errno(ENOSYS));
    assert_eq!(run_nr(470), Action::Errno(ENOSYS));
    assert_eq!(
        run_nr(512),
        Action::Errno(ENOSYS),
        "x32-only numbers in the 64-bit ABI"
    );
    assert_eq!(run_nr(424), Action::Allow, "pidfd_send_signal");
    assert_eq!(run_nr(0x8000_0000), Action::Errno(ENOSYS));
    assert_eq!(run_nr(-1), eperm, "-1 has the x32 bit set");
}

#[test]
fn capabilities_change_the_default_profile() {
    let profile = SeccompProfile::docker_default();
    let traced = Capabilities::fargate_default().with_sys_ptrace();
    let compiled = default_compiled(traced);
    for name in ["kcmp", "pidfd_getfd", "process_madvise", "ptrace"] {
        assert_eq!(
            decide(profile, &compiled, traced, nr(name), NO_ARGS),
            Action::Allow,
            "{name} with SYS_PTRACE"
        );
    }
    let no_chroot = Capabilities::fargate_default().drop(Capability::SysChroot);
    let compiled = default_compiled(no_chroot);
    assert_eq!(
        decide(profile, &compiled, no_chroot, nr("chroot"), NO_ARGS),
        Action::Errno(EPERM)
    );
    assert_eq!(
        profile.relevant_capabilities(),
        vec![Capability::SysChroot, Capability::SysPtrace],
        "the cache of SeccompPolicy::Default is keyed by exactly these"
    );
}

#[test]
fn wrong_architecture_is_killed() {
    let compiled = default_compiled(Capabilities::fargate_default());
    for arch in [AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0] {
        let data = SeccompData {
            arch,
            ..SeccompData::native(20, NO_ARGS)
        };
        assert_eq!(compiled.evaluate(&data), libc::SECCOMP_RET_KILL_PROCESS);
        for program in compiled.programs() {
            assert_eq!(bpf::run(program, &data), libc::SECCOMP_RET_KILL_PROCESS);
        }
    }
}

#[test]
fn programs_are_ordered_and_short() {
    for caps in cap_variants() {
        let compiled = default_compiled(caps);
        assert_eq!(
            compiled.kinds(),
            &[ProgramKind::Allowlist, ProgramKind::Guard]
        );
        assert_eq!(compiled.programs().len(), 2);
        for program in compiled.programs() {
            assert!(
                program.len() < bpf::MAX_INSNS,
                "{} instructions",
                program.len()
            );
            assert_eq!(bpf::check(program), Ok(()));
        }
        assert!(compiled.instruction_count() < bpf::MAX_INSNS);
    }
    // Installed in the wrong order, the allowlist's EPERM would win over ENOSYS.
    let compiled = default_compiled(Capabilities::fargate_default());
    let reversed: Vec<_> = compiled.programs().iter().rev().cloned().collect();
    let unknown = SeccompData::native(1000, NO_ARGS);
    assert_eq!(
        bpf::run_all(&reversed, &unknown),
        libc::SECCOMP_RET_ERRNO | EPERM
    );
    assert_eq!(
        compiled.evaluate(&unknown),
        libc::SECCOMP_RET_ERRNO | ENOSYS
    );
}

#[test]
fn default_policy_is_cached_per_relevant_caps() {
    let caps = Capabilities::fargate_default();
    let a = default_compiled(caps);
    let b = default_compiled(caps.drop(Capability::NetRaw));
    assert!(Arc::ptr_eq(&a, &b), "NET_RAW does not change the profile");
    let c = default_compiled(caps.with_sys_ptrace());
    assert!(!Arc::ptr_eq(&a, &c));
    assert_ne!(a.programs(), c.programs());
    let d = default_compiled(caps.drop(Capability::SysChroot));
    assert_ne!(a.programs(), d.programs());
    // Same programs as compiling the profile directly.
    let direct = compile(SeccompProfile::docker_default(), caps).map_err(|e| e.to_string());
    assert_eq!(direct.as_ref().map(|c| c.programs()), Ok(a.programs()));
}

/// Syscall numbers worth walking: the whole table and beyond, x32, odd values.
fn walk_numbers() -> Vec<i64> {
    let mut numbers: Vec<i64> = (0..=1100).collect();
    numbers.extend((0..=600).map(|n| 0x4000_0000 | n));
    numbers.extend([
        -1,
        -2,
        i64::from(i32::MIN),
        i64::from(i32::MAX),
        0x3fff_ffff,
        0x8000_0000,
        0x1_0000_0000, // cut to 0 by the kernel: read
        0x1_0000_0027, // getpid
    ]);
    numbers
}

fn walk_args() -> Vec<[u64; 6]> {
    vec![
        NO_ARGS,
        [1; 6],
        [u64::MAX; 6],
        [libc::SIGCHLD as u64, TIOCSTI, 0, 0, 0, 0],
        [
            libc::CLONE_NEWUSER as u64,
            0xffff_ffff_0000_5412,
            0,
            0,
            0,
            0,
        ],
        [0x1_0000_0028, TIOCLINUX, 0, 0, 0, 0],
        [40, 0x7E02_0000, 0, 0, 0, 0],
        [38, 0, 0, 0, 0, 0],
        [0x2_0000, 0, 0, 0, 0, 0],
        [0x1_0000_0008, 0, 0, 0, 0, 0],
    ]
}

#[test]
fn model_and_bpf_agree_on_the_full_walk() {
    let profile = SeccompProfile::docker_default();
    for caps in cap_variants() {
        let compiled = default_compiled(caps);
        for &nr in &walk_numbers() {
            for args in walk_args() {
                decide(profile, &compiled, caps, nr, args);
            }
        }
    }
}

#[test]
fn compile_errors_name_the_mistake() {
    let caps = Capabilities::fargate_default();
    let typo = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::new(["read"], Action::Allow))
        .with_rule(SyscallRule::new(["write", "opneat"], Action::Allow));
    match compile(&typo, caps) {
        Err(SeccompError::UnknownSyscall { name, rule }) => {
            assert_eq!((name.as_str(), rule), ("opneat", 1));
        }
        other => panic!("expected UnknownSyscall, got {other:?}"),
    }
    let message = compile(&typo, caps).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("rule 1 of the seccomp profile names `opneat`, which is not a Linux syscall".into())
    );

    // Names of other architectures are skipped silently.
    let multiarch = SeccompProfile::new(Action::Errno(EPERM)).with_rule(SyscallRule::new(
        [
            "read",
            "stime",
            "clock_settime64",
            "chown32",
            "arm_fadvise64_64",
        ],
        Action::Allow,
    ));
    assert!(compile(&multiarch, caps).is_ok());

    let number = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::numbers([0, 1000], Action::Allow));
    assert!(matches!(
        compile(&number, caps),
        Err(SeccompError::UnknownSyscallNumber {
            number: 1000,
            rule: 0
        })
    ));
    let errno = SeccompProfile::new(Action::Errno(5000));
    assert!(matches!(
        compile(&errno, caps),
        Err(SeccompError::ErrnoOutOfRange {
            errno: 5000,
            rule: None
        })
    ));
    let empty = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::numbers([], Action::Allow));
    assert!(matches!(
        compile(&empty, caps),
        Err(SeccompError::EmptyRule { rule: 0 })
    ));
}

#[test]
fn too_many_rules_is_an_error_not_a_broken_filter() {
    for (default, too_long) in [
        (Action::Errno(EPERM), ProgramKind::Allowlist),
        (Action::Allow, ProgramKind::Guard),
    ] {
        let mut profile = SeccompProfile::new(default);
        for value in 0..1500u64 {
            let cmd = ArgCondition::qword(1, ArgOp::Eq, value).unwrap_or_else(|e| panic!("{e}"));
            profile.push_rule(SyscallRule::new(["ioctl"], Action::Errno(EPERM)).with_arg(cmd));
        }
        match compile(&profile, Capabilities::fargate_default()) {
            Err(SeccompError::ProgramTooLong { program, len }) => {
                assert_eq!(program, too_long);
                assert!(len >= bpf::MAX_INSNS);
            }
            other => panic!("expected ProgramTooLong, got {other:?}"),
        }
    }
}

/// A tiny deterministic generator (xorshift64*), enough for differential testing.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A value near the boundaries comparisons care about.
    fn interesting(&mut self) -> u64 {
        let base = self.pick(&[
            0,
            1,
            2,
            0x28,
            0x5412,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0028,
            0xffff_ffff_0000_0000,
            0x8000_0000_0000_0000,
            u64::MAX,
        ]);
        match self.below(4) {
            0 => base.wrapping_add(1),
            1 => base.wrapping_sub(1),
            2 => self.next(),
            _ => base,
        }
    }
}

fn random_condition(rng: &mut Rng) -> ArgCondition {
    let index = rng.below(3) as u8;
    let width = rng.pick(&[ArgWidth::Dword, ArgWidth::Qword]);
    let limit = |v: u64| match width {
        ArgWidth::Dword => v & 0xffff_ffff,
        ArgWidth::Qword => v,
    };
    let op = match rng.below(7) {
        0 => ArgOp::Eq,
        1 => ArgOp::Ne,
        2 => ArgOp::Lt,
        3 => ArgOp::Le,
        4 => ArgOp::Gt,
        5 => ArgOp::Ge,
        _ => ArgOp::MaskedEq(limit(rng.interesting())),
    };
    let mut value = limit(rng.interesting());
    if let ArgOp::MaskedEq(mask) = op {
        value &= mask;
    }
    ArgCondition::new(index, op, value, width).unwrap_or_else(|e| panic!("{e}"))
}

fn random_action(rng: &mut Rng) -> Action {
    rng.pick(&[
        Action::Allow,
        Action::Allow,
        Action::Allow,
        Action::Errno(1),
        Action::Errno(13),
        Action::Errno(38),
        Action::KillProcess,
        Action::KillThread,
        Action::Trap,
        Action::Log,
    ])
}

#[test]
fn model_and_bpf_agree_on_random_profiles() {
    let pool = [0i64, 1, 2, 16, 39, 41, 56, 101, 161, 312, 435, 469];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut profile = SeccompProfile::new(random_action(&mut rng));
        for _ in 0..rng.below(12) {
            let numbers: Vec<i64> = (0..1 + rng.below(3)).map(|_| rng.pick(&pool)).collect();
            let mut rule = SyscallRule::numbers(numbers, random_action(&mut rng));
            for _ in 0..rng.below(4) {
                rule = rule.with_arg(random_condition(&mut rng));
            }
            if rng.below(5) == 0 {
                rule = rule.requires_caps([caps::Capability::CAP_SYS_PTRACE]);
            }
            if rng.below(5) == 0 {
                rule = rule.unless_caps([caps::Capability::CAP_SYS_CHROOT]);
            }
            profile.push_rule(rule);
        }
        for caps in [
            Capabilities::fargate_default(),
            Capabilities::fargate_default().with_sys_ptrace(),
            Capabilities::none(),
        ] {
            let compiled = compile(&profile, caps)
                .unwrap_or_else(|e| panic!("round {round}: {e}\n{profile:#?}"));
            for _ in 0..200 {
                let nr = match rng.below(10) {
                    0 => rng.below(1100) as i64,
                    1 => 0x4000_0000 | rng.pick(&pool),
                    _ => rng.pick(&pool),
                };
                let args = [
                    rng.interesting(),
                    rng.interesting(),
                    rng.interesting(),
                    0,
                    0,
                    0,
                ];
                decide(&profile, &compiled, caps, nr, args);
            }
        }
    }
}

#[test]
fn long_guards_use_trampolines() {
    // Enough conditional deny rules that the guard's jumps to its final returns are
    // farther than a conditional jump can reach.
    let mut rng = Rng(42);
    let mut profile = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::new(["ioctl", "fcntl", "read"], Action::Allow));
    for i in 0..120u64 {
        let name = ["ioctl", "fcntl", "read"][(i % 3) as usize];
        profile.push_rule(
            SyscallRule::new([name], Action::Errno(1 + (i % 7) as u32))
                .with_arg(random_condition(&mut rng))
                .with_arg(random_condition(&mut rng)),
        );
    }
    let caps = Capabilities::fargate_default();
    let compiled = compile(&profile, caps).unwrap_or_else(|e| panic!("{e}"));
    let guard = &compiled.programs()[1];
    assert!(
        guard.len() > 3 * 255,
        "guard has {} instructions",
        guard.len()
    );
    assert!(guard.iter().any(|i| i.code == bpf::op::JA));
    for nr in [0i64, 16, 72, 39, 400, 1000, 0x4000_0010] {
        for _ in 0..300 {
            let args = [
                rng.interesting(),
                rng.interesting(),
                rng.interesting(),
                0,
                0,
                0,
            ];
            decide(&profile, &compiled, caps, nr, args);
        }
    }
}

#[test]
fn allow_by_default_profiles_have_only_the_guard() {
    let profile = SeccompProfile::new(Action::Allow)
        .with_rule(SyscallRule::new(["ptrace"], Action::Errno(EPERM)))
        .with_rule(SyscallRule::new(["reboot"], Action::KillProcess));
    let caps = Capabilities::fargate_default();
    let compiled = compile(&profile, caps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compiled.kinds(), &[ProgramKind::Guard]);
    assert_eq!(
        decide(&profile, &compiled, caps, nr("ptrace"), NO_ARGS),
        Action::Errno(EPERM)
    );
    assert_eq!(
        decide(&profile, &compiled, caps, nr("reboot"), NO_ARGS),
        Action::KillProcess
    );
    assert_eq!(
        decide(&profile, &compiled, caps, nr("read"), NO_ARGS),
        Action::Allow
    );
    assert_eq!(
        decide(&profile, &compiled, caps, 1000, NO_ARGS),
        Action::Errno(ENOSYS)
    );
    assert_eq!(
        decide(&profile, &compiled, caps, 0x4000_0000, NO_ARGS),
        Action::Errno(EPERM)
    );
}

#[test]
fn terminal_injection_is_refused_by_every_profile() {
    let caps = Capabilities::fargate_default();
    let ioctl = nr("ioctl");
    let call = |cmd: u64| [0, cmd, 0, 0, 0, 0];
    let allow_ioctl = || SyscallRule::new(["ioctl"], Action::Allow);
    let cmd_is = |cmd: u64, width: ArgWidth| {
        ArgCondition::new(1, ArgOp::Eq, cmd, width).unwrap_or_else(|e| panic!("{e}"))
    };
    let eperm = Action::Errno(EPERM);
    let enotty = Action::Errno(25);
    // The calls: TIOCSTI, TIOCLINUX, TIOCSTI with high bits (which the kernel ignores),
    // then FIONREAD, which no guard touches.
    let cmds = [
        TIOCSTI,
        TIOCLINUX,
        0xffff_ffff_0000_0000 | TIOCSTI,
        libc::FIONREAD,
    ];
    let cases = [
        // Let through by default: refused with EPERM.
        (
            SeccompProfile::new(Action::Allow),
            [eperm, eperm, eperm, Action::Allow],
        ),
        (
            SeccompProfile::new(Action::Log),
            [eperm, eperm, eperm, Action::Log],
        ),
        // Let through by a rule: EPERM, whatever the default refusal is.
        (
            SeccompProfile::new(Action::KillProcess).with_rule(allow_ioctl()),
            [eperm, eperm, eperm, Action::Allow],
        ),
        (
            SeccompProfile::new(Action::Errno(13)).with_rule(allow_ioctl()),
            [eperm, eperm, eperm, Action::Allow],
        ),
        // Let through only for another cmd: the default refusal stands.
        (
            SeccompProfile::new(Action::KillThread)
                .with_rule(allow_ioctl().with_arg(cmd_is(libc::FIONREAD, ArgWidth::Dword))),
            [
                Action::KillThread,
                Action::KillThread,
                Action::KillThread,
                Action::Allow,
            ],
        ),
        // Refused already: the profile's answer stands, even where it is less strict
        // than the default; its 64-bit comparison misses the high bits, the guard not.
        (SeccompProfile::new(Action::Trap), [Action::Trap; 4]),
        (
            SeccompProfile::new(Action::Allow).with_rule(
                SyscallRule::new(["ioctl"], enotty).with_arg(cmd_is(TIOCSTI, ArgWidth::Qword)),
            ),
            [enotty, eperm, eperm, Action::Allow],
        ),
        (
            SeccompProfile::new(Action::KillProcess)
                .with_rule(allow_ioctl())
                .with_rule(
                    SyscallRule::new(["ioctl"], enotty).with_arg(cmd_is(TIOCSTI, ArgWidth::Dword)),
                ),
            [enotty, eperm, enotty, Action::Allow],
        ),
    ];
    for (profile, wants) in cases {
        let compiled = compile(&profile, caps).unwrap_or_else(|e| panic!("{e}"));
        let default = profile.default_action();
        for (cmd, want) in cmds.into_iter().zip(wants) {
            let got = decide(&profile, &compiled, caps, ioctl, call(cmd));
            assert_eq!(got, want, "ioctl({cmd:#x}) under default {default}");
        }
    }
}
