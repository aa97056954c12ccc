//! The sweeper: one task that enforces keep-alive for every connection and
//! removes offline sessions whose expiry interval has passed.
//!
//! Keep-alive.
//! A client that sends nothing for its keep-alive period plus
//! `timeout-disconnect-delay` is disconnected (hbmqtt's rule; MQTT asks for
//! 1.5 times the keep-alive). A timer per connection would cost each idle
//! client a timer entry (a boxed `tokio::time::Sleep`, 128 bytes of heap)
//! for a deadline that is almost never reached. Instead each session carries
//! a `Liveness` (`liveness.rs`): its attached connection stamps it on every read, and
//! [`run`] looks at all of them every [`SWEEP`], as Mosquitto's main loop
//! does, and wakes the connections that are overdue. A client is therefore
//! disconnected between its deadline and one sweep after it.
//!
//! Session expiry. Each sweep asks the session store for the sessions whose
//! time is up ([`SessionStore::expire`](crate::session::store::SessionStore::expire),
//! free while none is due) and removes their subscriptions from the router.
//! A session therefore lives at most one sweep longer than its interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::session::liveness::now_ms;
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// How often the sweeper looks.
pub(crate) const SWEEP: Duration = Duration::from_millis(500);

/// Sweeps every session each [`SWEEP`] until `shutdown`.
pub(crate) async fn run(ctx: Arc<Shared>, mut shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(SWEEP);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => break,
        }
        let now = now_ms();
        ctx.sessions.for_each(|s| {
            if s.liveness.sweep(now) {
                s.wake.notify();
            }
        });
        expire_sessions(&ctx, now);
        check_memory(&ctx);
    }
}

/// Flags the broker over `memory-limit` (or back under it), by its
/// resident size.
fn check_memory(ctx: &Shared) {
    let limit = ctx.config.limits.memory_limit;
    if limit == 0 {
        return;
    }
    let Some((rss, _)) = crate::stats::resident_memory() else { return };
    let over = rss > limit;
    if ctx.over_memory.swap(over, std::sync::atomic::Ordering::Relaxed) != over {
        if over {
            warn!(rss, limit, "memory-limit reached: refusing new PUBLISHes until memory falls");
        } else {
            info!(rss, limit, "back under memory-limit: PUBLISHes accepted again");
        }
    }
}

/// Removes the offline sessions that expired by `now`, with their
/// subscriptions.
fn expire_sessions(ctx: &Shared, now: u64) {
    let expired = ctx.sessions.expire(now);
    if expired.is_empty() {
        return;
    }
    for session in &expired {
        let filters: Vec<String> = session.lock().subscriptions().keys().cloned().collect();
        ctx.router.unsubscribe_all(session.id(), filters.iter().map(String::as_str));
        debug!(client_id = session.client_id(), "session expired");
    }
    ctx.stats.sessions_expired(expired.len() as u64);
}
