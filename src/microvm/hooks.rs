//! Named, ordered launch hooks: see [`Hooks`].

use std::fmt;

use super::launch::LaunchContext;
use super::MicrovmError;

/// A stage of a launch, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Check the spec against the host: files, devices, what the host offers.
    Validate,
    /// Make what the VMM needs: the jail directory, the plan's files, disk images.
    Prepare,
    /// Last changes to the jail before it exists.
    PreSpawn,
    /// Start the VMM in its jail.
    Spawn,
    /// Wait until the VM is up: the plan's sockets, the boot marker.
    PostSpawn,
    /// Wait for the VMM to end (or kill it at the timeout).
    Wait,
    /// Collect what it left: the console, its exit.
    OnExit,
    /// Tear down: kill what is left, remove the cgroup and the jail directory. Runs
    /// after a failure too, every hook of it even if one fails.
    Cleanup,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 8] = [
        Stage::Validate,
        Stage::Prepare,
        Stage::PreSpawn,
        Stage::Spawn,
        Stage::PostSpawn,
        Stage::Wait,
        Stage::OnExit,
        Stage::Cleanup,
    ];

    /// The stage's name (`pre_spawn`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Prepare => "prepare",
            Stage::PreSpawn => "pre_spawn",
            Stage::Spawn => "spawn",
            Stage::PostSpawn => "post_spawn",
            Stage::Wait => "wait",
            Stage::OnExit => "on_exit",
            Stage::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hook runs.
pub type HookFn = dyn FnMut(&mut LaunchContext) -> Result<(), MicrovmError> + Send;

/// A named step of a launch.
pub struct Hook {
    name: String,
    stage: Stage,
    run: Box<HookFn>,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// A hook named `name` (unique in its list) that runs `run` in `stage`.
    pub fn new(
        name: impl Into<String>,
        stage: Stage,
        run: impl FnMut(&mut LaunchContext) -> Result<(), MicrovmError> + Send + 'static,
    ) -> Self {
        Hook {
            name: name.into(),
            stage,
            run: Box::new(run),
        }
    }

    /// The hook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage it runs in.
    pub fn stage(&self) -> Stage {
        self.stage
    }
}

/// Named, ordered launch hooks.
///
/// A launch runs eight [`Stage`]s in order: `validate` → `prepare` → `pre_spawn` →
/// `spawn` → `post_spawn` → `wait` → `on_exit` → `cleanup`. Each stage holds named
/// hooks, run in list order; the list is always sorted by stage. A runtime inserts its
/// own hooks before or after a named one, replaces one by name, or removes it.
///
/// ```
/// use tasksandbox::microvm::{default_hooks, Hook, Stage};
///
/// let mut hooks = default_hooks();
/// hooks.insert_after(
///     "spawn-vmm",
///     Hook::new("log-pid", Stage::PostSpawn, |ctx| {
///         if let Some(task) = &ctx.task {
///             eprintln!("VMM pid {}", task.id());
///         }
///         Ok(())
///     }),
/// )?;
/// hooks.remove("collect-stats")?;
/// assert!(hooks.names().contains(&"log-pid"));
/// # Ok::<(), tasksandbox::microvm::MicrovmError>(())
/// ```
#[derive(Debug, Default)]
pub struct Hooks {
    list: Vec<Hook>,
}

impl Hooks {
    /// No hooks at all (a launch from these does nothing; start from
    /// [`default_hooks`](super::default_hooks) instead).
    pub fn new() -> Self {
        Hooks::default()
    }

    /// The hooks' names, in the order they run.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|h| h.name.as_str()).collect()
    }

    /// `(stage, name)` of every hook, in the order they run.
    pub fn order(&self) -> Vec<(Stage, &str)> {
        self.list
            .iter()
            .map(|h| (h.stage, h.name.as_str()))
            .collect()
    }

    /// Whether a hook is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|h| h.name == name)
    }

    fn find(&self, name: &str) -> Result<usize, MicrovmError> {
        self.position(name)
            .ok_or_else(|| MicrovmError::UnknownHook {
                name: name.to_string(),
            })
    }

    fn check_new(&self, hook: &Hook) -> Result<(), MicrovmError> {
        if hook.name.is_empty() {
            return Err(MicrovmError::HookOrder {
                hook: String::new(),
                reason: "a hook needs a name".into(),
            });
        }
        if self.contains(&hook.name) {
            return Err(MicrovmError::DuplicateHook {
                name: hook.name.clone(),
            });
        }
        Ok(())
    }

    /// Inserts `hook` at `index` if the list stays sorted by stage.
    fn insert_at(&mut self, index: usize, hook: Hook) -> Result<(), MicrovmError> {
        let before = index.checked_sub(1).and_then(|i| self.list.get(i));
        let after = self.list.get(index);
        if let Some(prev) = before.filter(|p| p.stage > hook.stage) {
            return Err(order_error(&hook, "after", prev));
        }
        if let Some(next) = after.filter(|n| n.stage < hook.stage) {
            return Err(order_error(&hook, "before", next));
        }
        self.list.insert(index, hook);
        Ok(())
    }

    /// Appends `hook` as the last hook of its stage.
    pub fn push(&mut self, hook: Hook) -> Result<(), MicrovmError> {
        self.check_new(&hook)?;
        let index = self
            .list
            .iter()
            .position(|h| h.stage > hook.stage)
            .unwrap_or(self.list.len());
        self.insert_at(index, hook)
    }

    /// Inserts `hook` right before the hook named `anchor`. Fails if the names clash or
    /// if that would run it out of its stage's order.
    pub fn insert_before(&mut self, anchor: &str, hook: Hook) -> Result<(), MicrovmError> {
        self.check_new(&hook)?;
        let index = self.find(anchor)?;
        self.insert_at(index, hook)
    }

    /// Inserts `hook` right after the hook named `anchor`. Fails like
    /// [`insert_before`](Self::insert_before).
    pub fn insert_after(&mut self, anchor: &str, hook: Hook) -> Result<(), MicrovmError> {
        self.check_new(&hook)?;
        let index = self.find(anchor)?;
        self.insert_at(index + 1, hook)
    }

    /// Puts `hook` in the place of the hook named `name` and returns that one. The new
    /// hook may have another name (not one of the others) and another stage, if the
    /// order stays valid.
    pub fn replace(&mut self, name: &str, hook: Hook) -> Result<Hook, MicrovmError> {
        let index = self.find(name)?;
        if hook.name != name && self.contains(&hook.name) {
            return Err(MicrovmError::DuplicateHook { name: hook.name });
        }
        let old = self.list.remove(index);
        match self.insert_at(index, hook) {
            Ok(()) => Ok(old),
            Err(e) => {
                self.list.insert(index, old);
                Err(e)
            }
        }
    }

    /// Removes the hook named `name` and returns it.
    pub fn remove(&mut self, name: &str) -> Result<Hook, MicrovmError> {
        let index = self.find(name)?;
        Ok(self.list.remove(index))
    }

    /// Runs the hooks of stages `from..=to` in order; stops at the first failure.
    pub(crate) fn run(
        &mut self,
        from: Stage,
        to: Stage,
        ctx: &mut LaunchContext,
    ) -> Result<(), MicrovmError> {
        for hook in self
            .list
            .iter_mut()
            .filter(|h| h.stage >= from && h.stage <= to)
        {
            tracing::debug!(hook = %hook.name, stage = %hook.stage, "microvm hook");
            (hook.run)(ctx).map_err(|source| MicrovmError::HookFailed {
                hook: hook.name.clone(),
                stage: hook.stage,
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// Runs every hook of `stage`, even after one fails; returns the failures.
    pub(crate) fn run_all(&mut self, stage: Stage, ctx: &mut LaunchContext) -> Vec<MicrovmError> {
        let mut errors = Vec::new();
        for hook in self.list.iter_mut().filter(|h| h.stage == stage) {
            if let Err(source) = (hook.run)(ctx) {
                errors.push(MicrovmError::HookFailed {
                    hook: hook.name.clone(),
                    stage: hook.stage,
                    source: Box::new(source),
                });
            }
        }
        errors
    }
}

fn order_error(hook: &Hook, place: &str, other: &Hook) -> MicrovmError {
    MicrovmError::HookOrder {
        hook: hook.name.clone(),
        reason: format!(
            "a {} hook cannot run {place} {:?}, a {} hook",
            hook.stage, other.name, other.stage
        ),
    }
}
