//! The QoS 1 and QoS 2 flows of one session, in both directions.
//!
//! Outbound (broker to client): a PUBLISH with QoS 1 waits for PUBACK; with
//! QoS 2 it waits for PUBREC, then the broker sends PUBREL and waits for
//! PUBCOMP (MQTT 3.1.1 section 4.3). The number of unacknowledged outbound
//! messages is capped by the in-flight window, which is what keeps a slow
//! consumer from holding an unbounded amount of broker memory.
//!
//! Inbound (client to broker) QoS 2 uses "method B" of figure 4.3: the message
//! is routed on its first PUBLISH, its packet id is remembered until PUBREL,
//! and a re-sent PUBLISH with the same id is acknowledged but not routed
//! again. That is what makes inbound QoS 2 exactly once.
//!
//! Everything here is plain data: the connection driver feeds acknowledgements
//! in and writes out what comes back.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::message::Message;
use crate::packet::QoS;
use crate::session::shared_group::Group;
use crate::session::subscription::SubscriptionIds;

/// What an outbound QoS > 0 delivery waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// QoS 1 PUBLISH sent, PUBACK expected.
    Puback,
    /// QoS 2 PUBLISH sent, PUBREC expected.
    Pubrec,
    /// QoS 2 PUBREL sent, PUBCOMP expected. The message itself may be
    /// forgotten here; only the id is still in use.
    Pubcomp,
}

/// An outbound delivery that the client has not finished acknowledging.
#[derive(Debug, Clone)]
pub(crate) struct OutEntry {
    pub packet_id: u16,
    pub message: Arc<Message>,
    /// QoS of this delivery (already min(publish QoS, granted QoS)).
    pub qos: QoS,
    /// RETAIN flag of this delivery (set only for retained messages sent on subscribe).
    pub retain: bool,
    /// The matching subscriptions' identifiers, sent again on a re-send.
    pub subscription_ids: SubscriptionIds,
    /// The shared subscription's group it came through, if any.
    pub group: Option<Arc<Group>>,
    pub state: Awaiting,
    /// Its sequence number in the store (`session/durable.rs`); 0 when
    /// not stored.
    pub stored: u64,
}

/// A packet the flow wants sent after an acknowledgement or on resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Re-send the PUBLISH with DUP set [MQTT-4.4.0-1].
    Publish {
        packet_id: u16,
    },
    Pubrel(u16),
}

/// Result of an acknowledgement from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckResult {
    /// The acknowledgement completed or advanced a flow.
    Done,
    /// No flow was waiting for this packet type with this id. Harmless (a
    /// duplicate after a reconnect, for instance); the caller logs it.
    Unknown,
    /// A flow with this id waits for another acknowledgement: PUBREC for a
    /// QoS 1 delivery, PUBACK or PUBCOMP where the flow is not at that
    /// step. A protocol violation [MQTT-4.3.2, MQTT-4.3.3]; the caller
    /// closes the connection, as Mosquitto does. The flow is unchanged.
    WrongType,
}

#[derive(Debug, Default)]
pub(crate) struct Inflight {
    /// Outbound flows in the order their PUBLISH was first sent; re-sent in
    /// that order on reconnect [MQTT-4.6.0-1]. At most `max_inflight` long, so
    /// the linear lookups below stay short.
    out: VecDeque<OutEntry>,
    next_id: u16,
    /// Inbound QoS 2 ids between PUBLISH and PUBREL.
    inbound_qos2: BTreeSet<u16>,
}

impl Inflight {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of outbound deliveries not yet fully acknowledged.
    pub(crate) fn outbound_len(&self) -> usize {
        self.out.len()
    }

    /// Number of inbound QoS 2 messages awaiting PUBREL.
    pub(crate) fn inbound_len(&self) -> usize {
        self.inbound_qos2.len()
    }

    pub(crate) fn get(&self, packet_id: u16) -> Option<&OutEntry> {
        self.out.iter().find(|e| e.packet_id == packet_id)
    }

    /// Starts an outbound QoS 1 or 2 flow and returns its fresh packet id.
    /// The caller has checked the window; ids in use are never reused
    /// [MQTT-2.3.1-2].
    pub(crate) fn start(
        &mut self,
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        subscription_ids: SubscriptionIds,
    ) -> u16 {
        debug_assert!(qos != QoS::AtMostOnce);
        let packet_id = self.allocate_id();
        let state = if qos == QoS::ExactlyOnce { Awaiting::Pubrec } else { Awaiting::Puback };
        self.out.push_back(OutEntry {
            packet_id,
            message,
            qos,
            retain,
            subscription_ids,
            group: None,
            state,
            stored: 0,
        });
        packet_id
    }

    /// Records flow `packet_id`'s sequence number in the store.
    pub(crate) fn set_stored(&mut self, packet_id: u16, seq: u64) {
        if let Some(e) = self.out.iter_mut().find(|e| e.packet_id == packet_id) {
            e.stored = seq;
        }
    }

    /// Puts back a flow loaded from the store, with its packet id and step.
    pub(crate) fn restore(&mut self, entry: OutEntry) {
        self.next_id = self.next_id.max(entry.packet_id);
        self.out.push_back(entry);
    }

    /// Puts back an inbound QoS 2 id loaded from the store.
    pub(crate) fn restore_inbound(&mut self, packet_id: u16) {
        self.inbound_qos2.insert(packet_id);
    }

    fn allocate_id(&mut self) -> u16 {
        // The window is far below 65535, so this finds a free id quickly.
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id == 0 {
                self.next_id = 1;
            }
            let id = self.next_id;
            if !self.out.iter().any(|e| e.packet_id == id) {
                return id;
            }
        }
    }

    fn position(&self, packet_id: u16, state: Awaiting) -> Option<usize> {
        self.out.iter().position(|e| e.packet_id == packet_id && e.state == state)
    }

    /// Unknown, or WrongType when a flow with this id is at another step.
    fn not_waiting(&self, packet_id: u16) -> AckResult {
        if self.out.iter().any(|e| e.packet_id == packet_id) { AckResult::WrongType } else { AckResult::Unknown }
    }

    /// PUBACK from the client ends a QoS 1 flow.
    pub(crate) fn on_puback(&mut self, packet_id: u16) -> AckResult {
        match self.position(packet_id, Awaiting::Puback) {
            Some(i) => {
                self.out.remove(i);
                AckResult::Done
            }
            None => self.not_waiting(packet_id),
        }
    }

    /// PUBREC from the client: the broker must answer PUBREL [MQTT-4.3.3-1].
    /// A PUBREC for a flow already past that point (a duplicate) gets the
    /// PUBREL again, which is what the client is waiting for.
    pub(crate) fn on_pubrec(&mut self, packet_id: u16) -> AckResult {
        if let Some(i) = self.position(packet_id, Awaiting::Pubrec) {
            self.out[i].state = Awaiting::Pubcomp;
            AckResult::Done
        } else if self.position(packet_id, Awaiting::Pubcomp).is_some() {
            AckResult::Done
        } else {
            self.not_waiting(packet_id)
        }
    }

    /// Records the shared subscription group of flow `packet_id`.
    pub(crate) fn set_group(&mut self, packet_id: u16, group: Option<Arc<Group>>) {
        if let Some(e) = self.out.iter_mut().find(|e| e.packet_id == packet_id) {
            e.group = group;
        }
    }

    /// Removes and returns the flows of shared subscriptions that are at
    /// one of `states`; their packet ids are free again.
    pub(crate) fn take_shared(&mut self, states: &[Awaiting]) -> Vec<OutEntry> {
        let (taken, kept) =
            std::mem::take(&mut self.out).into_iter().partition(|e| e.group.is_some() && states.contains(&e.state));
        self.out = kept;
        taken.into()
    }

    /// An MQTT 5 PUBREC with a failure reason ends a QoS 2 flow at once: no
    /// PUBREL follows [MQTT 5 §4.3.3]. Returns `Done` when such a flow was
    /// waiting for its PUBREC.
    pub(crate) fn on_pubrec_refused(&mut self, packet_id: u16) -> AckResult {
        match self.position(packet_id, Awaiting::Pubrec) {
            Some(i) => {
                self.out.remove(i);
                AckResult::Done
            }
            None => self.not_waiting(packet_id),
        }
    }

    /// PUBCOMP from the client ends a QoS 2 flow.
    pub(crate) fn on_pubcomp(&mut self, packet_id: u16) -> AckResult {
        match self.position(packet_id, Awaiting::Pubcomp) {
            Some(i) => {
                self.out.remove(i);
                AckResult::Done
            }
            None => self.not_waiting(packet_id),
        }
    }

    /// An inbound QoS 2 PUBLISH: returns true when it is new and must be
    /// routed, false when it repeats one whose PUBREL has not come yet. Either
    /// way the broker answers PUBREC [MQTT-4.3.3-2].
    /// Whether an inbound QoS 2 message with this id awaits its PUBREL.
    pub(crate) fn awaits_pubrel(&self, packet_id: u16) -> bool {
        self.inbound_qos2.contains(&packet_id)
    }

    pub(crate) fn on_inbound_qos2(&mut self, packet_id: u16) -> bool {
        self.inbound_qos2.insert(packet_id)
    }

    /// PUBREL from the client releases the id; the broker answers PUBCOMP
    /// whether or not it knew the id [MQTT-4.3.3-2].
    pub(crate) fn on_pubrel(&mut self, packet_id: u16) -> AckResult {
        if self.inbound_qos2.remove(&packet_id) { AckResult::Done } else { AckResult::Unknown }
    }

    /// Packets to re-send when a persistent session resumes on a new
    /// connection: unacknowledged PUBLISHes (with DUP) and PUBRELs, in their
    /// original order and with their original ids [MQTT-4.4.0-1].
    pub(crate) fn resume(&self) -> Vec<Resend> {
        self.out
            .iter()
            .map(|e| match e.state {
                Awaiting::Puback | Awaiting::Pubrec => Resend::Publish { packet_id: e.packet_id },
                Awaiting::Pubcomp => Resend::Pubrel(e.packet_id),
            })
            .collect()
    }

    /// Forgets everything (clean session).
    pub(crate) fn clear(&mut self) {
        self.out.clear();
        self.inbound_qos2.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Arc<Message> {
        Arc::new(Message::new("t", "p", QoS::ExactlyOnce, false))
    }

    #[test]
    fn qos1_flow_completes_on_puback() {
        let mut f = Inflight::new();
        let id = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        assert_ne!(id, 0);
        assert_eq!(f.outbound_len(), 1);
        assert_eq!(f.on_pubrec(id), AckResult::WrongType, "PUBREC for a QoS 1 delivery");
        assert_eq!(f.on_pubcomp(id), AckResult::WrongType, "PUBCOMP for a QoS 1 delivery");
        assert_eq!(f.on_puback(id), AckResult::Done);
        assert_eq!(f.outbound_len(), 0);
        assert_eq!(f.on_puback(id), AckResult::Unknown);
    }

    #[test]
    fn mqtt_4_3_3_1_qos2_outbound_flow() {
        let mut f = Inflight::new();
        let id = f.start(msg(), QoS::ExactlyOnce, false, SubscriptionIds::None);
        assert_eq!(f.on_pubcomp(id), AckResult::WrongType, "PUBCOMP before PUBREC is out of order");
        assert_eq!(f.on_puback(id), AckResult::WrongType, "PUBACK in a QoS 2 flow");
        assert_eq!(f.get(id).map(|e| e.state), Some(Awaiting::Pubrec), "the flow is unchanged");
        assert_eq!(f.on_pubrec(id), AckResult::Done);
        assert_eq!(f.on_puback(id), AckResult::WrongType, "PUBACK after PUBREC");
        assert_eq!(f.get(id).map(|e| e.state), Some(Awaiting::Pubcomp));
        assert_eq!(f.on_pubrec(id), AckResult::Done, "duplicate PUBREC gets PUBREL again");
        assert_eq!(f.on_pubcomp(id), AckResult::Done);
        assert_eq!(f.outbound_len(), 0);
        assert_eq!(f.on_pubcomp(id), AckResult::Unknown, "a duplicate PUBCOMP is harmless");
    }

    #[test]
    fn mqtt_2_3_1_2_ids_in_use_are_not_reused() {
        let mut f = Inflight::new();
        let first = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        f.next_id = u16::MAX - 1; // the id after 65535 wraps onto `first`
        let a = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        let b = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        assert_eq!(a, u16::MAX);
        assert_ne!(b, 0);
        assert_ne!(b, first);
    }

    #[test]
    fn a_refused_pubrec_ends_the_flow_without_pubrel() {
        let mut f = Inflight::new();
        let id = f.start(msg(), QoS::ExactlyOnce, false, SubscriptionIds::None);
        assert_eq!(f.on_pubrec_refused(id), AckResult::Done);
        assert_eq!(f.outbound_len(), 0, "the window slot is free again");
        assert_eq!(f.on_pubcomp(id), AckResult::Unknown);
        let qos1 = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        assert_eq!(f.on_pubrec_refused(qos1), AckResult::WrongType);
    }

    #[test]
    fn mqtt_4_3_3_2_inbound_qos2_is_exactly_once() {
        let mut f = Inflight::new();
        assert!(f.on_inbound_qos2(7));
        assert!(!f.on_inbound_qos2(7), "a re-sent PUBLISH must not be routed again");
        assert_eq!(f.on_pubrel(7), AckResult::Done);
        assert_eq!(f.on_pubrel(7), AckResult::Unknown);
        assert!(f.on_inbound_qos2(7), "after PUBREL the id is a new message");
    }

    #[test]
    fn mqtt_4_4_0_1_resume_resends_in_order() {
        let mut f = Inflight::new();
        let a = f.start(msg(), QoS::AtLeastOnce, false, SubscriptionIds::None);
        let b = f.start(msg(), QoS::ExactlyOnce, false, SubscriptionIds::None);
        let c = f.start(msg(), QoS::ExactlyOnce, false, SubscriptionIds::None);
        f.on_pubrec(c);
        assert_eq!(
            f.resume(),
            vec![Resend::Publish { packet_id: a }, Resend::Publish { packet_id: b }, Resend::Pubrel(c)]
        );
    }
}
