//! The Prometheus endpoint (`metrics` section), scraped with `curl` as an
//! operator would, its text checked with the strict parser of
//! `moth_tests::prom`, and its figures compared with traffic whose every
//! byte the test knows. Also `Broker::reload`: a refused anonymous CONNECT
//! after the reload, while a connected client keeps working.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use moth::{Broker, Config};
use moth_protocol::codec;
use moth_protocol::packet::{Ack, ConnectReturnCode, Disconnect, Packet, Protocol, Publish, QoS};
use moth_tests::prom::{self, Exposition};
use moth_tests::{EVENT_TIMEOUT, RawClient, connect_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

fn config(allow_anonymous: bool) -> Config {
    Config::from_yaml_str(&format!(
        "listeners:\n  default:\n    type: tcp\n  lst-a:\n    bind: 127.0.0.1:0\n  lst-b:\n    bind: 127.0.0.1:0\n\
         metrics:\n  bind: 127.0.0.1:0\n  path: /prom\nauth:\n  plugins: [auth_anonymous]\n  \
         allow-anonymous: {allow_anonymous}\n"
    ))
    .expect("valid config")
}

fn encoded_len(p: &Packet) -> u64 {
    let mut b = BytesMut::new();
    codec::encode(p, Protocol::V311, &mut b);
    b.len() as u64
}

/// `curl -sS -i URL`: the status line, headers and body.
async fn curl(url: &str, extra: &[&str]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "10"]).args(extra).arg(url);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out =
        tokio::time::timeout(EVENT_TIMEOUT * 2, cmd.output()).await.expect("curl finished in time").unwrap_or_else(
            |e| panic!("`curl` cannot be run ({e}): install the Debian package `curl`; scripts/test.sh does it"),
        );
    assert!(out.status.success(), "curl {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 response")
}

/// Scrapes and parses strictly; panics with the text when it does not parse.
async fn scrape(addr: SocketAddr) -> Exposition {
    let response = curl(&format!("http://{addr}/prom"), &[]).await;
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    prom::parse(body).unwrap_or_else(|e| panic!("the metrics are not valid Prometheus text: {e}\n{body}"))
}

/// Scrapes until `want` all hold (the broker adds its counts right after it
/// writes, so a scrape may race the last packet); fails after the deadline.
/// A wanted figure: metric name, labels, value.
type Want<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

async fn scrape_until(addr: SocketAddr, want: &[Want<'_>]) -> Exposition {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let exp = scrape(addr).await;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(n, l, v)| exp.value(n, l) != Some(*v))
            .map(|(n, l, v)| format!("{n}{l:?}: want {v}, got {:?}", exp.value(n, l)))
            .collect();
        if wrong.is_empty() {
            return exp;
        }
        assert!(tokio::time::Instant::now() < deadline, "metrics never matched:\n{}", wrong.join("\n"));
        // Retry interval of a readiness poll, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish_qos1(c: &mut RawClient, id: u16, payload: &str) -> u64 {
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "metrics/test".into(),
        packet_id: id,
        payload: payload.to_string().into(),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    });
    c.send(&p).await;
    assert_eq!(c.recv().await, Some(Packet::Puback(Ack::new(id))));
    encoded_len(&p)
}

#[tokio::test]
async fn metrics_endpoint_counts_known_traffic_and_auth_answers_after_reload() {
    let broker = Broker::new(config(true)).expect("broker");
    broker.start().await.expect("start");
    let a = broker.local_addr("lst-a").expect("lst-a");
    let b = broker.local_addr("lst-b").expect("lst-b");
    let metrics = broker.metrics_addr().expect("metrics endpoint");

    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let connack_len = encoded_len(&Packet::Puback(Ack::new(1))); // CONNACK and PUBACK are both 4 bytes
    let mut clients = Vec::new();
    for (addr, id) in [(a, "m-a1"), (a, "m-a2"), (b, "m-b1")] {
        let (c, ack) = RawClient::handshake(addr, id, true).await;
        assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::Accepted), "{ack:?}");
        bytes_in += encoded_len(&Packet::Connect(Box::new(connect_packet(id, true))));
        bytes_out += connack_len;
        clients.push(c);
    }
    for (i, payload) in ["one", "two", "three"].iter().enumerate() {
        bytes_in += publish_qos1(&mut clients[0], i as u16 + 1, payload).await;
        bytes_out += connack_len;
    }

    // Reload: anonymous clients are refused from now on.
    let report = broker.reload(&config(false)).expect("reload");
    assert_eq!(report.applied, vec!["auth.allow-anonymous: true -> false".to_string()]);
    assert!(report.needs_restart.is_empty(), "{:?}", report.needs_restart);
    let (mut refused, ack) = RawClient::handshake(b, "m-anon", true).await;
    assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::NotAuthorized), "{ack:?}");
    refused.expect_closed().await;
    bytes_in += encoded_len(&Packet::Connect(Box::new(connect_packet("m-anon", true))));
    bytes_out += connack_len;
    let mut named = connect_packet("m-bob", true);
    named.username = Some("bob".into());
    let mut c = RawClient::connect(b).await;
    c.send(&Packet::Connect(Box::new(named.clone()))).await;
    let ack = c.recv().await;
    // A user name nobody knows: refused like a wrong password.
    assert!(
        matches!(ack, Some(Packet::Connack(ref k)) if k.code == ConnectReturnCode::BadUsernameOrPassword),
        "{ack:?}"
    );
    bytes_in += encoded_len(&Packet::Connect(Box::new(named)));
    bytes_out += connack_len;
    // A client connected before the reload keeps working.
    bytes_in += publish_qos1(&mut clients[2], 9, "still here").await;
    bytes_out += connack_len;

    let listener = |l: &'static str| -> Vec<(&'static str, &'static str)> { vec![("listener", l)] };
    let la = listener("lst-a");
    let lb = listener("lst-b");
    let anon = |r: &'static str| vec![("plugin", "auth_anonymous"), ("result", r)];
    let (allowed, denied, ignored, error) = (anon("allowed"), anon("denied"), anon("ignored"), anon("error"));
    let exp = scrape_until(
        metrics,
        &[
            ("moth_bytes_received_total", &[], bytes_in as f64),
            ("moth_bytes_sent_total", &[], bytes_out as f64),
            ("moth_packets_received_total", &[], 9.0),
            ("moth_packets_sent_total", &[], 9.0),
            ("moth_publish_received_total", &[], 4.0),
            ("moth_publish_sent_total", &[], 0.0),
            ("moth_clients_connected", &[], 3.0),
            ("moth_clients_maximum", &[], 3.0),
            ("moth_clients_disconnected_total", &[], 0.0),
            ("moth_sessions", &[], 3.0),
            ("moth_sessions_offline", &[], 0.0),
            ("moth_listener_connections", &la, 2.0),
            ("moth_listener_connections", &lb, 1.0),
            ("moth_listener_connections_accepted_total", &la, 2.0),
            ("moth_listener_connections_accepted_total", &lb, 1.0),
            ("moth_listener_connections_refused_total", &la, 0.0),
            ("moth_listener_connections_refused_total", &lb, 2.0),
            ("moth_auth_results_total", &allowed, 3.0),
            ("moth_auth_results_total", &denied, 1.0),
            ("moth_auth_results_total", &ignored, 1.0),
            ("moth_auth_results_total", &error, 0.0),
            ("moth_auth_latency_seconds_count", &[("plugin", "auth_anonymous")], 5.0),
            // $SYS/broker/version is retained from the start.
            ("moth_retained_messages", &[], 1.0),
        ],
    )
    .await;
    assert_eq!(exp.types.get("moth_auth_latency_seconds").map(String::as_str), Some("histogram"));
    assert_eq!(exp.types.get("moth_bytes_received_total").map(String::as_str), Some("counter"));
    assert_eq!(exp.types.get("moth_clients_connected").map(String::as_str), Some("gauge"));

    // One client leaves: the gauges follow.
    clients[1].send(&Packet::Disconnect(Disconnect::default())).await;
    clients[1].expect_closed().await;
    scrape_until(
        metrics,
        &[
            ("moth_clients_connected", &[], 2.0),
            ("moth_clients_maximum", &[], 3.0),
            ("moth_clients_disconnected_total", &[], 1.0),
            ("moth_listener_connections", &la, 1.0),
        ],
    )
    .await;
    broker.shutdown().await;
    assert!(broker.metrics_addr().is_none());
    // The port is closed, unless a test running beside this one has bound
    // the freed port since: then whatever answers is not this broker, which
    // had 3 clients at most.
    if TcpStream::connect(metrics).await.is_ok() {
        let r = tokio::time::timeout(EVENT_TIMEOUT, async {
            let mut s = TcpStream::connect(metrics).await.ok()?;
            s.write_all(b"GET /prom HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            Some(String::from_utf8_lossy(&out).into_owned())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        assert!(!r.contains("moth_clients_maximum 3"), "the metrics endpoint outlived the broker: {r}");
    }
}

/// Sends raw bytes and returns the whole response.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(EVENT_TIMEOUT, s.read_to_end(&mut out)).await.expect("response in time").expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn metrics_endpoint_answers_wrong_requests_with_http_errors_and_keeps_serving() {
    let broker = Broker::new(config(true)).expect("broker");
    broker.start().await.expect("start");
    let m = broker.metrics_addr().expect("metrics endpoint");
    let r = raw_http(m, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = raw_http(m, b"POST /prom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 405") && r.contains("Allow: GET, HEAD"), "{r}");
    let r = raw_http(m, b"garbage\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let huge = format!("GET /prom HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let r = raw_http(m, huge.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // A client that connects and sends nothing does not block others.
    let _idle = TcpStream::connect(m).await.expect("connect");
    let r = curl(&format!("http://{m}/prom"), &["-I"]).await;
    assert!(r.starts_with("HTTP/1.1 200"), "HEAD: {r}");
    assert!(!r.contains("moth_build_info"), "HEAD has no body: {r}");
    let exp = scrape(m).await;
    assert_eq!(exp.value("moth_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    // The MQTT side is unaffected.
    let (_c, ack) = RawClient::handshake(broker.local_addr("lst-a").expect("lst-a"), "still-fine", true).await;
    assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::Accepted));
    // The idle HTTP client does not hold the shutdown up (its read deadline is 5 s).
    tokio::time::timeout(Duration::from_secs(3), broker.shutdown()).await.expect("shutdown is not held up");
}

#[tokio::test]
async fn reload_with_an_unknown_plugin_changes_nothing() {
    let broker = Broker::new(config(true)).expect("broker");
    broker.start().await.expect("start");
    let bad = Config::from_yaml_str("auth:\n  plugins: [no_such_plugin]\n").expect("parses");
    let err = broker.reload(&bad).expect_err("an unknown plugin is refused");
    assert!(err.to_string().contains("no_such_plugin"), "{err}");
    let (_c, ack) = RawClient::handshake(broker.local_addr("lst-a").expect("lst-a"), "after-bad-reload", true).await;
    assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::Accepted), "{ack:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn refusals_before_authentication_are_counted_per_listener() {
    let config = Config::from_yaml_str(
        "listeners:\n  default:\n    type: tcp\n  full:\n    bind: 127.0.0.1:0\n    max-connections: 1\n  \
         other:\n    bind: 127.0.0.1:0\nmetrics:\n  bind: 127.0.0.1:0\n  path: /prom\n",
    )
    .expect("valid config");
    let broker = Broker::new(config).expect("broker");
    broker.start().await.expect("start");
    let full = broker.local_addr("full").expect("full");
    let other = broker.local_addr("other").expect("other");
    let metrics = broker.metrics_addr().expect("metrics endpoint");

    let (_first, ack) = RawClient::handshake(full, "only-one", true).await;
    assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::Accepted), "{ack:?}");
    // The listener is full: the next socket is closed at once.
    let mut second = RawClient::connect(full).await;
    second.expect_closed().await;
    // A protocol level moth does not speak (6) on the other listener: CONNACK 1.
    let mut v6 = RawClient::connect(other).await;
    v6.send_raw(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 1, b'x']).await;
    let ack = v6.recv().await;
    assert!(
        matches!(ack, Some(Packet::Connack(ref k)) if k.code == ConnectReturnCode::UnacceptableProtocolVersion),
        "{ack:?}"
    );
    // An empty client id with clean session 0: CONNACK 2.
    let (_c, ack) = RawClient::handshake(other, "", false).await;
    assert!(matches!(ack, Packet::Connack(ref k) if k.code == ConnectReturnCode::IdentifierRejected), "{ack:?}");

    let full_l: &[(&str, &str)] = &[("listener", "full")];
    let other_l: &[(&str, &str)] = &[("listener", "other")];
    scrape_until(
        metrics,
        &[
            ("moth_listener_connections", full_l, 1.0),
            ("moth_listener_connections", other_l, 0.0),
            ("moth_listener_connections_accepted_total", full_l, 1.0),
            ("moth_listener_connections_refused_total", full_l, 1.0),
            ("moth_listener_connections_refused_total", other_l, 2.0),
            ("moth_clients_connected", &[], 1.0),
        ],
    )
    .await;
    broker.shutdown().await;
}
