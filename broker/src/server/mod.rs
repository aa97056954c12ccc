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

pub(crate) mod accept;
pub(crate) mod connection;
mod handshake;
pub(crate) mod listener;
pub(crate) mod sweeper;
#[cfg(test)]
mod test_support;
mod topic_alias;
