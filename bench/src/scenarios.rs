//! The load scenarios. Each one returns a [`Outcome`] whose counts were
//! checked: a run that lost messages it should not have says so instead of
//! reporting a rate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use moth_protocol::packet::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::{churn, paced, wire};

/// How long a receiver waits without progress before it gives up counting.
const QUIET: Duration = Duration::from_secs(3);
const PAYLOAD: usize = 64;
/// Publishes per write for QoS 0 senders.
const BATCH: usize = 64;
/// Unacknowledged QoS 1 publishes per sender.
const WINDOW: usize = 64;

pub struct Outcome {
    /// The figure (its unit is the scenario's).
    pub value: f64,
    pub sent: u64,
    pub received: u64,
    /// Set when the counts do not add up for a scenario that must not lose.
    pub error: Option<String>,
    pub extra: Vec<(&'static str, f64)>,
}

pub struct Target {
    pub addr: SocketAddr,
    /// Extra loopback source addresses (127.0.0.2 ...) for many connections.
    pub sources: u8,
}

type Io = (OwnedReadHalf, OwnedWriteHalf, BytesMut);

/// A connection that will receive floods (a 64 KiB read buffer).
async fn open(target: &Target, client_id: &str, n: usize) -> std::io::Result<Io> {
    open_as(target, client_id, n, None, 64 * 1024).await
}

/// A connection that reads no more than its CONNACK (connect, idle): a
/// small read buffer, so the generator's cost per connection stays small.
async fn open_quiet(target: &Target, client_id: &str, n: usize) -> std::io::Result<Io> {
    open_as(target, client_id, n, None, 256).await
}

async fn open_as(
    target: &Target,
    client_id: &str,
    n: usize,
    login: Option<(&str, &str)>,
    capacity: usize,
) -> std::io::Result<Io> {
    let stream = if target.sources > 1 && target.addr.is_ipv4() {
        let src = Ipv4Addr::new(127, 0, 0, 1 + (n % usize::from(target.sources)) as u8);
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
        socket.connect(target.addr).await?
    } else {
        TcpStream::connect(target.addr).await?
    };
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(&wire::connect_as(client_id, true, 600, login)).await?;
    let mut buf = BytesMut::with_capacity(capacity);
    await_kind(&mut rd, &mut buf, 2).await?;
    Ok((rd, wr, buf))
}

/// Reads until a packet of `kind` arrives (CONNACK 2, SUBACK 9).
async fn await_kind(rd: &mut OwnedReadHalf, buf: &mut BytesMut, kind: u8) -> std::io::Result<()> {
    loop {
        let mut seen = false;
        let mut refused = false;
        wire::scan(buf, |f| {
            if f.kind == kind {
                seen = true;
                refused = kind == 2 && f.body.get(1).copied().unwrap_or(0) != 0;
            }
        });
        if refused {
            return Err(std::io::Error::other("CONNACK refused"));
        }
        if seen {
            return Ok(());
        }
        if tokio::time::timeout(Duration::from_secs(10), rd.read_buf(buf)).await?? == 0 {
            return Err(std::io::Error::other("closed"));
        }
    }
}

async fn subscriber(target: &Target, id: &str, n: usize, filter: &str, qos: QoS) -> std::io::Result<Io> {
    let (mut rd, mut wr, mut buf) = open(target, id, n).await?;
    wr.write_all(&wire::subscribe(filter, qos)).await?;
    await_kind(&mut rd, &mut buf, 9).await?;
    Ok((rd, wr, buf))
}

/// What a receiving client saw.
#[derive(Default)]
struct Received {
    count: u64,
    last: Option<Instant>,
}

/// A connected client as a blocking std socket, with what it had read.
fn blocking(io: Io) -> std::io::Result<(std::net::TcpStream, BytesMut)> {
    let (rd, wr, buf) = io;
    let stream = rd.reunite(wr).map_err(std::io::Error::other)?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok((stream, buf))
}

/// Counts PUBLISHes (acknowledging QoS 1) until `expected` or a quiet spell.
async fn receive(io: Io, expected: u64) -> Received {
    let (mut rd, mut wr, mut buf) = io;
    let mut got = Received::default();
    let mut acks = Vec::with_capacity(4096);
    while got.count < expected {
        match tokio::time::timeout(QUIET, rd.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
        let now = Instant::now();
        wire::scan(&mut buf, |f| {
            if f.kind != 3 {
                return;
            }
            got.count += 1;
            if let Some((Some(id), _)) = f.publish_parts() {
                acks.extend_from_slice(&wire::puback(id));
            }
        });
        got.last = Some(now);
        if !acks.is_empty() {
            if wr.write_all(&acks).await.is_err() {
                break;
            }
            acks.clear();
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
    }
    got
}

/// Sends `count` publishes on `topic`: QoS 0 in batches, QoS 1 within a window.
async fn publisher(io: Io, topic: &str, qos: QoS, count: u64) -> std::io::Result<()> {
    let (mut rd, mut wr, _) = io;
    let payload = [0x5au8; PAYLOAD];
    let (one, pid_at) = wire::publish(topic, &payload, qos);
    if qos == QoS::AtMostOnce {
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * BATCH).collect();
        let mut left = count;
        while left >= BATCH as u64 {
            wr.write_all(&batch).await?;
            left -= BATCH as u64;
        }
        for _ in 0..left {
            wr.write_all(&one).await?;
        }
        // Let the broker read everything before the socket closes.
        wr.write_all(&wire::subscribe("bench/flush/none", QoS::AtMostOnce)).await?;
        let mut buf = BytesMut::new();
        return await_kind(&mut rd, &mut buf, 9).await;
    }
    let Some(pid_at) = pid_at else { return Ok(()) };
    let window = Arc::new(Semaphore::new(WINDOW));
    let acked = Arc::new(AtomicU64::new(0));
    let reader = {
        let window = window.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            while acked.load(Ordering::Relaxed) < count {
                match tokio::time::timeout(Duration::from_secs(10), rd.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
                let mut n = 0;
                wire::scan(&mut buf, |f| n += usize::from(f.kind == 4));
                acked.fetch_add(n as u64, Ordering::Relaxed);
                window.add_permits(n);
            }
        })
    };
    let mut out = BytesMut::with_capacity(one.len() * WINDOW);
    let mut next_id: u16 = 0;
    let mut sent = 0u64;
    while sent < count {
        let Ok(p) = window.acquire().await else { break };
        p.forget();
        let mut take = 1u64;
        while take < (count - sent) && take < WINDOW as u64 {
            match window.try_acquire() {
                Ok(p) => {
                    p.forget();
                    take += 1;
                }
                Err(_) => break,
            }
        }
        for _ in 0..take {
            next_id = next_id.wrapping_add(1).max(1);
            let start = out.len();
            out.extend_from_slice(&one);
            out[start + pid_at..start + pid_at + 2].copy_from_slice(&next_id.to_be_bytes());
        }
        wr.write_all(&out).await?;
        out.clear();
        sent += take;
    }
    let _ = reader.await;
    if acked.load(Ordering::Relaxed) < count {
        return Err(std::io::Error::other(format!("{} of {count} PUBACKs", acked.load(Ordering::Relaxed))));
    }
    Ok(())
}

/// Total received by several receivers, and when the last one got its last.
async fn collect(rx: Vec<tokio::task::JoinHandle<Received>>, start: Instant) -> std::io::Result<(u64, Instant)> {
    let (mut total, mut last) = (0, start);
    for r in rx {
        let got = r.await.map_err(std::io::Error::other)?;
        total += got.count;
        last = last.max(got.last.unwrap_or(start));
    }
    Ok((total, last))
}

fn check(expected: u64, received: u64, lossless: bool) -> Option<String> {
    (lossless && received != expected).then(|| format!("received {received} of {expected}"))
}

/// P publishers to one subscriber.
pub async fn fan_in(t: &Target, publishers: usize, per_publisher: u64, qos: QoS) -> std::io::Result<Outcome> {
    let expected = per_publisher * publishers as u64;
    let sub = subscriber(t, "bench-in-sub", 0, "bench/in/+", qos).await?;
    let mut pubs = Vec::new();
    for i in 0..publishers {
        pubs.push(open(t, &format!("bench-in-pub-{i}"), i + 1).await?);
    }
    let start = Instant::now();
    let rx = tokio::spawn(receive(sub, expected));
    let mut tasks = Vec::new();
    for (i, io) in pubs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move { publisher(io, &format!("bench/in/{i}"), qos, per_publisher).await }));
    }
    for task in tasks {
        task.await.map_err(std::io::Error::other)??;
    }
    let got = rx.await.map_err(std::io::Error::other)?;
    let secs = got.last.map_or(f64::NAN, |l| l.duration_since(start).as_secs_f64());
    Ok(Outcome {
        value: got.count as f64 / secs,
        sent: expected,
        received: got.count,
        error: check(expected, got.count, qos != QoS::AtMostOnce),
        extra: vec![("loss_pct", 100.0 * (expected - got.count.min(expected)) as f64 / expected as f64)],
    })
}

/// One publisher to N subscribers; the figure is deliveries per second.
pub async fn fan_out(t: &Target, subscribers: usize, messages: u64, qos: QoS) -> std::io::Result<Outcome> {
    let expected = messages;
    let mut subs = Vec::new();
    for i in 0..subscribers {
        subs.push(subscriber(t, &format!("bench-out-sub-{i}"), i, "bench/out", qos).await?);
    }
    let publisher_io = open(t, "bench-out-pub", subscribers).await?;
    let start = Instant::now();
    let rx: Vec<_> = subs.into_iter().map(|io| tokio::spawn(receive(io, expected))).collect();
    publisher(publisher_io, "bench/out", qos, messages).await?;
    let (total, last) = collect(rx, start).await?;
    let want = expected * subscribers as u64;
    Ok(Outcome {
        value: total as f64 / last.duration_since(start).as_secs_f64(),
        sent: want,
        received: total,
        error: check(want, total, qos != QoS::AtMostOnce),
        extra: vec![("loss_pct", 100.0 * (want - total.min(want)) as f64 / want as f64)],
    })
}

/// `pairs` publisher/subscriber pairs, each on its own topic.
pub async fn pairs(t: &Target, pairs: usize, per_pair: u64, qos: QoS) -> std::io::Result<Outcome> {
    let mut subs = Vec::new();
    let mut pubs = Vec::new();
    for i in 0..pairs {
        subs.push(subscriber(t, &format!("bench-pair-sub-{i}"), 2 * i, &format!("bench/pair/{i}"), qos).await?);
        pubs.push(open(t, &format!("bench-pair-pub-{i}"), 2 * i + 1).await?);
    }
    let start = Instant::now();
    let rx: Vec<_> = subs.into_iter().map(|io| tokio::spawn(receive(io, per_pair))).collect();
    let mut tasks = Vec::new();
    for (i, io) in pubs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move { publisher(io, &format!("bench/pair/{i}"), qos, per_pair).await }));
    }
    for task in tasks {
        task.await.map_err(std::io::Error::other)??;
    }
    let (total, last) = collect(rx, start).await?;
    let want = per_pair * pairs as u64;
    Ok(Outcome {
        value: total as f64 / last.duration_since(start).as_secs_f64(),
        sent: want,
        received: total,
        error: check(want, total, qos != QoS::AtMostOnce),
        extra: vec![("loss_pct", 100.0 * (want - total.min(want)) as f64 / want as f64)],
    })
}

/// One publisher at a fixed rate to one subscriber; latency percentiles.
/// The two clients run on threads of their own (`paced.rs`).
pub async fn latency(t: &Target, rate: u64, seconds: u64) -> std::io::Result<Outcome> {
    let count = rate * seconds;
    let (sub, pending) = blocking(subscriber(t, "bench-lat-sub", 0, "bench/lat", QoS::AtMostOnce).await?)?;
    let (publ, _) = blocking(open(t, "bench-lat-pub", 1).await?)?;
    let mut got = tokio::task::spawn_blocking(move || paced::run(publ, sub, pending, "bench/lat", rate, count, QUIET))
        .await
        .map_err(std::io::Error::other)??;
    got.latencies_ns.sort_unstable();
    let pct = |q: f64| -> f64 {
        let v = &got.latencies_ns;
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
    };
    Ok(Outcome {
        value: pct(0.99),
        sent: count,
        received: got.count,
        error: check(count, got.count, true),
        extra: vec![
            ("p50_us", pct(0.5)),
            ("p99_us", pct(0.99)),
            ("p999_us", pct(0.999)),
            ("max_us", got.latencies_ns.last().map_or(f64::NAN, |&m| m as f64 / 1000.0)),
            ("secs", seconds as f64),
        ],
    })
}

/// CONNECT/CONNACK/DISCONNECT round trips per second, `concurrency` at a
/// time, driven by the lean client in `churn.rs` on `threads` threads.
/// Stops starting new connections after `limit`.
pub async fn connect_rate(
    t: &Target,
    total: usize,
    limit: Duration,
    concurrency: usize,
    threads: usize,
) -> std::io::Result<Outcome> {
    let (addr, sources) = (t.addr, t.sources);
    let run = tokio::task::spawn_blocking(move || churn::run(addr, sources, total, limit, concurrency, threads))
        .await
        .map_err(std::io::Error::other)??;
    let error =
        check(run.opened, run.completed, true).map(|e| format!("{e} ({} refused, {} failed)", run.refused, run.failed));
    Ok(Outcome {
        value: run.completed as f64 / run.secs,
        sent: run.opened,
        received: run.completed,
        error,
        extra: vec![("secs", run.secs)],
    })
}

/// Opens `count` idle connections and reports the broker's RSS growth per
/// connection (needs the broker's pid).
pub async fn idle(t: &Target, count: usize, broker_pid: Option<u32>) -> std::io::Result<Outcome> {
    let before = broker_pid.and_then(rss_bytes);
    let start = Instant::now();
    let mut held = Vec::with_capacity(count);
    let mut failures = 0u64;
    let chunk = 64;
    let mut n = 0;
    while n < count {
        let mut batch = Vec::new();
        for i in n..(n + chunk).min(count) {
            let target = Target { addr: t.addr, sources: t.sources };
            batch.push(tokio::spawn(async move { open_quiet(&target, &format!("bench-idle-{i}"), i).await }));
        }
        for b in batch {
            match b.await.map_err(std::io::Error::other)? {
                Ok(io) => held.push(io),
                Err(_) => failures += 1,
            }
        }
        n += chunk;
    }
    let rate = held.len() as f64 / start.elapsed().as_secs_f64();
    // Let the broker settle its buffers, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = broker_pid.and_then(rss_bytes);
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if !held.is_empty() => (a.saturating_sub(b)) as f64 / held.len() as f64,
        _ => f64::NAN,
    };
    Ok(Outcome {
        value: per_conn,
        sent: count as u64,
        received: held.len() as u64,
        error: (failures > 0).then(|| format!("{failures} of {count} connections failed")),
        extra: vec![("connect_rate", rate), ("rss_after_mb", after.map_or(f64::NAN, |a| a as f64 / 1048576.0))],
    })
}

/// A reconnect storm: `users` clients with passwords (`user{i}` /
/// `password`) connect, `concurrency` at a time, and stay; then all drop and
/// connect again. The figure is the seconds until all were connected the
/// first time; the second storm's time and the broker's peak RSS are extras.
pub async fn connect_auth(
    t: &Target,
    users: usize,
    concurrency: usize,
    password: &str,
    pid: Option<u32>,
) -> std::io::Result<Outcome> {
    let (first_secs, first_held) = storm(t, users, concurrency, password).await?;
    let first_in = first_held.len() as f64;
    drop(first_held);
    let (second_secs, held) = storm(t, users, concurrency, password).await?;
    let connected = held.len() as u64;
    drop(held);
    let peak = pid.and_then(peak_rss_bytes);
    Ok(Outcome {
        value: first_secs,
        sent: users as u64,
        received: connected,
        error: check(users as u64, connected, true),
        extra: vec![
            ("first_in", first_in),
            ("second_s", second_secs),
            ("peak_rss_mb", peak.map_or(f64::NAN, |b| b as f64 / 1048576.0)),
        ],
    })
}

/// Connects `users` clients with passwords, `concurrency` at a time; the
/// seconds it took and the connections, which stay open until dropped.
async fn storm(t: &Target, users: usize, concurrency: usize, password: &str) -> std::io::Result<(f64, Vec<Io>)> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(users);
    for i in 0..users {
        let gate = gate.clone();
        let target = Target { addr: t.addr, sources: t.sources };
        let password = password.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(std::io::Error::other)?;
            let user = format!("user{i}");
            open_as(&target, &format!("bench-auth-{i}"), i, Some((&user, &password)), 256).await
        }));
    }
    let mut held = Vec::with_capacity(users);
    for task in tasks {
        if let Ok(io) = task.await.map_err(std::io::Error::other)? {
            held.push(io);
        }
    }
    Ok((start.elapsed().as_secs_f64(), held))
}

/// Peak resident set size of a process (VmHWM), from /proc.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident set size of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The scenarios against an in-process moth, small: not to time anything,
/// but so that a generator that stops counting right fails here rather than
/// printing a wrong figure.
#[cfg(test)]
mod tests {
    use super::*;
    use moth::{Broker, Config};

    async fn broker(allow_anonymous: bool) -> (Broker, Target) {
        let yaml = format!(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\nauth:\n  allow-anonymous: {allow_anonymous}\n"
        );
        let broker = Broker::new(Config::from_yaml_str(&yaml).expect("config")).expect("broker");
        broker.start().await.expect("start");
        let addr = broker.local_addrs()[0].1;
        (broker, Target { addr, sources: 4 })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_counts_every_round_trip() {
        let (broker, t) = broker(true).await;
        let o = connect_rate(&t, 500, Duration::from_secs(60), 8, 2).await.expect("run");
        assert_eq!((o.sent, o.received), (500, 500));
        assert!(o.error.is_none(), "{:?}", o.error);
        assert!(o.value > 0.0);
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_reports_refusals() {
        let (broker, t) = broker(false).await;
        let o = connect_rate(&t, 50, Duration::from_secs(60), 8, 2).await.expect("run");
        assert_eq!(o.received, 0);
        let error = o.error.expect("refused connections are an error");
        assert!(error.contains("50 refused"), "{error}");
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_receives_every_message_at_the_rate() {
        let (broker, t) = broker(true).await;
        let start = Instant::now();
        let o = latency(&t, 1_000, 1).await.expect("run");
        assert_eq!((o.sent, o.received), (1_000, 1_000));
        assert!(o.error.is_none(), "{:?}", o.error);
        // Evenly spaced sends: 1,000 at 1,000/s cannot finish early.
        assert!(start.elapsed() >= Duration::from_millis(999), "sent too fast: {:?}", start.elapsed());
        let p50 = o.extra.iter().find(|(k, _)| *k == "p50_us").map(|(_, v)| *v).expect("p50");
        assert!(p50.is_finite() && p50 > 0.0, "p50 {p50}");
        broker.shutdown().await;
    }
}
