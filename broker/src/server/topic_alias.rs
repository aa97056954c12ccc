//! MQTT 5 topic aliases a client sets on its PUBLISH packets [MQTT 5
//! §3.3.2.3.4]: a number that stands for a topic on this connection, so a
//! client that publishes to one long topic sends it once.
//!
//! The table lives with the connection (aliases do not survive it
//! [MQTT-3.3.2-7]) and grows only to the highest alias used, never above
//! the maximum moth announced in CONNACK (`topic-alias-maximum`, default
//! 10: ten pointers per MQTT 5 connection at most).

use std::sync::Arc;

/// Why an alias could not be used; each ends the connection with a
/// DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AliasError {
    /// 0, or above the maximum announced: 0x94 topic alias invalid
    /// [MQTT-3.3.2-9].
    OutOfRange(u16),
    /// An empty topic with an alias never set: 0x82 protocol error.
    Unset(u16),
}

impl std::fmt::Display for AliasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AliasError::OutOfRange(a) => write!(f, "topic alias {a} is outside 1..=topic-alias-maximum [MQTT-3.3.2-9]"),
            AliasError::Unset(a) => write!(f, "PUBLISH with an empty topic and topic alias {a}, which was never set"),
        }
    }
}

/// One connection's inbound aliases.
#[derive(Debug, Default)]
pub(super) struct TopicAliases {
    max: u16,
    topics: Vec<Option<Arc<str>>>,
}

impl TopicAliases {
    /// A table for aliases 1..=`max` (0: the client may use none).
    pub(super) fn new(max: u16) -> TopicAliases {
        TopicAliases { max, topics: Vec::new() }
    }

    /// The topic an inbound PUBLISH is for: its own topic, which `alias`
    /// (if any) now stands for, or, when the topic is empty, the one
    /// `alias` was set to.
    pub(super) fn resolve(&mut self, topic: Arc<str>, alias: Option<u16>) -> Result<Arc<str>, AliasError> {
        let Some(alias) = alias else { return Ok(topic) };
        if alias == 0 || alias > self.max {
            return Err(AliasError::OutOfRange(alias));
        }
        let slot = usize::from(alias - 1);
        if topic.is_empty() {
            return self.topics.get(slot).cloned().flatten().ok_or(AliasError::Unset(alias));
        }
        if self.topics.len() <= slot {
            self.topics.resize(slot + 1, None);
        }
        self.topics[slot] = Some(topic.clone());
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_is_set_by_a_topic_and_used_by_an_empty_one() {
        let mut t = TopicAliases::new(3);
        assert_eq!(t.resolve("plain".into(), None).as_deref(), Ok("plain"));
        assert_eq!(t.resolve("a/long/topic".into(), Some(2)).as_deref(), Ok("a/long/topic"));
        assert_eq!(t.resolve("".into(), Some(2)).as_deref(), Ok("a/long/topic"));
        // Re-set to another topic [MQTT 5 §3.3.2.3.4].
        assert_eq!(t.resolve("other".into(), Some(2)).as_deref(), Ok("other"));
        assert_eq!(t.resolve("".into(), Some(2)).as_deref(), Ok("other"));
    }

    #[test]
    fn mqtt_3_3_2_9_aliases_outside_the_maximum_are_refused() {
        let mut t = TopicAliases::new(3);
        assert_eq!(t.resolve("t".into(), Some(0)), Err(AliasError::OutOfRange(0)));
        assert_eq!(t.resolve("t".into(), Some(4)), Err(AliasError::OutOfRange(4)));
        let mut none = TopicAliases::new(0);
        assert_eq!(none.resolve("t".into(), Some(1)), Err(AliasError::OutOfRange(1)));
    }

    #[test]
    fn an_unset_alias_with_an_empty_topic_is_an_error() {
        let mut t = TopicAliases::new(3);
        assert_eq!(t.resolve("".into(), Some(1)), Err(AliasError::Unset(1)));
        t.resolve("t".into(), Some(3)).unwrap();
        assert_eq!(t.resolve("".into(), Some(1)), Err(AliasError::Unset(1)), "a higher alias sets only itself");
    }
}
