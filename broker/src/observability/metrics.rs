//! The Prometheus text exposition (format 0.0.4) of the broker's counters:
//! the same figures as `$SYS`, plus per-listener connection gauges and the
//! answers and latency of each authentication plugin.
//!
//! Pure: [`render`] turns a [`sys::Snapshot`] and the stats tables into text.
//! `metrics_http.rs` serves it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::observability::sys::Snapshot;
use crate::stats::{AUTH_LATENCY_BUCKETS, AuthAnswer, AuthPluginStats, COMMIT_LATENCY_BUCKETS, ListenerStats, Stats};

/// `Content-Type` of the exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out(String);

impl Out {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub(crate) fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders every metric.
pub(crate) fn render(s: &Snapshot, stats: &Stats) -> String {
    let mut o = Out(String::with_capacity(4096));
    let t = &s.totals;
    o.header("moth_build_info", "gauge", "Always 1; the label carries the moth version.");
    o.sample("moth_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.one("moth_uptime_seconds", "gauge", "Seconds since the broker started.", s.uptime.as_secs_f64());
    o.one("moth_bytes_received_total", "counter", "Bytes read from client connections.", t.bytes_received);
    o.one("moth_bytes_sent_total", "counter", "Bytes written to client connections.", t.bytes_sent);
    o.one("moth_packets_received_total", "counter", "MQTT packets received from clients.", t.packets_received);
    o.one("moth_packets_sent_total", "counter", "MQTT packets sent to clients.", t.packets_sent);
    o.one("moth_publish_received_total", "counter", "PUBLISH packets received from clients.", t.publish_received);
    o.one("moth_publish_sent_total", "counter", "PUBLISH packets sent to clients.", t.publish_sent);
    o.one(
        "moth_publish_dropped_total",
        "counter",
        "Deliveries dropped because a subscriber's queue was full.",
        t.publish_dropped,
    );
    o.one("moth_clients_connected", "gauge", "Clients connected now.", s.clients_connected);
    o.header("moth_clients_connected_by_protocol", "gauge", "Clients connected now, by MQTT version.");
    for (protocol, n) in &s.clients_by_protocol {
        o.sample("moth_clients_connected_by_protocol", &[("protocol", protocol.version())], *n);
    }
    o.one("moth_clients_maximum", "gauge", "Most clients connected at once since start.", s.clients_maximum);
    o.one("moth_clients_disconnected_total", "counter", "Client disconnections since start.", s.clients_disconnected);
    o.header("moth_messages_inflight", "gauge", "Unacknowledged QoS 1/2 messages, by direction.");
    o.sample("moth_messages_inflight", &[("direction", "in")], s.inflight_in);
    o.sample("moth_messages_inflight", &[("direction", "out")], s.inflight_out);
    o.one("moth_messages_queued", "gauge", "Messages waiting in session queues.", s.queued);
    o.one("moth_sessions", "gauge", "Sessions held, connected or persistent.", s.sessions);
    o.one("moth_sessions_offline", "gauge", "Persistent sessions whose client is away.", s.sessions_offline);
    o.one(
        "moth_sessions_expired_total",
        "counter",
        "Offline sessions removed because their expiry interval passed.",
        s.sessions_expired,
    );
    o.one("moth_retained_messages", "gauge", "Retained messages held.", s.retained);
    o.one(
        "moth_retained_refused_total",
        "counter",
        "Retained messages not kept: retained-max-count or retained-max-bytes reached.",
        s.retained_refused,
    );
    o.one(
        "moth_publish_refused_total",
        "counter",
        "PUBLISH packets refused while memory-limit was reached.",
        s.publish_refused,
    );
    o.one(
        "moth_subscriptions_refused_total",
        "counter",
        "SUBSCRIBE filters refused by max-subscriptions-per-client.",
        s.subscriptions_refused,
    );
    o.one("moth_subscriptions", "gauge", "Subscriptions held.", s.subscriptions);
    if let Some((current, peak)) = s.memory {
        o.one("moth_resident_memory_bytes", "gauge", "Resident memory of the process.", current);
        o.one("moth_resident_memory_max_bytes", "gauge", "Peak resident memory of the process.", peak);
    }

    if let Some(store) = &s.store {
        render_store(&mut o, store, stats);
    }
    o.header(
        "moth_client_messages_dropped_total",
        "counter",
        "Messages a client's session dropped because its queue was full (the 100 that dropped most).",
    );
    for (client, n) in &s.dropped_by_client {
        o.sample("moth_client_messages_dropped_total", &[("client_id", client)], *n);
    }
    render_listeners(&mut o, stats);
    render_auth(&mut o, stats);
    o.0
}

/// The store's figures and its commit latency (persistence on).
fn render_store(o: &mut Out, f: &crate::observability::sys::StoreFigures, stats: &Stats) {
    o.one("moth_store_size_bytes", "gauge", "Bytes the store's file takes on disk.", f.size_bytes);
    o.one("moth_store_commits_total", "counter", "Store commits written and fsync'd.", f.commits);
    o.one("moth_store_changes_total", "counter", "Changes recorded for the store.", f.changes);
    o.one(
        "moth_store_records_written_total",
        "counter",
        "Records written or deleted (changes left after a commit merged them).",
        f.records_written,
    );
    o.one("moth_store_errors_total", "counter", "Store commits that failed (and were retried).", f.errors);
    let s = &stats.store;
    let name = "moth_store_commit_latency_seconds";
    o.header(name, "histogram", "Time one store commit took, fsync included.");
    histogram(o, name, &[], &COMMIT_LATENCY_BUCKETS, &s.latency_buckets, &s.latency_sum_nanos);
}

/// One histogram's samples from per-bucket counts (the last for values
/// above every bound), cumulated as Prometheus wants them.
fn histogram(
    o: &mut Out,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    buckets: &[AtomicU64],
    sum_nanos: &AtomicU64,
) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (i, bound) in bounds.iter().enumerate() {
        cumulative += buckets[i].load(Ordering::Relaxed);
        let le = bound.to_string();
        let mut l = labels.to_vec();
        l.push(("le", &le));
        o.sample(&bucket, &l, cumulative);
    }
    cumulative += buckets[bounds.len()].load(Ordering::Relaxed);
    let mut l = labels.to_vec();
    l.push(("le", "+Inf"));
    o.sample(&bucket, &l, cumulative);
    o.sample(&format!("{name}_sum"), labels, sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
    o.sample(&format!("{name}_count"), labels, cumulative);
}

/// The per-listener connection counters.
fn render_listeners(o: &mut Out, stats: &Stats) {
    let listeners = stats.listeners();
    listener_metric(o, &listeners, "moth_listener_connections", "gauge", "Clients connected now, by listener.", |l| {
        l.connected.load(Ordering::Relaxed).max(0).unsigned_abs()
    });
    listener_metric(
        o,
        &listeners,
        "moth_listener_connections_accepted_total",
        "counter",
        "Connections accepted (CONNACK 0), by listener.",
        |l| l.accepted.load(Ordering::Relaxed),
    );
    listener_metric(
        o,
        &listeners,
        "moth_listener_connections_refused_total",
        "counter",
        "Connections refused (listener full, bad CONNECT, authentication), by listener.",
        |l| l.refused.load(Ordering::Relaxed),
    );
}

/// Each authentication plugin's answers and how long it took.
fn render_auth(o: &mut Out, stats: &Stats) {
    let plugins = stats.auth_plugins();
    o.header("moth_auth_results_total", "counter", "Answers of each authentication plugin.");
    for (name, p) in &plugins {
        for answer in [AuthAnswer::Allowed, AuthAnswer::Denied, AuthAnswer::Ignored, AuthAnswer::Error] {
            o.sample(
                "moth_auth_results_total",
                &[("plugin", name), ("result", answer.as_str())],
                p.answers[answer as usize].load(Ordering::Relaxed),
            );
        }
    }
    o.header("moth_auth_latency_seconds", "histogram", "Time each authentication plugin took to answer.");
    for (name, p) in &plugins {
        auth_histogram(o, name, p);
    }
}

fn listener_metric(
    o: &mut Out,
    listeners: &[(String, std::sync::Arc<ListenerStats>)],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&ListenerStats) -> u64,
) {
    o.header(name, kind, help);
    for (listener, l) in listeners {
        o.sample(name, &[("listener", listener)], value(l));
    }
}

fn auth_histogram(o: &mut Out, plugin: &str, p: &AuthPluginStats) {
    let labels = [("plugin", plugin)];
    histogram(o, "moth_auth_latency_seconds", &labels, &AUTH_LATENCY_BUCKETS, &p.latency_buckets, &p.latency_sum_nanos);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_counters_listeners_and_auth_histogram() {
        let stats = Stats::new();
        let l = stats.listener("my \"tcp\"");
        stats.client_connected(&l, crate::packet::Protocol::V5);
        stats.record_auth("auth_anonymous", AuthAnswer::Allowed, Duration::from_micros(50));
        let text = render(&Snapshot::default(), &stats);
        assert!(text.contains("moth_listener_connections{listener=\"my \\\"tcp\\\"\"} 1\n"), "{text}");
        let by_version =
            Snapshot { clients_by_protocol: vec![(crate::packet::Protocol::V5, 1)], ..Snapshot::default() };
        let text_v = render(&by_version, &stats);
        assert!(text_v.contains("moth_clients_connected_by_protocol{protocol=\"5.0\"} 1\n"), "{text_v}");
        assert!(text.contains("moth_auth_results_total{plugin=\"auth_anonymous\",result=\"allowed\"} 1\n"));
        assert!(text.contains("moth_auth_latency_seconds_bucket{plugin=\"auth_anonymous\",le=\"0.0001\"} 1\n"));
        assert!(text.contains("moth_auth_latency_seconds_count{plugin=\"auth_anonymous\"} 1\n"));
        assert!(text.ends_with('\n'));
    }
}
