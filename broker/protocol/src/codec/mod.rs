//! The MQTT wire codec, every version: bytes in, [`Packet`]s out, and back.
//!
//! Pure and synchronous (no I/O, no tokio) so that every framing and
//! validation rule can be unit-tested byte by byte. The connection driver
//! appends socket reads to a [`BytesMut`] and calls [`decode`] until it
//! returns `Ok(None)`; it fills its write buffer with [`encode`],
//! [`encode_publish`] (3.1.1) and [`encode_publish_v5`].
//!
//! - `mod.rs`: the fixed header, framing, [`DecodeError`], dispatch.
//! - `connect.rs`: CONNECT, which names its own version.
//! - `v3.rs`, `v5.rs`: the other packets' bodies, per version.
//! - `properties.rs`: MQTT 5 properties.
//! - `wire.rs`: integers, strings and binary fields.
//!
//! Every rule that can be checked on one packet in isolation is checked
//! here, so the rest of the broker only ever sees well-formed packets. Rules
//! that need connection or session state (e.g. "the first packet must be
//! CONNECT", topic aliases) belong to the connection code. Any
//! [`DecodeError`] is a protocol violation after which the network
//! connection must be closed [MQTT-4.8.0-1]; an MQTT 5 peer is told why
//! first, with [`DecodeError::reason_code`].

use bytes::{BufMut, BytesMut};

use crate::packet::*;

mod connect;
mod properties;
mod v3;
mod v5;
mod wire;

pub use connect::connect_protocol;
pub use v5::{PublishV5, encode_publish as encode_publish_v5};

/// Largest remaining length the 4-byte varint can express.
pub const MAX_REMAINING_LENGTH: usize = wire::MAX_VARINT;

/// Why a byte stream is not a valid MQTT packet.
///
/// One variant per reason so callers and tests can match on the cause; the
/// `Display` text is meant for logs and names the normative statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Packet type 0, or 15 before MQTT 5.
    #[error("reserved packet type {0} [MQTT-2.2.1]")]
    ReservedPacketType(u8),
    /// Fixed header flags the packet type does not allow.
    #[error("invalid fixed header flags {flags:#06b} in {packet} [{rule}]")]
    InvalidFlags {
        /// The packet.
        packet: &'static str,
        /// The flag bits.
        flags: u8,
        /// The normative statement.
        rule: &'static str,
    },
    /// QoS bits 11.
    #[error("qos 3 in PUBLISH [MQTT-3.3.1-4]")]
    InvalidPublishQos,
    /// DUP set on a QoS 0 PUBLISH.
    #[error("dup flag set in a qos 0 PUBLISH [MQTT-3.3.1-2]")]
    DupWithQos0,
    /// A remaining length of five bytes or more.
    #[error("remaining length longer than 4 bytes [MQTT-2.2.3]")]
    RemainingLengthTooLong,
    /// For packets whose body has a fixed size, caught from the header alone.
    #[error("remaining length {len} is invalid for {packet}")]
    InvalidRemainingLength {
        /// The packet.
        packet: &'static str,
        /// The remaining length it announced.
        len: usize,
    },
    /// Larger than the maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// The packet's size, fixed header included.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The fields need more bytes than the remaining length holds.
    #[error("{packet} ends before its last field (remaining length too small)")]
    Truncated {
        /// The packet.
        packet: &'static str,
    },
    /// Bytes left after the last field.
    #[error("{packet} has bytes after its last field (remaining length too large)")]
    TrailingBytes {
        /// The packet.
        packet: &'static str,
    },
    /// A variable byte integer inside the packet longer than four bytes.
    #[error("variable byte integer longer than 4 bytes in {packet} [MQTT-1.5.5]")]
    MalformedVarint {
        /// The packet.
        packet: &'static str,
    },
    /// Not UTF-8.
    #[error("string is not well-formed utf-8 [MQTT-1.5.3-1]")]
    InvalidUtf8,
    /// U+0000 in a string.
    #[error("string contains U+0000 [MQTT-1.5.3-2]")]
    NullCharacter,
    /// A control character in a client identifier, user name, topic or filter.
    #[error("client identifier, user name, topic or filter contains a control character [MQTT-1.5.4]")]
    ControlCharacter,
    /// Neither `MQTT` nor `MQIsdp`.
    #[error("unknown protocol name in CONNECT [MQTT-3.1.2-1]")]
    InvalidProtocolName,
    /// A known protocol name with a level moth does not speak.
    #[error("unsupported protocol level {0} in CONNECT [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT's reserved flag.
    #[error("reserved flag in CONNECT is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    /// Also [MQTT-3.1.2-11].
    #[error("will qos set without will flag [MQTT-3.1.2-13]")]
    WillQosWithoutWill,
    /// Also [MQTT-3.1.2-11].
    #[error("will retain set without will flag [MQTT-3.1.2-15]")]
    WillRetainWithoutWill,
    /// Will QoS 3.
    #[error("will qos 3 in CONNECT [MQTT-3.1.2-14]")]
    InvalidWillQos,
    /// An empty will topic or one with wildcards.
    #[error("invalid will topic name (empty or with wildcards) [MQTT-4.7.1-1]")]
    InvalidWillTopic,
    /// 3.1.1 only: a password needs a user name.
    #[error("password flag set without user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// An empty topic (without an MQTT 5 alias) or one with wildcards.
    #[error("invalid topic name in PUBLISH (empty or with wildcards) [MQTT-3.3.2-2]")]
    InvalidTopicName,
    /// Packet identifier 0.
    #[error("zero packet identifier in {0} [MQTT-2.3.1-1]")]
    ZeroPacketId(&'static str),
    /// SUBSCRIBE without a filter.
    #[error("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")]
    NoSubscribeFilters,
    /// A requested QoS byte outside 0..=2 (3.1.1: with reserved bits).
    #[error("invalid requested qos byte {0:#04x} in SUBSCRIBE [MQTT-3.8.3-4]")]
    InvalidRequestedQos(u8),
    /// MQTT 5 subscription options with reserved bits or retain handling 3.
    #[error("invalid subscription options {0:#04x} in SUBSCRIBE [MQTT-3.8.3-5]")]
    InvalidSubscriptionOptions(u8),
    /// No local on a shared subscription.
    #[error("no local set on a shared subscription [MQTT-3.8.3-4]")]
    SharedSubscriptionNoLocal,
    /// A malformed topic filter.
    #[error("invalid topic filter in {0} [MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1]")]
    InvalidTopicFilter(&'static str),
    /// UNSUBSCRIBE without a filter.
    #[error("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")]
    NoUnsubscribeFilters,
    /// CONNACK flags with reserved bits.
    #[error("reserved bits set in CONNACK acknowledge flags {0:#04x}")]
    InvalidConnackFlags(u8),
    /// A CONNACK code the version does not define.
    #[error("invalid CONNACK return code {0}")]
    InvalidConnackCode(u8),
    /// A 3.1.1 SUBACK code outside 0, 1, 2, 0x80.
    #[error("invalid SUBACK return code {0:#04x} [MQTT-3.9.3-2]")]
    InvalidSubackCode(u8),
    /// An MQTT 5 reason code the packet may not carry.
    #[error("reason code {code:#04x} is not allowed in {packet}")]
    InvalidReasonCode {
        /// The packet.
        packet: &'static str,
        /// The byte.
        code: u8,
    },
    /// A property identifier MQTT 5 does not define.
    #[error("unknown property {id:#04x} in {packet} [MQTT-2.2.2]")]
    UnknownProperty {
        /// The packet.
        packet: &'static str,
        /// The identifier.
        id: u32,
    },
    /// A property the packet may not carry.
    #[error("property {id:#04x} is not allowed in {packet} [MQTT-2.2.2]")]
    PropertyNotAllowed {
        /// The packet.
        packet: &'static str,
        /// The identifier.
        id: u8,
    },
    /// A property that may appear once, twice.
    #[error("property {id:#04x} appears twice in {packet} [MQTT-2.2.2]")]
    DuplicateProperty {
        /// The packet.
        packet: &'static str,
        /// The identifier.
        id: u8,
    },
    /// A property value the standard does not allow.
    #[error("property {id:#04x} in {packet} {why}")]
    InvalidPropertyValue {
        /// The packet.
        packet: &'static str,
        /// The identifier.
        id: u8,
        /// What is wrong, as in "must not be 0".
        why: &'static str,
    },
    /// Authentication data without a method.
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// True for the one case where the server must answer CONNACK 0x01 before closing:
    /// a CONNECT with a valid protocol name but an unsupported level [MQTT-3.1.2-2].
    #[must_use]
    pub fn is_unsupported_protocol_level(&self) -> bool {
        matches!(self, DecodeError::UnsupportedProtocolLevel(_))
    }

    /// The MQTT 5 reason code that tells a peer why its packet is refused,
    /// in CONNACK or DISCONNECT: 0x81 malformed packet for what cannot be
    /// parsed, 0x82 protocol error for what parses but breaks a rule, and
    /// the specific codes where the standard has one.
    #[must_use]
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            UnsupportedProtocolLevel(_) | InvalidProtocolName => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            InvalidTopicName | InvalidWillTopic => ReasonCode::TOPIC_NAME_INVALID,
            InvalidTopicFilter(_) => ReasonCode::TOPIC_FILTER_INVALID,
            DuplicateProperty { .. }
            | InvalidPropertyValue { .. }
            | AuthDataWithoutMethod
            | SharedSubscriptionNoLocal
            | InvalidReasonCode { .. }
            | ReservedPacketType(_)
            | ZeroPacketId(_) => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
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
        15 => "AUTH",
        _ => "reserved",
    }
}

/// Checks the first byte of the fixed header. Done before the rest of the
/// packet arrives so that a peer speaking something else entirely (HTTP,
/// TLS to a plain port) is dropped at once instead of after a bogus length.
fn check_first_byte(first: u8, protocol: Protocol) -> Result<(), DecodeError> {
    let (packet_type, flags) = (first >> 4, first & 0x0F);
    let (required, rule) = match packet_type {
        0 => return Err(DecodeError::ReservedPacketType(0)),
        15 if !protocol.is_v5() => return Err(DecodeError::ReservedPacketType(15)),
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

/// The body size of packets that have exactly one valid size. MQTT 5 adds
/// reason codes and properties to all but PINGREQ and PINGRESP.
fn fixed_body_len(packet_type: u8, protocol: Protocol) -> Option<usize> {
    match packet_type {
        12 | 13 => Some(0),
        _ if protocol.is_v5() => None,
        2 | 4..=7 | 11 => Some(2),
        14 => Some(0),
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
/// `protocol` is the connection's; a CONNECT is read by the version it names.
///
/// # Errors
/// Any [`DecodeError`] is a protocol violation; the contents of `buf` are then
/// unspecified, as the connection is to be closed anyway.
///
/// `buf` is deliberately not grown to the announced size of an incomplete
/// packet: five bytes from a peer must not make the broker allocate up to
/// `max_packet_size`. Memory grows only as bytes actually arrive.
pub fn decode(buf: &mut BytesMut, max_packet_size: usize, protocol: Protocol) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_first_byte(first, protocol)?;
    let packet_type = first >> 4;
    let packet = packet_name(packet_type);
    let Some((len, len_bytes)) = read_remaining_length(buf.get(1..).unwrap_or_default())? else {
        return Ok(None);
    };
    if fixed_body_len(packet_type, protocol).is_some_and(|expected| expected != len) {
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
    let mut r = wire::Reader::new(frame.slice(header_len..), packet);
    let decoded = match packet_type {
        1 => Packet::Connect(Box::new(connect::decode(&mut r)?)),
        _ if protocol.is_v5() => v5::decode(packet_type, first, &mut r)?,
        _ => v3::decode(packet_type, first, &mut r)?,
    };
    r.finish()?;
    Ok(Some(decoded))
}

/// Append the encoding of `packet` for a peer speaking `protocol` to `out`.
/// A CONNECT is written in the version it names.
///
/// # Panics
/// If a string or binary field exceeds 65 535 bytes or the packet exceeds
/// [`MAX_REMAINING_LENGTH`].
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut BytesMut) {
    if protocol.is_v5() { v5::encode(packet, out) } else { v3::encode(packet, out) }
}

/// Append a 3.1.1 PUBLISH built from parts (hot path: the broker encodes one
/// per subscriber straight from a shared message, without building a
/// `Publish`).
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
    wire::begin(out, first, 2 + topic.len() + id_len + payload.len());
    wire::put_field(out, topic.as_bytes());
    if has_id {
        out.put_u16(packet_id);
    }
    out.put_slice(payload);
}

#[cfg(test)]
mod test_mutations;
#[cfg(test)]
mod tests_v3;
#[cfg(test)]
mod tests_v5;
