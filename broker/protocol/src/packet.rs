//! MQTT 5.0, 3.1.1 and 3.1 control packets as plain data.
//!
//! These types are what the codec (`codec/`) produces and consumes. They
//! carry no I/O and no broker state, so protocol logic can be unit-tested by
//! building them by hand. Payloads are [`Bytes`] so that one received PUBLISH
//! can be handed to every subscriber without copying it.
//!
//! One type serves every protocol version: MQTT 5's additions (properties,
//! reason codes, subscription options) are fields that 3.1.1 leaves at their
//! defaults and the 3.1.1 encoder does not write.

use std::sync::Arc;

use bytes::Bytes;

pub use crate::reason::ReasonCode;

/// Quality of service of a PUBLISH or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: delivered at most once, never acknowledged.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged by PUBACK, may arrive twice.
    AtLeastOnce = 1,
    /// QoS 2: the PUBREC / PUBREL / PUBCOMP exchange, exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a wire value, `None` for 3 and above (a protocol violation).
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// User properties: name/value string pairs, in order, names may repeat
/// [MQTT-3.1.3-10].
pub type UserProperties = Vec<(String, String)>;

/// Protocol revision announced in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Protocol {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V31,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    #[default]
    V311,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl Protocol {
    /// The protocol level byte sent on the wire.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V31 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol name CONNECT carries for this revision.
    pub fn name(self) -> &'static [u8] {
        match self {
            Protocol::V31 => b"MQIsdp",
            Protocol::V311 | Protocol::V5 => b"MQTT",
        }
    }

    /// How people write the version: `3.1`, `3.1.1`, `5.0`.
    pub fn version(self) -> &'static str {
        match self {
            Protocol::V31 => "3.1",
            Protocol::V311 => "3.1.1",
            Protocol::V5 => "5.0",
        }
    }

    /// Whether packets carry properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// The MQTT 5 properties an application message carries end to end: the
/// broker forwards them unchanged to every subscriber [MQTT-3.3.2-4...].
/// Shared (`Arc`) by every delivery of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageProperties {
    /// 1: the payload is UTF-8 text; 0 or absent: unspecified bytes.
    pub payload_format_indicator: Option<u8>,
    /// Seconds the message lives, as the publisher sent it. The broker
    /// sends the remaining lifetime instead when it forwards the message.
    pub message_expiry_interval: Option<u32>,
    /// A MIME type or any other description of the payload.
    pub content_type: Option<String>,
    /// The topic a requester expects the response on.
    pub response_topic: Option<String>,
    /// Opaque data the requester matches responses with.
    pub correlation_data: Option<Bytes>,
    /// The publisher's user properties, in order.
    pub user_properties: UserProperties,
}

impl MessageProperties {
    /// Whether no property is set (such a message is sent without any).
    pub fn is_empty(&self) -> bool {
        self == &MessageProperties::default()
    }
}

/// The last will carried by a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where the will is published.
    pub topic: Arc<str>,
    /// What it says.
    pub payload: Bytes,
    /// The QoS it is published with.
    pub qos: QoS,
    /// Whether it is published retained.
    pub retain: bool,
    /// MQTT 5: the will's message properties; `None` for 3.1.1.
    pub properties: Option<Arc<MessageProperties>>,
    /// MQTT 5: seconds between the connection's end and the will's
    /// publication (0: at once).
    pub delay_interval: u32,
}

impl Will {
    /// A will without MQTT 5 properties, published at once.
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Will {
        Will { topic: topic.into(), payload: payload.into(), qos, retain, properties: None, delay_interval: 0 }
    }
}

/// The MQTT 5 properties of a CONNECT; all absent for 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Seconds the session outlives the connection; absent means 0.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 PUBLISH the client accepts unacknowledged.
    pub receive_maximum: Option<u16>,
    /// The largest packet the client accepts.
    pub maximum_packet_size: Option<u32>,
    /// The highest topic alias the client accepts from the server.
    pub topic_alias_maximum: Option<u16>,
    /// Whether the client asks for response information in CONNACK.
    pub request_response_information: Option<bool>,
    /// Whether the server may send reason strings and user properties
    /// on packets other than PUBLISH, CONNACK and DISCONNECT.
    pub request_problem_information: Option<bool>,
    /// The client's user properties.
    pub user_properties: UserProperties,
    /// Enhanced authentication: the method's name.
    pub authentication_method: Option<String>,
    /// Enhanced authentication: the method's first data.
    pub authentication_data: Option<Bytes>,
}

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The revision the client speaks.
    pub protocol: Protocol,
    /// 3.1.1: clean session; MQTT 5: clean start.
    pub clean_session: bool,
    /// Keep-alive in seconds; 0 turns the keep-alive mechanism off.
    pub keep_alive: u16,
    /// May be empty: the broker assigns one when clean session is set
    /// (MQTT 5: always).
    pub client_id: String,
    /// The last will, if any.
    pub will: Option<Will>,
    /// The user name, if any.
    pub username: Option<String>,
    /// Binary data. In 3.1.1 only present when a username is; MQTT 5 allows
    /// it alone.
    pub password: Option<Bytes>,
    /// MQTT 5 properties; the default for 3.1.1.
    pub properties: ConnectProperties,
}

/// CONNACK results. 3.1.1 has the first six; MQTT 5 names more reasons, and
/// each has a code in both versions ([`ConnectReturnCode::v3_code`],
/// [`ConnectReturnCode::v5_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 3.1.1 0x00, MQTT 5 0x00.
    Accepted,
    /// 3.1.1 0x01, MQTT 5 0x84.
    UnacceptableProtocolVersion,
    /// 3.1.1 0x02, MQTT 5 0x85 (client identifier not valid).
    IdentifierRejected,
    /// 3.1.1 0x03, MQTT 5 0x88.
    ServerUnavailable,
    /// 3.1.1 0x04, MQTT 5 0x86.
    BadUsernameOrPassword,
    /// 3.1.1 0x05, MQTT 5 0x87.
    NotAuthorized,
    /// MQTT 5 0x80; 3.1.1 0x03.
    UnspecifiedError,
    /// MQTT 5 0x81; 3.1.1 0x03.
    MalformedPacket,
    /// MQTT 5 0x82; 3.1.1 0x03.
    ProtocolError,
    /// MQTT 5 0x83; 3.1.1 0x03.
    ImplementationSpecificError,
    /// MQTT 5 0x89; 3.1.1 0x03.
    ServerBusy,
    /// MQTT 5 0x8A; 3.1.1 0x05.
    Banned,
    /// MQTT 5 0x8C; 3.1.1 0x05.
    BadAuthenticationMethod,
    /// MQTT 5 0x90; 3.1.1 0x03.
    TopicNameInvalid,
    /// MQTT 5 0x95; 3.1.1 0x03.
    PacketTooLarge,
    /// MQTT 5 0x97; 3.1.1 0x03.
    QuotaExceeded,
    /// MQTT 5 0x99; 3.1.1 0x03.
    PayloadFormatInvalid,
    /// MQTT 5 0x9A; 3.1.1 0x03.
    RetainNotSupported,
    /// MQTT 5 0x9B; 3.1.1 0x03.
    QosNotSupported,
    /// MQTT 5 0x9C; 3.1.1 0x03.
    UseAnotherServer,
    /// MQTT 5 0x9D; 3.1.1 0x03.
    ServerMoved,
    /// MQTT 5 0x9F; 3.1.1 0x03.
    ConnectionRateExceeded,
}

impl ConnectReturnCode {
    const TABLE: [(ConnectReturnCode, u8, u8); 22] = {
        use ConnectReturnCode::*;
        [
            (Accepted, 0x00, 0x00),
            (UnacceptableProtocolVersion, 0x01, 0x84),
            (IdentifierRejected, 0x02, 0x85),
            (ServerUnavailable, 0x03, 0x88),
            (BadUsernameOrPassword, 0x04, 0x86),
            (NotAuthorized, 0x05, 0x87),
            (UnspecifiedError, 0x03, 0x80),
            (MalformedPacket, 0x03, 0x81),
            (ProtocolError, 0x03, 0x82),
            (ImplementationSpecificError, 0x03, 0x83),
            (ServerBusy, 0x03, 0x89),
            (Banned, 0x05, 0x8A),
            (BadAuthenticationMethod, 0x05, 0x8C),
            (TopicNameInvalid, 0x03, 0x90),
            (PacketTooLarge, 0x03, 0x95),
            (QuotaExceeded, 0x03, 0x97),
            (PayloadFormatInvalid, 0x03, 0x99),
            (RetainNotSupported, 0x03, 0x9A),
            (QosNotSupported, 0x03, 0x9B),
            (UseAnotherServer, 0x03, 0x9C),
            (ServerMoved, 0x03, 0x9D),
            (ConnectionRateExceeded, 0x03, 0x9F),
        ]
    };

    fn row(self) -> (ConnectReturnCode, u8, u8) {
        Self::TABLE.into_iter().find(|row| row.0 == self).unwrap_or((self, 0x03, 0x80))
    }

    /// The 3.1.1 return code byte (v5-only reasons fall back to the nearest
    /// 3.1.1 code: 0x05 for refusals of the client, 0x03 for the rest).
    pub fn v3_code(self) -> u8 {
        self.row().1
    }

    /// The MQTT 5 reason code byte.
    pub fn v5_code(self) -> u8 {
        self.row().2
    }

    /// The code byte for `protocol`.
    pub fn code(self, protocol: Protocol) -> u8 {
        if protocol.is_v5() { self.v5_code() } else { self.v3_code() }
    }

    /// The result a 3.1.1 return code byte stands for; `None` above 5.
    pub fn from_v3(v: u8) -> Option<ConnectReturnCode> {
        Self::TABLE.into_iter().take(6).find(|row| row.1 == v).map(|row| row.0)
    }

    /// The result an MQTT 5 CONNACK reason code stands for; `None` for a
    /// byte that is not a CONNACK reason code.
    pub fn from_v5(v: u8) -> Option<ConnectReturnCode> {
        Self::TABLE.into_iter().find(|row| row.2 == v).map(|row| row.0)
    }

    /// Whether the connection is accepted.
    pub fn is_accepted(self) -> bool {
        self == ConnectReturnCode::Accepted
    }
}

/// The MQTT 5 properties of a CONNACK: what the server allows and assigns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnackProperties {
    /// The session expiry the server uses, when it differs from the client's.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 PUBLISH the server accepts unacknowledged.
    pub receive_maximum: Option<u16>,
    /// The highest QoS the server accepts (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// Whether the server accepts retained messages (absent means yes).
    pub retain_available: Option<bool>,
    /// The largest packet the server accepts.
    pub maximum_packet_size: Option<u32>,
    /// The client identifier the server assigned to an empty one.
    pub assigned_client_identifier: Option<String>,
    /// The highest topic alias the server accepts from the client.
    pub topic_alias_maximum: Option<u16>,
    /// Why the connection was refused, for people.
    pub reason_string: Option<String>,
    /// The server's user properties.
    pub user_properties: UserProperties,
    /// Whether wildcard subscriptions are supported (absent means yes).
    pub wildcard_subscription_available: Option<bool>,
    /// Whether subscription identifiers are supported (absent means yes).
    pub subscription_identifiers_available: Option<bool>,
    /// Whether shared subscriptions are supported (absent means yes).
    pub shared_subscription_available: Option<bool>,
    /// The keep alive the server uses instead of the client's.
    pub server_keep_alive: Option<u16>,
    /// Response information, when the client asked for it.
    pub response_information: Option<String>,
    /// Another server the client should use.
    pub server_reference: Option<String>,
    /// Enhanced authentication: the method's name.
    pub authentication_method: Option<String>,
    /// Enhanced authentication: the method's data.
    pub authentication_data: Option<Bytes>,
}

/// A CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// The result.
    pub code: ConnectReturnCode,
    /// MQTT 5 properties; not written for 3.1.1.
    pub properties: ConnackProperties,
}

impl Connack {
    /// A CONNACK without properties.
    pub fn new(session_present: bool, code: ConnectReturnCode) -> Connack {
        Connack { session_present, code, properties: ConnackProperties::default() }
    }
}

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Whether this is a re-delivery.
    pub dup: bool,
    /// The QoS it is sent at.
    pub qos: QoS,
    /// The RETAIN flag.
    pub retain: bool,
    /// A topic name: valid UTF-8, no wildcards. Not empty, except in an
    /// MQTT 5 PUBLISH that names the topic by an alias already set.
    pub topic: Arc<str>,
    /// Non-zero for QoS 1 and 2; 0 (absent on the wire) for QoS 0.
    pub packet_id: u16,
    /// The application payload.
    pub payload: Bytes,
    /// MQTT 5: the message's properties, if it has any.
    pub properties: Option<Arc<MessageProperties>>,
    /// MQTT 5: the topic alias this PUBLISH sets or uses.
    pub topic_alias: Option<u16>,
    /// MQTT 5, server to client only: the identifiers of the subscriptions
    /// the message matched.
    pub subscription_ids: Vec<u32>,
}

impl Publish {
    /// A PUBLISH without MQTT 5 properties, not a re-delivery.
    pub fn new(
        topic: impl Into<Arc<str>>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
        packet_id: u16,
    ) -> Publish {
        Publish {
            dup: false,
            qos,
            retain,
            topic: topic.into(),
            packet_id,
            payload: payload.into(),
            properties: None,
            topic_alias: None,
            subscription_ids: Vec::new(),
        }
    }
}

/// How retained messages are sent when a subscription is made (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send them at every subscribe (3.1.1's behaviour).
    #[default]
    OnSubscribe,
    /// 1: send them only if the subscription did not exist.
    OnNewSubscription,
    /// 2: never send them.
    Never,
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// The topic filter.
    pub filter: String,
    /// The maximum QoS asked for.
    pub qos: QoS,
    /// MQTT 5: do not send the client its own messages.
    pub no_local: bool,
    /// MQTT 5: keep the RETAIN flag as published on delivery.
    pub retain_as_published: bool,
    /// MQTT 5: when retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl SubscribeFilter {
    /// A filter with 3.1.1's options.
    pub fn new(filter: impl Into<String>, qos: QoS) -> SubscribeFilter {
        SubscribeFilter {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
        }
    }
}

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet identifier SUBACK answers.
    pub packet_id: u16,
    /// At least one entry [MQTT-3.8.3-3].
    pub filters: Vec<SubscribeFilter>,
    /// MQTT 5: the identifier sent with every message these filters match
    /// (1 to 268 435 455).
    pub subscription_id: Option<u32>,
    /// MQTT 5: the client's user properties.
    pub user_properties: UserProperties,
}

impl Subscribe {
    /// A SUBSCRIBE without MQTT 5 properties.
    pub fn new(packet_id: u16, filters: Vec<SubscribeFilter>) -> Subscribe {
        Subscribe { packet_id, filters, subscription_id: None, user_properties: Vec::new() }
    }
}

/// One entry of a SUBACK payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubackCode {
    /// The subscription is made at this QoS.
    Granted(QoS),
    /// Refused: 0x80 in 3.1.1; the reason in MQTT 5.
    Failure(ReasonCode),
}

/// A SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: u16,
    /// One per filter, in order.
    pub codes: Vec<SubackCode>,
    /// MQTT 5: why, for people.
    pub reason_string: Option<String>,
    /// MQTT 5: the server's user properties.
    pub user_properties: UserProperties,
}

impl Suback {
    /// A SUBACK without MQTT 5 properties.
    pub fn new(packet_id: u16, codes: Vec<SubackCode>) -> Suback {
        Suback { packet_id, codes, reason_string: None, user_properties: Vec::new() }
    }
}

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet identifier UNSUBACK answers.
    pub packet_id: u16,
    /// At least one entry [MQTT-3.10.3-2].
    pub filters: Vec<String>,
    /// MQTT 5: the client's user properties.
    pub user_properties: UserProperties,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE without MQTT 5 properties.
    pub fn new(packet_id: u16, filters: Vec<String>) -> Unsubscribe {
        Unsubscribe { packet_id, filters, user_properties: Vec::new() }
    }
}

/// An UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: u16,
    /// MQTT 5: one reason per filter (0x00, or 0x11 "no subscription
    /// existed", ...); 3.1.1 sends none.
    pub codes: Vec<ReasonCode>,
    /// MQTT 5: why, for people.
    pub reason_string: Option<String>,
    /// MQTT 5: the server's user properties.
    pub user_properties: UserProperties,
}

impl Unsuback {
    /// An UNSUBACK with the given MQTT 5 reason codes and no properties.
    pub fn new(packet_id: u16, codes: Vec<ReasonCode>) -> Unsuback {
        Unsuback { packet_id, codes, reason_string: None, user_properties: Vec::new() }
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: a packet identifier and, in MQTT 5,
/// a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The flow's packet identifier.
    pub packet_id: u16,
    /// MQTT 5: the result; [`ReasonCode::SUCCESS`] for 3.1.1.
    pub reason: ReasonCode,
    /// MQTT 5: why, for people.
    pub reason_string: Option<String>,
    /// MQTT 5: user properties.
    pub user_properties: UserProperties,
}

impl Ack {
    /// A successful acknowledgement of `packet_id`.
    pub fn new(packet_id: u16) -> Ack {
        Ack::with_reason(packet_id, ReasonCode::SUCCESS)
    }

    /// An acknowledgement of `packet_id` with an MQTT 5 reason.
    pub fn with_reason(packet_id: u16, reason: ReasonCode) -> Ack {
        Ack { packet_id, reason, reason_string: None, user_properties: Vec::new() }
    }
}

/// A DISCONNECT packet. 3.1.1's has no content: the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5: why the connection ends; 0x00 is a normal disconnection.
    pub reason: ReasonCode,
    /// MQTT 5, from the client: the session expiry from now on.
    pub session_expiry_interval: Option<u32>,
    /// MQTT 5: why, for people.
    pub reason_string: Option<String>,
    /// MQTT 5, from the server: another server to use.
    pub server_reference: Option<String>,
    /// MQTT 5: user properties.
    pub user_properties: UserProperties,
}

impl Disconnect {
    /// A DISCONNECT with the given reason and no properties.
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect { reason, ..Disconnect::default() }
    }
}

/// An MQTT 5 AUTH packet, one step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason: ReasonCode,
    /// The authentication method.
    pub method: Option<String>,
    /// The method's data for this step.
    pub data: Option<Bytes>,
    /// Why, for people.
    pub reason_string: Option<String>,
    /// User properties.
    pub user_properties: UserProperties,
}

/// The fourteen MQTT 3.1.1 control packets and MQTT 5's AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    Connack(Box<Connack>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    Puback(Ack),
    /// PUBREC.
    Pubrec(Ack),
    /// PUBREL.
    Pubrel(Ack),
    /// PUBCOMP.
    Pubcomp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    Suback(Suback),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    Unsuback(Unsuback),
    /// PINGREQ.
    Pingreq,
    /// PINGRESP.
    Pingresp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// Upper-case packet name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::Connack(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::Puback(_) => "PUBACK",
            Packet::Pubrec(_) => "PUBREC",
            Packet::Pubrel(_) => "PUBREL",
            Packet::Pubcomp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::Suback(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::Unsuback(_) => "UNSUBACK",
            Packet::Pingreq => "PINGREQ",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
