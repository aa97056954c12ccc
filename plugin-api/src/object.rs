//! The plugin object: what a plugin's constructor returns and the broker
//! calls. Built-in plugins are behind this same type.

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString};

use crate::decision::Decision;
use crate::request::{AuthRequest, TopicRequest};

/// What a plugin implements, as bits. Asked once, after construction: the
/// broker refuses to put a plugin in a chain it has no bit for (an auth-only
/// plugin named in `topic-check.plugins`), and later versions can offer new
/// calls only to plugins that set a new bit. Unknown bits are ignored.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Implements [`PluginObject::authenticate`].
    pub const AUTHENTICATE: Capabilities = Capabilities(1);
    /// Implements [`PluginObject::check_topic`].
    pub const CHECK_TOPIC: Capabilities = Capabilities(1 << 1);
    /// (1.1) `check_topic` answers from memory without blocking: the broker
    /// may call it directly on a network thread instead of moving the call
    /// off it. Only set it when true.
    pub const FAST_TOPIC_CHECK: Capabilities = Capabilities(1 << 2);
    /// (1.1) Wants `check_topic` with [`crate::TopicAction::RECEIVE`] for every
    /// message about to be delivered to a client (after its subscription was
    /// allowed). Only plugins that set this bit are asked, on the network
    /// thread that delivers (which waits for the blocking pool instead when
    /// the plugin lacks `FAST_TOPIC_CHECK`): answer from memory. A refusal
    /// or an error drops the message for that client; `ALLOW` or `IGNORE`
    /// from all delivers it.
    pub const CHECK_RECEIVE: Capabilities = Capabilities(1 << 3);
    /// (1.1) `authenticate` answers from memory without blocking (no
    /// password hash, no network): the broker calls it in place on the
    /// connection's thread, sparing the hop to the blocking pool, and
    /// `plugin-timeout` does not apply. Only set it when true.
    pub const FAST_AUTHENTICATE: Capabilities = Capabilities(1 << 4);
    /// (1.2) Each `authenticate` call is CPU work and nothing else (hashing
    /// a password with a slow hash, say): the broker runs at most one call
    /// per CPU at once, below `plugin-concurrency` when that is larger.
    /// More concurrent calls would add memory and latency to every login,
    /// never throughput. Do not set it for a plugin that waits on a network
    /// or a disk: those need concurrency to overlap the waits.
    pub const CPU_BOUND_AUTHENTICATE: Capabilities = Capabilities(1 << 5);
    /// (1.4) Runs MQTT 5 enhanced authentication methods: answers the
    /// [`crate::enhanced_auth::EXTENSION`] call ([`crate::Plugin::enhanced_auth`]).
    /// Asked only of plugins in `auth.plugins`, for clients whose CONNECT
    /// names an authentication method; see [`crate::enhanced_auth`]. Goes
    /// with [`Capabilities::AUTHENTICATE`] (a plugin in the auth chain has
    /// it); `FAST_AUTHENTICATE` and `CPU_BOUND_AUTHENTICATE` apply to these
    /// calls too.
    pub const ENHANCED_AUTHENTICATE: Capabilities = Capabilities(1 << 6);

    /// The bits of both (what `|` does, usable in a `const`).
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

/// The FFI-safe plugin object (a `#[sabi_trait]`). Authors do not implement
/// it: implement [`crate::Plugin`] and let [`crate::export_plugin!`] wrap it,
/// which also catches panics. Every method returns `RErr(message)` for an
/// error; the broker logs it and treats it as a refusal.
#[sabi_trait]
pub trait PluginObject: Send + Sync {
    /// What this plugin implements; see [`Capabilities`].
    fn capabilities(&self) -> Capabilities;

    /// Answers one CONNECT. May block; see the crate docs, "Threads".
    fn authenticate(&self, request: &AuthRequest<'_>) -> RResult<Decision, RString>;

    /// Answers one use of a topic. Must be fast; see the crate docs, "Threads".
    fn check_topic(&self, request: &TopicRequest<'_>) -> RResult<Decision, RString>;

    /// A named call added after 1.0: `name` is `"call/version"`, `input` and
    /// the answer JSON text. `RNone` means "I do not know this call", which
    /// is what a plugin built against an older interface answers.
    #[sabi(last_prefix_field)]
    fn extension(&self, name: RStr<'_>, input: RStr<'_>) -> ROption<RResult<RString, RString>>;
}

/// A plugin object owned by the broker.
pub type PluginBox = PluginObject_TO<'static, RBox<()>>;
