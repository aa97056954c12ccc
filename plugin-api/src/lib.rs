//! The interface between the moth broker and its plugins.
//!
//! A plugin answers two kinds of question:
//! - [`AuthPlugin::authenticate`]: may this CONNECT proceed?
//! - [`TopicPlugin::check_topic`]: may this client subscribe to, publish to,
//!   or receive on this topic?
//!
//! Each answer is a [`Decision`]: `Allow`, `Deny` (with a reason for the
//! broker's log) or `Ignore` (no opinion: ask the next plugin in the chain).
//!
//! This version is the in-process Rust interface used by the plugins that
//! are linked into moth. The stable-ABI layer for plugins loaded from shared
//! libraries wraps these same types; see the plugin-host documentation.

/// Version of this interface. Bumped on any change a plugin author must know of.
pub const API_VERSION: (u16, u16) = (0, 1);

/// The answer of a plugin to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The plugin vouches for the request.
    Allow,
    /// The plugin refuses it; the reason goes to the broker's log, never to the client.
    Deny(String),
    /// The plugin has no opinion (for example an unknown user): ask the next one.
    Ignore,
}

/// Everything the broker knows about a connecting client when it asks for authentication.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client identifier (the one the broker assigned when the client sent an empty one).
    pub client_id: &'a str,
    /// `None` when the CONNECT carried no user name.
    pub username: Option<&'a str>,
    /// Raw password bytes; MQTT 3.1.1 allows any binary data. `None` when absent.
    pub password: Option<&'a [u8]>,
    /// The client's address as `ip:port`.
    pub peer_addr: &'a str,
    /// The name of the listener (key in `listeners`) the client connected to.
    pub listener: &'a str,
    /// 3 for MQTT 3.1, 4 for MQTT 3.1.1.
    pub protocol_level: u8,
    /// The subject common name (CN) of the client certificate the TLS
    /// handshake verified against the listener's CAs; `None` without TLS,
    /// without a client certificate, or when the certificate has no CN.
    pub tls_identity: Option<&'a str>,
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicAction {
    /// SUBSCRIBE: the topic is a filter and may hold wildcards.
    Subscribe,
    /// PUBLISH from the client: the topic is a topic name.
    Publish,
    /// Delivery of a message to the client: the topic is a topic name.
    Receive,
}

/// The client a topic question is about.
#[derive(Debug, Clone, Copy)]
pub struct TopicRequest<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub listener: &'a str,
    pub action: TopicAction,
    /// A topic filter for [`TopicAction::Subscribe`], a topic name otherwise.
    pub topic: &'a str,
}

/// A plugin that authenticates CONNECTs. Called for every CONNECT, off the
/// broker's network threads, so it may block (on a file, a hash, a network call).
pub trait AuthPlugin: Send + Sync {
    /// The name the configuration uses for this plugin, e.g. `auth_anonymous`.
    fn name(&self) -> &str;
    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision;
}

/// A plugin that checks topic access.
pub trait TopicPlugin: Send + Sync {
    /// The name the configuration uses for this plugin, e.g. `topic_acl`.
    fn name(&self) -> &str;
    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision;
}
