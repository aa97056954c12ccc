//! The interface between the moth broker and its plugins: the contract a
//! third-party plugin is built against. Read it top to bottom, like
//! Mosquitto's `mosquitto_plugin.h`.
//!
//! # What a plugin is
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) that exports one
//! *root module* ([`PluginMod`]): a function that describes the plugin
//! ([`PluginMetadata`]: name, namespace, versions, description) and a
//! constructor that takes the plugin's options (the YAML subtree configured
//! under `plugins-config.<name>`, passed as JSON text) and returns a plugin
//! object ([`PluginBox`]) or an error message. moth's built-in plugins sit
//! behind the very same object type.
//!
//! A plugin object answers two kinds of question, each with a [`Decision`]
//! (`ALLOW`, `DENY` with a reason for the log, `BAD_CREDENTIALS`, or
//! `IGNORE`: no opinion, ask the next plugin):
//! - [`PluginObject::authenticate`]: may this CONNECT proceed ([`AuthRequest`])?
//! - [`PluginObject::check_topic`]: may this client subscribe to or publish
//!   on this topic ([`TopicRequest`])?
//!
//! A plugin may also run MQTT 5 *enhanced authentication* methods (1.4):
//! a challenge/response exchange across several AUTH packets, step by step
//! through [`Plugin::enhanced_auth`]; [`enhanced_auth`] tells how.
//!
//! # How to write one
//!
//! Implement the plain-Rust [`Plugin`] trait and call [`export_plugin!`]. The
//! macro emits the root module and wraps every entry point in
//! `catch_unwind`: a panic in a plugin becomes an error (the broker logs it,
//! counts it and treats it as a `DENY`) instead of ending the broker.
//! `examples/auth-plugin-template` in moth's repository is a crate to copy.
//!
//! Log with [`log::info`] and friends: a plugin has its own copy of std and
//! of `tracing`, so it cannot see the broker's log subscriber; these
//! functions call back into the broker, which logs the line with the
//! plugin's name.
//!
//! # Threads
//!
//! `authenticate` is called on a thread of the broker's blocking pool, never
//! on a network thread, so it may block (a password hash, an LDAP or HTTP
//! look-up); the broker bounds its time (`plugin-timeout`) and how many
//! calls of one plugin run at once (`plugin-concurrency`). A plugin that
//! answers from memory can declare [`Capabilities::FAST_AUTHENTICATE`] (1.1)
//! to be called in place instead, sparing the hop; one whose calls are CPU
//! work and nothing else (a slow password hash) declares
//! [`Capabilities::CPU_BOUND_AUTHENTICATE`] (1.2) and gets at most one call
//! per CPU at once. Several calls may run at once: a plugin object is
//! `Send + Sync`. `check_topic` is called for every
//! SUBSCRIBE filter and every PUBLISH (and, for a plugin that declares
//! [`Capabilities::CHECK_RECEIVE`], every delivery), so it must be fast: keep
//! the rules in memory, and declare [`Capabilities::FAST_TOPIC_CHECK`] so the
//! broker calls it in place; otherwise the broker runs it on the blocking
//! pool under the same timeout and concurrency bound as `authenticate`, at a
//! cost per call.
//!
//! # Compatibility
//!
//! The ABI is checked by abi_stable when the library is loaded (type layouts
//! and the interface's major version) and by the broker ([`ApiVersion`]).
//! Within a major version the contract is frozen: a plugin built against
//! plugin-api 1.0 keeps loading and working in every later 1.x broker. That
//! is why nothing in the root module, the requests, the decision or the
//! plugin object ever changes within 1.x. Growth happens without changing a
//! layout:
//! - decisions ([`DecisionKind`]) and topic actions ([`TopicAction`]) are
//!   integer newtypes, not enums: new codes can be added, and an unknown
//!   decision code counts as `DENY` (fail closed);
//! - a plugin declares what it implements ([`Capabilities`]), queried at run
//!   time, so new kinds of call can be offered only to plugins that opt in;
//! - new request data travels in the requests' `extra` key/value list
//!   ([`Property`]);
//! - new calls go through [`PluginObject::extension`], a named, versioned
//!   entry point (`"name/version"`, JSON text in and out) that a plugin
//!   which does not know the name answers with `RNone`.
#![allow(non_local_definitions)]

pub mod decision;
pub mod enhanced_auth;
pub mod export;
pub mod log;
pub mod module;
pub mod object;
pub mod request;
pub mod version;

pub use decision::{Decision, DecisionKind};
pub use enhanced_auth::{AuthReply, AuthStep};
pub use export::{Plugin, into_plugin_box};
pub use log::LogLevel;
pub use module::{HostContext, PluginMetadata, PluginMod, PluginModRef};
pub use object::{Capabilities, PluginBox, PluginObject, PluginObject_TO};
pub use request::{AuthRequest, Property, TlsIdentity, TopicAction, TopicRequest};
pub use version::{API_VERSION, ApiVersion, DEFAULT_NAMESPACE};

/// The FFI-safe types a plugin author meets in requests and results, so a
/// plugin needs no direct dependency on abi_stable.
pub mod std_types {
    pub use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString};
}

/// A JSON parser for the plugin's options (they arrive as JSON text), so a
/// plugin needs no other dependency. A source-level convenience: nothing of
/// serde_json crosses the ABI.
pub use serde_json;

/// Used by [`export_plugin!`]; not part of the contract.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}
