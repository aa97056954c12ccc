//! moth: an MQTT 3.1.1 broker that runs as a program or embeds in an
//! application, configured with hbmqtt's YAML schema.
//!
//! # The public interface
//!
//! The public interface is:
//!
//! - Running a broker: [`Broker`] (build it from a configuration, start it,
//!   shut it down, reload it, publish into it and subscribe to it from the
//!   application), [`BrokerError`] with the errors it wraps ([`AccessError`],
//!   [`TlsError`]), [`LocalSubscription`] (an in-process subscription) and
//!   [`ReloadReport`] (what a reload applied and what needs a restart).
//! - Configuring it: [`Config`], what a broker runs on, and its parts
//!   ([`ListenerConfig`], [`ListenerKind`], [`TlsConfig`], [`AuthConfig`],
//!   [`TopicCheckConfig`], [`ChainDefault`], [`PluginsConfig`], [`Limits`],
//!   [`SessionOwner`], [`MetricsConfig`], [`PersistenceConfig`] with its
//!   [`SyncMode`], [`LogFormat`]); the raw schema a
//!   file is read into, for building a configuration in code or from another
//!   serde format ([`ConfigFile`], [`ListenerFile`] with its [`ListenerType`], [`AuthFile`],
//!   [`TopicCheckFile`], [`MetricsFile`], [`PersistenceFile`], [`OneOrMany`], [`SecondsOrText`]; see
//!   [`Config::from_raw`]); [`ConfigError`] with its [`Diagnostic`] and
//!   [`Position`]; [`DEFAULT_YAML`] and [`MAX_CONFIG_FILE_BYTES`].
//! - Messages, as [`Broker::publish`] takes and [`LocalSubscription::recv`]
//!   returns them: [`Message`], [`QoS`], [`MessageProperties`].
//! - What a running broker reports: [`PluginListing`], [`PluginInfo`],
//!   [`PluginOrigin`] and [`ApiVersion`] ([`Broker::plugins`]); [`Snapshot`]
//!   with [`StoreFigures`], [`DROPPING_CLIENTS_SHOWN`] and [`Totals`]
//!   ([`Broker::snapshot`]).
//! - [`protocol`]: the `moth-protocol` crate, for programs that speak MQTT at
//!   the byte level (packets, the codec, topic names and filters). It is
//!   also where the types in [`Message`]'s own signatures live.
//!
//! Nothing else is part of the API. The hidden `internal` module holds what
//! moth's own program, bench and examples reach for; it may change in any
//! release.
//!
//! # Layers
//!
//! Each layer imports only from those below it (`tests/layers.rs` checks
//! this):
//!
//! 1. `moth-protocol` (`broker/protocol/`, used here as `packet`, `codec`,
//!    `topic`, `message`): the wire format of MQTT 5.0, 3.1.1 and 3.1,
//!    sans I/O (`codec/` one file per version, `reason.rs`).
//! 2. `config` (the hbmqtt/amqtt configuration; `config/amqtt.rs` reads
//!    amqtt's plugin map) and `stats` (every counter).
//! 3. `store`: what survives a restart (the `persistence` section): the
//!    records (`record.rs`), group commit and waiting for durability
//!    (`journal.rs`), the store on disk (`disk.rs`, redb) and in memory.
//! 4. `session`: one client's state (`state.rs`), a delivery as its queue
//!    holds it and as it is written (`delivery.rs`), the QoS 1 and QoS 2
//!    flows (`inflight.rs`), all sessions and who owns them (`store.rs`),
//!    what a subscription grants (`subscription.rs`), a shared
//!    subscription's members (`shared_group.rs`), what a persistent
//!    session records in the store (`durable.rs`).
//! 5. `routing`: where a PUBLISH is routed (`router.rs`,
//!    `subscriptions.rs`, `shared.rs`, `retained.rs`).
//! 6. `plugin_host`: the registry of plugins, the library loader, what
//!    plugins are handed and how one is called.
//! 7. `access`: the chains in force and the chain rule (`chain.rs`);
//!    where a CONNECT is authenticated (`connect.rs`).
//! 8. `shared`: the state the server and the broker share.
//! 9. `transport`: TLS, client certificates, WebSocket.
//! 10. `server` (listeners, the CONNECT phase `handshake.rs`, the connection
//!     driver with its packet handlers `connection/packets.rs`, keep-alive
//!     and session expiry `sweeper.rs`) and
//!     `observability` (`$SYS`, Prometheus, logging).
//! 11. `broker`: the embeddable [`Broker`], what a reload applies, what a
//!     start-up rebuilds from the store (`restore.rs`).
//! 12. `cli`: what the `moth` program adds (`moth passwd`, the open-file limit).

mod access;
mod broker;
mod cli;
mod config;
mod lock;
mod observability;
mod plugin_host;
mod routing;
mod server;
mod session;
mod shared;
mod shutdown;
mod stats;
mod store;
#[cfg(test)]
mod testing;
mod transport;

/// Not part of the API: the session state machine for the `session` fuzz
/// target (`broker/protocol/fuzz`), compiled only under cargo-fuzz.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::session::fuzz::session;
}

// The protocol layer, under the names the other layers use (`crate::packet`).
use moth_protocol::{codec, message, packet, topic};

/// Not part of the API: what moth's own binary (`broker/src/main.rs`), its
/// bench, its examples and its tests reach for inside the broker. It may
/// change in any release.
#[doc(hidden)]
pub mod internal {
    // The `moth` program.
    pub use crate::cli::fd_limit::raise as raise_fd_limit;
    pub use crate::cli::file_size::ignore_file_size_signal;
    pub use crate::cli::passwd_cmd::{PasswdArgs, run as run_passwd};
    pub use crate::observability::logging::{LogControl, init as init_logging};
    pub use crate::transport::transport_name;
    // tests/tests/tls.rs: how long a silent client keeps its socket.
    pub use crate::transport::HANDSHAKE_TIMEOUT;
    // bench/src/bin/connheap.rs: what one connection costs.
    pub use crate::server::connection::{serve_future_size, state_sizes};
    // examples/plugin_bench.rs: a plugin call without a broker around it.
    pub use crate::plugin_host::input::AuthInput;
    pub use crate::plugin_host::loader::load as load_plugin_library;
    pub use crate::plugin_host::registry::Registry;
}

/* The public interface is: */
pub use crate::access::{AccessError, PluginListing};
pub use crate::broker::reload::ReloadReport;
pub use crate::broker::{Broker, BrokerError, LocalSubscription};
pub use crate::config::{
    AuthConfig, AuthFile, ChainDefault, Config, ConfigError, ConfigFile, DEFAULT_YAML, Diagnostic, Limits,
    ListenerConfig, ListenerFile, ListenerKind, ListenerType, LogFormat, MAX_CONFIG_FILE_BYTES, MetricsConfig,
    MetricsFile, OneOrMany, PersistenceConfig, PersistenceFile, PluginsConfig, Position, SecondsOrText, SessionOwner,
    SyncMode, TlsConfig, TopicCheckConfig, TopicCheckFile,
};
pub use crate::observability::sys::{DROPPING_CLIENTS_SHOWN, Snapshot, StoreFigures};
pub use crate::plugin_host::registry::{PluginInfo, PluginOrigin};
pub use crate::stats::Totals;
pub use crate::transport::tls::TlsError;
pub use moth_plugin_api::ApiVersion;
pub use moth_protocol as protocol;
pub use moth_protocol::message::Message;
pub use moth_protocol::packet::{MessageProperties, QoS};
