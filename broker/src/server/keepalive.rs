//! Keep-alive for every connection, checked by one sweeper task.
//!
//! A client that sends nothing for its keep-alive period plus
//! `timeout-disconnect-delay` is disconnected (hbmqtt's rule; MQTT asks for
//! 1.5 times the keep-alive). A timer per connection would cost each idle
//! client a timer entry (a boxed `tokio::time::Sleep`, 128 bytes of heap)
//! for a deadline that is almost never reached. Instead each session carries
//! a `Liveness` (`liveness.rs`): its attached connection stamps it on every read, and
//! [`run`] looks at all of them every [`SWEEP`], as Mosquitto's main loop
//! does, and wakes the connections that are overdue. A client is therefore
//! disconnected between its deadline and one sweep after it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::session::liveness::now_ms;
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// How often the sweeper looks.
pub const SWEEP: Duration = Duration::from_millis(500);

/// Sweeps every session each [`SWEEP`] until `shutdown`.
pub(crate) async fn run(ctx: Arc<Shared>, mut shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(SWEEP);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => break,
        }
        let now = now_ms();
        ctx.sessions.for_each(|s| {
            if s.liveness.sweep(now) {
                s.wake.notify();
            }
        });
    }
}
