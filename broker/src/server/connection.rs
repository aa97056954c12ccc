//! The I/O driver of one client connection.
//!
//! A transport (TCP, TLS, WebSocket or WebSocket over TLS, see
//! `transport.rs`) hands over a byte stream and what it learned about the
//! peer; everything after that is the same code for all of them. The task
//! goes through three phases:
//! - **attach** (`attach`): read CONNECT, authenticate, open the session
//!   (taking it over from an older connection), send CONNACK;
//! - **connected** (`Live::poll_connected`): one loop that reads and decodes
//!   every complete packet and acts on it; moves queued deliveries from the
//!   session into one output buffer, so a busy client gets many packets per
//!   `write` (coalescing); writes that buffer as the socket accepts it,
//!   without ever blocking reads (a client that is itself blocked writing
//!   cannot deadlock us); closes on takeover, keep-alive expiry and broker
//!   shutdown, which all arrive as a wake-up of the session (`signal.rs`)
//!   with the reason in the session or the broker context;
//! - **finish** (`Live::finish`): detach the session, publish the will.
//!
//! Beside this file: `connection/packets.rs` (what each packet from the
//! client does), `connection/close.rs` (why a connection ends, and the MQTT 5
//! DISCONNECT that says so), `connection/will.rs` (the will, delayed or not).
//!
//! The output buffer has a high-water mark: above it, no more deliveries are
//! taken from the session queue, whose own limit then applies. Memory per
//! connection is therefore bounded however slow the client reads.
//!
//! Memory of an idle connection is what limits how many clients one machine
//! holds, so the connected phase is laid out for it: the task's future holds
//! only a pointer to one [`Live`] struct (an `async` loop over `select!`
//! would keep every branch's future, about 2 KB, for the connection's life);
//! the loop is a hand-written `poll`; the attach and finish phases are boxed
//! futures that exist only while they run; an idle client holds no input
//! buffer and no output buffer (`bench/src/bin/connheap.rs` prints what an
//! idle connection costs, allocation by allocation).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use moth_plugin_api::TopicAction;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{Instrument, debug};

use super::handshake;
use super::topic_alias::{AliasError, TopicAliases};

mod close;
mod packets;
mod reauth;
mod will;

use crate::access::topic_request;
use crate::codec::{self, DecodeError};
use crate::message::Message;
use crate::packet::{
    Ack, Connack, Connect, ConnectReturnCode, Disconnect, Packet, Protocol, Publish, QoS, ReasonCode, RetainHandling,
    Suback, SubackCode, Subscribe, Unsuback, Unsubscribe,
};
use crate::session::inflight::AckResult;
use crate::session::state::{Delivery, Session};
use crate::session::store::{Expiry, SessionHandle, SlotHeld};
use crate::session::subscription::Grant;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::stats::{Pending, bump};
use crate::store::batch::Change;
use crate::store::journal;
use crate::transport::ByteStream;
use close::Close;
use will::{delay_will, publish_will, will_delay};

/// How long a new connection may take to send its CONNECT. A socket that
/// sends nothing must not hold a connection slot forever.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a taking-over connection waits for the old one to let go.
pub(super) const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Above this many buffered output bytes, deliveries stay in the session queue.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// Above this many buffered output bytes, the client's input is not read.
const OUT_READ_LIMIT: usize = 4 * OUT_HIGH_WATER;
const READ_CHUNK: usize = 8 * 1024;
/// Reads (and writes) smaller than this that leave nothing behind release
/// their buffer: an idle client (a PINGREQ now and then) then holds no
/// buffer at all, which is most of what an idle connection would otherwise
/// cost. Such a client's reads go through a stack buffer of this size.
const SMALL_READ: usize = 1024;
/// At most this much input is read ahead of CONNACK while the plugins decide.
pub(super) const AUTH_READ_AHEAD: usize = 64 * 1024;
/// Events handled in one poll before the task yields to the others on its
/// worker thread, so one busy client cannot monopolise it.
const EVENTS_PER_POLL: usize = 32;

/// `packet` without the reason string and user properties it may drop to
/// fit the client's maximum packet size; `None` when it has none to drop.
fn without_diagnostics(packet: &Packet) -> Option<Packet> {
    let mut p = packet.clone();
    match &mut p {
        Packet::Connack(c) => {
            c.properties.reason_string = None;
            c.properties.user_properties.clear();
        }
        Packet::Suback(s) => {
            s.reason_string = None;
            s.user_properties.clear();
        }
        Packet::Unsuback(u) => {
            u.reason_string = None;
            u.user_properties.clear();
        }
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
            a.reason_string = None;
            a.user_properties.clear();
        }
        Packet::Disconnect(d) => {
            d.reason_string = None;
            d.user_properties.clear();
        }
        _ => return None,
    }
    Some(p)
}

/// What the transport learned about the connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The listener's name (its key in `listeners`).
    pub listener: Arc<str>,
    /// Subject CN of the client certificate verified by the TLS handshake.
    pub tls_identity: Option<Arc<str>>,
    /// That certificate itself (DER), for plugins.
    pub tls_certificate: Option<Arc<[u8]>>,
    /// The listener's `use_identity_as_username`: the user name is
    /// `tls_identity`, whatever CONNECT says, and a client without one is refused.
    pub identity_as_username: bool,
}

/// Everything a connection starts with, handed over in one box so that the
/// connection's task holds a pointer, not the values.
pub(crate) struct Start {
    pub ctx: Arc<Shared>,
    pub stream: Box<dyn ByteStream>,
    pub info: ConnInfo,
    pub hold: Hold,
}

/// Held for the connection's whole life and released when it ends.
pub(crate) struct Hold {
    /// The listener's `max-connections` slot, if it has a limit; held for
    /// its drop, which frees the slot.
    pub _permit: Option<OwnedSemaphorePermit>,
    /// Broker shutdown, watched until the session is attached; after that
    /// the connection sees `Shared::stopping` when its session wakes it.
    /// Dropped when the task ends: how `Broker::shutdown` knows all are gone.
    pub shutdown: Shutdown,
}

/// Serves one connection to its end. Never panics on client input; every
/// way out is logged with its reason.
pub(crate) async fn serve(start: Box<Start>) {
    let Some(mut live) = Box::pin(attach(start)).await else { return };
    let close = std::future::poll_fn(|cx| live.poll_connected(cx)).await;
    Box::pin(live.finish(close)).await;
}

/// The size of one connection's `serve` future, which sizes its task for
/// the connection's whole life (printed by the `connheap` profiler).
pub fn serve_future_size() -> usize {
    fn returned<A, F>(_: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    returned(serve)
}

/// Sizes of what every connected client holds, for the `connheap` profiler.
pub fn state_sizes() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    vec![
        ("connection (Live)", size_of::<Live>()),
        ("  of which Io", size_of::<Io>()),
        ("  of which Client", size_of::<Client>()),
        ("  of which span", size_of::<tracing::Span>()),
        ("session handle", size_of::<SessionHandle>()),
        ("  of which Session", size_of::<Session>()),
    ]
}

/// The byte stream and its buffers.
pub(super) struct Io {
    pub(super) stream: Box<dyn ByteStream>,
    pub(super) inbuf: BytesMut,
    pub(super) outbuf: BytesMut,
    /// Counts not yet added to the broker's stats; flushed after each socket
    /// read and write, so a packet costs a plain integer increment.
    pub(super) pending: Pending,
    /// The client's protocol version, from its CONNECT (3.1.1 until then).
    pub(super) protocol: Protocol,
    /// The largest packet the client accepts (MQTT 5 maximum packet size).
    pub(super) max_out: usize,
    /// Set when a packet other than a PUBLISH was larger than `max_out`
    /// and not sent: the connection ends with 0x95 (packet too large).
    pub(super) oversized: bool,
}

impl Io {
    pub(super) fn new(stream: Box<dyn ByteStream>) -> Io {
        Io {
            stream,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            pending: Pending::default(),
            protocol: Protocol::V311,
            max_out: usize::MAX,
            oversized: false,
        }
    }

    /// Encodes a packet for the client, in its version, and counts it.
    /// Never one larger than the client's maximum packet size
    /// [MQTT-3.1.2-24]: such a packet is sent again without its reason
    /// string and user properties, which may go [MQTT-3.1.2-25]; if it is
    /// still too large it is not sent and `oversized` is set.
    pub(super) fn emit(&mut self, packet: &Packet) {
        let start = self.outbuf.len();
        codec::encode(packet, self.protocol, &mut self.outbuf);
        if self.outbuf.len() - start > self.max_out {
            self.outbuf.truncate(start);
            if let Some(lean) = without_diagnostics(packet) {
                codec::encode(&lean, self.protocol, &mut self.outbuf);
            }
            if self.outbuf.len() - start > self.max_out || self.outbuf.len() == start {
                self.outbuf.truncate(start);
                self.oversized = true;
                return;
            }
        }
        bump(&mut self.pending.packets_sent, 1);
    }

    /// Reads the first packet, which must be CONNECT [MQTT-3.1.0-1].
    /// `Ok(None)` when the connection ended and nothing more is to be done.
    pub(super) async fn read_first_packet(
        &mut self,
        info: &ConnInfo,
        max_packet_size: usize,
    ) -> Result<Option<Connect>, String> {
        loop {
            // Read before decoding, which consumes the packet: an MQTT 5
            // client is told why its CONNECT is refused [MQTT-4.13.1-1].
            let announced = codec::connect_protocol(&self.inbuf);
            match codec::decode(&mut self.inbuf, max_packet_size, Protocol::V311) {
                Ok(Some(Packet::Connect(c))) => {
                    bump(&mut self.pending.packets_received, 1);
                    self.protocol = c.protocol;
                    return Ok(Some(*c));
                }
                Ok(Some(other)) => return Err(format!("first packet is {} [MQTT-3.1.0-1]", other.name())),
                Ok(None) => {}
                Err(e) if e.is_unsupported_protocol_level() => {
                    // [MQTT-3.1.2-2]: answer 0x01, then close.
                    conn_log!(info, info, "connection refused: {e}");
                    self.refuse(ConnectReturnCode::UnacceptableProtocolVersion).await;
                    return Ok(None);
                }
                Err(e) if announced == Some(Protocol::V5) => {
                    conn_log!(info, info, "connection refused: malformed CONNECT: {e}");
                    self.protocol = Protocol::V5;
                    let code = ConnectReturnCode::from_v5(e.reason_code().0);
                    self.refuse(code.unwrap_or(ConnectReturnCode::MalformedPacket)).await;
                    return Ok(None);
                }
                Err(e) => return Err(format!("malformed CONNECT: {e}")),
            }
            self.inbuf.reserve(SMALL_READ);
            match self.stream.read_buf(&mut self.inbuf).await {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => bump(&mut self.pending.bytes_received, n),
                Err(e) => return Err(format!("i/o error: {e}")),
            }
        }
    }

    /// Sends a refusing CONNACK and closes [MQTT-3.2.2-5].
    pub(super) async fn refuse(&mut self, code: ConnectReturnCode) {
        self.outbuf.clear();
        self.emit(&Packet::Connack(Box::new(Connack::new(false, code))));
        let written = tokio::time::timeout(Duration::from_secs(1), async {
            self.stream.write_all(&self.outbuf).await?;
            self.stream.shutdown().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            bump(&mut self.pending.bytes_sent, self.outbuf.len());
        }
    }
}

/// A connected client: everything the connected phase needs, in one box.
struct Live {
    io: Io,
    ctx: Arc<Shared>,
    client: Client,
    /// Written bytes that may sit in a TLS or WebSocket layer until flushed.
    unflushed: bool,
    /// With persistence: the journal number the output waits for, 0 when it
    /// waits for nothing. What this connection recorded (a message it
    /// published, a subscription, a QoS 2 step) is confirmed by bytes in
    /// the output buffer, which stay there until the journal says the
    /// change is on disk (`store/journal.rs`).
    durable_wait: u64,
    conn_id: u64,
    /// How long the session outlives this connection.
    expiry: Expiry,
    /// The session's slot (see `session/store.rs`), held while attached.
    slot: SlotHeld,
    hold: Hold,
    /// A debug span, kept only when debug logging was on at connect: at info
    /// level a span per connection would cost its registry entry (about 450
    /// bytes) for every idle client, so the info events name the listener
    /// and peer themselves (`conn_log!`).
    span: Option<Box<tracing::Span>>,
}

/// The state of a connected client that the packet handlers need.
pub(super) struct Client {
    pub(super) session: Arc<SessionHandle>,
    pub(super) username: Option<Box<str>>,
    pub(super) listener: Arc<str>,
    pub(super) peer: SocketAddr,
    pub(super) will: Option<Box<Message>>,
    /// MQTT 5's per-connection state; `None` for 3.1.1 and 3.1, whose idle
    /// clients then pay one pointer for it.
    pub(super) v5: Option<Box<V5Client>>,
}

/// What an MQTT 5 connection keeps besides a 3.1.1 one.
pub(super) struct V5Client {
    pub(super) aliases: TopicAliases,
    /// The CONNECT's session expiry interval was 0: a DISCONNECT may not
    /// raise it [MQTT-3.14.2-2].
    pub(super) expiry_was_zero: bool,
    /// The will's delay interval, in seconds (0: published at once).
    pub(super) will_delay: u32,
    /// The enhanced authentication method of the CONNECT, which every
    /// re-authentication must use; `None`: the client cannot re-authenticate.
    pub(super) auth_method: Option<Box<str>>,
    /// A re-authentication under way (`connection/reauth.rs`).
    pub(super) reauth: Option<Box<reauth::Reauth>>,
}

impl Client {
    fn client_id(&self) -> &str {
        self.session.client_id()
    }
}

/// The attach phase: CONNECT, authentication, session, CONNACK. `None` when
/// the connection ended in it (refused, closed, shutdown); it is logged.
async fn attach(start: Box<Start>) -> Option<Box<Live>> {
    let Start { ctx, stream, info, mut hold } = *start;
    let span = tracing::debug_span!("conn", listener = %info.listener, peer = %info.peer);
    let mut io = Io::new(stream);
    let attached =
        handshake::connect_and_attach(&ctx, &mut io, &info, &mut hold.shutdown).instrument(span.clone()).await;
    let Some(a) = attached else {
        io.pending.flush(&ctx.stats);
        return None;
    };
    let mut live = Box::new(Live {
        io,
        ctx,
        client: a.client,
        unflushed: false,
        durable_wait: 0,
        conn_id: a.conn_id,
        expiry: a.expiry,
        slot: a.slot,
        hold,
        span: (!span.is_disabled()).then(|| Box::new(span)),
    });
    // The CONNACK waits for the session's record, if it made one.
    if a.recorded {
        live.wait_for_journal();
    }
    if live.io.oversized {
        let why = "the client's maximum packet size is too small for the CONNACK";
        Box::pin(live.finish(Close::Protocol(ReasonCode::PACKET_TOO_LARGE, why.into()))).await;
        return None;
    }
    // Packets already buffered behind the CONNECT.
    if let Err(close) = live.process_input() {
        Box::pin(live.finish(close)).await;
        return None;
    }
    live.size_inbuf(0);
    Some(live)
}

/// What the attach phase produced besides the I/O.
pub(super) struct Attached {
    pub(super) client: Client,
    pub(super) conn_id: u64,
    pub(super) expiry: Expiry,
    pub(super) slot: SlotHeld,
    /// The attach recorded changes its CONNACK confirms (persistence on).
    pub(super) recorded: bool,
}

impl Live {
    /// The connected phase: one poll handles whatever is ready (a kick,
    /// input, room to write, queued deliveries, the keep-alive deadline)
    /// until nothing is, each source having registered the task's waker, or
    /// until the connection ends.
    fn poll_connected(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Close> {
        let span = self.span.as_deref().cloned();
        let _entered = span.as_ref().map(tracing::Span::enter);
        for _ in 0..EVENTS_PER_POLL {
            match self.poll_once(cx) {
                Poll::Ready(Some(close)) => return Poll::Ready(close),
                Poll::Ready(None) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Busy: let the other tasks on this thread run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One pass over every event source. `Ready(Some)`: the connection ends;
    /// `Ready(None)`: something happened, look again; `Pending`: nothing is
    /// ready and every source that can wake us is registered.
    fn poll_once(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Close>> {
        let mut progressed = false;
        // Registered first, so that a takeover, an expiry or a shutdown
        // flagged after the checks below still wakes this task.
        let woken = self.client.session.wake.poll(cx).is_ready();
        if let Some(close) = self.closing() {
            return Poll::Ready(Some(close));
        }
        // Back-pressure: a client that does not read its acknowledgements is
        // not read from either, so its output cannot grow without bound.
        if self.io.outbuf.len() < OUT_READ_LIMIT {
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Close::PeerClosed)),
                Poll::Ready(Ok(n)) => {
                    bump(&mut self.io.pending.bytes_received, n);
                    self.client.session.liveness.touch();
                    let handled = self.process_input();
                    self.io.pending.flush(&self.ctx.stats);
                    if let Err(close) = handled {
                        return Poll::Ready(Some(close));
                    }
                    self.size_inbuf(n);
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Close::Io(e))),
                Poll::Pending => {}
            }
        }
        match self.poll_reauth(cx) {
            Poll::Ready(Err(close)) => return Poll::Ready(Some(close)),
            Poll::Ready(Ok(())) => progressed = true,
            Poll::Pending => {}
        }
        if self.durable_wait != 0
            && let Some(j) = &self.ctx.journal
            && j.poll_durable(self.durable_wait, cx).is_ready()
        {
            self.durable_wait = 0;
        }
        if !self.io.outbuf.is_empty() && self.durable_wait == 0 {
            match Pin::new(&mut *self.io.stream).poll_write(cx, &self.io.outbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Close::Io(std::io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => {
                    self.io.outbuf.advance(n);
                    bump(&mut self.io.pending.bytes_sent, n);
                    self.io.pending.flush(&self.ctx.stats);
                    self.unflushed = true;
                    if self.io.outbuf.is_empty() {
                        // Take more right away rather than wait for the next wake-up.
                        self.drain();
                        if self.io.outbuf.is_empty() && n < SMALL_READ {
                            // A quiet client's last small write: hold no buffer.
                            self.io.outbuf = BytesMut::new();
                        }
                    }
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Close::Io(e))),
                Poll::Pending => {}
            }
        }
        if self.io.outbuf.is_empty() && self.unflushed {
            match Pin::new(&mut *self.io.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Close::Io(e))),
                Poll::Pending => {}
            }
        }
        if woken {
            // Above the high-water mark the queue is left alone: the write
            // that empties the buffer drains it. Either way another pass
            // follows, whose poll registers for the next wake-up (a ready
            // poll consumed the signal without registering).
            if self.io.outbuf.len() < OUT_HIGH_WATER {
                self.drain();
            }
            progressed = true;
        }
        if progressed { Poll::Ready(None) } else { Poll::Pending }
    }

    /// Why the connection must close, if someone else decided it must.
    fn closing(&self) -> Option<Close> {
        let session = &self.client.session;
        if self.ctx.stopping() {
            Some(Close::Shutdown)
        } else if session.owner() != self.conn_id {
            Some(Close::TakenOver)
        } else if session.liveness.expired() {
            Some(Close::KeepAlive)
        } else {
            None
        }
    }

    /// Reads what the client sent into the input buffer. A quiet client has
    /// no input buffer: its read goes through a stack buffer and only what
    /// arrived is kept.
    fn poll_read(&mut self, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<usize>> {
        let stream = Pin::new(&mut *self.io.stream);
        if self.io.inbuf.capacity() == 0 {
            let mut stack = [0u8; SMALL_READ];
            let mut buf = ReadBuf::new(&mut stack);
            return match stream.poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    self.io.inbuf.extend_from_slice(buf.filled());
                    Poll::Ready(Ok(buf.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        let read = self.io.stream.read_buf(&mut self.io.inbuf);
        tokio::pin!(read);
        read.poll(cx)
    }

    /// The finish phase: what is already encoded goes out (best effort), the
    /// session is detached (or removed, for a clean session), the will is
    /// published unless the client said DISCONNECT.
    async fn finish(self: Box<Self>, close: Close) {
        let Live { mut io, ctx, mut client, conn_id, expiry, slot, hold, span, durable_wait, .. } = *self;
        async move {
            // What the output confirms must be on disk before it goes.
            let durable = match (&ctx.journal, durable_wait) {
                (Some(j), wait) if wait != 0 => {
                    tokio::time::timeout(Duration::from_secs(1), j.durable(wait)).await.is_ok()
                }
                _ => true,
            };
            // Never larger than the client allows: `emit` drops the reason
            // string if it does not fit [MQTT-3.1.2-24].
            if io.protocol.is_v5()
                && let Some(d) = close.disconnect()
            {
                io.emit(&Packet::Disconnect(d));
            }
            // A final PUBACK, say.
            if durable && !matches!(close, Close::Io(_) | Close::PeerClosed) && !io.outbuf.is_empty() {
                let written = tokio::time::timeout(Duration::from_secs(1), io.stream.write_all(&io.outbuf)).await;
                if matches!(written, Ok(Ok(()))) {
                    bump(&mut io.pending.bytes_sent, io.outbuf.len());
                }
            }
            io.pending.flush(&ctx.stats);

            let session = &client.session;
            session.liveness.disarm();
            session.lock().detach();
            let delay = will_delay(client.v5.as_deref().map_or(0, |v5| v5.will_delay), expiry);
            let will_waits = close.sends_will() && client.will.is_some() && !delay.is_zero();
            if let Some(j) = &ctx.journal
                && session.opened_by() == conn_id
                && !will_waits
            {
                // Settled now (published below, or not at all); before the
                // session is let go, so a newer connection's will, recorded
                // after, is not the one cleared.
                j.record_quietly(Change::Will(session.client_id_arc(), None));
            }
            // The client is gone for good or for a while: its unfinished
            // shared-subscription messages go to a member that is here.
            if !matches!(close, Close::TakenOver | Close::Shutdown) {
                let moved = ctx.router.redispatch(session);
                if moved > 0 {
                    debug!(client_id = %client.client_id(), moved, "shared subscription messages handed to other members");
                }
            }
            if ctx.sessions.close(session.client_id(), conn_id, expiry) {
                let filters: Vec<String> = session.lock().subscriptions().keys().cloned().collect();
                ctx.router.unsubscribe_all(session.id(), filters.iter().map(String::as_str));
            }
            // Closed only now: a client that sees the end of the stream
            // knows its session is detached, and what is published next is
            // queued for it, never half sent to a connection going away.
            let _ = tokio::time::timeout(Duration::from_secs(1), io.stream.shutdown()).await;
            drop(slot);
            ctx.stats.client_disconnected(&ctx.stats.listener(&client.listener), io.protocol);
            conn_log!(info, client, client_id = %client.client_id(), "client disconnected: {close}");
            if close.sends_will()
                && let Some(will) = client.will.take()
            {
                if delay.is_zero() {
                    publish_will(&ctx, &client, *will);
                } else {
                    delay_will(ctx.clone(), client, *will, delay, conn_id, hold.shutdown.clone());
                }
            }
            drop(hold);
        }
        .instrument(span.map_or_else(tracing::Span::none, |s| *s))
        .await
    }

    /// Moves queued deliveries into the output buffer, counting them.
    fn drain(&mut self) {
        let mark = journal::mark();
        let who = self.client.who();
        let n = drain(&self.ctx, &mut self.client.session.lock(), &mut self.io.outbuf, &who);
        bump(&mut self.io.pending.packets_sent, n);
        bump(&mut self.io.pending.publish_sent, n);
        // A stored QoS 2 PUBLISH goes out once its packet id is on disk.
        self.note_changes(mark);
    }

    /// After work that may have recorded changes a confirmation waits for
    /// (this thread's [`journal::mark`] moved since `mark`): the output
    /// waits until everything recorded so far is durable.
    fn note_changes(&mut self, mark: u64) {
        if journal::mark() != mark {
            self.wait_for_journal();
        }
    }

    /// The output waits until everything recorded so far is durable.
    fn wait_for_journal(&mut self) {
        if let Some(j) = self.ctx.journal.as_deref().filter(|j| j.waits()) {
            self.durable_wait = j.recorded();
        }
    }

    /// Releases the input buffer of a quiet client, or makes room for the
    /// next read of a busy one.
    fn size_inbuf(&mut self, last_read: usize) {
        let inbuf = &mut self.io.inbuf;
        if inbuf.is_empty() && last_read < SMALL_READ {
            *inbuf = BytesMut::new();
        } else if inbuf.capacity() - inbuf.len() < READ_CHUNK / 2 {
            inbuf.reserve(READ_CHUNK);
        }
    }

    /// Decodes and handles every complete packet in the input buffer.
    fn process_input(&mut self) -> Result<(), Close> {
        let mark = journal::mark();
        let handled = self.handle_input();
        self.note_changes(mark);
        handled
    }

    fn handle_input(&mut self) -> Result<(), Close> {
        let mut handled = false;
        loop {
            let max = self.ctx.config.limits.max_packet_size;
            let packet = match codec::decode(&mut self.io.inbuf, max, self.io.protocol) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(protocol_error(&e)),
            };
            handled = true;
            bump(&mut self.io.pending.packets_received, 1);
            self.handle(packet)?;
            if self.io.oversized {
                let why = "an answer would be larger than the client's maximum packet size [MQTT-3.1.2-24]";
                return Err(Close::Protocol(ReasonCode::PACKET_TOO_LARGE, why.into()));
            }
        }
        if handled && self.io.outbuf.len() < OUT_HIGH_WATER {
            // Acknowledgements may have opened the in-flight window.
            self.drain();
        }
        Ok(())
    }
}

/// The client a delivery check is about.
pub(super) struct Who<'a> {
    pub(super) client_id: &'a str,
    pub(super) username: Option<&'a str>,
    pub(super) listener: &'a str,
}

impl Client {
    fn who(&self) -> Who<'_> {
        Who { client_id: self.client_id(), username: self.username.as_deref(), listener: &self.listener }
    }
}

/// Moves queued deliveries into the output buffer, asking the topic plugins
/// that want delivery checks (none, usually: then this is the plain drain).
pub(super) fn drain(ctx: &Shared, state: &mut Session, out: &mut BytesMut, who: &Who<'_>) -> usize {
    if !ctx.access.checks_receive() {
        return state.drain_into(out, OUT_HIGH_WATER);
    }
    state.drain_into_checked(out, OUT_HIGH_WATER, &mut |m| {
        ctx.access.check_receive(&topic_request(
            who.client_id,
            who.username,
            who.listener,
            TopicAction::RECEIVE,
            &m.topic,
        ))
    })
}

fn protocol_error(e: &DecodeError) -> Close {
    Close::Protocol(e.reason_code(), e.to_string())
}

#[cfg(test)]
mod tests {
    //! The connected phase's packet handlers without a socket: a client is
    //! attached through an in-memory stream, packets are handed to
    //! `Live::handle`, and what it queued for the client is decoded from
    //! the output buffer.

    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::packet::{ConnectProperties, MessageProperties, SubscribeFilter, Will};
    use crate::server::test_support::{info, shared};
    use crate::shutdown::Stopper;

    fn connect(protocol: Protocol, client_id: &str) -> Connect {
        Connect {
            protocol,
            clean_session: true,
            keep_alive: 0,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    /// A connected client; the stream's other end and the stopper are kept
    /// alive with it.
    struct Attached {
        live: Box<Live>,
        _client: DuplexStream,
        _stopper: Stopper,
    }

    async fn attached(ctx: &Arc<Shared>, c: Connect) -> Attached {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut bytes = BytesMut::new();
        codec::encode(&Packet::Connect(Box::new(c.clone())), c.protocol, &mut bytes);
        client.write_all(&bytes).await.expect("write CONNECT");
        let stopper = Stopper::new();
        let hold = Hold { _permit: None, shutdown: stopper.shutdown() };
        let start = Box::new(Start { ctx: ctx.clone(), stream: Box::new(server), info: info(false), hold });
        let mut live = attach(start).await.expect("attached");
        let first = sent(&mut live);
        assert!(matches!(first.first(), Some(Packet::Connack(a)) if a.code.is_accepted()), "{first:?}");
        Attached { live, _client: client, _stopper: stopper }
    }

    /// The packets queued for the client since the last call.
    fn sent(live: &mut Live) -> Vec<Packet> {
        let mut packets = Vec::new();
        while let Ok(Some(p)) = codec::decode(&mut live.io.outbuf, usize::MAX, live.io.protocol) {
            packets.push(p);
        }
        packets
    }

    fn subscribe(filter: &str, qos: QoS) -> Packet {
        Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new(filter, qos)]))
    }

    fn publish(topic: &str, qos: QoS, packet_id: u16) -> Packet {
        Packet::Publish(Publish::new(topic, "x", qos, false, packet_id))
    }

    #[tokio::test]
    async fn publish_acknowledgements_carry_mqtt5_reasons() {
        let ctx = shared();
        let mut a = attached(&ctx, connect(Protocol::V5, "p5")).await;
        let live = &mut a.live;
        live.handle(subscribe("t", QoS::AtLeastOnce)).expect("subscribe");
        assert!(matches!(&sent(live)[..], [Packet::Suback(s)] if s.codes == [SubackCode::Granted(QoS::AtLeastOnce)]));
        live.handle(publish("t", QoS::AtLeastOnce, 3)).expect("publish");
        assert_eq!(sent(live), [Packet::Puback(Ack::new(3))]);
        live.handle(publish("nobody", QoS::AtLeastOnce, 4)).expect("publish");
        assert_eq!(sent(live), [Packet::Puback(Ack::with_reason(4, ReasonCode::NO_MATCHING_SUBSCRIBERS))]);
        live.handle(publish("$SYS/x", QoS::ExactlyOnce, 5)).expect("publish");
        assert_eq!(sent(live), [Packet::Pubrec(Ack::with_reason(5, ReasonCode::NOT_AUTHORIZED))]);
        // Its flow ended at the failure PUBREC: no id awaits a PUBREL.
        live.handle(Packet::Pubrel(Ack::new(5))).expect("pubrel");
        assert_eq!(sent(live), [Packet::Pubcomp(Ack::with_reason(5, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND))]);
        // A bad UTF-8 promise.
        let mut p = Publish::new("t", &b"\xff"[..], QoS::AtLeastOnce, false, 6);
        p.properties = Some(Arc::new(MessageProperties { payload_format_indicator: Some(1), ..Default::default() }));
        live.handle(Packet::Publish(p)).expect("publish");
        assert_eq!(sent(live), [Packet::Puback(Ack::with_reason(6, ReasonCode::PAYLOAD_FORMAT_INVALID))]);
    }

    #[tokio::test]
    async fn a_3_1_1_refused_publish_is_still_acknowledged_and_its_qos2_flow_kept() {
        let ctx = shared();
        let mut a = attached(&ctx, connect(Protocol::V311, "p3")).await;
        let live = &mut a.live;
        live.handle(publish("$SYS/x", QoS::ExactlyOnce, 7)).expect("publish");
        // The encoder leaves the reason out: a plain PUBREC.
        let mut out = BytesMut::new();
        codec::encode(&Packet::Pubrec(Ack::new(7)), Protocol::V311, &mut out);
        assert_eq!(&live.io.outbuf[..], &out[..]);
        sent(live);
        live.handle(Packet::Pubrel(Ack::new(7))).expect("pubrel");
        assert_eq!(sent(live), [Packet::Pubcomp(Ack::new(7))]);
    }

    #[tokio::test]
    async fn an_acknowledgement_of_the_wrong_type_closes_the_connection() {
        let ctx = shared();
        let mut a = attached(&ctx, connect(Protocol::V311, "acks")).await;
        let live = &mut a.live;
        live.handle(subscribe("d", QoS::AtLeastOnce)).expect("subscribe");
        sent(live);
        ctx.router.publish(Arc::new(Message::new("d", "x", QoS::AtLeastOnce, false)));
        live.drain();
        let Some(Packet::Publish(p)) = sent(live).into_iter().next() else { panic!("a QoS 1 delivery") };
        // An unknown id is harmless; a PUBREC for this QoS 1 flow is not.
        assert!(live.handle(Packet::Puback(Ack::new(p.packet_id.wrapping_add(1)))).is_ok());
        let close = live.handle(Packet::Pubrec(Ack::new(p.packet_id)));
        assert!(matches!(close, Err(Close::Protocol(ReasonCode::PROTOCOL_ERROR, _))), "{close:?}");
    }

    #[tokio::test]
    async fn disconnect_0x04_keeps_the_will_and_a_normal_one_drops_it() {
        let ctx = shared();
        let with_will =
            Connect { will: Some(Will::new("w", "gone", QoS::AtMostOnce, false)), ..connect(Protocol::V5, "leaver") };
        let mut a = attached(&ctx, with_will.clone()).await;
        let close = a.live.handle(Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL)));
        assert!(matches!(close, Err(Close::Disconnect(true))), "{close:?}");
        assert!(a.live.client.will.is_some());
        // Another client id: the first connection still holds its session.
        let mut b = attached(&ctx, Connect { client_id: "stayer".into(), ..with_will }).await;
        let close = b.live.handle(Packet::Disconnect(Disconnect::default()));
        assert!(matches!(close, Err(Close::Disconnect(false))), "{close:?}");
        assert!(b.live.client.will.is_none(), "no will after a normal DISCONNECT [MQTT-3.14.4-3]");
    }

    #[tokio::test]
    async fn what_a_client_may_not_send_closes_its_connection() {
        let ctx = shared();
        let mut a = attached(&ctx, connect(Protocol::V5, "rude")).await;
        let live = &mut a.live;
        let mut with_id = Publish::new("t", "x", QoS::AtMostOnce, false, 0);
        with_id.subscription_ids = vec![1];
        for packet in [
            Packet::Publish(with_id),
            Packet::Pingresp,
            Packet::Auth(crate::packet::Auth::default()),
            Packet::Connect(Box::new(connect(Protocol::V5, "rude"))),
        ] {
            let name = packet.name();
            let close = live.handle(packet);
            assert!(matches!(close, Err(Close::Protocol(ReasonCode::PROTOCOL_ERROR, _))), "{name}: {close:?}");
        }
        let mut aliased = Publish::new("t", "x", QoS::AtMostOnce, false, 0);
        aliased.topic_alias = Some(u16::MAX);
        let close = live.handle(Packet::Publish(aliased));
        assert!(matches!(close, Err(Close::Protocol(ReasonCode::TOPIC_ALIAS_INVALID, _))), "{close:?}");
    }

    #[tokio::test]
    async fn repeated_filters_do_not_multiply_retained_messages() {
        let ctx = shared();
        for i in 0..5 {
            ctx.router.publish(Arc::new(Message::new(format!("r/{i}"), "kept", QoS::AtMostOnce, true)));
        }
        let mut a = attached(&ctx, connect(Protocol::V311, "repeater")).await;
        let live = &mut a.live;
        // The same filter three times in one SUBSCRIBE: one set of retained.
        let three = vec![SubscribeFilter::new("r/#", QoS::AtMostOnce); 3];
        live.handle(Packet::Subscribe(Subscribe::new(1, three))).expect("subscribe");
        assert!(matches!(&sent(live)[..], [Packet::Suback(s)] if s.codes.len() == 3), "one code per filter");
        assert_eq!(live.client.session.lock().queued(), 5);
        // SUBSCRIBE again and again without reading: the queue stops at
        // max-queued-messages plus the retained store.
        let room = ctx.config.limits.max_queued_messages + 5;
        for _ in 0..(room / 5 + 10) {
            live.handle(subscribe("r/#", QoS::AtMostOnce)).expect("subscribe");
        }
        assert_eq!(live.client.session.lock().queued(), room);
    }

    #[test]
    fn why_the_server_closes_becomes_an_mqtt5_disconnect_reason() {
        let reason = |c: Close| c.disconnect().map(|d| d.reason);
        assert_eq!(reason(Close::TakenOver), Some(ReasonCode::SESSION_TAKEN_OVER));
        assert_eq!(reason(Close::KeepAlive), Some(ReasonCode::KEEP_ALIVE_TIMEOUT));
        assert_eq!(reason(Close::Shutdown), Some(ReasonCode::SERVER_SHUTTING_DOWN));
        assert_eq!(
            reason(Close::Protocol(ReasonCode::PACKET_TOO_LARGE, "big".into())),
            Some(ReasonCode::PACKET_TOO_LARGE)
        );
        assert_eq!(reason(Close::Disconnect(false)), None, "the client ended it");
        assert_eq!(reason(Close::PeerClosed), None);
        assert!(Close::KeepAlive.sends_will() && Close::Disconnect(true).sends_will());
        assert!(!Close::Shutdown.sends_will() && !Close::Disconnect(false).sends_will());
        let long = Close::protocol("x".repeat(500)).disconnect().and_then(|d| d.reason_string).unwrap_or_default();
        assert_eq!(long.len(), 120, "reason strings stay short");
    }

    #[test]
    fn a_will_waits_at_most_as_long_as_its_session() {
        use super::will::will_delay;
        let s = Duration::from_secs;
        assert_eq!(will_delay(30, Expiry::Never), s(30));
        assert_eq!(will_delay(30, Expiry::After(s(10))), s(10));
        assert_eq!(will_delay(30, Expiry::AtClose), Duration::ZERO);
        assert_eq!(will_delay(0, Expiry::Never), Duration::ZERO);
    }

    /// The session state machine under random packet sequences (issue 12,
    /// "fuzz the session state machine"): two clients, one publishing and
    /// one subscribing, each sent a few hundred random packets (PUBLISH at
    /// every QoS with colliding packet ids and DUP, every acknowledgement
    /// with right and wrong ids, SUBSCRIBE and UNSUBSCRIBE of random
    /// filters, PINGREQ), for many seeds and both protocol versions. Every
    /// step must end in an answer or a clean close (never a panic), what is
    /// written must decode, and the session's bounds must hold.
    #[tokio::test]
    async fn random_packet_sequences_keep_the_session_within_its_bounds() {
        use crate::testing::rng::{Rng, random_filter, random_topic};
        let ctx = shared();
        let limits = &ctx.config.limits;
        let (max_inflight, receive_maximum) = (usize::from(limits.max_inflight), usize::from(limits.receive_maximum));
        let mut closes = 0u32;
        for seed in 1..=120u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let protocol = if seed % 2 == 0 { Protocol::V5 } else { Protocol::V311 };
            let mut clients = Vec::new();
            for name in ["rs-pub", "rs-sub"] {
                let mut c = connect(protocol, &format!("{name}-{seed}"));
                c.clean_session = rng.below(2) == 0;
                clients.push(Some(attached(&ctx, c).await));
            }
            for step in 0..300 {
                let who = rng.below(2);
                let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][rng.below(3)];
                let id = 1 + rng.below(8) as u16;
                let packet = match rng.below(10) {
                    0..=3 => {
                        let mut p = Publish::new(random_topic(&mut rng), "x", qos, rng.below(8) == 0, 0);
                        if qos != QoS::AtMostOnce {
                            p.packet_id = id;
                            p.dup = rng.below(3) == 0;
                        }
                        Packet::Publish(p)
                    }
                    4 => Packet::Puback(Ack::new(id)),
                    5 => Packet::Pubrec(Ack::new(id)),
                    6 => Packet::Pubrel(Ack::new(id)),
                    7 => Packet::Pubcomp(Ack::new(id)),
                    8 => {
                        let f = random_filter(&mut rng);
                        if rng.below(4) == 0 {
                            Packet::Unsubscribe(Unsubscribe::new(id, vec![f]))
                        } else {
                            Packet::Subscribe(Subscribe::new(id, vec![SubscribeFilter::new(f, qos)]))
                        }
                    }
                    _ => Packet::Pingreq,
                };
                let Some(client) = clients[who].as_mut() else { unreachable!("reconnected below") };
                let live = &mut client.live;
                let ended = live.handle(packet).is_err();
                live.drain();
                // Everything written decodes, whole.
                let out = sent(live);
                assert!(live.io.outbuf.is_empty(), "seed {seed} step {step}: undecodable bytes after {out:?}");
                {
                    let state = live.client.session.lock();
                    let inflight = state.inflight();
                    assert!(inflight.outbound_len() <= max_inflight, "seed {seed} step {step}: in-flight window");
                    assert!(
                        inflight.inbound_len() <= receive_maximum.max(8),
                        "seed {seed} step {step}: inbound QoS 2 ids"
                    );
                    // Live messages up to max-queued-messages, beside a retained
                    // backlog of at most that plus the retained store.
                    let bound = 2 * limits.max_queued_messages + ctx.router.retained_count();
                    assert!(state.queued() <= bound, "seed {seed} step {step}: queue bound");
                }
                if ended {
                    // A protocol violation closes the connection: connect again.
                    closes += 1;
                    // Let go first: the new connection waits for the old one's slot.
                    clients[who] = None;
                    let c = connect(protocol, &format!("{}-{seed}", ["rs-pub", "rs-sub"][who]));
                    clients[who] = Some(attached(&ctx, c).await);
                }
            }
        }
        assert!(closes > 0, "the sequences include violations that close a connection");
    }
}
