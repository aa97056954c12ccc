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

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::packet::QoS;
use diagnostics::{At, Ctx, Spot, io_reason, one_line, show_num, show_path};
use position::{Seg, child, display_path, path};
use yaml::parse_yaml;

mod amqtt;
mod diagnostics;
mod keys;
mod position;
mod schema;
mod types;
mod yaml;

pub use diagnostics::{ConfigError, Diagnostic};
pub use position::Position;
pub use schema::{AuthFile, ConfigFile, ListenerFile, MetricsFile, OneOrMany, TopicCheckFile};

pub use types::{
    AuthConfig, ChainDefault, Config, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_QUEUED_MESSAGES,
    DEFAULT_PLUGIN_CONCURRENCY, DEFAULT_PLUGIN_TIMEOUT, DEFAULT_TIMEOUT_DISCONNECT_DELAY, Limits, ListenerConfig,
    ListenerKind, LogFormat, MAX_PACKET_SIZE_CAP, MetricsConfig, PluginsConfig, SessionOwner, TlsConfig,
    TopicCheckConfig,
};

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

// ---------------------------------------------------------------------------
// Resolution and validation
// ---------------------------------------------------------------------------

fn show_section(_: &TopicCheckFile) -> String {
    "{...}".to_owned()
}

/// The chains of an amqtt `plugins:` map ([`amqtt`]). The `auth` and
/// `topic-check` sections beside it are an error: amqtt ignores them, and
/// ignoring a section that asks for a password file would leave the broker
/// more open than its author meant.
fn amqtt_chains(
    plugins: amqtt::AmqttPlugins,
    beside: &[(&str, bool)],
    ctx: &Ctx<'_>,
) -> Result<(AuthConfig, TopicCheckConfig), ConfigError> {
    if let Some((key, _)) = beside.iter().find(|(_, present)| *present) {
        let spot = ctx.spot(&path(&[key]), At::Key);
        return Err(ctx.invalid(
            &spot,
            format!(
                "not read next to amqtt's `plugins:` map (amqtt ignores it too): put these settings in the \
                 plugins' options (FileAuthPlugin: {{password_file: ...}}, TopicAccessControlListPlugin: \
                 {{subscribe_acl: ...}}), or remove `plugins:` and keep `{key}`"
            ),
        ));
    }
    let auth = AuthConfig {
        plugins: Some(plugins.auth),
        allow_anonymous: plugins.allow_anonymous,
        password_file: plugins.password_file,
        default: ChainDefault::Deny,
    };
    let topic_check = TopicCheckConfig {
        enabled: true,
        plugins: Some(plugins.topic),
        acl: BTreeMap::new(),
        subscribe_acl: plugins.subscribe_acl,
        publish_acl: plugins.publish_acl,
        receive_acl: plugins.receive_acl,
        default: ChainDefault::Deny,
    };
    Ok((auth, topic_check))
}

fn resolve(raw: ConfigFile, ctx: &mut Ctx<'_>) -> Result<Config, ConfigError> {
    let listeners = resolve_listeners(raw.listeners.unwrap_or_default(), ctx)?;
    if listeners.is_empty() {
        let spot = ctx.spot(&path(&["listeners"]), At::Key);
        ctx.warn(
            &spot,
            "no listener has a `bind`, so no network connections will be accepted \
             (fine for an embedded broker; hbmqtt requires `listeners`)",
        );
    }

    let timeout_disconnect_delay = match ctx.pick(
        &[],
        ("timeout-disconnect-delay", raw.timeout_disconnect_delay),
        ("timeout_disconnect_delay", raw.timeout_disconnect_delay_alt),
        show_num,
    )? {
        Some((v, key)) => ctx.seconds(&path(&[key]), v)?,
        None => DEFAULT_TIMEOUT_DISCONNECT_DELAY,
    };
    let amqtt = amqtt::read(raw.plugins.as_ref(), ctx)?;
    let mut sys_interval =
        match ctx.pick(&[], ("sys_interval", raw.sys_interval), ("sys-interval", raw.sys_interval_alt), show_num)? {
            Some((v, key)) => ctx.seconds(&path(&[key]), v)?,
            None => Duration::ZERO,
        };
    if let Some((seconds, at)) = amqtt.as_ref().and_then(|a| a.sys_interval.clone()) {
        sys_interval = ctx.seconds(&at, seconds)?;
    }
    let max_qos = match ctx.pick(&[], ("max-qos", raw.max_qos), ("max_qos", raw.max_qos_alt), show_num)? {
        Some((v, key)) => QoS::from_u8(v).ok_or_else(|| {
            ctx.invalid(
                &ctx.spot(&path(&[key]), At::Value),
                format!("expected 0, 1 or 2, found {}", ctx.found(&path(&[key]), v)),
            )
        })?,
        None => QoS::ExactlyOnce,
    };
    let (auth, topic_check) = match amqtt {
        Some(plugins) => {
            let beside = [
                ("auth", raw.auth.is_some()),
                ("topic-check", raw.topic_check.is_some()),
                ("topic_check", raw.topic_check_alt.is_some()),
            ];
            amqtt_chains(plugins, &beside, ctx)?
        }
        None => {
            let auth = resolve_auth(raw.auth.unwrap_or_default(), ctx)?;
            let topic_check = match ctx.pick(
                &[],
                ("topic-check", raw.topic_check),
                ("topic_check", raw.topic_check_alt),
                show_section,
            )? {
                Some((section, key)) => resolve_topic_check(section, key, ctx)?,
                None => resolve_topic_check(TopicCheckFile::default(), "topic-check", ctx)?,
            };
            (auth, topic_check)
        }
    };
    let limits = resolve_limits(raw.max_packet_size, raw.max_inflight, raw.max_queued_messages, ctx)?;
    let metrics = match raw.metrics {
        Some(section) => resolve_metrics(section, ctx)?,
        None => None,
    };
    if let Some(m) = &metrics
        && m.bind.port() != 0
        && let Some(l) = listeners.iter().find(|l| l.bind == m.bind)
    {
        return Err(ctx.invalid(
            &ctx.spot(&path(&["metrics", "bind"]), At::Value),
            format!("address `{}` is already used by listener `{}`", m.bind, one_line(&l.name)),
        ));
    }
    if let Some(level) = &raw.log_level
        && let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level)
    {
        let key = path(&["log-level"]);
        return Err(ctx.invalid(
            &ctx.spot(&key, At::Value),
            format!("invalid log filter {}: {}", ctx.found(&key, level), one_line(&e.to_string())),
        ));
    }
    let plugins =
        resolve_plugins(raw.plugins_dir, raw.plugins_config, raw.plugin_timeout, raw.plugin_concurrency, ctx)?;

    let config = Config {
        listeners,
        timeout_disconnect_delay,
        sys_interval,
        max_qos,
        auth,
        topic_check,
        limits,
        session_owner: raw.session_owner.unwrap_or_default(),
        metrics,
        log_level: raw.log_level,
        log_format: raw.log_format.unwrap_or_default(),
        plugins,
        warnings: std::mem::take(&mut ctx.warnings),
    };
    Ok(config)
}

/// A listener value and where it was written (`listeners.<name>.<key>`).
#[derive(Debug, Clone)]
struct Written<T> {
    value: T,
    path: Vec<Seg>,
}

/// One listener's settings with both spellings merged.
#[derive(Debug, Clone, Default)]
struct ListenerFields {
    bind: Option<Written<String>>,
    kind: Option<Written<ListenerKind>>,
    max_connections: Option<Written<usize>>,
    ssl: Option<Written<bool>>,
    cafile: Option<Written<PathBuf>>,
    capath: Option<Written<PathBuf>>,
    cadata: Option<Written<String>>,
    certfile: Option<Written<PathBuf>>,
    keyfile: Option<Written<PathBuf>>,
    path: Option<Written<String>>,
    require_certificate: Option<Written<bool>>,
    use_identity_as_username: Option<Written<bool>>,
}

impl ListenerFields {
    fn read(name: &str, file: ListenerFile, ctx: &mut Ctx<'_>) -> Result<Self, ConfigError> {
        let base = path(&["listeners", name]);
        fn at<T>(base: &[Seg], value: T, key: &str) -> Option<Written<T>> {
            Some(Written { value, path: child(base, key) })
        }
        let max_connections = ctx.pick(
            &base,
            ("max_connections", file.max_connections),
            ("max-connections", file.max_connections_alt),
            show_num,
        )?;
        let require_certificate = ctx.pick(
            &base,
            ("require_certificate", file.require_certificate),
            ("require-certificate", file.require_certificate_alt),
            show_num,
        )?;
        let use_identity_as_username = ctx.pick(
            &base,
            ("use_identity_as_username", file.use_identity_as_username),
            ("use-identity-as-username", file.use_identity_as_username_alt),
            show_num,
        )?;
        Ok(ListenerFields {
            bind: file.bind.and_then(|v| at(&base, v, "bind")),
            kind: file.kind.and_then(|v| at(&base, v, "type")),
            max_connections: max_connections.and_then(|(v, key)| at(&base, v, key)),
            ssl: file.ssl.and_then(|v| at(&base, v, "ssl")),
            cafile: file.cafile.and_then(|v| at(&base, v, "cafile")),
            capath: file.capath.and_then(|v| at(&base, v, "capath")),
            cadata: file.cadata.and_then(|v| at(&base, v, "cadata")),
            certfile: file.certfile.and_then(|v| at(&base, v, "certfile")),
            keyfile: file.keyfile.and_then(|v| at(&base, v, "keyfile")),
            path: file.path.and_then(|v| at(&base, v, "path")),
            require_certificate: require_certificate.and_then(|(v, key)| at(&base, v, key)),
            use_identity_as_username: use_identity_as_username.and_then(|(v, key)| at(&base, v, key)),
        })
    }

    /// hbmqtt: `config = dict(default); config.update(listener)`.
    fn inherit(self, template: &ListenerFields) -> Self {
        ListenerFields {
            bind: self.bind.or_else(|| template.bind.clone()),
            kind: self.kind.or_else(|| template.kind.clone()),
            max_connections: self.max_connections.or_else(|| template.max_connections.clone()),
            ssl: self.ssl.or_else(|| template.ssl.clone()),
            cafile: self.cafile.or_else(|| template.cafile.clone()),
            capath: self.capath.or_else(|| template.capath.clone()),
            cadata: self.cadata.or_else(|| template.cadata.clone()),
            certfile: self.certfile.or_else(|| template.certfile.clone()),
            keyfile: self.keyfile.or_else(|| template.keyfile.clone()),
            path: self.path.or_else(|| template.path.clone()),
            require_certificate: self.require_certificate.or_else(|| template.require_certificate.clone()),
            use_identity_as_username: self
                .use_identity_as_username
                .or_else(|| template.use_identity_as_username.clone()),
        }
    }
}

/// Whether a listener setting was written under the listener itself (not
/// inherited from `default`).
fn is_own<T>(name: &str, written: &Written<T>) -> bool {
    written.path.get(1) == Some(&Seg::Key(name.to_owned()))
}

/// Where to report a listener setting: under the listener's own name, at the
/// position where the value was written (which may be in `default`).
fn listener_spot<T>(ctx: &Ctx<'_>, name: &str, key: &str, written: Option<&Written<T>>, at: At) -> Spot {
    let own = path(&["listeners", name, key]);
    match written {
        Some(w) => {
            let inherited = w.path.get(1) != Some(&Seg::Key(name.to_owned()));
            Spot {
                key: display_path(&own),
                pos: ctx.pos(&w.path, at),
                note: if inherited { " (inherited from `listeners.default`)".to_owned() } else { String::new() },
            }
        }
        None => {
            Spot { key: display_path(&own), pos: ctx.pos(&path(&["listeners", name]), At::Key), note: String::new() }
        }
    }
}

fn resolve_listeners(
    entries: Vec<(String, ListenerFile)>,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut template = None;
    let mut named = Vec::new();
    for (name, file) in entries {
        if !names.insert(name.clone()) {
            // From a file too: a repeated listener name is more likely a copy
            // and paste slip than a deliberate override, so it is not "last wins".
            let spot = ctx.spot(&path(&["listeners", &name]), At::Key);
            return Err(ctx.invalid(&spot, format!("listener `{}` is defined twice", one_line(&name))));
        }
        let fields = ListenerFields::read(&name, file, ctx)?;
        if name == "default" {
            template = Some(fields);
        } else {
            named.push((name, fields));
        }
    }

    let mut out: Vec<(ListenerConfig, Spot)> = Vec::new();
    if named.is_empty() {
        if let Some(fields) = template
            && let Some(built) = build_listener("default", fields, ctx)?
        {
            out.push(built);
        }
    } else {
        let template = template.unwrap_or_default();
        // hbmqtt starts `default` too when it has a `bind` (its common
        // "default on 1883 plus a ws listener" configs rely on that).
        if template.bind.is_some()
            && let Some(built) = build_listener("default", template.clone(), ctx)?
        {
            out.push(built);
        }
        for (name, own) in named {
            let fields = own.inherit(&template);
            match build_listener(&name, fields, ctx)? {
                Some(built) => out.push(built),
                None => {
                    let spot = ctx.spot(&path(&["listeners", &name]), At::Key);
                    ctx.warn(&spot, "no `bind`, so this listener is not started");
                }
            }
        }
    }

    for (i, (listener, bind_spot)) in out.iter().enumerate() {
        if listener.bind.port() == 0 {
            continue;
        }
        if let Some((other, _)) = out[..i].iter().find(|(o, _)| o.bind == listener.bind) {
            return Err(ctx.invalid(
                bind_spot,
                format!("address `{}` is already used by listener `{}`", listener.bind, one_line(&other.name)),
            ));
        }
    }
    Ok(out.into_iter().map(|(listener, _)| listener).collect())
}

/// Builds one listener; `None` when it has no `bind` (a template, not started).
fn build_listener(
    name: &str,
    fields: ListenerFields,
    ctx: &Ctx<'_>,
) -> Result<Option<(ListenerConfig, Spot)>, ConfigError> {
    let Some(bind_text) = &fields.bind else {
        return Ok(None);
    };
    let bind_spot = listener_spot(ctx, name, "bind", Some(bind_text), At::Value);
    let bind = parse_bind(&bind_text.value).map_err(|reason| {
        ctx.invalid(&bind_spot, format!("invalid address `{}`: {reason}", one_line(&bind_text.value)))
    })?;
    let ssl_spot = listener_spot(ctx, name, "ssl", fields.ssl.as_ref(), At::Key);
    let has_ca = fields.cafile.is_some() || fields.capath.is_some() || fields.cadata.is_some();
    let require_certificate = fields.require_certificate.as_ref().is_some_and(|w| w.value);
    let use_identity_as_username = fields.use_identity_as_username.as_ref().is_some_and(|w| w.value);
    let tls = if fields.ssl.as_ref().is_some_and(|s| s.value) {
        let missing: Vec<&str> = [("certfile", fields.certfile.is_none()), ("keyfile", fields.keyfile.is_none())]
            .into_iter()
            .filter_map(|(key, absent)| absent.then_some(key))
            .collect();
        if !missing.is_empty() {
            let list = missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ");
            let verb = if missing.len() == 1 { "is" } else { "are" };
            return Err(ctx.invalid(&ssl_spot, format!("`ssl` is on but {list} {verb} missing")));
        }
        // Without a CA nothing can verify a client certificate, so neither
        // option could ever be satisfied: say so now, not at the first client.
        for (key, written) in [
            ("require_certificate", fields.require_certificate.as_ref()),
            ("use_identity_as_username", fields.use_identity_as_username.as_ref()),
        ] {
            if written.is_some_and(|w| w.value) && !has_ca {
                let key = written.and_then(|w| w.path.last()).map_or(key.to_owned(), seg_text);
                let spot = listener_spot(ctx, name, &key, written, At::Key);
                return Err(ctx.invalid(
                    &spot,
                    "needs the CAs that client certificates are checked against: set `cafile`, `capath` or `cadata`",
                ));
            }
        }
        Some(TlsConfig {
            certfile: fields.certfile.map(|w| w.value),
            keyfile: fields.keyfile.map(|w| w.value),
            cafile: fields.cafile.map(|w| w.value),
            capath: fields.capath.map(|w| w.value),
            cadata: fields.cadata.map(|w| w.value),
            require_certificate,
            use_identity_as_username,
        })
    } else {
        // Set on a plain listener itself, these are mistakes; inherited from
        // `default` (written for the TLS listeners), they just do not apply.
        for (key, written) in [
            ("require_certificate", fields.require_certificate.as_ref()),
            ("use_identity_as_username", fields.use_identity_as_username.as_ref()),
        ] {
            if written.is_some_and(|w| w.value && is_own(name, w)) {
                let key = written.and_then(|w| w.path.last()).map_or(key.to_owned(), seg_text);
                let spot = listener_spot(ctx, name, &key, written, At::Key);
                return Err(ctx.invalid(&spot, "client certificates need TLS: set `ssl: on` on this listener"));
            }
        }
        None
    };
    let kind = fields.kind.map_or(ListenerKind::Tcp, |w| w.value);
    let ws_path = match fields.path {
        None => None,
        // A `path` in `default` is for the ws listeners among the others.
        Some(w) if kind != ListenerKind::Ws && !is_own(name, &w) => None,
        Some(w) => {
            let spot = listener_spot(ctx, name, "path", Some(&w), At::Value);
            if kind != ListenerKind::Ws {
                return Err(ctx.invalid(&spot, "`path` applies to `type: ws` listeners only"));
            }
            if !w.value.starts_with('/') || w.value.chars().any(|c| c.is_whitespace() || c == '?' || c == '#') {
                return Err(
                    ctx.invalid(&spot, format!("expected a URL path such as `/mqtt`, found `{}`", one_line(&w.value)))
                );
            }
            Some(w.value)
        }
    };
    let listener = ListenerConfig {
        name: name.to_owned(),
        bind,
        kind,
        max_connections: fields.max_connections.map_or(0, |w| w.value),
        tls,
        ws_path,
    };
    Ok(Some((listener, bind_spot)))
}

/// The text of a key segment (the spelling the file used).
fn seg_text(seg: &Seg) -> String {
    match seg {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => i.to_string(),
    }
}

/// Parses a `bind` value: `host:port`, `[v6]:port`, `:port` or `port`
/// (both meaning 0.0.0.0), with `host` an IP address or a name to resolve
/// (the first address wins). The error is the reason, for a message.
fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty; expected `host:port`".to_owned());
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), parse_port(s)?));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing `]` after the IPv6 address")?;
        let port = after.strip_prefix(':').ok_or("missing port; expected `[address]:port`")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{}` is not an IPv6 address", one_line(host)));
        }
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing port; expected `host:port`")?;
        if host.contains(':') {
            return Err(if s.parse::<Ipv6Addr>().is_ok() {
                "missing port; write IPv6 addresses as `[address]:port`".to_owned()
            } else {
                "IPv6 addresses must be in brackets, e.g. `[::1]:1883`".to_owned()
            });
        }
        (host, port)
    };
    let port = parse_port(port)?;
    if host.is_empty() {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host `{}`: {}", one_line(host), io_reason(&e)))?;
    addrs.next().ok_or_else(|| format!("host `{}` has no address", one_line(host)))
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port; expected `host:port`".to_owned());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not a port number", one_line(text)));
    }
    text.parse::<u16>().map_err(|_| "port out of range".to_owned())
}

fn check_plugin_names(base: &[Seg], plugins: &Option<Vec<String>>, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    for (i, name) in plugins.iter().flatten().enumerate() {
        if name.trim().is_empty() {
            let mut p = child(base, "plugins");
            p.push(Seg::Index(i));
            return Err(ctx.invalid(&ctx.spot(&p, At::Value), "empty plugin name"));
        }
    }
    Ok(())
}

fn resolve_auth(auth: AuthFile, ctx: &mut Ctx<'_>) -> Result<AuthConfig, ConfigError> {
    let base = path(&["auth"]);
    let allow_anonymous = ctx
        .pick(
            &base,
            ("allow-anonymous", auth.allow_anonymous),
            ("allow_anonymous", auth.allow_anonymous_alt),
            show_num,
        )?
        .is_none_or(|(v, _)| v);
    let password_file = ctx
        .pick(
            &base,
            ("password-file", auth.password_file),
            ("password_file", auth.password_file_alt),
            |p: &PathBuf| show_path(p),
        )?
        .map(|(v, _)| v);
    check_plugin_names(&base, &auth.plugins, ctx)?;
    Ok(AuthConfig { plugins: auth.plugins, allow_anonymous, password_file, default: auth.default.unwrap_or_default() })
}

fn resolve_topic_check(section: TopicCheckFile, key: &str, ctx: &mut Ctx<'_>) -> Result<TopicCheckConfig, ConfigError> {
    let base = path(&[key]);
    check_plugin_names(&base, &section.plugins, ctx)?;
    let show = |_: &BTreeMap<String, Vec<String>>| "{...}".to_owned();
    let subscribe =
        ctx.pick(&base, ("subscribe-acl", section.subscribe_acl), ("subscribe_acl", section.subscribe_acl_alt), show)?;
    let publish =
        ctx.pick(&base, ("publish-acl", section.publish_acl), ("publish_acl", section.publish_acl_alt), show)?;
    let receive =
        ctx.pick(&base, ("receive-acl", section.receive_acl), ("receive_acl", section.receive_acl_alt), show)?;
    let acl = section.acl.unwrap_or_default();
    Ok(TopicCheckConfig {
        enabled: section.enabled.unwrap_or(false),
        plugins: section.plugins,
        subscribe_acl: Some(subscribe.map_or_else(|| acl.clone(), |(v, _)| v)),
        publish_acl: Some(publish.map_or_else(|| acl.clone(), |(v, _)| v)),
        receive_acl: receive.map(|(v, _)| v),
        acl,
        default: section.default.unwrap_or_default(),
    })
}

fn resolve_metrics(section: MetricsFile, ctx: &Ctx<'_>) -> Result<Option<MetricsConfig>, ConfigError> {
    if section.enabled == Some(false) {
        return Ok(None);
    }
    let Some(bind_text) = &section.bind else {
        let spot = ctx.spot(&path(&["metrics"]), At::Key);
        return Err(ctx.invalid(&spot, "`bind` is missing: the address the metrics endpoint listens on"));
    };
    let bind_key = path(&["metrics", "bind"]);
    let bind = parse_bind(bind_text).map_err(|reason| {
        ctx.invalid(&ctx.spot(&bind_key, At::Value), format!("invalid address `{}`: {reason}", one_line(bind_text)))
    })?;
    let metrics_path = section.path.unwrap_or_else(|| "/metrics".to_string());
    if !metrics_path.starts_with('/') || metrics_path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?') {
        let key = path(&["metrics", "path"]);
        return Err(ctx.invalid(
            &ctx.spot(&key, At::Value),
            format!("expected a URL path starting with `/`, found {}", ctx.found(&key, &metrics_path)),
        ));
    }
    Ok(Some(MetricsConfig { bind, path: metrics_path }))
}

fn resolve_plugins(
    dirs: Option<OneOrMany>,
    options: Option<BTreeMap<String, serde_json::Value>>,
    timeout: Option<f64>,
    concurrency: Option<usize>,
    ctx: &Ctx<'_>,
) -> Result<PluginsConfig, ConfigError> {
    let dirs = match dirs {
        None => Vec::new(),
        Some(OneOrMany::One(d)) => vec![d],
        Some(OneOrMany::Many(v)) => v,
    };
    let mut plugins = PluginsConfig { dirs, ..PluginsConfig::default() };
    for (i, d) in plugins.dirs.iter().enumerate() {
        if d.as_os_str().is_empty() {
            let mut p = path(&["plugins-dir"]);
            p.push(Seg::Index(i));
            return Err(ctx.invalid(&ctx.spot(&p, At::Value), "empty directory path"));
        }
    }
    for (name, value) in options.into_iter().flatten() {
        // `name:` with nothing after it means "no options".
        let value = if value.is_null() { serde_json::Value::Object(Default::default()) } else { value };
        plugins.options.insert(name, value);
    }
    if let Some(t) = timeout {
        let key = path(&["plugin-timeout"]);
        plugins.timeout = ctx.seconds(&key, t)?;
        if plugins.timeout.is_zero() {
            return Err(ctx.invalid(&ctx.spot(&key, At::Value), "expected a positive number of seconds, found `0`"));
        }
    }
    if let Some(c) = concurrency {
        if c == 0 {
            let spot = ctx.spot(&path(&["plugin-concurrency"]), At::Value);
            return Err(ctx.invalid(&spot, "expected a positive integer, found `0`"));
        }
        plugins.concurrency = c;
    }
    Ok(plugins)
}

fn resolve_limits(
    max_packet_size: Option<usize>,
    max_inflight: Option<u16>,
    max_queued_messages: Option<usize>,
    ctx: &mut Ctx<'_>,
) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(size) = max_packet_size {
        let spot = ctx.spot(&path(&["max-packet-size"]), At::Value);
        if size == 0 {
            return Err(ctx.invalid(&spot, "expected a positive number of bytes, found `0`"));
        }
        if size > MAX_PACKET_SIZE_CAP {
            ctx.warn(&spot, format!("{size} is larger than any MQTT packet; using {MAX_PACKET_SIZE_CAP} instead"));
        }
        limits.max_packet_size = size.min(MAX_PACKET_SIZE_CAP);
    }
    if let Some(inflight) = max_inflight {
        if inflight == 0 {
            let spot = ctx.spot(&path(&["max-inflight"]), At::Value);
            return Err(ctx.invalid(&spot, "expected an integer from 1 to 65535, found `0`"));
        }
        limits.max_inflight = inflight;
    }
    if let Some(queued) = max_queued_messages {
        limits.max_queued_messages = queued;
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::yaml::load_yaml;
    use super::*;

    /// Shared with the other files' tests (`amqtt.rs`).
    pub(super) fn ok(text: &str) -> Config {
        Config::from_yaml_str(text).unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    pub(super) fn err(text: &str) -> String {
        match Config::from_yaml_str(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn read_all(text: &str) -> Config {
        ok(text)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn plugin_host_keys() {
        let c = ok(
            "plugins-dir: /a\nplugins-config:\n  allowlist: {users: {alice: {password: x}}, n: [1, 2]}\n  bare:\n\
                    plugin-timeout: 0.5\nplugin-concurrency: 3\nauth: {default: allow}\ntopic-check: {default: allow}\n",
        );
        assert!(c.warnings.iter().all(|w| w.contains("no listener")), "{:?}", c.warnings);
        assert_eq!(c.plugins.dirs, vec![PathBuf::from("/a")]);
        assert_eq!(c.plugins.options["allowlist"]["users"]["alice"]["password"], "x");
        assert_eq!(c.plugins.options["allowlist"]["n"][1], 2);
        assert_eq!(c.plugins.options["bare"], serde_json::json!({}));
        assert_eq!(c.plugins.timeout, Duration::from_millis(500));
        assert_eq!(c.plugins.concurrency, 3);
        assert_eq!(c.auth.default, ChainDefault::Allow);
        assert_eq!(c.topic_check.default, ChainDefault::Allow);
        let c = ok("plugins-dir: [/a, /b]\n");
        assert_eq!(c.plugins.dirs.len(), 2);
        assert_eq!(ok("{}").plugins, PluginsConfig::default());
        let e = err("plugin-concurrency: 0\n");
        assert!(e.starts_with("<string>:1:21: plugin-concurrency:"), "{e}");
        let e = err("auth: {default: maybe}\n");
        assert!(e.contains("auth.default"), "{e}");
    }

    fn has_warning(config: &Config, needle: &str) -> bool {
        config.warnings.iter().any(|w| w.contains(needle))
    }

    const SEED_EXAMPLE: &str = "\
listeners:
    default:
        max-connections: 50000
        type: tcp
    my-tcp-1:
        bind: 127.0.0.1:1883
    my-tcp-2:
        bind: 1.2.3.4:1884
        max-connections: 1000
    my-tcp-ssl-1:
        bind: 127.0.0.1:8885
        ssl: on
        cafile: /some/cafile
        capath: /some/folder
        capath: certificate data
        certfile: /some/certfile
        keyfile: /some/key
    my-ws-1:
        bind: 0.0.0.0:8080
        type: ws
timeout-disconnect-delay: 2
auth:
    plugins: ['auth.anonymous'] #List of plugins to activate for authentication
    allow-anonymous: true
    password-file: /some/passwd_file
";

    /// hbmqtt's `scripts/default_broker.yaml`.
    const HBMQTT_DEFAULT_BROKER: &str = "\
listeners:
    default:
        type: tcp
        bind: 0.0.0.0:1883
sys_interval: 20
auth:
    allow-anonymous: true
plugins:
    - auth_file
    - auth_anonymous
topic-check:
    enabled: False
";

    #[test]
    fn embedded_default_is_hbmqtt_cli_default() {
        let config = Config::default();
        assert_eq!(
            config.listeners,
            vec![ListenerConfig {
                name: "default".into(),
                bind: addr("0.0.0.0:1883"),
                kind: ListenerKind::Tcp,
                max_connections: 0,
                tls: None,
                ws_path: None,
            }]
        );
        assert_eq!(config.sys_interval, Duration::from_secs(20));
        assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
        assert_eq!(config.max_qos, QoS::ExactlyOnce);
        assert!(config.auth.allow_anonymous);
        // Named, unlike hbmqtt's file: see default.yaml.
        assert_eq!(config.auth.plugins, Some(vec!["auth_anonymous".to_string()]));
        assert!(!config.topic_check.enabled);
        assert_eq!(config.limits, Limits::default());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn empty_file_means_defaults_and_no_listener() {
        for text in ["", "\n# only a comment\n", "---\n"] {
            let config = ok(text);
            assert!(config.listeners.is_empty());
            assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
            assert_eq!(config.sys_interval, Duration::ZERO);
            assert_eq!(config.max_qos, QoS::ExactlyOnce);
            assert!(config.auth.allow_anonymous);
            assert_eq!(config.auth.password_file, None);
            assert!(!config.topic_check.enabled);
            assert!(config.topic_check.acl.is_empty());
            assert_eq!(config.limits.max_packet_size, 1_048_576);
            assert_eq!(config.limits.max_inflight, 32);
            assert_eq!(config.limits.max_queued_messages, 1000);
            assert_eq!(
                config.warnings,
                vec![
                    "<string>: listeners: no listener has a `bind`, so no network connections \
                     will be accepted (fine for an embedded broker; hbmqtt requires `listeners`)"
                ]
            );
        }
    }

    #[test]
    fn seed_example_is_read_completely() {
        let config = read_all(SEED_EXAMPLE);
        let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["my-tcp-1", "my-tcp-2", "my-tcp-ssl-1", "my-ws-1"]);
        let [tcp1, tcp2, tls, ws] = &config.listeners[..] else {
            panic!("four listeners expected");
        };
        assert_eq!(tcp1.bind, addr("127.0.0.1:1883"));
        assert_eq!(tcp1.max_connections, 50000, "inherited from default");
        assert_eq!(tcp1.kind, ListenerKind::Tcp);
        assert_eq!(tcp2.bind, addr("1.2.3.4:1884"));
        assert_eq!(tcp2.max_connections, 1000, "own value overrides default");
        assert_eq!(
            tls.tls,
            Some(TlsConfig {
                certfile: Some("/some/certfile".into()),
                keyfile: Some("/some/key".into()),
                cafile: Some("/some/cafile".into()),
                capath: Some("certificate data".into()),
                cadata: None,
                require_certificate: false,
                use_identity_as_username: false,
            })
        );
        assert_eq!(ws.kind, ListenerKind::Ws);
        assert_eq!(ws.max_connections, 50000);
        assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
        assert_eq!(
            config.auth,
            AuthConfig {
                plugins: Some(vec!["auth.anonymous".into()]),
                allow_anonymous: true,
                password_file: Some("/some/passwd_file".into()),
                default: ChainDefault::Deny,
            }
        );
        // The documentation's own example repeats `capath`: PyYAML keeps the last one.
        assert_eq!(
            config.warnings,
            vec![
                "<string>:15:9: listeners.my-tcp-ssl-1.capath: key given twice; \
                 the last value is used"
            ]
        );
    }

    #[test]
    fn seed_example_with_tls_and_ws_is_accepted() {
        let config = ok(SEED_EXAMPLE);
        let kinds: Vec<(ListenerKind, bool)> = config.listeners.iter().map(|l| (l.kind, l.tls.is_some())).collect();
        assert_eq!(
            kinds,
            [
                (ListenerKind::Tcp, false),
                (ListenerKind::Tcp, false),
                (ListenerKind::Tcp, true),
                (ListenerKind::Ws, false)
            ]
        );
    }

    #[test]
    fn ws_path_and_client_certificate_options() {
        let text = "\
listeners:
  default:
    type: ws
    require-certificate: yes
  a:
    bind: 127.0.0.1:8443
    ssl: on
    certfile: c.pem
    keyfile: k.pem
    cafile: ca.pem
    use_identity_as_username: true
    path: /mqtt
";
        let config = ok(text);
        let l = &config.listeners[0];
        assert_eq!(l.kind, ListenerKind::Ws);
        assert_eq!(l.ws_path.as_deref(), Some("/mqtt"));
        let tls = l.tls.as_ref().expect("tls");
        assert!(tls.require_certificate, "inherited from default");
        assert!(tls.use_identity_as_username);
    }

    #[test]
    fn client_certificate_options_need_a_ca_and_tls() {
        let no_ca = "\
listeners:
  default:
    bind: 127.0.0.1:8883
    ssl: on
    certfile: c.pem
    keyfile: k.pem
    require_certificate: true
";
        assert_eq!(
            err(no_ca),
            "<string>:7:5: listeners.default.require_certificate: needs the CAs that client certificates are \
             checked against: set `cafile`, `capath` or `cadata`"
        );
        let no_tls = "\
listeners:
  default:
    bind: 127.0.0.1:1883
    use-identity-as-username: on
";
        assert_eq!(
            err(no_tls),
            "<string>:4:5: listeners.default.use-identity-as-username: client certificates need TLS: \
             set `ssl: on` on this listener"
        );
    }

    #[test]
    fn template_values_that_do_not_apply_are_ignored_not_refused() {
        let text = "\
listeners:
  default:
    path: /mqtt
    cafile: ca.pem
    require_certificate: true
  plain:
    bind: 127.0.0.1:1883
  web:
    bind: 127.0.0.1:8080
    type: ws
";
        let config = ok(text);
        let [plain, web] = &config.listeners[..] else { panic!("two listeners") };
        assert_eq!((plain.ws_path.as_deref(), plain.tls.is_none()), (None, true));
        assert_eq!((web.ws_path.as_deref(), web.tls.is_none()), (Some("/mqtt"), true));
    }

    #[test]
    fn path_is_for_ws_listeners_and_must_be_a_path() {
        let tcp = "listeners:\n  default:\n    bind: 127.0.0.1:1883\n    path: /mqtt\n";
        assert_eq!(err(tcp), "<string>:4:11: listeners.default.path: `path` applies to `type: ws` listeners only");
        let bad = "listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:8080\n    path: mqtt\n";
        assert_eq!(
            err(bad),
            "<string>:5:11: listeners.default.path: expected a URL path such as `/mqtt`, found `mqtt`"
        );
    }

    #[test]
    fn hbmqtt_default_broker_yaml() {
        let config = ok(HBMQTT_DEFAULT_BROKER);
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].name, "default");
        assert_eq!(config.listeners[0].bind, addr("0.0.0.0:1883"));
        assert_eq!(config.sys_interval, Duration::from_secs(20));
        assert!(config.auth.allow_anonymous);
        assert_eq!(config.auth.plugins, None, "the top-level list is not auth.plugins");
        assert!(!config.topic_check.enabled);
        assert_eq!(
            config.warnings,
            vec![
                "<string>:8:1: plugins: ignored: hbmqtt ignores a top-level `plugins` list \
                 too; plugins are chosen with `auth.plugins` and `topic-check.plugins`"
            ]
        );
    }

    #[test]
    fn anchors_example_with_every_section() {
        let text = "\
listeners:
  default:
    type: tcp
    max_connections: 0
  my-tcp:
    bind: 127.0.0.1:1883
timeout-disconnect-delay: 2.5
sys_interval: 20
max-qos: 1
auth:
  plugins: [auth_anonymous, auth_file]
  allow-anonymous: false
  password-file: /path/passwd
topic-check:
  enabled: true
  plugins: [topic_acl]
  acl:
    alice: ['repositories/+/master', 'calendar/#']
    bob:
    anonymous: []
max-packet-size: 65536
max-inflight: 10
max-queued-messages: 0
";
        let config = ok(text);
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].name, "my-tcp");
        assert_eq!(config.timeout_disconnect_delay, Duration::from_millis(2500));
        assert_eq!(config.max_qos, QoS::AtLeastOnce);
        assert_eq!(config.auth.plugins, Some(vec!["auth_anonymous".to_owned(), "auth_file".to_owned()]));
        assert!(!config.auth.allow_anonymous);
        assert_eq!(config.auth.password_file, Some(PathBuf::from("/path/passwd")));
        assert!(config.topic_check.enabled);
        assert_eq!(config.topic_check.plugins, Some(vec!["topic_acl".to_owned()]));
        let acl = &config.topic_check.acl;
        assert_eq!(acl["alice"], ["repositories/+/master", "calendar/#"]);
        assert!(acl["bob"].is_empty());
        assert!(acl["anonymous"].is_empty());
        assert_eq!(config.limits, Limits { max_packet_size: 65536, max_inflight: 10, max_queued_messages: 0 });
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn both_spellings_are_accepted() {
        let documented = "\
listeners:
  default:
    max-connections: 7
    bind: 1883
timeout-disconnect-delay: 3
sys-interval: 5
max-qos: 1
auth:
  allow-anonymous: false
  password-file: pw
topic-check:
  enabled: true
";
        let real = "\
listeners:
  default:
    max_connections: 7
    bind: 1883
timeout_disconnect_delay: 3
sys_interval: 5
max_qos: 1
auth:
  allow_anonymous: false
  password_file: pw
topic_check:
  enabled: true
";
        let a = ok(documented);
        let b = ok(real);
        assert_eq!(a, b);
        assert_eq!(a.listeners[0].max_connections, 7);
        assert_eq!(a.timeout_disconnect_delay, Duration::from_secs(3));
        assert_eq!(a.sys_interval, Duration::from_secs(5));
        assert_eq!(a.max_qos, QoS::AtLeastOnce);
        assert!(!a.auth.allow_anonymous);
        assert_eq!(a.auth.password_file, Some(PathBuf::from("pw")));
        assert!(a.topic_check.enabled);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }

    #[test]
    fn both_spellings_with_different_values_conflict() {
        let text = "\
listeners:
  a:
    bind: 1883
    max_connections: 5
    max-connections: 6
";
        assert_eq!(
            err(text),
            "<string>:5:5: listeners.a.max-connections: `max-connections: 6` conflicts with \
             `max_connections: 5`; both spellings mean the same setting, keep one"
        );
        let text = "auth:\n  allow_anonymous: no\n  allow-anonymous: yes\n";
        assert_eq!(
            err(text),
            "<string>:3:3: auth.allow-anonymous: `allow-anonymous: true` conflicts with \
             `allow_anonymous: false`; both spellings mean the same setting, keep one"
        );
        let text = "sys_interval: 1\nsys-interval: 2\n";
        assert!(err(text).starts_with("<string>:2:1: sys-interval: `sys-interval: 2` conflicts"));
        let text = "topic_check:\n  enabled: yes\ntopic-check:\n  enabled: no\n";
        assert!(err(text).starts_with("<string>:3:1: topic-check: `topic-check: {...}` conflicts"));
    }

    #[test]
    fn both_spellings_with_the_same_value_warn() {
        let text = "max-qos: 1\nmax_qos: 1\n";
        let config = ok(text);
        assert_eq!(config.max_qos, QoS::AtLeastOnce);
        assert!(
            config.warnings.contains(
                &"<string>:2:1: max_qos: repeats `max-qos` (both spellings mean the same \
              setting); keep one"
                    .to_owned()
            )
        );
    }

    #[test]
    fn yaml_1_1_booleans() {
        let text = "\
listeners:
  a:
    bind: 1883
    ssl: off
  b:
    bind: 1884
    ssl: 'No'
auth:
  allow-anonymous: no
topic-check:
  enabled: on
";
        let config = ok(text);
        assert!(config.listeners.iter().all(|l| l.tls.is_none()));
        assert!(!config.auth.allow_anonymous);
        assert!(config.topic_check.enabled);
        assert!(ok("auth:\n  allow_anonymous: Yes\n").auth.allow_anonymous);
        assert!(!ok("auth:\n  allow_anonymous: OFF\n").auth.allow_anonymous);
        assert!(ok("topic-check:\n  enabled: yes\n").topic_check.enabled);
    }

    #[test]
    fn ssl_accepts_booleans_and_words_in_any_case() {
        for value in ["on", "yes", "true", "On", "'ON'", "'yes'", "\"True\"", "'oN'"] {
            let text = format!(
                "listeners:\n  s:\n    bind: 8883\n    ssl: {value}\n    certfile: c.pem\n    keyfile: k.pem\n"
            );
            let config = read_all(&text);
            assert!(config.listeners[0].tls.is_some(), "ssl: {value}");
        }
        for value in ["off", "no", "false", "OFF", "'Off'", "'no'", "\"FALSE\"", "~"] {
            let text = format!("listeners:\n  s:\n    bind: 8883\n    ssl: {value}\n");
            assert!(ok(&text).listeners[0].tls.is_none(), "ssl: {value}");
        }
        assert_eq!(
            err("listeners:\n  s:\n    bind: 8883\n    ssl: maybe\n"),
            "<string>:4:10: listeners.s.ssl: expected `on` or `off` (also `true`/`false`, \
             `yes`/`no`), found `maybe`"
        );
    }

    #[test]
    fn ssl_without_certificate_is_an_error() {
        let text = "\
listeners:
  default:
    certfile: server.pem
  tls:
    bind: 8883
    ssl: on
";
        assert_eq!(err(text), "<string>:6:5: listeners.tls.ssl: `ssl` is on but `keyfile` is missing");
        let text = "listeners:\n  tls:\n    bind: 8883\n    ssl: on\n";
        assert_eq!(err(text), "<string>:4:5: listeners.tls.ssl: `ssl` is on but `certfile` and `keyfile` are missing");
    }

    #[test]
    fn bind_forms() {
        let text = "\
listeners:
  v4:
    bind: 127.0.0.1:1883
  v6:
    bind: '[::1]:1884'
  v6-any:
    bind: '[::]:1885'
  port-only:
    bind: :1886
  bare:
    bind: 1887
  name:
    bind: localhost:1888
  spaces:
    bind: ' 127.0.0.1:1889 '
";
        let config = ok(text);
        let binds: Vec<SocketAddr> = config.listeners.iter().map(|l| l.bind).collect();
        assert_eq!(binds[0], addr("127.0.0.1:1883"));
        assert_eq!(binds[1], addr("[::1]:1884"));
        assert_eq!(binds[2], addr("[::]:1885"));
        assert_eq!(binds[3], addr("0.0.0.0:1886"));
        assert_eq!(binds[4], addr("0.0.0.0:1887"));
        assert!(binds[5].ip().is_loopback(), "{}", binds[5]);
        assert_eq!(binds[5].port(), 1888);
        assert_eq!(binds[6], addr("127.0.0.1:1889"));
    }

    #[test]
    fn bad_bind_addresses() {
        let cases = [
            ("127.0.0.1:99999", "port out of range"),
            ("127.0.0.1", "missing port; expected `host:port`"),
            ("'127.0.0.1:'", "missing port; expected `host:port`"),
            ("127.0.0.1:http", "`http` is not a port number"),
            ("'::1'", "missing port; write IPv6 addresses as `[address]:port`"),
            ("'::1:1883x'", "IPv6 addresses must be in brackets, e.g. `[::1]:1883`"),
            ("'[::1]'", "missing port; expected `[address]:port`"),
            ("'[::1:1883'", "missing `]` after the IPv6 address"),
            ("'[nope]:1883'", "`nope` is not an IPv6 address"),
            ("''", "empty; expected `host:port`"),
        ];
        for (bind, reason) in cases {
            let text = format!("listeners:\n  my-tcp:\n    bind: {bind}\n");
            let shown = bind.trim_matches('\'');
            assert_eq!(
                err(&text),
                format!("<string>:3:11: listeners.my-tcp.bind: invalid address `{shown}`: {reason}"),
            );
        }
        let e = err("listeners:\n  my-tcp:\n    bind: no-such-host.invalid:1883\n");
        assert!(
            e.starts_with(
                "<string>:3:11: listeners.my-tcp.bind: invalid address \
                 `no-such-host.invalid:1883`: cannot resolve host `no-such-host.invalid`"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_bind_reports_like_the_brief() {
        let text = "\
listeners:
  default:
    type: tcp
  other:
    bind: 127.0.0.1:1883
  my-tcp:
    bind: 127.0.0.1:99999
";
        let text = text.replace("<string>", "");
        let path = std::env::temp_dir().join(format!("moth-config-{}-broker.yaml", std::process::id()));
        std::fs::write(&path, &text).expect("write temp config");
        let e = Config::from_file(&path).expect_err("bad port");
        std::fs::remove_file(&path).ok();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:7:11: listeners.my-tcp.bind: invalid address `127.0.0.1:99999`: port out of range",
                path.display()
            )
        );
    }

    #[test]
    fn default_template_inheritance() {
        let text = "\
listeners:
  default:
    type: tcp
    max_connections: 100
    ssl: on
    certfile: c.pem
    keyfile: k.pem
  plain:
    bind: 127.0.0.1:1883
    ssl: off
  limited:
    bind: 127.0.0.1:1884
    max-connections: 5
  template-only:
    max_connections: 1
";
        let config = read_all(text);
        let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["plain", "limited"]);
        assert_eq!(config.listeners[0].max_connections, 100);
        assert_eq!(config.listeners[0].tls, None, "own `ssl: off` wins");
        assert_eq!(config.listeners[1].max_connections, 5);
        assert!(config.listeners[1].tls.is_some(), "ssl inherited");
        assert!(has_warning(
            &config,
            "<string>:14:3: listeners.template-only: no `bind`, so this listener is not started"
        ));
    }

    #[test]
    fn only_default_with_bind_runs_as_default() {
        let config = ok("listeners:\n  default:\n    bind: 127.0.0.1:1883\n");
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].name, "default");
        assert_eq!(config.listeners[0].kind, ListenerKind::Tcp, "type defaults to tcp");
        assert!(config.warnings.is_empty());

        let config = ok("listeners:\n  default:\n    type: tcp\n");
        assert!(config.listeners.is_empty());
        assert!(has_warning(&config, "<string>:1:1: listeners: no listener has a `bind`"));
    }

    #[test]
    fn default_with_bind_is_started_beside_others() {
        let text = "\
listeners:
  default:
    bind: 0.0.0.0:1883
  ws-ish:
    bind: 0.0.0.0:8080
";
        let config = ok(text);
        let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["default", "ws-ish"]);
    }

    #[test]
    fn same_address_twice_is_an_error() {
        let text = "\
listeners:
  default:
    bind: 0.0.0.0:1883
  a:
    type: tcp
  b:
    type: tcp
";
        assert_eq!(
            err(text),
            "<string>:3:11: listeners.a.bind: address `0.0.0.0:1883` is already used by \
             listener `default` (inherited from `listeners.default`)"
        );
        // Port 0 asks the system for a free port each time.
        let config = ok("listeners:\n  a:\n    bind: 127.0.0.1:0\n  b:\n    bind: 127.0.0.1:0\n");
        assert_eq!(config.listeners.len(), 2);
    }

    #[test]
    fn unknown_type_names_the_listener() {
        assert_eq!(
            err("listeners:\n  my-udp:\n    bind: 1883\n    type: udp\n"),
            "<string>:4:11: listeners.my-udp.type: expected `tcp` or `ws`, found `udp`"
        );
        assert_eq!(
            err("listeners:\n  my-tcp:\n    bind: 1883\n    type: TCP\n"),
            "<string>:4:11: listeners.my-tcp.type: expected `tcp` or `ws`, found `TCP`"
        );
    }

    #[test]
    fn wrong_types_name_key_and_position() {
        let cases = [
            (
                "listeners:\n  default:\n    type: tcp\n    max-connections: lots\n",
                "<string>:4:22: listeners.default.max-connections: expected a non-negative \
                 integer (0 = no limit), found `lots`",
            ),
            (
                "listeners:\n  a:\n    bind: 1883\n    max_connections: -1\n",
                "<string>:4:22: listeners.a.max_connections: expected a non-negative \
                 integer (0 = no limit), found `-1`",
            ),
            ("auth: 5\n", "<string>:1:7: auth: expected a mapping of authentication settings, found `5`"),
            (
                "listeners: [a, b]\n",
                "<string>:1:12: listeners: expected a mapping from listener names to \
                 listener settings, found a list",
            ),
            (
                "auth:\n  plugins: auth_file\n",
                "<string>:2:12: auth.plugins: expected a list of plugin names, found `auth_file`",
            ),
            (
                "auth:\n  plugins: [auth_file, [x]]\n",
                "<string>:2:24: auth.plugins[1]: expected a plugin name, found a list",
            ),
            (
                "topic-check:\n  plugins: {topic_acl: 1}\n",
                "<string>:2:12: topic-check.plugins: expected a list of plugin names, \
                 found a mapping",
            ),
            (
                "topic-check:\n  acl:\n    alice: 'calendar/#'\n",
                "<string>:3:12: topic-check.acl.alice: expected a list of topic filters, \
                 found `'calendar/#'`",
            ),
            (
                "auth:\n  allow-anonymous: sometimes\n",
                "<string>:2:20: auth.allow-anonymous: expected a boolean (`true`/`false`, \
                 `on`/`off`, `yes`/`no`), found `sometimes`",
            ),
            (
                "timeout-disconnect-delay: soon\n",
                "<string>:1:27: timeout-disconnect-delay: expected a non-negative number of \
                 seconds, found `soon`",
            ),
            ("max-qos: two\n", "<string>:1:10: max-qos: expected 0, 1 or 2, found `two`"),
            (
                "max-inflight: 70000\n",
                "<string>:1:15: max-inflight: expected an integer from 1 to 65535, found `70000`",
            ),
            ("hello\n", "<string>:1:1: expected a mapping of settings, found `hello`"),
            (
                "listeners:\n  a:\n    bind: [a]\n",
                "<string>:3:11: listeners.a.bind: expected an address such as `0.0.0.0:1883`, \
                 `[::1]:1883`, `:1883` or `1883`, found a list",
            ),
            ("listeners:\n  ~:\n    bind: 1883\n", "<string>:2:3: listeners.~: null is not allowed here"),
            (
                "listeners:\n  a:\n    bind: 1883\n  a:\n    bind: 1884\n",
                "<string>:4:3: listeners.a: listener `a` is defined twice",
            ),
        ];
        for (text, expected) in cases {
            let e = Config::from_yaml_str(text).expect_err(text);
            assert!(matches!(e, ConfigError::Invalid(_)), "{e:?}");
            assert_eq!(e.to_string(), expected);
        }
    }

    #[test]
    fn out_of_range_values() {
        assert_eq!(err("max-qos: 3\n"), "<string>:1:10: max-qos: expected 0, 1 or 2, found `3`");
        assert_eq!(err("max_qos: -1\n"), "<string>:1:10: max_qos: expected 0, 1 or 2, found `-1`");
        assert_eq!(
            err("\ntimeout-disconnect-delay: -0.5\n"),
            "<string>:2:27: timeout-disconnect-delay: expected a non-negative number of \
             seconds, found `-0.5`"
        );
        assert_eq!(
            err("sys_interval: .inf\n"),
            "<string>:1:15: sys_interval: expected a non-negative number of seconds, found `.inf`"
        );
        assert_eq!(
            err("max-packet-size: 0\n"),
            "<string>:1:18: max-packet-size: expected a positive number of bytes, found `0`"
        );
        assert_eq!(
            err("max-inflight: 0\n"),
            "<string>:1:15: max-inflight: expected an integer from 1 to 65535, found `0`"
        );
        assert_eq!(err("auth:\n  plugins: [auth_file, '']\n"), "<string>:2:24: auth.plugins[1]: empty plugin name");
        let config = ok("max-packet-size: 999999999999\n");
        assert_eq!(config.limits.max_packet_size, MAX_PACKET_SIZE_CAP);
        assert!(has_warning(&config, "<string>:1:18: max-packet-size: 999999999999 is larger"));
    }

    #[test]
    fn timeout_accepts_int_and_float() {
        assert_eq!(ok("timeout-disconnect-delay: 0\n").timeout_disconnect_delay, Duration::ZERO);
        assert_eq!(ok("timeout-disconnect-delay: 0.25\n").timeout_disconnect_delay, Duration::from_millis(250));
    }

    #[test]
    fn plugin_names_are_kept_as_written() {
        let config = ok("auth:\n  plugins: ['auth.anonymous', auth_file]\ntopic-check:\n  plugins: []\n");
        assert_eq!(config.auth.plugins, Some(vec!["auth.anonymous".to_owned(), "auth_file".to_owned()]));
        assert_eq!(config.topic_check.plugins, Some(vec![]));
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let text = "\
max_inflight: 3
listeners:
  a:
    bind: 1883
    Bind: 1
    flavour: vanilla
auth:
  secret: x
topic_check:
  acls: {}
";
        let config = ok(text);
        assert_eq!(
            config.warnings,
            vec![
                "<string>:1:1: max_inflight: unknown key, ignored (did you mean `max-inflight`?)",
                "<string>:5:5: listeners.a.Bind: unknown key, ignored (did you mean `bind`?)",
                "<string>:6:5: listeners.a.flavour: unknown key, ignored",
                "<string>:8:3: auth.secret: unknown key, ignored",
                "<string>:10:3: topic_check.acls: unknown key, ignored",
            ]
        );
        assert_eq!(config.limits.max_inflight, DEFAULT_MAX_INFLIGHT);
    }

    #[test]
    fn yaml_syntax_errors_carry_a_position() {
        let e = Config::from_yaml_str("listeners:\n  a: [1\n").expect_err("unclosed");
        assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
        assert!(e.to_string().starts_with("<string>:2:6: "), "{e}");
        assert!(!e.to_string().contains('\n'));
        let e = err("a: 1\n---\nb: 2\n");
        assert!(e.starts_with("<string>:"), "{e}");
    }

    #[test]
    fn yaml_bombs_are_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            let refs = vec![format!("*a{prev}"); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let e = Config::from_yaml_str(&text).expect_err("a billion laughs");
        assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
        assert!(e.to_string().contains("too large or too complex"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_file() {
        let e = Config::from_file(Path::new("/nonexistent/moth/broker.yaml")).expect_err("missing");
        assert_eq!(e.to_string(), "cannot read config file /nonexistent/moth/broker.yaml: No such file or directory");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn from_file_names_the_file_in_warnings() {
        let path = std::env::temp_dir().join(format!("moth-config-{}-warn.yaml", std::process::id()));
        std::fs::write(&path, HBMQTT_DEFAULT_BROKER).expect("write temp config");
        let config = Config::from_file(&path);
        std::fs::remove_file(&path).ok();
        let config = config.expect("valid file");
        assert!(config.warnings[0].starts_with(&format!("{}:8:1: plugins:", path.display())));
    }

    #[test]
    fn raw_config_built_in_code() {
        let raw = ConfigFile {
            listeners: Some(vec![(
                "in-code".to_owned(),
                ListenerFile {
                    bind: Some("127.0.0.1:0".to_owned()),
                    max_connections_alt: Some(3),
                    ..ListenerFile::default()
                },
            )]),
            max_qos: Some(1),
            auth: Some(AuthFile { allow_anonymous: Some(false), ..AuthFile::default() }),
            ..ConfigFile::default()
        };
        let config = Config::from_raw(raw).expect("valid");
        assert_eq!(config.listeners[0].name, "in-code");
        assert_eq!(config.listeners[0].bind, addr("127.0.0.1:0"));
        assert_eq!(config.listeners[0].max_connections, 3);
        assert_eq!(config.max_qos, QoS::AtLeastOnce);
        assert!(!config.auth.allow_anonymous);
        assert!(config.warnings.is_empty());

        let raw = ConfigFile {
            listeners: Some(vec![(
                "in-code".to_owned(),
                ListenerFile { bind: Some("nowhere".to_owned()), ..ListenerFile::default() },
            )]),
            ..ConfigFile::default()
        };
        assert_eq!(
            Config::from_raw(raw).expect_err("bad bind").to_string(),
            "listeners.in-code.bind: invalid address `nowhere`: missing port; expected `host:port`"
        );

        let twice = ListenerFile { bind: Some("1883".to_owned()), ..ListenerFile::default() };
        let raw = ConfigFile {
            listeners: Some(vec![("x".to_owned(), twice.clone()), ("x".to_owned(), twice)]),
            ..ConfigFile::default()
        };
        assert_eq!(
            Config::from_raw(raw).expect_err("duplicate").to_string(),
            "listeners.x: listener `x` is defined twice"
        );
        assert_eq!(Config::from_raw(ConfigFile::default()).expect("empty").listeners, vec![]);
    }

    #[test]
    fn raw_schema_matches_yaml() {
        let loaded = load_yaml(SEED_EXAMPLE, "<string>").expect("loads");
        let listeners = loaded.raw.listeners.expect("listeners");
        assert_eq!(listeners[0].0, "default");
        assert_eq!(listeners[0].1.max_connections_alt, Some(50000));
        assert_eq!(listeners[3].1.ssl, Some(true));
        assert_eq!(listeners[4].1.kind, Some(ListenerKind::Ws));
        assert_eq!(loaded.raw.timeout_disconnect_delay, Some(2.0));
    }

    #[test]
    fn error_helpers() {
        let e = Config::from_yaml_str("max-qos: 3\n").expect_err("bad");
        let d = e.diagnostic().expect("diagnostic");
        assert_eq!(d.origin, "<string>");
        assert_eq!(d.key, "max-qos");
        assert_eq!(d.position, Some(Position { line: 1, column: 10 }));
        assert_eq!(ListenerKind::Ws.to_string(), "ws");
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = err("listeners:\n  a:\n    bind: \"127.0.0.1\\n:99999\"\n");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("127.0.0.1\\n:99999"), "{e}");
    }

    #[test]
    fn metrics_section_is_off_by_default_and_validated_with_positions() {
        assert_eq!(ok("").metrics, None);
        let c = ok("metrics:\n  bind: 127.0.0.1:9100\n");
        assert_eq!(c.metrics, Some(MetricsConfig { bind: addr("127.0.0.1:9100"), path: "/metrics".into() }));
        let c = ok("metrics:\n  bind: 9101\n  path: /prom\n");
        assert_eq!(c.metrics.map(|m| (m.bind.port(), m.path)), Some((9101, "/prom".to_string())));
        assert_eq!(ok("metrics:\n  bind: 127.0.0.1:9100\n  enabled: off\n").metrics, None);
        let e = err("metrics:\n  path: /m\n");
        assert!(e.starts_with("<string>:1:1: metrics:") && e.contains("`bind` is missing"), "{e}");
        let e = err("metrics:\n  bind: 127.0.0.1:9100\n  path: metrics\n");
        assert!(e.starts_with("<string>:3:9: metrics.path:") && e.contains("starting with `/`"), "{e}");
        let e = err("metrics:\n  bind: 127.0.0.1:99999\n");
        assert!(e.starts_with("<string>:2:9: metrics.bind:") && e.contains("port out of range"), "{e}");
        assert!(has_warning(&ok("metrics:\n  bind: 127.0.0.1:9100\n  port: 3\n"), "metrics.port"));
        let e = err("listeners:\n  default:\n    bind: 127.0.0.1:1883\nmetrics:\n  bind: 127.0.0.1:1883\n");
        assert!(e.starts_with("<string>:5:9: metrics.bind:") && e.contains("listener `default`"), "{e}");
    }

    #[test]
    fn log_level_and_format() {
        let c = ok("log-level: info,moth=debug\nlog-format: json\n");
        assert_eq!(c.log_level.as_deref(), Some("info,moth=debug"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(ok("").log_format, LogFormat::Text);
        let e = err("log-level: 'moth=[loud'\n");
        assert!(e.starts_with("<string>:1:12: log-level: invalid log filter"), "{e}");
        let e = err("log-format: xml\n");
        assert!(e.contains("log-format") && e.contains("`text` or `json`"), "{e}");
    }

    #[test]
    fn io_reason_drops_os_error_number() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&e), "No such file or directory");
    }
}
