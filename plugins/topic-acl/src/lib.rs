//! `topic_acl`: hbmqtt's access-control list, from `topic-check.acl`, and
//! amqtt's split one (`subscribe-acl`, `publish-acl`, `receive-acl`).
//!
//! An ACL maps a user name to the topic filters that user may use; the key
//! `anonymous` covers clients without a user name, and a user missing from the
//! map may use nothing. There is one ACL per action ([`TopicAcl::per_action`]):
//! `None` puts no limit on that action (amqtt's rule for an absent ACL), `Some`
//! allows only what it lists. hbmqtt applies `acl` to SUBSCRIBE only
//! (although its docs say publish too); moth's hbmqtt form ([`TopicAcl::new`])
//! applies it to SUBSCRIBE and PUBLISH alike. A receive ACL is asked on every
//! delivery to the client (the plugin then declares `CHECK_RECEIVE`).
//!
//! A requested *filter* is allowed when one of the user's filters covers it:
//! `sensors/#` covers `sensors/+/temp`, but `sensors/+` does not cover `sensors/#`.

use std::collections::BTreeMap;

use moth_plugin_api::{Capabilities, Decision, Plugin, TopicAction, TopicRequest};

/// User name -> the topic filters that user may use.
pub type Acl = BTreeMap<String, Vec<String>>;

/// The `topic_acl` plugin: hbmqtt's per-user topic filter lists for
/// subscribing, publishing and receiving.
pub struct TopicAcl {
    subscribe: Option<Acl>,
    publish: Option<Acl>,
    receive: Option<Acl>,
}

impl TopicAcl {
    /// The name configurations use in `topic-check.plugins`.
    pub const NAME: &'static str = "topic_acl";
    /// ACL key that applies to clients that sent no user name.
    pub const ANONYMOUS: &'static str = "anonymous";

    /// hbmqtt's form: one ACL for SUBSCRIBE and PUBLISH; deliveries unchecked.
    pub fn new(acl: Acl) -> Self {
        TopicAcl { subscribe: Some(acl.clone()), publish: Some(acl), receive: None }
    }

    /// One ACL per action; `None` = no limit on that action.
    pub fn per_action(subscribe: Option<Acl>, publish: Option<Acl>, receive: Option<Acl>) -> Self {
        TopicAcl { subscribe, publish, receive }
    }
}

impl Plugin for TopicAcl {
    fn capabilities(&self) -> Capabilities {
        let checks = Capabilities::CHECK_TOPIC | Capabilities::FAST_TOPIC_CHECK;
        if self.receive.is_some() { checks | Capabilities::CHECK_RECEIVE } else { checks }
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        let acl = match request.action {
            TopicAction::SUBSCRIBE => &self.subscribe,
            TopicAction::PUBLISH => &self.publish,
            TopicAction::RECEIVE => &self.receive,
            _ => return Decision::ignore(),
        };
        let Some(acl) = acl else { return Decision::allow() };
        let user = request.username().unwrap_or(Self::ANONYMOUS);
        let allowed = acl.get(user).map(Vec::as_slice).unwrap_or(&[]);
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

    fn req<'a>(username: Option<&'a str>, action: TopicAction, topic: &'a str) -> TopicRequest<'a> {
        TopicRequest::new_for_test("c", username, action, topic)
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
    fn one_acl_per_action_and_none_is_no_limit() {
        let alice = |f: &[&str]| BTreeMap::from([("alice".to_string(), f.iter().map(|s| s.to_string()).collect())]);
        let p = TopicAcl::per_action(Some(alice(&["in/#"])), None, Some(alice(&["in/mine"])));
        let a = Some("alice");
        assert_eq!(p.check_topic(&req(a, TopicAction::SUBSCRIBE, "in/x")), Decision::allow());
        assert!(p.check_topic(&req(a, TopicAction::SUBSCRIBE, "out/x")).is_refusal());
        assert_eq!(p.check_topic(&req(a, TopicAction::PUBLISH, "anything")), Decision::allow(), "no publish ACL");
        assert_eq!(p.check_topic(&req(a, TopicAction::RECEIVE, "in/mine")), Decision::allow());
        assert!(p.check_topic(&req(a, TopicAction::RECEIVE, "in/other")).is_refusal());
        assert!(p.capabilities().contains(Capabilities::CHECK_RECEIVE));
        assert!(!acl().capabilities().contains(Capabilities::CHECK_RECEIVE), "hbmqtt's form checks no delivery");
        assert!(p.check_topic(&req(a, TopicAction(9), "in/x")).is_ignore(), "an action of a later version");
    }

    #[test]
    fn dollar_topics_need_explicit_first_level() {
        assert!(!covers("#", "$SYS/broker/uptime"));
        assert!(covers("$SYS/#", "$SYS/broker/uptime"));
    }
}
