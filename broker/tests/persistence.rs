//! Persistence of the real `moth` program on a real disk, killed with
//! `kill -9`: what a client was told is safe must be there after the
//! restart.
//!
//! The fault-injection test runs publishers (QoS 1 and 2, persistent
//! sessions, resending what was not acknowledged after each reconnect, as
//! the protocol says) and persistent subscribers (some connected, some away
//! until the end) while the broker is killed at random moments and started
//! again on the same store. At the end every message whose PUBACK or
//! PUBCOMP a publisher received must have reached every subscriber: QoS 1
//! at least once, QoS 2 exactly once. Each subscriber's QoS 2 receipt uses
//! the receiver's "method B" (a packet id is delivered once until its
//! PUBREL), so a broker that sent a stored QoS 2 message again under a new
//! id after a crash would show as a duplicate.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use bytes::{Bytes, BytesMut};
use common::{Running, TempDir, describe, free_port, moth, text, wait_until_listening};
use moth_protocol::codec;
use moth_protocol::packet::{
    Ack, Connect, ConnectProperties, ConnectReturnCode, MessageProperties, Packet, Protocol, Publish, QoS, Subscribe,
    SubscribeFilter, Will,
};

/// A blocking MQTT connection (3.1.1 unless made with [`Conn::open_as`]);
/// every error means "reconnect".
struct Conn {
    s: TcpStream,
    buf: BytesMut,
    protocol: Protocol,
}

impl Conn {
    /// Connects with clean session `clean`; `None` while the broker is down.
    fn open(addr: SocketAddr, client_id: &str, clean: bool) -> Option<(Conn, bool)> {
        Conn::open_with_will(addr, client_id, clean, None)
    }

    fn open_with_will(addr: SocketAddr, client_id: &str, clean: bool, will: Option<Will>) -> Option<(Conn, bool)> {
        let connect = Connect {
            protocol: Protocol::V311,
            clean_session: clean,
            keep_alive: 0,
            client_id: client_id.into(),
            will,
            username: None,
            password: None,
            properties: Default::default(),
        };
        Conn::open_as(addr, connect)
    }

    /// Sends `connect` (in its protocol version) and waits for CONNACK 0.
    fn open_as(addr: SocketAddr, connect: Connect) -> Option<(Conn, bool)> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        let mut c = Conn { s, buf: BytesMut::new(), protocol: connect.protocol };
        c.send(&Packet::Connect(Box::new(connect))).ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match c.recv() {
                Ok(Some(Packet::Connack(a))) if a.code == ConnectReturnCode::Accepted => {
                    return Some((c, a.session_present));
                }
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) => {}
            }
        }
        None
    }

    fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        codec::encode(p, self.protocol, &mut out);
        self.s.write_all(&out)
    }

    /// Says DISCONNECT and waits for the broker to close the stream, which
    /// it does once the session is detached: what is published after is
    /// queued for the session, never sent to this connection.
    fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Default::default())).expect("disconnect");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.recv().is_ok() {
            assert!(Instant::now() < deadline, "the broker did not close the connection after DISCONNECT");
        }
    }

    /// The next packet; `Ok(None)` when none came within the read timeout.
    fn recv(&mut self) -> std::io::Result<Option<Packet>> {
        loop {
            match codec::decode(&mut self.buf, 1 << 20, self.protocol) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(format!("malformed packet from the broker: {e}"))),
            }
            let mut chunk = [0u8; 8192];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One message a publisher has not finished.
struct Unfinished {
    seq: u64,
    qos: QoS,
    packet_id: u16,
    /// QoS 2: PUBREC came, PUBREL sent; PUBCOMP awaited.
    released: bool,
    retain: bool,
}

fn payload(publisher: usize, seq: u64) -> String {
    format!("p{publisher}-{seq}")
}

/// What a publisher got acknowledged: (seq, QoS) in order, and the last
/// retained seq.
type Published = (Vec<(u64, QoS)>, Option<u64>);

/// A publisher: one message at a time, QoS 1 and 2 in turn, every tenth
/// also retained; resends its unfinished message after each reconnect.
/// Returns the messages acknowledged (PUBACK / PUBCOMP), with their QoS,
/// and the last retained seq acknowledged.
fn publisher(addr: SocketAddr, me: usize, stop: Arc<AtomicBool>) -> Published {
    let id = format!("pub{me}");
    let mut acked = Vec::new();
    let mut last_retained = None;
    let mut seq = 0u64;
    let mut current: Option<Unfinished> = None;
    let mut conn: Option<Conn> = None;
    let give_up = Instant::now() + Duration::from_secs(240);
    while !(stop.load(Ordering::Relaxed) && current.is_none()) {
        assert!(Instant::now() < give_up, "{id}: cannot finish its last message");
        let Some(c) = conn.as_mut() else {
            conn = Conn::open(addr, &id, false).map(|(c, _)| c);
            if let (Some(c), Some(u)) = (conn.as_mut(), current.as_ref()) {
                // Resent after a reconnect [MQTT-4.4.0-1].
                let sent = if u.released {
                    c.send(&Packet::Pubrel(Ack::new(u.packet_id)))
                } else {
                    c.send(&Packet::Publish(publish_of(me, u, true)))
                };
                if sent.is_err() {
                    conn = None;
                }
            }
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(30)); // reconnect back-off
            }
            continue;
        };
        if current.is_none() {
            seq += 1;
            let qos = if seq.is_multiple_of(2) { QoS::ExactlyOnce } else { QoS::AtLeastOnce };
            let u = Unfinished {
                seq,
                qos,
                packet_id: (seq % 60000) as u16 + 1,
                released: false,
                retain: seq.is_multiple_of(10),
            };
            if c.send(&Packet::Publish(publish_of(me, &u, false))).is_err() {
                conn = None;
            }
            current = Some(u);
            continue;
        }
        let Some(u) = current.as_mut() else { continue };
        match c.recv() {
            Ok(None) => {}
            Ok(Some(Packet::Puback(a))) if a.packet_id == u.packet_id && u.qos == QoS::AtLeastOnce => {
                acked.push((u.seq, u.qos));
                if u.retain {
                    last_retained = Some(u.seq);
                }
                current = None;
            }
            Ok(Some(Packet::Pubrec(a))) if a.packet_id == u.packet_id && u.qos == QoS::ExactlyOnce => {
                u.released = true;
                if c.send(&Packet::Pubrel(Ack::new(u.packet_id))).is_err() {
                    conn = None;
                }
            }
            Ok(Some(Packet::Pubcomp(a))) if a.packet_id == u.packet_id && u.released => {
                acked.push((u.seq, u.qos));
                if u.retain {
                    last_retained = Some(u.seq);
                }
                current = None;
            }
            Ok(Some(other)) => panic!("{id}: unexpected {other:?}"),
            Err(_) => conn = None,
        }
    }
    (acked, last_retained)
}

fn publish_of(me: usize, u: &Unfinished, dup: bool) -> Publish {
    let topic = if u.retain { format!("ret/p{me}") } else { format!("load/p{me}") };
    let mut p = Publish::new(topic, Bytes::from(payload(me, u.seq)), u.qos, u.retain, u.packet_id);
    p.dup = dup;
    p
}

/// What a subscriber received: payload -> (QoS, times delivered).
type Received = Arc<Mutex<HashMap<String, (QoS, u32)>>>;

/// A persistent subscriber's client side, kept across its connections.
struct Subscriber {
    id: String,
    received: Received,
    /// QoS 2 packet ids received and not yet released by PUBREL.
    held: HashSet<u16>,
    last_message: Instant,
}

impl Subscriber {
    fn new(n: usize) -> Subscriber {
        Subscriber {
            id: format!("sub{n}"),
            received: Arc::default(),
            held: HashSet::new(),
            last_message: Instant::now(),
        }
    }

    /// Creates the session and its subscription (acknowledged by SUBACK).
    fn subscribe(&mut self, addr: SocketAddr) {
        let (mut c, _) = Conn::open(addr, &self.id, false).expect("first connect");
        let filters = vec![SubscribeFilter::new("load/#", QoS::ExactlyOnce)];
        c.send(&Packet::Subscribe(Subscribe::new(1, filters))).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "{}: no SUBACK", self.id);
            if let Ok(Some(Packet::Suback(_))) = c.recv() {
                break;
            }
        }
        let _ = c.send(&Packet::Disconnect(Default::default()));
    }

    /// Handles one packet from the broker.
    fn on_packet(&mut self, c: &mut Conn, p: Packet) -> std::io::Result<()> {
        match p {
            Packet::Publish(p) => {
                let text = text(&p.payload);
                let got = |qos| {
                    let mut r = self.received.lock().unwrap();
                    r.entry(text.clone()).or_insert((qos, 0)).1 += 1;
                };
                self.last_message = Instant::now();
                match p.qos {
                    QoS::AtMostOnce => panic!("{}: a QoS 0 delivery of {text}", self.id),
                    QoS::AtLeastOnce => {
                        got(QoS::AtLeastOnce);
                        c.send(&Packet::Puback(Ack::new(p.packet_id)))
                    }
                    QoS::ExactlyOnce => {
                        if self.held.insert(p.packet_id) {
                            got(QoS::ExactlyOnce);
                        }
                        c.send(&Packet::Pubrec(Ack::new(p.packet_id)))
                    }
                }
            }
            Packet::Pubrel(a) => {
                self.held.remove(&a.packet_id);
                c.send(&Packet::Pubcomp(Ack::new(a.packet_id)))
            }
            other => panic!("{}: unexpected {other:?}", self.id),
        }
    }

    /// Receives until `until` says stop, reconnecting whenever the broker
    /// goes away.
    fn run(&mut self, addr: SocketAddr, until: &dyn Fn(&Subscriber) -> bool) {
        let mut conn: Option<Conn> = None;
        while !until(self) {
            let Some(c) = conn.as_mut() else {
                match Conn::open(addr, &self.id, false) {
                    Some((c, present)) => {
                        assert!(present, "{}: its session must survive every restart", self.id);
                        conn = Some(c);
                    }
                    None => std::thread::sleep(Duration::from_millis(30)), // reconnect back-off
                }
                continue;
            };
            let handled = match c.recv() {
                Ok(Some(p)) => self.on_packet(c, p),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if handled.is_err() {
                conn = None;
            }
        }
    }
}

fn start(config: &std::path::Path, addr: SocketAddr) -> Running {
    let mut cmd = moth();
    cmd.arg("-c").arg(config);
    let mut proc = Running::spawn(cmd);
    wait_until_listening(&mut proc, addr);
    proc
}

fn kill9(proc: Running) {
    common::send_signal(proc.pid, "KILL");
    let out = proc.wait("kill -9");
    assert_eq!(out.status.code(), None, "moth should die of the signal:\n{}", describe(&out));
}

/// A small deterministic random number generator (xorshift), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_message() {
    const PUBLISHERS: usize = 4;
    const ONLINE: usize = 2;
    const AWAY: usize = 2;
    const KILLS: usize = 8;
    let dir = TempDir::new("persist-kill9");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let store = dir.0.join("store");
    let config = store_config_with(&dir, port, &store, "max-queued-messages: 1000000\n");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);

    let mut broker = start(&config, addr);
    let mut subscribers: Vec<Subscriber> = (0..ONLINE + AWAY).map(Subscriber::new).collect();
    for s in &mut subscribers {
        s.subscribe(addr);
    }
    let away: Vec<Subscriber> = subscribers.split_off(ONLINE);

    let stop_publishers = Arc::new(AtomicBool::new(false));
    let stop_online = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|i| {
            let stop = stop_publishers.clone();
            std::thread::spawn(move || publisher(addr, i, stop))
        })
        .collect();
    let online: Vec<_> = subscribers
        .into_iter()
        .map(|mut s| {
            let stop = stop_online.clone();
            std::thread::spawn(move || {
                s.run(addr, &|_| stop.load(Ordering::Relaxed));
                s
            })
        })
        .collect();

    let restarts = AtomicU64::new(0);
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + rng.below(900))); // traffic runs for a random while
        kill9(broker);
        broker = start(&config, addr);
        restarts.fetch_add(1, Ordering::Relaxed);
    }
    std::thread::sleep(Duration::from_millis(500)); // a last stretch of traffic after the final restart
    stop_publishers.store(true, Ordering::Relaxed);
    let results: Vec<Published> = publishers.into_iter().map(|h| h.join().expect("publisher thread")).collect();
    let acked_total: usize = results.iter().map(|(a, _)| a.len()).sum();
    assert!(acked_total > 0, "the publishers got nothing acknowledged");

    // Every subscriber (the away ones now, for the first time since they
    // subscribed) drains until it has every acknowledged message.
    let expected: Vec<(String, QoS)> = results
        .iter()
        .enumerate()
        .flat_map(|(p, (acked, _))| {
            // Retained ones went to `ret/...`, which nobody subscribed to.
            acked.iter().filter(|(seq, _)| seq % 10 != 0).map(move |(seq, qos)| (payload(p, *seq), *qos))
        })
        .collect();
    let has_all = |s: &Subscriber| {
        let r = s.received.lock().unwrap();
        expected.iter().all(|(p, _)| r.contains_key(p))
    };
    let mut everyone: Vec<Subscriber> = Vec::new();
    stop_online.store(true, Ordering::Relaxed);
    for h in online {
        everyone.push(h.join().expect("subscriber thread"));
    }
    everyone.extend(away);
    let missing = |s: &Subscriber| {
        let r = s.received.lock().unwrap();
        let gone: Vec<String> =
            expected.iter().filter(|(p, _)| !r.contains_key(p)).map(|(p, q)| format!("{p} ({q:?})")).collect();
        format!("{} [{}]", gone.len(), gone.iter().take(10).cloned().collect::<Vec<_>>().join(", "))
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    for s in &mut everyone {
        s.last_message = Instant::now();
        // Until it has them all, and then until the broker has been quiet
        // for a moment (so duplicates would have come). A slow drain (the
        // debug build, a loaded machine) is not a loss; a stall is: nothing
        // for 20 s while messages are missing.
        s.run(addr, &|s| {
            let stalled = s.last_message.elapsed() > Duration::from_secs(20);
            assert!(!stalled || has_all(s), "{}: {} acknowledged messages never came", s.id, missing(s));
            assert!(Instant::now() < deadline, "{}: {} acknowledged messages missing after 300 s", s.id, missing(s));
            has_all(s) && s.last_message.elapsed() > Duration::from_millis(500)
        });
    }

    let mut duplicates_qos1 = 0;
    for s in &everyone {
        let r = s.received.lock().unwrap();
        for (p, qos) in &expected {
            let (got_qos, n) = r.get(p).copied().unwrap_or((QoS::AtMostOnce, 0));
            assert!(n >= 1, "{}: acknowledged {p} lost", s.id);
            assert_eq!(got_qos, *qos, "{}: {p} delivered at another QoS", s.id);
            if *qos == QoS::ExactlyOnce {
                assert_eq!(n, 1, "{}: QoS 2 message {p} delivered {n} times", s.id);
            } else {
                duplicates_qos1 += n - 1;
            }
        }
        for (p, (qos, n)) in r.iter() {
            assert!(
                *qos != QoS::ExactlyOnce || *n == 1,
                "{}: QoS 2 message {p} (not acknowledged) delivered {n} times",
                s.id
            );
        }
    }

    // Retained: the last acknowledged value of each publisher, or a later one.
    let (mut c, _) = Conn::open(addr, "retained-check", true).expect("connect");
    c.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("ret/#", QoS::AtLeastOnce)])))
        .expect("subscribe");
    let mut retained: HashMap<String, u64> = HashMap::new();
    let want = results.iter().filter(|(_, r)| r.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while retained.len() < want && Instant::now() < deadline {
        if let Ok(Some(Packet::Publish(p))) = c.recv() {
            let t = text(&p.payload);
            let seq: u64 = t.rsplit('-').next().and_then(|s| s.parse().ok()).expect("payload p<n>-<seq>");
            retained.insert(p.topic.to_string(), seq);
            if p.qos == QoS::AtLeastOnce {
                let _ = c.send(&Packet::Puback(Ack::new(p.packet_id)));
            }
        }
    }
    for (p, (_, last)) in results.iter().enumerate() {
        if let Some(last) = last {
            let got = retained.get(&format!("ret/p{p}")).copied();
            assert!(got.is_some_and(|g| g >= *last), "ret/p{p}: last acknowledged {last}, retained {got:?}");
        }
    }
    eprintln!(
        "kill -9 x{}: {acked_total} messages acknowledged ({} to subscribers, {} retained), checked at {} subscribers; \
         0 lost, 0 QoS 2 duplicates, {duplicates_qos1} QoS 1 re-deliveries",
        restarts.load(Ordering::Relaxed),
        expected.len(),
        acked_total - expected.len(),
        everyone.len()
    );
    drop(broker);
}

/// A configuration file: one TCP listener on `port`, persistence in
/// `store` (sync batch, the default), and `extra` top-level keys.
fn store_config_with(dir: &TempDir, port: u16, store: &std::path::Path, extra: &str) -> std::path::PathBuf {
    dir.file(
        &format!("moth-{port}.yaml"),
        &format!(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n{extra}\
             persistence:\n  enabled: true\n  path: {}\n",
            store.display()
        ),
    )
}

fn store_config(dir: &TempDir, port: u16, store: &std::path::Path) -> std::path::PathBuf {
    store_config_with(dir, port, store, "")
}

/// Subscribes `c` to `filter` at QoS 1 and waits for the SUBACK.
fn subscribe_qos1(c: &mut Conn, filter: &str) {
    c.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new(filter, QoS::AtLeastOnce)]))).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(c.recv(), Ok(Some(Packet::Suback(_)))) {
        assert!(Instant::now() < deadline, "no SUBACK for {filter}");
    }
}

/// The next PUBLISH (acknowledged), as (topic, payload); fails after 10 s.
fn next_publish(c: &mut Conn) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no PUBLISH within 10 s");
        if let Ok(Some(Packet::Publish(p))) = c.recv() {
            if p.qos == QoS::AtLeastOnce {
                c.send(&Packet::Puback(Ack::new(p.packet_id))).expect("puback");
            }
            return (p.topic.to_string(), text(&p.payload));
        }
    }
}

#[test]
fn a_restart_after_kill_9_keeps_sessions_queues_in_order_and_retained_and_publishes_the_wills() {
    let dir = TempDir::new("persist-restart");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = store_config(&dir, port, &dir.0.join("store"));
    let broker = start(&config, addr);

    for (id, filter) in [("away", "q/#"), ("watcher", "wills/#")] {
        let (mut c, present) = Conn::open(addr, id, false).expect("connect");
        assert!(!present);
        subscribe_qos1(&mut c, filter);
        c.disconnect();
    }
    // Gets a message and never acknowledges it: after the restart it must
    // come again with the same packet id and DUP [MQTT-4.4.0-1].
    let (mut unacked, _) = Conn::open(addr, "unacked", false).expect("connect");
    subscribe_qos1(&mut unacked, "u/#");
    // Connected when the broker dies: its will must be published after.
    let will = Will::new("wills/dying", "gone", QoS::AtLeastOnce, false);
    let (_dying, _) = Conn::open_with_will(addr, "dying", true, Some(will)).expect("connect with a will");
    let (mut publisher, _) = Conn::open(addr, "publisher", true).expect("connect");
    let mut publish = |topic: &str, body: &str, retain: bool, id: u16| {
        let p = Publish::new(topic, Bytes::from(body.to_string()), QoS::AtLeastOnce, retain, id);
        publisher.send(&Packet::Publish(p)).expect("publish");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(publisher.recv(), Ok(Some(Packet::Puback(a))) if a.packet_id == id) {
            assert!(Instant::now() < deadline, "no PUBACK for {topic}");
        }
    };
    for i in 1..=5u16 {
        publish(&format!("q/{i}"), &format!("m{i}"), false, i);
    }
    publish("u/1", "once", false, 7);
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        assert!(Instant::now() < deadline, "u/1 not delivered");
        if let Ok(Some(Packet::Publish(p))) = unacked.recv() {
            break p;
        }
    };
    assert!(!first.dup);
    // Acknowledged after u/1 was sent: the journal is ordered, so the record
    // of that sending is on disk too.
    publish("r/x", "kept", true, 6);
    kill9(broker);

    let broker = start(&config, addr);
    let (mut away, present) = Conn::open(addr, "away", false).expect("reconnect");
    assert!(present, "the persistent session survives kill -9");
    let got: Vec<(String, String)> = (0..5).map(|_| next_publish(&mut away)).collect();
    let want: Vec<(String, String)> = (1..=5).map(|i| (format!("q/{i}"), format!("m{i}"))).collect();
    assert_eq!(got, want, "every queued message, in order");
    let (mut watcher, present) = Conn::open(addr, "watcher", false).expect("reconnect");
    assert!(present);
    assert_eq!(next_publish(&mut watcher), ("wills/dying".into(), "gone".into()), "the dead client's will");
    let (mut unacked, present) = Conn::open(addr, "unacked", false).expect("reconnect");
    assert!(present);
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        assert!(Instant::now() < deadline, "u/1 not sent again");
        if let Ok(Some(Packet::Publish(p))) = unacked.recv() {
            break p;
        }
    };
    assert_eq!(
        (again.packet_id, again.dup, &*again.topic),
        (first.packet_id, true, "u/1"),
        "re-sent as it was, with DUP"
    );
    let (mut reader, _) = Conn::open(addr, "reader", true).expect("connect");
    subscribe_qos1(&mut reader, "r/#");
    assert_eq!(next_publish(&mut reader), ("r/x".into(), "kept".into()), "the retained message");
    drop(broker);
}

/// Starts moth on `config` expecting it to refuse: exit status 1 and one
/// error line naming `needle`.
fn refused(config: &std::path::Path, needles: &[&str]) {
    let mut cmd = moth();
    cmd.arg("-c").arg(config);
    let out = Running::spawn(cmd).wait("a refused store");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(needles.iter().all(|n| err.contains(n)), "expected {needles:?} in:\n{}", describe(&out));
    assert!(!err.contains("panicked"), "{}", describe(&out));
}

#[test]
fn a_store_that_cannot_be_used_stops_the_start_with_one_line_naming_it() {
    let dir = TempDir::new("persist-bad");
    // Held by another moth.
    let (port, second) = (free_port(), free_port());
    let store = dir.0.join("held");
    let first = start(&store_config(&dir, port, &store), ([127, 0, 0, 1], port).into());
    refused(&store_config(&dir, second, &store), &["moth.redb", "in use"]);
    drop(first);
    // A path that is a file, not a directory.
    let file = dir.file("not-a-dir", "x");
    refused(&store_config(&dir, free_port(), &file), &["not-a-dir", "cannot create"]);
    // A file that is not a moth store.
    let foreign = dir.0.join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("moth.redb"), vec![0x5a; 64 * 1024]).expect("write");
    refused(&store_config(&dir, free_port(), &foreign), &["moth.redb"]);
    // A real store, damaged in the middle.
    let damaged = dir.0.join("damaged");
    let port = free_port();
    let config = store_config(&dir, port, &damaged);
    let broker = start(&config, ([127, 0, 0, 1], port).into());
    let (mut c, _) = Conn::open(([127, 0, 0, 1], port).into(), "p", true).expect("connect");
    for i in 0..200u16 {
        let p = Publish::new(format!("r/{i}"), Bytes::from(vec![b'v'; 500]), QoS::AtLeastOnce, true, i + 1);
        c.send(&Packet::Publish(p)).expect("publish");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut acked = 0;
    while acked < 200 {
        assert!(Instant::now() < deadline, "PUBACKs");
        if let Ok(Some(Packet::Puback(_))) = c.recv() {
            acked += 1;
        }
    }
    kill9(broker);
    let path = damaged.join("moth.redb");
    let mut bytes = std::fs::read(&path).expect("read store");
    let len = bytes.len();
    assert!(len > 4096, "a store of {len} bytes");
    // Everything past the file's first page: whatever redb holds is hit.
    for b in &mut bytes[4096.min(len)..] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, bytes).expect("damage");
    refused(&config, &["moth.redb"]);
}

/// An MQTT 5 CONNECT keeping its session for `expiry` seconds.
fn connect_v5(client_id: &str, clean_start: bool, expiry: u32, will: Option<Will>) -> Connect {
    Connect {
        protocol: Protocol::V5,
        clean_session: clean_start,
        keep_alive: 0,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: ConnectProperties { session_expiry_interval: Some(expiry), ..ConnectProperties::default() },
    }
}

#[test]
fn mqtt5_session_and_message_expiry_run_on_while_the_broker_is_down() {
    let dir = TempDir::new("persist-expiry");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = store_config(&dir, port, &dir.0.join("store"));
    let broker = start(&config, addr);
    for (id, expiry) in [("short", 1), ("long", 3600)] {
        let (mut c, _) = Conn::open_as(addr, connect_v5(id, true, expiry, None)).expect("connect");
        subscribe_qos1(&mut c, "e/#");
        c.disconnect();
    }
    let (mut publisher, _) = Conn::open_as(addr, connect_v5("pub", true, 0, None)).expect("connect");
    for (id, (topic, expiry)) in [("e/brief", Some(1)), ("e/lasting", None)].into_iter().enumerate() {
        let id = id as u16 + 1;
        let mut p = Publish::new(topic, Bytes::from_static(b"x"), QoS::AtLeastOnce, false, id);
        p.properties = expiry.map(|s| {
            std::sync::Arc::new(MessageProperties { message_expiry_interval: Some(s), ..MessageProperties::default() })
        });
        publisher.send(&Packet::Publish(p)).expect("publish");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(publisher.recv(), Ok(Some(Packet::Puback(a))) if a.packet_id == id) {
            assert!(Instant::now() < deadline, "no PUBACK");
        }
    }
    kill9(broker);
    let killed = Instant::now();
    // The passing of time is what is tested: both 1 s intervals run out
    // while no broker runs.
    std::thread::sleep(Duration::from_millis(2500));
    let broker = start(&config, addr);
    let (_short, present) = Conn::open_as(addr, connect_v5("short", false, 1, None)).expect("reconnect");
    assert!(!present, "a session whose expiry passed while the broker was down is gone");
    let (mut long, present) = Conn::open_as(addr, connect_v5("long", false, 3600, None)).expect("reconnect");
    assert!(present, "the long session is kept");
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        assert!(Instant::now() < deadline, "no PUBLISH within 10 s");
        if let Ok(Some(Packet::Publish(p))) = long.recv() {
            break p;
        }
    };
    assert_eq!(
        &*first.topic,
        "e/lasting",
        "the expired message is not delivered, the other one is (got {first:?}, {:?} after the kill)",
        killed.elapsed()
    );
    drop(broker);
}

#[test]
fn mqtt5_a_delayed_will_found_after_kill_9_waits_its_delay_unless_the_client_returns() {
    let dir = TempDir::new("persist-will-delay");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = store_config(&dir, port, &dir.0.join("store"));
    let broker = start(&config, addr);
    let (mut watcher, _) = Conn::open(addr, "watcher", false).expect("connect");
    subscribe_qos1(&mut watcher, "wills/#");
    watcher.disconnect();
    // Connected until the broker dies.
    let mut held = Vec::new();
    for id in ["late", "back"] {
        let mut will = Will::new(format!("wills/{id}"), "gone", QoS::AtLeastOnce, false);
        will.delay_interval = 2;
        held.push(Conn::open_as(addr, connect_v5(id, true, 60, Some(will))).expect("connect with a will"));
    }
    kill9(broker);
    let restarted = Instant::now();
    let broker = start(&config, addr);
    // `back` returns within its delay: its will must not be published.
    let (_back, present) = Conn::open_as(addr, connect_v5("back", false, 60, None)).expect("reconnect");
    assert!(present);
    let (mut watcher, _) = Conn::open(addr, "watcher", false).expect("reconnect");
    assert_eq!(next_publish(&mut watcher), ("wills/late".into(), "gone".into()));
    assert!(restarted.elapsed() >= Duration::from_millis(1900), "published before its 2 s delay");
    // Nothing else comes: `back`'s will stays unpublished.
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        if let Ok(Some(Packet::Publish(p))) = watcher.recv() {
            panic!("unexpected {} after the client came back", p.topic);
        }
    }
    drop(broker);
}

/// Sets the running process's soft file size limit (RLIMIT_FSIZE) with
/// util-linux `prlimit`, the hard one staying unlimited so it can be raised
/// again: redb's writes past it fail with EFBIG, as on a full disk.
fn file_size_limit(pid: u32, limit: &str) {
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={limit}:unlimited"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

#[test]
fn a_full_disk_holds_acknowledgements_keeps_serving_and_recovers_without_a_restart() {
    const BIG: usize = 64 * 1024;
    const COUNT: u16 = 40;
    let dir = TempDir::new("persist-full");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let store = dir.0.join("store");
    let config = store_config_with(&dir, port, &store, "sys_interval: 1\n");
    let broker = start(&config, addr);
    let (mut keeper, _) = Conn::open(addr, "keeper", false).expect("connect");
    subscribe_qos1(&mut keeper, "big/#");
    keeper.disconnect();
    let (mut sys, _) = Conn::open(addr, "sys-watcher", true).expect("connect");
    subscribe_qos1(&mut sys, "$SYS/broker/store/errors");

    // The file may not grow any more: what needs more room fails.
    let size = std::fs::metadata(store.join("moth.redb")).expect("store file").len();
    file_size_limit(broker.pid, &size.to_string());
    let (mut publisher, _) = Conn::open(addr, "publisher", true).expect("connect");
    for id in 1..=COUNT {
        let p = Publish::new("big/x", Bytes::from(vec![b'b'; BIG]), QoS::AtLeastOnce, false, id);
        publisher.send(&Packet::Publish(p)).expect("publish");
    }
    // Event: the store reports failed commits in $SYS.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no store error reported");
        if let Ok(Some(Packet::Publish(p))) = sys.recv()
            && text(&p.payload) != "0"
        {
            break;
        }
    }
    let mut acked = 0u16;
    while let Ok(Some(p)) = publisher.recv() {
        assert!(matches!(p, Packet::Puback(_)), "{p:?}");
        acked += 1;
    }
    assert!(acked < COUNT, "every PUBACK came although the store cannot hold the messages");
    // Clients that need no store are still served.
    let (mut a, _) = Conn::open(addr, "live-sub", true).expect("a new client connects");
    subscribe_qos1(&mut a, "live/t");
    let (mut b, _) = Conn::open(addr, "live-pub", true).expect("connect");
    b.send(&Packet::Publish(Publish::new("live/t", Bytes::from_static(b"hi"), QoS::AtMostOnce, false, 0)))
        .expect("publish");
    assert_eq!(next_publish(&mut a), ("live/t".into(), "hi".into()));

    // Room again: the retried commit goes through and the PUBACKs follow.
    file_size_limit(broker.pid, "unlimited");
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked < COUNT {
        assert!(Instant::now() < deadline, "only {acked} of {COUNT} PUBACKs after the disk had room again");
        if let Ok(Some(Packet::Puback(_))) = publisher.recv() {
            acked += 1;
        }
    }
    kill9(broker);
    let broker = start(&config, addr);
    let (mut keeper, present) = Conn::open(addr, "keeper", false).expect("reconnect");
    assert!(present);
    for n in 0..COUNT {
        let (topic, body) = next_publish(&mut keeper);
        assert_eq!((topic.as_str(), body.len()), ("big/x", BIG), "message {n}");
    }
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_broker_opens_on_a_store_path_and_finds_its_state_again() {
    let dir = TempDir::new("persist-api");
    // No listener: the application publishes and subscribes in process.
    let mut config = moth::Config::from_yaml_str("sys_interval: 0\n").expect("config");
    config.persistence = Some(moth::PersistenceConfig { path: dir.0.join("store"), sync: moth::SyncMode::Batch });
    let broker = moth::Broker::new(config.clone()).expect("opens the store");
    broker.start().await.expect("starts");
    broker.publish("app/state", "on", QoS::AtLeastOnce, true).expect("publish");
    let figures = broker.snapshot().store.expect("store figures with persistence on");
    assert!(figures.changes >= 1, "{figures:?}");
    // Shutdown commits what is pending; the store is let go with the broker.
    broker.shutdown().await;
    drop(broker);
    let again = moth::Broker::new(config).expect("opens the same store");
    assert_eq!(again.retained_count(), 1, "the retained message is back");
    let mut sub = again.subscribe("app/#", QoS::AtLeastOnce).expect("subscribe");
    let m = sub.try_recv().expect("the retained message, at once");
    assert_eq!((&*m.topic, &m.payload[..]), ("app/state", &b"on"[..]));
}
