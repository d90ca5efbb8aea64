//! Errors of a policy file, each at a place in the text: the file, the line and column,
//! the key path (`container[1].capabilities.add[0]`), and a rustc-style rendering.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::capabilities::CapabilityError;
use crate::error::ConfigError;
use crate::seccomp::ProfileError;
use crate::size::SizeError;

/// A policy the crate refuses, and where.
///
/// [`line`](PolicyError::line) and [`column`](PolicyError::column) are 1-based
/// (columns count characters); they are 0 only for [`PolicyErrorKind::Read`], which is
/// about the file, not a place in it.
/// [`PolicyError::render`] prints it the way rustc prints a diagnostic:
///
/// ```text
/// error: CAP_SYS_ADMIN cannot be added: only SYS_PTRACE can be added to a container's capabilities
///   --> app.toml:12:9
///    |
/// 12 | add = ["SYS_ADMIN"]
///    |        ^^^^^^^^^^^ container[1].capabilities.add[0]
/// ```
#[derive(Debug)]
pub struct PolicyError(Box<Located>);

#[derive(Debug)]
struct Located {
    file: PathBuf,
    line: usize,
    column: usize,
    key_path: String,
    kind: PolicyErrorKind,
    /// The text of the line, and the characters of it to underline.
    snippet: Option<(String, Range<usize>)>,
}

/// What is wrong with a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The file could not be read.
    #[error("cannot read the policy file")]
    Read(#[source] std::io::Error),
    /// The text is not TOML.
    #[error("{0}")]
    Syntax(String),
    /// A key the format does not have.
    #[error("unknown key `{key}`{}; expected one of: {}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), expected.join(", "))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys accepted at this place.
        expected: Vec<&'static str>,
        /// A known key the unknown one is probably a misspelling of.
        suggestion: Option<&'static str>,
    },
    /// A key that must be present is missing.
    #[error("missing key `{key}`: {why}")]
    Missing {
        /// The key.
        key: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// A value of the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the key takes.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// `privileged`, anywhere.
    #[error(
        "there is no privileged mode: a container holds at most Fargate's 14 default \
         capabilities plus SYS_PTRACE, under seccomp, in its own user namespace; remove \
         `privileged`"
    )]
    Privileged,
    /// A capability in `capabilities.add` other than `SYS_PTRACE`.
    #[error(
        "{name} cannot be added: only SYS_PTRACE can be added to a container's capabilities{}",
        if *default { " (it is one of the 14 defaults, held unless dropped)" } else { "" }
    )]
    CapabilityNotAddable {
        /// The canonical name (`CAP_SYS_ADMIN`).
        name: String,
        /// Whether it is one of the defaults a container holds anyway.
        default: bool,
    },
    /// A capability name that is not a Linux capability.
    #[error(transparent)]
    Capability(CapabilityError),
    /// A key Fargate refuses (and so does the crate), or one the crate has no
    /// equivalent for.
    #[error("`{key}` is not accepted: {reason}")]
    Rejected {
        /// The key.
        key: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A value outside its range or not of the expected form.
    #[error("{0}")]
    Invalid(String),
    /// A task size outside Fargate's table or the free-form ranges.
    #[error(transparent)]
    Size(SizeError),
    /// The seccomp profile file cannot be read or loaded.
    #[error("seccomp profile {}: {}", path.display(), chain(source))]
    Seccomp {
        /// The profile's path, resolved against the policy's directory.
        path: PathBuf,
        /// Why.
        source: ProfileError,
    },
    /// A secret's value cannot be read from where `value_from` says.
    #[error("{0}")]
    Secret(String),
    /// [`TaskSandboxBuilder::build`](crate::TaskSandboxBuilder::build) refused the
    /// task the policy describes; the error is placed at the key that caused it.
    #[error("{}", chain(.0))]
    Config(ConfigError),
}

/// An error and its causes, joined by `": "`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

impl PolicyError {
    /// An error at the byte range `span` of `source`.
    pub(crate) fn at(
        file: &Path,
        source: &str,
        span: Range<usize>,
        key_path: impl Into<String>,
        kind: PolicyErrorKind,
    ) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line_text = source[line_start..line_end].trim_end_matches('\r');
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        PolicyError(Box::new(Located {
            file: file.to_path_buf(),
            line,
            column,
            key_path: key_path.into(),
            kind,
            snippet: Some((line_text.to_string(), column - 1..column - 1 + width)),
        }))
    }

    /// An error about the file as a whole (it cannot be read).
    pub(crate) fn read(file: &Path, err: std::io::Error) -> Self {
        PolicyError(Box::new(Located {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key_path: String::new(),
            kind: PolicyErrorKind::Read(err),
            snippet: None,
        }))
    }

    /// The policy file, as it was named.
    pub fn file(&self) -> &Path {
        &self.0.file
    }

    /// The line (1-based; 0 when the file could not be read).
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// The column, in characters (1-based; 0 when the file could not be read).
    pub fn column(&self) -> usize {
        self.0.column
    }

    /// The key the error is about: `task.cpu`, `container[1].capabilities.add[0]`
    /// (container indices count from 0, in the order of the file); empty for an error
    /// about the whole file.
    pub fn key_path(&self) -> &str {
        &self.0.key_path
    }

    /// What is wrong.
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.0.kind
    }

    /// The message, without the place.
    pub fn message(&self) -> String {
        chain(&self.0.kind)
    }

    /// The error as rustc prints a diagnostic: the message, the place, the line of the
    /// policy with the offending key or value underlined and labelled with its key
    /// path.
    pub fn render(&self) -> String {
        let e = &self.0;
        let mut out = format!("error: {}\n", self.message());
        let Some((text, cols)) = &e.snippet else {
            out.push_str(&format!(" --> {}\n", e.file.display()));
            return out;
        };
        let number = e.line.to_string();
        let pad = " ".repeat(number.len());
        out.push_str(&format!(
            "{pad}--> {}:{}:{}\n",
            e.file.display(),
            e.line,
            e.column
        ));
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{number} | {text}\n"));
        // Tabs keep their width under the caret line.
        let lead: String = text
            .chars()
            .take(cols.start)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let carets = "^".repeat(cols.len());
        if e.key_path.is_empty() {
            out.push_str(&format!("{pad} | {lead}{carets}\n"));
        } else {
            out.push_str(&format!("{pad} | {lead}{carets} {}\n", e.key_path));
        }
        out
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(f, "{}", e.file.display())?;
        if e.line > 0 {
            write!(f, ":{}:{}", e.line, e.column)?;
        }
        if !e.key_path.is_empty() {
            write!(f, ": {}", e.key_path)?;
        }
        write!(f, ": {}", e.kind)
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
