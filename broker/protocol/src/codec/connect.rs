//! CONNECT, for every protocol version: the packet names its own version,
//! so it is decoded before the connection knows which one it speaks.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::DecodeError;
use super::properties::{self as prop, Carrier, Props, Value};
use super::wire::{Reader, begin, put_field};
use crate::packet::*;
use crate::topic;

pub(crate) fn decode(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    // Stop here on a wrong level: another revision may lay out the rest
    // differently, and the server owes it a CONNACK 0x01 whatever follows.
    let protocol = match (name.as_ref(), level) {
        (b"MQTT", 4) => Protocol::V311,
        (b"MQTT", 5) => Protocol::V5,
        (b"MQIsdp", 3) => Protocol::V31,
        (b"MQTT" | b"MQIsdp", level) => return Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let v5 = protocol.is_v5();
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
    // MQTT 5 lets a password come alone (for tokens) [MQTT-3.1.2-18 in 5.0].
    if password_flag && !username_flag && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 { connect_properties(r)? } else { ConnectProperties::default() };
    // Payload fields come in this fixed order, each only when flagged
    // [MQTT-3.1.3-1]; `decode` then refuses anything after them.
    let client_id = r.name()?.to_owned();
    let will = if will_flag {
        let (message, delay_interval) = if v5 { will_properties(r)? } else { (None, 0) };
        let topic: Arc<str> = Arc::from(r.name()?);
        if !topic::is_valid_name(&topic) {
            return Err(DecodeError::InvalidWillTopic);
        }
        let payload = r.binary()?;
        Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties: message, delay_interval })
    } else {
        None
    };
    let username = if username_flag { Some(r.name()?.to_owned()) } else { None };
    let password = if password_flag { Some(r.binary()?) } else { None };
    Ok(Connect { protocol, clean_session, keep_alive, client_id, will, username, password, properties })
}

fn connect_properties(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let packet = r.packet;
    let mut p = ConnectProperties::default();
    prop::read(r, Carrier::Connect, |id, value| {
        match (id, value) {
            (prop::SESSION_EXPIRY_INTERVAL, Value::U32(v)) => p.session_expiry_interval = Some(v),
            (prop::RECEIVE_MAXIMUM, Value::U16(0)) => return Err(prop::invalid(packet, id, "must not be 0")),
            (prop::RECEIVE_MAXIMUM, Value::U16(v)) => p.receive_maximum = Some(v),
            (prop::MAXIMUM_PACKET_SIZE, Value::U32(0)) => return Err(prop::invalid(packet, id, "must not be 0")),
            (prop::MAXIMUM_PACKET_SIZE, Value::U32(v)) => p.maximum_packet_size = Some(v),
            (prop::TOPIC_ALIAS_MAXIMUM, Value::U16(v)) => p.topic_alias_maximum = Some(v),
            (prop::REQUEST_RESPONSE_INFORMATION, Value::Byte(v)) => {
                p.request_response_information = Some(prop::flag(packet, id, v)?);
            }
            (prop::REQUEST_PROBLEM_INFORMATION, Value::Byte(v)) => {
                p.request_problem_information = Some(prop::flag(packet, id, v)?);
            }
            (prop::USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (prop::AUTHENTICATION_METHOD, Value::Str(v)) => p.authentication_method = Some(v),
            (prop::AUTHENTICATION_DATA, Value::Bin(v)) => p.authentication_data = Some(v),
            _ => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    // Data belongs to a method [MQTT-3.1.2-... "Protocol Error to include
    // Authentication Data if there is no Authentication Method"].
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(p)
}

/// `properties::read` only hands over identifiers the carrier allows, with
/// the value type of their identifier; this is the arm a decoder's match
/// needs for the combinations that cannot happen.
pub(crate) fn unreachable_value(packet: &'static str, id: u8) -> Result<(), DecodeError> {
    Err(DecodeError::PropertyNotAllowed { packet, id })
}

fn will_properties(r: &mut Reader) -> Result<(Option<Arc<MessageProperties>>, u32), DecodeError> {
    let packet = r.packet;
    let mut p = MessageProperties::default();
    let mut delay = 0;
    prop::read(r, Carrier::Will, |id, value| {
        match prop::message_property(packet, &mut p, id, value)? {
            None => {}
            Some((prop::WILL_DELAY_INTERVAL, Value::U32(v))) => delay = v,
            Some((id, _)) => unreachable_value(packet, id)?,
        }
        Ok(())
    })?;
    Ok(((!p.is_empty()).then(|| Arc::new(p)), delay))
}

pub(crate) fn encode(c: &Connect, out: &mut BytesMut) {
    let name = c.protocol.name();
    let v5 = c.protocol.is_v5();
    let mut flags = u8::from(c.clean_session) << 1;
    let mut len = 2 + name.len() + 4 + 2 + c.client_id.len();
    let props = v5.then(|| {
        let p = &c.properties;
        let mut props = Props::default();
        props.u32(prop::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
        props.u16(prop::RECEIVE_MAXIMUM, p.receive_maximum);
        props.u32(prop::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
        props.u16(prop::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
        props.flag(prop::REQUEST_RESPONSE_INFORMATION, p.request_response_information);
        props.flag(prop::REQUEST_PROBLEM_INFORMATION, p.request_problem_information);
        props.user(&p.user_properties);
        props.string(prop::AUTHENTICATION_METHOD, p.authentication_method.as_deref());
        props.binary(prop::AUTHENTICATION_DATA, p.authentication_data.as_deref());
        props
    });
    len += props.as_ref().map_or(0, Props::wire_len);
    let mut will_props = None;
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
        len += 4 + w.topic.len() + w.payload.len();
        if v5 {
            let mut props = Props::default();
            props.u32(prop::WILL_DELAY_INTERVAL, (w.delay_interval != 0).then_some(w.delay_interval));
            if let Some(m) = &w.properties {
                props.message(m, None);
            }
            len += props.wire_len();
            will_props = Some(props);
        }
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
    if let Some(props) = &props {
        props.put(out);
    }
    put_field(out, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if let Some(props) = &will_props {
            props.put(out);
        }
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

/// The protocol a CONNECT at the front of `buf` announces, read from its
/// first bytes without decoding it: so that a malformed MQTT 5 CONNECT can
/// be refused with an MQTT 5 CONNACK. `None` when `buf` does not start with
/// a CONNECT naming a known revision (or too little of it has arrived).
pub fn connect_protocol(buf: &[u8]) -> Option<Protocol> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    let len_bytes = buf.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let rest = buf.get(1 + len_bytes..)?;
    match rest {
        [0, 4, b'M', b'Q', b'T', b'T', 4, ..] => Some(Protocol::V311),
        [0, 4, b'M', b'Q', b'T', b'T', 5, ..] => Some(Protocol::V5),
        [0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, ..] => Some(Protocol::V31),
        _ => None,
    }
}
