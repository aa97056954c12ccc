//! Where a PUBLISH is routed: the subscription tree and the retained store
//! behind locks, and the fan-out into subscriber queues.
//!
//! Publishing takes the tree's read lock only to collect the matching
//! sessions, then queues the one shared message into each session (a short
//! lock per session) and wakes its connection. No lock is held across an
//! `.await`, and a full subscriber queue drops for that subscriber alone.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::Limits;
use crate::lock::RwLocked;
use crate::message::Message;
use crate::routing::retained::RetainedStore;
use crate::routing::shared::SharedSubscriptions;
use crate::routing::subscriptions::{SubscriberId, SubscriptionTree};
use crate::session::shared_group::Group;
use crate::session::state::{Delivery, Enqueued, Queued};
use crate::session::store::SessionHandle;
use crate::session::subscription::{Grant, Merged, SubscriptionIds};
use crate::stats::{Counter, Stats};
use crate::store::batch::Change;
use crate::store::journal::Journal;
use crate::topic;

type Matches = Vec<(SubscriberId, Arc<SessionHandle>, Grant)>;

thread_local! {
    /// Reused match buffer, so routing a message allocates nothing per message.
    static MATCHES: RefCell<Matches> = const { RefCell::new(Vec::new()) };
    /// The same for matching shared subscription groups.
    static GROUPS: RefCell<Vec<(SubscriberId, Arc<Group>, ())>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
pub(crate) struct Router {
    tree: RwLock<SubscriptionTree<Arc<SessionHandle>, Grant>>,
    /// `$share/{group}/{filter}` subscriptions.
    shared: RwLock<SharedSubscriptions>,
    /// Shared memberships, read without the lock: a broker without shared
    /// subscriptions pays one atomic load per message for them.
    shared_count: AtomicUsize,
    retained: RwLock<RetainedStore>,
    /// The broker's counters; routing adds the dropped deliveries.
    stats: Arc<Stats>,
    /// With persistence on, where retained messages are recorded.
    journal: Option<Arc<Journal>>,
    /// `retained-max-count` and `retained-max-bytes` (0: no limit).
    retained_limits: (usize, usize),
}

/// A delivery through a shared subscription, on the picked member's terms.
fn shared_delivery(message: Arc<Message>, grant: Grant, group: Arc<Group>) -> Delivery {
    let mut subscription_ids = SubscriptionIds::None;
    if let Some(id) = grant.subscription_id {
        subscription_ids.push(id);
    }
    Delivery {
        qos: message.qos.min(grant.qos),
        retain: grant.retain_as_published && message.retain,
        message,
        subscription_ids,
        group: Some(group),
        stored: 0,
        backlog: false,
    }
}

/// What routing one message did, for logs and counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Sessions the message was queued for.
    pub queued: usize,
    /// Sessions whose full queue made them drop a message.
    pub dropped: usize,
}

impl Routed {
    fn count(&mut self, queued: bool) {
        if queued {
            self.queued += 1;
        } else {
            self.dropped += 1;
        }
    }
}

impl Router {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A router that counts into the broker's `stats`.
    #[cfg(test)]
    pub(crate) fn with_stats(stats: Arc<Stats>) -> Self {
        Router { stats, ..Self::default() }
    }

    /// A router that records retained messages in `journal` and keeps
    /// them within `limits`' `retained-max-count` and `retained-max-bytes`.
    pub(crate) fn with_journal(stats: Arc<Stats>, journal: Option<Arc<Journal>>, limits: &Limits) -> Self {
        let retained_limits = (limits.retained_max_count, limits.retained_max_bytes);
        Router { stats, journal, retained_limits, ..Self::default() }
    }

    /// Puts back a subscription loaded from the store (start-up), without
    /// looking for retained messages: they were sent when it was made.
    pub(crate) fn restore_subscription(&self, session: &Arc<SessionHandle>, filter: &str, grant: Grant) {
        if let Some((group, inner)) = topic::shared(filter) {
            let mut shared = self.shared.write_locked();
            shared.subscribe(group, inner, session, grant);
            self.shared_count.store(shared.len(), Ordering::Relaxed);
        } else {
            self.tree_mut().subscribe(filter, session.id(), session.clone(), grant);
        }
    }

    /// Puts back a retained message loaded from the store (start-up).
    pub(crate) fn restore_retained(&self, message: Arc<Message>) {
        self.retained_mut().set(message);
    }

    fn tree(&self) -> RwLockReadGuard<'_, SubscriptionTree<Arc<SessionHandle>, Grant>> {
        self.tree.read_locked()
    }

    fn tree_mut(&self) -> RwLockWriteGuard<'_, SubscriptionTree<Arc<SessionHandle>, Grant>> {
        self.tree.write_locked()
    }

    fn retained_mut(&self) -> RwLockWriteGuard<'_, RetainedStore> {
        self.retained.write_locked()
    }

    /// Routes a message that no session published (the broker's own, an
    /// embedding application's); see [`Router::publish_from`].
    pub(crate) fn publish(&self, message: Arc<Message>) -> Routed {
        self.publish_from(message, None)
    }

    /// Routes one message: stores or clears it as retained when its RETAIN
    /// flag is set [MQTT-3.3.1-5, -10], then queues it once for every
    /// matching session at min(publish QoS, granted QoS) [MQTT-3.8.4-6].
    /// `publisher` is the publishing session, which its no-local
    /// subscriptions do not receive [MQTT-3.8.3-3].
    pub(crate) fn publish_from(&self, message: Arc<Message>, publisher: Option<SubscriberId>) -> Routed {
        if message.retain {
            // Kept for long: stored owning its bytes, not pinning the
            // publisher's read buffer.
            let compacted = Arc::new(message.compacted());
            // `$SYS` topics are the broker's own: few, published anew at
            // each start, and never refused.
            let own = compacted.topic.starts_with("$SYS");
            let (max_count, max_bytes) = if own { (0, 0) } else { self.retained_limits };
            let mut retained = self.retained_mut();
            if retained.set_within(compacted.clone(), max_count, max_bytes) {
                if let Some(journal) = self.journal.as_ref().filter(|_| !own) {
                    // Under the retained store's lock: the journal sees the
                    // changes of one topic in the order they were made.
                    let kept = (!compacted.payload.is_empty()).then(|| compacted.clone());
                    journal.record(Change::Retained(compacted.topic.clone(), kept));
                }
            } else {
                drop(retained);
                let refused = self.stats.retained_refused.fetch_add(1, Ordering::Relaxed) + 1;
                // The first refusal and then one in ten thousand: a flood
                // of them must not flood the log.
                if refused == 1 || refused.is_multiple_of(10_000) {
                    tracing::warn!(
                        topic = %compacted.topic, refused_total = refused, max_count, max_bytes,
                        "retained message not kept: retained-max-count or retained-max-bytes reached (it is still delivered)"
                    );
                }
            }
        }
        MATCHES.with_borrow_mut(|matches| {
            self.tree().matches(&message.topic, matches);
            let mut routed = Routed::default();
            // Grouped by session: one delivery per session, merged from its
            // matching subscriptions. A session with a single matching
            // subscription (every subscriber, usually) takes its delivery
            // straight from the grant, in the 16-byte form its queue holds
            // (`Queued`): merging and a 40-byte `Delivery` per match, moved
            // through a peekable drain, slowed the QoS 0 fan-out. Entries are
            // read in place; `clear` drops the handles.
            let mut i = 0;
            while let Some((id, session, grant)) = matches.get(i) {
                let id = *id;
                let own = publisher == Some(id);
                i += 1;
                let delivery = if matches.get(i).is_none_or(|next| next.0 != id) {
                    // What `Merged::add` makes of one grant.
                    if grant.no_local && own {
                        continue;
                    }
                    Queued::Inline {
                        message: message.clone(),
                        qos: message.qos.min(grant.qos),
                        retain: grant.retain_as_published && message.retain,
                        subscription_id: grant.subscription_id,
                    }
                } else {
                    let mut merged = Merged::default();
                    merged.add(*grant, own);
                    while let Some((_, _, grant)) = matches.get(i).filter(|next| next.0 == id) {
                        merged.add(*grant, own);
                        i += 1;
                    }
                    let Some(granted) = merged.qos else { continue };
                    Delivery {
                        message: message.clone(),
                        qos: message.qos.min(granted),
                        retain: merged.retain_as_published && message.retain,
                        subscription_ids: merged.subscription_ids,
                        group: None,
                        stored: 0,
                        backlog: false,
                    }
                    .into()
                };
                routed.count(deliver_queued(session, delivery, &self.stats));
            }
            matches.clear();
            if self.shared_count.load(Ordering::Relaxed) > 0 {
                self.publish_shared(&message, &mut routed);
            }
            routed
        })
    }

    /// One delivery per matching shared subscription group, to the member
    /// its round robin picks [MQTT 5 §4.8.2].
    fn publish_shared(&self, message: &Arc<Message>, routed: &mut Routed) {
        GROUPS.with_borrow_mut(|groups| {
            self.shared.read_locked().matches(&message.topic, groups);
            for (_, group, ()) in groups.drain(..) {
                let Some(member) = group.pick(None, false) else { continue };
                let delivery = shared_delivery(message.clone(), member.grant, group);
                routed.count(deliver(&member.session, delivery, &self.stats));
            }
        });
    }

    /// Hands the unfinished shared-subscription messages of `session`,
    /// whose client has left, to other connected members of their groups
    /// [MQTT 5 §4.8.2: "the Server ... attempts to send the message to
    /// another member"]. A message whose group has no other connected
    /// member stays with `session`. Returns how many moved.
    pub(crate) fn redispatch(&self, session: &SessionHandle) -> usize {
        let taken = session.lock().take_shared();
        let mut moved = 0;
        for d in taken {
            let other = d.group.as_ref().and_then(|g| g.pick(Some(session.id()), true));
            match (other, d.group.clone()) {
                (Some(member), Some(group)) => {
                    deliver(&member.session, shared_delivery(d.message, member.grant, group), &self.stats);
                    moved += 1;
                }
                _ => {
                    session.lock().enqueue(d);
                }
            }
        }
        moved
    }

    /// Adds (or replaces) a subscription and returns the retained messages
    /// matching its filter, which the caller queues with RETAIN set
    /// [MQTT-3.3.1-6].
    ///
    /// A shared subscription (`$share/{group}/{filter}`) joins its group
    /// and gets no retained messages [MQTT 5 §4.8.2].
    pub(crate) fn subscribe(&self, session: &Arc<SessionHandle>, filter: &str, grant: Grant) -> Vec<Arc<Message>> {
        if let Some((group, inner)) = topic::shared(filter) {
            let mut shared = self.shared.write_locked();
            shared.subscribe(group, inner, session, grant);
            self.shared_count.store(shared.len(), Ordering::Relaxed);
            return Vec::new();
        }
        self.tree_mut().subscribe(filter, session.id(), session.clone(), grant);
        let mut out = Vec::new();
        self.retained.read_locked().matching(filter, &mut out);
        // An expired retained message is not sent, and goes [MQTT-3.3.2-5].
        if out.iter().any(|m| m.expires_at.is_some()) {
            let now = std::time::Instant::now();
            let expired: Vec<Arc<str>> = out.iter().filter(|m| m.is_expired(now)).map(|m| m.topic.clone()).collect();
            if !expired.is_empty() {
                out.retain(|m| !m.is_expired(now));
                let mut store = self.retained_mut();
                for topic in &expired {
                    store.remove_expired(topic, now);
                }
            }
        }
        out
    }

    pub(crate) fn unsubscribe(&self, id: SubscriberId, filter: &str) -> bool {
        if let Some((group, inner)) = topic::shared(filter) {
            let mut shared = self.shared.write_locked();
            let removed = shared.unsubscribe(group, inner, id);
            self.shared_count.store(shared.len(), Ordering::Relaxed);
            return removed;
        }
        self.tree_mut().unsubscribe(filter, id)
    }

    /// Removes all of one session's subscriptions.
    pub(crate) fn unsubscribe_all<'a>(&self, id: SubscriberId, filters: impl IntoIterator<Item = &'a str>) {
        let mut shared = Vec::new();
        {
            let mut tree = self.tree_mut();
            for f in filters {
                if topic::shared(f).is_some() {
                    shared.push(f);
                } else {
                    tree.unsubscribe(f, id);
                }
            }
        }
        for f in shared {
            self.unsubscribe(id, f);
        }
    }

    /// Number of subscriptions held.
    pub(crate) fn subscription_count(&self) -> usize {
        self.tree().len() + self.shared_count.load(Ordering::Relaxed)
    }

    /// Number of retained messages held.
    pub(crate) fn retained_count(&self) -> usize {
        self.retained.read_locked().len()
    }

    /// Number of retained messages outside the broker's own `$SYS/broker/`
    /// tree (where `$SYS/broker/version` is retained).
    pub(crate) fn retained_count_outside_sys(&self) -> usize {
        let store = self.retained.read_locked();
        let mut sys = Vec::new();
        store.matching("$SYS/broker/#", &mut sys);
        store.len() - sys.len()
    }

    /// Messages dropped because a subscriber's queue was full, since start.
    pub(crate) fn dropped(&self) -> u64 {
        self.stats.get(Counter::PublishDropped)
    }
}

/// Queues `delivery` for `session` and wakes its connection. Returns false
/// when a message was dropped to respect the queue limit (logged once per
/// episode of drops).
pub(crate) fn deliver(session: &SessionHandle, delivery: Delivery, stats: &Stats) -> bool {
    deliver_queued(session, delivery.into(), stats)
}

/// [`deliver`] of a delivery already in its queued form, built before the
/// session's lock is taken.
fn deliver_queued(session: &SessionHandle, delivery: Queued, stats: &Stats) -> bool {
    let mut state = session.lock();
    // A copy for an offline session may wait for long: it owns its bytes
    // (see `Message::compacted`). An online session drains at once.
    // (QoS 0 is not kept for an offline session at all.)
    let keep = !state.is_online() && delivery.qos() != crate::packet::QoS::AtMostOnce;
    let delivery = if keep { delivery.compacted() } else { delivery };
    let result = state.enqueue_queued(delivery);
    let online = state.is_online();
    let first_drop = result.dropped() && state.note_drop();
    let total = state.dropped();
    drop(state);
    if result.dropped() {
        stats.add(Counter::PublishDropped, 1);
        if first_drop {
            tracing::warn!(
                client_id = session.client_id(),
                dropped_total = total,
                "session queue full: dropping messages (QoS 0 first) until the client catches up"
            );
        }
    }
    if online && result != Enqueued::SkippedOffline {
        session.wake.notify();
    }
    !result.dropped()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::QoS;
    use crate::session::state::SessionLimits;
    use std::num::NonZeroU32;

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 2, max_queued_bytes: 0 };

    fn session(id: u64) -> Arc<SessionHandle> {
        let s = Arc::new(SessionHandle::new(id, Arc::from(format!("c{id}")), LIMITS));
        s.lock().attach(true, LIMITS);
        s
    }

    #[test]
    fn mqtt_3_8_4_6_delivered_qos_is_minimum() {
        let r = Router::new();
        let a = session(1);
        r.subscribe(&a, "t", Grant::qos(QoS::AtLeastOnce));
        r.publish(Arc::new(Message::new("t", "x", QoS::ExactlyOnce, false)));
        r.publish(Arc::new(Message::new("t", "y", QoS::AtMostOnce, false)));
        let mut s = a.lock();
        assert_eq!(s.pop().map(|d| d.qos), Some(QoS::AtLeastOnce));
        assert_eq!(s.pop().map(|d| d.qos), Some(QoS::AtMostOnce));
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_at_highest_qos() {
        let r = Router::new();
        let a = session(1);
        r.subscribe(&a, "a/#", Grant::qos(QoS::AtMostOnce));
        r.subscribe(&a, "a/+", Grant::qos(QoS::ExactlyOnce));
        let routed = r.publish(Arc::new(Message::new("a/b", "x", QoS::ExactlyOnce, false)));
        assert_eq!(routed.queued, 1);
        assert_eq!(a.lock().pop().map(|d| d.qos), Some(QoS::ExactlyOnce));
        assert!(a.lock().pop().is_none());
    }

    #[test]
    fn retained_messages_returned_on_subscribe_and_cleared_by_empty_payload() {
        let r = Router::new();
        r.publish(Arc::new(Message::new("r/1", "keep", QoS::AtMostOnce, true)));
        let a = session(1);
        assert_eq!(r.subscribe(&a, "r/#", Grant::qos(QoS::AtMostOnce)).len(), 1);
        r.publish(Arc::new(Message::new("r/1", "", QoS::AtMostOnce, true)));
        assert_eq!(r.retained_count(), 0);
        let b = session(2);
        assert!(r.subscribe(&b, "r/#", Grant::qos(QoS::AtMostOnce)).is_empty());
    }

    #[test]
    fn full_queue_drops_only_for_that_subscriber() {
        let r = Router::new();
        let slow = session(1);
        let fast = session(2);
        r.subscribe(&slow, "t", Grant::qos(QoS::AtLeastOnce));
        r.subscribe(&fast, "t", Grant::qos(QoS::AtLeastOnce));
        for i in 0..3 {
            r.publish(Arc::new(Message::new("t", format!("{i}"), QoS::AtLeastOnce, false)));
            fast.lock().pop();
        }
        assert_eq!(r.dropped(), 1);
        assert_eq!(slow.lock().queued(), 2);
    }

    #[test]
    fn v5_options_no_local_retain_as_published_and_identifiers() {
        let r = Router::new();
        let (publisher, other) = (session(1), session(2));
        let id = |n| NonZeroU32::new(n);
        r.subscribe(&publisher, "t/#", Grant { no_local: true, ..Grant::qos(QoS::AtLeastOnce) });
        r.subscribe(&other, "t/#", Grant { subscription_id: id(5), ..Grant::qos(QoS::AtMostOnce) });
        r.subscribe(
            &other,
            "t/+",
            Grant { retain_as_published: true, subscription_id: id(6), ..Grant::qos(QoS::AtLeastOnce) },
        );
        let routed = r.publish_from(Arc::new(Message::new("t/x", "v", QoS::ExactlyOnce, true)), Some(publisher.id()));
        assert_eq!(routed.queued, 1, "no local: not back to its publisher");
        assert!(publisher.lock().pop().is_none());
        let d = other.lock().pop().expect("one delivery for two matching subscriptions");
        assert_eq!(d.qos, QoS::AtLeastOnce, "the highest granted QoS");
        assert!(d.retain, "one subscription keeps RETAIN as published");
        assert_eq!(d.subscription_ids.as_slice(), [5, 6]);
        assert!(other.lock().pop().is_none(), "one copy only");
        // From someone else, the no-local subscription takes it.
        r.publish(Arc::new(Message::new("t/y", "w", QoS::AtMostOnce, false)));
        assert_eq!(publisher.lock().pop().map(|d| d.retain), Some(false));
    }

    #[test]
    fn v5_options_of_a_single_matching_subscription() {
        let r = Router::new();
        let (publisher, plain) = (session(1), session(2));
        let id = NonZeroU32::new(7);
        r.subscribe(
            &publisher,
            "s/+",
            Grant { retain_as_published: true, subscription_id: id, ..Grant::qos(QoS::ExactlyOnce) },
        );
        r.subscribe(&plain, "s/+", Grant::qos(QoS::AtLeastOnce));
        let routed = r.publish_from(Arc::new(Message::new("s/x", "v", QoS::AtLeastOnce, true)), Some(publisher.id()));
        assert_eq!(routed.queued, 2, "no local is off: back to its publisher too");
        let d = publisher.lock().pop().expect("queued");
        assert_eq!((d.qos, d.retain), (QoS::AtLeastOnce, true));
        assert_eq!(d.subscription_ids.as_slice(), [7]);
        let d = plain.lock().pop().expect("queued");
        assert_eq!((d.qos, d.retain), (QoS::AtLeastOnce, false), "RETAIN cleared [MQTT-3.3.1-9]");
        assert!(d.subscription_ids.as_slice().is_empty());
    }

    #[test]
    fn stored_copies_own_their_bytes() {
        let r = Router::new();
        let frame = bytes::Bytes::from(vec![1u8; 1 << 16]);
        let inside = |m: &Message| frame.as_ptr_range().contains(&m.payload.as_ptr());
        let (online, offline) = (session(1), session(2));
        r.subscribe(&online, "k", Grant::qos(QoS::AtLeastOnce));
        r.subscribe(&offline, "k", Grant::qos(QoS::AtLeastOnce));
        offline.lock().detach();
        let m = Message::new("k", frame.slice(0..8), QoS::AtLeastOnce, true);
        r.publish(Arc::new(m));
        let live = online.lock().pop().expect("the online copy");
        assert!(inside(&live.message), "an online session's copy is not copied");
        let kept = offline.lock().pop().expect("the offline copy");
        assert!(!inside(&kept.message), "an offline session's copy owns its bytes");
        let retained = r.subscribe(&session(3), "k", Grant::qos(QoS::AtMostOnce));
        assert!(retained.iter().all(|m| !inside(m)), "the retained copy owns its bytes");
    }
}
