//! MQTT 3.1.1 wire codec: bytes in, [`Packet`]s out, and back.
//!
//! Pure and synchronous (no I/O, no tokio) so that every framing and
//! validation rule can be unit-tested byte by byte. The connection driver
//! appends socket reads to a [`BytesMut`] and calls [`decode`] until it
//! returns `Ok(None)`; it fills its write buffer with [`encode`] and
//! [`encode_publish`].
//!
//! Every rule that can be checked on one packet in isolation is checked
//! here, so the rest of the broker only ever sees well-formed packets. Rules
//! that need connection or session state (e.g. "the first packet must be
//! CONNECT") belong to the connection code. Any [`DecodeError`] is a protocol
//! violation after which the network connection must be closed
//! [MQTT-4.8.0-1]; the one case where the server answers first is told by
//! [`DecodeError::is_unsupported_protocol_level`].

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::packet::*;
use crate::topic;

/// Largest remaining length the 4-byte varint can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why a byte stream is not a valid MQTT 3.1.1 packet.
///
/// One variant per reason so callers and tests can match on the cause; the
/// `Display` text is meant for logs and names the normative statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("reserved packet type {0} [MQTT-2.2.1]")]
    ReservedPacketType(u8),
    #[error("invalid fixed header flags {flags:#06b} in {packet} [{rule}]")]
    InvalidFlags { packet: &'static str, flags: u8, rule: &'static str },
    #[error("qos 3 in PUBLISH [MQTT-3.3.1-4]")]
    InvalidPublishQos,
    #[error("dup flag set in a qos 0 PUBLISH [MQTT-3.3.1-2]")]
    DupWithQos0,
    #[error("remaining length longer than 4 bytes [MQTT-2.2.3]")]
    RemainingLengthTooLong,
    /// For packets whose body has a fixed size, caught from the header alone.
    #[error("remaining length {len} is invalid for {packet}")]
    InvalidRemainingLength { packet: &'static str, len: usize },
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
    #[error("{packet} ends before its last field (remaining length too small)")]
    Truncated { packet: &'static str },
    #[error("{packet} has bytes after its last field (remaining length too large)")]
    TrailingBytes { packet: &'static str },
    #[error("string is not well-formed utf-8 [MQTT-1.5.3-1]")]
    InvalidUtf8,
    #[error("string contains U+0000 [MQTT-1.5.3-2]")]
    NullCharacter,
    #[error("unknown protocol name in CONNECT [MQTT-3.1.2-1]")]
    InvalidProtocolName,
    #[error("unsupported protocol level {0} in CONNECT [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel(u8),
    #[error("reserved flag in CONNECT is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    /// Also [MQTT-3.1.2-11].
    #[error("will qos set without will flag [MQTT-3.1.2-13]")]
    WillQosWithoutWill,
    /// Also [MQTT-3.1.2-11].
    #[error("will retain set without will flag [MQTT-3.1.2-15]")]
    WillRetainWithoutWill,
    #[error("will qos 3 in CONNECT [MQTT-3.1.2-14]")]
    InvalidWillQos,
    #[error("invalid will topic name (empty or with wildcards) [MQTT-4.7.1-1]")]
    InvalidWillTopic,
    #[error("password flag set without user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    #[error("invalid topic name in PUBLISH (empty or with wildcards) [MQTT-3.3.2-2]")]
    InvalidTopicName,
    #[error("zero packet identifier in {0} [MQTT-2.3.1-1]")]
    ZeroPacketId(&'static str),
    #[error("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")]
    NoSubscribeFilters,
    #[error("invalid requested qos byte {0:#04x} in SUBSCRIBE [MQTT-3.8.3-4]")]
    InvalidRequestedQos(u8),
    #[error("invalid topic filter in {0} [MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1]")]
    InvalidTopicFilter(&'static str),
    #[error("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")]
    NoUnsubscribeFilters,
    #[error("reserved bits set in CONNACK acknowledge flags {0:#04x}")]
    InvalidConnackFlags(u8),
    #[error("invalid CONNACK return code {0}")]
    InvalidConnackCode(u8),
    #[error("invalid SUBACK return code {0:#04x} [MQTT-3.9.3-2]")]
    InvalidSubackCode(u8),
}

impl DecodeError {
    /// True for the one case where the server must answer CONNACK 0x01 before closing:
    /// a CONNECT with a valid protocol name but an unsupported level [MQTT-3.1.2-2].
    #[must_use]
    pub fn is_unsupported_protocol_level(&self) -> bool {
        matches!(self, DecodeError::UnsupportedProtocolLevel(_))
    }
}

/// Packet name by fixed-header type, for errors.
fn packet_name(packet_type: u8) -> &'static str {
    match packet_type {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        _ => "reserved",
    }
}

/// Checks the first byte of the fixed header. Done before the rest of the
/// packet arrives so that a peer speaking something else entirely (HTTP,
/// TLS to a plain port) is dropped at once instead of after a bogus length.
fn check_first_byte(first: u8) -> Result<(), DecodeError> {
    let (packet_type, flags) = (first >> 4, first & 0x0F);
    let (required, rule) = match packet_type {
        0 | 15 => return Err(DecodeError::ReservedPacketType(packet_type)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            return if qos == 3 {
                Err(DecodeError::InvalidPublishQos)
            } else if qos == 0 && flags & 0b1000 != 0 {
                Err(DecodeError::DupWithQos0)
            } else {
                Ok(())
            };
        }
        6 => (0b0010, "MQTT-3.6.1-1"),
        8 => (0b0010, "MQTT-3.8.1-1"),
        10 => (0b0010, "MQTT-3.10.1-1"),
        _ => (0, "MQTT-2.2.2-2"),
    };
    if flags == required {
        Ok(())
    } else {
        Err(DecodeError::InvalidFlags { packet: packet_name(packet_type), flags, rule })
    }
}

/// The body size of packets that have exactly one valid size.
fn fixed_body_len(packet_type: u8) -> Option<usize> {
    match packet_type {
        2 | 4..=7 | 11 => Some(2),
        12..=14 => Some(0),
        _ => None,
    }
}

/// Reads the remaining-length varint from the bytes after the first byte.
/// Returns `(value, bytes used)`, or `None` while incomplete. A fourth byte
/// with its continuation bit set is an error right away: no fifth byte can
/// make it valid, so there is no point waiting for one [MQTT-2.2.3].
/// Non-minimal encodings (e.g. `0x80 0x00` for 0) are accepted.
fn read_remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 { Err(DecodeError::RemainingLengthTooLong) } else { Ok(None) }
}

/// Decode one packet from the front of `buf`, removing its bytes.
/// Ok(None): not enough bytes yet (nothing consumed). `max_packet_size` is the
/// largest whole packet (fixed header included) accepted; a larger one is
/// refused as soon as its fixed header is readable, before its body arrives.
///
/// # Errors
/// Any [`DecodeError`] is a protocol violation; the contents of `buf` are then
/// unspecified, as the connection is to be closed anyway.
///
/// `buf` is deliberately not grown to the announced size of an incomplete
/// packet: five bytes from a peer must not make the broker allocate up to
/// `max_packet_size`. Memory grows only as bytes actually arrive.
pub fn decode(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_first_byte(first)?;
    let packet_type = first >> 4;
    let packet = packet_name(packet_type);
    let Some((len, len_bytes)) = read_remaining_length(buf.get(1..).unwrap_or_default())? else {
        return Ok(None);
    };
    if fixed_body_len(packet_type).is_some_and(|expected| expected != len) {
        return Err(DecodeError::InvalidRemainingLength { packet, len });
    }
    let header_len = 1 + len_bytes;
    let size = header_len + len;
    if size > max_packet_size {
        return Err(DecodeError::PacketTooLarge { size, max: max_packet_size });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let frame = buf.split_to(size).freeze();
    let mut r = Reader { data: frame.slice(header_len..), pos: 0, packet };
    let decoded = match packet_type {
        1 => Packet::Connect(decode_connect(&mut r)?),
        2 => decode_connack(&mut r)?,
        3 => Packet::Publish(decode_publish(&mut r, first)?),
        4 => Packet::Puback(r.packet_id()?),
        5 => Packet::Pubrec(r.packet_id()?),
        6 => Packet::Pubrel(r.packet_id()?),
        7 => Packet::Pubcomp(r.packet_id()?),
        8 => Packet::Subscribe(decode_subscribe(&mut r)?),
        9 => decode_suback(&mut r)?,
        10 => Packet::Unsubscribe(decode_unsubscribe(&mut r)?),
        11 => Packet::Unsuback(r.packet_id()?),
        12 => Packet::Pingreq,
        13 => Packet::Pingresp,
        // check_first_byte has already refused 0 and 15.
        _ => Packet::Disconnect,
    };
    r.finish()?;
    Ok(Some(decoded))
}

/// Checked reads over the body of one frame. Every read is bounds-checked so
/// that a remaining length too small for the fields is an error, not a panic;
/// binary fields are `Bytes` slices of the frame (zero-copy).
struct Reader {
    data: Bytes,
    pos: usize,
    packet: &'static str,
}

impl Reader {
    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated { packet: self.packet }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let start = self.pos;
        let end = start.saturating_add(n);
        if end > self.data.len() {
            return Err(self.truncated());
        }
        self.pos = end;
        Ok(self.data.get(start..end).unwrap_or_default())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let truncated = self.truncated();
        self.take(N)?.try_into().map_err(|_| truncated)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A packet identifier, which is never 0 [MQTT-2.3.1-1].
    fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId(self.packet)),
            id => Ok(id),
        }
    }

    /// Length-prefixed binary data, as a slice of the frame.
    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        let start = self.pos;
        self.take(len)?;
        Ok(self.data.slice(start..self.pos))
    }

    /// A length-prefixed UTF-8 string, validated [MQTT-1.5.3-1, MQTT-1.5.3-2].
    /// Borrowed, so a topic becomes an `Arc<str>` without going through a
    /// `String` first. `from_utf8` already refuses surrogates and overlong
    /// forms; a BOM is kept as is [MQTT-1.5.3-3].
    fn string(&mut self) -> Result<&str, DecodeError> {
        let len = usize::from(self.u16()?);
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }

    fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.data.len();
        self.data.slice(start..)
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The remaining length must match the fields exactly.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes { packet: self.packet }) }
    }
}

fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let protocol = match r.binary()?.as_ref() {
        b"MQTT" => Protocol::V311,
        b"MQIsdp" => Protocol::V31,
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    // Stop here on a wrong level: a newer protocol may lay out the rest
    // differently (MQTT 5 adds properties), and the server owes it a
    // CONNACK 0x01 whatever follows.
    let level = r.u8()?;
    if level != protocol.level() {
        return Err(DecodeError::UnsupportedProtocolLevel(level));
    }
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_session = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && will_qos != 0 {
        return Err(DecodeError::WillQosWithoutWill);
    }
    if !will_flag && will_retain {
        return Err(DecodeError::WillRetainWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQos)?;
    if password_flag && !username_flag {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    // Payload fields come in this fixed order, each only when flagged
    // [MQTT-3.1.3-1]; `decode` then refuses anything after them.
    let client_id = r.string()?.to_owned();
    let will = if will_flag {
        let topic: Arc<str> = Arc::from(r.string()?);
        if !topic::is_valid_name(&topic) {
            return Err(DecodeError::InvalidWillTopic);
        }
        Some(Will { topic, payload: r.binary()?, qos: will_qos, retain: will_retain })
    } else {
        None
    };
    let username = if username_flag { Some(r.string()?.to_owned()) } else { None };
    let password = if password_flag { Some(r.binary()?) } else { None };
    Ok(Connect { protocol, clean_session, keep_alive, client_id, will, username, password })
}

fn decode_connack(r: &mut Reader) -> Result<Packet, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnackFlags(flags));
    }
    let code = r.u8()?;
    let code = ConnectReturnCode::from_u8(code).ok_or(DecodeError::InvalidConnackCode(code))?;
    Ok(Packet::Connack(Connack { session_present: flags & 0x01 != 0, code }))
}

/// `first` has passed [`check_first_byte`], so `QoS` is 0..=2 and DUP is
/// consistent with it.
fn decode_publish(r: &mut Reader, first: u8) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0b11).ok_or(DecodeError::InvalidPublishQos)?;
    let topic: Arc<str> = Arc::from(r.string()?);
    if !topic::is_valid_name(&topic) {
        return Err(DecodeError::InvalidTopicName);
    }
    // QoS 0 carries no packet identifier: the payload starts right here.
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { r.packet_id()? };
    Ok(Publish { dup: first & 0b1000 != 0, qos, retain: first & 0b0001 != 0, topic, packet_id, payload: r.rest() })
}

fn decode_subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?.to_owned();
        if !topic::is_valid_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter(r.packet));
        }
        // The upper six bits are reserved [MQTT-3.8.3-4]: checking the whole
        // byte against 0..=2 covers both rules.
        let requested = r.u8()?;
        let qos = QoS::from_u8(requested).ok_or(DecodeError::InvalidRequestedQos(requested))?;
        filters.push(SubscribeFilter { filter, qos });
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe { packet_id, filters })
}

/// An empty SUBACK is accepted: it is only ever decoded by test clients,
/// and no normative statement forbids it on its own.
fn decode_suback(r: &mut Reader) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut codes = Vec::new();
    while !r.is_empty() {
        let code = r.u8()?;
        codes.push(match code {
            0x80 => SubackCode::Failure,
            _ => SubackCode::Granted(QoS::from_u8(code).ok_or(DecodeError::InvalidSubackCode(code))?),
        });
    }
    Ok(Packet::Suback(Suback { packet_id, codes }))
}

fn decode_unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?.to_owned();
        if !topic::is_valid_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter(r.packet));
        }
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe { packet_id, filters })
}

/// Number of bytes of the remaining-length varint for `len`.
fn varint_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reserves room for the whole packet once, then writes its fixed header.
///
/// # Panics
/// If `remaining` exceeds [`MAX_REMAINING_LENGTH`]: such a packet cannot be
/// framed at all, and writing a wrong length would corrupt the stream for
/// every later packet. Callers building packets from local input (e.g. an
/// embedding application publishing) must check sizes beforehand.
fn begin(out: &mut BytesMut, first: u8, remaining: usize) {
    assert!(
        remaining <= MAX_REMAINING_LENGTH,
        "MQTT packet body of {remaining} bytes exceeds the maximum remaining length"
    );
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first);
    put_remaining_length(out, remaining);
}

/// Writes the remaining-length varint, minimal form [MQTT-2.2.3].
fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    loop {
        // Truncation intended: the low seven bits of `len`.
        let mut byte = (len & 0x7F) as u8;
        len >>= 7;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

/// Writes a length-prefixed string or binary field.
///
/// # Panics
/// If `data` is longer than 65 535 bytes, which no MQTT field can carry.
fn put_field(out: &mut BytesMut, data: &[u8]) {
    let Ok(len) = u16::try_from(data.len()) else {
        panic!("MQTT field of {} bytes exceeds 65535", data.len());
    };
    out.put_u16(len);
    out.put_slice(data);
}

/// Append the encoding of `packet` to `out`.
///
/// # Panics
/// If a string or binary field exceeds 65 535 bytes or the packet exceeds
/// [`MAX_REMAINING_LENGTH`]; see [`begin`].
pub fn encode(packet: &Packet, out: &mut BytesMut) {
    match packet {
        Packet::Connect(c) => encode_connect(c, out),
        Packet::Connack(c) => {
            begin(out, 0x20, 2);
            out.put_u8(u8::from(c.session_present));
            out.put_u8(c.code as u8);
        }
        Packet::Publish(p) => encode_publish(&p.topic, &p.payload, p.qos, p.retain, p.dup, p.packet_id, out),
        Packet::Puback(id) => encode_ack(out, 0x40, *id),
        Packet::Pubrec(id) => encode_ack(out, 0x50, *id),
        Packet::Pubrel(id) => encode_ack(out, 0x62, *id),
        Packet::Pubcomp(id) => encode_ack(out, 0x70, *id),
        Packet::Subscribe(s) => {
            let body: usize = s.filters.iter().map(|f| 3 + f.filter.len()).sum();
            begin(out, 0x82, 2 + body);
            out.put_u16(s.packet_id);
            for f in &s.filters {
                put_field(out, f.filter.as_bytes());
                out.put_u8(f.qos as u8);
            }
        }
        Packet::Suback(s) => {
            begin(out, 0x90, 2 + s.codes.len());
            out.put_u16(s.packet_id);
            for code in &s.codes {
                out.put_u8(match code {
                    SubackCode::Granted(qos) => *qos as u8,
                    SubackCode::Failure => 0x80,
                });
            }
        }
        Packet::Unsubscribe(u) => {
            let body: usize = u.filters.iter().map(|f| 2 + f.len()).sum();
            begin(out, 0xA2, 2 + body);
            out.put_u16(u.packet_id);
            for f in &u.filters {
                put_field(out, f.as_bytes());
            }
        }
        Packet::Unsuback(id) => encode_ack(out, 0xB0, *id),
        Packet::Pingreq => begin(out, 0xC0, 0),
        Packet::Pingresp => begin(out, 0xD0, 0),
        Packet::Disconnect => begin(out, 0xE0, 0),
    }
}

fn encode_ack(out: &mut BytesMut, first: u8, packet_id: u16) {
    begin(out, first, 2);
    out.put_u16(packet_id);
}

fn encode_connect(c: &Connect, out: &mut BytesMut) {
    let name: &[u8] = match c.protocol {
        Protocol::V31 => b"MQIsdp",
        Protocol::V311 => b"MQTT",
    };
    let mut flags = u8::from(c.clean_session) << 1;
    let mut len = 2 + name.len() + 4 + 2 + c.client_id.len();
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
        len += 4 + w.topic.len() + w.payload.len();
    }
    if let Some(u) = &c.username {
        flags |= 0x80;
        len += 2 + u.len();
    }
    if let Some(p) = &c.password {
        flags |= 0x40;
        len += 2 + p.len();
    }
    begin(out, 0x10, len);
    put_field(out, name);
    out.put_u8(c.protocol.level());
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    put_field(out, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        put_field(out, w.topic.as_bytes());
        put_field(out, &w.payload);
    }
    if let Some(u) = &c.username {
        put_field(out, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_field(out, p);
    }
}

/// Append a PUBLISH built from parts (hot path: the broker encodes one per subscriber
/// straight from a shared message, without building a `Publish`).
///
/// For QoS 0 the packet identifier is not written and DUP is forced to 0
/// [MQTT-3.3.1-2], so a redelivery downgraded to QoS 0 by a subscription can
/// never produce a malformed packet.
///
/// # Panics
/// If `topic` exceeds 65 535 bytes or the packet exceeds [`MAX_REMAINING_LENGTH`].
pub fn encode_publish(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: u16,
    out: &mut BytesMut,
) {
    let has_id = qos != QoS::AtMostOnce;
    debug_assert!(!has_id || packet_id != 0, "QoS>0 PUBLISH needs a packet id");
    let first = 0x30 | u8::from(dup && has_id) << 3 | (qos as u8) << 1 | u8::from(retain);
    let id_len = if has_id { 2 } else { 0 };
    begin(out, first, 2 + topic.len() + id_len + payload.len());
    put_field(out, topic.as_bytes());
    if has_id {
        out.put_u16(packet_id);
    }
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::DecodeError as E;
    use super::*;

    const MAX: usize = MAX_REMAINING_LENGTH + 5;

    /// A frame with a correct remaining length around `body`.
    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        begin(&mut out, first, body.len());
        out.put_slice(body);
        out.to_vec()
    }

    /// Length-prefixed fields, back to back.
    fn fields(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend(u16::try_from(p.len()).unwrap().to_be_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    /// `fields` followed by raw bytes.
    fn body(parts: &[&[u8]], tail: &[u8]) -> Vec<u8> {
        let mut v = fields(parts);
        v.extend_from_slice(tail);
        v
    }

    /// A CONNECT with the given name, level, flags, keep alive 60 and payload.
    fn connect(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        frame(0x10, &[&body(&[name], &[level, flags, 0, 60])[..], payload].concat())
    }

    /// A 3.1.1 CONNECT whose payload is the given fields.
    fn connect4(flags: u8, payload: &[&[u8]]) -> Vec<u8> {
        connect(b"MQTT", 4, flags, &fields(payload))
    }

    fn dec(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
        decode(&mut BytesMut::from(bytes), MAX)
    }

    fn refused(bytes: &[u8], expected: DecodeError) {
        assert_eq!(dec(bytes), Err(expected), "{bytes:02x?}");
    }

    fn enc(p: &Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(p, &mut out);
        out.to_vec()
    }

    fn round_trip(p: Packet) {
        let mut buf = BytesMut::from(enc(&p).as_slice());
        assert_eq!(decode(&mut buf, MAX), Ok(Some(p)));
        assert!(buf.is_empty());
    }

    fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &[u8]) -> Publish {
        let payload = Bytes::copy_from_slice(payload);
        let (dup, retain, topic) = (false, false, topic.into());
        Publish { dup, qos, retain, topic, packet_id, payload }
    }

    fn full_connect(protocol: Protocol) -> Connect {
        Connect {
            protocol,
            clean_session: false,
            keep_alive: 65535,
            client_id: "client-1".into(),
            will: Some(Will {
                topic: "last/will".into(),
                payload: Bytes::from_static(b"bye\0\xff"),
                qos: QoS::ExactlyOnce,
                retain: true,
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"\x00\x01secret")),
        }
    }

    fn samples() -> Vec<Packet> {
        let minimal = Connect {
            protocol: Protocol::V311,
            clean_session: true,
            keep_alive: 0,
            client_id: String::new(),
            will: None,
            username: None,
            password: None,
        };
        let user_only = Connect { username: Some("u".into()), ..minimal.clone() };
        let sub = |filter: &str, qos| SubscribeFilter { filter: filter.into(), qos };
        let connack = |session_present, code| Packet::Connack(Connack { session_present, code });
        let flagged =
            Publish { dup: true, retain: true, ..publish("\u{e9}/\u{1F600}", QoS::ExactlyOnce, 65535, &[0; 300]) };
        vec![
            Packet::Connect(minimal),
            Packet::Connect(user_only),
            Packet::Connect(full_connect(Protocol::V311)),
            Packet::Connect(full_connect(Protocol::V31)),
            connack(true, ConnectReturnCode::Accepted),
            connack(false, ConnectReturnCode::NotAuthorized),
            Packet::Publish(publish("a/b", QoS::AtMostOnce, 0, b"hello")),
            Packet::Publish(Publish { retain: true, ..publish("a/b", QoS::AtMostOnce, 0, b"") }),
            Packet::Publish(Publish { dup: true, ..publish("/", QoS::AtLeastOnce, 1, b"x") }),
            Packet::Publish(flagged),
            Packet::Puback(1),
            Packet::Pubrec(2),
            Packet::Pubrel(3),
            Packet::Pubcomp(65535),
            Packet::Subscribe(Subscribe {
                packet_id: 10,
                filters: vec![sub("a/+/c", QoS::AtMostOnce), sub("#", QoS::ExactlyOnce)],
            }),
            Packet::Suback(Suback {
                packet_id: 10,
                codes: vec![
                    SubackCode::Granted(QoS::AtMostOnce),
                    SubackCode::Granted(QoS::AtLeastOnce),
                    SubackCode::Granted(QoS::ExactlyOnce),
                    SubackCode::Failure,
                ],
            }),
            Packet::Unsubscribe(Unsubscribe { packet_id: 11, filters: vec!["a/#".into(), "+".into()] }),
            Packet::Unsuback(11),
            Packet::Pingreq,
            Packet::Pingresp,
            Packet::Disconnect,
        ]
    }

    #[test]
    fn all_packets_round_trip() {
        let samples = samples();
        let names: std::collections::HashSet<_> = samples.iter().map(Packet::name).collect();
        assert_eq!(names.len(), 14, "every packet type is covered");
        for p in samples {
            round_trip(p);
        }
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(&Packet::Pingreq), [0xC0, 0]);
        assert_eq!(enc(&Packet::Pingresp), [0xD0, 0]);
        assert_eq!(enc(&Packet::Disconnect), [0xE0, 0]);
        assert_eq!(enc(&Packet::Pubrel(0x0102)), [0x62, 2, 1, 2]);
        assert_eq!(enc(&Packet::Unsuback(7)), [0xB0, 2, 0, 7]);
        let code = ConnectReturnCode::BadUsernameOrPassword;
        let connack = Packet::Connack(Connack { session_present: true, code });
        assert_eq!(enc(&connack), [0x20, 2, 1, 4]);
        let p = Publish { dup: true, retain: true, ..publish("a/b", QoS::AtLeastOnce, 5, b"hi") };
        assert_eq!(enc(&Packet::Publish(p)), [0x3B, 9, 0, 3, b'a', b'/', b'b', 0, 5, b'h', b'i']);
        let p = publish("t", QoS::AtMostOnce, 0, b"x");
        assert_eq!(enc(&Packet::Publish(p)), [0x30, 4, 0, 1, b't', b'x']);
    }

    #[test]
    fn known_connect_bytes_decode() {
        // User name, password, will QoS 1, will flag, clean session.
        let bytes = connect4(0b1100_1110, &[b"id", b"w/t", b"msg", b"name", b"pw"]);
        let Ok(Some(Packet::Connect(c))) = dec(&bytes) else {
            panic!("CONNECT not decoded");
        };
        assert_eq!((c.protocol, c.clean_session, c.keep_alive), (Protocol::V311, true, 60));
        assert_eq!(c.client_id, "id");
        let will = c.will.unwrap();
        assert_eq!((&*will.topic, &will.payload[..]), ("w/t", &b"msg"[..]));
        assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
        assert_eq!(c.username.as_deref(), Some("name"));
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    }

    #[test]
    fn mqtt_3_1_mqisdp_connect() {
        let bytes = connect(b"MQIsdp", 3, 0x82, &fields(&[b"an-old-client", b"user"]));
        let Ok(Some(Packet::Connect(c))) = dec(&bytes) else {
            panic!("MQTT 3.1 CONNECT not decoded");
        };
        assert_eq!(c.protocol, Protocol::V31);
        assert_eq!(c.username.as_deref(), Some("user"));
        round_trip(Packet::Connect(c));
    }

    #[test]
    fn encode_publish_matches_encode() {
        for packet in samples() {
            if let Packet::Publish(p) = &packet {
                let mut out = BytesMut::new();
                let (qos, id) = (p.qos, p.packet_id);
                encode_publish(&p.topic, &p.payload, qos, p.retain, p.dup, id, &mut out);
                assert_eq!(out.to_vec(), enc(&packet));
            }
        }
        // DUP is never written for QoS 0 [MQTT-3.3.1-2].
        let mut out = BytesMut::new();
        encode_publish("t", b"", QoS::AtMostOnce, false, true, 0, &mut out);
        assert_eq!(out.to_vec(), [0x30, 3, 0, 1, b't']);
    }

    #[test]
    fn publish_payload_is_zero_copy() {
        let bytes = enc(&Packet::Publish(publish("t", QoS::AtLeastOnce, 1, b"payload")));
        let mut buf = BytesMut::from(bytes.as_slice());
        let base = buf.as_ptr() as usize;
        let Ok(Some(Packet::Publish(p))) = decode(&mut buf, MAX) else {
            panic!("PUBLISH not decoded");
        };
        // 2 fixed header + 3 topic + 2 packet id.
        assert_eq!(p.payload.as_ptr() as usize, base + 7);
    }

    #[test]
    fn remaining_length_boundaries() {
        let lens = [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_REMAINING_LENGTH];
        for len in lens {
            let mut out = BytesMut::new();
            put_remaining_length(&mut out, len);
            assert_eq!(out.len(), varint_len(len), "{len}");
            assert_eq!(read_remaining_length(&out), Ok(Some((len, varint_len(len)))));
        }
        assert_eq!(read_remaining_length(&[0xFF, 0xFF, 0xFF, 0x7F]), Ok(Some((MAX_REMAINING_LENGTH, 4))));
        // Large payloads use multi-byte lengths end to end.
        round_trip(Packet::Publish(publish("big", QoS::AtLeastOnce, 9, &[7; 20_000])));
    }

    #[test]
    #[should_panic(expected = "maximum remaining length")]
    fn encode_refuses_oversized_body() {
        begin(&mut BytesMut::new(), 0x30, MAX_REMAINING_LENGTH + 1);
    }

    #[test]
    fn mqtt_2_2_3_remaining_length_at_most_four_bytes() {
        refused(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], E::RemainingLengthTooLong);
        // Refused without waiting for a fifth byte.
        refused(&[0x30, 0x80, 0x80, 0x80, 0x80], E::RemainingLengthTooLong);
        // Incomplete but still possibly valid: wait.
        assert_eq!(dec(&[0x30, 0x80, 0x80, 0x80]), Ok(None));
        assert_eq!(dec(&[0x30]), Ok(None));
        assert_eq!(dec(&[]), Ok(None));
    }

    #[test]
    fn non_minimal_remaining_length_accepted() {
        assert_eq!(dec(&[0xC0, 0x80, 0x00]), Ok(Some(Packet::Pingreq)));
        assert_eq!(dec(&[0x40, 0x82, 0x80, 0x00, 0, 1]), Ok(Some(Packet::Puback(1))));
    }

    #[test]
    fn remaining_length_disagreeing_with_content() {
        let truncated = |packet| E::Truncated { packet };
        // PUBLISH whose topic length runs past the end.
        refused(&[0x30, 3, 0, 5, b'a'], truncated("PUBLISH"));
        // QoS 1 PUBLISH too short for its packet id.
        refused(&[0x32, 4, 0, 1, b'a', 0], truncated("PUBLISH"));
        // SUBSCRIBE filter without its QoS byte.
        refused(&frame(0x82, &[&[0, 1][..], &fields(&[b"a"])].concat()), truncated("SUBSCRIBE"));
        // CONNECT with a byte after the last flagged field.
        refused(&connect(b"MQTT", 4, 0, &body(&[b"id"], &[0])), E::TrailingBytes { packet: "CONNECT" });
        // CONNECT whose flagged user name is missing.
        refused(&connect4(0x80, &[b"id"]), truncated("CONNECT"));
        // CONNECT cut inside the variable header.
        refused(&frame(0x10, &fields(&[b"MQTT"])), truncated("CONNECT"));
    }

    #[test]
    fn fixed_size_packets_need_exact_remaining_length() {
        for first in [0x20, 0x40, 0x50, 0x62, 0x70, 0xB0, 0xC0, 0xD0, 0xE0] {
            let good = if first >= 0xC0 { 0 } else { 2 };
            for len in [0, 1, 2, 3, 100].into_iter().filter(|&l| l != good) {
                // Refused from the header alone, before the body arrives.
                let e = dec(&[first, len]);
                assert!(matches!(e, Err(E::InvalidRemainingLength { .. })), "{first:#x} {len}: {e:?}");
            }
        }
    }

    #[test]
    fn ack_packets_need_nonzero_packet_id() {
        let acks = [(0x40, "PUBACK"), (0x50, "PUBREC"), (0x62, "PUBREL"), (0x70, "PUBCOMP")];
        for (first, name) in acks.into_iter().chain([(0xB0, "UNSUBACK"), (0x90, "SUBACK")]) {
            refused(&[first, 2, 0, 0], E::ZeroPacketId(name));
        }
    }

    #[test]
    fn max_packet_size_checked_from_header() {
        // A 1000-byte body announced; only the header has arrived.
        let e = decode(&mut BytesMut::from(&[0x30, 0xE8, 0x07][..]), 500);
        assert_eq!(e, Err(E::PacketTooLarge { size: 1003, max: 500 }));
        // Exactly at the limit is accepted, one byte over is not.
        let p = enc(&Packet::Publish(publish("t", QoS::AtMostOnce, 0, b"abc")));
        assert!(decode(&mut BytesMut::from(p.as_slice()), p.len()).unwrap().is_some());
        assert!(decode(&mut BytesMut::from(p.as_slice()), p.len() - 1).is_err());
    }

    #[test]
    fn mqtt_2_2_1_reserved_packet_types() {
        refused(&[0x00, 0], E::ReservedPacketType(0));
        refused(&[0xF0, 0], E::ReservedPacketType(15));
    }

    #[test]
    fn mqtt_3_6_1_1_3_8_1_1_3_10_1_1_flags_must_be_0010() {
        for (ty, rule) in [(6u8, "MQTT-3.6.1-1"), (8, "MQTT-3.8.1-1"), (10, "MQTT-3.10.1-1")] {
            for flags in (0..16u8).filter(|&f| f != 2) {
                // Refused from the first byte alone.
                let e = dec(&[ty << 4 | flags]);
                assert!(matches!(e, Err(E::InvalidFlags { rule: r, .. }) if r == rule), "{e:?}");
            }
        }
    }

    #[test]
    fn mqtt_2_2_2_2_other_flags_must_be_zero() {
        for ty in [1u8, 2, 4, 5, 7, 9, 11, 12, 13, 14] {
            for flags in 1..16u8 {
                let e = dec(&[ty << 4 | flags, 0]);
                assert!(matches!(e, Err(E::InvalidFlags { rule: "MQTT-2.2.2-2", .. })), "{e:?}");
            }
        }
    }

    #[test]
    fn mqtt_3_3_1_4_publish_qos_3() {
        refused(&[0x36], E::InvalidPublishQos);
        refused(&[0x3F, 0], E::InvalidPublishQos);
    }

    #[test]
    fn mqtt_3_3_1_2_dup_with_qos_0() {
        refused(&[0x38, 4, 0, 1, b't', b'x'], E::DupWithQos0);
        // DUP is fine with QoS 1.
        assert!(dec(&[0x3A, 5, 0, 1, b't', 0, 1]).unwrap().is_some());
    }

    #[test]
    fn mqtt_3_3_2_2_topic_name_without_wildcards() {
        for topic in ["", "a/+", "#", "a/#", "x+y"] {
            refused(&frame(0x30, &body(&[topic.as_bytes()], b"payload")), E::InvalidTopicName);
        }
    }

    #[test]
    fn mqtt_2_3_1_1_nonzero_packet_id() {
        refused(&frame(0x32, &body(&[b"t"], &[0, 0])), E::ZeroPacketId("PUBLISH"));
        refused(&frame(0x34, &body(&[b"t"], &[0, 0])), E::ZeroPacketId("PUBLISH"));
        let filters = [&[0, 0][..], &fields(&[b"a"])].concat();
        refused(&frame(0xA2, &filters), E::ZeroPacketId("UNSUBSCRIBE"));
        refused(&frame(0x82, &[&filters[..], &[0]].concat()), E::ZeroPacketId("SUBSCRIBE"));
    }

    #[test]
    fn qos_0_publish_has_no_packet_id_and_may_be_empty() {
        // The two bytes after the topic are payload, even when they are zero.
        let p = dec(&[0x30, 5, 0, 1, b't', 0, 0]).unwrap();
        assert_eq!(p, Some(Packet::Publish(publish("t", QoS::AtMostOnce, 0, &[0, 0]))));
        let p = dec(&[0x31, 3, 0, 1, b't']).unwrap();
        let retained = Publish { retain: true, ..publish("t", QoS::AtMostOnce, 0, b"") };
        assert_eq!(p, Some(Packet::Publish(retained)));
        let p = dec(&[0x34, 5, 0, 1, b't', 0, 9]).unwrap();
        assert_eq!(p, Some(Packet::Publish(publish("t", QoS::ExactlyOnce, 9, b""))));
    }

    #[test]
    fn mqtt_1_5_3_1_well_formed_utf8() {
        // Invalid continuation, a UTF-16 surrogate (U+D800), an overlong '/', 0xFF.
        for bad in [&[0xC3, 0x28][..], &[0xED, 0xA0, 0x80], &[0xC0, 0xAF], &[0xFF]] {
            refused(&frame(0x30, &body(&[bad], b"x")), E::InvalidUtf8);
            refused(&connect4(0, &[bad]), E::InvalidUtf8);
            refused(&connect4(0x80, &[b"id", bad]), E::InvalidUtf8);
            refused(&frame(0xA2, &[&[0, 1][..], &fields(&[bad])].concat()), E::InvalidUtf8);
        }
    }

    #[test]
    fn mqtt_1_5_3_2_no_null_character() {
        refused(&[0x30, 4, 0, 2, b'a', 0], E::NullCharacter);
        refused(&connect4(0, &[b"id\0"]), E::NullCharacter);
        refused(&frame(0x82, &[&[0, 1][..], &body(&[b"a/\0"], &[0])].concat()), E::NullCharacter);
    }

    #[test]
    fn mqtt_1_5_3_3_bom_is_kept() {
        let p = dec(&[0x30, 5, 0, 3, 0xEF, 0xBB, 0xBF]).unwrap();
        assert_eq!(p, Some(Packet::Publish(publish("\u{FEFF}", QoS::AtMostOnce, 0, b""))));
    }

    #[test]
    fn mqtt_3_1_2_1_unknown_protocol_name() {
        for name in [&b"MQTX"[..], b"mqtt", b"MQIsdp\0", b"", b"\xff\xfe"] {
            let e = dec(&connect(name, 4, 0, &fields(&[b"id"]))).unwrap_err();
            assert_eq!(e, E::InvalidProtocolName);
            assert!(!e.is_unsupported_protocol_level());
        }
    }

    #[test]
    fn mqtt_3_1_2_2_unsupported_protocol_level() {
        for (name, level) in [(&b"MQTT"[..], 3), (b"MQTT", 5), (b"MQIsdp", 4), (b"MQTT", 0)] {
            // Whatever follows the level (here an MQTT 5 style property length).
            let e = dec(&connect(name, level, 0, &[0, 0, 0xFF])).unwrap_err();
            assert_eq!(e, E::UnsupportedProtocolLevel(level));
            assert!(e.is_unsupported_protocol_level());
        }
        let text = E::UnsupportedProtocolLevel(5).to_string();
        assert_eq!(text, "unsupported protocol level 5 in CONNECT [MQTT-3.1.2-2]");
    }

    #[test]
    fn mqtt_3_1_2_3_reserved_flag() {
        refused(&connect4(0x03, &[b"id"]), E::ConnectReservedFlag);
        let text = E::ConnectReservedFlag.to_string();
        assert_eq!(text, "reserved flag in CONNECT is set [MQTT-3.1.2-3]");
    }

    #[test]
    fn mqtt_3_1_2_13_will_qos_without_will_flag() {
        for flags in [0x08, 0x10, 0x18] {
            refused(&connect4(flags, &[b"id"]), E::WillQosWithoutWill);
        }
    }

    #[test]
    fn mqtt_3_1_2_15_will_retain_without_will_flag() {
        refused(&connect4(0x20, &[b"id"]), E::WillRetainWithoutWill);
    }

    #[test]
    fn mqtt_3_1_2_14_will_qos_3() {
        refused(&connect4(0x1C, &[b"id", b"w", b"m"]), E::InvalidWillQos);
        // The same payload with will QoS 2 is fine.
        assert!(dec(&connect4(0x14, &[b"id", b"w", b"m"])).unwrap().is_some());
    }

    #[test]
    fn will_topic_must_be_a_valid_name() {
        for topic in ["", "a/+", "#"] {
            refused(&connect4(0x04, &[b"id", topic.as_bytes(), b"m"]), E::InvalidWillTopic);
        }
    }

    #[test]
    fn mqtt_3_1_2_22_password_without_username() {
        refused(&connect4(0x40, &[b"id", b"pw"]), E::PasswordWithoutUsername);
    }

    #[test]
    fn connect_payload_fields_in_order_and_only_when_flagged() {
        // A user name present but not flagged is trailing garbage.
        let trailing = E::TrailingBytes { packet: "CONNECT" };
        refused(&connect4(0, &[b"id", b"user"]), trailing.clone());
        refused(&connect4(0x80, &[b"id", b"user", b"pw"]), trailing);
        // A flagged will that is missing its message.
        refused(&connect4(0x04, &[b"id", b"w"]), E::Truncated { packet: "CONNECT" });
    }

    #[test]
    fn empty_client_id_is_left_to_the_broker() {
        let Ok(Some(Packet::Connect(c))) = dec(&connect4(0, &[b""])) else {
            panic!("CONNECT not decoded");
        };
        assert_eq!(c.client_id, "");
        assert!(!c.clean_session);
    }

    #[test]
    fn mqtt_3_8_3_3_subscribe_needs_a_filter() {
        refused(&[0x82, 2, 0, 1], E::NoSubscribeFilters);
    }

    #[test]
    fn mqtt_3_8_3_4_requested_qos() {
        for qos in [3u8, 0x04, 0x41, 0x80, 0xFF] {
            let packet = frame(0x82, &[&[0, 1][..], &body(&[b"a/b"], &[qos])].concat());
            refused(&packet, E::InvalidRequestedQos(qos));
        }
    }

    #[test]
    fn subscribe_and_unsubscribe_filters_must_be_valid() {
        for filter in ["", "a#", "a/#/b", "a+"] {
            let unsubscribe = [&[0, 1][..], &fields(&[filter.as_bytes()])].concat();
            refused(&frame(0xA2, &unsubscribe), E::InvalidTopicFilter("UNSUBSCRIBE"));
            let subscribe = [&unsubscribe[..], &[1]].concat();
            refused(&frame(0x82, &subscribe), E::InvalidTopicFilter("SUBSCRIBE"));
        }
    }

    #[test]
    fn mqtt_3_10_3_2_unsubscribe_needs_a_filter() {
        refused(&[0xA2, 2, 0, 1], E::NoUnsubscribeFilters);
    }

    #[test]
    fn mqtt_3_9_3_2_suback_return_codes() {
        for code in [3u8, 0x7F, 0x81, 0xFF] {
            refused(&[0x90, 3, 0, 1, code], E::InvalidSubackCode(code));
        }
    }

    #[test]
    fn connack_flags_and_return_code() {
        refused(&[0x20, 2, 0x02, 0], E::InvalidConnackFlags(0x02));
        refused(&[0x20, 2, 0x80, 0], E::InvalidConnackFlags(0x80));
        refused(&[0x20, 2, 0, 6], E::InvalidConnackCode(6));
    }

    #[test]
    fn several_packets_back_to_back() {
        let samples = samples();
        let mut buf = BytesMut::new();
        for p in &samples {
            encode(p, &mut buf);
        }
        for p in samples {
            assert_eq!(decode(&mut buf, MAX), Ok(Some(p)));
        }
        assert_eq!(decode(&mut buf, MAX), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn one_byte_at_a_time() {
        for p in samples() {
            let bytes = enc(&p);
            let mut buf = BytesMut::new();
            for (i, &b) in bytes.iter().enumerate() {
                buf.put_u8(b);
                let got = decode(&mut buf, MAX).unwrap();
                if i + 1 < bytes.len() {
                    assert_eq!(got, None);
                    assert_eq!(&buf[..], &bytes[..=i], "Ok(None) consumed nothing");
                } else {
                    assert_eq!(got, Some(p.clone()));
                    assert!(buf.is_empty());
                }
            }
        }
    }

    /// Decodes everything in `bytes`; a panic or a broken invariant fails.
    fn decode_all(bytes: &[u8], max: usize) {
        let mut buf = BytesMut::from(bytes);
        loop {
            let before = buf.clone();
            match decode(&mut buf, max) {
                // Whatever decodes also re-encodes to the same packet.
                Ok(Some(p)) => round_trip(p),
                Ok(None) => return assert_eq!(buf, before, "Ok(None) consumed bytes"),
                Err(_) => return,
            }
        }
    }

    #[test]
    fn never_panics_on_random_truncated_or_mutated_input() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Truncation on 32-bit targets is fine: these pick indices and bytes.
            state as usize
        };
        let valid: Vec<Vec<u8>> = samples().iter().map(enc).collect();
        for _ in 0..50_000 {
            let r = next();
            let mut bytes = valid[r % valid.len()].clone();
            match (r >> 8) % 4 {
                0 => bytes.truncate(r >> 16 & 0xFF),
                1 => {
                    for _ in 0..1 + (r >> 16) % 4 {
                        let i = next() % bytes.len();
                        bytes[i] = next() as u8;
                    }
                }
                2 => bytes = (0..(r >> 16) % 64).map(|_| next() as u8).collect(),
                _ => {
                    bytes.extend_from_slice(&valid[(r >> 16) % valid.len()]);
                    let i = next() % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
            }
            decode_all(&bytes, if r & 0x80 == 0 { MAX } else { r >> 24 & 0x3F });
        }
    }
}
