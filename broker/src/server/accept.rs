//! The accept step every listening socket shares: the MQTT listeners and the
//! metrics endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use crate::shutdown::Shutdown;

/// How long to pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The next accepted socket, or `None` once `shutdown` fires. A failed
/// accept (EMFILE and friends) is logged, naming `what`, and retried after
/// [`ACCEPT_BACKOFF`] rather than spun on.
pub(crate) async fn next(socket: &TcpListener, shutdown: &mut Shutdown, what: &str) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            r = socket.accept() => r,
            _ = shutdown.recv() => return None,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                warn!("{what}: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_until_shutdown() {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let stopper = crate::shutdown::Stopper::new();
        let mut rx = stopper.shutdown();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (_, peer) = next(&socket, &mut rx, "test").await.expect("a connection");
        assert_eq!(peer, client.await.unwrap().local_addr().unwrap());
        let stop = tokio::spawn(stopper.stop());
        assert!(next(&socket, &mut rx, "test").await.is_none(), "shutdown ends it");
        drop(rx);
        stop.await.unwrap();
    }
}
