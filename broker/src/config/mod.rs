//! The broker configuration: hbmqtt's YAML schema, read the way hbmqtt users
//! write it.
//!
//! A file is read in two steps. First the YAML is deserialised into the raw
//! schema types ([`ConfigFile`] and friends), which mirror the file one key at
//! a time. Then [`Config::from_raw`] resolves and validates them into the
//! [`Config`] the broker runs on: listener templates applied, addresses
//! resolved, both spellings of a key merged, defaults filled in. A program that
//! embeds moth can skip YAML and build a [`ConfigFile`] in code (or deserialise
//! it from its own configuration format with serde).
//!
//! # Reference
//!
//! ```yaml
//! listeners:                     # listener name -> settings; started in file order
//!   default:                     # template: its values are copied into every other listener
//!     type: tcp                  # tcp (the default) or ws
//!     max_connections: 0         # also max-connections; 0 = no limit
//!   my-tcp:
//!     bind: 127.0.0.1:1883       # host:port, '[v6]:port' (quoted), :port, port, hostname:port
//!   my-tls:
//!     bind: 0.0.0.0:8883
//!     ssl: on                    # on/off, yes/no, true/false; quoted strings too, any case
//!     certfile: server.pem       # required when ssl is on
//!     keyfile: server.key        # required when ssl is on
//!     cafile: ca.pem             # CAs for client certificates; optional, as are capath and cadata
//!     require_certificate: false # also require-certificate; true = mutual TLS (needs a CA)
//!     use_identity_as_username: false  # also use-identity-as-username; user name = client cert CN
//!   my-ws:
//!     bind: 0.0.0.0:8080
//!     type: ws                   # with ssl: on, wss
//!     path: /mqtt                # optional: the only URL path accepted (default: any)
//! timeout-disconnect-delay: 2    # also timeout_disconnect_delay; seconds (int or float), default 2
//! sys_interval: 20               # also sys-interval; seconds between $SYS updates, default 0 = off
//! max-qos: 2                     # also max_qos; highest QoS granted to a SUBSCRIBE, default 2
//! max-packet-size: 1048576       # moth only: largest accepted packet in bytes, default 1 MiB
//! max-inflight: 32               # moth only: unacknowledged QoS 1/2 deliveries per session
//! max-queued-messages: 1000      # moth only: messages queued per session
//! session-owner: user            # moth only: user (default) or client-id; who may resume a session
//! auth:
//!   plugins: [auth_anonymous, auth_file]  # absent = both (auth_file without a file refuses every user name)
//!   allow-anonymous: true        # also allow_anonymous; default true
//!   password-file: /etc/moth/passwd       # also password_file
//! topic-check:                   # also topic_check
//!   enabled: false               # default false: topic plugins are never asked
//!   plugins: [topic_acl]         # or topic_taboo
//!   acl:                         # user name -> topic filters that user may subscribe to and publish on
//!     alice: ['repositories/+/master', 'calendar/#']
//!     anonymous: []              # `anonymous` = clients without a user name
//!   subscribe-acl: {}            # also subscribe_acl; replaces `acl` for SUBSCRIBE
//!   publish-acl: {}              # also publish_acl; replaces `acl` for PUBLISH
//!   receive-acl: {}              # also receive_acl; absent = deliveries unchecked
//! metrics:                       # moth only: Prometheus endpoint; absent = off
//!   bind: 127.0.0.1:9100         # required; same forms as a listener's `bind`
//!   path: /metrics               # default /metrics
//!   enabled: true                # default true; false keeps the section but serves nothing
//! log-level: info                # moth only: RUST_LOG-style filter (`info`, `moth=debug`); SIGHUP re-reads it
//! log-format: text               # moth only: `text` (default) or `json` (one JSON object per line)
//!   default: deny                # moth only: answer when every topic plugin says `ignore` (deny|allow)
//! plugins-dir: /usr/lib/moth/plugins  # moth only: a directory (or a list) of plugin libraries (*.so)
//! plugins-config:                # moth only: plugin name -> its options (any YAML)
//!   allowlist: {users: {alice: {password: secret}}}
//! plugin-timeout: 5              # moth only: seconds an authentication plugin may take; then it counts as deny
//! plugin-concurrency: 16         # moth only: calls of one plugin running at once; auth_file: at most one per CPU
//! plugins:                       # amqtt's map of plugin class paths to options (see `amqtt.rs`);
//!   amqtt.plugins.authentication.FileAuthPlugin: {password_file: passwd}  # a list of names: ignored (hbmqtt)
//! ```
//!
//! `auth` also takes `default: deny` (moth only): the answer when every
//! authentication plugin says `ignore`; with `deny`, a client without a user
//! name is still let in when `allow-anonymous` is true.
//!
//! # Rules
//!
//! - **YAML 1.1 booleans.** `on`/`off`, `yes`/`no` and `true`/`false` (any of
//!   the usual capitalisations) are booleans, as PyYAML reads them. `ssl` also
//!   accepts those words as quoted strings, in any case. (serde-saphyr also
//!   reads a plain `y`/`n` as a boolean where PyYAML sees a string.)
//! - **Listeners.** The `default` entry is a template: each of its keys is
//!   copied into every other listener that does not set that key itself. Only
//!   listeners with a `bind` are started, `default` included, as in hbmqtt.
//!   Two started listeners may not use the same address (port 0 excepted), so
//!   when `default` has a `bind`, every other listener needs its own.
//! - **No listeners.** hbmqtt refuses a configuration without `listeners`.
//!   moth accepts it, because an embedding program may want a broker that is
//!   only reached in-process, but records a warning in [`Config::warnings`]
//!   that the `moth` binary should print. An empty file is such a
//!   configuration: every other value takes its default. It is *not* merged
//!   with the built-in default file ([`Config::default`]).
//! - **Two spellings.** hbmqtt's documentation and its code disagree on some
//!   keys (`max-connections` is documented, `max_connections` is read), and
//!   amqtt changed others. Both spellings are accepted for every key that has
//!   two; giving both with different values is an error, with the same value a
//!   warning.
//! - **Repeated keys** in one mapping keep the last value, as PyYAML does
//!   (hbmqtt's documented example repeats `capath`), with a warning. A listener
//!   name given twice is an error, though.
//! - **IPv6** addresses must be quoted in YAML: `bind: '[::1]:1883'`.
//! - **Unknown keys** are ignored, as hbmqtt ignores them, and each one is
//!   reported in [`Config::warnings`] (hbmqtt's stock CLI file has a top-level
//!   `plugins:` list that nothing reads). Values of the wrong type are errors.
//! - **Paths** (`certfile`, `password-file`, ...) are kept as written; relative
//!   paths are relative to the working directory, as in hbmqtt.
//! - **TLS material** (`certfile`, `keyfile`, CAs) is only named here; the
//!   files are read and checked by `Broker::new` (so `moth --check` sees them).
//!
//! # Error positions
//!
//! Every error and warning about a file is one line that starts with
//! `file:line:column:` and the dotted key path, e.g.
//!
//! ```text
//! broker.yaml:7:11: listeners.my-tcp.bind: invalid address `127.0.0.1:99999`: port out of range
//! ```
//!
//! Errors about a value point at the value, errors about a key (unknown keys,
//! conflicting spellings, unsupported features) at the key. A value inherited
//! from the `default` listener is reported where it is written, with a note.

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

pub use diagnostics::{ConfigError, Diagnostic};
pub use position::Position;
pub use schema::{AuthFile, ConfigFile, ListenerFile, MetricsFile, OneOrMany, TopicCheckFile};
pub use types::{
    AuthConfig, ChainDefault, Config, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_QUEUED_MESSAGES,
    DEFAULT_PLUGIN_CONCURRENCY, DEFAULT_PLUGIN_TIMEOUT, DEFAULT_TIMEOUT_DISCONNECT_DELAY, Limits, ListenerConfig,
    ListenerKind, LogFormat, MAX_PACKET_SIZE_CAP, MetricsConfig, PluginsConfig, SessionOwner, TlsConfig,
    TopicCheckConfig,
};

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
