//! MQTT 5 reason codes (OASIS MQTT 5.0, section 2.4), and which packet may
//! carry which.
//!
//! A reason code is one byte; below 0x80 is success, from 0x80 up a
//! failure. The same byte means the same thing in every packet that allows
//! it, so one type with named constants serves all of them, and
//! [`ReasonCode::allowed_in`] says where each may appear.

use std::fmt;

/// One MQTT 5 reason code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

/// The packets that carry reason codes, for [`ReasonCode::allowed_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonPacket {
    /// CONNACK.
    Connack,
    /// PUBACK and PUBREC.
    PubackPubrec,
    /// PUBREL and PUBCOMP.
    PubrelPubcomp,
    /// SUBACK.
    Suback,
    /// UNSUBACK.
    Unsuback,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth,
}

macro_rules! reason_codes {
    ($($name:ident = $value:literal, $text:literal, [$($packet:ident),*];)*) => {
        impl ReasonCode {
            $(
                #[doc = concat!(stringify!($value), ": ", $text, ".")]
                pub const $name: ReasonCode = ReasonCode($value);
            )*

            /// The standard's name for the code, for logs; `None` for a byte
            /// that is no reason code.
            pub fn text(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }

            /// Whether `packet` may carry this code.
            pub fn allowed_in(self, packet: ReasonPacket) -> bool {
                use ReasonPacket::*;
                // Several names share a byte (0x00 is success, normal
                // disconnection and granted QoS 0): any of them counts.
                let mut allowed = false;
                $(
                    if self.0 == $value {
                        allowed |= [$($packet),*].contains(&packet);
                    }
                )*
                allowed
            }
        }
    };
}

reason_codes! {
    SUCCESS = 0x00, "success", [Connack, PubackPubrec, PubrelPubcomp, Unsuback, Auth, Disconnect, Suback];
    GRANTED_QOS_1 = 0x01, "granted QoS 1", [Suback];
    GRANTED_QOS_2 = 0x02, "granted QoS 2", [Suback];
    DISCONNECT_WITH_WILL = 0x04, "disconnect with will message", [Disconnect];
    NO_MATCHING_SUBSCRIBERS = 0x10, "no matching subscribers", [PubackPubrec];
    NO_SUBSCRIPTION_EXISTED = 0x11, "no subscription existed", [Unsuback];
    CONTINUE_AUTHENTICATION = 0x18, "continue authentication", [Auth];
    REAUTHENTICATE = 0x19, "re-authenticate", [Auth];
    UNSPECIFIED_ERROR = 0x80, "unspecified error", [Connack, PubackPubrec, Suback, Unsuback, Disconnect];
    MALFORMED_PACKET = 0x81, "malformed packet", [Connack, Disconnect];
    PROTOCOL_ERROR = 0x82, "protocol error", [Connack, Disconnect];
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "implementation specific error", [Connack, PubackPubrec, Suback, Unsuback, Disconnect];
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "unsupported protocol version", [Connack];
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "client identifier not valid", [Connack];
    BAD_USER_NAME_OR_PASSWORD = 0x86, "bad user name or password", [Connack];
    NOT_AUTHORIZED = 0x87, "not authorized", [Connack, PubackPubrec, Suback, Unsuback, Disconnect];
    SERVER_UNAVAILABLE = 0x88, "server unavailable", [Connack];
    SERVER_BUSY = 0x89, "server busy", [Connack, Disconnect];
    BANNED = 0x8A, "banned", [Connack];
    SERVER_SHUTTING_DOWN = 0x8B, "server shutting down", [Disconnect];
    BAD_AUTHENTICATION_METHOD = 0x8C, "bad authentication method", [Connack, Disconnect];
    KEEP_ALIVE_TIMEOUT = 0x8D, "keep alive timeout", [Disconnect];
    SESSION_TAKEN_OVER = 0x8E, "session taken over", [Disconnect];
    TOPIC_FILTER_INVALID = 0x8F, "topic filter invalid", [Suback, Unsuback, Disconnect];
    TOPIC_NAME_INVALID = 0x90, "topic name invalid", [Connack, PubackPubrec, Disconnect];
    PACKET_IDENTIFIER_IN_USE = 0x91, "packet identifier in use", [PubackPubrec, Suback, Unsuback];
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "packet identifier not found", [PubrelPubcomp];
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "receive maximum exceeded", [Disconnect];
    TOPIC_ALIAS_INVALID = 0x94, "topic alias invalid", [Disconnect];
    PACKET_TOO_LARGE = 0x95, "packet too large", [Connack, Disconnect];
    MESSAGE_RATE_TOO_HIGH = 0x96, "message rate too high", [Disconnect];
    QUOTA_EXCEEDED = 0x97, "quota exceeded", [Connack, PubackPubrec, Suback, Disconnect];
    ADMINISTRATIVE_ACTION = 0x98, "administrative action", [Disconnect];
    PAYLOAD_FORMAT_INVALID = 0x99, "payload format invalid", [Connack, PubackPubrec, Disconnect];
    RETAIN_NOT_SUPPORTED = 0x9A, "retain not supported", [Connack, Disconnect];
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported", [Connack, Disconnect];
    USE_ANOTHER_SERVER = 0x9C, "use another server", [Connack, Disconnect];
    SERVER_MOVED = 0x9D, "server moved", [Connack, Disconnect];
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "shared subscriptions not supported", [Suback, Disconnect];
    CONNECTION_RATE_EXCEEDED = 0x9F, "connection rate exceeded", [Connack, Disconnect];
    MAXIMUM_CONNECT_TIME = 0xA0, "maximum connect time", [Disconnect];
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "subscription identifiers not supported", [Suback, Disconnect];
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "wildcard subscriptions not supported", [Suback, Disconnect];
}

impl ReasonCode {
    /// 0x00 in DISCONNECT: the connection ends normally, the will is dropped.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::SUCCESS;
    /// 0x00 in SUBACK: granted QoS 0.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::SUCCESS;

    /// Whether the code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)?;
        if let Some(text) = self.text() {
            write!(f, " ({text})")?;
        }
        Ok(())
    }
}

/// `0x87 not authorized`: the code and the standard's name, for logs.
impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} {}", self.0, self.text().unwrap_or("unknown reason code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_allowed_only_where_the_standard_lists_them() {
        use ReasonPacket::*;
        assert!(ReasonCode::SUCCESS.allowed_in(Disconnect));
        assert!(ReasonCode::GRANTED_QOS_2.allowed_in(Suback));
        assert!(!ReasonCode::GRANTED_QOS_2.allowed_in(Connack));
        assert!(ReasonCode::NO_MATCHING_SUBSCRIBERS.allowed_in(PubackPubrec));
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.allowed_in(PubrelPubcomp));
        assert!(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND.allowed_in(PubrelPubcomp));
        assert!(ReasonCode::SESSION_TAKEN_OVER.allowed_in(Disconnect));
        assert!(!ReasonCode::SESSION_TAKEN_OVER.allowed_in(Connack));
        assert!(!ReasonCode(0x03).allowed_in(Connack));
        assert!(!ReasonCode(0xFF).allowed_in(Disconnect));
    }

    #[test]
    fn logs_show_the_byte_and_the_name() {
        assert_eq!(ReasonCode::NOT_AUTHORIZED.to_string(), "0x87 not authorized");
        assert_eq!(format!("{:?}", ReasonCode(0x10)), "0x10 (no matching subscribers)");
        assert_eq!(ReasonCode(0x42).to_string(), "0x42 unknown reason code");
        assert!(ReasonCode::UNSPECIFIED_ERROR.is_error() && !ReasonCode::NO_SUBSCRIPTION_EXISTED.is_error());
    }
}
