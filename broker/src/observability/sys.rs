//! The `$SYS/broker/...` topics, as hbmqtt's `broker_sys` plugin publishes
//! them, plus Mosquitto's load averages and memory figures.
//!
//! `$SYS/broker/version` is published retained at every start. When
//! `sys_interval` is above zero, every interval the other topics are
//! published, not retained, at QoS 0, through the router like any message
//! (so only subscribers whose filter starts with `$SYS` get them
//! [MQTT-4.7.2-1]). Payloads are ASCII text, in hbmqtt's formats.
//!
//! Pure parts ([`render`], [`LoadAverages`], the time formats) are kept apart
//! from the task ([`run`]) that reads the counters and publishes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::message::Message;
use crate::packet::{Protocol, QoS};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::stats::{PROTOCOLS, Totals, resident_memory};

/// Every topic starts with this.
pub(crate) const PREFIX: &str = "$SYS/broker/";

/// The payload of `$SYS/broker/version` (hbmqtt: `HBMQTT version x.y.z`).
pub(crate) fn version_payload() -> String {
    format!("moth version {}", env!("CARGO_PKG_VERSION"))
}

/// The broker's figures at one moment: what one round of `$SYS` topics and
/// the Prometheus endpoint are made from ([`Broker::snapshot`](crate::Broker::snapshot)).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Bytes, packets and PUBLISH packets in and out since start.
    pub totals: Totals,
    /// Clients connected now (accepted with CONNACK 0, not yet gone).
    pub clients_connected: u64,
    /// Disconnections of accepted clients since start (hbmqtt's `clients/disconnected`).
    pub clients_disconnected: u64,
    /// The most clients connected at once since start.
    pub clients_maximum: u64,
    /// Clients connected now, by protocol version.
    pub clients_by_protocol: Vec<(Protocol, u64)>,
    /// Inbound QoS 2 messages awaiting their PUBREL, over all sessions.
    pub inflight_in: u64,
    /// Outbound QoS 1 and 2 deliveries not yet fully acknowledged, over all sessions.
    pub inflight_out: u64,
    /// Messages queued in sessions (hbmqtt counts those of offline sessions).
    pub queued: u64,
    /// Sessions held (connected or persistent).
    pub sessions: u64,
    /// Persistent sessions whose client is away (Mosquitto's `clients/inactive`).
    pub sessions_offline: u64,
    /// Sessions removed by their expiry interval since start.
    pub sessions_expired: u64,
    /// Retained messages held, the broker's own `$SYS` ones included.
    pub retained: u64,
    /// Subscriptions held, one per (filter, session).
    pub subscriptions: u64,
    /// New connections accepted since start (for the `load/connections` average).
    pub connections: u64,
    /// Time since the broker last started.
    pub uptime: Duration,
    /// When the snapshot was taken (wall clock).
    pub now: SystemTime,
    /// Resident memory now and at its peak, in bytes (Linux only).
    pub memory: Option<(u64, u64)>,
    /// The store's figures, with persistence on.
    pub store: Option<StoreFigures>,
    /// Retained messages not kept because `retained-max-count` or
    /// `retained-max-bytes` was reached, since start.
    pub retained_refused: u64,
    /// SUBSCRIBE filters refused by `max-subscriptions-per-client`, since start.
    pub subscriptions_refused: u64,
    /// PUBLISHes refused while `memory-limit` was reached, since start.
    pub publish_refused: u64,
    /// The sessions that dropped messages (a full queue), with how many
    /// over their life: the [`DROPPING_CLIENTS_SHOWN`] that dropped most.
    pub dropped_by_client: Vec<(String, u64)>,
}

/// At most this many clients in [`Snapshot::dropped_by_client`]: a label
/// per client would let a crowd of slow clients flood the metrics.
pub const DROPPING_CLIENTS_SHOWN: usize = 100;

/// What the store did since start (persistence on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Bytes the store's file takes on disk.
    pub size_bytes: u64,
    /// Commits written and fsync'd.
    pub commits: u64,
    /// Changes recorded by sessions and the router.
    pub changes: u64,
    /// Records written or deleted (changes left after merging).
    pub records_written: u64,
    /// Commits that failed and were retried.
    pub errors: u64,
}

impl Snapshot {
    /// Clients connected now that speak `protocol`.
    pub fn connected_with(&self, protocol: Protocol) -> u64 {
        self.clients_by_protocol.iter().find(|(p, _)| *p == protocol).map_or(0, |(_, n)| *n)
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            totals: Totals::default(),
            clients_connected: 0,
            clients_disconnected: 0,
            clients_maximum: 0,
            clients_by_protocol: Vec::new(),
            inflight_in: 0,
            inflight_out: 0,
            queued: 0,
            sessions: 0,
            sessions_offline: 0,
            sessions_expired: 0,
            retained: 0,
            subscriptions: 0,
            connections: 0,
            uptime: Duration::ZERO,
            now: UNIX_EPOCH,
            memory: None,
            store: None,
            dropped_by_client: Vec::new(),
            retained_refused: 0,
            subscriptions_refused: 0,
            publish_refused: 0,
        }
    }
}

impl Snapshot {
    /// Reads every figure from the broker's counters, router and sessions.
    pub(crate) fn take(ctx: &Shared) -> Snapshot {
        let (mut inflight_in, mut inflight_out, mut queued) = (0u64, 0u64, 0u64);
        let (mut sessions, mut sessions_offline) = (0u64, 0u64);
        let mut dropped_by_client = Vec::new();
        for s in ctx.sessions.sessions() {
            let state = s.lock();
            if state.dropped() > 0 {
                dropped_by_client.push((s.client_id().to_string(), state.dropped()));
            }
            inflight_in += state.inflight().inbound_len() as u64;
            inflight_out += state.inflight().outbound_len() as u64;
            queued += state.queued() as u64;
            sessions += 1;
            sessions_offline += u64::from(!state.is_online());
        }
        let stats = &ctx.stats;
        Snapshot {
            totals: stats.totals(),
            clients_connected: stats.clients_connected(),
            clients_disconnected: stats.clients_disconnected(),
            clients_maximum: stats.clients_maximum(),
            clients_by_protocol: PROTOCOLS.iter().map(|&p| (p, stats.clients_connected_with(p))).collect(),
            inflight_in,
            inflight_out,
            queued,
            sessions,
            sessions_offline,
            sessions_expired: stats.sessions_expired_total(),
            retained: ctx.router.retained_count() as u64,
            subscriptions: ctx.router.subscription_count() as u64,
            connections: stats.clients_connected() + stats.clients_disconnected(),
            uptime: stats.uptime(),
            now: SystemTime::now(),
            memory: resident_memory(),
            retained_refused: stats.retained_refused.load(Ordering::Relaxed),
            subscriptions_refused: stats.subscriptions_refused.load(Ordering::Relaxed),
            publish_refused: stats.publish_refused.load(Ordering::Relaxed),
            dropped_by_client: {
                dropped_by_client.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                dropped_by_client.truncate(DROPPING_CLIENTS_SHOWN);
                dropped_by_client
            },
            store: ctx.journal.as_ref().map(|_| {
                let s = &stats.store;
                StoreFigures {
                    size_bytes: s.size_bytes.load(Ordering::Relaxed),
                    commits: s.commits.load(Ordering::Relaxed),
                    changes: s.changes.load(Ordering::Relaxed),
                    records_written: s.records_written.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                }
            }),
        }
    }
}

/// The names of the load averages, as Mosquitto spells them under `load/`.
const LOAD_NAMES: [&str; 8] = [
    "messages/received",
    "messages/sent",
    "publish/received",
    "publish/sent",
    "publish/dropped",
    "bytes/received",
    "bytes/sent",
    "connections",
];
const LOAD_WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

fn load_values(s: &Snapshot) -> [u64; 8] {
    let t = &s.totals;
    [
        t.packets_received,
        t.packets_sent,
        t.publish_received,
        t.publish_sent,
        t.publish_dropped,
        t.bytes_received,
        t.bytes_sent,
        s.connections,
    ]
}

/// Mosquitto's load averages: per-minute rates, smoothed exponentially over
/// 1, 5 and 15 minutes (`new = e * old + (1 - e) * rate`, `e = exp(-dt / window)`).
#[derive(Debug, Clone)]
pub(crate) struct LoadAverages {
    last: Option<(Duration, [u64; 8])>,
    loads: [[f64; 3]; 8],
}

impl Default for LoadAverages {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadAverages {
    pub(crate) fn new() -> Self {
        LoadAverages { last: None, loads: [[0.0; 3]; 8] }
    }

    /// Feeds one snapshot taken at `uptime`.
    pub(crate) fn update(&mut self, uptime: Duration, values: [u64; 8]) {
        let (since, before) = self.last.unwrap_or((Duration::ZERO, [0; 8]));
        self.last = Some((uptime, values));
        let dt = uptime.saturating_sub(since).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        for (i, loads) in self.loads.iter_mut().enumerate() {
            let rate = values[i].saturating_sub(before[i]) as f64 * 60.0 / dt;
            for (w, (_, window)) in LOAD_WINDOWS.iter().enumerate() {
                let e = (-dt / window).exp();
                loads[w] = e * loads[w] + (1.0 - e) * rate;
            }
        }
    }

    /// `(topic suffix, value)` for every average, e.g. `("load/connections/5min", 0.42)`.
    pub(crate) fn topics(&self) -> Vec<(String, f64)> {
        let mut out = Vec::with_capacity(LOAD_NAMES.len() * LOAD_WINDOWS.len());
        for (i, name) in LOAD_NAMES.iter().enumerate() {
            for (w, (window, _)) in LOAD_WINDOWS.iter().enumerate() {
                out.push((format!("load/{name}/{window}"), self.loads[i][w]));
            }
        }
        out
    }
}

/// One round of topics: `(topic, payload)`, hbmqtt's first, in hbmqtt's order.
pub(crate) fn render(s: &Snapshot, loads: &LoadAverages) -> Vec<(String, String)> {
    let t = &s.totals;
    let uptime = format_timedelta(s.uptime);
    let mut v: Vec<(&str, String)> = vec![
        ("load/bytes/received", t.bytes_received.to_string()),
        ("load/bytes/sent", t.bytes_sent.to_string()),
        ("messages/received", t.packets_received.to_string()),
        ("messages/sent", t.packets_sent.to_string()),
        ("time", format_datetime(s.now)),
        ("uptime", s.uptime.as_secs().to_string()),
        ("uptime/formated", uptime.clone()),
        ("uptime/formatted", uptime),
        ("clients/connected", s.clients_connected.to_string()),
        ("clients/disconnected", s.clients_disconnected.to_string()),
        ("clients/maximum", s.clients_maximum.to_string()),
        ("clients/connected/v3.1", s.connected_with(Protocol::V31).to_string()),
        ("clients/connected/v3.1.1", s.connected_with(Protocol::V311).to_string()),
        ("clients/connected/v5", s.connected_with(Protocol::V5).to_string()),
        ("clients/total", (s.clients_connected + s.clients_disconnected).to_string()),
        ("messages/inflight", (s.inflight_in + s.inflight_out).to_string()),
        ("messages/inflight/in", s.inflight_in.to_string()),
        ("messages/inflight/out", s.inflight_out.to_string()),
        ("messages/inflight/stored", (s.queued + s.retained).to_string()),
        ("messages/publish/received", t.publish_received.to_string()),
        ("messages/publish/sent", t.publish_sent.to_string()),
        ("messages/retained/count", s.retained.to_string()),
        ("messages/subscriptions/count", s.subscriptions.to_string()),
        ("publish/messages/dropped", t.publish_dropped.to_string()),
        ("clients/inactive", s.sessions_offline.to_string()),
        ("clients/expired", s.sessions_expired.to_string()),
        ("retained/refused", s.retained_refused.to_string()),
        ("subscriptions/refused", s.subscriptions_refused.to_string()),
        ("publish/messages/refused", s.publish_refused.to_string()),
    ];
    if let Some((current, maximum)) = s.memory {
        v.push(("heap/current", current.to_string()));
        v.push(("heap/maximum", maximum.to_string()));
    }
    if let Some(store) = &s.store {
        v.push(("store/size", store.size_bytes.to_string()));
        v.push(("store/commits", store.commits.to_string()));
        v.push(("store/changes", store.changes.to_string()));
        v.push(("store/errors", store.errors.to_string()));
    }
    let mut out: Vec<(String, String)> = v.into_iter().map(|(k, p)| (format!("{PREFIX}{k}"), p)).collect();
    for (k, value) in loads.topics() {
        out.push((format!("{PREFIX}{k}"), format!("{value:.2}")));
    }
    out
}

/// Python's `str(timedelta)`: `H:MM:SS`, `.ffffff` when there are
/// microseconds, `N day(s), ` in front past a day.
pub(crate) fn format_timedelta(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, rest) = (secs / 86400, secs % 86400);
    let mut out = match days {
        0 => String::new(),
        1 => "1 day, ".to_string(),
        n => format!("{n} days, "),
    };
    out += &format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    let micros = d.subsec_micros();
    if micros != 0 {
        out += &format!(".{micros:06}");
    }
    out
}

/// Python's `str(datetime)` form, `YYYY-MM-DD HH:MM:SS.ffffff`, in UTC
/// (hbmqtt prints local time; a server's logs and clients are easier to match in UTC).
pub(crate) fn format_datetime(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rest) = (secs / 86400, secs % 86400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Publishes `$SYS/broker/version`, retained.
pub(crate) fn publish_version(ctx: &Shared) {
    ctx.router.publish(Arc::new(Message::new(format!("{PREFIX}version"), version_payload(), QoS::AtMostOnce, true)));
}

/// Publishes one round of topics every `interval` until `shutdown` fires.
pub(crate) async fn run(ctx: Arc<Shared>, interval: Duration, mut shutdown: Shutdown) {
    let start = Instant::now();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::from_std(start + interval), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut loads = LoadAverages::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => break,
        }
        let snapshot = Snapshot::take(&ctx);
        loads.update(snapshot.uptime, load_values(&snapshot));
        for (topic, payload) in render(&snapshot, &loads) {
            ctx.router.publish(Arc::new(Message::new(topic, payload, QoS::AtMostOnce, false)));
        }
        debug!("$SYS topics published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedelta_matches_python() {
        assert_eq!(format_timedelta(Duration::from_secs(0)), "0:00:00");
        assert_eq!(format_timedelta(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(format_timedelta(Duration::from_micros(5_000_042)), "0:00:05.000042");
        assert_eq!(format_timedelta(Duration::from_secs(86400 + 61)), "1 day, 0:01:01");
        assert_eq!(format_timedelta(Duration::from_secs(2 * 86400)), "2 days, 0:00:00");
    }

    #[test]
    fn datetime_is_python_str_form() {
        assert_eq!(format_datetime(UNIX_EPOCH), "1970-01-01 00:00:00.000000");
        // 2024-02-29 12:34:56.789 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(format_datetime(t), "2024-02-29 12:34:56.789000");
    }

    #[test]
    fn load_average_converges_to_the_rate() {
        let mut l = LoadAverages::new();
        // 120 messages received per minute, fed every 10 s for an hour.
        for i in 1..=360u64 {
            let mut v = [0; 8];
            v[0] = i * 20;
            l.update(Duration::from_secs(i * 10), v);
        }
        let t = l.topics();
        let one = t.iter().find(|(k, _)| k == "load/messages/received/1min").unwrap().1;
        let fifteen = t.iter().find(|(k, _)| k == "load/messages/received/15min").unwrap().1;
        assert!((one - 120.0).abs() < 0.01, "{one}");
        // After an hour the 15-minute average has covered 1 - e^-4 of the way.
        assert!((fifteen - 120.0 * (1.0 - (-4.0f64).exp())).abs() < 0.01, "{fifteen}");
        let sent = t.iter().find(|(k, _)| k == "load/messages/sent/5min").unwrap().1;
        assert_eq!(sent, 0.0);
    }

    #[test]
    fn render_has_hbmqtt_names_and_both_uptime_spellings() {
        let s = Snapshot { clients_connected: 2, clients_disconnected: 3, ..Snapshot::default() };
        let topics = render(&s, &LoadAverages::new());
        let get = |k: &str| topics.iter().find(|(t, _)| t == &format!("{PREFIX}{k}")).map(|(_, p)| p.clone());
        assert_eq!(get("clients/total").as_deref(), Some("5"));
        assert_eq!(get("uptime/formated"), get("uptime/formatted"));
        assert_eq!(get("load/connections/15min").as_deref(), Some("0.00"));
    }
}
