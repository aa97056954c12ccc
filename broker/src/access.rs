//! The one place where a CONNECT is authenticated and a topic is checked.
//!
//! The configuration names plugins (`auth.plugins`, `topic-check.plugins`);
//! this module resolves those names against the built-in plugins and asks
//! them, in order. The plugin host (shared-library plugins loaded by name)
//! fills this same registry.
//!
//! Chain rule, the same for authentication and topic checks:
//! every plugin is asked in the configured order; the first `Deny` ends the
//! chain and refuses; otherwise one `Allow` or more admits; when every plugin
//! answers `Ignore`, the request is refused (fail closed). An empty topic
//! chain, or `topic-check.enabled: false`, checks nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moth_auth_anonymous::AnonymousAuth;
use moth_plugin_api::{AuthPlugin, AuthRequest, Decision, TopicAction, TopicPlugin, TopicRequest};
use moth_topic_acl::TopicAcl;
use moth_topic_taboo::TopicTaboo;

use crate::config::Config;
use crate::stats::AuthAnswer;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("auth.plugins: unknown plugin `{0}` (built-in plugins: auth_anonymous)")]
    UnknownAuthPlugin(String),
    #[error("topic-check.plugins: unknown plugin `{0}` (built-in plugins: topic_taboo, topic_acl)")]
    UnknownTopicPlugin(String),
    #[error(
        "auth: the password-file plugin (`{0}`) is not available in this version of moth yet; remove it and `password-file` to run with anonymous access"
    )]
    PasswordFileUnavailable(String),
}

/// The outcome of an authentication chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOutcome {
    pub allowed: bool,
    /// The plugin whose answer decided, `None` when none had an opinion.
    pub decided_by: Option<String>,
    /// Why a plugin refused (for the log; never sent to the client).
    pub reason: Option<String>,
    /// Every plugin asked, in order, with its answer and how long it took
    /// (for the per-plugin metrics). Plugins after a deny are not asked.
    pub asked: Vec<PluginAnswer>,
}

/// One plugin's answer within an authentication chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginAnswer {
    pub plugin: String,
    pub answer: AuthAnswer,
    pub latency: Duration,
}

/// Canonical name of a plugin: hbmqtt's entry point names use `_`, its docs
/// use `.` (`auth.anonymous`); both are accepted.
fn canonical(name: &str) -> String {
    name.trim().replace('.', "_")
}

pub struct AccessControl {
    auth: Vec<Arc<dyn AuthPlugin>>,
    /// `None` when topic checking is disabled.
    topic: Option<Vec<Arc<dyn TopicPlugin>>>,
}

impl AccessControl {
    /// Resolves the configured plugin names.
    ///
    /// When `auth.plugins` is absent, the chain is `auth_anonymous` (and the
    /// password-file plugin when `password-file` is set), which is what
    /// hbmqtt's stock configuration amounts to. When `topic-check.plugins` is
    /// absent, every built-in topic plugin is asked, as in hbmqtt.
    pub fn from_config(config: &Config) -> Result<Self, AccessError> {
        let auth_names = match &config.auth.plugins {
            Some(names) => names.clone(),
            None => {
                let mut v = vec!["auth_anonymous".to_string()];
                if config.auth.password_file.is_some() {
                    v.push("auth_file".to_string());
                }
                v
            }
        };
        let mut auth: Vec<Arc<dyn AuthPlugin>> = Vec::new();
        for name in &auth_names {
            match canonical(name).as_str() {
                "auth_anonymous" => auth.push(Arc::new(AnonymousAuth::new(config.auth.allow_anonymous))),
                "auth_file" => return Err(AccessError::PasswordFileUnavailable(name.clone())),
                _ => return Err(AccessError::UnknownAuthPlugin(name.clone())),
            }
        }
        let topic = if config.topic_check.enabled {
            let names = config
                .topic_check
                .plugins
                .clone()
                .unwrap_or_else(|| vec![TopicTaboo::NAME.to_string(), TopicAcl::NAME.to_string()]);
            let mut plugins: Vec<Arc<dyn TopicPlugin>> = Vec::new();
            for name in &names {
                match canonical(name).as_str() {
                    "topic_taboo" => plugins.push(Arc::new(TopicTaboo)),
                    "topic_acl" => plugins.push(Arc::new(TopicAcl::new(config.topic_check.acl.clone()))),
                    _ => return Err(AccessError::UnknownTopicPlugin(name.clone())),
                }
            }
            Some(plugins)
        } else {
            None
        };
        Ok(AccessControl { auth, topic })
    }

    /// An access control that admits everyone and checks no topic.
    pub fn allow_all() -> Self {
        AccessControl { auth: vec![Arc::new(AnonymousAuth::new(true))], topic: None }
    }

    /// An access control with the given authentication chain, for tests of
    /// what reaches a plugin.
    #[cfg(test)]
    pub(crate) fn with_auth_chain(auth: Vec<Arc<dyn AuthPlugin>>) -> Self {
        AccessControl { auth, topic: None }
    }

    /// Names of the authentication chain, in order.
    pub fn auth_chain(&self) -> Vec<String> {
        self.auth.iter().map(|p| p.name().to_string()).collect()
    }

    /// Runs the authentication chain for one CONNECT.
    ///
    /// `async` on purpose: plugins that block (password hashes, network
    /// look-ups) are run off the network threads by the plugin host.
    pub async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        // Observability: each plugin's answer and latency are recorded on the
        // way through the chain; the chain rule itself is `run_chain`'s.
        let mut asked = Vec::with_capacity(self.auth.len());
        let mut outcome = run_chain(self.auth.iter().map(|p| {
            let started = Instant::now();
            let decision = p.authenticate(request);
            let answer = match decision {
                Decision::Allow => AuthAnswer::Allowed,
                Decision::Deny(_) => AuthAnswer::Denied,
                Decision::Ignore => AuthAnswer::Ignored,
            };
            asked.push(PluginAnswer { plugin: p.name().to_string(), answer, latency: started.elapsed() });
            (p.name(), decision)
        }));
        outcome.asked = asked;
        outcome
    }

    /// Whether topic checks are on at all (the PUBLISH hot path skips them when off).
    pub fn checks_topics(&self) -> bool {
        self.topic.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// Checks one topic for one client. Returns the refusal reason, `None` when allowed.
    pub fn check_topic(&self, request: &TopicRequest<'_>) -> Option<String> {
        let chain = self.topic.as_ref().filter(|c| !c.is_empty())?;
        let outcome = run_chain(chain.iter().map(|p| (p.name(), p.check_topic(request))));
        if outcome.allowed {
            None
        } else {
            let by = outcome.decided_by.unwrap_or_else(|| "no topic plugin allowed it".into());
            Some(match outcome.reason {
                Some(r) => format!("{by}: {r}"),
                None => by,
            })
        }
    }
}

/// Applies the chain rule of the module docs to answers given in order.
fn run_chain<'a>(answers: impl Iterator<Item = (&'a str, Decision)>) -> AuthOutcome {
    let mut first_allow: Option<String> = None;
    for (name, decision) in answers {
        match decision {
            Decision::Deny(reason) => {
                return AuthOutcome {
                    allowed: false,
                    decided_by: Some(name.to_string()),
                    reason: Some(reason),
                    asked: Vec::new(),
                };
            }
            Decision::Allow => {
                first_allow.get_or_insert_with(|| name.to_string());
            }
            Decision::Ignore => {}
        }
    }
    match first_allow {
        Some(name) => AuthOutcome { allowed: true, decided_by: Some(name), reason: None, asked: Vec::new() },
        None => AuthOutcome {
            allowed: false,
            decided_by: None,
            reason: Some("no plugin allowed the request".into()),
            asked: Vec::new(),
        },
    }
}

/// Shorthand used by the connection for a topic request.
pub fn topic_request<'a>(
    client_id: &'a str,
    username: Option<&'a str>,
    listener: &'a str,
    action: TopicAction,
    topic: &'a str,
) -> TopicRequest<'a> {
    TopicRequest { client_id, username, listener, action, topic }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_first_deny_wins_and_all_ignore_refuses() {
        let o = run_chain([("a", Decision::Allow), ("b", Decision::Deny("no".into()))].into_iter());
        assert!(!o.allowed);
        assert_eq!(o.decided_by.as_deref(), Some("b"));
        let o = run_chain([("a", Decision::Ignore), ("b", Decision::Allow)].into_iter());
        assert!(o.allowed);
        assert_eq!(o.decided_by.as_deref(), Some("b"));
        let o = run_chain([("a", Decision::Ignore)].into_iter());
        assert!(!o.allowed);
        assert!(!run_chain(std::iter::empty()).allowed);
    }

    #[test]
    fn plugin_names_in_both_spellings() {
        assert_eq!(canonical("auth.anonymous"), "auth_anonymous");
        assert_eq!(canonical("auth_anonymous"), "auth_anonymous");
    }
}
