//! Just enough MQTT for the load generator: pre-encoded packets (through
//! moth's codec, so they are right) and a frame scanner that reads only the
//! fixed header, the packet id and the payload, so the generator is never
//! the bottleneck.
//!
//! The generator speaks 3.1.1, or MQTT 5 for the `-v5` scenarios: one
//! scenario runs per process, so the version is set once, at start.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, BytesMut};
use moth_protocol::codec::{self, PublishV5};
use moth_protocol::packet::{Connect, Packet, Protocol, QoS, Subscribe, SubscribeFilter};

static V5: AtomicBool = AtomicBool::new(false);

/// Makes every packet from here on MQTT 5 (`true`) or 3.1.1.
pub fn set_v5(v5: bool) {
    V5.store(v5, Ordering::Relaxed);
}

static PERSISTENT: AtomicBool = AtomicBool::new(false);

/// Makes every client from here on connect with a persistent session
/// (clean session 0), so a broker with persistence stores its messages.
pub fn set_persistent(persistent: bool) {
    PERSISTENT.store(persistent, Ordering::Relaxed);
}

fn protocol() -> Protocol {
    if V5.load(Ordering::Relaxed) { Protocol::V5 } else { Protocol::V311 }
}

/// A CONNECT with a user name and password when `login` is given.
pub fn connect_as(client_id: &str, clean: bool, keep_alive: u16, login: Option<(&str, &str)>) -> BytesMut {
    let mut out = BytesMut::new();
    codec::encode(
        &Packet::Connect(Box::new(Connect {
            protocol: protocol(),
            clean_session: clean && !PERSISTENT.load(Ordering::Relaxed),
            keep_alive,
            client_id: client_id.to_string(),
            will: None,
            username: login.map(|(u, _)| u.to_string()),
            password: login.map(|(_, p)| bytes::Bytes::copy_from_slice(p.as_bytes())),
            properties: Default::default(),
        })),
        protocol(),
        &mut out,
    );
    out
}

pub fn subscribe(filter: &str, qos: QoS) -> BytesMut {
    let mut out = BytesMut::new();
    codec::encode(
        &Packet::Subscribe(Subscribe::new(
            1,
            vec![SubscribeFilter {
                filter: filter.into(),
                qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: Default::default(),
            }],
        )),
        protocol(),
        &mut out,
    );
    out
}

/// A PUBLISH and the offset of its packet id (for QoS > 0), so a sender can
/// stamp a fresh id into a copy without encoding again.
pub fn publish(topic: &str, payload: &[u8], qos: QoS) -> (BytesMut, Option<usize>) {
    let mut out = BytesMut::new();
    let id = if qos == QoS::AtMostOnce { 0 } else { 1 };
    if protocol().is_v5() {
        // No properties: one 0 byte after the packet id, which stays where
        // it is in 3.1.1.
        let p = PublishV5 {
            topic,
            payload,
            qos,
            retain: false,
            dup: false,
            packet_id: id,
            properties: None,
            message_expiry_interval: None,
            topic_alias: None,
            subscription_ids: &[],
        };
        codec::encode_publish_v5(&p, &mut out);
    } else {
        codec::encode_publish(topic, payload, qos, false, false, id, &mut out);
    }
    let header = header_len(&out).unwrap_or(2);
    let pid_at = (qos != QoS::AtMostOnce).then_some(header + 2 + topic.len());
    (out, pid_at)
}

pub fn puback(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [0x40, 0x02, hi, lo]
}

fn header_len(buf: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        i += 1;
        if b & 0x80 == 0 || i > 5 {
            return Some(i);
        }
    }
}

/// One frame seen by the scanner.
pub struct Frame<'a> {
    pub kind: u8,
    pub flags: u8,
    /// The variable header and payload.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// For a PUBLISH: (packet id if QoS > 0, payload).
    pub fn publish_parts(&self) -> Option<(Option<u16>, &[u8])> {
        let topic_len = usize::from(u16::from_be_bytes([*self.body.first()?, *self.body.get(1)?]));
        let mut at = 2 + topic_len;
        let qos = (self.flags >> 1) & 3;
        let id = if qos > 0 {
            let id = u16::from_be_bytes([*self.body.get(at)?, *self.body.get(at + 1)?]);
            at += 2;
            Some(id)
        } else {
            None
        };
        if protocol().is_v5() {
            // Skip the properties: a variable byte integer, then that many bytes.
            let mut len = 0usize;
            for k in 0..4 {
                let b = *self.body.get(at)?;
                at += 1;
                len |= usize::from(b & 0x7f) << (7 * k);
                if b & 0x80 == 0 {
                    break;
                }
            }
            at += len;
        }
        Some((id, self.body.get(at..)?))
    }
}

/// Calls `f` for every complete frame at the front of `buf` and removes them.
pub fn scan(buf: &mut BytesMut, mut f: impl FnMut(Frame<'_>)) {
    loop {
        let Some(header) = header_len(buf) else { return };
        let mut len = 0usize;
        for (k, b) in buf[1..header].iter().enumerate() {
            len |= usize::from(b & 0x7f) << (7 * k);
        }
        if buf.len() < header + len {
            return;
        }
        f(Frame { kind: buf[0] >> 4, flags: buf[0] & 0x0f, body: &buf[header..header + len] });
        buf.advance(header + len);
    }
}
