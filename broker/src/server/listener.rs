//! Accepting connections on one configured listener.
//!
//! Each accepted socket becomes one task: the listener's transport
//! (TLS handshake, WebSocket upgrade, or nothing for plain TCP) and then
//! `connection::serve`. The `max-connections` limit is a semaphore, the same
//! for every listener type: a slot is taken at accept, before any handshake,
//! so when the listener is full a new socket is closed at once and logged,
//! instead of being left waiting as hbmqtt does. Every task holds a
//! [`Shutdown`].

use std::sync::Arc;

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info};

use crate::config::ListenerConfig;
use crate::server::accept;
use crate::server::connection::{self, ConnInfo, Hold, Start};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::transport::Transport;

/// Runs the accept loop until `shutdown` fires. Every connection task holds
/// a clone of `shutdown`, which is how `Broker::shutdown` waits for them.
pub(crate) async fn run(
    ctx: Arc<Shared>,
    config: ListenerConfig,
    transport: Arc<Transport>,
    socket: TcpListener,
    mut shutdown: Shutdown,
) {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let limit = (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    let span = tracing::info_span!("listener", listener = %name, transport = transport.name());
    async move {
        loop {
            let Some((stream, peer)) = accept::next(&socket, &mut shutdown, "listener").await else { break };
            let permit = match &limit {
                None => None,
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        info!(%peer, max_connections = config.max_connections, "connection refused: listener is full");
                        ctx.stats.listener(&name).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        drop(stream);
                        continue;
                    }
                },
            };
            if let Err(e) = prepare(&stream) {
                debug!(%peer, "set_nodelay failed: {e}");
            }
            let accepted = Box::new(Accepted {
                ctx: ctx.clone(),
                tcp: stream,
                peer,
                transport: transport.clone(),
                listener: name.clone(),
                hold: Hold { _permit: permit, shutdown: shutdown.clone() },
            });
            tokio::spawn(connection_task(accepted));
        }
        debug!("listener stopped");
        // The port closes before dropping `shutdown` tells `Broker::shutdown`
        // this task ended, so a `start` right after can bind it again.
        drop(socket);
        drop(shutdown);
    }
    .instrument(span)
    .await
}

/// Pending connections the kernel queues for a listener (clamped to
/// `net.core.somaxconn`): enough for a fleet reconnecting at once.
const BACKLOG: u32 = 1024;

/// Binds a listening socket. `SO_REUSEADDR` as std and tokio set it, so a
/// restart does not wait for the old connections' TIME_WAIT.
///
/// `TCP_NODELAY` is set here because Linux copies it from the listening
/// socket to every accepted one: MQTT sends small packets that must not wait
/// for Nagle's algorithm, and inheriting the option saves a system call per
/// connection, which counts in a reconnect storm. Elsewhere [`prepare`] sets
/// it on each accepted socket.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if cfg!(target_os = "linux") {
        socket.set_nodelay(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What an accepted socket needs before its transport runs: `TCP_NODELAY`
/// where it is not inherited from the listening socket (see [`bind`]).
fn prepare(stream: &TcpStream) -> std::io::Result<()> {
    if cfg!(target_os = "linux") { Ok(()) } else { stream.set_nodelay(true) }
}

/// An accepted socket, boxed so that its task holds a pointer, not the values.
struct Accepted {
    ctx: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    transport: Arc<Transport>,
    listener: Arc<str>,
    hold: Hold,
}

/// One accepted socket's task: the transport's handshake, then the
/// connection. Both phases are boxed futures: the handshake's (TLS,
/// WebSocket) are large and must not size the task for the connection's life.
async fn connection_task(accepted: Box<Accepted>) {
    let Some(start) = Box::pin(establish(accepted)).await else { return };
    connection::serve(start).await;
}

async fn establish(accepted: Box<Accepted>) -> Option<Box<Start>> {
    let Accepted { ctx, tcp, peer, transport, listener, mut hold } = *accepted;
    let established = tokio::select! {
        r = transport.establish(tcp) => r,
        _ = hold.shutdown.recv() => return None,
    };
    match established {
        Ok(e) => {
            let info = ConnInfo {
                peer,
                listener,
                tls_identity: e.tls_identity,
                tls_certificate: e.tls_certificate,
                identity_as_username: transport.identity_as_username,
            };
            Some(Box::new(Start { ctx, stream: e.stream, info, hold }))
        }
        Err(e) => {
            info!(listener = %listener, %peer, "connection closed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every accepted connection must have Nagle's algorithm off, whether
    /// the option came from the listening socket or from `prepare`.
    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("local address")).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        prepare(&accepted).expect("prepare");
        assert!(accepted.nodelay().expect("nodelay"), "accepted socket has Nagle's algorithm on");
        drop(client);
    }
}
