//! hbmqtt configuration files run unchanged (but for a port 0 bind): each
//! config is parsed by `Config::from_yaml_str`, started, and checked with
//! real clients over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use moth::{Broker, Config};
use moth_protocol::packet::{
    Ack, Connect, ConnectReturnCode, Disconnect, Packet, Protocol, Publish, QoS, ReasonCode, SubackCode, Subscribe,
    SubscribeFilter,
};
use moth_tests::certs::{Ca, KeyKind, TempDir, client_config};
use moth_tests::clients::round_trip;
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

// ---------------------------------------------------------------------------
// Helpers

fn config(yaml: &str) -> Config {
    Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("config should parse: {e}\n{yaml}"))
}

async fn start(yaml: &str) -> Broker {
    let broker = Broker::new(config(yaml)).unwrap_or_else(|e| panic!("broker should build: {e}\n{yaml}"));
    broker.start().await.unwrap_or_else(|e| panic!("broker should start: {e}\n{yaml}"));
    broker
}

fn addr_of(broker: &Broker, listener: &str) -> SocketAddr {
    let a = broker
        .local_addr(listener)
        .unwrap_or_else(|| panic!("listener `{listener}` should be bound; bound: {:?}", broker.local_addrs()));
    // A wildcard bind is reached through loopback.
    if a.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), a.port()) } else { a }
}

/// Connects and returns the client with its CONNACK (or `None` on close).
async fn connect_as(addr: SocketAddr, client_id: &str, username: Option<&str>) -> (RawClient, Option<Packet>) {
    let mut c = RawClient::connect(addr).await;
    let mut p = connect_packet(client_id, true);
    p.username = username.map(str::to_string);
    c.send(&Packet::Connect(Box::new(p))).await;
    let ack = c.recv().await;
    (c, ack)
}

async fn connect_ok(addr: SocketAddr, client_id: &str, username: Option<&str>) -> RawClient {
    let (c, ack) = connect_as(addr, client_id, username).await;
    match ack {
        Some(Packet::Connack(a)) if a.code == ConnectReturnCode::Accepted => c,
        other => panic!("{client_id} should be accepted, got {other:?}"),
    }
}

async fn subscribe(c: &mut RawClient, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<SubackCode> {
    c.send(&Packet::Subscribe(Subscribe {
        packet_id,
        filters: filters.iter().map(|(f, q)| SubscribeFilter::new(f.to_string(), *q)).collect(),
        subscription_id: None,
        user_properties: Vec::new(),
    }))
    .await;
    match c.recv().await {
        Some(Packet::Suback(s)) => {
            assert_eq!(s.packet_id, packet_id);
            s.codes
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn publish0(c: &mut RawClient, topic: &str, payload: &str) {
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic.into(),
        packet_id: 0,
        payload: payload.to_string().into(),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    }))
    .await;
}

/// The next PUBLISH received (acks QoS 1; fails on anything else).
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

/// Proves a client on `addr` can subscribe and receive its own publish.
async fn assert_pub_sub_works(addr: SocketAddr, client_id: &str) {
    let mut c = connect_ok(addr, client_id, None).await;
    let topic = format!("e2e/{client_id}");
    assert_eq!(subscribe(&mut c, 1, &[(&topic, QoS::AtMostOnce)]).await, vec![SubackCode::Granted(QoS::AtMostOnce)]);
    publish0(&mut c, &topic, "hello").await;
    let p = next_publish(&mut c).await;
    assert_eq!(&*p.topic, topic);
    assert_eq!(&p.payload[..], b"hello");
}

async fn assert_refused_with_5(addr: SocketAddr, client_id: &str, username: Option<&str>) {
    let (mut c, ack) = connect_as(addr, client_id, username).await;
    match ack {
        Some(Packet::Connack(a)) if a.code == ConnectReturnCode::NotAuthorized && !a.session_present => {}
        other => panic!("{client_id} should get CONNACK 5 (not authorized), got {other:?}"),
    }
    c.expect_closed().await;
}

// ---------------------------------------------------------------------------
// Whole hbmqtt configurations

/// The shape of the configuration in hbmqtt's Broker API docs (the seed):
/// a `default` template with `max-connections` and `type`, named listeners
/// inheriting from it, `timeout-disconnect-delay`, and `auth` with the
/// documented plugin spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_example_config_runs_with_default_template_inherited() {
    let yaml = "
listeners:
    default:
        max-connections: 50000
        type: tcp
    my-tcp-1:
        bind: 127.0.0.1:0
    my-tcp-2:
        bind: 127.0.0.1:0
        max-connections: 1000
timeout-disconnect-delay: 2
auth:
    plugins: ['auth.anonymous'] #List of plugins to activate for authentication among all registered plugins
    allow-anonymous: true
";
    let broker = start(yaml).await;
    let c = broker.config();
    let l1 = c.listeners.iter().find(|l| l.name == "my-tcp-1").expect("my-tcp-1 configured");
    let l2 = c.listeners.iter().find(|l| l.name == "my-tcp-2").expect("my-tcp-2 configured");
    assert_eq!(l1.max_connections, 50000, "my-tcp-1 inherits max-connections from default");
    assert_eq!(l2.max_connections, 1000, "my-tcp-2 overrides it");
    assert_eq!(c.timeout_disconnect_delay, Duration::from_secs(2));
    assert!(broker.local_addr("default").is_none(), "`default` has no bind: it is a template, not a listener");
    let (a1, a2) = (addr_of(&broker, "my-tcp-1"), addr_of(&broker, "my-tcp-2"));
    assert_ne!(a1.port(), a2.port());
    assert_pub_sub_works(a1, "doc-1").await;
    assert_pub_sub_works(a2, "doc-2").await;
    broker.shutdown().await;
}

/// The whole documented example, with its tcp, ssl and ws listeners, runs
/// unchanged (only the file paths and ports are the test's), and each
/// listener serves a real client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_example_with_tcp_ssl_and_ws_listeners_runs() {
    let dir = TempDir::new("hbmqtt-doc");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let cafile = ca.write(&dir, "ca.pem");
    let yaml = format!(
        "
listeners:
    default:
        max-connections: 50000
        type: tcp
    my-tcp-1:
        bind: 127.0.0.1:0
    my-tcp-2:
        bind: 127.0.0.1:0
        max-connections: 1000
    my-tcp-ssl-1:
        bind: 127.0.0.1:0
        ssl: on
        cafile: {}
        certfile: {}
        keyfile: {}
    my-ws-1:
        bind: 127.0.0.1:0
        type: ws
timeout-disconnect-delay: 2
auth:
    plugins: ['auth.anonymous']
    allow-anonymous: true
",
        cafile.display(),
        server.cert.display(),
        server.key.display()
    );
    let broker = start(&yaml).await;
    for name in ["my-tcp-1", "my-tcp-2"] {
        assert_pub_sub_works(addr_of(&broker, name), name).await;
    }
    let tls = addr_of(&broker, "my-tcp-ssl-1");
    let mut o = rumqttc::MqttOptions::new("doc-tls", "127.0.0.1", tls.port());
    o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(client_config(
        &ca.pem, None,
    )))));
    round_trip(o, "doc/tls", b"ssl listener").await;
    let ws = addr_of(&broker, "my-ws-1");
    let mut o = rumqttc::MqttOptions::new("doc-ws", format!("ws://127.0.0.1:{}/", ws.port()), ws.port());
    o.set_transport(rumqttc::Transport::Ws);
    round_trip(o, "doc/ws", b"ws listener").await;
    broker.shutdown().await;
}

/// hbmqtt's own `scripts/default_broker.yaml`, as shipped (only the port
/// changed): a top-level `plugins:` list (ignored by hbmqtt), `sys_interval`,
/// `auth.allow-anonymous`, and `topic-check.enabled: False`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hbmqtt_default_broker_yaml_runs_unchanged() {
    let yaml = "listeners:
    default:
        type: tcp
        bind: 0.0.0.0:0
sys_interval: 20
auth:
    allow-anonymous: true
plugins:
    - auth_file
    - auth_anonymous

topic-check:
    enabled: False
";
    let broker = start(yaml).await;
    assert_eq!(broker.config().sys_interval, Duration::from_secs(20));
    assert!(broker.config().auth.allow_anonymous);
    assert!(!broker.config().topic_check.enabled);
    // The ignored top-level `plugins:` list is pointed out, not silently dropped.
    assert!(
        broker.config().warnings.iter().any(|w| w.contains("plugins")),
        "expected a warning about the top-level `plugins` list: {:?}",
        broker.config().warnings
    );
    let addr = addr_of(&broker, "default");
    assert_pub_sub_works(addr, "hb-default").await;
    // topic-check disabled: the taboo topics are not checked.
    let mut c = connect_ok(addr, "hb-taboo", None).await;
    assert_eq!(
        subscribe(&mut c, 1, &[("prohibited", QoS::AtMostOnce)]).await,
        vec![SubackCode::Granted(QoS::AtMostOnce)]
    );
    broker.shutdown().await;
}

// ---------------------------------------------------------------------------
// max-connections, both spellings

/// With a limit of 2, the first two clients work and a third connection is
/// closed promptly without a CONNACK; when one leaves, a new one gets in.
async fn check_connection_limit_of_two(yaml: &str) {
    let broker = start(yaml).await;
    let addr = addr_of(&broker, "default");
    let mut first = connect_ok(addr, "limit-1", None).await;
    let mut second = connect_ok(addr, "limit-2", None).await;

    let mut third = RawClient::connect(addr).await;
    let mut bytes = bytes::BytesMut::new();
    moth_protocol::codec::encode(
        &Packet::Connect(Box::new(connect_packet("limit-3", true))),
        Protocol::V311,
        &mut bytes,
    );
    // The broker may have closed the socket already; a failed write is fine.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut third.stream, &bytes).await;
    match third.recv_within(Duration::from_secs(5)).await {
        Ok(None) => {}
        Ok(Some(p)) => panic!("the third connection must get no packet (no CONNACK), got {p:?}"),
        Err(()) => panic!("the third connection should be closed promptly, it stayed open for 5 s"),
    }

    // The first two still work.
    assert_eq!(subscribe(&mut first, 1, &[("limit/t", QoS::AtMostOnce)]).await.len(), 1);
    publish0(&mut second, "limit/t", "still here").await;
    assert_eq!(&next_publish(&mut first).await.payload[..], b"still here");

    // A freed slot is reusable (the permit is released when the task ends).
    second.send(&Packet::Disconnect(Disconnect::default())).await;
    second.expect_closed().await;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let (c, ack) = connect_as(addr, "limit-4", None).await;
        match ack {
            Some(Packet::Connack(a)) if a.code == ConnectReturnCode::Accepted => {
                drop(c);
                break;
            }
            None if tokio::time::Instant::now() < deadline => {
                // The slot of `second` is not released yet; retry.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a client should get in after one left, got {other:?}"),
        }
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_underscore_spelling_is_enforced() {
    check_connection_limit_of_two(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n    max_connections: 2\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_hyphen_spelling_is_enforced() {
    check_connection_limit_of_two(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n    max-connections: 2\n",
    )
    .await;
}

// ---------------------------------------------------------------------------
// auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_anonymous_false_refuses_anonymous_client_with_connack_5() {
    let b = TestBroker::start("auth:\n  allow-anonymous: false\n").await;
    assert_refused_with_5(b.addr, "anon", None).await;
}

async fn check_auth_plugin_spelling(name: &str) {
    // The plugin is active: it refuses anonymous clients when told to...
    let b = TestBroker::start(&format!("auth:\n  plugins: ['{name}']\n  allow-anonymous: false\n")).await;
    assert_refused_with_5(b.addr, "anon-off", None).await;
    // ...and lets them in when told to.
    let b = TestBroker::start(&format!("auth:\n  plugins: ['{name}']\n  allow-anonymous: true\n")).await;
    assert_pub_sub_works(b.addr, "anon-on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plugin_documented_spelling_auth_dot_anonymous() {
    check_auth_plugin_spelling("auth.anonymous").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plugin_entry_point_spelling_auth_underscore_anonymous() {
    check_auth_plugin_spelling("auth_anonymous").await;
}

// ---------------------------------------------------------------------------
// topic-check

const ACL_CONFIG: &str = "
topic-check:
    enabled: true
    plugins: ['topic_acl']
    acl:
        alice: ['repositories/+/master', 'calendar/#']
        anonymous: ['message/public']
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_acl_denied_subscribe_gets_suback_0x80() {
    let b = TestBroker::start(ACL_CONFIG).await;
    let mut anon = connect_ok(b.addr, "acl-anon", None).await;
    assert_eq!(
        subscribe(&mut anon, 1, &[("calendar/#", QoS::AtLeastOnce), ("message/public", QoS::AtLeastOnce)]).await,
        vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR), SubackCode::Granted(QoS::AtLeastOnce)],
        "anonymous may use only message/public"
    );
    let mut alice = connect_ok(b.addr, "acl-alice", Some("alice")).await;
    assert_eq!(
        subscribe(
            &mut alice,
            1,
            &[
                ("repositories/moth/master", QoS::AtMostOnce),
                ("calendar/2026/#", QoS::AtMostOnce),
                ("message/public", QoS::AtMostOnce)
            ]
        )
        .await,
        vec![
            SubackCode::Granted(QoS::AtMostOnce),
            SubackCode::Granted(QoS::AtMostOnce),
            SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR)
        ]
    );
    let mut mallory = connect_ok(b.addr, "acl-mallory", Some("mallory")).await;
    assert_eq!(
        subscribe(&mut mallory, 1, &[("message/public", QoS::AtMostOnce)]).await,
        vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR)],
        "a user missing from the ACL may use nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_acl_denied_publish_is_not_delivered() {
    let b = TestBroker::start(ACL_CONFIG).await;
    // The in-process subscription is not subject to topic checks: it sees
    // whatever the broker routes.
    let mut watcher = b.broker.subscribe("#", QoS::AtMostOnce).expect("subscribe");
    let mut anon = connect_ok(b.addr, "acl-pub-anon", None).await;
    publish0(&mut anon, "calendar/today", "denied").await;
    publish0(&mut anon, "message/public", "allowed").await;
    let m = tokio::time::timeout(EVENT_TIMEOUT, watcher.recv())
        .await
        .expect("the allowed message is routed")
        .expect("the broker is running");
    assert_eq!(&*m.topic, "message/public", "the denied publish must not be delivered (got it first)");

    let mut alice = connect_ok(b.addr, "acl-pub-alice", Some("alice")).await;
    publish0(&mut alice, "calendar/today", "alice may").await;
    let m = tokio::time::timeout(EVENT_TIMEOUT, watcher.recv())
        .await
        .expect("alice's message is routed")
        .expect("the broker is running");
    assert_eq!(&*m.topic, "calendar/today");
    assert_eq!(&m.payload[..], b"alice may");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_taboo_denies_taboo_topics_except_to_admin() {
    let b = TestBroker::start("topic-check:\n  enabled: true\n  plugins: ['topic_taboo']\n").await;
    let mut anon = connect_ok(b.addr, "taboo-anon", None).await;
    assert_eq!(
        subscribe(&mut anon, 1, &[("prohibited", QoS::AtMostOnce), ("weather", QoS::AtMostOnce)]).await,
        vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR), SubackCode::Granted(QoS::AtMostOnce)]
    );
    let mut admin = connect_ok(b.addr, "taboo-admin", Some("admin")).await;
    assert_eq!(
        subscribe(&mut admin, 1, &[("top-secret", QoS::AtMostOnce)]).await,
        vec![SubackCode::Granted(QoS::AtMostOnce)]
    );
    // anonymous publishes to a taboo topic: not delivered; then a normal one is.
    publish0(&mut anon, "top-secret", "leak").await;
    publish0(&mut anon, "weather", "sunny").await;
    let p = next_publish(&mut anon).await;
    assert_eq!(&*p.topic, "weather");
    // admin publishes to it: delivered.
    publish0(&mut admin, "top-secret", "by admin").await;
    let p = next_publish(&mut admin).await;
    assert_eq!(&*p.topic, "top-secret");
    assert_eq!(&p.payload[..], b"by admin");
}

// ---------------------------------------------------------------------------
// Addresses and YAML spellings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_bind_is_served() {
    let broker = start("listeners:\n  default:\n    type: tcp\n  v6:\n    bind: '[::1]:0'\n").await;
    let addr = addr_of(&broker, "v6");
    assert!(addr.is_ipv6() && addr.ip().is_loopback(), "bound to {addr}");
    assert_pub_sub_works(addr, "v6-client").await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_on_off_yes_no_booleans_are_understood() {
    // `off` / `no`: anonymous refused.
    for word in ["off", "no", "False"] {
        let b = TestBroker::start(&format!("auth:\n  allow-anonymous: {word}\n")).await;
        assert!(!b.broker.config().auth.allow_anonymous, "allow-anonymous: {word}");
        assert_refused_with_5(b.addr, "bool-off", None).await;
    }
    // `on` / `yes`: anonymous admitted, and topic-check enabled.
    for (anon, enabled) in [("on", "yes"), ("yes", "on"), ("True", "true")] {
        let b = TestBroker::start(&format!(
            "auth:\n  allow-anonymous: {anon}\ntopic-check:\n  enabled: {enabled}\n  plugins: [topic_taboo]\n"
        ))
        .await;
        assert!(b.broker.config().auth.allow_anonymous, "allow-anonymous: {anon}");
        assert!(b.broker.config().topic_check.enabled, "enabled: {enabled}");
        let mut c = connect_ok(b.addr, "bool-on", None).await;
        assert_eq!(
            subscribe(&mut c, 1, &[("prohibited", QoS::AtMostOnce)]).await,
            vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_username_and_no_password_is_allowed_by_anonymous_plugin() {
    // MQTT 3.1.1 allows a user name without a password (hbmqtt refuses it).
    let b = TestBroker::start("").await;
    let mut c = RawClient::connect(b.addr).await;
    c.send(&Packet::Connect(Box::new(Connect {
        protocol: Protocol::V311,
        clean_session: true,
        keep_alive: 30,
        client_id: "named".into(),
        will: None,
        username: Some("bob".into()),
        password: None,
        properties: Default::default(),
    })))
    .await;
    match c.recv().await {
        Some(Packet::Connack(a)) if a.code == ConnectReturnCode::Accepted => {}
        other => panic!("expected CONNACK 0, got {other:?}"),
    }
}
