//! The plugin registry: every plugin the broker can put in a chain, by name.
//! Built-in plugins (statically linked) and plugin libraries found in the
//! `plugins-dir` directories are registered alike and constructed alike,
//! behind the same object type ([`PluginBox`]).
//!
//! Names are matched with `.` and `_` as the same character, as hbmqtt
//! documents `auth.anonymous` and registers `auth_anonymous`.

use std::path::{Path, PathBuf};

use moth_auth_anonymous::AnonymousAuth;
use moth_auth_file::{Options as FileOptions, PasswordFile};
use moth_plugin_api::std_types::{RResult, RStr};
use moth_plugin_api::{
    API_VERSION, ApiVersion, AuthRequest, Capabilities, Decision, HostContext, PluginBox, PluginModRef, into_plugin_box,
};
use moth_topic_acl::TopicAcl;
use moth_topic_taboo::TopicTaboo;
use tracing::{debug, warn};

use crate::config::Config;
use crate::plugin_host::loader as plugin_loader;

/// Canonical form of a plugin name: `.` and `_` are the same, spaces around
/// are ignored.
pub(crate) fn canonical(name: &str) -> String {
    name.trim().replace('.', "_")
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOrigin {
    /// Linked into moth.
    BuiltIn,
    /// Loaded from this plugin library file (found in `plugins-dir`).
    Library(PathBuf),
}

impl std::fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginOrigin::BuiltIn => f.write_str("built-in"),
            PluginOrigin::Library(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the registry knows about a plugin before constructing it.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The name the configuration uses.
    pub name: String,
    /// Other accepted spellings (hbmqtt's documented names).
    pub aliases: Vec<String>,
    /// Built in, or the library file it was loaded from.
    pub origin: PluginOrigin,
    /// The plugin's own version (moth's for the built-ins).
    pub plugin_version: String,
    /// The version of the plugin interface (`moth-plugin-api`) it was built against.
    pub api_version: ApiVersion,
    /// What the plugin does, in its own words.
    pub description: String,
}

type BuiltInFactory = fn(&Config) -> Result<PluginBox, String>;

#[derive(Clone, Copy)]
enum Factory {
    BuiltIn(BuiltInFactory),
    Library(PluginModRef),
}

#[derive(Clone)]
struct Entry {
    info: PluginInfo,
    factory: Factory,
}

/// All plugins available to one configuration.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
    /// Library files that could not be registered, with why (for the log,
    /// and for the "unknown plugin" error).
    pub failures: Vec<String>,
}

fn builtin(name: &str, aliases: &[&str], description: &str, factory: BuiltInFactory) -> Entry {
    Entry {
        info: PluginInfo {
            name: name.to_string(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            origin: PluginOrigin::BuiltIn,
            plugin_version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: API_VERSION,
            description: description.to_string(),
        },
        factory: Factory::BuiltIn(factory),
    }
}

impl Registry {
    /// The built-in plugins only.
    pub fn builtins() -> Registry {
        let entries = vec![
            builtin(
                AnonymousAuth::NAME,
                &["auth.anonymous"],
                "lets in clients without a user name when auth.allow-anonymous is true (hbmqtt)",
                |c| Ok(into_plugin_box(AnonymousAuth::new(c.auth.allow_anonymous))),
            ),
            builtin(
                PasswordFile::NAME,
                &["auth.file"],
                "users and password hashes (argon2id, sha-crypt, Mosquitto $6$/$7$) from auth.password-file",
                password_file,
            ),
            builtin(
                TopicTaboo::NAME,
                &["topic.taboo"],
                "refuses the topics prohibited, top-secret and data/classified to all but admin (hbmqtt)",
                |_| Ok(into_plugin_box(TopicTaboo)),
            ),
            builtin(
                TopicAcl::NAME,
                &["topic.acl"],
                "per-user topic filters from topic-check.acl (or subscribe-acl, publish-acl, receive-acl)",
                |c| {
                    let t = &c.topic_check;
                    let acl =
                        TopicAcl::per_action(t.subscribe_acl.clone(), t.publish_acl.clone(), t.receive_acl.clone());
                    Ok(into_plugin_box(acl))
                },
            ),
        ];
        Registry { entries, failures: Vec::new() }
    }

    /// The built-ins plus every plugin library (`*.so`, `*.dylib`, `*.dll`)
    /// in `dirs` whose root module declares `namespace`. A library that
    /// cannot be loaded, or whose name is taken, is left out and recorded in
    /// [`Registry::failures`] (and logged); it never stops the broker unless
    /// a chain names it.
    pub fn scan(dirs: &[PathBuf], namespace: &str) -> Registry {
        let mut registry = Registry::builtins();
        for dir in dirs {
            let mut files = match std::fs::read_dir(dir) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_library(p)).collect::<Vec<_>>(),
                Err(e) => {
                    registry.fail(format!("plugins-dir {}: cannot read: {e}", dir.display()));
                    continue;
                }
            };
            files.sort();
            for file in files {
                registry.add_library(&file, namespace);
            }
        }
        registry
    }

    fn fail(&mut self, why: String) {
        warn!("plugin library skipped: {why}");
        self.failures.push(why);
    }

    fn add_library(&mut self, file: &Path, namespace: &str) {
        let lib = match plugin_loader::load(file) {
            Ok(lib) => lib,
            Err(e) => return self.fail(e.to_string()),
        };
        let m = lib.metadata;
        if m.namespace.as_str() != namespace {
            debug!(
                path = %file.display(), plugin = m.name.as_str(), namespace = m.namespace.as_str(),
                expected = namespace, "plugin library of another namespace skipped"
            );
            return;
        }
        let name = m.name.as_str().to_string();
        if let Some(taken) = self.find(&name) {
            let by = taken.origin.to_string();
            return self.fail(format!("{}: plugin name `{name}` is already taken by {by}", file.display()));
        }
        self.entries.push(Entry {
            info: PluginInfo {
                name,
                aliases: Vec::new(),
                origin: PluginOrigin::Library(file.to_path_buf()),
                plugin_version: m.plugin_version.as_str().to_string(),
                api_version: m.api_version,
                description: m.description.as_str().to_string(),
            },
            factory: Factory::Library(lib.module),
        });
    }

    /// The plugin registered under `name` (either spelling).
    pub fn find(&self, name: &str) -> Option<&PluginInfo> {
        self.entry(name).map(|e| &e.info)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        let want = canonical(name);
        self.entries
            .iter()
            .find(|e| canonical(&e.info.name) == want || e.info.aliases.iter().any(|a| canonical(a) == want))
    }

    /// Every registered plugin, built-ins first.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    /// The registered names, for error messages.
    pub fn names(&self) -> String {
        self.entries.iter().map(|e| e.info.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Constructs the plugin registered under `name` with its options from
    /// `plugins-config` (built-ins read their hbmqtt settings instead).
    /// `None` when no such plugin is registered.
    pub fn instantiate(&self, name: &str, config: &Config) -> Option<Result<PluginBox, String>> {
        let entry = self.entry(name)?;
        Some(match entry.factory {
            Factory::BuiltIn(make) => make(config),
            Factory::Library(module) => {
                let options = options_for(&entry.info.name, config);
                let host = HostContext {
                    api_version: API_VERSION,
                    broker_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
                    log: plugin_loader::host_log,
                };
                match (module.new())(RStr::from_str(&options), host) {
                    RResult::ROk(b) => Ok(b),
                    RResult::RErr(e) => Err(e.into_string()),
                }
            }
        })
    }
}

/// `auth_file`: the password file with its moth-only options
/// (`plugins-config.auth_file`).
///
/// Without `auth.password-file` it is an error, except in the chain hbmqtt
/// builds when `auth.plugins` is absent: there hbmqtt asks its file plugin
/// too, which, with no file, refuses every client that sends a user name
/// ([`NoPasswordFile`]).
/// moth keeps that rule rather than admit those clients (whose user names,
/// unchecked, would select their `topic-check.acl` rights).
fn password_file(c: &Config) -> Result<PluginBox, String> {
    let options = FileOptions::from_json(&options_for(PasswordFile::NAME, c))?;
    match &c.auth.password_file {
        Some(path) => Ok(into_plugin_box(PasswordFile::load(path, plugin_loader::host_log)?.with_options(options))),
        None if c.auth.plugins.is_none() => Ok(into_plugin_box(NoPasswordFile)),
        None => Err("needs `auth.password-file` (the file of `user:hash` lines)".into()),
    }
}

/// `auth_file` without a file, in hbmqtt's implicit chain: every user name
/// is unknown, and the refusal says why.
struct NoPasswordFile;

impl moth_plugin_api::Plugin for NoPasswordFile {
    fn capabilities(&self) -> Capabilities {
        Capabilities::AUTHENTICATE | Capabilities::FAST_AUTHENTICATE
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let cn = request.tls_common_name();
        match request.username() {
            None => Decision::ignore(),
            // Proved by a verified client certificate
            // (`use_identity_as_username`): not a name this plugin must vouch for.
            Some(user) if cn == Some(user) => Decision::ignore(),
            Some(_) => Decision::bad_credentials(
                "no `auth.password-file`, so auth_file knows no user (hbmqtt's rule when `auth.plugins` is \
                 absent); set `auth.plugins: [auth_anonymous]` to admit clients with any user name",
            ),
        }
    }
}

/// The plugin's options as JSON text: `plugins-config.<name>` under either
/// spelling of the name, `{}` when absent.
fn options_for(name: &str, config: &Config) -> String {
    let want = canonical(name);
    config
        .plugins
        .options
        .iter()
        .find(|(k, _)| canonical(k) == want)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "{}".into())
}

fn is_library(p: &Path) -> bool {
    p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("so" | "dylib" | "dll"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_under_both_spellings() {
        let r = Registry::builtins();
        assert_eq!(r.find("auth.anonymous").map(|p| p.name.as_str()), Some("auth_anonymous"));
        assert_eq!(r.find("auth_file").map(|p| p.name.as_str()), Some("auth_file"));
        assert!(r.find("topic_acl").is_some());
        assert!(r.find("nope").is_none());
        let e = r.instantiate("auth.file", &Config::default()).unwrap().err().unwrap();
        assert!(e.contains("auth.password-file"), "{e}");
    }

    #[test]
    fn a_missing_directory_is_recorded_not_fatal() {
        let r = Registry::scan(&[PathBuf::from("/nonexistent/moth-plugins")], "moth.broker.plugins");
        assert_eq!(r.failures.len(), 1);
        assert!(r.failures[0].contains("/nonexistent/moth-plugins"), "{:?}", r.failures);
        assert!(r.find("auth_anonymous").is_some());
    }
}
