//! `probe check`: the confinement as the kernel reports it, and every known escape of
//! REFERENCE.md's table that can be tried without doing damage.
//!
//! Each attempt is made so that, were it allowed, it would fail harmlessly with an errno
//! other than the sandbox's (a descriptor of -1, a path that does not exist, invalid
//! flags): the errno itself says whether the sandbox stopped it. Attempts that would
//! change the probe if they succeeded (`unshare`, a raw `clone`, `chroot`) run in a
//! forked child. Nothing is ever written to a kernel interface: files are opened for
//! writing and closed at once. After the attempts, the [oracle](crate::oracle) says
//! for each syscall whether seccomp refused it or the kernel did.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::oracle::{self, Verdict};
use crate::sys::{self, close_if_fd, errno_name, in_child, try_open, Outcome, MISSING};

/// Fargate's (and Docker's) 14 default capabilities.
pub const FARGATE_DEFAULT_CAPS: u64 = 0xa804_25fb;
/// The only capabilities a task may hold: the defaults and `CAP_SYS_PTRACE`.
pub const ALLOWED_CAPS: u64 = FARGATE_DEFAULT_CAPS | 1 << sys::CAP_SYS_PTRACE;

/// The inode numbers of the initial namespaces (`PROC_*_INIT_INO`). Linux 6.18 gives
/// every initial namespace a fixed number; before it, the initial mount and network
/// namespaces had dynamic ones (those are then covered by `interfaces` and the
/// root checks).
const INIT_NS: [(&str, u64); 7] = [
    ("user", 0xEFFF_FFFD),
    ("pid", 0xEFFF_FFFC),
    ("mnt", 0xEFFF_FFF8),
    ("net", 0xEFFF_FFF9),
    ("uts", 0xEFFF_FFFE),
    ("ipc", 0xEFFF_FFFF),
    ("cgroup", 0xEFFF_FFFB),
];
const INIT_TIME_NS: u64 = 0xEFFF_FFFA;

/// The OCI default masked paths (runc, containerd).
const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// The OCI default read-only paths.
const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Setuid-root programs a Debian or Ubuntu host has: the first found is tried, and
/// every `--setuid PATH`.
const SETUID_CANDIDATES: [&str; 5] = [
    "/usr/bin/su",
    "/usr/bin/passwd",
    "/usr/bin/mount",
    "/usr/bin/newgrp",
    "/usr/bin/sudo",
];

/// What the checks need to know about the run.
pub struct Ctx {
    /// Host pids to aim at (`--host-pid`): invisible from a task.
    pub host_pids: Vec<i32>,
    /// Extra setuid programs to try (`--setuid`).
    pub setuid: Vec<PathBuf>,
    /// Descriptors passed to the task on purpose (`--allow-fd`).
    pub allow_fds: Vec<i32>,
    /// The descriptors open when the probe started.
    pub initial_fds: Vec<(i32, String)>,
    /// Processes of the task beside the probe to aim the ptrace family at
    /// (`--sibling-pid`, or every visible process but pid 1 and the probe with
    /// `--siblings`); `None` when no sibling was asked for.
    pub siblings: Option<Vec<i32>>,
    status: String,
    bnd: u64,
    eff: u64,
    prm: u64,
    inh: u64,
    amb: u64,
}

impl Ctx {
    /// Reads `/proc/self/status`.
    pub fn new(
        host_pids: Vec<i32>,
        setuid: Vec<PathBuf>,
        allow_fds: Vec<i32>,
        initial_fds: Vec<(i32, String)>,
        siblings: Option<Vec<i32>>,
    ) -> Ctx {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cap = |key| {
            sys::status_field(&status, key)
                .and_then(|v| u64::from_str_radix(&v, 16).ok())
                .unwrap_or(u64::MAX)
        };
        Ctx {
            host_pids,
            setuid,
            allow_fds,
            initial_fds,
            siblings,
            bnd: cap("CapBnd"),
            eff: cap("CapEff"),
            prm: cap("CapPrm"),
            inh: cap("CapInh"),
            amb: cap("CapAmb"),
            status,
        }
    }

    fn has_cap(&self, bit: u32) -> bool {
        self.eff & (1u64 << bit) != 0
    }
}

/// One thing tried or read.
pub struct Attempt {
    /// What was done, e.g. `unshare(CLONE_NEWUSER)`.
    pub what: String,
    /// What came back: `EPERM`, `OK`, a value read.
    pub result: String,
    /// The syscall and arguments, for the oracle.
    call: Option<(i64, [u64; 6])>,
    /// The seccomp verdict for `call`.
    pub seccomp: Option<String>,
}

/// One check.
pub struct Check {
    /// Stable snake_case name.
    pub name: &'static str,
    /// The row(s) of REFERENCE.md's table of known escapes, or `-`.
    pub row: &'static str,
    /// The technique or property checked.
    pub technique: &'static str,
    /// What must be observed.
    pub expect: &'static str,
    /// What was tried and read.
    pub attempts: Vec<Attempt>,
    /// Observations that are not attempts.
    pub notes: Vec<String>,
    /// A one-line summary replacing the list of attempts in the text output.
    pub brief: Option<String>,
    /// Whether the sandbox held.
    pub pass: bool,
    /// Why the check could not be made here (the thing it looks at does not exist on
    /// this kernel, or the run gave it nothing to aim at). A skipped check neither
    /// passes nor fails: it is shown as `SKIP` and counted apart.
    pub skipped: Option<String>,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The sandbox held.
    Pass,
    /// It did not.
    Fail,
    /// Nothing could be tried here.
    Skip,
}

impl Status {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn text(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

impl Check {
    fn new(
        name: &'static str,
        row: &'static str,
        technique: &'static str,
        expect: &'static str,
    ) -> Check {
        Check {
            name,
            row,
            technique,
            expect,
            attempts: Vec::new(),
            notes: Vec::new(),
            brief: None,
            pass: false,
            skipped: None,
        }
    }

    /// How the check ended.
    pub fn status(&self) -> Status {
        match (&self.skipped, self.pass) {
            (Some(_), _) => Status::Skip,
            (None, true) => Status::Pass,
            (None, false) => Status::Fail,
        }
    }

    /// Marks the check as not made, for `why`.
    fn skip(&mut self, why: impl Into<String>) {
        self.skipped = Some(why.into());
        self.pass = false;
    }

    /// Records a syscall attempt and returns its outcome.
    fn sys(&mut self, what: impl Into<String>, nr: i64, args: [u64; 6], out: Outcome) -> Outcome {
        self.attempts.push(Attempt {
            what: what.into(),
            result: out.text(),
            call: Some((nr, args)),
            seccomp: None,
        });
        out
    }

    /// Makes syscall `nr` (with harmless arguments) and records it.
    fn call(&mut self, what: impl Into<String>, nr: i64, args: [u64; 6]) -> Outcome {
        let out = sys::syscall(nr, args);
        self.sys(what, nr, args, out)
    }

    /// Makes syscall `nr` in a forked child and records it.
    fn call_in_child(&mut self, what: impl Into<String>, nr: i64, args: [u64; 6]) -> Outcome {
        let out = in_child(|| sys::syscall(nr, args));
        self.sys(what, nr, args, out)
    }

    /// Records something read or tried without a syscall of its own.
    fn fact(&mut self, what: impl Into<String>, result: impl Into<String>) {
        self.attempts.push(Attempt {
            what: what.into(),
            result: result.into(),
            call: None,
            seccomp: None,
        });
    }

    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The text line's detail.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("skipped: {why}");
        }
        if let Some(brief) = &self.brief {
            return brief.clone();
        }
        let mut parts: Vec<String> = self
            .attempts
            .iter()
            .map(|a| match &a.seccomp {
                // "EPERM (seccomp)": seccomp refused it; "(kernel)": seccomp let it
                // through and the kernel answered.
                Some(layer) if *layer == format!("seccomp {}", a.result) => {
                    format!("{}: {} (seccomp)", a.what, a.result)
                }
                Some(layer) => format!("{}: {} ({layer})", a.what, a.result),
                None => format!("{}: {}", a.what, a.result),
            })
            .collect();
        parts.extend(self.notes.iter().cloned());
        parts.join("; ")
    }

    /// The JSON object of this check.
    pub fn json(&self) -> Value {
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| json!({"what": a.what, "result": a.result, "seccomp": a.seccomp}))
            .collect();
        json!({
            "name": self.name,
            "row": self.row,
            "technique": self.technique,
            "expect": self.expect,
            "status": self.status().text().to_ascii_lowercase(),
            "pass": self.status() == Status::Pass,
            "skipped": self.skipped,
            "summary": self.summary(),
            "attempts": attempts,
            "notes": self.notes,
        })
    }
}

type CheckFn = fn(&Ctx) -> Check;

/// Every check, in the order it runs and prints.
pub const CHECKS: [(&str, CheckFn); 39] = [
    ("capabilities", capabilities),
    ("no_new_privs", no_new_privs),
    ("seccomp_mode", seccomp_mode),
    ("uid_gid_maps", uid_gid_maps),
    ("namespaces", namespaces),
    ("devices", devices),
    ("interfaces", interfaces),
    ("masked_paths", masked_paths),
    ("read_only_paths", read_only_paths),
    ("cve_2019_5736_proc_exe", cve_2019_5736_proc_exe),
    (
        "cve_2024_21626_leaked_fds_cwd",
        cve_2024_21626_leaked_fds_cwd,
    ),
    ("cve_2022_0492_release_agent", cve_2022_0492_release_agent),
    ("shocker_open_by_handle_at", shocker_open_by_handle_at),
    ("cve_2022_0185_fsconfig", cve_2022_0185_fsconfig),
    (
        "cve_2020_15257_abstract_sockets",
        cve_2020_15257_abstract_sockets,
    ),
    (
        "cve_2021_22555_netfilter_userns",
        cve_2021_22555_netfilter_userns,
    ),
    ("proc_sysrq_trigger", proc_sysrq_trigger),
    ("core_pattern", core_pattern),
    ("mknod_block_device", mknod_block_device),
    ("mount_host_disk", mount_host_disk),
    ("host_pid_visibility", host_pid_visibility),
    ("ptrace_host_process", ptrace_host_process),
    ("pid_mode_task_sibling", pid_mode_task_sibling),
    ("kernel_module_load", kernel_module_load),
    ("tiocsti", tiocsti),
    ("setuid_escalation", setuid_escalation),
    ("nested_user_namespace", nested_user_namespace),
    ("io_uring", io_uring),
    ("bpf", bpf),
    ("perf_event_open", perf_event_open),
    ("keyring", keyring),
    ("userfaultfd", userfaultfd),
    ("af_packet_raw_socket", af_packet_raw_socket),
    ("af_vsock_af_alg_sockets", af_vsock_af_alg_sockets),
    ("masked_path_race", masked_path_race),
    ("cgroupfs_not_writable", cgroupfs_not_writable),
    ("sysfs_read_only", sysfs_read_only),
    ("x32_syscalls", x32_syscalls),
    ("chroot_breakout", chroot_breakout),
];

/// Runs the checks named in `only` (all when empty), then asks the oracle about every
/// syscall they made. The oracle's failure is returned beside the checks.
pub fn run(ctx: &Ctx, only: &[String]) -> (Vec<Check>, Result<(), String>) {
    let mut checks: Vec<Check> = CHECKS
        .iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name))
        .map(|(_, f)| f(ctx))
        .collect();
    let calls: Vec<(i64, [u64; 6])> = checks
        .iter()
        .flat_map(|c| c.attempts.iter().filter_map(|a| a.call))
        .collect();
    let oracle = oracle::verdicts(&calls).map(|verdicts| {
        let mut verdicts = verdicts.into_iter();
        for attempt in checks
            .iter_mut()
            .flat_map(|c| c.attempts.iter_mut())
            .filter(|a| a.call.is_some())
        {
            attempt.seccomp = verdicts.next().map(|v| match v {
                Verdict::Allowed => "kernel".to_string(),
                Verdict::Refused(e) => format!("seccomp {}", errno_name(e)),
            });
        }
    });
    (checks, oracle)
}

// ---------------------------------------------------------------------------------
// Helpers

fn cs(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn ptr(s: &CString) -> u64 {
    s.as_ptr() as u64
}

/// `TIOCSTI` and `TIOCLINUX` (the generic ioctl numbers, x86 and arm alike).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

const NULL: u64 = 0;
const BAD_FD: u64 = u64::MAX; // -1

/// A mount of `/proc/self/mountinfo`.
struct Mount {
    point: String,
    fstype: String,
    options: String,
}

fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(ch);
        }
    }
    out
}

/// The mounts of `/proc/self/mountinfo`, in its order (a later mount on the same
/// point is on top).
fn mounts() -> Result<Vec<Mount>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                point: unescape(left.get(4)?),
                options: left.get(5)?.to_string(),
                fstype: right.first()?.to_string(),
            })
        })
        .collect())
}

/// Whether the topmost mount at exactly `point` is read-only, as mountinfo says
/// (its per-mount options): `None` when nothing is mounted there.
fn mounted_read_only(mounts: &[Mount], point: &str) -> Option<bool> {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .map(|m| m.options.split(',').any(|o| o == "ro"))
}

/// `utimensat(path, {UTIME_NOW, UTIME_OMIT})`, recorded: the kernel asks the mount for
/// write access before it looks at any permission, so a read-only mount answers
/// `EROFS` whoever the caller is. Were it allowed, the only effect would be a new
/// access time on the file.
fn touch_atime(c: &mut Check, path: &str) -> Outcome {
    let target = cs(path);
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    c.call(
        format!("utimensat({path}, atime now)"),
        libc::SYS_utimensat,
        [
            libc::AT_FDCWD as u64,
            ptr(&target),
            times.as_ptr() as u64,
            0,
            0,
            0,
        ],
    )
}

/// The numeric entries of `/proc`.
pub fn visible_pids() -> Result<Vec<i32>, String> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

pub fn in_initial_ns(name: &str) -> bool {
    let init = INIT_NS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, i)| *i)
        .unwrap_or(0);
    sys::ns_inode(name) == Some(init)
}

fn interface_names() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect()
}

/// A masked path's state: `Ok(Some(description))` if masked, `Ok(None)` if absent,
/// `Err` if not masked (or not readable, which is not what a mask looks like).
fn mask_state(path: &Path) -> Result<Option<String>, String> {
    let st = match sys::lstat_errno(path) {
        Ok(st) => st,
        Err(libc::ENOENT) => return Ok(None),
        Err(errno) => return Err(format!("lstat: {}", errno_name(errno))),
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR if libc::major(st.st_rdev) == 1 && libc::minor(st.st_rdev) == 3 => {
            // A bind of /dev/null reads empty.
            let mut buf = [0u8; 1];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut buf))
                .unwrap_or(1);
            if n == 0 {
                Ok(Some("char 1:3".to_string()))
            } else {
                Err("char 1:3 but not empty".to_string())
            }
        }
        libc::S_IFDIR => {
            // A directory that cannot be listed is not known to be empty.
            let entries = match std::fs::read_dir(path) {
                Ok(dir) => dir.count(),
                Err(e) => return Err(format!("not masked (cannot be listed: {e})")),
            };
            match (entries, sys::read_only(path)) {
                (0, true) => Ok(Some("empty read-only dir".to_string())),
                (0, false) => Err("empty but writable".to_string()),
                (n, _) => Err(format!("{n} entries")),
            }
        }
        libc::S_IFCHR => Err(format!("char {}", sys::dev_text(st.st_rdev))),
        _ => Err("not masked".to_string()),
    }
}

fn masked_list() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = MASKED.iter().map(PathBuf::from).collect();
    if let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") {
        let mut throttle: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.as_bytes();
                name.starts_with(b"cpu")
                    && name.len() > 3
                    && name[3..].iter().all(u8::is_ascii_digit)
            })
            .map(|e| e.path().join("thermal_throttle"))
            .filter(|p| sys::lstat(p).is_some())
            .collect();
        throttle.sort();
        paths.extend(throttle);
    }
    paths
}

// ---------------------------------------------------------------------------------
// The confinement

fn capabilities(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "capabilities",
        "-",
        "capability sets",
        "bounding set within Fargate's 14 defaults plus SYS_PTRACE; permitted and effective within it; inheritable and ambient empty",
    );
    for (key, value) in [
        ("CapBnd", ctx.bnd),
        ("CapPrm", ctx.prm),
        ("CapEff", ctx.eff),
        ("CapInh", ctx.inh),
        ("CapAmb", ctx.amb),
    ] {
        c.fact(key, format!("{value:016x}"));
    }
    let extra = ctx.bnd & !ALLOWED_CAPS;
    if extra != 0 {
        c.note(format!("outside the allowlist: {}", sys::cap_names(extra)));
    }
    c.pass = extra == 0
        && ctx.prm & !ctx.bnd == 0
        && ctx.eff & !ctx.bnd == 0
        && ctx.inh == 0
        && ctx.amb == 0;
    c.brief = Some(format!(
        "bounding {:016x} ({}); effective {:016x}; inheritable {:016x}; ambient {:016x}",
        ctx.bnd,
        sys::cap_names(ctx.bnd),
        ctx.eff,
        ctx.inh,
        ctx.amb
    ));
    c
}

fn no_new_privs(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "no_new_privs",
        "16",
        "no_new_privs",
        "NoNewPrivs: 1 in /proc/self/status and from prctl(PR_GET_NO_NEW_PRIVS)",
    );
    let field = sys::status_field(&ctx.status, "NoNewPrivs").unwrap_or_default();
    c.fact("NoNewPrivs", field.clone());
    // SAFETY: a query without pointers.
    let prctl = sys::outcome(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }.into());
    c.fact(
        "prctl(PR_GET_NO_NEW_PRIVS)",
        match prctl {
            Outcome::Ok(v) => v.to_string(),
            other => other.text(),
        },
    );
    c.pass = field == "1" && prctl == Outcome::Ok(1);
    c
}

fn seccomp_mode(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "seccomp_mode",
        "-",
        "seccomp",
        "Seccomp: 2 (filter mode) with at least one filter",
    );
    let mode = sys::status_field(&ctx.status, "Seccomp").unwrap_or_default();
    let filters = sys::status_field(&ctx.status, "Seccomp_filters").unwrap_or_default();
    c.fact("Seccomp", mode.clone());
    c.fact("Seccomp_filters", filters.clone());
    c.pass = mode == "2" && filters.parse::<u32>().is_ok_and(|n| n >= 1);
    c
}

fn uid_gid_maps(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "uid_gid_maps",
        "-",
        "user namespace id maps",
        "uid_map and gid_map exist and map nothing onto the parent's id 0 (host root)",
    );
    let mut pass = true;
    for map in ["uid_map", "gid_map"] {
        let text = std::fs::read_to_string(format!("/proc/self/{map}")).unwrap_or_default();
        let rows: Vec<Vec<u64>> = text
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .collect();
        let maps_root = rows.iter().any(|r| r.len() == 3 && r[1] == 0 && r[2] > 0);
        pass &= !rows.is_empty() && !maps_root;
        let shown: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
            .collect();
        c.fact(map, shown.join(", "));
    }
    c.pass = pass;
    c
}

fn namespaces(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "namespaces",
        "-",
        "namespaces",
        "user, pid, mnt, net, uts, ipc and cgroup namespaces are not the host's; /proc/self/cgroup shows the namespace's root",
    );
    let mut pass = true;
    for (name, init) in INIT_NS {
        let inode = sys::ns_inode(name);
        let own = inode.is_some_and(|i| i != init);
        pass &= own;
        c.fact(
            name,
            match inode {
                Some(i) if i == init => "the host's".to_string(),
                Some(_) => "own".to_string(),
                None => "unreadable".to_string(),
            },
        );
    }
    if sys::ns_inode("time") == Some(INIT_TIME_NS) {
        c.note("time namespace shared with the host");
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let paths: Vec<&str> = cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    let rooted = !paths.is_empty() && paths.iter().all(|p| *p == "/");
    pass &= rooted;
    c.fact(
        "/proc/self/cgroup",
        if rooted {
            "/ in every hierarchy".to_string()
        } else {
            paths.join(" ")
        },
    );
    c.pass = pass;
    c
}

fn devices(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "devices",
        "11",
        "visible devices",
        "no block device; only null, zero, full, random, urandom, tty, ptmx and pts nodes",
    );
    /// Collects the device nodes under `dir`; a directory that cannot be listed is
    /// an error (it could hide nodes), not an empty one.
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, libc::stat)>, errors: &mut Vec<String>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return errors.push(format!("{}: {e}", dir.display())),
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    errors.push(format!("{}: {e}", dir.display()));
                    continue;
                }
            };
            let st = match sys::lstat_errno(&path) {
                Ok(st) => st,
                Err(errno) => {
                    errors.push(format!("{}: {}", path.display(), errno_name(errno)));
                    continue;
                }
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => walk(&path, out, errors),
                libc::S_IFCHR | libc::S_IFBLK => out.push((path, st)),
                _ => {}
            }
        }
    }
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    walk(Path::new("/dev"), &mut nodes, &mut errors);
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let allowed = |st: &libc::stat| {
        let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
        st.st_mode & libc::S_IFMT == libc::S_IFCHR
            && (matches!((maj, min), (1, 3 | 5 | 7 | 8 | 9) | (5, 0 | 2)) || maj == 136)
    };
    let bad: Vec<String> = nodes
        .iter()
        .filter(|(_, st)| !allowed(st))
        .map(|(p, st)| {
            let kind = if st.st_mode & libc::S_IFMT == libc::S_IFBLK {
                "block"
            } else {
                "char"
            };
            format!("{} {kind} {}", p.display(), sys::dev_text(st.st_rdev))
        })
        .collect();
    let shown: Vec<String> = nodes
        .iter()
        .map(|(p, st)| {
            format!(
                "{} {}",
                p.strip_prefix("/dev").unwrap_or(p).display(),
                sys::dev_text(st.st_rdev)
            )
        })
        .collect();
    c.fact("device nodes under /dev", shown.join(", "));
    if !errors.is_empty() {
        c.note(format!("not listed: {}", errors.join(", ")));
    }
    c.pass = bad.is_empty() && errors.is_empty();
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(8);
        let mut list: Vec<String> = bad.into_iter().take(8).collect();
        if more > 0 {
            list.push(format!("and {more} more"));
        }
        c.note(format!("not allowed: {}", list.join(", ")));
        c.brief = Some(c.notes.join("; "));
    }
    c
}

fn interfaces(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "interfaces",
        "6,7",
        "network interfaces",
        "only lo; no route out (connect to 192.0.2.1 fails)",
    );
    let names = interface_names();
    c.fact("interfaces", names.join(","));
    let sock = c.call(
        "socket(AF_INET, SOCK_DGRAM)",
        libc::SYS_socket,
        [
            libc::AF_INET as u64,
            (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as u64,
            0,
            0,
            0,
            0,
        ],
    );
    let mut connected = true;
    if let Outcome::Ok(fd) = sock {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 9u16.to_be(),
            // 192.0.2.1, TEST-NET-1: a UDP connect sends nothing.
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([192, 0, 2, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let out = c.call(
            "connect(udp, 192.0.2.1:9)",
            libc::SYS_connect,
            [
                fd as u64,
                &addr as *const libc::sockaddr_in as u64,
                std::mem::size_of::<libc::sockaddr_in>() as u64,
                0,
                0,
                0,
            ],
        );
        connected = matches!(out, Outcome::Ok(_));
        close_if_fd(sock);
    }
    c.pass = names == ["lo"] && !connected;
    c
}

fn masked_paths(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "masked_paths",
        "9",
        "/proc/kcore, /proc/keys, /proc/timer_list and the other OCI masked paths",
        "files are /dev/null (char 1:3, read empty), directories empty and read-only",
    );
    let mut pass = true;
    let (mut files, mut dirs) = (0, 0);
    let mut bad = Vec::new();
    let mut absent = Vec::new();
    for path in masked_list() {
        match mask_state(&path) {
            Ok(Some(state)) => {
                if state == "char 1:3" {
                    files += 1;
                } else {
                    dirs += 1;
                }
                c.fact(path.display().to_string(), state);
            }
            // Absent from this kernel: nothing to mask, and nothing shown by it.
            Ok(None) => {
                absent.push(path.display().to_string());
                c.fact(path.display().to_string(), "absent (not checked)");
            }
            Err(state) => {
                pass = false;
                bad.push(format!("{}: {state}", path.display()));
                c.fact(path.display().to_string(), state);
            }
        }
    }
    c.pass = pass;
    if files + dirs == 0 && bad.is_empty() {
        c.skip("none of the masked paths exists on this kernel");
        return c;
    }
    c.brief = Some(if bad.is_empty() {
        format!(
            "{files} files are /dev/null, {dirs} directories empty and read-only; absent here, not checked: {}",
            if absent.is_empty() { "none".to_string() } else { absent.join(" ") }
        )
    } else {
        format!("not masked: {}", bad.join(", "))
    });
    c
}

fn read_only_paths(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "read_only_paths",
        "8,10",
        "the OCI read-only paths",
        "/proc/bus, /proc/fs, /proc/irq, /proc/sys, /proc/sysrq-trigger each a read-only mount (mountinfo), which refuses a write with EROFS",
    );
    let mounts = match mounts() {
        Ok(m) => m,
        Err(e) => {
            c.note(e);
            return c;
        }
    };
    let mut pass = true;
    let mut present = 0;
    for path in READ_ONLY {
        match sys::lstat_errno(Path::new(path)) {
            Err(libc::ENOENT) => {
                c.fact(path, "absent (not checked)");
                continue;
            }
            Err(errno) => {
                pass = false;
                c.fact(path, format!("lstat: {}", errno_name(errno)));
                continue;
            }
            Ok(_) => present += 1,
        }
        let state = match mounted_read_only(&mounts, path) {
            Some(true) => "read-only mount",
            Some(false) => {
                pass = false;
                "WRITABLE mount"
            }
            None => {
                pass = false;
                "NO MOUNT of its own"
            }
        };
        c.fact(path, state);
        pass &= touch_atime(&mut c, path).is(libc::EROFS);
    }
    c.pass = pass;
    if present == 0 && pass {
        c.skip("none of the read-only paths exists on this kernel");
    }
    c
}

// ---------------------------------------------------------------------------------
// Escapes

fn cve_2019_5736_proc_exe(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2019_5736_proc_exe",
        "1",
        "CVE-2019-5736: overwrite the runtime through /proc/<pid>/exe",
        "no process outside the task is visible; no visible /proc/<pid>/exe is writable, nor /proc/self/exe reopened for writing",
    );
    let own_pid_ns = !in_initial_ns("pid");
    c.fact(
        "pid namespace",
        if own_pid_ns { "own" } else { "the host's" },
    );
    let mut pass = own_pid_ns;
    let pids = visible_pids().unwrap_or_else(|e| {
        c.note(e);
        pass = false;
        Vec::new()
    });
    let mut writable = Vec::new();
    let mut results = std::collections::BTreeSet::new();
    for pid in &pids {
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let out = sys::can_write(&exe);
        if matches!(out, Outcome::Ok(_)) {
            let target = std::fs::read_link(&exe).unwrap_or_default();
            writable.push(format!("{pid} ({})", target.display()));
        } else {
            results.insert(out.text());
        }
    }
    c.fact(
        format!(
            "access(/proc/<pid>/exe, W_OK) for the {} visible process(es)",
            pids.len()
        ),
        if writable.is_empty() {
            results.into_iter().collect::<Vec<_>>().join("/")
        } else {
            {
                let more = writable.len().saturating_sub(5);
                let mut list: Vec<String> = writable.iter().take(5).cloned().collect();
                if more > 0 {
                    list.push(format!("and {more} more"));
                }
                format!("WRITABLE: {}", list.join(", "))
            }
        },
    );
    pass &= writable.is_empty();
    // The CVE's move: an O_PATH handle on the binary, reopened for writing.
    // SAFETY: a constant path; the descriptor is closed below.
    let opath = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if opath >= 0 {
        let out = try_open(Path::new(&format!("/proc/self/fd/{opath}")), libc::O_WRONLY);
        c.fact(
            "open(/proc/self/fd/<O_PATH of /proc/self/exe>, O_WRONLY)",
            out.text(),
        );
        pass &= !matches!(out, Outcome::Ok(_));
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(opath) };
    } else {
        c.fact(
            "open(/proc/self/exe, O_PATH)",
            errno_name(nix::errno::Errno::last_raw()),
        );
    }
    c.pass = pass;
    c
}

fn cve_2024_21626_leaked_fds_cwd(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2024_21626_leaked_fds_cwd",
        "2",
        "CVE-2024-21626: a leaked descriptor or working directory into the host",
        "only descriptors 0-2 (and those passed on purpose) at start; cwd and root inside the task's root",
    );
    let extra: Vec<String> = ctx
        .initial_fds
        .iter()
        .filter(|(fd, _)| *fd > 2 && !ctx.allow_fds.contains(fd))
        .map(|(fd, target)| format!("{fd} -> {target}"))
        .collect();
    let fds: Vec<String> = ctx
        .initial_fds
        .iter()
        .map(|(fd, _)| fd.to_string())
        .collect();
    c.fact("open descriptors at start", fds.join(","));
    if !extra.is_empty() {
        c.note(format!("leaked: {}", extra.join(", ")));
    }
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("getcwd: {e}"));
    c.fact("getcwd", cwd.clone());
    let root = std::fs::read_link("/proc/self/root")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    c.fact("/proc/self/root", root.clone());
    // Climb from the cwd with "..": the top must be our "/".
    let top_is_root = {
        let id = |st: &libc::stat| (st.st_dev, st.st_ino);
        let fstat = |fd: i32| {
            // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a descriptor of ours and a live, writable `stat`.
            (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
        };
        // SAFETY: a constant path; every descriptor opened here is closed below.
        let mut cur = unsafe {
            libc::open(
                c".".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        let mut top = None;
        for _ in 0..4096 {
            if cur < 0 {
                break;
            }
            // SAFETY: as above, relative to a descriptor of ours.
            let parent = unsafe {
                libc::openat(
                    cur,
                    c"..".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            let (Some(a), Some(b)) = (fstat(cur), if parent >= 0 { fstat(parent) } else { None })
            else {
                if parent >= 0 {
                    // SAFETY: closing a descriptor of ours.
                    unsafe { libc::close(parent) };
                }
                break;
            };
            // SAFETY: closing a descriptor of ours.
            unsafe { libc::close(cur) };
            cur = parent;
            if id(&a) == id(&b) {
                top = Some(id(&a));
                break;
            }
        }
        if cur >= 0 {
            // SAFETY: closing a descriptor of ours.
            unsafe { libc::close(cur) };
        }
        let root = sys::stat(Path::new("/")).map(|st| id(&st));
        top.is_some() && top == root
    };
    c.fact(
        "climbing .. from the cwd ends at",
        if top_is_root { "/" } else { "ANOTHER ROOT" },
    );
    // The host's mount namespace makes "/" the host's root (see chroot_breakout).
    let host_mnt = in_initial_ns("mnt");
    if host_mnt {
        c.note("the host's mount namespace: this root is the host's");
    }
    c.pass = extra.is_empty() && cwd.starts_with('/') && root == "/" && top_is_root && !host_mnt;
    c
}

fn cve_2022_0492_release_agent(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2022_0492_release_agent",
        "3",
        "CVE-2022-0492: cgroup v1 release_agent",
        "unshare(USER|NS|CGROUP) EPERM, mount of cgroupfs EPERM, no release_agent writable",
    );
    let unshare = c.call_in_child(
        "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWCGROUP)",
        libc::SYS_unshare,
        [
            (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP) as u64,
            0,
            0,
            0,
            0,
            0,
        ],
    );
    let (src, fstype, data) = (cs("cgroup"), cs("cgroup"), cs("rdma"));
    let mount = c.call(
        "mount(cgroup, /nonexistent-probe-dir, cgroup, rdma)",
        libc::SYS_mount,
        [
            ptr(&src),
            MISSING.as_ptr() as u64,
            ptr(&fstype),
            0,
            ptr(&data),
            0,
        ],
    );
    let mut writable = false;
    let mut found = 0;
    let mounts = mounts().unwrap_or_else(|e| {
        c.note(e);
        writable = true;
        Vec::new()
    });
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let agent = Path::new(&m.point).join("release_agent");
        if sys::lstat(&agent).is_some() {
            found += 1;
            let out = try_open(&agent, libc::O_WRONLY);
            writable |= matches!(out, Outcome::Ok(_));
            c.fact(format!("open({}, O_WRONLY)", agent.display()), out.text());
        }
    }
    if found == 0 {
        c.note("no release_agent visible");
    }
    c.pass = unshare.is(libc::EPERM) && mount.is(libc::EPERM) && !writable;
    c
}

fn shocker_open_by_handle_at(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "shocker_open_by_handle_at",
        "4",
        "Shocker: open_by_handle_at",
        "EPERM (EBADF or EFAULT would mean the call reached the kernel)",
    );
    let out = c.call(
        "open_by_handle_at(-1, NULL, 0)",
        libc::SYS_open_by_handle_at,
        [BAD_FD, NULL, 0, 0, 0, 0],
    );
    c.pass = out.is(libc::EPERM);
    c
}

fn cve_2022_0185_fsconfig(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2022_0185_fsconfig",
        "5",
        "CVE-2022-0185: fsopen/fsconfig in a new user namespace",
        "unshare(CLONE_NEWUSER) EPERM, fsopen EPERM, fsconfig EPERM",
    );
    let unshare = c.call_in_child(
        "unshare(CLONE_NEWUSER)",
        libc::SYS_unshare,
        [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
    );
    let fs = cs("nonexistent-probe-fs");
    let fsopen = c.call(
        "fsopen(nonexistent-probe-fs, 0)",
        libc::SYS_fsopen,
        [ptr(&fs), 0, 0, 0, 0, 0],
    );
    close_if_fd(fsopen);
    let (key, value) = (cs("source"), cs("x"));
    let fsconfig = c.call(
        "fsconfig(-1, FSCONFIG_SET_STRING, source, x)",
        libc::SYS_fsconfig,
        [BAD_FD, 1, ptr(&key), ptr(&value), 0, 0],
    );
    c.pass = unshare.is(libc::EPERM) && fsopen.is(libc::EPERM) && fsconfig.is(libc::EPERM);
    c
}

fn cve_2020_15257_abstract_sockets(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2020_15257_abstract_sockets",
        "6",
        "CVE-2020-15257: the host's abstract unix sockets",
        "own network namespace; no abstract socket in /proc/net/unix",
    );
    let own = !in_initial_ns("net");
    c.fact("network namespace", if own { "own" } else { "the host's" });
    let (text, readable) = match std::fs::read_to_string("/proc/self/net/unix") {
        Ok(text) => (text, true),
        Err(e) => {
            c.note(format!("/proc/self/net/unix: {e}"));
            (String::new(), false)
        }
    };
    let entries: Vec<&str> = text.lines().skip(1).collect();
    let abstract_names: Vec<&str> = entries
        .iter()
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter(|p| p.starts_with('@'))
        .collect();
    c.fact(
        "/proc/net/unix",
        format!(
            "{} sockets, {} abstract",
            entries.len(),
            abstract_names.len()
        ),
    );
    c.pass = own && readable && abstract_names.is_empty();
    c
}

fn cve_2021_22555_netfilter_userns(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cve_2021_22555_netfilter_userns",
        "7",
        "CVE-2021-22555: netfilter through a user and network namespace",
        "unshare(USER|NET) and unshare(NET) EPERM; setting iptables rules EPERM (or no netfilter at all)",
    );
    let user_net = c.call_in_child(
        "unshare(CLONE_NEWUSER|CLONE_NEWNET)",
        libc::SYS_unshare,
        [
            (libc::CLONE_NEWUSER | libc::CLONE_NEWNET) as u64,
            0,
            0,
            0,
            0,
            0,
        ],
    );
    let net = c.call_in_child(
        "unshare(CLONE_NEWNET)",
        libc::SYS_unshare,
        [libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0],
    );
    let sock = c.call(
        "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)",
        libc::SYS_socket,
        [
            libc::AF_INET as u64,
            (libc::SOCK_RAW | libc::SOCK_CLOEXEC) as u64,
            libc::IPPROTO_RAW as u64,
            0,
            0,
            0,
        ],
    );
    let rules_refused = match sock {
        Outcome::Ok(fd) => {
            // IPT_SO_SET_REPLACE with no table: EINVAL if the caller may set rules.
            let out = c.call(
                "setsockopt(raw, SOL_IP, IPT_SO_SET_REPLACE, NULL, 0)",
                libc::SYS_setsockopt,
                [fd as u64, libc::SOL_IP as u64, 64, NULL, 0, 0],
            );
            close_if_fd(sock);
            out.is_any(&[libc::EPERM, libc::ENOPROTOOPT])
        }
        other => other.is_any(&[libc::EPERM, libc::EACCES]),
    };
    c.pass = user_net.is(libc::EPERM) && net.is(libc::EPERM) && rules_refused;
    c
}

fn proc_sysrq_trigger(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "proc_sysrq_trigger",
        "8",
        "/proc/sysrq-trigger",
        "a read-only mount of its own (mountinfo) that refuses a write with EROFS; opening it for writing fails (nothing is ever written)",
    );
    const PATH: &str = "/proc/sysrq-trigger";
    match sys::lstat_errno(Path::new(PATH)) {
        Ok(_) => {}
        Err(libc::ENOENT) => {
            c.skip("/proc/sysrq-trigger does not exist on this kernel (built without CONFIG_MAGIC_SYSRQ)");
            return c;
        }
        Err(errno) => {
            c.fact(format!("lstat({PATH})"), errno_name(errno));
            return c;
        }
    }
    let ro = match mounts() {
        Ok(mounts) => mounted_read_only(&mounts, PATH),
        Err(e) => {
            c.note(e);
            None
        }
    };
    c.fact(
        "mountinfo",
        match ro {
            Some(true) => "a read-only mount",
            Some(false) => "a WRITABLE mount",
            None => "NO MOUNT of its own",
        },
    );
    // The mount's own answer, asked before any permission: EROFS.
    let erofs = touch_atime(&mut c, PATH);
    // Opening it for writing: EROFS, or EACCES when the permission check comes first
    // (the file belongs to the host's root, which the task's user namespace does not
    // map, so even the task's root is "other" to it). Either way the mount above is
    // what is asserted; EACCES alone is what any unprivileged user of a bare host gets.
    let open = try_open(Path::new(PATH), libc::O_WRONLY);
    c.fact(format!("open({PATH}, O_WRONLY)"), open.text());
    c.pass = ro == Some(true) && erofs.is(libc::EROFS) && open.is_any(&[libc::EROFS, libc::EACCES]);
    c
}

fn core_pattern(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "core_pattern",
        "10",
        "core_pattern, modprobe and binfmt_misc handlers",
        "opening core_pattern or modprobe for writing fails, /proc/sys on a read-only mount; mounting procfs EPERM",
    );
    let mut pass = true;
    for path in [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/proc/sys/fs/binfmt_misc/register",
    ] {
        // core_pattern exists on every kernel; modprobe needs CONFIG_MODULES and
        // register a mounted binfmt_misc. An absent file is not a refusal.
        match sys::lstat_errno(Path::new(path)) {
            Ok(_) => {}
            Err(libc::ENOENT) if !path.ends_with("core_pattern") => {
                c.fact(format!("open({path}, O_WRONLY)"), "absent (not checked)");
                continue;
            }
            Err(errno) => {
                pass = false;
                c.fact(format!("lstat({path})"), errno_name(errno));
                continue;
            }
        }
        let out = try_open(Path::new(path), libc::O_WRONLY);
        pass &= out.is_any(&[libc::EROFS, libc::EACCES, libc::EPERM]);
        c.fact(format!("open({path}, O_WRONLY)"), out.text());
    }
    // EACCES above is also what an unprivileged user of a bare host gets: what the
    // sandbox adds is the read-only mount, which answers EROFS before any permission.
    let ro = sys::read_only(Path::new("/proc/sys"));
    c.fact("/proc/sys mount", if ro { "read-only" } else { "WRITABLE" });
    pass &= ro;
    pass &= touch_atime(&mut c, "/proc/sys/kernel/core_pattern").is(libc::EROFS);
    let proc_ = cs("proc");
    let mount = c.call(
        "mount(proc, /nonexistent-probe-dir, proc)",
        libc::SYS_mount,
        [
            ptr(&proc_),
            MISSING.as_ptr() as u64,
            ptr(&proc_),
            0,
            NULL,
            0,
        ],
    );
    c.pass = pass && mount.is(libc::EPERM);
    c
}

/// Directories a workload could make a device node in, when writable: each is tried.
const NODE_DIRS: [&str; 6] = ["/dev/shm", "/tmp", "/var/tmp", "/run", "/root", "/"];

fn mknod_block_device(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "mknod_block_device",
        "11",
        "mknod of a block device",
        "in every writable directory: mknod EPERM (or EACCES from an LSM), or the node cannot be opened",
    );
    let mut pass = true;
    let mut tried = 0;
    for dir in NODE_DIRS {
        if !matches!(sys::can_write(Path::new(dir)), Outcome::Ok(_)) {
            continue;
        }
        let base = if dir == "/" { "" } else { dir };
        let mut template = format!("{base}/probe-XXXXXX\0").into_bytes();
        // SAFETY: a writable NUL-terminated template mkdtemp fills in.
        let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
        if made.is_null() {
            let out = Outcome::Err(nix::errno::Errno::last_raw());
            c.fact(format!("mkdtemp({base}/probe-XXXXXX)"), out.text());
            continue;
        }
        tried += 1;
        template.pop();
        let tmp = PathBuf::from(String::from_utf8_lossy(&template).into_owned());
        pass &= mknod_in(&mut c, &tmp, base);
        let _ = std::fs::remove_dir(&tmp);
    }
    if tried == 0 {
        c.note("no writable directory: nodes cannot be made anywhere");
    }
    c.pass = pass;
    c
}

/// Tries a block node `sda` (8:0) in `tmp`, a fresh directory of ours in `base`
/// (`""` for `/`).
fn mknod_in(c: &mut Check, tmp: &Path, base: &str) -> bool {
    let node = tmp.join("sda");
    let node_c = sys::cpath(&node);
    let mknod = c.call(
        format!("mknodat({base}/probe-*/sda, S_IFBLK, 8:0)"),
        libc::SYS_mknodat,
        [
            libc::AT_FDCWD as u64,
            ptr(&node_c),
            u64::from(libc::S_IFBLK | 0o600),
            libc::makedev(8, 0),
            0,
            0,
        ],
    );
    match mknod {
        // The kernel's own check: no CAP_MKNOD in the initial user namespace.
        Outcome::Err(libc::EPERM) => true,
        // EACCES is not the kernel's device check (that says EPERM), and not the
        // directory's permissions when a FIFO can be made in the same directory: the
        // directory is ours and writable, the mount takes the node. What is left is
        // an LSM's mknod hook refusing block devices, such as the Landlock domain a
        // container of a `pid_mode = task` task gets (it handles MAKE_BLOCK only).
        Outcome::Err(libc::EACCES) => {
            let fifo = sys::cpath(&tmp.join("fifo"));
            // SAFETY: a NUL-terminated path in our own directory; removed below.
            let made = unsafe { libc::mknod(fifo.as_ptr(), libc::S_IFIFO | 0o600, 0) } == 0;
            if made {
                let _ = std::fs::remove_file(tmp.join("fifo"));
            }
            c.fact(
                format!("mknod({base}/probe-*/fifo, S_IFIFO)"),
                if made {
                    "OK: the EACCES comes from an LSM"
                } else {
                    "refused too: the EACCES may be the directory's"
                },
            );
            made
        }
        Outcome::Ok(_) => {
            // Created: opened read-only without reading, then removed.
            let open = try_open(&node, libc::O_RDONLY | libc::O_NONBLOCK);
            c.fact(format!("open({base}/probe-*/sda, O_RDONLY)"), open.text());
            let _ = std::fs::remove_file(&node);
            open.is_any(&[libc::EACCES, libc::EPERM])
        }
        _ => false,
    }
}

fn mount_host_disk(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "mount_host_disk",
        "12",
        "mount the host's disk",
        "mount, open_tree and fsmount EPERM",
    );
    let (dev, fstype) = (cs("/dev/sda"), cs("ext4"));
    let mount = c.call(
        "mount(/dev/sda, /nonexistent-probe-dir, ext4, MS_RDONLY)",
        libc::SYS_mount,
        [
            ptr(&dev),
            MISSING.as_ptr() as u64,
            ptr(&fstype),
            libc::MS_RDONLY,
            NULL,
            0,
        ],
    );
    let tree = c.call(
        "open_tree(AT_FDCWD, /nonexistent-probe-dir, OPEN_TREE_CLONE)",
        libc::SYS_open_tree,
        [libc::AT_FDCWD as u64, MISSING.as_ptr() as u64, 1, 0, 0, 0],
    );
    close_if_fd(tree);
    let fsmount = c.call(
        "fsmount(-1, 0, 0)",
        libc::SYS_fsmount,
        [BAD_FD, 0, 0, 0, 0, 0],
    );
    c.pass = mount.is(libc::EPERM) && tree.is(libc::EPERM) && fsmount.is(libc::EPERM);
    c
}

fn host_pid_visibility(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "host_pid_visibility",
        "13",
        "see or signal a host process",
        "own pid namespace; kill(host pid, 0) and pidfd_open(host pid) ESRCH",
    );
    let own = !in_initial_ns("pid");
    c.fact("pid namespace", if own { "own" } else { "the host's" });
    let mut pass = own;
    match visible_pids() {
        Ok(pids) => c.fact("visible processes", pids.len().to_string()),
        Err(e) => {
            c.note(e);
            pass = false;
        }
    }
    if ctx.host_pids.is_empty() {
        c.note("no --host-pid given: no host process aimed at");
    }
    for &pid in &ctx.host_pids {
        let kill = c.call(
            format!("kill({pid}, 0)"),
            libc::SYS_kill,
            [pid as u64, 0, 0, 0, 0, 0],
        );
        let pidfd = c.call(
            format!("pidfd_open({pid})"),
            libc::SYS_pidfd_open,
            [pid as u64, 0, 0, 0, 0, 0],
        );
        close_if_fd(pidfd);
        pass &= kill.is(libc::ESRCH) && pidfd.is(libc::ESRCH);
    }
    c.pass = pass;
    c
}

fn ptrace_host_process(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "ptrace_host_process",
        "13",
        "ptrace a host process (the ptrace family)",
        "process_vm_readv and PTRACE_ATTACH on a host pid ESRCH; kcmp EPERM (ESRCH only with SYS_PTRACE); pidfd_getfd and process_madvise EPERM (EBADF only with SYS_PTRACE)",
    );
    let mut pass = !in_initial_ns("pid");
    // Without the opt-in seccomp refuses kcmp, pidfd_getfd and process_madvise
    // (EPERM); with it they reach the kernel, which finds no such process (ESRCH) or
    // no such pidfd (EBADF), as it would on a bare host.
    let ptrace = ctx.has_cap(sys::CAP_SYS_PTRACE);
    let (kcmp_ok, fd_ok): (&[i32], &[i32]) = if ptrace {
        (&[libc::ESRCH], &[libc::EBADF])
    } else {
        (&[libc::EPERM], &[libc::EPERM])
    };
    for &pid in &ctx.host_pids {
        let mut byte = [0u8; 1];
        let local = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let remote = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 1,
        };
        // Reading address 0 of the target: EFAULT if it exists and may be read.
        let readv = c.call(
            format!("process_vm_readv({pid}, NULL)"),
            libc::SYS_process_vm_readv,
            [
                pid as u64,
                &local as *const libc::iovec as u64,
                1,
                &remote as *const libc::iovec as u64,
                1,
                0,
            ],
        );
        pass &= readv.is_any(&[libc::ESRCH, libc::EPERM]);
        // Attaching would stop a process that exists: only tried when it does not.
        let exists = !sys::syscall(libc::SYS_kill, [pid as u64, 0, 0, 0, 0, 0]).is(libc::ESRCH);
        if exists {
            c.fact(
                format!("ptrace(PTRACE_ATTACH, {pid})"),
                "not tried: the process exists",
            );
            pass = false;
        } else {
            let attach = c.call(
                format!("ptrace(PTRACE_ATTACH, {pid})"),
                libc::SYS_ptrace,
                [libc::PTRACE_ATTACH as u64, pid as u64, 0, 0, 0, 0],
            );
            pass &= attach.is_any(&[libc::ESRCH, libc::EPERM]);
        }
        let kcmp = c.call(
            format!("kcmp({pid}, {pid}, KCMP_VM)"),
            libc::SYS_kcmp,
            [pid as u64, pid as u64, 1, 0, 0, 0],
        );
        pass &= kcmp.is_any(kcmp_ok);
    }
    if ctx.host_pids.is_empty() {
        c.note("no --host-pid given: no host process aimed at");
    }
    let getfd = c.call(
        "pidfd_getfd(-1, 0, 0)",
        libc::SYS_pidfd_getfd,
        [BAD_FD, 0, 0, 0, 0, 0],
    );
    let madvise = c.call(
        "process_madvise(-1, NULL, 0, MADV_COLD, 0)",
        libc::SYS_process_madvise,
        [BAD_FD, NULL, 0, libc::MADV_COLD as u64, 0, 0],
    );
    pass &= getfd.is_any(fd_ok) && madvise.is_any(fd_ok);
    c.pass = pass;
    c
}

/// How the ptrace family fared against one process.
struct Reach {
    attach: Outcome,
    readv: Outcome,
    environ: Outcome,
    root: Outcome,
}

impl Reach {
    /// Every door open: what a process may do to a sibling it is allowed to trace.
    fn open(&self) -> bool {
        matches!(self.attach, Outcome::Ok(_))
            && self.readv.is(libc::EFAULT)
            && matches!(self.environ, Outcome::Ok(_))
            && matches!(self.root, Outcome::Ok(_))
    }

    /// Every door shut, by the kernel's ptrace access check.
    fn shut(&self) -> bool {
        self.attach.is(libc::EPERM)
            && self.readv.is(libc::EPERM)
            && self.environ.is(libc::EACCES)
            && self.root.is(libc::EACCES)
    }
}

/// `PTRACE_ATTACH`, and if it succeeds, waits for the stop and detaches at once
/// without a signal, so the target runs on as before. Returns the attach's outcome.
fn attach_and_detach(c: &mut Check, pid: i32) -> Outcome {
    let args = [libc::PTRACE_ATTACH as u64, pid as u64, 0, 0, 0, 0];
    let attach = sys::syscall(libc::SYS_ptrace, args);
    c.sys(
        format!("ptrace(PTRACE_ATTACH, {pid})"),
        libc::SYS_ptrace,
        args,
        attach,
    );
    if let Outcome::Ok(_) = attach {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut status = 0;
        // SAFETY: waiting for our tracee, with a live status out-pointer.
        while unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) } == 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let detach = sys::syscall(
            libc::SYS_ptrace,
            [libc::PTRACE_DETACH as u64, pid as u64, 0, 0, 0, 0],
        );
        c.fact(format!("ptrace(PTRACE_DETACH, {pid})"), detach.text());
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| {
                st.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').next().map(str::to_string))
            })
            .unwrap_or_else(|| "gone".to_string());
        c.fact(format!("state of {pid} after the detach"), state);
    }
    attach
}

/// Tries the ptrace family on `pid`: attach (and detach), read its memory at address
/// 0 (EFAULT when allowed), open its environment, read its root link.
fn reach(c: &mut Check, pid: i32) -> Reach {
    let attach = attach_and_detach(c, pid);
    let mut byte = [0u8; 1];
    let local = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 1,
    };
    let readv = c.call(
        format!("process_vm_readv({pid}, NULL)"),
        libc::SYS_process_vm_readv,
        [
            pid as u64,
            &local as *const libc::iovec as u64,
            1,
            &remote as *const libc::iovec as u64,
            1,
            0,
        ],
    );
    let environ = try_open(Path::new(&format!("/proc/{pid}/environ")), libc::O_RDONLY);
    c.fact(format!("open(/proc/{pid}/environ)"), environ.text());
    let root = match std::fs::read_link(format!("/proc/{pid}/root")) {
        Ok(_) => Outcome::Ok(0),
        Err(e) => Outcome::Err(e.raw_os_error().unwrap_or(0)),
    };
    c.fact(format!("readlink(/proc/{pid}/root)"), root.text());
    Reach {
        attach,
        readv,
        environ,
        root,
    }
}

fn pid_mode_task_sibling(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "pid_mode_task_sibling",
        "13",
        "pid_mode = task: trace a sibling container, or the task init",
        "a sibling: PTRACE_ATTACH, process_vm_readv, /proc/<pid>/environ and /proc/<pid>/root refused (EPERM, EACCES) without SYS_PTRACE, allowed with it; the task init (pid 1) refused either way",
    );
    let Some(siblings) = &ctx.siblings else {
        c.skip("no sibling to aim at: run with --siblings (or --sibling-pid) in a task with pid_mode = task");
        return c;
    };
    if in_initial_ns("pid") {
        c.skip("the host's pid namespace: no process is aimed at");
        return c;
    }
    if siblings.is_empty() {
        c.skip("no sibling visible: the task does not share its pid namespace");
        return c;
    }
    let ptrace = ctx.has_cap(sys::CAP_SYS_PTRACE);
    c.fact("CAP_SYS_PTRACE", if ptrace { "held" } else { "not held" });
    let mut pass = true;
    for &pid in siblings {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        c.fact(format!("sibling {pid}"), comm.trim().to_string());
        let r = reach(&mut c, pid);
        pass &= if ptrace { r.open() } else { r.shut() };
    }
    // SAFETY: getpid has no arguments.
    if unsafe { libc::getpid() } != 1 {
        let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        c.fact("pid 1", comm.trim().to_string());
        pass &= reach(&mut c, 1).shut();
    }
    c.pass = pass;
    c
}

fn kernel_module_load(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "kernel_module_load",
        "14",
        "load or remove a kernel module",
        "finit_module, init_module and delete_module EPERM",
    );
    let empty = cs("");
    let finit = c.call(
        "finit_module(-1, \"\", 0)",
        libc::SYS_finit_module,
        [BAD_FD, ptr(&empty), 0, 0, 0, 0],
    );
    let init = c.call(
        "init_module(NULL, 0, \"\")",
        libc::SYS_init_module,
        [NULL, 0, ptr(&empty), 0, 0, 0],
    );
    let name = cs("nonexistent_probe_module");
    let delete = c.call(
        "delete_module(nonexistent_probe_module, O_NONBLOCK)",
        libc::SYS_delete_module,
        [ptr(&name), libc::O_NONBLOCK as u64, 0, 0, 0, 0],
    );
    c.pass = finit.is(libc::EPERM) && init.is(libc::EPERM) && delete.is(libc::EPERM);
    c
}

fn tiocsti(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "tiocsti",
        "15",
        "TIOCSTI into the launcher's terminal",
        "ioctl(TIOCSTI) and ioctl(TIOCLINUX) EPERM, also with high bits set in cmd; no controlling terminal (/dev/tty ENXIO)",
    );
    let byte = b'x';
    let mut pass = true;
    for (what, cmd) in [
        ("ioctl(-1, TIOCSTI)", TIOCSTI),
        ("ioctl(-1, 1<<32 | TIOCSTI)", 1u64 << 32 | TIOCSTI),
        ("ioctl(-1, TIOCLINUX)", TIOCLINUX),
    ] {
        let out = c.call(
            what,
            libc::SYS_ioctl,
            [BAD_FD, cmd, &byte as *const u8 as u64, 0, 0, 0],
        );
        pass &= out.is(libc::EPERM);
    }
    let tty = try_open(Path::new("/dev/tty"), libc::O_RDWR);
    c.fact("open(/dev/tty)", tty.text());
    c.pass = pass && tty.is_any(&[libc::ENXIO, libc::ENOENT]);
    c
}

/// How the euid a setuid program runs with is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AskEuid {
    /// A copy of this probe (`--setuid`): run as `PATH ids`, it prints its own ids.
    Probe,
    /// Another program: run as `PATH --version` with `LD_SHOW_AUXV=1`, its dynamic
    /// loader prints `AT_EUID`, or nothing in secure-execution mode (which it enters
    /// when the exec changed the effective uid).
    Auxv,
}

/// Runs the setuid program `path` as `uid` and returns the euid it ran with, or
/// `None` when the loader would not say (secure-execution mode: the euid changed).
fn exec_setuid(path: &Path, uid: u32, ask: AskEuid) -> Result<Option<u32>, String> {
    let prog = sys::cpath(path);
    let arg = cs(if ask == AskEuid::Probe {
        "ids"
    } else {
        "--version"
    });
    let argv = [prog.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let env = [cs("PATH=/usr/bin:/bin"), cs("LD_SHOW_AUXV=1")];
    let envp = [
        env[0].as_ptr(),
        if ask == AskEuid::Auxv {
            env[1].as_ptr()
        } else {
            std::ptr::null()
        },
        std::ptr::null(),
    ];
    let mut fds = [0; 2];
    // SAFETY: a live two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err("pipe failed".to_string());
    }
    let switch = nix::unistd::geteuid().as_raw() != uid;
    // SAFETY: the probe is single-threaded; the child only makes raw calls on data
    // prepared above, then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child: stdout to the pipe, stdin and stderr to /dev/null,
        // drop to `uid`, exec.
        unsafe {
            libc::dup2(fds[1], 1);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 2);
            }
            if switch {
                libc::setgroups(0, std::ptr::null());
                if libc::setresgid(uid, uid, uid) != 0 || libc::setresuid(uid, uid, uid) != 0 {
                    libc::_exit(126);
                }
            }
            libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: the parent's write end is not used.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        // SAFETY: closing our read end.
        unsafe { libc::close(fds[0]) };
        return Err("fork failed".to_string());
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut pfd = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } > 0 {
            // SAFETY: reading into a live buffer.
            let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        } else if std::time::Instant::now() > deadline {
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
    }
    let mut status = 0;
    // SAFETY: closing our read end, reaping our own child.
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) >= 126 {
        return Err(format!(
            "could not run (exit {})",
            libc::WEXITSTATUS(status)
        ));
    }
    let text = String::from_utf8_lossy(&out);
    match ask {
        AskEuid::Auxv => Ok(text.lines().find_map(|l| {
            l.strip_prefix("AT_EUID:")
                .and_then(|v| v.trim().parse().ok())
        })),
        // `uid R E S` from the copy's own getresuid.
        AskEuid::Probe => text
            .lines()
            .find_map(|l| {
                let ids: Vec<u32> = l
                    .strip_prefix("uid ")?
                    .split(' ')
                    .filter_map(|v| v.parse().ok())
                    .collect();
                ids.get(1).copied()
            })
            .map(Some)
            .ok_or_else(|| format!("no ids printed: {}", text.trim())),
    }
}

fn setuid_escalation(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "setuid_escalation",
        "16",
        "setuid binary escalation",
        "NoNewPrivs: 1; a setuid program run by another uid keeps that uid as euid",
    );
    let nnp = sys::status_field(&ctx.status, "NoNewPrivs").unwrap_or_default();
    c.fact("NoNewPrivs", nnp.clone());
    let mut pass = nnp == "1";
    let is_setuid = |p: &Path| sys::stat(p).is_some_and(|st| st.st_mode & libc::S_ISUID != 0);
    let mut candidates: Vec<(PathBuf, AskEuid)> = ctx
        .setuid
        .iter()
        .map(|p| (p.clone(), AskEuid::Probe))
        .collect();
    candidates.extend(
        SETUID_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| is_setuid(p))
            .map(|p| (p, AskEuid::Auxv)),
    );
    let overflow: u32 = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534);
    let me = nix::unistd::geteuid().as_raw();
    let mut tried = 0;
    for (path, ask) in candidates {
        let Some(st) = sys::stat(&path).filter(|st| st.st_mode & libc::S_ISUID != 0) else {
            c.fact(format!("exec {}", path.display()), "not a setuid file");
            continue;
        };
        tried += 1;
        // Run it as a uid other than its owner (needs CAP_SETUID when we are root).
        let uid = if me != 0 {
            me
        } else if st.st_uid == 65534 {
            65533
        } else {
            65534
        };
        let owner = if st.st_uid == overflow {
            "owner unmapped here".to_string()
        } else {
            format!("owner {}", st.st_uid)
        };
        let nosuid = sys::mount_flags(&path).is_some_and(|f| f & libc::ST_NOSUID != 0);
        let what = format!(
            "exec {} ({owner}{}) as uid {uid}",
            path.display(),
            if nosuid { ", nosuid mount" } else { "" }
        );
        match exec_setuid(&path, uid, ask) {
            Ok(Some(euid)) => {
                pass &= euid == uid;
                c.fact(what, format!("euid {euid}"));
            }
            Ok(None) => {
                pass = false;
                c.fact(what, "secure-execution mode: the exec changed the euid");
            }
            // Nothing was observed: no pass can rest on it.
            Err(e) => {
                pass = false;
                c.fact(what, e);
            }
        }
    }
    if tried == 0 {
        c.note("no setuid program found to try");
    }
    c.pass = pass;
    c
}

fn nested_user_namespace(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "nested_user_namespace",
        "20",
        "a nested user namespace",
        "unshare(CLONE_NEWUSER) EPERM, clone(CLONE_NEWUSER) EPERM, clone3 ENOSYS",
    );
    let unshare = c.call_in_child(
        "unshare(CLONE_NEWUSER)",
        libc::SYS_unshare,
        [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
    );
    // CLONE_NEWUSER with CLONE_FS is EINVAL when clone may look at it.
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_FS) as u64;
    let clone_args = [flags, 0, 0, 0, 0, 0];
    let clone = in_child(|| {
        let out = sys::syscall(libc::SYS_clone, clone_args);
        if out == Outcome::Ok(0) {
            // SAFETY: a process created against expectations leaves at once.
            unsafe { libc::_exit(0) };
        }
        out
    });
    c.sys(
        "clone(CLONE_NEWUSER|CLONE_FS)",
        libc::SYS_clone,
        clone_args,
        clone,
    );
    let clone3 = c.call("clone3(NULL, 0)", libc::SYS_clone3, [NULL, 0, 0, 0, 0, 0]);
    c.pass = unshare.is(libc::EPERM) && clone.is(libc::EPERM) && clone3.is(libc::ENOSYS);
    c
}

fn all_eperm(c: &mut Check, calls: &[(&str, i64, [u64; 6])]) -> bool {
    let mut pass = true;
    for &(what, nr, args) in calls {
        let out = c.call(what, nr, args);
        close_if_fd(out);
        pass &= out.is(libc::EPERM);
    }
    pass
}

fn io_uring(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "io_uring",
        "21",
        "io_uring",
        "io_uring_setup, io_uring_enter, io_uring_register EPERM",
    );
    c.pass = all_eperm(
        &mut c,
        &[
            (
                "io_uring_setup(0, NULL)",
                libc::SYS_io_uring_setup,
                [0, NULL, 0, 0, 0, 0],
            ),
            (
                "io_uring_enter(-1)",
                libc::SYS_io_uring_enter,
                [BAD_FD, 0, 0, 0, NULL, 0],
            ),
            (
                "io_uring_register(-1)",
                libc::SYS_io_uring_register,
                [BAD_FD, 0, NULL, 0, 0, 0],
            ),
        ],
    );
    c
}

fn bpf(_ctx: &Ctx) -> Check {
    let mut c = Check::new("bpf", "22", "bpf", "bpf EPERM");
    c.pass = all_eperm(
        &mut c,
        &[
            (
                "bpf(BPF_PROG_LOAD, NULL, 0)",
                libc::SYS_bpf,
                [5, NULL, 0, 0, 0, 0],
            ),
            (
                "bpf(9999, NULL, 0)",
                libc::SYS_bpf,
                [9999, NULL, 0, 0, 0, 0],
            ),
        ],
    );
    c
}

fn perf_event_open(_ctx: &Ctx) -> Check {
    let mut c = Check::new("perf_event_open", "23", "perf_event_open", "EPERM");
    c.pass = all_eperm(
        &mut c,
        &[(
            "perf_event_open(NULL, 0, -1, -1, 0)",
            libc::SYS_perf_event_open,
            [NULL, 0, BAD_FD, BAD_FD, 0, 0],
        )],
    );
    c
}

fn keyring(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "keyring",
        "24",
        "the kernel keyring",
        "keyctl, add_key, request_key EPERM",
    );
    c.pass = all_eperm(
        &mut c,
        &[
            (
                "keyctl(KEYCTL_GET_KEYRING_ID, -1000)",
                libc::SYS_keyctl,
                [0, (-1000i64) as u64, 0, 0, 0, 0],
            ),
            (
                "add_key(NULL, NULL, NULL, 0, 0)",
                libc::SYS_add_key,
                [NULL, NULL, NULL, 0, 0, 0],
            ),
            (
                "request_key(NULL, NULL, NULL, 0)",
                libc::SYS_request_key,
                [NULL, NULL, NULL, 0, 0, 0],
            ),
        ],
    );
    c
}

fn userfaultfd(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "userfaultfd",
        "25",
        "userfaultfd",
        "EPERM; no /dev/userfaultfd",
    );
    let pass = all_eperm(
        &mut c,
        &[(
            "userfaultfd(0xffff)",
            libc::SYS_userfaultfd,
            [0xffff, 0, 0, 0, 0, 0],
        )],
    );
    let dev = sys::lstat(Path::new("/dev/userfaultfd")).is_some();
    c.fact("/dev/userfaultfd", if dev { "present" } else { "absent" });
    c.pass = pass && !dev;
    c
}

fn af_packet_raw_socket(ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "af_packet_raw_socket",
        "26",
        "raw packet sockets (AF_PACKET)",
        "EPERM without NET_RAW; with NET_RAW (a default), the socket sees only the task's lo",
    );
    let out = c.call(
        "socket(AF_PACKET, SOCK_RAW, 0)",
        libc::SYS_socket,
        [
            libc::AF_PACKET as u64,
            (libc::SOCK_RAW | libc::SOCK_CLOEXEC) as u64,
            0,
            0,
            0,
            0,
        ],
    );
    close_if_fd(out);
    let net_raw = ctx.has_cap(sys::CAP_NET_RAW);
    c.fact("CAP_NET_RAW", if net_raw { "held" } else { "not held" });
    c.pass = match out {
        Outcome::Ok(_) => {
            let names = interface_names();
            c.fact("interfaces the socket can reach", names.join(","));
            net_raw && names == ["lo"]
        }
        other => other.is_any(&[libc::EPERM, libc::EACCES]),
    };
    c
}

fn af_vsock_af_alg_sockets(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "af_vsock_af_alg_sockets",
        "27",
        "AF_VSOCK and AF_ALG sockets",
        "EPERM, also with high bits set in the domain",
    );
    let stream = libc::SOCK_STREAM as u64;
    let seqpacket = libc::SOCK_SEQPACKET as u64;
    let vsock = libc::AF_VSOCK as u64;
    let alg = libc::AF_ALG as u64;
    c.pass = all_eperm(
        &mut c,
        &[
            (
                "socket(AF_VSOCK, SOCK_STREAM)",
                libc::SYS_socket,
                [vsock, stream, 0, 0, 0, 0],
            ),
            (
                "socket(AF_ALG, SOCK_SEQPACKET)",
                libc::SYS_socket,
                [alg, seqpacket, 0, 0, 0, 0],
            ),
            (
                "socket(1<<32 | AF_VSOCK, SOCK_STREAM)",
                libc::SYS_socket,
                [1 << 32 | vsock, stream, 0, 0, 0, 0],
            ),
            (
                "socket(1<<32 | AF_ALG, SOCK_SEQPACKET)",
                libc::SYS_socket,
                [1 << 32 | alg, seqpacket, 0, 0, 0, 0],
            ),
        ],
    );
    c
}

fn masked_path_race(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "masked_path_race",
        "30",
        "undo a mask after start (runc's 2025 masked-path advisories)",
        "umount2 and mount over a masked path EPERM; every mask still /dev/null (char 1:3) or an empty read-only directory",
    );
    let kcore = cs("/proc/kcore");
    // An unknown umount flag: EINVAL if the call may reach the kernel.
    let umount = c.call(
        "umount2(/proc/kcore, unknown flag)",
        libc::SYS_umount2,
        [ptr(&kcore), 0x8000_0000, 0, 0, 0, 0],
    );
    let mount = c.call(
        "mount(/nonexistent-probe-dir, /proc/kcore, MS_BIND)",
        libc::SYS_mount,
        [
            MISSING.as_ptr() as u64,
            ptr(&kcore),
            NULL,
            libc::MS_BIND,
            NULL,
            0,
        ],
    );
    let bad: Vec<String> = masked_list()
        .iter()
        .filter_map(|p| mask_state(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    c.fact(
        "masks",
        if bad.is_empty() {
            "intact".to_string()
        } else {
            bad.join(", ")
        },
    );
    let null = sys::lstat(Path::new("/dev/null"));
    let null_ok = null.is_some_and(|st| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3
    });
    c.fact(
        "/dev/null",
        if null_ok { "char 1:3" } else { "NOT char 1:3" },
    );
    c.pass = umount.is(libc::EPERM) && mount.is(libc::EPERM) && bad.is_empty() && null_ok;
    c
}

fn cgroupfs_not_writable(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "cgroupfs_not_writable",
        "3",
        "write to cgroupfs (move into or configure a host cgroup)",
        "no cgroupfs file writable; mounting cgroup2 EPERM",
    );
    let mut pass = true;
    let cg_mounts: Vec<Mount> = mounts()
        .unwrap_or_else(|e| {
            c.note(e);
            pass = false;
            Vec::new()
        })
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect();
    if cg_mounts.is_empty() {
        c.note("no cgroupfs mounted in the task");
    }
    for m in &cg_mounts {
        let ro = m.options.split(',').any(|o| o == "ro");
        for file in [
            "cgroup.procs",
            "release_agent",
            "notify_on_release",
            "cgroup.subtree_control",
        ] {
            let path = Path::new(&m.point).join(file);
            if sys::lstat(&path).is_none() {
                continue;
            }
            let out = try_open(&path, libc::O_WRONLY);
            pass &= !matches!(out, Outcome::Ok(_));
            c.fact(
                format!(
                    "open({}, O_WRONLY){}",
                    path.display(),
                    if ro { " [ro]" } else { "" }
                ),
                out.text(),
            );
        }
    }
    let cg2 = cs("cgroup2");
    let mount = c.call(
        "mount(cgroup2, /nonexistent-probe-dir, cgroup2)",
        libc::SYS_mount,
        [ptr(&cg2), MISSING.as_ptr() as u64, ptr(&cg2), 0, NULL, 0],
    );
    c.pass = pass && mount.is(libc::EPERM);
    c
}

fn sysfs_read_only(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "sysfs_read_only",
        "-",
        "write to /sys (uevent_helper, power state, device settings)",
        "/sys read-only; opening its files for writing fails",
    );
    let ro = sys::read_only(Path::new("/sys"));
    c.fact("/sys", if ro { "read-only" } else { "WRITABLE" });
    let mut pass = ro;
    for path in [
        "/sys/kernel/uevent_helper",
        "/sys/kernel/profiling",
        "/sys/power/state",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/class/net/lo/mtu",
    ] {
        let path = Path::new(path);
        if sys::lstat(path).is_none() {
            continue;
        }
        let out = try_open(path, libc::O_WRONLY);
        pass &= !matches!(out, Outcome::Ok(_));
        c.fact(format!("open({}, O_WRONLY)", path.display()), out.text());
    }
    c.pass = pass;
    c
}

fn x32_syscalls(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "x32_syscalls",
        "-",
        "x32-ABI syscall numbers (a second syscall table)",
        "EPERM",
    );
    let x32 = 0x4000_0000i64;
    c.pass = all_eperm(
        &mut c,
        &[
            ("x32 getpid", x32 | libc::SYS_getpid, [0; 6]),
            (
                "x32 read(-1, NULL, 0)",
                x32 | libc::SYS_read,
                [BAD_FD, NULL, 0, 0, 0, 0],
            ),
        ],
    );
    c
}

fn chroot_breakout(_ctx: &Ctx) -> Check {
    let mut c = Check::new(
        "chroot_breakout",
        "-",
        "the classic chroot breakout (chroot, climb .., chroot .)",
        "ends at the task's own root (or chroot refused)",
    );
    let root = sys::stat(Path::new("/")).map(|st| (st.st_dev, st.st_ino));
    let out = in_child(|| {
        let into = c"/proc";
        // SAFETY: constant paths; this runs in a child made for it.
        unsafe {
            if libc::chroot(into.as_ptr()) != 0 {
                return Outcome::Err(nix::errno::Errno::last_raw());
            }
            for _ in 0..64 {
                libc::chdir(c"..".as_ptr());
            }
            if libc::chroot(c".".as_ptr()) != 0 {
                return Outcome::Err(nix::errno::Errno::last_raw());
            }
        }
        let now = sys::stat(Path::new("/")).map(|st| (st.st_dev, st.st_ino));
        Outcome::Ok(i64::from(now == root))
    });
    c.fact(
        "chroot(/proc); chdir(..) x64; chroot(.)",
        match out {
            Outcome::Ok(1) => "back at the task's root".to_string(),
            Outcome::Ok(_) => "REACHED ANOTHER ROOT".to_string(),
            other => other.text(),
        },
    );
    // On a bare host the climb ends at "/" too, the host's: the check means
    // something only in a mount namespace of the task's own (known from Linux 6.18,
    // which gives the initial one a fixed inode number).
    let host_mnt = in_initial_ns("mnt");
    if host_mnt {
        c.note("the host's mount namespace: the root reached is the host's");
    }
    c.pass = !host_mnt && (out == Outcome::Ok(1) || out.is(libc::EPERM));
    c
}
