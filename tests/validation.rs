//! Every refusal of `build()`, each naming the field and the value.

use std::time::Duration;

use tasksandbox::{
    Capability, CapabilityError, Condition, ConfigError, Container, EphemeralStorage, HealthCheck,
    IdMap, Secret, SizeError, Stdio, TaskSandbox, TaskSandboxBuilder, TaskSize, UserNamespace,
    Volume,
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
fn container_names_are_unique() {
    let dup = refuse(TaskSandbox::builder().container(app()).container(app()));
    assert_eq!(dup, ConfigError::DuplicateContainer { name: "app".into() });
}

fn side() -> Container {
    Container::new("side").command(["/bin/true"])
}

#[test]
fn dependencies_must_be_satisfiable() {
    let cases: [(TaskSandboxBuilder, &str); 6] = [
        (
            TaskSandbox::builder().container(app().depends_on("db", Condition::Start)),
            "depends_on \"db\" (START): no container of the task has this name",
        ),
        (
            TaskSandbox::builder().container(app().depends_on("app", Condition::Start)),
            "a container cannot depend on itself",
        ),
        (
            TaskSandbox::builder()
                .container(app())
                .container(side().depends_on("app", Condition::Success)),
            "depends_on \"app\" (SUCCESS): COMPLETE and SUCCESS need a non-essential container",
        ),
        (
            TaskSandbox::builder()
                .container(app())
                .container(side().depends_on("app", Condition::Healthy)),
            "HEALTHY needs a container with a health check",
        ),
        (
            TaskSandbox::builder()
                .container(app().depends_on("side", Condition::Start))
                .container(side().depends_on("app", Condition::Start)),
            "the dependencies form a cycle",
        ),
        (
            TaskSandbox::builder()
                .container(app().essential(false))
                .container(side().essential(false)),
            "a task needs at least one essential container",
        ),
    ];
    for (builder, expected) in cases {
        let err = refuse(builder).to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
}

#[test]
fn task_level_limits() {
    let err = refuse(
        TaskSandbox::builder()
            .stop_timeout(Duration::from_secs(121))
            .container(app()),
    );
    assert!(
        err.to_string()
            .starts_with("task.stop_timeout: 121s is longer than the maximum, 120s"),
        "{err}"
    );
    assert!(EphemeralStorage::fargate_gib(19).is_err());
    assert_eq!(
        EphemeralStorage::fargate_gib(201).unwrap_err().to_string(),
        "ephemeral storage = 201 GiB is out of range: 20..=200 GiB on Fargate"
    );
    let err = refuse(
        TaskSandbox::builder()
            .size(TaskSize::custom(512, 256).unwrap())
            .container(app().cpu_units(1024)),
    );
    assert_eq!(
        err.to_string(),
        "container \"app\": cpu_units: 1024 must be 1..=512 (the task's CPU)"
    );
    let err = refuse(
        TaskSandbox::builder()
            .size(TaskSize::custom(512, 256).unwrap())
            .container(app().memory_limit(512 << 20)),
    );
    assert!(
        err.to_string()
            .contains("memory_limit: 536870912 bytes must be"),
        "{err}"
    );
}

#[test]
fn hostnames_secrets_health_checks_and_streams() {
    let err = refuse(
        TaskSandbox::builder()
            .container(app().hostname("a"))
            .container(side().hostname("b")),
    );
    assert!(
        err.to_string()
            .contains("the containers of a task share one UTS namespace"),
        "{err}"
    );
    for bad in ["", "..", "a/b"] {
        let err = refuse(TaskSandbox::builder().container(app().secret(Secret::new(bad, "x"))));
        assert!(
            err.to_string()
                .starts_with("container \"app\": secrets[0]: name"),
            "{err}"
        );
    }
    let err = refuse(
        TaskSandbox::builder().container(
            app()
                .secret(Secret::new("k", "1"))
                .secret(Secret::new("k", "2")),
        ),
    );
    assert!(
        err.to_string()
            .contains("secrets[1]: name \"k\" is used twice"),
        "{err}"
    );
    let err = refuse(
        TaskSandbox::builder().container(app().health_check(HealthCheck::new(["true"]).retries(0))),
    );
    assert!(
        err.to_string()
            .contains("health_check.retries: must be 1 or more"),
        "{err}"
    );
    let err = refuse(TaskSandbox::builder().container(app().stdin(Stdio::Log)));
    assert!(
        err.to_string()
            .contains("stdin: Log is for output streams only"),
        "{err}"
    );
    let err = refuse(TaskSandbox::builder().container(app().ephemeral_storage_at("data")));
    assert!(
        err.to_string()
            .contains("ephemeral storage mount \"data\" must be an absolute path"),
        "{err}"
    );
    // A secret's value never shows in Debug output.
    let debug = format!("{:?}", app().secret(Secret::new("token", "hunter2")));
    assert!(
        !debug.contains("hunter2") && debug.contains("<redacted>"),
        "{debug}"
    );
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
