//! Topic names and topic filters (MQTT 3.1.1 section 4.7).
//!
//! Pure functions: validation used by the codec, and a reference matcher
//! used by the retained store and by tests of the subscription tree.

/// A topic name as a PUBLISH carries it: non-empty, no `+` or `#`
/// [MQTT-3.3.2-2], [MQTT-4.7.3-1]. UTF-8 rules are checked by the codec.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.bytes().any(|b| b == b'+' || b == b'#')
}

/// The most bytes an MQTT string, and so a topic, can hold [MQTT-1.5.3].
pub const MAX_TOPIC_BYTES: usize = u16::MAX as usize;

/// A topic name that did not come through the codec (an embedding
/// application's publish): [`is_valid_name`] plus the rules of an MQTT
/// string the codec checks on the wire, no U+0000 [MQTT-1.5.3-2] and at most
/// [`MAX_TOPIC_BYTES`].
pub fn is_valid_name_string(name: &str) -> bool {
    is_valid_name(name) && !name.contains('\0') && name.len() <= MAX_TOPIC_BYTES
}

/// A topic filter that did not come through the codec: [`is_valid_filter`]
/// plus the MQTT string rules, as for [`is_valid_name_string`].
pub fn is_valid_filter_string(filter: &str) -> bool {
    is_valid_filter(filter) && !filter.contains('\0') && filter.len() <= MAX_TOPIC_BYTES
}

/// The group and the filter of a shared subscription
/// `$share/{group}/{filter}` [MQTT 5 §4.8.2], if `filter` is one (valid or
/// not: see [`is_valid_filter`]).
pub fn shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/").map(|rest| rest.split_once('/').unwrap_or((rest, "")))
}

/// A topic filter as SUBSCRIBE/UNSUBSCRIBE carry it: non-empty
/// [MQTT-4.7.3-1]; `#` only alone as the last level [MQTT-4.7.1-2];
/// `+` only as a whole level [MQTT-4.7.1-3]. A filter starting with
/// `$share/` is a shared subscription: a group name without `+`, `#` or
/// `/`, then a valid filter [MQTT-4.8.2-1, MQTT-4.8.2-2].
pub fn is_valid_filter(filter: &str) -> bool {
    if let Some((group, inner)) = shared(filter) {
        return !group.is_empty() && !group.contains(['+', '#']) && is_plain_filter(inner);
    }
    is_plain_filter(filter)
}

/// [`is_valid_filter`] without the shared subscription form.
fn is_plain_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// Whether `filter` matches the topic `name` (both assumed valid).
///
/// Leading wildcards do not match names that start with `$` [MQTT-4.7.2-1].
/// `a/#` also matches `a` (the parent level) [MQTT-4.7.1-2].
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(nl)) if fl == nl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_did_not_come_through_the_codec() {
        assert!(is_valid_name_string("a/b"));
        assert!(!is_valid_name_string("a\0b"));
        assert!(!is_valid_name_string(&"a".repeat(MAX_TOPIC_BYTES + 1)));
        assert!(is_valid_filter_string("a/+/#"));
        assert!(!is_valid_filter_string("a/\0/#"));
        assert!(!is_valid_filter_string("a/#/b"));
    }

    #[test]
    fn names() {
        assert!(is_valid_name("a/b"));
        assert!(is_valid_name("/"));
        assert!(is_valid_name("$SYS/x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a/+"));
        assert!(!is_valid_name("a/#"));
        assert!(!is_valid_name("a+b"));
    }

    #[test]
    fn mqtt_4_7_1_2_and_4_7_1_3_filters() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "+/", "sport/tennis/#"] {
            assert!(is_valid_filter(ok), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "#/a", "a+", "a/b+/c", "++", "##"] {
            assert!(!is_valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcard() {
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/+", "$SYS/x"));
    }

    #[test]
    fn matching() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("a/+/c", "a//c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(matches("a/b", "a/b"));
    }

    #[test]
    fn mqtt_4_8_2_shared_subscription_filters() {
        assert_eq!(shared("$share/g/a/+"), Some(("g", "a/+")));
        assert_eq!(shared("a/b"), None);
        for good in ["$share/g/a", "$share/group-1/#", "$share/g/+/x", "$share/g/$SYS/#"] {
            assert!(is_valid_filter(good), "{good}");
        }
        for bad in ["$share/g", "$share//a", "$share/g/", "$share/+/a", "$share/g#/a", "$share/g/a#", "$share/"] {
            assert!(!is_valid_filter(bad), "{bad}");
        }
        // `$shared` is no prefix of the form: an ordinary filter.
        assert!(is_valid_filter("$shared/g/a"));
    }
}
