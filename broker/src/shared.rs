//! The state every part of a running broker shares: the configuration it
//! runs on, the router, the sessions, the counters and the access control.
//! It sits below the server (listeners, connections, keep-alive, `$SYS`,
//! metrics), which read it, and the embeddable [`crate::Broker`], which
//! owns it; keeping it here rather than in the `Broker` is what lets those
//! depend on it without depending on each other (quinn-proto's `shared.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::access::AccessControl;
use crate::config::Config;
use crate::routing::router::Router;
use crate::session::store::SessionStore;
use crate::stats::Stats;
use crate::store::journal::Journal;

/// What connections, listeners and the broker's tasks share.
pub(crate) struct Shared {
    /// The configuration the broker was started with. `reload` swaps the
    /// access control only; the rest of a new file needs a restart.
    pub config: Config,
    pub router: Router,
    pub sessions: SessionStore,
    /// The one set of counters ($SYS and Prometheus read it).
    pub stats: Arc<Stats>,
    /// The authentication and topic-check chains; `Broker::reload` swaps
    /// them inside.
    pub access: AccessControl,
    /// With persistence on: where changes are recorded, and what
    /// connections wait on before they confirm them.
    pub journal: Option<Arc<Journal>>,
    /// Set by the sweeper while the resident size is above `memory-limit`:
    /// new PUBLISHes are refused meanwhile.
    pub(crate) over_memory: AtomicBool,
    pub(crate) next_conn: AtomicU64,
    /// Set by `Broker::shutdown` (and cleared by `start`): attached
    /// connections look at it when woken, instead of each holding a future
    /// on the shutdown signal.
    pub(crate) stopping: AtomicBool,
    /// Notified when `Broker::shutdown` begins: in-process subscribers
    /// waiting in `recv` learn there is no more to come.
    pub(crate) stopped: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether `memory-limit` is reached (one relaxed load per PUBLISH).
    pub(crate) fn over_memory(&self) -> bool {
        self.over_memory.load(Ordering::Relaxed)
    }

    /// Whether the broker is shutting down.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Marks the broker stopping (shutdown) or running again (start).
    pub(crate) fn set_stopping(&self, stopping: bool) {
        self.stopping.store(stopping, Ordering::Release);
    }
}
