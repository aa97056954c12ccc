//! WebSocket listeners (`type: ws`, and wss with `ssl: on`) with real
//! clients: rumqttc's websocket transport, and a tokio-tungstenite client
//! for what must be controlled frame by frame.

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use moth_protocol::codec;
use moth_protocol::packet::{ConnectReturnCode as Code, Packet, Protocol, Publish, QoS, Subscribe, SubscribeFilter};
use moth_tests::certs::{Ca, KeyKind, TempDir, client_config, tls_yaml};
use moth_tests::clients::{Outcome, round_trip, try_connect};
use moth_tests::{EVENT_TIMEOUT, TestBroker, connect_packet};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws = WebSocketStream<TcpStream>;

async fn ws_broker(listener_extra: &str) -> TestBroker {
    TestBroker::start_yaml(&format!("listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:0\n{listener_extra}"))
        .await
}

fn ws_options(tb: &TestBroker, id: &str, path: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, format!("ws://127.0.0.1:{}{path}", tb.port()), tb.port());
    o.set_transport(Transport::Ws);
    o
}

/// Opens a WebSocket offering `protocols` (none when empty).
async fn ws_open(tb: &TestBroker, path: &str, protocols: &str) -> Result<(Ws, Option<String>), WsError> {
    let mut request = format!("ws://127.0.0.1:{}{path}", tb.port()).into_client_request()?;
    if !protocols.is_empty() {
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocols).expect("header"));
    }
    let tcp = TcpStream::connect(tb.addr).await?;
    let (ws, response) = tokio::time::timeout(EVENT_TIMEOUT, tokio_tungstenite::client_async(request, tcp))
        .await
        .expect("upgrade answered in time")?;
    let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(String::from);
    Ok((ws, chosen))
}

fn encode(packets: &[Packet]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in packets {
        codec::encode(p, Protocol::V311, &mut out);
    }
    out.to_vec()
}

/// Reads binary frames until `n` packets are decoded (or the socket closes).
async fn recv_packets(ws: &mut Ws, n: usize) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    while packets.len() < n {
        while let Some(p) = codec::decode(&mut buf, 1 << 20, Protocol::V311).expect("well-formed") {
            packets.push(p);
        }
        if packets.len() >= n {
            break;
        }
        match tokio::time::timeout(EVENT_TIMEOUT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected binary frames, got {other:?} after {packets:?}"),
        }
    }
    packets
}

/// True when the broker ends the WebSocket (close frame, EOF or reset).
async fn closed(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, ws.next()).await.expect("close in time") {
            None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return true,
            Some(Ok(Message::Binary(b))) => panic!("expected a close, got {} bytes of data", b.len()),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_over_ws() {
    let tb = ws_broker("").await;
    round_trip(ws_options(&tb, "ws-client", "/mqtt"), "ws/rumqttc", b"over websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_over_wss() {
    let dir = TempDir::new("wss");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let tb = ws_broker(&tls_yaml(&server, None)).await;
    let mut o = MqttOptions::new("wss-client", format!("wss://127.0.0.1:{}/mqtt", tb.port()), tb.port());
    o.set_transport(Transport::wss_with_config(TlsConfiguration::Rustls(Arc::new(client_config(&ca.pem, None)))));
    round_trip(o, "wss/rumqttc", b"over secure websocket").await;
}

/// MQTT 3.1.1 section 6: a packet may span frames, a frame may hold several packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_and_frames_are_independent() {
    let tb = ws_broker("").await;
    let (mut ws, chosen) = ws_open(&tb, "/", "mqtt").await.expect("upgrade");
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    // CONNECT cut in three frames.
    let connect = encode(&[Packet::Connect(Box::new(connect_packet("ws-frames", true)))]);
    for part in [&connect[..1], &connect[1..5], &connect[5..]] {
        ws.send(Message::Binary(part.to_vec().into())).await.expect("send");
    }
    match &recv_packets(&mut ws, 1).await[..] {
        [Packet::Connack(a)] => assert_eq!(a.code, Code::Accepted),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // SUBSCRIBE, PUBLISH and PINGREQ in one frame.
    let batch = encode(&[
        Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("frames/t", QoS::AtMostOnce)])),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "frames/t".into(),
            packet_id: 0,
            payload: bytes::Bytes::from_static(b"one frame"),
            properties: None,
            topic_alias: None,
            subscription_ids: Vec::new(),
        }),
        Packet::Pingreq,
    ]);
    ws.send(Message::Binary(batch.into())).await.expect("send");
    let got = recv_packets(&mut ws, 3).await;
    assert!(matches!(got[0], Packet::Suback(_)), "{got:?}");
    let publish = got.iter().find_map(|p| if let Packet::Publish(p) = p { Some(p) } else { None });
    assert_eq!(publish.map(|p| &p.payload[..]), Some(&b"one frame"[..]), "{got:?}");
    assert!(got.iter().any(|p| matches!(p, Packet::Pingresp)), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocols_mqtt_and_mqttv31_are_echoed_and_others_refused() {
    let tb = ws_broker("").await;
    for (offered, expected) in [("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"), ("chat, mqtt", "mqtt")] {
        let (_ws, chosen) = ws_open(&tb, "/", offered).await.expect("upgrade");
        assert_eq!(chosen.as_deref(), Some(expected), "offered `{offered}`");
    }
    match ws_open(&tb, "/", "chat").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("a client offering only `chat` must get HTTP 400, got {:?}", other.map(|(_, p)| p)),
    }
    // No subprotocol offered at all: accepted (as hbmqtt does), none echoed.
    let (mut ws, chosen) = ws_open(&tb, "/", "").await.expect("upgrade without subprotocol");
    assert_eq!(chosen, None);
    ws.send(Message::Binary(encode(&[Packet::Connect(Box::new(connect_packet("ws-noproto", true)))]).into()))
        .await
        .expect("send");
    assert!(matches!(recv_packets(&mut ws, 1).await[..], [Packet::Connack(_)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_option_restricts_the_url() {
    let tb = ws_broker("    path: /mqtt\n").await;
    match ws_open(&tb, "/other", "mqtt").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("wrong path must get HTTP 404, got {:?}", other.map(|(_, p)| p)),
    }
    round_trip(ws_options(&tb, "ws-path", "/mqtt"), "ws/path", b"right path").await;
    // Without `path`, any path is served.
    let any = ws_broker("").await;
    round_trip(ws_options(&any, "ws-any", "/some/where"), "ws/any", b"any path").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_closes_the_connection() {
    let tb = ws_broker("").await;
    let (mut ws, _) = ws_open(&tb, "/", "mqtt").await.expect("upgrade");
    ws.send(Message::Binary(encode(&[Packet::Connect(Box::new(connect_packet("ws-text", true)))]).into()))
        .await
        .expect("send");
    assert!(matches!(recv_packets(&mut ws, 1).await[..], [Packet::Connack(_)]));
    ws.send(Message::Text("hello".into())).await.expect("send");
    assert!(closed(&mut ws).await, "[MQTT-6.0.0-1] a text frame closes the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_applies_to_ws_listeners() {
    let tb = ws_broker("    max-connections: 1\n").await;
    let (mut first, _) = ws_open(&tb, "/", "mqtt").await.expect("first client");
    first
        .send(Message::Binary(encode(&[Packet::Connect(Box::new(connect_packet("ws-1", true)))]).into()))
        .await
        .expect("send");
    assert!(matches!(recv_packets(&mut first, 1).await[..], [Packet::Connack(_)]));

    // Refused promptly: the socket is closed before any HTTP answer.
    let outcome = try_connect(ws_options(&tb, "ws-2", "/")).await;
    assert!(matches!(outcome, Outcome::Failed(_)), "second client on a full ws listener: {outcome:?}");

    // When the first leaves, its slot is free (retry: its task ends asynchronously).
    first.close(None).await.expect("close");
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match try_connect(ws_options(&tb, "ws-3", "/")).await {
            Outcome::Accepted => break,
            other => assert!(tokio::time::Instant::now() < deadline, "slot never freed: {other:?}"),
        }
    }
}

/// A large PUBLISH sent in four frames comes back whole; a frame larger
/// than `max-packet-size` closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_packets_across_frames_and_oversized_frames() {
    let tb = TestBroker::start_yaml(
        "listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:0\nmax-packet-size: 300000\n",
    )
    .await;
    let (mut ws, _) = ws_open(&tb, "/", "mqtt").await.expect("upgrade");
    let hello = encode(&[
        Packet::Connect(Box::new(connect_packet("ws-large", true))),
        Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("large/t", QoS::AtMostOnce)])),
    ]);
    ws.send(Message::Binary(hello.into())).await.expect("send");
    assert!(matches!(recv_packets(&mut ws, 2).await[..], [Packet::Connack(_), Packet::Suback(_)]));

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let publish = encode(&[Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "large/t".into(),
        packet_id: 0,
        payload: payload.clone().into(),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    })]);
    for part in publish.chunks(publish.len() / 4 + 1) {
        ws.send(Message::Binary(part.to_vec().into())).await.expect("send");
    }
    match &recv_packets(&mut ws, 1).await[..] {
        [Packet::Publish(p)] => assert_eq!(p.payload[..], payload[..], "the payload comes back intact"),
        other => panic!("expected the PUBLISH back, got {other:?}"),
    }

    // 200 000 PINGREQs: valid MQTT, but one frame above the limit.
    ws.send(Message::Binary([0xC0u8, 0x00].repeat(200_000).into())).await.expect("send");
    assert!(closed(&mut ws).await, "a frame above max-packet-size closes the connection unread");
}
