//! `allowlist`: a plugin library (loaded from `plugins-dir`) that lets in the
//! users and client ids listed in its options, and gives each user its own
//! topic rules. Everything comes from `plugins-config.allowlist`:
//!
//! ```yaml
//! auth:
//!   plugins: [allowlist]
//!   allow-anonymous: false
//! topic-check:
//!   enabled: true
//!   plugins: [allowlist]
//! plugins-dir: /usr/lib/moth/plugins
//! plugins-config:
//!   allowlist:
//!     users:
//!       alice: {password: wonderland, topics: ['sensors/#', 'alice/#']}
//!       bob: {password: builder}             # no `topics`: no opinion on bob's topics
//!     client-ids: [gateway-1, gateway-2]      # let in without user name
//!     unknown-users: ignore                   # ignore (the next plugin decides) or deny
//! ```
//!
//! Answers: a listed user with the right password is allowed, with a wrong
//! or missing one `BAD_CREDENTIALS` (CONNACK 4); an unlisted user gets
//! `unknown-users`; a client without user name is allowed when its client id
//! is listed, otherwise ignored. Topics: a user with `topics` may subscribe
//! to and publish on what those filters cover and nothing else; any other
//! client gets no opinion. Passwords are compared in constant time.

use std::collections::BTreeMap;

use moth_plugin_api::serde_json;
use moth_plugin_api::{AuthRequest, Capabilities, Decision, Plugin, TopicAction, TopicRequest, export_plugin, log};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    #[serde(default)]
    users: BTreeMap<String, User>,
    #[serde(default)]
    client_ids: Vec<String>,
    #[serde(default)]
    unknown_users: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    password: String,
    topics: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Unknown {
    #[default]
    Ignore,
    Deny,
}

/// The `auth_allowlist` plugin: allows the configured user names, and
/// ignores or denies the others as `unknown-users` says.
pub struct Allowlist {
    options: Options,
}

impl Allowlist {
    /// Reads the options; a mistake in them is a one-line error that stops
    /// the broker from starting with them.
    pub fn from_options(json: &str) -> Result<Allowlist, String> {
        let options: Options = serde_json::from_str(json).map_err(|e| format!("plugins-config.allowlist: {e}"))?;
        log::info(&format!("{} user(s), {} client id(s) allowed", options.users.len(), options.client_ids.len()));
        Ok(Allowlist { options })
    }
}

/// Compares without stopping at the first difference, so the time taken does
/// not tell how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Plugin for Allowlist {
    fn capabilities(&self) -> Capabilities {
        Capabilities::AUTHENTICATE | Capabilities::CHECK_TOPIC | Capabilities::FAST_TOPIC_CHECK
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let Some(username) = request.username() else {
            return if self.options.client_ids.iter().any(|c| c == request.client_id()) {
                Decision::allow()
            } else {
                Decision::ignore()
            };
        };
        match self.options.users.get(username) {
            Some(user) => match request.password() {
                Some(p) if same_secret(p, user.password.as_bytes()) => Decision::allow(),
                Some(_) => Decision::bad_credentials(format!("wrong password for `{username}`")),
                None => Decision::bad_credentials(format!("no password for `{username}`")),
            },
            None if self.options.unknown_users == Unknown::Deny => {
                Decision::deny(format!("user `{username}` is not in the allow-list"))
            }
            None => Decision::ignore(),
        }
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        if request.action != TopicAction::SUBSCRIBE && request.action != TopicAction::PUBLISH {
            return Decision::ignore();
        }
        let rules = request.username().and_then(|u| self.options.users.get(u)).and_then(|u| u.topics.as_ref());
        match rules {
            None => Decision::ignore(),
            Some(filters) if filters.iter().any(|f| moth_topic_acl::covers(f, request.topic())) => Decision::allow(),
            Some(_) => Decision::deny(format!("`{}` is not in the user's allow-list topics", request.topic())),
        }
    }
}

export_plugin! {
    name: "allowlist",
    version: env!("CARGO_PKG_VERSION"),
    description: "allow-list of users (passwords) and client ids, with per-user topic filters, from its options",
    constructor: Allowlist::from_options,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth<'a>(client_id: &'a str, user: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
        AuthRequest::new_for_test(client_id, user, password)
    }

    #[test]
    fn users_client_ids_and_unknowns() {
        let p = Allowlist::from_options(
            r#"{"users": {"alice": {"password": "pw", "topics": ["a/#"]}}, "client-ids": ["gw"]}"#,
        )
        .unwrap();
        assert!(p.authenticate(&auth("c", Some("alice"), Some(b"pw"))).is_allow());
        let wrong = p.authenticate(&auth("c", Some("alice"), Some(b"px")));
        assert_eq!(wrong.kind, moth_plugin_api::DecisionKind::BAD_CREDENTIALS);
        assert!(p.authenticate(&auth("c", Some("zed"), None)).is_ignore());
        assert!(p.authenticate(&auth("gw", None, None)).is_allow());
        assert!(p.authenticate(&auth("other", None, None)).is_ignore());
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        let e = Allowlist::from_options(r#"{"users": {"alice": {}}}"#).err().unwrap();
        assert!(e.starts_with("plugins-config.allowlist:") && e.contains("password"), "{e}");
        let e = Allowlist::from_options(r#"{"unknown-users": "maybe"}"#).err().unwrap();
        assert!(e.contains("maybe"), "{e}");
    }
}
