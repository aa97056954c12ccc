//! Where a PUBLISH is routed: the subscription tree and the retained store
//! behind locks, and the fan-out into subscriber queues.
//!
//! Publishing takes the tree's read lock only to collect the matching
//! sessions, then queues the one shared message into each session (a short
//! lock per session) and wakes its connection. No lock is held across an
//! `.await`, and a full subscriber queue drops for that subscriber alone.

use std::cell::RefCell;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::lock::RwLocked;
use crate::message::Message;
use crate::routing::retained::RetainedStore;
use crate::routing::subscriptions::{SubscriberId, SubscriptionTree};
use crate::session::state::{Delivery, Enqueued, Queued};
use crate::session::store::SessionHandle;
use crate::session::subscription::{Grant, Merged};
use crate::stats::{Counter, Stats};

type Matches = Vec<(SubscriberId, Arc<SessionHandle>, Grant)>;

thread_local! {
    /// Reused match buffer, so routing a message allocates nothing per message.
    static MATCHES: RefCell<Matches> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
pub struct Router {
    tree: RwLock<SubscriptionTree<Arc<SessionHandle>, Grant>>,
    retained: RwLock<RetainedStore>,
    /// The broker's counters; routing adds the dropped deliveries.
    stats: Arc<Stats>,
}

/// What routing one message did, for logs and counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Sessions the message was queued for.
    pub queued: usize,
    /// Sessions whose full queue made them drop a message.
    pub dropped: usize,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// A router that counts into the broker's `stats`.
    pub fn with_stats(stats: Arc<Stats>) -> Self {
        Router { stats, ..Self::default() }
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
    pub fn publish(&self, message: Arc<Message>) -> Routed {
        self.publish_from(message, None)
    }

    /// Routes one message: stores or clears it as retained when its RETAIN
    /// flag is set [MQTT-3.3.1-5, -10], then queues it once for every
    /// matching session at min(publish QoS, granted QoS) [MQTT-3.8.4-6].
    /// `publisher` is the publishing session, which its no-local
    /// subscriptions do not receive [MQTT-3.8.3-3].
    pub fn publish_from(&self, message: Arc<Message>, publisher: Option<SubscriberId>) -> Routed {
        if message.retain {
            self.retained_mut().set(message.clone());
        }
        MATCHES.with_borrow_mut(|matches| {
            self.tree().matches(&message.topic, matches);
            let mut routed = Routed::default();
            // Grouped by session: one delivery per session, merged from its
            // matching subscriptions. A session with a single matching
            // subscription (every subscriber, usually) takes its delivery
            // straight from the grant, in the 16-byte form its queue holds
            // (`Queued`): merging and a 32-byte `Delivery` per match, moved
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
                    }
                    .into()
                };
                if deliver_queued(session, delivery, &self.stats) {
                    routed.queued += 1;
                } else {
                    routed.dropped += 1;
                }
            }
            matches.clear();
            routed
        })
    }

    /// Adds (or replaces) a subscription and returns the retained messages
    /// matching its filter, which the caller queues with RETAIN set
    /// [MQTT-3.3.1-6].
    pub fn subscribe(&self, session: &Arc<SessionHandle>, filter: &str, grant: Grant) -> Vec<Arc<Message>> {
        self.tree_mut().subscribe(filter, session.id(), session.clone(), grant);
        let mut out = Vec::new();
        self.retained.read_locked().matching(filter, &mut out);
        out
    }

    pub fn unsubscribe(&self, id: SubscriberId, filter: &str) -> bool {
        self.tree_mut().unsubscribe(filter, id)
    }

    /// Removes all of one session's subscriptions.
    pub fn unsubscribe_all<'a>(&self, id: SubscriberId, filters: impl IntoIterator<Item = &'a str>) {
        let mut tree = self.tree_mut();
        for f in filters {
            tree.unsubscribe(f, id);
        }
    }

    /// Number of subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.tree().len()
    }

    /// Number of retained messages held.
    pub fn retained_count(&self) -> usize {
        self.retained.read_locked().len()
    }

    /// Number of retained messages outside the broker's own `$SYS/broker/`
    /// tree (where `$SYS/broker/version` is retained).
    pub fn retained_count_outside_sys(&self) -> usize {
        let store = self.retained.read_locked();
        let mut sys = Vec::new();
        store.matching("$SYS/broker/#", &mut sys);
        store.len() - sys.len()
    }

    /// Messages dropped because a subscriber's queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.stats.get(Counter::PublishDropped)
    }
}

/// Queues `delivery` for `session` and wakes its connection. Returns false
/// when a message was dropped to respect the queue limit (logged once per
/// episode of drops).
pub fn deliver(session: &SessionHandle, delivery: Delivery, stats: &Stats) -> bool {
    deliver_queued(session, delivery.into(), stats)
}

/// [`deliver`] of a delivery already in its queued form, built before the
/// session's lock is taken.
fn deliver_queued(session: &SessionHandle, delivery: Queued, stats: &Stats) -> bool {
    let mut state = session.lock();
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

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 2 };

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
        let ids: Vec<u32> = d.subscription_ids.as_slice().iter().map(|n| n.get()).collect();
        assert_eq!(ids, [5, 6]);
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
        assert_eq!(d.subscription_ids.as_slice(), [NonZeroU32::new(7).unwrap()]);
        let d = plain.lock().pop().expect("queued");
        assert_eq!((d.qos, d.retain), (QoS::AtLeastOnce, false), "RETAIN cleared [MQTT-3.3.1-9]");
        assert!(d.subscription_ids.as_slice().is_empty());
    }
}
