//! Delivery semantics end to end: QoS, retained messages, sessions,
//! wildcards, wills, keep-alive and limits, driven by a real MQTT client
//! library (rumqttc) over real sockets, with [`RawClient`] where exact
//! control over the bytes or the timing is needed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use moth_protocol::codec;
use moth_protocol::packet::{Connack, Connect, ConnectReturnCode, Packet, Protocol, Subscribe, SubscribeFilter, Will};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// A rumqttc client whose event loop runs in its own task
// ---------------------------------------------------------------------------

/// A connected rumqttc client. Its event loop is polled in a spawned task
/// that forwards every incoming packet (and the error that ends the loop) to
/// a channel; the loop is not restarted after an error, so a close by the
/// broker is observable.
struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<rumqttc::Packet, String>>,
    task: JoinHandle<()>,
    /// PUBLISHes that arrived while waiting for something else.
    pending: VecDeque<rumqttc::Publish>,
    session_present: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    async fn connect(tb: &TestBroker, id: &str) -> Client {
        Client::connect_with(tb.client_options(id)).await
    }

    async fn connect_persistent(tb: &TestBroker, id: &str) -> Client {
        let mut o = tb.client_options(id);
        o.set_clean_session(false);
        Client::connect_with(o).await
    }

    async fn connect_with(options: MqttOptions) -> Client {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            break;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        break;
                    }
                }
            }
        });
        let mut c = Client { client, rx, task, pending: VecDeque::new(), session_present: false };
        match c.next().await {
            rumqttc::Packet::ConnAck(ack) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                c.session_present = ack.session_present;
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
        c
    }

    /// The next incoming packet; panics on timeout or when the connection ended.
    async fn next(&mut self) -> rumqttc::Packet {
        match tokio::time::timeout(EVENT_TIMEOUT, self.rx.recv()).await {
            Err(_) => panic!("no packet within {EVENT_TIMEOUT:?}"),
            Ok(None) => panic!("event loop ended"),
            Ok(Some(Err(e))) => panic!("connection ended: {e}"),
            Ok(Some(Ok(p))) => p,
        }
    }

    /// The next packet other than a PUBLISH or an acknowledgement of our own
    /// publishes; PUBLISHes are kept for `recv_publish`.
    async fn next_control(&mut self) -> rumqttc::Packet {
        loop {
            match self.next().await {
                rumqttc::Packet::Publish(p) => self.pending.push_back(p),
                rumqttc::Packet::PubAck(_)
                | rumqttc::Packet::PubRec(_)
                | rumqttc::Packet::PubComp(_)
                | rumqttc::Packet::PingResp => {}
                other => return other,
            }
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> SubscribeReasonCode {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        match self.next_control().await {
            rumqttc::Packet::SubAck(ack) => {
                assert_eq!(ack.return_codes.len(), 1);
                ack.return_codes[0]
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes and asserts the granted QoS is the requested one.
    async fn subscribed(&mut self, filter: &str, qos: rumqttc::QoS) {
        assert_eq!(self.subscribe(filter, qos).await, SubscribeReasonCode::Success(qos), "SUBACK for {filter}");
    }

    async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.expect("unsubscribe request");
        match self.next_control().await {
            rumqttc::Packet::UnsubAck(_) => {}
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    async fn publish(&self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, qos, retain, payload).await.expect("publish request");
    }

    /// Publishes at QoS 1 and waits for the PUBACK: the broker has routed it.
    async fn publish_acked(&mut self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        self.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload).await;
        loop {
            match self.next().await {
                rumqttc::Packet::PubAck(_) => return,
                rumqttc::Packet::Publish(p) => self.pending.push_back(p),
                _ => {}
            }
        }
    }

    /// The next PUBLISH received.
    async fn recv_publish(&mut self) -> rumqttc::Publish {
        if let Some(p) = self.pending.pop_front() {
            return p;
        }
        loop {
            match self.next().await {
                rumqttc::Packet::Publish(p) => return p,
                rumqttc::Packet::PubAck(_)
                | rumqttc::Packet::PubRec(_)
                | rumqttc::Packet::PubComp(_)
                | rumqttc::Packet::PubRel(_)
                | rumqttc::Packet::PingResp => {}
                other => panic!("expected a PUBLISH, got {other:?}"),
            }
        }
    }

    /// The next PUBLISH's topic and payload as strings.
    async fn recv_text(&mut self) -> (String, String) {
        let p = self.recv_publish().await;
        (p.topic, String::from_utf8_lossy(&p.payload).into_owned())
    }

    /// Sends DISCONNECT and waits until the broker has closed the connection.
    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        loop {
            match tokio::time::timeout(EVENT_TIMEOUT, self.rx.recv()).await {
                Err(_) => panic!("broker did not close the connection after DISCONNECT"),
                Ok(None) | Ok(Some(Err(_))) => return,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Drops the socket without DISCONNECT (as a crashed client would).
    async fn drop_connection(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

fn q(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

use rumqttc::QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

// ---------------------------------------------------------------------------
// QoS
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_4_6_delivered_qos_is_min_of_publish_and_granted() {
    let tb = TestBroker::start("").await;
    let mut subs = Vec::new();
    for g in 0..3u8 {
        let mut s = Client::connect(&tb, &format!("sub-g{g}")).await;
        s.subscribed("qos/t", q(g)).await;
        subs.push(s);
    }
    let mut publisher = Client::connect(&tb, "pub").await;
    for p in 0..3u8 {
        publisher.publish("qos/t", q(p), false, format!("p{p}")).await;
    }
    for (g, s) in subs.iter_mut().enumerate() {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let m = s.recv_publish().await;
            let p: u8 = String::from_utf8_lossy(&m.payload)[1..].parse().unwrap();
            assert_eq!(m.qos, q(p.min(g as u8)), "publish QoS {p}, granted QoS {g}");
            assert!(!m.retain);
            seen.push(p);
        }
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2], "subscriber with granted QoS {g}");
    }
    // Publisher's own flows completed (PUBACK / PUBCOMP received).
    publisher.publish_acked("qos/end", false, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_qos_caps_granted_qos() {
    let tb = TestBroker::start("max-qos: 1").await;
    let mut s = Client::connect(&tb, "capped").await;
    assert_eq!(s.subscribe("mq/2", Q2).await, SubscribeReasonCode::Success(Q1));
    assert_eq!(s.subscribe("mq/1", Q1).await, SubscribeReasonCode::Success(Q1));
    assert_eq!(s.subscribe("mq/0", Q0).await, SubscribeReasonCode::Success(Q0));
    let p = Client::connect(&tb, "capped-pub").await;
    p.publish("mq/2", Q2, false, "x").await;
    let m = s.recv_publish().await;
    assert_eq!(m.qos, Q1, "delivered at the granted (capped) QoS");
}

// ---------------------------------------------------------------------------
// Retained messages
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_retained_messages() {
    let tb = TestBroker::start("").await;
    let mut p = Client::connect(&tb, "ret-pub").await;
    p.publish_acked("ret/a", true, "v1").await;
    assert_eq!(tb.broker.retained_count(), 1);

    // [MQTT-3.3.1-6, -8]: a new subscription gets the retained message with RETAIN=1.
    let mut s = Client::connect(&tb, "ret-sub").await;
    s.subscribed("ret/#", Q1).await;
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref(), m.retain), ("ret/a", &b"v1"[..], true));

    // [MQTT-3.3.1-9]: forwarded live to an existing subscription with RETAIN=0.
    p.publish_acked("ret/a", true, "v2").await;
    let m = s.recv_publish().await;
    assert_eq!((m.payload.as_ref(), m.retain), (&b"v2"[..], false));

    // [MQTT-3.3.1-5]: the newer message replaced the older one.
    let mut s2 = Client::connect(&tb, "ret-sub2").await;
    s2.subscribed("ret/#", Q1).await;
    let m = s2.recv_publish().await;
    assert_eq!((m.payload.as_ref(), m.retain), (&b"v2"[..], true));

    // [MQTT-3.3.1-10, -11]: an empty retained message clears, is delivered
    // normally to existing subscribers, and is not stored.
    p.publish_acked("ret/a", true, "").await;
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.len(), m.retain), ("ret/a", 0, false));
    assert_eq!(tb.broker.retained_count(), 0);
    let mut s3 = Client::connect(&tb, "ret-sub3").await;
    s3.subscribed("ret/#", Q1).await;
    p.publish_acked("ret/end", false, "end").await;
    assert_eq!(s3.recv_text().await, ("ret/end".into(), "end".into()), "nothing retained is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_qos_is_min_of_stored_and_granted() {
    let tb = TestBroker::start("").await;
    tb.broker.publish("rq/a", "two", moth::QoS::ExactlyOnce, true).unwrap();
    let mut s0 = Client::connect(&tb, "rq0").await;
    s0.subscribed("rq/+", Q0).await;
    let m = s0.recv_publish().await;
    assert_eq!((m.qos, m.retain), (Q0, true));
    let mut s2 = Client::connect(&tb, "rq2").await;
    s2.subscribed("rq/#", Q2).await;
    let m = s2.recv_publish().await;
    assert_eq!((m.qos, m.retain), (Q2, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_follow_wildcard_rules() {
    let tb = TestBroker::start("").await;
    for t in ["a", "a/b", "a/b/c", "/lead", "$foo/x", "$SYS/x"] {
        tb.broker.publish(t, t.to_string(), moth::QoS::AtLeastOnce, true).unwrap();
    }
    assert_eq!(tb.broker.retained_count(), 6);
    let cases: &[(&str, &[&str])] = &[
        ("#", &["/lead", "a", "a/b", "a/b/c"]),
        ("a/#", &["a", "a/b", "a/b/c"]),
        ("+", &["a"]),
        ("+/+", &["/lead", "a/b"]),
        ("+/x", &[]),
        ("+/#", &["/lead", "a", "a/b", "a/b/c"]),
        ("$foo/#", &["$foo/x"]),
        ("$SYS/+", &["$SYS/x"]),
        ("a/+/c", &["a/b/c"]),
    ];
    for (i, (filter, expected)) in cases.iter().enumerate() {
        let mut c = Client::connect(&tb, &format!("rw-{i}")).await;
        c.subscribed(filter, Q1).await;
        // A live marker: retained messages are queued before the SUBACK.
        c.subscribed("end", Q1).await;
        tb.broker.publish("end", "end", moth::QoS::AtLeastOnce, false).unwrap();
        let mut got = Vec::new();
        loop {
            let m = c.recv_publish().await;
            if m.topic == "end" && !m.retain {
                break;
            }
            assert!(m.retain, "{filter}: {} not flagged retained", m.topic);
            got.push(m.topic);
        }
        got.sort();
        assert_eq!(got, *expected, "retained messages for {filter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_beyond_the_queue_limit_are_delivered_or_counted() {
    // [MQTT-3.3.1-6] says every matching retained message is sent on
    // subscribe. moth bounds each session's queue; whatever it cannot keep
    // must at least be counted as dropped, like any other overflow.
    let tb = TestBroker::start("max-queued-messages: 5").await;
    for i in 0..10 {
        tb.broker.publish(&format!("many/{i}"), format!("{i}"), moth::QoS::AtLeastOnce, true).unwrap();
    }
    assert_eq!(tb.broker.retained_count(), 10);
    let mut c = Client::connect(&tb, "many-retained").await;
    c.subscribed("many/#", Q1).await;
    c.subscribed("end", Q1).await;
    tb.broker.publish("end", "end", moth::QoS::AtLeastOnce, false).unwrap();
    let mut received = 0u64;
    loop {
        let m = c.recv_publish().await;
        if m.topic == "end" {
            break;
        }
        assert!(m.retain);
        received += 1;
    }
    assert_eq!(
        received + tb.broker.dropped_messages(),
        10,
        "{received} retained messages delivered, {} counted as dropped",
        tb.broker.dropped_messages()
    );
}

// ---------------------------------------------------------------------------
// Wildcards and topic matching
// ---------------------------------------------------------------------------

/// Receives until the `end` marker and returns the topics before it.
async fn topics_until_end(c: &mut Client) -> Vec<String> {
    let mut topics = Vec::new();
    loop {
        let (t, _) = c.recv_text().await;
        if t == "end" {
            return topics;
        }
        topics.push(t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_wildcards_and_dollar_topics() {
    let tb = TestBroker::start("").await;
    let cases: &[(&str, &[&str])] = &[
        ("s/+/t", &["s/x/t"]),
        ("#", &["a", "a/b", "a/b/c", "s/x/t", "s/x/y/t", "/lead"]),
        ("a/#", &["a", "a/b", "a/b/c"]),
        ("+", &["a"]),
        ("+/+", &["a/b", "/lead"]),
        ("+/x", &[]),
        ("$foo/#", &["$foo/x"]),
        ("$SYS/+", &["$SYS/x"]),
        ("+/#", &["a", "a/b", "a/b/c", "s/x/t", "s/x/y/t", "/lead"]),
    ];
    let mut clients = Vec::new();
    for (i, (filter, _)) in cases.iter().enumerate() {
        let mut c = Client::connect(&tb, &format!("wild-{i}")).await;
        c.subscribed(filter, Q1).await;
        if *filter != "#" && *filter != "+" && *filter != "+/#" {
            c.subscribed("end", Q1).await;
        }
        clients.push(c);
    }
    for t in ["a", "a/b", "a/b/c", "s/x/t", "s/x/y/t", "/lead", "$foo/x", "$SYS/x", "end"] {
        tb.broker.publish(t, t.to_string(), moth::QoS::AtLeastOnce, false).unwrap();
    }
    for ((filter, expected), c) in cases.iter().zip(clients.iter_mut()) {
        assert_eq!(topics_until_end(c).await, *expected, "filter {filter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_publish_to_sys() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "sys-sub").await;
    s.subscribed("$SYS/#", Q1).await;
    // The broker's own retained version comes first.
    assert_eq!(s.recv_text().await.0, "$SYS/broker/version");
    s.subscribed("end", Q1).await;
    let mut p = Client::connect(&tb, "sys-pub").await;
    // Acknowledged (3.1.1 has no negative PUBACK) but not routed.
    p.publish_acked("$SYS/broker/uptime", false, "fake").await;
    p.publish_acked("$SYS", false, "fake").await;
    p.publish_acked("end", false, "end").await;
    assert_eq!(s.recv_text().await.0, "end", "a client's $SYS publish was routed");
    // The broker itself may publish there.
    tb.broker.publish("$SYS/x", "real", moth::QoS::AtLeastOnce, false).unwrap();
    assert_eq!(s.recv_text().await, ("$SYS/x".into(), "real".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_one_copy_at_highest_qos() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "overlap").await;
    s.subscribed("o/#", Q0).await;
    s.subscribed("o/+", Q2).await;
    s.subscribed("o/a", Q1).await;
    let mut p = Client::connect(&tb, "overlap-pub").await;
    p.publish("o/a", Q2, false, "one").await;
    p.publish_acked("o/end", false, "end").await;
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.qos), ("o/a", Q2));
    let m = s.recv_publish().await;
    assert_eq!(m.topic, "o/end", "second copy of o/a delivered");
    assert_eq!(m.qos, Q1, "o/end matches o/# (0) and o/+ (2), published at 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_replaces_qos_without_duplicates() {
    // [MQTT-3.8.4-3]: a SUBSCRIBE for an existing filter replaces it.
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "resub").await;
    s.subscribed("rs/t", Q2).await;
    s.subscribed("rs/t", Q0).await;
    tb.broker.publish("rs/t", "x", moth::QoS::ExactlyOnce, false).unwrap();
    tb.broker.publish("rs/t", "end", moth::QoS::AtMostOnce, false).unwrap();
    let m = s.recv_publish().await;
    assert_eq!((m.payload.as_ref(), m.qos), (&b"x"[..], Q0));
    assert_eq!(s.recv_text().await.1, "end");
    // Retained messages matching the filter are sent again on each SUBSCRIBE.
    tb.broker.publish("rs/t", "kept", moth::QoS::AtLeastOnce, true).unwrap();
    let m = s.recv_publish().await;
    assert_eq!((m.payload.as_ref(), m.retain), (&b"kept"[..], false));
    s.subscribed("rs/t", Q1).await;
    let m = s.recv_publish().await;
    assert_eq!((m.payload.as_ref(), m.retain, m.qos), (&b"kept"[..], true, Q1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "unsub").await;
    s.subscribed("u/a", Q1).await;
    s.subscribed("u/end", Q1).await;
    let mut p = Client::connect(&tb, "unsub-pub").await;
    p.publish_acked("u/a", false, "before").await;
    assert_eq!(s.recv_text().await.1, "before");
    s.unsubscribe("u/a").await;
    p.publish_acked("u/a", false, "after").await;
    p.publish_acked("u/end", false, "end").await;
    assert_eq!(s.recv_text().await, ("u/end".into(), "end".into()), "delivered after UNSUBSCRIBE");
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_queues_qos1_and_qos2_while_offline() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect_persistent(&tb, "persist").await;
    assert!(!s.session_present, "first connection: no session");
    s.subscribed("p/#", Q2).await;
    s.disconnect().await;

    let mut p = Client::connect(&tb, "persist-pub").await;
    p.publish("p/q0", Q0, false, "lost").await;
    p.publish_acked("p/q1", false, "q1").await;
    p.publish("p/q2", Q2, false, "q2").await;
    p.publish_acked("p/q1b", false, "q1b").await;

    let mut s = Client::connect_persistent(&tb, "persist").await;
    assert!(s.session_present, "[MQTT-3.2.2-2] session present");
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.qos), ("p/q1", Q1), "QoS 0 is not kept for an offline client");
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.qos), ("p/q2", Q2));
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.qos), ("p/q1b", Q1));
    // The subscription survived too: live messages keep flowing.
    p.publish_acked("p/end", false, "end").await;
    assert_eq!(s.recv_text().await.0, "p/end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_session_discards_persistent_state() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect_persistent(&tb, "cleaner").await;
    s.subscribed("c/#", Q1).await;
    s.disconnect().await;
    let mut p = Client::connect(&tb, "cleaner-pub").await;
    p.publish_acked("c/queued", false, "queued").await;

    // Reconnect with clean session 1: nothing present, nothing delivered.
    let mut s = Client::connect(&tb, "cleaner").await;
    assert!(!s.session_present, "[MQTT-3.2.2-1]");
    s.subscribed("m/end", Q1).await;
    p.publish_acked("c/live", false, "old subscription").await;
    p.publish_acked("m/end", false, "end").await;
    assert_eq!(s.recv_text().await.0, "m/end", "state of the discarded session was delivered");
    s.disconnect().await;

    // [MQTT-3.1.2-6]: a clean session ends with the connection, and the next
    // persistent connection starts without a session.
    let s = Client::connect_persistent(&tb, "cleaner").await;
    assert!(!s.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_is_bounded_by_max_queued_messages() {
    let tb = TestBroker::start("max-queued-messages: 5").await;
    let mut s = Client::connect_persistent(&tb, "offline-bounded").await;
    s.subscribed("ob/t", Q1).await;
    s.disconnect().await;
    for i in 0..8 {
        tb.broker.publish("ob/t", format!("{i}"), moth::QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(tb.broker.dropped_messages(), 3, "8 published, 5 kept");
    let mut s = Client::connect_persistent(&tb, "offline-bounded").await;
    assert!(s.session_present);
    for i in 0..5 {
        assert_eq!(s.recv_text().await.1, format!("{i}"), "the oldest are kept, in order");
    }
    tb.broker.publish("ob/t", "end", moth::QoS::AtLeastOnce, false).unwrap();
    assert_eq!(s.recv_text().await.1, "end", "more than max-queued-messages were kept");
}

// ---------------------------------------------------------------------------
// Will
// ---------------------------------------------------------------------------

fn with_will(tb: &TestBroker, id: &str, topic: &str, payload: &str, qos: rumqttc::QoS, retain: bool) -> MqttOptions {
    let mut o = tb.client_options(id);
    o.set_last_will(LastWill::new(topic, payload, qos, retain));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_8_will_published_when_connection_drops() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "will-sub").await;
    s.subscribed("will/#", Q2).await;
    let w = Client::connect_with(with_will(&tb, "will-client", "will/w", "gone", Q1, false)).await;
    w.drop_connection().await;
    let m = s.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref(), m.qos, m.retain), ("will/w", &b"gone"[..], Q1, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_14_4_3_no_will_after_disconnect() {
    let tb = TestBroker::start("").await;
    let mut local = tb.broker.subscribe("wd/#", moth::QoS::AtLeastOnce).unwrap();
    let w = Client::connect_with(with_will(&tb, "polite", "wd/will", "will", Q1, false)).await;
    w.disconnect().await;
    // Shutdown returns once every connection task has ended, so a will, had
    // one been published, is queued now; after it the stream ends.
    tb.broker.shutdown().await;
    let m = tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("the end of the stream");
    assert!(m.is_none(), "will published after DISCONNECT: {m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_close_will_is_queued_before_the_end_of_the_stream() {
    // The same sequence as mqtt_3_14_4_3_no_will_after_disconnect with an
    // abrupt close: the will is there before the end, so that test can fail.
    let tb = TestBroker::start("").await;
    let mut local = tb.broker.subscribe("wd/#", moth::QoS::AtLeastOnce).unwrap();
    let mut observer = Client::connect(&tb, "observer").await;
    observer.subscribed("wd/#", Q1).await;
    let w = Client::connect_with(with_will(&tb, "rude", "wd/will", "will", Q1, false)).await;
    w.drop_connection().await;
    assert_eq!(observer.recv_text().await.0, "wd/will");
    tb.broker.shutdown().await;
    let m = tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("will").expect("queued before the end");
    assert_eq!(&*m.topic, "wd/will");
    let m = tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("the end of the stream");
    assert!(m.is_none(), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_17_will_retain_is_honoured() {
    let tb = TestBroker::start("").await;
    let mut live = Client::connect(&tb, "wr-live").await;
    live.subscribed("wr/#", Q1).await;
    let w = Client::connect_with(with_will(&tb, "wr-client", "wr/status", "offline", Q1, true)).await;
    w.drop_connection().await;
    let m = live.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref(), m.retain), ("wr/status", &b"offline"[..], false));
    assert_eq!(tb.broker.retained_count(), 1);
    let mut later = Client::connect(&tb, "wr-later").await;
    later.subscribed("wr/#", Q1).await;
    let m = later.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref(), m.retain), ("wr/status", &b"offline"[..], true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_published_when_keep_alive_expires() {
    let tb = TestBroker::start("timeout-disconnect-delay: 0").await;
    let mut s = Client::connect(&tb, "ka-will-sub").await;
    s.subscribed("kaw/#", Q1).await;
    let mut silent = RawClient::connect(tb.addr).await;
    silent
        .send(&Packet::Connect(Box::new(Connect {
            keep_alive: 1,
            will: Some(Will {
                topic: "kaw/silent".into(),
                payload: Bytes::from_static(b"timed out"),
                qos: moth::QoS::AtLeastOnce,
                retain: false,
                properties: None,
                delay_interval: 0,
            }),
            ..connect_packet("ka-will", true)
        })))
        .await;
    assert_eq!(silent.recv().await, Some(Packet::Connack(Box::new(Connack::new(false, ConnectReturnCode::Accepted)))));
    silent.expect_closed().await;
    assert_eq!(s.recv_text().await, ("kaw/silent".into(), "timed out".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_8_will_published_after_protocol_error() {
    let tb = TestBroker::start("").await;
    let mut s = Client::connect(&tb, "pe-will-sub").await;
    s.subscribed("pew/#", Q1).await;
    let mut bad = RawClient::connect(tb.addr).await;
    bad.send(&Packet::Connect(Box::new(Connect {
        will: Some(Will {
            topic: "pew/bad".into(),
            payload: Bytes::from_static(b"protocol error"),
            qos: moth::QoS::AtLeastOnce,
            retain: false,
            properties: None,
            delay_interval: 0,
        }),
        ..connect_packet("pe-will", true)
    })))
    .await;
    assert_eq!(bad.recv().await, Some(Packet::Connack(Box::new(Connack::new(false, ConnectReturnCode::Accepted)))));
    bad.send_raw(&[0x36, 0x00]).await; // PUBLISH QoS 3
    bad.expect_closed().await;
    assert_eq!(s.recv_text().await, ("pew/bad".into(), "protocol error".into()));
}

// ---------------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------------

async fn raw_with_keep_alive(tb: &TestBroker, id: &str, keep_alive: u16) -> RawClient {
    let mut c = RawClient::connect(tb.addr).await;
    c.send(&Packet::Connect(Box::new(Connect { keep_alive, ..connect_packet(id, true) }))).await;
    assert_eq!(c.recv().await, Some(Packet::Connack(Box::new(Connack::new(false, ConnectReturnCode::Accepted)))));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_24_silent_client_closed_after_keep_alive_plus_delay() {
    let tb = TestBroker::start("timeout-disconnect-delay: 1").await;
    let mut c = raw_with_keep_alive(&tb, "silent", 1).await;
    let start = Instant::now();
    c.expect_closed().await;
    let elapsed = start.elapsed();
    // keep alive 1 s + delay 1 s = 2 s after the CONNECT (a little before our
    // clock started); never before the keep alive itself has passed.
    assert!(elapsed >= Duration::from_millis(1500), "closed too early: {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(4500), "closed too late: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_23_pingreq_keeps_connection_open() {
    let tb = TestBroker::start("timeout-disconnect-delay: 1").await;
    let mut c = raw_with_keep_alive(&tb, "pinging", 1).await;
    let start = Instant::now();
    // Well past keep alive + delay, pinging every half keep alive.
    while start.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send(&Packet::Pingreq).await;
        assert_eq!(c.recv().await, Some(Packet::Pingresp), "after {:?}", start.elapsed());
    }
    // And once it stops, it is closed.
    c.expect_closed().await;
}

// ---------------------------------------------------------------------------
// Slow consumers
// ---------------------------------------------------------------------------

/// A client subscribed to `flood/#` at QoS 0 that never reads past its
/// SUBACK, with a small receive buffer, so what is sent to it piles up.
async fn non_reading_subscriber(tb: &TestBroker, client_id: &str, clean: bool) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(tb.addr).await.unwrap();
    let mut out = BytesMut::new();
    codec::encode(&Packet::Connect(Box::new(connect_packet(client_id, clean))), Protocol::V311, &mut out);
    codec::encode(
        &Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("flood/#", moth::QoS::AtMostOnce)])),
        Protocol::V311,
        &mut out,
    );
    stream.write_all(&out).await.unwrap();
    let mut acks = [0u8; 9];
    tokio::time::timeout(EVENT_TIMEOUT, stream.read_exact(&mut acks)).await.unwrap().unwrap();
    assert_eq!(acks, [0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x00]);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_does_not_block_others() {
    const TOTAL: usize = 20_000;
    const BATCH: usize = 500;
    let tb = TestBroker::start("max-queued-messages: 1000").await;

    // A subscriber that never reads past its SUBACK, with a small receive buffer.
    let slow = non_reading_subscriber(&tb, "slow", true).await;

    let mut fast = Client::connect(&tb, "fast").await;
    fast.subscribed("flood/#", Q1).await;
    let mut opts = tb.client_options("flooder");
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    let publisher = Client::connect_with(opts).await;

    let started = Instant::now();
    let mut next = 0usize;
    while next < TOTAL {
        for i in next..next + BATCH {
            let mut payload = vec![0u8; 1024];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            publisher.publish("flood/data", Q1, false, payload).await;
        }
        // The fast subscriber gets every message, in order, while the slow one
        // is stuck.
        for i in next..next + BATCH {
            let m = fast.recv_publish().await;
            assert_eq!(m.payload.len(), 1024);
            let n = u64::from_be_bytes(m.payload[..8].try_into().unwrap()) as usize;
            assert_eq!(n, i, "fast subscriber lost or reordered messages");
        }
        next += BATCH;
    }
    let elapsed = started.elapsed();
    assert!(tb.broker.dropped_messages() > 0, "the slow consumer's queue never overflowed");
    // The slow consumer's losses are bounded by what it could not buffer.
    assert!(tb.broker.dropped_messages() <= TOTAL as u64);
    eprintln!("{TOTAL} messages in {elapsed:?}, dropped for the slow consumer: {}", tb.broker.dropped_messages());
    drop(slow);
}

/// A connection whose client stopped reading (its output buffer past the
/// high-water mark, so its input is no longer read either) must still let
/// go of its session at once when the same client id connects again. If it
/// did not notice the takeover, the new connection would be refused with
/// CONNACK 3 after the 5 s takeover timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_connection_is_taken_over_at_once() {
    let tb = TestBroker::start("max-queued-messages: 100").await;
    let stuck = non_reading_subscriber(&tb, "stuck", false).await;

    // Flood it with 20 MB, far more than the socket buffers hold (tcp_wmem
    // allows at most 4 MB here), so the connection's output buffer ends past
    // its high-water mark and the queue overflows.
    for _ in 0..50 {
        for _ in 0..100 {
            tb.broker.publish("flood/data", vec![0u8; 4096], moth::QoS::AtMostOnce, false).unwrap();
        }
        tokio::task::yield_now().await;
    }
    assert!(tb.broker.dropped_messages() > 0, "the stuck client's queue never overflowed");

    let mut again = RawClient::connect(tb.addr).await;
    again.send(&Packet::Connect(Box::new(connect_packet("stuck", false)))).await;
    assert_eq!(
        again.recv().await,
        Some(Packet::Connack(Box::new(Connack::new(true, ConnectReturnCode::Accepted)))),
        "the new connection gets the session"
    );
    drop(stuck);
}

// ---------------------------------------------------------------------------
// In-process API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_publish_and_subscribe_with_network_clients() {
    let tb = TestBroker::start("").await;
    // Network client -> application.
    let mut local = tb.broker.subscribe("app/#", moth::QoS::AtLeastOnce).unwrap();
    let mut c = Client::connect(&tb, "net").await;
    c.publish_acked("app/in", false, "from network").await;
    let m =
        tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("local message").expect("the broker is running");
    assert_eq!(
        (&*m.topic, m.payload.as_ref(), m.qos, m.retain),
        ("app/in", &b"from network"[..], moth::QoS::AtLeastOnce, false)
    );
    c.publish("app/q2", Q2, false, "two").await;
    let m =
        tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("local message").expect("the broker is running");
    assert_eq!(m.qos, moth::QoS::AtLeastOnce, "min(2, 1)");

    // Application -> network client.
    c.subscribed("dev/#", Q2).await;
    tb.broker.publish("dev/y", "from app", moth::QoS::ExactlyOnce, false).unwrap();
    let m = c.recv_publish().await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref(), m.qos), ("dev/y", &b"from app"[..], Q2));

    // Retained from the application reach later subscribers of both kinds.
    tb.broker.publish("dev/r", "kept", moth::QoS::AtLeastOnce, true).unwrap();
    assert_eq!(c.recv_text().await.1, "kept");
    let mut local2 = tb.broker.subscribe("dev/+", moth::QoS::AtMostOnce).unwrap();
    let m = tokio::time::timeout(EVENT_TIMEOUT, local2.recv()).await.expect("retained").expect("the broker is running");
    assert_eq!((&*m.topic, m.qos, m.retain), ("dev/r", moth::QoS::AtMostOnce, true));

    // Invalid names and filters are refused.
    assert!(tb.broker.publish("dev/+", "x", moth::QoS::AtMostOnce, false).is_err());
    assert!(tb.broker.publish("", "x", moth::QoS::AtMostOnce, false).is_err());
    assert!(tb.broker.subscribe("a/#/b", moth::QoS::AtMostOnce).is_err());
    assert!(local.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_subscription_queue_is_bounded() {
    let tb = TestBroker::start("max-queued-messages: 5").await;
    let mut local = tb.broker.subscribe("lb/#", moth::QoS::AtLeastOnce).unwrap();
    for i in 0..12 {
        tb.broker.publish("lb/t", format!("{i}"), moth::QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(tb.broker.dropped_messages(), 7);
    let got: Vec<_> = std::iter::from_fn(|| local.try_recv()).map(|m| m.payload).collect();
    assert_eq!(got, vec!["0", "1", "2", "3", "4"]);
    // Drained: it keeps working.
    tb.broker.publish("lb/t", "next", moth::QoS::AtMostOnce, false).unwrap();
    let m = tokio::time::timeout(EVENT_TIMEOUT, local.recv()).await.expect("next").expect("the broker is running");
    assert_eq!(m.payload.as_ref(), b"next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_qos1_messages_are_not_dropped_behind_a_retained_backlog() {
    // 3,000 retained messages (three times max-queued-messages) queue for
    // a subscriber to `#` at once; the live messages acknowledged to their
    // publisher right after must all reach it too.
    const RETAINED: usize = 3000;
    const LIVE: u16 = 500;
    let tb = TestBroker::start("").await;
    for i in 0..RETAINED {
        tb.broker.publish(&format!("old/{i}"), "r", moth::QoS::AtLeastOnce, true).unwrap();
    }
    let (mut sub, _) = RawClient::handshake(tb.addr, "backlog-sub", true).await;
    sub.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("#", moth::QoS::AtLeastOnce)]))).await;
    // The subscriber reads nothing more until every live message is acknowledged.
    let (mut publisher, _) = RawClient::handshake(tb.addr, "backlog-pub", true).await;
    for id in 1..=LIVE {
        let p = moth_protocol::packet::Publish::new(
            "live/x",
            Bytes::from(id.to_string()),
            moth::QoS::AtLeastOnce,
            false,
            id,
        );
        publisher.send(&Packet::Publish(p)).await;
        match publisher.recv().await {
            Some(Packet::Puback(a)) if a.packet_id == id => {}
            other => panic!("PUBACK {id}: {other:?}"),
        }
    }
    let (mut live, mut retained) = (0u16, 0usize);
    while live < LIVE || retained < RETAINED {
        match sub.recv().await {
            Some(Packet::Publish(p)) => {
                if p.topic.starts_with("live/") {
                    live += 1;
                } else {
                    retained += 1;
                }
                sub.send(&Packet::Puback(moth_protocol::packet::Ack::new(p.packet_id))).await;
            }
            Some(Packet::Suback(_)) => {}
            other => panic!("after {live} live and {retained} retained: {other:?}"),
        }
    }
    assert_eq!(tb.broker.dropped_messages(), 0, "nothing dropped");
}
