//! What a persistent session records in the store (`store/`), with
//! persistence on.
//!
//! A [`Durable`] sits in every session of a broker with a journal. It
//! records only while the session has a record on disk (`stored`): from
//! the CONNECT that makes it persistent until it is removed. Each QoS 1/2
//! delivery queued for it gets a sequence number of its own, its key in
//! the store, carried by the queued delivery and then by its in-flight
//! entry, so its PUBACK or PUBCOMP can delete it.
//!
//! Two kinds of change: those a confirmation waits for
//! ([`Journal::record`]: a queued message the publisher's PUBACK
//! confirms, a subscription its SUBACK confirms, a QoS 2 step whose next
//! packet must not go out before it is stored) and those nobody waits for
//! ([`Journal::record_quietly`]: a delivery finished, a session gone
//! offline). Losing a quiet one in a crash costs a re-sent QoS 1 message or
//! PUBREL, which the protocol allows.

use std::sync::Arc;

use crate::message::Message;
use crate::packet::QoS;
use crate::session::subscription::Grant;
use crate::store::batch::Change;
use crate::store::journal::Journal;
use crate::store::record::{DeliveryRecord, DeliveryState, SessionRecord, SubscriptionRecord};

#[derive(Debug)]
pub(crate) struct Durable {
    journal: Arc<Journal>,
    client_id: Arc<str>,
    next_seq: u64,
    /// The session's record as last written, while it has one on disk.
    record: Option<SessionRecord>,
}

/// One delivery's terms, borrowed from wherever it is held.
pub(crate) struct DeliveryTerms<'a> {
    pub message: &'a Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: &'a [u32],
}

impl DeliveryTerms<'_> {
    fn record(&self, state: DeliveryState) -> DeliveryRecord {
        DeliveryRecord {
            message: self.message.clone(),
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids.to_vec(),
            state,
        }
    }
}

impl Durable {
    pub(crate) fn new(journal: Arc<Journal>, client_id: Arc<str>) -> Durable {
        Durable { journal, client_id, next_seq: 1, record: None }
    }

    /// Whether the session has a record on disk, so its changes are recorded.
    pub(crate) fn stored(&self) -> bool {
        self.record.is_some()
    }

    /// Writes the session's record (it becomes, or stays, stored).
    pub(crate) fn session(&mut self, record: SessionRecord) {
        self.journal.record(Change::Session(self.client_id.clone(), record.clone()));
        self.record = Some(record);
    }

    /// The session went offline until `expires_at` (wall-clock ms; `None`:
    /// kept until removed).
    pub(crate) fn offline(&mut self, expires_at: Option<u64>) {
        if let Some(r) = &mut self.record {
            r.expires_at = expires_at;
            self.journal.record_quietly(Change::Session(self.client_id.clone(), r.clone()));
        }
    }

    /// Removes the session and all it holds from the store. `confirmed`:
    /// a CONNACK waits for it (a clean start), rather than nobody (expiry).
    pub(crate) fn removed(&mut self, confirmed: bool) {
        if self.record.take().is_some() {
            let change = Change::SessionRemoved(self.client_id.clone());
            if confirmed {
                self.journal.record(change);
            } else {
                self.journal.record_quietly(change);
            }
        }
    }

    /// A QoS 1/2 delivery queued: returns its sequence number.
    pub(crate) fn queued(&mut self, d: &DeliveryTerms<'_>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.journal.record(Change::Delivery(self.client_id.clone(), seq, Some(d.record(DeliveryState::Queued))));
        seq
    }

    /// A stored delivery sent as `packet_id`, so that after a crash it is
    /// sent again with that id and DUP [MQTT-4.4.0-1]. A QoS 2 PUBLISH
    /// waits for this (sent again as new, it would arrive twice); a QoS 1
    /// one does not: if the record is lost, the message goes again as new,
    /// which QoS 1 allows.
    pub(crate) fn sent(&mut self, seq: u64, d: &DeliveryTerms<'_>, packet_id: u16) {
        let change = Change::Delivery(self.client_id.clone(), seq, Some(d.record(DeliveryState::Sent(packet_id))));
        if d.qos == QoS::ExactlyOnce {
            self.journal.record(change);
        } else {
            self.journal.record_quietly(change);
        }
    }

    /// PUBREC came for a stored QoS 2 delivery: the PUBREL waits for this.
    pub(crate) fn released(&mut self, seq: u64, d: &DeliveryTerms<'_>, packet_id: u16) {
        let change = Change::Delivery(self.client_id.clone(), seq, Some(d.record(DeliveryState::Released(packet_id))));
        self.journal.record(change);
    }

    /// A stored delivery is finished (acknowledged, expired, dropped).
    pub(crate) fn finished(&mut self, seq: u64) {
        if seq != 0 {
            self.journal.record_quietly(Change::Delivery(self.client_id.clone(), seq, None));
        }
    }

    /// An inbound QoS 2 id awaits PUBREL (the PUBREC waits for it) or was
    /// released (the PUBCOMP waits: an id still stored after a crash would
    /// swallow the client's next message under that id).
    pub(crate) fn inbound(&mut self, packet_id: u16, awaiting: bool) {
        self.journal.record(Change::Inbound(self.client_id.clone(), packet_id, awaiting));
    }

    /// A subscription made (`Some`) or removed; its SUBACK or UNSUBACK waits.
    pub(crate) fn subscription(&mut self, filter: &str, grant: Option<Grant>) {
        let record = grant.map(|g| SubscriptionRecord {
            qos: g.qos,
            no_local: g.no_local,
            retain_as_published: g.retain_as_published,
            subscription_id: g.subscription_id.map_or(0, |id| id.get()),
        });
        self.journal.record(Change::Subscription(self.client_id.clone(), filter.to_owned(), record));
    }

    /// After a restart: the session's record as loaded, and the sequence
    /// number after the highest stored.
    pub(crate) fn restored(&mut self, record: SessionRecord, next_seq: u64) {
        self.record = Some(record);
        self.next_seq = self.next_seq.max(next_seq);
    }
}

/// A stored subscription's terms as a [`Grant`].
pub(crate) fn grant_of(r: &SubscriptionRecord) -> Grant {
    Grant {
        qos: r.qos,
        no_local: r.no_local,
        retain_as_published: r.retain_as_published,
        subscription_id: std::num::NonZeroU32::new(r.subscription_id),
    }
}
