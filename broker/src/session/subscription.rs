//! What a session asked for with one topic filter, as the session and the
//! router keep it, and how one subscriber's matching subscriptions merge
//! into one delivery.
//!
//! MQTT 3.1.1 has only the granted QoS; MQTT 5 adds subscription options
//! (no local, retain as published; retain handling only matters when the
//! SUBSCRIBE arrives) and a subscription identifier [MQTT 5 §3.8.3.1,
//! §3.8.2.1.2]. A 3.1.1 subscription is a [`Grant`] with the options off.

use std::num::NonZeroU32;

use crate::packet::QoS;

/// One subscription's terms. Small and `Copy`: the subscription tree holds
/// one per (filter, session) and copies it into every match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Grant {
    /// min(requested QoS, the broker's `max-qos`).
    pub qos: QoS,
    /// Do not deliver the session's own publications [MQTT-3.8.3-3].
    pub no_local: bool,
    /// Keep the RETAIN flag as published on deliveries [MQTT 5 §3.8.3.1].
    pub retain_as_published: bool,
    /// Sent with every message this subscription matches [MQTT-3.3.4-3].
    pub subscription_id: Option<NonZeroU32>,
}

impl Grant {
    /// A subscription with no options: what an MQTT 3.1.1 client gets.
    pub(crate) const fn qos(qos: QoS) -> Grant {
        Grant { qos, no_local: false, retain_as_published: false, subscription_id: None }
    }
}

/// The subscription identifiers a delivery carries: none, usually one.
/// Inline for one, so the common cases allocate nothing; 16 bytes, as every
/// queued delivery holds one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum SubscriptionIds {
    #[default]
    None,
    /// Kept as `u32`, so that the encoder takes them as a slice; never 0.
    One(u32),
    /// A thin pointer (a boxed slice would be two words).
    #[allow(clippy::box_collection, reason = "thin pointer keeps the enum at 16 bytes")]
    Many(Box<Vec<u32>>),
}

impl SubscriptionIds {
    pub(crate) fn push(&mut self, id: NonZeroU32) {
        let id = id.get();
        *self = match std::mem::take(self) {
            SubscriptionIds::None => SubscriptionIds::One(id),
            SubscriptionIds::One(first) => SubscriptionIds::Many(Box::new(vec![first, id])),
            SubscriptionIds::Many(mut ids) => {
                ids.push(id);
                SubscriptionIds::Many(ids)
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            SubscriptionIds::None => &[],
            SubscriptionIds::One(id) => std::slice::from_ref(id),
            SubscriptionIds::Many(ids) => ids,
        }
    }
}

/// One subscriber's matching subscriptions, merged into one delivery: the
/// spec lets a server send one copy at the highest QoS of the overlapping
/// subscriptions, carrying all their identifiers [MQTT-3.3.4-3, -4, -5].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Merged {
    /// `None` until a subscription that takes the message is added.
    pub qos: Option<QoS>,
    /// Some subscription keeps the RETAIN flag as published.
    pub retain_as_published: bool,
    pub subscription_ids: SubscriptionIds,
}

impl Merged {
    /// Adds one matching subscription. `own` is whether the message comes
    /// from this very session, which a no-local subscription does not take.
    pub(crate) fn add(&mut self, grant: Grant, own: bool) {
        if grant.no_local && own {
            return;
        }
        self.qos = Some(self.qos.map_or(grant.qos, |q| q.max(grant.qos)));
        self.retain_as_published |= grant.retain_as_published;
        if let Some(id) = grant.subscription_id {
            self.subscription_ids.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn overlapping_subscriptions_merge_to_the_highest_qos_and_every_identifier() {
        let mut m = Merged::default();
        m.add(Grant { subscription_id: Some(id(7)), ..Grant::qos(QoS::AtMostOnce) }, false);
        m.add(Grant { retain_as_published: true, ..Grant::qos(QoS::ExactlyOnce) }, false);
        m.add(Grant { subscription_id: Some(id(9)), ..Grant::qos(QoS::AtLeastOnce) }, false);
        assert_eq!(m.qos, Some(QoS::ExactlyOnce));
        assert!(m.retain_as_published);
        assert_eq!(m.subscription_ids.as_slice(), [7, 9]);
    }

    #[test]
    fn mqtt_3_8_3_3_no_local_skips_own_messages_only() {
        let no_local = Grant { no_local: true, ..Grant::qos(QoS::AtLeastOnce) };
        let mut own = Merged::default();
        own.add(no_local, true);
        assert_eq!(own.qos, None, "not delivered back to its publisher");
        own.add(Grant::qos(QoS::AtMostOnce), true);
        assert_eq!(own.qos, Some(QoS::AtMostOnce), "another subscription of the session still takes it");
        let mut other = Merged::default();
        other.add(no_local, false);
        assert_eq!(other.qos, Some(QoS::AtLeastOnce));
    }

    #[test]
    fn identifiers_grow_from_none_to_many() {
        let mut ids = SubscriptionIds::default();
        assert!(ids.as_slice().is_empty());
        for n in 1..=4 {
            ids.push(id(n));
        }
        assert_eq!(ids.as_slice(), [1, 2, 3, 4]);
        assert_eq!(std::mem::size_of::<SubscriptionIds>(), 16);
    }
}
