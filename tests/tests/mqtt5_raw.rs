//! MQTT 5 at the byte level: what moth answers to each MQTT 5 rule, with a
//! raw client that can break them (paho and mosquitto cover the well-behaved
//! side in `interop.rs`).

use std::time::Duration;

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{
    Ack, Connack, Connect, ConnectProperties, ConnectReturnCode, Disconnect, MessageProperties, Packet, Protocol,
    Publish, ReasonCode, SubackCode, Subscribe, SubscribeFilter, Unsubscribe,
};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

/// An MQTT 5 CONNECT with clean start.
fn connect5(client_id: &str) -> Connect {
    Connect { protocol: Protocol::V5, ..connect_packet(client_id, true) }
}

/// Connects with `c`; returns the client and its CONNACK.
async fn open(tb: &TestBroker, c: Connect) -> (RawClient, Connack) {
    let mut client = RawClient::connect(tb.addr).await;
    client.protocol = Protocol::V5;
    client.send(&Packet::Connect(Box::new(c))).await;
    match client.recv().await {
        Some(Packet::Connack(a)) => (client, *a),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn connected(tb: &TestBroker, client_id: &str) -> RawClient {
    let (c, ack) = open(tb, connect5(client_id)).await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);
    c
}

async fn subscribe(c: &mut RawClient, packet_id: u16, filter: SubscribeFilter) -> Vec<SubackCode> {
    c.send(&Packet::Subscribe(Subscribe::new(packet_id, vec![filter]))).await;
    match c.recv().await {
        Some(Packet::Suback(s)) if s.packet_id == packet_id => s.codes,
        other => panic!("expected SUBACK {packet_id}, got {other:?}"),
    }
}

/// The DISCONNECT moth sends before it closes, then the close.
async fn disconnected(c: &mut RawClient) -> Disconnect {
    let d = match c.recv().await {
        Some(Packet::Disconnect(d)) => d,
        other => panic!("expected DISCONNECT, got {other:?}"),
    };
    c.expect_closed().await;
    d
}

fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &'static [u8]) -> Publish {
    Publish::new(topic, Bytes::from_static(payload), qos, false, packet_id)
}

async fn expect_publish(c: &mut RawClient) -> Publish {
    match c.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_announces_limits_and_assigns_an_identifier() {
    let tb = TestBroker::start("max-packet-size: 65536\nreceive-maximum: 7\ntopic-alias-maximum: 3\n").await;
    // MQTT 5 assigns an identifier even without clean start.
    let (_c, ack) = open(&tb, Connect { clean_session: false, ..connect5("") }).await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);
    let p = &ack.properties;
    let assigned = p.assigned_client_identifier.as_deref().expect("an assigned client identifier");
    assert!(assigned.starts_with("moth-"), "{assigned}");
    assert_eq!(p.maximum_packet_size, Some(65536));
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.shared_subscription_available, None, "absent: shared subscriptions are available");
    assert_eq!(p.retain_available, None, "absent: retain is available");
    // A named client gets no assigned identifier.
    let (_c, ack) = open(&tb, connect5("named")).await;
    assert_eq!(ack.properties.assigned_client_identifier, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_v5_connect_is_answered_with_its_reason_code() {
    let tb = TestBroker::start("").await;
    // CONNECT with the session expiry interval twice: a protocol error.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60];
    body.extend_from_slice(&[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]);
    body.extend_from_slice(&[0, 1, b'x']);
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    let mut c = RawClient::connect(tb.addr).await;
    c.protocol = Protocol::V5;
    c.send_raw(&packet).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => assert_eq!(a.code, ConnectReturnCode::ProtocolError),
        other => panic!("expected CONNACK 0x82, got {other:?}"),
    }
    c.expect_closed().await;
    // A 3.1.1 client with a malformed CONNECT is closed without a word.
    let mut c = RawClient::connect(tb.addr).await;
    c.send_raw(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0]).await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_cross_versions_and_acks_carry_reasons() {
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "v5-sub").await;
    let mut filter = SubscribeFilter::new("r/#", QoS::AtLeastOnce);
    filter.retain_as_published = true;
    let mut s = Subscribe::new(1, vec![filter]);
    s.subscription_id = Some(9);
    sub.send(&Packet::Subscribe(s)).await;
    assert!(matches!(sub.recv().await, Some(Packet::Suback(_))));
    let (mut old, _) = RawClient::handshake(tb.addr, "v3-sub", true).await;
    old.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("r/#", QoS::AtLeastOnce)]))).await;
    assert!(matches!(old.recv().await, Some(Packet::Suback(_))));

    let mut pubr = connected(&tb, "v5-pub").await;
    let mut p = publish("r/a", QoS::AtLeastOnce, 5, b"hi");
    p.retain = true;
    let props = MessageProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        correlation_data: Some(Bytes::from_static(b"\x00c")),
        ..MessageProperties::default()
    };
    p.properties = Some(props.clone().into());
    pubr.send(&Packet::Publish(p)).await;
    assert_eq!(pubr.recv().await, Some(Packet::Puback(Ack::new(5))));
    let got = expect_publish(&mut sub).await;
    assert_eq!(got.properties.as_deref(), Some(&props), "properties unchanged end to end");
    assert_eq!(got.subscription_ids, [9]);
    assert!(got.retain, "retain as published");
    let got = expect_publish(&mut old).await;
    assert_eq!((&*got.topic, got.retain), ("r/a", false), "3.1.1 gets the message, RETAIN cleared");

    // Nobody subscribed: 0x10; refused ($SYS): 0x87.
    pubr.send(&Packet::Publish(publish("nobody/here", QoS::AtLeastOnce, 6, b"x"))).await;
    let no_one = Ack::with_reason(6, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(pubr.recv().await, Some(Packet::Puback(no_one)));
    pubr.send(&Packet::Publish(publish("$SYS/x", QoS::ExactlyOnce, 7, b"x"))).await;
    assert_eq!(pubr.recv().await, Some(Packet::Pubrec(Ack::with_reason(7, ReasonCode::NOT_AUTHORIZED))));
    // A refused QoS 2 flow ends at its PUBREC: a PUBREL for it is unknown.
    pubr.send(&Packet::Pubrel(Ack::new(7))).await;
    let unknown = Ack::with_reason(7, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    assert_eq!(pubr.recv().await, Some(Packet::Pubcomp(unknown)));
    // A payload that says it is UTF-8 and is not: 0x99.
    let mut bad = publish("r/b", QoS::AtLeastOnce, 8, b"\xff\xfe");
    bad.properties = Some(MessageProperties { payload_format_indicator: Some(1), ..Default::default() }.into());
    pubr.send(&Packet::Publish(bad)).await;
    assert_eq!(pubr.recv().await, Some(Packet::Puback(Ack::with_reason(8, ReasonCode::PAYLOAD_FORMAT_INVALID))));

    // UNSUBACK says which filters existed.
    sub.send(&Packet::Unsubscribe(Unsubscribe::new(3, vec!["r/#".into(), "never".into()]))).await;
    match sub.recv().await {
        Some(Packet::Unsuback(u)) => {
            assert_eq!(u.codes, [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]);
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_from_the_client() {
    let tb = TestBroker::start("").await;
    let mut sub = connected(&tb, "alias-sub").await;
    subscribe(&mut sub, 1, SubscribeFilter::new("alias/#", QoS::AtMostOnce)).await;
    let (mut c, ack) = open(&tb, connect5("alias-pub")).await;
    let max = ack.properties.topic_alias_maximum.expect("aliases offered");
    let mut set = publish("alias/long/name", QoS::AtMostOnce, 0, b"1");
    set.topic_alias = Some(max);
    c.send(&Packet::Publish(set)).await;
    let mut used = publish("", QoS::AtMostOnce, 0, b"2");
    used.topic_alias = Some(max);
    c.send(&Packet::Publish(used)).await;
    for payload in [&b"1"[..], b"2"] {
        let p = expect_publish(&mut sub).await;
        assert_eq!((&*p.topic, p.payload.as_ref()), ("alias/long/name", payload));
    }
    // One above the maximum: DISCONNECT 0x94.
    let mut over = publish("alias/x", QoS::AtMostOnce, 0, b"3");
    over.topic_alias = Some(max + 1);
    c.send(&Packet::Publish(over)).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::TOPIC_ALIAS_INVALID);
    // An alias never set, with an empty topic: protocol error.
    let mut c = connected(&tb, "alias-unset").await;
    let mut unset = publish("", QoS::AtMostOnce, 0, b"4");
    unset.topic_alias = Some(1);
    c.send(&Packet::Publish(unset)).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_says_why_it_disconnects() {
    let tb = TestBroker::start("").await;
    // Taken over by a new connection with the same client identifier.
    let mut first = connected(&tb, "taken").await;
    let _second = connected(&tb, "taken").await;
    assert_eq!(disconnected(&mut first).await.reason, ReasonCode::SESSION_TAKEN_OVER);
    // A second CONNECT.
    let mut c = connected(&tb, "twice").await;
    c.send(&Packet::Connect(Box::new(connect5("twice")))).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::PROTOCOL_ERROR);
    // A malformed packet: PUBLISH with a wildcard topic.
    let mut c = connected(&tb, "wild").await;
    c.send_raw(&[0x30, 0x05, 0x00, 0x01, b'#', 0x00, b'x']).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::TOPIC_NAME_INVALID);
    // A client's PUBLISH may not carry a subscription identifier.
    let mut c = connected(&tb, "subid").await;
    let mut p = publish("t", QoS::AtMostOnce, 0, b"x");
    p.subscription_ids = vec![1];
    c.send(&Packet::Publish(p)).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_timeout_is_reason_0x8d() {
    let tb = TestBroker::start("timeout-disconnect-delay: 0\n").await;
    let (mut c, _) = open(&tb, Connect { keep_alive: 1, ..connect5("sleepy") }).await;
    let d = tokio::time::timeout(Duration::from_secs(5) + EVENT_TIMEOUT, disconnected(&mut c)).await.expect("closed");
    assert_eq!(d.reason, ReasonCode::KEEP_ALIVE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_bounds_inbound_qos2() {
    let tb = TestBroker::start("receive-maximum: 2\n").await;
    let mut c = connected(&tb, "qos2-flood").await;
    for id in 1..=2 {
        c.send(&Packet::Publish(publish("q2", QoS::ExactlyOnce, id, b"x"))).await;
        assert!(matches!(c.recv().await, Some(Packet::Pubrec(a)) if a.packet_id == id));
    }
    // A re-send of one awaiting PUBREL is not a new one.
    let mut again = publish("q2", QoS::ExactlyOnce, 2, b"x");
    again.dup = true;
    c.send(&Packet::Publish(again)).await;
    assert!(matches!(c.recv().await, Some(Packet::Pubrec(a)) if a.packet_id == 2));
    c.send(&Packet::Publish(publish("q2", QoS::ExactlyOnce, 3, b"x"))).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_larger_than_the_clients_maximum_packet_size_is_sent() {
    let tb = TestBroker::start("").await;
    let mut small = connect5("small");
    small.properties = ConnectProperties { maximum_packet_size: Some(64), ..ConnectProperties::default() };
    let (mut c, _) = open(&tb, small).await;
    subscribe(&mut c, 1, SubscribeFilter::new("size/#", QoS::AtLeastOnce)).await;
    tb.broker.publish("size/big", vec![b'x'; 200], QoS::AtLeastOnce, false).unwrap();
    tb.broker.publish("size/small", "fits", QoS::AtLeastOnce, false).unwrap();
    let p = expect_publish(&mut c).await;
    assert_eq!(&*p.topic, "size/small", "the oversized message is skipped, the next one sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_will_publishes_it_and_session_expiry_may_not_rise_from_0() {
    let tb = TestBroker::start("").await;
    let mut watcher = connected(&tb, "watcher").await;
    subscribe(&mut watcher, 1, SubscribeFilter::new("will/#", QoS::AtMostOnce)).await;
    let mut with_will = connect5("leaver");
    with_will.will = Some(moth_protocol::packet::Will::new("will/leaver", "gone", QoS::AtMostOnce, false));
    let (mut c, _) = open(&tb, with_will.clone()).await;
    c.send(&Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL))).await;
    c.expect_closed().await;
    let p = expect_publish(&mut watcher).await;
    assert_eq!(&*p.topic, "will/leaver");
    // A normal DISCONNECT drops the will.
    let (mut c, _) = open(&tb, with_will).await;
    c.send(&Packet::Disconnect(Disconnect::default())).await;
    c.expect_closed().await;
    // CONNECT said 0 (absent); a DISCONNECT that raises it is an error.
    let mut c = connected(&tb, "raiser").await;
    let d = Disconnect { session_expiry_interval: Some(60), ..Disconnect::default() };
    c.send(&Packet::Disconnect(d)).await;
    assert_eq!(disconnected(&mut c).await.reason, ReasonCode::PROTOCOL_ERROR);
    // The only will the watcher saw is the one asked for.
    assert!(
        matches!(watcher.recv_within(Duration::from_millis(300)).await, Err(())),
        "no will after a normal DISCONNECT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_from_connect_and_disconnect() {
    let tb = TestBroker::start("").await;
    let mut keep = connect5("expiring");
    keep.properties.session_expiry_interval = Some(300);
    let (mut c, ack) = open(&tb, keep.clone()).await;
    assert!(!ack.session_present);
    subscribe(&mut c, 1, SubscribeFilter::new("exp/#", QoS::AtLeastOnce)).await;
    c.send(&Packet::Disconnect(Disconnect::default())).await;
    c.expect_closed().await;
    tb.broker.publish("exp/queued", "while away", QoS::AtLeastOnce, false).unwrap();
    let (mut c, ack) = open(&tb, Connect { clean_session: false, ..keep.clone() }).await;
    assert!(ack.session_present, "an interval > 0 keeps the session");
    assert_eq!(&*expect_publish(&mut c).await.topic, "exp/queued");
    // DISCONNECT may end it at once instead.
    let d = Disconnect { session_expiry_interval: Some(0), ..Disconnect::default() };
    c.send(&Packet::Disconnect(d)).await;
    c.expect_closed().await;
    let (_c, ack) = open(&tb, Connect { clean_session: false, ..keep }).await;
    assert!(!ack.session_present, "DISCONNECT with interval 0 removed the session");
}

/// A PUBLISH with a message expiry interval, from an MQTT 5 client.
fn expiring(topic: &str, seconds: u32, retain: bool, packet_id: u16) -> Publish {
    let mut p = publish(topic, QoS::AtLeastOnce, packet_id, b"x");
    p.retain = retain;
    p.properties =
        Some(MessageProperties { message_expiry_interval: Some(seconds), ..MessageProperties::default() }.into());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_drops_stale_copies_and_sends_what_is_left() {
    let tb = TestBroker::start("").await;
    let mut away = connect5("away");
    away.properties.session_expiry_interval = Some(300);
    let (mut c, _) = open(&tb, away.clone()).await;
    subscribe(&mut c, 1, SubscribeFilter::new("exp/#", QoS::AtLeastOnce)).await;
    c.send(&Packet::Disconnect(Disconnect::default())).await;
    c.expect_closed().await;

    let mut p = connected(&tb, "publisher").await;
    p.send(&Packet::Publish(expiring("exp/short", 1, false, 1))).await;
    p.send(&Packet::Publish(expiring("exp/long", 600, false, 2))).await;
    p.send(&Packet::Publish(expiring("exp/retained", 1, true, 3))).await;
    for id in 1..=3 {
        assert!(matches!(p.recv().await, Some(Packet::Puback(a)) if a.packet_id == id));
    }
    // The one-second messages expire while the subscriber is away: time
    // passing is what is tested here.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut c, ack) = open(&tb, Connect { clean_session: false, ..away }).await;
    assert!(ack.session_present);
    let got = expect_publish(&mut c).await;
    assert_eq!(&*got.topic, "exp/long", "the expired queued messages are not delivered");
    let left = got.properties.and_then(|p| p.message_expiry_interval).expect("the interval left is sent");
    assert!((598..=600).contains(&left), "{left}");
    assert!(matches!(c.recv_within(Duration::from_millis(300)).await, Err(())), "nothing else queued");
    // A new subscriber does not get the expired retained message.
    let mut late = connected(&tb, "late").await;
    subscribe(&mut late, 1, SubscribeFilter::new("exp/retained", QoS::AtLeastOnce)).await;
    assert!(matches!(late.recv_within(Duration::from_millis(300)).await, Err(())), "expired retained message sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_will_waits_and_a_reconnect_within_the_delay_cancels_it() {
    let tb = TestBroker::start("").await;
    let mut watcher = connected(&tb, "will-watcher").await;
    subscribe(&mut watcher, 1, SubscribeFilter::new("dw/#", QoS::AtMostOnce)).await;
    let with_delayed_will = |id: &str| {
        let mut c = connect5(id);
        c.properties.session_expiry_interval = Some(60);
        let mut will = moth_protocol::packet::Will::new(format!("dw/{id}"), "gone", QoS::AtMostOnce, false);
        will.delay_interval = 1;
        c.will = Some(will);
        c
    };
    // The connection drops without DISCONNECT: the will comes a second later.
    let (c, _) = open(&tb, with_delayed_will("dropper")).await;
    let dropped = std::time::Instant::now();
    drop(c);
    let p = expect_publish(&mut watcher).await;
    assert_eq!(&*p.topic, "dw/dropper");
    assert!(dropped.elapsed() >= Duration::from_millis(900), "published after {:?}", dropped.elapsed());
    // Back within the delay: no will at all.
    let (c, _) = open(&tb, with_delayed_will("returner")).await;
    drop(c);
    let (_back, ack) = open(&tb, Connect { clean_session: false, ..with_delayed_will("returner") }).await;
    assert!(ack.session_present);
    assert!(
        matches!(watcher.recv_within(Duration::from_millis(1500)).await, Err(())),
        "the will of a client that came back was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_counts_clients_by_protocol_version() {
    let tb = TestBroker::start("sys_interval: 0.2").await;
    let (_old, _) = RawClient::handshake(tb.addr, "v311", true).await;
    let mut watcher = connected(&tb, "v5-watcher").await;
    subscribe(&mut watcher, 1, SubscribeFilter::new("$SYS/broker/clients/connected/#", QoS::AtMostOnce)).await;
    let mut seen = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while seen.len() < 4 && tokio::time::Instant::now() < deadline {
        let p = expect_publish(&mut watcher).await;
        seen.insert(p.topic.to_string(), String::from_utf8_lossy(&p.payload).into_owned());
    }
    assert_eq!(seen.get("$SYS/broker/clients/connected").map(String::as_str), Some("2"), "{seen:?}");
    assert_eq!(seen.get("$SYS/broker/clients/connected/v5").map(String::as_str), Some("1"), "{seen:?}");
    assert_eq!(seen.get("$SYS/broker/clients/connected/v3.1.1").map(String::as_str), Some("1"), "{seen:?}");
    assert_eq!(seen.get("$SYS/broker/clients/connected/v3.1").map(String::as_str), Some("0"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_message_expiry_interval_applies_to_3_1_1_messages_too() {
    let tb = TestBroker::start("max-message-expiry-interval: 1\n").await;
    let mut away = connect5("capped");
    away.properties.session_expiry_interval = Some(300);
    let (mut c, _) = open(&tb, away.clone()).await;
    subscribe(&mut c, 1, SubscribeFilter::new("cap/#", QoS::AtLeastOnce)).await;
    c.send(&Packet::Disconnect(Disconnect::default())).await;
    c.expect_closed().await;
    let (mut old, _) = RawClient::handshake(tb.addr, "old-publisher", true).await;
    old.send(&Packet::Publish(publish("cap/old", QoS::AtLeastOnce, 1, b"x"))).await;
    assert!(matches!(old.recv().await, Some(Packet::Puback(_))));
    // Time passing is what is tested: the cap is one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut c, ack) = open(&tb, Connect { clean_session: false, ..away }).await;
    assert!(ack.session_present);
    assert!(matches!(c.recv_within(Duration::from_millis(300)).await, Err(())), "a message older than the cap");
    // A fresh one is delivered, with the cap as its interval.
    old.send(&Packet::Publish(publish("cap/new", QoS::AtLeastOnce, 2, b"x"))).await;
    let p = expect_publish(&mut c).await;
    assert_eq!(p.properties.and_then(|p| p.message_expiry_interval), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_can_be_turned_off() {
    let tb = TestBroker::start("shared-subscriptions: false\n").await;
    let (mut c, ack) = open(&tb, connect5("no-share")).await;
    assert_eq!(ack.properties.shared_subscription_available, Some(false));
    let codes = subscribe(&mut c, 1, SubscribeFilter::new("$share/g/t", QoS::AtMostOnce)).await;
    assert_eq!(codes, [SubackCode::Failure(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_disconnect_fits_the_clients_maximum_packet_size() {
    let tb = TestBroker::start("").await;
    // Room for the CONNACK (16 bytes), not for a reason string.
    let mut tiny = connect5("tiny");
    tiny.properties.maximum_packet_size = Some(24);
    let (mut first, _) = open(&tb, tiny.clone()).await;
    let _second = connected(&tb, "tiny").await;
    let d = disconnected(&mut first).await;
    assert_eq!(
        (d.reason, d.reason_string),
        (ReasonCode::SESSION_TAKEN_OVER, None),
        "no reason string: it would not fit"
    );
    // Without a maximum, the reason string comes along.
    let (mut roomy, _) = open(&tb, connect5("roomy")).await;
    let _again = connected(&tb, "roomy").await;
    assert!(disconnected(&mut roomy).await.reason_string.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_subscriber_has_room_for_is_refused_with_quota_exceeded() {
    let tb = TestBroker::start("max-queued-messages: 2").await;
    let mut away = connect5("full");
    away.properties.session_expiry_interval = Some(300);
    let (mut c, _) = open(&tb, away).await;
    subscribe(&mut c, 1, SubscribeFilter::new("q/#", QoS::AtLeastOnce)).await;
    c.send(&Packet::Disconnect(Disconnect::default())).await;
    c.expect_closed().await;
    let mut p = connected(&tb, "pub").await;
    let mut reasons = Vec::new();
    for id in 1..=3u16 {
        p.send(&Packet::Publish(publish("q/x", QoS::AtLeastOnce, id, b"m"))).await;
        match p.recv().await {
            Some(Packet::Puback(a)) => reasons.push(a.reason),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(reasons, [ReasonCode::SUCCESS, ReasonCode::SUCCESS, ReasonCode::QUOTA_EXCEEDED]);
    // Counted for the client that dropped it.
    let metrics = tb.broker.render_metrics();
    assert!(metrics.contains("moth_client_messages_dropped_total{client_id=\"full\"} 1\n"), "{metrics}");
    // QoS 2: a failure PUBREC ends the flow, so the id is free at once.
    p.send(&Packet::Publish(publish("q/x", QoS::ExactlyOnce, 9, b"m"))).await;
    match p.recv().await {
        Some(Packet::Pubrec(a)) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    p.send(&Packet::Pubrel(Ack::new(9))).await;
    match p.recv().await {
        Some(Packet::Pubcomp(a)) => assert_eq!(a.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_towards_a_client_that_takes_them() {
    let tb = TestBroker::start("").await;
    let mut asks = connect5("alias-taker");
    asks.properties.topic_alias_maximum = Some(2);
    let (mut sub, _) = open(&tb, asks).await;
    subscribe(&mut sub, 1, SubscribeFilter::new("t/#", QoS::AtMostOnce)).await;
    for topic in ["t/first/long/topic", "t/first/long/topic", "t/second", "t/third", "t/second"] {
        tb.broker.publish(topic, "x", QoS::AtMostOnce, false).unwrap();
    }
    // (topic on the wire, alias): the first sending of each of the first two
    // topics carries topic and alias, a repeat only the alias; the third
    // topic, with no alias left, goes in full.
    let mut seen = Vec::new();
    for _ in 0..5 {
        let p = expect_publish(&mut sub).await;
        seen.push((p.topic.to_string(), p.topic_alias));
    }
    assert_eq!(
        seen,
        [
            ("t/first/long/topic".to_string(), Some(1)),
            (String::new(), Some(1)),
            ("t/second".to_string(), Some(2)),
            ("t/third".to_string(), None),
            (String::new(), Some(2)),
        ]
    );
    // A client that did not ask for aliases gets none.
    let mut plain = connected(&tb, "alias-none").await;
    subscribe(&mut plain, 1, SubscribeFilter::new("t/#", QoS::AtMostOnce)).await;
    tb.broker.publish("t/first/long/topic", "x", QoS::AtMostOnce, false).unwrap();
    tb.broker.publish("t/first/long/topic", "x", QoS::AtMostOnce, false).unwrap();
    for _ in 0..2 {
        let p = expect_publish(&mut plain).await;
        assert_eq!((&*p.topic, p.topic_alias), ("t/first/long/topic", None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_the_clients_maximum_packet_size_is_not_sent() {
    let tb = TestBroker::start("").await;
    let mut small = connect5("small-packets");
    small.properties.maximum_packet_size = Some(30);
    let (mut c, ack) = open(&tb, small).await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted, "the CONNACK fits in 30 bytes");
    // 40 filters: the SUBACK would be 45 bytes.
    let filters = (0..40).map(|i| SubscribeFilter::new(format!("f/{i}"), QoS::AtMostOnce)).collect();
    c.send(&Packet::Subscribe(Subscribe::new(1, filters))).await;
    let d = disconnected(&mut c).await;
    assert_eq!(d.reason, ReasonCode::PACKET_TOO_LARGE);
    assert!(d.reason_string.is_none(), "the reason string did not fit either");
    // A client that allows too little for any CONNACK is not answered.
    let mut tiny = connect5("tiny-packets");
    tiny.properties.maximum_packet_size = Some(4);
    let mut t = RawClient::connect(tb.addr).await;
    t.protocol = Protocol::V5;
    t.send(&Packet::Connect(Box::new(tiny))).await;
    match t.recv().await {
        None => {}
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::PACKET_TOO_LARGE);
            t.expect_closed().await;
        }
        other => panic!("nothing larger than 4 bytes may come, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_information_goes_only_to_a_client_that_asks_and_only_when_configured() {
    let asking = |id: &str| {
        let mut c = connect5(id);
        c.properties.request_response_information = Some(true);
        c
    };
    let tb = TestBroker::start("response-information: 'reply/{client_id}'\n").await;
    let (_a, ack) = open(&tb, asking("r1")).await;
    assert_eq!(ack.properties.response_information.as_deref(), Some("reply/r1"));
    // Not asked (absent, or 0): not sent [MQTT-3.1.2-28].
    let (_b, ack) = open(&tb, connect5("r2")).await;
    assert_eq!(ack.properties.response_information, None);
    let mut declined = connect5("r3");
    declined.properties.request_response_information = Some(false);
    let (_c, ack) = open(&tb, declined).await;
    assert_eq!(ack.properties.response_information, None);
    tb.broker.shutdown().await;

    let tb = TestBroker::start("").await;
    let (_d, ack) = open(&tb, asking("r4")).await;
    assert_eq!(ack.properties.response_information, None, "none configured: none sent");
    tb.broker.shutdown().await;
}
