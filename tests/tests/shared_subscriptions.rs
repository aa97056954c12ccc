//! Shared subscriptions, `$share/{group}/{filter}`, with MQTT 5 and 3.1.1
//! members on raw connections: one delivery per group, round robin, and
//! the unfinished messages of a member that leaves go to another one.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{
    Ack, Connect, ConnectProperties, ConnectReturnCode, Packet, Protocol, Publish, ReasonCode, SubackCode, Subscribe,
    SubscribeFilter,
};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

async fn connect(tb: &TestBroker, client_id: &str, protocol: Protocol, receive_maximum: Option<u16>) -> RawClient {
    let mut c = RawClient::connect(tb.addr).await;
    c.protocol = protocol;
    let properties = ConnectProperties { receive_maximum, ..ConnectProperties::default() };
    let connect = Connect { protocol, properties, ..connect_packet(client_id, true) };
    c.send(&Packet::Connect(Box::new(connect))).await;
    match c.recv().await {
        Some(Packet::Connack(a)) if a.code == ConnectReturnCode::Accepted => c,
        other => panic!("{client_id}: expected CONNACK 0, got {other:?}"),
    }
}

async fn subscribe(c: &mut RawClient, filter: &str, qos: QoS) -> SubackCode {
    c.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new(filter, qos)]))).await;
    match c.recv().await {
        Some(Packet::Suback(s)) => s.codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Publishes `n` QoS 1 messages `0..n` on `topic` from a 3.1.1 client.
async fn publish_n(tb: &TestBroker, topic: &str, n: u16) {
    let mut p = connect(tb, "publisher", Protocol::V311, None).await;
    for i in 0..n {
        let msg = Publish::new(topic, Bytes::from(i.to_string()), QoS::AtLeastOnce, false, i + 1);
        p.send(&Packet::Publish(msg)).await;
        assert!(matches!(p.recv().await, Some(Packet::Puback(a)) if a.packet_id == i + 1));
    }
}

/// Reads PUBLISH packets, acknowledging each when `ack`: waits for
/// `expected` of them (each within the event timeout), then takes whatever
/// else arrives before a short quiet spell, so that extra copies are seen
/// too. Returns the payloads.
async fn drain(c: &mut RawClient, expected: usize, ack: bool) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let wait = if got.len() < expected { EVENT_TIMEOUT } else { Duration::from_millis(300) };
        let Ok(Some(packet)) = c.recv_within(wait).await else { break };
        if let Packet::Publish(p) = packet {
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
            if ack && p.qos == QoS::AtLeastOnce {
                c.send(&Packet::Puback(Ack::new(p.packet_id))).await;
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_goes_to_one_member_round_robin_across_versions() {
    let tb = TestBroker::start("").await;
    let mut members = Vec::new();
    for (id, protocol) in [("m1", Protocol::V5), ("m2", Protocol::V311), ("m3", Protocol::V5)] {
        let mut c = connect(&tb, id, protocol, None).await;
        assert_eq!(
            subscribe(&mut c, "$share/workers/jobs/#", QoS::AtLeastOnce).await,
            SubackCode::Granted(QoS::AtLeastOnce)
        );
        members.push(c);
    }
    // Another group on the same filter, and an ordinary subscriber.
    let mut other_group = connect(&tb, "o1", Protocol::V5, None).await;
    subscribe(&mut other_group, "$share/audit/jobs/#", QoS::AtLeastOnce).await;
    let mut plain = connect(&tb, "plain", Protocol::V311, None).await;
    subscribe(&mut plain, "jobs/#", QoS::AtLeastOnce).await;

    publish_n(&tb, "jobs/x", 30).await;
    let mut seen = BTreeMap::new();
    for (i, m) in members.iter_mut().enumerate() {
        let got = drain(m, 10, true).await;
        assert_eq!(got.len(), 10, "member {i}: round robin over three connected members: {got:?}");
        for payload in got {
            *seen.entry(payload).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 30, "every message reached the group");
    assert!(seen.values().all(|&n| n == 1), "once each: {seen:?}");
    assert_eq!(drain(&mut other_group, 30, true).await.len(), 30, "each group gets every message");
    assert_eq!(drain(&mut plain, 30, true).await.len(), 30, "ordinary subscriptions are not affected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_members_unfinished_messages_go_to_another_member() {
    let tb = TestBroker::start("").await;
    // `slow` takes one message in flight at a time and never acknowledges.
    let mut slow = connect(&tb, "slow", Protocol::V5, Some(1)).await;
    subscribe(&mut slow, "$share/g/work", QoS::AtLeastOnce).await;
    let mut steady = connect(&tb, "steady", Protocol::V5, None).await;
    subscribe(&mut steady, "$share/g/work", QoS::AtLeastOnce).await;
    publish_n(&tb, "work", 10).await;
    let at_slow = drain(&mut slow, 1, false).await;
    assert_eq!(at_slow.len(), 1, "one in flight, four queued behind it: {at_slow:?}");
    let mut at_steady = drain(&mut steady, 5, true).await;
    assert_eq!(at_steady.len(), 5, "{at_steady:?}");
    // slow's connection drops: its in-flight and queued messages move.
    drop(slow);
    at_steady.extend(drain(&mut steady, 5, true).await);
    at_steady.sort_by_key(|p| p.parse::<u32>().unwrap_or(u32::MAX));
    let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(at_steady, all, "every message reached a member that acknowledged it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retained_messages_on_a_shared_subscription_and_bad_filters_are_refused() {
    let tb = TestBroker::start("").await;
    tb.broker.publish("kept/t", "retained", QoS::AtLeastOnce, true).unwrap();
    let mut c = connect(&tb, "sharer", Protocol::V5, None).await;
    subscribe(&mut c, "$share/g/kept/#", QoS::AtLeastOnce).await;
    assert!(
        matches!(c.recv_within(Duration::from_millis(300)).await, Err(())),
        "retained sent to a shared subscription"
    );
    // `$share/g` has no filter: the connection ends with 0x8F.
    c.send(&Packet::Subscribe(Subscribe::new(2, vec![SubscribeFilter::new("$share/g", QoS::AtMostOnce)]))).await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::TOPIC_FILTER_INVALID),
        other => panic!("expected DISCONNECT 0x8F, got {other:?}"),
    }
    c.expect_closed().await;
}
