//! The chain rule: how the answers of the plugins in `auth.plugins` or
//! `topic-check.plugins` combine into one verdict. Pure: answers in, verdict out.
//!
//! | answers, in the configured order            | result |
//! |---------------------------------------------|--------|
//! | a plugin answers `DENY`, an error or a panic, or times out | refused by that plugin; later plugins are not asked |
//! | a plugin answers `BAD_CREDENTIALS`          | refused (CONNACK 4 instead of 5) |
//! | at least one `ALLOW`, no refusal            | admitted |
//! | every plugin answers `IGNORE` (or the chain is empty) | the chain's `default`: `deny` (with the anonymous exception for auth) or `allow` |
//!
//! When the auth chain's default refuses a client that gave a user name, the
//! refusal is CONNACK 4 (bad user name or password), as for a wrong
//! password: a client must not learn whether a user name exists from the
//! code. A client without a user name refused by default gets 5.
//!
//! The first `ALLOW` does **not** end the chain: later plugins are still
//! asked and any of them may refuse. This is hbmqtt's rule (any `False`
//! refuses), it lets a deny-list plugin work wherever it sits in the chain,
//! and it keeps `auth_anonymous` (which allows everyone when
//! `allow-anonymous` is true) from short-cutting a password check placed
//! after it.

use moth_plugin_api::{Decision, DecisionKind};

pub(crate) use crate::plugin_host::call::Answer;

/// How a chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    /// A refusal for wrong credentials (CONNACK 4) rather than "not authorized" (5).
    pub bad_credentials: bool,
    /// The plugin whose answer decided; `None` when the default did.
    pub decided_by: Option<String>,
    /// Why it refused (for the log; never sent to the client).
    pub reason: Option<String>,
}

impl Verdict {
    pub(crate) fn by_default(allowed: bool, reason: &str) -> Verdict {
        Verdict { allowed, bad_credentials: false, decided_by: None, reason: (!allowed).then(|| reason.to_string()) }
    }

    /// The auth default's refusal of a user name no plugin knew: CONNACK 4,
    /// the same code as a wrong password, so the code does not tell an
    /// attacker which user names exist.
    pub(crate) fn unknown_user() -> Verdict {
        Verdict {
            allowed: false,
            bad_credentials: true,
            decided_by: None,
            reason: Some("user name not known to any authentication plugin".into()),
        }
    }
}

/// What one step of the chain means for the rest of it.
pub(crate) enum Step {
    /// Refused: stop here.
    Stop(Verdict),
    /// Go on asking.
    Continue,
}

/// Running state of a chain: feed it answers in order with [`Tally::answer`]
/// until it says stop, then [`Tally::finish`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    first_allow: Option<String>,
}

impl Tally {
    pub(crate) fn answer(&mut self, plugin: &str, answer: Answer) -> Step {
        let refuse = |bad_credentials: bool, reason: String| {
            Step::Stop(Verdict {
                allowed: false,
                bad_credentials,
                decided_by: Some(plugin.to_string()),
                reason: Some(reason),
            })
        };
        match answer {
            Err(e) => refuse(false, e),
            Ok(d) if d.kind == DecisionKind::ALLOW => {
                self.first_allow.get_or_insert_with(|| plugin.to_string());
                Step::Continue
            }
            Ok(d) if d.kind == DecisionKind::IGNORE => Step::Continue,
            Ok(d) if d.kind == DecisionKind::BAD_CREDENTIALS => refuse(true, reason_or(d, "bad user name or password")),
            Ok(d) if d.kind == DecisionKind::DENY => refuse(false, reason_or(d, "denied")),
            Ok(d) => {
                let label = d.kind.label();
                refuse(false, format!("answered {label}, which this broker does not know (treated as deny)"))
            }
        }
    }

    /// The verdict once every plugin was asked and none refused. `default`
    /// decides when none allowed.
    pub(crate) fn finish(self, default: impl FnOnce() -> Verdict) -> Verdict {
        match self.first_allow {
            Some(name) => Verdict { allowed: true, bad_credentials: false, decided_by: Some(name), reason: None },
            None => default(),
        }
    }
}

fn reason_or(d: Decision, fallback: &str) -> String {
    if d.reason.is_empty() { fallback.to_string() } else { d.reason.into_string() }
}

/// Runs the rule over answers given in order.
#[cfg(test)]
fn decide<'a>(answers: impl IntoIterator<Item = (&'a str, Answer)>, default: impl FnOnce() -> Verdict) -> Verdict {
    let mut tally = Tally::default();
    for (name, answer) in answers {
        if let Step::Stop(v) = tally.answer(name, answer) {
            return v;
        }
    }
    tally.finish(default)
}

/// How the metrics count one plugin answer: a refusal for bad credentials
/// is a denial; an error, panic or timeout is an error.
pub(crate) fn counted_as(answer: &Answer) -> crate::stats::AuthAnswer {
    use crate::stats::AuthAnswer;
    match answer {
        Err(_) => AuthAnswer::Error,
        Ok(d) if d.kind == DecisionKind::ALLOW => AuthAnswer::Allowed,
        Ok(d) if d.kind == DecisionKind::IGNORE => AuthAnswer::Ignored,
        Ok(_) => AuthAnswer::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny_default() -> Verdict {
        Verdict::by_default(false, "no plugin allowed it")
    }

    #[test]
    fn first_refusal_wins_and_allow_does_not_end_the_chain() {
        let v = decide([("a", Ok(Decision::allow())), ("b", Ok(Decision::deny("no")))], deny_default);
        assert!(!v.allowed);
        assert_eq!(v.decided_by.as_deref(), Some("b"));
        let v = decide([("a", Ok(Decision::ignore())), ("b", Ok(Decision::allow()))], deny_default);
        assert!(v.allowed);
        assert_eq!(v.decided_by.as_deref(), Some("b"));
    }

    #[test]
    fn all_ignore_takes_the_default() {
        assert!(!decide([("a", Ok(Decision::ignore()))], deny_default).allowed);
        assert!(decide([("a", Ok(Decision::ignore()))], || Verdict::by_default(true, "")).allowed);
        assert!(!decide([], deny_default).allowed);
    }

    #[test]
    fn errors_unknown_codes_and_bad_credentials_refuse() {
        let v = decide([("a", Err("panicked".into()))], deny_default);
        assert!(!v.allowed && !v.bad_credentials);
        let unknown = Decision { kind: DecisionKind(77), reason: Default::default() };
        let v = decide([("a", Ok(unknown))], deny_default);
        assert!(!v.allowed);
        assert!(v.reason.unwrap().contains("unknown(77)"));
        let v = decide([("a", Ok(Decision::bad_credentials("wrong password")))], deny_default);
        assert!(!v.allowed && v.bad_credentials);
    }
}
