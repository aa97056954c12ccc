//! The 3.1.1 and 3.1 codec, rule by rule.

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError as E;
use super::wire::{begin, put_varint, varint_len};
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
    decode(&mut BytesMut::from(bytes), MAX, Protocol::V311)
}

fn refused(bytes: &[u8], expected: DecodeError) {
    assert_eq!(dec(bytes), Err(expected), "{bytes:02x?}");
}

fn enc(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, Protocol::V311, &mut out);
    out.to_vec()
}

fn round_trip(p: Packet) {
    let mut buf = BytesMut::from(enc(&p).as_slice());
    assert_eq!(decode(&mut buf, MAX, Protocol::V311), Ok(Some(p)));
    assert!(buf.is_empty());
}

fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &[u8]) -> Publish {
    Publish::new(topic, Bytes::copy_from_slice(payload), qos, false, packet_id)
}

fn full_connect(protocol: Protocol) -> Connect {
    Connect {
        protocol,
        clean_session: false,
        keep_alive: 65535,
        client_id: "client-1".into(),
        will: Some(Will::new("last/will", Bytes::from_static(b"bye\0\xff"), QoS::ExactlyOnce, true)),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"\x00\x01secret")),
        properties: ConnectProperties::default(),
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
        properties: ConnectProperties::default(),
    };
    let user_only = Connect { username: Some("u".into()), ..minimal.clone() };
    let sub = |filter: &str, qos| SubscribeFilter::new(filter, qos);
    let connack = |session_present, code| Packet::Connack(Box::new(Connack::new(session_present, code)));
    let flagged =
        Publish { dup: true, retain: true, ..publish("\u{e9}/\u{1F600}", QoS::ExactlyOnce, 65535, &[0; 300]) };
    vec![
        Packet::Connect(Box::new(minimal)),
        Packet::Connect(Box::new(user_only)),
        Packet::Connect(Box::new(full_connect(Protocol::V311))),
        Packet::Connect(Box::new(full_connect(Protocol::V31))),
        connack(true, ConnectReturnCode::Accepted),
        connack(false, ConnectReturnCode::NotAuthorized),
        Packet::Publish(publish("a/b", QoS::AtMostOnce, 0, b"hello")),
        Packet::Publish(Publish { retain: true, ..publish("a/b", QoS::AtMostOnce, 0, b"") }),
        Packet::Publish(Publish { dup: true, ..publish("/", QoS::AtLeastOnce, 1, b"x") }),
        Packet::Publish(flagged),
        Packet::Puback(Ack::new(1)),
        Packet::Pubrec(Ack::new(2)),
        Packet::Pubrel(Ack::new(3)),
        Packet::Pubcomp(Ack::new(65535)),
        Packet::Subscribe(Subscribe::new(10, vec![sub("a/+/c", QoS::AtMostOnce), sub("#", QoS::ExactlyOnce)])),
        Packet::Suback(Suback::new(
            10,
            vec![
                SubackCode::Granted(QoS::AtMostOnce),
                SubackCode::Granted(QoS::AtLeastOnce),
                SubackCode::Granted(QoS::ExactlyOnce),
                SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR),
            ],
        )),
        Packet::Unsubscribe(Unsubscribe::new(11, vec!["a/#".into(), "+".into()])),
        Packet::Unsuback(Unsuback::new(11, Vec::new())),
        Packet::Pingreq,
        Packet::Pingresp,
        Packet::Disconnect(Disconnect::default()),
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
    assert_eq!(enc(&Packet::Disconnect(Disconnect::default())), [0xE0, 0]);
    assert_eq!(enc(&Packet::Pubrel(Ack::new(0x0102))), [0x62, 2, 1, 2]);
    assert_eq!(enc(&Packet::Unsuback(Unsuback::new(7, Vec::new()))), [0xB0, 2, 0, 7]);
    let code = ConnectReturnCode::BadUsernameOrPassword;
    let connack = Packet::Connack(Box::new(Connack::new(true, code)));
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
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, MAX, Protocol::V311) else {
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
        put_varint(&mut out, len);
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
    assert_eq!(dec(&[0x40, 0x82, 0x80, 0x00, 0, 1]), Ok(Some(Packet::Puback(Ack::new(1)))));
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
    let e = decode(&mut BytesMut::from(&[0x30, 0xE8, 0x07][..]), 500, Protocol::V311);
    assert_eq!(e, Err(E::PacketTooLarge { size: 1003, max: 500 }));
    // Exactly at the limit is accepted, one byte over is not.
    let p = enc(&Packet::Publish(publish("t", QoS::AtMostOnce, 0, b"abc")));
    assert!(decode(&mut BytesMut::from(p.as_slice()), p.len(), Protocol::V311).unwrap().is_some());
    assert!(decode(&mut BytesMut::from(p.as_slice()), p.len() - 1, Protocol::V311).is_err());
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
    for (name, level) in [(&b"MQTT"[..], 3), (b"MQTT", 6), (b"MQIsdp", 4), (b"MQIsdp", 5), (b"MQTT", 0)] {
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
        encode(p, Protocol::V311, &mut buf);
    }
    for p in samples {
        assert_eq!(decode(&mut buf, MAX, Protocol::V311), Ok(Some(p)));
    }
    assert_eq!(decode(&mut buf, MAX, Protocol::V311), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn one_byte_at_a_time() {
    for p in samples() {
        let bytes = enc(&p);
        let mut buf = BytesMut::new();
        for (i, &b) in bytes.iter().enumerate() {
            buf.put_u8(b);
            let got = decode(&mut buf, MAX, Protocol::V311).unwrap();
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

#[test]
fn never_panics_on_random_truncated_or_mutated_input() {
    let valid: Vec<Vec<u8>> = samples().iter().map(enc).collect();
    super::test_mutations::never_panics(&valid, Protocol::V311, 0x9E37_79B9_7F4A_7C15u64);
}

#[test]
fn control_characters_are_refused_in_names() {
    for bad in ["a\u{1}b", "line\nbreak", "esc\u{1b}[31m", "del\u{7f}", "c1\u{85}"] {
        refused(&connect4(0, &[bad.as_bytes()]), E::ControlCharacter);
        refused(&connect4(0x80, &[b"id", bad.as_bytes()]), E::ControlCharacter);
        refused(&connect4(0x04, &[b"id", bad.as_bytes(), b"m"]), E::ControlCharacter);
        refused(&frame(0x30, &body(&[bad.as_bytes()], b"x")), E::ControlCharacter);
        refused(&frame(0x82, &[&[0, 1][..], &body(&[bad.as_bytes()], &[0])].concat()), E::ControlCharacter);
        refused(&frame(0xA2, &[&[0, 1][..], &fields(&[bad.as_bytes()])].concat()), E::ControlCharacter);
    }
    // Payloads and passwords are binary: anything goes.
    assert!(dec(&connect4(0xC0, &[b"id", b"user", b"\n\x01\x7f"])).unwrap().is_some());
    assert!(dec(&frame(0x30, &body(&[b"t"], b"\x01\n"))).unwrap().is_some());
    // Other non-ASCII text is fine.
    assert!(dec(&frame(0x30, &body(&["caf\u{e9}/\u{a0}nbsp".as_bytes()], b""))).unwrap().is_some());
}

#[test]
fn mqtt_5_fields_are_not_written_for_3_1_1() {
    let mut suback = Suback::new(3, vec![SubackCode::Failure(ReasonCode::NOT_AUTHORIZED)]);
    suback.reason_string = Some("no".into());
    assert_eq!(enc(&Packet::Suback(suback)), [0x90, 3, 0, 3, 0x80]);
    let unsuback = Unsuback::new(4, vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]);
    assert_eq!(enc(&Packet::Unsuback(unsuback)), [0xB0, 2, 0, 4]);
    let ack = Ack::with_reason(5, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(enc(&Packet::Puback(ack)), [0x40, 2, 0, 5]);
    let mut p = publish("t", QoS::AtMostOnce, 0, b"x");
    p.properties =
        Some(std::sync::Arc::new(MessageProperties { content_type: Some("a".into()), ..Default::default() }));
    assert_eq!(enc(&Packet::Publish(p)), [0x30, 4, 0, 1, b't', b'x']);
    let disconnect = Disconnect::new(ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(enc(&Packet::Disconnect(disconnect)), [0xE0, 0]);
    // A v5-only CONNACK reason falls back to its nearest 3.1.1 code.
    let connack = Connack::new(false, ConnectReturnCode::Banned);
    assert_eq!(enc(&Packet::Connack(Box::new(connack))), [0x20, 2, 0, 5]);
}
