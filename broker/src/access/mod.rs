//! The one place where a CONNECT is authenticated and a topic is checked.
//!
//! The configuration names plugins (`auth.plugins`, `topic-check.plugins`);
//! [`Chains::build`] resolves those names against the [`Registry`] (built-in
//! plugins and plugin libraries) and constructs each plugin once with its
//! options. [`AccessControl`] holds the current chains and swaps them on
//! [`AccessControl::reload`]: calls already running finish on the old
//! chains, every later call uses the new ones.
//!
//! How the answers combine is `chain.rs`. How plugins are called:
//! - authentication: each call runs on tokio's blocking pool
//!   (`spawn_blocking`), never on a network thread, bounded by
//!   `plugin-timeout` (a call that takes longer counts as a refusal, and is
//!   logged) and by `plugin-concurrency` calls of one plugin at a time (a
//!   permit is held until the plugin really returns, so a hung backend cannot
//!   fill the blocking pool). A call waiting for a permit waits as long as
//!   calls of that plugin keep completing, and gives up, as a timeout, once
//!   none has completed for `plugin-timeout`: a storm queued behind a slow
//!   but working plugin is served, a hung plugin refuses new clients;
//! - topic checks (every SUBSCRIBE filter, every PUBLISH) are called in place
//!   when the plugin declares `FAST_TOPIC_CHECK` (the built-ins do); other
//!   plugins run on the blocking pool under the same timeout and concurrency
//!   bound, while the connection's worker thread hands its other tasks over
//!   (`block_in_place`), so a slow one holds up only its own client;
//! - delivery checks (`RECEIVE`) go only to topic plugins that declare
//!   `CHECK_RECEIVE`, on the delivering connection's thread, and drop the
//!   message for that client when refused;
//! - MQTT 5 enhanced authentication steps go to the auth plugins that
//!   declare `ENHANCED_AUTHENTICATE`, called like `authenticate`
//!   (`enhanced.rs` picks the plugin and runs the steps).
//!
//! A plugin error or panic (caught on the plugin's side by the export glue)
//! refuses, is logged with the plugin's name and counted.

pub(crate) mod chain;
pub(crate) mod connect;
pub(crate) mod enhanced;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moth_plugin_api::{Capabilities, TopicRequest};
use tracing::warn;

use crate::access::chain::{Step, Tally, Verdict};
use crate::config::{ChainDefault, Config};
use crate::lock::RwLocked;
use crate::plugin_host::call::{ChainPlugin, call_authenticate, call_check_topic};
pub(crate) use crate::plugin_host::input::{AuthInput, TlsInput, topic_request};
use crate::plugin_host::registry::{Registry, canonical};
use crate::stats::AuthAnswer;

/// Why the plugin chains a configuration names cannot be built (by
/// [`Broker::new`](crate::Broker::new) or [`Broker::reload`](crate::Broker::reload)).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A chain names a plugin that no built-in or plugin library provides.
    #[error("{chain}: unknown plugin `{name}` (available: {available}){skipped}")]
    UnknownPlugin {
        /// The configuration key of the chain: `auth.plugins` or `topic-check.plugins`.
        chain: &'static str,
        /// The plugin name as the configuration writes it.
        name: String,
        /// The registered plugin names, for the message.
        available: String,
        /// `; plugin libraries skipped: ...` with each library that could not
        /// be registered and why, or empty when none was skipped.
        skipped: String,
    },
    /// The plugin's constructor refused its options or failed.
    #[error("{chain}: plugin `{name}` cannot start: {reason}")]
    PluginFailed {
        /// The configuration key of the chain: `auth.plugins` or `topic-check.plugins`.
        chain: &'static str,
        /// The plugin name as the configuration writes it.
        name: String,
        /// What the plugin said.
        reason: String,
    },
    /// The plugin does not do what its chain needs (an authentication
    /// plugin in the topic chain, say).
    #[error("{chain}: plugin `{name}` does not {what}")]
    WrongKind {
        /// The configuration key of the chain: `auth.plugins` or `topic-check.plugins`.
        chain: &'static str,
        /// The plugin name as the configuration writes it.
        name: String,
        /// The capability it lacks: `authenticate` or `check topics`.
        what: &'static str,
    },
}

/// The verdict of an authentication chain.
pub(crate) type AuthOutcome = Verdict;

/// The chains built from one configuration.
pub(crate) struct Chains {
    auth: Vec<Arc<ChainPlugin>>,
    /// `None` when topic checking is disabled.
    topic: Option<Vec<Arc<ChainPlugin>>>,
    auth_default: ChainDefault,
    topic_default: ChainDefault,
    allow_anonymous: bool,
    timeout: Duration,
    registry: Registry,
}

impl Chains {
    fn checks_topics(&self) -> bool {
        self.topic.as_ref().is_some_and(|c| !c.is_empty())
    }

    fn wants_receive_checks(&self) -> bool {
        self.topic.iter().flatten().any(|p| p.caps.contains(Capabilities::CHECK_RECEIVE))
    }

    /// Resolves and constructs the chains a configuration names.
    ///
    /// When `auth.plugins` is absent, the chain is `auth_anonymous` and
    /// `auth_file`, as hbmqtt asks every plugin it has; without
    /// `password-file`, that `auth_file` refuses every client that sends a
    /// user name, as hbmqtt's does. When `topic-check.plugins` is absent, the
    /// built-in topic plugins are asked, as in hbmqtt. Plugin libraries are
    /// only used when a chain names them.
    pub(crate) fn build(config: &Config, namespace: &str) -> Result<Chains, AccessError> {
        let registry = Registry::scan(&config.plugins.dirs, namespace);
        Chains::build_with(config, registry)
    }

    fn build_with(config: &Config, registry: Registry) -> Result<Chains, AccessError> {
        for name in config.plugins.options.keys() {
            if registry.find(name).is_none() {
                warn!(
                    "plugins-config.{name}: no plugin of that name is registered, so these options reach nobody \
                     (registered: {})",
                    registry.names()
                );
            }
        }
        // hbmqtt's rules for absent lists live with the configuration.
        let auth_names = config.auth.auth_chain();
        let topic_names = config.topic_check.topic_chain();
        // One instance per plugin, shared by both chains.
        let mut made: Vec<Arc<ChainPlugin>> = Vec::new();
        let mut get = |chain: &'static str, name: &str| -> Result<Arc<ChainPlugin>, AccessError> {
            let unknown = || AccessError::UnknownPlugin {
                chain,
                name: name.to_string(),
                available: registry.names(),
                skipped: if registry.failures.is_empty() {
                    String::new()
                } else {
                    format!("; plugin libraries skipped: {}", registry.failures.join("; "))
                },
            };
            let info = registry.find(name).ok_or_else(unknown)?;
            let key = canonical(&info.name);
            if let Some(p) = made.iter().find(|p| canonical(&p.name) == key) {
                return Ok(p.clone());
            }
            let object = match registry.instantiate(name, config) {
                Some(Ok(o)) => o,
                Some(Err(reason)) => return Err(AccessError::PluginFailed { chain, name: name.to_string(), reason }),
                None => return Err(unknown()),
            };
            let p = Arc::new(ChainPlugin::new(info.name.clone(), object, config.plugins.concurrency));
            made.push(p.clone());
            Ok(p)
        };
        let mut auth = Vec::new();
        for name in &auth_names {
            let p = get("auth.plugins", name)?;
            if !p.caps.contains(Capabilities::AUTHENTICATE) {
                return Err(AccessError::WrongKind { chain: "auth.plugins", name: name.clone(), what: "authenticate" });
            }
            auth.push(p);
        }
        let topic = match topic_names {
            None => None,
            Some(names) => {
                let mut v = Vec::new();
                for name in &names {
                    let p = get("topic-check.plugins", name)?;
                    if !p.caps.contains(Capabilities::CHECK_TOPIC) {
                        let what = "check topics";
                        return Err(AccessError::WrongKind { chain: "topic-check.plugins", name: name.clone(), what });
                    }
                    v.push(p);
                }
                Some(v)
            }
        };
        Ok(Chains {
            auth,
            topic,
            auth_default: config.auth.default,
            topic_default: config.topic_check.default,
            allow_anonymous: config.auth.allow_anonymous,
            timeout: config.plugins.timeout,
            registry,
        })
    }
}

/// The chains in force, swappable at run time.
pub(crate) struct AccessControl {
    current: RwLock<Arc<Chains>>,
    /// Whether the chains in force want delivery checks: read on every
    /// delivery, so kept apart from the lock.
    receive_checks: AtomicBool,
    /// Whether the chains in force check topics at all: read on every
    /// PUBLISH, so kept apart from the lock too.
    topic_checks: AtomicBool,
    namespace: String,
}

impl AccessControl {
    /// Resolves the configured plugin names; see [`Chains::build`].
    #[cfg(test)]
    pub(crate) fn from_config(config: &Config) -> Result<Self, AccessError> {
        Self::with_namespace(config, moth_plugin_api::DEFAULT_NAMESPACE)
    }

    /// Like [`AccessControl::from_config`], registering the plugin libraries
    /// that declare `namespace`.
    pub(crate) fn with_namespace(config: &Config, namespace: &str) -> Result<Self, AccessError> {
        let chains = Chains::build(config, namespace)?;
        Ok(AccessControl {
            receive_checks: AtomicBool::new(chains.wants_receive_checks()),
            topic_checks: AtomicBool::new(chains.checks_topics()),
            current: RwLock::new(Arc::new(chains)),
            namespace: namespace.to_string(),
        })
    }

    /// An access control that admits everyone and checks no topic.
    #[cfg(test)]
    pub(crate) fn allow_all() -> Self {
        let object = moth_plugin_api::into_plugin_box(moth_auth_anonymous::AnonymousAuth::new(true));
        Self::with_auth_chain(vec![(moth_auth_anonymous::AnonymousAuth::NAME, object)])
    }

    /// An access control whose auth chain is `plugins`, in order, with no
    /// topic checks.
    #[cfg(test)]
    pub(crate) fn with_auth_chain(plugins: Vec<(&str, moth_plugin_api::PluginBox)>) -> Self {
        let concurrency = crate::config::DEFAULT_PLUGIN_CONCURRENCY;
        let auth =
            plugins.into_iter().map(|(name, o)| Arc::new(ChainPlugin::new(name.into(), o, concurrency))).collect();
        let chains = Chains {
            auth,
            topic: None,
            auth_default: ChainDefault::Deny,
            topic_default: ChainDefault::Deny,
            allow_anonymous: true,
            timeout: crate::config::DEFAULT_PLUGIN_TIMEOUT,
            registry: Registry::builtins(),
        };
        AccessControl {
            receive_checks: AtomicBool::new(false),
            topic_checks: AtomicBool::new(false),
            current: RwLock::new(Arc::new(chains)),
            namespace: moth_plugin_api::DEFAULT_NAMESPACE.into(),
        }
    }

    /// Builds the chains of `config` (re-scanning the plugin directories)
    /// and puts them in force. On error the current chains stay.
    pub(crate) fn reload(&self, config: &Config) -> Result<(), AccessError> {
        let chains = Arc::new(Chains::build(config, &self.namespace)?);
        let wants = chains.wants_receive_checks();
        let topics = chains.checks_topics();
        *self.current.write_locked() = chains;
        self.receive_checks.store(wants, Ordering::Relaxed);
        self.topic_checks.store(topics, Ordering::Relaxed);
        Ok(())
    }

    /// The chains in force.
    pub(crate) fn chains(&self) -> Arc<Chains> {
        self.current.read_locked().clone()
    }

    /// Errors, panics and timeouts of plugins in the current chains.
    pub(crate) fn plugin_failures(&self) -> u64 {
        let c = self.chains();
        // A plugin in both chains is one instance: count it once.
        let mut seen: Vec<&Arc<ChainPlugin>> = Vec::new();
        for p in c.auth.iter().chain(c.topic.iter().flatten()) {
            if !seen.iter().any(|s| Arc::ptr_eq(s, p)) {
                seen.push(p);
            }
        }
        seen.iter().map(|p| p.failures()).sum()
    }

    /// Runs the authentication chain for one CONNECT.
    #[cfg(test)]
    pub(crate) async fn authenticate(&self, input: AuthInput) -> AuthOutcome {
        self.authenticate_recorded(input, |_, _, _| {}).await
    }

    /// Runs the authentication chain for one CONNECT, reporting each plugin's
    /// answer and how long it took to `record` (the per-plugin metrics).
    /// Plugins after a refusal are not asked, so not reported.
    pub(crate) async fn authenticate_recorded(
        &self,
        input: AuthInput,
        mut record: impl FnMut(&str, AuthAnswer, Duration),
    ) -> AuthOutcome {
        let chains = self.chains();
        let input = Arc::new(input);
        let mut tally = Tally::default();
        for p in &chains.auth {
            let started = Instant::now();
            let answer = call_authenticate(p, &input, chains.timeout).await;
            record(&p.name, crate::access::chain::counted_as(&answer), started.elapsed());
            if let Err(e) = &answer {
                p.count_failure();
                warn!(plugin = %p.name, client_id = %input.client_id, "authentication plugin failed, counted as deny: {e}");
            }
            if let Step::Stop(v) = tally.answer(&p.name, answer) {
                return v;
            }
        }
        tally.finish(|| match chains.auth_default {
            ChainDefault::Allow => Verdict::by_default(true, ""),
            ChainDefault::Deny if chains.allow_anonymous && input.username.is_none() => Verdict::by_default(true, ""),
            ChainDefault::Deny if input.username.is_some() => Verdict::unknown_user(),
            ChainDefault::Deny => Verdict::by_default(false, "no authentication plugin allowed the client"),
        })
    }

    /// Whether topic checks are on at all (the PUBLISH hot path skips them when off).
    pub(crate) fn checks_topics(&self) -> bool {
        self.topic_checks.load(Ordering::Relaxed)
    }

    /// Checks one topic for one client. Returns the refusal reason, `None` when allowed.
    pub(crate) fn check_topic(&self, request: &TopicRequest<'_>) -> Option<String> {
        let chains = self.chains();
        let chain = chains.topic.as_ref().filter(|c| !c.is_empty())?;
        let mut tally = Tally::default();
        let mut verdict = None;
        for p in chain {
            let answer = call_check_topic(p, request, chains.timeout);
            if let Err(e) = &answer {
                p.count_failure();
                warn!(plugin = %p.name, client_id = request.client_id(), "topic plugin failed, counted as deny: {e}");
            }
            if let Step::Stop(v) = tally.answer(&p.name, answer) {
                verdict = Some(v);
                break;
            }
        }
        let verdict = verdict.unwrap_or_else(|| {
            tally.finish(|| {
                Verdict::by_default(chains.topic_default == ChainDefault::Allow, "no topic plugin allowed it")
            })
        });
        if verdict.allowed {
            return None;
        }
        let reason = verdict.reason.unwrap_or_else(|| "refused".into());
        Some(match verdict.decided_by {
            Some(by) => format!("{by}: {reason}"),
            None => reason,
        })
    }

    /// Whether a topic plugin in force wants delivery checks
    /// ([`Capabilities::CHECK_RECEIVE`]); the delivery path skips them otherwise.
    pub(crate) fn checks_receive(&self) -> bool {
        self.receive_checks.load(Ordering::Relaxed)
    }

    /// Whether a message may be delivered to a client: asks, in order, only
    /// the topic plugins that declare [`Capabilities::CHECK_RECEIVE`]; the
    /// first refusal (or error) drops it, otherwise it is delivered (its
    /// subscription was allowed already).
    pub(crate) fn check_receive(&self, request: &TopicRequest<'_>) -> bool {
        let chains = self.chains();
        let mut tally = Tally::default();
        for p in chains.topic.iter().flatten().filter(|p| p.caps.contains(Capabilities::CHECK_RECEIVE)) {
            let answer = call_check_topic(p, request, chains.timeout);
            if let Err(e) = &answer {
                p.count_failure();
                warn!(plugin = %p.name, client_id = request.client_id(), "topic plugin failed, counted as deny: {e}");
            }
            if let Step::Stop(v) = tally.answer(&p.name, answer) {
                tracing::debug!(
                    client_id = request.client_id(), topic = request.topic(), plugin = %p.name,
                    "delivery refused: {}", v.reason.unwrap_or_default()
                );
                return false;
            }
        }
        true
    }

    /// What `moth plugins` lists: every registered plugin, and the chains in force.
    pub(crate) fn describe(&self) -> PluginListing {
        let c = self.chains();
        PluginListing {
            plugins: c.registry.plugins().cloned().collect(),
            failures: c.registry.failures.clone(),
            auth_chain: c.auth.iter().map(|p| p.name.clone()).collect(),
            topic_chain: c.topic.as_ref().map(|t| t.iter().map(|p| p.name.clone()).collect()),
        }
    }
}

/// The plugin registry and the chains in force, as [`Broker::plugins`](crate::Broker::plugins) returns them.
#[derive(Debug, Clone)]
pub struct PluginListing {
    /// Every plugin a chain could name: the built-ins, then the plugin libraries found.
    pub plugins: Vec<crate::plugin_host::registry::PluginInfo>,
    /// Plugin library files that could not be registered, each with why.
    pub failures: Vec<String>,
    /// The authentication chain in force, plugin names in calling order.
    pub auth_chain: Vec<String>,
    /// `None` when topic checking is disabled.
    pub topic_chain: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(username: Option<&str>) -> AuthInput {
        AuthInput {
            client_id: "c".into(),
            username: username.map(String::from),
            peer_addr: "127.0.0.1:1".into(),
            listener: "default".into(),
            protocol_level: 4,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn anonymous_exception_of_the_deny_default() {
        let mut config = Config::default();
        config.auth.plugins = Some(vec![]);
        config.auth.allow_anonymous = true;
        let access = AccessControl::from_config(&config).unwrap();
        assert!(access.authenticate(input(None)).await.allowed);
        assert!(!access.authenticate(input(Some("bob"))).await.allowed);
        config.auth.default = ChainDefault::Allow;
        access.reload(&config).unwrap();
        assert!(access.authenticate(input(Some("bob"))).await.allowed);
    }

    /// A user name every plugin ignored is refused like a wrong password
    /// (CONNACK 4); a client without one, refused by the default, gets 5.
    #[tokio::test]
    async fn the_default_refuses_an_unknown_user_as_bad_credentials() {
        let mut config = Config::default();
        config.auth.plugins = Some(vec![]);
        config.auth.allow_anonymous = false;
        let access = AccessControl::from_config(&config).unwrap();
        let named = access.authenticate(input(Some("bob"))).await;
        assert!(!named.allowed && named.bad_credentials, "{named:?}");
        assert_eq!(named.reason.as_deref(), Some("user name not known to any authentication plugin"));
        let anonymous = access.authenticate(input(None)).await;
        assert!(!anonymous.allowed && !anonymous.bad_credentials, "{anonymous:?}");
    }

    #[test]
    fn unknown_names_list_what_is_available() {
        let mut config = Config::default();
        config.auth.plugins = Some(vec!["auth_ldap".into()]);
        let e = AccessControl::from_config(&config).err().unwrap().to_string();
        assert!(e.contains("auth.plugins: unknown plugin `auth_ldap`"), "{e}");
        assert!(e.contains("auth_anonymous, auth_file, topic_taboo, topic_acl"), "{e}");
    }

    #[test]
    fn a_topic_plugin_cannot_authenticate() {
        let mut config = Config::default();
        config.auth.plugins = Some(vec!["topic_acl".into()]);
        let e = AccessControl::from_config(&config).err().unwrap().to_string();
        assert!(e.contains("does not authenticate"), "{e}");
    }
}
