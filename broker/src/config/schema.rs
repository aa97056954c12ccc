//! The raw schema: the configuration file as written, one field per key.
//!
//! These types mirror the YAML and do no checking beyond the type of each
//! value; `resolve.rs` turns them into the [`Config`](super::Config) the
//! broker runs on. They are public so that a program embedding moth can
//! build a configuration in code, or read it with another serde format.
//!
//! The serde name of each field is one spelling of a key; every spelling is
//! also a row of the key table (`keys.rs`), which a unit test holds to these
//! fields.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Unexpected, Visitor};

use super::hbmqtt::ssl_word;
use super::types::{ChainDefault, ListenerKind, LogFormat, SessionOwner};

/// The configuration file as written: one field per key, every key optional.
///
/// Keys with two spellings have two fields; the second is named `*_alt`.
/// [`Config::from_raw`](super::Config::from_raw) merges them (error if both are set and differ).
/// Deserialising this type ignores unknown keys silently; only
/// [`Config::from_yaml_str`](super::Config::from_yaml_str) and [`Config::from_file`](super::Config::from_file) report them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ConfigFile {
    /// `listeners`: listener name -> settings, in file order. A null entry
    /// (`name:` with nothing after it) is an empty listener.
    #[serde(default, deserialize_with = "de_listeners")]
    pub listeners: Option<Vec<(String, ListenerFile)>>,
    /// `timeout-disconnect-delay`, seconds.
    #[serde(rename = "timeout-disconnect-delay")]
    pub timeout_disconnect_delay: Option<f64>,
    /// `timeout_disconnect_delay` (amqtt's spelling), seconds.
    #[serde(rename = "timeout_disconnect_delay")]
    pub timeout_disconnect_delay_alt: Option<f64>,
    /// `sys_interval`, seconds.
    pub sys_interval: Option<f64>,
    /// `sys-interval`, seconds.
    #[serde(rename = "sys-interval")]
    pub sys_interval_alt: Option<f64>,
    /// `max-qos`: 0, 1 or 2.
    #[serde(rename = "max-qos")]
    pub max_qos: Option<u8>,
    /// `max_qos`: 0, 1 or 2.
    #[serde(rename = "max_qos")]
    pub max_qos_alt: Option<u8>,
    /// `auth`.
    pub auth: Option<AuthFile>,
    /// `topic-check`.
    #[serde(rename = "topic-check")]
    pub topic_check: Option<TopicCheckFile>,
    /// `topic_check`.
    #[serde(rename = "topic_check")]
    pub topic_check_alt: Option<TopicCheckFile>,
    /// `max-packet-size`, bytes.
    #[serde(rename = "max-packet-size")]
    pub max_packet_size: Option<usize>,
    /// `max-inflight`.
    #[serde(rename = "max-inflight")]
    pub max_inflight: Option<u16>,
    /// `max-queued-messages`.
    #[serde(rename = "max-queued-messages")]
    pub max_queued_messages: Option<usize>,
    /// `max-queued-bytes`: per session; 0 = no byte limit.
    #[serde(rename = "max-queued-bytes")]
    pub max_queued_bytes: Option<usize>,
    /// `max-subscriptions-per-client`; 0 = no limit.
    #[serde(rename = "max-subscriptions-per-client")]
    pub max_subscriptions_per_client: Option<usize>,
    /// `retained-max-count`; 0 = no limit.
    #[serde(rename = "retained-max-count")]
    pub retained_max_count: Option<usize>,
    /// `retained-max-bytes`; 0 = no limit.
    #[serde(rename = "retained-max-bytes")]
    pub retained_max_bytes: Option<usize>,
    /// `memory-limit`, bytes; 0 = none.
    #[serde(rename = "memory-limit")]
    pub memory_limit: Option<u64>,
    /// `receive-maximum` (MQTT 5).
    #[serde(rename = "receive-maximum")]
    pub receive_maximum: Option<u16>,
    /// `topic-alias-maximum` (MQTT 5).
    #[serde(rename = "topic-alias-maximum")]
    pub topic_alias_maximum: Option<u16>,
    /// `max-message-expiry-interval`, seconds; null = none.
    #[serde(rename = "max-message-expiry-interval")]
    pub max_message_expiry_interval: Option<f64>,
    /// `shared-subscriptions`: on or off.
    #[serde(rename = "shared-subscriptions")]
    pub shared_subscriptions: Option<bool>,
    /// `response-information` (MQTT 5): what CONNACK tells a client that asks.
    #[serde(rename = "response-information")]
    pub response_information: Option<String>,
    /// `session-owner`: `user` or `client-id`.
    #[serde(rename = "session-owner")]
    pub session_owner: Option<SessionOwner>,
    /// `session-expiry-interval`, seconds; null = never.
    #[serde(rename = "session-expiry-interval")]
    pub session_expiry_interval: Option<f64>,
    /// `persistent-client-expiration` (Mosquitto's name): seconds, or
    /// Mosquitto's `<n>h|d|w|m|y` text.
    #[serde(rename = "persistent-client-expiration")]
    pub persistent_client_expiration: Option<SecondsOrText>,
    /// `session_expiry_interval` (amqtt's spelling), seconds.
    #[serde(rename = "session_expiry_interval")]
    pub session_expiry_interval_alt: Option<f64>,
    /// `metrics`: the Prometheus endpoint.
    pub metrics: Option<MetricsFile>,
    /// `persistence`: where and how durably state is kept.
    pub persistence: Option<PersistenceFile>,
    /// `log-level`: a `RUST_LOG`-style filter.
    #[serde(rename = "log-level")]
    pub log_level: Option<String>,
    /// `log-format`: `text` or `json`.
    #[serde(rename = "log-format")]
    pub log_format: Option<LogFormat>,
    /// `plugins-dir`: one directory or a list.
    #[serde(rename = "plugins-dir")]
    pub plugins_dir: Option<OneOrMany>,
    /// `plugins-config`: plugin name -> options (any YAML; null = none).
    #[serde(rename = "plugins-config")]
    pub plugins_config: Option<BTreeMap<String, serde_json::Value>>,
    /// `plugin-timeout`, seconds.
    #[serde(rename = "plugin-timeout")]
    pub plugin_timeout: Option<f64>,
    /// `plugin-concurrency`.
    #[serde(rename = "plugin-concurrency")]
    pub plugin_concurrency: Option<usize>,
    /// `plugins`: amqtt's map from plugin class paths to their options (or
    /// a list of class paths and one-entry maps); hbmqtt's list of
    /// entry-point names, which hbmqtt ignores, is ignored too. See `config/amqtt.rs`.
    pub plugins: Option<serde_json::Value>,
}

/// A value that may be written as one item or as a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single path, written as a scalar.
    One(PathBuf),
    /// Several paths, written as a list.
    Many(Vec<PathBuf>),
}

/// The `metrics` section, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MetricsFile {
    /// `bind`: the address text, as for listeners.
    #[serde(default, deserialize_with = "de_bind")]
    pub bind: Option<String>,
    /// `path`: the URL path, starting with `/`.
    pub path: Option<String>,
    /// `enabled`: default true.
    pub enabled: Option<bool>,
}

/// The `persistence` section, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PersistenceFile {
    /// `enabled`: default false.
    pub enabled: Option<bool>,
    /// `path`: the store's directory.
    pub path: Option<PathBuf>,
    /// `sync`: `always`, `batch` or `periodic`.
    pub sync: Option<String>,
    /// `sync-interval`, seconds (for `periodic`).
    #[serde(rename = "sync-interval")]
    pub sync_interval: Option<f64>,
}

/// A listener's `type` as written: hbmqtt's `tcp` and `ws`, and the names
/// moth itself gives TLS listeners (`moth --check` prints them), `tls`
/// (`tcp` with `ssl: on`) and `wss` (`ws` with `ssl: on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over WebSocket.
    Ws,
    /// `tcp` with TLS: `ssl` is on.
    Tls,
    /// `ws` with TLS: `ssl` is on.
    Wss,
}

impl ListenerType {
    /// The transport, and whether the type itself turns TLS on.
    pub fn split(self) -> (ListenerKind, bool) {
        match self {
            ListenerType::Tcp => (ListenerKind::Tcp, false),
            ListenerType::Ws => (ListenerKind::Ws, false),
            ListenerType::Tls => (ListenerKind::Tcp, true),
            ListenerType::Wss => (ListenerKind::Ws, true),
        }
    }
}

/// One entry under `listeners`, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ListenerFile {
    /// `bind`: the address text (`host:port`, `[v6]:port`, `:port`, `port`).
    /// A bare number is read as its text.
    #[serde(default, deserialize_with = "de_bind")]
    pub bind: Option<String>,
    /// `type`: `tcp` or `ws`, or `tls` / `wss` for those with `ssl` on.
    #[serde(rename = "type")]
    pub kind: Option<ListenerType>,
    /// `max_connections` (the spelling hbmqtt's code reads).
    pub max_connections: Option<usize>,
    /// `max-connections` (the spelling hbmqtt's documentation shows).
    #[serde(rename = "max-connections")]
    pub max_connections_alt: Option<usize>,
    /// `ssl`: a boolean, or one of the strings on/off/true/false/yes/no in any case.
    #[serde(default, deserialize_with = "de_ssl")]
    pub ssl: Option<bool>,
    /// `cafile`.
    pub cafile: Option<PathBuf>,
    /// `capath`.
    pub capath: Option<PathBuf>,
    /// `cadata`.
    pub cadata: Option<String>,
    /// `certfile`.
    pub certfile: Option<PathBuf>,
    /// `keyfile`.
    pub keyfile: Option<PathBuf>,
    /// `path` (ws listeners).
    pub path: Option<String>,
    /// `require_certificate`.
    pub require_certificate: Option<bool>,
    /// `require-certificate`.
    #[serde(rename = "require-certificate")]
    pub require_certificate_alt: Option<bool>,
    /// `use_identity_as_username`.
    pub use_identity_as_username: Option<bool>,
    /// `use-identity-as-username`.
    #[serde(rename = "use-identity-as-username")]
    pub use_identity_as_username_alt: Option<bool>,
}

/// The `auth` section, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AuthFile {
    /// `plugins`: a list of plugin names.
    pub plugins: Option<Vec<String>>,
    /// `allow-anonymous`.
    #[serde(rename = "allow-anonymous")]
    pub allow_anonymous: Option<bool>,
    /// `allow_anonymous`.
    #[serde(rename = "allow_anonymous")]
    pub allow_anonymous_alt: Option<bool>,
    /// `password-file`.
    #[serde(rename = "password-file")]
    pub password_file: Option<PathBuf>,
    /// `password_file`.
    #[serde(rename = "password_file")]
    pub password_file_alt: Option<PathBuf>,
    /// `default`: `deny` or `allow`.
    pub default: Option<ChainDefault>,
}

/// The `topic-check` section, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TopicCheckFile {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `plugins`: a list of plugin names.
    pub plugins: Option<Vec<String>>,
    /// `acl`: user name -> topic filters. A null list (`alice:`) is empty.
    #[serde(default, deserialize_with = "de_acl")]
    pub acl: Option<BTreeMap<String, Vec<String>>>,
    /// `subscribe-acl`: the ACL of SUBSCRIBE, instead of `acl`.
    #[serde(default, rename = "subscribe-acl", deserialize_with = "de_acl")]
    pub subscribe_acl: Option<BTreeMap<String, Vec<String>>>,
    /// `subscribe_acl`.
    #[serde(default, rename = "subscribe_acl", deserialize_with = "de_acl")]
    pub subscribe_acl_alt: Option<BTreeMap<String, Vec<String>>>,
    /// `publish-acl`: the ACL of PUBLISH, instead of `acl`.
    #[serde(default, rename = "publish-acl", deserialize_with = "de_acl")]
    pub publish_acl: Option<BTreeMap<String, Vec<String>>>,
    /// `publish_acl`.
    #[serde(default, rename = "publish_acl", deserialize_with = "de_acl")]
    pub publish_acl_alt: Option<BTreeMap<String, Vec<String>>>,
    /// `receive-acl`: topics each user may receive; absent = no check.
    #[serde(default, rename = "receive-acl", deserialize_with = "de_acl")]
    pub receive_acl: Option<BTreeMap<String, Vec<String>>>,
    /// `receive_acl`.
    #[serde(default, rename = "receive_acl", deserialize_with = "de_acl")]
    pub receive_acl_alt: Option<BTreeMap<String, Vec<String>>>,
    /// `default`: `deny` or `allow`.
    pub default: Option<ChainDefault>,
}

fn de_listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, ListenerFile)>>, D::Error> {
    struct Ordered(Vec<(String, ListenerFile)>);
    struct OrderedVisitor;
    impl<'de> Visitor<'de> for OrderedVisitor {
        type Value = Ordered;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping from listener names to listener settings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
            let mut out = Vec::new();
            while let Some((name, file)) = map.next_entry::<String, Option<ListenerFile>>()? {
                out.push((name, file.unwrap_or_default()));
            }
            Ok(Ordered(out))
        }
    }
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(OrderedVisitor)
        }
    }
    Ok(Option::<Ordered>::deserialize(d)?.map(|o| o.0))
}

fn de_bind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct BindVisitor;
    impl<'de> Visitor<'de> for BindVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an address such as `0.0.0.0:1883`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(BindVisitor)
        }
    }
    d.deserialize_any(BindVisitor)
}

fn de_ssl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct SslVisitor;
    impl<'de> Visitor<'de> for SslVisitor {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("`on` or `off`")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            ssl_word(v).map(Some).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(SslVisitor)
        }
    }
    d.deserialize_any(SslVisitor)
}

fn de_acl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error> {
    let raw = Option::<BTreeMap<String, Option<Vec<String>>>>::deserialize(d)?;
    Ok(raw.map(|m| m.into_iter().map(|(user, filters)| (user, filters.unwrap_or_default())).collect()))
}

/// A duration written as seconds or as text (`persistent-client-expiration`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SecondsOrText {
    /// A number of seconds.
    Seconds(f64),
    /// Mosquitto's `<n>h|d|w|m|y`.
    Text(String),
}
