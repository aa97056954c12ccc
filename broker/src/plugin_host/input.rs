//! What the broker hands plugins: a CONNECT's data owned (so that the call
//! can run on another thread) and turned into the FFI-safe request views.

use moth_plugin_api::request::Property;
use moth_plugin_api::std_types::{RNone, ROption, RSlice, RStr};
use moth_plugin_api::{AuthRequest, TlsIdentity, TopicAction, TopicRequest};

/// A CONNECT's data, owned, so that plugin calls can run on another thread.
#[derive(Debug, Clone, Default)]
pub struct AuthInput {
    /// The CONNECT's client identifier (or the one the broker assigned).
    pub client_id: String,
    /// The CONNECT's user name, if it has one.
    pub username: Option<String>,
    /// The CONNECT's password, if it has one (MQTT passwords are bytes).
    pub password: Option<Vec<u8>>,
    /// The client's address, `ip:port`.
    pub peer_addr: String,
    /// The name of the listener the client connected to.
    pub listener: String,
    /// The CONNECT's protocol level: 3 (MQTT 3.1), 4 (3.1.1) or 5.
    pub protocol_level: u8,
    /// The client's verified TLS certificate, when it presented one.
    pub tls: Option<TlsInput>,
    /// The request's `extra` properties (plugin-api 1.3: the MQTT 5
    /// CONNECT's properties), key and value, in order.
    pub extra: Vec<(String, String)>,
}

/// A verified TLS client certificate, owned.
#[derive(Debug, Clone, Default)]
pub struct TlsInput {
    /// The certificate's subject, as text.
    pub subject: String,
    /// The subject's common name (CN), when it has one.
    pub common_name: Option<String>,
    /// The whole certificate, DER-encoded.
    pub certificate_der: Vec<u8>,
}

impl AuthInput {
    /// Calls `f` with the borrowed, FFI-safe view handed to plugins (its
    /// `extra` list lives for the call).
    pub fn with_request<R>(&self, f: impl FnOnce(&AuthRequest<'_>) -> R) -> R {
        let extra: Vec<Property<'_>> =
            self.extra.iter().map(|(k, v)| Property { key: RStr::from_str(k), value: RStr::from_str(v) }).collect();
        let mut request = self.request();
        request.extra = RSlice::from_slice(&extra);
        f(&request)
    }

    /// The view without its `extra` properties.
    pub fn request(&self) -> AuthRequest<'_> {
        AuthRequest {
            client_id: RStr::from_str(&self.client_id),
            username: ROption::from(self.username.as_deref().map(RStr::from_str)),
            password: ROption::from(self.password.as_deref().map(RSlice::from_slice)),
            peer_addr: RStr::from_str(&self.peer_addr),
            listener: RStr::from_str(&self.listener),
            protocol_level: self.protocol_level,
            tls: ROption::from(self.tls.as_ref().map(|t| TlsIdentity {
                subject: RStr::from_str(&t.subject),
                common_name: ROption::from(t.common_name.as_deref().map(RStr::from_str)),
                certificate_der: RSlice::from_slice(&t.certificate_der),
            })),
            extra: RSlice::EMPTY,
        }
    }
}

/// Shorthand used by the connection for a topic request.
pub(crate) fn topic_request<'a>(
    client_id: &'a str,
    username: Option<&'a str>,
    listener: &'a str,
    action: TopicAction,
    topic: &'a str,
) -> TopicRequest<'a> {
    TopicRequest {
        client_id: RStr::from_str(client_id),
        username: username.map(RStr::from_str).map_or(RNone, ROption::RSome),
        listener: RStr::from_str(listener),
        action,
        topic: RStr::from_str(topic),
        extra: RSlice::EMPTY,
    }
}
