//! What the server's unit tests share: a broker context with no listeners
//! behind it, and the connection facts of a test peer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::access::AccessControl;
use crate::config::Config;
use crate::routing::router::Router;
use crate::server::connection::ConnInfo;
use crate::session::store::SessionStore;
use crate::shared::Shared;
use crate::stats::Stats;

/// A broker context on the default configuration, admitting every client.
pub(crate) fn shared() -> Arc<Shared> {
    shared_with(Config::default())
}

/// A broker context on `config`, admitting every client.
pub(crate) fn shared_with(config: Config) -> Arc<Shared> {
    let stats = Arc::new(Stats::new());
    Arc::new(Shared {
        router: Router::with_stats(stats.clone()),
        sessions: SessionStore::new(),
        access: AccessControl::allow_all(),
        stats,
        config,
        journal: None,
        next_conn: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        over_memory: AtomicBool::new(false),
        stopped: tokio::sync::Notify::new(),
    })
}

/// A plain TCP peer on the listener `test`.
pub(crate) fn info(identity_as_username: bool) -> ConnInfo {
    ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!("a literal address")),
        listener: Arc::from("test"),
        tls_identity: None,
        tls_certificate: None,
        identity_as_username,
    }
}
