//! The latency scenario's two clients, each on its own thread with a
//! blocking socket: a publisher that sends at evenly spaced times and a
//! subscriber that stamps each message the moment its read returns.
//!
//! Why not tokio like the throughput scenarios: tokio's timer ticks once a
//! millisecond, so an interval of 200 µs (5k msg/s) sent bursts of five
//! every millisecond and the figures included the wait of the fifth behind
//! the first four; and a task on a shared runtime is stamped when its worker
//! gets to it, not when the data arrives. A thread that sleeps until each
//! send time and a thread blocked in `read` leave the broker as the thing
//! measured.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::wire;

/// What the subscriber saw.
pub struct Seen {
    pub count: u64,
    /// Publish-to-receipt times, nanoseconds, in arrival order.
    pub latencies_ns: Vec<u64>,
}

/// Sends `count` QoS 0 PUBLISHes on `topic` at `rate` per second from
/// `publisher`, while `subscriber` (already subscribed; `pending` is what it
/// had read past its SUBACK) receives them. Each payload carries its send
/// time. The subscriber stops after `count` messages or `quiet` without one.
pub fn run(
    mut publisher: TcpStream,
    subscriber: TcpStream,
    pending: BytesMut,
    topic: &str,
    rate: u64,
    count: u64,
    quiet: Duration,
) -> std::io::Result<Seen> {
    subscriber.set_read_timeout(Some(quiet))?;
    let base = Instant::now();
    let receiver = std::thread::Builder::new()
        .name("latency-sub".into())
        .spawn(move || receive(subscriber, pending, base, count))?;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    // Wake-ups within a microsecond of the send time rather than the default
    // 50 µs timer slack. Best effort: the stamp is taken after waking anyway.
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let (mut packet, _) = wire::publish(topic, &[0u8; 64], moth_protocol::packet::QoS::AtMostOnce);
    let stamp_at = packet.len() - 64; // the payload is the packet's tail
    let mut sent = Ok(());
    for i in 0..count {
        // Absolute send times: a late wake-up does not push the rest back,
        // and the rate stays the one asked for.
        let due = base + interval * (i as u32 + 1);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let stamp = base.elapsed().as_nanos() as u64;
        packet[stamp_at..stamp_at + 8].copy_from_slice(&stamp.to_be_bytes());
        if let Err(e) = publisher.write_all(&packet) {
            sent = Err(e);
            break;
        }
    }
    let seen = receiver.join().map_err(|_| std::io::Error::other("latency subscriber panicked"))?;
    sent.map(|()| seen)
}

fn receive(mut stream: TcpStream, mut buf: BytesMut, base: Instant, expected: u64) -> Seen {
    let mut seen = Seen { count: 0, latencies_ns: Vec::with_capacity(expected as usize) };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if seen.count >= expected {
            return seen;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return seen,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Timed out (a message lost) or the connection broke: the count
            // tells.
            Err(_) => return seen,
        };
        let at = base.elapsed().as_nanos() as u64;
        buf.extend_from_slice(&chunk[..n]);
        wire::scan(&mut buf, |f| {
            if f.kind != 3 {
                return;
            }
            seen.count += 1;
            if let Some((_, payload)) = f.publish_parts()
                && let Some(stamp) = payload.get(..8)
            {
                let sent = u64::from_be_bytes(stamp.try_into().unwrap_or([0; 8]));
                seen.latencies_ns.push(at.saturating_sub(sent));
            }
        });
    }
}
