//! Docker/OCI JSON seccomp profiles, loaded into the profile model.
//!
//! The format and the choices made are documented on [`SeccompProfile::from_json`].

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::default::arg_width;
use super::profile::{
    Action, Arch, ArgCondition, ArgOp, ArgWidth, KernelVersion, SeccompProfile, SyscallRule, EPERM,
    MAX_ERRNO,
};
use super::{syscalls, SeccompError};

/// Where a mistake is in a JSON profile: its JSON path and its line and column.
///
/// Displayed as `syscalls[3].args[0].op (line 12, column 23)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLocation {
    /// The JSON path (`syscalls[3].args[0].op`); empty for the whole document.
    pub path: String,
    /// The line and column, both from 1, the column counted in characters: of the
    /// value the path names (of the key itself for an unknown key); for a key that is
    /// missing, of the object that lacks it. `None` only if the text was not at hand.
    pub line_column: Option<(usize, usize)>,
}

impl JsonLocation {
    fn new(path: impl Into<String>) -> Self {
        JsonLocation {
            path: path.into(),
            line_column: None,
        }
    }
}

impl fmt::Display for JsonLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str("the profile")?;
        } else {
            f.write_str(&self.path)?;
        }
        if let Some((line, column)) = self.line_column {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// Why a JSON seccomp profile cannot be loaded.
///
/// Every variant but [`ProfileError::Read`] and [`ProfileError::Syntax`] names the
/// place of the mistake with a [`JsonLocation`]: its JSON path (`syscalls[12].args[0].op`)
/// and its line and column; syntax errors give the line and column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read the seccomp profile {}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("the seccomp profile is not valid JSON at line {line}, column {column}")]
    Syntax {
        /// The line, from 1.
        line: usize,
        /// The column, from 1, counted in characters (0 for an empty text).
        column: usize,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// Arrays and objects nested deeper than [`MAX_JSON_NESTING`], refused before
    /// parsing (a profile needs 5 levels).
    #[error(
        "the seccomp profile nests arrays and objects deeper than {max} levels at line \
         {line}, column {column}"
    )]
    TooDeep {
        /// The line of the bracket that opens the level too many, from 1.
        line: usize,
        /// Its column, from 1, counted in characters.
        column: usize,
        /// The limit.
        max: usize,
    },
    /// A key the format does not have (or not at this place).
    #[error("{at}: unknown key")]
    UnknownKey {
        /// The path of the key itself (`syscalls[3].nmaes`).
        at: JsonLocation,
    },
    /// A required key is absent.
    #[error("{at}: missing")]
    MissingKey {
        /// The path the key would have.
        at: JsonLocation,
    },
    /// Both `name` and `names` in one rule.
    #[error("{at}: `name` and `names` both given; use one")]
    NameAndNames {
        /// The path of the rule (`syscalls[3]`).
        at: JsonLocation,
    },
    /// A value of the wrong JSON type.
    #[error("{at}: expected {expected}")]
    WrongType {
        /// Where.
        at: JsonLocation,
        /// What was expected (`"a string"`).
        expected: &'static str,
    },
    /// An action name this crate does not know or support (`SCMP_ACT_NOTIFY`).
    #[error("{at}: unknown or unsupported action `{name}`")]
    UnknownAction {
        /// Where.
        at: JsonLocation,
        /// The name as written.
        name: String,
    },
    /// `errnoRet` or `defaultErrnoRet` with an action other than `SCMP_ACT_ERRNO`.
    #[error("{at}: an errno is only meaningful with SCMP_ACT_ERRNO")]
    ErrnoWithoutErrnoAction {
        /// Where the errno is.
        at: JsonLocation,
    },
    /// An errno the kernel cannot return.
    #[error("{at}: errno {errno} is out of range: a seccomp filter can return 0 to {MAX_ERRNO}")]
    ErrnoOutOfRange {
        /// Where.
        at: JsonLocation,
        /// The errno.
        errno: u64,
    },
    /// A comparison name this crate does not know.
    #[error("{at}: unknown comparison `{name}`")]
    UnknownOp {
        /// Where.
        at: JsonLocation,
        /// The name as written.
        name: String,
    },
    /// An argument index above 5.
    #[error("{at}: argument index {index} is out of range: syscalls have arguments 0 to 5")]
    ArgIndexOutOfRange {
        /// Where.
        at: JsonLocation,
        /// The index.
        index: u64,
    },
    /// `valueTwo` set on a comparison that does not use it (all but `SCMP_CMP_MASKED_EQ`).
    #[error("{at}: valueTwo is only used by SCMP_CMP_MASKED_EQ")]
    ValueTwoUnused {
        /// Where.
        at: JsonLocation,
    },
    /// A condition the model refuses: a 32-bit argument compared with a wider value, or
    /// a masked comparison that can never match.
    #[error("{at}: {source}")]
    InvalidCondition {
        /// The path of the condition (`syscalls[2].args[0]`).
        at: JsonLocation,
        /// The model's reason.
        #[source]
        source: SeccompError,
    },
    /// A `names` list with no name.
    #[error("{at}: names no syscall")]
    EmptyNames {
        /// Where.
        at: JsonLocation,
    },
    /// A syscall name that exists on no Linux architecture.
    #[error("{at}: `{name}` is not a Linux syscall")]
    UnknownSyscall {
        /// Where.
        at: JsonLocation,
        /// The name.
        name: String,
    },
    /// A capability name the `caps` crate does not know.
    #[error("{at}: unknown capability `{name}`")]
    UnknownCapability {
        /// Where.
        at: JsonLocation,
        /// The name.
        name: String,
    },
    /// An architecture name this crate does not know.
    #[error("{at}: unknown architecture `{name}`")]
    UnknownArch {
        /// Where.
        at: JsonLocation,
        /// The name.
        name: String,
    },
    /// An OCI `flags` entry this crate does not honour (`SECCOMP_FILTER_FLAG_LOG`,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`), or one no kernel has.
    #[error("{at}: filter flag `{flag}` is not supported: {reason}")]
    UnsupportedFlag {
        /// The path of the entry (`flags[1]`).
        at: JsonLocation,
        /// The flag as written.
        flag: String,
        /// Why.
        reason: &'static str,
    },
    /// An OCI key of a feature this crate does not have (`listenerPath`,
    /// `listenerMetadata`: user-space notification agents).
    #[error("{at}: not supported: {reason}")]
    UnsupportedKey {
        /// The path of the key.
        at: JsonLocation,
        /// Why.
        reason: &'static str,
    },
    /// A `minKernel` that is not `major.minor`.
    #[error("{at}: `{text}` is not a kernel version (major.minor)")]
    InvalidKernelVersion {
        /// Where.
        at: JsonLocation,
        /// The text.
        text: String,
    },
}

/// How deep [`SeccompProfile::from_json`] lets arrays and objects nest; deeper is a
/// [`ProfileError::TooDeep`].
pub const MAX_JSON_NESTING: usize = 32;

impl SeccompProfile {
    /// Loads a Docker/OCI JSON seccomp profile: the format of Docker's
    /// `seccomp/default.json` and of the `linux.seccomp` object of an OCI runtime spec.
    ///
    /// | key | meaning |
    /// |---|---|
    /// | `defaultAction`, `defaultErrnoRet` | the default [`Action`] (errno `EPERM` if not given) |
    /// | `archMap` (Docker), `architectures` (OCI) | checked, then ignored (see below) |
    /// | `syscalls[].names` (or a single `name`) | the syscalls of the rule |
    /// | `syscalls[].action`, `syscalls[].errnoRet` | the rule's [`Action`] (errno `EPERM` if not given) |
    /// | `syscalls[].args[]`: `index`, `value`, `valueTwo`, `op` | [`ArgCondition`]s, all of which must hold |
    /// | `syscalls[].includes`: `caps`, `arches`, `minKernel` | [`SyscallRule::requires_caps`], [`SyscallRule::only_on`], [`SyscallRule::min_kernel`] |
    /// | `syscalls[].excludes`: `caps`, `arches`, `minKernel` | [`SyscallRule::unless_caps`], [`SyscallRule::except_on`], [`SyscallRule::unless_kernel`] |
    /// | `flags` (OCI) | `SECCOMP_FILTER_FLAG_TSYNC` and `_WAIT_KILLABLE_RECV` accepted (they change nothing here); `_LOG`, `_SPEC_ALLOW` and the others refused |
    /// | `listenerPath`, `listenerMetadata` (OCI) | refused: no user-space notification |
    /// | `comment` | allowed in every object, ignored |
    ///
    /// Actions are `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, `SCMP_ACT_KILL` (the thread, as
    /// in libseccomp), `SCMP_ACT_KILL_THREAD`, `SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_TRAP`
    /// and `SCMP_ACT_LOG`. Comparisons are `SCMP_CMP_EQ`, `_NE`, `_LT`, `_LE`, `_GT`,
    /// `_GE` and `SCMP_CMP_MASKED_EQ`, which compares `arg & value` with `valueTwo`
    /// (0 if not given). Capabilities are read by name with [`caps::Capability`], so
    /// rules for capabilities a task can never hold (`CAP_SYS_ADMIN`) load, and never
    /// apply. `minKernel` is `major.minor`.
    ///
    /// The loader is strict: a key it does not know, a value of the wrong type, an
    /// action or comparison it does not know, an errno above [`MAX_ERRNO`], an errno
    /// with an action other than `SCMP_ACT_ERRNO`, an argument index above 5, a
    /// `valueTwo` on a comparison other than `SCMP_CMP_MASKED_EQ`, an empty `names`
    /// list, or a syscall name that exists on no architecture is a [`ProfileError`]
    /// naming where it is. A `null` counts as an absent key, as in Docker's Go loader.
    /// Arrays and objects nested more than [`MAX_JSON_NESTING`] deep are refused
    /// before parsing.
    ///
    /// The JSON gives no argument widths. Conditions on the `int`-typed arguments the
    /// built-in profile compares as 32 bits (`socket`'s domain and `personality`'s
    /// persona, argument 0, and `ioctl`'s cmd, argument 1) are compared as 32 bits
    /// ([`ArgWidth::Dword`]), as the kernel reads them; every other argument as 64 bits
    /// ([`ArgWidth::Qword`]). The table is shared with the built-in profile, so
    /// importing Docker's default profile gives the built-in profile's comparisons. A
    /// rule whose names need different widths for one condition is split, in place,
    /// into one rule per width.
    ///
    /// `archMap` and `architectures` are checked and otherwise ignored: profiles are
    /// compiled for the build target's architecture only. `includes.arches` and
    /// `excludes.arches` are kept in the rules.
    ///
    /// ```
    /// use tasksandbox::seccomp::{Action, SeccompProfile};
    /// let profile = SeccompProfile::from_json(
    ///     r#"{"defaultAction": "SCMP_ACT_ERRNO",
    ///         "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
    /// )?;
    /// assert_eq!(profile.default_action(), Action::Errno(libc::EPERM as u32));
    /// # Ok::<(), tasksandbox::seccomp::ProfileError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<SeccompProfile, ProfileError> {
        // serde_json recurses once per level, to 128: more than a small thread's stack
        // holds in a debug build. A profile needs 5.
        if let Some(at) = crate::nesting::too_deep(text, MAX_JSON_NESTING) {
            let (line, column) = crate::nesting::line_column(text, at);
            return Err(ProfileError::TooDeep {
                line,
                column,
                max: MAX_JSON_NESTING,
            });
        }
        let value: Value = serde_json::from_str(text).map_err(|source| ProfileError::Syntax {
            line: source.line(),
            column: locate::char_column(text, source.line(), source.column()),
            source,
        })?;
        profile(&value).map_err(|mut error| {
            let key = matches!(
                error,
                ProfileError::UnknownKey { .. } | ProfileError::UnsupportedKey { .. }
            );
            if let Some(at) = error.location_mut() {
                at.line_column = locate::position(text, &at.path, key);
            }
            error
        })
    }

    /// Reads and loads the JSON seccomp profile in `path` ([`SeccompProfile::from_json`]).
    pub fn from_json_file(path: &Path) -> Result<SeccompProfile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }
}

impl ProfileError {
    /// Where the mistake is; `None` for [`ProfileError::Read`] and
    /// [`ProfileError::Syntax`] (which has its own line and column).
    pub fn location(&self) -> Option<&JsonLocation> {
        match self {
            ProfileError::Read { .. }
            | ProfileError::Syntax { .. }
            | ProfileError::TooDeep { .. } => None,
            ProfileError::UnknownKey { at }
            | ProfileError::MissingKey { at }
            | ProfileError::NameAndNames { at }
            | ProfileError::WrongType { at, .. }
            | ProfileError::UnknownAction { at, .. }
            | ProfileError::ErrnoWithoutErrnoAction { at }
            | ProfileError::ErrnoOutOfRange { at, .. }
            | ProfileError::UnknownOp { at, .. }
            | ProfileError::ArgIndexOutOfRange { at, .. }
            | ProfileError::ValueTwoUnused { at }
            | ProfileError::InvalidCondition { at, .. }
            | ProfileError::EmptyNames { at }
            | ProfileError::UnknownSyscall { at, .. }
            | ProfileError::UnknownCapability { at, .. }
            | ProfileError::UnknownArch { at, .. }
            | ProfileError::InvalidKernelVersion { at, .. }
            | ProfileError::UnsupportedFlag { at, .. }
            | ProfileError::UnsupportedKey { at, .. } => Some(at),
        }
    }

    fn location_mut(&mut self) -> Option<&mut JsonLocation> {
        match self {
            ProfileError::Read { .. }
            | ProfileError::Syntax { .. }
            | ProfileError::TooDeep { .. } => None,
            ProfileError::UnknownKey { at }
            | ProfileError::MissingKey { at }
            | ProfileError::NameAndNames { at }
            | ProfileError::WrongType { at, .. }
            | ProfileError::UnknownAction { at, .. }
            | ProfileError::ErrnoWithoutErrnoAction { at }
            | ProfileError::ErrnoOutOfRange { at, .. }
            | ProfileError::UnknownOp { at, .. }
            | ProfileError::ArgIndexOutOfRange { at, .. }
            | ProfileError::ValueTwoUnused { at }
            | ProfileError::InvalidCondition { at, .. }
            | ProfileError::EmptyNames { at }
            | ProfileError::UnknownSyscall { at, .. }
            | ProfileError::UnknownCapability { at, .. }
            | ProfileError::UnknownArch { at, .. }
            | ProfileError::InvalidKernelVersion { at, .. }
            | ProfileError::UnsupportedFlag { at, .. }
            | ProfileError::UnsupportedKey { at, .. } => Some(at),
        }
    }
}

/// A JSON path under construction.
fn at(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn index(parent: &str, i: usize) -> String {
    let mut path = parent.to_string();
    let _ = write!(path, "[{i}]");
    path
}

/// The object at `path`, after checking it has no key outside `known` (and `comment`).
fn object<'a>(
    value: &'a Value,
    path: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, ProfileError> {
    let map = value.as_object().ok_or_else(|| wrong(path, "an object"))?;
    if let Some(key) = map
        .keys()
        .find(|k| k.as_str() != "comment" && !known.contains(&k.as_str()))
    {
        return Err(ProfileError::UnknownKey {
            at: JsonLocation::new(at(path, key)),
        });
    }
    if let Some(comment) = map.get("comment") {
        if !comment.is_string() && !comment.is_null() {
            return Err(wrong(&at(path, "comment"), "a string"));
        }
    }
    Ok(map)
}

fn wrong(path: &str, expected: &'static str) -> ProfileError {
    ProfileError::WrongType {
        at: JsonLocation::new(path.to_string()),
        expected,
    }
}

/// The value of `key`, `None` if absent or `null`.
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn required<'a>(
    map: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Value, ProfileError> {
    get(map, key).ok_or_else(|| ProfileError::MissingKey {
        at: JsonLocation::new(at(parent, key)),
    })
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, ProfileError> {
    value.as_str().ok_or_else(|| wrong(path, "a string"))
}

fn unsigned(value: &Value, path: &str) -> Result<u64, ProfileError> {
    value
        .as_u64()
        .ok_or_else(|| wrong(path, "an unsigned 64-bit integer"))
}

/// The strings of the array at `path`, each with its own path.
fn strings<'a>(value: &'a Value, path: &str) -> Result<Vec<(&'a str, String)>, ProfileError> {
    let array = value.as_array().ok_or_else(|| wrong(path, "an array"))?;
    array
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = index(path, i);
            Ok((string(v, &path)?, path))
        })
        .collect()
}

fn profile(value: &Value) -> Result<SeccompProfile, ProfileError> {
    let map = object(
        value,
        "",
        &[
            "defaultAction",
            "defaultErrnoRet",
            "archMap",
            "architectures",
            "flags",
            "listenerPath",
            "listenerMetadata",
            "syscalls",
        ],
    )?;
    let default_action = action(map, "", "defaultAction", "defaultErrnoRet")?;
    for key in ["listenerPath", "listenerMetadata"] {
        if get(map, key).is_some() {
            return Err(ProfileError::UnsupportedKey {
                at: JsonLocation::new(key.to_string()),
                reason: "user-space notification (SCMP_ACT_NOTIFY) is not supported",
            });
        }
    }
    if let Some(flags) = get(map, "flags") {
        for (flag, path) in strings(flags, "flags")? {
            filter_flag(flag, &path)?;
        }
    }
    if let Some(arch_map) = get(map, "archMap") {
        let array = arch_map
            .as_array()
            .ok_or_else(|| wrong("archMap", "an array"))?;
        for (i, entry) in array.iter().enumerate() {
            let path = index("archMap", i);
            let entry = object(entry, &path, &["architecture", "subArchitectures"])?;
            let main = required(entry, &path, "architecture")?;
            libseccomp_arch(main, &at(&path, "architecture"))?;
            if let Some(subs) = get(entry, "subArchitectures") {
                let subs_path = at(&path, "subArchitectures");
                let array = subs
                    .as_array()
                    .ok_or_else(|| wrong(&subs_path, "an array"))?;
                for (j, sub) in array.iter().enumerate() {
                    libseccomp_arch(sub, &index(&subs_path, j))?;
                }
            }
        }
    }
    if let Some(arches) = get(map, "architectures") {
        let array = arches
            .as_array()
            .ok_or_else(|| wrong("architectures", "an array"))?;
        for (i, arch) in array.iter().enumerate() {
            libseccomp_arch(arch, &index("architectures", i))?;
        }
    }
    let mut profile = SeccompProfile::new(default_action);
    if let Some(rules) = get(map, "syscalls") {
        let array = rules
            .as_array()
            .ok_or_else(|| wrong("syscalls", "an array"))?;
        for (i, rule) in array.iter().enumerate() {
            for rule in syscall_rule(rule, &index("syscalls", i))? {
                profile.push_rule(rule);
            }
        }
    }
    Ok(profile)
}

/// Checks an OCI filter flag. The ones accepted change nothing here: the filters are
/// installed by a single-threaded process (so `TSYNC` has no other thread to reach)
/// and no action waits on a user-space listener (`WAIT_KILLABLE_RECV`).
fn filter_flag(flag: &str, path: &str) -> Result<(), ProfileError> {
    let reason = match flag {
        "SECCOMP_FILTER_FLAG_TSYNC" | "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => return Ok(()),
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => {
            "it turns off the kernel's speculative store bypass mitigation for the task"
        }
        "SECCOMP_FILTER_FLAG_LOG" => {
            "the crate's filters log nothing but what an SCMP_ACT_LOG rule asks for"
        }
        "SECCOMP_FILTER_FLAG_NEW_LISTENER" | "SECCOMP_FILTER_FLAG_TSYNC_ESRCH" => {
            "user-space notification (SCMP_ACT_NOTIFY) is not supported"
        }
        _ => "no such flag (the OCI flags are the SECCOMP_FILTER_FLAG_* names)",
    };
    Err(ProfileError::UnsupportedFlag {
        at: JsonLocation::new(path.to_string()),
        flag: flag.to_string(),
        reason,
    })
}

/// Checks a libseccomp architecture name (`SCMP_ARCH_X86_64`).
fn libseccomp_arch(value: &Value, path: &str) -> Result<(), ProfileError> {
    const KNOWN: &[&str] = &[
        "X86",
        "X86_64",
        "X32",
        "ARM",
        "AARCH64",
        "MIPS",
        "MIPS64",
        "MIPS64N32",
        "MIPSEL",
        "MIPSEL64",
        "MIPSEL64N32",
        "PPC",
        "PPC64",
        "PPC64LE",
        "S390",
        "S390X",
        "PARISC",
        "PARISC64",
        "RISCV64",
        "LOONGARCH64",
        "M68K",
        "SH",
        "SHEB",
    ];
    let name = string(value, path)?;
    match name.strip_prefix("SCMP_ARCH_") {
        Some(arch) if KNOWN.contains(&arch) => Ok(()),
        _ => Err(ProfileError::UnknownArch {
            at: JsonLocation::new(path.to_string()),
            name: name.to_string(),
        }),
    }
}

/// The action of `map[action_key]`, with the errno of `map[errno_key]`.
fn action(
    map: &Map<String, Value>,
    parent: &str,
    action_key: &str,
    errno_key: &str,
) -> Result<Action, ProfileError> {
    let path = at(parent, action_key);
    let name = string(required(map, parent, action_key)?, &path)?;
    let errno_path = at(parent, errno_key);
    let errno = get(map, errno_key)
        .map(|e| unsigned(e, &errno_path))
        .transpose()?;
    let action = match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => {
            let errno = errno.unwrap_or(u64::from(EPERM));
            if errno > u64::from(MAX_ERRNO) {
                return Err(ProfileError::ErrnoOutOfRange {
                    at: JsonLocation::new(errno_path),
                    errno,
                });
            }
            // At most MAX_ERRNO, so it fits.
            return Ok(Action::Errno(errno as u32));
        }
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        _ => {
            return Err(ProfileError::UnknownAction {
                at: JsonLocation::new(path),
                name: name.to_string(),
            })
        }
    };
    if errno.is_some() {
        return Err(ProfileError::ErrnoWithoutErrnoAction {
            at: JsonLocation::new(errno_path),
        });
    }
    Ok(action)
}

/// One parsed argument condition, before its width is known.
struct Condition {
    index: u8,
    op: ArgOp,
    value: u64,
    path: String,
}

fn condition(value: &Value, path: &str) -> Result<Condition, ProfileError> {
    let map = object(value, path, &["index", "value", "valueTwo", "op"])?;
    let index_path = at(path, "index");
    let index = unsigned(required(map, path, "index")?, &index_path)?;
    let index = u8::try_from(index)
        .ok()
        .filter(|&i| i <= ArgCondition::MAX_INDEX)
        .ok_or(ProfileError::ArgIndexOutOfRange {
            at: JsonLocation::new(index_path),
            index,
        })?;
    let value = unsigned(required(map, path, "value")?, &at(path, "value"))?;
    let two_path = at(path, "valueTwo");
    let two = get(map, "valueTwo")
        .map(|v| unsigned(v, &two_path))
        .transpose()?
        .unwrap_or(0);
    let op_path = at(path, "op");
    let op = match string(required(map, path, "op")?, &op_path)? {
        "SCMP_CMP_EQ" => ArgOp::Eq,
        "SCMP_CMP_NE" => ArgOp::Ne,
        "SCMP_CMP_LT" => ArgOp::Lt,
        "SCMP_CMP_LE" => ArgOp::Le,
        "SCMP_CMP_GT" => ArgOp::Gt,
        "SCMP_CMP_GE" => ArgOp::Ge,
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(Condition {
                index,
                op: ArgOp::MaskedEq(value),
                value: two,
                path: path.to_string(),
            })
        }
        name => {
            return Err(ProfileError::UnknownOp {
                at: JsonLocation::new(op_path),
                name: name.to_string(),
            })
        }
    };
    if two != 0 {
        return Err(ProfileError::ValueTwoUnused {
            at: JsonLocation::new(two_path),
        });
    }
    Ok(Condition {
        index,
        op,
        value,
        path: path.to_string(),
    })
}

/// The rules of `syscalls[i]`: one, or one per group of names whose conditions need the
/// same widths.
fn syscall_rule(value: &Value, path: &str) -> Result<Vec<SyscallRule>, ProfileError> {
    let map = object(
        value,
        path,
        &[
            "names", "name", "action", "errnoRet", "args", "includes", "excludes",
        ],
    )?;
    let names: Vec<(&str, String)> = match (get(map, "names"), get(map, "name")) {
        (Some(_), Some(_)) => {
            return Err(ProfileError::NameAndNames {
                at: JsonLocation::new(path.to_string()),
            })
        }
        (Some(names), None) => {
            let names_path = at(path, "names");
            let names = strings(names, &names_path)?;
            if names.is_empty() {
                return Err(ProfileError::EmptyNames {
                    at: JsonLocation::new(names_path),
                });
            }
            names
        }
        (None, Some(name)) => {
            let name_path = at(path, "name");
            vec![(string(name, &name_path)?, name_path)]
        }
        (None, None) => {
            return Err(ProfileError::MissingKey {
                at: JsonLocation::new(at(path, "names")),
            })
        }
    };
    if syscalls::ARCH_SUPPORTED {
        if let Some((name, name_path)) = names
            .iter()
            .find(|(n, _)| syscalls::number(n).is_none() && !syscalls::exists_elsewhere(n))
        {
            return Err(ProfileError::UnknownSyscall {
                at: JsonLocation::new(name_path.clone()),
                name: (*name).to_string(),
            });
        }
    }
    let action = action(map, path, "action", "errnoRet")?;
    let mut conditions = Vec::new();
    if let Some(args) = get(map, "args") {
        let args_path = at(path, "args");
        let array = args
            .as_array()
            .ok_or_else(|| wrong(&args_path, "an array"))?;
        for (i, arg) in array.iter().enumerate() {
            conditions.push(condition(arg, &index(&args_path, i))?);
        }
    }

    let mut requires = Vec::new();
    let mut only_on = Vec::new();
    let mut min_kernel = None;
    if let Some(includes) = get(map, "includes") {
        let includes_path = at(path, "includes");
        let inc = object(includes, &includes_path, &["caps", "arches", "minKernel"])?;
        requires = capabilities(inc, &includes_path)?;
        only_on = arches(inc, &includes_path)?;
        min_kernel = min_kernel_of(inc, &includes_path)?;
    }
    let mut unless = Vec::new();
    let mut except_on = Vec::new();
    let mut unless_kernel = None;
    if let Some(excludes) = get(map, "excludes") {
        let excludes_path = at(path, "excludes");
        let exc = object(excludes, &excludes_path, &["caps", "arches", "minKernel"])?;
        unless = capabilities(exc, &excludes_path)?;
        except_on = arches(exc, &excludes_path)?;
        unless_kernel = min_kernel_of(exc, &excludes_path)?;
    }

    // Group the names by the widths their conditions need, keeping the names' order.
    let mut groups: Vec<(Vec<ArgWidth>, Vec<&str>)> = Vec::new();
    for (name, _) in &names {
        let widths: Vec<ArgWidth> = conditions
            .iter()
            .map(|c| arg_width(name, c.index))
            .collect();
        match groups.iter_mut().find(|(w, _)| *w == widths) {
            Some((_, group)) => group.push(name),
            None => groups.push((widths, vec![name])),
        }
    }
    groups
        .into_iter()
        .map(|(widths, group)| {
            let mut rule = SyscallRule::new(group, action);
            for (c, width) in conditions.iter().zip(widths) {
                let condition =
                    ArgCondition::new(c.index, c.op, c.value, width).map_err(|source| {
                        ProfileError::InvalidCondition {
                            at: JsonLocation::new(c.path.clone()),
                            source,
                        }
                    })?;
                rule = rule.with_arg(condition);
            }
            rule = rule
                .requires_caps(requires.iter().copied())
                .unless_caps(unless.iter().copied())
                .only_on(only_on.iter().copied())
                .except_on(except_on.iter().copied());
            if let Some(min) = min_kernel {
                rule = rule.min_kernel(min);
            }
            if let Some(max) = unless_kernel {
                rule = rule.unless_kernel(max);
            }
            Ok(rule)
        })
        .collect()
}

/// The `minKernel` of an `includes` or `excludes` object, if given.
fn min_kernel_of(
    map: &Map<String, Value>,
    parent: &str,
) -> Result<Option<KernelVersion>, ProfileError> {
    let Some(min) = get(map, "minKernel") else {
        return Ok(None);
    };
    let path = at(parent, "minKernel");
    let text = string(min, &path)?;
    kernel_version(text)
        .map(Some)
        .ok_or_else(|| ProfileError::InvalidKernelVersion {
            at: JsonLocation::new(path),
            text: text.to_string(),
        })
}

/// A `minKernel`: `major.minor`, nothing else.
fn kernel_version(text: &str) -> Option<KernelVersion> {
    let (major, minor) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some(KernelVersion::new(major.parse().ok()?, minor.parse().ok()?))
}

fn capabilities(
    map: &Map<String, Value>,
    parent: &str,
) -> Result<Vec<caps::Capability>, ProfileError> {
    let Some(caps) = get(map, "caps") else {
        return Ok(Vec::new());
    };
    strings(caps, &at(parent, "caps"))?
        .into_iter()
        .map(|(name, path)| {
            name.parse::<caps::Capability>()
                .map_err(|_| ProfileError::UnknownCapability {
                    at: JsonLocation::new(path),
                    name: name.to_string(),
                })
        })
        .collect()
}

fn arches(map: &Map<String, Value>, parent: &str) -> Result<Vec<Arch>, ProfileError> {
    let Some(arches) = get(map, "arches") else {
        return Ok(Vec::new());
    };
    strings(arches, &at(parent, "arches"))?
        .into_iter()
        .map(|(name, path)| {
            Arch::from_docker_name(name).ok_or_else(|| ProfileError::UnknownArch {
                at: JsonLocation::new(path),
                name: name.to_string(),
            })
        })
        .collect()
}

mod locate;

#[cfg(test)]
mod tests;
