//! What a listener does with an accepted TCP socket before MQTT starts: the
//! TLS handshake and/or the WebSocket upgrade, under one timeout.
//!
//! The result is always the same thing: a byte stream plus what was learned
//! on the way (the TLS client identity), so that every listener type runs
//! the one `connection::serve`. The timeout matters because a connection
//! holds a `max-connections` slot from the moment it is accepted: a socket
//! that opens and sends nothing must not keep it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ListenerConfig, ListenerKind};
use crate::tls::{self, TlsError};
use crate::websocket::{self, UpgradeError, WsOptions};

/// How long the TLS handshake and the WebSocket upgrade may take together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames smaller than this are always accepted, whatever `max-packet-size`.
const MIN_WS_MESSAGE: usize = 64 * 1024;

/// Any byte stream a transport yields.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A connection ready for MQTT.
pub struct Established {
    pub stream: Box<dyn ByteStream>,
    /// Subject CN of the client certificate the TLS handshake verified.
    pub tls_identity: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake / WebSocket upgrade within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error(transparent)]
    Ws(#[from] UpgradeError),
}

/// One listener's transport, built once with the broker.
pub struct Transport {
    tls: Option<TlsAcceptor>,
    ws: Option<WsOptions>,
    /// `use_identity_as_username` (TLS listeners).
    pub identity_as_username: bool,
}

impl Transport {
    /// Loads the listener's TLS material, if any; errors name the listener.
    pub fn new(config: &ListenerConfig, max_packet_size: usize) -> Result<Transport, TlsError> {
        let tls = config.tls.as_ref().map(|t| tls::acceptor(&config.name, t)).transpose()?;
        let ws = (config.kind == ListenerKind::Ws)
            .then(|| WsOptions { path: config.ws_path.clone(), max_message_size: max_packet_size.max(MIN_WS_MESSAGE) });
        Ok(Transport { tls, ws, identity_as_username: config.tls.as_ref().is_some_and(|t| t.use_identity_as_username) })
    }

    /// `tcp`, `tls`, `ws` or `wss`, for logs.
    pub fn name(&self) -> &'static str {
        match (self.tls.is_some(), self.ws.is_some()) {
            (false, false) => "tcp",
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    /// Runs the handshakes this listener needs on an accepted socket.
    pub async fn establish(&self, tcp: TcpStream) -> Result<Established, HandshakeError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(tcp)).await.map_err(|_| HandshakeError::Timeout)?
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Established, HandshakeError> {
        match (&self.tls, &self.ws) {
            (None, None) => Ok(Established { stream: Box::new(tcp), tls_identity: None }),
            (None, Some(ws)) => {
                Ok(Established { stream: Box::new(websocket::accept(tcp, ws).await?), tls_identity: None })
            }
            (Some(acceptor), ws) => {
                let stream = acceptor.accept(tcp).await.map_err(HandshakeError::Tls)?;
                let tls_identity = tls::client_identity(stream.get_ref().1).map(Arc::from);
                let stream: Box<dyn ByteStream> = match ws {
                    None => Box::new(stream),
                    Some(ws) => Box::new(websocket::accept(stream, ws).await?),
                };
                Ok(Established { stream, tls_identity })
            }
        }
    }
}
