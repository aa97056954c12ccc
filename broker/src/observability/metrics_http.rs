//! A tiny HTTP/1.1 responder for the Prometheus endpoint (the `metrics`
//! section): `GET` (or `HEAD`) on the configured path answers the text of
//! `metrics.rs`; anything else gets 404, 405 or 400. One request per
//! connection (`Connection: close`), a deadline and a size cap on the request
//! head, a cap on concurrent requests: a scraper or a stray client cannot tie
//! the broker up. No HTTP library: this is all a scraper needs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::observability::metrics;
use crate::observability::sys::Snapshot;
use crate::server::accept;
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// Largest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served at once; further connections are closed at once.
const MAX_CONCURRENT: usize = 16;

/// What the responder does with one request head (pure, for tests).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head (everything up to the blank line).
pub(crate) fn route(head: &[u8], path: &str) -> Route {
    let Ok(text) = std::str::from_utf8(head) else { return Route::BadRequest };
    let Some(line) = text.lines().next() else { return Route::BadRequest };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    // The query string does not matter (Prometheus may add parameters).
    let target_path = target.split('?').next().unwrap_or(target);
    if target_path != path {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head_only: false },
        "HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

/// Serves until `shutdown` fires.
pub(crate) async fn run(ctx: Arc<Shared>, socket: TcpListener, path: String, mut shutdown: Shutdown) {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let path: Arc<str> = Arc::from(path);
    loop {
        let Some((stream, peer)) = accept::next(&socket, &mut shutdown, "metrics endpoint").await else { break };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            debug!(%peer, "metrics endpoint busy: connection closed");
            continue;
        };
        let (ctx, path, mut shutdown) = (ctx.clone(), path.clone(), shutdown.clone());
        tokio::spawn(async move {
            // A slow or idle client must not hold up the broker's shutdown.
            tokio::select! {
                r = tokio::time::timeout(READ_TIMEOUT * 2, serve(&ctx, stream, &path)) => {
                    if let Err(e) = r {
                        debug!(%peer, "metrics request timed out: {e}");
                    }
                }
                _ = shutdown.recv() => {}
            }
            drop(permit);
            drop(shutdown);
        });
    }
    // The port closes before dropping `shutdown` tells `Broker::shutdown`
    // this task ended.
    drop(socket);
    drop(shutdown);
}

async fn serve(ctx: &Shared, mut stream: TcpStream, path: &str) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
        match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => head.extend_from_slice(&buf[..n]),
        }
    };
    let (status, content_type, body, head_only) = if !complete {
        ("431 Request Header Fields Too Large", "text/plain", "request head too large\n".to_string(), false)
    } else {
        match route(&head, path) {
            Route::Metrics { head_only } => {
                let text = metrics::render(&Snapshot::take(ctx), &ctx.stats);
                ("200 OK", metrics::CONTENT_TYPE, text, head_only)
            }
            Route::NotFound => ("404 Not Found", "text/plain", format!("not found; metrics are at {path}\n"), false),
            Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "use GET\n".to_string(), false),
            Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".to_string(), false),
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_requests() {
        let get = |line: &str| route(format!("{line}\r\nHost: x\r\n\r\n").as_bytes(), "/metrics");
        assert_eq!(get("GET /metrics HTTP/1.1"), Route::Metrics { head_only: false });
        assert_eq!(get("GET /metrics?x=1 HTTP/1.0"), Route::Metrics { head_only: false });
        assert_eq!(get("HEAD /metrics HTTP/1.1"), Route::Metrics { head_only: true });
        assert_eq!(get("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(get("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(get("GET /metrics"), Route::BadRequest);
        assert_eq!(get("GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n", "/metrics"), Route::BadRequest);
    }
}
