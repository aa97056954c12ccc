//! A wake-up signal from any number of publishers to the one consumer of a
//! session (its connection, or an in-process subscriber).
//!
//! It has `tokio::sync::Notify::notify_one`'s semantics (a signal sent while
//! nobody waits is kept for the next wait), but it is polled with a plain
//! `poll(cx)` instead of through a `Notified` future. That lets a
//! connection's hand-written poll loop (`connection.rs`) wait on it without
//! storing a 64-byte future per idle client.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use crate::lock::Locked;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Signals the consumer: wakes it if it waits, or makes its next wait
    /// return at once.
    pub(crate) fn notify(&self) {
        // Only the first signal since the consumer last looked needs to wake
        // it; later ones find the flag already set.
        if !self.set.swap(true, Ordering::AcqRel) {
            let waker = self.waker.locked().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Ready (and consumed) when signalled since the last ready poll;
    /// otherwise registers `cx`'s waker.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut slot = self.waker.locked();
            match slot.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // A signal sent between the first look and the registration found no
        // waker to wake: look again.
        if self.set.swap(false, Ordering::AcqRel) { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Waits for the next signal.
    pub(crate) async fn wait(&self) {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_sent_before_the_wait_is_kept() {
        let s = Signal::new();
        s.notify();
        s.notify();
        tokio::time::timeout(Duration::from_secs(5), s.wait()).await.expect("kept signal");
        // Two signals before one wait count once, as with Notify::notify_one.
        let waker = futures_noop_waker();
        assert!(s.poll(&mut Context::from_waker(&waker)).is_pending());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_consumer_is_woken_every_time() {
        let s = Arc::new(Signal::new());
        for _ in 0..1000 {
            let waiter = tokio::spawn({
                let s = s.clone();
                async move { s.wait().await }
            });
            s.notify();
            tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("joined");
        }
    }

    fn futures_noop_waker() -> Waker {
        Waker::noop().clone()
    }
}
