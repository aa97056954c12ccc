//! What one stored record holds, and its bytes.
//!
//! Every record starts with a format byte ([`FORMAT`]), so a later moth can
//! read an older store and a store from elsewhere is refused, not misread.
//! A message is kept as the MQTT 5 PUBLISH that carries it, written and read
//! by the protocol crate's codec: every property a message can have is
//! stored, and a damaged record is caught by the same decoder that checks
//! what clients send, never trusted. Clock times are wall-clock
//! milliseconds since the Unix epoch, because a restart resets the
//! monotonic clock the broker otherwise uses.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{self, PublishV5};
use crate::message::Message;
use crate::packet::{Packet, Protocol, QoS};

/// The first byte of every record of this store format.
pub(crate) const FORMAT: u8 = 1;

/// A record that cannot be read: the store is damaged or not moth's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable {what} record: {why}")]
pub(crate) struct Corrupt {
    pub what: &'static str,
    pub why: String,
}

fn corrupt(what: &'static str, why: impl Into<String>) -> Corrupt {
    Corrupt { what, why: why.into() }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A monotonic deadline as wall-clock milliseconds.
fn instant_to_wall(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = wall_ms();
    match at.checked_duration_since(now) {
        Some(ahead) => wall.saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX)),
        None => wall.saturating_sub(u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX)),
    }
}

/// Wall-clock milliseconds as a monotonic deadline (now, if already past).
fn wall_to_instant(ms: u64) -> Instant {
    let now = Instant::now();
    let ahead = ms.saturating_sub(wall_ms());
    now.checked_add(Duration::from_millis(ahead)).unwrap_or(now)
}

/// How long an offline session is kept, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Forever,
    /// Seconds after its connection ends.
    For(u64),
}

/// A persistent session's own record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRecord {
    /// The user the session belongs to (`session-owner`).
    pub user: Option<String>,
    pub keep: Keep,
    /// When it expires (wall-clock ms) while offline; `None` while a
    /// connection has it, or when it is kept forever. A session that was
    /// online when the broker stopped starts its clock at the next start.
    pub expires_at: Option<u64>,
}

/// One subscription's terms, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscriptionRecord {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: none.
    pub subscription_id: u32,
}

/// Where an outbound QoS 1/2 delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryState {
    /// Queued; not sent yet.
    Queued,
    /// Sent with this packet id; PUBACK (QoS 1) or PUBREC (QoS 2) awaited.
    Sent(u16),
    /// PUBREC received and PUBREL sent for this id, PUBCOMP awaited.
    Released(u16),
}

/// A QoS 1/2 delivery queued or in flight for a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryRecord {
    pub message: Arc<Message>,
    /// min(publish QoS, granted QoS): 1 or 2.
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub state: DeliveryState,
}

/// The will of a connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WillRecord {
    pub message: Arc<Message>,
    /// MQTT 5 will delay, seconds.
    pub delay: u32,
    /// Who would publish it: the topic checks use them.
    pub user: Option<String>,
    pub listener: String,
}

/// Little helpers over a byte buffer, each failing with what it was reading.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Result<Reader<'a>, Corrupt> {
        let mut r = Reader { buf, what };
        match r.u8()? {
            FORMAT => Ok(r),
            other => Err(corrupt(what, format!("format {other}, this moth reads format {FORMAT}"))),
        }
    }

    fn need(&self, n: usize) -> Result<(), Corrupt> {
        if self.buf.len() < n { Err(corrupt(self.what, "cut short")) } else { Ok(()) }
    }

    fn u8(&mut self) -> Result<u8, Corrupt> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, Corrupt> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32, Corrupt> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self) -> Result<u64, Corrupt> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.u32()? as usize;
        self.need(n)?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn string(&mut self) -> Result<String, Corrupt> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt(self.what, "text that is not UTF-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, Corrupt> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(corrupt(self.what, "bad option tag")),
        }
    }

    fn qos(&mut self) -> Result<QoS, Corrupt> {
        QoS::from_u8(self.u8()?).ok_or_else(|| corrupt(self.what, "QoS above 2"))
    }

    fn flag(&mut self) -> Result<bool, Corrupt> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt(self.what, "bad flag")),
        }
    }

    fn message(&mut self) -> Result<Arc<Message>, Corrupt> {
        let expires_at = self.u64()?;
        let mut frame = BytesMut::from(self.bytes()?);
        let what = self.what;
        let publish = match codec::decode(&mut frame, usize::MAX, Protocol::V5) {
            Ok(Some(Packet::Publish(p))) if frame.is_empty() => p,
            Ok(_) => return Err(corrupt(what, "the message is not one whole PUBLISH")),
            Err(e) => return Err(corrupt(what, format!("the message does not decode: {e}"))),
        };
        // Compacted: the payload would otherwise keep the whole decoded
        // frame (its topic a second time) alive for as long as it is held.
        let mut m = Message::from_publish(publish).compacted();
        m.expires_at = (expires_at != 0).then(|| wall_to_instant(expires_at));
        Ok(Arc::new(m))
    }

    fn end(self) -> Result<(), Corrupt> {
        if self.buf.is_empty() { Ok(()) } else { Err(corrupt(self.what, "bytes after the end")) }
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.put_slice(b);
}

fn put_opt_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

fn put_message(out: &mut BytesMut, m: &Message) {
    // 0 means none, so a deadline is never 0.
    out.put_u64(m.expires_at.map_or(0, |at| instant_to_wall(at).max(1)));
    let publish = PublishV5 {
        topic: &m.topic,
        payload: &m.payload,
        qos: m.qos,
        retain: m.retain,
        dup: false,
        // Any id: a QoS 1/2 PUBLISH needs one to decode.
        packet_id: u16::from(m.qos != QoS::AtMostOnce),
        properties: m.properties.as_deref(),
        message_expiry_interval: m.properties.as_ref().and_then(|p| p.message_expiry_interval),
        topic_alias: None,
        subscription_ids: &[],
    };
    let mut frame = BytesMut::with_capacity(publish.size());
    codec::encode_publish_v5(&publish, &mut frame);
    put_bytes(out, &frame);
}

fn start(capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(capacity);
    out.put_u8(FORMAT);
    out
}

impl SessionRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = start(32);
        put_opt_string(&mut out, self.user.as_deref());
        match self.keep {
            Keep::Forever => out.put_u8(0),
            Keep::For(s) => {
                out.put_u8(1);
                out.put_u64(s);
            }
        }
        out.put_u64(self.expires_at.unwrap_or(0));
        out.freeze()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<SessionRecord, Corrupt> {
        let mut r = Reader::new(b, "session")?;
        let user = r.opt_string()?;
        let keep = match r.u8()? {
            0 => Keep::Forever,
            1 => Keep::For(r.u64()?),
            _ => return Err(corrupt("session", "bad expiry")),
        };
        let expires_at = Some(r.u64()?).filter(|&at| at != 0);
        r.end()?;
        Ok(SessionRecord { user, keep, expires_at })
    }
}

impl SubscriptionRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = start(8);
        out.put_u8(self.qos as u8);
        out.put_u8(u8::from(self.no_local) | u8::from(self.retain_as_published) << 1);
        out.put_u32(self.subscription_id);
        out.freeze()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<SubscriptionRecord, Corrupt> {
        let mut r = Reader::new(b, "subscription")?;
        let qos = r.qos()?;
        let flags = r.u8()?;
        if flags > 3 {
            return Err(corrupt("subscription", "bad options"));
        }
        let subscription_id = r.u32()?;
        r.end()?;
        Ok(SubscriptionRecord { qos, no_local: flags & 1 != 0, retain_as_published: flags & 2 != 0, subscription_id })
    }
}

impl DeliveryRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = start(64 + self.message.topic.len() + self.message.payload.len());
        out.put_u8(self.qos as u8);
        out.put_u8(u8::from(self.retain));
        match self.state {
            DeliveryState::Queued => out.put_u8(0),
            DeliveryState::Sent(id) => {
                out.put_u8(1);
                out.put_u16(id);
            }
            DeliveryState::Released(id) => {
                out.put_u8(2);
                out.put_u16(id);
            }
        }
        out.put_u32(u32::try_from(self.subscription_ids.len()).unwrap_or(0));
        for &id in &self.subscription_ids {
            out.put_u32(id);
        }
        put_message(&mut out, &self.message);
        out.freeze()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<DeliveryRecord, Corrupt> {
        let mut r = Reader::new(b, "queued message")?;
        let qos = r.qos()?;
        if qos == QoS::AtMostOnce {
            return Err(corrupt("queued message", "QoS 0 is never stored"));
        }
        let retain = r.flag()?;
        let state = match r.u8()? {
            0 => DeliveryState::Queued,
            1 => DeliveryState::Sent(r.u16()?),
            2 => DeliveryState::Released(r.u16()?),
            _ => return Err(corrupt("queued message", "bad state")),
        };
        if matches!(state, DeliveryState::Sent(0) | DeliveryState::Released(0)) {
            return Err(corrupt("queued message", "packet id 0"));
        }
        let n = r.u32()? as usize;
        r.need(n.saturating_mul(4))?;
        let mut subscription_ids = Vec::with_capacity(n);
        for _ in 0..n {
            subscription_ids.push(r.u32()?);
        }
        let message = r.message()?;
        r.end()?;
        Ok(DeliveryRecord { message, qos, retain, subscription_ids, state })
    }
}

impl WillRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = start(64 + self.message.topic.len() + self.message.payload.len());
        out.put_u32(self.delay);
        put_opt_string(&mut out, self.user.as_deref());
        put_bytes(&mut out, self.listener.as_bytes());
        put_message(&mut out, &self.message);
        out.freeze()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<WillRecord, Corrupt> {
        let mut r = Reader::new(b, "will")?;
        let delay = r.u32()?;
        let user = r.opt_string()?;
        let listener = r.string()?;
        let message = r.message()?;
        r.end()?;
        Ok(WillRecord { message, delay, user, listener })
    }
}

/// A retained message's record.
pub(crate) fn encode_retained(m: &Message) -> Bytes {
    let mut out = start(32 + m.topic.len() + m.payload.len());
    put_message(&mut out, m);
    out.freeze()
}

pub(crate) fn decode_retained(b: &[u8]) -> Result<Arc<Message>, Corrupt> {
    let mut r = Reader::new(b, "retained message")?;
    let m = r.message()?;
    r.end()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MessageProperties;

    fn message() -> Message {
        let mut m = Message::new("a/b", "payload", QoS::ExactlyOnce, true);
        m.properties = Some(Arc::new(MessageProperties {
            content_type: Some("text/plain".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            message_expiry_interval: Some(60),
            ..MessageProperties::default()
        }));
        m.expiring(Instant::now())
    }

    #[test]
    fn every_record_reads_back_as_written() {
        let s = SessionRecord { user: Some("alice".into()), keep: Keep::For(30), expires_at: Some(12345) };
        assert_eq!(SessionRecord::decode(&s.encode()), Ok(s));
        let s = SessionRecord { user: None, keep: Keep::Forever, expires_at: None };
        assert_eq!(SessionRecord::decode(&s.encode()), Ok(s));
        let g = SubscriptionRecord {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            subscription_id: 7,
        };
        assert_eq!(SubscriptionRecord::decode(&g.encode()), Ok(g));
        let m = Arc::new(message());
        let d = DeliveryRecord {
            message: m.clone(),
            qos: QoS::ExactlyOnce,
            retain: true,
            subscription_ids: vec![1, 9],
            state: DeliveryState::Released(513),
        };
        let back = DeliveryRecord::decode(&d.encode()).expect("decodes");
        assert_eq!(
            (back.qos, back.retain, &back.subscription_ids, back.state),
            (d.qos, d.retain, &d.subscription_ids, d.state)
        );
        assert_eq!(
            (&back.message.topic, &back.message.payload, &back.message.properties),
            (&m.topic, &m.payload, &m.properties)
        );
        let left = back.message.remaining_expiry(Instant::now());
        assert!(left.is_some_and(|s| (58..=60).contains(&s)), "the deadline survives: {left:?}");
        let w = WillRecord { message: m, delay: 5, user: Some("bob".into()), listener: "default".into() };
        let back = WillRecord::decode(&w.encode()).expect("decodes");
        assert_eq!((back.delay, &back.user, &back.listener), (5, &w.user, &w.listener));
        let plain = Message::new("t", "", QoS::AtMostOnce, true);
        assert_eq!(decode_retained(&encode_retained(&plain)).as_deref(), Ok(&plain));
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused_not_misread() {
        let d = DeliveryRecord {
            message: Arc::new(message()),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
            state: DeliveryState::Queued,
        }
        .encode();
        for cut in 0..d.len() {
            assert!(DeliveryRecord::decode(&d[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = d.to_vec();
        other[0] = 9;
        let e = DeliveryRecord::decode(&other).expect_err("format 9");
        assert!(e.to_string().contains("format 9"), "{e}");
        let mut longer = d.to_vec();
        longer.push(0);
        assert!(DeliveryRecord::decode(&longer).is_err());
        assert!(SessionRecord::decode(b"").is_err());
        assert!(decode_retained(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x30\x00").is_err());
        // Never panics on any single-byte change.
        for i in 0..d.len() {
            let mut m = d.to_vec();
            m[i] ^= 0xff;
            let _ = DeliveryRecord::decode(&m);
        }
    }
}
