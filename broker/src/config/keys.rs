//! Every key moth reads, in one table ([`KEYS`]): the section it is in, all
//! its spellings, and what its value must be.
//!
//! Both findings about keys come from this table, so they cannot disagree:
//! the warning for a key moth does not read (with a "did you mean" when it
//! differs from a known spelling only in case or `_` for `-`), and the text
//! of a type error ("expected {text}, found ...").
//!
//! To add a key: add its row here, a field per spelling in `schema.rs`
//! (the serde name is the spelling), resolve it in `resolve.rs` and describe
//! it in `CONFIGURATION.md`. Unit tests hold this table to the schema's
//! serde names and to the reference, so a forgotten one fails a test.

use std::collections::HashSet;

use serde_saphyr::Location;

use super::diagnostics::{Ctx, Spot};
use super::position::{KeyText, Node, NodeKind, Position, Seg, child, display_path};
// The table reads better without the enum names.
use Holds::{Keys, List, Named, Nothing};
use Section::{Auth, Listener, Metrics, Persistence, Top, TopicCheck};

/// The mappings whose keys are in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    /// The top level of the file.
    Top,
    /// One entry under `listeners`.
    Listener,
    /// `auth`.
    Auth,
    /// `topic-check` (or `topic_check`).
    TopicCheck,
    /// `metrics`.
    Metrics,
    /// `persistence`.
    Persistence,
}

/// What a key's value holds beneath it: how a path deeper than the key is
/// read, for type errors and for finding the next section to check.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holds {
    /// Nothing moth checks the shape of: a scalar, or options passed on as written.
    Nothing,
    /// The keys of a section.
    Keys(Section),
    /// A list; each item must be the text given.
    List(&'static str),
    /// A mapping from names the user chooses (listener names, user names):
    /// each value must be the text given, and holds what follows.
    Named(&'static str, &'static Holds),
}

/// One key: one setting, under every spelling it has.
#[derive(Debug)]
pub(super) struct Key {
    /// Where the key is.
    pub(super) section: Section,
    /// Its spellings. Where hbmqtt's documentation and code (or amqtt)
    /// disagree there are two; the first is the one a near miss is pointed to.
    pub(super) spellings: &'static [&'static str],
    /// What the value must be, for "expected ..., found ..."; `None` when
    /// any YAML is read here (and checked by the code that reads it).
    pub(super) expected: Option<&'static str>,
    /// What the value holds beneath it.
    pub(super) holds: Holds,
}

const fn key(section: Section, spellings: &'static [&'static str], expected: &'static str, holds: Holds) -> Key {
    Key { section, spellings, expected: Some(expected), holds }
}

/// Whether `a` and `b` are two spellings of one key of the table: what the
/// resolver's merging of two spellings (`Ctx::pick`) checks, so that the
/// spellings it reads cannot drift from the ones warnings and errors name.
pub(super) fn spells_one_key(a: &str, b: &str) -> bool {
    KEYS.iter().any(|k| k.spellings.contains(&a) && k.spellings.contains(&b))
}

/// What the whole file must be.
const FILE: &str = "a mapping of settings";
const BOOLEAN: &str = "a boolean (`true`/`false`, `on`/`off`, `yes`/`no`)";
const TRUE_OR_FALSE: &str = "`true` or `false`";
const SECONDS: &str = "a non-negative number of seconds";
const SECONDS_OR_NULL: &str = "a non-negative number of seconds, or null";
const FILE_PATH: &str = "a file path";
const CHAIN_DEFAULT: &str = "`deny` or `allow`";
const PLUGIN_LIST: &str = "a list of plugin names";
const PLUGIN_NAMES: Holds = List("a plugin name");
const ACL_MAP: &str = "a mapping from user names to lists of topic filters";
const ACL: Holds = Named("a list of topic filters", &List("a topic filter"));
const LISTENERS: Holds = Named("a mapping of listener settings (`bind`, `type`, ...)", &Keys(Listener));

/// Every key moth reads. Order within a section only matters for reading;
/// a test makes sure no near miss could match two rows.
pub(super) const KEYS: &[Key] = &[
    // The top level.
    key(Top, &["listeners"], "a mapping from listener names to listener settings", LISTENERS),
    key(Top, &["timeout-disconnect-delay", "timeout_disconnect_delay"], SECONDS, Nothing),
    key(Top, &["sys_interval", "sys-interval"], SECONDS, Nothing),
    key(Top, &["max-qos", "max_qos"], "0, 1 or 2", Nothing),
    key(Top, &["auth"], "a mapping of authentication settings", Keys(Auth)),
    key(Top, &["topic-check", "topic_check"], "a mapping of topic-check settings", Keys(TopicCheck)),
    key(Top, &["max-packet-size"], "a positive number of bytes", Nothing),
    key(Top, &["max-inflight"], "an integer from 1 to 65535", Nothing),
    key(Top, &["max-queued-messages"], "a non-negative integer", Nothing),
    key(Top, &["max-queued-bytes"], "a non-negative number of bytes", Nothing),
    key(Top, &["max-subscriptions-per-client"], "a non-negative integer", Nothing),
    key(Top, &["retained-max-count"], "a non-negative integer", Nothing),
    key(Top, &["retained-max-bytes"], "a non-negative number of bytes", Nothing),
    key(Top, &["memory-limit"], "a non-negative number of bytes", Nothing),
    key(Top, &["receive-maximum"], "an integer from 1 to 65535", Nothing),
    key(Top, &["topic-alias-maximum"], "an integer from 0 to 65535", Nothing),
    key(Top, &["max-message-expiry-interval"], SECONDS_OR_NULL, Nothing),
    key(Top, &["shared-subscriptions"], BOOLEAN, Nothing),
    key(Top, &["response-information"], "a topic prefix (`{client_id}` is replaced)", Nothing),
    key(Top, &["session-owner"], "`user` or `client-id`", Nothing),
    key(Top, &["session-expiry-interval", "session_expiry_interval"], SECONDS_OR_NULL, Nothing),
    key(Top, &["persistent-client-expiration"], "seconds, or Mosquitto's `<n>h`, `d`, `w`, `m` or `y`", Nothing),
    key(Top, &["metrics"], "a mapping of metrics settings (`bind`, `path`)", Keys(Metrics)),
    key(Top, &["persistence"], "a mapping of persistence settings (`enabled`, `path`, `sync`)", Keys(Persistence)),
    key(Top, &["log-level"], "a log filter such as `info` or `moth=debug`", Nothing),
    key(Top, &["log-format"], "`text` or `json`", Nothing),
    key(Top, &["plugins-dir"], "a directory path or a list of them", Nothing),
    key(Top, &["plugins-config"], "a mapping from plugin names to their options", Nothing),
    key(Top, &["plugin-timeout"], SECONDS, Nothing),
    key(Top, &["plugin-concurrency"], "a positive integer", Nothing),
    // amqtt's plugin map, or hbmqtt's list that nothing reads: any YAML, checked by `amqtt.rs`.
    Key { section: Top, spellings: &["plugins"], expected: None, holds: Nothing },
    // listeners.<name>
    key(Listener, &["bind"], "an address such as `0.0.0.0:1883`, `[::1]:1883`, `:1883` or `1883`", Nothing),
    key(Listener, &["type"], "`tcp`, `ws`, `tls` or `wss`", Nothing),
    key(Listener, &["max_connections", "max-connections"], "a non-negative integer (0 = no limit)", Nothing),
    key(Listener, &["ssl"], "`on` or `off` (also `true`/`false`, `yes`/`no`)", Nothing),
    key(Listener, &["cafile"], FILE_PATH, Nothing),
    key(Listener, &["capath"], FILE_PATH, Nothing),
    key(Listener, &["cadata"], "PEM text", Nothing),
    key(Listener, &["certfile"], FILE_PATH, Nothing),
    key(Listener, &["keyfile"], FILE_PATH, Nothing),
    key(Listener, &["path"], "a URL path such as `/mqtt`", Nothing),
    key(Listener, &["require_certificate", "require-certificate"], TRUE_OR_FALSE, Nothing),
    key(Listener, &["use_identity_as_username", "use-identity-as-username"], TRUE_OR_FALSE, Nothing),
    // auth
    key(Auth, &["plugins"], PLUGIN_LIST, PLUGIN_NAMES),
    key(Auth, &["allow-anonymous", "allow_anonymous"], BOOLEAN, Nothing),
    key(Auth, &["password-file", "password_file"], FILE_PATH, Nothing),
    key(Auth, &["default"], CHAIN_DEFAULT, Nothing),
    // topic-check
    key(TopicCheck, &["enabled"], BOOLEAN, Nothing),
    key(TopicCheck, &["plugins"], PLUGIN_LIST, PLUGIN_NAMES),
    key(TopicCheck, &["acl"], ACL_MAP, ACL),
    key(TopicCheck, &["subscribe-acl", "subscribe_acl"], ACL_MAP, ACL),
    key(TopicCheck, &["publish-acl", "publish_acl"], ACL_MAP, ACL),
    key(TopicCheck, &["receive-acl", "receive_acl"], ACL_MAP, ACL),
    key(TopicCheck, &["default"], CHAIN_DEFAULT, Nothing),
    // metrics
    key(Metrics, &["bind"], "an address such as `127.0.0.1:9100`", Nothing),
    key(Metrics, &["path"], "a URL path such as `/metrics`", Nothing),
    key(Metrics, &["enabled"], BOOLEAN, Nothing),
    key(Persistence, &["enabled"], BOOLEAN, Nothing),
    key(Persistence, &["path"], "a directory path", Nothing),
    key(Persistence, &["sync"], "`always`, `batch` or `periodic`", Nothing),
    key(Persistence, &["sync-interval"], "a number of seconds", Nothing),
];

/// The row of `spelling` in `section`, matched exactly (as serde matches).
fn find(section: Section, spelling: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.section == section && k.spellings.contains(&spelling))
}

/// The spelling an unknown key was probably meant to be: a known one that
/// differs only in case or in `_` for `-`.
fn suggestion(section: Section, written: &str) -> Option<&'static str> {
    let wanted = normalise(written);
    let spellings = || KEYS.iter().filter(|k| k.section == section).flat_map(|k| k.spellings.iter().copied());
    if let Some(same) = spellings().find(|spelling| normalise(spelling) == wanted) {
        return Some(same);
    }
    // A typo: the one spelling within two edits (`listners`, `max-qso`),
    // if exactly one key is that close; short keys need a closer match.
    let allowed = if wanted.len() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &'static str)> = None;
    let mut tied = false;
    for spelling in spellings() {
        let d = edit_distance(&normalise(spelling), &wanted);
        match best {
            _ if d > allowed => {}
            Some((b, _)) if d > b => {}
            Some((b, other)) if d == b => {
                tied |= !KEYS.iter().any(|k| k.spellings.contains(&other) && k.spellings.contains(&spelling))
            }
            _ => {
                best = Some((d, spelling));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, s)| s)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn normalise(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

/// What the value at `path` must be, for type-error messages; `None` where
/// the table says nothing (unknown keys, any-YAML values).
pub(super) fn expectation(path: &[Seg]) -> Option<&'static str> {
    let mut expected = FILE;
    let mut holds = Keys(Top);
    for seg in path {
        let text = match seg {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        };
        (expected, holds) = match holds {
            Nothing => return None,
            Keys(section) => {
                let key = find(section, text)?;
                (key.expected?, key.holds)
            }
            List(item) if text == "[]" => (item, Nothing),
            List(_) => return None,
            Named(value, inner) => (value, *inner),
        };
    }
    Some(expected)
}

/// Warns about every key moth does not read, in every section of the file.
pub(super) fn unknown_keys(root: Option<&Node>, ctx: &mut Ctx<'_>) {
    if let Some(root) = root {
        walk(root, &[], Keys(Top), ctx);
    }
}

/// Checks the keys of the mapping at `base`, then the sections beneath it.
fn walk(node: &Node, base: &[Seg], holds: Holds, ctx: &mut Ctx<'_>) {
    let NodeKind::Map(entries) = &node.kind else {
        return;
    };
    match holds {
        Keys(section) => {
            check_keys(base, entries, section, ctx);
            for (key, _, value) in entries {
                if let Some(known) = find(section, &key.0) {
                    walk(value, &child(base, &key.0), known.holds, ctx);
                }
            }
        }
        Named(_, inner) => {
            for (name, _, value) in entries {
                walk(value, &child(base, &name.0), *inner, ctx);
            }
        }
        List(_) | Nothing => {}
    }
}

fn check_keys(base: &[Seg], map: &[(KeyText, Location, Node)], section: Section, ctx: &mut Ctx<'_>) {
    let mut seen = HashSet::new();
    for (key, loc, _) in map {
        // A repeated unknown key is reported once (yaml.rs reports the repetition).
        if find(section, &key.0).is_some() || !seen.insert(key.0.as_str()) {
            continue;
        }
        let message = match suggestion(section, &key.0) {
            Some(k) => format!("unknown key, ignored (did you mean `{k}`?)"),
            None => "unknown key, ignored".to_owned(),
        };
        let spot =
            Spot { key: display_path(&child(base, &key.0)), pos: Position::from_location(*loc), note: String::new() };
        ctx.warn(&spot, message);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    use super::*;
    use crate::config::{AuthFile, ConfigFile, ListenerFile, MetricsFile, PersistenceFile, TopicCheckFile};

    /// Reads nothing; remembers the field names a derived `Deserialize`
    /// announces when it asks for a struct.
    #[derive(Default)]
    struct FieldNames(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs are recorded"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    fn serde_names<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
        let mut names = FieldNames::default();
        assert!(T::deserialize(&mut names).is_err());
        names.0.expect("a struct").iter().copied().collect()
    }

    fn table_names(section: Section) -> BTreeSet<&'static str> {
        KEYS.iter().filter(|k| k.section == section).flat_map(|k| k.spellings.iter().copied()).collect()
    }

    #[test]
    fn every_serde_field_is_a_row_and_every_row_a_serde_field() {
        assert_eq!(table_names(Top), serde_names::<ConfigFile>());
        assert_eq!(table_names(Listener), serde_names::<ListenerFile>());
        assert_eq!(table_names(Auth), serde_names::<AuthFile>());
        assert_eq!(table_names(TopicCheck), serde_names::<TopicCheckFile>());
        assert_eq!(table_names(Metrics), serde_names::<MetricsFile>());
        assert_eq!(table_names(Persistence), serde_names::<PersistenceFile>());
    }

    #[test]
    fn the_reference_names_every_spelling() {
        let reference = include_str!("../../CONFIGURATION.md");
        for key in KEYS {
            for spelling in key.spellings {
                assert!(reference.contains(&format!("`{spelling}`")), "CONFIGURATION.md does not name `{spelling}`");
            }
        }
    }

    #[test]
    fn a_near_miss_can_only_mean_one_key() {
        for section in [Top, Listener, Auth, TopicCheck, Metrics, Persistence] {
            let mut owner = std::collections::HashMap::new();
            for (row, key) in KEYS.iter().enumerate().filter(|(_, k)| k.section == section) {
                for spelling in key.spellings {
                    let previous = owner.insert(normalise(spelling), row);
                    assert!(previous.is_none_or(|p| p == row), "`{spelling}` is a near miss of another key");
                }
            }
        }
    }

    #[test]
    fn suggestions_point_at_the_first_spelling() {
        assert_eq!(suggestion(Listener, "Max-Connections"), Some("max_connections"));
        assert_eq!(suggestion(Top, "max_inflight"), Some("max-inflight"));
        assert_eq!(suggestion(Top, "SYS_INTERVAL"), Some("sys_interval"));
        assert_eq!(suggestion(Auth, "secret"), None);
        // Typos within two edits, when one key is the closest.
        assert_eq!(suggestion(Top, "listners"), Some("listeners"));
        assert_eq!(suggestion(Top, "max-qso"), Some("max-qos"));
        assert_eq!(suggestion(Persistence, "synk"), Some("sync"));
        assert_eq!(suggestion(Top, "completely-different"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    fn keys(path: &[&str]) -> Vec<Seg> {
        path.iter().map(|k| if *k == "[]" { Seg::Index(0) } else { Seg::Key((*k).to_owned()) }).collect()
    }

    #[test]
    fn expectations_follow_the_table_down() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], Some("a mapping of settings")),
            (&["listeners", "x"], Some("a mapping of listener settings (`bind`, `type`, ...)")),
            (&["listeners", "x", "max-connections"], Some("a non-negative integer (0 = no limit)")),
            (&["topic_check", "plugins", "[]"], Some("a plugin name")),
            (&["topic-check", "receive_acl", "alice"], Some("a list of topic filters")),
            (&["topic-check", "acl", "alice", "[]"], Some("a topic filter")),
            (&["topic-check", "acl", "alice", "x"], None),
            (&["plugins"], None),
            (&["plugins", "x"], None),
            (&["plugins-dir", "[]"], None),
            (&["listeners", "x", "flavour"], None),
            (&["auth", "plugins", "[]", "x"], None),
        ];
        for (path, expected) in cases {
            assert_eq!(expectation(&keys(path)), *expected, "{path:?}");
        }
        for key in KEYS.iter().filter(|k| k.section == Top) {
            for spelling in key.spellings {
                assert_eq!(expectation(&keys(&[spelling])), key.expected, "{spelling}");
            }
        }
    }
}
