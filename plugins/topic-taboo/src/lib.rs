//! `topic_taboo`: hbmqtt's sample topic checker. The topics `prohibited`,
//! `top-secret` and `data/classified` are refused to everyone except the user
//! `admin`; every other topic gets no opinion.

use moth_plugin_api::{Decision, TopicPlugin, TopicRequest};

const TABOO: [&str; 3] = ["prohibited", "top-secret", "data/classified"];

#[derive(Default)]
pub struct TopicTaboo;

impl TopicTaboo {
    pub const NAME: &'static str = "topic_taboo";
}

impl TopicPlugin for TopicTaboo {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        if request.username == Some("admin") || !TABOO.contains(&request.topic) {
            Decision::Allow
        } else {
            Decision::Deny(format!("topic `{}` is taboo", request.topic))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moth_plugin_api::TopicAction;

    fn req<'a>(username: Option<&'a str>, topic: &'a str) -> TopicRequest<'a> {
        TopicRequest { client_id: "c", username, listener: "l", action: TopicAction::Subscribe, topic }
    }

    #[test]
    fn taboo_topics_only_for_admin() {
        let p = TopicTaboo;
        assert!(matches!(p.check_topic(&req(None, "prohibited")), Decision::Deny(_)));
        assert!(matches!(p.check_topic(&req(Some("bob"), "data/classified")), Decision::Deny(_)));
        assert_eq!(p.check_topic(&req(Some("admin"), "top-secret")), Decision::Allow);
        assert_eq!(p.check_topic(&req(None, "weather")), Decision::Allow);
    }
}
