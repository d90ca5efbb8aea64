//! `probe sweep`: every syscall number, asked of this process's seccomp filters.
//!
//! Like amicontained's sweep, but through the [oracle](crate::oracle): each number is
//! made with the oracle's cookie, so a call the filters allow is answered by the
//! oracle's supervisor and never reaches the kernel; a call they refuse comes back
//! with their errno. That makes the sweep exact (an `EPERM` the kernel itself would
//! have returned cannot be mistaken for the filter's) and safe for every number,
//! `reboot` and `exit_group` included, so no number is skipped.
//!
//! The arguments are zeros, except for a few calls that would change something with
//! zeros, were the oracle to fail (it is checked first): those get arguments that make
//! the kernel refuse them (see [`harmless_args`]).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tasksandbox::seccomp::syscalls;

use crate::oracle::{self, Verdict, COOKIE};
use crate::sys::{self, MISSING};

/// The highest native number swept one by one: everything the x86_64 table has (up
/// to 469), the unassigned gaps, the x32-only range 512..=547 (unassigned natively)
/// and room above, up to 1023.
pub const MAX_NR: i64 = 1023;

/// Native numbers far above the table, swept as well: the guard must answer `ENOSYS`
/// for every number it does not know, not only for those near the table. The kernel
/// hands seccomp the low 32 bits; none of these has the x32 bit (30) set. (`-1`, which
/// the kernel treats as "no syscall", is left out.)
pub const FAR_NUMBERS: [i64; 4] = [0x0001_0000, 0x3fff_ffff, 0x8000_0000, 0xbfff_ffff];

/// The x32-ABI bit of x86_64 syscall numbers.
pub const X32_BIT: i64 = 0x4000_0000;

/// The highest number of the kernel's x32 table (`pwritev2`, 547): the x32 ABI
/// shares 0..=511 with the native table where the layouts agree, and has its own
/// entries at 512..=547 where they do not.
pub const MAX_X32_NR: i64 = 547;

/// x32 numbers swept: every number the kernel's x32 table could dispatch, 0..=547,
/// with the x32 bit set. Every one must be refused, whatever the native number.
pub fn x32_numbers() -> Vec<i64> {
    (0..=MAX_X32_NR).map(|n| X32_BIT | n).collect()
}

/// The syscalls of the x86_64 table (up to Linux 6.18) that Docker's default profile
/// (moby/profiles `seccomp/default.json`) refuses with `EPERM` on amd64 for a
/// container holding Docker's 14 default capabilities: the 66 its documentation
/// lists, and six newer ones it refuses by not allowing them (`lsm_*` only with
/// `CAP_SYS_ADMIN`; `open_tree_attr`, `file_getattr`, `file_setattr` not listed). With
/// `CAP_SYS_PTRACE`, `kcmp`, `pidfd_getfd` and `process_madvise` are allowed; without
/// `CAP_SYS_CHROOT`, `chroot` is refused too.
pub const DOCKER_REFUSED: [&str; 72] = [
    "syslog",
    "uselib",
    "ustat",
    "sysfs",
    "vhangup",
    "pivot_root",
    "_sysctl",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "lookup_dcookie",
    "clock_settime",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "kexec_load",
    "add_key",
    "request_key",
    "keyctl",
    "migrate_pages",
    "unshare",
    "move_pages",
    "perf_event_open",
    "fanotify_init",
    "open_by_handle_at",
    "setns",
    "kcmp",
    "finit_module",
    "kexec_file_load",
    "bpf",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_getfd",
    "process_madvise",
    "mount_setattr",
    "quotactl_fd",
    "set_mempolicy_home_node",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
];

/// Docker's `EPERM` refusals for a container whose bounding set is `bounding`.
pub fn docker_refused(bounding: u64) -> BTreeSet<&'static str> {
    let mut set: BTreeSet<&str> = DOCKER_REFUSED.into_iter().collect();
    if bounding & (1 << sys::CAP_SYS_PTRACE) != 0 {
        for name in ["kcmp", "pidfd_getfd", "process_madvise"] {
            set.remove(name);
        }
    }
    if bounding & (1 << sys::CAP_SYS_CHROOT) == 0 {
        set.insert("chroot");
    }
    set
}

/// Arguments for syscall `name`: zeros, except where zeros would change something if
/// the call ever reached the kernel. The sixth is the oracle's cookie.
pub fn harmless_args(name: Option<&str>) -> [u64; 6] {
    let mut args = [0u64; 6];
    match name {
        // A name longer than the kernel's limit: EINVAL instead of an empty hostname.
        Some("sethostname" | "setdomainname") => args[1] = 100_000,
        // A missing file: ENOENT instead of switching accounting off.
        Some("acct") => args[0] = MISSING.as_ptr() as u64,
        // An unknown operation: EINVAL instead of strict mode.
        Some("seccomp") => args[0] = 0xffff,
        // Unknown flags: EINVAL instead of unloading a loaded kexec image.
        Some("kexec_load") => args[3] = 0xffff_ffff,
        // Bad descriptors: EBADF.
        Some("kexec_file_load") => (args[0], args[1]) = (u64::MAX, u64::MAX),
        Some("close" | "dup2" | "dup3") => args[0] = u64::MAX,
        // first > last: EINVAL.
        Some("close_range") => args[0] = 1,
        // An unknown request: EIO instead of PTRACE_TRACEME.
        Some("ptrace") => args[0] = u64::MAX,
        _ => {}
    }
    args[5] = COOKIE;
    args
}

/// Numbers not swept, with the reason: seccomp never sees them, so the oracle cannot
/// answer for them, and made from anywhere but the kernel's own trampoline they raise
/// `SIGILL` in the caller.
pub const SKIPPED: [(i64, &str); 2] = [
    (
        335,
        "uretprobe: passed through seccomp unfiltered (Linux 6.12+); outside a uretprobe trampoline it raises SIGILL",
    ),
    (
        336,
        "uprobe: passed through seccomp unfiltered (Linux 6.16+); outside a uprobe trampoline it raises SIGILL",
    ),
];

/// One swept number.
pub struct Entry {
    /// The number as made: native, or with [`X32_BIT`] set.
    pub nr: i64,
    /// Its name in the native table; `None` for an unassigned number and for every
    /// x32 number.
    pub name: Option<&'static str>,
    /// The six arguments it was made with (the sixth is the oracle's cookie).
    pub args: [u64; 6],
    /// What the task's seccomp filters decided.
    pub verdict: Verdict,
}

/// Sweeps every number; fails if the oracle cannot answer.
pub fn sweep() -> Result<Vec<Entry>, String> {
    let numbers: Vec<i64> = (0..=MAX_NR)
        .filter(|nr| !SKIPPED.iter().any(|(skip, _)| skip == nr))
        .chain(FAR_NUMBERS)
        .chain(x32_numbers())
        .collect();
    let calls: Vec<(i64, [u64; 6])> = numbers
        .iter()
        .map(|&nr| (nr, harmless_args(native_name(nr))))
        .collect();
    let verdicts = oracle::verdicts(&calls)?;
    Ok(calls
        .into_iter()
        .zip(verdicts)
        .map(|((nr, args), verdict)| Entry {
            nr,
            name: native_name(nr),
            args,
            verdict,
        })
        .collect())
}

/// The name of a native number (x32 numbers are named by their native twin elsewhere).
fn native_name(nr: i64) -> Option<&'static str> {
    if nr & X32_BIT != 0 {
        None
    } else {
        syscalls::name(nr)
    }
}

/// Runs the sweep and prints it; the exit code is 1 if anything Docker refuses is
/// allowed here.
pub fn main(json_out: bool, all: bool) -> std::process::ExitCode {
    let entries = match sweep() {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("probe sweep: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = sys::status_field(&status, "CapBnd")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0);
    let docker = docker_refused(bounding);
    let known: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.nr & X32_BIT == 0 && e.name.is_some())
        .collect();
    let refused_eperm: BTreeSet<&str> = known
        .iter()
        .filter(|e| e.verdict == Verdict::Refused(libc::EPERM))
        .filter_map(|e| e.name)
        .collect();
    let refused_other: Vec<String> = known
        .iter()
        .filter(|e| matches!(e.verdict, Verdict::Refused(errno) if errno != libc::EPERM))
        .map(|e| format!("{} ({})", e.name.unwrap_or("?"), e.verdict.text()))
        .collect();
    let beyond: Vec<&str> = refused_eperm.difference(&docker).copied().collect();
    let weaker: Vec<&str> = docker.difference(&refused_eperm).copied().collect();
    let unassigned: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.nr & X32_BIT == 0 && e.name.is_none())
        .collect();
    let x32: Vec<&Entry> = entries.iter().filter(|e| e.nr & X32_BIT != 0).collect();

    if json_out {
        let calls: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "nr": e.nr,
                    "name": e.name,
                    "x32": e.nr & X32_BIT != 0,
                    "args": e.args,
                    "verdict": e.verdict.text(),
                })
            })
            .collect();
        let report = json!({
            "method": "seccomp user notification: allowed calls are answered by the probe, never by the kernel",
            "cap_bnd": format!("{bounding:016x}"),
            "calls": calls,
            "skipped": SKIPPED.iter().map(|(nr, why)| json!({"nr": nr, "why": why})).collect::<Vec<_>>(),
            "refused_eperm": refused_eperm,
            "refused_other": refused_other,
            "docker_refused": docker,
            "refused_beyond_docker": beyond,
            "docker_refuses_but_allowed": weaker,
        });
        println!("{report:#}");
    } else {
        if all {
            for e in &entries {
                let name = match (e.name, e.nr & X32_BIT != 0) {
                    (_, true) => format!("x32 {}", e.nr & !X32_BIT),
                    (Some(n), false) => n.to_string(),
                    (None, false) => "-".to_string(),
                };
                println!("{:>10} {:<28} {}", e.nr, name, e.verdict.text());
            }
        }
        let count = |v: Verdict, list: &[&Entry]| list.iter().filter(|e| e.verdict == v).count();
        println!(
            "swept {} numbers (0..={MAX_NR}, {} far above, and the {} x32 numbers 0..={MAX_X32_NR}) through the seccomp oracle; nothing reached the kernel",
            entries.len(),
            FAR_NUMBERS.len(),
            x32.len()
        );
        for (nr, why) in SKIPPED {
            println!("skipped {nr}, {why}");
        }
        println!(
            "refused with EPERM ({}): {}",
            refused_eperm.len(),
            refused_eperm.iter().copied().collect::<Vec<_>>().join(" ")
        );
        println!(
            "refused otherwise ({}): {}",
            refused_other.len(),
            refused_other.join(" ")
        );
        println!(
            "unassigned numbers: {} of {} ENOSYS",
            count(Verdict::Refused(libc::ENOSYS), &unassigned),
            unassigned.len()
        );
        println!(
            "x32 numbers: {} of {} EPERM",
            count(Verdict::Refused(libc::EPERM), &x32),
            x32.len()
        );
        println!(
            "Docker's default profile refuses {} of these with EPERM; refused here beyond Docker: {}; refused by Docker but allowed here: {}",
            docker.len(),
            if beyond.is_empty() { "none".to_string() } else { beyond.join(" ") },
            if weaker.is_empty() { "none".to_string() } else { weaker.join(" ") },
        );
    }
    if weaker.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
