//! The jail's root: the VMM binary, what its loader needs, and the host files the
//! backend names, resolved on the host before anything starts.

use std::path::{Path, PathBuf};

use crate::container::DEFAULT_PATH;

use super::elf;
use super::jail::accessible;
use super::plan::{HostFile, Vmm, VmmPlan};
use super::spec::VmSpec;
use super::MicrovmError;

/// What the jail's root holds besides the VM's directory (`/vm`) and the plan's
/// device nodes, each bound read-only at its host path: the VMM binary, its ELF
/// interpreter and shared libraries (resolved from the ELF headers: `PT_INTERP`,
/// `DT_NEEDED`, `DT_RPATH`/`DT_RUNPATH`, `/etc/ld.so.conf`, the system directories),
/// and the backend's [host files](Vmm::host_files) (firmware, plug-ins with their own
/// libraries). Only the binary, the interpreter and the libraries are on mounts that
/// allow execution; nothing in the root is writable.
///
/// Made by the launch's `resolve-vmm` hook (`validate` stage); a later hook may add to
/// it before `spawn`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JailRoot {
    /// The VMM binary on the host, bound and executed at this path.
    pub program: PathBuf,
    /// The ELF interpreter, the shared libraries and the plug-ins, at the paths the
    /// loader opens them: bound where execution is allowed.
    pub libraries: Vec<PathBuf>,
    /// Data files (firmware): bound where execution is not allowed.
    pub files: Vec<PathBuf>,
    /// The directories of the libraries, in search order: the VMM's
    /// `LD_LIBRARY_PATH`, since the jail has no `/etc/ld.so.cache`.
    pub library_path: Vec<PathBuf>,
}

impl JailRoot {
    /// Resolves `plan`'s program on the host (a path, or a name looked up in the
    /// launcher's `PATH`), its libraries and `vmm`'s host files for `spec`, and checks
    /// that host uid `uid` (gid `gid`) can read each.
    pub fn resolve(
        vmm: &dyn Vmm,
        spec: &VmSpec,
        plan: &VmmPlan,
        uid: u32,
        gid: u32,
    ) -> Result<JailRoot, MicrovmError> {
        let program = find_program(&plan.program)?;
        let mut plugins = Vec::new();
        let mut files = Vec::new();
        for HostFile { path, required } in vmm.host_files(spec, &program) {
            if !path.is_file() {
                if required {
                    return Err(MicrovmError::HostFile {
                        path,
                        reason: format!("is missing, and {} needs it", plan.vmm),
                    });
                }
                continue;
            }
            match elf::read(&path)? {
                Some(_) => plugins.push(path),
                None => files.push(path),
            }
        }
        let closure = elf::closure(&program, &plugins)?;
        let mut library_path: Vec<PathBuf> = Vec::new();
        for lib in &closure.libraries {
            if let Some(dir) = lib.parent() {
                if !library_path.iter().any(|d| d == dir) {
                    library_path.push(dir.to_path_buf());
                }
            }
        }
        let libraries: Vec<PathBuf> = closure
            .interpreter
            .into_iter()
            .chain(closure.libraries)
            .chain(plugins)
            .collect();
        let root = JailRoot {
            program,
            libraries,
            files,
            library_path,
        };
        for path in root.paths() {
            accessible(path, uid, gid, false).map_err(|reason| MicrovmError::HostFile {
                path: path.to_path_buf(),
                reason: format!("the jailed VMM could not read it: {reason}"),
            })?;
        }
        Ok(root)
    }

    /// Every host path of the root: the program, the libraries, the files.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.program.as_path())
            .chain(self.libraries.iter().map(PathBuf::as_path))
            .chain(self.files.iter().map(PathBuf::as_path))
    }
}

/// The host path of the VMM `program`: itself if it holds a `/` (it must be
/// absolute), else the first executable file of that name in the launcher's `PATH`
/// (or the default `PATH`).
fn find_program(program: &str) -> Result<PathBuf, MicrovmError> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        if !path.is_absolute() {
            return Err(MicrovmError::HostFile {
                path,
                reason: "must be an absolute path to be bound into the jail".into(),
            });
        }
        if !is_exec(&path) {
            return Err(MicrovmError::HostFile {
                path,
                reason: "is not an executable file".into(),
            });
        }
        return Ok(elf::normalize(Path::new(program)));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| elf::normalize(&dir.join(program)))
        .find(|candidate| is_exec(candidate))
        .ok_or_else(|| MicrovmError::HostFile {
            path: PathBuf::from(program),
            reason: "is not in the launcher's PATH; install the VMM or give its path".into(),
        })
}
