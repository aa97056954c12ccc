//! What a listener does with an accepted TCP socket before MQTT starts: the
//! TLS handshake and/or the WebSocket upgrade, under one timeout.
//!
//! The result is always the same thing: a byte stream plus what was learned
//! on the way (the TLS client identity), so that every listener type runs
//! the one `connection::serve`. The timeout matters because a connection
//! holds a `max-connections` slot from the moment it is accepted: a socket
//! that opens and sends nothing must not keep it.

pub(crate) mod cert_identity;
pub(crate) mod tls;
pub(crate) mod websocket;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ListenerConfig, ListenerKind};
use tls::TlsError;
use websocket::{UpgradeError, WsOptions};

/// How long the TLS handshake and the WebSocket upgrade may take together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames smaller than this are always accepted, whatever `max-packet-size`.
const MIN_WS_MESSAGE: usize = 64 * 1024;

/// The largest WebSocket frame or message accepted: one whole packet of
/// `max-packet-size` (which counts the fixed header), never below
/// [`MIN_WS_MESSAGE`], so small limits still let a client batch packets.
fn ws_message_limit(max_packet_size: usize) -> usize {
    max_packet_size.max(MIN_WS_MESSAGE)
}

/// Any byte stream a transport yields.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A listener's transport as logs and `moth --check` name it: `tcp`, `tls`,
/// `ws` or `wss`.
pub fn transport_name(kind: ListenerKind, tls: bool) -> &'static str {
    match (kind, tls) {
        (ListenerKind::Tcp, false) => "tcp",
        (ListenerKind::Tcp, true) => "tls",
        (ListenerKind::Ws, false) => "ws",
        (ListenerKind::Ws, true) => "wss",
    }
}

/// A connection ready for MQTT.
pub(crate) struct Established {
    pub stream: Box<dyn ByteStream>,
    /// Subject CN of the client certificate the TLS handshake verified.
    pub tls_identity: Option<Arc<str>>,
    /// The verified client certificate itself (DER).
    pub tls_certificate: Option<Arc<[u8]>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("no TLS handshake / WebSocket upgrade within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("TLS handshake failed: {}{}", .0, tls_hint(.0).map(|h| format!(" ({h})")).unwrap_or_default())]
    Tls(std::io::Error),
    #[error(transparent)]
    Ws(#[from] UpgradeError),
}

/// What a TLS handshake failure usually means, in words an operator can
/// act on: rustls' own text (`received corrupt message of type
/// InvalidContentType`) names the symptom, not the cause.
fn tls_hint(e: &std::io::Error) -> Option<&'static str> {
    let text = e.to_string();
    let has = |needle: &str| text.contains(needle);
    if has("InvalidContentType") || has("corrupt message") {
        Some(
            "the client does not speak TLS: plain MQTT sent to a TLS listener? Connect with TLS, or to a plain listener",
        )
    } else if has("UnknownIssuer") {
        Some("the client's certificate is not signed by a CA in the listener's cafile, capath or cadata")
    } else if has("UnsupportedCertVersion") {
        Some("the client's certificate is not X.509 version 3, the only version accepted")
    } else if has("NoCertificatesPresented") || has("CertificateRequired") || has("peer sent no certificates") {
        Some("this listener requires a client certificate (require_certificate) and the client sent none")
    } else if has("BadCertificate") || has("UnknownCA") || has("DecryptError") {
        Some(
            "the client refused the server's certificate: not trusted by the client, or not issued for the address it connected to",
        )
    } else if has("NoProtocolVersionsInCommon") || has("PeerIncompatible") {
        Some("the client offers no TLS version or cipher the listener accepts (TLS 1.2 and 1.3)")
    } else {
        None
    }
}

/// One listener's transport, built once with the broker.
pub(crate) struct Transport {
    tls: Option<TlsAcceptor>,
    ws: Option<WsOptions>,
    /// `use_identity_as_username` (TLS listeners).
    pub identity_as_username: bool,
}

impl Transport {
    /// Loads the listener's TLS material, if any; errors name the listener.
    pub(crate) fn new(config: &ListenerConfig, max_packet_size: usize) -> Result<Transport, TlsError> {
        let tls = config.tls.as_ref().map(|t| tls::acceptor(&config.name, t)).transpose()?;
        let ws = (config.kind == ListenerKind::Ws)
            .then(|| WsOptions { path: config.ws_path.clone(), max_message_size: ws_message_limit(max_packet_size) });
        Ok(Transport { tls, ws, identity_as_username: config.tls.as_ref().is_some_and(|t| t.use_identity_as_username) })
    }

    /// `tcp`, `tls`, `ws` or `wss`, for logs.
    pub(crate) fn name(&self) -> &'static str {
        let kind = if self.ws.is_some() { ListenerKind::Ws } else { ListenerKind::Tcp };
        transport_name(kind, self.tls.is_some())
    }

    /// Runs the handshakes this listener needs on an accepted socket.
    pub(crate) async fn establish(&self, tcp: TcpStream) -> Result<Established, HandshakeError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(tcp)).await.map_err(|_| HandshakeError::Timeout)?
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Established, HandshakeError> {
        match (&self.tls, &self.ws) {
            (None, None) => Ok(Established { stream: Box::new(tcp), tls_identity: None, tls_certificate: None }),
            (None, Some(ws)) => Ok(Established {
                stream: Box::new(websocket::accept(tcp, ws).await?),
                tls_identity: None,
                tls_certificate: None,
            }),
            (Some(acceptor), ws) => {
                let stream = acceptor.accept(tcp).await.map_err(HandshakeError::Tls)?;
                let tls_identity = tls::client_identity(stream.get_ref().1).map(Arc::from);
                let tls_certificate = tls::client_certificate(stream.get_ref().1);
                let stream: Box<dyn ByteStream> = match ws {
                    None => Box::new(stream),
                    Some(ws) => Box::new(websocket::accept(stream, ws).await?),
                };
                Ok(Established { stream, tls_identity, tls_certificate })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsConfig;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn tls_failures_say_what_to_do() {
        let plain = std::io::Error::other("received corrupt message of type InvalidContentType");
        let e = HandshakeError::Tls(plain).to_string();
        assert!(e.contains("InvalidContentType") && e.contains("plain MQTT sent to a TLS listener"), "{e}");
        let issuer = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert!(HandshakeError::Tls(issuer).to_string().contains("not signed by a CA"));
        let other = std::io::Error::other("something else");
        assert_eq!(HandshakeError::Tls(other).to_string(), "TLS handshake failed: something else");
    }

    fn listener(kind: ListenerKind, tls: Option<TlsConfig>) -> ListenerConfig {
        ListenerConfig {
            name: "test".into(),
            bind: ([127, 0, 0, 1], 0).into(),
            kind,
            max_connections: 1,
            tls,
            ws_path: None,
        }
    }

    /// A TLS configuration with a fresh self-signed certificate in `dir`.
    fn tls_config(dir: &std::path::Path) -> TlsConfig {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        std::fs::create_dir_all(dir).expect("dir");
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, generated.cert.pem()).expect("write");
        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write");
        TlsConfig {
            certfile: Some(cert),
            keyfile: Some(key),
            cafile: None,
            capath: None,
            cadata: None,
            require_certificate: false,
            use_identity_as_username: false,
        }
    }

    /// A client that connects and sends nothing: every handshake gives up
    /// after `HANDSHAKE_TIMEOUT` (virtual time) and the socket is closed.
    #[tokio::test(start_paused = true)]
    async fn an_idle_socket_times_out_on_every_handshaking_transport() {
        let dir = std::env::temp_dir().join(format!("moth-transport-{}", std::process::id()));
        for (kind, tls) in [
            (ListenerKind::Ws, None),
            (ListenerKind::Tcp, Some(tls_config(&dir))),
            (ListenerKind::Ws, Some(tls_config(&dir))),
        ] {
            let transport = Transport::new(&listener(kind, tls), 1 << 20).expect("transport");
            let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let mut idle = TcpStream::connect(socket.local_addr().expect("addr")).await.expect("connect");
            let (accepted, _) = socket.accept().await.expect("accept");
            let started = tokio::time::Instant::now();
            let result = transport.establish(accepted).await;
            assert!(matches!(result, Err(HandshakeError::Timeout)), "{}: {:?}", transport.name(), result.err());
            assert!(started.elapsed() >= HANDSHAKE_TIMEOUT);
            // The accepted socket was dropped with the failed handshake.
            let mut byte = [0u8; 1];
            assert_eq!(idle.read(&mut byte).await.expect("read"), 0, "{}: closed", transport.name());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn transport_names() {
        let dir = std::env::temp_dir().join(format!("moth-transport-names-{}", std::process::id()));
        let name = |kind, tls| Transport::new(&listener(kind, tls), 1024).expect("transport").name();
        assert_eq!(name(ListenerKind::Tcp, None), "tcp");
        assert_eq!(name(ListenerKind::Ws, None), "ws");
        assert_eq!(name(ListenerKind::Tcp, Some(tls_config(&dir))), "tls");
        assert_eq!(name(ListenerKind::Ws, Some(tls_config(&dir))), "wss");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
