//! The embedding API: `Broker::new`, `start`, `shutdown`, `local_addr`, and
//! the in-process `publish`/`subscribe`, checked with real TCP clients.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use moth::{Broker, BrokerError, Config};
use moth_protocol::packet::{
    Ack, ConnectReturnCode, Disconnect, Packet, Publish, QoS, SubackCode, Subscribe, SubscribeFilter,
};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker};
use tokio::net::TcpStream;

fn broker(yaml: &str) -> Broker {
    let config = Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("config should parse: {e}\n{yaml}"));
    Broker::new(config).expect("broker builds")
}

const ONE_LISTENER: &str = "listeners:\n  default:\n    type: tcp\n  api:\n    bind: 127.0.0.1:0\n";

async fn handshake_ok(addr: SocketAddr, client_id: &str, clean: bool) -> (RawClient, bool) {
    let (c, ack) = RawClient::handshake(addr, client_id, clean).await;
    match ack {
        Packet::Connack(a) if a.code == ConnectReturnCode::Accepted => (c, a.session_present),
        other => panic!("expected CONNACK 0, got {other:?}"),
    }
}

async fn subscribe(c: &mut RawClient, filter: &str, qos: QoS) {
    c.send(&Packet::Subscribe(Subscribe::new(
        1,
        vec![SubscribeFilter {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: Default::default(),
        }],
    )))
    .await;
    match c.recv().await {
        Some(Packet::Suback(s)) => assert_eq!(s.codes, vec![SubackCode::Granted(qos)]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn next_publish(c: &mut RawClient) -> Publish {
    match c.recv().await {
        Some(Packet::Publish(p)) => {
            if p.qos == QoS::AtLeastOnce {
                c.send(&Packet::Puback(Ack::new(p.packet_id))).await;
            }
            p
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn publish_packet(topic: &str, payload: &str, qos: QoS, retain: bool, packet_id: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id,
        payload: payload.to_string().into(),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    })
}

async fn assert_refused(addr: SocketAddr) {
    match tokio::time::timeout(EVENT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "connect to {addr}: {e}"),
        Ok(Ok(_)) => panic!("{addr} still accepts connections"),
        Err(_) => panic!("connect to {addr} hung"),
    }
}

async fn recv_local(sub: &mut moth::LocalSubscription) -> moth::Message {
    tokio::time::timeout(EVENT_TIMEOUT, sub.recv())
        .await
        .expect("a message on the local subscription")
        .expect("the broker is running")
}

// ---------------------------------------------------------------------------
// Lifecycle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_returns_once_bound_and_local_addr_reports_the_ephemeral_port() {
    let b = broker(ONE_LISTENER);
    assert!(!b.is_running().await);
    assert_eq!(b.local_addr("api"), None, "no address before start");
    b.start().await.expect("start");
    assert!(b.is_running().await);
    let addr = b.local_addr("api").expect("listener `api` is bound");
    assert_ne!(addr.port(), 0, "the actual port, not the configured 0");
    assert_eq!(addr.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
    assert_eq!(b.local_addrs(), vec![("api".to_string(), addr)]);
    assert_eq!(b.local_addr("nope"), None);
    // Bound when start returned: a client gets in at once, no retry.
    handshake_ok(addr, "api-first", true).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_twice_is_an_error_and_the_broker_keeps_serving() {
    let b = broker(ONE_LISTENER);
    b.start().await.expect("start");
    let addr = b.local_addr("api").unwrap();
    match b.start().await {
        Err(BrokerError::AlreadyRunning) => {}
        other => panic!("second start should be AlreadyRunning, got {other:?}"),
    }
    // A clone controls the same broker.
    assert!(matches!(b.clone().start().await, Err(BrokerError::AlreadyRunning)));
    assert_eq!(b.local_addr("api"), Some(addr), "the running listener is untouched");
    handshake_ok(addr, "api-twice", true).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connected_clients_and_stops_listening() {
    let b = broker(ONE_LISTENER);
    b.start().await.expect("start");
    let addr = b.local_addr("api").unwrap();

    let (mut raw, _) = handshake_ok(addr, "api-raw", true).await;
    let mut opts = rumqttc::MqttOptions::new("api-rumqttc", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, events.poll()).await.expect("rumqttc event") {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("rumqttc could not connect: {e}"),
        }
    }

    tokio::time::timeout(EVENT_TIMEOUT, b.shutdown()).await.expect("shutdown completes");
    raw.expect_closed().await;
    // rumqttc reports the close as an error from its event loop.
    while tokio::time::timeout(EVENT_TIMEOUT, events.poll()).await.expect("rumqttc notices the close").is_ok() {}
    drop(client);
    assert!(!b.is_running().await);
    assert!(b.local_addrs().is_empty());
    assert_refused(addr).await;
    // A second shutdown does nothing.
    tokio::time::timeout(EVENT_TIMEOUT, b.shutdown()).await.expect("second shutdown returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_shutdown_serves_again_with_retained_messages_and_sessions() {
    let b = broker(ONE_LISTENER);
    b.start().await.expect("start");
    let addr = b.local_addr("api").unwrap();

    // A retained message from a TCP client, and a persistent session.
    let (mut publisher, _) = handshake_ok(addr, "api-retainer", true).await;
    publisher.send(&publish_packet("api/retained", "survives", QoS::AtLeastOnce, true, 7)).await;
    assert_eq!(publisher.recv().await, Some(Packet::Puback(Ack::new(7))));
    let (mut keeper, present) = handshake_ok(addr, "api-keeper", false).await;
    assert!(!present);
    subscribe(&mut keeper, "api/persist", QoS::AtLeastOnce).await;
    keeper.send(&Packet::Disconnect(Disconnect::default())).await;
    keeper.expect_closed().await;

    b.shutdown().await;
    assert_eq!(b.retained_count(), 1);
    b.start().await.expect("start again after shutdown");
    assert!(b.is_running().await);
    let addr = b.local_addr("api").expect("bound again");

    b.publish("api/persist", "queued while away", QoS::AtLeastOnce, false).expect("publish");
    let (mut keeper, present) = handshake_ok(addr, "api-keeper", false).await;
    assert!(present, "the persistent session survived the restart");
    let p = next_publish(&mut keeper).await;
    assert_eq!((&*p.topic, &p.payload[..], p.qos), ("api/persist", &b"queued while away"[..], QoS::AtLeastOnce));

    let (mut late, _) = handshake_ok(addr, "api-late", true).await;
    subscribe(&mut late, "api/retained", QoS::AtLeastOnce).await;
    let p = next_publish(&mut late).await;
    assert_eq!(&*p.topic, "api/retained");
    assert_eq!(&p.payload[..], b"survives");
    assert!(p.retain, "sent because of the subscription: retain flag set");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_naming_the_listener_whose_port_is_taken_and_leaves_nothing_open() {
    let taken = StdListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().unwrap().port();
    // A port that was free a moment ago, for the listener that can bind.
    let free_port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Named so that the free one comes first in YAML and in name order.
    let b = broker(&format!(
        "listeners:\n  default:\n    type: tcp\n  a-free:\n    bind: 127.0.0.1:{free_port}\n  \
         b-taken:\n    bind: 127.0.0.1:{taken_port}\n"
    ));
    let err = b.start().await.expect_err("start must fail: b-taken's port is in use");
    match &err {
        BrokerError::Bind { listener, addr, .. } => {
            assert_eq!(listener, "b-taken");
            assert_eq!(addr.port(), taken_port);
        }
        other => panic!("expected a Bind error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("b-taken") && text.contains(&taken_port.to_string()), "{text}");
    assert!(!b.is_running().await);
    assert!(b.local_addrs().is_empty());
    assert_refused(SocketAddr::from(([127, 0, 0, 1], free_port))).await;

    // Once the port is free, the same broker starts.
    drop(taken);
    b.start().await.expect("start once the port is free");
    handshake_ok(b.local_addr("b-taken").unwrap(), "api-after", true).await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// In-process publish and subscribe

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_publish_reaches_a_tcp_subscriber() {
    let b = broker(ONE_LISTENER);
    b.start().await.unwrap();
    let (mut c, _) = handshake_ok(b.local_addr("api").unwrap(), "api-sub", true).await;
    subscribe(&mut c, "api/in/#", QoS::AtLeastOnce).await;
    b.publish("api/in/one", "from the app", QoS::AtLeastOnce, false).expect("publish");
    b.publish("api/in/two", &b"bytes"[..], QoS::AtMostOnce, false).expect("publish");
    let p = next_publish(&mut c).await;
    assert_eq!(
        (&*p.topic, &p.payload[..], p.qos, p.retain),
        ("api/in/one", &b"from the app"[..], QoS::AtLeastOnce, false)
    );
    let p = next_publish(&mut c).await;
    assert_eq!((&*p.topic, p.qos), ("api/in/two", QoS::AtMostOnce));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_subscription_receives_tcp_publishes_at_the_lower_qos() {
    let b = broker(ONE_LISTENER);
    b.start().await.unwrap();
    let mut sub = b.subscribe("api/+/t", QoS::AtLeastOnce).expect("subscribe");
    assert_eq!(sub.filter(), "api/+/t");
    let (mut c, _) = handshake_ok(b.local_addr("api").unwrap(), "api-pub", true).await;

    // QoS 2 in, QoS 1 out (the subscription's maximum).
    c.send(&publish_packet("api/a/t", "two", QoS::ExactlyOnce, false, 5)).await;
    assert_eq!(c.recv().await, Some(Packet::Pubrec(Ack::new(5))));
    c.send(&Packet::Pubrel(Ack::new(5))).await;
    assert_eq!(c.recv().await, Some(Packet::Pubcomp(Ack::new(5))));
    let m = recv_local(&mut sub).await;
    assert_eq!((&*m.topic, &m.payload[..], m.qos, m.retain), ("api/a/t", &b"two"[..], QoS::AtLeastOnce, false));

    // QoS 0 stays QoS 0; a non-matching topic is not delivered.
    c.send(&publish_packet("api/b/other", "no", QoS::AtMostOnce, false, 0)).await;
    c.send(&publish_packet("api/b/t", "zero", QoS::AtMostOnce, false, 0)).await;
    let m = recv_local(&mut sub).await;
    assert_eq!((&*m.topic, m.qos), ("api/b/t", QoS::AtMostOnce));
    assert!(sub.try_recv().is_none());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_subscription_gets_retained_messages_first_with_the_retain_flag() {
    let b = broker(ONE_LISTENER);
    // Works without start: in-process use needs no listener.
    b.publish("api/r", "old", QoS::AtLeastOnce, true).expect("publish retained");
    let mut sub = b.subscribe("api/r", QoS::ExactlyOnce).expect("subscribe");
    let m = sub.try_recv().expect("the retained message is queued at subscribe");
    assert_eq!((&m.payload[..], m.qos, m.retain), (&b"old"[..], QoS::AtLeastOnce, true));
    b.publish("api/r", "new", QoS::AtMostOnce, false).unwrap();
    let m = recv_local(&mut sub).await;
    assert_eq!((&m.payload[..], m.retain), (&b"new"[..], false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_and_filters_are_errors() {
    let b = broker(ONE_LISTENER);
    for topic in ["", "a/+", "a/#", "#", "+", "a\0b"] {
        match b.publish(topic, "x", QoS::AtMostOnce, false) {
            Err(BrokerError::InvalidTopic(t)) => assert_eq!(t, topic),
            other => panic!("publish to {topic:?} should be InvalidTopic, got {other:?}"),
        }
    }
    for filter in ["", "a/#/b", "a#", "a/b+", "#/a", "a\0b"] {
        match b.subscribe(filter, QoS::AtMostOnce) {
            Err(BrokerError::InvalidFilter(f)) => assert_eq!(f, filter),
            Err(other) => panic!("subscribe to {filter:?} should be InvalidFilter, got {other:?}"),
            Ok(_) => panic!("subscribe to {filter:?} should be InvalidFilter, got a subscription"),
        }
    }
    // Valid ones are fine.
    b.publish("a/b", "x", QoS::AtMostOnce, false).expect("valid topic");
    drop(b.subscribe("a/+/#", QoS::AtMostOnce).expect("valid filter"));
    assert_eq!(b.retained_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_local_subscription_is_unsubscribed() {
    let b = broker(ONE_LISTENER);
    let queue = b.config().limits.max_queued_messages;
    assert!(queue > 0 && queue <= 1_000_000, "max-queued-messages default {queue}");
    let overflow = queue + 10;

    // Control: a live subscription nobody reads overflows and counts drops,
    // so the counter is a faithful witness of a subscription receiving.
    let kept = b.subscribe("api/kept", QoS::AtMostOnce).unwrap();
    for _ in 0..overflow {
        b.publish("api/kept", "x", QoS::AtMostOnce, false).unwrap();
    }
    let after_control = b.dropped_messages();
    assert!(after_control >= 10, "a full queue drops: {after_control} dropped");

    // A dropped subscription receives nothing, so nothing is dropped for it.
    let gone = b.subscribe("api/gone", QoS::AtMostOnce).unwrap();
    drop(gone);
    for _ in 0..overflow {
        b.publish("api/gone", "x", QoS::AtMostOnce, false).unwrap();
    }
    assert_eq!(b.dropped_messages(), after_control, "the dropped subscription still received messages");

    // And a TCP client on the same filter still gets them (only the local one left).
    b.start().await.unwrap();
    let (mut c, _) = handshake_ok(b.local_addr("api").unwrap(), "api-after-drop", true).await;
    subscribe(&mut c, "api/gone", QoS::AtMostOnce).await;
    b.publish("api/gone", "to tcp", QoS::AtMostOnce, false).unwrap();
    assert_eq!(&next_publish(&mut c).await.payload[..], b"to tcp");
    drop(kept);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_publish_fails_and_local_subscriptions_end() {
    let tb = TestBroker::start("").await;
    let mut sub = tb.broker.subscribe("end/#", QoS::AtMostOnce).expect("subscribe");
    tb.broker.publish("end/a", "queued before", QoS::AtMostOnce, false).expect("publish while running");
    // A recv that waits while the broker shuts down is woken with the end.
    let mut waiting = tb.broker.subscribe("never/#", QoS::AtMostOnce).expect("subscribe");
    let waiter = tokio::spawn(async move { waiting.recv().await });
    tokio::task::yield_now().await;
    tb.broker.shutdown().await;
    let ended = tokio::time::timeout(EVENT_TIMEOUT, waiter).await.expect("woken by the shutdown").expect("task");
    assert!(ended.is_none(), "no message: the end of the stream");
    // What was queued before is still taken, then the stream ends.
    assert_eq!(sub.recv().await.map(|m| m.payload), Some(bytes::Bytes::from_static(b"queued before")));
    assert!(sub.recv().await.is_none());
    assert!(matches!(tb.broker.publish("end/b", "x", QoS::AtMostOnce, false), Err(moth::BrokerError::Stopped)));
    // Started again, it takes messages again.
    tb.broker.start().await.expect("start again");
    tb.broker.publish("end/c", "again", QoS::AtMostOnce, false).expect("publish after a new start");
}
