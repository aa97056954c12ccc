//! Step 4 for an MQTT 5 CONNECT that names an authentication method: the
//! AUTH exchange before CONNACK [MQTT 5 §4.12]. The plugin that runs the
//! method is found and asked by `access/enhanced.rs`; here its challenges
//! go out as AUTH 0x18 and the client's answers come back, each within
//! [`CONNECT_TIMEOUT`]. Until CONNACK the client may send only AUTH or
//! DISCONNECT [MQTT-3.1.2-30]: anything else is a protocol error, answered
//! with CONNACK 0x82.

use bytes::Bytes;
use moth_plugin_api::AuthStep;
use tokio::io::AsyncWriteExt;

use super::*;
use crate::access::enhanced::{Outcome, Step};
use crate::codec;
use crate::packet::{Auth, Protocol, ReasonCode};

/// What a successful exchange leaves for the CONNACK and for re-authentication.
pub(in crate::server) struct EnhancedAuth {
    /// The method, echoed in CONNACK and required of every later AUTH.
    pub method: String,
    /// The plugin's last data (the server's proof, say), sent in CONNACK.
    pub data: Option<Bytes>,
}

/// Runs the exchange for `method`. On success the CONNECT's user name is
/// what the method proved; where the listener takes the user name from the
/// client certificate, a method that proves another user is refused.
/// Returns the plugin that decided and what CONNACK carries.
pub(super) async fn exchange(
    ctx: &Shared,
    io: &mut Io,
    info: &ConnInfo,
    connect: &mut Connect,
    client_id: &str,
    method: String,
    shutdown: &mut Shutdown,
) -> Result<(String, EnhancedAuth), Ended> {
    let first = AuthStep {
        method: method.clone(),
        client_id: client_id.to_string(),
        username: connect.username.clone(),
        listener: info.listener.to_string(),
        peer_addr: info.peer.to_string(),
        ..AuthStep::default()
    };
    let record = |p: &str, answer, t| ctx.stats.record_auth(p, answer, t);
    let data = connect.properties.authentication_data.as_deref().map(<[u8]>::to_vec);
    let mut step = ctx.access.enhanced_start(first, data, record).await;
    let outcome = loop {
        match step {
            Step::Done(outcome) => break outcome,
            Step::Challenge(exchange, challenge) => {
                let reason = ReasonCode::CONTINUE_AUTHENTICATION;
                let auth =
                    Auth { reason, method: Some(method.clone()), data: Some(challenge.into()), ..Auth::default() };
                send_now(io, info, &Packet::Auth(auth)).await?;
                let answer = match read_auth(ctx, io, info, &method, shutdown).await {
                    Ok(answer) => answer,
                    Err(Some(why)) => return refused(connect, client_id, ConnectReturnCode::ProtocolError, why, None),
                    Err(None) => return Err(Ended::Closed),
                };
                step = exchange.next(answer, record).await;
            }
        }
    };
    match outcome {
        Outcome::Success { data, username, plugin } => {
            match username {
                // The certificate names the user: the method must agree.
                Some(user) if info.identity_as_username && connect.username.as_deref() != Some(&user) => {
                    let why = format!("{method}: the method proved user `{user}`, the certificate another");
                    return refused(connect, client_id, ConnectReturnCode::NotAuthorized, why, Some(plugin));
                }
                Some(user) => connect.username = Some(user),
                None => {}
            }
            Ok((plugin, EnhancedAuth { method, data: data.map(Bytes::from) }))
        }
        Outcome::Refused { bad_credentials, reason, plugin } => {
            let code = if bad_credentials {
                ConnectReturnCode::BadUsernameOrPassword
            } else {
                ConnectReturnCode::NotAuthorized
            };
            refused(connect, client_id, code, format!("{method}: {reason}"), Some(plugin))
        }
        Outcome::UnknownMethod => {
            let why = format!("no authentication plugin runs the method `{method}`");
            refused(connect, client_id, ConnectReturnCode::BadAuthenticationMethod, why, None)
        }
    }
}

/// The exchange's refusal, with the plugin that decided.
fn refused<T>(
    connect: &Connect,
    client_id: &str,
    code: ConnectReturnCode,
    reason: String,
    plugin: Option<String>,
) -> Result<T, Ended> {
    let mut r = Refusal::new(code, reason, connect, client_id);
    r.plugin = plugin;
    Err(Ended::Refused(r))
}

/// Writes one packet at once: the client answers it before anything else
/// goes out.
async fn send_now(io: &mut Io, info: &ConnInfo, packet: &Packet) -> Result<(), Ended> {
    io.emit(packet);
    if io.oversized {
        conn_log!(info, info, "closed: the client's maximum packet size is too small for the authentication challenge");
        return Err(Ended::Closed);
    }
    let written = tokio::time::timeout(CONNECT_TIMEOUT, io.stream.write_all(&io.outbuf)).await;
    if !matches!(written, Ok(Ok(()))) {
        conn_log!(info, info, "closed: the authentication challenge could not be written");
        return Err(Ended::Closed);
    }
    bump(&mut io.pending.bytes_sent, io.outbuf.len());
    io.outbuf.clear();
    Ok(())
}

/// The client's answer to a challenge: its AUTH 0x18 with the same method,
/// within [`CONNECT_TIMEOUT`]. Returns the answer's data; `Err(Some)` for
/// a protocol error, `Err(None)` when the connection ended (logged).
async fn read_auth(
    ctx: &Shared,
    io: &mut Io,
    info: &ConnInfo,
    method: &str,
    shutdown: &mut Shutdown,
) -> Result<Option<Vec<u8>>, Option<String>> {
    let max_packet_size = ctx.config.limits.max_packet_size;
    let protocol_error = |why: &str| Err(Some(why.to_string()));
    let next = async {
        loop {
            match codec::decode(&mut io.inbuf, max_packet_size, Protocol::V5) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(format!("malformed packet during authentication: {e}")),
            }
            match io.stream.read_buf(&mut io.inbuf).await {
                Ok(0) => return Err("client left during authentication".into()),
                Ok(n) => bump(&mut io.pending.bytes_received, n),
                Err(e) => return Err(format!("i/o error during authentication: {e}")),
            }
        }
    };
    let packet = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, next) => match r {
            Ok(Ok(p)) => p,
            Ok(Err(why)) => {
                conn_log!(info, info, "closed: {why}");
                return Err(None);
            }
            Err(_) => {
                let secs = CONNECT_TIMEOUT.as_secs();
                conn_log!(info, info, "closed: no answer to the authentication challenge within {secs}s");
                return Err(None);
            }
        },
        _ = shutdown.recv() => return Err(None),
    };
    bump(&mut io.pending.packets_received, 1);
    match packet {
        Packet::Auth(a) if a.reason != ReasonCode::CONTINUE_AUTHENTICATION => {
            protocol_error("AUTH before CONNACK must say 0x18 continue authentication")
        }
        Packet::Auth(a) if a.method.as_deref() != Some(method) => {
            protocol_error("AUTH names another authentication method than the CONNECT")
        }
        Packet::Auth(a) => Ok(a.data.map(|d| d.to_vec())),
        Packet::Disconnect(_) => {
            conn_log!(info, info, "client sent DISCONNECT during authentication");
            Err(None)
        }
        other => protocol_error(&format!("{} before CONNACK, while authenticating [MQTT-3.1.2-30]", other.name())),
    }
}
