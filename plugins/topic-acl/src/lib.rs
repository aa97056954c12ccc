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

use moth_plugin_api::{Decision, TopicAction, TopicPlugin, TopicRequest};

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

impl TopicPlugin for TopicAcl {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        if request.action == TopicAction::Receive {
            return Decision::Ignore;
        }
        let user = request.username.unwrap_or(Self::ANONYMOUS);
        let allowed = self.acl.get(user).map(Vec::as_slice).unwrap_or(&[]);
        if allowed.iter().any(|f| covers(f, request.topic)) {
            Decision::Allow
        } else {
            Decision::Deny(format!("topic `{}` is not in the ACL of `{user}`", request.topic))
        }
    }
}

/// Whether the allowed filter `allowed` covers `requested` (a topic name or a
/// filter whose wildcards are compared as they are). `$` topics are only
/// covered by filters that name their first level.
fn covers(allowed: &str, requested: &str) -> bool {
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

    fn req<'a>(username: Option<&'a str>, action: TopicAction, topic: &'a str) -> TopicRequest<'a> {
        TopicRequest { client_id: "c", username, listener: "l", action, topic }
    }

    #[test]
    fn user_filters_cover_requests() {
        let p = acl();
        let alice = Some("alice");
        assert_eq!(p.check_topic(&req(alice, TopicAction::Subscribe, "repositories/moth/master")), Decision::Allow);
        assert_eq!(p.check_topic(&req(alice, TopicAction::Subscribe, "repositories/+/master")), Decision::Allow);
        assert_eq!(p.check_topic(&req(alice, TopicAction::Subscribe, "calendar/2026/#")), Decision::Allow);
        assert_eq!(p.check_topic(&req(alice, TopicAction::Publish, "calendar/x")), Decision::Allow);
        assert!(matches!(p.check_topic(&req(alice, TopicAction::Subscribe, "repositories/#")), Decision::Deny(_)));
        assert!(matches!(p.check_topic(&req(alice, TopicAction::Publish, "other")), Decision::Deny(_)));
    }

    #[test]
    fn anonymous_key_and_unknown_users() {
        let p = acl();
        assert!(matches!(p.check_topic(&req(None, TopicAction::Subscribe, "calendar/x")), Decision::Deny(_)));
        assert!(matches!(p.check_topic(&req(Some("mallory"), TopicAction::Publish, "calendar/x")), Decision::Deny(_)));
    }

    #[test]
    fn dollar_topics_need_explicit_first_level() {
        assert!(!covers("#", "$SYS/broker/uptime"));
        assert!(covers("$SYS/#", "$SYS/broker/uptime"));
    }
}
