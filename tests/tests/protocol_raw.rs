//! Byte-level tests: malformed input and protocol violations must close the
//! connection [MQTT-4.8.0-1], and well-formed packets get exactly the answer
//! the specification prescribes. Every test uses [`RawClient`] so that it can
//! send what a real client library never would and watch every packet.

use std::time::Duration;

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{
    Ack, Connack, Connect, ConnectReturnCode, Packet, Publish, Suback, SubackCode, Subscribe, SubscribeFilter,
    Unsuback, Unsubscribe,
};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A frame: first byte, minimal remaining length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len & 0x7F) as u8;
        len >>= 7;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed field.
fn field(data: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(data.len()).expect("short field").to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A CONNECT built by hand: protocol name, level, flags, keep alive 60, and
/// the given payload fields (each length-prefixed).
fn connect_bytes(name: &[u8], level: u8, flags: u8, payload: &[&[u8]]) -> Vec<u8> {
    let mut body = field(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    for p in payload {
        body.extend(field(p));
    }
    frame(0x10, &body)
}

/// A PUBLISH frame built by hand (so that the topic bytes can be invalid).
fn publish_bytes(first: u8, topic: &[u8], packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = packet_id {
        body.extend(id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(first, &body)
}

fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    })
}

fn subscribe(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        filters: filters.iter().map(|(f, q)| SubscribeFilter::new((*f).to_string(), *q)).collect(),
        subscription_id: None,
        user_properties: Vec::new(),
    })
}

fn accepted(session_present: bool) -> Packet {
    Packet::Connack(Box::new(Connack::new(session_present, ConnectReturnCode::Accepted)))
}

/// Connects, expects CONNACK accepted with no session present.
async fn connected(tb: &TestBroker, client_id: &str) -> RawClient {
    let (c, ack) = RawClient::handshake(tb.addr, client_id, true).await;
    assert_eq!(ack, accepted(false), "CONNACK for {client_id}");
    c
}

/// Subscribes and checks the SUBACK grants what was asked.
async fn subscribed(c: &mut RawClient, packet_id: u16, filter: &str, qos: QoS) {
    c.send(&subscribe(packet_id, &[(filter, qos)])).await;
    assert_eq!(
        c.recv().await,
        Some(Packet::Suback(Suback {
            packet_id,
            codes: vec![SubackCode::Granted(qos)],
            reason_string: None,
            user_properties: Vec::new(),
        })),
        "SUBACK for {filter}"
    );
}

/// The next packet, which must be a PUBLISH.
async fn expect_publish(c: &mut RawClient) -> Publish {
    match c.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

/// Reads exactly `n` bytes straight from the socket (for exact-byte checks;
/// only valid while `recv` has not been used on this client).
async fn read_exact(c: &mut RawClient, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(EVENT_TIMEOUT, c.stream.read_exact(&mut buf))
        .await
        .expect("bytes within the timeout")
        .expect("read");
    buf
}

/// A ping round trip: proves the connection is open and the broker has
/// handled everything sent before it (it answers in order).
async fn ping(c: &mut RawClient) {
    c.send(&Packet::Pingreq).await;
    assert_eq!(c.recv().await, Some(Packet::Pingresp));
}

/// A well-behaved client on the same broker still gets full service: it
/// connects, subscribes and receives its own QoS 1 message.
async fn assert_broker_serves_others(tb: &TestBroker) {
    let mut c = connected(tb, "well-behaved").await;
    subscribed(&mut c, 1, "healthy/#", QoS::AtLeastOnce).await;
    c.send(&publish("healthy/check", QoS::AtLeastOnce, 9, b"ok")).await;
    let mut got_ack = false;
    let mut got_msg = false;
    while !(got_ack && got_msg) {
        match c.recv().await {
            Some(Packet::Puback(Ack { packet_id: 9, .. })) => got_ack = true,
            Some(Packet::Publish(p)) => {
                assert_eq!(&*p.topic, "healthy/check");
                assert_eq!(p.payload.as_ref(), b"ok");
                c.send(&Packet::Puback(Ack::new(p.packet_id))).await;
                got_msg = true;
            }
            other => panic!("well-behaved client got {other:?}"),
        }
    }
    ping(&mut c).await;
}

/// Sends `bytes` on a fresh, already accepted connection and expects the
/// broker to close it without answering.
async fn violation_after_connect_closes(tb: &TestBroker, what: &str, bytes: &[u8]) {
    let mut c = connected(tb, &format!("violator-{}", what.replace(' ', "-"))).await;
    c.send_raw(bytes).await;
    match c.recv().await {
        None => {}
        Some(p) => panic!("{what}: expected the broker to close the connection, got {p:?}"),
    }
}

/// Sends `bytes` as the very first thing on a connection and expects the
/// broker to close it without any answer (in particular no CONNACK).
async fn first_bytes_close(tb: &TestBroker, what: &str, bytes: &[u8]) {
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(bytes).await;
    match c.recv().await {
        None => {}
        Some(p) => panic!("{what}: expected the broker to close the connection, got {p:?}"),
    }
}

// ---------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_0_1_first_packet_not_connect_closes() {
    let tb = TestBroker::start("").await;
    first_bytes_close(&tb, "PINGREQ first", &[0xC0, 0x00]).await;
    first_bytes_close(&tb, "PUBLISH first", &publish_bytes(0x30, b"a", None, b"x")).await;
    first_bytes_close(&tb, "SUBSCRIBE first", &frame(0x82, &[&[0, 1][..], &field(b"a"), &[0]].concat())).await;
    // The broker keeps serving everyone else.
    assert_broker_serves_others(&tb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_0_2_second_connect_closes() {
    let tb = TestBroker::start("").await;
    let mut c = connected(&tb, "twice").await;
    c.send(&Packet::Connect(Box::new(connect_packet("twice", true)))).await;
    c.expect_closed().await;
    assert_broker_serves_others(&tb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_1_bad_protocol_name_closes_without_connack() {
    let tb = TestBroker::start("").await;
    first_bytes_close(&tb, "name MQTX", &connect_bytes(b"MQTX", 4, 0x02, &[b"c"])).await;
    first_bytes_close(&tb, "name mqtt", &connect_bytes(b"mqtt", 4, 0x02, &[b"c"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_2_unsupported_level_gets_connack_1_then_close() {
    let tb = TestBroker::start("").await;
    // A level after MQTT 5, laid out as 5 is: whatever follows the level.
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[6, 0x02, 0, 60, 0]);
    body.extend(field(b"v6-client"));
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&frame(0x10, &body)).await;
    // Exactly 20 02 00 01.
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x01]);
    c.expect_closed().await;

    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&connect_bytes(b"MQTT", 3, 0x02, &[b"level3-as-mqtt"])).await;
    assert_eq!(
        c.recv().await,
        Some(Packet::Connack(Box::new(Connack::new(false, ConnectReturnCode::UnacceptableProtocolVersion))))
    );
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_mqisdp_level_3_is_accepted() {
    let tb = TestBroker::start("").await;
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&connect_bytes(b"MQIsdp", 3, 0x02, &[b"old-client"])).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x00]);
    ping(&mut c).await;
    subscribed(&mut c, 3, "v31/t", QoS::AtLeastOnce).await;
    tb.broker.publish("v31/t", "hello 3.1", QoS::AtLeastOnce, false).unwrap();
    let p = expect_publish(&mut c).await;
    assert_eq!(p.payload.as_ref(), b"hello 3.1");
    // MQTT 3.1 has no assigned identifiers: an empty one is refused with 2.
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&connect_bytes(b"MQIsdp", 3, 0x02, &[b""])).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x02]);
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_3_reserved_flag_closes_connection() {
    let tb = TestBroker::start("").await;
    first_bytes_close(&tb, "reserved flag", &connect_bytes(b"MQTT", 4, 0x03, &[b"c"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_14_will_qos_3_closes_connection() {
    let tb = TestBroker::start("").await;
    // Will flag + will QoS 3 + clean session.
    first_bytes_close(&tb, "will qos 3", &connect_bytes(b"MQTT", 4, 0x04 | 0x18 | 0x02, &[b"c", b"w/t", b"bye"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_11_will_flags_without_will_flag_close_connection() {
    let tb = TestBroker::start("").await;
    // [MQTT-3.1.2-13] will QoS 1 without the will flag.
    first_bytes_close(&tb, "will qos without will", &connect_bytes(b"MQTT", 4, 0x08 | 0x02, &[b"c"])).await;
    // [MQTT-3.1.2-15] will retain without the will flag.
    first_bytes_close(&tb, "will retain without will", &connect_bytes(b"MQTT", 4, 0x20 | 0x02, &[b"c"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_22_password_without_username_closes_connection() {
    let tb = TestBroker::start("").await;
    first_bytes_close(&tb, "password without user", &connect_bytes(b"MQTT", 4, 0x40 | 0x02, &[b"c", b"secret"])).await;
    // The same CONNECT with a user name is fine.
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&connect_bytes(b"MQTT", 4, 0x80 | 0x40 | 0x02, &[b"c", b"user", b"secret"])).await;
    assert_eq!(c.recv().await, Some(accepted(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_1_5_3_1_invalid_utf8_client_id_closes_connection() {
    let tb = TestBroker::start("").await;
    first_bytes_close(&tb, "invalid utf-8 client id", &connect_bytes(b"MQTT", 4, 0x02, &[&[b'c', 0xC3, 0x28]])).await;
    // An encoded surrogate (U+D800) is ill-formed too.
    first_bytes_close(&tb, "surrogate in client id", &connect_bytes(b"MQTT", 4, 0x02, &[&[0xED, 0xA0, 0x80]])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_1_5_3_1_invalid_utf8_topic_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "utf8 publish topic", &publish_bytes(0x30, &[b'a', 0xFF], None, b"x")).await;
    violation_after_connect_closes(
        &tb,
        "utf8 subscribe filter",
        &frame(0x82, &[&[0, 1][..], &field(&[b'a', 0xC0, 0x80]), &[0]].concat()),
    )
    .await;
    assert_broker_serves_others(&tb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_1_5_3_2_null_character_in_topic_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "nul in topic", &publish_bytes(0x30, b"a\0b", None, b"x")).await;
    violation_after_connect_closes(&tb, "nul in filter", &frame(0x82, &[&[0, 1][..], &field(b"a/\0"), &[0]].concat()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_2_2_3_remaining_length_of_five_bytes_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "five byte length", &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
    // Also as the very first packet.
    first_bytes_close(&tb, "five byte length first", &[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_2_2_wildcard_in_publish_topic_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "plus in topic", &publish_bytes(0x30, b"a/+", None, b"x")).await;
    violation_after_connect_closes(&tb, "hash in topic", &publish_bytes(0x32, b"a/#", Some(1), b"x")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_3_1_empty_topic_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "empty topic", &publish_bytes(0x30, b"", None, b"x")).await;
    violation_after_connect_closes(&tb, "empty filter", &frame(0x82, &[&[0, 1][..], &field(b""), &[0]].concat())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_1_invalid_filter_closes_connection() {
    let tb = TestBroker::start("").await;
    for filter in [&b"a/#/b"[..], b"a+", b"#a"] {
        let what = format!("filter {}", String::from_utf8_lossy(filter));
        violation_after_connect_closes(&tb, &what, &frame(0x82, &[&[0, 1][..], &field(filter), &[0]].concat())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_10_1_1_unsubscribe_with_bad_flags_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "unsubscribe flags 0", &frame(0xA0, &[&[0, 1][..], &field(b"a")].concat()))
        .await;
    violation_after_connect_closes(&tb, "empty unsubscribe", &[0xA2, 0x02, 0x00, 0x01]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_3_dup_and_retain_are_not_forwarded_from_the_publisher() {
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "dup-sub").await;
    subscribed(&mut sub, 1, "dup/t", QoS::AtLeastOnce).await;
    let mut p = connected(&tb, "dup-pub").await;
    // QoS 1, DUP=1, RETAIN=1.
    p.send_raw(&publish_bytes(0x3B, b"dup/t", Some(5), b"x")).await;
    assert_eq!(p.recv().await, Some(Packet::Puback(Ack::new(5))));
    let m = expect_publish(&mut sub).await;
    assert!(!m.dup, "[MQTT-3.3.1-3] DUP of an outgoing PUBLISH is the broker's own");
    assert!(!m.retain, "[MQTT-3.3.1-9] RETAIN=0 for an existing subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_1_1_subscribe_with_bad_flags_closes_connection() {
    let tb = TestBroker::start("").await;
    let body = [&[0, 1][..], &field(b"a"), &[0]].concat();
    violation_after_connect_closes(&tb, "subscribe flags 0", &frame(0x80, &body)).await;
    violation_after_connect_closes(&tb, "subscribe flags 3", &frame(0x83, &body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_3_3_subscribe_without_filters_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "empty subscribe", &[0x82, 0x02, 0x00, 0x01]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_3_4_subscribe_with_reserved_qos_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "requested qos 3", &frame(0x82, &[&[0, 1][..], &field(b"a"), &[3]].concat()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_4_publish_qos_3_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "publish qos 3", &publish_bytes(0x36, b"a", Some(1), b"x")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_2_3_1_1_qos1_publish_with_packet_id_0_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "qos1 id 0", &publish_bytes(0x32, b"a", Some(0), b"x")).await;
    violation_after_connect_closes(&tb, "qos2 id 0", &publish_bytes(0x34, b"a", Some(0), b"x")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_packet_size_oversize_packet_closes_connection() {
    let tb = TestBroker::start("max-packet-size: 1024").await;
    // A packet just under the limit goes through.
    let mut sub = connected(&tb, "big-sub").await;
    subscribed(&mut sub, 1, "big/#", QoS::AtMostOnce).await;
    let mut c = connected(&tb, "big-pub").await;
    let fits = publish_bytes(0x30, b"big/ok", None, &[b'x'; 1000]);
    assert!(fits.len() <= 1024);
    c.send_raw(&fits).await;
    ping(&mut c).await;
    let p = expect_publish(&mut sub).await;
    assert_eq!(p.payload.len(), 1000);

    // One over the limit closes the connection; the message is not routed.
    let too_big = publish_bytes(0x30, b"big/no", None, &[b'x'; 2000]);
    c.send_raw(&too_big).await;
    c.expect_closed().await;

    // A header announcing a huge packet is refused before its body arrives:
    // the broker does not wait for (or buffer) a megabyte that never comes.
    let mut c = connected(&tb, "big-header").await;
    c.send_raw(&[0x30, 0x80, 0x80, 0x40]).await; // remaining length 1 048 576
    c.expect_closed().await;

    // The subscriber is unaffected and saw nothing of the refused packet.
    tb.broker.publish("big/marker", "m", QoS::AtMostOnce, false).unwrap();
    let p = expect_publish(&mut sub).await;
    assert_eq!(&*p.topic, "big/marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_packet_size_applies_to_connect() {
    let tb = TestBroker::start("max-packet-size: 1024").await;
    let long_id = vec![b'i'; 1100];
    first_bytes_close(&tb, "oversize CONNECT", &connect_bytes(b"MQTT", 4, 0x02, &[&long_id])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_3_8_empty_client_id_with_clean_session_0_gets_connack_2() {
    let tb = TestBroker::start("").await;
    let mut c = RawClient::connect(tb.addr).await;
    c.send(&Packet::Connect(Box::new(connect_packet("", false)))).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x02]);
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_3_6_empty_client_id_with_clean_session_1_is_accepted() {
    let tb = TestBroker::start("").await;
    let (mut a, ack) = RawClient::handshake(tb.addr, "", true).await;
    assert_eq!(ack, accepted(false));
    // A second anonymous client gets a different id: no takeover of the first.
    let (mut b, ack) = RawClient::handshake(tb.addr, "", true).await;
    assert_eq!(ack, accepted(false));
    subscribed(&mut a, 1, "anon/a", QoS::AtMostOnce).await;
    subscribed(&mut b, 1, "anon/b", QoS::AtMostOnce).await;
    tb.broker.publish("anon/a", "to-a", QoS::AtMostOnce, false).unwrap();
    tb.broker.publish("anon/b", "to-b", QoS::AtMostOnce, false).unwrap();
    assert_eq!(expect_publish(&mut a).await.payload.as_ref(), b"to-a");
    assert_eq!(expect_publish(&mut b).await.payload.as_ref(), b"to-b");
}

// ---------------------------------------------------------------------------
// Exact answers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    let tb = TestBroker::start("").await;
    let mut c = RawClient::connect(tb.addr).await;
    c.send(&Packet::Connect(Box::new(connect_packet("pinger", true)))).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x00]);
    for _ in 0..3 {
        c.send_raw(&[0xC0, 0x00]).await;
        assert_eq!(read_exact(&mut c, 2).await, vec![0xD0, 0x00]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_bytes_of_acknowledgements() {
    let tb = TestBroker::start("").await;
    let mut c = RawClient::connect(tb.addr).await;
    c.send(&Packet::Connect(Box::new(connect_packet("exact", true)))).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x20, 0x02, 0x00, 0x00], "CONNACK");
    // SUBSCRIBE id 0x1234 with three filters: SUBACK lists each granted QoS in order [MQTT-3.9.3-1].
    c.send(&subscribe(0x1234, &[("x/0", QoS::AtMostOnce), ("x/2", QoS::ExactlyOnce), ("x/1", QoS::AtLeastOnce)])).await;
    assert_eq!(read_exact(&mut c, 7).await, vec![0x90, 0x05, 0x12, 0x34, 0x00, 0x02, 0x01], "SUBACK");
    // QoS 1 PUBLISH to a topic nobody subscribes to: PUBACK with the same id [MQTT-3.3.4-1].
    c.send(&publish("nobody/1", QoS::AtLeastOnce, 0x0107, b"p")).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x40, 0x02, 0x01, 0x07], "PUBACK");
    // QoS 2: PUBREC, then PUBREL -> PUBCOMP.
    c.send(&publish("nobody/2", QoS::ExactlyOnce, 0xBEEF, b"p")).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x50, 0x02, 0xBE, 0xEF], "PUBREC");
    c.send_raw(&[0x62, 0x02, 0xBE, 0xEF]).await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0x70, 0x02, 0xBE, 0xEF], "PUBCOMP");
    // UNSUBSCRIBE: UNSUBACK with the same id.
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 0x0A0B,
        filters: vec!["x/0".into()],
        user_properties: Vec::new(),
    }))
    .await;
    assert_eq!(read_exact(&mut c, 4).await, vec![0xB0, 0x02, 0x0A, 0x0B], "UNSUBACK");
    // A QoS 1 delivery from the broker: 0x32, topic, non-zero id, payload, no DUP, no RETAIN.
    tb.broker.publish("x/1", "hi", QoS::AtLeastOnce, false).unwrap();
    let bytes = read_exact(&mut c, 11).await;
    assert_eq!(&bytes[..7], &[0x32, 0x09, 0x00, 0x03, b'x', b'/', b'1'], "PUBLISH header and topic");
    // The packet id is the broker's choice, but never 0 [MQTT-2.3.1-1].
    assert_ne!(u16::from_be_bytes([bytes[7], bytes[8]]), 0);
    assert_eq!(&bytes[9..], b"hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_10_4_5_unsubscribe_of_unknown_filter_gets_unsuback() {
    let tb = TestBroker::start("").await;
    let mut c = connected(&tb, "unsub").await;
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 42,
        filters: vec!["never/subscribed".into(), "#".into()],
        user_properties: Vec::new(),
    }))
    .await;
    assert_eq!(c.recv().await, Some(Packet::Unsuback(Unsuback::new(42, Vec::new()))));
    ping(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_only_packets_from_a_client_close_the_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "CONNACK", &[0x20, 0x02, 0x00, 0x00]).await;
    violation_after_connect_closes(&tb, "SUBACK", &[0x90, 0x03, 0x00, 0x01, 0x00]).await;
    violation_after_connect_closes(&tb, "UNSUBACK", &[0xB0, 0x02, 0x00, 0x01]).await;
    violation_after_connect_closes(&tb, "PINGRESP", &[0xD0, 0x00]).await;
    assert_broker_serves_others(&tb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_2_dup_on_qos0_publish_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "dup qos 0", &publish_bytes(0x38, b"a", None, b"x")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_6_1_1_pubrel_with_bad_flags_closes_connection() {
    let tb = TestBroker::start("").await;
    violation_after_connect_closes(&tb, "pubrel flags 0", &[0x60, 0x02, 0x00, 0x01]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_packets_after_connect_are_all_handled() {
    // CONNECT, SUBSCRIBE, PUBLISH and PINGREQ in one write: nothing buffered
    // behind the CONNECT may be forgotten.
    let tb = TestBroker::start("").await;
    let mut c = RawClient::connect(tb.addr).await;
    let mut bytes = connect_bytes(b"MQTT", 4, 0x02, &[b"pipeliner"]);
    bytes.extend(frame(0x82, &[&[0, 1][..], &field(b"pipe/t"), &[1]].concat()));
    bytes.extend(publish_bytes(0x32, b"pipe/t", Some(2), b"self"));
    bytes.extend([0xC0, 0x00]);
    c.send_raw(&bytes).await;
    assert_eq!(c.recv().await, Some(accepted(false)));
    assert_eq!(
        c.recv().await,
        Some(Packet::Suback(Suback {
            packet_id: 1,
            codes: vec![SubackCode::Granted(QoS::AtLeastOnce)],
            reason_string: None,
            user_properties: Vec::new(),
        }))
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        match c.recv().await {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.payload.as_ref(), b"self");
                seen.push("PUBLISH");
            }
            Some(Packet::Puback(Ack { packet_id: 2, .. })) => seen.push("PUBACK"),
            Some(Packet::Pingresp) => seen.push("PINGRESP"),
            other => panic!("unexpected {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["PINGRESP", "PUBACK", "PUBLISH"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_split_into_single_bytes_are_reassembled() {
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "frag-sub").await;
    subscribed(&mut sub, 1, "frag/t", QoS::AtMostOnce).await;
    let mut c = RawClient::connect(tb.addr).await;
    let mut bytes = connect_bytes(b"MQTT", 4, 0x02, &[b"fragmented"]);
    bytes.extend(publish_bytes(0x32, b"frag/t", Some(3), &[b'z'; 300]));
    for b in bytes {
        c.send_raw(&[b]).await;
        c.stream.flush().await.unwrap();
    }
    assert_eq!(c.recv().await, Some(accepted(false)));
    assert_eq!(c.recv().await, Some(Packet::Puback(Ack::new(3))));
    let m = expect_publish(&mut sub).await;
    assert_eq!(m.payload.len(), 300);
}

// ---------------------------------------------------------------------------
// QoS flows
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_3_3_inbound_qos2_is_delivered_exactly_once() {
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "q2-sub").await;
    subscribed(&mut sub, 1, "q2/t", QoS::ExactlyOnce).await;

    let mut p = RawClient::connect(tb.addr).await;
    p.send(&Packet::Connect(Box::new(connect_packet("q2-pub", true)))).await;
    assert_eq!(read_exact(&mut p, 4).await, vec![0x20, 0x02, 0x00, 0x00]);
    p.send_raw(&publish_bytes(0x34, b"q2/t", Some(7), b"once")).await;
    assert_eq!(read_exact(&mut p, 4).await, vec![0x50, 0x02, 0x00, 0x07], "first PUBREC");
    // The same PUBLISH again, DUP set, before PUBREL: acknowledged, not routed again.
    p.send_raw(&publish_bytes(0x3C, b"q2/t", Some(7), b"once")).await;
    assert_eq!(read_exact(&mut p, 4).await, vec![0x50, 0x02, 0x00, 0x07], "second PUBREC");
    p.send_raw(&[0x62, 0x02, 0x00, 0x07]).await;
    assert_eq!(read_exact(&mut p, 4).await, vec![0x70, 0x02, 0x00, 0x07], "PUBCOMP");
    // A marker through the same path.
    p.send_raw(&publish_bytes(0x30, b"q2/t", None, b"marker")).await;

    let first = expect_publish(&mut sub).await;
    assert_eq!(first.payload.as_ref(), b"once");
    assert_eq!(first.qos, QoS::ExactlyOnce);
    assert!(!first.dup);
    let next = expect_publish(&mut sub).await;
    assert_eq!(next.payload.as_ref(), b"marker", "the QoS 2 message was delivered twice");
    sub.send(&Packet::Pubrec(Ack::new(first.packet_id))).await;
    assert_eq!(sub.recv().await, Some(Packet::Pubrel(Ack::new(first.packet_id))));
    sub.send(&Packet::Pubcomp(Ack::new(first.packet_id))).await;

    // After PUBREL the id is free: the same id is a new message.
    p.send_raw(&publish_bytes(0x34, b"q2/t", Some(7), b"again")).await;
    assert_eq!(read_exact(&mut p, 4).await, vec![0x50, 0x02, 0x00, 0x07]);
    let again = expect_publish(&mut sub).await;
    assert_eq!(again.payload.as_ref(), b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_3_3_inbound_qos2_exactly_once_across_reconnect() {
    // A persistent publisher loses its connection between PUBLISH and PUBREL
    // and re-sends the PUBLISH (DUP) on the new connection [MQTT-4.4.0-1]:
    // the broker remembers the id with the session and does not route twice.
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "q2r-sub").await;
    subscribed(&mut sub, 1, "q2r/t", QoS::AtMostOnce).await;

    let (mut p, ack) = RawClient::handshake(tb.addr, "q2r-pub", false).await;
    assert_eq!(ack, accepted(false));
    p.send_raw(&publish_bytes(0x34, b"q2r/t", Some(9), b"once")).await;
    assert_eq!(p.recv().await, Some(Packet::Pubrec(Ack::new(9))));
    drop(p);

    let (mut p, ack) = RawClient::handshake(tb.addr, "q2r-pub", false).await;
    assert_eq!(ack, accepted(true));
    p.send_raw(&publish_bytes(0x3C, b"q2r/t", Some(9), b"once")).await;
    assert_eq!(p.recv().await, Some(Packet::Pubrec(Ack::new(9))));
    p.send(&Packet::Pubrel(Ack::new(9))).await;
    assert_eq!(p.recv().await, Some(Packet::Pubcomp(Ack::new(9))));
    p.send_raw(&publish_bytes(0x30, b"q2r/t", None, b"marker")).await;

    assert_eq!(expect_publish(&mut sub).await.payload.as_ref(), b"once");
    assert_eq!(expect_publish(&mut sub).await.payload.as_ref(), b"marker", "routed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_4_0_1_unacknowledged_messages_are_resent_with_dup_on_reconnect() {
    let tb = TestBroker::start("").await;
    let (mut s, ack) = RawClient::handshake(tb.addr, "redeliver", false).await;
    assert_eq!(ack, accepted(false));
    subscribed(&mut s, 1, "r/t", QoS::ExactlyOnce).await;
    tb.broker.publish("r/t", "m1", QoS::AtLeastOnce, false).unwrap();
    tb.broker.publish("r/t", "m2", QoS::ExactlyOnce, false).unwrap();
    let m1 = expect_publish(&mut s).await;
    let m2 = expect_publish(&mut s).await;
    assert_eq!((m1.payload.as_ref(), m1.qos, m1.dup), (&b"m1"[..], QoS::AtLeastOnce, false));
    assert_eq!((m2.payload.as_ref(), m2.qos, m2.dup), (&b"m2"[..], QoS::ExactlyOnce, false));
    assert_ne!(m1.packet_id, m2.packet_id);
    // No acknowledgement; the socket drops.
    drop(s);

    let (mut s, ack) = RawClient::handshake(tb.addr, "redeliver", false).await;
    assert_eq!(ack, accepted(true), "[MQTT-3.2.2-2] session present");
    let r1 = expect_publish(&mut s).await;
    let r2 = expect_publish(&mut s).await;
    assert_eq!(
        (r1.payload.as_ref(), r1.qos, r1.dup, r1.packet_id),
        (&b"m1"[..], QoS::AtLeastOnce, true, m1.packet_id),
        "QoS 1 re-sent with DUP and the same id"
    );
    assert_eq!(
        (r2.payload.as_ref(), r2.qos, r2.dup, r2.packet_id),
        (&b"m2"[..], QoS::ExactlyOnce, true, m2.packet_id),
        "QoS 2 re-sent with DUP and the same id"
    );
    // Advance the QoS 2 flow to PUBREL, then drop again.
    s.send(&Packet::Pubrec(Ack::new(m2.packet_id))).await;
    assert_eq!(s.recv().await, Some(Packet::Pubrel(Ack::new(m2.packet_id))));
    drop(s);

    let (mut s, ack) = RawClient::handshake(tb.addr, "redeliver", false).await;
    assert_eq!(ack, accepted(true));
    let r1 = expect_publish(&mut s).await;
    assert_eq!((r1.packet_id, r1.dup), (m1.packet_id, true));
    assert_eq!(s.recv().await, Some(Packet::Pubrel(Ack::new(m2.packet_id))), "PUBREL re-sent, not the PUBLISH");
    s.send(&Packet::Puback(Ack::new(m1.packet_id))).await;
    s.send(&Packet::Pubcomp(Ack::new(m2.packet_id))).await;
    ping(&mut s).await;
    // Both flows are finished: the next message is new, and nothing is re-sent again.
    tb.broker.publish("r/t", "m3", QoS::AtLeastOnce, false).unwrap();
    let m3 = expect_publish(&mut s).await;
    assert_eq!((m3.payload.as_ref(), m3.dup), (&b"m3"[..], false));
    s.send(&Packet::Puback(Ack::new(m3.packet_id))).await;
    // The PUBACK is handled before the socket goes (a PUBACK still in flight
    // when the connection drops may be lost, and m3 re-sent: at least once).
    ping(&mut s).await;
    drop(s);
    let (mut s, ack) = RawClient::handshake(tb.addr, "redeliver", false).await;
    assert_eq!(ack, accepted(true));
    ping(&mut s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_window_limits_unacknowledged_deliveries() {
    let tb = TestBroker::start("max-inflight: 3").await;
    let mut s = connected(&tb, "window").await;
    subscribed(&mut s, 1, "w/t", QoS::AtLeastOnce).await;
    for i in 0..5 {
        tb.broker.publish("w/t", format!("{i}"), QoS::AtLeastOnce, false).unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        let p = expect_publish(&mut s).await;
        assert_eq!(p.payload.as_ref(), format!("{i}").as_bytes());
        ids.push(p.packet_id);
    }
    // Two pings: anything the broker would send past the window would come
    // before the second PINGRESP.
    ping(&mut s).await;
    ping(&mut s).await;
    // One PUBACK opens the window by exactly one.
    s.send(&Packet::Puback(Ack::new(ids[0]))).await;
    let p = expect_publish(&mut s).await;
    assert_eq!(p.payload.as_ref(), b"3");
    ping(&mut s).await;
    ping(&mut s).await;
    s.send(&Packet::Puback(Ack::new(ids[1]))).await;
    let p = expect_publish(&mut s).await;
    assert_eq!(p.payload.as_ref(), b"4");
    assert_eq!(tb.broker.dropped_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_drops_newest_and_counts_them() {
    let tb = TestBroker::start("max-inflight: 1\nmax-queued-messages: 5").await;
    let mut s = connected(&tb, "queue").await;
    subscribed(&mut s, 1, "q/t", QoS::AtLeastOnce).await;
    tb.broker.publish("q/t", "0", QoS::AtLeastOnce, false).unwrap();
    let first = expect_publish(&mut s).await;
    assert_eq!(first.payload.as_ref(), b"0");
    // Message 0 fills the window of 1; 1..=5 fill the queue; 6..=19 are dropped.
    for i in 1..20 {
        tb.broker.publish("q/t", format!("{i}"), QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(tb.broker.dropped_messages(), 14);
    let mut id = first.packet_id;
    for i in 1..=5 {
        s.send(&Packet::Puback(Ack::new(id))).await;
        let p = expect_publish(&mut s).await;
        assert_eq!(p.payload.as_ref(), format!("{i}").as_bytes(), "in order");
        id = p.packet_id;
    }
    s.send(&Packet::Puback(Ack::new(id))).await;
    tb.broker.publish("q/t", "marker", QoS::AtLeastOnce, false).unwrap();
    let p = expect_publish(&mut s).await;
    assert_eq!(p.payload.as_ref(), b"marker", "only 1 + 5 messages may be kept");
    assert_eq!(tb.broker.dropped_messages(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_drops_qos0_first() {
    let tb = TestBroker::start("max-inflight: 1\nmax-queued-messages: 5").await;
    let mut s = connected(&tb, "queue0").await;
    subscribed(&mut s, 1, "q/t", QoS::AtLeastOnce).await;
    tb.broker.publish("q/t", "first", QoS::AtLeastOnce, false).unwrap();
    let first = expect_publish(&mut s).await;
    // Queue: b(1) a(0) d(1) c(0) e(1) -- full. A QoS 1 message at the front,
    // held back by the window, keeps the QoS 0 ones behind it [MQTT-4.6.0-6].
    for (payload, qos) in [
        ("b", QoS::AtLeastOnce),
        ("a", QoS::AtMostOnce),
        ("d", QoS::AtLeastOnce),
        ("c", QoS::AtMostOnce),
        ("e", QoS::AtLeastOnce),
    ] {
        tb.broker.publish("q/t", payload, qos, false).unwrap();
    }
    assert_eq!(tb.broker.dropped_messages(), 0);
    // f pushes out a, g pushes out c, h finds no QoS 0 left and is dropped.
    for payload in ["f", "g", "h"] {
        tb.broker.publish("q/t", payload, QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(tb.broker.dropped_messages(), 3);
    let mut id = first.packet_id;
    for expected in ["b", "d", "e", "f", "g"] {
        s.send(&Packet::Puback(Ack::new(id))).await;
        let p = expect_publish(&mut s).await;
        assert_eq!(p.payload.as_ref(), expected.as_bytes());
        assert_eq!(p.qos, QoS::AtLeastOnce);
        id = p.packet_id;
    }
    s.send(&Packet::Puback(Ack::new(id))).await;
    tb.broker.publish("q/t", "marker", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(expect_publish(&mut s).await.payload.as_ref(), b"marker");
}

// ---------------------------------------------------------------------------
// Takeover
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_4_2_takeover_closes_old_connection_and_keeps_session() {
    let tb = TestBroker::start("").await;
    let (mut old, ack) = RawClient::handshake(tb.addr, "taken", false).await;
    assert_eq!(ack, accepted(false));
    subscribed(&mut old, 1, "tk/t", QoS::AtLeastOnce).await;

    let (mut new, ack) = RawClient::handshake(tb.addr, "taken", false).await;
    assert_eq!(ack, accepted(true), "the persistent session is handed over");
    old.expect_closed().await;

    // The subscription came along; the message goes to the new connection.
    tb.broker.publish("tk/t", "for-new", QoS::AtLeastOnce, false).unwrap();
    let p = expect_publish(&mut new).await;
    assert_eq!(p.payload.as_ref(), b"for-new");
    new.send(&Packet::Puback(Ack::new(p.packet_id))).await;
    ping(&mut new).await;
    assert_eq!(tb.broker.session_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_4_2_takeover_with_clean_session_discards_old_session() {
    let tb = TestBroker::start("").await;
    let (mut old, ack) = RawClient::handshake(tb.addr, "taken-clean", false).await;
    assert_eq!(ack, accepted(false));
    subscribed(&mut old, 1, "tc/old", QoS::AtLeastOnce).await;

    let (mut new, ack) = RawClient::handshake(tb.addr, "taken-clean", true).await;
    assert_eq!(ack, accepted(false), "clean session: no session present [MQTT-3.2.2-1]");
    old.expect_closed().await;
    subscribed(&mut new, 1, "tc/new", QoS::AtLeastOnce).await;
    tb.broker.publish("tc/old", "old-sub", QoS::AtLeastOnce, false).unwrap();
    tb.broker.publish("tc/new", "marker", QoS::AtLeastOnce, false).unwrap();
    let p = expect_publish(&mut new).await;
    assert_eq!(p.payload.as_ref(), b"marker", "the old subscription must be gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_10_keep_alive_zero_is_not_enforced() {
    // keep_alive 0 turns the mechanism off [MQTT-3.1.2-10]; check the
    // connection still works after other clients came and went.
    let tb = TestBroker::start("timeout-disconnect-delay: 0").await;
    let mut c = RawClient::connect(tb.addr).await;
    c.send(&Packet::Connect(Box::new(Connect { keep_alive: 0, ..connect_packet("no-ka", true) }))).await;
    assert_eq!(c.recv().await, Some(accepted(false)));
    // Silent for longer than any keep-alive of 1 s + 0 would allow.
    assert_eq!(c.recv_within(Duration::from_millis(2500)).await, Err(()), "closed although keep alive is 0");
    ping(&mut c).await;
}
