//! Runs a command in a fresh, locked-down task, or a whole task from a policy file.
//!
//! ```text
//! cargo run --release --example run -- [OPTIONS] -- CMD [ARGS...]
//! cargo run --release --example run -- --policy FILE [--explain[=json]]
//! ```
//!
//! Exits with the task's exit code (128+N when signal N killed it, 137 with an
//! `out of memory` line when the OOM killer did); errors print their whole chain and
//! exit 2; an error in a policy file is printed as rustc prints a diagnostic.

use std::process::ExitCode;

use tasksandbox::policy::{Policy, PolicyError};
use tasksandbox::{
    Capabilities, Capability, ConfigError, Container, Enforcement, EphemeralStorage, ExitStatus,
    TaskSandbox, TaskSandboxBuilder, TaskSize, User, UserNamespace, Volume,
};

const USAGE: &str = "\
usage: run [OPTIONS] -- CMD [ARGS...]
       run --policy FILE [--explain[=json]] [--best-effort] [--no-userns] [--storage-dir DIR]

Runs CMD in a fresh task: its own user, pid, mount, network, UTS, IPC and cgroup
namespaces, Fargate's capability allowlist, the default seccomp profile, cgroup limits.
With --policy, runs every container of the task FILE describes (docs/policy.md).

options:
  --policy FILE          run the task of a TOML policy file (no CMD, no container options)
  --explain              print what the task will enforce, per container, and exit
                         without starting anything
  --explain=json         the same as JSON (schema tasksandbox.explain/v1)
  --rootfs DIR           root filesystem (default: read-only host /usr, /bin, /lib*, a small /etc)
  --cpu UNITS            CPU units, 1024 per vCPU
  --memory MIB           memory limit in MiB
  --fargate              insist on Fargate's table of CPU x memory sizes
  --pids N               pids limit (default 4096)
  --nofile N             nofile ulimit (default 65535)
  --volume SRC:DST[:rw]  bind a host path, read-only unless :rw (repeatable)
  --ptrace               add CAP_SYS_PTRACE (and the ptrace-family syscalls)
  --drop-cap NAME        drop a default capability, or ALL (repeatable)
  --user UID[:GID]       user inside the task (default 0:0)
  --env KEY=VALUE        set an environment variable (repeatable)
  --workdir DIR          working directory (default /)
  --hostname NAME        hostname (default: run)
  --readonly-rootfs      mount the root filesystem read-only
  --storage DST[:MIB]    mount the task's ephemeral storage at DST (default 20480 MiB, on disk)
  --storage-dir DIR      host directory of the storage's backing files
                         (default /var/lib/tasksandbox/storage)
  --best-effort          start even if cgroup limits cannot be applied, and say which
  --no-userns            no user namespace (root only; for hosts without them)
  -h, --help             this text";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Explain {
    No,
    Text,
    Json,
}

struct Args {
    policy: Option<String>,
    explain: Explain,
    /// Whether an option of the one-container mode was given.
    container_options: bool,
    rootfs: Option<String>,
    cpu: Option<u32>,
    memory: Option<u64>,
    fargate: bool,
    pids: Option<u64>,
    nofile: Option<u64>,
    volumes: Vec<Volume>,
    ptrace: bool,
    drop: Vec<String>,
    user: User,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    hostname: Option<String>,
    readonly_rootfs: bool,
    storage: Option<(String, Option<u64>)>,
    storage_dir: Option<String>,
    best_effort: bool,
    no_userns: bool,
    command: Vec<String>,
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} wants a number, not {value:?}"))
}

fn parse_volume(spec: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [src, dst] => Ok(Volume::bind(*src, *dst)),
        [src, dst, "rw"] => Ok(Volume::bind(*src, *dst).read_write()),
        [src, dst, "ro"] => Ok(Volume::bind(*src, *dst)),
        _ => Err(format!("--volume wants SRC:DST[:rw], not {spec:?}")),
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        policy: None,
        explain: Explain::No,
        container_options: false,
        rootfs: None,
        cpu: None,
        memory: None,
        fargate: false,
        pids: None,
        nofile: None,
        volumes: Vec::new(),
        ptrace: false,
        drop: Vec::new(),
        user: User::ROOT,
        env: Vec::new(),
        workdir: None,
        hostname: None,
        readonly_rootfs: false,
        storage: None,
        storage_dir: None,
        best_effort: false,
        no_userns: false,
        command: Vec::new(),
    };
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        if !matches!(
            flag.as_str(),
            "--policy"
                | "--explain"
                | "--explain=json"
                | "--explain=text"
                | "--best-effort"
                | "--no-userns"
                | "--storage-dir"
                | "-h"
                | "--help"
                | "--"
        ) && flag.starts_with('-')
        {
            args.container_options = true;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--" => {
                args.command = argv.collect();
                break;
            }
            "--policy" => args.policy = Some(value("--policy")?),
            "--explain" | "--explain=text" => args.explain = Explain::Text,
            "--explain=json" => args.explain = Explain::Json,
            "--rootfs" => args.rootfs = Some(value("--rootfs")?),
            "--cpu" => args.cpu = Some(parse_number("--cpu", &value("--cpu")?)?),
            "--memory" => args.memory = Some(parse_number("--memory", &value("--memory")?)?),
            "--fargate" => args.fargate = true,
            "--pids" => args.pids = Some(parse_number("--pids", &value("--pids")?)?),
            "--nofile" => args.nofile = Some(parse_number("--nofile", &value("--nofile")?)?),
            "--volume" => args.volumes.push(parse_volume(&value("--volume")?)?),
            "--ptrace" => args.ptrace = true,
            "--drop-cap" => args.drop.push(value("--drop-cap")?),
            "--user" => args.user = value("--user")?.parse()?,
            "--env" => {
                let kv = value("--env")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--env wants KEY=VALUE, not {kv:?}"))?;
                args.env.push((k.to_string(), v.to_string()));
            }
            "--workdir" => args.workdir = Some(value("--workdir")?),
            "--hostname" => args.hostname = Some(value("--hostname")?),
            "--readonly-rootfs" => args.readonly_rootfs = true,
            "--storage" => {
                let spec = value("--storage")?;
                args.storage = Some(match spec.split_once(':') {
                    Some((dst, mib)) => (dst.to_string(), Some(parse_number("--storage", mib)?)),
                    None => (spec, None),
                });
            }
            "--storage-dir" => args.storage_dir = Some(value("--storage-dir")?),
            "--best-effort" => args.best_effort = true,
            "--no-userns" => args.no_userns = true,
            other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
            _ => {
                args.command.push(flag);
                args.command.extend(argv);
                break;
            }
        }
    }
    if args.policy.is_some() {
        if args.container_options || !args.command.is_empty() {
            return Err(
                "--policy runs the task the file describes: it takes no command and no container options"
                    .into(),
            );
        }
    } else if args.command.is_empty() {
        return Err("no command given: run [OPTIONS] -- CMD [ARGS...]".into());
    }
    Ok(Some(args))
}

fn capabilities(args: &Args) -> Result<Capabilities, String> {
    let mut caps = Capabilities::fargate_default();
    for name in &args.drop {
        if name.eq_ignore_ascii_case("ALL") {
            caps = Capabilities::none();
            continue;
        }
        let cap = Capability::from_name(name).map_err(|e| format!("--drop-cap: {e}"))?;
        caps = caps.drop(cap);
    }
    if args.ptrace {
        caps = caps.with_sys_ptrace();
    }
    Ok(caps)
}

fn size(args: &Args) -> Result<TaskSize, tasksandbox::SizeError> {
    let default = TaskSize::default();
    match (args.fargate, args.cpu, args.memory) {
        (true, cpu, mem) => TaskSize::fargate(
            cpu.unwrap_or(default.cpu_units().unwrap_or(1024)),
            mem.unwrap_or(default.memory_mib()),
        ),
        (false, Some(cpu), mem) => TaskSize::custom(cpu, mem.unwrap_or(default.memory_mib())),
        (false, None, Some(mem)) => TaskSize::memory_only(mem),
        (false, None, None) => Ok(default),
    }
}

/// What ends a run.
enum Failure {
    /// An error of the policy file, printed rustc-style.
    Policy(Box<PolicyError>),
    /// Any other error, printed with its chain.
    Other(Box<dyn std::error::Error>),
}

impl<E: std::error::Error + 'static> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure::Other(Box::new(err))
    }
}

/// Host-side settings of the command line, on a builder.
fn host_settings(mut builder: TaskSandboxBuilder, args: &Args) -> TaskSandboxBuilder {
    if args.best_effort {
        builder = builder.enforcement(Enforcement::BestEffort);
    }
    if args.no_userns {
        builder = builder.user_namespace(UserNamespace::Disabled);
    }
    if let Some(dir) = &args.storage_dir {
        builder = builder.storage_dir(dir);
    }
    builder
}

/// Builds the task of `--policy FILE`.
fn policy_sandbox(file: &str, args: &Args) -> Result<TaskSandbox, Failure> {
    let wrap = |e: PolicyError| Failure::Policy(Box::new(e));
    let policy = Policy::from_file(file).map_err(wrap)?;
    let builder = host_settings(policy.builder().map_err(wrap)?, args);
    builder.build().map_err(|e| wrap(policy.locate(e)))
}

/// Builds the one-container task of the command line.
fn adhoc_sandbox(args: &Args) -> Result<TaskSandbox, Failure> {
    let mut container = Container::new("run")
        .command(&args.command)
        .user(args.user)
        .capabilities(capabilities(args).map_err(|e| Failure::Other(e.into()))?)
        .readonly_rootfs(args.readonly_rootfs);
    if let Some(rootfs) = &args.rootfs {
        container = container.rootfs(rootfs);
    }
    if let Some(dir) = &args.workdir {
        container = container.working_dir(dir);
    }
    if let Some(hostname) = &args.hostname {
        container = container.hostname(hostname);
    }
    for (k, v) in &args.env {
        container = container.env(k, v);
    }
    for volume in &args.volumes {
        container = container.volume(volume.clone());
    }
    let mut builder = TaskSandbox::builder();
    if let Some((destination, mib)) = &args.storage {
        container = container.ephemeral_storage_at(destination);
        if let Some(mib) = mib {
            let storage = EphemeralStorage::custom_mib(*mib).map_err(ConfigError::from)?;
            builder = builder.ephemeral_storage(storage);
        }
    }
    let size = size(args).map_err(ConfigError::from)?;
    let mut builder = builder.size(size).container(container);
    if let Some(pids) = args.pids {
        builder = builder.pids_limit(pids);
    }
    if let Some(nofile) = args.nofile {
        builder = builder.nofile(nofile);
    }
    Ok(host_settings(builder, args).build()?)
}

/// What a run ends with: a status, or an explanation printed.
enum Done {
    Status(ExitStatus),
    Explained,
}

fn run(args: Args) -> Result<Done, Failure> {
    let sandbox = match &args.policy {
        Some(file) => policy_sandbox(file, &args)?,
        None => adhoc_sandbox(&args)?,
    };
    match args.explain {
        Explain::Text => {
            print!("{}", sandbox.explain());
            return Ok(Done::Explained);
        }
        Explain::Json => {
            print!("{}", sandbox.explain().to_json_string());
            return Ok(Done::Explained);
        }
        Explain::No => {}
    }
    let mut task = sandbox.start()?;
    for skipped in &task.report().not_applied {
        eprintln!("run: note: not applied: {skipped}");
    }
    let exit = task.wait()?;
    if args.policy.is_some() {
        eprintln!("run: task stopped: {exit}");
    }
    Ok(Done::Status(exit.status()))
}

fn print_chain(err: &dyn std::error::Error) {
    eprintln!("error: {err}");
    let mut cause = err.source();
    while let Some(err) = cause {
        eprintln!("  caused by: {err}");
        cause = err.source();
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(Done::Status(status)) => {
            if status.is_out_of_memory() {
                eprintln!("run: the workload was killed: out of memory");
            }
            ExitCode::from(status.shell_code().clamp(0, 255) as u8)
        }
        Ok(Done::Explained) => ExitCode::SUCCESS,
        Err(Failure::Policy(err)) => {
            eprint!("{}", err.render());
            ExitCode::from(2)
        }
        Err(Failure::Other(err)) => {
            print_chain(err.as_ref());
            ExitCode::from(2)
        }
    }
}
