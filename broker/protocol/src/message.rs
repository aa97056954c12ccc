//! An application message as the router stores and forwards it.
//!
//! One [`Message`] is built per received PUBLISH and shared (`Arc`) by every
//! subscriber queue and the retained store, so fan-out never copies a payload.

use std::sync::Arc;

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
}

impl Message {
    /// A message without MQTT 5 properties.
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Message { topic: topic.into(), payload: payload.into(), qos, retain, properties: None }
    }

    /// The message a received PUBLISH carries; takes it, so the topic and
    /// payload move instead of being reference-counted once more.
    pub fn from_publish(p: Publish) -> Self {
        Message { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, properties: p.properties }
    }

    /// The message a will publishes.
    pub fn from_will(w: &Will) -> Self {
        Message {
            topic: w.topic.clone(),
            payload: w.payload.clone(),
            qos: w.qos,
            retain: w.retain,
            properties: w.properties.clone(),
        }
    }
}
