//! MQTT 5.0 packet bodies (everything but CONNECT, which `connect.rs` reads
//! for every version): 3.1.1's fields plus reason codes and properties.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::DecodeError;
use super::connect::unreachable_value;
use super::properties::{self as prop, Carrier, Props, Value};
use super::wire::{Reader, begin, put_field, put_varint, varint_len};
use crate::packet::*;
use crate::reason::ReasonPacket;
use crate::topic;

/// The body of a packet of type `packet_type` (not CONNECT).
pub(crate) fn decode(packet_type: u8, first: u8, r: &mut Reader) -> Result<Packet, DecodeError> {
    Ok(match packet_type {
        2 => Packet::Connack(Box::new(decode_connack(r)?)),
        3 => Packet::Publish(decode_publish(r, first)?),
        4 => Packet::Puback(decode_ack(r, ReasonPacket::PubackPubrec)?),
        5 => Packet::Pubrec(decode_ack(r, ReasonPacket::PubackPubrec)?),
        6 => Packet::Pubrel(decode_ack(r, ReasonPacket::PubrelPubcomp)?),
        7 => Packet::Pubcomp(decode_ack(r, ReasonPacket::PubrelPubcomp)?),
        8 => Packet::Subscribe(decode_subscribe(r)?),
        9 => Packet::Suback(decode_suback(r)?),
        10 => Packet::Unsubscribe(decode_unsubscribe(r)?),
        11 => Packet::Unsuback(decode_unsuback(r)?),
        12 => Packet::Pingreq,
        13 => Packet::Pingresp,
        14 => Packet::Disconnect(decode_disconnect(r)?),
        15 => Packet::Auth(decode_auth(r)?),
        _ => return Err(DecodeError::ReservedPacketType(packet_type)),
    })
}

fn reason(r: &mut Reader, packet: ReasonPacket) -> Result<ReasonCode, DecodeError> {
    let code = ReasonCode(r.u8()?);
    if code.allowed_in(packet) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode { packet: r.packet, code: code.0 })
    }
}

/// Reason string and user properties: all that most packets carry.
fn reason_properties(
    r: &mut Reader,
    carrier: Carrier,
    reason_string: &mut Option<String>,
    user: &mut UserProperties,
) -> Result<(), DecodeError> {
    let packet = r.packet;
    prop::read(r, carrier, |id, value| {
        match (id, value) {
            (prop::REASON_STRING, Value::Str(v)) => *reason_string = Some(v),
            (prop::USER_PROPERTY, Value::Pair(k, v)) => user.push((k, v)),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })
}

fn decode_connack(r: &mut Reader) -> Result<Connack, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnackFlags(flags));
    }
    let byte = r.u8()?;
    let code = ConnectReturnCode::from_v5(byte).ok_or(DecodeError::InvalidConnackCode(byte))?;
    let packet = r.packet;
    let mut p = ConnackProperties::default();
    prop::read(r, Carrier::Connack, |id, value| {
        match (id, value) {
            (prop::SESSION_EXPIRY_INTERVAL, Value::U32(v)) => p.session_expiry_interval = Some(v),
            (prop::RECEIVE_MAXIMUM, Value::U16(0)) => return Err(prop::invalid(packet, id, "must not be 0")),
            (prop::RECEIVE_MAXIMUM, Value::U16(v)) => p.receive_maximum = Some(v),
            (prop::MAXIMUM_QOS, Value::Byte(v)) => {
                p.maximum_qos = Some(if prop::flag(packet, id, v)? { QoS::AtLeastOnce } else { QoS::AtMostOnce });
            }
            (prop::RETAIN_AVAILABLE, Value::Byte(v)) => p.retain_available = Some(prop::flag(packet, id, v)?),
            (prop::MAXIMUM_PACKET_SIZE, Value::U32(0)) => return Err(prop::invalid(packet, id, "must not be 0")),
            (prop::MAXIMUM_PACKET_SIZE, Value::U32(v)) => p.maximum_packet_size = Some(v),
            (prop::ASSIGNED_CLIENT_IDENTIFIER, Value::Str(v)) => p.assigned_client_identifier = Some(v),
            (prop::TOPIC_ALIAS_MAXIMUM, Value::U16(v)) => p.topic_alias_maximum = Some(v),
            (prop::REASON_STRING, Value::Str(v)) => p.reason_string = Some(v),
            (prop::USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (prop::WILDCARD_SUBSCRIPTION_AVAILABLE, Value::Byte(v)) => {
                p.wildcard_subscription_available = Some(prop::flag(packet, id, v)?);
            }
            (prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE, Value::Byte(v)) => {
                p.subscription_identifiers_available = Some(prop::flag(packet, id, v)?);
            }
            (prop::SHARED_SUBSCRIPTION_AVAILABLE, Value::Byte(v)) => {
                p.shared_subscription_available = Some(prop::flag(packet, id, v)?);
            }
            (prop::SERVER_KEEP_ALIVE, Value::U16(v)) => p.server_keep_alive = Some(v),
            (prop::RESPONSE_INFORMATION, Value::Str(v)) => p.response_information = Some(v),
            (prop::SERVER_REFERENCE, Value::Str(v)) => p.server_reference = Some(v),
            (prop::AUTHENTICATION_METHOD, Value::Str(v)) => p.authentication_method = Some(v),
            (prop::AUTHENTICATION_DATA, Value::Bin(v)) => p.authentication_data = Some(v),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    Ok(Connack { session_present: flags & 0x01 != 0, code, properties: p })
}

/// `first` has passed the first byte's check, so `QoS` is 0..=2 and DUP is
/// consistent with it.
fn decode_publish(r: &mut Reader, first: u8) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0b11).ok_or(DecodeError::InvalidPublishQos)?;
    let topic: Arc<str> = Arc::from(r.name()?);
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { r.packet_id()? };
    let packet = r.packet;
    let mut message = MessageProperties::default();
    let mut topic_alias = None;
    let mut subscription_ids = Vec::new();
    let mut any = false;
    prop::read(r, Carrier::Publish, |id, value| {
        match prop::message_property(packet, &mut message, id, value)? {
            None => any = true,
            Some((prop::TOPIC_ALIAS, Value::U16(0))) => {
                return Err(prop::invalid(packet, prop::TOPIC_ALIAS, "must not be 0"));
            }
            Some((prop::TOPIC_ALIAS, Value::U16(v))) => topic_alias = Some(v),
            Some((prop::SUBSCRIPTION_IDENTIFIER, Value::Varint(0))) => {
                return Err(prop::invalid(packet, prop::SUBSCRIPTION_IDENTIFIER, "must not be 0"));
            }
            Some((prop::SUBSCRIPTION_IDENTIFIER, Value::Varint(v))) => subscription_ids.push(v),
            Some((id, _)) => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    // An empty topic stands for the one an alias was set to; without an
    // alias it is a protocol error [MQTT-3.3.2-8 in 5.0, 3.3.4 "Topic Alias"].
    let valid = if topic.is_empty() { topic_alias.is_some() } else { topic::is_valid_name(&topic) };
    if !valid {
        return Err(DecodeError::InvalidTopicName);
    }
    let mut p = Publish::new(topic, r.rest(), qos, first & 0b0001 != 0, packet_id);
    p.dup = first & 0b1000 != 0;
    p.properties = any.then(|| Arc::new(message));
    p.topic_alias = topic_alias;
    p.subscription_ids = subscription_ids;
    Ok(p)
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: the reason code and the properties may
/// be left out, meaning success and none [MQTT 5.0 3.4.2.1].
fn decode_ack(r: &mut Reader, packet: ReasonPacket) -> Result<Ack, DecodeError> {
    let mut ack = Ack::new(r.packet_id()?);
    if r.is_empty() {
        return Ok(ack);
    }
    ack.reason = reason(r, packet)?;
    if !r.is_empty() {
        reason_properties(r, Carrier::Ack, &mut ack.reason_string, &mut ack.user_properties)?;
    }
    Ok(ack)
}

fn decode_subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let mut s = Subscribe::new(r.packet_id()?, Vec::new());
    let packet = r.packet;
    prop::read(r, Carrier::Subscribe, |id, value| {
        match (id, value) {
            (prop::SUBSCRIPTION_IDENTIFIER, Value::Varint(0)) => {
                return Err(prop::invalid(packet, id, "must not be 0"));
            }
            (prop::SUBSCRIPTION_IDENTIFIER, Value::Varint(v)) => s.subscription_id = Some(v),
            (prop::USER_PROPERTY, Value::Pair(k, v)) => s.user_properties.push((k, v)),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    while !r.is_empty() {
        let filter = r.filter()?;
        let options = r.u8()?;
        // Bits 6 and 7 are reserved [MQTT-3.8.3-5].
        if options & 0xC0 != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(options));
        }
        let qos = QoS::from_u8(options & 0b11).ok_or(DecodeError::InvalidRequestedQos(options))?;
        let retain_handling = match (options >> 4) & 0b11 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscription,
            2 => RetainHandling::Never,
            _ => return Err(DecodeError::InvalidSubscriptionOptions(options)),
        };
        let no_local = options & 0b0100 != 0;
        // A shared subscription's messages go to other members, so "not my
        // own" cannot apply [MQTT-3.8.3-4].
        if no_local && filter.starts_with("$share/") {
            return Err(DecodeError::SharedSubscriptionNoLocal);
        }
        s.filters.push(SubscribeFilter {
            filter,
            qos,
            no_local,
            retain_as_published: options & 0b1000 != 0,
            retain_handling,
        });
    }
    if s.filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(s)
}

fn decode_suback(r: &mut Reader) -> Result<Suback, DecodeError> {
    let mut s = Suback::new(r.packet_id()?, Vec::new());
    reason_properties(r, Carrier::Suback, &mut s.reason_string, &mut s.user_properties)?;
    while !r.is_empty() {
        let code = reason(r, ReasonPacket::Suback)?;
        s.codes.push(match QoS::from_u8(code.0) {
            Some(qos) => SubackCode::Granted(qos),
            None => SubackCode::Failure(code),
        });
    }
    Ok(s)
}

fn decode_unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let mut u = Unsubscribe::new(r.packet_id()?, Vec::new());
    let packet = r.packet;
    prop::read(r, Carrier::Unsubscribe, |id, value| {
        match (id, value) {
            (prop::USER_PROPERTY, Value::Pair(k, v)) => u.user_properties.push((k, v)),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    while !r.is_empty() {
        let filter = r.filter()?;
        u.filters.push(filter);
    }
    if u.filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(u)
}

fn decode_unsuback(r: &mut Reader) -> Result<Unsuback, DecodeError> {
    let mut u = Unsuback::new(r.packet_id()?, Vec::new());
    reason_properties(r, Carrier::Unsuback, &mut u.reason_string, &mut u.user_properties)?;
    while !r.is_empty() {
        u.codes.push(reason(r, ReasonPacket::Unsuback)?);
    }
    Ok(u)
}

/// DISCONNECT and AUTH: an empty body is a success without properties,
/// and a reason code may come without them [MQTT 5.0 3.14.2.1, 3.15.2.1].
fn reason_then_properties(
    r: &mut Reader,
    packet: ReasonPacket,
    carrier: Carrier,
    each: impl FnMut(u8, Value) -> Result<(), DecodeError>,
) -> Result<ReasonCode, DecodeError> {
    if r.is_empty() {
        return Ok(ReasonCode::SUCCESS);
    }
    let code = reason(r, packet)?;
    if !r.is_empty() {
        prop::read(r, carrier, each)?;
    }
    Ok(code)
}

fn decode_disconnect(r: &mut Reader) -> Result<Disconnect, DecodeError> {
    let packet = r.packet;
    let mut d = Disconnect::default();
    d.reason = reason_then_properties(r, ReasonPacket::Disconnect, Carrier::Disconnect, |id, value| {
        match (id, value) {
            (prop::SESSION_EXPIRY_INTERVAL, Value::U32(v)) => d.session_expiry_interval = Some(v),
            (prop::REASON_STRING, Value::Str(v)) => d.reason_string = Some(v),
            (prop::SERVER_REFERENCE, Value::Str(v)) => d.server_reference = Some(v),
            (prop::USER_PROPERTY, Value::Pair(k, v)) => d.user_properties.push((k, v)),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    Ok(d)
}

fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let packet = r.packet;
    let mut a = Auth::default();
    a.reason = reason_then_properties(r, ReasonPacket::Auth, Carrier::Auth, |id, value| {
        match (id, value) {
            (prop::AUTHENTICATION_METHOD, Value::Str(v)) => a.method = Some(v),
            (prop::AUTHENTICATION_DATA, Value::Bin(v)) => a.data = Some(v),
            (prop::REASON_STRING, Value::Str(v)) => a.reason_string = Some(v),
            (prop::USER_PROPERTY, Value::Pair(k, v)) => a.user_properties.push((k, v)),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    if a.data.is_some() && a.method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(a)
}

/// A property list of reason string and user properties.
fn reason_props(reason_string: Option<&str>, user: &UserProperties) -> Props {
    let mut props = Props::default();
    props.string(prop::REASON_STRING, reason_string);
    props.user(user);
    props
}

/// Appends the MQTT 5 encoding of `packet`.
pub(crate) fn encode(packet: &Packet, out: &mut BytesMut) {
    match packet {
        Packet::Connect(c) => super::connect::encode(c, out),
        Packet::Connack(c) => {
            let props = connack_props(&c.properties);
            begin(out, 0x20, 2 + props.wire_len());
            out.put_u8(u8::from(c.session_present));
            out.put_u8(c.code.v5_code());
            props.put(out);
        }
        Packet::Publish(p) => encode_publish(&PublishV5::from(p), out),
        Packet::Puback(a) => encode_ack(out, 0x40, a),
        Packet::Pubrec(a) => encode_ack(out, 0x50, a),
        Packet::Pubrel(a) => encode_ack(out, 0x62, a),
        Packet::Pubcomp(a) => encode_ack(out, 0x70, a),
        Packet::Subscribe(s) => encode_subscribe(s, out),
        Packet::Suback(s) => {
            let props = reason_props(s.reason_string.as_deref(), &s.user_properties);
            begin(out, 0x90, 2 + props.wire_len() + s.codes.len());
            out.put_u16(s.packet_id);
            props.put(out);
            for code in &s.codes {
                out.put_u8(match code {
                    SubackCode::Granted(qos) => *qos as u8,
                    SubackCode::Failure(reason) => reason.0,
                });
            }
        }
        Packet::Unsubscribe(u) => {
            let mut props = Props::default();
            props.user(&u.user_properties);
            let body: usize = u.filters.iter().map(|f| 2 + f.len()).sum();
            begin(out, 0xA2, 2 + props.wire_len() + body);
            out.put_u16(u.packet_id);
            props.put(out);
            for f in &u.filters {
                put_field(out, f.as_bytes());
            }
        }
        Packet::Unsuback(u) => {
            let props = reason_props(u.reason_string.as_deref(), &u.user_properties);
            begin(out, 0xB0, 2 + props.wire_len() + u.codes.len());
            out.put_u16(u.packet_id);
            props.put(out);
            for code in &u.codes {
                out.put_u8(code.0);
            }
        }
        Packet::Pingreq => begin(out, 0xC0, 0),
        Packet::Pingresp => begin(out, 0xD0, 0),
        Packet::Disconnect(d) => {
            let mut props = Props::default();
            props.u32(prop::SESSION_EXPIRY_INTERVAL, d.session_expiry_interval);
            props.string(prop::REASON_STRING, d.reason_string.as_deref());
            props.string(prop::SERVER_REFERENCE, d.server_reference.as_deref());
            props.user(&d.user_properties);
            encode_reasoned(out, 0xE0, d.reason, &props);
        }
        Packet::Auth(a) => {
            let mut props = Props::default();
            props.string(prop::AUTHENTICATION_METHOD, a.method.as_deref());
            props.binary(prop::AUTHENTICATION_DATA, a.data.as_deref());
            props.string(prop::REASON_STRING, a.reason_string.as_deref());
            props.user(&a.user_properties);
            encode_reasoned(out, 0xF0, a.reason, &props);
        }
    }
}

fn connack_props(p: &ConnackProperties) -> Props {
    let mut props = Props::default();
    props.u32(prop::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    props.u16(prop::RECEIVE_MAXIMUM, p.receive_maximum);
    props.byte(prop::MAXIMUM_QOS, p.maximum_qos.map(|q| q as u8));
    props.flag(prop::RETAIN_AVAILABLE, p.retain_available);
    props.u32(prop::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    props.string(prop::ASSIGNED_CLIENT_IDENTIFIER, p.assigned_client_identifier.as_deref());
    props.u16(prop::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    props.string(prop::REASON_STRING, p.reason_string.as_deref());
    props.user(&p.user_properties);
    props.flag(prop::WILDCARD_SUBSCRIPTION_AVAILABLE, p.wildcard_subscription_available);
    props.flag(prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE, p.subscription_identifiers_available);
    props.flag(prop::SHARED_SUBSCRIPTION_AVAILABLE, p.shared_subscription_available);
    props.u16(prop::SERVER_KEEP_ALIVE, p.server_keep_alive);
    props.string(prop::RESPONSE_INFORMATION, p.response_information.as_deref());
    props.string(prop::SERVER_REFERENCE, p.server_reference.as_deref());
    props.string(prop::AUTHENTICATION_METHOD, p.authentication_method.as_deref());
    props.binary(prop::AUTHENTICATION_DATA, p.authentication_data.as_deref());
    props
}

fn encode_subscribe(s: &Subscribe, out: &mut BytesMut) {
    let mut props = Props::default();
    props.varint(prop::SUBSCRIPTION_IDENTIFIER, s.subscription_id);
    props.user(&s.user_properties);
    let body: usize = s.filters.iter().map(|f| 3 + f.filter.len()).sum();
    begin(out, 0x82, 2 + props.wire_len() + body);
    out.put_u16(s.packet_id);
    props.put(out);
    for f in &s.filters {
        put_field(out, f.filter.as_bytes());
        let handling = match f.retain_handling {
            RetainHandling::OnSubscribe => 0,
            RetainHandling::OnNewSubscription => 1,
            RetainHandling::Never => 2,
        };
        out.put_u8(f.qos as u8 | u8::from(f.no_local) << 2 | u8::from(f.retain_as_published) << 3 | handling << 4);
    }
}

/// PUBACK..PUBCOMP in their shortest form: the packet identifier alone for
/// a success without properties [MQTT 5.0 3.4.2.1].
fn encode_ack(out: &mut BytesMut, first: u8, a: &Ack) {
    let props = reason_props(a.reason_string.as_deref(), &a.user_properties);
    if props.is_empty() {
        if a.reason == ReasonCode::SUCCESS {
            begin(out, first, 2);
            out.put_u16(a.packet_id);
        } else {
            begin(out, first, 3);
            out.put_u16(a.packet_id);
            out.put_u8(a.reason.0);
        }
        return;
    }
    begin(out, first, 3 + props.wire_len());
    out.put_u16(a.packet_id);
    out.put_u8(a.reason.0);
    props.put(out);
}

/// DISCONNECT and AUTH: empty for a success without properties.
fn encode_reasoned(out: &mut BytesMut, first: u8, reason: ReasonCode, props: &Props) {
    if props.is_empty() {
        if reason == ReasonCode::SUCCESS {
            begin(out, first, 0);
        } else {
            begin(out, first, 1);
            out.put_u8(reason.0);
        }
        return;
    }
    begin(out, first, 1 + props.wire_len());
    out.put_u8(reason.0);
    props.put(out);
}

/// An MQTT 5 PUBLISH from its parts, borrowed: the broker writes one per
/// subscriber straight from a shared message, with that subscriber's topic
/// alias, subscription identifiers and remaining expiry.
#[derive(Debug, Clone, Copy)]
pub struct PublishV5<'a> {
    /// The topic; empty to use `topic_alias` alone, once it is set.
    pub topic: &'a str,
    /// The payload.
    pub payload: &'a [u8],
    /// The QoS it is sent at.
    pub qos: QoS,
    /// The RETAIN flag.
    pub retain: bool,
    /// The DUP flag (forced to 0 at QoS 0).
    pub dup: bool,
    /// The packet identifier (not written at QoS 0).
    pub packet_id: u16,
    /// The message's properties.
    pub properties: Option<&'a MessageProperties>,
    /// Replaces the properties' message expiry interval: the lifetime left.
    pub message_expiry_interval: Option<u32>,
    /// The topic alias to set or use.
    pub topic_alias: Option<u16>,
    /// The matching subscriptions' identifiers.
    pub subscription_ids: &'a [u32],
}

/// A decoded PUBLISH as it is written again: its own properties,
/// identifiers and alias.
impl<'a> From<&'a Publish> for PublishV5<'a> {
    fn from(p: &'a Publish) -> PublishV5<'a> {
        PublishV5 {
            topic: &p.topic,
            payload: &p.payload,
            qos: p.qos,
            retain: p.retain,
            dup: p.dup,
            packet_id: p.packet_id,
            properties: p.properties.as_deref(),
            message_expiry_interval: None,
            topic_alias: p.topic_alias,
            subscription_ids: &p.subscription_ids,
        }
    }
}

impl PublishV5<'_> {
    fn properties_len(&self) -> usize {
        prop::message_len(self.properties, self.message_expiry_interval, self.topic_alias, self.subscription_ids)
    }

    fn body_len(&self) -> usize {
        let props = self.properties_len();
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        2 + self.topic.len() + id_len + varint_len(props) + props + self.payload.len()
    }

    /// The whole packet's size on the wire, to hold it against the
    /// client's maximum packet size before writing it.
    pub fn size(&self) -> usize {
        let body = self.body_len();
        1 + varint_len(body) + body
    }
}

/// Appends an MQTT 5 PUBLISH. As for [`super::encode_publish`], DUP is
/// forced to 0 and no packet identifier is written at QoS 0.
///
/// # Panics
/// If a string exceeds 65 535 bytes or the packet exceeds the maximum
/// remaining length.
pub fn encode_publish(p: &PublishV5<'_>, out: &mut BytesMut) {
    let has_id = p.qos != QoS::AtMostOnce;
    debug_assert!(!has_id || p.packet_id != 0, "QoS>0 PUBLISH needs a packet id");
    let first = 0x30 | u8::from(p.dup && has_id) << 3 | (p.qos as u8) << 1 | u8::from(p.retain);
    let id_len = if has_id { 2 } else { 0 };
    if p.properties.is_none()
        && p.message_expiry_interval.is_none()
        && p.topic_alias.is_none()
        && p.subscription_ids.is_empty()
    {
        // Most deliveries carry no property: the 3.1.1 layout with a zero
        // property length, without sizing properties (a fan-out writes one
        // of these per subscriber, and the general path cost MQTT 5 8% more
        // broker CPU per delivery than 3.1.1).
        begin(out, first, 2 + p.topic.len() + id_len + 1 + p.payload.len());
        put_field(out, p.topic.as_bytes());
        if has_id {
            out.put_u16(p.packet_id);
        }
        out.put_u8(0);
        out.put_slice(p.payload);
        return;
    }
    // Sized once: the fan-out writes one of these per subscriber.
    let props = p.properties_len();
    begin(out, first, 2 + p.topic.len() + id_len + varint_len(props) + props + p.payload.len());
    put_field(out, p.topic.as_bytes());
    if has_id {
        out.put_u16(p.packet_id);
    }
    put_varint(out, props);
    if props > 0 {
        prop::put_message(out, p.properties, p.message_expiry_interval, p.topic_alias, p.subscription_ids);
    }
    out.put_slice(p.payload);
}
