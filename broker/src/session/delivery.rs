//! A delivery on its way to one client: as the session queue holds it
//! ([`Queued`], 16 bytes), as it is handled ([`Delivery`]), and as it is
//! written ([`Outgoing`], in the client's version and within its maximum
//! packet size, [`Outbound`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::codec::{self, PublishV5};
use crate::message::Message;
use crate::packet::{Protocol, QoS};
use crate::session::durable::DeliveryTerms;
use crate::session::shared_group::Group;
use crate::session::subscription::SubscriptionIds;

/// How the attached client reads what is sent to it: its protocol version
/// and, for MQTT 5, the largest packet it accepts. Set at each attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub protocol: Protocol,
    /// The client's maximum packet size (MQTT 5); unlimited for 3.1.1.
    pub max_packet_size: usize,
    /// The highest topic alias the client accepts (MQTT 5 CONNECT); 0: none.
    pub topic_alias_maximum: u16,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound { protocol: Protocol::V311, max_packet_size: usize::MAX, topic_alias_maximum: 0 }
    }
}

/// The topic aliases moth has given one MQTT 5 connection [MQTT 5
/// §3.3.2.3.4]: the first `max` distinct topics it is sent get aliases
/// 1..=max, for the connection's life; later topics go in full. A
/// repeated topic then costs two bytes instead of its length. New with
/// each connection (aliases do not outlive it [MQTT-3.3.2-7]).
#[derive(Debug)]
pub(crate) struct OutAliases {
    max: u16,
    given: HashMap<Arc<str>, u16>,
}

impl OutAliases {
    pub(crate) fn new(max: u16) -> OutAliases {
        OutAliases { max, given: HashMap::new() }
    }

    /// The alias for `topic`, and whether the client knows it already.
    fn alias(&mut self, topic: &Arc<str>) -> Option<(u16, bool)> {
        if let Some(&a) = self.given.get(topic) {
            return Some((a, true));
        }
        let next = u16::try_from(self.given.len()).ok()?.checked_add(1)?;
        if next > self.max {
            return None;
        }
        self.given.insert(topic.clone(), next);
        Some((next, false))
    }
}

/// One PUBLISH to write: a message and this delivery's terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub message: &'a Message,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: u16,
    /// The matching subscriptions' identifiers (MQTT 5).
    pub subscription_ids: &'a [u32],
    /// The message expiry interval left (MQTT 5), if the message expires.
    pub expiry: Option<u32>,
}

impl Outgoing<'_> {
    pub(super) fn v5(&self) -> PublishV5<'_> {
        PublishV5 {
            topic: &self.message.topic,
            payload: &self.message.payload,
            qos: self.qos,
            retain: self.retain,
            dup: self.dup,
            packet_id: self.packet_id,
            properties: self.message.properties.as_deref(),
            message_expiry_interval: self.expiry,
            topic_alias: None,
            subscription_ids: self.subscription_ids,
        }
    }
}

impl Outbound {
    /// Whether the client accepts this PUBLISH: a server never sends a
    /// packet larger than the client's maximum packet size [MQTT-3.1.2-24].
    pub(crate) fn fits(&self, p: &Outgoing<'_>) -> bool {
        // Most clients set no maximum: then nothing is sized.
        self.max_packet_size == usize::MAX || !self.protocol.is_v5() || p.v5().size() <= self.max_packet_size
    }

    /// Appends the PUBLISH in the client's version, with a topic alias
    /// where `aliases` (an MQTT 5 client's) has one: the topic goes once
    /// with its alias, then the alias alone.
    pub(crate) fn encode_aliased(&self, p: &Outgoing<'_>, aliases: Option<&mut OutAliases>, out: &mut BytesMut) {
        if self.protocol.is_v5() {
            let mut v5 = p.v5();
            if let Some((alias, known)) = aliases.and_then(|a| a.alias(&p.message.topic)) {
                v5.topic_alias = Some(alias);
                if known {
                    v5.topic = "";
                }
            }
            codec::encode_publish_v5(&v5, out);
        } else {
            let m = p.message;
            codec::encode_publish(&m.topic, &m.payload, p.qos, p.retain, p.dup, p.packet_id, out);
        }
    }
}

/// Identifiers as a flow keeps them, for its re-sends.
pub(super) fn owned_ids(ids: &[u32]) -> SubscriptionIds {
    let mut owned = SubscriptionIds::None;
    for id in ids.iter().filter_map(|&id| NonZeroU32::new(id)) {
        owned.push(id);
    }
    owned
}

/// The clock, read once per drain and only if a message expires: most
/// messages do not, and they cost no clock read.
#[derive(Default)]
pub(super) struct LazyNow(Option<Instant>);

impl LazyNow {
    pub(super) fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }

    /// The expiry interval left for `m`; `Err` when it has expired.
    pub(super) fn expiry(&mut self, m: &Message) -> Result<Option<u32>, ()> {
        if m.expires_at.is_none() {
            return Ok(None);
        }
        let now = self.get();
        if m.is_expired(now) { Err(()) } else { Ok(m.remaining_expiry(now)) }
    }
}

/// A message waiting to be sent to this session's client.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub message: Arc<Message>,
    /// min(publish QoS, granted QoS).
    pub qos: QoS,
    /// RETAIN flag on the wire: 1 for retained messages sent because of a
    /// new subscription [MQTT-3.3.1-8], 0 otherwise [MQTT-3.3.1-9] unless
    /// the subscription asked for retain as published (MQTT 5).
    pub retain: bool,
    /// The identifiers of the subscriptions that matched (MQTT 5).
    pub subscription_ids: SubscriptionIds,
    /// The shared subscription's group it came through, if any: when this
    /// session's client leaves, the message can go to another member.
    pub group: Option<Arc<Group>>,
    /// Its sequence number in the store (`durable.rs`); 0 when not stored.
    pub stored: u64,
    /// A retained message queued because of a new subscription: the
    /// retained backlog, which does not count against the session's limit
    /// for live messages (`state.rs`).
    pub backlog: bool,
}

impl Delivery {
    pub(crate) fn new(message: Arc<Message>, qos: QoS, retain: bool) -> Delivery {
        Delivery {
            message,
            qos,
            retain,
            subscription_ids: SubscriptionIds::None,
            group: None,
            stored: 0,
            backlog: false,
        }
    }

    pub(super) fn terms(&self) -> DeliveryTerms<'_> {
        DeliveryTerms {
            message: &self.message,
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids.as_slice(),
        }
    }
}

/// A [`Delivery`] as the session queue holds it: 16 bytes, where `Delivery`
/// takes 40. On a fan-out the publisher's thread writes these and each
/// subscriber's connection reads them on another, so their size is cache
/// lines moved between cores per delivery: 32-byte entries were most of
/// what the QoS 0 fan-out (`scripts/bench.sh`, fanout-qos0) lost when
/// subscription identifiers came in. No identifier or one (every MQTT 3.1.1
/// delivery, most MQTT 5 ones) is held inline; several, from overlapping
/// MQTT 5 subscriptions, or a shared subscription's group cost a box.
#[derive(Debug)]
pub(crate) enum Queued {
    Inline { message: Arc<Message>, qos: QoS, retain: bool, subscription_id: Option<NonZeroU32> },
    Boxed(Box<Delivery>),
}

impl Queued {
    pub(crate) fn message(&self) -> &Arc<Message> {
        match self {
            Queued::Inline { message, .. } => message,
            Queued::Boxed(d) => &d.message,
        }
    }

    pub(crate) fn qos(&self) -> QoS {
        match self {
            Queued::Inline { qos, .. } => *qos,
            Queued::Boxed(d) => d.qos,
        }
    }

    pub(super) fn retain(&self) -> bool {
        match self {
            Queued::Inline { retain, .. } => *retain,
            Queued::Boxed(d) => d.retain,
        }
    }

    /// The subscription identifiers, as a slice (`one` holds an inline one).
    pub(super) fn subscription_ids<'a>(&'a self, one: &'a mut [u32; 1]) -> &'a [u32] {
        match self {
            Queued::Inline { subscription_id: Some(id), .. } => {
                one[0] = id.get();
                &one[..]
            }
            Queued::Inline { subscription_id: None, .. } => &[],
            Queued::Boxed(d) => d.subscription_ids.as_slice(),
        }
    }

    /// Whether it is part of the retained backlog (see [`Delivery::backlog`]).
    pub(super) fn is_backlog(&self) -> bool {
        matches!(self, Queued::Boxed(d) if d.backlog)
    }

    pub(super) fn stored(&self) -> u64 {
        match self {
            Queued::Inline { .. } => 0,
            Queued::Boxed(d) => d.stored,
        }
    }

    /// The same delivery with its message compacted (`Message::compacted`).
    pub(crate) fn compacted(self) -> Queued {
        match self {
            Queued::Inline { message, qos, retain, subscription_id } => {
                Queued::Inline { message: Arc::new(message.compacted()), qos, retain, subscription_id }
            }
            Queued::Boxed(mut d) => {
                d.message = Arc::new(d.message.compacted());
                Queued::Boxed(d)
            }
        }
    }

    pub(super) fn group(&self) -> Option<&Arc<Group>> {
        match self {
            Queued::Inline { .. } => None,
            Queued::Boxed(d) => d.group.as_ref(),
        }
    }
}

impl From<Delivery> for Queued {
    fn from(d: Delivery) -> Queued {
        if d.group.is_some() || d.stored != 0 || d.backlog {
            return Queued::Boxed(Box::new(d));
        }
        let subscription_id = match d.subscription_ids {
            SubscriptionIds::None => None,
            SubscriptionIds::One(id) => NonZeroU32::new(id),
            SubscriptionIds::Many(_) => return Queued::Boxed(Box::new(d)),
        };
        Queued::Inline { message: d.message, qos: d.qos, retain: d.retain, subscription_id }
    }
}

impl From<Queued> for Delivery {
    fn from(q: Queued) -> Delivery {
        match q {
            Queued::Inline { message, qos, retain, subscription_id } => {
                let mut subscription_ids = SubscriptionIds::None;
                if let Some(id) = subscription_id {
                    subscription_ids.push(id);
                }
                Delivery { message, qos, retain, subscription_ids, group: None, stored: 0, backlog: false }
            }
            Queued::Boxed(d) => *d,
        }
    }
}
