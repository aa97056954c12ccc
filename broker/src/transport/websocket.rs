//! MQTT over WebSocket (`type: ws`; with `ssl: on`, wss): the HTTP upgrade,
//! and an adapter that turns the WebSocket back into a plain byte stream.
//!
//! The adapter is what keeps every transport on the same protocol code:
//! binary frames are concatenated into the byte stream that
//! `connection::serve` decodes, so one MQTT packet may span several frames
//! and one frame may carry several packets (MQTT 3.1.1 section 6). Each write
//! becomes one binary frame.
//!
//! The upgrade negotiates the subprotocol: `mqtt` (the standard one) or
//! `mqttv3.1` (what older browser clients offer) is echoed back; a client
//! and browsers reject a server that echoes nothing. A client that offers
//! only other subprotocols is refused with 400; one that offers none is
//! accepted (command-line tools often don't), as the `websockets` library
//! hbmqtt uses accepts it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The subprotocols moth speaks, in order of preference.
pub(crate) const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Per-listener WebSocket settings.
#[derive(Debug, Clone)]
pub(crate) struct WsOptions {
    /// `path`: the only URL path accepted; `None` = any.
    pub path: Option<String>,
    /// Largest frame or message accepted. Frames carry MQTT packets, so
    /// this follows `max-packet-size` (and bounds memory per connection).
    pub max_message_size: usize,
}

/// Why an upgrade was refused (for the log).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    #[error("WebSocket upgrade refused: {0}")]
    Refused(String),
    #[error("WebSocket upgrade failed: {0}")]
    Failed(#[from] WsError),
}

/// Performs the server side of the upgrade on `stream` (TCP or TLS).
pub(crate) async fn accept<S>(stream: S, options: &WsOptions) -> Result<WsByteStream<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut refusal = None;
    // The signature is tungstenite's `Callback`; its error type is an HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| match check_request(request, options) {
        Ok(protocol) => Ok(with_protocol(response, protocol)),
        Err((status, why)) => {
            let reply = error_response(status, &why);
            refusal = Some(why);
            Err(reply)
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size));
    let upgraded = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await;
    match upgraded {
        Ok(ws) => Ok(WsByteStream { inner: ws, pending: Bytes::new() }),
        Err(e) => Err(match refusal {
            Some(why) => UpgradeError::Refused(why),
            None => UpgradeError::Failed(e),
        }),
    }
}

/// Decides on an upgrade request: the subprotocol to echo (if the client
/// offered one), or the HTTP status and reason of a refusal.
fn check_request(request: &Request, options: &WsOptions) -> Result<Option<&'static str>, (StatusCode, String)> {
    if let Some(path) = &options.path
        && request.uri().path() != path
    {
        return Err((
            StatusCode::NOT_FOUND,
            format!("path `{}` requested; MQTT is served on `{path}`", request.uri().path()),
        ));
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    choose_subprotocol(&offered).map_err(|why| (StatusCode::BAD_REQUEST, why))
}

/// `Ok(None)` when nothing is offered, the first supported one otherwise.
pub(crate) fn choose_subprotocol(offered: &[&str]) -> Result<Option<&'static str>, String> {
    if offered.is_empty() {
        return Ok(None);
    }
    for p in offered {
        if let Some(known) = SUBPROTOCOLS.iter().find(|k| k == &p) {
            return Ok(Some(known));
        }
    }
    Err(format!("subprotocol(s) `{}` offered; this server speaks `mqtt` or `mqttv3.1`", offered.join(", ")))
}

fn with_protocol(mut response: Response, protocol: Option<&'static str>) -> Response {
    if let Some(p) = protocol {
        response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(p));
    }
    response
}

fn error_response(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(format!("{why}\n")));
    *response.status_mut() = status;
    response
}

/// A WebSocket seen as the byte stream of the MQTT packets it carries.
pub(crate) struct WsByteStream<S> {
    inner: WebSocketStream<S>,
    /// The unread rest of the last binary frame.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsByteStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                // End of stream: the connection code sees a closed socket.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame received; MQTT over WebSocket uses binary frames only [MQTT-6.0.0-1]",
                    )));
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
                Some(Err(e)) => match to_io(e) {
                    e if e.kind() == io::ErrorKind::BrokenPipe => return Poll::Ready(Ok(())),
                    e => return Poll::Ready(Err(e)),
                },
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsByteStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut this.inner).start_send(Message::Binary(Bytes::copy_from_slice(buf))).map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx).map_err(to_io)
    }

    /// The closing handshake: send a Close frame, then read until the
    /// client's Close answer (or the end of the stream), so the TCP
    /// connection is closed after it and a client still sending its own
    /// Close does not get a reset. Callers bound this with a timeout.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_close(cx)).map_err(to_io)?;
        loop {
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                None | Some(Err(_)) => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
            }
        }
    }
}

fn to_io(e: WsError) -> io::Error {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::Error::from(io::ErrorKind::BrokenPipe),
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_choice() {
        assert_eq!(choose_subprotocol(&[]), Ok(None));
        assert_eq!(choose_subprotocol(&["mqtt"]), Ok(Some("mqtt")));
        assert_eq!(choose_subprotocol(&["mqttv3.1"]), Ok(Some("mqttv3.1")));
        assert_eq!(choose_subprotocol(&["chat", "mqttv3.1", "mqtt"]), Ok(Some("mqttv3.1")));
        let e = choose_subprotocol(&["chat", "MQTT"]).expect_err("refused");
        assert!(e.contains("chat, MQTT") && e.contains("`mqtt`"), "{e}");
    }
}
