//! Every refusal of `build()`, each naming the field and the value.

use tasksandbox::{
    Capability, CapabilityError, ConfigError, Container, IdMap, SizeError, TaskSandbox, TaskSize,
    UserNamespace, Volume,
};

fn app() -> Container {
    Container::new("app").command(["/bin/true"])
}

fn refuse(builder: tasksandbox::TaskSandboxBuilder) -> ConfigError {
    builder.build().expect_err("build must refuse")
}

#[test]
fn a_task_needs_a_container() {
    assert_eq!(refuse(TaskSandbox::builder()), ConfigError::NoContainer);
}

#[test]
fn one_container_per_task_for_now() {
    let err = refuse(
        TaskSandbox::builder()
            .container(app())
            .container(Container::new("side").command(["x"])),
    );
    assert!(err.to_string().contains("\"side\""), "{err}");
    let dup = refuse(TaskSandbox::builder().container(app()).container(app()));
    assert_eq!(dup, ConfigError::DuplicateContainer { name: "app".into() });
}

#[test]
fn container_names() {
    for (name, reason) in [
        ("", "1 to 255"),
        ("a b", "only letters"),
        ("x/y", "only letters"),
    ] {
        let err = refuse(TaskSandbox::builder().container(Container::new(name).command(["x"])));
        assert!(matches!(err, ConfigError::ContainerName { .. }), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
}

#[test]
fn empty_command() {
    let err = refuse(TaskSandbox::builder().container(Container::new("app")));
    assert_eq!(
        err,
        ConfigError::EmptyCommand {
            container: "app".into()
        }
    );
    let err = refuse(TaskSandbox::builder().container(Container::new("app").command([""])));
    assert_eq!(
        err,
        ConfigError::EmptyCommand {
            container: "app".into()
        }
    );
}

#[test]
fn nul_bytes_are_named() {
    let err = refuse(TaskSandbox::builder().container(app().arg("a\0b")));
    assert_eq!(
        err,
        ConfigError::NulByte {
            container: "app".into(),
            field: "command",
            value: "a\0b".into()
        }
    );
    let err = refuse(TaskSandbox::builder().container(app().env("K", "v\0")));
    assert!(
        matches!(err, ConfigError::NulByte { field: "env", .. }),
        "{err}"
    );
}

#[test]
fn env_names() {
    let err = refuse(TaskSandbox::builder().container(app().env("A=B", "v")));
    assert!(
        matches!(&err, ConfigError::EnvName { name, .. } if name == "A=B"),
        "{err}"
    );
    let err = refuse(TaskSandbox::builder().container(app().env("", "v")));
    assert!(err.to_string().contains("is empty"), "{err}");
}

#[test]
fn working_dir_must_be_absolute() {
    let err = refuse(TaskSandbox::builder().container(app().working_dir("srv")));
    assert_eq!(
        err,
        ConfigError::NotAbsolute {
            container: "app".into(),
            field: "working_dir",
            path: "srv".into()
        }
    );
}

#[test]
fn hostnames() {
    for (hostname, reason) in [
        ("", "1 to 64"),
        ("under_score", "only letters"),
        ("-lead", "start or end"),
        ("a..b", "label"),
        (&"x".repeat(65), "1 to 64"),
    ] {
        let err = refuse(TaskSandbox::builder().container(app().hostname(hostname)));
        assert!(
            matches!(err, ConfigError::Hostname { .. }),
            "{hostname}: {err}"
        );
        assert!(err.to_string().contains(reason), "{hostname}: {err}");
    }
    TaskSandbox::builder()
        .container(app().hostname("web-1.example"))
        .build()
        .expect("valid hostname");
}

#[test]
fn limits() {
    assert_eq!(
        refuse(TaskSandbox::builder().container(app()).pids_limit(0)),
        ConfigError::PidsLimit { value: 0 }
    );
    assert_eq!(
        refuse(TaskSandbox::builder().container(app()).nofile(0)),
        ConfigError::Nofile {
            value: 0,
            max: 1_048_576
        }
    );
    assert_eq!(
        refuse(TaskSandbox::builder().container(app()).nofile(1_048_577)),
        ConfigError::Nofile {
            value: 1_048_577,
            max: 1_048_576
        }
    );
}

#[test]
fn sizes() {
    let err = TaskSize::fargate(512, 512).unwrap_err();
    assert_eq!(
        err,
        SizeError::FargateMemory {
            cpu_units: 512,
            memory_mib: 512,
            valid: vec![1024, 2048, 3072, 4096]
        }
    );
    assert!(err.to_string().contains("1024, 2048, 3072, 4096"));
    assert!(matches!(
        TaskSize::fargate(100, 512),
        Err(SizeError::FargateCpu { cpu_units: 100 })
    ));
    assert!(matches!(
        TaskSize::custom(0, 512),
        Err(SizeError::CpuOutOfRange { .. })
    ));
    assert!(matches!(
        TaskSize::custom(1, 1),
        Err(SizeError::MemoryOutOfRange { .. })
    ));
    assert!(ConfigError::from(err).to_string().contains("task size"));
}

#[test]
fn volumes() {
    let err = refuse(TaskSandbox::builder().container(app().volume(Volume::bind("/usr", "rel"))));
    assert!(
        matches!(&err, ConfigError::Volume { destination, .. } if destination.as_os_str() == "rel"),
        "{err}"
    );
    let err =
        refuse(TaskSandbox::builder().container(app().volume(Volume::bind("/no/such/src", "/d"))));
    assert!(err.to_string().contains("/no/such/src"), "{err}");
    let err =
        refuse(TaskSandbox::builder().container(app().volume(Volume::bind("/usr", "/dev/x"))));
    assert!(err.to_string().contains("under /dev"), "{err}");
}

#[test]
fn rootfs() {
    let err = refuse(TaskSandbox::builder().container(app().rootfs("/no/such/rootfs")));
    assert!(matches!(err, ConfigError::Rootfs { .. }), "{err}");
    let err = refuse(TaskSandbox::builder().container(app().rootfs("relative/root")));
    assert!(err.to_string().contains("absolute"), "{err}");
    let err = refuse(TaskSandbox::builder().container(app().rootfs("/usr/..")));
    assert!(err.to_string().contains("host's root"), "{err}");
}

#[test]
fn id_maps() {
    let bad = IdMap {
        host_uid: 0,
        host_gid: 100_000,
        count: 65_536,
    };
    let err = refuse(
        TaskSandbox::builder()
            .container(app())
            .user_namespace(UserNamespace::Map(bad)),
    );
    assert!(matches!(err, ConfigError::IdMap { .. }), "{err}");
    let small = IdMap {
        host_uid: 200_000,
        host_gid: 200_000,
        count: 10,
    };
    let err = refuse(
        TaskSandbox::builder()
            .container(app().user(tasksandbox::User::new(1000, 1000)))
            .user_namespace(UserNamespace::Map(small)),
    );
    assert_eq!(
        err,
        ConfigError::UserNotMapped {
            container: "app".into(),
            uid: 1000,
            gid: 1000,
            count: 10
        }
    );
}

#[test]
fn runtime_dir_must_be_absolute() {
    let err = refuse(TaskSandbox::builder().container(app()).runtime_dir("run"));
    assert_eq!(err, ConfigError::RuntimeDir { path: "run".into() });
}

#[test]
fn capabilities_outside_the_allowlist_cannot_be_named() {
    assert_eq!(
        Capability::from_name("CAP_SYS_ADMIN"),
        Err(CapabilityError::NotAllowed {
            name: "CAP_SYS_ADMIN".into()
        })
    );
    assert!(Capability::from_name("CAP_NET_ADMIN").is_err());
    assert!(matches!(
        Capability::from_name("NOPE"),
        Err(CapabilityError::Unknown { .. })
    ));
}

#[test]
fn a_custom_seccomp_profile_that_cannot_compile_is_refused() {
    use std::sync::Arc;
    use tasksandbox::seccomp::{Action, SyscallRule};
    use tasksandbox::{SeccompPolicy, SeccompProfile};
    let profile = SeccompProfile::new(Action::Errno(1))
        .with_rule(SyscallRule::new(["read", "no_such_syscall"], Action::Allow));
    let err = refuse(
        TaskSandbox::builder().container(app().seccomp(SeccompPolicy::Profile(Arc::new(profile)))),
    );
    assert!(
        matches!(&err, ConfigError::Seccomp { container, .. } if container == "app"),
        "{err}"
    );
    assert!(err.to_string().contains("no_such_syscall"), "{err}");
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TaskSandbox>();
    send::<tasksandbox::RunningTask>();
    send_sync::<tasksandbox::Error>();
}
