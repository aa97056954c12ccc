//! Shared subscriptions, `$share/{group}/{filter}` [MQTT 5 §4.8.2], for
//! MQTT 5 and 3.1.1 clients alike (as Mosquitto and EMQX accept them): each
//! message matching the filter goes to one member of the group, not to all.
//!
//! A group is one (name, filter) pair; its members are sessions. The next
//! member is picked round robin, skipping members whose client is not
//! connected while any member is, so an away member's queue does not take
//! the group's messages. When a member disconnects, its unfinished QoS 1
//! and 2 messages of the group move to another connected member
//! (`Router::redispatch`).
//!
//! The groups sit in a subscription tree of their own, whose "subscribers"
//! are the groups: matching a topic finds each matching group once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::routing::subscriptions::{SubscriberId, SubscriptionTree};
use crate::session::shared_group::Group;
use crate::session::store::SessionHandle;
use crate::session::subscription::Grant;

/// A group's key: its name and its filter.
type GroupKey = (Box<str>, Box<str>);

/// Every shared subscription.
#[derive(Default)]
pub(crate) struct SharedSubscriptions {
    tree: SubscriptionTree<Arc<Group>, ()>,
    groups: HashMap<GroupKey, (SubscriberId, Arc<Group>)>,
    next_id: SubscriberId,
    /// Memberships, all groups together (the subscriptions count).
    members: usize,
}

impl SharedSubscriptions {
    /// Adds `session` to the group (or replaces its grant there); returns
    /// whether it was a member already.
    pub(crate) fn subscribe(&mut self, group: &str, filter: &str, session: &Arc<SessionHandle>, grant: Grant) -> bool {
        let key = (Box::from(group), Box::from(filter));
        let (_, g) = match self.groups.get(&key) {
            Some(entry) => entry.clone(),
            None => {
                self.next_id += 1;
                let g = Arc::new(Group::new(group, filter));
                self.tree.subscribe(filter, self.next_id, g.clone(), ());
                self.groups.insert(key, (self.next_id, g.clone()));
                (self.next_id, g)
            }
        };
        let existed = g.join(session, grant);
        if !existed {
            self.members += 1;
        }
        existed
    }

    /// Removes `id` from the group; the group goes with its last member.
    /// Returns whether it was a member.
    pub(crate) fn unsubscribe(&mut self, group: &str, filter: &str, id: SubscriberId) -> bool {
        let key = (Box::from(group), Box::from(filter));
        let Some((group_id, g)) = self.groups.get(&key).cloned() else { return false };
        let (was_member, empty) = g.leave(id);
        if !was_member {
            return false;
        }
        self.members -= 1;
        if empty {
            self.tree.unsubscribe(filter, group_id);
            self.groups.remove(&key);
        }
        true
    }

    /// The groups whose filter matches `topic`, each once.
    pub(crate) fn matches(&self, topic: &str, out: &mut Vec<(SubscriberId, Arc<Group>, ())>) {
        self.tree.matches(topic, out);
    }

    /// Memberships held.
    pub(crate) fn len(&self) -> usize {
        self.members
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.members == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::QoS;
    use crate::session::state::SessionLimits;
    use crate::session::store::SessionStore;

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 8, max_queued_bytes: 0 };

    fn session(store: &SessionStore, id: &str, conn: u64) -> Arc<SessionHandle> {
        match store.open(id, conn, None, crate::config::SessionOwner::User, LIMITS) {
            crate::session::store::Opened::Session { session, .. } => session,
            crate::session::store::Opened::OwnedByOther => panic!("owned"),
        }
    }

    fn group(shared: &SharedSubscriptions, topic: &str) -> Arc<Group> {
        let mut out = Vec::new();
        shared.matches(topic, &mut out);
        assert_eq!(out.len(), 1, "one group matches {topic}");
        out.remove(0).1
    }

    #[test]
    fn round_robin_over_connected_members() {
        let store = SessionStore::new();
        let (a, b, c) = (session(&store, "a", 1), session(&store, "b", 2), session(&store, "c", 3));
        let mut shared = SharedSubscriptions::default();
        for s in [&a, &b, &c] {
            assert!(!shared.subscribe("g", "t/#", s, Grant::qos(QoS::AtLeastOnce)));
        }
        assert!(shared.subscribe("g", "t/#", &a, Grant::qos(QoS::AtMostOnce)), "a member already");
        assert_eq!(shared.len(), 3);
        let g = group(&shared, "t/x");
        let picked: Vec<_> = (0..6).map(|_| g.pick(None, false).unwrap().session.id()).collect();
        assert_eq!(picked, [a.id(), b.id(), c.id(), a.id(), b.id(), c.id()]);
        // b's client goes away: the others share the messages.
        store.close("b", 2, crate::session::store::Expiry::Never);
        let picked: Vec<_> = (0..4).map(|_| g.pick(None, false).unwrap().session.id()).collect();
        assert!(!picked.contains(&b.id()), "{picked:?}");
        assert!(picked.contains(&a.id()) && picked.contains(&c.id()));
        // Leaving out a member, and only connected ones.
        assert!((0..4).all(|_| g.pick(Some(a.id()), true).unwrap().session.id() == c.id()));
    }

    #[test]
    fn the_last_member_takes_the_group_with_it() {
        let store = SessionStore::new();
        let a = session(&store, "a", 1);
        let mut shared = SharedSubscriptions::default();
        shared.subscribe("g", "t", &a, Grant::qos(QoS::AtMostOnce));
        shared.subscribe("h", "t", &a, Grant::qos(QoS::AtMostOnce));
        let mut out = Vec::new();
        shared.matches("t", &mut out);
        assert_eq!(out.len(), 2, "two groups on one filter: each gets the message");
        assert!(shared.unsubscribe("g", "t", a.id()));
        assert!(!shared.unsubscribe("g", "t", a.id()));
        shared.matches("t", &mut out);
        assert_eq!(out.len(), 1);
        assert!(shared.unsubscribe("h", "t", a.id()));
        assert!(shared.is_empty());
        shared.matches("t", &mut out);
        assert!(out.is_empty());
        // Nobody at all, or nobody connected: no pick.
        let g = Group::new("g", "t");
        assert!(g.pick(None, false).is_none());
    }
}
