//! An application message as the router stores and forwards it.
//!
//! One [`Message`] is built per received PUBLISH and shared (`Arc`) by every
//! subscriber queue and the retained store, so fan-out never copies a payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::packet::{MessageProperties, Publish, QoS, Will};

/// A message on its way from a publisher to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to.
    pub topic: Arc<str>,
    /// The payload, shared by every delivery.
    pub payload: Bytes,
    /// QoS the publisher used; each delivery is sent at min(this, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
    /// MQTT 5 properties, forwarded unchanged (3.1.1 subscribers do not
    /// see them); `None` when the publisher sent none.
    pub properties: Option<Arc<MessageProperties>>,
    /// When the message expires: its MQTT 5 message expiry interval from
    /// the moment the broker received it (see [`Message::expiring`]). A
    /// queued copy past it is not delivered, a retained one not sent
    /// [MQTT-3.3.2-5].
    pub expires_at: Option<Instant>,
}

impl Message {
    /// A message without MQTT 5 properties.
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Message { topic: topic.into(), payload: payload.into(), qos, retain, properties: None, expires_at: None }
    }

    /// The message a received PUBLISH carries; takes it, so the topic and
    /// payload move instead of being reference-counted once more.
    pub fn from_publish(p: Publish) -> Self {
        Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: p.properties,
            expires_at: None,
        }
    }

    /// The message a will publishes.
    pub fn from_will(w: &Will) -> Self {
        Message {
            topic: w.topic.clone(),
            payload: w.payload.clone(),
            qos: w.qos,
            retain: w.retain,
            properties: w.properties.clone(),
            expires_at: None,
        }
    }

    /// A copy whose payload (and correlation data) own their bytes. A
    /// decoded message's payload is a slice of the buffer its PUBLISH was
    /// read into, and keeps that whole buffer alive: a 10-byte message read
    /// together with a 1 MiB one pins the 1 MiB. What is kept for long (a
    /// retained message, a copy queued for an offline session) is stored
    /// compacted.
    #[must_use]
    pub fn compacted(&self) -> Message {
        let properties = self.properties.as_ref().map(|p| match &p.correlation_data {
            Some(data) => Arc::new(MessageProperties {
                correlation_data: Some(Bytes::copy_from_slice(data)),
                ..MessageProperties::clone(p)
            }),
            None => p.clone(),
        });
        Message { payload: Bytes::copy_from_slice(&self.payload), properties, ..self.clone() }
    }

    /// The message with its deadline set from its message expiry interval,
    /// counted from `received` (the clock is the caller's: this crate reads
    /// none). Without an interval it never expires.
    #[must_use]
    pub fn expiring(mut self, received: Instant) -> Self {
        let interval = self.properties.as_ref().and_then(|p| p.message_expiry_interval);
        self.expires_at = interval.and_then(|s| received.checked_add(Duration::from_secs(u64::from(s))));
        self
    }

    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The message expiry interval to send at `now`: the seconds left,
    /// rounded up so a live message never says 0 [MQTT-3.3.2-6]. `None`
    /// when the message does not expire.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let left = self.expires_at?.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(u32::try_from(secs.max(1)).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MessageProperties;

    fn with_interval(seconds: u32) -> Message {
        let mut m = Message::new("t", "x", QoS::AtLeastOnce, false);
        m.properties = Some(Arc::new(MessageProperties {
            message_expiry_interval: Some(seconds),
            ..MessageProperties::default()
        }));
        m
    }

    #[test]
    fn mqtt_3_3_2_5_expiry_counts_from_receipt() {
        let t0 = Instant::now();
        let m = with_interval(10).expiring(t0);
        assert!(!m.is_expired(t0 + Duration::from_secs(9)));
        assert!(m.is_expired(t0 + Duration::from_secs(10)));
        // [MQTT-3.3.2-6]: the interval sent on is what is left.
        assert_eq!(m.remaining_expiry(t0 + Duration::from_millis(3500)), Some(7));
        assert_eq!(m.remaining_expiry(t0 + Duration::from_secs(3)), Some(7));
        assert_eq!(m.remaining_expiry(t0 + Duration::from_millis(9999)), Some(1));
    }

    #[test]
    fn a_compacted_message_owns_its_bytes() {
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        let mut m = Message::new("t", frame.slice(10..20), QoS::AtLeastOnce, true);
        m.properties = Some(Arc::new(MessageProperties {
            correlation_data: Some(frame.slice(0..4)),
            content_type: Some("c".into()),
            ..MessageProperties::default()
        }));
        let c = m.compacted();
        assert_eq!((c.payload.as_ref(), c.qos, c.retain), (m.payload.as_ref(), m.qos, m.retain));
        assert_eq!(c.properties.as_ref().map(|p| p.content_type.clone()), Some(Some("c".into())));
        let inside = |b: &Bytes| frame.as_ptr_range().contains(&b.as_ptr());
        assert!(inside(&m.payload) && !inside(&c.payload), "the payload no longer points into the frame");
        let data = c.properties.as_ref().and_then(|p| p.correlation_data.clone()).unwrap_or_default();
        assert!(!inside(&data), "nor does the correlation data");
    }

    #[test]
    fn no_interval_never_expires() {
        let t0 = Instant::now();
        let m = Message::new("t", "x", QoS::AtMostOnce, false).expiring(t0);
        assert_eq!(m.expires_at, None);
        assert!(!m.is_expired(t0 + Duration::from_secs(1 << 40)));
        assert_eq!(m.remaining_expiry(t0), None);
    }
}
