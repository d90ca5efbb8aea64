//! The default profile against Docker's own JSON, evaluated independently here with
//! Docker's semantics (64-bit argument comparisons, `includes`/`excludes`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::profile::{KernelVersion, ENOSYS, EPERM};
use super::super::profile::{TIOCLINUX, TIOCSTI};
use super::*;

const DOCKER_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/docker-default-seccomp.json"
);

/// Docker's decision for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Docker {
    Allow,
    Errno(u32),
}

struct DockerProfile {
    default_errno: u32,
    rules: Vec<Value>,
}

fn load() -> DockerProfile {
    let text = std::fs::read_to_string(DOCKER_JSON)
        .unwrap_or_else(|e| panic!("cannot read {DOCKER_JSON}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DOCKER_JSON}: {e}"));
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    let default_errno = json["defaultErrnoRet"].as_u64().map_or(EPERM, |e| e as u32);
    let rules = json["syscalls"]
        .as_array()
        .unwrap_or_else(|| panic!("no syscalls in {DOCKER_JSON}"))
        .clone();
    DockerProfile {
        default_errno,
        rules,
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl DockerProfile {
    /// Whether rule `rule` applies on amd64 to a container with the capabilities `caps`
    /// (names like `CAP_CHOWN`), as moby's `seccomp_linux.go` decides.
    fn applies(rule: &Value, caps: &BTreeSet<String>) -> bool {
        let includes = &rule["includes"];
        let excludes = &rule["excludes"];
        let arches = strings(&includes["arches"]);
        if !arches.is_empty() && !arches.contains(&"amd64") {
            return false;
        }
        if strings(&excludes["arches"]).contains(&"amd64") {
            return false;
        }
        if !strings(&includes["caps"]).iter().all(|c| caps.contains(*c)) {
            return false;
        }
        if strings(&excludes["caps"]).iter().any(|c| caps.contains(*c)) {
            return false;
        }
        if let Some(min) = includes["minKernel"].as_str() {
            let min = KernelVersion::parse(min).unwrap_or_else(|| panic!("minKernel {min}"));
            if KernelVersion::running().is_none_or(|k| k < min) {
                return false;
            }
        }
        true
    }

    /// Docker's conditions: 64-bit comparisons; MASKED_EQ compares `arg & value` with
    /// `valueTwo`.
    fn args_match(rule: &Value, args: &[u64; 6]) -> bool {
        let Some(conditions) = rule["args"].as_array() else {
            return true;
        };
        conditions.iter().all(|c| {
            let index = c["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("index in {c}")) as usize;
            let value = c["value"]
                .as_u64()
                .unwrap_or_else(|| panic!("value in {c}"));
            let two = c["valueTwo"].as_u64().unwrap_or(0);
            let arg = args[index];
            match c["op"].as_str().unwrap_or_else(|| panic!("op in {c}")) {
                "SCMP_CMP_EQ" => arg == value,
                "SCMP_CMP_NE" => arg != value,
                "SCMP_CMP_LT" => arg < value,
                "SCMP_CMP_LE" => arg <= value,
                "SCMP_CMP_GT" => arg > value,
                "SCMP_CMP_GE" => arg >= value,
                "SCMP_CMP_MASKED_EQ" => arg & value == two,
                op => panic!("unknown op {op}"),
            }
        })
    }

    /// Docker's decision for `name(args)`.
    fn decide(&self, caps: &BTreeSet<String>, name: &str, args: &[u64; 6]) -> Docker {
        let mut allowed = false;
        for rule in &self.rules {
            if !strings(&rule["names"]).contains(&name)
                || !Self::applies(rule, caps)
                || !Self::args_match(rule, args)
            {
                continue;
            }
            match rule["action"].as_str() {
                Some("SCMP_ACT_ALLOW") => allowed = true,
                Some("SCMP_ACT_ERRNO") => {
                    let errno = rule["errnoRet"].as_u64().map_or(EPERM, |e| e as u32);
                    return Docker::Errno(errno);
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
        if allowed {
            Docker::Allow
        } else {
            Docker::Errno(self.default_errno)
        }
    }

    /// Whether Docker allows `name` whatever the arguments.
    fn allows_unconditionally(&self, caps: &BTreeSet<String>, name: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule["action"] == "SCMP_ACT_ALLOW"
                && rule["args"].as_array().is_none_or(Vec::is_empty)
                && strings(&rule["names"]).contains(&name)
                && Self::applies(rule, caps)
        })
    }
}

fn cap_names(caps: Capabilities) -> BTreeSet<String> {
    caps.iter().map(Capability::name).collect()
}

/// The arguments as the kernel reads them: the `int`-typed ones the built-in profile
/// compares as 32 bits (`socket`'s domain, `personality`'s persona, `ioctl`'s cmd) cut
/// to their low 32 bits.
fn kernel_view(name: &str, args: &[u64; 6]) -> [u64; 6] {
    let mut seen = *args;
    let index = match name {
        "socket" | "personality" => 0,
        "ioctl" => 1,
        _ => return seen,
    };
    seen[index] &= 0xffff_ffff;
    seen
}

/// What the terminal guard refuses of what Docker's rules allow: no fake terminal input.
fn refused_ioctl(name: &str, args: &[u64; 6]) -> bool {
    name == "ioctl" && [TIOCSTI, TIOCLINUX].contains(&(args[1] & 0xffff_ffff))
}

/// The sets of arguments the comparison walks with every syscall.
fn argument_sets() -> Vec<[u64; 6]> {
    let mut sets = vec![NO_ARGS, [1; 6]];
    for first in [
        8,
        38,
        39,
        40,
        41,
        0x2_0000,
        0x2_0008,
        0x40_0000,
        0xffff_ffff,
        0x1_0000_0028,
        0x1_0000_0008,
        libc::SIGCHLD as u64,
        libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64,
    ] {
        for second in [0, TIOCSTI, TIOCLINUX, 0xffff_ffff_0000_5412, libc::FIONREAD] {
            sets.push([first, second, 0, 0, 0, 0]);
        }
    }
    sets
}

#[test]
fn default_profile_matches_dockers_json() {
    let docker = load();
    let profile = SeccompProfile::docker_default();
    let enosys = Action::Errno(ENOSYS);
    for caps in cap_variants() {
        let names = cap_names(caps);
        let compiled = default_compiled(caps);
        let mut unconditional = 0;
        for &(name, nr) in syscalls::all() {
            if docker.allows_unconditionally(&names, name) {
                unconditional += 1;
            }
            for args in argument_sets() {
                let ours = decide(profile, &compiled, caps, nr, args);
                // Ours is Docker's decision on what the kernel actually sees...
                let theirs = docker.decide(&names, name, &kernel_view(name, &args));
                let want = match theirs {
                    // ...plus the guard's TIOCSTI/TIOCLINUX refusal.
                    Docker::Allow if refused_ioctl(name, &args) => Action::Errno(EPERM),
                    Docker::Allow => Action::Allow,
                    Docker::Errno(errno) => Action::Errno(errno),
                };
                assert_eq!(ours, want, "{name}({args:x?}) for {caps}");
                // Whatever Docker refuses as called, we refuse too, except a persona
                // with high bits, which the kernel reads as the allowed low bits.
                if let Docker::Errno(_) = docker.decide(&names, name, &args) {
                    if name != "personality" {
                        assert_ne!(ours, Action::Allow, "{name}({args:x?}) for {caps}");
                    }
                }
            }
        }
        if caps == Capabilities::fargate_default() {
            // The 361 names of Docker's first rule that exist on x86_64, plus ptrace,
            // process_vm_readv/writev, arch_prctl, modify_ldt and chroot.
            let first_rule = strings(&docker.rules[0]["names"])
                .into_iter()
                .filter(|n| syscalls::number(n).is_some())
                .count();
            assert_eq!(unconditional, first_rule + 6);
        }
        // Beyond the table and the x32 ABI: refused (Docker's libseccomp would say
        // EPERM for unknown numbers and apply its rules to x32; we refuse both).
        for nr in (0..=1100).chain((0..=600).map(|n| 0x4000_0000 | n)) {
            if syscalls::name(nr).is_some() {
                continue;
            }
            let ours = decide(profile, &compiled, caps, nr, NO_ARGS);
            let want = if nr & 0x4000_0000 != 0 {
                Action::Errno(EPERM)
            } else {
                enosys
            };
            assert_eq!(ours, want, "syscall number {nr:#x}");
        }
    }
}

#[test]
fn builtin_rules_mirror_dockers_rules() {
    // Every rule of Docker's JSON has a rule with the same names and action in the
    // built-in profile, in the same order, and the built-in profile has no other.
    let docker = load();
    let ours = SeccompProfile::docker_default().rules();
    assert_eq!(ours.len(), docker.rules.len());
    for (i, (theirs, mine)) in docker.rules.iter().zip(ours).enumerate() {
        let names: Vec<String> = strings(&theirs["names"])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let my_names: Vec<String> = mine.syscalls().iter().map(ToString::to_string).collect();
        assert_eq!(names, my_names, "rule {i}");
        let action = match theirs["action"].as_str() {
            Some("SCMP_ACT_ALLOW") => Action::Allow,
            Some("SCMP_ACT_ERRNO") => {
                Action::Errno(theirs["errnoRet"].as_u64().map_or(EPERM, |e| e as u32))
            }
            other => panic!("unexpected action {other:?}"),
        };
        assert_eq!(mine.action(), action, "rule {i}");
        let args = theirs["args"].as_array().map_or(0, Vec::len);
        assert_eq!(mine.args().len(), args, "rule {i}");
        let caps: Vec<String> = mine
            .required_caps()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(caps, strings(&theirs["includes"]["caps"]), "rule {i}");
        let caps: Vec<String> = mine
            .excluding_caps()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(caps, strings(&theirs["excludes"]["caps"]), "rule {i}");
        let arches: Vec<Option<Arch>> = strings(&theirs["includes"]["arches"])
            .into_iter()
            .map(Arch::from_docker_name)
            .collect();
        let mine_arches: Vec<Option<Arch>> = mine.only_arches().iter().copied().map(Some).collect();
        assert_eq!(arches, mine_arches, "rule {i}");
    }
}

#[test]
fn reference_names_are_refused_with_default_caps() {
    // REFERENCE.md: refused on x86_64 with the default capabilities (66).
    let refused = "syslog uselib ustat sysfs vhangup pivot_root _sysctl acct settimeofday mount \
        umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm create_module \
        init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg \
        putpmsg afs_syscall tuxcall security lookup_dcookie clock_settime vserver mbind \
        set_mempolicy get_mempolicy kexec_load add_key request_key keyctl migrate_pages \
        unshare move_pages perf_event_open fanotify_init open_by_handle_at setns kcmp \
        finit_module kexec_file_load bpf userfaultfd io_uring_setup io_uring_enter \
        io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick pidfd_getfd \
        process_madvise mount_setattr quotactl_fd set_mempolicy_home_node";
    let names: Vec<&str> = refused.split_whitespace().collect();
    assert_eq!(names.len(), 66);
    let caps = Capabilities::fargate_default();
    let compiled = default_compiled(caps);
    let docker = load();
    for name in names {
        let nr = nr(name);
        for args in argument_sets() {
            assert_eq!(
                decide(SeccompProfile::docker_default(), &compiled, caps, nr, args),
                Action::Errno(EPERM),
                "{name}"
            );
            assert_eq!(
                docker.decide(&cap_names(caps), name, &args),
                Docker::Errno(EPERM),
                "Docker: {name}"
            );
        }
    }
}
