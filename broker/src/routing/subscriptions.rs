//! The subscription tree: which sessions receive a PUBLISH.
//!
//! A trie keyed by topic level. Each node stands for a filter prefix and has
//! an exact child per literal level, at most one `+` child, the subscribers
//! whose filter ends at this node, and the subscribers whose filter is this
//! prefix followed by `/#`. Routing a PUBLISH walks the topic's levels once,
//! following at each node the exact child and the `+` child and collecting the
//! `#` subscribers, so its cost depends on the topic's depth and on the number
//! of `+` branches taken, never on the total number of subscriptions.
//!
//! Pure data: no I/O, no locks. The router owns the tree behind its own lock.
//!
//! Every walk is iterative and nodes drop iteratively: a client may send a
//! 65 535-byte filter of slashes (65 536 levels), and recursion that deep
//! would overflow a 2 MiB tokio worker stack.

use std::collections::HashMap;
use std::str::Split;

use crate::packet::QoS;

pub(crate) use crate::session::store::SubscriberId;

/// Above this many subscribers on one filter, an id → position index is kept
/// (see [`Subscribers`]).
const INDEX_ABOVE: usize = 32;

/// Topic-level trie of subscriptions. `T` is the subscriber's handle (an
/// `Arc` in the broker), cloned into match results.
pub(crate) struct SubscriptionTree<T, G = QoS> {
    root: Node<T, G>,
    /// Number of (filter, id) pairs, kept so `len` is O(1).
    len: usize,
}

/// One subscription as stored in a node.
struct Subscriber<T, G> {
    id: SubscriberId,
    handle: T,
    grant: G,
}

/// The subscribers of one filter.
///
/// Most filters have a handful of subscribers, so this is a plain `Vec`
/// scanned linearly, cheap to allocate and to iterate when routing. A filter
/// shared by many sessions (`broadcast/#`) would make each subscribe and
/// unsubscribe O(n), O(n²) to fill or drain, so past [`INDEX_ABOVE`] entries an
/// id → position map is kept alongside; removal is `swap_remove` either way.
struct Subscribers<T, G> {
    list: Vec<Subscriber<T, G>>,
    /// Boxed so the common, unindexed node stays small: 8 bytes instead of
    /// 48, twice per node, for a map that almost no node has.
    #[allow(clippy::box_collection, reason = "keeps Node small; the map is rare")]
    index: Option<Box<HashMap<SubscriberId, usize>>>,
}

impl<T, G> Default for Subscribers<T, G> {
    fn default() -> Self {
        Subscribers { list: Vec::new(), index: None }
    }
}

impl<T, G> Subscribers<T, G> {
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn position(&self, id: SubscriberId) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&id).copied(),
            None => self.list.iter().position(|s| s.id == id),
        }
    }

    /// Adds or replaces `id`'s entry; true if it replaced one.
    fn upsert(&mut self, id: SubscriberId, handle: T, grant: G) -> bool {
        if let Some(i) = self.position(id)
            && let Some(existing) = self.list.get_mut(i)
        {
            existing.handle = handle;
            existing.grant = grant;
            return true;
        }
        self.list.push(Subscriber { id, handle, grant });
        let last = self.list.len() - 1;
        match &mut self.index {
            Some(index) => {
                index.insert(id, last);
            }
            None if self.list.len() > INDEX_ABOVE => {
                let index = self.list.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        false
    }

    /// Removes `id`'s entry; true if there was one.
    fn remove(&mut self, id: SubscriberId) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        if i >= self.list.len() {
            return false;
        }
        self.list.swap_remove(i);
        if let Some(index) = &mut self.index {
            index.remove(&id);
            if let Some(moved) = self.list.get(i) {
                index.insert(moved.id, i);
            }
            // Hysteresis: drop the index well below the threshold so a filter
            // hovering around it does not rebuild the map on every change.
            if self.list.len() < INDEX_ABOVE / 2 {
                self.index = None;
            }
        }
        // Give memory back after a mass unsubscribe (amortised O(1)).
        if self.list.len() < self.list.capacity() / 4 {
            self.list.shrink_to(self.list.len() * 2);
        }
        true
    }

    /// Appends every entry to `out` as a match result.
    fn collect(&self, out: &mut Vec<(SubscriberId, T, G)>)
    where
        T: Clone,
        G: Copy,
    {
        out.extend(self.list.iter().map(|s| (s.id, s.handle.clone(), s.grant)));
    }
}

/// A trie node: the filter prefix spelled by the path from the root.
struct Node<T, G> {
    /// Literal next levels. A topic level is looked up here with `&str`
    /// (`Box<str>: Borrow<str>`), so routing does not allocate.
    children: HashMap<Box<str>, Node<T, G>>,
    /// The `+` next level, kept apart so routing needs no lookup for it.
    plus: Option<Box<Node<T, G>>>,
    /// Subscribers whose filter is exactly this prefix.
    exact: Subscribers<T, G>,
    /// Subscribers whose filter is this prefix followed by `#`.
    multi: Subscribers<T, G>,
}

impl<T, G> Default for Node<T, G> {
    fn default() -> Self {
        Node { children: HashMap::new(), plus: None, exact: Subscribers::default(), multi: Subscribers::default() }
    }
}

impl<T, G> Node<T, G> {
    fn child(&self, step: Step<'_>) -> Option<&Node<T, G>> {
        match step {
            Step::Plus => self.plus.as_deref(),
            Step::Exact(level) => self.children.get(level),
        }
    }

    fn child_mut(&mut self, step: Step<'_>) -> Option<&mut Node<T, G>> {
        match step {
            Step::Plus => self.plus.as_deref_mut(),
            Step::Exact(level) => self.children.get_mut(level),
        }
    }

    fn child_or_insert(&mut self, step: Step<'_>) -> &mut Node<T, G> {
        match step {
            Step::Plus => self.plus.get_or_insert_with(Box::default),
            Step::Exact(level) => self.children.entry(level.into()).or_default(),
        }
    }

    fn remove_child(&mut self, step: Step<'_>) {
        match step {
            Step::Plus => self.plus = None,
            Step::Exact(level) => {
                self.children.remove(level);
                if self.children.is_empty() {
                    // A map keeps its capacity after removals; free it.
                    self.children = HashMap::new();
                }
            }
        }
    }

    fn child_count(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some())
    }

    fn subscribers_mut(&mut self, multi: bool) -> &mut Subscribers<T, G> {
        if multi { &mut self.multi } else { &mut self.exact }
    }

    fn has_subscribers(&self) -> bool {
        !self.exact.is_empty() || !self.multi.is_empty()
    }

    fn move_children_into(&mut self, stack: &mut Vec<Node<T, G>>) {
        stack.extend(std::mem::take(&mut self.children).into_values());
        if let Some(plus) = self.plus.take() {
            stack.push(*plus);
        }
    }
}

/// Drops the subtree iteratively: the derived drop would recurse once per
/// level, and a filter may have 65 536 levels.
impl<T, G> Drop for Node<T, G> {
    fn drop(&mut self) {
        if self.children.is_empty() && self.plus.is_none() {
            return;
        }
        let mut stack = Vec::new();
        self.move_children_into(&mut stack);
        while let Some(mut node) = stack.pop() {
            node.move_children_into(&mut stack);
            // `node` drops here with no children, so its own drop is O(1).
        }
    }
}

/// One level of a filter, as the tree sees it.
#[derive(Clone, Copy)]
enum Step<'a> {
    Exact(&'a str),
    Plus,
}

/// Splits a filter into its steps and whether it ends with `#`.
///
/// `#` is a wildcard only as the last level and `+` only as a whole level, as
/// a valid filter has them [MQTT-4.7.1-2], [MQTT-4.7.1-3]. Anywhere else (an
/// invalid filter, which the codec rejects before it gets here) they are
/// literal text: such a subscription matches no valid topic, which is the
/// safe failure, and subscribe/unsubscribe of the same string still agree.
fn parse_filter(filter: &str) -> (impl Iterator<Item = Step<'_>> + Clone, bool) {
    let (prefix, multi) = if filter == "#" {
        (None, true)
    } else if let Some(prefix) = filter.strip_suffix("/#") {
        (Some(prefix), true)
    } else {
        (Some(filter), false)
    };
    let steps = prefix
        .into_iter()
        .flat_map(|p| p.split('/'))
        .map(|level| if level == "+" { Step::Plus } else { Step::Exact(level) });
    (steps, multi)
}

/// A pending branch of a [`SubscriptionTree::matches`] walk: a node, the
/// topic levels still to match below it, and whether the next level is the
/// topic's first (where wildcards skip `$` topics).
type Branch<'t, 'a, T, G> = (&'t Node<T, G>, Split<'a, char>, bool);

impl<T: Clone, G: Copy> SubscriptionTree<T, G> {
    pub(crate) fn new() -> Self {
        SubscriptionTree { root: Node::default(), len: 0 }
    }

    /// Adds or replaces a subscription. Subscribing again with the same
    /// filter and id replaces the grant (and the handle, so the newest handle
    /// of a session wins) instead of adding a second entry [MQTT-3.8.4-3].
    /// Returns true if it replaced one.
    pub(crate) fn subscribe(&mut self, filter: &str, id: SubscriberId, handle: T, grant: G) -> bool {
        let (steps, multi) = parse_filter(filter);
        let mut node = &mut self.root;
        for step in steps {
            node = node.child_or_insert(step);
        }
        let replaced = node.subscribers_mut(multi).upsert(id, handle, grant);
        if !replaced {
            self.len += 1;
        }
        replaced
    }

    /// Removes a subscription; returns true if it existed.
    ///
    /// Nodes left with no subscribers and no children are pruned, so a
    /// broker whose clients subscribe to ever-new topics (`device/<uuid>`)
    /// does not grow forever.
    pub(crate) fn unsubscribe(&mut self, filter: &str, id: SubscriberId) -> bool {
        let (steps, multi) = parse_filter(filter);

        let mut node = &mut self.root;
        for step in steps.clone() {
            match node.child_mut(step) {
                Some(child) => node = child,
                None => return false,
            }
        }
        if !node.subscribers_mut(multi).remove(id) {
            return false;
        }
        self.len -= 1;

        // Find the shallowest node from which the rest of the path is a bare
        // chain (no subscribers, no other children); cutting the edge above it
        // drops the whole chain. Two walks, because a `&mut` path to every
        // ancestor cannot be held at once.
        let mut cut: Option<usize> = None;
        let mut node = &self.root;
        for (depth, step) in steps.clone().enumerate() {
            let Some(child) = node.child(step) else {
                break;
            };
            // Being on the path, an intermediate node has the next one as a
            // child, so `<= 1` means "only the path"; the last node must have
            // none, which the final iteration's `cut = None` enforces.
            if child.has_subscribers() || child.child_count() > 1 {
                cut = None;
            } else if cut.is_none() {
                cut = Some(depth);
            }
            node = child;
        }
        if node.child_count() > 0 {
            cut = None;
        }
        if let Some(depth) = cut {
            let mut node = &mut self.root;
            let mut steps = steps;
            for step in steps.by_ref().take(depth) {
                match node.child_mut(step) {
                    Some(child) => node = child,
                    None => return true,
                }
            }
            if let Some(step) = steps.next() {
                node.remove_child(step);
            }
        }
        true
    }

    /// Fills `out` (cleared first) with one entry per matching subscription,
    /// grouped by subscriber (sorted by id).
    ///
    /// When several of one subscriber's filters match, it appears once per
    /// filter, each with its own grant: the caller decides how to merge them
    /// (the router sends one copy at the highest QoS, as the spec allows
    /// [MQTT-3.3.5-1], carrying every matching subscription identifier).
    ///
    /// Topics starting with `$` are not matched by a `+` or `#` in the first
    /// level of a filter [MQTT-4.7.2-1]. Matching is byte-exact: no case
    /// folding or Unicode normalization [MQTT-4.7.3-4].
    ///
    /// Cost: O(levels) hash lookups per branch taken (one, plus one per `+`
    /// subscription on the way), plus O(k log k) for the k matches. No
    /// allocation unless a `+` branch is pending or `out` must grow.
    pub(crate) fn matches(&self, topic: &str, out: &mut Vec<(SubscriberId, T, G)>) {
        out.clear();
        let dollar = topic.starts_with('$');
        let mut pending: Vec<Branch<'_, '_, T, G>> = Vec::new();
        let mut branch = Some((&self.root, topic.split('/'), true));
        while let Some((mut node, mut levels, mut first)) = branch.take().or_else(|| pending.pop()) {
            loop {
                let wildcards = !(first && dollar);
                // `prefix/#` matches the prefix itself and anything below.
                if wildcards {
                    node.multi.collect(out);
                }
                let Some(level) = levels.next() else {
                    node.exact.collect(out);
                    break;
                };
                if wildcards && let Some(plus) = &node.plus {
                    pending.push((plus, levels.clone(), false));
                }
                match node.children.get(level) {
                    Some(child) => {
                        node = child;
                        first = false;
                    }
                    None => break,
                }
            }
        }
        if out.len() > 1 {
            // Grouped by subscriber: the caller merges one subscriber's
            // overlapping subscriptions into one delivery.
            out.sort_unstable_by_key(|entry| entry.0);
        }
    }

    /// Number of subscriptions ((filter, id) pairs) held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Clone, G: Copy> Default for SubscriptionTree<T, G> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
impl<T, G> SubscriptionTree<T, G> {
    /// Nodes in the tree, root included (1 when fully pruned).
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.values());
            stack.extend(node.plus.as_deref());
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::rng::{Rng, random_filter, random_topic};
    use crate::topic;
    use std::collections::BTreeMap;

    const Q0: QoS = QoS::AtMostOnce;
    const Q1: QoS = QoS::AtLeastOnce;
    const Q2: QoS = QoS::ExactlyOnce;

    /// Matches as sorted (id, qos) pairs; also checks handles came along.
    /// Merged as the router merges them: one entry per id, highest QoS.
    fn hits(tree: &SubscriptionTree<u64>, topic: &str) -> Vec<(SubscriberId, QoS)> {
        let mut out = Vec::new();
        tree.matches(topic, &mut out);
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "grouped by id: {out:?}");
        for (id, handle, _) in &out {
            assert_eq!(*handle, id * 100, "handle of {id}");
        }
        let mut merged: Vec<(SubscriberId, QoS)> = Vec::new();
        for (id, _, qos) in out {
            match merged.last_mut() {
                Some(last) if last.0 == id => last.1 = last.1.max(qos),
                _ => merged.push((id, qos)),
            }
        }
        merged
    }

    fn ids(tree: &SubscriptionTree<u64>, topic: &str) -> Vec<SubscriberId> {
        hits(tree, topic).into_iter().map(|(id, _)| id).collect()
    }

    fn tree_with(filters: &[(&str, SubscriberId)]) -> SubscriptionTree<u64> {
        let mut tree = SubscriptionTree::new();
        for &(filter, id) in filters {
            tree.subscribe(filter, id, id * 100, Q1);
        }
        tree
    }

    #[test]
    fn new_and_default_are_empty() {
        let tree: SubscriptionTree<u64> = SubscriptionTree::default();
        assert!(tree.is_empty());
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.node_count(), 1);
        assert!(ids(&tree, "a").is_empty());
        assert!(SubscriptionTree::<u64>::new().is_empty());
    }

    #[test]
    fn exact_filters() {
        let tree = tree_with(&[("a/b", 1), ("a", 2), ("a/b/c", 3), ("b", 4)]);
        assert_eq!(ids(&tree, "a/b"), [1]);
        assert_eq!(ids(&tree, "a"), [2]);
        assert_eq!(ids(&tree, "a/b/c"), [3]);
        assert!(ids(&tree, "a/c").is_empty());
        assert!(ids(&tree, "a/b/c/d").is_empty());
        assert!(ids(&tree, "c").is_empty());
        assert_eq!(tree.len(), 4);
    }

    #[test]
    fn mqtt_3_8_4_3_resubscribe_replaces_qos() {
        let mut tree = SubscriptionTree::new();
        assert!(!tree.subscribe("a/+", 1, 100, Q2));
        assert_eq!(hits(&tree, "a/x"), [(1, Q2)]);
        assert!(tree.subscribe("a/+", 1, 100, Q0), "second subscribe replaces");
        assert_eq!(tree.len(), 1);
        assert_eq!(hits(&tree, "a/x"), [(1, Q0)]);
        // Another id on the same filter is a new subscription.
        assert!(!tree.subscribe("a/+", 2, 200, Q1));
        assert_eq!(tree.len(), 2);
        assert_eq!(hits(&tree, "a/x"), [(1, Q0), (2, Q1)]);
    }

    #[test]
    fn resubscribe_replaces_handle() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe("a", 1, "old", Q0);
        tree.subscribe("a", 1, "new", Q0);
        let mut out = Vec::new();
        tree.matches("a", &mut out);
        assert_eq!(out, [(1, "new", Q0)]);
    }

    #[test]
    fn unsubscribe_reports_existence() {
        let mut tree = tree_with(&[("a/b", 1), ("a/b", 2), ("a/#", 1)]);
        assert!(!tree.unsubscribe("a/b", 3), "unknown id");
        assert!(!tree.unsubscribe("a/c", 1), "unknown filter");
        assert!(!tree.unsubscribe("a", 1), "prefix of a filter is not it");
        assert!(!tree.unsubscribe("a/b/c", 1), "extension of a filter is not it");
        assert!(!tree.unsubscribe("a/+", 1), "+ is not the literal level");
        assert_eq!(tree.len(), 3);
        assert!(tree.unsubscribe("a/b", 1));
        assert!(!tree.unsubscribe("a/b", 1), "already gone");
        assert_eq!(tree.len(), 2);
        assert_eq!(hits(&tree, "a/b"), [(1, Q1), (2, Q1)], "1 still has a/#");
        assert!(tree.unsubscribe("a/#", 1));
        assert_eq!(ids(&tree, "a/b"), [2]);
    }

    #[test]
    fn filter_ending_at_a_node_and_its_hash_are_distinct() {
        // "a" and "a/#" end at the same node; each is its own subscription.
        let mut tree = tree_with(&[("a", 1), ("a/#", 2)]);
        assert_eq!(ids(&tree, "a"), [1, 2]);
        assert_eq!(ids(&tree, "a/b"), [2]);
        assert!(tree.unsubscribe("a", 1));
        assert!(!tree.unsubscribe("a", 2));
        assert_eq!(ids(&tree, "a"), [2]);
        assert!(tree.unsubscribe("a/#", 2));
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn mqtt_4_7_1_2_multi_level_wildcard() {
        let tree = tree_with(&[("sport/tennis/player1/#", 1), ("sport/#", 2), ("#", 3)]);
        assert_eq!(ids(&tree, "sport/tennis/player1"), [1, 2, 3], "# matches the parent level");
        assert_eq!(ids(&tree, "sport/tennis/player1/ranking"), [1, 2, 3]);
        assert_eq!(ids(&tree, "sport/tennis/player1/score/wimbledon"), [1, 2, 3]);
        assert_eq!(ids(&tree, "sport/tennis/player2"), [2, 3]);
        assert_eq!(ids(&tree, "sport"), [2, 3]);
        assert_eq!(ids(&tree, "sport/"), [2, 3]);
        assert_eq!(ids(&tree, "sports"), [3]);
        assert_eq!(ids(&tree, "/"), [3]);
        assert_eq!(ids(&tree, "x/y/z"), [3]);
    }

    #[test]
    fn mqtt_4_7_1_3_single_level_wildcard() {
        let tree = tree_with(&[("sport/tennis/+", 1), ("sport/+", 2), ("+/+", 3), ("/+", 4), ("+", 5)]);
        assert_eq!(ids(&tree, "sport/tennis/player1"), [1]);
        assert_eq!(ids(&tree, "sport/tennis/player2"), [1]);
        assert!(ids(&tree, "sport/tennis/player1/ranking").is_empty());
        assert_eq!(ids(&tree, "sport"), [5], "sport/+ does not match sport");
        assert_eq!(ids(&tree, "sport/"), [2, 3], "+ matches an empty level");
        assert_eq!(ids(&tree, "/finance"), [3, 4]);
        assert_eq!(ids(&tree, "finance"), [5]);
        assert!(ids(&tree, "a/b/c/d").is_empty());
    }

    #[test]
    fn plus_and_hash_combined() {
        let tree = tree_with(&[("+/b/#", 1), ("a/+/+", 2), ("+/+/#", 3)]);
        assert_eq!(ids(&tree, "a/b"), [1, 3]);
        assert_eq!(ids(&tree, "x/b/c/d"), [1, 3]);
        assert_eq!(ids(&tree, "a/b/c"), [1, 2, 3]);
        assert_eq!(ids(&tree, "a"), Vec::<u64>::new());
    }

    #[test]
    fn empty_levels_are_levels() {
        let tree = tree_with(&[("a//b", 1), ("/a", 2), ("a/", 3), ("/", 4), ("a/b", 5), ("a/+/b", 6)]);
        assert_eq!(ids(&tree, "a//b"), [1, 6]);
        assert_eq!(ids(&tree, "/a"), [2]);
        assert_eq!(ids(&tree, "a/"), [3]);
        assert_eq!(ids(&tree, "/"), [4]);
        assert_eq!(ids(&tree, "a/b"), [5]);
        assert!(ids(&tree, "a").is_empty());
        assert!(ids(&tree, "//").is_empty());
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics() {
        let tree = tree_with(&[
            ("#", 1),
            ("+/monitor/Clients", 2),
            ("$SYS/#", 3),
            ("$SYS/monitor/+", 4),
            ("+", 5),
            ("+/#", 6),
            ("$SYS/monitor/Clients", 7),
        ]);
        assert_eq!(ids(&tree, "$SYS/monitor/Clients"), [3, 4, 7]);
        assert_eq!(ids(&tree, "$SYS"), [3], "$SYS/# matches $SYS, + and # do not");
        assert_eq!(ids(&tree, "$"), Vec::<u64>::new());
        // Not a $ topic: every wildcard applies.
        assert_eq!(ids(&tree, "SYS/monitor/Clients"), [1, 2, 6]);
        // `$` below the first level is an ordinary character.
        assert_eq!(ids(&tree, "a/$SYS"), [1, 6]);
        let tree = tree_with(&[("a/+", 1), ("a/#", 2)]);
        assert_eq!(ids(&tree, "a/$x"), [1, 2]);
    }

    #[test]
    fn mqtt_3_3_5_1_overlapping_filters_one_copy_at_max_qos() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe("a/#", 1, 100, Q0);
        tree.subscribe("a/+", 1, 100, Q2);
        tree.subscribe("a/b", 1, 100, Q1);
        tree.subscribe("#", 1, 100, Q0);
        tree.subscribe("a/b", 2, 200, Q0);
        tree.subscribe("+/b", 2, 200, Q1);
        tree.subscribe("a/c", 3, 300, Q2);
        assert_eq!(hits(&tree, "a/b"), [(1, Q2), (2, Q1)]);
        assert_eq!(hits(&tree, "a/c"), [(1, Q2), (3, Q2)]);
        assert_eq!(hits(&tree, "a"), [(1, Q0)]);
        tree.unsubscribe("a/+", 1);
        assert_eq!(hits(&tree, "a/b"), [(1, Q1), (2, Q1)]);
    }

    #[test]
    fn matches_clears_out() {
        let tree = tree_with(&[("a", 1)]);
        let mut out = vec![(9, 900, Q2), (8, 800, Q0)];
        tree.matches("b", &mut out);
        assert!(out.is_empty());
        tree.matches("a", &mut out);
        assert_eq!(out, [(1, 100, Q1)]);
    }

    #[test]
    fn mqtt_4_7_3_4_no_normalization() {
        let tree = tree_with(&[("a/b", 1), ("Ä/ß", 2), ("e\u{301}", 3)]);
        assert!(ids(&tree, "A/b").is_empty(), "case sensitive");
        assert!(ids(&tree, "a/B").is_empty());
        assert!(ids(&tree, "a/b ").is_empty(), "no trimming");
        assert!(ids(&tree, " a/b").is_empty());
        assert_eq!(ids(&tree, "Ä/ß"), [2]);
        assert!(ids(&tree, "ä/ß").is_empty());
        assert!(ids(&tree, "\u{e9}").is_empty(), "precomposed é is not e + U+0301");
        assert_eq!(ids(&tree, "e\u{301}"), [3]);
    }

    #[test]
    fn pruning_removes_only_the_dead_chain() {
        let mut tree = tree_with(&[("a/b/c/d", 1), ("a", 2), ("a/b/x", 3)]);
        // root, a, b, c, d, x
        assert_eq!(tree.node_count(), 6);
        tree.unsubscribe("a/b/c/d", 1);
        // c and d go; b stays for x, a for its subscriber.
        assert_eq!(tree.node_count(), 4);
        assert_eq!(ids(&tree, "a/b/x"), [3]);
        tree.unsubscribe("a/b/x", 3);
        assert_eq!(tree.node_count(), 2);
        assert_eq!(ids(&tree, "a"), [2]);
        tree.unsubscribe("a", 2);
        assert_eq!(tree.node_count(), 1);
        assert!(tree.is_empty());
    }

    #[test]
    fn pruning_keeps_nodes_with_children_or_other_subscribers() {
        let mut tree = tree_with(&[("a/+/c", 1), ("a/+/c", 2), ("a/+", 3), ("a/+/c/#", 4)]);
        assert_eq!(tree.node_count(), 4);
        tree.unsubscribe("a/+/c", 1);
        assert_eq!(tree.node_count(), 4, "2 still on c");
        tree.unsubscribe("a/+/c", 2);
        assert_eq!(tree.node_count(), 4, "c still has a # subscriber");
        tree.unsubscribe("a/+/c/#", 4);
        assert_eq!(tree.node_count(), 3);
        tree.unsubscribe("a/+", 3);
        assert_eq!(tree.node_count(), 1);
        // A failed unsubscribe prunes nothing and breaks nothing.
        let mut tree = tree_with(&[("x/y", 1)]);
        assert!(!tree.unsubscribe("x/y", 2));
        assert!(!tree.unsubscribe("x", 1));
        assert_eq!(tree.node_count(), 3);
        assert_eq!(ids(&tree, "x/y"), [1]);
    }

    #[test]
    fn many_subscribers_on_one_filter() {
        // Crosses the index threshold up and down several times.
        let mut tree = SubscriptionTree::new();
        let n = 1000;
        for id in 0..n {
            assert!(!tree.subscribe("broadcast/#", id, id * 100, Q0));
        }
        for id in 0..n {
            assert!(tree.subscribe("broadcast/#", id, id * 100, Q1), "replace via the index");
        }
        assert_eq!(tree.len(), n as usize);
        assert_eq!(ids(&tree, "broadcast/x"), (0..n).collect::<Vec<_>>());
        for id in (0..n).filter(|id| id % 3 != 0) {
            assert!(tree.unsubscribe("broadcast/#", id));
            assert!(!tree.unsubscribe("broadcast/#", id));
        }
        let rest: Vec<u64> = (0..n).filter(|id| id % 3 == 0).collect();
        assert_eq!(ids(&tree, "broadcast"), rest);
        for &id in rest.iter().rev() {
            assert!(tree.unsubscribe("broadcast/#", id));
            if id % 30 == 0 {
                let left: Vec<u64> = rest.iter().copied().filter(|&r| r < id).collect();
                assert_eq!(ids(&tree, "broadcast"), left);
            }
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn very_deep_filters_do_not_overflow_the_stack() {
        // 65 535 bytes of slashes is the longest filter the wire allows; go
        // beyond it. Test threads have 2 MiB stacks, like tokio workers.
        let deep = "/".repeat(200_000);
        let deep_plus = "+/".repeat(100_000) + "#";
        let mut tree = SubscriptionTree::new();
        tree.subscribe(&deep, 1, 100, Q1);
        tree.subscribe(&deep_plus, 2, 200, Q2);
        tree.subscribe(&format!("{deep}/#"), 3, 300, Q0);
        assert_eq!(ids(&tree, &deep), [1, 2, 3]);
        assert!(tree.unsubscribe(&deep, 1));
        assert_eq!(ids(&tree, &deep), [2, 3]);
        assert!(tree.unsubscribe(&deep_plus, 2));
        // Leave the last one for the tree's drop.
        assert_eq!(ids(&tree, &deep), [3]);
        drop(tree);
    }

    #[test]
    fn invalid_input_does_not_panic() {
        let odd = [
            "", "/", "//", "#", "+", "a/#/b", "#/a", "a#", "a+", "++", "##", "+/#", "/#", "#/", "\0", "a/\0/b", "$",
            "$/#", "+#",
        ];
        let mut tree = SubscriptionTree::new();
        for (i, filter) in odd.iter().enumerate() {
            tree.subscribe(filter, i as u64, i as u64 * 100, Q1);
        }
        let mut out = Vec::new();
        for topic in odd {
            tree.matches(topic, &mut out);
        }
        // Misplaced wildcards are literal text, not wildcards.
        // Misplaced wildcards are literal text: only "#" (3) and "+/#" (11) match.
        assert_eq!(ids(&tree, "a/x/b"), [3, 11]);
        assert_eq!(ids(&tree, "a/#/b"), [3, 5, 11], "a literal # level");
        for (i, filter) in odd.iter().enumerate() {
            assert!(tree.unsubscribe(filter, i as u64), "{filter:?}");
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    fn random_qos(rng: &mut Rng) -> QoS {
        [Q0, Q1, Q2][rng.below(3)]
    }

    /// The brute-force answer: for each id, the max QoS over its matching filters.
    fn expected(model: &BTreeMap<(String, SubscriberId), QoS>, topic: &str) -> Vec<(SubscriberId, QoS)> {
        let mut best: BTreeMap<SubscriberId, QoS> = BTreeMap::new();
        for ((filter, id), &qos) in model {
            if topic::matches(filter, topic) {
                let entry = best.entry(*id).or_insert(qos);
                *entry = (*entry).max(qos);
            }
        }
        best.into_iter().collect()
    }

    #[test]
    fn randomized_against_reference_matcher() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..40 {
            let mut tree = SubscriptionTree::new();
            let mut model: BTreeMap<(String, SubscriberId), QoS> = BTreeMap::new();
            let topics: Vec<String> = (0..60).map(|_| random_topic(&mut rng)).collect();
            // A small pool per round, so unsubscribes and resubscribes hit.
            let pool: Vec<String> = (0..30).map(|_| random_filter(&mut rng)).collect();
            for step in 0..400 {
                let filter = pool[rng.below(pool.len())].clone();
                let id = rng.below(6) as u64;
                if rng.below(3) == 0 {
                    let existed = model.remove(&(filter.clone(), id)).is_some();
                    assert_eq!(tree.unsubscribe(&filter, id), existed, "unsubscribe {filter:?} {id}");
                } else {
                    let qos = random_qos(&mut rng);
                    let replaced = model.insert((filter.clone(), id), qos).is_some();
                    assert_eq!(tree.subscribe(&filter, id, id * 100, qos), replaced, "subscribe {filter:?}");
                }
                assert_eq!(tree.len(), model.len());
                if step % 20 == 0 {
                    for topic in &topics {
                        assert_eq!(hits(&tree, topic), expected(&model, topic), "round {round}, topic {topic:?}");
                    }
                }
            }
            for topic in &topics {
                assert_eq!(hits(&tree, topic), expected(&model, topic), "round {round}, topic {topic:?}");
            }
            // Unsubscribe everything in random order, checking as we go.
            let mut all: Vec<(String, SubscriberId)> = model.keys().cloned().collect();
            while !all.is_empty() {
                let (filter, id) = all.swap_remove(rng.below(all.len()));
                assert!(tree.unsubscribe(&filter, id));
                model.remove(&(filter, id));
                if all.len().is_multiple_of(10) {
                    for topic in &topics {
                        assert_eq!(hits(&tree, topic), expected(&model, topic));
                    }
                }
            }
            assert!(tree.is_empty());
            assert_eq!(tree.node_count(), 1, "fully pruned");
        }
    }
}
