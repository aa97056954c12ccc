//! A plugin's answer to one question.

use abi_stable::StableAbi;
use abi_stable::std_types::RString;

/// The kind of a decision: an integer, not an enum, so that later versions
/// can add kinds without changing the layout (an enum that grows is a layout
/// change, which abi_stable rejects). The broker treats any code it does not
/// know as [`DecisionKind::DENY`]: a plugin newer than the broker fails closed.
/// 0 is deliberately not a decision, so zeroed memory never means "allow".
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKind(pub u8);

impl DecisionKind {
    /// The plugin vouches for the request. For authentication, later plugins
    /// are still asked and may deny (see the broker's chain rule).
    pub const ALLOW: DecisionKind = DecisionKind(1);
    /// The plugin refuses: CONNACK 5 "not authorized" for a CONNECT, a
    /// refused subscription or a dropped PUBLISH for a topic check.
    pub const DENY: DecisionKind = DecisionKind(2);
    /// The plugin has no opinion (an unknown user, a topic it does not
    /// cover): ask the next plugin.
    pub const IGNORE: DecisionKind = DecisionKind(3);
    /// Authentication only: the user name or password is wrong. Refuses like
    /// `DENY` but with CONNACK 4 "bad user name or password".
    pub const BAD_CREDENTIALS: DecisionKind = DecisionKind(4);

    /// A short name for logs; `unknown(N)` for codes of a later version.
    pub fn label(self) -> String {
        match self {
            Self::ALLOW => "allow".into(),
            Self::DENY => "deny".into(),
            Self::IGNORE => "ignore".into(),
            Self::BAD_CREDENTIALS => "bad-credentials".into(),
            DecisionKind(n) => format!("unknown({n})"),
        }
    }
}

/// A decision and, for refusals, why. The reason goes to the broker's log,
/// never to the client.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub kind: DecisionKind,
    /// Empty for `ALLOW` and `IGNORE`.
    pub reason: RString,
}

impl Decision {
    pub fn allow() -> Decision {
        Decision { kind: DecisionKind::ALLOW, reason: RString::new() }
    }

    pub fn ignore() -> Decision {
        Decision { kind: DecisionKind::IGNORE, reason: RString::new() }
    }

    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision { kind: DecisionKind::DENY, reason: RString::from(reason.into()) }
    }

    pub fn bad_credentials(reason: impl Into<String>) -> Decision {
        Decision { kind: DecisionKind::BAD_CREDENTIALS, reason: RString::from(reason.into()) }
    }

    pub fn is_allow(&self) -> bool {
        self.kind == DecisionKind::ALLOW
    }

    pub fn is_ignore(&self) -> bool {
        self.kind == DecisionKind::IGNORE
    }

    /// Whether this refuses: `DENY`, `BAD_CREDENTIALS`, or a code this
    /// version does not know (fail closed).
    pub fn is_refusal(&self) -> bool {
        !self.is_allow() && !self.is_ignore()
    }
}
