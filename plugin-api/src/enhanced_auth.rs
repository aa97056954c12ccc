//! (1.4) MQTT 5 enhanced authentication: a challenge/response method
//! (SCRAM-SHA-256, Kerberos, a token exchange) run by a plugin across as
//! many round trips as it needs [MQTT 5 §4.12].
//!
//! # How an exchange goes
//!
//! A client that names an *authentication method* in its CONNECT starts an
//! exchange. The broker asks the plugins of `auth.plugins` that declare
//! [`Capabilities::ENHANCED_AUTHENTICATE`](crate::Capabilities::ENHANCED_AUTHENTICATE),
//! in the configured order, with the first [`AuthStep`] (`step` 1, the
//! CONNECT's authentication data, no `state`):
//! - a plugin that does not do that method answers [`AuthReply::NotMine`]
//!   and the next is asked; when every one says so (or none declares the
//!   capability), the client is refused with CONNACK 0x8C "bad
//!   authentication method";
//! - the first that answers anything else owns the exchange, and the
//!   ordinary `authenticate` calls of the chain are *not* made for this
//!   client: the method is its authentication;
//! - [`AuthReply::Continue`] sends the client an AUTH packet (reason 0x18)
//!   with the reply's data; the client's answering AUTH becomes the next
//!   step, given to the same plugin with the `state` it returned, so a
//!   plugin keeps nothing per client between steps;
//! - [`AuthReply::Success`] admits the client: CONNACK 0 carries the
//!   method and the reply's data (SCRAM's server signature, say);
//! - [`AuthReply::Deny`] or [`AuthReply::BadCredentials`] refuses it with
//!   CONNACK 0x87 "not authorized" or 0x86 "bad user name or password"; an
//!   error, a panic, a timeout or a reply the broker cannot read refuses
//!   with 0x87, like a `DENY`.
//!
//! After CONNACK the client may *re-authenticate* (AUTH with reason 0x19,
//! same method): the same steps run again with
//! [`AuthStep::reauthenticate`] set, while the client's other traffic goes
//! on. Success answers AUTH 0x00; a refusal ends the connection with
//! DISCONNECT 0x87. A re-authentication cannot change who the client is: a
//! success naming another user than the connection's is a refusal.
//!
//! # Limits (the broker's, not the plugin's)
//!
//! - at most [`MAX_STEPS`] steps per exchange; one more is a refusal;
//! - the `state` a plugin returns is at most [`MAX_STATE`] bytes;
//! - the client has `10 s` (the broker's CONNECT timeout) to answer each
//!   challenge before the CONNACK, and the whole exchange must end within
//!   that long after the re-authentication began;
//! - each call runs on the blocking pool under `plugin-timeout` and
//!   `plugin-concurrency`, like `authenticate`, unless the plugin declares
//!   [`Capabilities::FAST_AUTHENTICATE`](crate::Capabilities::FAST_AUTHENTICATE).
//!
//! # On the wire between broker and plugin
//!
//! The call is the [`PluginObject::extension`](crate::PluginObject::extension)
//! named [`EXTENSION`], JSON text in and out, so that no layout of 1.0
//! changes. [`AuthStep::to_json`] and [`AuthReply::from_json`] are what the
//! broker uses; the [`crate::Plugin::enhanced_auth`] method gets and returns
//! the typed values, so a plugin never sees the JSON. Its form, for a
//! plugin written without this crate's export glue:
//!
//! ```text
//! step:  {"method": "SCRAM-SHA-256", "data": "<base64>" | null, "state": "<text>" | null,
//!         "step": 1, "reauthenticate": false, "client_id": "dev1",
//!         "username": "alice" | null, "listener": "default", "peer_addr": "127.0.0.1:50000"}
//! reply: {"answer": "not-mine"}
//!      | {"answer": "continue", "data": "<base64>", "state": "<text>"}
//!      | {"answer": "success", "data": "<base64>" | null, "username": "<text>" | null}
//!      | {"answer": "deny", "reason": "<text>"}
//!      | {"answer": "bad-credentials", "reason": "<text>"}
//! ```
//!
//! Binary data is standard base64 with padding (RFC 4648 §4); see
//! [`encode_base64`] and [`decode_base64`]. An unknown `answer` is a
//! refusal (fail closed).

use serde_json::{Map, Value, json};

/// The name of the extension call that carries one step.
pub const EXTENSION: &str = "enhanced-auth/1";

/// The most steps one exchange may take, the first included; SCRAM takes 2.
pub const MAX_STEPS: u32 = 16;

/// The largest `state` a plugin may hand back with [`AuthReply::Continue`], in bytes.
pub const MAX_STATE: usize = 64 * 1024;

/// One step of an exchange, as the broker asks it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthStep {
    /// The authentication method the client named in CONNECT (every step
    /// of an exchange has the same one).
    pub method: String,
    /// The client's authentication data for this step: the CONNECT's for
    /// step 1, then each AUTH packet's. `None` when the packet had none.
    pub data: Option<Vec<u8>>,
    /// What this plugin returned with its last [`AuthReply::Continue`] in
    /// this exchange; `None` on step 1.
    pub state: Option<String>,
    /// 1 for the first step of an exchange, then 2, 3, ...
    pub step: u32,
    /// Whether this exchange is a re-authentication of a connected client
    /// (AUTH 0x19) rather than the CONNECT's.
    pub reauthenticate: bool,
    /// The client identifier (the assigned one for an empty id).
    pub client_id: String,
    /// The CONNECT's user name, if it had one; for a re-authentication, the
    /// user name the connection was admitted with.
    pub username: Option<String>,
    /// The listener the client is connected to (its key under `listeners`).
    pub listener: String,
    /// The client's address, `ip:port`, as in [`crate::AuthRequest::peer_addr`].
    pub peer_addr: String,
}

/// A plugin's answer to one [`AuthStep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// This plugin does not do the step's method: ask the next one. Only
    /// meaningful on step 1; later it counts as an error.
    NotMine,
    /// Send the client `data` in an AUTH packet (0x18) and call again with
    /// its answer and `state` (at most [`MAX_STATE`] bytes).
    Continue {
        /// The challenge for the client.
        data: Vec<u8>,
        /// Given back in the next step's [`AuthStep::state`].
        state: String,
    },
    /// The client proved who it is.
    Success {
        /// Sent with the CONNACK (or AUTH 0x00): the server's proof, say.
        data: Option<Vec<u8>>,
        /// Who the client is, as the method established it: topic checks,
        /// session ownership and logs use this user name instead of the
        /// CONNECT's. `None` keeps the CONNECT's.
        username: Option<String>,
    },
    /// Refused: CONNACK 0x87 (or DISCONNECT 0x87 on re-authentication).
    /// The reason is logged, never sent to the client.
    Deny(String),
    /// Refused for wrong credentials: CONNACK 0x86. The reason is logged only.
    BadCredentials(String),
}

impl AuthStep {
    /// The step as the JSON text the extension call carries.
    pub fn to_json(&self) -> String {
        json!({
            "method": self.method,
            "data": self.data.as_deref().map(encode_base64),
            "state": self.state,
            "step": self.step,
            "reauthenticate": self.reauthenticate,
            "client_id": self.client_id,
            "username": self.username,
            "listener": self.listener,
            "peer_addr": self.peer_addr,
        })
        .to_string()
    }

    /// Reads a step from the extension call's JSON text.
    pub fn from_json(text: &str) -> Result<AuthStep, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("enhanced-auth step: {e}"))?;
        let o = v.as_object().ok_or("enhanced-auth step: not a JSON object")?;
        Ok(AuthStep {
            method: text_field(o, "method")?.ok_or("enhanced-auth step: no method")?,
            data: binary_field(o, "data")?,
            state: text_field(o, "state")?,
            step: o.get("step").and_then(Value::as_u64).and_then(|s| u32::try_from(s).ok()).unwrap_or(1),
            reauthenticate: o.get("reauthenticate").and_then(Value::as_bool).unwrap_or(false),
            client_id: text_field(o, "client_id")?.unwrap_or_default(),
            username: text_field(o, "username")?,
            listener: text_field(o, "listener")?.unwrap_or_default(),
            peer_addr: text_field(o, "peer_addr")?.unwrap_or_default(),
        })
    }
}

impl AuthReply {
    /// The reply as the JSON text the extension call returns.
    pub fn to_json(&self) -> String {
        let v = match self {
            AuthReply::NotMine => json!({"answer": "not-mine"}),
            AuthReply::Continue { data, state } => {
                json!({"answer": "continue", "data": encode_base64(data), "state": state})
            }
            AuthReply::Success { data, username } => {
                json!({"answer": "success", "data": data.as_deref().map(encode_base64), "username": username})
            }
            AuthReply::Deny(reason) => json!({"answer": "deny", "reason": reason}),
            AuthReply::BadCredentials(reason) => json!({"answer": "bad-credentials", "reason": reason}),
        };
        v.to_string()
    }

    /// Reads a reply from the extension call's JSON text. An `Err` (bad
    /// JSON, an unknown answer, bad base64) is a refusal to the broker.
    pub fn from_json(text: &str) -> Result<AuthReply, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("enhanced-auth reply: {e}"))?;
        let o = v.as_object().ok_or("enhanced-auth reply: not a JSON object")?;
        let reason = || text_field(o, "reason").map(Option::unwrap_or_default);
        match o.get("answer").and_then(Value::as_str) {
            Some("not-mine") => Ok(AuthReply::NotMine),
            Some("continue") => Ok(AuthReply::Continue {
                data: binary_field(o, "data")?.unwrap_or_default(),
                state: text_field(o, "state")?.unwrap_or_default(),
            }),
            Some("success") => {
                Ok(AuthReply::Success { data: binary_field(o, "data")?, username: text_field(o, "username")? })
            }
            Some("deny") => Ok(AuthReply::Deny(reason()?)),
            Some("bad-credentials") => Ok(AuthReply::BadCredentials(reason()?)),
            Some(other) => Err(format!("enhanced-auth reply: unknown answer `{other}`")),
            None => Err("enhanced-auth reply: no answer".into()),
        }
    }
}

fn text_field(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("enhanced-auth: `{key}` is not a string")),
    }
}

fn binary_field(o: &Map<String, Value>, key: &str) -> Result<Option<Vec<u8>>, String> {
    text_field(o, key)?.map(|s| decode_base64(&s).map_err(|e| format!("enhanced-auth: `{key}`: {e}"))).transpose()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
///
/// ```
/// use moth_plugin_api::enhanced_auth::{decode_base64, encode_base64};
/// assert_eq!(encode_base64(b"foob"), "Zm9vYg==");
/// assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
/// ```
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding (RFC 4648 §4); refuses anything
/// else (missing padding, other alphabets, white space).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err("base64 length is not a multiple of 4".into());
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = (i + 1) * 4 == bytes.len();
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err("misplaced base64 padding".into());
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or("not base64")?;
            n = n << 6 | v as u32;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_base64() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", b"\x00\xff\x10"] {
            assert_eq!(decode_base64(&encode_base64(data)).unwrap(), data);
        }
        assert_eq!(encode_base64(b"\x00\xffab"), "AP9hYg==");
        for bad in ["Zg", "Zg=a", "Z===", "Zm9v\n", "Zm9-", "=Zm9"] {
            assert!(decode_base64(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn steps_and_replies_round_trip_through_json() {
        let step = AuthStep {
            method: "SCRAM-SHA-256".into(),
            data: Some(b"n,,n=alice,r=abc".to_vec()),
            state: Some("s1".into()),
            step: 2,
            reauthenticate: true,
            client_id: "dev1".into(),
            username: None,
            listener: "default".into(),
            peer_addr: "127.0.0.1:9".into(),
        };
        assert_eq!(AuthStep::from_json(&step.to_json()).unwrap(), step);
        for reply in [
            AuthReply::NotMine,
            AuthReply::Continue { data: b"r=abcdef,s=c2FsdA==,i=4096".to_vec(), state: "x".into() },
            AuthReply::Success { data: Some(b"v=sig".to_vec()), username: Some("alice".into()) },
            AuthReply::Success { data: None, username: None },
            AuthReply::Deny("no".into()),
            AuthReply::BadCredentials("wrong proof".into()),
        ] {
            assert_eq!(AuthReply::from_json(&reply.to_json()).unwrap(), reply);
        }
    }

    #[test]
    fn a_reply_the_broker_cannot_read_is_an_error() {
        for bad in ["", "[]", "{}", r#"{"answer":"maybe"}"#, r#"{"answer":"continue","data":"!!"}"#] {
            assert!(AuthReply::from_json(bad).is_err(), "{bad}");
        }
        assert!(AuthStep::from_json(r#"{"data":null}"#).is_err(), "a step names its method");
    }
}
