//! What the broker asks about: a connecting client ([`AuthRequest`]) or a
//! client's use of a topic ([`TopicRequest`]).
//!
//! Every field is borrowed from the broker for the duration of one call:
//! building a request allocates nothing. Copy what you keep.

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RSlice, RStr};

/// One key/value pair of request data added after 1.0 (see the crate docs,
/// "Compatibility"). Keys are lower-case and dotted, e.g. `tls.sni`. A plugin
/// ignores keys it does not know. 1.0 and 1.1 send none.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct Property<'a> {
    pub key: RStr<'a>,
    pub value: RStr<'a>,
}

/// The identity a client proved with a TLS client certificate.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct TlsIdentity<'a> {
    /// The certificate's subject, RFC 4514 text (`CN=alice,O=Example`).
    pub subject: RStr<'a>,
    /// The subject's common name, when it has one.
    pub common_name: ROption<RStr<'a>>,
    /// The whole leaf certificate, DER.
    pub certificate_der: RSlice<'a, u8>,
}

/// Everything the broker knows about a connecting client when it asks for
/// authentication. Asked once per CONNECT that passed the protocol checks.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client identifier; the one the broker assigned when the client
    /// sent an empty one.
    pub client_id: RStr<'a>,
    /// `RNone` when the CONNECT carried no user name.
    pub username: ROption<RStr<'a>>,
    /// The password, raw bytes (MQTT 3.1.1 allows any binary data). `RNone`
    /// when absent.
    pub password: ROption<RSlice<'a, u8>>,
    /// The client's address, `ip:port`.
    pub peer_addr: RStr<'a>,
    /// The name of the listener (its key under `listeners`) the client used.
    pub listener: RStr<'a>,
    /// 3 for MQTT 3.1, 4 for MQTT 3.1.1.
    pub protocol_level: u8,
    /// The verified TLS client certificate, when the listener asks for one
    /// and the client sent it. `RNone` on plain TCP.
    pub tls: ROption<TlsIdentity<'a>>,
    /// Request data added by later 1.x versions; see [`Property`].
    pub extra: RSlice<'a, Property<'a>>,
}

impl<'a> AuthRequest<'a> {
    /// A request as the broker would send it for a plain-TCP CONNECT of
    /// MQTT 3.1.1 on listener `default` from `127.0.0.1:1`, for plugin
    /// tests: set the other fields on the result as needed.
    ///
    /// ```
    /// use moth_plugin_api::AuthRequest;
    /// let r = AuthRequest::new_for_test("dev1", Some("alice"), Some(b"secret"));
    /// assert_eq!(r.username(), Some("alice"));
    /// assert_eq!(r.password(), Some(&b"secret"[..]));
    /// assert_eq!(r.listener(), "default");
    /// ```
    pub fn new_for_test(client_id: &'a str, username: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
        AuthRequest {
            client_id: RStr::from_str(client_id),
            username: ROption::from(username.map(RStr::from_str)),
            password: ROption::from(password.map(RSlice::from_slice)),
            peer_addr: RStr::from_str("127.0.0.1:1"),
            listener: RStr::from_str("default"),
            protocol_level: 4,
            tls: ROption::RNone,
            extra: RSlice::EMPTY,
        }
    }

    pub fn client_id(&self) -> &'a str {
        self.client_id.as_str()
    }

    pub fn username(&self) -> Option<&'a str> {
        self.username.map(|u| u.as_str()).into_option()
    }

    pub fn password(&self) -> Option<&'a [u8]> {
        self.password.map(|p| p.as_slice()).into_option()
    }

    pub fn peer_addr(&self) -> &'a str {
        self.peer_addr.as_str()
    }

    pub fn listener(&self) -> &'a str {
        self.listener.as_str()
    }

    /// The subject CN of the client's verified TLS certificate, if it sent one.
    ///
    /// ```
    /// use moth_plugin_api::{AuthRequest, TlsIdentity};
    /// use moth_plugin_api::std_types::{ROption, RSlice, RStr};
    /// let mut r = AuthRequest::new_for_test("c", None, None);
    /// assert_eq!(r.tls_common_name(), None);
    /// r.tls = ROption::RSome(TlsIdentity {
    ///     subject: RStr::from_str("CN=sensor-1"),
    ///     common_name: ROption::RSome(RStr::from_str("sensor-1")),
    ///     certificate_der: RSlice::EMPTY,
    /// });
    /// assert_eq!(r.tls_common_name(), Some("sensor-1"));
    /// assert_eq!(r.tls_subject(), Some("CN=sensor-1"));
    /// ```
    pub fn tls_common_name(&self) -> Option<&'a str> {
        self.tls.into_option().and_then(|t| t.common_name.into_option()).map(|c| c.as_str())
    }

    /// The subject of the client's verified TLS certificate (RFC 4514 text).
    pub fn tls_subject(&self) -> Option<&'a str> {
        self.tls.into_option().map(|t| t.subject.as_str())
    }

    /// The value of an `extra` property, if the broker sent it.
    pub fn property(&self, key: &str) -> Option<&'a str> {
        self.extra.as_slice().iter().find(|p| p.key.as_str() == key).map(|p| p.value.as_str())
    }
}

/// What a client wants to do with a topic. An integer, not an enum, so that
/// later versions can add actions (a plugin answers `IGNORE` to an action it
/// does not know).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicAction(pub u8);

impl TopicAction {
    /// SUBSCRIBE, asked once per filter: the topic is a filter and may hold
    /// wildcards.
    pub const SUBSCRIBE: TopicAction = TopicAction(1);
    /// PUBLISH from the client (its will message too): the topic is a topic name.
    pub const PUBLISH: TopicAction = TopicAction(2);
    /// Delivery of a message to the client: the topic is a topic name. Asked
    /// only of plugins that declare [`crate::Capabilities::CHECK_RECEIVE`] (1.1).
    pub const RECEIVE: TopicAction = TopicAction(3);
}

/// A client's use of one topic.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct TopicRequest<'a> {
    pub client_id: RStr<'a>,
    /// `RNone` for a client that connected without a user name.
    pub username: ROption<RStr<'a>>,
    pub listener: RStr<'a>,
    pub action: TopicAction,
    /// A topic filter for `SUBSCRIBE`, a topic name otherwise.
    pub topic: RStr<'a>,
    /// Request data added by later 1.x versions; see [`Property`].
    pub extra: RSlice<'a, Property<'a>>,
}

impl<'a> TopicRequest<'a> {
    /// A request for plugin tests, on listener `default`.
    ///
    /// ```
    /// use moth_plugin_api::{TopicAction, TopicRequest};
    /// let r = TopicRequest::new_for_test("dev1", Some("alice"), TopicAction::PUBLISH, "a/b");
    /// assert_eq!((r.topic(), r.username()), ("a/b", Some("alice")));
    /// ```
    pub fn new_for_test(client_id: &'a str, username: Option<&'a str>, action: TopicAction, topic: &'a str) -> Self {
        TopicRequest {
            client_id: RStr::from_str(client_id),
            username: ROption::from(username.map(RStr::from_str)),
            listener: RStr::from_str("default"),
            action,
            topic: RStr::from_str(topic),
            extra: RSlice::EMPTY,
        }
    }

    pub fn client_id(&self) -> &'a str {
        self.client_id.as_str()
    }

    pub fn username(&self) -> Option<&'a str> {
        self.username.map(|u| u.as_str()).into_option()
    }

    pub fn listener(&self) -> &'a str {
        self.listener.as_str()
    }

    pub fn topic(&self) -> &'a str {
        self.topic.as_str()
    }
}
