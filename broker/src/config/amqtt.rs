//! amqtt's `plugins:` section: plugin class paths and their options, read as
//! the chains of moth's built-in plugins.
//!
//! amqtt (0.11 and later) names its plugins by Python class path under a
//! top-level `plugins:` map, each with its own options, and then ignores the
//! `auth` and `topic-check` sections:
//!
//! ```yaml
//! plugins:
//!   amqtt.plugins.authentication.FileAuthPlugin: {password_file: /etc/amqtt/passwd}
//!   amqtt.plugins.topic_checking.TopicAccessControlListPlugin:
//!     subscribe_acl: {alice: ['sensors/#']}
//!   amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 20}
//! ```
//!
//! A list of class paths and one-entry maps means the same. hbmqtt's stock
//! file has a top-level `plugins:` list of entry-point names (`auth_file`,
//! no dots) that hbmqtt never reads; such a list is ignored, with a warning,
//! and the `auth` section decides as in hbmqtt.
//!
//! The rules, amqtt's unless said otherwise:
//! - the authentication plugins are asked in the order written, and every
//!   one is asked (any refusal refuses). A client that no plugin admits is
//!   refused: so a map naming only `FileAuthPlugin` refuses anonymous
//!   clients (CONNACK 5), unknown users and wrong passwords (CONNACK 4);
//! - topic checks are on whenever the section is a map, with the topic
//!   plugins it names (none named: no topic is refused);
//! - **fail closed**: a class path moth has no equivalent for, or an option
//!   it does not know, stops the start with an error naming it. Such a
//!   plugin may decide who gets in, and running without it could admit
//!   clients amqtt refuses. Only plugins that merely log are accepted
//!   without effect (moth has its own logging: `log-level`); persistence,
//!   which moth does not have yet, is a warning;
//! - the `auth` and `topic-check` sections next to such a map are an error
//!   in moth: amqtt ignores them with a warning, and a section that asks
//!   for a password file but is silently ignored would leave the broker
//!   more open than its author meant;
//! - moth differs on `AnonymousAuthPlugin` with `allow_anonymous: false`:
//!   amqtt then admits any client that sends *some* user name (its docs
//!   call this dangerous); moth refuses clients without a user name and has
//!   no opinion on the others, so another plugin must admit them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::diagnostics::{At, ConfigError, Ctx, one_line};
use super::position::{Seg, child, path};

/// An ACL as moth's `topic_acl` reads it: user name -> topic filters.
type Acl = BTreeMap<String, Vec<String>>;

/// What an amqtt `plugins:` map asks for, in moth's terms.
#[derive(Debug, Default)]
pub(super) struct AmqttPlugins {
    /// The authentication chain: moth plugin names, in the order written.
    pub(super) auth: Vec<String>,
    /// The topic chain.
    pub(super) topic: Vec<String>,
    /// `AnonymousAuthPlugin`'s `allow_anonymous` (default true); false when
    /// that plugin is not named, so that only the named plugins admit.
    pub(super) allow_anonymous: bool,
    /// `FileAuthPlugin`'s `password_file`.
    pub(super) password_file: Option<PathBuf>,
    /// `TopicAccessControlListPlugin`'s ACLs; `None` = no limit.
    pub(super) subscribe_acl: Option<Acl>,
    pub(super) publish_acl: Option<Acl>,
    pub(super) receive_acl: Option<Acl>,
    /// `BrokerSysPlugin`'s `sys_interval`, seconds, and where it is written.
    pub(super) sys_interval: Option<(f64, Vec<Seg>)>,
    /// Options for plugin libraries the map names (the contrib HTTP plugins
    /// become `auth_http`), as `plugins-config` would give them.
    pub(super) library_options: BTreeMap<String, Value>,
}

/// The amqtt plugins moth runs, by class path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Anonymous,
    File,
    Taboo,
    Acl,
    Sys,
    /// Logging only: moth's own log covers it.
    Logger,
    /// `amqtt.contrib.http`: the `auth_http` plugin library, for
    /// authentication, topic checks, or both.
    Http {
        auth: bool,
        topic: bool,
    },
}

const KNOWN: &[(&str, Known)] = &[
    ("amqtt.plugins.authentication.AnonymousAuthPlugin", Known::Anonymous),
    ("amqtt.plugins.authentication.FileAuthPlugin", Known::File),
    ("amqtt.plugins.topic_checking.TopicTabooPlugin", Known::Taboo),
    ("amqtt.plugins.topic_checking.TopicAccessControlListPlugin", Known::Acl),
    ("amqtt.plugins.sys.broker.BrokerSysPlugin", Known::Sys),
    ("amqtt.plugins.logging_amqtt.EventLoggerPlugin", Known::Logger),
    ("amqtt.plugins.logging_amqtt.PacketLoggerPlugin", Known::Logger),
    ("amqtt.contrib.http.HttpAuthTopicPlugin", Known::Http { auth: true, topic: true }),
    ("amqtt.contrib.http.HttpAuthPlugin", Known::Http { auth: true, topic: true }),
    ("amqtt.contrib.http.UserAuthHttpPlugin", Known::Http { auth: true, topic: false }),
    ("amqtt.contrib.http.TopicAuthHttpPlugin", Known::Http { auth: false, topic: true }),
];

impl Known {
    /// The options this plugin takes, both spellings.
    fn options(self) -> &'static [&'static str] {
        match self {
            Known::Anonymous => &["allow_anonymous", "allow-anonymous"],
            Known::File => &["password_file", "password-file"],
            Known::Acl => {
                &["acl", "subscribe_acl", "subscribe-acl", "publish_acl", "publish-acl", "receive_acl", "receive-acl"]
            }
            Known::Sys => &["sys_interval", "sys-interval"],
            // Checked by the plugin itself, which refuses what it does not know.
            Known::Http { .. } => &[],
            Known::Taboo | Known::Logger => &[],
        }
    }
}

/// One plugin named in the map: its class path, its options, where it is.
type Entry = (String, Value, Vec<Seg>);

/// Reads the top-level `plugins` value. `None` when it is absent, null, or
/// hbmqtt's ignored list of entry-point names.
pub(super) fn read(value: Option<&Value>, ctx: &mut Ctx<'_>) -> Result<Option<AmqttPlugins>, ConfigError> {
    let base = path(&["plugins"]);
    let Some(entries) = entries(value, &base, ctx)? else { return Ok(None) };
    let mut plugins = AmqttPlugins::default();
    let mut seen: Vec<Known> = Vec::new();
    for (class, options, at) in &entries {
        let Some(known) = known(class, at, ctx)? else { continue };
        if seen.contains(&known) && known != Known::Logger {
            let spot = ctx.spot(at, At::Key);
            return Err(ctx.invalid(&spot, "this plugin is named twice; keep one"));
        }
        seen.push(known);
        let options = plugin_options(known, options, at, ctx)?;
        apply(known, &options, at, &mut plugins, ctx)?;
    }
    if plugins.auth.is_empty() {
        let spot = ctx.spot(&base, At::Key);
        ctx.warn(&spot, "no authentication plugin is named, so every client is refused (as amqtt does)");
    }
    Ok(Some(plugins))
}

/// The map's entries in the file's order, from either form amqtt reads (a
/// map, or a list of class paths and one-entry maps).
fn entries(value: Option<&Value>, base: &[Seg], ctx: &mut Ctx<'_>) -> Result<Option<Vec<Entry>>, ConfigError> {
    Ok(Some(match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.iter().all(|i| i.as_str().is_some_and(|s| !s.contains('.'))) => {
            let spot = ctx.spot(base, At::Key);
            ctx.warn(
                &spot,
                "ignored: hbmqtt ignores a top-level `plugins` list too; \
                 plugins are chosen with `auth.plugins` and `topic-check.plugins`",
            );
            return Ok(None);
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let mut at = base.to_vec();
                at.push(Seg::Index(i));
                match item {
                    Value::String(class) => out.push((class.clone(), Value::Null, at)),
                    Value::Object(map) => {
                        out.extend(
                            map.iter().map(|(class, options)| (class.clone(), options.clone(), child(&at, class))),
                        );
                    }
                    _ => {
                        let spot = ctx.spot(&at, At::Value);
                        return Err(
                            ctx.invalid(&spot, "expected a plugin class path, or a map from one to its options")
                        );
                    }
                }
            }
            out
        }
        Some(Value::Object(map)) => {
            let mut out: Vec<_> =
                map.iter().map(|(class, options)| (class.clone(), options.clone(), child(base, class))).collect();
            // serde_json sorts keys; amqtt applies them in the file's order.
            out.sort_by_key(|(_, _, at)| ctx.pos(at, At::Key));
            out
        }
        Some(_) => {
            let spot = ctx.spot(base, At::Value);
            return Err(ctx.invalid(&spot, "expected a map from amqtt plugin class paths to their options"));
        }
    }))
}

/// What one known plugin and its options add to the configuration.
fn apply(
    known: Known,
    options: &serde_json::Map<String, Value>,
    at: &[Seg],
    plugins: &mut AmqttPlugins,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let get = |keys: [&'static str; 2]| keys.into_iter().find_map(|k| options.get(k).map(|v| (k, v)));
    match known {
        Known::Anonymous => {
            plugins.auth.push("auth_anonymous".into());
            plugins.allow_anonymous = match get(["allow_anonymous", "allow-anonymous"]) {
                None | Some((_, Value::Null)) => true,
                Some((_, Value::Bool(b))) => *b,
                Some((k, v)) => return Err(wrong(ctx, &child(at, k), v, "`true` or `false`")),
            };
        }
        Known::File => {
            plugins.auth.push("auth_file".into());
            match get(["password_file", "password-file"]) {
                Some((_, Value::String(p))) if !p.is_empty() => plugins.password_file = Some(PathBuf::from(p)),
                Some((k, v)) => return Err(wrong(ctx, &child(at, k), v, "a file path")),
                None => {
                    let spot = ctx.spot(at, At::Key);
                    return Err(ctx.invalid(
                        &spot,
                        "`password_file` is missing: without it amqtt refuses every user, \
                             and moth will not start a file check without a file",
                    ));
                }
            }
        }
        Known::Taboo => plugins.topic.push("topic_taboo".into()),
        Known::Acl => {
            plugins.topic.push("topic_acl".into());
            let acl = acl_of(get(["acl", "acl"]), at, ctx)?;
            let subscribe = acl_of(get(["subscribe_acl", "subscribe-acl"]), at, ctx)?;
            let publish = acl_of(get(["publish_acl", "publish-acl"]), at, ctx)?;
            // `acl` (amqtt's older name) covers what has no ACL of its own:
            // stricter than amqtt, which puts no limit on those.
            plugins.subscribe_acl = subscribe.or_else(|| acl.clone());
            plugins.publish_acl = publish.or(acl);
            plugins.receive_acl = acl_of(get(["receive_acl", "receive-acl"]), at, ctx)?;
        }
        Known::Sys => match get(["sys_interval", "sys-interval"]) {
            None | Some((_, Value::Null)) => plugins.sys_interval = Some((20.0, at.to_vec())),
            Some((k, Value::Number(n))) => {
                let seconds = n.as_f64().unwrap_or(-1.0);
                plugins.sys_interval = Some((seconds, child(at, k)));
            }
            Some((k, v)) => return Err(wrong(ctx, &child(at, k), v, "a non-negative number of seconds")),
        },
        Known::Logger => {}
        Known::Http { auth, topic } => {
            if auth {
                plugins.auth.push(HTTP_LIBRARY.into());
            }
            if topic {
                plugins.topic.push(HTTP_LIBRARY.into());
            }
            // UserAuthHttpPlugin and TopicAuthHttpPlugin side by side are one
            // `auth_http`: their options merge, and must not disagree.
            let merged =
                plugins.library_options.entry(HTTP_LIBRARY.into()).or_insert_with(|| Value::Object(Default::default()));
            let Value::Object(merged) = merged else { return Ok(()) };
            for (k, v) in options {
                match merged.get(k) {
                    Some(old) if old != v => {
                        let spot = ctx.spot(&child(at, k), At::Value);
                        return Err(ctx.invalid(&spot, "differs from the same option of the other amqtt HTTP plugin; moth runs one `auth_http` for both"));
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The plugin library amqtt's `contrib.http` plugins run as (`plugins/auth-http`).
const HTTP_LIBRARY: &str = "auth_http";

/// One ACL option: a map from user names to lists of topic filters (a null
/// list is empty); a null or absent option is no ACL.
fn acl_of(found: Option<(&str, &Value)>, at: &[Seg], ctx: &Ctx<'_>) -> Result<Option<Acl>, ConfigError> {
    let Some((key, value)) = found else { return Ok(None) };
    let here = child(at, key);
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(wrong(ctx, &here, value, "a mapping from user names to lists of topic filters")),
    };
    let mut acl = Acl::new();
    for (user, filters) in map {
        let user_at = child(&here, user);
        let list = match filters {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                let mut list = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(filter) = item.as_str() else {
                        let mut item_at = user_at.clone();
                        item_at.push(Seg::Index(i));
                        return Err(wrong(ctx, &item_at, item, "a topic filter"));
                    };
                    list.push(filter.to_owned());
                }
                list
            }
            _ => return Err(wrong(ctx, &user_at, filters, "a list of topic filters")),
        };
        acl.insert(user.clone(), list);
    }
    Ok(Some(acl))
}

/// The plugin a class path names; `None` for one that is accepted without
/// effect (persistence, with a warning). Anything else is an error.
fn known(class: &str, at: &[Seg], ctx: &mut Ctx<'_>) -> Result<Option<Known>, ConfigError> {
    if let Some((_, k)) = KNOWN.iter().find(|(c, _)| *c == class) {
        return Ok(Some(*k));
    }
    let spot = ctx.spot(at, At::Key);
    if class.starts_with("amqtt.plugins.persistence.") {
        ctx.warn(
            &spot,
            "not run: moth keeps sessions and retained messages in memory and has no persistence plugin yet, \
             so they do not survive a restart",
        );
        return Ok(None);
    }
    let runs = KNOWN.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
    let why = if class.starts_with("amqtt.contrib.") {
        format!(
            "amqtt's contrib plugin `{}` has no moth equivalent yet; moth does not start without a plugin \
             that may decide who gets in. Use moth's `auth_file` and `topic_acl` (FileAuthPlugin, \
             TopicAccessControlListPlugin), or a plugin library from `plugins-dir` named in `auth.plugins` \
             (amqtt's `contrib.http` plugins run as the `auth_http` library)",
            one_line(class)
        )
    } else {
        format!(
            "unknown plugin class `{}`: moth cannot tell whether it decides who gets in, so it does not start \
             without it. The amqtt plugins moth runs: {runs}",
            one_line(class)
        )
    };
    Err(ctx.invalid(&spot, why))
}

/// A plugin's options as a map (null = none); an option the plugin does not
/// take is an error, as amqtt's strict parsing makes it.
fn plugin_options(
    known: Known,
    options: &Value,
    at: &[Seg],
    ctx: &Ctx<'_>,
) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let map = match options {
        Value::Null => return Ok(serde_json::Map::new()),
        Value::Object(map) => map.clone(),
        _ => return Err(wrong(ctx, at, options, "a mapping of the plugin's options")),
    };
    let takes = known.options();
    if matches!(known, Known::Http { .. }) {
        return Ok(map);
    }
    if let Some(key) = map.keys().find(|k| !takes.contains(&k.as_str())) {
        let spot = ctx.spot(&child(at, key), At::Key);
        let message = if takes.is_empty() {
            "unknown option: this plugin takes none".to_owned()
        } else {
            format!("unknown option (this plugin takes: {})", takes.join(", "))
        };
        return Err(ctx.invalid(&spot, message));
    }
    Ok(map)
}

fn wrong(ctx: &Ctx<'_>, at: &[Seg], value: &Value, expected: &str) -> ConfigError {
    let spot = ctx.spot(at, At::Value);
    ctx.invalid(&spot, format!("expected {expected}, found {}", ctx.found(at, value)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::ChainDefault;
    use crate::config::tests::{err, ok};

    const FILE_ONLY: &str = "listeners:\n  default: {type: tcp, bind: 127.0.0.1:0}\nplugins:\n  \
        amqtt.plugins.authentication.FileAuthPlugin:\n    password_file: /etc/amqtt/passwd\n";

    /// The configuration that used to start an open broker: only the file
    /// plugin is named, so only users in the file get in.
    #[test]
    fn a_file_plugin_alone_admits_only_the_file() {
        let c = ok(FILE_ONLY);
        assert_eq!(c.auth.plugins, Some(vec!["auth_file".to_string()]));
        assert_eq!(c.auth.password_file, Some(PathBuf::from("/etc/amqtt/passwd")));
        assert!(!c.auth.allow_anonymous, "no AnonymousAuthPlugin: anonymous clients are refused");
        assert_eq!(c.auth.default, ChainDefault::Deny);
        assert!(c.topic_check.enabled);
        assert_eq!(c.topic_check.plugins, Some(vec![]));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// amqtt's own default file, as a map and as a list.
    #[test]
    fn amqtts_default_file_in_both_forms() {
        let map = "listeners:\n  default:\n    type: tcp\n    bind: 0.0.0.0:1883\nplugins:\n  \
            amqtt.plugins.logging_amqtt.EventLoggerPlugin:\n  amqtt.plugins.logging_amqtt.PacketLoggerPlugin:\n  \
            amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n  \
            amqtt.plugins.sys.broker.BrokerSysPlugin:\n    sys_interval: 20\n";
        let list = "listeners:\n  default: {type: tcp, bind: 0.0.0.0:1883}\nplugins:\n  \
            - amqtt.plugins.logging_amqtt.EventLoggerPlugin\n  \
            - amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: true}\n  \
            - amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 20}\n";
        for text in [map, list] {
            let c = ok(text);
            assert_eq!(c.auth.plugins, Some(vec!["auth_anonymous".to_string()]));
            assert!(c.auth.allow_anonymous);
            assert_eq!(c.sys_interval, Duration::from_secs(20));
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        }
    }

    #[test]
    fn plugins_keep_the_files_order() {
        let c = ok("plugins:\n  amqtt.plugins.authentication.FileAuthPlugin: {password_file: p}\n  \
            amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: false}\n");
        assert_eq!(c.auth.plugins, Some(vec!["auth_file".to_string(), "auth_anonymous".to_string()]));
        assert!(!c.auth.allow_anonymous);
        let c = ok("plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n  \
            amqtt.plugins.authentication.FileAuthPlugin: {password-file: p}\n");
        assert_eq!(c.auth.plugins, Some(vec!["auth_anonymous".to_string(), "auth_file".to_string()]));
        assert!(c.auth.allow_anonymous, "allow_anonymous defaults to true, as in amqtt");
    }

    #[test]
    fn topic_plugins_and_their_acls() {
        let c = ok("plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n  \
            amqtt.plugins.topic_checking.TopicTabooPlugin:\n  \
            amqtt.plugins.topic_checking.TopicAccessControlListPlugin:\n    \
            subscribe_acl: {alice: ['sensors/#'], anonymous:}\n    receive-acl: {alice: ['sensors/a']}\n");
        let t = &c.topic_check;
        assert!(t.enabled);
        assert_eq!(t.plugins, Some(vec!["topic_taboo".to_string(), "topic_acl".to_string()]));
        let sub = t.subscribe_acl.as_ref().unwrap();
        assert_eq!(sub["alice"], vec!["sensors/#".to_string()]);
        assert!(sub["anonymous"].is_empty());
        assert_eq!(t.publish_acl, None, "no publish ACL: amqtt puts no limit on publishing");
        assert_eq!(t.receive_acl.as_ref().unwrap()["alice"], vec!["sensors/a".to_string()]);
        // amqtt's older `acl` covers both actions that have no ACL of their own.
        let c = ok("plugins:\n  amqtt.plugins.topic_checking.TopicAccessControlListPlugin: {acl: {bob: [x]}}\n");
        assert_eq!(c.topic_check.subscribe_acl, c.topic_check.publish_acl);
        assert!(c.topic_check.subscribe_acl.unwrap().contains_key("bob"));
    }

    #[test]
    fn no_auth_plugin_refuses_everyone_and_says_so() {
        let c = ok("plugins:\n  amqtt.plugins.sys.broker.BrokerSysPlugin:\n");
        assert_eq!(c.auth.plugins, Some(vec![]));
        assert!(!c.auth.allow_anonymous);
        assert!(c.warnings.iter().any(|w| w.contains("every client is refused")), "{:?}", c.warnings);
        assert_eq!(c.sys_interval, Duration::from_secs(20), "BrokerSysPlugin's default");
    }

    /// amqtt's HTTP plugins run as the `auth_http` library, options passed on.
    #[test]
    fn the_contrib_http_plugins_are_auth_http() {
        let c = ok(
            "plugins:\n  amqtt.contrib.http.HttpAuthTopicPlugin: {host: h, port: 8080, user_uri: /u, topic_uri: /t}\n",
        );
        assert_eq!(c.auth.plugins.as_deref(), Some(&["auth_http".to_string()][..]));
        assert_eq!(c.topic_check.plugins.as_deref(), Some(&["auth_http".to_string()][..]));
        assert_eq!(c.plugins.options["auth_http"]["user_uri"], "/u");
        // The split pair is one plugin, options merged.
        let c = ok("plugins:\n  amqtt.contrib.http.UserAuthHttpPlugin: {host: h, port: 1, user_uri: /u}\n  \
            amqtt.contrib.http.TopicAuthHttpPlugin: {host: h, port: 1, topic_uri: /t}\n");
        assert_eq!(c.plugins.options["auth_http"]["topic_uri"], "/t");
        assert_eq!(c.plugins.options["auth_http"]["user_uri"], "/u");
        let e = err("plugins:\n  amqtt.contrib.http.UserAuthHttpPlugin: {host: h, port: 1, user_uri: /u}\n  \
            amqtt.contrib.http.TopicAuthHttpPlugin: {host: other, port: 1, topic_uri: /t}\n");
        assert!(e.contains("moth runs one `auth_http` for both"), "{e}");
        let e = err(
            "plugins:\n  amqtt.contrib.http.HttpAuthPlugin: {host: h, port: 1, user_uri: /u}\nplugins-config:\n  auth_http: {host: x}\n",
        );
        assert!(e.contains("plugins-config.auth_http"), "{e}");
    }

    /// Fail closed: what moth cannot honour stops the start, naming it.
    #[test]
    fn what_moth_cannot_honour_is_an_error() {
        let e = err("plugins:\n  amqtt.contrib.ldap.UserAuthLdapPlugin: {server: x}\n");
        assert!(
            e.starts_with("<string>:2:3: plugins.amqtt.contrib.ldap.UserAuthLdapPlugin: amqtt's contrib plugin"),
            "{e}"
        );
        let e = err("plugins:\n  mycompany.auth.LdapPlugin:\n");
        assert!(e.contains("unknown plugin class `mycompany.auth.LdapPlugin`"), "{e}");
        assert!(e.contains("amqtt.plugins.authentication.FileAuthPlugin"), "lists what runs: {e}");
        let e = err("plugins:\n  amqtt.plugins.authentication.FileAuthPlugin: {password_file: p, hash: md5}\n");
        assert!(e.contains("FileAuthPlugin.hash: unknown option (this plugin takes: password_file"), "{e}");
        let e = err("plugins:\n  amqtt.plugins.authentication.FileAuthPlugin:\n");
        assert!(e.contains("`password_file` is missing"), "{e}");
        let e = err("plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: maybe}\n");
        assert!(e.contains("allow_anonymous: expected `true` or `false`, found `maybe`"), "{e}");
        let e = err("plugins:\n  - amqtt.plugins.authentication.AnonymousAuthPlugin\n  \
            - amqtt.plugins.authentication.AnonymousAuthPlugin\n");
        assert!(e.contains("named twice"), "{e}");
        let e = err("plugins:\n  - [nested]\n");
        assert!(e.contains("plugins[0]: expected a plugin class path"), "{e}");
    }

    #[test]
    fn auth_sections_beside_the_map_are_an_error() {
        for section in ["auth:\n  password-file: p\n", "topic-check:\n  enabled: true\n", "topic_check: {}\n"] {
            let e = err(&format!("{FILE_ONLY}{section}"));
            assert!(e.contains("not read next to amqtt's `plugins:` map"), "{e}");
        }
    }

    #[test]
    fn persistence_is_a_warning_and_hbmqtts_list_is_ignored() {
        let c = ok("plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n  \
            amqtt.plugins.persistence.SQLitePlugin: {file: x.db}\n");
        assert!(c.warnings.iter().any(|w| w.contains("SQLitePlugin: not run")), "{:?}", c.warnings);
        let c = ok("plugins:\n  - auth_file\n  - auth_anonymous\nauth:\n  allow-anonymous: false\n");
        assert_eq!(c.auth.plugins, None, "hbmqtt's list is not a chain");
        assert!(!c.auth.allow_anonymous, "and the auth section decides");
    }
}
