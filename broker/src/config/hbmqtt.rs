//! What moth does because hbmqtt (or PyYAML under it) does it: the rules a
//! hbmqtt user's file relies on, in one place. Each is described for users
//! in `CONFIGURATION.md` ("Rules").
//!
//! - YAML 1.1 booleans, and the words `ssl` accepts;
//! - a key given twice in one mapping keeps its last value;
//! - two spellings of one key (hbmqtt's documentation and code disagree)
//!   are merged: [`Ctx::pick`];
//! - the `default` listener is a template for the others, and is started
//!   itself only in the cases hbmqtt starts it;
//! - without a `plugins` list, a chain asks every plugin hbmqtt has for it:
//!   [`AuthConfig::auth_chain`], [`TopicCheckConfig::topic_chain`].

use super::diagnostics::{At, ConfigError, Ctx};
use super::keys;
use super::listeners::ListenerFields;
use super::position::{Seg, child};
use super::types::{AuthConfig, TopicCheckConfig};

/// The authentication chain when `auth.plugins` is absent: hbmqtt asks
/// every authentication plugin it has, and these are moth's built-in ones.
const HBMQTT_AUTH_CHAIN: [&str; 2] = ["auth_anonymous", "auth_file"];

/// The topic chain when `topic-check.plugins` is absent, likewise.
const HBMQTT_TOPIC_CHAIN: [&str; 2] = ["topic_taboo", "topic_acl"];

impl AuthConfig {
    /// The authentication plugins to ask, in order: `auth.plugins` as
    /// written, or, when it is absent, hbmqtt's rule of asking every
    /// authentication plugin: `auth_anonymous`, then `auth_file`. (Without
    /// `password-file`, that `auth_file` refuses every client that sends a
    /// user name, as hbmqtt's does.)
    pub fn auth_chain(&self) -> Vec<String> {
        match &self.plugins {
            Some(names) => names.clone(),
            None => HBMQTT_AUTH_CHAIN.map(String::from).to_vec(),
        }
    }
}

impl TopicCheckConfig {
    /// The topic plugins to ask, in order; `None` when `enabled` is false
    /// (no topic is checked). `topic-check.plugins` as written, or, when it
    /// is absent, hbmqtt's rule of asking every topic plugin: `topic_taboo`,
    /// then `topic_acl`.
    pub fn topic_chain(&self) -> Option<Vec<String>> {
        self.enabled.then(|| match &self.plugins {
            Some(names) => names.clone(),
            None => HBMQTT_TOPIC_CHAIN.map(String::from).to_vec(),
        })
    }
}

/// PyYAML reads YAML 1.1, where `on`/`off` and `yes`/`no` are booleans, and
/// hbmqtt's files rely on it (`ssl: on`, `enabled: False`). serde-saphyr's
/// non-strict booleans read these words the same way.
pub(super) const STRICT_BOOLEANS: bool = false;

/// PyYAML keeps the last value of a key given twice in one mapping, and
/// hbmqtt's own documented example repeats `capath`. The typed read does
/// the same (`yaml.rs` warns about each repetition).
pub(super) const REPEATED_KEYS: serde_saphyr::DuplicateKeyPolicy = serde_saphyr::DuplicateKeyPolicy::LastWins;

/// Reads an `ssl` word the way moth accepts it: the YAML 1.1 boolean words,
/// in any case, also as a quoted string, since a quoted `'on'` is still
/// meant as a switch (anything else is an error, not "off").
pub(super) fn ssl_word(word: &str) -> Option<bool> {
    match word.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

impl Ctx<'_> {
    /// Merges the two spellings of one key under `base`: either may be
    /// written, since hbmqtt's documentation and code disagree on which is
    /// right; both with the same value is a warning, with different values
    /// an error. Returns the value and the spelling it came from.
    pub(super) fn pick<T: PartialEq>(
        &mut self,
        base: &[Seg],
        first: (&'static str, Option<T>),
        second: (&'static str, Option<T>),
        show: impl Fn(&T) -> String,
    ) -> Result<Option<(T, &'static str)>, ConfigError> {
        // Every pick is run by the configuration tests, which this makes
        // fail on a spelling that is not the table's.
        debug_assert!(
            keys::spells_one_key(first.0, second.0),
            "`{}` and `{}` are not two spellings of one key in keys.rs",
            first.0,
            second.0
        );
        match (first, second) {
            ((_, None), (_, None)) => Ok(None),
            ((k, Some(v)), (_, None)) | ((_, None), (k, Some(v))) => Ok(Some((v, k))),
            ((k1, Some(v1)), (k2, Some(v2))) => {
                // Report at whichever spelling comes later in the file.
                let p1 = self.pos(&child(base, k1), At::Key);
                let p2 = self.pos(&child(base, k2), At::Key);
                let second_is_later = match (p1, p2) {
                    (Some(a), Some(b)) => b > a,
                    _ => true,
                };
                let ((early_k, early_v), (late_k, late_v)) =
                    if second_is_later { ((k1, &v1), (k2, &v2)) } else { ((k2, &v2), (k1, &v1)) };
                let spot = self.spot(&child(base, late_k), At::Key);
                if v1 == v2 {
                    self.warn(&spot, format!("repeats `{early_k}` (both spellings mean the same setting); keep one"));
                    Ok(Some((v1, k1)))
                } else {
                    Err(self.invalid(
                        &spot,
                        format!(
                            "`{late_k}: {}` conflicts with `{early_k}: {}`; both spellings \
                             mean the same setting, keep one",
                            show(late_v),
                            show(early_v)
                        ),
                    ))
                }
            }
        }
    }
}

/// hbmqtt's `default` listener: its settings are copied into every other
/// listener that does not set them itself, and it is started itself when it
/// has a `bind`, beside the others (hbmqtt's common "default on 1883 plus a
/// ws listener" configurations rely on that). Returns the listeners to
/// build: `default` first, then the others in file order, each with the
/// template applied.
pub(super) fn apply_default_listener(
    template: Option<ListenerFields>,
    named: Vec<(String, ListenerFields)>,
) -> Vec<(String, ListenerFields)> {
    let template = template.unwrap_or_default();
    let mut out = Vec::new();
    if template.bind.is_some() {
        out.push(("default".to_owned(), template.clone()));
    }
    out.extend(named.into_iter().map(|(name, own)| (name, own.inherit(&template))));
    out
}

impl ListenerFields {
    /// hbmqtt: `config = dict(default); config.update(listener)`.
    pub(super) fn inherit(self, template: &ListenerFields) -> Self {
        ListenerFields {
            bind: self.bind.or_else(|| template.bind.clone()),
            kind: self.kind.or_else(|| template.kind.clone()),
            max_connections: self.max_connections.or_else(|| template.max_connections.clone()),
            ssl: self.ssl.or_else(|| template.ssl.clone()),
            cafile: self.cafile.or_else(|| template.cafile.clone()),
            capath: self.capath.or_else(|| template.capath.clone()),
            cadata: self.cadata.or_else(|| template.cadata.clone()),
            certfile: self.certfile.or_else(|| template.certfile.clone()),
            keyfile: self.keyfile.or_else(|| template.keyfile.clone()),
            path: self.path.or_else(|| template.path.clone()),
            require_certificate: self.require_certificate.or_else(|| template.require_certificate.clone()),
            use_identity_as_username: self
                .use_identity_as_username
                .or_else(|| template.use_identity_as_username.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AuthConfig, ChainDefault, Config, TopicCheckConfig};

    fn auth(plugins: Option<&[&str]>) -> AuthConfig {
        AuthConfig {
            plugins: plugins.map(|names| names.iter().map(|n| (*n).to_owned()).collect()),
            allow_anonymous: true,
            password_file: None,
            default: ChainDefault::Deny,
        }
    }

    fn topic_check(enabled: bool, plugins: Option<&[&str]>) -> TopicCheckConfig {
        TopicCheckConfig {
            enabled,
            plugins: plugins.map(|names| names.iter().map(|n| (*n).to_owned()).collect()),
            acl: Default::default(),
            subscribe_acl: None,
            publish_acl: None,
            receive_acl: None,
            default: ChainDefault::Deny,
        }
    }

    #[test]
    fn auth_chain_is_the_configured_names_or_hbmqtts_every_plugin() {
        assert_eq!(auth(None).auth_chain(), ["auth_anonymous", "auth_file"]);
        assert_eq!(auth(Some(&["auth.anonymous"])).auth_chain(), ["auth.anonymous"]);
        assert_eq!(auth(Some(&["auth_file", "auth_anonymous"])).auth_chain(), ["auth_file", "auth_anonymous"]);
        assert!(auth(Some(&[])).auth_chain().is_empty(), "an empty list is kept: nobody is asked");
    }

    #[test]
    fn topic_chain_is_none_when_disabled_else_configured_or_hbmqtts() {
        assert_eq!(topic_check(false, None).topic_chain(), None);
        assert_eq!(topic_check(false, Some(&["topic_acl"])).topic_chain(), None);
        assert_eq!(topic_check(true, None).topic_chain(), Some(vec!["topic_taboo".into(), "topic_acl".into()]));
        assert_eq!(topic_check(true, Some(&["topic_acl"])).topic_chain(), Some(vec!["topic_acl".into()]));
        assert_eq!(topic_check(true, Some(&[])).topic_chain(), Some(vec![]));
    }

    #[test]
    fn chains_of_files() {
        let c = Config::from_yaml_str("topic-check: {enabled: yes}\n").expect("valid");
        assert_eq!(c.auth.auth_chain(), ["auth_anonymous", "auth_file"]);
        assert_eq!(c.topic_check.topic_chain(), Some(vec!["topic_taboo".into(), "topic_acl".into()]));
        // The built-in file names its chain (see default.yaml); topic checks are off.
        let c = Config::default();
        assert_eq!(c.auth.auth_chain(), ["auth_anonymous"]);
        assert_eq!(c.topic_check.topic_chain(), None);
    }
}
