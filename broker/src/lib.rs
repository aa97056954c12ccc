//! moth: an MQTT 3.1.1 broker that runs as a program or embeds in an
//! application, configured with hbmqtt's YAML schema.
//!
//! Layers, each importing only from those below it (`tests/layers.rs`
//! checks this):
//!
//! 1. `moth-protocol` (`broker/protocol/`, re-exported here as [`packet`],
//!    [`codec`], [`topic`], [`message`]): the wire format, sans I/O.
//! 2. [`config`] (the hbmqtt/amqtt configuration; `config/amqtt.rs` reads
//!    amqtt's plugin map) and [`stats`] (every counter).
//! 3. [`session`]: one client's state (`state.rs`), the QoS 1 and QoS 2
//!    flows (`inflight.rs`), all sessions and who owns them (`store.rs`).
//! 4. [`routing`]: where a PUBLISH is routed (`router.rs`,
//!    `subscriptions.rs`, `retained.rs`).
//! 5. [`plugin_host`]: the registry of plugins, the library loader, what
//!    plugins are handed and how one is called.
//! 6. [`access`]: the chains in force and the chain rule (`chain.rs`);
//!    where a CONNECT is authenticated (`connect.rs`).
//! 7. [`shared`]: the state the server and the broker share.
//! 8. [`transport`]: TLS, client certificates, WebSocket.
//! 9. [`server`] (listeners, the connection driver, keep-alive) and
//!    [`observability`] (`$SYS`, Prometheus, logging).
//! 10. [`broker`]: the embeddable [`Broker`] and what a reload applies.
//! 11. [`cli`]: what the `moth` program adds (`moth passwd`, the open-file limit).

pub mod access;
pub mod broker;
pub mod cli;
pub mod config;
mod lock;
pub mod observability;
pub mod plugin_host;
pub mod routing;
pub mod server;
pub mod session;
pub mod shared;
mod shutdown;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod transport;

pub use moth_protocol::{codec, message, packet, topic};

pub use broker::{Broker, BrokerError, LocalSubscription};
pub use config::{Config, ConfigError};
pub use message::Message;
pub use packet::QoS;
