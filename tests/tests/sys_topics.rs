//! `$SYS/broker/...` topics against traffic whose every packet and byte the
//! test knows: hbmqtt's names and payload formats, exact counters, and the
//! rule that `#` does not match `$SYS` topics [MQTT-4.7.2-1].

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use moth_protocol::codec;
use moth_protocol::packet::{Ack, Disconnect, Packet, Protocol, Publish, QoS, Subscribe, SubscribeFilter};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

fn encoded_len(p: &Packet) -> u64 {
    let mut b = BytesMut::new();
    codec::encode(p, Protocol::V311, &mut b);
    b.len() as u64
}

/// Sends a packet and returns its size on the wire.
async fn send(c: &mut RawClient, p: Packet) -> u64 {
    c.send(&p).await;
    encoded_len(&p)
}

async fn connect(t: &TestBroker, id: &str) -> (RawClient, u64) {
    let (c, ack) = RawClient::handshake(t.addr, id, true).await;
    assert!(matches!(ack, Packet::Connack(_)), "{ack:?}");
    (c, encoded_len(&Packet::Connect(Box::new(connect_packet(id, true)))))
}

async fn subscribe(c: &mut RawClient, filter: &str) -> u64 {
    let n = send(c, Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new(filter, QoS::AtMostOnce)]))).await;
    assert!(matches!(c.recv().await, Some(Packet::Suback(_))));
    n
}

/// The last complete round of `$SYS` topics: reads until the round's last
/// topic (`load/connections/15min`) arrives.
async fn next_round(sub: &mut RawClient) -> HashMap<String, String> {
    let mut round = HashMap::new();
    loop {
        match sub.recv().await {
            Some(Packet::Publish(p)) => {
                let topic = p.topic.to_string();
                let payload = String::from_utf8(p.payload.to_vec()).expect("$SYS payloads are text");
                assert!(topic.starts_with("$SYS/broker/"), "{topic}");
                round.insert(topic.clone(), payload);
                if topic == "$SYS/broker/load/connections/15min" {
                    return round;
                }
            }
            other => panic!("expected $SYS messages, got {other:?}"),
        }
    }
}

/// Reads rounds until every `want` holds, or fails with the last round.
async fn round_where(sub: &mut RawClient, want: &[(&str, String)]) -> HashMap<String, String> {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let round = next_round(sub).await;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, v)| round.get(&format!("$SYS/broker/{k}")) != Some(v))
            .map(|(k, v)| format!("{k}: want {v}, got {:?}", round.get(&format!("$SYS/broker/{k}"))))
            .collect();
        if wrong.is_empty() {
            return round;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "$SYS never showed the expected figures:\n{}",
            wrong.join("\n")
        );
    }
}

fn num(round: &HashMap<String, String>, k: &str) -> u64 {
    round
        .get(&format!("$SYS/broker/{k}"))
        .unwrap_or_else(|| panic!("no $SYS/broker/{k} in {round:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("$SYS/broker/{k} is not a number"))
}

fn is_timedelta(s: &str) -> bool {
    // H:MM:SS or H:MM:SS.ffffff (Python's str(timedelta) below a day).
    let (main, micros) = s.split_once('.').map_or((s, None), |(a, b)| (a, Some(b)));
    let parts: Vec<&str> = main.split(':').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].len() == 2
        && parts[2].len() == 2
        && micros.is_none_or(|m| m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn sys_topics_show_exact_counters_for_known_traffic() {
    let t = TestBroker::start("sys_interval: 0.2").await;
    let mut bytes_in = 0;

    // W watches `#`, which must not match `$SYS` topics.
    let (mut watcher, n) = connect(&t, "sys-watch").await;
    bytes_in += n + subscribe(&mut watcher, "#").await;

    // P publishes two QoS 1 messages, one retained.
    let (mut publisher, n) = connect(&t, "sys-pub").await;
    bytes_in += n;
    for (id, topic, retain) in [(1u16, "data/a", false), (2, "data/b", true)] {
        bytes_in += send(
            &mut publisher,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain,
                topic: topic.into(),
                packet_id: id,
                payload: "payload".into(),
                properties: None,
                topic_alias: None,
                subscription_ids: Vec::new(),
            }),
        )
        .await;
        assert_eq!(publisher.recv().await, Some(Packet::Puback(Ack::new(id))));
    }
    for topic in ["data/a", "data/b"] {
        match watcher.recv().await {
            Some(Packet::Publish(p)) => assert_eq!(&*p.topic, topic),
            other => panic!("expected {topic}, got {other:?}"),
        }
    }

    // S subscribes to `$SYS/#`: first the retained version, then the rounds.
    let (mut sys, n) = connect(&t, "sys-sub").await;
    bytes_in += n + subscribe(&mut sys, "$SYS/#").await;
    match sys.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!(&*p.topic, "$SYS/broker/version");
            assert!(p.retain, "the version is retained");
            assert_eq!(&p.payload[..], format!("moth version {}", env!("CARGO_PKG_VERSION")).as_bytes());
        }
        other => panic!("expected the retained version first, got {other:?}"),
    }

    let round = round_where(
        &mut sys,
        &[
            ("clients/connected", "3".into()),
            ("clients/disconnected", "0".into()),
            ("clients/maximum", "3".into()),
            ("clients/total", "3".into()),
            ("clients/connected/v3.1.1", "3".into()),
            ("clients/connected/v3.1", "0".into()),
            ("clients/connected/v5", "0".into()),
            // CONNECT x3, SUBSCRIBE x2, PUBLISH x2.
            ("messages/received", "7".into()),
            ("messages/publish/received", "2".into()),
            ("load/bytes/received", bytes_in.to_string()),
            ("messages/retained/count", "2".into()),
            ("messages/subscriptions/count", "2".into()),
            ("messages/inflight", "0".into()),
            ("publish/messages/dropped", "0".into()),
            ("clients/inactive", "0".into()),
        ],
    )
    .await;
    // Sent: CONNACK x3, SUBACK x2, PUBACK x2, and every PUBLISH (W's two, S's $SYS ones).
    assert_eq!(num(&round, "messages/sent") - num(&round, "messages/publish/sent"), 7, "{round:?}");
    assert!(num(&round, "messages/publish/sent") >= 3, "{round:?}");
    assert!(num(&round, "load/bytes/sent") >= 7 * 4, "{round:?}");
    // hbmqtt's spelling and the corrected one, both timedelta strings.
    let formated = &round["$SYS/broker/uptime/formated"];
    assert_eq!(formated, &round["$SYS/broker/uptime/formatted"]);
    assert!(is_timedelta(formated), "uptime/formated: {formated}");
    let time = &round["$SYS/broker/time"];
    assert!(
        time.len() == 26 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b' ' && time.as_bytes()[19] == b'.',
        "time is `YYYY-MM-DD HH:MM:SS.ffffff`: {time}"
    );
    num(&round, "uptime");
    for k in ["messages/inflight/in", "messages/inflight/out", "messages/inflight/stored"] {
        num(&round, k);
    }
    for load in ["messages/received", "publish/sent", "bytes/received", "connections"] {
        for window in ["1min", "5min", "15min"] {
            let v = &round[&format!("$SYS/broker/load/{load}/{window}")];
            let (int, frac) = v.split_once('.').unwrap_or_else(|| panic!("load average with 2 decimals: {v}"));
            assert!(frac.len() == 2 && int.parse::<u64>().is_ok(), "load/{load}/{window}: {v}");
        }
    }
    #[cfg(target_os = "linux")]
    assert!(num(&round, "heap/current") > 0, "{round:?}");

    // `#` did not match any `$SYS` topic: W got nothing while S got rounds.
    assert_eq!(watcher.recv_within(Duration::from_millis(300)).await, Err(()), "`#` must not match $SYS topics");

    // P leaves, and a persistent client comes and goes: the next rounds show it.
    publisher.send(&Packet::Disconnect(Disconnect::default())).await;
    publisher.expect_closed().await;
    let (mut keeper, ack) = RawClient::handshake(t.addr, "sys-keeper", false).await;
    assert!(matches!(ack, Packet::Connack(_)), "{ack:?}");
    keeper.send(&Packet::Disconnect(Disconnect::default())).await;
    keeper.expect_closed().await;
    round_where(
        &mut sys,
        &[
            ("clients/connected", "2".into()),
            ("clients/disconnected", "2".into()),
            ("clients/maximum", "3".into()),
            ("clients/total", "4".into()),
            ("clients/connected/v3.1.1", "2".into()),
            ("clients/inactive", "1".into()),
            // + DISCONNECT from P, CONNECT and DISCONNECT from the keeper.
            ("messages/received", "10".into()),
        ],
    )
    .await;
    t.broker.shutdown().await;
}

#[tokio::test]
async fn without_sys_interval_only_the_retained_version_is_published() {
    let t = TestBroker::start("").await;
    let (mut sys, _) = connect(&t, "sys-none").await;
    subscribe(&mut sys, "$SYS/#").await;
    match sys.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!(&*p.topic, "$SYS/broker/version");
            assert!(p.retain);
        }
        other => panic!("expected the retained version, got {other:?}"),
    }
    // With sys_interval 0.2 (the test above) a round comes every 200 ms.
    assert_eq!(sys.recv_within(Duration::from_millis(1000)).await, Err(()), "no periodic $SYS topics");
    t.broker.shutdown().await;
}

#[tokio::test]
async fn clients_cannot_publish_to_sys() {
    let t = TestBroker::start("sys_interval: 0.2").await;
    let (mut sys, _) = connect(&t, "sys-reader").await;
    subscribe(&mut sys, "$SYS/broker/clients/connected").await;
    let (mut forger, _) = connect(&t, "sys-forger").await;
    forger
        .send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "$SYS/broker/clients/connected".into(),
            packet_id: 7,
            payload: "9999".into(),
            properties: None,
            topic_alias: None,
            subscription_ids: Vec::new(),
        }))
        .await;
    assert_eq!(forger.recv().await, Some(Packet::Puback(Ack::new(7))));
    for _ in 0..3 {
        match sys.recv().await {
            // 1 when a round ran before the forger connected.
            Some(Packet::Publish(p)) => {
                assert!(&p.payload[..] == b"2" || &p.payload[..] == b"1", "only the broker writes $SYS: {p:?}")
            }
            other => panic!("expected clients/connected, got {other:?}"),
        }
    }
    t.broker.shutdown().await;
}
