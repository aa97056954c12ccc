//! The broker's counters, in one place: what `$SYS` publishes and what the
//! Prometheus endpoint serves are both read from here.
//!
//! The message path must not pay for them. Hot counters (bytes, packets,
//! publishes) are sharded: each thread adds to its own cache-line-sized shard
//! with a relaxed atomic add (no lock, no line shared with another core), and
//! a reader sums the shards. Connections also batch their additions, once per
//! socket read or write rather than once per packet. Rare events (a client
//! connecting, an authentication) use plain atomics; the per-listener and
//! per-plugin tables take a lock only when an entry is created.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock::Locked;
use crate::packet::Protocol;

/// Number of shards; threads beyond this share shards (still lock-free).
const SHARDS: usize = 16;

/// The hot counters, one set per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    /// Bytes read from client sockets.
    BytesReceived,
    /// Bytes written to client sockets.
    BytesSent,
    /// MQTT packets received (hbmqtt's `messages/received`).
    PacketsReceived,
    /// MQTT packets sent (hbmqtt's `messages/sent`).
    PacketsSent,
    /// PUBLISH packets received from clients.
    PublishReceived,
    /// PUBLISH packets sent to clients.
    PublishSent,
    /// Deliveries dropped because a subscriber's queue was full.
    PublishDropped,
}

const COUNTERS: usize = 7;

#[derive(Default)]
#[repr(align(128))]
struct Shard([AtomicU64; COUNTERS]);

thread_local! {
    /// This thread's shard, picked round-robin the first time it counts.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    /// Clients connected through this listener now (after a CONNACK 0).
    pub connected: AtomicI64,
    /// Connections that got CONNACK 0.
    pub accepted: AtomicU64,
    /// Connections refused: listener full, bad CONNECT, authentication.
    pub refused: AtomicU64,
}

/// Resident memory of the process and its peak, in bytes, from
/// `/proc/self/status` (`VmRSS`, `VmHWM`). `None` where there is no procfs.
pub(crate) fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    };
    let rss = field("VmRSS:")?;
    Some((rss, field("VmHWM:").unwrap_or(rss).max(rss)))
}

/// Upper bounds, in seconds, of the authentication latency histogram.
pub(crate) const AUTH_LATENCY_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What one authentication plugin answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthAnswer {
    Allowed,
    Denied,
    Ignored,
    /// The plugin failed: an error, a panic or a timeout.
    Error,
}

impl AuthAnswer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthAnswer::Allowed => "allowed",
            AuthAnswer::Denied => "denied",
            AuthAnswer::Ignored => "ignored",
            AuthAnswer::Error => "error",
        }
    }
}

/// Answers and latency of one authentication plugin.
#[derive(Debug, Default)]
pub(crate) struct AuthPluginStats {
    /// Indexed like [`AuthAnswer`]: allowed, denied, ignored, error.
    pub answers: [AtomicU64; 4],
    /// Cumulative counts are computed on read; these are per-bucket counts,
    /// the last one for answers slower than every bound.
    pub latency_buckets: [AtomicU64; AUTH_LATENCY_BUCKETS.len() + 1],
    pub latency_sum_nanos: AtomicU64,
}

/// Upper bounds, in seconds, of the store's commit latency histogram.
pub(crate) const COMMIT_LATENCY_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

/// What the store's journal did (persistence on).
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    /// Commits that reached the disk, each one fsync.
    pub commits: AtomicU64,
    /// Changes recorded by sessions and the router.
    pub changes: AtomicU64,
    /// Records written or deleted: changes left after a batch merged them.
    pub records_written: AtomicU64,
    /// Commits that failed (a full disk, an I/O error); retried.
    pub errors: AtomicU64,
    /// Per-bucket counts, as for the authentication latency.
    pub latency_buckets: [AtomicU64; COMMIT_LATENCY_BUCKETS.len() + 1],
    pub latency_sum_nanos: AtomicU64,
    /// Bytes the store takes on disk, as of the last commit.
    pub size_bytes: AtomicU64,
}

impl StoreStats {
    /// Records one successful commit that took `latency`.
    pub(crate) fn commit(&self, latency: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = COMMIT_LATENCY_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(COMMIT_LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The broker's traffic since start, summed over every client connection
/// (read counter by counter while clients keep counting, so only nearly
/// consistent with one another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes read from client sockets.
    pub bytes_received: u64,
    /// Bytes written to client sockets.
    pub bytes_sent: u64,
    /// MQTT packets received (hbmqtt's `messages/received`).
    pub packets_received: u64,
    /// MQTT packets sent (hbmqtt's `messages/sent`).
    pub packets_sent: u64,
    /// PUBLISH packets received from clients.
    pub publish_received: u64,
    /// PUBLISH packets sent to clients.
    pub publish_sent: u64,
    /// Deliveries dropped because a subscriber's queue was full.
    pub publish_dropped: u64,
}

/// Every counter of one broker.
pub(crate) struct Stats {
    shards: Box<[Shard]>,
    /// When the broker last started (set again by every `start`, as hbmqtt does).
    started: Mutex<Instant>,
    connected: AtomicI64,
    /// Clients connected now, by protocol version (3.1, 3.1.1, 5.0).
    by_protocol: [AtomicI64; 3],
    maximum: AtomicI64,
    disconnected: AtomicU64,
    sessions_expired: AtomicU64,
    /// Retained messages not kept: `retained-max-count` or `-bytes` reached.
    pub retained_refused: AtomicU64,
    /// SUBSCRIBE filters refused by `max-subscriptions-per-client`.
    pub subscriptions_refused: AtomicU64,
    /// PUBLISHes refused while `memory-limit` was reached.
    pub publish_refused: AtomicU64,
    listeners: Mutex<BTreeMap<String, Arc<ListenerStats>>>,
    auth: Mutex<BTreeMap<String, Arc<AuthPluginStats>>>,
    /// The store's journal; all zero while persistence is off.
    pub store: StoreStats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            started: Mutex::new(Instant::now()),
            connected: AtomicI64::new(0),
            by_protocol: Default::default(),
            maximum: AtomicI64::new(0),
            disconnected: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            retained_refused: AtomicU64::new(0),
            subscriptions_refused: AtomicU64::new(0),
            publish_refused: AtomicU64::new(0),
            listeners: Mutex::new(BTreeMap::new()),
            auth: Mutex::new(BTreeMap::new()),
            store: StoreStats::default(),
        }
    }
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to a hot counter, on this thread's shard.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        let shard = SHARD.with(|s| *s);
        self.shards[shard].0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of one hot counter over all shards.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.shards.iter().map(|s| s.0[counter as usize].load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            bytes_received: self.get(Counter::BytesReceived),
            bytes_sent: self.get(Counter::BytesSent),
            packets_received: self.get(Counter::PacketsReceived),
            packets_sent: self.get(Counter::PacketsSent),
            publish_received: self.get(Counter::PublishReceived),
            publish_sent: self.get(Counter::PublishSent),
            publish_dropped: self.get(Counter::PublishDropped),
        }
    }

    /// Records that the broker started now: uptime counts from here.
    pub(crate) fn mark_started(&self) {
        *self.started.locked() = Instant::now();
    }

    /// Time since the broker started (or was created, before any start).
    pub(crate) fn uptime(&self) -> Duration {
        self.started.locked().elapsed()
    }

    /// A client got CONNACK 0.
    pub(crate) fn client_connected(&self, listener: &ListenerStats, protocol: Protocol) {
        self.by_protocol[protocol_index(protocol)].fetch_add(1, Ordering::Relaxed);
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.maximum.fetch_max(now, Ordering::Relaxed);
        listener.connected.fetch_add(1, Ordering::Relaxed);
        listener.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A client that had got CONNACK 0 is gone.
    pub(crate) fn client_disconnected(&self, listener: &ListenerStats, protocol: Protocol) {
        self.by_protocol[protocol_index(protocol)].fetch_sub(1, Ordering::Relaxed);
        self.connected.fetch_sub(1, Ordering::Relaxed);
        self.disconnected.fetch_add(1, Ordering::Relaxed);
        listener.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Clients connected now.
    pub(crate) fn clients_connected(&self) -> u64 {
        u64::try_from(self.connected.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Clients connected now that speak `protocol`.
    pub(crate) fn clients_connected_with(&self, protocol: Protocol) -> u64 {
        u64::try_from(self.by_protocol[protocol_index(protocol)].load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The most clients connected at once since start.
    pub(crate) fn clients_maximum(&self) -> u64 {
        u64::try_from(self.maximum.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Disconnections since start (hbmqtt's `clients/disconnected`).
    pub(crate) fn clients_disconnected(&self) -> u64 {
        self.disconnected.load(Ordering::Relaxed)
    }

    /// Offline sessions removed because their expiry interval passed.
    pub(crate) fn sessions_expired(&self, n: u64) {
        self.sessions_expired.fetch_add(n, Ordering::Relaxed);
    }

    /// Sessions expired since start (Mosquitto's `clients/expired`).
    pub(crate) fn sessions_expired_total(&self) -> u64 {
        self.sessions_expired.load(Ordering::Relaxed)
    }

    /// The counters of listener `name`, created on first use. Called on
    /// every connect and disconnect: a known name costs no allocation.
    pub(crate) fn listener(&self, name: &str) -> Arc<ListenerStats> {
        let mut map = self.listeners.locked();
        if let Some(l) = map.get(name) {
            return l.clone();
        }
        map.entry(name.to_string()).or_default().clone()
    }

    /// Every listener's counters, by name.
    pub(crate) fn listeners(&self) -> Vec<(String, Arc<ListenerStats>)> {
        let map = self.listeners.locked();
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Records one authentication plugin's answer and how long it took.
    pub(crate) fn record_auth(&self, plugin: &str, answer: AuthAnswer, latency: Duration) {
        let entry = {
            let mut map = self.auth.locked();
            match map.get(plugin) {
                Some(e) => e.clone(),
                None => map.entry(plugin.to_string()).or_default().clone(),
            }
        };
        entry.answers[answer as usize].fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = AUTH_LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(AUTH_LATENCY_BUCKETS.len());
        entry.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        entry.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Every authentication plugin's counters, by name.
    pub(crate) fn auth_plugins(&self) -> Vec<(String, Arc<AuthPluginStats>)> {
        let map = self.auth.locked();
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Counts a connection accumulates between two flushes into [`Stats`], so
/// that the per-packet cost is a plain integer increment. 32 bits are
/// plenty between two flushes (one socket read or write, or one drain of a
/// bounded output buffer) and keep every idle connection 24 bytes smaller.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pending {
    pub bytes_received: u32,
    pub bytes_sent: u32,
    pub packets_received: u32,
    pub packets_sent: u32,
    pub publish_received: u32,
    pub publish_sent: u32,
}

/// Adds `n` to one of [`Pending`]'s counts (saturating: never a panic).
pub(crate) fn bump(count: &mut u32, n: usize) {
    *count = count.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
}

impl Pending {
    /// Adds what was accumulated to `stats` and starts again from zero.
    pub(crate) fn flush(&mut self, stats: &Stats) {
        stats.add(Counter::BytesReceived, self.bytes_received.into());
        stats.add(Counter::BytesSent, self.bytes_sent.into());
        stats.add(Counter::PacketsReceived, self.packets_received.into());
        stats.add(Counter::PacketsSent, self.packets_sent.into());
        stats.add(Counter::PublishReceived, self.publish_received.into());
        stats.add(Counter::PublishSent, self.publish_sent.into());
        *self = Pending::default();
    }
}

/// The slot of `protocol` in per-version counters.
fn protocol_index(protocol: Protocol) -> usize {
    match protocol {
        Protocol::V31 => 0,
        Protocol::V311 => 1,
        Protocol::V5 => 2,
    }
}

/// Every protocol version, in the order of per-version counters.
pub(crate) const PROTOCOLS: [Protocol; 3] = [Protocol::V31, Protocol::V311, Protocol::V5];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_across_threads() {
        let stats = Arc::new(Stats::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.add(Counter::PublishReceived, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stats.get(Counter::PublishReceived), 8000);
        assert_eq!(stats.get(Counter::PublishSent), 0);
    }

    #[test]
    fn maximum_keeps_the_peak() {
        let stats = Stats::new();
        let l = stats.listener("a");
        stats.client_connected(&l, Protocol::V311);
        stats.client_connected(&l, Protocol::V5);
        stats.client_disconnected(&l, Protocol::V311);
        assert_eq!(stats.clients_connected(), 1);
        assert_eq!(stats.clients_connected_with(Protocol::V5), 1);
        assert_eq!(stats.clients_connected_with(Protocol::V311), 0);
        assert_eq!(stats.clients_maximum(), 2);
        assert_eq!(stats.clients_disconnected(), 1);
        assert_eq!(l.connected.load(Ordering::Relaxed), 1);
        assert_eq!(l.accepted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn auth_latency_lands_in_its_bucket() {
        let stats = Stats::new();
        stats.record_auth("p", AuthAnswer::Allowed, Duration::from_micros(300));
        stats.record_auth("p", AuthAnswer::Denied, Duration::from_secs(60));
        let (name, p) = &stats.auth_plugins()[0];
        assert_eq!(name, "p");
        assert_eq!(p.answers[0].load(Ordering::Relaxed), 1);
        assert_eq!(p.answers[1].load(Ordering::Relaxed), 1);
        assert_eq!(p.latency_buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(p.latency_buckets[AUTH_LATENCY_BUCKETS.len()].load(Ordering::Relaxed), 1);
    }
}
