//! Why a connection ends, and what an MQTT 5 client is told about it.

use super::*;

/// Why a connection ended, for the log, for the will and for the reason
/// code an MQTT 5 client is sent.
#[derive(Debug)]
pub(super) enum Close {
    /// DISCONNECT received: no will [MQTT-3.14.4-3], unless an MQTT 5
    /// client asked for it (reason 0x04, `true` here).
    Disconnect(bool),
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    Io(std::io::Error),
    /// The client broke a rule: the reason code and what happened.
    Protocol(ReasonCode, String),
    KeepAlive,
    TakenOver,
    Shutdown,
    /// A re-authentication failed: DISCONNECT 0x87. What the plugin said is
    /// for the log; the client learns only that it is not authorized.
    NotAuthorized(String),
    /// `memory-limit` reached: an MQTT 3.1.1 client's QoS 1/2 PUBLISH can
    /// be neither refused (3.1.1 has no negative acknowledgement) nor
    /// acknowledged (the broker would lose it), so its connection ends and
    /// the client sends it again later.
    Overloaded,
}

impl Close {
    pub(super) fn sends_will(&self) -> bool {
        match self {
            Close::Disconnect(with_will) => *with_will,
            Close::Shutdown => false,
            _ => true,
        }
    }

    /// A protocol violation of the rules the codec cannot check.
    pub(super) fn protocol(why: impl Into<String>) -> Close {
        Close::Protocol(ReasonCode::PROTOCOL_ERROR, why.into())
    }

    /// The DISCONNECT an MQTT 5 client is sent before the socket closes
    /// [MQTT 5 §4.13]: `None` when the client ended it or is gone.
    pub(super) fn disconnect(&self) -> Option<Disconnect> {
        let (reason, why) = match self {
            Close::Disconnect(_) | Close::PeerClosed | Close::Io(_) => return None,
            Close::Protocol(code, why) => (*code, why.as_str()),
            Close::KeepAlive => (ReasonCode::KEEP_ALIVE_TIMEOUT, "keep-alive timeout"),
            Close::TakenOver => (ReasonCode::SESSION_TAKEN_OVER, "another connection took the session over"),
            Close::Shutdown => (ReasonCode::SERVER_SHUTTING_DOWN, "the broker is shutting down"),
            Close::Overloaded => (ReasonCode::QUOTA_EXCEEDED, "memory-limit reached"),
            Close::NotAuthorized(_) => (ReasonCode::NOT_AUTHORIZED, "re-authentication failed"),
        };
        let mut d = Disconnect::new(reason);
        // A reason string is always allowed on DISCONNECT [MQTT-3.14.2-3];
        // kept short, as it counts against the client's maximum packet size.
        d.reason_string = Some(why.chars().take(120).collect());
        Some(d)
    }
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Disconnect(false) => f.write_str("client sent DISCONNECT"),
            Close::Disconnect(true) => f.write_str("client sent DISCONNECT with will message"),
            Close::PeerClosed => f.write_str("connection closed by client without DISCONNECT"),
            Close::Io(e) => write!(f, "i/o error: {e}"),
            Close::Protocol(code, why) => write!(f, "protocol violation ({code}): {why}"),
            Close::KeepAlive => f.write_str("keep-alive timeout"),
            Close::TakenOver => f.write_str("session taken over by a new connection with the same client id"),
            Close::Shutdown => f.write_str("broker shutting down"),
            Close::Overloaded => f.write_str("memory-limit reached: a QoS 1/2 PUBLISH that 3.1.1 cannot refuse"),
            Close::NotAuthorized(why) => write!(f, "re-authentication failed: {why}"),
        }
    }
}
