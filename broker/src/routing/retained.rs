//! The retained-message store: at most one message per topic, handed to
//! each new subscription whose filter matches [MQTT-3.3.1-6].
//!
//! A trie keyed by topic level, like the subscription tree but the other way
//! round: here the stored keys are topic names and the query is a filter. A
//! filter without wildcards is a single path walk; `+` fans out over one
//! node's children and `#` takes a whole subtree, so a SUBSCRIBE costs what
//! it matches plus its depth, not the number of retained topics.
//!
//! Pure data: no I/O, no locks. The router owns the store behind its lock.
//! Walks and drops are iterative, because a topic may have 65 536 levels.

use std::collections::HashMap;
use std::sync::Arc;

use crate::message::Message;

/// Retained messages by topic, at most one per topic.
pub(crate) struct RetainedStore {
    root: Node,
    /// Number of retained messages, kept so `len` is O(1).
    len: usize,
    /// Number and bytes (topic and payload) of the retained messages that
    /// count against `retained-max-count` and `retained-max-bytes`: all
    /// but the broker's own `$SYS` ones.
    counted: usize,
    bytes: usize,
}

/// What a retained message counts against `retained-max-bytes`; the
/// broker's own `$SYS` topics count nothing.
fn bytes_of(m: &Message) -> usize {
    if m.topic.starts_with("$SYS") { 0 } else { m.topic.len() + m.payload.len() }
}

fn counts(m: &Message) -> usize {
    usize::from(!m.topic.starts_with("$SYS"))
}

/// A trie node: the topic spelled by the path from the root.
#[derive(Default)]
struct Node {
    /// Next levels. Looked up with `&str` (`Box<str>: Borrow<str>`).
    children: HashMap<Box<str>, Node>,
    /// The retained message of exactly this topic.
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_bare(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }
}

/// Drops the subtree iteratively: the derived drop would recurse once per
/// level, and a topic may have 65 536 levels.
impl Drop for Node {
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack: Vec<Node> = std::mem::take(&mut self.children).into_values().collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(std::mem::take(&mut node.children).into_values());
            // `node` drops here with no children, so its own drop is O(1).
        }
    }
}

/// Whether a wildcard at this point of a filter may match `level`: not a
/// `$` name in the topic's first level [MQTT-4.7.2-1].
fn wildcard_may_match(first: bool, level: &str) -> bool {
    !(first && level.starts_with('$'))
}

impl RetainedStore {
    pub(crate) fn new() -> Self {
        RetainedStore { root: Node::default(), len: 0, counted: 0, bytes: 0 }
    }

    /// Stores `msg` as its topic's retained message [MQTT-3.3.1-5],
    /// replacing any previous one: only the last is delivered to new
    /// subscribers [MQTT-3.3.1-6], whatever its QoS [MQTT-3.3.1-7]. A message
    /// with an empty payload instead removes the topic's retained message and
    /// is not itself stored [MQTT-3.3.1-10], [MQTT-3.3.1-11].
    ///
    /// Only call this for a PUBLISH with RETAIN set: one without it must
    /// neither store nor remove anything [MQTT-3.3.1-12], and this cannot
    /// tell (a will or a plugin's message may carry any flag).
    pub(crate) fn set(&mut self, msg: Arc<Message>) {
        if msg.payload.is_empty() {
            self.remove(&msg.topic);
            return;
        }
        let mut node = &mut self.root;
        for level in msg.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        self.bytes += bytes_of(&msg);
        self.counted += counts(&msg);
        match node.message.replace(msg) {
            None => self.len += 1,
            Some(old) => {
                self.bytes -= bytes_of(&old);
                self.counted -= counts(&old);
            }
        }
    }

    /// [`RetainedStore::set`] within `retained-max-count` and
    /// `retained-max-bytes` (0: no limit): returns false, storing nothing,
    /// when keeping `msg` would go beyond either. Clearing a topic is never
    /// refused, nor is replacing a message by one no larger.
    pub(crate) fn set_within(&mut self, msg: Arc<Message>, max_count: usize, max_bytes: usize) -> bool {
        if !msg.payload.is_empty() {
            let old = self.get(&msg.topic).map(|m| bytes_of(m));
            let count = self.counted + usize::from(old.is_none()) * counts(&msg);
            let bytes = self.bytes - old.unwrap_or(0) + bytes_of(&msg);
            if (max_count != 0 && count > max_count) || (max_bytes != 0 && bytes > max_bytes) {
                return false;
            }
        }
        self.set(msg);
        true
    }

    /// The retained message of `topic`, if any.
    fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Removes `topic`'s retained message if it has expired at `now` (MQTT
    /// 5 message expiry): found expired by a reader, it may have been
    /// replaced since.
    pub(crate) fn remove_expired(&mut self, topic: &str, now: std::time::Instant) {
        let mut node = &self.root;
        for level in topic.split('/') {
            match node.children.get(level) {
                Some(child) => node = child,
                None => return,
            }
        }
        if node.message.as_ref().is_some_and(|m| m.is_expired(now)) {
            self.remove(topic);
        }
    }

    /// Removes `topic`'s retained message and prunes the nodes that only
    /// led to it, so topics that come and go do not grow the trie forever.
    fn remove(&mut self, topic: &str) {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            match node.children.get_mut(level) {
                Some(child) => node = child,
                None => return,
            }
        }
        let Some(old) = node.message.take() else { return };
        self.len -= 1;
        self.bytes -= bytes_of(&old);
        self.counted -= counts(&old);

        // The shallowest node from which the rest of the path is a bare
        // chain (no message, no other child); cutting the edge above it drops
        // the chain. Found in a second, shared walk: a `&mut` path to every
        // ancestor cannot be held at once.
        let mut cut: Option<usize> = None;
        let mut node = &self.root;
        for (depth, level) in topic.split('/').enumerate() {
            let Some(child) = node.children.get(level) else {
                break;
            };
            // On the path, an intermediate node's one child is the next node.
            if child.message.is_some() || child.children.len() > 1 {
                cut = None;
            } else if cut.is_none() {
                cut = Some(depth);
            }
            node = child;
        }
        if !node.is_bare() {
            cut = None;
        }
        if let Some(depth) = cut {
            let mut levels = topic.split('/');
            let mut node = &mut self.root;
            for level in levels.by_ref().take(depth) {
                match node.children.get_mut(level) {
                    Some(child) => node = child,
                    None => return,
                }
            }
            if let Some(level) = levels.next() {
                node.children.remove(level);
                if node.children.is_empty() {
                    // A map keeps its capacity after removals; free it.
                    node.children = HashMap::new();
                }
            }
        }
    }

    /// Appends every retained message whose topic matches `filter` to `out`
    /// (not cleared; order unspecified).
    ///
    /// `filter` should be valid (the codec checked it). A `#` that is not the
    /// last level, or a `+`/`#` inside a level, is literal text here, as in
    /// the subscription tree, so such a filter matches nothing real. Topics
    /// starting with `$` are not matched by a wildcard in the first level
    /// [MQTT-4.7.2-1].
    pub(crate) fn matching(&self, filter: &str, out: &mut Vec<Arc<Message>>) {
        // Pending branches: a node, the filter levels still to match below
        // it, and whether the next level is the topic's first.
        let mut pending = vec![(&self.root, filter.split('/'), true)];
        while let Some((node, mut levels, first)) = pending.pop() {
            let Some(level) = levels.next() else {
                out.extend(node.message.iter().cloned());
                continue;
            };
            let is_last = levels.clone().next().is_none();
            match level {
                "#" if is_last => Self::collect_subtree(node, first, out),
                "+" => {
                    for (name, child) in &node.children {
                        if wildcard_may_match(first, name) {
                            pending.push((child, levels.clone(), false));
                        }
                    }
                }
                _ => {
                    if let Some(child) = node.children.get(level) {
                        pending.push((child, levels, false));
                    }
                }
            }
        }
    }

    /// `#` at `node`: its own message (`a/#` matches `a` [MQTT-4.7.1-2]) and
    /// every message below, skipping `$` children when `node` is the root.
    fn collect_subtree(node: &Node, first: bool, out: &mut Vec<Arc<Message>>) {
        out.extend(node.message.iter().cloned());
        let mut stack: Vec<&Node> =
            node.children.iter().filter(|(name, _)| wildcard_may_match(first, name)).map(|(_, child)| child).collect();
        while let Some(node) = stack.pop() {
            out.extend(node.message.iter().cloned());
            stack.extend(node.children.values());
        }
    }

    /// Number of retained messages (one per topic).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for RetainedStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
impl RetainedStore {
    /// Nodes in the trie, root included (1 when fully pruned).
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.values());
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::QoS;
    use crate::testing::rng::{Rng, random_filter, random_topic};
    use crate::topic;
    use std::collections::BTreeMap;

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message::new(topic, payload.as_bytes().to_vec(), QoS::AtLeastOnce, true))
    }

    fn set(store: &mut RetainedStore, topic: &str, payload: &str) {
        store.set(msg(topic, payload));
    }

    /// Sorted topics of the messages `filter` matches.
    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.matching(filter, &mut out);
        let mut topics: Vec<String> = out.iter().map(|m| m.topic.to_string()).collect();
        topics.sort();
        topics
    }

    fn store_with(topics: &[&str]) -> RetainedStore {
        let mut store = RetainedStore::new();
        for topic in topics {
            set(&mut store, topic, "x");
        }
        store
    }

    #[test]
    fn new_and_default_are_empty() {
        let store = RetainedStore::default();
        assert!(store.is_empty());
        assert_eq!(store.len(), 0);
        assert_eq!(store.node_count(), 1);
        assert!(topics(&store, "#").is_empty());
        assert!(RetainedStore::new().is_empty());
    }

    #[test]
    fn mqtt_3_3_1_5_and_3_3_1_7_last_message_per_topic_replaces() {
        let mut store = RetainedStore::new();
        set(&mut store, "a/b", "one");
        set(&mut store, "a/b", "two");
        assert_eq!(store.len(), 1);
        let mut out = Vec::new();
        store.matching("a/b", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].payload[..], b"two");
        set(&mut store, "a", "three");
        assert_eq!(store.len(), 2);
        // A QoS 0 message replaces a QoS 2 one like any other.
        store.set(Arc::new(Message::new("q", &b"two"[..], QoS::ExactlyOnce, true)));
        store.set(Arc::new(Message::new("q", &b"zero"[..], QoS::AtMostOnce, true)));
        out.clear();
        store.matching("q", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((&out[0].payload[..], out[0].qos), (&b"zero"[..], QoS::AtMostOnce));
    }

    #[test]
    fn matching_appends_and_shares_the_message() {
        let mut store = RetainedStore::new();
        let m = msg("a", "x");
        store.set(m.clone());
        let mut out = vec![msg("old", "y")];
        store.matching("a", &mut out);
        assert_eq!(out.len(), 2, "appends, does not clear");
        assert!(Arc::ptr_eq(&out[1], &m), "no copy of the message");
    }

    #[test]
    fn mqtt_3_3_1_10_and_3_3_1_11_empty_payload_removes() {
        let mut store = store_with(&["a/b", "a"]);
        set(&mut store, "a/b", "");
        assert_eq!(store.len(), 1);
        assert!(topics(&store, "a/b").is_empty());
        assert!(topics(&store, "#").iter().all(|t| t == "a"), "the empty message is not stored");
        // Removing an absent topic is a no-op.
        set(&mut store, "a/b", "");
        set(&mut store, "nothing/here", "");
        set(&mut store, "a/b/c", "");
        assert_eq!(store.len(), 1);
        set(&mut store, "a", "");
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 1);
    }

    #[test]
    fn exact_filter() {
        let store = store_with(&["a/b", "a", "a/b/c", "b"]);
        assert_eq!(topics(&store, "a/b"), ["a/b"]);
        assert_eq!(topics(&store, "a"), ["a"]);
        assert!(topics(&store, "a/c").is_empty());
        assert!(topics(&store, "a/b/c/d").is_empty());
    }

    #[test]
    fn mqtt_4_7_1_2_multi_level_wildcard() {
        let store = store_with(&[
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
            "sport/tennis/player2",
            "sport",
            "sports",
        ]);
        assert_eq!(
            topics(&store, "sport/tennis/player1/#"),
            ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"]
        );
        assert_eq!(topics(&store, "sport/#").len(), 5, "includes sport itself");
        assert_eq!(topics(&store, "#").len(), 6);
        assert!(topics(&store, "tennis/#").is_empty());
    }

    #[test]
    fn mqtt_4_7_1_3_single_level_wildcard() {
        let store =
            store_with(&["sport/tennis/player1", "sport/tennis/player1/ranking", "sport", "sport/", "/finance"]);
        assert_eq!(topics(&store, "sport/tennis/+"), ["sport/tennis/player1"]);
        assert_eq!(topics(&store, "sport/+"), ["sport/"], "+ matches an empty level, not none");
        assert_eq!(topics(&store, "+/+"), ["/finance", "sport/"]);
        assert_eq!(topics(&store, "/+"), ["/finance"]);
        assert_eq!(topics(&store, "+"), ["sport"]);
        assert_eq!(topics(&store, "+/tennis/+/#"), ["sport/tennis/player1", "sport/tennis/player1/ranking"]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let store = store_with(&["a//b", "/a", "a/", "/", "a/b"]);
        assert_eq!(topics(&store, "a//b"), ["a//b"]);
        assert_eq!(topics(&store, "a/+/b"), ["a//b"]);
        assert_eq!(topics(&store, "/a"), ["/a"]);
        assert_eq!(topics(&store, "a/"), ["a/"]);
        assert_eq!(topics(&store, "/"), ["/"]);
        assert_eq!(topics(&store, "/#"), ["/", "/a"]);
        assert!(topics(&store, "a").is_empty());
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics() {
        let store = store_with(&["$SYS/monitor/Clients", "$SYS", "a/$SYS", "SYS/monitor/Clients", "$"]);
        assert_eq!(topics(&store, "#"), ["SYS/monitor/Clients", "a/$SYS"]);
        assert_eq!(topics(&store, "+/monitor/Clients"), ["SYS/monitor/Clients"]);
        assert!(topics(&store, "+").is_empty());
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS", "$SYS/monitor/Clients"]);
        assert_eq!(topics(&store, "$SYS/monitor/+"), ["$SYS/monitor/Clients"]);
        assert_eq!(topics(&store, "$SYS/monitor/Clients"), ["$SYS/monitor/Clients"]);
        assert_eq!(topics(&store, "$"), ["$"]);
        assert_eq!(topics(&store, "a/+"), ["a/$SYS"], "$ below the first level is ordinary");
    }

    #[test]
    fn mqtt_4_7_3_4_no_normalization() {
        let store = store_with(&["a/b", "Ä", "e\u{301}"]);
        assert!(topics(&store, "A/b").is_empty());
        assert!(topics(&store, "a/b ").is_empty());
        assert!(topics(&store, "ä").is_empty());
        assert!(topics(&store, "\u{e9}").is_empty());
        assert_eq!(topics(&store, "e\u{301}"), ["e\u{301}"]);
    }

    #[test]
    fn pruning() {
        let mut store = store_with(&["a/b/c/d", "a", "a/b/x"]);
        assert_eq!(store.node_count(), 6);
        set(&mut store, "a/b/c/d", "");
        assert_eq!(store.node_count(), 4, "c and d go; b stays for x");
        set(&mut store, "a/b/x", "");
        assert_eq!(store.node_count(), 2, "a stays for its message");
        set(&mut store, "a", "");
        assert_eq!(store.node_count(), 1);
        // Removing a parent keeps the children.
        let mut store = store_with(&["a", "a/b"]);
        set(&mut store, "a", "");
        assert_eq!(topics(&store, "#"), ["a/b"]);
        assert_eq!(store.node_count(), 3);
    }

    #[test]
    fn very_deep_topics_do_not_overflow_the_stack() {
        // Beyond the longest topic the wire allows; test threads have 2 MiB
        // stacks, like tokio workers.
        let deep = "/".repeat(200_000);
        let mut store = RetainedStore::new();
        set(&mut store, &deep, "x");
        set(&mut store, &format!("{deep}a"), "y");
        assert_eq!(topics(&store, &deep).len(), 1);
        assert_eq!(topics(&store, "#").len(), 2);
        assert_eq!(topics(&store, &("+/".repeat(200_000) + "#")).len(), 2);
        set(&mut store, &deep, "");
        assert_eq!(store.len(), 1);
        // Leave the other for the store's drop.
        drop(store);
    }

    #[test]
    fn invalid_input_does_not_panic() {
        let odd = ["", "/", "//", "#", "+", "a/#/b", "#/a", "a#", "a+", "++", "\0", "$", "+#"];
        let mut store = RetainedStore::new();
        for topic in odd {
            set(&mut store, topic, "x");
        }
        assert_eq!(store.len(), odd.len());
        let mut out = Vec::new();
        for filter in odd {
            store.matching(filter, &mut out);
        }
        // A misplaced # is literal: it only finds the topic spelled the same.
        assert_eq!(topics(&store, "a/#/b"), ["a/#/b"]);
        for topic in odd {
            set(&mut store, topic, "");
        }
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 1);
    }

    fn expected(model: &BTreeMap<String, String>, filter: &str) -> Vec<String> {
        model.keys().filter(|t| topic::matches(filter, t)).cloned().collect()
    }

    /// Matched (topic, payload) pairs, sorted; each topic at most once.
    fn matched(store: &RetainedStore, filter: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        store.matching(filter, &mut out);
        let mut got: Vec<(String, String)> =
            out.iter().map(|m| (m.topic.to_string(), String::from_utf8_lossy(&m.payload).into_owned())).collect();
        got.sort();
        got
    }

    fn check(store: &RetainedStore, model: &BTreeMap<String, String>, filters: &[String]) {
        assert_eq!(store.len(), model.len());
        for filter in filters {
            let want: Vec<(String, String)> =
                expected(model, filter).into_iter().map(|t| (t.clone(), model[&t].clone())).collect();
            assert_eq!(matched(store, filter), want, "filter {filter:?}");
        }
    }

    #[test]
    fn randomized_against_reference_matcher() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _round in 0..40 {
            let mut store = RetainedStore::new();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            let mut filters: Vec<String> = (0..60).map(|_| random_filter(&mut rng)).collect();
            // Every topic is also a filter without wildcards.
            filters.extend((0..20).map(|_| random_topic(&mut rng)));
            // A small pool per round, so replacements and removals hit.
            let pool: Vec<String> = (0..40).map(|_| random_topic(&mut rng)).collect();
            for step in 0..300 {
                let topic = pool[rng.below(pool.len())].clone();
                if rng.below(3) == 0 {
                    model.remove(&topic);
                    set(&mut store, &topic, "");
                } else {
                    let payload = step.to_string();
                    model.insert(topic.clone(), payload.clone());
                    set(&mut store, &topic, &payload);
                }
                if step % 20 == 0 {
                    check(&store, &model, &filters);
                }
            }
            check(&store, &model, &filters);
            let mut all: Vec<String> = model.keys().cloned().collect();
            while !all.is_empty() {
                let topic = all.swap_remove(rng.below(all.len()));
                set(&mut store, &topic, "");
                model.remove(&topic);
                if all.len().is_multiple_of(10) {
                    check(&store, &model, &filters);
                }
            }
            assert!(store.is_empty());
            assert_eq!(store.node_count(), 1, "fully pruned");
        }
    }
}
