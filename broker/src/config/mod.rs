//! The broker configuration: hbmqtt's YAML schema, read the way hbmqtt users
//! write it. Every key, its spellings and defaults, and the rules are in
//! `broker/CONFIGURATION.md`.
//!
//! A file is read in two steps. First the YAML is deserialised into the raw
//! schema types ([`ConfigFile`] and friends), which mirror the file one key at
//! a time. Then [`Config::from_raw`] resolves and validates them into the
//! [`Config`] the broker runs on: listener templates applied, addresses
//! resolved, both spellings of a key merged, defaults filled in. A program that
//! embeds moth can skip YAML and build a [`ConfigFile`] in code (or deserialise
//! it from its own configuration format with serde).
//!
//! Where things are:
//! - `types.rs`: the resolved [`Config`] and its parts; `schema.rs`: the raw
//!   [`ConfigFile`] and its parts, as serde reads them.
//! - `keys.rs`: the one table of every key, its spellings and the type of its
//!   value; unknown-key warnings and type-error texts come from it.
//! - `yaml.rs`: the two reads of a file; `position.rs`: where each key and
//!   value is; `diagnostics.rs`: the one-line messages and [`ConfigError`].
//! - `resolve.rs`, `listeners.rs`, `bind.rs`: from raw schema to [`Config`].
//! - `hbmqtt.rs`: what moth does because hbmqtt does it (two spellings, the
//!   `default` listener, YAML 1.1 booleans, the implicit plugin chains);
//!   `amqtt.rs`: amqtt's `plugins:` map.

use std::io::Read;
use std::path::Path;

mod amqtt;
mod bind;
mod diagnostics;
mod hbmqtt;
mod keys;
mod listeners;
mod position;
mod resolve;
mod schema;
mod types;
mod yaml;

#[cfg(test)]
mod tests;

pub(crate) use diagnostics::file_path;
pub use diagnostics::{ConfigError, Diagnostic};
pub use position::Position;
pub use schema::{
    AuthFile, ConfigFile, ListenerFile, ListenerType, MetricsFile, OneOrMany, PersistenceFile, SecondsOrText,
    TopicCheckFile,
};
pub use types::{
    AuthConfig, ChainDefault, Config, Limits, ListenerConfig, ListenerKind, LogFormat, MetricsConfig,
    PersistenceConfig, PluginsConfig, SessionOwner, SyncMode, TlsConfig, TopicCheckConfig,
};
#[cfg(test)]
pub(crate) use types::{DEFAULT_PLUGIN_CONCURRENCY, DEFAULT_PLUGIN_TIMEOUT};

use diagnostics::{Ctx, io_reason};
use resolve::resolve;
use yaml::parse_yaml;

/// A configuration file larger than this is refused (4 MiB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The built-in configuration ([`Config::default`]): hbmqtt's CLI default.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

impl Default for Config {
    /// The built-in configuration, [`DEFAULT_YAML`] (`default.yaml`):
    /// one tcp listener `default` on `0.0.0.0:1883`, `sys_interval: 20`,
    /// `timeout-disconnect-delay: 2`, anonymous clients allowed. It mirrors
    /// hbmqtt's CLI default.
    fn default() -> Self {
        // The embedded file is not user input; a unit test keeps it valid.
        parse_yaml(DEFAULT_YAML, "<default config>").expect("the embedded default.yaml is a valid configuration")
    }
}

/// Reading a configuration resolves host names in `bind` (through the
/// system resolver, which blocks); call these outside an async task, or in
/// `spawn_blocking`, when a `bind` may hold a name.
impl Config {
    /// Reads a configuration from YAML text. Errors and warnings name the
    /// origin `<string>`.
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
        parse_yaml(text, "<string>")
    }

    /// Reads a configuration file. Errors and warnings name the file as given.
    /// Files over [`MAX_CONFIG_FILE_BYTES`] are refused.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_file(path)?;
        parse_yaml(&text, &path.display().to_string())
    }

    /// Resolves and validates raw schema values built in code (or read with
    /// another serde format). Errors carry the key path but no position, and
    /// unknown keys cannot be detected on this path.
    pub fn from_raw(raw: ConfigFile) -> Result<Config, ConfigError> {
        let mut ctx = Ctx::new("", None);
        resolve(raw, &mut ctx)
    }
}

fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let read_error =
        |source: std::io::Error| ConfigError::Read { path: path.to_owned(), reason: io_reason(&source), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1).read_to_string(&mut text).map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is larger than {} MiB", MAX_CONFIG_FILE_BYTES / (1024 * 1024)),
        )));
    }
    Ok(text)
}
