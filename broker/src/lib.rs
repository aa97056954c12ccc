//! moth: an MQTT 3.1.1 broker that runs as a program or embeds in an
//! application, configured with hbmqtt's YAML schema.
//!
//! Where things live:
//! - `packet.rs`, `codec.rs`, `topic.rs`: the wire format, pure (bytes in, packets out).
//! - `connect.rs`: CONNECT validation and authentication (the CONNACK decision).
//! - `session.rs`: one client's session state, pure: subscriptions, queue, in-flight window.
//! - `inflight.rs`: the QoS 1 and QoS 2 flows, both directions.
//! - `session_store.rs`: all sessions by client id; takeover; persistence seam.
//!   `signal.rs`: how a publisher wakes a session's consumer.
//! - `subscriptions.rs`, `retained.rs`, `router.rs`: where a PUBLISH is routed.
//! - `access.rs`: the one place CONNECT auth and topic checks go through: the chains in force.
//! - `chain.rs`: the chain rule (how plugin answers combine), pure.
//! - `auth_input.rs`, `plugin_call.rs`: what plugins are handed, and how one is called.
//! - `registry.rs`: every plugin by name, built-in or from a library.
//! - `plugin_loader.rs`: loading one plugin library through abi_stable.
//! - `connection.rs`: the I/O driver of one client connection; `keepalive.rs` checks every
//!   connection's keep-alive from one task.
//! - `transport.rs`: TLS handshake and WebSocket upgrade before MQTT, under one timeout;
//!   `tls.rs` (certificates, client CAs, client identity), `cert_identity.rs` (the CN, pure),
//!   `websocket.rs` (upgrade and the frames-to-bytes adapter).
//! - `listener.rs`: accepting connections, connection limits; `fd_limit.rs` raises the
//!   program's open-file limit.
//! - `broker.rs`: the embeddable [`Broker`].
//! - `config/`: the hbmqtt-compatible configuration (keys: `CONFIGURATION.md`).
//! - `stats.rs`: every counter, in one place; `sys.rs` publishes them as
//!   `$SYS` topics, `metrics.rs` renders them for Prometheus and
//!   `metrics_http.rs` serves that text.
//! - `logging.rs`: the program's log output (text or JSON) and its reloadable filter.
//! - `passwd.rs`: password-file edits, pure; `passwd_cmd.rs` is the `moth passwd` command around them,
//!   `file_replace.rs` the atomic write it uses, `tty_password.rs` the no-echo prompt.
//! - `reload.rs`: what a configuration reload (SIGHUP) applies and what needs a restart.

pub mod access;
pub mod auth_input;
pub mod broker;
pub mod cert_identity;
pub mod chain;
pub mod codec;
pub mod config;
pub mod connect;
pub mod connection;
pub mod fd_limit;
pub mod file_replace;
pub mod inflight;
pub mod keepalive;
pub mod listener;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod metrics_http;
pub mod packet;
pub mod passwd;
pub mod passwd_cmd;
pub mod plugin_call;
pub mod plugin_loader;
pub mod registry;
pub mod reload;
pub mod retained;
pub mod router;
pub mod session;
pub mod session_store;
pub mod signal;
pub mod stats;
pub mod subscriptions;
pub mod sys;
#[cfg(test)]
mod test_rng;
pub mod tls;
pub mod topic;
pub mod transport;
mod tty_password;
pub mod websocket;

pub use broker::{Broker, BrokerError, LocalSubscription};
pub use config::{Config, ConfigError};
pub use message::Message;
pub use packet::QoS;
