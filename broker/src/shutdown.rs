//! Broker shutdown as one pair of types, in the manner of mini-redis's
//! `shutdown.rs`: the [`Broker`](crate::Broker) holds a [`Stopper`]; every
//! task it starts (listeners, the connections they accept, the keep-alive
//! sweeper, `$SYS`, the metrics endpoint) holds a [`Shutdown`].
//!
//! A [`Shutdown`] does two jobs. It tells its task that shutdown has begun
//! ([`Shutdown::recv`]), and, by being dropped when the task ends, it tells
//! the [`Stopper`] that one more task is gone: [`Stopper::stop`] returns
//! only once every `Shutdown` handed out has been dropped. Bundling both in
//! one value means a task cannot watch the signal without also being waited
//! for, and cannot be forgotten by the wait.

use tokio::sync::{mpsc, watch};

/// Held by each task; clone it for the tasks that task starts.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    signal: watch::Receiver<bool>,
    /// Never sent on: its drop is the message (`Stopper::stop` waits for
    /// the channel to close).
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// Whether shutdown has begun. Also true once the [`Stopper`] is gone
    /// (the broker was dropped without `shutdown`): no task outlives it.
    pub(crate) fn is_shutdown(&self) -> bool {
        *self.signal.borrow() || self.signal.has_changed().is_err()
    }

    /// Resolves once shutdown has begun, at once if it already has.
    /// Cancel-safe, and may be awaited again after it resolved.
    pub(crate) async fn recv(&mut self) {
        // `wait_for` checks the current value first, so a signal sent
        // before this call is not missed; an error means the Stopper is
        // gone, which is a shutdown too.
        let _ = self.signal.wait_for(|stopping| *stopping).await;
    }
}

/// Held by the broker while it runs: starts the shutdown and waits for it.
#[derive(Debug)]
pub(crate) struct Stopper {
    signal: watch::Sender<bool>,
    running_tx: mpsc::Sender<()>,
    running_rx: mpsc::Receiver<()>,
}

impl Stopper {
    pub(crate) fn new() -> Self {
        let (signal, _) = watch::channel(false);
        let (running_tx, running_rx) = mpsc::channel(1);
        Stopper { signal, running_tx, running_rx }
    }

    /// A handle for one more task, which `stop` will wait for.
    pub(crate) fn shutdown(&self) -> Shutdown {
        Shutdown { signal: self.signal.subscribe(), _running: self.running_tx.clone() }
    }

    /// Signals every task that shutdown has begun, without waiting.
    pub(crate) fn begin(&self) {
        self.signal.send_replace(true);
    }

    /// Signals every task (if [`begin`](Self::begin) has not), then waits
    /// until each has dropped its [`Shutdown`]. Tasks that do not watch the
    /// signal themselves (attached connections are woken through their
    /// session instead) are still waited for.
    pub(crate) async fn stop(self) {
        self.begin();
        let Stopper { signal: _signal, running_tx, mut running_rx } = self;
        drop(running_tx);
        while running_rx.recv().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn recv_resolves_after_stop_begins_even_if_called_late() {
        let stopper = Stopper::new();
        let mut early = stopper.shutdown();
        let late = stopper.shutdown();
        assert!(!early.is_shutdown());
        let waiter = tokio::spawn(async move {
            early.recv().await;
            early.recv().await; // a second wait does not hang
            assert!(early.is_shutdown());
        });
        let stop = tokio::spawn(stopper.stop());
        waiter.await.unwrap();
        // `late` never awaited recv; it still sees the signal, and `stop`
        // waits for it to be dropped.
        let mut late = late;
        late.recv().await;
        assert!(!stop.is_finished());
        drop(late);
        tokio::time::timeout(Duration::from_secs(5), stop).await.expect("stop returns").unwrap();
    }

    #[tokio::test]
    async fn stop_waits_for_clones_handed_to_subtasks() {
        let stopper = Stopper::new();
        let parent = stopper.shutdown();
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let child = parent.clone();
        drop(parent);
        let task = tokio::spawn(async move {
            let _child = child;
            let _ = held.await;
        });
        let stop = tokio::spawn(stopper.stop());
        tokio::task::yield_now().await;
        assert!(!stop.is_finished(), "the child still runs");
        release.send(()).unwrap();
        task.await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stop).await.expect("stop returns").unwrap();
    }

    #[tokio::test]
    async fn a_dropped_stopper_is_a_shutdown() {
        let stopper = Stopper::new();
        let mut s = stopper.shutdown();
        drop(stopper);
        assert!(s.is_shutdown());
        tokio::time::timeout(Duration::from_secs(5), s.recv()).await.expect("recv returns");
    }
}
