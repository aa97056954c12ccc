//! What a configuration reload (SIGHUP, or `Broker::reload`) changes, and
//! what it cannot: a pure comparison of the running, the last applied and
//! the new configuration.
//!
//! Applied at once: `auth` (the plugin chain, `allow-anonymous`, the password
//! file, `default`), `topic-check`, the plugin settings (`plugins-dir`,
//! `plugins-config`, `plugin-timeout`, `plugin-concurrency`), and `log-level`
//! (by the `moth` program, which owns the log filter). Everything else needs a restart: it is reported, not
//! applied, so a reload never closes a listener or a connection.

use crate::config::Config;

/// The outcome of one reload, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Settings that changed and now apply, e.g. `auth.allow-anonymous: true -> false`.
    pub applied: Vec<String>,
    /// Settings that changed but need a restart to apply.
    pub needs_restart: Vec<String>,
}

fn changed<T: std::fmt::Debug + PartialEq>(out: &mut Vec<String>, key: &str, old: &T, new: &T) {
    if old != new {
        out.push(format!("{key}: {} -> {}", plain(&format!("{old:?}")), plain(&format!("{new:?}"))));
    }
}

/// A value's debug text as an operator reads it: `Some(x)` is `x`, `None`
/// is `none`, strings lose their quotes (`Some(["tiny_auth"])` reads
/// `[tiny_auth]`).
fn plain(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    // For each open parenthesis: whether it was a `Some(`, whose closing
    // one goes too.
    let mut opened: Vec<bool> = Vec::new();
    let mut rest = debug;
    while let Some(c) = rest.chars().next() {
        let word_start = out.chars().last().is_none_or(|p| !p.is_alphanumeric() && p != '_');
        if word_start && rest.starts_with("Some(") {
            opened.push(true);
            rest = &rest[5..];
            continue;
        }
        if word_start && rest.starts_with("None") && !rest[4..].starts_with(|n: char| n.is_alphanumeric() || n == '_') {
            out.push_str("none");
            rest = &rest[4..];
            continue;
        }
        match c {
            '(' => {
                opened.push(false);
                out.push(c);
            }
            ')' => {
                if !opened.pop().unwrap_or(false) {
                    out.push(c);
                }
            }
            '"' => {}
            _ => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Compares `new` with the running configuration (for settings that need a
/// restart) and with the last applied one (for settings a reload applies).
pub(crate) fn diff(running: &Config, applied: &Config, new: &Config) -> ReloadReport {
    let mut r = ReloadReport::default();
    let (a, n) = (&applied.auth, &new.auth);
    changed(&mut r.applied, "auth.plugins", &a.plugins, &n.plugins);
    changed(&mut r.applied, "auth.allow-anonymous", &a.allow_anonymous, &n.allow_anonymous);
    changed(&mut r.applied, "auth.password-file", &a.password_file, &n.password_file);
    changed(&mut r.applied, "auth.default", &a.default, &n.default);
    let (a, n) = (&applied.topic_check, &new.topic_check);
    changed(&mut r.applied, "topic-check.enabled", &a.enabled, &n.enabled);
    changed(&mut r.applied, "topic-check.plugins", &a.plugins, &n.plugins);
    changed(&mut r.applied, "topic-check.acl", &a.acl, &n.acl);
    changed(&mut r.applied, "topic-check.subscribe-acl", &a.subscribe_acl, &n.subscribe_acl);
    changed(&mut r.applied, "topic-check.publish-acl", &a.publish_acl, &n.publish_acl);
    changed(&mut r.applied, "topic-check.receive-acl", &a.receive_acl, &n.receive_acl);
    changed(&mut r.applied, "topic-check.default", &a.default, &n.default);
    let (a, n) = (&applied.plugins, &new.plugins);
    changed(&mut r.applied, "plugins-dir", &a.dirs, &n.dirs);
    changed(&mut r.applied, "plugins-config", &a.options, &n.options);
    changed(&mut r.applied, "plugin-timeout", &a.timeout, &n.timeout);
    changed(&mut r.applied, "plugin-concurrency", &a.concurrency, &n.concurrency);
    changed(&mut r.applied, "log-level", &applied.log_level, &new.log_level);

    let restart = &mut r.needs_restart;
    if running.listeners != new.listeners {
        let names = |c: &Config| c.listeners.iter().map(|l| format!("{} ({})", l.name, l.bind)).collect::<Vec<_>>();
        let (old, new_names) = (names(running), names(new));
        if old == new_names {
            restart.push("listeners: settings changed".to_string());
        } else {
            restart.push(format!("listeners: {} -> {}", plain(&format!("{old:?}")), plain(&format!("{new_names:?}"))));
        }
    }
    changed(restart, "timeout-disconnect-delay", &running.timeout_disconnect_delay, &new.timeout_disconnect_delay);
    changed(restart, "sys_interval", &running.sys_interval, &new.sys_interval);
    changed(restart, "max-qos", &running.max_qos, &new.max_qos);
    changed(restart, "max-packet-size", &running.limits.max_packet_size, &new.limits.max_packet_size);
    changed(restart, "max-inflight", &running.limits.max_inflight, &new.limits.max_inflight);
    changed(restart, "max-queued-messages", &running.limits.max_queued_messages, &new.limits.max_queued_messages);
    changed(restart, "session-owner", &running.session_owner, &new.session_owner);
    changed(restart, "session-expiry-interval", &running.session_expiry_interval, &new.session_expiry_interval);
    changed(restart, "receive-maximum", &running.limits.receive_maximum, &new.limits.receive_maximum);
    changed(restart, "topic-alias-maximum", &running.limits.topic_alias_maximum, &new.limits.topic_alias_maximum);
    let (old, new_expiry) = (&running.max_message_expiry_interval, &new.max_message_expiry_interval);
    changed(restart, "max-message-expiry-interval", old, new_expiry);
    changed(restart, "shared-subscriptions", &running.shared_subscriptions, &new.shared_subscriptions);
    changed(restart, "metrics", &running.metrics, &new.metrics);
    changed(restart, "log-format", &running.log_format, &new.log_format);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_read_plain_not_as_rust_debug_text() {
        assert_eq!(super::plain(r#"Some(["tiny_auth"])"#), "[tiny_auth]");
        assert_eq!(super::plain("None"), "none");
        assert_eq!(super::plain(r#"Some("/etc/passwd")"#), "/etc/passwd");
        assert_eq!(super::plain("Some(5s)"), "5s");
        assert_eq!(
            super::plain("MetricsConfig { bind: 1.2.3.4:9, path: \"/m\" }"),
            "MetricsConfig { bind: 1.2.3.4:9, path: /m }"
        );
        assert_eq!(super::plain("NoneSuch(Somewhere(x))"), "NoneSuch(Somewhere(x))");
    }

    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).unwrap()
    }

    #[test]
    fn auth_changes_apply_and_listener_changes_need_a_restart() {
        let old = config("listeners:\n  default:\n    bind: 127.0.0.1:1883\nauth:\n  allow-anonymous: true\n");
        let new = config(
            "listeners:\n  default:\n    bind: 127.0.0.1:1884\nauth:\n  allow-anonymous: false\nmax-inflight: 5\n",
        );
        let r = diff(&old, &old, &new);
        assert_eq!(r.applied, vec!["auth.allow-anonymous: true -> false".to_string()]);
        assert_eq!(r.needs_restart.len(), 2, "{:?}", r.needs_restart);
        assert!(r.needs_restart[0].contains("1884"));
        assert!(r.needs_restart[1].starts_with("max-inflight"));
        assert_eq!(diff(&old, &new, &new).applied, Vec::<String>::new());
    }
}
