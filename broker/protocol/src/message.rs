//! An application message as the router stores and forwards it.
//!
//! One [`Message`] is built per received PUBLISH and shared (`Arc`) by every
//! subscriber queue and the retained store, so fan-out never copies a payload.

use std::sync::Arc;

use bytes::Bytes;

use crate::packet::{Publish, QoS, Will};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// QoS the publisher used; each delivery is sent at min(this, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
}

impl Message {
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Message { topic: topic.into(), payload: payload.into(), qos, retain }
    }

    /// The message a received PUBLISH carries; takes it, so the topic and
    /// payload move instead of being reference-counted once more.
    pub fn from_publish(p: Publish) -> Self {
        Message { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain }
    }

    pub fn from_will(w: &Will) -> Self {
        Message { topic: w.topic.clone(), payload: w.payload.clone(), qos: w.qos, retain: w.retain }
    }
}
