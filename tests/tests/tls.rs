//! TLS listeners (`ssl: on`) with real clients: rumqttc and a raw rustls
//! client. Certificates are generated for each test (`moth_tests::certs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use moth::{Broker, BrokerError, Config};
use moth_protocol::codec;
use moth_protocol::packet::{ConnectReturnCode as Code, Packet, Protocol};
use moth_tests::certs::{Ca, Issued, KeyKind, TempDir, client_config, client_config_versions, tls_yaml};
use moth_tests::clients::{Outcome, round_trip, try_connect};
use moth_tests::{EVENT_TIMEOUT, TestBroker, connect_packet};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A broker with one TLS listener (plus `extra` lines in the listener and
/// `top` top-level lines).
async fn tls_broker(server: &Issued, cafile: Option<&std::path::Path>, extra: &str, top: &str) -> TestBroker {
    let yaml = format!("listeners:\n  default:\n    bind: 127.0.0.1:0\n{}{extra}{top}\n", tls_yaml(server, cafile));
    TestBroker::start_yaml(&yaml).await
}

fn tls_options(tb: &TestBroker, id: &str, config: rustls::ClientConfig) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", tb.port());
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))));
    o
}

/// A raw TLS connection (no MQTT yet).
async fn tls_connect(tb: &TestBroker, config: rustls::ClientConfig) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(tb.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tokio::time::timeout(EVENT_TIMEOUT, TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .expect("TLS handshake finishes")
}

/// Sends CONNECT and returns the CONNACK code, or `None` when the broker
/// closed the connection (a refused certificate shows up here with TLS 1.3,
/// where the client learns of the refusal after its handshake).
async fn mqtt_connect(stream: &mut TlsStream<TcpStream>, id: &str) -> Option<Code> {
    let mut out = BytesMut::new();
    codec::encode(&Packet::Connect(Box::new(connect_packet(id, true))), Protocol::V311, &mut out);
    if stream.write_all(&out).await.is_err() {
        return None;
    }
    let mut buf = BytesMut::new();
    loop {
        if let Some(p) = codec::decode(&mut buf, 1 << 20, Protocol::V311).expect("well-formed reply") {
            match p {
                Packet::Connack(a) => return Some(a.code),
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }
        match tokio::time::timeout(EVENT_TIMEOUT, stream.read_buf(&mut buf)).await.expect("reply in time") {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_round_trip_with_each_server_key_type() {
    let dir = TempDir::new("tls-keys");
    let ca = Ca::new("moth test CA");
    for kind in [KeyKind::EcdsaP256, KeyKind::EcdsaP384, KeyKind::Ed25519, KeyKind::Rsa] {
        let server = ca.server(&dir, &format!("server-{kind:?}"), kind, &[]);
        let tb = tls_broker(&server, None, "", "").await;
        let options = tls_options(&tb, &format!("tls-{kind:?}"), client_config(&ca.pem, None));
        round_trip(options, &format!("tls/{kind:?}"), b"over tls").await;
        tb.broker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_chain_through_an_intermediate_ca() {
    let dir = TempDir::new("tls-chain");
    let root = Ca::new("moth root CA");
    let intermediate = root.intermediate("moth intermediate CA");
    let server = intermediate.server(&dir, "server", KeyKind::EcdsaP256, &[&intermediate]);
    let tb = tls_broker(&server, None, "", "").await;
    // The client trusts the root only: the listener must send the chain.
    round_trip(tls_options(&tb, "tls-chain", client_config(&root.pem, None)), "tls/chain", b"chained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_tls_1_3_are_both_served() {
    let dir = TempDir::new("tls-versions");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let tb = tls_broker(&server, None, "", "").await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut stream = tls_connect(&tb, client_config_versions(&ca.pem, None, &[version])).await.expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(mqtt_connect(&mut stream, "tls-version").await, Some(Code::Accepted));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_is_optional_by_default_but_checked_when_sent() {
    let dir = TempDir::new("tls-optional");
    let ca = Ca::new("moth test CA");
    let rogue = Ca::new("rogue CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let good = ca.client(&dir, "good", "device-1");
    let bad = rogue.client(&dir, "bad", "device-1");
    let cafile = ca.write(&dir, "ca.pem");
    let tb = tls_broker(&server, Some(&cafile), "", "").await;

    round_trip(tls_options(&tb, "no-cert", client_config(&ca.pem, None)), "opt/none", b"1").await;
    round_trip(tls_options(&tb, "good-cert", client_config(&ca.pem, Some(&good))), "opt/good", b"2").await;
    let outcome = try_connect(tls_options(&tb, "bad-cert", client_config(&ca.pem, Some(&bad)))).await;
    assert!(matches!(outcome, Outcome::Failed(_)), "a certificate from an unknown CA is refused: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_certificate_from_the_ca() {
    let dir = TempDir::new("tls-mutual");
    let ca = Ca::new("moth test CA");
    let rogue = Ca::new("rogue CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let good = ca.client(&dir, "good", "device-1");
    let bad = rogue.client(&dir, "bad", "device-1");
    let cafile = ca.write(&dir, "ca.pem");
    let tb = tls_broker(&server, Some(&cafile), "    require_certificate: true\n", "").await;

    round_trip(tls_options(&tb, "mutual-good", client_config(&ca.pem, Some(&good))), "mutual/good", b"ok").await;
    for (id, client) in [("mutual-none", None), ("mutual-rogue", Some(&bad))] {
        let outcome = try_connect(tls_options(&tb, id, client_config(&ca.pem, client))).await;
        assert!(matches!(outcome, Outcome::Failed(_)), "{id}: must be refused at the TLS layer: {outcome:?}");
        // Raw client, TLS 1.3: the refusal arrives after the client's side of
        // the handshake, so CONNECT gets no CONNACK.
        if let Ok(mut stream) = tls_connect(&tb, client_config(&ca.pem, client)).await {
            assert_eq!(mqtt_connect(&mut stream, id).await, None, "{id}: no MQTT session without a valid certificate");
        }
    }
}

/// `use_identity_as_username`: the certificate's CN is the user name the
/// plugin chain sees (here `topic_acl`), whatever CONNECT says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_as_username_feeds_the_topic_acl() {
    let dir = TempDir::new("tls-identity");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let device = ca.client(&dir, "device", "sensor-1");
    let cafile = ca.write(&dir, "ca.pem");
    let top = "topic-check:\n  enabled: true\n  plugins: [topic_acl]\n  acl:\n    sensor-1: ['sensors/sensor-1/#']\n    mallory: ['#']\n";
    let tb = tls_broker(&server, Some(&cafile), "    use_identity_as_username: true\n", top).await;

    let mut options = tls_options(&tb, "cert-device", client_config(&ca.pem, Some(&device)));
    options.set_credentials("mallory", "claims-to-be-mallory");
    let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
    let codes = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match events.poll().await.expect("client runs") {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) => {
                    assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                    client
                        .subscribe_many([
                            rumqttc::SubscribeFilter::new("sensors/sensor-1/t".into(), rumqttc::QoS::AtMostOnce),
                            rumqttc::SubscribeFilter::new("sensors/other/t".into(), rumqttc::QoS::AtMostOnce),
                        ])
                        .await
                        .expect("queue SUBSCRIBE");
                }
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s)) => return s.return_codes,
                _ => {}
            }
        }
    })
    .await
    .expect("SUBACK in time");
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(rumqttc::QoS::AtMostOnce), rumqttc::SubscribeReasonCode::Failure],
        "the ACL of `sensor-1` (the certificate's CN) applies, not the one of `mallory` (the CONNECT's user name)"
    );

    // Without a certificate there is no identity: refused with CONNACK 5.
    let outcome = try_connect(tls_options(&tb, "no-cert", client_config(&ca.pem, None))).await;
    assert!(
        matches!(outcome, Outcome::Refused(rumqttc::ConnectReturnCode::NotAuthorized)),
        "a client without certificate has no user name: {outcome:?}"
    );
}

fn build_error(yaml: &str) -> String {
    let config = Config::from_yaml_str(yaml).expect("the YAML itself is valid");
    match Broker::new(config) {
        Ok(_) => panic!("Broker::new must refuse this TLS material:\n{yaml}"),
        Err(e) => {
            assert!(matches!(e, BrokerError::Tls(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn bad_tls_material_is_a_clear_error_naming_the_listener_and_file() {
    let dir = TempDir::new("tls-bad");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let other = ca.server(&dir, "other", KeyKind::EcdsaP256, &[]);
    let garbage =
        dir.file("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    let empty = dir.file("empty.pem", "");
    let missing = dir.0.join("missing.pem");
    let yaml = |cert: &std::path::Path, key: &std::path::Path, extra: &str| {
        format!(
            "listeners:\n  default:\n    type: tcp\n  secure-1:\n    bind: 127.0.0.1:0\n    ssl: on\n    \
             certfile: {}\n    keyfile: {}\n{extra}",
            cert.display(),
            key.display()
        )
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            yaml(&missing, &server.key, ""),
            vec!["secure-1".into(), "certfile".into(), missing.display().to_string(), "No such file".into()],
        ),
        (
            yaml(&server.cert, &missing, ""),
            vec!["secure-1".into(), "keyfile".into(), missing.display().to_string(), "No such file".into()],
        ),
        (
            yaml(&server.cert, &other.key, ""),
            vec!["secure-1".into(), "does not match".into(), other.key.display().to_string()],
        ),
        (yaml(&empty, &server.key, ""), vec!["secure-1".into(), "no PEM certificate".into()]),
        (yaml(&server.cert, &server.cert, ""), vec!["secure-1".into(), "keyfile".into(), "no PEM private key".into()]),
        (
            yaml(&server.cert, &server.key, &format!("    cafile: {}\n", garbage.display())),
            vec!["secure-1".into(), "cafile".into(), garbage.display().to_string(), "malformed PEM".into()],
        ),
        (
            yaml(&server.cert, &server.key, &format!("    capath: {}\n", dir.0.join("no-such-dir").display())),
            vec!["secure-1".into(), "capath".into(), "No such file".into()],
        ),
        (
            yaml(&server.cert, &server.key, "    cadata: not a certificate\n"),
            vec!["secure-1".into(), "cadata".into(), "no PEM certificate".into()],
        ),
    ];
    for (yaml, needles) in cases {
        let e = build_error(&yaml);
        assert!(!e.contains('\n'), "one line: {e}");
        for n in needles {
            assert!(e.contains(&n), "`{e}` should mention `{n}`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capath_and_cadata_give_client_cas_too() {
    let dir = TempDir::new("tls-capath");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let good = ca.client(&dir, "good", "device-1");
    let cadir = TempDir::new("tls-capath-dir");
    ca.write(&cadir, "ca.pem");
    cadir.file("README", "not a certificate; ignored");
    let cadata = ca.pem.replace('\n', "\n      ");
    for extra in [
        format!("    capath: {}\n    require_certificate: true\n", cadir.0.display()),
        format!("    cadata: |\n      {cadata}\n    require_certificate: true\n"),
        // hbmqtt's documented example: a capath that does not exist beside
        // another CA source is a warning, not a broker that will not start.
        format!(
            "    cadata: |\n      {cadata}\n    capath: {}\n    require_certificate: true\n",
            dir.0.join("certificate data").display()
        ),
    ] {
        let tb = tls_broker(&server, None, &extra, "").await;
        round_trip(tls_options(&tb, "ca-good", client_config(&ca.pem, Some(&good))), "ca/good", b"ok").await;
        let outcome = try_connect(tls_options(&tb, "ca-none", client_config(&ca.pem, None))).await;
        assert!(matches!(outcome, Outcome::Failed(_)), "{extra}: {outcome:?}");
        tb.broker.shutdown().await;
    }
}

/// A full TLS listener closes new sockets at once; a socket that never
/// starts its handshake loses its slot after the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tls_listener_refuses_and_an_idle_socket_cannot_keep_its_slot() {
    let dir = TempDir::new("tls-full");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let tb = tls_broker(&server, None, "    max-connections: 1\n", "").await;

    let mut idle = TcpStream::connect(tb.addr).await.expect("connect");
    // The slot is taken at accept: a second client is closed promptly.
    // (Retry until the idle socket has surely been accepted.)
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match tls_connect(&tb, client_config(&ca.pem, None)).await {
            Err(_) => break,
            Ok(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Ok(_) => panic!("a full listener must refuse the TLS handshake"),
        }
    }
    // The idle socket is closed by the broker once the handshake timeout passes.
    let mut byte = [0u8; 1];
    let started = tokio::time::Instant::now();
    let read = tokio::time::timeout(moth::internal::HANDSHAKE_TIMEOUT + EVENT_TIMEOUT, idle.read(&mut byte))
        .await
        .expect("the broker closes an idle socket");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
    assert!(started.elapsed() >= moth::internal::HANDSHAKE_TIMEOUT - Duration::from_secs(1));
    // And its slot is free again.
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        if let Ok(mut s) = tls_connect(&tb, client_config(&ca.pem, None)).await
            && mqtt_connect(&mut s, "after-idle").await == Some(Code::Accepted)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot of the idle socket was never released");
        tokio::task::yield_now().await;
    }
}
