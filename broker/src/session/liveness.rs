//! The keep-alive state of a session's attached connection: stamped by the
//! connection on every read, looked at by the server's sweeper
//! (`server/sweeper.rs`), which marks it expired when the client has been silent
//! for longer than its keep-alive allows.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds on a process-wide monotonic clock.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The keep-alive state of a session's attached connection.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// When the connection last received something (`now_ms`).
    last_rx: AtomicU64,
    /// The allowed silence in milliseconds; 0 when no connection with a
    /// keep-alive is attached.
    period_ms: AtomicU64,
    /// Set by the sweeper; the connection closes when it sees it.
    expired: AtomicBool,
}

impl Liveness {
    /// A connection attached with this allowed silence (`None`: keep-alive 0,
    /// no limit).
    pub(crate) fn arm(&self, period: Option<Duration>) {
        self.expired.store(false, Ordering::Relaxed);
        self.last_rx.store(now_ms(), Ordering::Relaxed);
        let ms = period.map_or(0, |p| u64::try_from(p.as_millis()).unwrap_or(u64::MAX).max(1));
        self.period_ms.store(ms, Ordering::Release);
    }

    /// The connection is going away: nothing to watch until the next `arm`.
    pub(crate) fn disarm(&self) {
        self.period_ms.store(0, Ordering::Release);
    }

    /// The client sent something.
    pub(crate) fn touch(&self) {
        self.last_rx.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether the sweeper found the client silent for too long.
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    /// Marks the connection expired when overdue at `now`; true when it
    /// just became so (the caller then wakes it).
    pub(crate) fn sweep(&self, now: u64) -> bool {
        let period = self.period_ms.load(Ordering::Acquire);
        if period == 0 || self.expired.load(Ordering::Relaxed) {
            return false;
        }
        let silent = now.saturating_sub(self.last_rx.load(Ordering::Relaxed));
        if silent < period {
            return false;
        }
        self.expired.store(true, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_only_when_armed_and_silent_for_the_period() {
        let l = Liveness::default();
        let t = now_ms();
        assert!(!l.sweep(t + 1_000_000), "never armed: no keep-alive");
        l.arm(Some(Duration::from_secs(10)));
        let armed = l.last_rx.load(Ordering::Relaxed);
        assert!(!l.sweep(armed + 9_999));
        assert!(!l.expired());
        assert!(l.sweep(armed + 10_000));
        assert!(l.expired());
        assert!(!l.sweep(armed + 20_000), "reported once");
        // A new connection starts afresh.
        l.arm(Some(Duration::from_secs(10)));
        assert!(!l.expired());
        l.touch();
        let touched = l.last_rx.load(Ordering::Relaxed);
        assert!(!l.sweep(touched + 9_999), "a read moves the deadline");
        l.disarm();
        assert!(!l.sweep(touched + 1_000_000), "disarmed");
        l.arm(None);
        assert!(!l.sweep(touched + 1_000_000), "keep-alive 0: no limit");
    }
}
