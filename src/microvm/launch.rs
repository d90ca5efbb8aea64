//! A launch: the context hooks work on, the default hooks, and the handles of a
//! starting and a running VM.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cgroup::CgroupStats;
use crate::process::{ExitStatus, RunningTask};

use super::console::ConsoleLog;
use super::hooks::{Hook, Hooks, Stage};
use super::jail::{accessible, check_device_nodes_allowed, sweep_stale_jail_dirs, Jail, JailDir};
use super::net::VmNetns;
use super::plan::{Vmm, VmmPlan};
use super::root::JailRoot;
use super::spec::VmSpec;
use super::MicrovmError;
use crate::namespaces::NetworkNamespace;

/// How often the `wait` and `post_spawn` stages look at the VMM while waiting.
const POLL: Duration = Duration::from_millis(2);

/// Everything a hook sees and may change.
///
/// Fields a runtime is expected to change are public: `plan` until `spawn` (extra
/// arguments, files), `jail` until `spawn` (the jail's limits, user, seccomp
/// profile, root, volumes, devices), `netns` until `prepare`'s `make-netns` (a
/// namespace of the runtime's, [`VmNetns::existing`]) and after it (to wire the VM's
/// namespace), `timeout` until `wait`.
#[derive(Debug)]
#[non_exhaustive]
pub struct LaunchContext {
    /// The VM.
    pub spec: VmSpec,
    /// The backend.
    pub vmm: Arc<dyn Vmm>,
    /// What to run.
    pub plan: VmmPlan,
    /// How the VMM is confined.
    pub jail: Jail,
    /// The VM's directory on the host, once `prepare` made it.
    pub jail_dir: Option<JailDir>,
    /// The VM's network namespace and its taps: made by `prepare` for a spec with
    /// network interfaces, or given by the runtime ([`VmNetns::existing`]) before
    /// `prepare`.
    pub netns: Option<VmNetns>,
    /// The running jail, once `spawn` started it. Its `id()` is the VMM's host pid.
    pub task: Option<RunningTask>,
    /// When `spawn` started the VMM.
    pub spawned_at: Option<Instant>,
    /// The guest's serial console (the VMM's standard output).
    pub console: ConsoleLog,
    /// The VMM's standard error.
    pub vmm_stderr: ConsoleLog,
    /// How long the VMM may run, from spawn, before `wait` kills it.
    pub timeout: Option<Duration>,
    /// How the VMM ended, once `wait` saw it.
    pub status: Option<ExitStatus>,
    /// Whether `wait` killed it at the timeout.
    pub timed_out: bool,
    /// The jail's cgroup usage, read by `on_exit` before the cgroup goes.
    pub stats: Option<CgroupStats>,
    readers: Vec<JoinHandle<()>>,
}

impl LaunchContext {
    /// The VMM's host pid, while it is spawned.
    pub fn vmm_pid(&self) -> Option<u32> {
        self.task.as_ref().map(RunningTask::id)
    }

    /// The VM's directory, or an error naming `stage` if `prepare` has not made it.
    pub fn require_jail_dir(&self) -> Result<&JailDir, MicrovmError> {
        self.jail_dir.as_ref().ok_or(MicrovmError::NotReady {
            what: "the jail directory (made by the prepare stage)",
        })
    }

    /// The running jail, or an error if `spawn` has not started it.
    pub fn require_task(&mut self) -> Result<&mut RunningTask, MicrovmError> {
        self.task.as_mut().ok_or(MicrovmError::NotReady {
            what: "the VMM (started by the spawn stage)",
        })
    }

    fn vmm_messages(&self) -> String {
        let text = self.vmm_stderr.text();
        let text = text.trim();
        if text.is_empty() {
            "(the VMM wrote nothing to stderr)".into()
        } else {
            text.chars().take(2000).collect()
        }
    }
}

/// The hooks a launch starts with, in order:
///
/// | stage | hook | does |
/// |---|---|---|
/// | validate | `check-files` | kernel, initrd and disks are regular files the jail's uid can read (and write, for writable disks) |
/// | validate | `resolve-vmm` | finds the VMM binary, its ELF interpreter and shared libraries and the backend's host files ([`JailRoot`]); the jail's uid can read each |
/// | validate | `check-devices` | the plan's device nodes are character devices on the host, and the jail directory's filesystem allows device nodes |
/// | prepare | `make-jail-dir` | the VM's host directory with the plan's files and private device nodes (owned by the jail's uid, mode 0600); its volumes, the plan's binds and the nodes go into the jail |
/// | prepare | `make-netns` | for a spec with interfaces (or a namespace in `ctx.netns`): a network namespace for the VM (or the given one), a persistent tap per interface owned by the jail's uid and gid, and the jail joins it (see [`VmNetns`]) |
/// | pre_spawn | `size-jail` | memory = guest + VMM overhead, the VMM's pids limit, the task's CPU units |
/// | spawn | `spawn-vmm` | builds the jail's task, starts it, captures the console |
/// | post_spawn | `wait-for-sockets` | the plan's sockets appear within the boot timeout |
/// | post_spawn | `wait-for-boot-marker` | the spec's boot marker appears on the console within the boot timeout |
/// | wait | `wait-vmm` | waits for the VMM to exit; kills it at the launch's timeout |
/// | on_exit | `drain-console` | reads the console and stderr to their end |
/// | on_exit | `collect-stats` | reads the jail cgroup's CPU time and peak memory |
/// | cleanup | `stop-vmm` | kills and reaps the VMM if it still runs, removes the jail's cgroup |
/// | cleanup | `remove-netns` | deletes the taps it made and lets go of the namespace (one the launch made is then gone) |
/// | cleanup | `remove-jail-dir` | removes the VM's host directory |
pub fn default_hooks() -> Hooks {
    let mut hooks = Hooks::new();
    let defaults = [
        Hook::new("check-files", Stage::Validate, check_files),
        Hook::new("resolve-vmm", Stage::Validate, resolve_vmm),
        Hook::new("check-devices", Stage::Validate, check_devices),
        Hook::new("make-jail-dir", Stage::Prepare, make_jail_dir),
        Hook::new("make-netns", Stage::Prepare, make_netns),
        Hook::new("size-jail", Stage::PreSpawn, size_jail),
        Hook::new("spawn-vmm", Stage::Spawn, spawn_vmm),
        Hook::new("wait-for-sockets", Stage::PostSpawn, wait_for_sockets),
        Hook::new(
            "wait-for-boot-marker",
            Stage::PostSpawn,
            wait_for_boot_marker,
        ),
        Hook::new("wait-vmm", Stage::Wait, wait_vmm),
        Hook::new("drain-console", Stage::OnExit, drain_console),
        Hook::new("collect-stats", Stage::OnExit, collect_stats),
        Hook::new("stop-vmm", Stage::Cleanup, stop_vmm),
        Hook::new("remove-netns", Stage::Cleanup, remove_netns),
        Hook::new("remove-jail-dir", Stage::Cleanup, remove_jail_dir),
    ];
    for hook in defaults {
        // Distinct names in stage order: push cannot fail.
        let _ = hooks.push(hook);
    }
    hooks
}

fn check_files(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    let (uid, gid) = ctx.jail.host_ids();
    for bind in &ctx.plan.binds {
        let meta = std::fs::metadata(&bind.host).map_err(|e| MicrovmError::HostFile {
            path: bind.host.clone(),
            reason: e.to_string(),
        })?;
        if !meta.is_file() {
            return Err(MicrovmError::HostFile {
                path: bind.host.clone(),
                reason: "is not a regular file".into(),
            });
        }
        accessible(&bind.host, uid, gid, !bind.read_only).map_err(|reason| {
            MicrovmError::HostFile {
                path: bind.host.clone(),
                reason: format!(
                    "the jailed VMM could not open it: {reason} (by its mode bits and \
                     owner; access control lists are not read)"
                ),
            }
        })?;
    }
    Ok(())
}

fn resolve_vmm(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    let (uid, gid) = ctx.jail.host_ids();
    ctx.jail.root = JailRoot::resolve(ctx.vmm.as_ref(), &ctx.spec, &ctx.plan, uid, gid)?;
    Ok(())
}

fn check_devices(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    use std::os::unix::fs::FileTypeExt;
    // The jail gets a private node of each device (see make-jail-dir), so the host
    // node's own mode does not matter; the jail directory must allow device nodes.
    for device in &ctx.plan.devices {
        let err = |reason: String| MicrovmError::Device {
            path: device.clone(),
            reason,
        };
        match std::fs::metadata(device) {
            Ok(meta) if meta.file_type().is_char_device() => {}
            Ok(_) => return Err(err("is not a character device".into())),
            Err(e) => return Err(err(format!("is missing on this host: {e}"))),
        }
    }
    if !ctx.plan.devices.is_empty() && nix::unistd::geteuid().is_root() {
        check_device_nodes_allowed(&ctx.jail.base_dir)?;
    }
    Ok(())
}

fn make_jail_dir(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    // What launchers that died left here goes first.
    sweep_stale_jail_dirs(&ctx.jail.base_dir);
    let (uid, gid) = ctx.jail.host_ids();
    let dir = JailDir::create(&ctx.jail.base_dir, &ctx.spec.id, &ctx.plan, uid, gid)?;
    ctx.jail.volumes.extend(dir.volumes());
    for bind in &ctx.plan.binds {
        let volume = crate::container::Volume::bind(&bind.host, &bind.jail);
        ctx.jail.volumes.push(if bind.read_only {
            volume
        } else {
            volume.read_write()
        });
    }
    for device in dir.devices() {
        ctx.jail.devices.retain(|d| d.path != device.path);
        ctx.jail.devices.push(device.clone());
    }
    ctx.jail_dir = Some(dir);
    Ok(())
}

fn make_netns(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    if ctx.spec.interfaces.is_empty() && ctx.netns.is_none() {
        return Ok(());
    }
    let (uid, gid) = ctx.jail.host_ids();
    let mut netns = match ctx.netns.take() {
        Some(given) => given,
        None => VmNetns::create()?,
    };
    let mut made = Ok(());
    for iface in &ctx.spec.interfaces {
        made = netns.create_tap(&iface.tap, uid, gid);
        if made.is_err() {
            break;
        }
    }
    ctx.jail.network_namespace = NetworkNamespace::Fd(netns.shared());
    // Kept even on failure, so that cleanup deletes the taps made so far.
    ctx.netns = Some(netns);
    made
}

fn size_jail(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    ctx.jail.memory_mib = ctx
        .spec
        .memory_mib
        .saturating_add(ctx.vmm.memory_overhead_mib(&ctx.spec));
    ctx.jail.pids_limit = ctx.vmm.pids_limit(&ctx.spec);
    ctx.jail.cpu_units = ctx.spec.cpu_units;
    Ok(())
}

fn spawn_vmm(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    let sandbox = ctx
        .jail
        .sandbox(&ctx.spec.id, &ctx.plan, ctx.spec.serial_console)?;
    let mut task = sandbox.start()?;
    ctx.spawned_at = Some(Instant::now());
    if let Some(stdout) = task.take_stdout(&ctx.spec.id) {
        ctx.readers.push(ctx.console.capture(stdout));
    } else {
        ctx.console.close();
    }
    if let Some(stderr) = task.take_stderr(&ctx.spec.id) {
        ctx.readers.push(ctx.vmm_stderr.capture(stderr));
    } else {
        ctx.vmm_stderr.close();
    }
    ctx.task = Some(task);
    Ok(())
}

fn boot_deadline(ctx: &LaunchContext) -> Instant {
    ctx.spawned_at.unwrap_or_else(Instant::now) + ctx.spec.boot_timeout
}

fn wait_for_sockets(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    if ctx.plan.sockets.is_empty() {
        return Ok(());
    }
    let deadline = boot_deadline(ctx);
    let dir = ctx.require_jail_dir()?.clone();
    for socket in ctx.plan.sockets.clone() {
        let host = dir.host_path(&socket).ok_or_else(|| MicrovmError::Jail {
            reason: format!(
                "socket {} is outside the jail's run directory",
                socket.display()
            ),
        })?;
        loop {
            if host.exists() {
                break;
            }
            if let Some(status) = ctx.require_task()?.try_wait()?.map(|e| e.status()) {
                return Err(MicrovmError::VmmExited {
                    status,
                    waiting_for: format!("socket {}", socket.display()),
                    messages: ctx.vmm_messages(),
                });
            }
            if Instant::now() >= deadline {
                return Err(MicrovmError::BootTimeout {
                    timeout: ctx.spec.boot_timeout,
                    waiting_for: format!("socket {}", socket.display()),
                });
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

fn wait_for_boot_marker(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    let Some(marker) = ctx.spec.boot_marker.clone() else {
        return Ok(());
    };
    let deadline = boot_deadline(ctx);
    if ctx.console.wait_for(marker.as_bytes(), deadline) {
        return Ok(());
    }
    if ctx.console.is_closed() {
        let status = ctx.require_task()?.wait()?.status();
        return Err(MicrovmError::VmmExited {
            status,
            waiting_for: format!("boot marker {marker:?}"),
            messages: ctx.vmm_messages(),
        });
    }
    Err(MicrovmError::BootTimeout {
        timeout: ctx.spec.boot_timeout,
        waiting_for: format!("boot marker {marker:?}"),
    })
}

fn wait_vmm(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    let timeout = ctx.timeout;
    let deadline = timeout.map(|t| ctx.spawned_at.unwrap_or_else(Instant::now) + t);
    let task = ctx.require_task()?;
    let status = match deadline {
        None => task.wait()?.status(),
        Some(deadline) => loop {
            if let Some(exit) = task.try_wait()? {
                break exit.status();
            }
            if Instant::now() >= deadline {
                task.kill()?;
                let status = task.wait()?.status();
                ctx.timed_out = true;
                break status;
            }
            std::thread::sleep(POLL);
        },
    };
    ctx.status = Some(status);
    Ok(())
}

fn drain_console(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    for reader in ctx.readers.drain(..) {
        let _ = reader.join();
    }
    Ok(())
}

fn collect_stats(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    ctx.stats = Some(ctx.require_task()?.stats()?.task);
    Ok(())
}

fn stop_vmm(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    if let Some(mut task) = ctx.task.take() {
        if ctx.status.is_none() {
            task.kill()?;
            ctx.status = Some(task.wait()?.status());
        }
        // Dropping the task removes its cgroup.
        drop(task);
    }
    for reader in ctx.readers.drain(..) {
        let _ = reader.join();
    }
    Ok(())
}

fn remove_netns(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    ctx.jail.network_namespace = NetworkNamespace::New;
    match ctx.netns.take() {
        Some(mut netns) => netns.delete_taps(),
        None => Ok(()),
    }
}

fn remove_jail_dir(ctx: &mut LaunchContext) -> Result<(), MicrovmError> {
    if let Some(dir) = ctx.jail_dir.take() {
        dir.remove()?;
    }
    Ok(())
}

/// A microVM ready to launch: a backend, a spec, its plan, the jail and the hooks.
///
/// ```no_run
/// use std::time::Duration;
/// use tasksandbox::microvm::{detect_accelerator, MicroVm, Qemu, VmSpec};
/// use tasksandbox::TaskSize;
///
/// let accel = detect_accelerator();
/// let spec = VmSpec::new("vm1", "/var/cache/tasksandbox/guest/vmlinuz", TaskSize::custom(1024, 256)?)
///     .initrd("/tmp/initrd.cpio")
///     .kernel_arg("quiet")
///     .accelerator(accel.accelerator);
/// let exit = MicroVm::new(Qemu::new(), spec)?
///     .timeout(Duration::from_secs(30))
///     .run()?;
/// println!("{} {}", exit.status, exit.console);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MicroVm {
    ctx: LaunchContext,
    hooks: Hooks,
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VmExit {
    /// How the VMM process ended.
    pub status: ExitStatus,
    /// Whether it was killed at the launch's timeout.
    pub timed_out: bool,
    /// The guest's serial console, as text.
    pub console: String,
    /// What the VMM wrote to its standard error.
    pub vmm_stderr: String,
    /// The jail cgroup's usage (CPU time, peak memory), if `on_exit` read it.
    pub stats: Option<CgroupStats>,
}

impl MicroVm {
    /// Plans the launch of `spec` with `vmm` (the plan is made here, so a spec the
    /// backend cannot run fails now) with the default jail and
    /// [hooks](default_hooks).
    pub fn new(vmm: impl Vmm + 'static, spec: VmSpec) -> Result<Self, MicrovmError> {
        let vmm: Arc<dyn Vmm> = Arc::new(vmm);
        let plan = vmm.plan(&spec)?;
        let mut jail = Jail::new(nix::unistd::geteuid().as_raw());
        jail.seccomp = vmm.seccomp_profile(&spec);
        Ok(MicroVm {
            ctx: LaunchContext {
                spec,
                vmm,
                plan,
                jail,
                jail_dir: None,
                netns: None,
                task: None,
                spawned_at: None,
                console: ConsoleLog::new(),
                vmm_stderr: ConsoleLog::new(),
                timeout: None,
                status: None,
                timed_out: false,
                stats: None,
                readers: Vec::new(),
            },
            hooks: default_hooks(),
        })
    }

    /// Kills the VMM if it still runs this long after spawn.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.ctx.timeout = Some(timeout);
        self
    }

    /// The plan.
    pub fn plan(&self) -> &VmmPlan {
        &self.ctx.plan
    }

    /// The jail, to change before the launch.
    pub fn jail_mut(&mut self) -> &mut Jail {
        &mut self.ctx.jail
    }

    /// The hooks, to insert, replace or remove some.
    pub fn hooks_mut(&mut self) -> &mut Hooks {
        &mut self.hooks
    }

    /// The hooks.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Runs `validate` to `post_spawn`. On failure runs `cleanup` and returns the
    /// first error.
    pub fn start(mut self) -> Result<RunningVm, MicrovmError> {
        match self
            .hooks
            .run(Stage::Validate, Stage::PostSpawn, &mut self.ctx)
        {
            Ok(()) => Ok(RunningVm {
                ctx: self.ctx,
                hooks: self.hooks,
                finished: false,
            }),
            Err(err) => {
                for cleanup in self.hooks.run_all(Stage::Cleanup, &mut self.ctx) {
                    tracing::warn!(error = %cleanup, "microvm cleanup after a failed start");
                }
                Err(err)
            }
        }
    }

    /// Starts the VM and waits for it to end.
    pub fn run(self) -> Result<VmExit, MicrovmError> {
        self.start()?.wait()
    }
}

/// A started VM. Dropping it kills the VMM and runs `cleanup`.
#[derive(Debug)]
pub struct RunningVm {
    ctx: LaunchContext,
    hooks: Hooks,
    finished: bool,
}

impl RunningVm {
    /// The VMM's host pid.
    pub fn vmm_pid(&self) -> Option<u32> {
        self.ctx.vmm_pid()
    }

    /// The launch context (the jail directory, the task's report, the console).
    pub fn context(&self) -> &LaunchContext {
        &self.ctx
    }

    /// The guest's serial console so far.
    pub fn console(&self) -> &ConsoleLog {
        &self.ctx.console
    }

    /// Kills the VMM now; [`wait`](Self::wait) then reports the kill.
    pub fn kill(&mut self) -> Result<(), MicrovmError> {
        Ok(self.ctx.require_task()?.kill()?)
    }

    /// Runs `wait` and `on_exit`, then `cleanup` (always), and says how the VM ended.
    pub fn wait(mut self) -> Result<VmExit, MicrovmError> {
        self.finished = true;
        let result = self.hooks.run(Stage::Wait, Stage::OnExit, &mut self.ctx);
        let cleanup = self.hooks.run_all(Stage::Cleanup, &mut self.ctx);
        result?;
        if let Some(err) = cleanup.into_iter().next() {
            return Err(err);
        }
        let status = self.ctx.status.ok_or(MicrovmError::NotReady {
            what: "the VMM's exit status (seen by the wait stage)",
        })?;
        Ok(VmExit {
            status,
            timed_out: self.ctx.timed_out,
            console: self.ctx.console.text(),
            vmm_stderr: self.ctx.vmm_stderr.text(),
            stats: self.ctx.stats,
        })
    }

    /// Where the VM's host directory is, while it exists.
    pub fn jail_dir(&self) -> Option<PathBuf> {
        self.ctx.jail_dir.as_ref().map(|d| d.path().to_path_buf())
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if !self.finished {
            for err in self.hooks.run_all(Stage::Cleanup, &mut self.ctx) {
                tracing::warn!(error = %err, "microvm cleanup");
            }
        }
    }
}
