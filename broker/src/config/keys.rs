//! The keys moth reads.

use std::collections::HashSet;

use serde_saphyr::Location;

use super::diagnostics::{Ctx, Spot};
use super::position::{KeyText, Node, NodeKind, Position, Seg, child, display_path, path};

/// What a key expects, for type-error messages.
pub(super) fn expectation(path: &[Seg]) -> Option<&'static str> {
    const BOOLEAN: &str = "a boolean (`true`/`false`, `on`/`off`, `yes`/`no`)";
    let keys: Vec<&str> = path
        .iter()
        .map(|seg| match seg {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        })
        .collect();
    Some(match keys.as_slice() {
        [] => "a mapping of settings",
        ["listeners"] => "a mapping from listener names to listener settings",
        ["listeners", _] => "a mapping of listener settings (`bind`, `type`, ...)",
        ["listeners", _, "bind"] => "an address such as `0.0.0.0:1883`, `[::1]:1883`, `:1883` or `1883`",
        ["listeners", _, "type"] => "`tcp` or `ws`",
        ["listeners", _, "max_connections" | "max-connections"] => "a non-negative integer (0 = no limit)",
        ["listeners", _, "ssl"] => "`on` or `off` (also `true`/`false`, `yes`/`no`)",
        ["listeners", _, "cafile" | "capath" | "certfile" | "keyfile"] => "a file path",
        ["listeners", _, "cadata"] => "PEM text",
        ["listeners", _, "path"] => "a URL path such as `/mqtt`",
        [
            "listeners",
            _,
            "require_certificate" | "require-certificate" | "use_identity_as_username" | "use-identity-as-username",
        ] => "`true` or `false`",
        ["timeout-disconnect-delay" | "timeout_disconnect_delay" | "sys_interval" | "sys-interval"] => {
            "a non-negative number of seconds"
        }
        ["max-qos" | "max_qos"] => "0, 1 or 2",
        ["max-packet-size"] => "a positive number of bytes",
        ["max-inflight"] => "an integer from 1 to 65535",
        ["max-queued-messages"] => "a non-negative integer",
        ["session-owner"] => "`user` or `client-id`",
        ["metrics"] => "a mapping of metrics settings (`bind`, `path`)",
        ["metrics", "bind"] => "an address such as `127.0.0.1:9100`",
        ["metrics", "path"] => "a URL path such as `/metrics`",
        ["metrics", "enabled"] => BOOLEAN,
        ["log-level"] => "a log filter such as `info` or `moth=debug`",
        ["log-format"] => "`text` or `json`",
        ["auth"] => "a mapping of authentication settings",
        ["topic-check" | "topic_check"] => "a mapping of topic-check settings",
        ["auth" | "topic-check" | "topic_check", "plugins"] => "a list of plugin names",
        ["auth" | "topic-check" | "topic_check", "plugins", "[]"] => "a plugin name",
        ["auth", "allow-anonymous" | "allow_anonymous"] => BOOLEAN,
        ["auth", "password-file" | "password_file"] => "a file path",
        ["topic-check" | "topic_check", "enabled"] => BOOLEAN,
        ["topic-check" | "topic_check", acl] if ACL_KEYS.contains(acl) => {
            "a mapping from user names to lists of topic filters"
        }
        ["topic-check" | "topic_check", acl, _] if ACL_KEYS.contains(acl) => "a list of topic filters",
        ["topic-check" | "topic_check", acl, _, "[]"] if ACL_KEYS.contains(acl) => "a topic filter",
        ["auth" | "topic-check" | "topic_check", "default"] => "`deny` or `allow`",
        ["plugins-dir"] => "a directory path or a list of them",
        ["plugins-config"] => "a mapping from plugin names to their options",
        ["plugin-timeout"] => "a non-negative number of seconds",
        ["plugin-concurrency"] => "a positive integer",
        _ => return None,
    })
}

const TOP_KEYS: &[&str] = &[
    "listeners",
    "timeout-disconnect-delay",
    "timeout_disconnect_delay",
    "sys_interval",
    "sys-interval",
    "max-qos",
    "max_qos",
    "auth",
    "topic-check",
    "topic_check",
    "max-packet-size",
    "max-inflight",
    "max-queued-messages",
    "session-owner",
    "metrics",
    "log-level",
    "log-format",
    "plugins-dir",
    "plugins-config",
    "plugin-timeout",
    "plugin-concurrency",
    "plugins",
];
const LISTENER_KEYS: &[&str] = &[
    "bind",
    "type",
    "max_connections",
    "max-connections",
    "ssl",
    "cafile",
    "capath",
    "cadata",
    "certfile",
    "keyfile",
    "path",
    "require_certificate",
    "require-certificate",
    "use_identity_as_username",
    "use-identity-as-username",
];
const AUTH_KEYS: &[&str] =
    &["plugins", "allow-anonymous", "allow_anonymous", "password-file", "password_file", "default"];
const TOPIC_CHECK_KEYS: &[&str] = &[
    "enabled",
    "plugins",
    "acl",
    "subscribe-acl",
    "subscribe_acl",
    "publish-acl",
    "publish_acl",
    "receive-acl",
    "receive_acl",
    "default",
];
/// The `topic-check` keys that hold an ACL.
const ACL_KEYS: &[&str] =
    &["acl", "subscribe-acl", "subscribe_acl", "publish-acl", "publish_acl", "receive-acl", "receive_acl"];
const METRICS_KEYS: &[&str] = &["bind", "path", "enabled"];

/// Warns about every key moth does not read.
pub(super) fn unknown_keys(root: Option<&Node>, ctx: &mut Ctx<'_>) {
    let Some(NodeKind::Map(top)) = root.map(|n| &n.kind) else {
        return;
    };
    check_keys(&[], top, TOP_KEYS, ctx);
    for (key, _, value) in top {
        let NodeKind::Map(section) = &value.kind else {
            continue;
        };
        match key.0.as_str() {
            "listeners" => {
                for (name, _, listener) in section {
                    if let NodeKind::Map(settings) = &listener.kind {
                        check_keys(&path(&["listeners", &name.0]), settings, LISTENER_KEYS, ctx);
                    }
                }
            }
            "auth" => check_keys(&path(&["auth"]), section, AUTH_KEYS, ctx),
            "topic-check" | "topic_check" => check_keys(&path(&[&key.0]), section, TOPIC_CHECK_KEYS, ctx),
            "metrics" => check_keys(&path(&["metrics"]), section, METRICS_KEYS, ctx),
            _ => {}
        }
    }
}

fn check_keys(base: &[Seg], map: &[(KeyText, Location, Node)], known: &[&str], ctx: &mut Ctx<'_>) {
    let normalise = |k: &str| k.to_ascii_lowercase().replace('_', "-");
    let mut seen = HashSet::new();
    for (key, loc, _) in map {
        if known.contains(&key.0.as_str()) || !seen.insert(key.0.as_str()) {
            continue;
        }
        let wanted = normalise(&key.0);
        let message = match known.iter().find(|k| normalise(k) == wanted) {
            Some(k) => format!("unknown key, ignored (did you mean `{k}`?)"),
            None => "unknown key, ignored".to_owned(),
        };
        let spot =
            Spot { key: display_path(&child(base, &key.0)), pos: Position::from_location(*loc), note: String::new() };
        ctx.warn(&spot, message);
    }
}
