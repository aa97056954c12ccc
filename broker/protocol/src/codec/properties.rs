//! MQTT 5 properties (section 2.2.2): the identifiers, which packet may
//! carry which, their value types, and the reading and writing of a
//! property list.
//!
//! Reading checks what applies to every property list: each identifier is
//! known and allowed on the packet, appears once unless the standard lets it
//! repeat, and its value is as long as its type says. The packet decoders
//! then check the values (a receive maximum of 0, ...).

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError;
use super::wire::{Reader, put_field, put_varint, varint_len};
use crate::packet::{MessageProperties, UserProperties};

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Where a property list sits: each allows its own identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    Connect,
    Will,
    Connack,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    Ack,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Disconnect,
    Auth,
}

/// A property value, by the type its identifier has.
#[derive(Debug)]
pub(crate) enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    Varint(u32),
    Str(String),
    Bin(Bytes),
    Pair(String, String),
}

enum Kind {
    Byte,
    U16,
    U32,
    Varint,
    Str,
    Bin,
    Pair,
}

/// The value type of a known identifier, and whether `carrier` allows it
/// (the table in section 2.2.2.2).
fn describe(id: u8, carrier: Carrier) -> Option<(Kind, bool)> {
    use Carrier::*;
    let (kind, carriers): (Kind, &[Carrier]) = match id {
        PAYLOAD_FORMAT_INDICATOR => (Kind::Byte, &[Publish, Will]),
        MESSAGE_EXPIRY_INTERVAL => (Kind::U32, &[Publish, Will]),
        CONTENT_TYPE => (Kind::Str, &[Publish, Will]),
        RESPONSE_TOPIC => (Kind::Str, &[Publish, Will]),
        CORRELATION_DATA => (Kind::Bin, &[Publish, Will]),
        SUBSCRIPTION_IDENTIFIER => (Kind::Varint, &[Publish, Subscribe]),
        SESSION_EXPIRY_INTERVAL => (Kind::U32, &[Connect, Connack, Disconnect]),
        ASSIGNED_CLIENT_IDENTIFIER => (Kind::Str, &[Connack]),
        SERVER_KEEP_ALIVE => (Kind::U16, &[Connack]),
        AUTHENTICATION_METHOD => (Kind::Str, &[Connect, Connack, Auth]),
        AUTHENTICATION_DATA => (Kind::Bin, &[Connect, Connack, Auth]),
        REQUEST_PROBLEM_INFORMATION => (Kind::Byte, &[Connect]),
        WILL_DELAY_INTERVAL => (Kind::U32, &[Will]),
        REQUEST_RESPONSE_INFORMATION => (Kind::Byte, &[Connect]),
        RESPONSE_INFORMATION => (Kind::Str, &[Connack]),
        SERVER_REFERENCE => (Kind::Str, &[Connack, Disconnect]),
        REASON_STRING => (Kind::Str, &[Connack, Ack, Suback, Unsuback, Disconnect, Auth]),
        RECEIVE_MAXIMUM => (Kind::U16, &[Connect, Connack]),
        TOPIC_ALIAS_MAXIMUM => (Kind::U16, &[Connect, Connack]),
        TOPIC_ALIAS => (Kind::U16, &[Publish]),
        MAXIMUM_QOS => (Kind::Byte, &[Connack]),
        RETAIN_AVAILABLE => (Kind::Byte, &[Connack]),
        USER_PROPERTY => (
            Kind::Pair,
            &[Connect, Will, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe, Unsuback, Disconnect, Auth],
        ),
        MAXIMUM_PACKET_SIZE => (Kind::U32, &[Connect, Connack]),
        WILDCARD_SUBSCRIPTION_AVAILABLE => (Kind::Byte, &[Connack]),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => (Kind::Byte, &[Connack]),
        SHARED_SUBSCRIPTION_AVAILABLE => (Kind::Byte, &[Connack]),
        _ => return None,
    };
    Some((kind, carriers.contains(&carrier)))
}

/// Reads a property list (its length, then the properties) and hands each
/// property to `each` in order.
pub(crate) fn read(
    r: &mut Reader,
    carrier: Carrier,
    mut each: impl FnMut(u8, Value) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = r.varint()?;
    // Most packets carry none: no sub-reader (a reference count on the
    // frame) for an empty list.
    if len == 0 {
        return Ok(());
    }
    let mut list = r.sub(len as usize)?;
    let packet = r.packet;
    let mut seen = 0u64;
    while !list.is_empty() {
        let id = list.varint()?;
        let unknown = DecodeError::UnknownProperty { packet, id };
        let id = u8::try_from(id).map_err(|_| unknown.clone())?;
        let (kind, allowed) = describe(id, carrier).ok_or(unknown)?;
        if !allowed {
            return Err(DecodeError::PropertyNotAllowed { packet, id });
        }
        // User properties may repeat, and so may subscription identifiers
        // in a PUBLISH (one per matching subscription); nothing else may
        // [MQTT-2.2.2-...: "It is a Protocol Error to include ... more than once"].
        let repeats = id == USER_PROPERTY || (id == SUBSCRIPTION_IDENTIFIER && carrier == Carrier::Publish);
        let bit = 1u64 << id;
        if !repeats && seen & bit != 0 {
            return Err(DecodeError::DuplicateProperty { packet, id });
        }
        seen |= bit;
        let value = match kind {
            Kind::Byte => Value::Byte(list.u8()?),
            Kind::U16 => Value::U16(list.u16()?),
            Kind::U32 => Value::U32(list.u32()?),
            Kind::Varint => Value::Varint(list.varint()?),
            Kind::Str => Value::Str(list.string()?.to_owned()),
            Kind::Bin => Value::Bin(list.binary()?),
            Kind::Pair => {
                let name = list.string()?.to_owned();
                Value::Pair(name, list.string()?.to_owned())
            }
        };
        each(id, value)?;
    }
    Ok(())
}

/// An error for a property whose value the standard does not allow.
pub(crate) fn invalid(packet: &'static str, id: u8, why: &'static str) -> DecodeError {
    DecodeError::InvalidPropertyValue { packet, id, why }
}

/// A byte property that must be 0 or 1.
pub(crate) fn flag(packet: &'static str, id: u8, v: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(invalid(packet, id, "must be 0 or 1")),
    }
}

/// Fills the fields of [`MessageProperties`] from one property of a PUBLISH
/// or a will; hands the property back when it is none of them.
pub(crate) fn message_property(
    packet: &'static str,
    p: &mut MessageProperties,
    id: u8,
    value: Value,
) -> Result<Option<(u8, Value)>, DecodeError> {
    match (id, value) {
        (PAYLOAD_FORMAT_INDICATOR, Value::Byte(v)) => {
            flag(packet, id, v)?;
            p.payload_format_indicator = Some(v);
        }
        (MESSAGE_EXPIRY_INTERVAL, Value::U32(v)) => p.message_expiry_interval = Some(v),
        (CONTENT_TYPE, Value::Str(v)) => p.content_type = Some(v),
        (RESPONSE_TOPIC, Value::Str(v)) => {
            // A topic name, never a filter [MQTT-3.3.2-14].
            if !crate::topic::is_valid_name(&v) {
                return Err(invalid(packet, id, "must be a topic name without wildcards"));
            }
            p.response_topic = Some(v);
        }
        (CORRELATION_DATA, Value::Bin(v)) => p.correlation_data = Some(v),
        (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
        other => return Ok(Some(other)),
    }
    Ok(None)
}

/// A property list being written: the properties first, then
/// [`Props::put`] writes their length and them.
#[derive(Default)]
pub(crate) struct Props {
    buf: BytesMut,
}

impl Props {
    pub(crate) fn byte(&mut self, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u8(v);
        }
    }

    pub(crate) fn flag(&mut self, id: u8, v: Option<bool>) {
        self.byte(id, v.map(u8::from));
    }

    pub(crate) fn u16(&mut self, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u16(v);
        }
    }

    pub(crate) fn u32(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u32(v);
        }
    }

    pub(crate) fn varint(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            put_varint(&mut self.buf, v as usize);
        }
    }

    pub(crate) fn string(&mut self, id: u8, v: Option<&str>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            put_field(&mut self.buf, v.as_bytes());
        }
    }

    pub(crate) fn binary(&mut self, id: u8, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            put_field(&mut self.buf, v);
        }
    }

    pub(crate) fn user(&mut self, pairs: &UserProperties) {
        for (k, v) in pairs {
            self.buf.put_u8(USER_PROPERTY);
            put_field(&mut self.buf, k.as_bytes());
            put_field(&mut self.buf, v.as_bytes());
        }
    }

    /// Message properties, with the expiry interval replaced by
    /// `expiry` (the remaining lifetime) when given.
    pub(crate) fn message(&mut self, p: &MessageProperties, expiry: Option<u32>) {
        self.byte(PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
        self.u32(MESSAGE_EXPIRY_INTERVAL, expiry.or(p.message_expiry_interval));
        self.string(CONTENT_TYPE, p.content_type.as_deref());
        self.string(RESPONSE_TOPIC, p.response_topic.as_deref());
        self.binary(CORRELATION_DATA, p.correlation_data.as_deref());
        self.user(&p.user_properties);
    }

    /// Bytes on the wire: the length and the properties.
    pub(crate) fn wire_len(&self) -> usize {
        varint_len(self.buf.len()) + self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        put_varint(out, self.buf.len());
        out.put_slice(&self.buf);
    }
}

/// Bytes the properties of a PUBLISH take inside the property list, without
/// building them: the hot path sizes and writes them straight into the
/// output buffer.
pub(crate) fn message_len(
    p: Option<&MessageProperties>,
    expiry: Option<u32>,
    alias: Option<u16>,
    ids: &[u32],
) -> usize {
    let mut len = 0;
    if let Some(p) = p {
        len += p.payload_format_indicator.map_or(0, |_| 2);
        len += expiry.or(p.message_expiry_interval).map_or(0, |_| 5);
        len += p.content_type.as_ref().map_or(0, |s| 3 + s.len());
        len += p.response_topic.as_ref().map_or(0, |s| 3 + s.len());
        len += p.correlation_data.as_ref().map_or(0, |b| 3 + b.len());
        len += p.user_properties.iter().map(|(k, v)| 5 + k.len() + v.len()).sum::<usize>();
    } else {
        len += expiry.map_or(0, |_| 5);
    }
    len += alias.map_or(0, |_| 3);
    len += ids.iter().map(|&id| 1 + varint_len(id as usize)).sum::<usize>();
    len
}

/// Writes what [`message_len`] sized, in the same order.
pub(crate) fn put_message(
    out: &mut BytesMut,
    p: Option<&MessageProperties>,
    expiry: Option<u32>,
    alias: Option<u16>,
    ids: &[u32],
) {
    let mut put_expiry = expiry;
    if let Some(p) = p {
        if let Some(v) = p.payload_format_indicator {
            out.put_u8(PAYLOAD_FORMAT_INDICATOR);
            out.put_u8(v);
        }
        put_expiry = expiry.or(p.message_expiry_interval);
    }
    if let Some(v) = put_expiry {
        out.put_u8(MESSAGE_EXPIRY_INTERVAL);
        out.put_u32(v);
    }
    if let Some(p) = p {
        for (id, s) in [(CONTENT_TYPE, &p.content_type), (RESPONSE_TOPIC, &p.response_topic)] {
            if let Some(s) = s {
                out.put_u8(id);
                put_field(out, s.as_bytes());
            }
        }
        if let Some(b) = &p.correlation_data {
            out.put_u8(CORRELATION_DATA);
            put_field(out, b);
        }
        for (k, v) in &p.user_properties {
            out.put_u8(USER_PROPERTY);
            put_field(out, k.as_bytes());
            put_field(out, v.as_bytes());
        }
    }
    if let Some(a) = alias {
        out.put_u8(TOPIC_ALIAS);
        out.put_u16(a);
    }
    for &id in ids {
        out.put_u8(SUBSCRIPTION_IDENTIFIER);
        put_varint(out, id as usize);
    }
}
