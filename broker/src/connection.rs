//! The I/O driver of one client connection.
//!
//! A transport (TCP, TLS, WebSocket or WebSocket over TLS, see
//! `transport.rs`) hands over a byte stream and what it learned about the
//! peer; everything after that is the same code for all of them. This
//! task reads CONNECT, attaches the session, then runs one loop that:
//! - reads and decodes every complete packet in the buffer and acts on it;
//! - moves queued deliveries from the session into one output buffer, so a
//!   busy client gets many packets per `write` (coalescing);
//! - writes that buffer as the socket accepts it, without ever blocking
//!   reads (a client that is itself blocked writing cannot deadlock us);
//! - enforces keep-alive and reacts to takeover and broker shutdown.
//!
//! The output buffer has a high-water mark: above it, no more deliveries are
//! taken from the session queue, whose own limit then applies. Memory per
//! connection is therefore bounded however slow the client reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use moth_plugin_api::TopicAction;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, debug};

use crate::access::{TlsInput, topic_request};
use crate::broker::Context;
use crate::codec::{self, DecodeError};
use crate::connect::{self, ConnectDecision};
use crate::inflight::AckResult;
use crate::message::Message;
use crate::packet::{
    Connack, Connect, ConnectReturnCode, Packet, Publish, QoS, Suback, SubackCode, Subscribe, Unsubscribe,
};
use crate::session::{Delivery, Session, SessionLimits};
use crate::session_store::{Kick, SessionHandle};
use crate::stats::Pending;

/// How long a new connection may take to send its CONNECT. A socket that
/// sends nothing must not hold a connection slot forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a taking-over connection waits for the old one to let go.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Above this many buffered output bytes, deliveries stay in the session queue.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// Above this many buffered output bytes, the client's input is not read.
const OUT_READ_LIMIT: usize = 4 * OUT_HIGH_WATER;
const READ_CHUNK: usize = 8 * 1024;
/// Reads smaller than this that leave no partial packet behind release the
/// input buffer: an idle client (a PINGREQ now and then) then holds no buffer
/// at all, which is most of what an idle connection would otherwise cost.
const SMALL_READ: usize = 1024;

/// An event with the connection's `listener` and `peer` fields: `$at` is
/// anything with those two fields (`ConnInfo`, `Client`).
macro_rules! conn_log {
    ($level:ident, $at:expr, $($rest:tt)+) => {
        tracing::$level!(listener = %$at.listener, peer = %$at.peer, $($rest)+)
    };
}

/// What the transport learned about the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
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

/// Why a connection ended, for the log and for the will.
#[derive(Debug)]
enum Close {
    /// DISCONNECT received: no will [MQTT-3.14.4-3].
    Disconnect,
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    Io(std::io::Error),
    Protocol(String),
    KeepAlive,
    TakenOver,
    Shutdown,
}

impl Close {
    fn sends_will(&self) -> bool {
        !matches!(self, Close::Disconnect | Close::Shutdown)
    }
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Disconnect => f.write_str("client sent DISCONNECT"),
            Close::PeerClosed => f.write_str("connection closed by client without DISCONNECT"),
            Close::Io(e) => write!(f, "i/o error: {e}"),
            Close::Protocol(why) => write!(f, "protocol violation: {why}"),
            Close::KeepAlive => f.write_str("keep-alive timeout"),
            Close::TakenOver => f.write_str("session taken over by a new connection with the same client id"),
            Close::Shutdown => f.write_str("broker shutting down"),
        }
    }
}

/// Serves one connection to its end. Never panics on client input; every
/// way out is logged with its reason.
pub async fn serve<S>(ctx: Arc<Context>, stream: S, info: ConnInfo, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    // A debug span: at info level a span per connection would cost its
    // registry entry (about 450 bytes) for every idle client, so the info
    // events name the listener and peer themselves (`conn_log!`).
    let span = tracing::debug_span!("conn", listener = %info.listener, peer = %info.peer);
    async move {
        let (rd, wr) = tokio::io::split(stream);
        let mut conn = Conn {
            rd,
            wr,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            max_packet_size: ctx.config.limits.max_packet_size,
            pending: Pending::default(),
        };
        conn.run(&ctx, &info, shutdown).await;
        conn.pending.flush(&ctx.stats);
    }
    .instrument(span)
    .await
}

struct Conn<S> {
    rd: ReadHalf<S>,
    wr: WriteHalf<S>,
    inbuf: BytesMut,
    outbuf: BytesMut,
    max_packet_size: usize,
    /// Counts not yet added to the broker's stats; flushed after each socket
    /// read and write, so a packet costs a plain integer increment.
    pending: Pending,
}

/// The state of a connected client that the packet handlers need.
struct Client {
    session: Arc<SessionHandle>,
    client_id: String,
    username: Option<String>,
    listener: Arc<str>,
    peer: SocketAddr,
    will: Option<Message>,
}

impl<S: AsyncRead + AsyncWrite> Conn<S> {
    async fn run(&mut self, ctx: &Arc<Context>, info: &ConnInfo, mut shutdown: watch::Receiver<bool>) {
        let connect = tokio::select! {
            r = Box::pin(tokio::time::timeout(CONNECT_TIMEOUT, self.read_first_packet(info))) => match r {
                Err(_) => {
                    conn_log!(info, info, "closed: no CONNECT within {}s", CONNECT_TIMEOUT.as_secs());
                    return;
                }
                Ok(Err(why)) => {
                    conn_log!(info, info, "closed before CONNECT: {why}");
                    return;
                }
                Ok(Ok(c)) => c,
            },
            _ = shutdown.changed() => return,
        };
        let Some(mut connect) = connect else {
            // Refused for its protocol level (CONNACK 1 already sent).
            ctx.stats.listener(&info.listener).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        };
        if info.identity_as_username {
            // Mosquitto's `use_identity_as_username`: the certificate decides
            // who the client is; without one there is no user name to use.
            match &info.tls_identity {
                Some(cn) => connect.username = Some(cn.to_string()),
                None => {
                    conn_log!(
                        info,
                        info,
                        client_id = %connect.client_id, code = ConnectReturnCode::NotAuthorized as u8,
                        "connection refused: use_identity_as_username is set but the client sent no certificate with a CN"
                    );
                    ctx.stats.listener(&info.listener).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Box::pin(self.refuse(ConnectReturnCode::NotAuthorized)).await;
                    return;
                }
            }
        }

        let (client_id, assigned) = match connect::check_client_id(&connect) {
            ConnectDecision::Accept { client_id, assigned } => (client_id, assigned),
            ConnectDecision::Refuse { code, reason } => {
                conn_log!(
                    info,
                    info,
                    client_id = %connect.client_id, username = ?connect.username.as_deref(), code = code as u8,
                    "connection refused: {reason}"
                );
                ctx.stats.listener(&info.listener).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Box::pin(self.refuse(code)).await;
                return;
            }
        };
        let peer = info.peer.to_string();
        // The subject DN is not decoded yet: plugins get the CN (as `CN=...`)
        // and the certificate itself.
        let tls = info.tls_certificate.as_ref().map(|der| TlsInput {
            subject: info.tls_identity.as_ref().map(|cn| format!("CN={cn}")).unwrap_or_default(),
            common_name: info.tls_identity.as_deref().map(str::to_string),
            certificate_der: der.to_vec(),
        });
        // Boxed, like every wait of this connect phase: kept inline, the
        // phase's futures would size the task for the connection's life.
        let (decision, outcome) = Box::pin(connect::authenticate(
            &ctx.access,
            &connect,
            &client_id,
            &peer,
            &info.listener,
            tls,
            |plugin, answer, t| ctx.stats.record_auth(plugin, answer, t),
        ))
        .await;
        let username = connect.username.as_deref();
        let listener_stats = ctx.stats.listener(&info.listener);
        if let ConnectDecision::Refuse { code, reason } = decision {
            conn_log!(
                info,
                info,
                client_id = %client_id, ?username, auth = "denied", plugin = outcome.decided_by.as_deref().unwrap_or("-"),
                code = code as u8, "connection refused: {reason}"
            );
            listener_stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(self.refuse(code)).await;
            return;
        }

        let conn_id = ctx.next_conn_id();
        let limits = SessionLimits {
            max_inflight: ctx.config.limits.max_inflight,
            max_queued: ctx.config.limits.max_queued_messages,
        };
        let (kick_tx, mut kick_rx) = oneshot::channel();
        let opened = ctx.sessions.open(&client_id, conn_id, kick_tx, limits);
        if let Some(previous) = opened.previous {
            let _ = previous.send(Kick::TakenOver);
        }
        let session = opened.session;
        // Wait for the previous connection, if any, to let go of the session.
        let slot = tokio::select! {
            g = Box::pin(tokio::time::timeout(TAKEOVER_TIMEOUT, session.slot.clone().lock_owned())) => match g {
                Ok(g) => g,
                Err(_) => {
                    conn_log!(warn, info, client_id = %client_id, "previous connection did not release the session in time");
                    listener_stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    ctx.sessions.close(&client_id, conn_id, false);
                    Box::pin(self.refuse(ConnectReturnCode::ServerUnavailable)).await;
                    return;
                }
            },
            _ = &mut kick_rx => {
                conn_log!(info, info, client_id = %client_id, "connection replaced by a newer one before it was attached");
                ctx.sessions.close(&client_id, conn_id, false);
                return;
            }
            _ = shutdown.changed() => {
                ctx.sessions.close(&client_id, conn_id, false);
                return;
            }
        };

        let (present, removed) = session.lock().attach(connect.clean_session, limits);
        if !removed.is_empty() {
            ctx.router.unsubscribe_all(session.id(), removed.iter().map(String::as_str));
        }
        self.emit(&Packet::Connack(Connack { session_present: present, code: ConnectReturnCode::Accepted }));
        ctx.stats.client_connected(&listener_stats);
        conn_log!(
            info,
            info,
            client_id = %client_id, ?username, assigned_id = assigned, clean_session = connect.clean_session,
            session_present = present, keep_alive = connect.keep_alive, auth = "allowed",
            tls_identity = ?info.tls_identity,
            plugin = outcome.decided_by.as_deref().unwrap_or("-"), "client connected"
        );
        {
            let mut state = session.lock();
            let (publishes, pubrels) = state.resume_into(&mut self.outbuf);
            let who = Who { client_id: &client_id, username: connect.username.as_deref(), listener: &info.listener };
            let drained = drain(ctx, &mut state, &mut self.outbuf, &who);
            self.pending.packets_sent += (publishes + pubrels + drained) as u64;
            self.pending.publish_sent += (publishes + drained) as u64;
        }

        let mut client = Client {
            session: session.clone(),
            client_id: client_id.clone(),
            username: connect.username.clone(),
            listener: info.listener.clone(),
            peer: info.peer,
            will: connect.will.as_ref().map(Message::from_will),
        };
        let keep_alive = (connect.keep_alive > 0)
            .then(|| Duration::from_secs(u64::from(connect.keep_alive)) + ctx.config.timeout_disconnect_delay);
        let close = self.serve_connected(ctx, &mut client, keep_alive, &mut kick_rx, &mut shutdown).await;

        // Best effort: what is already encoded (a final PUBACK, say) goes out.
        if !matches!(close, Close::Io(_) | Close::PeerClosed) && !self.outbuf.is_empty() {
            let written = tokio::time::timeout(Duration::from_secs(1), self.wr.write_all(&self.outbuf)).await;
            if matches!(written, Ok(Ok(()))) {
                self.pending.bytes_sent += self.outbuf.len() as u64;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.wr.shutdown()).await;

        session.lock().detach();
        let discard = connect.clean_session;
        if ctx.sessions.close(&client_id, conn_id, discard) {
            let filters: Vec<String> = session.lock().subscriptions().keys().cloned().collect();
            ctx.router.unsubscribe_all(session.id(), filters.iter().map(String::as_str));
        }
        drop(slot);
        ctx.stats.client_disconnected(&listener_stats);
        conn_log!(info, info, client_id = %client_id, "client disconnected: {close}");
        if close.sends_will()
            && let Some(will) = client.will.take()
        {
            publish_will(ctx, &client, will);
        }
    }

    /// Reads the first packet, which must be CONNECT [MQTT-3.1.0-1].
    /// `Ok(None)` when the connection ended and nothing more is to be done.
    async fn read_first_packet(&mut self, info: &ConnInfo) -> Result<Option<Connect>, String> {
        loop {
            match codec::decode(&mut self.inbuf, self.max_packet_size) {
                Ok(Some(Packet::Connect(c))) => {
                    self.pending.packets_received += 1;
                    return Ok(Some(c));
                }
                Ok(Some(other)) => return Err(format!("first packet is {} [MQTT-3.1.0-1]", other.name())),
                Ok(None) => {}
                Err(e) if e.is_unsupported_protocol_level() => {
                    // [MQTT-3.1.2-2]: answer 0x01, then close.
                    conn_log!(info, info, "connection refused: {e}");
                    self.refuse(ConnectReturnCode::UnacceptableProtocolVersion).await;
                    return Ok(None);
                }
                Err(e) => return Err(format!("malformed CONNECT: {e}")),
            }
            self.inbuf.reserve(SMALL_READ);
            match self.rd.read_buf(&mut self.inbuf).await {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.pending.bytes_received += n as u64,
                Err(e) => return Err(format!("i/o error: {e}")),
            }
        }
    }

    /// Sends a refusing CONNACK and closes [MQTT-3.2.2-5].
    async fn refuse(&mut self, code: ConnectReturnCode) {
        self.outbuf.clear();
        self.emit(&Packet::Connack(Connack { session_present: false, code }));
        let written = tokio::time::timeout(Duration::from_secs(1), async {
            self.wr.write_all(&self.outbuf).await?;
            self.wr.shutdown().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            self.pending.bytes_sent += self.outbuf.len() as u64;
        }
    }

    /// Encodes a packet for the client and counts it.
    fn emit(&mut self, packet: &Packet) {
        codec::encode(packet, &mut self.outbuf);
        self.pending.packets_sent += 1;
    }

    /// Moves queued deliveries from the session into the output buffer, counting them.
    /// Moves queued deliveries into the output buffer, counting them.
    fn drain(&mut self, ctx: &Context, session: &SessionHandle, who: &Who<'_>) {
        let n = drain(ctx, &mut session.lock(), &mut self.outbuf, who) as u64;
        self.pending.packets_sent += n;
        self.pending.publish_sent += n;
    }

    async fn serve_connected(
        &mut self,
        ctx: &Arc<Context>,
        client: &mut Client,
        keep_alive: Option<Duration>,
        kick_rx: &mut oneshot::Receiver<Kick>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Close {
        let mut last_rx = Instant::now();
        let far_future = Instant::now() + Duration::from_secs(86400 * 365);
        let deadline = |last: Instant| keep_alive.map_or(far_future, |k| last + k);
        let keep_alive_timer = sleep_until(deadline(last_rx));
        tokio::pin!(keep_alive_timer);
        // Packets already buffered behind the CONNECT.
        if let Err(close) = self.process_input(ctx, client) {
            return close;
        }
        self.size_inbuf(0);
        let session = client.session.clone();
        // Counts are flushed into the stats after each socket read and write
        // (not per packet, not per wake-up): at rest nothing is left pending.
        loop {
            tokio::select! {
                _ = &mut *kick_rx => return Close::TakenOver,
                _ = shutdown.changed() => return Close::Shutdown,
                // Back-pressure: a client that does not read its acknowledgements
                // is not read from either, so its output cannot grow without bound.
                r = self.rd.read_buf(&mut self.inbuf), if self.outbuf.len() < OUT_READ_LIMIT => {
                    let n = match r {
                        Ok(0) => return Close::PeerClosed,
                        Ok(n) => {
                            self.pending.bytes_received += n as u64;
                            n
                        }
                        Err(e) => return Close::Io(e),
                    };
                    last_rx = Instant::now();
                    let handled = self.process_input(ctx, client);
                    self.pending.flush(&ctx.stats);
                    if let Err(close) = handled {
                        return close;
                    }
                    self.size_inbuf(n);
                }
                r = self.wr.write_buf(&mut self.outbuf), if !self.outbuf.is_empty() => {
                    match r {
                        Ok(n) => self.pending.bytes_sent += n as u64,
                        Err(e) => return Close::Io(e),
                    }
                    self.pending.flush(&ctx.stats);
                    if self.outbuf.is_empty() {
                        // Take more right away rather than wait for the next wake-up.
                        self.drain(ctx, &session, &client.who());
                        if self.outbuf.is_empty()
                            && let Err(e) = self.wr.flush().await
                        {
                            return Close::Io(e);
                        }
                    }
                }
                _ = session.wake.notified(), if self.outbuf.len() < OUT_HIGH_WATER => {
                    self.drain(ctx, &session, &client.who());
                }
                _ = &mut keep_alive_timer => {
                    let due = deadline(last_rx);
                    if Instant::now() >= due {
                        return Close::KeepAlive;
                    }
                    keep_alive_timer.as_mut().reset(due);
                }
            }
        }
    }

    /// Releases the input buffer of a quiet client, or makes room for the
    /// next read of a busy one.
    fn size_inbuf(&mut self, last_read: usize) {
        if self.inbuf.is_empty() && last_read < SMALL_READ {
            self.inbuf = BytesMut::new();
        } else if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 2 {
            self.inbuf.reserve(READ_CHUNK);
        }
    }

    /// Decodes and handles every complete packet in the input buffer.
    fn process_input(&mut self, ctx: &Arc<Context>, client: &mut Client) -> Result<(), Close> {
        let mut handled = false;
        loop {
            let packet = match codec::decode(&mut self.inbuf, self.max_packet_size) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(protocol_error(&e)),
            };
            handled = true;
            self.pending.packets_received += 1;
            self.handle(ctx, client, packet)?;
        }
        if handled && self.outbuf.len() < OUT_HIGH_WATER {
            // Acknowledgements may have opened the in-flight window.
            self.drain(ctx, &client.session, &client.who());
        }
        Ok(())
    }

    fn handle(&mut self, ctx: &Arc<Context>, client: &mut Client, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(ctx, client, p),
            Packet::Puback(id) => {
                if client.session.lock().on_puback(id) == AckResult::Unknown {
                    debug!(client_id = %client.client_id, packet_id = id, "PUBACK for no message in flight");
                }
            }
            Packet::Pubrec(id) => {
                if client.session.lock().on_pubrec(id) == AckResult::Done {
                    self.emit(&Packet::Pubrel(id));
                } else {
                    debug!(client_id = %client.client_id, packet_id = id, "PUBREC for no message in flight");
                }
            }
            Packet::Pubcomp(id) => {
                if client.session.lock().on_pubcomp(id) == AckResult::Unknown {
                    debug!(client_id = %client.client_id, packet_id = id, "PUBCOMP for no message in flight");
                }
            }
            Packet::Pubrel(id) => {
                client.session.lock().on_pubrel(id);
                self.emit(&Packet::Pubcomp(id));
            }
            Packet::Subscribe(s) => self.on_subscribe(ctx, client, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(ctx, client, u),
            Packet::Pingreq => self.emit(&Packet::Pingresp),
            Packet::Disconnect => {
                client.will = None;
                return Err(Close::Disconnect);
            }
            Packet::Connect(_) => return Err(Close::Protocol("second CONNECT [MQTT-3.1.0-2]".into())),
            other @ (Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp) => {
                return Err(Close::Protocol(format!("{} is sent by servers only", other.name())));
            }
        }
        Ok(())
    }

    fn on_publish(&mut self, ctx: &Arc<Context>, client: &Client, p: Publish) {
        self.pending.publish_received += 1;
        let allowed = publish_allowed(ctx, client, &p.topic);
        let (qos, packet_id) = (p.qos, p.packet_id);
        // Inbound QoS 2 is routed on its first PUBLISH only [MQTT-4.3.3-2].
        let first = qos != QoS::ExactlyOnce || client.session.lock().on_inbound_qos2(packet_id);
        if allowed && first {
            ctx.router.publish(Arc::new(Message::from_publish(p)));
        }
        match qos {
            QoS::AtMostOnce => {}
            // Acknowledged even when refused: MQTT 3.1.1 has no negative
            // acknowledgement, and a client that never gets one would
            // re-send forever.
            QoS::AtLeastOnce => self.emit(&Packet::Puback(packet_id)),
            QoS::ExactlyOnce => self.emit(&Packet::Pubrec(packet_id)),
        }
    }

    fn on_subscribe(&mut self, ctx: &Arc<Context>, client: &Client, s: Subscribe) {
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for f in &s.filters {
            if let Some(reason) = ctx
                .access
                .checks_topics()
                .then(|| {
                    ctx.access.check_topic(&topic_request(
                        &client.client_id,
                        client.username.as_deref(),
                        &client.listener,
                        TopicAction::SUBSCRIBE,
                        &f.filter,
                    ))
                })
                .flatten()
            {
                conn_log!(info, client, client_id = %client.client_id, filter = %f.filter, "subscription refused: {reason}");
                codes.push(SubackCode::Failure);
                continue;
            }
            let granted = f.qos.min(ctx.config.max_qos);
            client.session.lock().add_subscription(&f.filter, granted);
            for m in ctx.router.subscribe(&client.session, &f.filter, granted) {
                retained.push((m, granted));
            }
            debug!(client_id = %client.client_id, filter = %f.filter, qos = granted as u8, "subscribed");
            codes.push(SubackCode::Granted(granted));
        }
        self.emit(&Packet::Suback(Suback { packet_id: s.packet_id, codes }));
        // Retained messages go after the SUBACK, with RETAIN set [MQTT-3.3.1-8].
        if !retained.is_empty() {
            let mut state = client.session.lock();
            for (message, granted) in retained {
                let qos = message.qos.min(granted);
                state.enqueue_retained(Delivery { message, qos, retain: true });
            }
        }
    }

    fn on_unsubscribe(&mut self, ctx: &Arc<Context>, client: &Client, u: Unsubscribe) {
        for f in &u.filters {
            client.session.lock().remove_subscription(f);
            ctx.router.unsubscribe(client.session.id(), f);
            debug!(client_id = %client.client_id, filter = %f, "unsubscribed");
        }
        // Sent even when nothing matched [MQTT-3.10.4-5].
        self.emit(&Packet::Unsuback(u.packet_id));
    }
}

/// The client a delivery check is about.
struct Who<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
    listener: &'a str,
}

impl Client {
    fn who(&self) -> Who<'_> {
        Who { client_id: &self.client_id, username: self.username.as_deref(), listener: &self.listener }
    }
}

/// Moves queued deliveries into the output buffer, asking the topic plugins
/// that want delivery checks (none, usually: then this is the plain drain).
fn drain(ctx: &Context, state: &mut Session, out: &mut BytesMut, who: &Who<'_>) -> usize {
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
    Close::Protocol(e.to_string())
}

/// Topic checks on a client's PUBLISH. `$SYS/` belongs to the broker:
/// clients may read it but not write to it.
fn publish_allowed(ctx: &Context, client: &Client, topic: &str) -> bool {
    if topic.starts_with("$SYS/") || topic == "$SYS" {
        debug!(client_id = %client.client_id, topic, "publish to $SYS refused");
        return false;
    }
    if !ctx.access.checks_topics() {
        return true;
    }
    let request =
        topic_request(&client.client_id, client.username.as_deref(), &client.listener, TopicAction::PUBLISH, topic);
    match ctx.access.check_topic(&request) {
        None => true,
        Some(reason) => {
            conn_log!(info, client, client_id = %client.client_id, topic, "publish refused: {reason}");
            false
        }
    }
}

fn publish_will(ctx: &Context, client: &Client, will: Message) {
    if !publish_allowed(ctx, client, &will.topic) {
        return;
    }
    debug!(client_id = %client.client_id, topic = %will.topic, "publishing will");
    ctx.router.publish(Arc::new(will));
}
