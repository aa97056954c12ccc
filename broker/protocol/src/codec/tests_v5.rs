//! The MQTT 5 codec, rule by rule: properties, reason codes, subscription
//! options, and the short forms the standard allows.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError as E;
use super::wire::{begin, put_varint};
use super::*;

const MAX: usize = MAX_REMAINING_LENGTH + 5;
const V5: Protocol = Protocol::V5;

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    begin(&mut out, first, body.len());
    out.put_slice(body);
    out.to_vec()
}

fn field(p: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(p.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(p);
    v
}

/// A property list: its length, then `props`.
fn props(props: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, props.len());
    out.put_slice(props);
    out.to_vec()
}

/// An MQTT 5 CONNECT: flags, CONNECT properties, then the payload bytes.
fn connect5(flags: u8, properties: &[u8], payload: &[u8]) -> Vec<u8> {
    frame(0x10, &[&field(b"MQTT")[..], &[5, flags, 0, 30], &props(properties), payload].concat())
}

fn dec(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), MAX, V5)
}

fn refused(bytes: &[u8], expected: DecodeError) {
    assert_eq!(dec(bytes), Err(expected), "{bytes:02x?}");
}

fn enc(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, V5, &mut out);
    out.to_vec()
}

fn round_trip(p: Packet) {
    let mut buf = BytesMut::from(enc(&p).as_slice());
    assert_eq!(decode(&mut buf, MAX, V5), Ok(Some(p)));
    assert!(buf.is_empty());
}

fn user() -> UserProperties {
    vec![("k".into(), "v".into()), ("k".into(), "second".into()), ("\u{e9}".into(), String::new())]
}

fn message_properties() -> MessageProperties {
    MessageProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01id")),
        user_properties: user(),
    }
}

fn full_connect() -> Connect {
    let mut will = Will::new("last/will", Bytes::from_static(b"bye"), QoS::AtLeastOnce, true);
    will.properties = Some(Arc::new(message_properties()));
    will.delay_interval = 30;
    Connect {
        protocol: V5,
        clean_session: true,
        keep_alive: 10,
        client_id: "c5".into(),
        will: Some(will),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"pw")),
        properties: ConnectProperties {
            session_expiry_interval: Some(u32::MAX),
            receive_maximum: Some(20),
            maximum_packet_size: Some(1 << 20),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: user(),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"client-first")),
        },
    }
}

fn full_connack() -> Connack {
    Connack {
        session_present: false,
        code: ConnectReturnCode::Accepted,
        properties: ConnackProperties {
            session_expiry_interval: Some(60),
            receive_maximum: Some(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(4096),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(5),
            reason_string: Some("welcome".into()),
            user_properties: user(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(false),
            server_keep_alive: Some(20),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"server-first")),
        },
    }
}

fn samples() -> Vec<Packet> {
    let mut rich = Publish::new("a/b", Bytes::from_static(b"payload"), QoS::ExactlyOnce, true, 7);
    rich.dup = true;
    rich.properties = Some(Arc::new(message_properties()));
    rich.topic_alias = Some(3);
    rich.subscription_ids = vec![1, 268_435_455, 128];
    let mut aliased = Publish::new("", Bytes::new(), QoS::AtMostOnce, false, 0);
    aliased.topic_alias = Some(3);
    let mut ack = Ack::with_reason(9, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    ack.reason_string = Some("nobody".into());
    ack.user_properties = user();
    let mut subscribe = Subscribe::new(
        11,
        vec![
            SubscribeFilter::new("a/+", QoS::AtLeastOnce),
            SubscribeFilter {
                filter: "b/#".into(),
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::Never,
            },
            SubscribeFilter {
                retain_handling: RetainHandling::OnNewSubscription,
                ..SubscribeFilter::new("$share/g/c", QoS::AtMostOnce)
            },
        ],
    );
    subscribe.subscription_id = Some(42);
    subscribe.user_properties = user();
    let mut suback = Suback::new(
        11,
        vec![
            SubackCode::Granted(QoS::AtLeastOnce),
            SubackCode::Failure(ReasonCode::NOT_AUTHORIZED),
            SubackCode::Failure(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED),
        ],
    );
    suback.reason_string = Some("partly".into());
    let mut unsubscribe = Unsubscribe::new(12, vec!["a/+".into()]);
    unsubscribe.user_properties = user();
    let unsuback = Unsuback::new(12, vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]);
    let disconnect = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        session_expiry_interval: Some(0),
        reason_string: Some("bye".into()),
        server_reference: None,
        user_properties: user(),
    };
    let auth = Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        method: Some("SCRAM-SHA-1".into()),
        data: Some(Bytes::from_static(b"\x00step")),
        reason_string: None,
        user_properties: Vec::new(),
    };
    let mut password_only = full_connect();
    password_only.username = None;
    password_only.will = None;
    password_only.properties = ConnectProperties::default();
    vec![
        Packet::Connect(Box::new(full_connect())),
        Packet::Connect(Box::new(password_only)),
        Packet::Connack(Box::new(full_connack())),
        Packet::Connack(Box::new(Connack::new(false, ConnectReturnCode::QuotaExceeded))),
        Packet::Publish(Publish::new("t", Bytes::from_static(b"x"), QoS::AtMostOnce, false, 0)),
        Packet::Publish(rich),
        Packet::Publish(aliased),
        Packet::Puback(Ack::new(1)),
        Packet::Puback(ack.clone()),
        Packet::Pubrec(Ack::with_reason(2, ReasonCode::QUOTA_EXCEEDED)),
        Packet::Pubrel(Ack::with_reason(3, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)),
        Packet::Pubcomp(Ack { reason: ReasonCode::SUCCESS, ..ack }),
        Packet::Subscribe(subscribe),
        Packet::Suback(suback),
        Packet::Unsubscribe(unsubscribe),
        Packet::Unsuback(unsuback),
        Packet::Pingreq,
        Packet::Pingresp,
        Packet::Disconnect(Disconnect::default()),
        Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER)),
        Packet::Disconnect(disconnect),
        Packet::Auth(Auth::default()),
        Packet::Auth(auth),
    ]
}

#[test]
fn all_packets_round_trip() {
    let samples = samples();
    let names: std::collections::HashSet<_> = samples.iter().map(Packet::name).collect();
    assert_eq!(names.len(), 15, "every packet type, AUTH included, is covered");
    for p in samples {
        round_trip(p);
    }
}

#[test]
fn known_bytes() {
    // What `mosquitto_pub -V mqttv5 -i c` sends first: clean start, keep
    // alive 60, no properties.
    let bytes = [0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'c'];
    let Ok(Some(Packet::Connect(c))) = dec(&bytes) else { panic!("not decoded") };
    assert_eq!((c.protocol, c.clean_session, c.keep_alive, &*c.client_id), (V5, true, 60, "c"));
    assert_eq!(c.properties, ConnectProperties::default());
    assert_eq!(enc(&Packet::Connect(c)), bytes);
    // The shortest forms of the acknowledgements, DISCONNECT and AUTH.
    assert_eq!(enc(&Packet::Puback(Ack::new(1))), [0x40, 2, 0, 1]);
    assert_eq!(enc(&Packet::Pubrec(Ack::with_reason(1, ReasonCode(0x10)))), [0x50, 3, 0, 1, 0x10]);
    assert_eq!(enc(&Packet::Disconnect(Disconnect::default())), [0xE0, 0]);
    assert_eq!(enc(&Packet::Disconnect(Disconnect::new(ReasonCode(0x8E)))), [0xE0, 1, 0x8E]);
    assert_eq!(enc(&Packet::Auth(Auth::default())), [0xF0, 0]);
    // CONNACK always has its property length, 0 here.
    let connack = Packet::Connack(Box::new(Connack::new(true, ConnectReturnCode::NotAuthorized)));
    assert_eq!(enc(&connack), [0x20, 3, 1, 0x87, 0]);
    // A QoS 1 PUBLISH with a content type.
    let mut p = Publish::new("t", Bytes::from_static(b"hi"), QoS::AtLeastOnce, false, 5);
    p.properties = Some(Arc::new(MessageProperties { content_type: Some("a".into()), ..Default::default() }));
    assert_eq!(enc(&Packet::Publish(p)), [0x32, 12, 0, 1, b't', 0, 5, 4, 0x03, 0, 1, b'a', b'h', b'i']);
}

#[test]
fn acknowledgement_short_forms_decode() {
    assert_eq!(dec(&[0x40, 2, 0, 1]), Ok(Some(Packet::Puback(Ack::new(1)))));
    let with_reason = Packet::Puback(Ack::with_reason(1, ReasonCode::NO_MATCHING_SUBSCRIBERS));
    assert_eq!(dec(&[0x40, 3, 0, 1, 0x10]), Ok(Some(with_reason.clone())));
    assert_eq!(dec(&[0x40, 4, 0, 1, 0x10, 0]), Ok(Some(with_reason)));
    assert_eq!(dec(&[0xE0, 0]), Ok(Some(Packet::Disconnect(Disconnect::default()))));
    assert_eq!(dec(&[0xE0, 1, 0x04]), Ok(Some(Packet::Disconnect(Disconnect::new(ReasonCode(4))))));
    assert_eq!(dec(&[0xF0, 0]), Ok(Some(Packet::Auth(Auth::default()))));
    // Still no packet identifier 0, and at least the identifier.
    refused(&[0x40, 2, 0, 0], E::ZeroPacketId("PUBACK"));
    refused(&[0x40, 1, 0], E::Truncated { packet: "PUBACK" });
    // PINGREQ and PINGRESP keep their fixed size.
    assert!(matches!(dec(&[0xC0, 1, 0]), Err(E::InvalidRemainingLength { .. })));
}

#[test]
fn reason_codes_must_belong_to_the_packet() {
    let bad = |packet, code| E::InvalidReasonCode { packet, code };
    refused(&[0x40, 3, 0, 1, 0x92], bad("PUBACK", 0x92));
    refused(&[0x62, 3, 0, 1, 0x10], bad("PUBREL", 0x10));
    refused(&[0xE0, 1, 0x01], bad("DISCONNECT", 0x01));
    refused(&[0xF0, 1, 0x80], bad("AUTH", 0x80));
    refused(&[0x90, 4, 0, 1, 0, 0x03], bad("SUBACK", 0x03));
    refused(&[0xB0, 4, 0, 1, 0, 0x01], bad("UNSUBACK", 0x01));
    refused(&[0x20, 3, 0, 0x01, 0], E::InvalidConnackCode(0x01));
}

#[test]
fn property_lists_are_checked() {
    let payload = field(b"id");
    // Session expiry twice.
    let twice = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    refused(&connect5(0x02, &twice, &payload), E::DuplicateProperty { packet: "CONNECT", id: 0x11 });
    // User properties may repeat.
    let users = [&[0x26][..], &field(b"a"), &field(b"1"), &[0x26], &field(b"a"), &field(b"2")].concat();
    let Ok(Some(Packet::Connect(c))) = dec(&connect5(0x02, &users, &payload)) else { panic!() };
    assert_eq!(c.properties.user_properties, [("a".to_string(), "1".to_string()), ("a".into(), "2".into())]);
    // A topic alias has no place in CONNECT; 0x7F is no property at all.
    refused(&connect5(0x02, &[0x23, 0, 1], &payload), E::PropertyNotAllowed { packet: "CONNECT", id: 0x23 });
    refused(&connect5(0x02, &[0x7F, 0], &payload), E::UnknownProperty { packet: "CONNECT", id: 0x7F });
    // Values the standard forbids.
    let invalid = |id, why| E::InvalidPropertyValue { packet: "CONNECT", id, why };
    refused(&connect5(0x02, &[0x21, 0, 0], &payload), invalid(0x21, "must not be 0"));
    refused(&connect5(0x02, &[0x27, 0, 0, 0, 0], &payload), invalid(0x27, "must not be 0"));
    refused(&connect5(0x02, &[0x17, 2], &payload), invalid(0x17, "must be 0 or 1"));
    refused(&connect5(0x02, &[0x16, 0, 1, 9], &payload), E::AuthDataWithoutMethod);
    // A value cut short by the property length, and a property length
    // running past the packet.
    refused(&connect5(0x02, &[0x11, 0, 0], &payload), E::Truncated { packet: "CONNECT" });
    let long = frame(0x10, &[&field(b"MQTT")[..], &[5, 2, 0, 30, 9, 0x11, 0, 0, 0, 1]].concat());
    refused(&long, E::Truncated { packet: "CONNECT" });
    // A five-byte property length.
    let varint = frame(0x10, &[&field(b"MQTT")[..], &[5, 2, 0, 30, 0x80, 0x80, 0x80, 0x80, 0x01]].concat());
    refused(&varint, E::MalformedVarint { packet: "CONNECT" });
}

#[test]
fn publish_properties() {
    let publish = |properties: &[u8]| frame(0x30, &[&field(b"t")[..], &props(properties), b"x"].concat());
    // Subscription identifiers may repeat in a PUBLISH, not in a SUBSCRIBE.
    let Ok(Some(Packet::Publish(p))) = dec(&publish(&[0x0B, 1, 0x0B, 0x80, 0x01])) else { panic!() };
    assert_eq!(p.subscription_ids, [1, 128]);
    let subscribe = frame(0x82, &[&[0, 1][..], &props(&[0x0B, 1, 0x0B, 2]), &field(b"a"), &[0]].concat());
    refused(&subscribe, E::DuplicateProperty { packet: "SUBSCRIBE", id: 0x0B });
    let invalid = |id, why| E::InvalidPropertyValue { packet: "PUBLISH", id, why };
    refused(&publish(&[0x0B, 0]), invalid(0x0B, "must not be 0"));
    refused(&publish(&[0x23, 0, 0]), invalid(0x23, "must not be 0"));
    refused(&publish(&[0x01, 2]), invalid(0x01, "must be 0 or 1"));
    let wildcard_reply = [&[0x08][..], &field(b"reply/#")].concat();
    refused(&publish(&wildcard_reply), invalid(0x08, "must be a topic name without wildcards"));
    refused(&publish(&[0x11, 0, 0, 0, 1]), E::PropertyNotAllowed { packet: "PUBLISH", id: 0x11 });
    // No properties: `properties` stays `None`, so a 3.1.1 subscriber's
    // copy costs nothing.
    let Ok(Some(Packet::Publish(p))) = dec(&publish(&[])) else { panic!() };
    assert_eq!((p.properties, p.payload.as_ref()), (None, &b"x"[..]));
}

#[test]
fn empty_topic_needs_an_alias() {
    let bare = frame(0x30, &[&field(b"")[..], &props(&[]), b"x"].concat());
    refused(&bare, E::InvalidTopicName);
    let aliased = frame(0x30, &[&field(b"")[..], &props(&[0x23, 0, 4]), b"x"].concat());
    let Ok(Some(Packet::Publish(p))) = dec(&aliased) else { panic!() };
    assert_eq!((&*p.topic, p.topic_alias), ("", Some(4)));
    let wildcard = frame(0x30, &[&field(b"a/+")[..], &props(&[0x23, 0, 4])].concat());
    refused(&wildcard, E::InvalidTopicName);
}

#[test]
fn subscription_options() {
    let subscribe =
        |filter: &[u8], options: u8| frame(0x82, &[&[0, 1][..], &props(&[]), &field(filter), &[options]].concat());
    let Ok(Some(Packet::Subscribe(s))) = dec(&subscribe(b"a", 0b0010_1110)) else { panic!() };
    let f = &s.filters[0];
    assert_eq!((f.qos, f.no_local, f.retain_as_published), (QoS::ExactlyOnce, true, true));
    assert_eq!(f.retain_handling, RetainHandling::Never);
    refused(&subscribe(b"a", 0b0011_0000), E::InvalidSubscriptionOptions(0b0011_0000));
    refused(&subscribe(b"a", 0x40), E::InvalidSubscriptionOptions(0x40));
    refused(&subscribe(b"a", 3), E::InvalidRequestedQos(3));
    refused(&subscribe(b"$share/g/a", 0b0100), E::SharedSubscriptionNoLocal);
    assert!(dec(&subscribe(b"$share/g/a", 0b1000)).unwrap().is_some());
}

#[test]
fn connect_differences_from_3_1_1() {
    // A password without a user name is allowed.
    let Ok(Some(Packet::Connect(c))) = dec(&connect5(0x42, &[], &[field(b"id"), field(b"token")].concat())) else {
        panic!()
    };
    assert_eq!((c.username, c.password.as_deref()), (None, Some(&b"token"[..])));
    // Will properties come before the will topic.
    let will =
        [&field(b"id")[..], &props(&[0x18, 0, 0, 0, 9, 0x03, 0, 1, b'j']), &field(b"w/t"), &field(b"m")].concat();
    let Ok(Some(Packet::Connect(c))) = dec(&connect5(0x06, &[], &will)) else { panic!() };
    let w = c.will.unwrap();
    assert_eq!((w.delay_interval, &*w.topic), (9, "w/t"));
    assert_eq!(w.properties.unwrap().content_type.as_deref(), Some("j"));
    // A will property list may not hold CONNECT's properties.
    let bad = [&field(b"id")[..], &props(&[0x11, 0, 0, 0, 1]), &field(b"w"), &field(b"m")].concat();
    refused(&connect5(0x06, &[], &bad), E::PropertyNotAllowed { packet: "CONNECT", id: 0x11 });
    // Reserved flag, as in 3.1.1.
    refused(&connect5(0x03, &[], &field(b"id")), E::ConnectReservedFlag);
}

#[test]
fn auth_is_a_packet_in_5_only() {
    assert_eq!(decode(&mut BytesMut::from(&[0xF0, 0][..]), MAX, Protocol::V311), Err(E::ReservedPacketType(15)));
    assert!(dec(&[0xF0, 0]).unwrap().is_some());
    assert!(matches!(dec(&[0xF1, 0]), Err(E::InvalidFlags { .. })));
    let data_only = frame(0xF0, &[&[0x18][..], &props(&[0x16, 0, 1, 7])].concat());
    refused(&data_only, E::AuthDataWithoutMethod);
}

#[test]
fn errors_name_their_reason_code() {
    assert_eq!(E::PacketTooLarge { size: 10, max: 5 }.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    assert_eq!(E::DuplicateProperty { packet: "CONNECT", id: 0x11 }.reason_code(), ReasonCode::PROTOCOL_ERROR);
    assert_eq!(E::MalformedVarint { packet: "CONNECT" }.reason_code(), ReasonCode::MALFORMED_PACKET);
    assert_eq!(E::Truncated { packet: "PUBLISH" }.reason_code(), ReasonCode::MALFORMED_PACKET);
    assert_eq!(E::InvalidTopicName.reason_code(), ReasonCode::TOPIC_NAME_INVALID);
    assert_eq!(E::UnsupportedProtocolLevel(6).reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
}

#[test]
fn connect_protocol_is_read_from_the_first_bytes() {
    let v5 = connect5(0x02, &[], &field(b"id"));
    assert_eq!(connect_protocol(&v5), Some(V5));
    assert_eq!(connect_protocol(&v5[..9]), Some(V5));
    assert_eq!(connect_protocol(&v5[..8]), None, "the level has not arrived");
    let mut v3 = BytesMut::new();
    let c = Connect { protocol: Protocol::V311, ..full_connect() };
    encode(&Packet::Connect(Box::new(c)), Protocol::V311, &mut v3);
    assert_eq!(connect_protocol(&v3), Some(Protocol::V311));
    assert_eq!(connect_protocol(&[0x30, 0]), None);
    assert_eq!(connect_protocol(b"GET / HTTP/1.1\r\n"), None);
}

#[test]
fn encode_publish_v5_matches_encode_and_its_size() {
    for packet in samples() {
        if let Packet::Publish(p) = &packet {
            let parts = PublishV5::from(p);
            let mut out = BytesMut::new();
            encode_publish_v5(&parts, &mut out);
            assert_eq!(out.to_vec(), enc(&packet));
            assert_eq!(parts.size(), out.len());
        }
    }
}

#[test]
fn forwarded_expiry_replaces_the_publishers() {
    let properties = message_properties();
    let parts = PublishV5 {
        topic: "t",
        payload: b"",
        qos: QoS::AtMostOnce,
        retain: false,
        dup: true,
        packet_id: 0,
        properties: Some(&properties),
        message_expiry_interval: Some(17),
        topic_alias: None,
        subscription_ids: &[5],
    };
    let mut out = BytesMut::new();
    encode_publish_v5(&parts, &mut out);
    assert_eq!(parts.size(), out.len());
    let Ok(Some(Packet::Publish(p))) = dec(&out) else { panic!() };
    let got = p.properties.unwrap();
    assert_eq!(got.message_expiry_interval, Some(17));
    assert_eq!(got.content_type, properties.content_type);
    assert_eq!((p.dup, p.subscription_ids), (false, vec![5]));
    // An expiry without other properties.
    let bare = PublishV5 { properties: None, subscription_ids: &[], ..parts };
    let mut out = BytesMut::new();
    encode_publish_v5(&bare, &mut out);
    assert_eq!(out.to_vec(), [0x30, 9, 0, 1, b't', 5, 0x02, 0, 0, 0, 17]);
}

#[test]
fn connack_codes_in_both_versions() {
    for v in 0..=5 {
        let code = ConnectReturnCode::from_v3(v).unwrap();
        assert_eq!(code.v3_code(), v);
        assert_eq!(ConnectReturnCode::from_v5(code.v5_code()), Some(code));
    }
    assert_eq!(ConnectReturnCode::from_v3(6), None);
    assert_eq!(ConnectReturnCode::IdentifierRejected.v5_code(), 0x85);
    assert_eq!(ConnectReturnCode::from_v5(0x95), Some(ConnectReturnCode::PacketTooLarge));
    assert_eq!(ConnectReturnCode::from_v5(0x8E), None, "session taken over is a DISCONNECT reason");
}

#[test]
fn never_panics_on_random_truncated_or_mutated_input() {
    let valid: Vec<Vec<u8>> = samples().iter().map(enc).collect();
    super::test_mutations::never_panics(&valid, V5, 0x2545_F491_4F6C_DD1Du64);
}
