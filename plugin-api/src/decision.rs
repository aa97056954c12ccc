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
    /// The plugin vouches for the request. It does not end the chain: the
    /// later plugins are still asked, for authentication and topic checks
    /// alike, and any of them may refuse. A request is let through when at
    /// least one plugin allows it and none refuses.
    pub const ALLOW: DecisionKind = DecisionKind(1);
    /// The plugin refuses, and the later plugins are not asked: CONNACK 5
    /// "not authorized" for a CONNECT; for a topic check, a SUBACK failure
    /// (0x80) for that filter, a PUBLISH dropped (still acknowledged: MQTT
    /// 3.1.1 has no negative acknowledgement) or, for `RECEIVE`, a message
    /// not delivered to that client.
    pub const DENY: DecisionKind = DecisionKind(2);
    /// The plugin has no opinion (an unknown user, a topic it does not
    /// cover): ask the next plugin. When every plugin ignores, the chain's
    /// configured `default` decides (for a delivery check, the message is
    /// delivered).
    pub const IGNORE: DecisionKind = DecisionKind(3);
    /// Authentication only: the user name or password is wrong. Refuses like
    /// `DENY` but with CONNACK 4 "bad user name or password". Answered to a
    /// topic check, it refuses exactly like `DENY`.
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
    /// What the plugin answers: one of the [`DecisionKind`] constants.
    pub kind: DecisionKind,
    /// Why, for a refusal: one line of free text that the broker writes to
    /// its log line for the refusal, never to the client. Empty for `ALLOW`
    /// and `IGNORE` (the broker ignores it there); a refusal with an empty
    /// reason is logged as `denied` or `bad user name or password`.
    pub reason: RString,
}

impl Decision {
    /// `ALLOW`, with an empty reason.
    pub fn allow() -> Decision {
        Decision { kind: DecisionKind::ALLOW, reason: RString::new() }
    }

    /// `IGNORE`, with an empty reason.
    pub fn ignore() -> Decision {
        Decision { kind: DecisionKind::IGNORE, reason: RString::new() }
    }

    /// `DENY`, with `reason` for the broker's log (never sent to the client).
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision { kind: DecisionKind::DENY, reason: RString::from(reason.into()) }
    }

    /// `BAD_CREDENTIALS`, with `reason` for the broker's log (never sent to
    /// the client). Say which check failed, never the password.
    pub fn bad_credentials(reason: impl Into<String>) -> Decision {
        Decision { kind: DecisionKind::BAD_CREDENTIALS, reason: RString::from(reason.into()) }
    }

    /// Whether this is `ALLOW`.
    pub fn is_allow(&self) -> bool {
        self.kind == DecisionKind::ALLOW
    }

    /// Whether this is `IGNORE`.
    pub fn is_ignore(&self) -> bool {
        self.kind == DecisionKind::IGNORE
    }

    /// Whether this refuses: `DENY`, `BAD_CREDENTIALS`, or a code this
    /// version does not know (fail closed).
    pub fn is_refusal(&self) -> bool {
        !self.is_allow() && !self.is_ignore()
    }
}
