//! Accepting connections on one configured listener.
//!
//! Each accepted socket becomes one task: the listener's transport
//! (TLS handshake, WebSocket upgrade, or nothing for plain TCP) and then
//! `connection::serve`. The `max-connections` limit is a semaphore, the same
//! for every listener type: a slot is taken at accept, before any handshake,
//! so when the listener is full a new socket is closed at once and logged,
//! instead of being left waiting as hbmqtt does. Shutdown is a `watch`
//! signal that every task observes.

use std::sync::Arc;

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{Instrument, debug, info, warn};

use crate::broker::Context;
use crate::config::ListenerConfig;
use crate::connection::{self, ConnInfo, Hold, Start};
use crate::transport::Transport;

/// Runs the accept loop until `shutdown` fires. `done` is dropped by every
/// task when it ends, which is how `Broker::shutdown` knows all are gone.
pub async fn run(
    ctx: Arc<Context>,
    config: ListenerConfig,
    transport: Arc<Transport>,
    socket: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let limit = (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    let span = tracing::info_span!("listener", listener = %name, transport = transport.name());
    async move {
        loop {
            let accepted = tokio::select! {
                r = socket.accept() => r,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off a little rather than spin.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
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
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%peer, "set_nodelay failed: {e}");
            }
            let accepted = Box::new(Accepted {
                ctx: ctx.clone(),
                tcp: stream,
                peer,
                transport: transport.clone(),
                listener: name.clone(),
                shutdown: shutdown.clone(),
                hold: Hold { permit, done: done.clone() },
            });
            tokio::spawn(connection_task(accepted));
        }
        debug!("listener stopped");
        // The port closes before `done` tells `Broker::shutdown` this task
        // ended, so a `start` right after can bind it again.
        drop(socket);
        drop(done);
    }
    .instrument(span)
    .await
}

/// An accepted socket, boxed so that its task holds a pointer, not the values.
struct Accepted {
    ctx: Arc<Context>,
    tcp: TcpStream,
    peer: SocketAddr,
    transport: Arc<Transport>,
    listener: Arc<str>,
    shutdown: watch::Receiver<bool>,
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
    let Accepted { ctx, tcp, peer, transport, listener, mut shutdown, hold } = *accepted;
    let established = tokio::select! {
        r = transport.establish(tcp) => r,
        _ = shutdown.changed() => return None,
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
            Some(Box::new(Start { ctx, stream: e.stream, info, shutdown, hold }))
        }
        Err(e) => {
            info!(listener = %listener, %peer, "connection closed: {e}");
            None
        }
    }
}
