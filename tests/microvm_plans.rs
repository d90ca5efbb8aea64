//! The plans of the microVM backends: golden files, and Firecracker's rules.
//!
//! Plans are pure, so these run anywhere. `UPDATE_GOLDEN=1 cargo test --test
//! microvm_plans` rewrites the files in tests/golden/ (review the diff).

use std::path::Path;

use serde_json::Value;
use tasksandbox::microvm::{
    Accelerator, CloudHypervisor, Disk, Firecracker, MicrovmError, NetInterface, Qemu, VmSpec, Vmm,
    Vsock,
};
use tasksandbox::TaskSize;

fn minimal() -> VmSpec {
    VmSpec::new(
        "vm-min",
        "/srv/guest/vmlinuz",
        TaskSize::custom(1024, 256).expect("size"),
    )
    .initrd("/srv/guest/initrd.cpio")
    .kernel_arg("quiet")
    .kernel_arg("panic=-1")
}

fn full() -> VmSpec {
    VmSpec::new(
        "vm-full",
        "/srv/guest/vmlinuz",
        TaskSize::fargate(2048, 4096).expect("size"),
    )
    .initrd("/srv/guest/initrd.cpio")
    .kernel_arg("quiet")
    .disk(Disk::new("scratch", "/srv/guest/scratch.img").writable())
    .disk(Disk::new("rootfs", "/srv/guest/rootfs.ext4").root())
    .interface(NetInterface::new(
        "eth0",
        "tap0",
        [0x02, 0xfc, 0x00, 0x00, 0x00, 0x05],
    ))
    .vsock(Vsock::new(3, "vsock.sock"))
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "plan {name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn plan(vmm: &dyn Vmm, spec: &VmSpec) -> String {
    vmm.plan(spec)
        .unwrap_or_else(|e| panic!("{}: {e}", vmm.name()))
        .render()
}

#[test]
fn qemu_tcg_minimal() {
    check_golden(
        "qemu-tcg-minimal",
        &plan(&Qemu::new(), &minimal().accelerator(Accelerator::Tcg)),
    );
}

#[test]
fn qemu_kvm_full() {
    check_golden("qemu-kvm-full", &plan(&Qemu::new(), &full()));
}

#[test]
fn firecracker_minimal() {
    check_golden(
        "firecracker-minimal",
        &plan(&Firecracker::new(), &minimal()),
    );
}

#[test]
fn firecracker_full_with_logs() {
    check_golden(
        "firecracker-full",
        &plan(&Firecracker::new().with_logs(), &full()),
    );
}

#[test]
fn cloud_hypervisor_minimal() {
    check_golden(
        "cloud-hypervisor-minimal",
        &plan(&CloudHypervisor::new(), &minimal()),
    );
}

#[test]
fn cloud_hypervisor_full() {
    check_golden(
        "cloud-hypervisor-full",
        &plan(&CloudHypervisor::new(), &full()),
    );
}

/// The keys Firecracker accepts in each section (its config structs refuse unknown
/// fields): the ones the crate writes (REFERENCE.md) and the optional ones of
/// Firecracker's own API.
const BOOT_SOURCE_KEYS: &[&str] = &["kernel_image_path", "boot_args", "initrd_path"];
const DRIVE_KEYS: &[&str] = &[
    "drive_id",
    "path_on_host",
    "is_root_device",
    "is_read_only",
    "partuuid",
    "cache_type",
    "rate_limiter",
    "io_engine",
    "socket",
];
const MACHINE_KEYS: &[&str] = &[
    "vcpu_count",
    "mem_size_mib",
    "smt",
    "cpu_template",
    "track_dirty_pages",
    "huge_pages",
];
const IFACE_KEYS: &[&str] = &[
    "iface_id",
    "host_dev_name",
    "guest_mac",
    "rx_rate_limiter",
    "tx_rate_limiter",
];
const VSOCK_KEYS: &[&str] = &["guest_cid", "uds_path", "vsock_id"];
const LOGGER_KEYS: &[&str] = &[
    "log_path",
    "level",
    "show_level",
    "show_log_origin",
    "module",
];
const METRICS_KEYS: &[&str] = &["metrics_path"];

/// `value` is an object whose keys are all in `known`.
fn only_keys<'a>(
    section: &str,
    value: &'a Value,
    known: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("{section} must be an object"))?;
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(format!("unknown field {key} in {section}"));
        }
    }
    Ok(obj)
}

/// The array at `key`, or none.
fn array<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match obj.get(key) {
        None => Ok(&[]),
        Some(v) => v
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| format!("{key} must be an array")),
    }
}

/// Firecracker's own rules for a `--config-file`, checked on the parsed JSON: what
/// Firecracker refuses at start-up (unknown sections or fields, missing required
/// fields, vCPU counts, vsock context ids, root devices, duplicate ids, MACs, nothing
/// to boot from).
fn firecracker_rules(config: &Value) -> Result<(), String> {
    let obj = config
        .as_object()
        .ok_or("the config is not a JSON object")?;
    let known = [
        "boot-source",
        "drives",
        "machine-config",
        "network-interfaces",
        "vsock",
        "logger",
        "metrics",
        "balloon",
        "mmds-config",
        "entropy",
        "cpu-config",
    ];
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(format!("unknown section {key}"));
        }
    }
    let boot = only_keys(
        "boot-source",
        obj.get("boot-source").ok_or("no boot-source")?,
        BOOT_SOURCE_KEYS,
    )?;
    let kernel = boot
        .get("kernel_image_path")
        .and_then(Value::as_str)
        .ok_or("boot-source.kernel_image_path must be a string")?;
    if !kernel.starts_with('/') {
        return Err("kernel_image_path must be absolute".into());
    }
    if let Some(args) = boot.get("boot_args") {
        let args = args.as_str().ok_or("boot_args must be a string")?;
        if args.len() > 2048 {
            return Err("boot_args longer than 2048 bytes".into());
        }
    }
    let initrd = match boot.get("initrd_path") {
        Some(initrd) => Some(initrd.as_str().ok_or("initrd_path must be a string")?),
        None => None,
    };
    let machine = only_keys(
        "machine-config",
        obj.get("machine-config").ok_or("no machine-config")?,
        MACHINE_KEYS,
    )?;
    let vcpus = machine
        .get("vcpu_count")
        .and_then(Value::as_u64)
        .ok_or("vcpu_count must be an integer")?;
    if !(vcpus == 1 || (vcpus % 2 == 0 && (2..=32).contains(&vcpus))) {
        return Err(format!("vcpu_count {vcpus} is not 1 or even up to 32"));
    }
    let mem = machine
        .get("mem_size_mib")
        .and_then(Value::as_u64)
        .ok_or("mem_size_mib must be an integer")?;
    if mem == 0 {
        return Err("mem_size_mib must be positive".into());
    }
    if let Some(smt) = machine.get("smt") {
        smt.as_bool().ok_or("smt must be a boolean")?;
    }
    let drives = array(obj, "drives")?;
    let mut ids = Vec::new();
    let mut roots = 0;
    for (i, drive) in drives.iter().enumerate() {
        let drive = only_keys(&format!("drives[{i}]"), drive, DRIVE_KEYS)?;
        let id = drive
            .get("drive_id")
            .and_then(Value::as_str)
            .ok_or("drive_id must be a string")?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("drive_id {id:?} must be alphanumeric or `_`"));
        }
        if ids.contains(&id) {
            return Err(format!("drive_id {id} twice"));
        }
        ids.push(id);
        drive
            .get("path_on_host")
            .and_then(Value::as_str)
            .ok_or("path_on_host must be a string")?;
        let root = drive
            .get("is_root_device")
            .and_then(Value::as_bool)
            .ok_or("is_root_device must be a boolean")?;
        drive
            .get("is_read_only")
            .and_then(Value::as_bool)
            .ok_or("is_read_only must be a boolean")?;
        if root {
            roots += 1;
        }
    }
    if roots > 1 {
        return Err(format!("{roots} root devices"));
    }
    if let Some(Value::Bool(true)) = drives.first().map(|d| &d["is_root_device"]) {
    } else if roots == 1 {
        return Err("the root device must be the first drive".into());
    }
    if initrd.is_none() && roots != 1 {
        return Err("nothing to boot from: no initrd_path and no root drive".into());
    }
    let mut ifaces = Vec::new();
    for (i, iface) in array(obj, "network-interfaces")?.iter().enumerate() {
        let iface = only_keys(&format!("network-interfaces[{i}]"), iface, IFACE_KEYS)?;
        let id = iface
            .get("iface_id")
            .and_then(Value::as_str)
            .ok_or("iface_id must be a string")?
            .to_string();
        if ifaces.contains(&id) {
            return Err(format!("iface_id {id} twice"));
        }
        ifaces.push(id);
        iface
            .get("host_dev_name")
            .and_then(Value::as_str)
            .ok_or("host_dev_name must be a string")?;
        if let Some(mac) = iface.get("guest_mac") {
            let mac = mac.as_str().ok_or("guest_mac must be a string")?;
            let parts: Vec<&str> = mac.split(':').collect();
            if parts.len() != 6
                || !parts
                    .iter()
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
            {
                return Err(format!("guest_mac {mac} is not aa:bb:cc:dd:ee:ff"));
            }
        }
    }
    if let Some(vsock) = obj.get("vsock") {
        let vsock = only_keys("vsock", vsock, VSOCK_KEYS)?;
        let cid = vsock
            .get("guest_cid")
            .and_then(Value::as_u64)
            .ok_or("guest_cid must be an integer")?;
        if cid < 3 {
            return Err(format!("guest_cid {cid} is reserved"));
        }
        vsock
            .get("uds_path")
            .and_then(Value::as_str)
            .ok_or("uds_path must be a string")?;
    }
    if let Some(logger) = obj.get("logger") {
        only_keys("logger", logger, LOGGER_KEYS)?
            .get("log_path")
            .and_then(Value::as_str)
            .ok_or("log_path must be a string")?;
    }
    if let Some(metrics) = obj.get("metrics") {
        only_keys("metrics", metrics, METRICS_KEYS)?
            .get("metrics_path")
            .and_then(Value::as_str)
            .ok_or("metrics_path must be a string")?;
    }
    Ok(())
}

fn firecracker_config(fc: &Firecracker, spec: &VmSpec) -> Value {
    let plan = fc.plan(spec).expect("plans");
    let file = plan
        .files
        .iter()
        .find(|f| f.name == "firecracker.json")
        .expect("the plan writes the config");
    assert!(!file.writable);
    let i = plan
        .args
        .iter()
        .position(|a| a == "--config-file")
        .expect("--config-file");
    assert_eq!(
        Path::new(&plan.args[i + 1]),
        file.jail_path(),
        "the command line names the file the plan writes"
    );
    assert!(plan.args.contains(&"--no-api".to_string()));
    serde_json::from_slice(&file.contents).expect("the config is valid JSON")
}

#[test]
fn firecracker_configs_follow_firecrackers_rules() {
    let fc = Firecracker::new().with_logs();
    let specs = [
        minimal(),
        full(),
        minimal().vcpus(2),
        minimal().vcpus(32).memory(16),
        full().vsock(Vsock::new(u32::MAX, "v.sock")),
        VmSpec::new(
            "quotes",
            "/srv/a \"quoted\" \\ path/vmlinuz",
            TaskSize::default(),
        )
        .initrd("/srv/initrd"),
        // Booting from a root disk alone, without an initrd.
        VmSpec::new("rootdisk", "/srv/vmlinuz", TaskSize::default())
            .disk(Disk::new("rootfs", "/srv/rootfs.ext4").root()),
    ];
    for spec in specs {
        let config = firecracker_config(&fc, &spec);
        firecracker_rules(&config).unwrap_or_else(|e| panic!("{spec:?}: {e}\n{config:#}"));
    }
    // The values made it through.
    let config = firecracker_config(&fc, &full());
    assert_eq!(config["machine-config"]["vcpu_count"], 2);
    assert_eq!(config["machine-config"]["mem_size_mib"], 4096);
    assert_eq!(config["drives"][0]["drive_id"], "rootfs");
    assert_eq!(config["drives"][0]["is_root_device"], true);
    assert_eq!(config["drives"][1]["is_read_only"], false);
    assert_eq!(config["vsock"]["guest_cid"], 3);
    assert_eq!(config["vsock"]["uds_path"], "/vm/run/vsock.sock");
    assert_eq!(
        config["network-interfaces"][0]["guest_mac"],
        "02:fc:00:00:00:05"
    );
    let boot_args = config["boot-source"]["boot_args"].as_str().expect("string");
    assert!(
        !boot_args.contains("root="),
        "Firecracker adds root= itself"
    );
    let quoted = firecracker_config(
        &fc,
        &VmSpec::new("q", "/srv/vmlinuz", TaskSize::default())
            .initrd("/srv/initrd")
            .kernel_arg("init=/a\"b"),
    );
    assert!(quoted["boot-source"]["boot_args"]
        .as_str()
        .expect("string")
        .ends_with("init=/a\"b reboot=k pci=off"));
}

#[test]
fn the_rule_check_catches_what_firecracker_refuses() {
    let good = firecracker_config(&Firecracker::new(), &full());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut config = good.clone();
        edit(&mut config);
        firecracker_rules(&config)
    };
    assert!(broken(&|c| c["machine-config"]["vcpu_count"] = 3.into()).is_err());
    assert!(broken(&|c| c["machine-config"]["vcpu_count"] = 34.into()).is_err());
    assert!(broken(&|c| c["vsock"]["guest_cid"] = 2.into()).is_err());
    assert!(broken(&|c| c["drives"][1]["is_root_device"] = true.into()).is_err());
    assert!(broken(&|c| c["drives"][1]["drive_id"] = "rootfs".into()).is_err());
    assert!(broken(&|c| c["bogus"] = 1.into()).is_err());
    // Unknown fields inside every section are refused too.
    for section in [
        "/boot-source",
        "/machine-config",
        "/drives/0",
        "/network-interfaces/0",
        "/vsock",
    ] {
        let err = broken(&|c| {
            c.pointer_mut(section).expect("section")["bogus_field"] = 1.into();
        })
        .expect_err(section);
        assert!(
            err.contains("unknown field bogus_field"),
            "{section}: {err}"
        );
    }
    let logged = firecracker_config(&Firecracker::new().with_logs(), &full());
    for section in ["logger", "metrics"] {
        let mut config = logged.clone();
        config[section]["bogus_field"] = 1.into();
        assert!(firecracker_rules(&config).is_err(), "{section}");
    }
    // Nothing to boot from: no initrd and no root drive.
    let err = broken(&|c| {
        c["boot-source"]
            .as_object_mut()
            .expect("object")
            .remove("initrd_path");
        c["drives"][0]["is_root_device"] = false.into();
    })
    .expect_err("no boot device");
    assert!(err.contains("nothing to boot from"), "{err}");
    assert!(firecracker_rules(&good).is_ok());
}

#[test]
fn firecracker_refuses_what_its_rules_forbid() {
    let fc = Firecracker::new();
    for vcpus in [3, 5, 31, 33, 34] {
        let err = fc.plan(&minimal().vcpus(vcpus)).expect_err("refused");
        assert!(
            matches!(
                err,
                MicrovmError::Unsupported { .. } | MicrovmError::Spec { .. }
            ),
            "{vcpus}: {err:?}"
        );
    }
    let long = (0..300).fold(minimal(), |s, i| s.kernel_arg(format!("opt{i}=1")));
    assert!(matches!(
        fc.plan(&long),
        Err(MicrovmError::Unsupported { .. })
    ));
    assert!(fc.plan(&minimal().vsock(Vsock::new(2, "v.sock"))).is_err());
    assert!(fc
        .plan(
            &minimal()
                .disk(Disk::new("a", "/a").root())
                .disk(Disk::new("b", "/b").root())
        )
        .is_err());
    assert!(fc.plan(&minimal().accelerator(Accelerator::Tcg)).is_err());
    // Neither an initrd nor a root disk: a typed refusal that says what to add.
    let bare = VmSpec::new("bare", "/srv/vmlinuz", TaskSize::default())
        .disk(Disk::new("data", "/srv/data.img"));
    for err in [
        fc.plan(&bare).expect_err("nothing to boot"),
        fc.config(&bare).expect_err("nothing to boot"),
    ] {
        match &err {
            MicrovmError::Unsupported { vmm, what } => {
                assert_eq!(*vmm, "firecracker");
                assert!(what.contains("neither an initrd nor a root disk"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(fc
        .plan(&bare.disk(Disk::new("rootfs", "/srv/r").root()))
        .is_ok());
}
