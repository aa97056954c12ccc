//! The limits that keep one client from growing the broker without bound
//! (issue 12, point 5), through real sockets: what a client sees at each
//! limit and what the broker counts. Memory itself is measured in
//! `resources*.rs`, one test per process.

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{
    Ack, Connect, Packet, Protocol, Publish, ReasonCode, SubackCode, Subscribe, SubscribeFilter,
};
use moth_tests::{RawClient, TestBroker, connect_packet};

async fn suback(c: &mut RawClient, filters: &[&str]) -> Vec<SubackCode> {
    let filters = filters.iter().map(|f| SubscribeFilter::new(*f, QoS::AtLeastOnce)).collect();
    c.send(&Packet::Subscribe(Subscribe::new(1, filters))).await;
    match c.recv().await {
        Some(Packet::Suback(s)) => s.codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_subscriptions_per_client_refuses_the_filters_beyond_it() {
    let tb = TestBroker::start("max-subscriptions-per-client: 5").await;
    let (mut c, _) = RawClient::handshake(tb.addr, "many-filters", true).await;
    let codes = suback(&mut c, &["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "a/8"]).await;
    let granted = codes.iter().filter(|c| matches!(c, SubackCode::Granted(_))).count();
    assert_eq!(granted, 5, "{codes:?}");
    assert!(codes[5..].iter().all(|c| matches!(c, SubackCode::Failure(_))), "{codes:?}");
    // Replacing one it holds is not a new subscription.
    assert!(matches!(suback(&mut c, &["a/1"]).await[..], [SubackCode::Granted(_)]));
    // MQTT 5 says why.
    let mut v5 = RawClient::connect(tb.addr).await;
    v5.protocol = Protocol::V5;
    v5.send(&Packet::Connect(Box::new(Connect { protocol: Protocol::V5, ..connect_packet("v5-filters", true) }))).await;
    assert!(matches!(v5.recv().await, Some(Packet::Connack(_))));
    let codes = suback(&mut v5, &["b/1", "b/2", "b/3", "b/4", "b/5", "b/6"]).await;
    assert_eq!(codes[5], SubackCode::Failure(ReasonCode::QUOTA_EXCEEDED));
    assert_eq!(tb.broker.snapshot().subscriptions_refused, 4);
    assert!(tb.broker.render_metrics().contains("moth_subscriptions_refused_total 4\n"));
}

async fn publish_acked(c: &mut RawClient, topic: &str, payload: Bytes, retain: bool, id: u16) {
    c.send(&Packet::Publish(Publish::new(topic, payload, QoS::AtLeastOnce, retain, id))).await;
    match c.recv().await {
        Some(Packet::Puback(a)) if a.packet_id == id => {}
        other => panic!("expected PUBACK {id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_max_count_keeps_the_store_bounded_and_the_messages_flowing() {
    let tb = TestBroker::start("retained-max-count: 10").await;
    let (mut live, _) = RawClient::handshake(tb.addr, "live", true).await;
    suback(&mut live, &["r/#"]).await;
    let (mut p, _) = RawClient::handshake(tb.addr, "retainer", true).await;
    for i in 0..20u16 {
        publish_acked(&mut p, &format!("r/{i}"), Bytes::from_static(b"v"), true, i + 1).await;
    }
    assert_eq!(tb.broker.retained_count(), 10);
    assert_eq!(tb.broker.snapshot().retained_refused, 10);
    // Every one was still delivered to the live subscriber.
    for _ in 0..20 {
        match live.recv().await {
            Some(Packet::Publish(m)) => live.send(&Packet::Puback(Ack::new(m.packet_id))).await,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    // A kept topic can still be replaced and cleared, which makes room.
    publish_acked(&mut p, "r/0", Bytes::from_static(b"newer"), true, 100).await;
    publish_acked(&mut p, "r/1", Bytes::new(), true, 101).await;
    publish_acked(&mut p, "r/new", Bytes::from_static(b"v"), true, 102).await;
    assert_eq!((tb.broker.retained_count(), tb.broker.snapshot().retained_refused), (10, 10));
    assert!(tb.broker.render_metrics().contains("moth_retained_refused_total 10\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_max_bytes_counts_topic_and_payload() {
    let tb = TestBroker::start("retained-max-bytes: 5000").await;
    let (mut p, _) = RawClient::handshake(tb.addr, "retainer", true).await;
    for i in 0..10u16 {
        publish_acked(&mut p, &format!("b/{i}"), Bytes::from(vec![b'x'; 997]), true, i + 1).await;
    }
    // 3 bytes of topic + 997 of payload each: five fit in 5,000.
    assert_eq!(tb.broker.retained_count(), 5);
    // Replacing by a smaller one is never refused.
    publish_acked(&mut p, "b/0", Bytes::from_static(b"small"), true, 50).await;
    assert_eq!(tb.broker.retained_count(), 5);
    // and it made room for one more.
    publish_acked(&mut p, "b/extra", Bytes::from(vec![b'x'; 900]), true, 51).await;
    assert_eq!(tb.broker.retained_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_queued_bytes_bounds_what_an_offline_session_keeps() {
    let tb = TestBroker::start("max-queued-bytes: 10000").await;
    let (mut away, _) = RawClient::handshake(tb.addr, "away", false).await;
    suback(&mut away, &["q/#"]).await;
    away.send(&Packet::Disconnect(Default::default())).await;
    away.expect_closed().await;
    let (mut p, _) = RawClient::handshake(tb.addr, "filler", true).await;
    // 3 bytes of topic + 997 of payload: ten fit.
    for i in 0..25u16 {
        publish_acked(&mut p, "q/x", Bytes::from(vec![b'0' + (i % 10) as u8; 997]), false, i + 1).await;
    }
    assert_eq!(tb.broker.dropped_messages(), 15);
    let (mut back, ack) = RawClient::handshake(tb.addr, "away", false).await;
    assert!(matches!(ack, Packet::Connack(a) if a.session_present));
    let mut got = 0;
    while let Ok(Some(Packet::Publish(m))) = back.recv_within(std::time::Duration::from_millis(500)).await {
        back.send(&Packet::Puback(Ack::new(m.packet_id))).await;
        got += 1;
    }
    assert_eq!(got, 10, "what fitted in 10,000 bytes, the first ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_memory_limit_new_publishes_are_refused_and_the_broker_keeps_serving() {
    // A limit below what any broker process takes: reached at the first
    // sweep (twice a second).
    let tb = TestBroker::start("memory-limit: 1048576").await;
    let mut v5 = RawClient::connect(tb.addr).await;
    v5.protocol = Protocol::V5;
    v5.send(&Packet::Connect(Box::new(Connect { protocol: Protocol::V5, ..connect_packet("v5-pub", true) }))).await;
    assert!(matches!(v5.recv().await, Some(Packet::Connack(_))));
    // Event: the first refusal, once the sweep has flagged the limit.
    let deadline = tokio::time::Instant::now() + moth_tests::EVENT_TIMEOUT;
    let mut id = 0u16;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        id += 1;
        v5.send(&Packet::Publish(Publish::new("m/x", Bytes::from_static(b"x"), QoS::AtLeastOnce, false, id))).await;
        match v5.recv().await {
            Some(Packet::Puback(a)) if a.reason == ReasonCode::QUOTA_EXCEEDED => break,
            Some(Packet::Puback(_)) => tokio::time::sleep(std::time::Duration::from_millis(50)).await, // until the next sweep
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    // A 3.1.1 QoS 1 PUBLISH can be neither refused nor kept: the
    // connection ends, and nothing is acknowledged.
    let (mut old, _) = RawClient::handshake(tb.addr, "v3-pub", true).await;
    old.send(&Packet::Publish(Publish::new("m/x", Bytes::from_static(b"x"), QoS::AtLeastOnce, false, 1))).await;
    old.expect_closed().await;
    // Clients are still served otherwise: a ping is answered.
    let (mut other, _) = RawClient::handshake(tb.addr, "pinger", true).await;
    other.send(&Packet::Pingreq).await;
    assert!(matches!(other.recv().await, Some(Packet::Pingresp)));
    assert!(tb.broker.snapshot().publish_refused >= 2);
    assert!(tb.broker.render_metrics().contains("moth_publish_refused_total"));
}
