//! Re-authentication of a connected MQTT 5 client [MQTT 5 §4.12.1]: an
//! AUTH 0x19 with the CONNECT's method starts the exchange again, run by
//! the same plugins (`access/enhanced.rs`) while the client's other traffic
//! goes on. The plugin's calls run as a future the connection polls beside
//! its socket (`Live::poll_reauth`), so no packet waits for them.
//!
//! Success answers AUTH 0x00. A refusal, an error or an exchange still
//! unfinished [`CONNECT_TIMEOUT`] after it began ends the connection with
//! DISCONNECT 0x87, as the standard advises; a re-authentication that
//! proves another user than the connection's is a refusal too: the user
//! name a connection's topic checks and session belong to never changes.

use std::future::Future;

use moth_plugin_api::AuthStep;

use super::*;
use crate::access::enhanced::{Exchange, Outcome, Step};
use crate::packet::Auth;

/// The plugin's answer to one step, being worked out.
type Pending = Pin<Box<dyn Future<Output = Step> + Send>>;

/// A re-authentication under way; exists only while one is.
pub(in crate::server) struct Reauth {
    /// The plugin's call; `None` while the client's answer to a challenge
    /// is awaited.
    pending: Option<Pending>,
    /// The exchange, between a challenge and the client's answer.
    exchange: Option<Exchange>,
    /// When the whole re-authentication must be over.
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Live {
    /// An AUTH from the connected client: starts a re-authentication (0x19)
    /// or answers its challenge (0x18).
    pub(super) fn on_auth(&mut self, a: Auth) -> Result<(), Close> {
        let ctx = self.ctx.clone();
        let client = &mut self.client;
        let Some(v5) = client.v5.as_deref_mut() else {
            return Err(Close::protocol("AUTH is an MQTT 5 packet"));
        };
        let Some(method) = v5.auth_method.as_deref() else {
            return Err(Close::protocol("AUTH without an authentication method in CONNECT"));
        };
        if a.method.as_deref() != Some(method) {
            return Err(Close::protocol("AUTH names another authentication method than the CONNECT"));
        }
        let data = a.data.map(|d| d.to_vec());
        match (a.reason, v5.reauth.as_deref_mut()) {
            (ReasonCode::REAUTHENTICATE, None) => {
                let step = AuthStep {
                    method: method.to_string(),
                    reauthenticate: true,
                    client_id: client.session.client_id().to_string(),
                    username: client.username.as_deref().map(str::to_string),
                    listener: client.listener.to_string(),
                    peer_addr: client.peer.to_string(),
                    ..AuthStep::default()
                };
                let call = async move {
                    ctx.access.enhanced_start(step, data, |p, answer, t| ctx.stats.record_auth(p, answer, t)).await
                };
                v5.reauth = Some(Box::new(Reauth {
                    pending: Some(Box::pin(call)),
                    exchange: None,
                    deadline: Box::pin(tokio::time::sleep(CONNECT_TIMEOUT)),
                }));
                debug!(client_id = %client.session.client_id(), method, "re-authentication started");
                Ok(())
            }
            (ReasonCode::REAUTHENTICATE, Some(_)) => {
                Err(Close::protocol("AUTH 0x19 while a re-authentication is under way"))
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(r)) if r.pending.is_none() => {
                let Some(exchange) = r.exchange.take() else {
                    return Err(Close::protocol("AUTH 0x18 answers no challenge"));
                };
                let call = async move { exchange.next(data, |p, answer, t| ctx.stats.record_auth(p, answer, t)).await };
                r.pending = Some(Box::pin(call));
                Ok(())
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, _) => Err(Close::protocol("AUTH 0x18 answers no challenge")),
            _ => Err(Close::protocol("a client's AUTH says 0x18 continue authentication or 0x19 re-authenticate")),
        }
    }

    /// Moves a re-authentication on: `Ready(Ok)` when a step ended (a
    /// challenge or the success went into the output), `Ready(Err)` when it
    /// ends the connection, `Pending` otherwise (nothing under way costs a
    /// branch).
    pub(super) fn poll_reauth(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Close>> {
        let Some(v5) = self.client.v5.as_deref_mut() else { return Poll::Pending };
        let Some(r) = v5.reauth.as_deref_mut() else { return Poll::Pending };
        if r.deadline.as_mut().poll(cx).is_ready() {
            let secs = CONNECT_TIMEOUT.as_secs();
            return Poll::Ready(Err(Close::NotAuthorized(format!("not finished within {secs}s"))));
        }
        let Some(pending) = r.pending.as_mut() else { return Poll::Pending };
        let Poll::Ready(step) = pending.as_mut().poll(cx) else { return Poll::Pending };
        r.pending = None;
        let method = v5.auth_method.as_deref().map(str::to_string);
        let reply = |reason, data: Option<Vec<u8>>| {
            Packet::Auth(Auth { reason, method: method.clone(), data: data.map(Into::into), ..Auth::default() })
        };
        let outcome = match step {
            Step::Challenge(exchange, challenge) => {
                r.exchange = Some(exchange);
                self.io.emit(&reply(ReasonCode::CONTINUE_AUTHENTICATION, Some(challenge)));
                return Poll::Ready(Ok(()));
            }
            Step::Done(outcome) => outcome,
        };
        match outcome {
            Outcome::Success { data, username, plugin } => {
                if let Some(user) = username
                    && Some(user.as_str()) != self.client.username.as_deref()
                {
                    let why = format!("{plugin}: the method proved user `{user}`, not the connection's");
                    return Poll::Ready(Err(Close::NotAuthorized(why)));
                }
                v5.reauth = None;
                self.io.emit(&reply(ReasonCode::SUCCESS, data));
                let client = &self.client;
                conn_log!(info, client, client_id = %client.client_id(), plugin, "client re-authenticated");
            }
            Outcome::Refused { reason, plugin, .. } => {
                return Poll::Ready(Err(Close::NotAuthorized(format!("{plugin}: {reason}"))));
            }
            Outcome::UnknownMethod => {
                let why = "no authentication plugin runs this method any more";
                return Poll::Ready(Err(Close::Protocol(ReasonCode::BAD_AUTHENTICATION_METHOD, why.into())));
            }
        }
        Poll::Ready(Ok(()))
    }
}
