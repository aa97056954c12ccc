//! All sessions, by client id, and who is connected to each.
//!
//! This is the one type that holds sessions, so that persistence to disk can
//! later be added behind it without touching the connection code.
//!
//! Takeover [MQTT-3.1.4-2]: every session records its *owner*, the newest
//! connection that opened it. A connection that finds itself no longer the
//! owner closes; `open` wakes the session so the attached one notices at
//! once. The new connection then waits for the session's `slot` (a
//! one-permit semaphore the attached connection holds), so the two never
//! touch the session at the same time. The newest opener is recorded at
//! once, so a third connection racing in supersedes the second even before
//! it attached.
//!
//! Ownership by user (`session-owner`): every session also records the user
//! (user name, or none) that created it. With [`SessionOwner::User`] (the
//! default) another user who opens it by its client id is refused and the
//! session is not touched: neither its connection nor its state, so bob
//! cannot read alice's queued messages, inherit her subscriptions, wipe her
//! session or kick her off. With [`SessionOwner::ClientId`] (Mosquitto's
//! rule) the takeover happens but the new user starts from a fresh session.
//!
//! Expiry: a session outlives its connection for as long as its [`Expiry`]
//! says (MQTT 3.1.1: clean session 0 keeps it, `session-expiry-interval`
//! bounds it; MQTT 5: the session expiry interval [MQTT-3.1.2-23]). The
//! server's sweeper calls [`SessionStore::expire`], which removes the
//! offline sessions whose time is up, and costs nothing while no offline
//! session has a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::SessionOwner;
use crate::lock::Locked;
use crate::session::durable::Durable;
use crate::session::liveness::{Liveness, now_ms};
use crate::session::signal::Signal;
use crate::session::state::{Session, SessionLimits};
use crate::store::StoredSession;
use crate::store::journal::Journal;
use crate::store::record::{self, Keep, SessionRecord};

/// Identifies a subscriber (a session, or an in-process subscriber) in the
/// subscription tree; the store hands them out ([`SessionStore::next_id`]).
pub(crate) type SubscriberId = u64;

/// A session as shared between its connection and the publishers that queue
/// messages for it.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    id: SubscriberId,
    client_id: Arc<str>,
    state: Mutex<Session>,
    /// Woken when a message is queued for an online session, when a newer
    /// connection takes the session over, when the keep-alive sweeper finds
    /// the client silent and when the broker shuts down.
    pub wake: Signal,
    /// The connection id of the newest connection that opened this session;
    /// 0 when none has it open.
    owner: AtomicU64,
    /// The connection id of the newest connection that opened this session,
    /// kept when it closes: a delayed will checks that nobody came since.
    opened_by: AtomicU64,
    /// One permit, held by the attached connection; see the module docs.
    slot: Semaphore,
    /// Keep-alive of the attached connection (`server/sweeper.rs`).
    pub liveness: Liveness,
    /// The user whose session this is (see the module docs); only changed
    /// under the store's lock, by [`SessionStore::open`].
    user: Mutex<Option<Arc<str>>>,
    /// When the session expires (`now_ms`), [`NEVER`] while a connection
    /// has it or when it never expires. Changed under the store's lock.
    expires_at: AtomicU64,
}

/// `expires_at` of a session that does not expire (now).
const NEVER: u64 = u64::MAX;

/// How long a session outlives its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Removed when its connection ends: clean session 1, or an MQTT 5
    /// session expiry interval of 0.
    AtClose,
    /// Kept this long after its connection ends.
    After(Duration),
    /// Kept until a client removes it (clean session 0 without
    /// `session-expiry-interval`, or an MQTT 5 interval of 0xFFFFFFFF).
    Never,
}

impl Expiry {
    /// The meaning of an MQTT 5 session expiry interval, in seconds
    /// [MQTT 5 §3.1.2.11.2].
    pub(crate) fn from_interval(seconds: u32) -> Expiry {
        match seconds {
            0 => Expiry::AtClose,
            u32::MAX => Expiry::Never,
            s => Expiry::After(Duration::from_secs(u64::from(s))),
        }
    }

    /// Whether the session outlives its connection at all.
    pub(crate) fn keeps(self) -> bool {
        self != Expiry::AtClose
    }
}

/// What [`SessionStore::open`] found.
#[derive(Debug)]
pub(crate) enum Opened {
    /// The session to attach to: new, or the user's own. `fresh` is set
    /// when it held another user's state, which the caller must discard
    /// (`Session::reset`) once it holds the slot.
    Session { session: Arc<SessionHandle>, fresh: bool },
    /// The client id belongs to another user's session (`session-owner: user`).
    OwnedByOther,
}

/// The session's slot, held by the attached connection and given back when
/// dropped (whatever way the connection ends).
#[derive(Debug)]
pub(crate) struct SlotHeld(Arc<SessionHandle>);

impl Drop for SlotHeld {
    fn drop(&mut self) {
        self.0.slot.add_permits(1);
    }
}

impl SessionHandle {
    pub(crate) fn new(id: SubscriberId, client_id: Arc<str>, limits: SessionLimits) -> Self {
        Self::with_journal(id, client_id, limits, None)
    }

    fn with_journal(
        id: SubscriberId,
        client_id: Arc<str>,
        limits: SessionLimits,
        journal: Option<&Arc<Journal>>,
    ) -> Self {
        let durable = journal.map(|j| Durable::new(j.clone(), client_id.clone()));
        SessionHandle {
            id,
            client_id,
            state: Mutex::new(Session::with_durable(limits, durable)),
            wake: Signal::new(),
            owner: AtomicU64::new(0),
            opened_by: AtomicU64::new(0),
            slot: Semaphore::new(1),
            liveness: Liveness::default(),
            user: Mutex::new(None),
            expires_at: AtomicU64::new(NEVER),
        }
    }

    /// The user whose session this is (`None`: a client without user name).
    #[cfg(test)]
    pub(crate) fn user(&self) -> Option<Arc<str>> {
        self.user.locked().clone()
    }

    pub(crate) fn id(&self) -> SubscriberId {
        self.id
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client id, shared (the store's records are keyed by it).
    pub(crate) fn client_id_arc(&self) -> Arc<str> {
        self.client_id.clone()
    }

    /// The connection that may use the session (0: none).
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Acquire)
    }

    /// The newest connection that opened the session, attached or not.
    pub(crate) fn opened_by(&self) -> u64 {
        self.opened_by.load(Ordering::Acquire)
    }

    /// Waits until no other connection is attached, then holds the slot.
    pub(crate) async fn acquire_slot(self: &Arc<Self>) -> SlotHeld {
        // The semaphore is never closed, so acquiring only fails if it were.
        if let Ok(permit) = self.slot.acquire().await {
            permit.forget();
        }
        SlotHeld(self.clone())
    }

    /// Locks the session state. Never hold the guard across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while holding this lock is a broker bug; the state itself
        // is still consistent enough to keep serving other clients.
        self.state.locked()
    }
}

pub(crate) struct SessionStore {
    entries: Mutex<HashMap<Arc<str>, Arc<SessionHandle>>>,
    next_id: AtomicU64,
    /// No offline session expires before this (`now_ms`): lets
    /// [`SessionStore::expire`] skip the walk.
    next_expiry: AtomicU64,
    /// With persistence on: every session records its changes here.
    journal: Option<Arc<Journal>>,
}

impl Default for SessionStore {
    fn default() -> Self {
        SessionStore {
            entries: Mutex::default(),
            next_id: AtomicU64::new(0),
            next_expiry: AtomicU64::new(NEVER),
            journal: None,
        }
    }
}

/// A session put back from the store, with its subscriptions for the router.
pub(crate) type Restored = (Arc<SessionHandle>, Vec<(String, crate::session::subscription::Grant)>);

/// The stored record of a session kept as `expiry` says, for `user`.
pub(crate) fn session_record(user: Option<&str>, expiry: Expiry) -> SessionRecord {
    let keep = match expiry {
        Expiry::After(d) => Keep::For(d.as_secs()),
        Expiry::Never | Expiry::AtClose => Keep::Forever,
    };
    SessionRecord { user: user.map(str::to_owned), keep, expires_at: None }
}

impl SessionStore {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A store whose sessions record their changes in `journal`.
    pub(crate) fn with_journal(journal: Option<Arc<Journal>>) -> Self {
        SessionStore { journal, ..Self::default() }
    }

    /// Puts back a session loaded from the store (start-up), offline, with
    /// its expiry clock running from its stored deadline (from now, if the
    /// broker stopped while it was connected). Returns it with its
    /// subscriptions, for the router; `None` when it expired while the
    /// broker was down (the caller removes its records).
    pub(crate) fn restore(&self, stored: &StoredSession, limits: SessionLimits) -> Option<Restored> {
        let wall = record::wall_ms();
        let expires_at = match (stored.record.keep, stored.record.expires_at) {
            (Keep::Forever, _) => NEVER,
            (Keep::For(_), Some(at)) if at <= wall => return None,
            (Keep::For(_), Some(at)) => now_ms().saturating_add(at - wall),
            (Keep::For(secs), None) => now_ms().saturating_add(secs.saturating_mul(1000)),
        };
        let session = Arc::new(SessionHandle::with_journal(
            self.next_id(),
            stored.client_id.clone(),
            limits,
            self.journal.as_ref(),
        ));
        *session.user.locked() = stored.record.user.as_deref().map(Arc::from);
        session.expires_at.store(expires_at, Ordering::Relaxed);
        self.next_expiry.fetch_min(expires_at, Ordering::Relaxed);
        let subscriptions = session.lock().restore(stored);
        self.entries().insert(stored.client_id.clone(), session.clone());
        Some((session, subscriptions))
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<SessionHandle>>> {
        self.entries.locked()
    }

    /// A fresh subscriber id, also used for in-process subscribers.
    pub(crate) fn next_id(&self) -> SubscriberId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Finds or creates the session for `client_id` on behalf of `user`
    /// and records connection `conn_id` (never 0) as its owner. A previous
    /// owner is woken to find out it was taken over. Another user's session
    /// is refused or handed over fresh, as `rule` says (module docs).
    pub(crate) fn open(
        &self,
        client_id: &str,
        conn_id: u64,
        user: Option<&str>,
        rule: SessionOwner,
        limits: SessionLimits,
    ) -> Opened {
        let mut entries = self.entries();
        if let Some(session) = entries.get(client_id) {
            let mut owner = session.user.locked();
            let fresh = owner.as_deref() != user;
            if fresh {
                match rule {
                    SessionOwner::User => return Opened::OwnedByOther,
                    SessionOwner::ClientId => *owner = user.map(Arc::from),
                }
            }
            drop(owner);
            session.expires_at.store(NEVER, Ordering::Relaxed);
            session.opened_by.store(conn_id, Ordering::Release);
            if session.owner.swap(conn_id, Ordering::AcqRel) != 0 {
                session.wake.notify();
            }
            return Opened::Session { session: session.clone(), fresh };
        }
        let client_id: Arc<str> = Arc::from(client_id);
        let session =
            Arc::new(SessionHandle::with_journal(self.next_id(), client_id.clone(), limits, self.journal.as_ref()));
        *session.user.locked() = user.map(Arc::from);
        session.owner.store(conn_id, Ordering::Release);
        session.opened_by.store(conn_id, Ordering::Release);
        entries.insert(client_id, session.clone());
        Opened::Session { session, fresh: false }
    }

    /// Called when connection `conn_id` ends. Clears the owner if it is still
    /// this connection; then removes the session at once
    /// ([`Expiry::AtClose`]) or starts its expiry clock. Returns true when
    /// the session was removed, in which case the caller removes its
    /// subscriptions from the router.
    pub(crate) fn close(&self, client_id: &str, conn_id: u64, expiry: Expiry) -> bool {
        let mut entries = self.entries();
        let Some(session) = entries.get(client_id) else { return false };
        if session.owner.compare_exchange(conn_id, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Someone newer has opened the session; it is theirs now.
            return false;
        }
        match expiry {
            Expiry::AtClose => {
                session.lock().forget_stored();
                entries.remove(client_id);
                return true;
            }
            Expiry::Never => {
                session.expires_at.store(NEVER, Ordering::Relaxed);
                session.lock().stored_offline(None);
            }
            Expiry::After(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(NEVER);
                let at = now_ms().saturating_add(ms);
                session.expires_at.store(at, Ordering::Relaxed);
                self.next_expiry.fetch_min(at, Ordering::Relaxed);
                session.lock().stored_offline(Some(record::wall_ms().saturating_add(ms)));
            }
        }
        false
    }

    /// Removes every offline session whose expiry has come and returns them
    /// (the caller removes their subscriptions from the router). Walks the
    /// sessions only when one may be due.
    pub(crate) fn expire(&self, now: u64) -> Vec<Arc<SessionHandle>> {
        if self.next_expiry.load(Ordering::Relaxed) > now {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let mut soonest = NEVER;
        // The lock is held until `next_expiry` is stored, so a `close` that
        // sets an earlier deadline meanwhile is not overwritten.
        let mut entries = self.entries();
        entries.retain(|_, s| {
            let at = s.expires_at.load(Ordering::Relaxed);
            // Owner 0: no connection has it (open resets the deadline too).
            if at <= now && s.owner() == 0 {
                s.lock().forget_stored();
                expired.push(s.clone());
                return false;
            }
            soonest = soonest.min(at);
            true
        });
        self.next_expiry.store(soonest, Ordering::Relaxed);
        drop(entries);
        expired
    }

    /// Wakes every session (broker shutdown: the attached connections then
    /// see the broker stopping).
    pub(crate) fn wake_all(&self) {
        self.for_each(|s| s.wake.notify());
    }

    /// Calls `f` on every session, under the store's lock: `f` must be quick.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<SessionHandle>)) {
        for s in self.entries().values() {
            f(s);
        }
    }

    /// Every session's handle (for shutdown and statistics).
    pub(crate) fn sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.entries().values().cloned().collect()
    }

    /// Number of sessions held, connected or not.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Waker};

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 4, max_queued_bytes: 0 };

    /// `open` for a user under the default rule, expecting a session.
    fn open_as(store: &SessionStore, client_id: &str, conn_id: u64, user: Option<&str>) -> Arc<SessionHandle> {
        match store.open(client_id, conn_id, user, SessionOwner::User, LIMITS) {
            Opened::Session { session, fresh: false } => session,
            other => panic!("expected the user's own session, got {other:?}"),
        }
    }

    #[test]
    fn another_users_session_is_refused_and_left_alone() {
        let store = SessionStore::new();
        let alice = open_as(&store, "dev1", 1, Some("alice"));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(alice.wake.poll(&mut cx).is_pending());
        for bob in [Some("bob"), None] {
            assert!(matches!(store.open("dev1", 2, bob, SessionOwner::User, LIMITS), Opened::OwnedByOther));
        }
        assert_eq!(alice.owner(), 1, "alice's connection keeps the session");
        assert!(alice.wake.poll(&mut cx).is_pending(), "and is not even woken");
        assert_eq!(alice.user().as_deref(), Some("alice"));
        // Offline, it is still hers.
        assert!(!store.close("dev1", 1, Expiry::Never));
        assert!(matches!(store.open("dev1", 3, Some("bob"), SessionOwner::User, LIMITS), Opened::OwnedByOther));
        assert!(Arc::ptr_eq(&open_as(&store, "dev1", 4, Some("alice")), &alice));
        // Anonymous sessions belong to anonymous clients.
        open_as(&store, "anon", 5, None);
        assert!(matches!(store.open("anon", 6, Some("alice"), SessionOwner::User, LIMITS), Opened::OwnedByOther));
    }

    #[test]
    fn client_id_rule_hands_another_user_a_fresh_session() {
        let store = SessionStore::new();
        let alice = open_as(&store, "dev1", 1, Some("alice"));
        let Opened::Session { session, fresh } = store.open("dev1", 2, Some("bob"), SessionOwner::ClientId, LIMITS)
        else {
            panic!("client-id rule: bob gets in")
        };
        assert!(fresh, "bob must not inherit alice's state");
        assert!(Arc::ptr_eq(&session, &alice));
        assert_eq!(session.owner(), 2, "alice's connection is taken over");
        assert_eq!(session.user().as_deref(), Some("bob"), "the session is bob's now");
        let Opened::Session { fresh, .. } = store.open("dev1", 3, Some("bob"), SessionOwner::ClientId, LIMITS) else {
            panic!()
        };
        assert!(!fresh, "bob's own session again");
    }

    #[test]
    fn mqtt_3_1_4_2_second_open_takes_the_session_over() {
        let store = SessionStore::new();
        let a = open_as(&store, "c", 1, None);
        assert_eq!(a.owner(), 1);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(a.wake.poll(&mut cx).is_pending());
        let b = open_as(&store, "c", 2, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.owner(), 2, "the old connection sees it is no longer the owner");
        assert!(a.wake.poll(&mut cx).is_ready(), "and is woken to notice");
        assert!(!store.close("c", 1, Expiry::AtClose), "old connection must not discard the new one's session");
        assert_eq!(store.len(), 1);
        assert!(store.close("c", 2, Expiry::AtClose));
        assert!(store.is_empty());
    }

    #[test]
    fn opened_by_remembers_the_newest_connection_after_it_closes() {
        let store = SessionStore::new();
        let a = open_as(&store, "w", 1, None);
        assert!(!store.close("w", 1, Expiry::Never));
        assert_eq!((a.owner(), a.opened_by()), (0, 1), "closed, and nobody came since");
        open_as(&store, "w", 2, None);
        assert!(!store.close("w", 2, Expiry::Never));
        assert_eq!(a.opened_by(), 2, "a delayed will of connection 1 is not due any more");
    }

    #[test]
    fn persistent_session_survives_close() {
        let store = SessionStore::new();
        let a = open_as(&store, "p", 1, None);
        assert!(!store.close("p", 1, Expiry::Never));
        assert_eq!(a.owner(), 0);
        let mut cx = Context::from_waker(Waker::noop());
        let b = open_as(&store, "p", 2, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.wake.poll(&mut cx).is_pending(), "nobody owned it: nobody to wake");
    }

    #[tokio::test]
    async fn the_slot_is_held_until_dropped() {
        let store = SessionStore::new();
        let s = open_as(&store, "s", 1, None);
        let held = s.acquire_slot().await;
        let second = tokio::spawn({
            let s = s.clone();
            async move { s.acquire_slot().await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the slot is taken");
        drop(held);
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), second).await.expect("released");
        drop(again);
    }

    #[test]
    fn offline_sessions_expire_when_their_time_is_up_and_not_while_connected() {
        let store = SessionStore::new();
        let t0 = now_ms();
        assert!(store.expire(t0).is_empty(), "nothing has a deadline");
        let short = open_as(&store, "short", 1, None);
        let long = open_as(&store, "long", 2, None);
        open_as(&store, "forever", 3, None);
        assert!(!store.close("short", 1, Expiry::After(Duration::from_secs(10))));
        assert!(!store.close("long", 2, Expiry::After(Duration::from_secs(100))));
        assert!(!store.close("forever", 3, Expiry::Never));
        assert!(store.expire(t0 + 5_000).is_empty(), "not yet");
        let gone = store.expire(t0 + 20_000);
        assert_eq!(gone.len(), 1);
        assert!(Arc::ptr_eq(&gone[0], &short));
        assert_eq!(store.len(), 2);
        // Reconnected before its deadline: no longer expiring.
        assert!(Arc::ptr_eq(&open_as(&store, "long", 4, None), &long));
        assert!(store.expire(t0 + 1_000_000).is_empty());
        assert!(!store.close("long", 4, Expiry::After(Duration::ZERO)));
        assert_eq!(store.expire(now_ms()).len(), 1);
        assert_eq!(store.len(), 1, "`forever` stays");
        assert!(store.expire(u64::MAX - 1).is_empty());
    }

    #[test]
    fn mqtt5_intervals() {
        assert_eq!(Expiry::from_interval(0), Expiry::AtClose);
        assert_eq!(Expiry::from_interval(60), Expiry::After(Duration::from_secs(60)));
        assert_eq!(Expiry::from_interval(u32::MAX), Expiry::Never);
        assert!(!Expiry::AtClose.keeps() && Expiry::Never.keeps());
    }
}
