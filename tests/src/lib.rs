//! Helpers shared by the end-to-end tests: start a broker on an ephemeral
//! port, and a raw MQTT client for byte-level tests. `certs` makes test
//! certificates; `clients` runs a rumqttc round trip over any transport;
//! `plugins` builds the plugin libraries; `scram` is a SCRAM-SHA-256 client.

pub mod certs;
pub mod clients;
pub mod plugins;
pub mod scram;

use std::net::SocketAddr;
use std::time::Duration;

pub mod prom;

use bytes::BytesMut;
use moth::{Broker, Config};
use moth_protocol::codec;
use moth_protocol::packet::{Connect, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an event that should happen (a packet, a close)
/// before failing. Generous: CI machines are shared and slow.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running broker and the address of its first listener.
pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
}

impl TestBroker {
    /// Starts a broker on 127.0.0.1 with an ephemeral port. `extra_yaml` is
    /// appended to the config (top-level keys other than `listeners`).
    /// Without an `auth` section of its own the broker admits every client,
    /// as moth's embedded default does (`auth.plugins: [auth_anonymous]`);
    /// a file with no `auth.plugins` at all keeps hbmqtt's rule, which
    /// refuses user names when there is no password file.
    pub async fn start(extra_yaml: &str) -> TestBroker {
        let names_auth = extra_yaml.lines().any(|l| l.starts_with("auth:") || l.starts_with("plugins:"));
        let auth = if names_auth { "" } else { "auth:\n  plugins: [auth_anonymous]\n" };
        let yaml = format!("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n{auth}{extra_yaml}\n");
        Self::start_yaml(&yaml).await
    }

    /// Starts a broker from a whole YAML config.
    pub async fn start_yaml(yaml: &str) -> TestBroker {
        let config = Config::from_yaml_str(yaml).expect("test config is valid");
        let broker = Broker::new(config).expect("broker builds");
        broker.start().await.expect("broker starts");
        let addr = broker.local_addrs().first().expect("one listener").1;
        TestBroker { broker, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// rumqttc options pointing at this broker.
    pub fn client_options(&self, client_id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, self.addr.ip().to_string(), self.addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }
}

/// A byte-level MQTT client for tests that must send what real clients
/// cannot (malformed packets, protocol violations) or watch exact packets.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The version packets are encoded and decoded in: 3.1.1 unless a test
    /// speaks MQTT 5.
    pub protocol: Protocol,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient { stream, buf: BytesMut::new(), protocol: Protocol::V311 }
    }

    /// Connects and completes an MQTT CONNECT/CONNACK with the given options.
    pub async fn handshake(addr: SocketAddr, client_id: &str, clean_session: bool) -> (RawClient, Packet) {
        let mut c = RawClient::connect(addr).await;
        c.send(&Packet::Connect(Box::new(connect_packet(client_id, clean_session)))).await;
        let ack = c.recv().await.expect("CONNACK");
        (c, ack)
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(packet, self.protocol, &mut out);
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet, or `None` when the broker closed the connection.
    /// Panics after `EVENT_TIMEOUT` with nothing received.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(EVENT_TIMEOUT).await.expect("a packet or a close within the timeout")
    }

    /// Like `recv`, but `Err(())` on timeout instead of a panic.
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match codec::decode(&mut self.buf, 1 << 28, self.protocol) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => panic!("broker sent a malformed packet: {e}"),
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Waits until the broker closes the connection, failing if it sends a
    /// packet first or stays open past `EVENT_TIMEOUT`.
    pub async fn expect_closed(&mut self) {
        match self.recv().await {
            None => {}
            Some(p) => panic!("expected the broker to close the connection, got {p:?}"),
        }
    }
}

/// A plain MQTT 3.1.1 CONNECT.
pub fn connect_packet(client_id: &str, clean_session: bool) -> Connect {
    Connect {
        protocol: Protocol::V311,
        clean_session,
        keep_alive: 60,
        client_id: client_id.to_string(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

/// This process's resident size in bytes (Linux `/proc/self/statm`), for
/// the memory tests (`resources*.rs`, one test per file so nothing else
/// runs in the process meanwhile).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
