//! MQTT 5 enhanced authentication end to end: the shipped `scram` plugin
//! library, loaded from a plugins directory, runs SCRAM-SHA-256 against a
//! byte-level client whose half of SCRAM (`tests/src/scram.rs`) is written
//! from RFC 5802 apart from the plugin's, across AUTH packets before CONNACK and in a
//! re-authentication after it. MQTT.js does the same from Node in `js.rs`.

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{
    Auth, Connack, Connect, ConnectProperties, ConnectReturnCode, Packet, Protocol, Publish, ReasonCode,
};
use moth_tests::plugins::PluginDir;
use moth_tests::scram::{Scram, stored};
use moth_tests::{RawClient, TestBroker, connect_packet};

const METHOD: &str = "SCRAM-SHA-256";

fn auth(reason: ReasonCode, method: &str, data: Bytes) -> Packet {
    Packet::Auth(Auth { reason, method: Some(method.into()), data: Some(data), ..Auth::default() })
}

/// A broker whose auth chain is the `scram` library with alice's
/// credentials (password `wonderland`), and topic rules for alice only.
async fn broker(dir: &PluginDir) -> TestBroker {
    let alice = stored("wonderland", b"alice's salt", 4096);
    TestBroker::start(&format!(
        "{}auth:\n  plugins: [scram]\n  allow-anonymous: false\n\
         plugins-config:\n  scram:\n    users: {{alice: '{alice}'}}\n\
         topic-check:\n  enabled: true\n  plugins: [topic_acl]\n  acl:\n    alice: ['alice/#']\n",
        dir.yaml()
    ))
    .await
}

fn scram_connect(client_id: &str, username: Option<&str>, first: Bytes) -> Connect {
    let mut c = Connect { protocol: Protocol::V5, ..connect_packet(client_id, true) };
    c.username = username.map(str::to_string);
    c.properties = ConnectProperties {
        authentication_method: Some(METHOD.into()),
        authentication_data: Some(first),
        ..ConnectProperties::default()
    };
    c
}

async fn v5_client(tb: &TestBroker) -> RawClient {
    let mut c = RawClient::connect(tb.addr).await;
    c.protocol = Protocol::V5;
    c
}

/// Runs the exchange as `user` with `password`; returns the client, the
/// CONNACK, and whether the broker's challenge came (it does for every
/// user name, known or not).
async fn login(tb: &TestBroker, user: &str, password: &str) -> (RawClient, Connack, Scram) {
    let mut scram = Scram::new(user, password, "fyko+d2lbbFgONRv9qkxdawL");
    let mut c = v5_client(tb).await;
    c.send(&Packet::Connect(Box::new(scram_connect(user, None, scram.client_first())))).await;
    let challenge = match c.recv().await {
        Some(Packet::Auth(a)) => a,
        other => panic!("{user}: expected AUTH 0x18, got {other:?}"),
    };
    assert_eq!(challenge.reason, ReasonCode::CONTINUE_AUTHENTICATION);
    assert_eq!(challenge.method.as_deref(), Some(METHOD));
    let answer = scram.client_final(challenge.data.as_deref().expect("a challenge"));
    c.send(&auth(ReasonCode::CONTINUE_AUTHENTICATION, METHOD, answer)).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => (c, *a, scram),
        other => panic!("{user}: expected CONNACK, got {other:?}"),
    }
}

async fn publish1(c: &mut RawClient, packet_id: u16, topic: &str) -> ReasonCode {
    c.send(&Packet::Publish(Publish::new(topic, Bytes::from_static(b"x"), QoS::AtLeastOnce, false, packet_id))).await;
    match c.recv().await {
        Some(Packet::Puback(a)) if a.packet_id == packet_id => a.reason,
        other => panic!("expected PUBACK {packet_id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_admits_the_right_password_proves_the_broker_and_names_the_user() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let tb = broker(&dir).await;
    let (mut c, ack, scram) = login(&tb, "alice", "wonderland").await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);
    assert_eq!(ack.properties.authentication_method.as_deref(), Some(METHOD), "CONNACK names the method");
    assert!(scram.proves_the_server(ack.properties.authentication_data.as_ref()), "the broker's signature checks");
    // The CONNECT had no user name: the topic rules see the SCRAM user.
    assert!(!publish1(&mut c, 1, "alice/x").await.is_error(), "alice's topic");
    assert_eq!(publish1(&mut c, 2, "bob/x").await, ReasonCode::NOT_AUTHORIZED);
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_challenge_then_0x86() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let tb = broker(&dir).await;
    let (_c, ack, scram) = login(&tb, "alice", "looking-glass").await;
    assert_eq!(ack.code, ConnectReturnCode::BadUsernameOrPassword);
    assert!(!scram.proves_the_server(ack.properties.authentication_data.as_ref()));
    // A user nobody configured is challenged like alice (with a salt that
    // stays the same from try to try), and refused at the proof.
    let (_c, ack, _) = login(&tb, "mallory", "guess").await;
    assert_eq!(ack.code, ConnectReturnCode::BadUsernameOrPassword);
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_nobody_runs_a_foreign_user_name_and_rule_breaking_clients_are_refused() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let tb = broker(&dir).await;
    let first = Scram::new("alice", "wonderland", "abc").client_first();
    let refused = |connect: Connect| {
        let tb = &tb;
        async move {
            let mut c = v5_client(tb).await;
            c.send(&Packet::Connect(Box::new(connect))).await;
            match c.recv().await {
                Some(Packet::Connack(a)) => a.code,
                other => panic!("expected a refusing CONNACK, got {other:?}"),
            }
        }
    };
    let mut other = scram_connect("m1", None, first.clone());
    other.properties.authentication_method = Some("OAUTHBEARER".into());
    assert_eq!(refused(other).await, ConnectReturnCode::BadAuthenticationMethod);
    // SCRAM proves alice, the CONNECT says bob: refused before any challenge.
    assert_eq!(refused(scram_connect("m2", Some("bob"), first.clone())).await, ConnectReturnCode::NotAuthorized);

    // Before CONNACK only AUTH or DISCONNECT may come [MQTT-3.1.2-30], and
    // every AUTH names the CONNECT's method.
    for wrong in [
        Packet::Publish(Publish::new("alice/x", Bytes::from_static(b"x"), QoS::AtMostOnce, false, 0)),
        auth(ReasonCode::CONTINUE_AUTHENTICATION, "SCRAM-SHA-1", Bytes::from_static(b"c=biws")),
        auth(ReasonCode::REAUTHENTICATE, METHOD, first.clone()),
    ] {
        let mut c = v5_client(&tb).await;
        c.send(&Packet::Connect(Box::new(scram_connect("m3", None, first.clone())))).await;
        assert!(matches!(c.recv().await, Some(Packet::Auth(_))), "the challenge");
        c.send(&wrong).await;
        match c.recv().await {
            Some(Packet::Connack(a)) => assert_eq!(a.code, ConnectReturnCode::ProtocolError, "{wrong:?}"),
            other => panic!("after {wrong:?}: expected CONNACK 0x82, got {other:?}"),
        }
        c.expect_closed().await;
    }
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_client_re_authenticates_while_its_traffic_goes_on_and_a_failure_disconnects_it() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let tb = broker(&dir).await;
    let (mut c, ack, _) = login(&tb, "alice", "wonderland").await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);

    let mut again = Scram::new("alice", "wonderland", "second-nonce");
    c.send(&auth(ReasonCode::REAUTHENTICATE, METHOD, again.client_first())).await;
    // The connection keeps working while the plugin decides.
    c.send(&Packet::Pingreq).await;
    let mut challenge = None;
    let mut pong = false;
    while challenge.is_none() || !pong {
        match c.recv().await {
            Some(Packet::Pingresp) => pong = true,
            Some(Packet::Auth(a)) if a.reason == ReasonCode::CONTINUE_AUTHENTICATION => challenge = a.data,
            other => panic!("expected PINGRESP and AUTH 0x18, got {other:?}"),
        }
    }
    let answer = again.client_final(&challenge.expect("challenge data"));
    c.send(&auth(ReasonCode::CONTINUE_AUTHENTICATION, METHOD, answer)).await;
    match c.recv().await {
        Some(Packet::Auth(a)) => {
            assert_eq!(a.reason, ReasonCode::SUCCESS);
            assert!(again.proves_the_server(a.data.as_ref()), "the broker proves itself again");
        }
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    assert!(!publish1(&mut c, 1, "alice/y").await.is_error(), "still alice, still connected");

    // An AUTH 0x18 that answers no challenge breaks the protocol.
    c.send(&auth(ReasonCode::CONTINUE_AUTHENTICATION, METHOD, Bytes::from_static(b"c=biws"))).await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
    c.expect_closed().await;

    // A re-authentication that fails ends the connection with 0x87.
    let (mut c, _, _) = login(&tb, "alice", "wonderland").await;
    let mut wrong = Scram::new("alice", "looking-glass", "third-nonce");
    c.send(&auth(ReasonCode::REAUTHENTICATE, METHOD, wrong.client_first())).await;
    let challenge = match c.recv().await {
        Some(Packet::Auth(a)) => a.data.expect("challenge data"),
        other => panic!("expected AUTH 0x18, got {other:?}"),
    };
    c.send(&auth(ReasonCode::CONTINUE_AUTHENTICATION, METHOD, wrong.client_final(&challenge))).await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
    c.expect_closed().await;
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_credentials_check_plain_passwords_of_3_1_1_clients() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let tb = broker(&dir).await;
    for (password, code) in [("wonderland", 0), ("looking-glass", 4)] {
        let mut c = RawClient::connect(tb.addr).await;
        let mut p = connect_packet("plain", true);
        p.username = Some("alice".into());
        p.password = Some(Bytes::from(password));
        c.send(&Packet::Connect(Box::new(p))).await;
        match c.recv().await {
            Some(Packet::Connack(a)) => assert_eq!(a.code.code(Protocol::V311), code, "{password}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_a_file_as_moth_passwd_writes_it_and_a_broken_line_locks_out_only_its_user() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let files = moth_tests::certs::TempDir::new("scram-file");
    let file = files.file(
        "scram",
        format!(
            "# SCRAM-SHA-256 credentials\nalice:{}\nbroken:SCRAM-SHA-256$10:c2FsdA==$AAAA:AAAA\n",
            stored("wonderland", b"file salt", 4096)
        ),
    );
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [scram]\n  allow-anonymous: false\n\
         plugins-config:\n  scram:\n    credentials-file: '{}'\n",
        dir.yaml(),
        file.display()
    ))
    .await;
    let (_c, ack, scram) = login(&tb, "alice", "wonderland").await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);
    assert!(scram.proves_the_server(ack.properties.authentication_data.as_ref()));
    let (_c, ack, _) = login(&tb, "broken", "anything").await;
    assert_eq!(ack.code, ConnectReturnCode::BadUsernameOrPassword);
    tb.broker.shutdown().await;
}
