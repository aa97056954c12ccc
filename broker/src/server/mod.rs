//! The server: listeners and their accept loops ([`listener`]), the driver
//! of one client connection ([`connection`]) and the keep-alive sweeper
//! ([`sweeper`]: keep-alive and session expiry); MQTT 5 topic aliases
//! (`topic_alias.rs`).

/// An event with the connection's `listener` and `peer` fields: `$at` is
/// anything with those two fields (`ConnInfo`, `Client`).
macro_rules! conn_log {
    ($level:ident, $at:expr, $($rest:tt)+) => {
        tracing::$level!(listener = %$at.listener, peer = %$at.peer, $($rest)+)
    };
}

pub mod accept;
pub mod connection;
mod handshake;
pub mod listener;
pub mod sweeper;
mod topic_alias;
