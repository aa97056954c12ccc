//! The attach phase of a connection, CONNECT as its own phase (as in
//! ntex-mqtt's `handshake.rs`): read the CONNECT, take the identity from the
//! client certificate, check the client id, authenticate, take the session
//! over, answer CONNACK. Each step returns why the connection ends
//! ([`Ended`]); every refusal goes through one [`refuse`], which logs,
//! counts and answers.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::connection::{
    AUTH_READ_AHEAD, Attached, CONNECT_TIMEOUT, Client, ConnInfo, Io, TAKEOVER_TIMEOUT, V5Client, Who, drain,
};
use super::topic_alias::TopicAliases;
use crate::access::TlsInput;
use crate::access::connect::{self, ConnectDecision};
use crate::access::topic_request;
use crate::message::Message;
use crate::packet::{Connack, ConnackProperties, Connect, ConnectReturnCode, Packet, Will};
use crate::session::state::{Outbound, SessionLimits};
use crate::session::store::{Expiry, Opened, SessionHandle, SlotHeld, session_record};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::stats::{ListenerStats, bump};
use crate::store::batch::Change;
use crate::store::journal::{self, Journal};
use crate::store::record::WillRecord;
use moth_plugin_api::TopicAction;

mod enhanced_auth;

pub(super) use enhanced_auth::EnhancedAuth;

/// Why the attach phase ended without a connected client.
enum Ended {
    /// Refused with a CONNACK: logged, counted and answered by [`refuse`].
    Refused(Refusal),
    /// Refused for its protocol level, CONNACK 1 already sent: counted only.
    WrongProtocol,
    /// Closed, silent, superseded or shut down before an answer was due;
    /// logged where it happened.
    Closed,
}

/// A refused CONNECT: the code the client gets and why, for the log.
struct Refusal {
    code: ConnectReturnCode,
    reason: String,
    client_id: String,
    username: Option<String>,
    /// The plugin that decided, for authentication refusals.
    plugin: Option<String>,
    /// Logged as a warning (the broker's trouble, not the client's).
    warn: bool,
}

impl Refusal {
    fn new(code: ConnectReturnCode, reason: impl Into<String>, connect: &Connect, client_id: &str) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            client_id: client_id.to_string(),
            username: connect.username.clone(),
            plugin: None,
            warn: false,
        }
    }
}

/// The one way a CONNECT is refused: logged with the client's id, user name
/// and the deciding plugin, counted on the listener, answered with the
/// CONNACK code, and the connection closed.
async fn refuse(io: &mut Io, info: &ConnInfo, listener: &ListenerStats, r: Refusal) {
    let (client_id, username, code) = (&r.client_id, r.username.as_deref(), r.code.code(io.protocol));
    let plugin = r.plugin.as_deref().unwrap_or("-");
    if r.warn {
        conn_log!(warn, info, client_id = %client_id, username, code, plugin, "connection refused: {}", r.reason);
    } else {
        conn_log!(info, info, client_id = %client_id, username, code, plugin, "connection refused: {}", r.reason);
    }
    listener.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    io.refuse(r.code).await;
}

/// The attach phase, step by step: read the CONNECT, take the identity from
/// the certificate, check the client id, authenticate, take the session
/// over, answer CONNACK. Each step returns why it ends the connection.
pub(super) async fn connect_and_attach(
    ctx: &Arc<Shared>,
    io: &mut Io,
    info: &ConnInfo,
    shutdown: &mut Shutdown,
) -> Option<Attached> {
    // Resolved once: every refusal and the connect count use it.
    let listener = ctx.stats.listener(&info.listener);
    let steps = async {
        let mut connect = read_connect(ctx, io, info, shutdown).await?;
        if connect.protocol.is_v5() {
            // Nothing larger goes to this client, the CONNACK included.
            io.max_out = connect.properties.maximum_packet_size.map_or(usize::MAX, |m| m as usize);
        }
        identity_from_certificate(info, &mut connect)?;
        let (client_id, assigned) = match connect::check_client_id(&connect) {
            ConnectDecision::Accept { client_id, assigned } => (client_id, assigned),
            ConnectDecision::Refuse { code, reason } => {
                return Err(Ended::Refused(Refusal::new(code, reason, &connect, &connect.client_id)));
            }
        };
        // MQTT 5 enhanced authentication replaces the chain's checks.
        let (decided_by, enhanced) = match connect.properties.authentication_method.clone() {
            Some(method) => {
                let (plugin, enhanced) =
                    enhanced_auth::exchange(ctx, io, info, &mut connect, &client_id, method, shutdown).await?;
                (Some(plugin), Some(enhanced))
            }
            None => (authenticate(ctx, io, info, &connect, &client_id).await?, None),
        };
        let taken = take_session(ctx, info, &connect, &client_id, shutdown).await?;
        Ok(accept(ctx, io, info, &listener, connect, Accepted { client_id, assigned, decided_by, enhanced, taken }))
    };
    match steps.await {
        Ok(attached) => Some(attached),
        Err(Ended::Refused(r)) => {
            refuse(io, info, &listener, r).await;
            None
        }
        Err(Ended::WrongProtocol) => {
            listener.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
        Err(Ended::Closed) => None,
    }
}

/// Step 1: the first packet, which must be a CONNECT, within [`CONNECT_TIMEOUT`].
async fn read_connect(ctx: &Shared, io: &mut Io, info: &ConnInfo, shutdown: &mut Shutdown) -> Result<Connect, Ended> {
    let max_packet_size = ctx.config.limits.max_packet_size;
    tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, io.read_first_packet(info, max_packet_size)) => match r {
            Err(_) => {
                conn_log!(info, info, "closed: no CONNECT within {}s", CONNECT_TIMEOUT.as_secs());
                Err(Ended::Closed)
            }
            Ok(Err(why)) => {
                conn_log!(info, info, "closed before CONNECT: {why}");
                Err(Ended::Closed)
            }
            Ok(Ok(Some(c))) => Ok(c),
            Ok(Ok(None)) => Err(Ended::WrongProtocol),
        },
        _ = shutdown.recv() => Err(Ended::Closed),
    }
}

/// Step 2: Mosquitto's `use_identity_as_username`: the certificate decides
/// who the client is; without one there is no user name to use.
fn identity_from_certificate(info: &ConnInfo, connect: &mut Connect) -> Result<(), Ended> {
    if !info.identity_as_username {
        return Ok(());
    }
    match &info.tls_identity {
        Some(cn) => {
            connect.username = Some(cn.to_string());
            Ok(())
        }
        None => Err(Ended::Refused(Refusal::new(
            ConnectReturnCode::NotAuthorized,
            "use_identity_as_username is set but the client sent no certificate with a CN",
            connect,
            &connect.client_id,
        ))),
    }
}

/// Step 4: the authentication chain. While the plugins decide (a reconnect
/// storm can queue a client behind thousands of password checks), the
/// socket is watched: a client that gives up and closes is dropped with its
/// place in the queue, so no check is spent on it. Packets it sends
/// meanwhile are kept for after CONNACK; a client that half-closes after
/// such packets still gets them handled. Returns the plugin that decided.
async fn authenticate(
    ctx: &Shared,
    io: &mut Io,
    info: &ConnInfo,
    connect: &Connect,
    client_id: &str,
) -> Result<Option<String>, Ended> {
    let max_packet_size = ctx.config.limits.max_packet_size;
    let peer = info.peer.to_string();
    // The subject DN is not decoded yet: plugins get the CN (as `CN=...`)
    // and the certificate itself.
    let tls = info.tls_certificate.as_ref().map(|der| TlsInput {
        subject: info.tls_identity.as_ref().map(|cn| format!("CN={cn}")).unwrap_or_default(),
        common_name: info.tls_identity.as_deref().map(str::to_string),
        certificate_der: der.to_vec(),
    });
    let auth = connect::authenticate(&ctx.access, connect, client_id, &peer, &info.listener, tls, |p, answer, t| {
        ctx.stats.record_auth(p, answer, t)
    });
    let mut watching = true;
    let (decision, outcome) = {
        tokio::pin!(auth);
        loop {
            tokio::select! {
                biased;
                r = &mut auth => break r,
                r = io.stream.read_buf(&mut io.inbuf), if watching => match r {
                    Ok(0) | Err(_) if io.inbuf.is_empty() => {
                        conn_log!(info, info, client_id = %client_id, "client left while its CONNECT was being authenticated");
                        return Err(Ended::Closed);
                    }
                    Ok(0) | Err(_) => watching = false,
                    Ok(n) => {
                        bump(&mut io.pending.bytes_received, n);
                        // Enough read ahead: the rest waits in the socket.
                        watching = io.inbuf.len() < max_packet_size.min(AUTH_READ_AHEAD);
                    }
                },
            }
        }
    };
    match decision {
        ConnectDecision::Accept { .. } => Ok(outcome.decided_by),
        ConnectDecision::Refuse { code, reason } => {
            let mut r = Refusal::new(code, reason, connect, client_id);
            r.plugin = outcome.decided_by;
            Err(Ended::Refused(r))
        }
    }
}

/// What step 5 took: the session, held.
struct Taken {
    session: Arc<SessionHandle>,
    /// It held another user's state, to be discarded (`session-owner: client-id`).
    fresh: bool,
    slot: SlotHeld,
    conn_id: u64,
}

/// Step 5: the session, taken over from a previous connection if any: it
/// is woken, sees it is no longer the owner and lets go of the slot.
/// Another user's session is refused (`session-owner: user`).
async fn take_session(
    ctx: &Shared,
    info: &ConnInfo,
    connect: &Connect,
    client_id: &str,
    shutdown: &mut Shutdown,
) -> Result<Taken, Ended> {
    let conn_id = ctx.next_conn_id();
    let limits = session_limits(ctx);
    let rule = ctx.config.session_owner;
    let (session, fresh) = match ctx.sessions.open(client_id, conn_id, connect.username.as_deref(), rule, limits) {
        Opened::Session { session, fresh } => (session, fresh),
        // Says nothing of whose session it is.
        Opened::OwnedByOther => {
            let why = "the client id belongs to another user's session (session-owner: user)";
            return Err(Ended::Refused(Refusal::new(ConnectReturnCode::IdentifierRejected, why, connect, client_id)));
        }
    };
    let slot = tokio::select! {
        g = tokio::time::timeout(TAKEOVER_TIMEOUT, session.acquire_slot()) => match g {
            Ok(g) => g,
            Err(_) => {
                ctx.sessions.close(client_id, conn_id, Expiry::Never);
                let why = "previous connection did not release the session in time";
                let mut r = Refusal::new(ConnectReturnCode::ServerUnavailable, why, connect, client_id);
                r.warn = true;
                return Err(Ended::Refused(r));
            }
        },
        _ = shutdown.recv() => {
            ctx.sessions.close(client_id, conn_id, Expiry::Never);
            return Err(Ended::Closed);
        }
    };
    if session.owner() != conn_id {
        // A third connection with this client id came while this one waited.
        conn_log!(info, info, client_id = %client_id, "connection replaced by a newer one before it was attached");
        return Err(Ended::Closed);
    }
    // A shutdown that began while this connection waited woke no session
    // of its: the signal itself says so.
    if shutdown.is_shutdown() || ctx.stopping() {
        ctx.sessions.close(client_id, conn_id, Expiry::Never);
        return Err(Ended::Closed);
    }
    Ok(Taken { session, fresh, slot, conn_id })
}

/// The session's limits and how its client reads packets: the client's
/// MQTT 5 receive maximum narrows the in-flight window, and nothing larger
/// than its maximum packet size is sent to it [MQTT-3.3.4-7, MQTT-3.1.2-24].
fn client_limits(ctx: &Shared, connect: &Connect) -> (SessionLimits, Outbound) {
    let mut limits = session_limits(ctx);
    let mut outbound = Outbound { protocol: connect.protocol, ..Outbound::default() };
    if connect.protocol.is_v5() {
        let p = &connect.properties;
        limits.max_inflight = limits.max_inflight.min(p.receive_maximum.unwrap_or(u16::MAX));
        outbound.max_packet_size = p.maximum_packet_size.map_or(usize::MAX, |m| m as usize);
        outbound.topic_alias_maximum = p.topic_alias_maximum.unwrap_or(0);
    }
    (limits, outbound)
}

fn session_limits(ctx: &Shared) -> SessionLimits {
    SessionLimits::of(&ctx.config.limits)
}

/// What the steps before CONNACK established.
struct Accepted {
    client_id: String,
    assigned: bool,
    decided_by: Option<String>,
    /// The MQTT 5 enhanced authentication the client went through.
    enhanced: Option<EnhancedAuth>,
    taken: Taken,
}

/// Step 6: attach to the session, answer CONNACK, resume the session's
/// deliveries and arm the keep-alive.
fn accept(
    ctx: &Shared,
    io: &mut Io,
    info: &ConnInfo,
    listener: &Arc<ListenerStats>,
    mut connect: Connect,
    a: Accepted,
) -> Attached {
    let Accepted { client_id, assigned, decided_by, enhanced, taken: Taken { session, fresh, slot, conn_id } } = a;
    // Synchronous from here: the thread's change count tells what this
    // attach recorded (across an `.await` the task may change threads).
    let mark = journal::mark();
    let username = connect.username.as_deref();
    let v5 = connect.protocol.is_v5();
    let (expiry, capped) = session_expiry(ctx, &connect);
    let (limits, outbound) = client_limits(ctx, &connect);
    let (present, removed) = {
        let mut state = session.lock();
        let mut removed = if fresh { state.reset() } else { Vec::new() };
        let (present, cleared) = state.attach_with(connect.clean_session, expiry.keeps(), limits, outbound);
        removed.extend(cleared);
        if expiry.keeps() {
            // With persistence on, the CONNACK waits for this record.
            state.persist(session_record(username, expiry));
        }
        (present, removed)
    };
    if let Some(journal) = &ctx.journal {
        store_will(journal, &session, connect.will.as_ref(), username, &info.listener);
    }
    if !removed.is_empty() {
        ctx.router.unsubscribe_all(session.id(), removed.iter().map(String::as_str));
    }
    if present {
        recheck_subscriptions(ctx, &session, &client_id, username, info);
    }
    let mut connack = Connack::new(present, ConnectReturnCode::Accepted);
    if v5 {
        let granted = Granted { client_id: &client_id, assigned, capped, enhanced: enhanced.as_ref() };
        connack.properties = connack_properties(ctx, &connect, granted);
    }
    io.emit(&Packet::Connack(Box::new(connack)));
    ctx.stats.client_connected(listener, connect.protocol);
    conn_log!(
        info,
        info,
        client_id = %client_id, username, protocol = connect.protocol.version(), assigned_id = assigned,
        clean_session = connect.clean_session, session_present = present, keep_alive = connect.keep_alive,
        auth = "allowed", tls_identity = info.tls_identity.as_deref(),
        plugin = decided_by.as_deref().unwrap_or("-"), "client connected"
    );
    resume(ctx, io, &session, &Who { client_id: &client_id, username, listener: &info.listener });
    let keep_alive = (connect.keep_alive > 0)
        .then(|| Duration::from_secs(u64::from(connect.keep_alive)) + ctx.config.timeout_disconnect_delay);
    session.liveness.arm(keep_alive);
    Attached {
        client: Client {
            session,
            username: connect.username.take().map(String::into_boxed_str),
            listener: info.listener.clone(),
            peer: info.peer,
            will: connect.will.as_ref().map(|w| Box::new(Message::from_will(w))),
            v5: v5.then(|| {
                Box::new(V5Client {
                    aliases: TopicAliases::new(ctx.config.limits.topic_alias_maximum),
                    expiry_was_zero: expiry == Expiry::AtClose,
                    will_delay: connect.will.as_ref().map_or(0, |w| w.delay_interval),
                    auth_method: enhanced.map(|e| e.method.into_boxed_str()),
                    reauth: None,
                })
            }),
        },
        conn_id,
        expiry,
        slot,
        recorded: journal::mark() != mark,
    }
}

/// Behind the CONNACK: what a resumed session must send again, then what
/// waits in its queue.
fn resume(ctx: &Shared, io: &mut Io, session: &SessionHandle, who: &Who<'_>) {
    let mut state = session.lock();
    let (publishes, pubrels) = state.resume_into(&mut io.outbuf);
    let drained = drain(ctx, &mut state, &mut io.outbuf, who);
    bump(&mut io.pending.packets_sent, publishes + pubrels + drained);
    bump(&mut io.pending.publish_sent, publishes + drained);
}

/// Records the connection's will, so that a crash publishes it at the next
/// start; a connection without one clears what an earlier one left.
fn store_will(journal: &Journal, session: &SessionHandle, will: Option<&Will>, user: Option<&str>, listener: &str) {
    let client_id = session.client_id_arc();
    match will {
        Some(w) => {
            let record = WillRecord {
                message: Arc::new(Message::from_will(w)),
                delay: w.delay_interval,
                user: user.map(str::to_owned),
                listener: listener.to_owned(),
            };
            journal.record(Change::Will(client_id, Some(record)));
        }
        None => {
            journal.record_quietly(Change::Will(client_id, None));
        }
    }
}

/// What the attach granted an MQTT 5 client, for its CONNACK.
struct Granted<'a> {
    client_id: &'a str,
    /// The broker made the client id up.
    assigned: bool,
    /// The session expiry granted, when less than asked.
    capped: Option<u32>,
    enhanced: Option<&'a EnhancedAuth>,
}

/// What moth tells an MQTT 5 client in CONNACK: the identifier it assigned,
/// its own limits, what it does not support (absent means supported), the
/// response information it asked for [MQTT-3.1.2-28: only when asked], and
/// the end of its enhanced authentication.
fn connack_properties(ctx: &Shared, connect: &Connect, g: Granted<'_>) -> ConnackProperties {
    let Granted { client_id, assigned, capped, enhanced } = g;
    let limits = &ctx.config.limits;
    let asks_response = connect.properties.request_response_information == Some(true);
    ConnackProperties {
        response_information: ctx
            .config
            .response_information
            .as_ref()
            .filter(|_| asks_response)
            .map(|template| template.replace("{client_id}", client_id)),
        authentication_method: enhanced.map(|e| e.method.clone()),
        authentication_data: enhanced.and_then(|e| e.data.clone()),
        session_expiry_interval: capped,
        receive_maximum: Some(limits.receive_maximum),
        maximum_packet_size: Some(u32::try_from(limits.max_packet_size).unwrap_or(u32::MAX)),
        assigned_client_identifier: assigned.then(|| client_id.to_string()),
        // Absent means 0: none.
        topic_alias_maximum: (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum),
        shared_subscription_available: (!ctx.config.shared_subscriptions).then_some(false),
        // No maximum QoS: subscriptions are granted at most `max-qos`, but
        // PUBLISH is accepted at any QoS.
        ..ConnackProperties::default()
    }
}

/// The longest session expiry moth grants, in seconds:
/// `session-expiry-interval`, if set.
pub(super) fn max_session_expiry(ctx: &Shared) -> Option<u32> {
    ctx.config.session_expiry_interval.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX - 1))
}

/// How long the session outlives this connection, and the interval to tell
/// an MQTT 5 client when moth grants less than it asked. MQTT 3.1.1: clean
/// session 1 ends it with the connection; 0 keeps it for
/// `session-expiry-interval`, or until the client removes it. MQTT 5: the
/// CONNECT's session expiry interval (absent means 0), at most
/// `session-expiry-interval`.
fn session_expiry(ctx: &Shared, connect: &Connect) -> (Expiry, Option<u32>) {
    if connect.protocol.is_v5() {
        let asked = connect.properties.session_expiry_interval.unwrap_or(0);
        let granted = max_session_expiry(ctx).map_or(asked, |max| asked.min(max));
        return (Expiry::from_interval(granted), (granted != asked).then_some(granted));
    }
    let expiry = if connect.clean_session {
        Expiry::AtClose
    } else {
        ctx.config.session_expiry_interval.map_or(Expiry::Never, Expiry::After)
    };
    (expiry, None)
}

/// Checks a resumed session's subscriptions against the connected user's
/// rights as they are now, not as they were when the subscriptions were
/// made (the ACL may have changed by a reload since): each one the topic
/// chain refuses is removed, as if unsubscribed, and logged.
fn recheck_subscriptions(
    ctx: &Shared,
    session: &SessionHandle,
    client_id: &str,
    username: Option<&str>,
    info: &ConnInfo,
) {
    if !ctx.access.checks_topics() {
        return;
    }
    let filters: Vec<String> = session.lock().subscriptions().keys().cloned().collect();
    for filter in filters {
        // A shared subscription is checked by its filter, as on SUBSCRIBE.
        let checked = crate::topic::shared(&filter).map_or(filter.as_str(), |(_, inner)| inner);
        let request = topic_request(client_id, username, &info.listener, TopicAction::SUBSCRIBE, checked);
        if let Some(reason) = ctx.access.check_topic(&request) {
            session.lock().remove_subscription(&filter);
            ctx.router.unsubscribe(session.id(), &filter);
            conn_log!(info, info, client_id, filter, "subscription of the resumed session removed: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The attach phase without a socket: an in-memory duplex stream plays
    //! the client, so each step's answer, log-free, is checked directly.

    use std::sync::atomic::Ordering;

    use bytes::BytesMut;
    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::codec;
    use crate::config::SessionOwner;
    use crate::server::test_support::{info, shared};

    fn connect(client_id: &str, user: Option<&str>) -> Connect {
        Connect {
            protocol: crate::packet::Protocol::V311,
            clean_session: false,
            keep_alive: 30,
            client_id: client_id.into(),
            will: None,
            username: user.map(str::to_string),
            password: user.map(|_| bytes::Bytes::from_static(b"pw")),
            properties: Default::default(),
        }
    }

    /// Sends `connect` from the client end and runs the attach phase on the
    /// server end; returns what it produced and the CONNACK the client got.
    async fn run(ctx: &Arc<Shared>, info: &ConnInfo, c: Connect) -> (Option<Attached>, Option<Connack>) {
        let (mut client, server): (DuplexStream, DuplexStream) = tokio::io::duplex(4096);
        let mut bytes = BytesMut::new();
        let protocol = c.protocol;
        codec::encode(&Packet::Connect(Box::new(c)), protocol, &mut bytes);
        client.write_all(&bytes).await.unwrap();
        let mut io = Io::new(Box::new(server));
        let stopper = crate::shutdown::Stopper::new();
        let attached = connect_and_attach(ctx, &mut io, info, &mut stopper.shutdown()).await;
        // An accepted CONNACK is only queued; a refusal was written already.
        if attached.is_some() {
            tokio::io::AsyncWriteExt::write_all(&mut io.stream, &io.outbuf).await.unwrap();
        }
        drop(io);
        let mut got = BytesMut::new();
        tokio::io::AsyncReadExt::read_buf(&mut client, &mut got).await.unwrap();
        let ack = match codec::decode(&mut got, 1024, protocol) {
            Ok(Some(Packet::Connack(a))) => Some(*a),
            _ => None,
        };
        (attached, ack)
    }

    fn refused(ctx: &Shared) -> u64 {
        ctx.stats.listener("test").refused.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn an_accepted_connect_attaches_and_answers_connack_0() {
        let ctx = shared();
        let (attached, ack) = run(&ctx, &info(false), connect("c1", Some("alice"))).await;
        let a = attached.expect("attached");
        assert_eq!(a.client.session.client_id(), "c1");
        assert_eq!(a.client.username.as_deref(), Some("alice"));
        assert_eq!(ack, Some(Connack::new(false, ConnectReturnCode::Accepted)));
        assert_eq!(refused(&ctx), 0);
    }

    #[tokio::test]
    async fn another_users_session_is_refused_once_counted_with_connack_2() {
        let ctx = shared();
        let limits = session_limits(&ctx);
        let Opened::Session { .. } = ctx.sessions.open("dev1", 99, Some("alice"), SessionOwner::User, limits) else {
            panic!("alice's session")
        };
        let (attached, ack) = run(&ctx, &info(false), connect("dev1", Some("bob"))).await;
        assert!(attached.is_none());
        assert_eq!(ack, Some(Connack::new(false, ConnectReturnCode::IdentifierRejected)));
        assert_eq!(refused(&ctx), 1, "counted once, on the listener");
    }

    #[tokio::test]
    async fn identity_as_username_without_a_certificate_is_refused_with_5() {
        let ctx = shared();
        let (attached, ack) = run(&ctx, &info(true), connect("c2", Some("claims"))).await;
        assert!(attached.is_none());
        assert_eq!(ack.map(|a| a.code), Some(ConnectReturnCode::NotAuthorized));
        assert_eq!(refused(&ctx), 1);
    }

    #[tokio::test]
    async fn an_empty_client_id_with_a_persistent_session_is_refused_with_2() {
        let ctx = shared();
        let (attached, ack) = run(&ctx, &info(false), connect("", None)).await;
        assert!(attached.is_none());
        assert_eq!(ack.map(|a| a.code), Some(ConnectReturnCode::IdentifierRejected));
    }

    #[test]
    fn the_certificate_names_the_user() {
        let mut i = info(true);
        i.tls_identity = Some(Arc::from("sensor-1"));
        let mut c = connect("c", Some("mallory"));
        assert!(identity_from_certificate(&i, &mut c).is_ok());
        assert_eq!(c.username.as_deref(), Some("sensor-1"));
        let mut c = connect("c", Some("mallory"));
        assert!(identity_from_certificate(&info(false), &mut c).is_ok());
        assert_eq!(c.username.as_deref(), Some("mallory"), "off: the CONNECT's user name stands");
    }
}
