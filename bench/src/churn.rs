//! The CONNECT-rate driver: CONNECT, CONNACK, DISCONNECT and close, over
//! and over, `concurrency` connections at a time, on a few threads with raw
//! non-blocking sockets and one epoll set each (mio).
//!
//! Why not tokio like the other scenarios: the generator shares the
//! machine's two cores with the broker, so what the client spends per
//! connection is taken from the broker. Here a connection costs socket,
//! setsockopt, bind, connect, one epoll registration, write, read, write,
//! close and its share of one `epoll_wait`: no explicit deregistration, no
//! take-error call after connect, no read that finds nothing yet. The
//! threads matter as much: with one, the client used all of it and set the
//! rate (27k/s for moth and Mosquitto alike); with one per CPU it uses about
//! one core of the two and the broker is what runs out.
//!
//! Connections are spread over the loopback source addresses 127.0.0.1 and
//! up, with the port left to connect (`IP_BIND_ADDRESS_NO_PORT`): every
//! closed connection leaves a port in TIME_WAIT on the client's side, and
//! with one source address the kernel's search for a free port came to cost
//! more CPU than the broker's whole share of a connection (perf:
//! `__inet_hash_connect`, `__inet_check_established`, `tcp_twsk_unique`).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use crate::wire;

/// With no event for this long the run stops: a broker that stops answering
/// makes the scenario fail rather than hang.
const STALL: Duration = Duration::from_secs(10);

/// Client ids are `bench-conn-` and this many digits, so every CONNECT has
/// the same length and is the template with its digits rewritten.
const DIGITS: usize = 8;

/// DISCONNECT.
const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// What a run did.
pub struct Churn {
    /// Connections started (`total`, or fewer if the time limit came first).
    pub opened: u64,
    /// CONNACK 0 received and DISCONNECT sent.
    pub completed: u64,
    /// CONNACK with a non-zero return code.
    pub refused: u64,
    /// Connect, write or read failed, or the broker closed before CONNACK.
    pub failed: u64,
    pub secs: f64,
}

/// One thread's tally.
#[derive(Default)]
struct Counts {
    completed: u64,
    refused: u64,
    failed: u64,
}

struct Conn {
    stream: TcpStream,
    /// Which connection of the run this is; its client id ends in it.
    number: usize,
    /// Bytes of the CONNECT written so far.
    sent: usize,
    /// The CONNACK as it arrives (it is 4 bytes).
    connack: [u8; 4],
    have: usize,
}

enum Step {
    /// Waiting for the socket (writable to finish the CONNECT, readable for
    /// the CONNACK).
    Wait,
    /// The connection is over; count it as this and open the next.
    Done(Outcome),
}

enum Outcome {
    Completed,
    Refused,
    Failed,
}

/// Runs `total` CONNECT/CONNACK/DISCONNECT round trips against `addr`, or
/// as many as start within `limit` (a slow broker does not stretch the run
/// to minutes), `concurrency` at a time over `threads` threads (each its own
/// epoll set), from `sources` loopback addresses (127.0.0.1 and up; 1 means
/// the kernel picks). Blocking: call it off the async runtime.
pub fn run(
    addr: SocketAddr,
    sources: u8,
    total: usize,
    limit: Duration,
    concurrency: usize,
    threads: usize,
) -> std::io::Result<Churn> {
    let threads = threads.clamp(1, concurrency.max(1));
    let next = AtomicUsize::new(0);
    let until = Instant::now() + limit;
    let start = Instant::now();
    let results: Vec<std::io::Result<Counts>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                // The slots shared out as evenly as they go.
                let slots = concurrency / threads + usize::from(k < concurrency % threads);
                let next = &next;
                scope.spawn(move || drive(addr, sources, total, until, slots, next))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("connect client thread panicked"))))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    // Numbers past `total` were taken only to find there was no work left.
    let opened = next.load(Ordering::Relaxed).min(total) as u64;
    let mut sum = Churn { opened, completed: 0, refused: 0, failed: 0, secs };
    for r in results {
        let r = r?;
        sum.completed += r.completed;
        sum.refused += r.refused;
        sum.failed += r.failed;
    }
    Ok(sum)
}

/// One thread's share: `concurrency` slots on one epoll set, taking
/// connection numbers from `next` until `total` or `until`.
fn drive(
    addr: SocketAddr,
    sources: u8,
    total: usize,
    until: Instant,
    concurrency: usize,
    next: &AtomicUsize,
) -> std::io::Result<Counts> {
    let template = wire::connect_as(&format!("bench-conn-{}", "0".repeat(DIGITS)), true, 600, None).to_vec();
    let mut driver = Driver {
        poll: Poll::new()?,
        addr,
        sources,
        digits_at: template.len() - DIGITS,
        connect: template,
        slots: (0..concurrency).map(|_| None).collect(),
        next,
        total,
        active: 0,
        counts: Counts::default(),
        until,
    };
    let mut events = Events::with_capacity(1024);
    for slot in 0..concurrency {
        driver.refill(slot);
    }
    while driver.active > 0 {
        driver.poll.poll(&mut events, Some(STALL))?;
        if events.is_empty() {
            return Err(std::io::Error::other(format!(
                "no answer for {}s with {} connections open ({} completed)",
                STALL.as_secs(),
                driver.active,
                driver.counts.completed
            )));
        }
        for event in events.iter() {
            driver.on_event(event.token().0);
        }
    }
    Ok(driver.counts)
}

struct Driver<'a> {
    poll: Poll,
    addr: SocketAddr,
    sources: u8,
    /// The CONNECT template; its client id's digits start at `digits_at`.
    connect: Vec<u8>,
    digits_at: usize,
    /// One connection per slot; the slot number is the epoll token.
    slots: Vec<Option<Conn>>,
    /// The number of the next connection to open (shared by the threads), of
    /// `total`, until `until`.
    next: &'a AtomicUsize,
    total: usize,
    until: Instant,
    active: usize,
    counts: Counts,
}

impl Driver<'_> {
    fn on_event(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].as_mut() else { return };
        // Events are edge-triggered and may be stale (meant for the slot's
        // previous socket): a step only tries what the state allows and
        // takes "would block" as "wait".
        if let Step::Done(outcome) = advance(conn, &mut self.connect, self.digits_at) {
            self.slots[slot] = None; // closes the socket, which leaves the epoll set
            self.active -= 1;
            self.count(outcome);
            self.refill(slot);
        }
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.counts.completed += 1,
            Outcome::Refused => self.counts.refused += 1,
            Outcome::Failed => self.counts.failed += 1,
        }
    }

    /// Opens the next connection into the empty `slot` and sends its CONNECT
    /// if the socket is ready. A connection that fails at once is counted and
    /// the one after it is tried, so a slot never sits empty while work is left.
    fn refill(&mut self, slot: usize) {
        while Instant::now() < self.until {
            let number = self.next.fetch_add(1, Ordering::Relaxed);
            if number >= self.total {
                return;
            }
            let opened = connect(self.addr, self.sources, number).and_then(|mut stream| {
                self.poll.registry().register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
            let Ok(stream) = opened else {
                self.counts.failed += 1;
                continue;
            };
            let mut conn = Conn { stream, number, sent: 0, connack: [0; 4], have: 0 };
            // On loopback the handshake has usually finished by the time
            // connect returns, so the CONNECT goes out now, not after an event.
            match advance(&mut conn, &mut self.connect, self.digits_at) {
                Step::Wait => {
                    self.slots[slot] = Some(conn);
                    self.active += 1;
                    return;
                }
                Step::Done(outcome) => self.count(outcome),
            }
        }
    }
}

/// Starts a non-blocking connect to `addr` from source address number
/// `n` modulo `sources`.
fn connect(addr: SocketAddr, sources: u8, n: usize) -> std::io::Result<TcpStream> {
    if sources <= 1 || !addr.is_ipv4() {
        return TcpStream::connect(addr);
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None)?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let source = Ipv4Addr::new(127, 0, 0, 1 + (n % usize::from(sources)) as u8);
    socket.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Moves one connection on as far as its socket allows.
/// `connect` is the CONNECT template; its client id's digits (from
/// `digits_at`) are rewritten with the connection's number before writing.
fn advance(conn: &mut Conn, connect: &mut [u8], digits_at: usize) -> Step {
    if conn.sent < connect.len() {
        let mut n = conn.number;
        for d in connect[digits_at..].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    while conn.sent < connect.len() {
        match conn.stream.write(&connect[conn.sent..]) {
            Ok(0) => return Step::Done(Outcome::Failed),
            Ok(k) => conn.sent += k,
            // Not connected yet (EAGAIN while the handshake runs).
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Done(Outcome::Failed),
        }
    }
    while conn.have < conn.connack.len() {
        match conn.stream.read(&mut conn.connack[conn.have..]) {
            Ok(0) => return Step::Done(Outcome::Failed),
            Ok(k) => conn.have += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Done(Outcome::Failed),
        }
    }
    if conn.connack[0] != 0x20 || conn.connack[1] != 0x02 {
        return Step::Done(Outcome::Failed);
    }
    if conn.connack[3] != 0 {
        return Step::Done(Outcome::Refused);
    }
    // Two bytes into an empty send buffer: a short write cannot happen, and a
    // failed one still leaves a completed CONNECT behind.
    let _ = conn.stream.write(&DISCONNECT);
    Step::Done(Outcome::Completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing listening: every connection fails, is counted as failed, and
    /// the run ends instead of waiting.
    #[test]
    fn failed_connects_are_counted() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = unused.local_addr().expect("address");
        drop(unused);
        let run = run(addr, 1, 20, Duration::from_secs(60), 4, 2).expect("run");
        assert_eq!((run.opened, run.completed, run.refused, run.failed), (20, 0, 0, 20));
    }
}
