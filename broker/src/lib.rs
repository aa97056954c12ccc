//! moth: an MQTT 3.1.1 broker that runs as a program or embeds in an
//! application, configured with hbmqtt's YAML schema.
//!
//! Where things live:
//! - `packet.rs`, `codec.rs`, `topic.rs`: the wire format, pure (bytes in, packets out).
//! - `connect.rs`: CONNECT validation and authentication (the CONNACK decision).
//! - `session.rs`: one client's session state, pure: subscriptions, queue, in-flight window.
//! - `inflight.rs`: the QoS 1 and QoS 2 flows, both directions.
//! - `session_store.rs`: all sessions by client id; takeover; persistence seam.
//! - `subscriptions.rs`, `retained.rs`, `router.rs`: where a PUBLISH is routed.
//! - `access.rs`: the one place CONNECT auth and topic checks go through: the chains in force.
//! - `chain.rs`: the chain rule (how plugin answers combine), pure.
//! - `auth_input.rs`, `plugin_call.rs`: what plugins are handed, and how one is called.
//! - `registry.rs`: every plugin by name, built-in or from a library.
//! - `plugin_loader.rs`: loading one plugin library through abi_stable.
//! - `connection.rs`: the I/O driver of one client connection.
//! - `listener.rs`: accepting connections, connection limits.
//! - `broker.rs`: the embeddable [`Broker`].
//! - `config.rs`: the hbmqtt-compatible configuration.

pub mod access;
pub mod auth_input;
pub mod broker;
pub mod chain;
pub mod codec;
pub mod config;
pub mod connect;
pub mod connection;
pub mod inflight;
pub mod listener;
pub mod message;
pub mod packet;
pub mod plugin_call;
pub mod plugin_loader;
pub mod registry;
pub mod retained;
pub mod router;
pub mod session;
pub mod session_store;
pub mod subscriptions;
pub mod topic;

pub use broker::{Broker, BrokerError, LocalSubscription};
pub use config::{Config, ConfigError};
pub use message::Message;
pub use packet::QoS;
