//! The interface version a plugin declares it was built against, and the
//! namespace plugins register under by default.

use abi_stable::StableAbi;

/// A version of this interface, `major.minor`.
///
/// The broker loads a plugin whose `major` equals its own, whatever the
/// minor: within a major version nothing a plugin relies on changes. A
/// plugin built against a newer minor than the broker's is loaded too; it
/// must not expect the newer minor's additions (it can discover them through
/// [`crate::Capabilities`] and [`crate::PluginObject::extension`]).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Changes only when the contract breaks: the broker refuses a plugin
    /// whose major differs from its own. 1 for every version so far.
    pub major: u16,
    /// Counts additions that change no layout (capability bits, log levels,
    /// request properties, extensions); any minor of the same major loads.
    pub minor: u16,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version of this copy of the interface. 1.1 added, without changing
/// any layout: [`crate::Capabilities::FAST_TOPIC_CHECK`],
/// [`crate::Capabilities::CHECK_RECEIVE`] (delivery checks),
/// [`crate::Capabilities::FAST_AUTHENTICATE`] and
/// [`crate::log::LogLevel::TRACE`], and in source only (nothing crosses the
/// ABI) the test constructors `new_for_test` and the accessors
/// [`crate::AuthRequest::tls_common_name`] and
/// [`crate::AuthRequest::tls_subject`]. 1.2 added
/// [`crate::Capabilities::CPU_BOUND_AUTHENTICATE`]. 1.3 defined the first
/// `extra` keys of [`crate::AuthRequest`] (an MQTT 5 CONNECT's properties,
/// see [`crate::Property`]) and, in source only, the accessor
/// [`crate::AuthRequest::user_properties`]; `protocol_level` may be 5.
/// 1.4 added MQTT 5 enhanced authentication: the capability
/// [`crate::Capabilities::ENHANCED_AUTHENTICATE`] and the extension call
/// [`crate::enhanced_auth::EXTENSION`], and in source only the module
/// [`crate::enhanced_auth`] and [`crate::Plugin::enhanced_auth`]. A CONNECT
/// that names an authentication method is now refused (0x8C) unless such
/// a plugin runs it: with 1.3 it went to the `authenticate` chain.
pub const API_VERSION: ApiVersion = ApiVersion { major: 1, minor: 4 };

/// The namespace moth looks for in plugin libraries unless the embedding
/// application sets another (hbmqtt's `plugin_namespace`). A library that
/// declares another namespace is skipped.
pub const DEFAULT_NAMESPACE: &str = "moth.broker.plugins";
