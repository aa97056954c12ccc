//! One change to the stored state, and a group of them as one commit
//! applies it.
//!
//! A [`Batch`] keeps only the last change per record: a message queued for
//! a connected persistent subscriber and acknowledged before the commit
//! that would have stored it is never written at all (its put and delete
//! meet in the batch), which is most of them when subscribers keep up.
//! Removing a session drops whatever the batch held for it before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::message::Message;
use crate::store::record::{DeliveryRecord, SessionRecord, SubscriptionRecord, WillRecord};

/// One change, as the sessions and the router record it.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A persistent session created, resumed, or gone offline.
    Session(Arc<str>, SessionRecord),
    /// A session and everything stored under it removed (subscriptions,
    /// queued messages, QoS 2 ids, will).
    SessionRemoved(Arc<str>),
    /// A subscription made or replaced (`Some`) or removed.
    Subscription(Arc<str>, String, Option<SubscriptionRecord>),
    /// A delivery, by the session's sequence number, stored or updated
    /// (`Some`) or finished.
    Delivery(Arc<str>, u64, Option<DeliveryRecord>),
    /// An inbound QoS 2 packet id awaiting PUBREL (`true`), or released.
    Inbound(Arc<str>, u16, bool),
    /// The will of a connected client, or its removal.
    Will(Arc<str>, Option<WillRecord>),
    /// A retained message set or cleared, by topic.
    Retained(Arc<str>, Option<Arc<Message>>),
}

/// What a batch changes for one client id.
#[derive(Debug, Default)]
pub(crate) struct ClientChanges {
    /// Delete everything stored for the client before the rest applies.
    pub wiped: bool,
    pub session: Option<SessionRecord>,
    pub subscriptions: HashMap<String, Option<SubscriptionRecord>>,
    pub deliveries: BTreeMap<u64, Option<DeliveryRecord>>,
    pub inbound: BTreeMap<u16, bool>,
    /// `Some(None)`: delete the will.
    pub will: Option<Option<WillRecord>>,
}

/// Changes merged for one commit: the last per record.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub clients: HashMap<Arc<str>, ClientChanges>,
    pub retained: HashMap<Arc<str>, Option<Arc<Message>>>,
    /// Changes merged in, before coalescing (for the counters).
    pub merged: u64,
}

impl Batch {
    pub(crate) fn of(changes: impl IntoIterator<Item = Change>) -> Batch {
        let mut b = Batch::default();
        for c in changes {
            b.add(c);
        }
        b
    }

    pub(crate) fn add(&mut self, change: Change) {
        self.merged += 1;
        match change {
            Change::Retained(topic, m) => {
                self.retained.insert(topic, m);
            }
            Change::SessionRemoved(client) => {
                *self.clients.entry(client).or_default() = ClientChanges { wiped: true, ..ClientChanges::default() };
            }
            Change::Session(client, record) => self.client(client).session = Some(record),
            Change::Subscription(client, filter, grant) => {
                self.client(client).subscriptions.insert(filter, grant);
            }
            Change::Delivery(client, seq, d) => {
                self.client(client).deliveries.insert(seq, d);
            }
            Change::Inbound(client, id, present) => {
                self.client(client).inbound.insert(id, present);
            }
            Change::Will(client, will) => self.client(client).will = Some(will),
        }
    }

    fn client(&mut self, client: Arc<str>) -> &mut ClientChanges {
        self.clients.entry(client).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::QoS;
    use crate::store::record::{DeliveryState, Keep};

    fn delivery() -> DeliveryRecord {
        DeliveryRecord {
            message: Arc::new(Message::new("t", "x", QoS::AtLeastOnce, false)),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
            state: DeliveryState::Queued,
        }
    }

    #[test]
    fn the_last_change_per_record_wins() {
        let c: Arc<str> = Arc::from("c");
        let b = Batch::of([
            Change::Delivery(c.clone(), 1, Some(delivery())),
            Change::Delivery(c.clone(), 2, Some(delivery())),
            Change::Delivery(c.clone(), 1, None),
            Change::Inbound(c.clone(), 7, true),
            Change::Inbound(c.clone(), 7, false),
        ]);
        let changes = &b.clients[&c];
        assert_eq!(changes.deliveries.len(), 2);
        assert!(changes.deliveries[&1].is_none(), "acknowledged before the commit: only its delete remains");
        assert!(changes.deliveries[&2].is_some());
        assert_eq!(changes.inbound.get(&7), Some(&false));
        assert_eq!(b.merged, 5);
    }

    #[test]
    fn removing_a_session_forgets_its_earlier_changes_not_its_later_ones() {
        let c: Arc<str> = Arc::from("c");
        let record = SessionRecord { user: None, keep: Keep::Forever, expires_at: None };
        let b = Batch::of([
            Change::Subscription(c.clone(), "a".into(), None),
            Change::Delivery(c.clone(), 1, Some(delivery())),
            Change::SessionRemoved(c.clone()),
            Change::Session(c.clone(), record.clone()),
            Change::Subscription(c.clone(), "b".into(), None),
        ]);
        let changes = &b.clients[&c];
        assert!(changes.wiped);
        assert_eq!(changes.session.as_ref(), Some(&record));
        assert!(changes.deliveries.is_empty());
        assert_eq!(changes.subscriptions.keys().collect::<Vec<_>>(), ["b"]);
    }
}
