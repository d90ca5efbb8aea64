//! A task that joins an existing network namespace, as runtimes using CNI need: the
//! task sees that namespace's interfaces (in /proc/net and in its /sys), the namespace
//! is left as the caller made it, the report and the explanation say it was joined,
//! and nothing of the task is left in it afterwards.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use tasksandbox::{ConfigError, Container, NetworkNamespace, Stdio, TaskSandbox};

const TAP: &str = "tsbjoin0";

/// A new network namespace holding a persistent tap device named [`TAP`] (and `lo`,
/// down), made on a thread so the test's own threads stay where they are.
fn namespace_with_a_tap() -> OwnedFd {
    std::thread::spawn(|| {
        // SAFETY: unshare with a constant flag, on this thread only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        let ns = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("/dev/net/tun");
        // SAFETY: ifreq is plain old data; all-zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(TAP.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq behind the valid pointer.
        let ret = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        assert_eq!(ret, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        // SAFETY: TUNSETPERSIST takes an integer.
        let ret = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1) };
        assert_eq!(ret, 0, "TUNSETPERSIST");
        OwnedFd::from(ns)
    })
    .join()
    .expect("namespace thread")
}

fn netns_inode(fd: &OwnedFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("fstat")
        .ino()
}

/// Processes whose network namespace is `ino`.
fn processes_in(ino: u64) -> Vec<u32> {
    let want = format!("net:[{ino}]");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
        })
        .collect()
}

#[test]
fn a_task_joins_an_existing_network_namespace() {
    if !can_start_tasks() {
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have /dev/net/tun"
        );
        eprintln!("skipped: no /dev/net/tun to make an interface with");
        return;
    }
    let ns = namespace_with_a_tap();
    let ino = netns_inode(&ns);
    // The same namespace twice: by descriptor, and by path (what `ip netns` gives).
    let by_path = PathBuf::from(format!("/proc/self/fd/{}", ns.as_raw_fd()));
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that nothing else owns.
    let dup =
        unsafe { OwnedFd::from_raw_fd(libc::fcntl(ns.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3)) };
    let script = "readlink /proc/self/ns/net; \
                  cat /proc/net/dev | cut -d: -f1 | tr -d ' ' | tail -n +3 | sort | tr '\\n' ' '; echo; \
                  ls /sys/class/net | sort | tr '\\n' ' '; echo; \
                  cat /sys/class/net/lo/flags";
    for (how, netns) in [
        ("fd", NetworkNamespace::fd(dup)),
        ("path", NetworkNamespace::path(&by_path)),
    ] {
        let sandbox = TaskSandbox::builder()
            .network_namespace(netns)
            .container(
                Container::new("net")
                    .command(["/bin/sh", "-c", script])
                    .stdout(Stdio::Piped)
                    .stderr(Stdio::Piped),
            )
            .build()
            .expect("builds");
        let explained = sandbox.explain();
        assert!(
            explained.task.network_namespace.is_some(),
            "{how}: explain names the joined namespace"
        );
        assert!(
            explained.to_string().contains("net joined"),
            "{how}: {explained}"
        );
        let task = sandbox.start().expect("starts");
        let report = task.report().network_namespace.clone();
        assert!(report.starts_with("joined "), "{how}: {report}");
        let out = task.wait_with_output().expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{how}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = stdout.lines();
        // The task's namespace is the one given, seen from inside.
        assert_eq!(lines.next(), Some(format!("net:[{ino}]").as_str()), "{how}");
        // Its interfaces, in /proc/net/dev and in the /sys of that namespace.
        assert_eq!(
            lines.next().map(str::trim),
            Some(format!("lo {TAP}").as_str()),
            "{how}"
        );
        assert_eq!(
            lines.next().map(str::trim),
            Some(format!("lo {TAP}").as_str()),
            "{how}"
        );
        // `lo` is the caller's, left down as it was made (0x8: IFF_LOOPBACK only).
        assert_eq!(lines.next(), Some("0x8"), "{how}: the task touched lo");
        // Nothing of the task is left in the namespace, and no mount of its sysfs on
        // the host.
        assert!(
            processes_in(ino).is_empty(),
            "{how}: {:?}",
            processes_in(ino)
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.lines().any(|l| l.contains("/tasksandbox/sys")),
            "{how}: the sysfs stage is mounted on the host"
        );
    }
    // A process exec'd into the running task joins the same namespace.
    let mut task = TaskSandbox::builder()
        .network_namespace(NetworkNamespace::path(&by_path))
        .container(Container::new("idle").command(["/bin/sleep", "30"]))
        .build()
        .expect("builds")
        .start()
        .expect("starts");
    let out = task
        .exec("idle", ["/bin/cat", "/proc/net/dev"])
        .expect("exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(TAP));
    task.kill().expect("kill");
    drop(task);
    assert!(processes_in(ino).is_empty(), "{:?}", processes_in(ino));

    // The namespace is the caller's: still there, with its interface.
    let tap = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only, to a namespace descriptor we own.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev")
        })
        .join()
        .expect("thread")
    });
    assert!(tap.contains(TAP), "{tap}");
    // The test's own thread never left the host's namespace.
    let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("ns");
    assert_ne!(ours.to_string_lossy(), format!("net:[{ino}]"));
    drop(ns);
    assert!(processes_in(ino).is_empty());
}

#[test]
fn what_is_not_a_network_namespace_is_refused_at_build() {
    for (netns, reason) in [
        (
            NetworkNamespace::path("/nonexistent/netns"),
            "cannot be opened",
        ),
        (NetworkNamespace::path("relative/netns"), "absolute"),
        (NetworkNamespace::path("/proc/self/ns/uts"), "another kind"),
        (NetworkNamespace::path("/etc/hostname"), "not a namespace"),
    ] {
        let err = TaskSandbox::builder()
            .network_namespace(netns)
            .container(Container::new("c").command(["/bin/true"]))
            .build()
            .expect_err("refused");
        match &err {
            ConfigError::NetworkNamespace { reason: why, .. } => {
                assert!(why.contains(reason), "{err}")
            }
            other => panic!("{other:?}"),
        }
    }
}
