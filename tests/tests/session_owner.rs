//! A session belongs to the user who created it (`session-owner`): another
//! user with a valid password who connects with its client id cannot take
//! it over, read its queued messages, inherit its subscriptions, wipe it or
//! kick its owner off. Real sockets, real passwords (`auth_file` with
//! hbmqtt's published `$6$` sample hash, password `test`).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use moth::Config;
use moth_protocol::packet::{
    Ack, Connack, ConnectReturnCode, Disconnect, Packet, Publish, QoS, SubackCode, Subscribe, SubscribeFilter,
};
use moth_tests::certs::TempDir;
use moth_tests::{RawClient, TestBroker, connect_packet};

const HASH: &str =
    "$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.";

fn passwd(dir: &TempDir) -> PathBuf {
    dir.file("passwd", format!("alice:{HASH}\nbob:{HASH}\nfeeder:{HASH}\n"))
}

fn yaml(passwd: &Path, alice_acl: &str, extra: &str) -> String {
    format!(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n\
         auth:\n  plugins: [auth_file]\n  allow-anonymous: false\n  password-file: '{}'\n\
         topic-check:\n  enabled: true\n  plugins: [topic_acl]\n  acl:\n    alice: {alice_acl}\n    bob: ['bob/#']\n    feeder: ['#']\n{extra}",
        passwd.display()
    )
}

async fn connect(tb: &TestBroker, client_id: &str, user: &str, clean: bool) -> (RawClient, Connack) {
    let mut c = RawClient::connect(tb.addr).await;
    let mut p = connect_packet(client_id, clean);
    p.username = Some(user.to_string());
    p.password = Some(Bytes::from_static(b"test"));
    c.send(&Packet::Connect(Box::new(p))).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => (c, *a),
        other => panic!("{user} as {client_id}: expected a CONNACK, got {other:?}"),
    }
}

async fn connected(tb: &TestBroker, client_id: &str, user: &str, clean: bool) -> (RawClient, bool) {
    let (c, ack) = connect(tb, client_id, user, clean).await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted, "{user} as {client_id}");
    (c, ack.session_present)
}

async fn subscribe(c: &mut RawClient, filter: &str) -> SubackCode {
    c.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new(filter.to_string(), QoS::AtLeastOnce)])))
        .await;
    match c.recv().await {
        Some(Packet::Suback(s)) => s.codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn publish1(c: &mut RawClient, packet_id: u16, topic: &str, payload: &'static str) {
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(payload.as_bytes()),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    }))
    .await;
    assert_eq!(c.recv().await, Some(Packet::Puback(Ack::new(packet_id))), "PUBACK for {topic}");
}

/// The next PUBLISH, acknowledged.
async fn next_payload(c: &mut RawClient) -> String {
    match c.recv().await {
        Some(Packet::Publish(p)) => {
            c.send(&Packet::Puback(Ack::new(p.packet_id))).await;
            String::from_utf8_lossy(&p.payload).into_owned()
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_take_a_session_by_its_client_id() {
    let dir = TempDir::new("session-owner");
    let tb = TestBroker::start_yaml(&yaml(&passwd(&dir), "['sensors/#']", "")).await;
    let (mut alice, present) = connected(&tb, "dev1", "alice", false).await;
    assert!(!present);
    assert_eq!(subscribe(&mut alice, "sensors/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    let (mut publisher, _) = connected(&tb, "alice-pub", "alice", true).await;

    // bob has a valid password, but dev1 is alice's.
    for clean in [false, true] {
        let (mut bob, ack) = connect(&tb, "dev1", "bob", clean).await;
        assert_eq!(ack, Connack::new(false, ConnectReturnCode::IdentifierRejected));
        bob.expect_closed().await;
    }
    // alice was not kicked off: she still gets what is published.
    publish1(&mut publisher, 1, "sensors/live", "live").await;
    assert_eq!(next_payload(&mut alice).await, "live");

    // Offline, her queued message is still hers alone.
    alice.send(&Packet::Disconnect(Disconnect::default())).await;
    alice.expect_closed().await;
    publish1(&mut publisher, 2, "sensors/queued", "queued").await;
    for clean in [false, true] {
        let (_bob, ack) = connect(&tb, "dev1", "bob", clean).await;
        assert_eq!(ack.code, ConnectReturnCode::IdentifierRejected, "clean = {clean}: no wiping alice's session");
    }
    let (mut alice, present) = connected(&tb, "dev1", "alice", false).await;
    assert!(present, "alice's session is intact");
    assert_eq!(next_payload(&mut alice).await, "queued");
}

/// Mosquitto's rule, when asked for: the takeover happens, but bob starts
/// from nothing of alice's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_session_owner_client_id_another_user_gets_a_fresh_session() {
    let dir = TempDir::new("session-owner-cid");
    let tb = TestBroker::start_yaml(&yaml(&passwd(&dir), "['sensors/#']", "session-owner: client-id\n")).await;
    let (mut alice, _) = connected(&tb, "dev1", "alice", false).await;
    assert_eq!(subscribe(&mut alice, "sensors/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    alice.send(&Packet::Disconnect(Disconnect::default())).await;
    alice.expect_closed().await;
    let (mut publisher, _) = connected(&tb, "alice-pub", "alice", true).await;
    publish1(&mut publisher, 1, "sensors/queued", "for alice").await;

    let (mut bob, present) = connected(&tb, "dev1", "bob", false).await;
    assert!(!present, "bob does not resume alice's session");
    assert_eq!(subscribe(&mut bob, "bob/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    publish1(&mut publisher, 2, "sensors/live", "for alice too").await;
    let (mut bob_pub, _) = connected(&tb, "bob-pub", "bob", true).await;
    publish1(&mut bob_pub, 1, "bob/x", "for bob").await;
    // Nothing of alice's comes first: neither her queue nor her subscription.
    assert_eq!(next_payload(&mut bob).await, "for bob");

    // And alice, back, finds a fresh session of her own.
    let (_alice, present) = connected(&tb, "dev1", "alice", false).await;
    assert!(!present);
    bob.expect_closed().await;
}

/// Deliveries follow the connected user's rights now, not the rights the
/// subscription was made under: a reload that narrows alice's ACL removes
/// her stored subscription when she resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_subscription_is_checked_against_the_current_acl() {
    let dir = TempDir::new("session-recheck");
    let file = passwd(&dir);
    let tb = TestBroker::start_yaml(&yaml(&file, "['sensors/#', 'other/#']", "")).await;
    let (mut alice, _) = connected(&tb, "dev1", "alice", false).await;
    assert_eq!(subscribe(&mut alice, "sensors/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    alice.send(&Packet::Disconnect(Disconnect::default())).await;
    alice.expect_closed().await;

    let narrower = Config::from_yaml_str(&yaml(&file, "['other/#']", "")).expect("valid");
    tb.broker.reload(&narrower).expect("reload");
    let (mut alice, present) = connected(&tb, "dev1", "alice", false).await;
    assert!(present);
    assert_eq!(subscribe(&mut alice, "other/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    let (mut publisher, _) = connected(&tb, "feeder", "feeder", true).await;
    publish1(&mut publisher, 1, "sensors/t", "no longer hers").await;
    publish1(&mut publisher, 2, "other/t", "still hers").await;
    assert_eq!(next_payload(&mut alice).await, "still hers");
}
