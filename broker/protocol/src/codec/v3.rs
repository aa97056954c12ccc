//! MQTT 3.1.1 and 3.1 packet bodies (everything but CONNECT, which
//! `connect.rs` reads for every version).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::wire::{Reader, begin, put_field};
use super::{DecodeError, encode_publish};
use crate::packet::*;
use crate::topic;

/// The body of a packet of type `packet_type` (not CONNECT).
pub(crate) fn decode(packet_type: u8, first: u8, r: &mut Reader) -> Result<Packet, DecodeError> {
    Ok(match packet_type {
        2 => decode_connack(r)?,
        3 => Packet::Publish(decode_publish(r, first)?),
        4 => Packet::Puback(Ack::new(r.packet_id()?)),
        5 => Packet::Pubrec(Ack::new(r.packet_id()?)),
        6 => Packet::Pubrel(Ack::new(r.packet_id()?)),
        7 => Packet::Pubcomp(Ack::new(r.packet_id()?)),
        8 => Packet::Subscribe(decode_subscribe(r)?),
        9 => decode_suback(r)?,
        10 => Packet::Unsubscribe(decode_unsubscribe(r)?),
        11 => Packet::Unsuback(Unsuback::new(r.packet_id()?, Vec::new())),
        12 => Packet::Pingreq,
        13 => Packet::Pingresp,
        14 => Packet::Disconnect(Disconnect::default()),
        // The first byte's check has refused the reserved types 0 and 15.
        _ => return Err(DecodeError::ReservedPacketType(packet_type)),
    })
}

fn decode_connack(r: &mut Reader) -> Result<Packet, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnackFlags(flags));
    }
    let code = r.u8()?;
    let code = ConnectReturnCode::from_v3(code).ok_or(DecodeError::InvalidConnackCode(code))?;
    Ok(Packet::Connack(Box::new(Connack::new(flags & 0x01 != 0, code))))
}

/// `first` has passed the first byte's check, so `QoS` is 0..=2 and DUP is
/// consistent with it.
fn decode_publish(r: &mut Reader, first: u8) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0b11).ok_or(DecodeError::InvalidPublishQos)?;
    let topic: Arc<str> = Arc::from(r.name()?);
    if !topic::is_valid_name(&topic) {
        return Err(DecodeError::InvalidTopicName);
    }
    // QoS 0 carries no packet identifier: the payload starts right here.
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { r.packet_id()? };
    let mut p = Publish::new(topic, r.rest(), qos, first & 0b0001 != 0, packet_id);
    p.dup = first & 0b1000 != 0;
    Ok(p)
}

fn decode_subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.filter()?;
        // The upper six bits are reserved [MQTT-3.8.3-4]: checking the whole
        // byte against 0..=2 covers both rules.
        let requested = r.u8()?;
        let qos = QoS::from_u8(requested).ok_or(DecodeError::InvalidRequestedQos(requested))?;
        filters.push(SubscribeFilter::new(filter, qos));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe::new(packet_id, filters))
}

/// An empty SUBACK is accepted: it is only ever decoded by test clients,
/// and no normative statement forbids it on its own.
fn decode_suback(r: &mut Reader) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut codes = Vec::new();
    while !r.is_empty() {
        let code = r.u8()?;
        codes.push(match code {
            0x80 => SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR),
            _ => SubackCode::Granted(QoS::from_u8(code).ok_or(DecodeError::InvalidSubackCode(code))?),
        });
    }
    Ok(Packet::Suback(Suback::new(packet_id, codes)))
}

fn decode_unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.filter()?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe::new(packet_id, filters))
}

/// Appends the 3.1.1 encoding of `packet`: MQTT 5 fields are not written.
pub(crate) fn encode(packet: &Packet, out: &mut BytesMut) {
    match packet {
        Packet::Connect(c) => super::connect::encode(c, out),
        Packet::Connack(c) => {
            begin(out, 0x20, 2);
            out.put_u8(u8::from(c.session_present));
            out.put_u8(c.code.v3_code());
        }
        Packet::Publish(p) => encode_publish(&p.topic, &p.payload, p.qos, p.retain, p.dup, p.packet_id, out),
        Packet::Puback(a) => encode_ack(out, 0x40, a.packet_id),
        Packet::Pubrec(a) => encode_ack(out, 0x50, a.packet_id),
        Packet::Pubrel(a) => encode_ack(out, 0x62, a.packet_id),
        Packet::Pubcomp(a) => encode_ack(out, 0x70, a.packet_id),
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
                    SubackCode::Failure(_) => 0x80,
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
        Packet::Unsuback(u) => encode_ack(out, 0xB0, u.packet_id),
        Packet::Pingreq => begin(out, 0xC0, 0),
        Packet::Pingresp => begin(out, 0xD0, 0),
        Packet::Disconnect(_) => begin(out, 0xE0, 0),
        // 3.1.1 has no AUTH: nothing can be written that a 3.1.1 peer reads.
        Packet::Auth(_) => debug_assert!(false, "AUTH encoded for a 3.1.1 connection"),
    }
}

fn encode_ack(out: &mut BytesMut, first: u8, packet_id: u16) {
    begin(out, first, 2);
    out.put_u16(packet_id);
}
