//! What is reported about a configuration, and how: the one-line
//! [`Diagnostic`], the [`ConfigError`] a reader returns, and [`Ctx`], which
//! resolution carries to place each finding at its key path and position.
//!
//! Every message is one line (`origin:line:column: key.path: message`), so
//! user text that goes into one passes through [`one_line`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::position::{Index, Position, Seg, display_path};

/// One finding about a configuration: where, which key, what.
///
/// Displays as one line: `origin:line:column: key.path: message`; the parts
/// that are unknown are left out (no origin for [`Config::from_raw`](super::Config::from_raw), no
/// position when it cannot be known, no key for YAML syntax errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name, `<string>` for [`Config::from_yaml_str`](super::Config::from_yaml_str), or empty.
    pub origin: String,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// Dotted key path, e.g. `listeners.my-tcp.bind`; empty when unknown.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.origin.is_empty(), self.position) {
            (false, Some(p)) => write!(f, "{}:{}:{}: ", self.origin, p.line, p.column)?,
            (false, None) => write!(f, "{}: ", self.origin)?,
            (true, Some(p)) => write!(f, "{}:{}: ", p.line, p.column)?,
            (true, None) => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a configuration was refused. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8, too large).
    #[error("cannot read config file {}: {reason}", file_path(path))]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The cause in words, e.g. `No such file or directory`.
        reason: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML, or exceeds the parser's safety budget.
    #[error("{0}")]
    Syntax(Diagnostic),
    /// The YAML is fine but a value is wrong: wrong type, out of range, bad
    /// address, conflicting spellings, missing certificate.
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl ConfigError {
    /// The finding, for every error except [`ConfigError::Read`].
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax(d) | ConfigError::Invalid(d) => Some(d),
        }
    }

    /// Where in the file the problem is, when known.
    pub fn position(&self) -> Option<Position> {
        self.diagnostic().and_then(|d| d.position)
    }
}

/// The text of an I/O error without Rust's ` (os error N)` suffix.
pub(super) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// Makes user text safe for a one-line message: control characters escaped,
/// long text shortened.
pub(super) fn one_line(text: &str) -> String {
    const MAX_CHARS: usize = 100;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a finding is reported: a key path and its position in the file.
#[derive(Debug, Clone)]
pub(super) struct Spot {
    pub(super) key: String,
    pub(super) pos: Option<Position>,
    /// Appended to the message, e.g. " (inherited from `listeners.default`)".
    pub(super) note: String,
}

/// Which end of an entry a finding points at.
#[derive(Clone, Copy)]
pub(super) enum At {
    Key,
    Value,
}

/// The context of one read: where the text came from, its position index
/// (none for [`Config::from_raw`](super::Config::from_raw)), and the warnings so far.
/// Merging two spellings of a key, [`Ctx::pick`], is hbmqtt's rule and lives in `hbmqtt.rs`.
pub(super) struct Ctx<'a> {
    origin: &'a str,
    index: Option<&'a Index>,
    pub(super) warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(origin: &'a str, index: Option<&'a Index>) -> Self {
        Ctx { origin, index, warnings: Vec::new() }
    }

    /// Where the key or the value at `path` is, when the file is known.
    pub(super) fn pos(&self, path: &[Seg], at: At) -> Option<Position> {
        let index = self.index?;
        match at {
            At::Key => index.key_pos(path),
            At::Value => index.value_pos(path),
        }
    }

    /// How the value at `path` is written in the file (e.g. "`-1`"), else
    /// `value` in backticks.
    pub(super) fn found(&self, path: &[Seg], value: impl fmt::Display) -> String {
        self.index.and_then(|index| index.entry(path)).map_or_else(|| format!("`{value}`"), |entry| entry.found.clone())
    }

    /// The spot of the key or the value at `path`.
    pub(super) fn spot(&self, path: &[Seg], at: At) -> Spot {
        Spot { key: display_path(path), pos: self.pos(path, at), note: String::new() }
    }

    fn diag(&self, spot: &Spot, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            origin: self.origin.to_owned(),
            position: spot.pos,
            key: spot.key.clone(),
            message: message.into() + &spot.note,
        }
    }

    /// An error at `spot`.
    pub(super) fn invalid(&self, spot: &Spot, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(self.diag(spot, message))
    }

    /// Records a warning at `spot`, as the one line it is shown as.
    pub(super) fn warn(&mut self, spot: &Spot, message: impl Into<String>) {
        let line = self.diag(spot, message).to_string();
        self.warnings.push(line);
    }

    /// A duration given in seconds (integer or float) at `key`.
    pub(super) fn seconds(&self, key: &[Seg], value: f64) -> Result<Duration, ConfigError> {
        let spot = self.spot(key, At::Value);
        if !value.is_finite() || value < 0.0 {
            return Err(self.invalid(
                &spot,
                format!("expected a non-negative number of seconds, found {}", self.found(key, value)),
            ));
        }
        Duration::try_from_secs_f64(value.abs())
            .map_err(|_| self.invalid(&spot, format!("{} seconds is too long", self.found(key, value))))
    }
}

/// How a merged value is shown in a conflict message (`pick`).
pub(super) fn show_num<T: fmt::Display>(v: &T) -> String {
    v.to_string()
}

/// A path shown in a conflict message, on one line.
pub(super) fn show_path(p: &Path) -> String {
    one_line(&p.display().to_string())
}

/// A path in an error about its file: as written, and where it resolved
/// to when it is relative (against the working directory, the rule for
/// every path of the configuration): `passwd (/etc/moth/passwd)`.
pub(crate) fn file_path(p: &Path) -> String {
    match std::path::absolute(p) {
        Ok(abs) if !p.is_absolute() => format!("{} ({})", p.display(), abs.display()),
        _ => p.display().to_string(),
    }
}
