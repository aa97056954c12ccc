//! `topic_taboo`: hbmqtt's sample topic checker. The topics `prohibited`,
//! `top-secret` and `data/classified` are refused to everyone except the user
//! `admin`; every other topic gets no opinion.

use moth_plugin_api::{Capabilities, Decision, Plugin, TopicRequest};

const TABOO: [&str; 3] = ["prohibited", "top-secret", "data/classified"];

#[derive(Default)]
/// The `topic_taboo` plugin: hbmqtt's example that refuses a few fixed
/// topics to every client but `admin`.
pub struct TopicTaboo;

impl TopicTaboo {
    /// The name configurations use in `topic-check.plugins`.
    pub const NAME: &'static str = "topic_taboo";
}

impl Plugin for TopicTaboo {
    fn capabilities(&self) -> Capabilities {
        Capabilities::CHECK_TOPIC | Capabilities::FAST_TOPIC_CHECK
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        if request.username() == Some("admin") || !TABOO.contains(&request.topic()) {
            Decision::allow()
        } else {
            Decision::deny(format!("topic `{}` is taboo", request.topic()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moth_plugin_api::TopicAction;

    fn req<'a>(username: Option<&'a str>, topic: &'a str) -> TopicRequest<'a> {
        TopicRequest::new_for_test("c", username, TopicAction::SUBSCRIBE, topic)
    }

    #[test]
    fn taboo_topics_only_for_admin() {
        let p = TopicTaboo;
        assert!(p.check_topic(&req(None, "prohibited")).is_refusal());
        assert!(p.check_topic(&req(Some("bob"), "data/classified")).is_refusal());
        assert_eq!(p.check_topic(&req(Some("admin"), "top-secret")), Decision::allow());
        assert_eq!(p.check_topic(&req(None, "weather")), Decision::allow());
    }
}
