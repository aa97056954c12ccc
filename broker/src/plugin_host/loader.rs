//! Loading one plugin library (`*.so`) through abi_stable, and the logging
//! callback plugins write to.
//!
//! Rules learned the hard way (see the design notes, crates.md section 1):
//! - each file is loaded with `lib_header_from_path(..)?.init_root_module()`;
//!   `RootModule::load_from*` caches one module per type for the whole process
//!   and would silently return the first plugin for every later file;
//! - a library is never unloaded, and loading the same path twice returns the
//!   already-loaded code. So each file is copied to a fresh private path
//!   before it is loaded (then the copy is deleted: the mapping stays), and
//!   an unchanged file (same size and modification time) is not loaded again;
//! - abi_stable's error for an incompatible library runs to 20-45 KB: only
//!   its first line and its `Error:` lines are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::RStr;
use moth_plugin_api::module::ROOT_VERSION_STRINGS;
use moth_plugin_api::{API_VERSION, LogLevel, PluginMetadata, PluginModRef};
use tracing::{debug, error, info, trace, warn};

use crate::lock::Locked;

/// Why a library could not be loaded. One line each.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: not a moth plugin: {reason}")]
    NotAPlugin { path: PathBuf, reason: String },
    #[error("{path}: built against plugin-api {found}, this broker expects {expected}")]
    IncompatibleVersion { path: PathBuf, found: String, expected: String },
    #[error("{path}: built against an incompatible plugin-api: {summary}")]
    Incompatible { path: PathBuf, summary: String },
}

/// A loaded library: its root module and what it says about itself.
#[derive(Clone, Copy)]
pub struct LoadedLibrary {
    pub module: PluginModRef,
    pub metadata: PluginMetadata,
}

/// Libraries loaded so far, by path, with the file's size and modification
/// time when it was loaded: a file that has not changed is not loaded again.
type Cache = HashMap<PathBuf, (u64, Option<SystemTime>, LoadedLibrary)>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads the plugin library at `path` (or returns the one loaded earlier
/// from the same, unchanged file) and checks its interface version.
pub fn load(path: &Path) -> Result<LoadedLibrary, LoadError> {
    let io = |e: std::io::Error| LoadError::Io { path: path.to_path_buf(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(io)?;
    let stamp = (meta.len(), meta.modified().ok());
    let mut cache = cache().locked();
    if let Some((len, modified, lib)) = cache.get(path)
        && (*len, *modified) == stamp
    {
        return Ok(*lib);
    }
    let lib = load_fresh(path)?;
    cache.insert(path.to_path_buf(), (stamp.0, stamp.1, lib));
    Ok(lib)
}

fn load_fresh(path: &Path) -> Result<LoadedLibrary, LoadError> {
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    let io = |e: std::io::Error| LoadError::Io { path: path.to_path_buf(), reason: e.to_string() };
    let dir = std::env::temp_dir().join(format!("moth-plugins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin.so".into());
    let private = dir.join(format!("{}-{file}", GENERATION.fetch_add(1, Ordering::Relaxed)));
    std::fs::copy(path, &private).map_err(io)?;
    let loaded = lib_header_from_path(&private).and_then(|h| h.init_root_module::<PluginModRef>());
    // The mapping outlives the file; nothing is left behind in /tmp.
    let _ = std::fs::remove_file(&private);
    let _ = std::fs::remove_dir(&dir);
    let module = loaded.map_err(|e| describe(path, &private, e))?;
    let metadata = (module.metadata())();
    if metadata.api_version.major != API_VERSION.major {
        return Err(LoadError::IncompatibleVersion {
            path: path.to_path_buf(),
            found: metadata.api_version.to_string(),
            expected: format!("{}.x", API_VERSION.major),
        });
    }
    debug!(path = %path.display(), plugin = metadata.name.as_str(), "plugin library loaded");
    Ok(LoadedLibrary { module, metadata })
}

/// Turns abi_stable's error into one short line.
fn describe(path: &Path, private: &Path, e: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match e {
        LibraryError::OpenError { err, .. } => {
            // dlopen's message names the private copy; name the real file.
            let reason = first_line(&err.to_string()).replace(&private.display().to_string(), "the file");
            LoadError::NotAPlugin { path, reason }
        }
        LibraryError::GetSymbolError { .. } => {
            LoadError::NotAPlugin { path, reason: "it exports no abi_stable root module".into() }
        }
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => LoadError::IncompatibleVersion {
            path,
            found: actual_version.to_string(),
            expected: format!("{} (any 1.x)", ROOT_VERSION_STRINGS.version),
        },
        LibraryError::InvalidAbiHeader(h) => {
            LoadError::NotAPlugin { path, reason: format!("built with an incompatible abi_stable (ABI {h:?})") }
        }
        other => LoadError::Incompatible { path, summary: summarize(&other.to_string()) },
    }
}

/// The `Error:` lines of abi_stable's (huge: 20-100 KB) layout report, each
/// with the expected and found values that follow it, without repeats, at
/// most 400 characters: `incompatible type size (expected 184, found 192); ...`.
pub(crate) fn summarize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The value under `label`, looking no further than this error's own lines.
    let value_after = |from: usize, label: &str| -> Option<&str> {
        let own = lines[from..].iter().take(6).take_while(|l| !l.starts_with("Error:")).count();
        let at = lines[from..from + own].iter().position(|l| *l == label)? + from;
        lines[from..from + own].get(at + 1 - from).copied().filter(|v| !v.is_empty() && !v.ends_with(':'))
    };
    let mut parts: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(what) = line.strip_prefix("Error:") else { continue };
        let part = match (value_after(i + 1, "Expected:"), value_after(i + 1, "Found:")) {
            (Some(e), Some(f)) => format!("{what} (expected {e}, found {f})"),
            _ => what.to_string(),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    let mut s = if parts.is_empty() {
        lines.iter().find(|l| !l.is_empty()).map(|l| l.to_string()).unwrap_or_default()
    } else {
        parts.join("; ")
    };
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" ...");
    }
    s
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string()
}

/// The logging callback handed to every plugin: its lines go to moth's log
/// under the plugin's name. Never unwinds (a panic here would abort).
pub(crate) extern "C" fn host_log(level: LogLevel, plugin: RStr<'_>, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| {
        let (plugin, message) = (plugin.as_str(), message.as_str());
        match level {
            LogLevel::ERROR => error!(plugin, "{message}"),
            LogLevel::WARN => warn!(plugin, "{message}"),
            LogLevel::DEBUG => debug!(plugin, "{message}"),
            LogLevel::TRACE => trace!(plugin, "{message}"),
            _ => info!(plugin, "{message}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_first_and_error_lines() {
        let text = "\nCompared <this>:\n  lots of layout\nError:incompatible type size\nExpected:\n    184\nFound:\n    192\n\n\
                    Error:too many fields\nExpected:\nError:too many fields\nExpected:\n    8\nFound:\n    9\n\
                    Error:incompatible type size\nExpected:\n    184\nFound:\n    192\n";
        assert_eq!(
            summarize(text),
            "incompatible type size (expected 184, found 192); too many fields; too many fields (expected 8, found 9)"
        );
        assert!(summarize(&"x".repeat(5000)).len() < 420);
    }

    #[test]
    fn a_file_that_is_not_a_library_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("moth-loader-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("libbroken.so");
        std::fs::write(&f, b"not an ELF file").unwrap();
        let e = load(&f).err().expect("refused").to_string();
        assert!(e.starts_with(&f.display().to_string()), "{e}");
        assert!(e.len() < 400, "{e}");
        assert!(e.contains("not a moth plugin"), "{e}");
        let e = load(&dir.join("missing.so")).err().expect("refused").to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
