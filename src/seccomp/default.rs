//! The built-in default profile, as data in the profile model.
//!
//! The rules mirror Docker's default profile (moby/profiles `seccomp/default.json`) one
//! for one: the same names, actions, argument conditions and `includes`/`excludes`, so
//! that importing Docker's JSON decides every syscall the same way, and is equal to
//! this profile rule for rule. One thing differs from Docker's Go loader, for imports
//! too: `int`-typed arguments (`socket`'s domain, `personality`'s persona, `ioctl`'s
//! cmd) are compared as 32-bit values ([`ArgWidth::Dword`](super::ArgWidth::Dword)),
//! as the kernel reads them. Docker compares 64 bits, so `socket(0x1_0000_0028, ..)`
//! passes its `> 40` rule while the kernel creates an `AF_VSOCK` socket.
//!
//! What the sandbox adds (`ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` refused, x32 numbers
//! refused, unknown numbers answered with `ENOSYS`, other architectures killed) holds
//! for every profile, imported ones included, and lives in the model's
//! [terminal guard](super::SeccompProfile#semantics) and the compiler's guard program.

use caps::Capability as Cap;

use super::profile::{
    Action, Arch, ArgCondition, ArgOp, ArgWidth, KernelVersion, SeccompProfile, SyscallRule,
    ENOSYS, EPERM,
};

/// The `int`-typed arguments profile conditions compare as 32 bits
/// ([`ArgWidth::Dword`]), as `(syscall, argument index)`: the kernel reads only their
/// low 32 bits. Every other argument is compared as 64 bits. The built-in profile and
/// the JSON import both take widths from here, so that they compare alike.
pub(crate) const DWORD_ARGS: &[(&str, u8)] = &[("socket", 0), ("personality", 0), ("ioctl", 1)];

/// The width conditions on argument `index` of `syscall` compare (see [`DWORD_ARGS`]).
pub(crate) fn arg_width(syscall: &str, index: u8) -> ArgWidth {
    if DWORD_ARGS.contains(&(syscall, index)) {
        ArgWidth::Dword
    } else {
        ArgWidth::Qword
    }
}

/// A condition on argument `index` of `syscall`, with the width [`arg_width`] gives.
fn arg(syscall: &str, index: u8, op: ArgOp, value: u64) -> ArgCondition {
    cond(ArgCondition::new(
        index,
        op,
        value,
        arg_width(syscall, index),
    ))
}

/// The syscalls Docker's default profile allows unconditionally, on every architecture
/// (names that do not exist on the build target are skipped when compiling).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// `clone` flags that create namespaces (`CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
/// CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`): Docker's mask.
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// The `personality` values Docker allows: `PER_LINUX`, `PER_LINUX32`, `UNAME26`,
/// `UNAME26 | PER_LINUX32`, and `0xffffffff` (query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn cond(condition: Result<ArgCondition, super::SeccompError>) -> ArgCondition {
    match condition {
        Ok(c) => c,
        // The conditions below are constants that satisfy every check of
        // `ArgCondition::new`; a failure is a bug in this file, found by the tests.
        Err(e) => panic!("invalid condition in the built-in profile: {e}"),
    }
}

/// Builds the built-in default profile.
pub(super) fn docker_default() -> SeccompProfile {
    use Action::Allow;
    fn rule<const N: usize>(names: [&str; N], action: Action) -> SyscallRule {
        SyscallRule::new(names, action)
    }
    let mut p = SeccompProfile::new(Action::Errno(EPERM))
        .with_rule(SyscallRule::new(ALLOWED.iter().copied(), Allow))
        .with_rule(
            rule(["process_vm_readv", "process_vm_writev", "ptrace"], Allow)
                .min_kernel(KernelVersion::new(4, 8)),
        )
        // socket: every domain but AF_ALG (38) and AF_VSOCK (40). Refinement: Dword.
        .with_rule(rule(["socket"], Allow).with_arg(arg("socket", 0, ArgOp::Lt, 38)))
        .with_rule(rule(["socket"], Allow).with_arg(arg("socket", 0, ArgOp::Eq, 39)))
        .with_rule(rule(["socket"], Allow).with_arg(arg("socket", 0, ArgOp::Gt, 40)));
    // personality: only the harmless personas. Refinement: Dword.
    for persona in PERSONALITIES {
        p.push_rule(rule(["personality"], Allow).with_arg(arg(
            "personality",
            0,
            ArgOp::Eq,
            persona,
        )));
    }
    p.with_rule(rule(["sync_file_range2", "swapcontext"], Allow).only_on([Arch::Ppc64le]))
        .with_rule(
            rule(
                [
                    "arm_fadvise64_64",
                    "arm_sync_file_range",
                    "sync_file_range2",
                    "breakpoint",
                    "cacheflush",
                    "set_tls",
                ],
                Allow,
            )
            .only_on([Arch::Arm, Arch::Aarch64]),
        )
        .with_rule(rule(["arch_prctl"], Allow).only_on([Arch::X86_64, Arch::X32]))
        .with_rule(rule(["modify_ldt"], Allow).only_on([Arch::X86_64, Arch::X32, Arch::X86]))
        .with_rule(
            rule(
                [
                    "s390_pci_mmio_read",
                    "s390_pci_mmio_write",
                    "s390_runtime_instr",
                ],
                Allow,
            )
            .only_on([Arch::S390, Arch::S390x]),
        )
        .with_rule(rule(["riscv_flush_icache"], Allow).only_on([Arch::Riscv64]))
        .with_rule(rule(["open_by_handle_at"], Allow).requires_caps([Cap::CAP_DAC_READ_SEARCH]))
        .with_rule(
            rule(
                [
                    "bpf",
                    "clone",
                    "clone3",
                    "fanotify_init",
                    "fsconfig",
                    "fsmount",
                    "fsopen",
                    "fspick",
                    "lookup_dcookie",
                    "lsm_get_self_attr",
                    "lsm_list_modules",
                    "lsm_set_self_attr",
                    "mount",
                    "mount_setattr",
                    "move_mount",
                    "open_tree",
                    "perf_event_open",
                    "quotactl",
                    "quotactl_fd",
                    "setdomainname",
                    "sethostname",
                    "setns",
                    "syslog",
                    "umount",
                    "umount2",
                    "unshare",
                ],
                Allow,
            )
            .requires_caps([Cap::CAP_SYS_ADMIN]),
        )
        // clone: only without namespace flags.
        .with_rule(
            rule(["clone"], Allow)
                .with_arg(arg("clone", 0, ArgOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0))
                .unless_caps([Cap::CAP_SYS_ADMIN])
                .except_on([Arch::S390, Arch::S390x]),
        )
        // s390 passes clone's flags second.
        .with_rule(
            rule(["clone"], Allow)
                .with_arg(arg("clone", 1, ArgOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0))
                .only_on([Arch::S390, Arch::S390x])
                .unless_caps([Cap::CAP_SYS_ADMIN]),
        )
        // clone3 keeps its flags in memory seccomp cannot read: ENOSYS makes libc fall
        // back to clone, whose flags are checked above.
        .with_rule(rule(["clone3"], Action::Errno(ENOSYS)).unless_caps([Cap::CAP_SYS_ADMIN]))
        .with_rule(rule(["reboot"], Allow).requires_caps([Cap::CAP_SYS_BOOT]))
        .with_rule(rule(["chroot"], Allow).requires_caps([Cap::CAP_SYS_CHROOT]))
        .with_rule(
            rule(["delete_module", "init_module", "finit_module"], Allow)
                .requires_caps([Cap::CAP_SYS_MODULE]),
        )
        .with_rule(rule(["acct"], Allow).requires_caps([Cap::CAP_SYS_PACCT]))
        .with_rule(
            rule(
                [
                    "kcmp",
                    "pidfd_getfd",
                    "process_madvise",
                    "process_vm_readv",
                    "process_vm_writev",
                    "ptrace",
                ],
                Allow,
            )
            .requires_caps([Cap::CAP_SYS_PTRACE]),
        )
        .with_rule(rule(["iopl", "ioperm"], Allow).requires_caps([Cap::CAP_SYS_RAWIO]))
        .with_rule(
            rule(
                ["settimeofday", "stime", "clock_settime", "clock_settime64"],
                Allow,
            )
            .requires_caps([Cap::CAP_SYS_TIME]),
        )
        .with_rule(rule(["vhangup"], Allow).requires_caps([Cap::CAP_SYS_TTY_CONFIG]))
        .with_rule(
            rule(
                [
                    "get_mempolicy",
                    "mbind",
                    "set_mempolicy",
                    "set_mempolicy_home_node",
                ],
                Allow,
            )
            .requires_caps([Cap::CAP_SYS_NICE]),
        )
        .with_rule(rule(["syslog"], Allow).requires_caps([Cap::CAP_SYSLOG]))
        .with_rule(rule(["bpf"], Allow).requires_caps([Cap::CAP_BPF]))
        .with_rule(rule(["perf_event_open"], Allow).requires_caps([Cap::CAP_PERFMON]))
}
