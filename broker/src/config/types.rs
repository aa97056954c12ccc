//! The resolved configuration: the types the broker runs on, with every
//! default filled in, and the defaults themselves.
//!
//! Nothing here knows about YAML; `resolve.rs` builds these from the raw
//! schema (`schema.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::packet::QoS;

/// Default of `timeout-disconnect-delay`: 2 seconds, as in hbmqtt.
pub(crate) const DEFAULT_TIMEOUT_DISCONNECT_DELAY: Duration = Duration::from_secs(2);
/// Default of `max-packet-size`: 1 MiB.
pub(crate) const DEFAULT_MAX_PACKET_SIZE: usize = 1_048_576;
/// The largest possible MQTT packet (1 type byte, 4 length bytes, 268 435 455
/// bytes of content); a larger `max-packet-size` is lowered to this.
pub(crate) const MAX_PACKET_SIZE_CAP: usize = 268_435_460;
/// Default of `max-inflight`.
pub(crate) const DEFAULT_MAX_INFLIGHT: u16 = 32;
/// Default of `receive-maximum`.
pub(crate) const DEFAULT_RECEIVE_MAXIMUM: u16 = 32;
/// Default of `topic-alias-maximum`, Mosquitto's `max_topic_alias`.
pub(crate) const DEFAULT_TOPIC_ALIAS_MAXIMUM: u16 = 10;
/// Default of `max-queued-messages`.
pub(crate) const DEFAULT_MAX_QUEUED_MESSAGES: usize = 1000;
/// Default of `max-queued-bytes`: 32 MiB per session.
pub(crate) const DEFAULT_MAX_QUEUED_BYTES: usize = 32 * 1024 * 1024;
/// Default of `max-subscriptions-per-client`.
pub(crate) const DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 1000;
/// Default of `retained-max-count`.
pub(crate) const DEFAULT_RETAINED_MAX_COUNT: usize = 1_000_000;
/// Default of `retained-max-bytes`: 256 MiB.
pub(crate) const DEFAULT_RETAINED_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Default of `plugin-timeout`.
pub(crate) const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `plugin-concurrency`.
pub(crate) const DEFAULT_PLUGIN_CONCURRENCY: usize = 16;

/// Resolved, validated configuration the broker runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The listeners to start, in file order: only listeners with a `bind`,
    /// each with the `default` template applied.
    pub listeners: Vec<ListenerConfig>,
    /// `timeout-disconnect-delay` (also `timeout_disconnect_delay`): time added
    /// to a client's keep-alive before it is disconnected. Default 2 s.
    pub timeout_disconnect_delay: Duration,
    /// `sys_interval` (also `sys-interval`): period of the `$SYS` updates.
    /// Default 0 = no periodic updates.
    pub sys_interval: Duration,
    /// `max-qos` (also `max_qos`): the highest QoS granted to a SUBSCRIBE.
    /// Default 2.
    pub max_qos: QoS,
    /// The `auth` section.
    pub auth: AuthConfig,
    /// The `topic-check` section.
    pub topic_check: TopicCheckConfig,
    /// moth's resource limits (top-level keys).
    pub limits: Limits,
    /// `session-owner` (moth only): who may resume a session.
    pub session_owner: SessionOwner,
    /// `session-expiry-interval` (amqtt's `session_expiry_interval`): how
    /// long a persistent MQTT 3.1.1 session (clean session 0) is kept after
    /// its client disconnects. `None` (the default, and `null`): until the
    /// client removes it, as hbmqtt and Mosquitto do. MQTT 5 clients ask
    /// for their own interval in CONNECT, of which this is the most moth
    /// grants.
    pub session_expiry_interval: Option<Duration>,
    /// `max-message-expiry-interval` (moth only): the longest a message
    /// waits in a queue or as retained, whatever its publisher asked (MQTT
    /// 5 message expiry interval) and also when it asked nothing (3.1.1).
    /// `None` (the default): messages without an interval wait forever.
    pub max_message_expiry_interval: Option<Duration>,
    /// `shared-subscriptions` (moth only): whether `$share/{group}/{filter}`
    /// subscriptions are allowed. Default true; false refuses them (SUBACK
    /// 0x9E for MQTT 5, 0x80 for 3.1.1) and says so in CONNACK.
    pub shared_subscriptions: bool,
    /// `response-information` (moth only, MQTT 5): the Response Information
    /// CONNACK gives a client whose CONNECT asks for it (request response
    /// information 1), with `{client_id}` replaced by the client's id: the
    /// prefix its response topics should use. `None` (the default): none is
    /// sent, which the standard allows. Topic checks still decide what the
    /// client may use.
    pub response_information: Option<String>,
    /// The `metrics` section: `Some` when the Prometheus endpoint is on.
    pub metrics: Option<MetricsConfig>,
    /// The `persistence` section: `Some` when state is kept on disk.
    pub persistence: Option<PersistenceConfig>,
    /// `log-level`: a `RUST_LOG`-style filter for the `moth` program; `None`
    /// = not set (`info`, or what `-v`/`RUST_LOG` say).
    pub log_level: Option<String>,
    /// `log-format`: how the `moth` program writes log lines.
    pub log_format: LogFormat,
    /// Where plugin libraries are and what options each plugin gets.
    pub plugins: PluginsConfig,
    /// Non-fatal findings (unknown keys, deprecated spellings) for the caller to log.
    /// Each is one line in the same `file:line:column: key: message` form as errors.
    pub warnings: Vec<String>,
}

/// `session-owner`: whose a stored session is, so that one user cannot take
/// over another's by connecting with its client id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionOwner {
    /// The default: a session belongs to the user (user name, or none) that
    /// created it. Another user connecting with its client id is refused
    /// with CONNACK 2 (identifier rejected); the session and its connection
    /// are left alone.
    #[default]
    User,
    /// Mosquitto's behaviour: any user may connect with the client id (the
    /// connection holding it is taken over), but a different user gets a
    /// fresh session: none of the previous user's subscriptions, queued or
    /// in-flight messages.
    ClientId,
}

/// Where and how durably the broker keeps its state (`persistence`
/// section, with `enabled: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct PersistenceConfig {
    /// `path`: the directory of the store (created if missing); the store
    /// is the file `moth.redb` in it. A relative path is relative to the
    /// working directory, as every path of the file is.
    pub path: PathBuf,
    /// `sync` (with `sync-interval`): when a change counts as stored.
    pub sync: SyncMode,
}

/// `sync`: when moth acknowledges what it must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `always`: every change is committed and fsync'd on its own before
    /// what confirms it is sent. The slowest; for measuring the cost.
    Always,
    /// `batch` (the default): group commit. Changes are committed together,
    /// one fsync for all the connections that wait in the same window, and
    /// confirmations wait for it. Nothing acknowledged is lost.
    Batch,
    /// `periodic`: acknowledged at once, committed every interval
    /// (`sync-interval`, default 1 s). A crash loses at most that much, as
    /// with Mosquitto's autosave.
    Periodic(Duration),
}

/// Default of `sync-interval` (for `sync: periodic`).
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The Prometheus endpoint (`metrics` section).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `bind`: where the HTTP endpoint listens.
    pub bind: SocketAddr,
    /// `path`: the URL path that answers; default `/metrics`.
    pub path: String,
}

/// `log-format`: plain text lines or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One network listener to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// The listener's name: its key under `listeners`.
    pub name: String,
    /// `bind`: the address to listen on.
    pub bind: SocketAddr,
    /// `type`: `tcp` (default) or `ws`.
    pub kind: ListenerKind,
    /// `max-connections` or `max_connections`: most clients connected at once
    /// through this listener; 0 = no limit.
    pub max_connections: usize,
    /// `Some` when `ssl` is on.
    pub tls: Option<TlsConfig>,
    /// `path` (ws listeners only): the one URL path WebSocket upgrades are
    /// accepted on; `None` accepts any path, as hbmqtt does.
    pub ws_path: Option<String>,
}

/// The transport of a listener (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// `tcp`: MQTT over a plain TCP stream.
    Tcp,
    /// `ws`: MQTT over WebSocket (subprotocol `mqtt`).
    Ws,
}

impl ListenerKind {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ws => "ws",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TLS settings of a listener with `ssl: on`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// `certfile`: the server certificate chain (PEM). Always `Some` after validation.
    pub certfile: Option<PathBuf>,
    /// `keyfile`: the server private key (PEM). Always `Some` after validation.
    pub keyfile: Option<PathBuf>,
    /// `cafile`: CA certificates for verifying client certificates.
    pub cafile: Option<PathBuf>,
    /// `capath`: a directory of CA certificates.
    pub capath: Option<PathBuf>,
    /// `cadata`: CA certificates given inline (PEM text).
    pub cadata: Option<String>,
    /// `require_certificate` (also `require-certificate`): refuse a TLS
    /// client without a certificate signed by one of the CAs (mutual TLS).
    /// Off by default: as in hbmqtt, a client certificate is optional.
    pub require_certificate: bool,
    /// `use_identity_as_username` (also `use-identity-as-username`), as in
    /// Mosquitto: the user name of a client is the subject CN of its
    /// certificate, whatever its CONNECT says; a client without one is refused.
    pub use_identity_as_username: bool,
}

/// The `auth` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// `auth.plugins`: the authentication plugins to ask, as written
    /// (`auth_anonymous` and `auth.anonymous` alike; the plugin registry
    /// resolves them). `None` = the key is absent: every plugin is asked.
    pub plugins: Option<Vec<String>>,
    /// `allow-anonymous` (also `allow_anonymous`): whether clients without a
    /// user name may connect. Default true.
    pub allow_anonymous: bool,
    /// `password-file` (also `password_file`): the password file of `auth_file`.
    pub password_file: Option<PathBuf>,
    /// `default` (moth only): the answer when every plugin says `ignore`.
    pub default: ChainDefault,
}

/// `auth.default` and `topic-check.default`: what a chain answers when every
/// plugin in it had no opinion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainDefault {
    /// Refuse (the default). For authentication, a client without a user
    /// name is still admitted when `allow-anonymous` is true.
    #[default]
    Deny,
    /// Admit.
    Allow,
}

/// The plugin host's settings (top-level keys, moth only).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// `plugins-dir`: directories searched for plugin libraries (`*.so`), in order.
    pub dirs: Vec<PathBuf>,
    /// `plugins-config`: plugin name (as written) -> its options, handed to
    /// the plugin as JSON text.
    pub options: BTreeMap<String, serde_json::Value>,
    /// `plugin-timeout`: how long one plugin call may take; a call that
    /// takes longer counts as a refusal. A call waiting for its turn is
    /// refused only when no call of that plugin has completed for this long
    /// (`plugin_host/call.rs`). Default 5 s.
    pub timeout: Duration,
    /// `plugin-concurrency`: calls of one plugin running at once; more wait
    /// (see `timeout`). Default 16.
    pub concurrency: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dirs: Vec::new(),
            options: BTreeMap::new(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            concurrency: DEFAULT_PLUGIN_CONCURRENCY,
        }
    }
}

/// The `topic-check` section (also spelled `topic_check`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicCheckConfig {
    /// `enabled`: when false (the default) the topic plugins are never asked.
    pub enabled: bool,
    /// `plugins`: the topic-checking plugins to ask, as written. `None` = absent.
    pub plugins: Option<Vec<String>>,
    /// `acl`: user name -> topic filters that user may use; the key
    /// `anonymous` covers clients without a user name.
    pub acl: BTreeMap<String, Vec<String>>,
    /// What `topic_acl` allows on SUBSCRIBE: `subscribe-acl` (also
    /// `subscribe_acl`), else `acl`. `None` = no limit (an amqtt
    /// `TopicAccessControlListPlugin` without `subscribe_acl` or `acl`).
    pub subscribe_acl: Option<BTreeMap<String, Vec<String>>>,
    /// What `topic_acl` allows on PUBLISH: `publish-acl` (also
    /// `publish_acl`), else `acl` (hbmqtt's own plugin checks no PUBLISH;
    /// moth applies `acl`). `None` = no limit, as for `subscribe_acl`.
    pub publish_acl: Option<BTreeMap<String, Vec<String>>>,
    /// What `topic_acl` lets each user receive: `receive-acl` (also
    /// `receive_acl`). `None` (the default) = deliveries are not checked.
    pub receive_acl: Option<BTreeMap<String, Vec<String>>>,
    /// `default` (moth only): the answer when every plugin says `ignore`.
    pub default: ChainDefault,
}

/// moth's resource limits (top-level keys; hbmqtt has none of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `max-packet-size`: the largest packet accepted from a client, in bytes
    /// (the whole packet, header included). Default 1 048 576; 0 is refused;
    /// values above 268 435 460 are lowered to it, with a warning.
    pub max_packet_size: usize,
    /// `max-inflight`: unacknowledged QoS 1/2 deliveries per session. Default
    /// 32; 0 is refused.
    pub max_inflight: u16,
    /// `max-queued-messages`: messages kept per session while it is offline
    /// or behind its in-flight window. Default 1000; 0 = nothing is queued.
    pub max_queued_messages: usize,
    /// `receive-maximum`: how many QoS 2 PUBLISH an MQTT 5 client may have
    /// awaiting PUBREL, announced in CONNACK; one more ends the connection
    /// (DISCONNECT 0x93). Default 32; 0 is refused.
    pub receive_maximum: u16,
    /// `topic-alias-maximum`: the highest topic alias an MQTT 5 client may
    /// use, announced in CONNACK. Default 10; 0 = no aliases.
    pub topic_alias_maximum: u16,
    /// `max-queued-bytes`: bytes (topic and payload) of the live messages
    /// one session may queue; at the limit the same rule as
    /// `max-queued-messages` applies. Default 32 MiB; 0 = no byte limit
    /// (Mosquitto's `max_queued_bytes`).
    pub max_queued_bytes: usize,
    /// `max-subscriptions-per-client`: subscriptions one session may hold;
    /// a SUBSCRIBE beyond it is refused for that filter (SUBACK 0x97 for
    /// MQTT 5, 0x80 for 3.1.1). Default 1000; 0 = no limit.
    pub max_subscriptions_per_client: usize,
    /// `retained-max-count`: retained topics the broker keeps; a new one
    /// beyond it is delivered but not retained. Default 1 000 000; 0 = no limit.
    pub retained_max_count: usize,
    /// `retained-max-bytes`: bytes (topic and payload) of all retained
    /// messages; one that would go beyond is delivered but not retained.
    /// Default 256 MiB; 0 = no limit.
    pub retained_max_bytes: usize,
    /// `memory-limit` (Mosquitto's `memory_limit`): above this resident
    /// size, new PUBLISHes are refused until it falls again: QoS 0 dropped,
    /// QoS 1/2 answered 0x97 (MQTT 5) or the connection closed (3.1.1,
    /// which cannot refuse); checked twice a second. Default 0: none.
    pub memory_limit: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            receive_maximum: DEFAULT_RECEIVE_MAXIMUM,
            topic_alias_maximum: DEFAULT_TOPIC_ALIAS_MAXIMUM,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_subscriptions_per_client: DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT,
            retained_max_count: DEFAULT_RETAINED_MAX_COUNT,
            retained_max_bytes: DEFAULT_RETAINED_MAX_BYTES,
            memory_limit: 0,
        }
    }
}
