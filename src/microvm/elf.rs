//! What a dynamically linked program needs to run in an empty root: its ELF
//! interpreter and the shared libraries it and its plug-ins load, found the way the
//! dynamic loader finds them, from the files' own headers (nothing of the host is run
//! for it, no `ldd`).
//!
//! Search order, as glibc's `ld.so` does it: a name with a `/` is a path; otherwise
//! the loading object's `DT_RPATH` (and the program's) unless it has a `DT_RUNPATH`,
//! then its `DT_RUNPATH`, then the directories of `/etc/ld.so.conf` (with its
//! `include`s, in the order `ldconfig` would cache them), then the default system
//! directories. `$ORIGIN` in a path is the directory of the object that names it. A
//! candidate counts only if it is an ELF file of the program's class and machine.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::MicrovmError;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// The default library directories of the loader, after `ld.so.conf`'s.
const SYSTEM_DIRS: [&str; 8] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    /// `EI_CLASS` and `e_machine`: a library must match the program's.
    pub(crate) kind: (u8, u16),
    /// `PT_INTERP`.
    pub(crate) interpreter: Option<PathBuf>,
    /// `DT_NEEDED`, in order.
    pub(crate) needed: Vec<String>,
    /// `DT_RPATH` entries.
    pub(crate) rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub(crate) runpath: Vec<String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> MicrovmError {
    MicrovmError::HostFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Little or big endian integers of an ELF file, read at offsets.
struct Reader<'a> {
    file: &'a File,
    path: &'a Path,
    big: bool,
    wide: bool,
}

impl Reader<'_> {
    fn bytes(&self, at: u64, len: usize) -> Result<Vec<u8>, MicrovmError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|e| bad(self.path, format!("is a truncated ELF file ({e})")))?;
        Ok(buf)
    }

    fn uint(&self, bytes: &[u8]) -> u64 {
        let mut v = 0u64;
        if self.big {
            for b in bytes {
                v = (v << 8) | u64::from(*b);
            }
        } else {
            for b in bytes.iter().rev() {
                v = (v << 8) | u64::from(*b);
            }
        }
        v
    }

    /// An address-sized field (`Elf64_Addr`, `Elf64_Off`, `Elf64_Xword`).
    fn word(&self, bytes: &[u8], at: usize) -> u64 {
        let n = if self.wide { 8 } else { 4 };
        self.uint(&bytes[at..at + n])
    }
}

/// Reads the interpreter, needed libraries and search paths of the ELF file `path`.
/// `Ok(None)` if it is not an ELF file at all.
pub(crate) fn read(path: &Path) -> Result<Option<ElfInfo>, MicrovmError> {
    let file = File::open(path).map_err(|e| bad(path, format!("cannot be read: {e}")))?;
    let mut ident = [0u8; 64];
    let n = file
        .read_at(&mut ident, 0)
        .map_err(|e| bad(path, format!("cannot be read: {e}")))?;
    if n < 52 || &ident[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err(bad(path, "has an unknown ELF class")),
    };
    let big = ident[5] == 2;
    let r = Reader {
        file: &file,
        path,
        big,
        wide,
    };
    let machine = r.uint(&ident[18..20]) as u16;
    let (phoff, phentsize, phnum) = if wide {
        (
            r.uint(&ident[0x20..0x28]),
            r.uint(&ident[0x36..0x38]),
            r.uint(&ident[0x38..0x3a]),
        )
    } else {
        (
            r.uint(&ident[0x1c..0x20]),
            r.uint(&ident[0x2a..0x2c]),
            r.uint(&ident[0x2c..0x2e]),
        )
    };
    let min_phent = if wide { 56 } else { 32 };
    if phentsize < min_phent || phnum > 4096 {
        return Err(bad(path, "has malformed program headers"));
    }
    let table = r.bytes(phoff, (phentsize * phnum) as usize)?;
    let mut info = ElfInfo {
        kind: (ident[4], machine),
        ..ElfInfo::default()
    };
    // (vaddr, filesz, offset) of each PT_LOAD, to turn DT_STRTAB's address into an
    // offset; the dynamic section's (offset, size).
    let mut loads: Vec<(u64, u64, u64)> = Vec::new();
    let mut dynamic: Option<(u64, u64)> = None;
    for i in 0..phnum as usize {
        let ph = &table[i * phentsize as usize..(i + 1) * phentsize as usize];
        let kind = r.uint(&ph[0..4]) as u32;
        // 64-bit: type, flags, offset, vaddr, paddr, filesz, memsz, align.
        // 32-bit: type, offset, vaddr, paddr, filesz, memsz, flags, align.
        let (offset, vaddr, filesz) = if wide {
            (r.word(ph, 8), r.word(ph, 16), r.word(ph, 32))
        } else {
            (r.word(ph, 4), r.word(ph, 8), r.word(ph, 16))
        };
        match kind {
            PT_LOAD => loads.push((vaddr, filesz, offset)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => {
                let raw = r.bytes(offset, filesz.min(4096) as usize)?;
                let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                let interp = String::from_utf8(raw[..end].to_vec())
                    .map_err(|_| bad(path, "has an interpreter path that is not UTF-8"))?;
                info.interpreter = Some(PathBuf::from(interp));
            }
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(Some(info));
    };
    let entry = if wide { 16 } else { 8 };
    let dyns = r.bytes(dyn_off, dyn_size.min(1 << 20) as usize)?;
    let (mut strtab, mut strsz) = (None, 0u64);
    let mut entries: Vec<(u64, u64)> = Vec::new();
    for chunk in dyns.chunks_exact(entry) {
        let tag = r.word(chunk, 0);
        let val = r.word(chunk, entry / 2);
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = val,
            DT_NEEDED | DT_RPATH | DT_RUNPATH => entries.push((tag, val)),
            _ => {}
        }
    }
    if entries.is_empty() {
        return Ok(Some(info));
    }
    let strtab = strtab.ok_or_else(|| bad(path, "has a dynamic section without DT_STRTAB"))?;
    let strtab_off = loads
        .iter()
        .find(|(vaddr, filesz, _)| strtab >= *vaddr && strtab < vaddr + filesz)
        .map(|(vaddr, _, offset)| strtab - vaddr + offset)
        .ok_or_else(|| bad(path, "has a DT_STRTAB outside its loaded segments"))?;
    let strings = r.bytes(strtab_off, strsz.min(16 << 20) as usize)?;
    let string = |at: u64| -> Result<String, MicrovmError> {
        let rest = strings
            .get(at as usize..)
            .ok_or_else(|| bad(path, "has a dynamic string outside DT_STRTAB"))?;
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        String::from_utf8(rest[..end].to_vec())
            .map_err(|_| bad(path, "has a dynamic string that is not UTF-8"))
    };
    for (tag, val) in entries {
        let s = string(val)?;
        match tag {
            DT_NEEDED => info.needed.push(s),
            DT_RPATH => info.rpath.extend(s.split(':').map(String::from)),
            _ => info.runpath.extend(s.split(':').map(String::from)),
        }
    }
    Ok(Some(info))
}

/// The directories of `/etc/ld.so.conf` and its `include`s, in order.
pub(crate) fn ld_so_conf_dirs(conf: &Path) -> Vec<PathBuf> {
    fn walk(conf: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(text) = std::fs::read_to_string(conf) else {
            return;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(pattern) = line.strip_prefix("include") {
                for pattern in pattern.split_whitespace() {
                    let pattern = match conf.parent() {
                        Some(dir) if !pattern.starts_with('/') => dir.join(pattern),
                        _ => PathBuf::from(pattern),
                    };
                    for file in glob_files(&pattern) {
                        walk(&file, depth + 1, out);
                    }
                }
            } else if line.starts_with('/') {
                // `dir=TYPE` (libc5 days) names a directory too.
                let dir = line.split('=').next().unwrap_or(line).trim();
                let dir = PathBuf::from(dir);
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(conf, 0, &mut out);
    out
}

/// The files matching `pattern`, whose last component may hold `*` wildcards,
/// sorted (as glob(3) returns them).
fn glob_files(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    if !name.contains('*') {
        return vec![pattern.to_path_buf()];
    }
    let parts: Vec<&str> = name.split('*').collect();
    let matches = |candidate: &str| {
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        if !candidate.starts_with(first) || candidate.len() < first.len() + last.len() {
            return false;
        }
        let mut rest = &candidate[first.len()..candidate.len() - last.len()];
        if !candidate.ends_with(last) {
            return false;
        }
        for middle in &parts[1..parts.len() - 1] {
            match rest.find(middle) {
                Some(at) => rest = &rest[at + middle.len()..],
                None => return false,
            }
        }
        true
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| !n.starts_with('.') && matches(n))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `path` with `.` and `..` taken away lexically (`/usr/bin/../lib` is `/usr/lib`).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A program's dynamic closure: every file the loader opens to run it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Closure {
    /// The ELF interpreter (`/lib64/ld-linux-x86-64.so.2`), if dynamically linked.
    pub(crate) interpreter: Option<PathBuf>,
    /// The shared libraries, at the paths the loader opens them, in load order.
    pub(crate) libraries: Vec<PathBuf>,
}

/// Finds everything `program` and the plug-ins `plugins` (shared objects it
/// `dlopen`s, by path) load, the way the loader would.
pub(crate) fn closure(program: &Path, plugins: &[PathBuf]) -> Result<Closure, MicrovmError> {
    let info = read(program)?.ok_or_else(|| bad(program, "is not an ELF executable"))?;
    let conf_dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"));
    let mut out = Closure {
        interpreter: info.interpreter.clone(),
        libraries: Vec::new(),
    };
    // Loaded names (DT_NEEDED strings and file names), so a library is loaded once.
    let mut loaded: Vec<String> = Vec::new();
    if let Some(interp) = &info.interpreter {
        if let Some(name) = interp.file_name() {
            loaded.push(name.to_string_lossy().into_owned());
        }
    }
    let exe_rpath: Vec<PathBuf> = if info.runpath.is_empty() {
        expand(&info.rpath, program)
    } else {
        Vec::new()
    };
    // Breadth-first, as the loader does: the program's libraries, then theirs.
    let mut queue: Vec<(PathBuf, ElfInfo)> = vec![(program.to_path_buf(), info.clone())];
    for plugin in plugins {
        let plugin_info =
            read(plugin)?.ok_or_else(|| bad(plugin, "is not an ELF shared object"))?;
        if plugin_info.kind != info.kind {
            return Err(bad(plugin, "is built for another machine than the VMM"));
        }
        queue.push((plugin.clone(), plugin_info));
    }
    let mut next = 0;
    while let Some((object, object_info)) = queue.get(next).cloned() {
        next += 1;
        for name in &object_info.needed {
            if loaded.contains(name) {
                continue;
            }
            let found = if name.contains('/') {
                let path = PathBuf::from(name);
                matches_kind(&path, info.kind)?.then_some(path)
            } else {
                let mut dirs: Vec<PathBuf> = Vec::new();
                if object_info.runpath.is_empty() {
                    dirs.extend(expand(&object_info.rpath, &object));
                    dirs.extend(exe_rpath.iter().cloned());
                }
                dirs.extend(expand(&object_info.runpath, &object));
                dirs.extend(conf_dirs.iter().cloned());
                dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
                let mut found = None;
                for dir in dirs {
                    let candidate = dir.join(name);
                    if matches_kind(&candidate, info.kind)? {
                        found = Some(candidate);
                        break;
                    }
                }
                found
            };
            let path = found.ok_or_else(|| {
                bad(
                    &object,
                    format!("needs the shared library {name}, which is nowhere the loader looks"),
                )
            })?;
            loaded.push(name.clone());
            let lib_info = read(&path)?.unwrap_or_default();
            out.libraries.push(path.clone());
            queue.push((path, lib_info));
        }
    }
    Ok(out)
}

/// Whether `path` is an ELF file of `kind` (class, machine). Files that are not there
/// or not ELF are not candidates; a broken ELF file is an error.
fn matches_kind(path: &Path, kind: (u8, u16)) -> Result<bool, MicrovmError> {
    if !path.is_file() {
        return Ok(false);
    }
    Ok(read(path)?.is_some_and(|i| i.kind == kind))
}

/// `DT_RPATH`/`DT_RUNPATH` entries as directories, `$ORIGIN` replaced by the
/// directory of `object`; entries with other `$` tokens are skipped.
fn expand(entries: &[String], object: &Path) -> Vec<PathBuf> {
    let origin = object
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    entries
        .iter()
        .filter(|e| !e.is_empty())
        .map(|e| e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .filter(|e| !e.contains('$') && e.starts_with('/'))
        .map(|e| normalize(Path::new(&e)))
        .collect()
}
