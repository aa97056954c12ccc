//! `topic_acl`: hbmqtt's access-control list, from `topic-check.acl`.
//!
//! The ACL maps a user name to the topic filters that user may use; the key
//! `anonymous` covers clients without a user name, and a user missing from the
//! map may use nothing. hbmqtt applies it to SUBSCRIBE only (although its docs
//! say publish too); moth applies it to SUBSCRIBE and PUBLISH alike.
//!
//! A requested *filter* is allowed when one of the user's filters covers it:
//! `sensors/#` covers `sensors/+/temp`, but `sensors/+` does not cover `sensors/#`.

use std::collections::BTreeMap;

use moth_plugin_api::{Capabilities, Decision, Plugin, TopicAction, TopicRequest};

pub struct TopicAcl {
    acl: BTreeMap<String, Vec<String>>,
}

impl TopicAcl {
    pub const NAME: &'static str = "topic_acl";
    /// ACL key that applies to clients that sent no user name.
    pub const ANONYMOUS: &'static str = "anonymous";

    pub fn new(acl: BTreeMap<String, Vec<String>>) -> Self {
        TopicAcl { acl }
    }
}

impl Plugin for TopicAcl {
    fn capabilities(&self) -> Capabilities {
        Capabilities::CHECK_TOPIC | Capabilities::FAST_TOPIC_CHECK
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        if request.action != TopicAction::SUBSCRIBE && request.action != TopicAction::PUBLISH {
            return Decision::ignore();
        }
        let user = request.username().unwrap_or(Self::ANONYMOUS);
        let allowed = self.acl.get(user).map(Vec::as_slice).unwrap_or(&[]);
        if allowed.iter().any(|f| covers(f, request.topic())) {
            Decision::allow()
        } else {
            Decision::deny(format!("topic `{}` is not in the ACL of `{user}`", request.topic()))
        }
    }
}

/// Whether the allowed filter `allowed` covers `requested` (a topic name or a
/// filter whose wildcards are compared as they are). `$` topics are only
/// covered by filters that name their first level.
pub fn covers(allowed: &str, requested: &str) -> bool {
    if requested.starts_with('$') && (allowed.starts_with('+') || allowed.starts_with('#')) {
        return false;
    }
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    loop {
        match (a.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(al), Some(rl)) if al == rl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> TopicAcl {
        let mut m = BTreeMap::new();
        m.insert("alice".to_string(), vec!["repositories/+/master".to_string(), "calendar/#".to_string()]);
        m.insert("anonymous".to_string(), vec![]);
        TopicAcl::new(m)
    }

    use moth_plugin_api::std_types::{ROption, RSlice, RStr};

    fn req<'a>(username: Option<&'a str>, action: TopicAction, topic: &'a str) -> TopicRequest<'a> {
        TopicRequest {
            client_id: RStr::from_str("c"),
            username: ROption::from(username.map(RStr::from_str)),
            listener: RStr::from_str("l"),
            action,
            topic: RStr::from_str(topic),
            extra: RSlice::EMPTY,
        }
    }

    #[test]
    fn user_filters_cover_requests() {
        let p = acl();
        let alice = Some("alice");
        assert_eq!(p.check_topic(&req(alice, TopicAction::SUBSCRIBE, "repositories/moth/master")), Decision::allow());
        assert_eq!(p.check_topic(&req(alice, TopicAction::SUBSCRIBE, "repositories/+/master")), Decision::allow());
        assert_eq!(p.check_topic(&req(alice, TopicAction::SUBSCRIBE, "calendar/2026/#")), Decision::allow());
        assert_eq!(p.check_topic(&req(alice, TopicAction::PUBLISH, "calendar/x")), Decision::allow());
        assert!(p.check_topic(&req(alice, TopicAction::SUBSCRIBE, "repositories/#")).is_refusal());
        assert!(p.check_topic(&req(alice, TopicAction::PUBLISH, "other")).is_refusal());
    }

    #[test]
    fn anonymous_key_and_unknown_users() {
        let p = acl();
        assert!(p.check_topic(&req(None, TopicAction::SUBSCRIBE, "calendar/x")).is_refusal());
        assert!(p.check_topic(&req(Some("mallory"), TopicAction::PUBLISH, "calendar/x")).is_refusal());
    }

    #[test]
    fn dollar_topics_need_explicit_first_level() {
        assert!(!covers("#", "$SYS/broker/uptime"));
        assert!(covers("$SYS/#", "$SYS/broker/uptime"));
    }
}
