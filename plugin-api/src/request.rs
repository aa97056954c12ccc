//! What the broker asks about: a connecting client ([`AuthRequest`]) or a
//! client's use of a topic ([`TopicRequest`]).
//!
//! Every field is borrowed from the broker for the duration of one call:
//! building a request allocates nothing. Copy what you keep.

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RSlice, RStr};

/// One key/value pair of request data added after 1.0 (see the crate docs,
/// "Compatibility"). Keys are lower-case and dotted. A plugin ignores keys it
/// does not know; a broker before 1.3 sends an empty list.
///
/// Keys of [`AuthRequest::extra`], from 1.3, sent only for an MQTT 5 CONNECT
/// (`protocol_level` 5) that carries the property, in this order:
/// - `mqtt5.session-expiry-interval`: the session expiry interval the
///   client asked for, decimal seconds (`4294967295`: never expires). What
///   the broker grants may be less.
/// - `mqtt5.user-property.<name>`: one entry per user property, in the
///   CONNECT's order, the value as sent. `<name>` is the property's name,
///   any UTF-8 (dots included); a name that repeats gives several entries
///   with the same key. [`AuthRequest::user_properties`] lists them.
/// - `mqtt5.authentication-method`, `mqtt5.authentication-data` (its
///   data, standard base64 with padding, RFC 4648 §4): sent by 1.3 brokers
///   only. From 1.4 a CONNECT that names a method is not given to
///   `authenticate` at all but to the [`crate::enhanced_auth`] exchange.
///
/// [`TopicRequest::extra`] has no key yet.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct Property<'a> {
    /// The property's name, lower-case and dotted; each key is documented
    /// here with the version that adds it.
    pub key: RStr<'a>,
    /// The property's value, as text; its key's documentation gives the
    /// format.
    pub value: RStr<'a>,
}

/// The identity a client proved with a TLS client certificate.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct TlsIdentity<'a> {
    /// The certificate's subject, RFC 4514 text (`CN=alice,O=Example`).
    /// moth does not decode the whole subject yet: it passes `CN=` and the
    /// common name alone (no other attribute, no escaping), and an empty
    /// string when the subject has no CN. Parse `certificate_der` for more.
    pub subject: RStr<'a>,
    /// The subject's common name, when it has one; when it has several, the
    /// last (the most specific, as OpenSSL and Mosquitto pick it).
    pub common_name: ROption<RStr<'a>>,
    /// The whole leaf certificate, DER. Never empty from the broker.
    pub certificate_der: RSlice<'a, u8>,
}

/// Everything the broker knows about a connecting client when it asks for
/// authentication. Asked once per CONNECT that passed the protocol checks.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client identifier; the one the broker assigned when the client
    /// sent an empty one (MQTT 3.1.1 with clean session 1; other empty ids
    /// are refused before plugins are asked). Never empty.
    pub client_id: RStr<'a>,
    /// The user name. `RNone` when the CONNECT carried none; an empty user
    /// name is `RSome("")`. On a listener with `use_identity_as_username`, the
    /// common name of the client's certificate instead, whatever the CONNECT
    /// said (a client without one is refused before plugins are asked).
    pub username: ROption<RStr<'a>>,
    /// The password, raw bytes (MQTT 3.1.1 allows any binary data). `RNone`
    /// when absent; never present without a user name in the CONNECT (the
    /// broker refuses that CONNECT).
    pub password: ROption<RSlice<'a, u8>>,
    /// The client's address as the TCP connection sees it, `ip:port`
    /// (`[ip]:port` for IPv6): behind a proxy, the proxy's address.
    pub peer_addr: RStr<'a>,
    /// The name of the listener (its key under `listeners`) the client used.
    pub listener: RStr<'a>,
    /// 3 for MQTT 3.1, 4 for MQTT 3.1.1, 5 for MQTT 5.0 (brokers from
    /// 1.3); the broker refuses other levels before plugins are asked.
    pub protocol_level: u8,
    /// The verified TLS client certificate: `RSome` when the listener has a
    /// CA to check client certificates against (`cafile`, `capath` or
    /// `cadata`) and the client sent one that it accepted. `RNone` on a
    /// listener without TLS (plain TCP or WebSocket), and on TLS without a
    /// client certificate.
    pub tls: ROption<TlsIdentity<'a>>,
    /// Request data added by later 1.x versions; see [`Property`].
    pub extra: RSlice<'a, Property<'a>>,
}

impl<'a> AuthRequest<'a> {
    /// (1.1) A request as the broker would send it for a plain-TCP CONNECT
    /// of MQTT 3.1.1 on listener `default` from `127.0.0.1:1`, for plugin
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

    /// [`AuthRequest::client_id`] as a `&str`.
    pub fn client_id(&self) -> &'a str {
        self.client_id.as_str()
    }

    /// [`AuthRequest::username`] as an `Option<&str>`.
    pub fn username(&self) -> Option<&'a str> {
        self.username.map(|u| u.as_str()).into_option()
    }

    /// [`AuthRequest::password`] as an `Option<&[u8]>`.
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password.map(|p| p.as_slice()).into_option()
    }

    /// [`AuthRequest::peer_addr`] as a `&str`.
    pub fn peer_addr(&self) -> &'a str {
        self.peer_addr.as_str()
    }

    /// [`AuthRequest::listener`] as a `&str`.
    pub fn listener(&self) -> &'a str {
        self.listener.as_str()
    }

    /// (1.1) The subject CN of the client's verified TLS certificate
    /// ([`TlsIdentity::common_name`]); `None` without a certificate or when
    /// its subject has no CN.
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

    /// (1.1) The subject of the client's verified TLS certificate
    /// ([`TlsIdentity::subject`], with its caveat); `None` without a
    /// certificate.
    pub fn tls_subject(&self) -> Option<&'a str> {
        self.tls.into_option().map(|t| t.subject.as_str())
    }

    /// The value of the first `extra` property `key`, if the broker sent it
    /// (none does before 1.3; see [`Property`] for the keys).
    pub fn property(&self, key: &str) -> Option<&'a str> {
        self.extra.as_slice().iter().find(|p| p.key.as_str() == key).map(|p| p.value.as_str())
    }

    /// (1.3) The MQTT 5 CONNECT's user properties, `(name, value)` in the
    /// CONNECT's order; none for MQTT 3.1.1 or from a broker before 1.3.
    ///
    /// ```
    /// use moth_plugin_api::{AuthRequest, Property};
    /// use moth_plugin_api::std_types::{RSlice, RStr};
    /// let extra = [Property { key: RStr::from_str("mqtt5.user-property.site"), value: RStr::from_str("lab") }];
    /// let mut r = AuthRequest::new_for_test("dev1", None, None);
    /// r.extra = RSlice::from_slice(&extra);
    /// assert_eq!(r.user_properties().collect::<Vec<_>>(), [("site", "lab")]);
    /// ```
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.extra
            .as_slice()
            .iter()
            .filter_map(|p| p.key.as_str().strip_prefix("mqtt5.user-property.").map(|name| (name, p.value.as_str())))
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
    /// wildcards. Also asked again, for each subscription a resumed session
    /// holds (clean session 0), when its client reconnects: a refusal then
    /// removes that subscription.
    pub const SUBSCRIBE: TopicAction = TopicAction(1);
    /// PUBLISH from the client (its will message too, when the broker is
    /// about to publish it): the topic is a topic name. A PUBLISH to `$SYS`
    /// is refused by the broker before plugins are asked.
    pub const PUBLISH: TopicAction = TopicAction(2);
    /// Delivery of a message to the client: the topic is a topic name. Asked
    /// only of plugins that declare [`crate::Capabilities::CHECK_RECEIVE`] (1.1).
    pub const RECEIVE: TopicAction = TopicAction(3);
}

/// A client's use of one topic. Asked only when topic checking is on
/// (`topic-check.enabled`), and only of the plugins in the topic chain
/// (`topic-check.plugins`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct TopicRequest<'a> {
    /// The client identifier of the connection, as in
    /// [`AuthRequest::client_id`] (the assigned one for an empty id).
    pub client_id: RStr<'a>,
    /// `RNone` for a client that connected without a user name. Otherwise
    /// the user name the client was authenticated with, as in
    /// [`AuthRequest::username`] (the certificate's CN under
    /// `use_identity_as_username`).
    pub username: ROption<RStr<'a>>,
    /// The name of the listener (its key under `listeners`) the client
    /// connected to.
    pub listener: RStr<'a>,
    /// What the client does with `topic`: one of the [`TopicAction`]
    /// constants. Answer `IGNORE` to a code you do not know.
    pub action: TopicAction,
    /// A topic filter for `SUBSCRIBE`, a topic name otherwise.
    pub topic: RStr<'a>,
    /// Request data added by later 1.x versions; see [`Property`].
    pub extra: RSlice<'a, Property<'a>>,
}

impl<'a> TopicRequest<'a> {
    /// (1.1) A request for plugin tests, on listener `default`.
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

    /// [`TopicRequest::client_id`] as a `&str`.
    pub fn client_id(&self) -> &'a str {
        self.client_id.as_str()
    }

    /// [`TopicRequest::username`] as an `Option<&str>`.
    pub fn username(&self) -> Option<&'a str> {
        self.username.map(|u| u.as_str()).into_option()
    }

    /// [`TopicRequest::listener`] as a `&str`.
    pub fn listener(&self) -> &'a str {
        self.listener.as_str()
    }

    /// [`TopicRequest::topic`] as a `&str`.
    pub fn topic(&self) -> &'a str {
        self.topic.as_str()
    }
}
