//! All sessions, by client id, and who is connected to each.
//!
//! This is the one type that holds sessions, so that persistence to disk can
//! later be added behind it without touching the connection code.
//!
//! Takeover [MQTT-3.1.4-2]: when a client id connects while another
//! connection holds its session, `open` hands back the old connection's kick
//! sender. The new connection fires it and then waits for the session's
//! `slot` (an async mutex the attached connection holds), so the two never
//! touch the session at the same time. The newest opener is recorded at once,
//! so a third connection racing in kicks the second even before it attached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::session::{Session, SessionLimits};
use crate::signal::Signal;
use crate::subscriptions::SubscriberId;

/// Why a connection is asked to close by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection with the same client id took the session over.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
}

/// A session as shared between its connection and the publishers that queue
/// messages for it.
#[derive(Debug)]
pub struct SessionHandle {
    id: SubscriberId,
    client_id: Arc<str>,
    state: Mutex<Session>,
    /// Woken when a message is queued for an online session.
    pub wake: Signal,
    /// Held by the attached connection; see the module docs.
    pub slot: Arc<tokio::sync::Mutex<()>>,
}

impl SessionHandle {
    pub fn new(id: SubscriberId, client_id: Arc<str>, limits: SessionLimits) -> Self {
        SessionHandle {
            id,
            client_id,
            state: Mutex::new(Session::new(limits)),
            wake: Signal::new(),
            slot: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn id(&self) -> SubscriberId {
        self.id
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Locks the session state. Never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while holding this lock is a broker bug; the state itself
        // is still consistent enough to keep serving other clients.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Entry {
    session: Arc<SessionHandle>,
    /// The newest connection that opened this session: its id and kick
    /// sender (taken when used).
    owner: Option<(u64, Option<oneshot::Sender<Kick>>)>,
}

/// What `open` found.
pub struct Opened {
    pub session: Arc<SessionHandle>,
    /// The previous connection, to be kicked before attaching.
    pub previous: Option<oneshot::Sender<Kick>>,
}

#[derive(Default)]
pub struct SessionStore {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
    next_id: AtomicU64,
}

impl SessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh subscriber id, also used for in-process subscribers.
    pub fn next_id(&self) -> SubscriberId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Finds or creates the session for `client_id` and records connection
    /// `conn_id` as its newest owner.
    pub fn open(&self, client_id: &str, conn_id: u64, kick: oneshot::Sender<Kick>, limits: SessionLimits) -> Opened {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(client_id) {
            let previous = entry.owner.replace((conn_id, Some(kick))).and_then(|(_, k)| k);
            return Opened { session: entry.session.clone(), previous };
        }
        let client_id: Arc<str> = Arc::from(client_id);
        let session = Arc::new(SessionHandle::new(self.next_id(), client_id.clone(), limits));
        entries.insert(client_id, Entry { session: session.clone(), owner: Some((conn_id, Some(kick))) });
        Opened { session, previous: None }
    }

    /// Called when connection `conn_id` ends. Clears the owner if it is still
    /// this connection; when `discard` (a clean session) also removes the
    /// session. Returns true when the session was removed, in which case the
    /// caller removes its subscriptions from the router.
    pub fn close(&self, client_id: &str, conn_id: u64, discard: bool) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(client_id) else { return false };
        if entry.owner.as_ref().map(|(id, _)| *id) != Some(conn_id) {
            // Someone newer has opened the session; it is theirs now.
            return false;
        }
        entry.owner = None;
        if discard {
            entries.remove(client_id);
            return true;
        }
        false
    }

    /// Asks every attached connection to close (broker shutdown). A
    /// connection that opens its session after this must look at the
    /// shutdown signal itself, which is set before this is called.
    pub fn kick_all(&self, why: Kick) {
        for entry in self.entries().values_mut() {
            if let Some((_, kick)) = &mut entry.owner
                && let Some(k) = kick.take()
            {
                let _ = k.send(why);
            }
        }
    }

    /// Every session's handle (for shutdown and statistics).
    pub fn sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.entries().values().map(|e| e.session.clone()).collect()
    }

    /// Number of sessions held, connected or not.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 4 };

    #[test]
    fn mqtt_3_1_4_2_second_open_returns_previous_owner() {
        let store = SessionStore::new();
        let (k1, mut r1) = oneshot::channel();
        let a = store.open("c", 1, k1, LIMITS);
        assert!(a.previous.is_none());
        let (k2, _r2) = oneshot::channel();
        let b = store.open("c", 2, k2, LIMITS);
        assert!(Arc::ptr_eq(&a.session, &b.session));
        b.previous.expect("previous owner").send(Kick::TakenOver).unwrap();
        assert_eq!(r1.try_recv(), Ok(Kick::TakenOver));
        assert!(!store.close("c", 1, true), "old connection must not discard the new one's session");
        assert_eq!(store.len(), 1);
        assert!(store.close("c", 2, true));
        assert!(store.is_empty());
    }

    #[test]
    fn persistent_session_survives_close() {
        let store = SessionStore::new();
        let (k, _r) = oneshot::channel();
        let a = store.open("p", 1, k, LIMITS);
        assert!(!store.close("p", 1, false));
        let (k, _r) = oneshot::channel();
        let b = store.open("p", 2, k, LIMITS);
        assert!(Arc::ptr_eq(&a.session, &b.session));
        assert!(b.previous.is_none());
    }
}
