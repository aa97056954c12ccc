//! What a broker with persistence rebuilds at start-up, before any
//! listener opens: the store is opened (one clear error if it cannot be:
//! held by another moth, not writable, not a moth store, damaged), its
//! sessions, subscriptions and retained messages go back into memory, and
//! the wills of the clients that were connected when the broker stopped are
//! published once it starts, as if their connections had dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moth_plugin_api::TopicAction;
use tracing::{debug, info, warn};

use crate::access::AccessControl;
use crate::config::{Config, PersistenceConfig};
use crate::message::Message;
use crate::plugin_host::input::topic_request;
use crate::routing::router::Router;
use crate::session::state::SessionLimits;
use crate::session::store::{SessionHandle, SessionStore};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::store::batch::Change;
use crate::store::disk::DiskStore;
use crate::store::journal::Journal;
use crate::store::record::WillRecord;
use crate::store::{Loaded, Store};

/// A will found in the store, published when the broker starts.
pub(crate) struct PendingWill {
    client_id: Arc<str>,
    will: WillRecord,
    /// The restored session it belongs to, if it outlived its connection:
    /// a delayed will waits for it, and is dropped if the client comes back.
    session: Option<Arc<SessionHandle>>,
}

/// Opens the store and loads it: the journal, and what was stored.
pub(crate) fn open(p: &PersistenceConfig, stats: &Arc<Stats>) -> Result<(Arc<Journal>, Loaded), String> {
    let started = Instant::now();
    let store = DiskStore::open(&p.path).map_err(|e| e.to_string())?;
    let loaded = store.load().map_err(|e| e.to_string())?;
    let size = store.size_on_disk();
    let journal = Journal::start(Box::new(store), p.sync, stats.clone())
        .map_err(|e| format!("{}: cannot start the store's writer thread: {e}", p.path.display()))?;
    info!(
        path = %p.path.display(), sessions = loaded.sessions.len(), retained = loaded.retained.len(),
        wills = loaded.wills.len(), size_bytes = size.unwrap_or(0), load_ms = started.elapsed().as_millis() as u64,
        sync = ?p.sync, "store loaded"
    );
    Ok((Arc::new(journal), loaded))
}

/// Puts what the store held back into the router and the sessions;
/// returns the wills to publish at start.
pub(crate) fn rebuild(
    loaded: Loaded,
    router: &Router,
    sessions: &SessionStore,
    journal: &Journal,
    config: &Config,
) -> Vec<PendingWill> {
    for m in loaded.retained {
        // A retained message that expired while the broker was down is gone.
        if m.is_expired(Instant::now()) {
            journal.record_quietly(Change::Retained(m.topic.clone(), None));
        } else {
            router.restore_retained(m);
        }
    }
    let limits = SessionLimits::of(&config.limits);
    let mut expired = 0usize;
    let mut restored = HashMap::with_capacity(loaded.sessions.len());
    for stored in &loaded.sessions {
        match sessions.restore(stored, limits) {
            Some((session, subscriptions)) => {
                for (filter, grant) in subscriptions {
                    router.restore_subscription(&session, &filter, grant);
                }
                restored.insert(stored.client_id.clone(), session);
            }
            None => {
                journal.record_quietly(Change::SessionRemoved(stored.client_id.clone()));
                expired += 1;
            }
        }
    }
    if expired > 0 {
        debug!(expired, "stored sessions expired while the broker was down");
    }
    let mut wills = Vec::with_capacity(loaded.wills.len());
    for (client_id, will) in loaded.wills {
        let session = restored.get(&client_id).cloned();
        wills.push(PendingWill { client_id, will, session });
    }
    wills
}

/// Publishes the wills found in the store: at once, or after their MQTT 5
/// delay unless the client has reconnected by then. Runs in `start`.
pub(crate) fn publish_wills(ctx: &Arc<Shared>, wills: Vec<PendingWill>) {
    for w in wills {
        let delay = Duration::from_secs(u64::from(w.will.delay));
        match (&w.session, delay.is_zero()) {
            (Some(_), false) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // Nobody opened the session since the start: due. A
                    // client that came back owns the will record now (its
                    // CONNECT wrote or cleared it), so it is left alone.
                    if w.session.as_ref().is_some_and(|s| s.opened_by() == 0) {
                        publish(&ctx, &w);
                    }
                });
            }
            _ => publish(ctx, &w),
        }
    }
}

fn forget(ctx: &Shared, client_id: &Arc<str>) {
    if let Some(j) = &ctx.journal {
        j.record_quietly(Change::Will(client_id.clone(), None));
    }
}

fn publish(ctx: &Shared, w: &PendingWill) {
    let topic = w.will.message.topic.clone();
    if allowed(&ctx.access, w, &topic) {
        info!(client_id = %w.client_id, topic = %topic, "publishing the will of a client connected when the broker stopped");
        ctx.router.publish(Arc::new(Message::clone(&w.will.message)));
    } else {
        warn!(client_id = %w.client_id, topic = %topic, "stored will not published: its topic is refused");
    }
    forget(ctx, &w.client_id);
}

/// The topic checks of the will's client, as for a live will.
fn allowed(access: &AccessControl, w: &PendingWill, topic: &str) -> bool {
    if !access.checks_topics() {
        return true;
    }
    let user = w.will.user.as_deref();
    let request = topic_request(&w.client_id, user, &w.will.listener, TopicAction::PUBLISH, topic);
    access.check_topic(&request).is_none()
}
