//! Accepting connections on one configured listener.
//!
//! Each accepted socket becomes one `connection::serve` task. The
//! `max-connections` limit is a semaphore: when the listener is full, a new
//! socket is closed at once and logged, instead of being left waiting as
//! hbmqtt does. Shutdown is a `watch` signal that every task observes.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{Instrument, debug, info, warn};

use crate::broker::Context;
use crate::config::ListenerConfig;
use crate::connection::{self, ConnInfo};

/// Runs the accept loop until `shutdown` fires. `done` is dropped by every
/// task when it ends, which is how `Broker::shutdown` knows all are gone.
pub async fn run(
    ctx: Arc<Context>,
    config: ListenerConfig,
    socket: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let limit = (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    let span = tracing::info_span!("listener", listener = %name);
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
            let info = ConnInfo { peer, listener: name.clone() };
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            let done = done.clone();
            tokio::spawn(async move {
                connection::serve(ctx, stream, info, shutdown).await;
                drop(permit);
                drop(done);
            });
        }
        debug!("listener stopped");
    }
    .instrument(span)
    .await
}
