//! The restart benchmark's two halves (`scripts/bench.sh`, row `restart`):
//! `fill` gives a broker with persistence a large state (retained
//! messages, persistent sessions with a queued message each), every piece
//! acknowledged, so all of it is on disk; `ready` measures how long the
//! restarted broker takes until it answers a CONNECT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use moth_protocol::packet::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire;

/// Unacknowledged PUBLISHes a filling connection keeps in flight.
const WINDOW: usize = 100;
/// Payload of every message `fill` publishes.
const PAYLOAD: usize = 100;

/// Connects with the given clean session flag and waits for CONNACK.
async fn connect(addr: SocketAddr, id: &str, clean: bool) -> std::io::Result<(TcpStream, BytesMut)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&wire::connect_as(id, clean, 600, None)).await?;
    let mut buf = BytesMut::with_capacity(4096);
    wait_for(&mut s, &mut buf, 2, 1).await?;
    Ok((s, buf))
}

/// Reads until `n` packets of `kind` came.
async fn wait_for(s: &mut TcpStream, buf: &mut BytesMut, kind: u8, n: usize) -> std::io::Result<()> {
    let mut seen = 0;
    loop {
        wire::scan(buf, |f| seen += usize::from(f.kind == kind));
        if seen >= n {
            return Ok(());
        }
        if tokio::time::timeout(Duration::from_secs(30), s.read_buf(buf)).await?? == 0 {
            return Err(std::io::Error::other("closed"));
        }
    }
}

/// Publishes one QoS 1 message per topic (retained when `retain`),
/// `WINDOW` at a time, and waits for every PUBACK.
async fn publish_all(addr: SocketAddr, topics: impl Iterator<Item = String>, retain: bool) -> std::io::Result<u64> {
    let (mut s, mut buf) = connect(addr, "bench-fill", true).await?;
    let payload = [0x5au8; PAYLOAD];
    let mut in_flight = 0usize;
    let mut sent = 0u64;
    let mut out = BytesMut::new();
    let mut id: u16 = 0;
    for topic in topics {
        let (mut p, pid_at) = wire::publish(&topic, &payload, QoS::AtLeastOnce);
        if retain {
            p[0] |= 1;
        }
        id = id.wrapping_add(1).max(1);
        if let Some(at) = pid_at {
            p[at..at + 2].copy_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(&p);
        in_flight += 1;
        sent += 1;
        if in_flight == WINDOW {
            s.write_all(&out).await?;
            out.clear();
            wait_for(&mut s, &mut buf, 4, WINDOW).await?;
            in_flight = 0;
        }
    }
    s.write_all(&out).await?;
    wait_for(&mut s, &mut buf, 4, in_flight).await?;
    Ok(sent)
}

/// Fills the broker: `retained` retained messages, then `sessions`
/// persistent sessions each subscribed to a topic of its own (and gone
/// offline), then one queued message for each.
pub async fn fill(addr: SocketAddr, retained: u64, sessions: u64) -> std::io::Result<()> {
    let started = Instant::now();
    publish_all(addr, (0..retained).map(|i| format!("bench/r/{}/{}", i / 1000, i % 1000)), true).await?;
    eprintln!("fill: {retained} retained in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    const PARALLEL: u64 = 64;
    for lane in 0..PARALLEL {
        tasks.spawn(async move {
            let mut i = lane;
            while i < sessions {
                let (mut s, mut buf) = connect(addr, &format!("bench-s{i}"), false).await?;
                s.write_all(&wire::subscribe(&format!("bench/q/{i}"), QoS::AtLeastOnce)).await?;
                wait_for(&mut s, &mut buf, 9, 1).await?;
                s.write_all(&[0xe0, 0x00]).await?; // DISCONNECT
                i += PARALLEL;
            }
            Ok::<(), std::io::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(std::io::Error::other)??;
    }
    eprintln!("fill: {sessions} persistent sessions in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    publish_all(addr, (0..sessions).map(|i| format!("bench/q/{i}")), false).await?;
    eprintln!("fill: {sessions} queued messages in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Seconds until the broker at `addr` answers a CONNECT with CONNACK,
/// trying every 10 ms for at most `limit`.
pub async fn ready(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let started = Instant::now();
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(30), connect(addr, "bench-ready", true)).await {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > limit {
            return Err(std::io::Error::other(format!("no CONNACK within {limit:?}")));
        }
        // Poll interval while the broker loads its store.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
