//! One client's session state, as plain data.
//!
//! A session outlives its connections when the client connects with clean
//! session 0: it keeps the subscriptions, the messages queued while the
//! client is away or behind the in-flight window, and the unfinished QoS 1/2
//! flows (`inflight.rs`). The connection driver and the router lock it briefly
//! and never across an `.await`.
//!
//! Memory is bounded on purpose. The queue holds at most `max_queued`
//! messages; when it is full, a queued QoS 0 message is dropped first, then
//! the new message. At most `max_inflight` QoS 1/2 deliveries wait for an
//! acknowledgement. A slow or absent consumer therefore costs at most
//! `max_queued + max_inflight` shared message references, never an unbounded
//! amount, and never slows down the publisher.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;

use bytes::BytesMut;

use crate::codec;
use crate::message::Message;
use crate::packet::{Ack, Packet, QoS};
use crate::session::delivery::OutAliases;
pub(crate) use crate::session::delivery::{Delivery, Outbound, Outgoing, Queued};
use crate::session::delivery::{LazyNow, owned_ids};
use crate::session::durable::{DeliveryTerms, Durable, grant_of};
use crate::session::inflight::{AckResult, Awaiting, Inflight, OutEntry, Resend};
use crate::session::subscription::{Grant, SubscriptionIds};
use crate::store::StoredSession;
use crate::store::record::{DeliveryState, SessionRecord};

/// Per-session limits, from the configuration's `Limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    pub max_inflight: u16,
    pub max_queued: usize,
    /// Bytes of live queued messages (topic and payload); 0: no limit.
    pub max_queued_bytes: usize,
}

impl SessionLimits {
    /// A session's limits as the configuration sets them.
    pub(crate) fn of(l: &crate::config::Limits) -> SessionLimits {
        SessionLimits {
            max_inflight: l.max_inflight,
            max_queued: l.max_queued_messages,
            max_queued_bytes: l.max_queued_bytes,
        }
    }
}

/// What a queued message counts against `max_queued_bytes`.
fn bytes_of(m: &Message) -> usize {
    m.topic.len() + m.payload.len()
}

/// What `enqueue` did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    Queued,
    /// Queued after dropping an older QoS 0 message to make room.
    QueuedDroppedOldest,
    /// The queue was full of QoS 1/2 messages: the new message was dropped.
    DroppedNew,
    /// A QoS 0 message for an offline client: not stored (the spec allows
    /// this [MQTT-3.1.2-5]) and not counted as a drop.
    SkippedOffline,
}

impl Enqueued {
    pub(crate) fn dropped(self) -> bool {
        matches!(self, Enqueued::QueuedDroppedOldest | Enqueued::DroppedNew)
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    limits: SessionLimits,
    /// Whether a connection is attached. Publishers still queue QoS 1/2
    /// messages for an offline persistent session.
    online: bool,
    /// Whether this state belongs to a persistent session (last connected
    /// with clean session 0): decides `session present` on the next CONNECT.
    persistent: bool,
    /// Filter -> what was granted. The router holds the same set; this copy
    /// lets a session be dropped or restored without asking the router.
    subscriptions: BTreeMap<String, Grant>,
    queue: VecDeque<Queued>,
    queued_qos0: usize,
    /// Bytes (topic and payload) of the queued entries that are not the
    /// retained backlog, for `max_queued_bytes`.
    queued_bytes: usize,
    /// Queued entries that are the retained backlog of a new subscription
    /// ([`Delivery::backlog`]): `max_queued` bounds the others, so a
    /// subscription to `#` over thousands of retained messages does not
    /// make the session drop the live messages that follow it.
    queued_backlog: usize,
    inflight: Inflight,
    /// Messages dropped because the queue was full, over the session's life.
    dropped: u64,
    /// Deliveries skipped because they exceed the client's maximum packet
    /// size, over the session's life.
    oversized: u64,
    /// Queued messages whose message expiry interval passed before they
    /// could be sent, over the session's life.
    expired: u64,
    outbound: Outbound,
    /// True from the first drop until the queue drains, so a flood of drops is
    /// logged once, not once per message.
    dropping: bool,
    /// What the session records in the store; `None` without persistence.
    durable: Option<Box<Durable>>,
    /// Topic aliases given to the attached MQTT 5 client, if it takes any.
    aliases: Option<Box<OutAliases>>,
}

impl Session {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Session {
            limits,
            online: false,
            persistent: false,
            subscriptions: BTreeMap::new(),
            queue: VecDeque::new(),
            queued_qos0: 0,
            queued_backlog: 0,
            queued_bytes: 0,
            inflight: Inflight::new(),
            dropped: 0,
            oversized: 0,
            expired: 0,
            outbound: Outbound::default(),
            dropping: false,
            durable: None,
            aliases: None,
        }
    }

    /// A session of a broker with persistence: it records its changes.
    pub(crate) fn with_durable(limits: SessionLimits, durable: Option<Durable>) -> Self {
        Session { durable: durable.map(Box::new), ..Session::new(limits) }
    }

    /// Counts the backlog entries and the live bytes again (after entries
    /// were taken out of the middle of the queue).
    fn recount(&mut self) {
        self.queued_backlog = self.queue.iter().filter(|d| d.is_backlog()).count();
        self.queued_bytes = self.queue.iter().filter(|d| !d.is_backlog()).map(|d| bytes_of(d.message())).sum();
    }

    /// Where the session's changes go, while it has a record on disk.
    fn rec(&mut self) -> Option<&mut Durable> {
        self.durable.as_deref_mut().filter(|d| d.stored())
    }

    /// Writes the session's record: it outlives its connection, so the
    /// store keeps it (CONNACK waits for it).
    pub(crate) fn persist(&mut self, record: SessionRecord) {
        if let Some(d) = self.durable.as_deref_mut() {
            d.session(record);
        }
    }

    /// The session's client left; it is kept until `expires_at` (wall ms).
    pub(crate) fn stored_offline(&mut self, expires_at: Option<u64>) {
        if let Some(d) = self.rec() {
            d.offline(expires_at);
        }
    }

    /// The session is gone (expired, or closed for good): its records are
    /// removed and it records nothing more.
    pub(crate) fn forget_stored(&mut self) {
        if let Some(d) = self.durable.as_deref_mut() {
            d.removed(false);
        }
    }

    /// A stored delivery is finished.
    fn finished(&mut self, seq: u64) {
        if seq != 0
            && let Some(d) = self.rec()
        {
            d.finished(seq);
        }
    }

    pub(crate) fn is_online(&self) -> bool {
        self.online
    }

    pub(crate) fn subscriptions(&self) -> &BTreeMap<String, Grant> {
        &self.subscriptions
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn inflight(&self) -> &Inflight {
        &self.inflight
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Deliveries not sent because the client's maximum packet size is
    /// smaller (MQTT 5).
    #[cfg(test)]
    pub(crate) fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Queued messages that expired before they could be sent (MQTT 5).
    #[cfg(test)]
    pub(crate) fn expired(&self) -> u64 {
        self.expired
    }

    /// Attaches a connection. With `clean`, everything from an earlier session
    /// is forgotten (the caller also removes its subscriptions from the
    /// router, using the filters returned). Returns `session present` for the
    /// CONNACK [MQTT-3.2.2-1, -2] and the filters to unsubscribe.
    pub(crate) fn attach(&mut self, clean: bool, limits: SessionLimits) -> (bool, Vec<String>) {
        self.attach_with(clean, !clean, limits, Outbound::default())
    }

    /// [`Session::attach`] for every version: `clean` is 3.1.1's clean
    /// session or MQTT 5's clean start (forget what was there); `keep` says
    /// whether the session outlives this connection (3.1.1: not clean; MQTT
    /// 5: a session expiry interval above 0), which decides `session
    /// present` on the next CONNECT.
    pub(crate) fn attach_with(
        &mut self,
        clean: bool,
        keep: bool,
        limits: SessionLimits,
        outbound: Outbound,
    ) -> (bool, Vec<String>) {
        self.limits = limits;
        self.outbound = outbound;
        self.aliases = (outbound.protocol.is_v5() && outbound.topic_alias_maximum > 0)
            .then(|| Box::new(OutAliases::new(outbound.topic_alias_maximum)));
        self.online = true;
        let present = !clean && self.persistent;
        let mut removed = Vec::new();
        if clean || !self.persistent {
            removed = std::mem::take(&mut self.subscriptions).into_keys().collect();
            self.queue.clear();
            self.queued_qos0 = 0;
            self.queued_backlog = 0;
            self.queued_bytes = 0;
            self.inflight.clear();
        }
        if (clean || !keep)
            && let Some(d) = self.durable.as_deref_mut()
        {
            // Not kept past this connection: off the disk (the caller
            // writes a new record when it is kept).
            d.removed(true);
        }
        self.persistent = keep;
        (present, removed)
    }

    /// Whether the session outlives the connection; changed by an MQTT 5
    /// DISCONNECT that sets a session expiry interval.
    pub(crate) fn set_persistent(&mut self, keep: bool) {
        self.persistent = keep;
    }

    /// Forgets everything the session held (subscriptions, queue, in-flight
    /// window) and makes it non-persistent, as for a session just created;
    /// returns the filters removed, for the router. Used when the session
    /// passes to another user (`session-owner: client-id`).
    pub(crate) fn reset(&mut self) -> Vec<String> {
        let removed = std::mem::take(&mut self.subscriptions).into_keys().collect();
        self.queue.clear();
        self.queued_qos0 = 0;
        self.queued_backlog = 0;
        self.queued_bytes = 0;
        self.inflight.clear();
        self.persistent = false;
        if let Some(d) = self.durable.as_deref_mut() {
            d.removed(true);
        }
        removed
    }

    /// Detaches the connection. QoS 0 messages still queued are dropped: they
    /// are not kept for an offline client.
    pub(crate) fn detach(&mut self) {
        self.online = false;
        if self.queued_qos0 > 0 {
            self.queue.retain(|d| d.qos() != QoS::AtMostOnce);
            self.queued_qos0 = 0;
            self.recount();
        }
    }

    /// Records a subscription; returns true when it replaced one for the same
    /// filter [MQTT-3.8.4-3].
    pub(crate) fn add_subscription(&mut self, filter: &str, grant: Grant) -> bool {
        if let Some(d) = self.rec() {
            d.subscription(filter, Some(grant));
        }
        self.subscriptions.insert(filter.to_owned(), grant).is_some()
    }

    pub(crate) fn remove_subscription(&mut self, filter: &str) -> bool {
        let existed = self.subscriptions.remove(filter).is_some();
        if existed && let Some(d) = self.rec() {
            d.subscription(filter, None);
        }
        existed
    }

    /// Queues a delivery, applying the queue limit.
    pub(crate) fn enqueue(&mut self, delivery: Delivery) -> Enqueued {
        self.enqueue_queued(delivery.into())
    }

    /// [`Session::enqueue`] of a delivery already in its queued form (the
    /// router builds it so, before it takes the session's lock).
    pub(crate) fn enqueue_queued(&mut self, delivery: Queued) -> Enqueued {
        if !self.online && delivery.qos() == QoS::AtMostOnce {
            return Enqueued::SkippedOffline;
        }
        let mut result = Enqueued::Queued;
        let size = bytes_of(delivery.message());
        let max_bytes = self.limits.max_queued_bytes;
        if max_bytes != 0 && size > max_bytes {
            // Larger than the whole queue may hold: making room is no use.
            self.dropped += 1;
            return Enqueued::DroppedNew;
        }
        // Live messages only: the retained backlog has a room of its own.
        while self.queue.len() - self.queued_backlog >= self.limits.max_queued
            || (max_bytes != 0 && self.queued_bytes + size > max_bytes)
        {
            let oldest_qos0 = if self.queued_qos0 > 0 {
                self.queue.iter().position(|d| d.qos() == QoS::AtMostOnce && !d.is_backlog())
            } else {
                None
            };
            let Some(i) = oldest_qos0 else {
                self.dropped += 1;
                return Enqueued::DroppedNew;
            };
            if let Some(old) = self.queue.remove(i) {
                self.queued_bytes -= bytes_of(old.message());
            }
            self.queued_qos0 -= 1;
            result = Enqueued::QueuedDroppedOldest;
            self.dropped += 1;
        }
        self.queued_bytes += size;
        let delivery = match self.rec() {
            Some(d) if delivery.qos() != QoS::AtMostOnce => {
                let mut stored = Delivery::from(delivery);
                stored.stored = d.queued(&stored.terms());
                Queued::Boxed(Box::new(stored))
            }
            _ => delivery,
        };
        if delivery.qos() == QoS::AtMostOnce {
            self.queued_qos0 += 1;
        }
        self.queue.push_back(delivery);
        result
    }

    /// Queues a retained message sent because of a subscription, unless
    /// the queue already holds `room` deliveries; returns whether it was
    /// queued. Every matching retained message must be sent
    /// [MQTT-3.3.1-6], so the caller gives room for the queue limit plus the
    /// whole retained store: one SUBSCRIBE always gets all its retained
    /// messages, while a client that subscribes again and again without
    /// reading stops growing its queue there instead of without bound.
    pub(crate) fn enqueue_retained(&mut self, mut delivery: Delivery, room: usize) -> bool {
        if self.queue.len() >= room {
            self.dropped += 1;
            return false;
        }
        if delivery.qos == QoS::AtMostOnce {
            self.queued_qos0 += 1;
        } else if let Some(d) = self.rec() {
            delivery.stored = d.queued(&delivery.terms());
        }
        delivery.backlog = true;
        self.queued_backlog += 1;
        self.queue.push_back(delivery.into());
        true
    }

    /// Marks the session as dropping; returns true on the first drop of an
    /// episode, when the caller should log.
    pub(crate) fn note_drop(&mut self) -> bool {
        !std::mem::replace(&mut self.dropping, true)
    }

    /// Encodes queued deliveries into `out` while the in-flight window has
    /// room and `out` is below `max_bytes`. Returns the number of PUBLISH
    /// packets written. Order is kept: a QoS 1/2 message that does not fit the
    /// window holds back the messages behind it [MQTT-4.6.0-6].
    pub(crate) fn drain_into(&mut self, out: &mut BytesMut, max_bytes: usize) -> usize {
        self.drain_into_checked(out, max_bytes, &mut |_| true)
    }

    /// Like [`Session::drain_into`], but a delivery for which `allow`
    /// answers false (a delivery check of the topic plugins) is dropped: not
    /// sent, not in flight.
    pub(crate) fn drain_into_checked(
        &mut self,
        out: &mut BytesMut,
        max_bytes: usize,
        allow: &mut dyn FnMut(&Message) -> bool,
    ) -> usize {
        let mut sent = 0;
        let mut now = LazyNow::default();
        while out.len() < max_bytes {
            let Some(front) = self.queue.front() else { break };
            let (qos, retain) = (front.qos(), front.retain());
            if qos != QoS::AtMostOnce && self.inflight.outbound_len() >= usize::from(self.limits.max_inflight) {
                break;
            }
            // Encoded where it lies and popped after, not moved out first:
            // a moved-out delivery went through the stack in pieces the next
            // load could not be forwarded from, so each one waited for the
            // store to the queue's head, a cache line the publishing thread
            // keeps taking.
            let message = front.message();
            let stored = front.stored();
            // Set when the stored delivery ends here, not in flight.
            let mut finished = stored;
            // Not delivered once expired [MQTT-3.3.2-5].
            match now.expiry(message) {
                Err(()) => self.expired += 1,
                Ok(_) if !allow(message) => {}
                Ok(expiry) => {
                    let mut one = [0];
                    let mut p = Outgoing {
                        message,
                        qos,
                        retain,
                        dup: false,
                        packet_id: 0,
                        subscription_ids: front.subscription_ids(&mut one),
                        expiry,
                    };
                    if !self.outbound.fits(&p) {
                        // Discarded as if sent [MQTT-3.1.2-25].
                        self.oversized += 1;
                    } else {
                        if qos != QoS::AtMostOnce {
                            let ids = owned_ids(p.subscription_ids);
                            p.packet_id = self.inflight.start(message.clone(), qos, retain, ids);
                            if let Some(group) = front.group() {
                                self.inflight.set_group(p.packet_id, Some(group.clone()));
                            }
                            if stored != 0 {
                                finished = 0;
                                self.inflight.set_stored(p.packet_id, stored);
                                if let Some(d) = self.durable.as_deref_mut().filter(|d| d.stored()) {
                                    let terms =
                                        DeliveryTerms { message, qos, retain, subscription_ids: p.subscription_ids };
                                    d.sent(stored, &terms, p.packet_id);
                                }
                            }
                        }
                        self.outbound.encode_aliased(&p, self.aliases.as_deref_mut(), out);
                        sent += 1;
                    }
                }
            }
            if qos == QoS::AtMostOnce {
                self.queued_qos0 -= 1;
            }
            if front.is_backlog() {
                self.queued_backlog -= 1;
            } else {
                self.queued_bytes -= bytes_of(message);
            }
            self.queue.pop_front();
            self.finished(finished);
        }
        if self.queue.is_empty() {
            self.dropping = false;
        }
        sent
    }

    /// Encodes the packets a resumed persistent session must send again
    /// [MQTT-4.4.0-1]: unacknowledged PUBLISHes with DUP set, then PUBRELs,
    /// in their original order. Returns the number of PUBLISH and of PUBREL
    /// packets written (for the counters).
    pub(crate) fn resume_into(&mut self, out: &mut BytesMut) -> (usize, usize) {
        let resend = self.inflight.resume();
        let (mut publishes, mut pubrels) = (0, 0);
        let mut now = LazyNow::default();
        for r in &resend {
            match *r {
                Resend::Publish { packet_id } => {
                    if let Some(e) = self.inflight.get(packet_id) {
                        // Onward delivery has started: sent again even if
                        // expired since [MQTT-3.3.2-5], with the shortest
                        // interval.
                        let expiry = now.expiry(&e.message).unwrap_or(Some(1));
                        let p = Outgoing {
                            message: &e.message,
                            qos: e.qos,
                            retain: e.retain,
                            dup: true,
                            packet_id,
                            subscription_ids: e.subscription_ids.as_slice(),
                            expiry,
                        };
                        self.outbound.encode_aliased(&p, self.aliases.as_deref_mut(), out);
                        publishes += 1;
                    }
                }
                Resend::Pubrel(id) => {
                    codec::encode(&Packet::Pubrel(Ack::new(id)), self.outbound.protocol, out);
                    pubrels += 1;
                }
            }
        }
        (publishes, pubrels)
    }

    /// The stored sequence number of flow `packet_id` (0: none). Looked up
    /// only with persistence on: the in-flight window is searched linearly,
    /// and an acknowledgement without a store should not pay twice.
    fn stored_of(&self, packet_id: u16) -> u64 {
        if self.durable.is_none() {
            return 0;
        }
        self.inflight.get(packet_id).map_or(0, |e| e.stored)
    }

    pub(crate) fn on_puback(&mut self, packet_id: u16) -> AckResult {
        let stored = self.stored_of(packet_id);
        let r = self.inflight.on_puback(packet_id);
        if r == AckResult::Done {
            self.finished(stored);
        }
        r
    }

    pub(crate) fn on_pubrec(&mut self, packet_id: u16) -> AckResult {
        let first = self.durable.is_some() && self.inflight.get(packet_id).is_some_and(|e| e.state == Awaiting::Pubrec);
        let r = self.inflight.on_pubrec(packet_id);
        if r == AckResult::Done
            && first
            && let Some(e) = self.inflight.get(packet_id)
            && e.stored != 0
            && let Some(d) = self.durable.as_deref_mut().filter(|d| d.stored())
        {
            let terms = DeliveryTerms {
                message: &e.message,
                qos: e.qos,
                retain: e.retain,
                subscription_ids: e.subscription_ids.as_slice(),
            };
            d.released(e.stored, &terms, packet_id);
        }
        r
    }

    pub(crate) fn on_pubcomp(&mut self, packet_id: u16) -> AckResult {
        let stored = self.stored_of(packet_id);
        let r = self.inflight.on_pubcomp(packet_id);
        if r == AckResult::Done {
            self.finished(stored);
        }
        r
    }

    pub(crate) fn on_inbound_qos2(&mut self, packet_id: u16) -> bool {
        let new = self.inflight.on_inbound_qos2(packet_id);
        if new && let Some(d) = self.rec() {
            d.inbound(packet_id, true);
        }
        new
    }

    /// Whether an inbound QoS 2 message with this id awaits its PUBREL.
    pub(crate) fn awaits_pubrel(&self, packet_id: u16) -> bool {
        self.inflight.awaits_pubrel(packet_id)
    }

    pub(crate) fn on_pubrec_refused(&mut self, packet_id: u16) -> AckResult {
        let stored = self.stored_of(packet_id);
        let r = self.inflight.on_pubrec_refused(packet_id);
        if r == AckResult::Done {
            self.finished(stored);
        }
        r
    }

    pub(crate) fn on_pubrel(&mut self, packet_id: u16) -> AckResult {
        let r = self.inflight.on_pubrel(packet_id);
        if r == AckResult::Done
            && let Some(d) = self.rec()
        {
            d.inbound(packet_id, false);
        }
        r
    }

    /// Whether there is something `drain_into` could send now.
    #[cfg(test)]
    pub(crate) fn has_sendable(&self) -> bool {
        match self.queue.front() {
            None => false,
            Some(d) => {
                d.qos() == QoS::AtMostOnce || self.inflight.outbound_len() < usize::from(self.limits.max_inflight)
            }
        }
    }

    /// Takes out the QoS 1 and 2 messages that came through shared
    /// subscriptions and are not finished: queued, or sent and not yet
    /// acknowledged (a PUBREC means the client has the message: that one
    /// stays). The caller hands them to other members of their groups.
    pub(crate) fn take_shared(&mut self) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for d in self.queue.drain(..) {
            if d.group().is_some() && d.qos() != QoS::AtMostOnce { taken.push(d.into()) } else { kept.push_back(d) }
        }
        self.queue = kept;
        self.recount();
        for e in self.inflight.take_shared(&[Awaiting::Puback, Awaiting::Pubrec]) {
            taken.push(Delivery {
                message: e.message,
                qos: e.qos,
                retain: e.retain,
                subscription_ids: e.subscription_ids,
                group: e.group,
                stored: e.stored,
                backlog: false,
            });
        }
        // They leave this session: so do their records (the member that
        // takes one over stores its own).
        for d in &mut taken {
            let seq = std::mem::take(&mut d.stored);
            self.finished(seq);
        }
        taken
    }

    /// Rebuilds the session from what the store kept (broker start-up):
    /// persistent and offline, with its subscriptions, queued messages,
    /// QoS 2 flows and inbound QoS 2 ids, recording nothing (it is all on
    /// disk already). Returns the subscriptions, for the router.
    pub(crate) fn restore(&mut self, stored: &StoredSession) -> Vec<(String, Grant)> {
        self.persistent = true;
        let mut next_seq = 1;
        for (filter, r) in &stored.subscriptions {
            self.subscriptions.insert(filter.clone(), grant_of(r));
        }
        for (seq, r) in &stored.deliveries {
            next_seq = next_seq.max(seq + 1);
            let mut ids = SubscriptionIds::None;
            for id in r.subscription_ids.iter().filter_map(|&id| NonZeroU32::new(id)) {
                ids.push(id);
            }
            let delivery = |subscription_ids| Delivery {
                message: r.message.clone(),
                qos: r.qos,
                retain: r.retain,
                subscription_ids,
                group: None,
                stored: *seq,
                backlog: false,
            };
            let (packet_id, state) = match r.state {
                DeliveryState::Queued => {
                    self.queued_bytes += bytes_of(&r.message);
                    self.queue.push_back(Queued::Boxed(Box::new(delivery(ids))));
                    continue;
                }
                DeliveryState::Sent(id) if r.qos == QoS::AtLeastOnce => (id, Awaiting::Puback),
                DeliveryState::Sent(id) => (id, Awaiting::Pubrec),
                DeliveryState::Released(id) => (id, Awaiting::Pubcomp),
            };
            let d = delivery(ids);
            self.inflight.restore(OutEntry {
                packet_id,
                message: d.message,
                qos: d.qos,
                retain: d.retain,
                subscription_ids: d.subscription_ids,
                group: None,
                state,
                stored: *seq,
            });
        }
        for &id in &stored.inbound {
            self.inflight.restore_inbound(id);
        }
        if let Some(d) = self.durable.as_deref_mut() {
            d.restored(stored.record.clone(), next_seq);
        }
        self.subscriptions.iter().map(|(f, g)| (f.clone(), *g)).collect()
    }

    /// Takes every queued delivery (used by in-process subscribers, which
    /// acknowledge on receipt).
    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        let mut now = LazyNow::default();
        loop {
            let d = self.queue.pop_front()?;
            if d.qos() == QoS::AtMostOnce {
                self.queued_qos0 -= 1;
            }
            if d.is_backlog() {
                self.queued_backlog -= 1;
            } else {
                self.queued_bytes -= bytes_of(d.message());
            }
            if self.queue.is_empty() {
                self.dropping = false;
            }
            if now.expiry(d.message()).is_ok() {
                return Some(d.into());
            }
            self.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Protocol;
    use crate::session::shared_group::Group;
    use std::sync::Arc;
    use std::time::Instant;

    const LIMITS: SessionLimits = SessionLimits { max_inflight: 2, max_queued: 3, max_queued_bytes: 0 };

    fn delivery(payload: &str, qos: QoS) -> Delivery {
        Delivery::new(Arc::new(Message::new("t", payload.to_owned(), qos, false)), qos, false)
    }

    fn online() -> Session {
        let mut s = Session::new(LIMITS);
        s.attach(true, LIMITS);
        s
    }

    fn decode_all(buf: &mut BytesMut) -> Vec<Packet> {
        let mut v = Vec::new();
        while let Ok(Some(p)) = codec::decode(buf, 1 << 20, Protocol::V311) {
            v.push(p);
        }
        v
    }

    #[test]
    fn the_retained_backlog_does_not_take_the_room_of_live_messages() {
        let mut s = online();
        for i in 0..10 {
            assert!(s.enqueue_retained(delivery(&format!("r{i}"), QoS::AtLeastOnce), 100));
        }
        // max_queued is 3: three live messages fit beside the ten retained.
        for i in 0..3 {
            assert_eq!(s.enqueue(delivery(&format!("l{i}"), QoS::AtLeastOnce)), Enqueued::Queued, "live {i}");
        }
        assert_eq!(s.enqueue(delivery("l3", QoS::AtLeastOnce)), Enqueued::DroppedNew, "the live limit holds");
        // Draining the backlog frees nothing for live messages, and then
        // the live queue drains as usual.
        let mut out = BytesMut::new();
        while s.drain_into(&mut out, usize::MAX) > 0 {
            let ids: Vec<u16> = s
                .inflight()
                .resume()
                .iter()
                .filter_map(|r| match r {
                    Resend::Publish { packet_id } => Some(*packet_id),
                    Resend::Pubrel(_) => None,
                })
                .collect();
            for id in ids {
                s.on_puback(id);
            }
        }
        assert_eq!((s.queued(), s.queued_backlog), (0, 0));
        assert_eq!(s.enqueue(delivery("l4", QoS::AtLeastOnce)), Enqueued::Queued);
    }

    #[test]
    fn mqtt_3_2_2_session_present() {
        let mut s = Session::new(LIMITS);
        assert!(!s.attach(false, LIMITS).0, "no earlier session");
        s.add_subscription("a/#", Grant::qos(QoS::AtLeastOnce));
        s.detach();
        let (present, removed) = s.attach(false, LIMITS);
        assert!(present);
        assert!(removed.is_empty());
        assert_eq!(s.subscriptions().len(), 1);
        s.detach();
        let (present, removed) = s.attach(true, LIMITS);
        assert!(!present, "[MQTT-3.2.2-1] clean session never has session present");
        assert_eq!(removed, vec!["a/#".to_string()]);
        assert!(s.subscriptions().is_empty());
    }

    #[test]
    fn offline_session_keeps_qos1_and_skips_qos0() {
        let mut s = Session::new(LIMITS);
        s.attach(false, LIMITS);
        s.detach();
        assert_eq!(s.enqueue(delivery("a", QoS::AtMostOnce)), Enqueued::SkippedOffline);
        assert_eq!(s.enqueue(delivery("b", QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(s.queued(), 1);
    }

    #[test]
    fn full_queue_drops_qos0_first_then_new() {
        let mut s = online();
        assert_eq!(s.enqueue(delivery("0", QoS::AtMostOnce)), Enqueued::Queued);
        assert_eq!(s.enqueue(delivery("1", QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(s.enqueue(delivery("2", QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(s.enqueue(delivery("3", QoS::AtLeastOnce)), Enqueued::QueuedDroppedOldest);
        assert_eq!(s.enqueue(delivery("4", QoS::ExactlyOnce)), Enqueued::DroppedNew);
        assert_eq!(s.enqueue(delivery("5", QoS::AtMostOnce)), Enqueued::DroppedNew);
        assert_eq!(s.dropped(), 3);
        assert!(s.note_drop());
        assert!(!s.note_drop(), "one log line per episode");
        let payloads: Vec<_> = std::iter::from_fn(|| s.pop()).map(|d| d.message.payload.clone()).collect();
        assert_eq!(payloads, vec!["1", "2", "3"]);
    }

    #[test]
    fn window_limits_inflight_and_keeps_order() {
        let limits = SessionLimits { max_inflight: 2, max_queued: 10, max_queued_bytes: 0 };
        let mut s = Session::new(limits);
        s.attach(true, limits);
        s.enqueue(delivery("a", QoS::AtLeastOnce));
        s.enqueue(delivery("b", QoS::ExactlyOnce));
        s.enqueue(delivery("c", QoS::AtLeastOnce));
        s.enqueue(delivery("d", QoS::AtMostOnce));
        let mut out = BytesMut::new();
        assert_eq!(s.drain_into(&mut out, 1 << 20), 2, "window of 2 holds back c, and d behind it");
        assert!(!s.has_sendable());
        let packets = decode_all(&mut out);
        let ids: Vec<u16> = packets
            .iter()
            .map(|p| match p {
                Packet::Publish(p) => p.packet_id,
                _ => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(s.on_puback(ids[0]), AckResult::Done);
        assert!(s.has_sendable());
        assert_eq!(s.drain_into(&mut out, 1 << 20), 2, "c takes the freed slot, d follows");
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn refused_deliveries_are_dropped_not_in_flight() {
        let limits = SessionLimits { max_inflight: 1, max_queued: 10, max_queued_bytes: 0 };
        let mut s = Session::new(limits);
        s.attach(true, limits);
        s.enqueue(delivery("no", QoS::AtLeastOnce));
        s.enqueue(delivery("no", QoS::AtMostOnce));
        s.enqueue(delivery("yes", QoS::AtLeastOnce));
        let mut out = BytesMut::new();
        let sent = s.drain_into_checked(&mut out, 1 << 20, &mut |m| &m.payload[..] == b"yes");
        assert_eq!(sent, 1, "the refused QoS 1 message does not take the window of 1");
        assert_eq!(s.queued(), 0);
        assert_eq!(decode_all(&mut out).len(), 1);
    }

    #[test]
    fn drain_respects_byte_budget() {
        let mut s = online();
        s.enqueue(delivery("a", QoS::AtMostOnce));
        s.enqueue(delivery("b", QoS::AtMostOnce));
        let mut out = BytesMut::new();
        assert_eq!(s.drain_into(&mut out, 1), 1);
        assert_eq!(s.queued(), 1);
    }

    #[test]
    fn mqtt_4_4_0_1_resume_sets_dup_and_keeps_ids() {
        let mut s = Session::new(LIMITS);
        s.attach(false, LIMITS);
        s.enqueue(delivery("a", QoS::AtLeastOnce));
        s.enqueue(delivery("b", QoS::ExactlyOnce));
        let mut out = BytesMut::new();
        s.drain_into(&mut out, 1 << 20);
        let first = decode_all(&mut out);
        let Packet::Publish(b) = &first[1] else { panic!() };
        s.on_pubrec(b.packet_id);
        s.detach();
        let (present, _) = s.attach(false, LIMITS);
        assert!(present);
        s.resume_into(&mut out);
        let again = decode_all(&mut out);
        let Packet::Publish(a) = &again[0] else { panic!("{again:?}") };
        let Packet::Publish(a0) = &first[0] else { panic!() };
        assert!(a.dup);
        assert_eq!(a.packet_id, a0.packet_id);
        assert_eq!(again[1], Packet::Pubrel(Ack::new(b.packet_id)));
    }

    #[test]
    fn mqtt_3_3_2_5_expired_messages_are_not_sent_and_the_rest_say_what_is_left() {
        use crate::packet::MessageProperties;
        let mut s = Session::new(LIMITS);
        let v5 = Outbound { protocol: Protocol::V5, ..Outbound::default() };
        s.attach_with(true, false, LIMITS, v5);
        let now = Instant::now();
        let expiring = |seconds: u32, topic: &str| {
            let mut m = Message::new(topic, "x", QoS::AtLeastOnce, false);
            m.properties = Some(Arc::new(MessageProperties {
                message_expiry_interval: Some(seconds),
                ..MessageProperties::default()
            }));
            Arc::new(m.expiring(now))
        };
        let mut gone = (*expiring(60, "gone")).clone();
        gone.expires_at = Some(now);
        s.enqueue(Delivery::new(Arc::new(gone), QoS::AtLeastOnce, false));
        s.enqueue(Delivery::new(expiring(60, "kept"), QoS::AtLeastOnce, false));
        let mut out = BytesMut::new();
        assert_eq!(s.drain_into(&mut out, usize::MAX), 1);
        assert_eq!(s.expired(), 1);
        assert_eq!(s.inflight().outbound_len(), 1, "the expired one took no packet id");
        let Ok(Some(Packet::Publish(p))) = codec::decode(&mut out, 1 << 20, Protocol::V5) else { panic!() };
        assert_eq!(&*p.topic, "kept");
        let left = p.properties.and_then(|p| p.message_expiry_interval).expect("the interval left");
        assert!((59..=60).contains(&left), "{left}");
    }

    #[test]
    fn mqtt_3_1_2_24_nothing_above_the_clients_maximum_packet_size() {
        let mut s = Session::new(LIMITS);
        s.attach_with(
            true,
            false,
            LIMITS,
            Outbound { protocol: Protocol::V5, max_packet_size: 20, ..Outbound::default() },
        );
        s.enqueue(delivery("this payload makes the packet too large", QoS::AtLeastOnce));
        s.enqueue(delivery("small", QoS::AtLeastOnce));
        let mut out = BytesMut::new();
        assert_eq!(s.drain_into(&mut out, usize::MAX), 1);
        assert_eq!((s.oversized(), s.inflight().outbound_len()), (1, 1));
        assert!(out.len() <= 20);
    }

    #[test]
    fn queued_deliveries_are_16_bytes_and_keep_their_identifiers() {
        assert_eq!(std::mem::size_of::<Queued>(), 16, "see Queued");
        let id = |n| NonZeroU32::new(n).unwrap();
        let mut s = online();
        for ids in [vec![], vec![7], vec![7, 9]] {
            let mut d = delivery("p", QoS::AtLeastOnce);
            d.retain = true;
            for n in &ids {
                d.subscription_ids.push(id(*n));
            }
            assert_eq!(s.enqueue(d), Enqueued::Queued);
            let back = s.pop().unwrap();
            assert_eq!((back.qos, back.retain), (QoS::AtLeastOnce, true));
            assert_eq!(back.subscription_ids.as_slice(), ids.as_slice());
        }
        // A shared subscription's delivery keeps its group through the queue.
        let mut d = delivery("g", QoS::AtLeastOnce);
        d.group = Some(Arc::new(Group::new("g", "t")));
        s.enqueue(d);
        assert_eq!(s.pop().and_then(|d| d.group).map(|g| g.name.to_string()), Some("g".into()));
    }

    #[test]
    fn mqtt_3_3_1_8_retain_flag_only_for_new_subscription() {
        let mut s = online();
        let mut d = delivery("r", QoS::AtMostOnce);
        d.retain = true;
        s.enqueue(d);
        s.enqueue(delivery("n", QoS::AtMostOnce));
        let mut out = BytesMut::new();
        s.drain_into(&mut out, 1 << 20);
        let flags: Vec<bool> = decode_all(&mut out)
            .into_iter()
            .map(|p| match p {
                Packet::Publish(p) => p.retain,
                _ => panic!(),
            })
            .collect();
        assert_eq!(flags, vec![true, false]);
    }
}
