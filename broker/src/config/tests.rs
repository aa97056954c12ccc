//! The configuration read end to end: YAML text in, `Config` or the exact
//! message out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::io_reason;
use super::types::{DEFAULT_MAX_INFLIGHT, MAX_PACKET_SIZE_CAP};
use super::yaml::load_yaml;
use super::*;
use crate::packet::QoS;

pub(super) fn ok(text: &str) -> Config {
    Config::from_yaml_str(text).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

pub(super) fn err(text: &str) -> String {
    match Config::from_yaml_str(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn read_all(text: &str) -> Config {
    ok(text)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn plugin_host_keys() {
    let c = ok("plugins-dir: /a\nplugins-config:\n  allowlist: {users: {alice: {password: x}}, n: [1, 2]}\n  bare:\n\
                    plugin-timeout: 0.5\nplugin-concurrency: 3\nauth: {default: allow}\ntopic-check: {default: allow}\n");
    assert!(c.warnings.iter().all(|w| w.contains("no listener")), "{:?}", c.warnings);
    assert_eq!(c.plugins.dirs, vec![PathBuf::from("/a")]);
    assert_eq!(c.plugins.options["allowlist"]["users"]["alice"]["password"], "x");
    assert_eq!(c.plugins.options["allowlist"]["n"][1], 2);
    assert_eq!(c.plugins.options["bare"], serde_json::json!({}));
    assert_eq!(c.plugins.timeout, Duration::from_millis(500));
    assert_eq!(c.plugins.concurrency, 3);
    assert_eq!(c.auth.default, ChainDefault::Allow);
    assert_eq!(c.topic_check.default, ChainDefault::Allow);
    let c = ok("plugins-dir: [/a, /b]\n");
    assert_eq!(c.plugins.dirs.len(), 2);
    assert_eq!(ok("{}").plugins, PluginsConfig::default());
    let e = err("plugin-concurrency: 0\n");
    assert!(e.starts_with("<string>:1:21: plugin-concurrency:"), "{e}");
    let e = err("auth: {default: maybe}\n");
    assert!(e.contains("auth.default"), "{e}");
}

fn has_warning(config: &Config, needle: &str) -> bool {
    config.warnings.iter().any(|w| w.contains(needle))
}

const SEED_EXAMPLE: &str = "\
listeners:
    default:
        max-connections: 50000
        type: tcp
    my-tcp-1:
        bind: 127.0.0.1:1883
    my-tcp-2:
        bind: 1.2.3.4:1884
        max-connections: 1000
    my-tcp-ssl-1:
        bind: 127.0.0.1:8885
        ssl: on
        cafile: /some/cafile
        capath: /some/folder
        capath: certificate data
        certfile: /some/certfile
        keyfile: /some/key
    my-ws-1:
        bind: 0.0.0.0:8080
        type: ws
timeout-disconnect-delay: 2
auth:
    plugins: ['auth.anonymous'] #List of plugins to activate for authentication
    allow-anonymous: true
    password-file: /some/passwd_file
";

/// hbmqtt's `scripts/default_broker.yaml`.
const HBMQTT_DEFAULT_BROKER: &str = "\
listeners:
    default:
        type: tcp
        bind: 0.0.0.0:1883
sys_interval: 20
auth:
    allow-anonymous: true
plugins:
    - auth_file
    - auth_anonymous
topic-check:
    enabled: False
";

#[test]
fn embedded_default_is_hbmqtt_cli_default() {
    let config = Config::default();
    assert_eq!(
        config.listeners,
        vec![ListenerConfig {
            name: "default".into(),
            bind: addr("0.0.0.0:1883"),
            kind: ListenerKind::Tcp,
            max_connections: 0,
            tls: None,
            ws_path: None,
        }]
    );
    assert_eq!(config.sys_interval, Duration::from_secs(20));
    assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
    assert_eq!(config.max_qos, QoS::ExactlyOnce);
    assert!(config.auth.allow_anonymous);
    // Named, unlike hbmqtt's file: see default.yaml.
    assert_eq!(config.auth.plugins, Some(vec!["auth_anonymous".to_string()]));
    assert!(!config.topic_check.enabled);
    assert_eq!(config.limits, Limits::default());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn empty_file_means_defaults_and_no_listener() {
    for text in ["", "\n# only a comment\n", "---\n"] {
        let config = ok(text);
        assert!(config.listeners.is_empty());
        assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
        assert_eq!(config.sys_interval, Duration::ZERO);
        assert_eq!(config.max_qos, QoS::ExactlyOnce);
        assert!(config.auth.allow_anonymous);
        assert_eq!(config.auth.password_file, None);
        assert!(!config.topic_check.enabled);
        assert!(config.topic_check.acl.is_empty());
        assert_eq!(config.limits.max_packet_size, 1_048_576);
        assert_eq!(config.limits.max_inflight, 32);
        assert_eq!(config.limits.max_queued_messages, 1000);
        assert_eq!((config.limits.receive_maximum, config.limits.topic_alias_maximum), (32, 10));
        assert_eq!(config.max_message_expiry_interval, None);
        assert!(config.shared_subscriptions);
        assert_eq!(
            config.warnings,
            vec![
                "<string>: listeners: no listener has a `bind`, so no network connections \
                     will be accepted (fine for an embedded broker; hbmqtt requires `listeners`)"
            ]
        );
    }
}

#[test]
fn seed_example_is_read_completely() {
    let config = read_all(SEED_EXAMPLE);
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["my-tcp-1", "my-tcp-2", "my-tcp-ssl-1", "my-ws-1"]);
    let [tcp1, tcp2, tls, ws] = &config.listeners[..] else {
        panic!("four listeners expected");
    };
    assert_eq!(tcp1.bind, addr("127.0.0.1:1883"));
    assert_eq!(tcp1.max_connections, 50000, "inherited from default");
    assert_eq!(tcp1.kind, ListenerKind::Tcp);
    assert_eq!(tcp2.bind, addr("1.2.3.4:1884"));
    assert_eq!(tcp2.max_connections, 1000, "own value overrides default");
    assert_eq!(
        tls.tls,
        Some(TlsConfig {
            certfile: Some("/some/certfile".into()),
            keyfile: Some("/some/key".into()),
            cafile: Some("/some/cafile".into()),
            capath: Some("certificate data".into()),
            cadata: None,
            require_certificate: false,
            use_identity_as_username: false,
        })
    );
    assert_eq!(ws.kind, ListenerKind::Ws);
    assert_eq!(ws.max_connections, 50000);
    assert_eq!(config.timeout_disconnect_delay, Duration::from_secs(2));
    assert_eq!(
        config.auth,
        AuthConfig {
            plugins: Some(vec!["auth.anonymous".into()]),
            allow_anonymous: true,
            password_file: Some("/some/passwd_file".into()),
            default: ChainDefault::Deny,
        }
    );
    // The documentation's own example repeats `capath`: PyYAML keeps the last one.
    assert_eq!(
        config.warnings,
        vec![
            "<string>:15:9: listeners.my-tcp-ssl-1.capath: key given twice; \
                 the last value is used",
            // Its chain names only auth.anonymous: hbmqtt would not read the file either.
            "<string>:23:5: auth.plugins: `password-file` is set but `auth_file` is not in the chain, \
                 so the file is not read",
        ]
    );
}

#[test]
fn seed_example_with_tls_and_ws_is_accepted() {
    let config = ok(SEED_EXAMPLE);
    let kinds: Vec<(ListenerKind, bool)> = config.listeners.iter().map(|l| (l.kind, l.tls.is_some())).collect();
    assert_eq!(
        kinds,
        [(ListenerKind::Tcp, false), (ListenerKind::Tcp, false), (ListenerKind::Tcp, true), (ListenerKind::Ws, false)]
    );
}

#[test]
fn ws_path_and_client_certificate_options() {
    let text = "\
listeners:
  default:
    type: ws
    require-certificate: yes
  a:
    bind: 127.0.0.1:8443
    ssl: on
    certfile: c.pem
    keyfile: k.pem
    cafile: ca.pem
    use_identity_as_username: true
    path: /mqtt
";
    let config = ok(text);
    let l = &config.listeners[0];
    assert_eq!(l.kind, ListenerKind::Ws);
    assert_eq!(l.ws_path.as_deref(), Some("/mqtt"));
    let tls = l.tls.as_ref().expect("tls");
    assert!(tls.require_certificate, "inherited from default");
    assert!(tls.use_identity_as_username);
}

#[test]
fn client_certificate_options_need_a_ca_and_tls() {
    let no_ca = "\
listeners:
  default:
    bind: 127.0.0.1:8883
    ssl: on
    certfile: c.pem
    keyfile: k.pem
    require_certificate: true
";
    assert_eq!(
        err(no_ca),
        "<string>:7:5: listeners.default.require_certificate: needs the CAs that client certificates are \
             checked against: set `cafile`, `capath` or `cadata`"
    );
    let no_tls = "\
listeners:
  default:
    bind: 127.0.0.1:1883
    use-identity-as-username: on
";
    assert_eq!(
        err(no_tls),
        "<string>:4:5: listeners.default.use-identity-as-username: client certificates need TLS: \
             set `ssl: on` on this listener"
    );
}

#[test]
fn template_values_that_do_not_apply_are_ignored_not_refused() {
    let text = "\
listeners:
  default:
    path: /mqtt
    cafile: ca.pem
    require_certificate: true
  plain:
    bind: 127.0.0.1:1883
  web:
    bind: 127.0.0.1:8080
    type: ws
";
    let config = ok(text);
    let [plain, web] = &config.listeners[..] else { panic!("two listeners") };
    assert_eq!((plain.ws_path.as_deref(), plain.tls.is_none()), (None, true));
    assert_eq!((web.ws_path.as_deref(), web.tls.is_none()), (Some("/mqtt"), true));
}

#[test]
fn path_is_for_ws_listeners_and_must_be_a_path() {
    let tcp = "listeners:\n  default:\n    bind: 127.0.0.1:1883\n    path: /mqtt\n";
    assert_eq!(err(tcp), "<string>:4:11: listeners.default.path: `path` applies to `type: ws` listeners only");
    let bad = "listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:8080\n    path: mqtt\n";
    assert_eq!(err(bad), "<string>:5:11: listeners.default.path: expected a URL path such as `/mqtt`, found `mqtt`");
}

#[test]
fn hbmqtt_default_broker_yaml() {
    let config = ok(HBMQTT_DEFAULT_BROKER);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "default");
    assert_eq!(config.listeners[0].bind, addr("0.0.0.0:1883"));
    assert_eq!(config.sys_interval, Duration::from_secs(20));
    assert!(config.auth.allow_anonymous);
    assert_eq!(config.auth.plugins, None, "the top-level list is not auth.plugins");
    assert!(!config.topic_check.enabled);
    assert_eq!(
        config.warnings,
        vec![
            "<string>:8:1: plugins: ignored: hbmqtt ignores a top-level `plugins` list \
                 too; plugins are chosen with `auth.plugins` and `topic-check.plugins`"
        ]
    );
}

#[test]
fn anchors_example_with_every_section() {
    let text = "\
listeners:
  default:
    type: tcp
    max_connections: 0
  my-tcp:
    bind: 127.0.0.1:1883
timeout-disconnect-delay: 2.5
sys_interval: 20
max-qos: 1
auth:
  plugins: [auth_anonymous, auth_file]
  allow-anonymous: false
  password-file: /path/passwd
topic-check:
  enabled: true
  plugins: [topic_acl]
  acl:
    alice: ['repositories/+/master', 'calendar/#']
    bob:
    anonymous: []
max-packet-size: 65536
max-inflight: 10
max-queued-messages: 0
receive-maximum: 5
topic-alias-maximum: 0
max-message-expiry-interval: 90
shared-subscriptions: off
";
    let config = ok(text);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "my-tcp");
    assert_eq!(config.timeout_disconnect_delay, Duration::from_millis(2500));
    assert_eq!(config.max_qos, QoS::AtLeastOnce);
    assert_eq!(config.auth.plugins, Some(vec!["auth_anonymous".to_owned(), "auth_file".to_owned()]));
    assert!(!config.auth.allow_anonymous);
    assert_eq!(config.auth.password_file, Some(PathBuf::from("/path/passwd")));
    assert!(config.topic_check.enabled);
    assert_eq!(config.topic_check.plugins, Some(vec!["topic_acl".to_owned()]));
    let acl = &config.topic_check.acl;
    assert_eq!(acl["alice"], ["repositories/+/master", "calendar/#"]);
    assert!(acl["bob"].is_empty());
    assert!(acl["anonymous"].is_empty());
    let limits = Limits {
        max_packet_size: 65536,
        max_inflight: 10,
        max_queued_messages: 0,
        receive_maximum: 5,
        topic_alias_maximum: 0,
        ..Limits::default()
    };
    assert_eq!(config.limits, limits);
    assert_eq!(config.max_message_expiry_interval, Some(Duration::from_secs(90)));
    assert!(!config.shared_subscriptions, "`off` is false, as PyYAML reads it");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn both_spellings_are_accepted() {
    let documented = "\
listeners:
  default:
    max-connections: 7
    bind: 1883
timeout-disconnect-delay: 3
sys-interval: 5
max-qos: 1
auth:
  allow-anonymous: false
  password-file: pw
topic-check:
  enabled: true
";
    let real = "\
listeners:
  default:
    max_connections: 7
    bind: 1883
timeout_disconnect_delay: 3
sys_interval: 5
max_qos: 1
auth:
  allow_anonymous: false
  password_file: pw
topic_check:
  enabled: true
";
    let a = ok(documented);
    let b = ok(real);
    assert_eq!(a, b);
    assert_eq!(a.listeners[0].max_connections, 7);
    assert_eq!(a.timeout_disconnect_delay, Duration::from_secs(3));
    assert_eq!(a.sys_interval, Duration::from_secs(5));
    assert_eq!(a.max_qos, QoS::AtLeastOnce);
    assert!(!a.auth.allow_anonymous);
    assert_eq!(a.auth.password_file, Some(PathBuf::from("pw")));
    assert!(a.topic_check.enabled);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn both_spellings_with_different_values_conflict() {
    let text = "\
listeners:
  a:
    bind: 1883
    max_connections: 5
    max-connections: 6
";
    assert_eq!(
        err(text),
        "<string>:5:5: listeners.a.max-connections: `max-connections: 6` conflicts with \
             `max_connections: 5`; both spellings mean the same setting, keep one"
    );
    let text = "auth:\n  allow_anonymous: no\n  allow-anonymous: yes\n";
    assert_eq!(
        err(text),
        "<string>:3:3: auth.allow-anonymous: `allow-anonymous: true` conflicts with \
             `allow_anonymous: false`; both spellings mean the same setting, keep one"
    );
    let text = "sys_interval: 1\nsys-interval: 2\n";
    assert!(err(text).starts_with("<string>:2:1: sys-interval: `sys-interval: 2` conflicts"));
    let text = "topic_check:\n  enabled: yes\ntopic-check:\n  enabled: no\n";
    assert!(err(text).starts_with("<string>:3:1: topic-check: `topic-check: {...}` conflicts"));
}

#[test]
fn both_spellings_with_the_same_value_warn() {
    let text = "max-qos: 1\nmax_qos: 1\n";
    let config = ok(text);
    assert_eq!(config.max_qos, QoS::AtLeastOnce);
    assert!(
        config.warnings.contains(
            &"<string>:2:1: max_qos: repeats `max-qos` (both spellings mean the same \
              setting); keep one"
                .to_owned()
        )
    );
}

#[test]
fn yaml_1_1_booleans() {
    let text = "\
listeners:
  a:
    bind: 1883
    ssl: off
  b:
    bind: 1884
    ssl: 'No'
auth:
  allow-anonymous: no
topic-check:
  enabled: on
";
    let config = ok(text);
    assert!(config.listeners.iter().all(|l| l.tls.is_none()));
    assert!(!config.auth.allow_anonymous);
    assert!(config.topic_check.enabled);
    assert!(ok("auth:\n  allow_anonymous: Yes\n").auth.allow_anonymous);
    assert!(!ok("auth:\n  allow_anonymous: OFF\n").auth.allow_anonymous);
    assert!(ok("topic-check:\n  enabled: yes\n").topic_check.enabled);
}

#[test]
fn ssl_accepts_booleans_and_words_in_any_case() {
    for value in ["on", "yes", "true", "On", "'ON'", "'yes'", "\"True\"", "'oN'"] {
        let text =
            format!("listeners:\n  s:\n    bind: 8883\n    ssl: {value}\n    certfile: c.pem\n    keyfile: k.pem\n");
        let config = read_all(&text);
        assert!(config.listeners[0].tls.is_some(), "ssl: {value}");
    }
    for value in ["off", "no", "false", "OFF", "'Off'", "'no'", "\"FALSE\"", "~"] {
        let text = format!("listeners:\n  s:\n    bind: 8883\n    ssl: {value}\n");
        assert!(ok(&text).listeners[0].tls.is_none(), "ssl: {value}");
    }
    assert_eq!(
        err("listeners:\n  s:\n    bind: 8883\n    ssl: maybe\n"),
        "<string>:4:10: listeners.s.ssl: expected `on` or `off` (also `true`/`false`, \
             `yes`/`no`), found `maybe`"
    );
}

#[test]
fn ssl_without_certificate_is_an_error() {
    let text = "\
listeners:
  default:
    certfile: server.pem
  tls:
    bind: 8883
    ssl: on
";
    assert_eq!(err(text), "<string>:6:5: listeners.tls.ssl: `ssl` is on but `keyfile` is missing");
    let text = "listeners:\n  tls:\n    bind: 8883\n    ssl: on\n";
    assert_eq!(err(text), "<string>:4:5: listeners.tls.ssl: `ssl` is on but `certfile` and `keyfile` are missing");
}

#[test]
fn bind_forms() {
    let text = "\
listeners:
  v4:
    bind: 127.0.0.1:1883
  v6:
    bind: '[::1]:1884'
  v6-any:
    bind: '[::]:1885'
  port-only:
    bind: :1886
  bare:
    bind: 1887
  name:
    bind: localhost:1888
  spaces:
    bind: ' 127.0.0.1:1889 '
";
    let config = ok(text);
    let binds: Vec<SocketAddr> = config.listeners.iter().map(|l| l.bind).collect();
    assert_eq!(binds[0], addr("127.0.0.1:1883"));
    assert_eq!(binds[1], addr("[::1]:1884"));
    assert_eq!(binds[2], addr("[::]:1885"));
    assert_eq!(binds[3], addr("0.0.0.0:1886"));
    assert_eq!(binds[4], addr("0.0.0.0:1887"));
    assert!(binds[5].ip().is_loopback(), "{}", binds[5]);
    assert_eq!(binds[5].port(), 1888);
    assert_eq!(binds[6], addr("127.0.0.1:1889"));
}

#[test]
fn bad_bind_addresses() {
    let cases = [
        ("127.0.0.1:99999", "port out of range"),
        ("127.0.0.1", "missing port; expected `host:port`"),
        ("'127.0.0.1:'", "missing port; expected `host:port`"),
        ("127.0.0.1:http", "`http` is not a port number"),
        ("'::1'", "missing port; write IPv6 addresses as `[address]:port`"),
        ("'::1:1883x'", "IPv6 addresses must be in brackets, e.g. `[::1]:1883`"),
        ("'[::1]'", "missing port; expected `[address]:port`"),
        ("'[::1:1883'", "missing `]` after the IPv6 address"),
        ("'[nope]:1883'", "`nope` is not an IPv6 address"),
        ("''", "empty; expected `host:port`"),
    ];
    for (bind, reason) in cases {
        let text = format!("listeners:\n  my-tcp:\n    bind: {bind}\n");
        let shown = bind.trim_matches('\'');
        assert_eq!(err(&text), format!("<string>:3:11: listeners.my-tcp.bind: invalid address `{shown}`: {reason}"),);
    }
    let e = err("listeners:\n  my-tcp:\n    bind: no-such-host.invalid:1883\n");
    assert!(
        e.starts_with(
            "<string>:3:11: listeners.my-tcp.bind: invalid address \
                 `no-such-host.invalid:1883`: cannot resolve host `no-such-host.invalid`"
        ),
        "{e}"
    );
}

#[test]
fn bad_bind_reports_like_the_brief() {
    let text = "\
listeners:
  default:
    type: tcp
  other:
    bind: 127.0.0.1:1883
  my-tcp:
    bind: 127.0.0.1:99999
";
    let text = text.replace("<string>", "");
    let path = std::env::temp_dir().join(format!("moth-config-{}-broker.yaml", std::process::id()));
    std::fs::write(&path, &text).expect("write temp config");
    let e = Config::from_file(&path).expect_err("bad port");
    std::fs::remove_file(&path).ok();
    assert_eq!(
        e.to_string(),
        format!("{}:7:11: listeners.my-tcp.bind: invalid address `127.0.0.1:99999`: port out of range", path.display())
    );
}

#[test]
fn default_template_inheritance() {
    let text = "\
listeners:
  default:
    type: tcp
    max_connections: 100
    ssl: on
    certfile: c.pem
    keyfile: k.pem
  plain:
    bind: 127.0.0.1:1883
    ssl: off
  limited:
    bind: 127.0.0.1:1884
    max-connections: 5
  template-only:
    max_connections: 1
";
    let config = read_all(text);
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["plain", "limited"]);
    assert_eq!(config.listeners[0].max_connections, 100);
    assert_eq!(config.listeners[0].tls, None, "own `ssl: off` wins");
    assert_eq!(config.listeners[1].max_connections, 5);
    assert!(config.listeners[1].tls.is_some(), "ssl inherited");
    assert!(has_warning(&config, "<string>:14:3: listeners.template-only: no `bind`, so this listener is not started"));
}

#[test]
fn only_default_with_bind_runs_as_default() {
    let config = ok("listeners:\n  default:\n    bind: 127.0.0.1:1883\n");
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "default");
    assert_eq!(config.listeners[0].kind, ListenerKind::Tcp, "type defaults to tcp");
    assert!(config.warnings.is_empty());

    let config = ok("listeners:\n  default:\n    type: tcp\n");
    assert!(config.listeners.is_empty());
    assert!(has_warning(&config, "<string>:1:1: listeners: no listener has a `bind`"));
}

#[test]
fn default_with_bind_is_started_beside_others() {
    let text = "\
listeners:
  default:
    bind: 0.0.0.0:1883
  ws-ish:
    bind: 0.0.0.0:8080
";
    let config = ok(text);
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["default", "ws-ish"]);
}

#[test]
fn same_address_twice_is_an_error() {
    let text = "\
listeners:
  default:
    bind: 0.0.0.0:1883
  a:
    type: tcp
  b:
    type: tcp
";
    assert_eq!(
        err(text),
        "<string>:3:11: listeners.a.bind: address `0.0.0.0:1883` is already used by \
             listener `default` (inherited from `listeners.default`)"
    );
    // Port 0 asks the system for a free port each time.
    let config = ok("listeners:\n  a:\n    bind: 127.0.0.1:0\n  b:\n    bind: 127.0.0.1:0\n");
    assert_eq!(config.listeners.len(), 2);
}

#[test]
fn unknown_type_names_the_listener() {
    assert_eq!(
        err("listeners:\n  my-udp:\n    bind: 1883\n    type: udp\n"),
        "<string>:4:11: listeners.my-udp.type: expected `tcp`, `ws`, `tls` or `wss`, found `udp`"
    );
    assert_eq!(
        err("listeners:\n  my-tcp:\n    bind: 1883\n    type: TCP\n"),
        "<string>:4:11: listeners.my-tcp.type: expected `tcp`, `ws`, `tls` or `wss`, found `TCP`"
    );
}

#[test]
fn wrong_types_name_key_and_position() {
    let cases = [
        (
            "listeners:\n  default:\n    type: tcp\n    max-connections: lots\n",
            "<string>:4:22: listeners.default.max-connections: expected a non-negative \
                 integer (0 = no limit), found `lots`",
        ),
        (
            "listeners:\n  a:\n    bind: 1883\n    max_connections: -1\n",
            "<string>:4:22: listeners.a.max_connections: expected a non-negative \
                 integer (0 = no limit), found `-1`",
        ),
        ("auth: 5\n", "<string>:1:7: auth: expected a mapping of authentication settings, found `5`"),
        (
            "listeners: [a, b]\n",
            "<string>:1:12: listeners: expected a mapping from listener names to \
                 listener settings, found a list",
        ),
        (
            "auth:\n  plugins: auth_file\n",
            "<string>:2:12: auth.plugins: expected a list of plugin names, found `auth_file`",
        ),
        (
            "auth:\n  plugins: [auth_file, [x]]\n",
            "<string>:2:24: auth.plugins[1]: expected a plugin name, found a list",
        ),
        (
            "topic-check:\n  plugins: {topic_acl: 1}\n",
            "<string>:2:12: topic-check.plugins: expected a list of plugin names, \
                 found a mapping",
        ),
        (
            "topic-check:\n  acl:\n    alice: 'calendar/#'\n",
            "<string>:3:12: topic-check.acl.alice: expected a list of topic filters, \
                 found `'calendar/#'`",
        ),
        (
            "auth:\n  allow-anonymous: sometimes\n",
            "<string>:2:20: auth.allow-anonymous: expected a boolean (`true`/`false`, \
                 `on`/`off`, `yes`/`no`), found `sometimes`",
        ),
        (
            "timeout-disconnect-delay: soon\n",
            "<string>:1:27: timeout-disconnect-delay: expected a non-negative number of \
                 seconds, found `soon`",
        ),
        ("max-qos: two\n", "<string>:1:10: max-qos: expected 0, 1 or 2, found `two`"),
        ("max-inflight: 70000\n", "<string>:1:15: max-inflight: expected an integer from 1 to 65535, found `70000`"),
        ("hello\n", "<string>:1:1: expected a mapping of settings, found `hello`"),
        (
            "listeners:\n  a:\n    bind: [a]\n",
            "<string>:3:11: listeners.a.bind: expected an address such as `0.0.0.0:1883`, \
                 `[::1]:1883`, `:1883` or `1883`, found a list",
        ),
        ("listeners:\n  ~:\n    bind: 1883\n", "<string>:2:3: listeners.~: null is not allowed here"),
        (
            "listeners:\n  a:\n    bind: 1883\n  a:\n    bind: 1884\n",
            "<string>:4:3: listeners.a: listener `a` is defined twice",
        ),
    ];
    for (text, expected) in cases {
        let e = Config::from_yaml_str(text).expect_err(text);
        assert!(matches!(e, ConfigError::Invalid(_)), "{e:?}");
        assert_eq!(e.to_string(), expected);
    }
}

#[test]
fn out_of_range_values() {
    assert_eq!(err("max-qos: 3\n"), "<string>:1:10: max-qos: expected 0, 1 or 2, found `3`");
    assert_eq!(err("max_qos: -1\n"), "<string>:1:10: max_qos: expected 0, 1 or 2, found `-1`");
    assert_eq!(
        err("\ntimeout-disconnect-delay: -0.5\n"),
        "<string>:2:27: timeout-disconnect-delay: expected a non-negative number of \
             seconds, found `-0.5`"
    );
    assert_eq!(
        err("sys_interval: .inf\n"),
        "<string>:1:15: sys_interval: expected a non-negative number of seconds, found `.inf`"
    );
    assert_eq!(
        err("max-packet-size: 0\n"),
        "<string>:1:18: max-packet-size: expected a positive number of bytes, found `0`"
    );
    assert_eq!(err("max-inflight: 0\n"), "<string>:1:15: max-inflight: expected an integer from 1 to 65535, found `0`");
    assert_eq!(
        err("receive-maximum: 0\n"),
        "<string>:1:18: receive-maximum: expected an integer from 1 to 65535, found `0`"
    );
    assert_eq!(err("auth:\n  plugins: [auth_file, '']\n"), "<string>:2:24: auth.plugins[1]: empty plugin name");
    let config = ok("max-packet-size: 999999999999\n");
    assert_eq!(config.limits.max_packet_size, MAX_PACKET_SIZE_CAP);
    assert!(has_warning(&config, "<string>:1:18: max-packet-size: 999999999999 is larger"));
}

#[test]
fn timeout_accepts_int_and_float() {
    assert_eq!(ok("timeout-disconnect-delay: 0\n").timeout_disconnect_delay, Duration::ZERO);
    assert_eq!(ok("timeout-disconnect-delay: 0.25\n").timeout_disconnect_delay, Duration::from_millis(250));
}

#[test]
fn plugin_names_are_kept_as_written() {
    let config = ok("auth:\n  plugins: ['auth.anonymous', auth_file]\ntopic-check:\n  plugins: []\n");
    assert_eq!(config.auth.plugins, Some(vec!["auth.anonymous".to_owned(), "auth_file".to_owned()]));
    assert_eq!(config.topic_check.plugins, Some(vec![]));
}

#[test]
fn unknown_keys_are_warnings() {
    let text = "\
max_inflight: 3
listeners:
  a:
    bind: 1883
    Bind: 1
    flavour: vanilla
auth:
  secret: x
topic_check:
  acls: {}
";
    let config = ok(text);
    assert_eq!(
        config.warnings,
        vec![
            "<string>:1:1: max_inflight: unknown key, ignored (did you mean `max-inflight`?)",
            "<string>:5:5: listeners.a.Bind: unknown key, ignored (did you mean `bind`?)",
            "<string>:6:5: listeners.a.flavour: unknown key, ignored",
            "<string>:8:3: auth.secret: unknown key, ignored",
            "<string>:10:3: topic_check.acls: unknown key, ignored (did you mean `acl`?)",
        ]
    );
    assert_eq!(config.limits.max_inflight, DEFAULT_MAX_INFLIGHT);
}

#[test]
fn yaml_syntax_errors_carry_a_position() {
    let e = Config::from_yaml_str("listeners:\n  a: [1\n").expect_err("unclosed");
    assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
    assert!(e.to_string().starts_with("<string>:2:6: "), "{e}");
    assert!(!e.to_string().contains('\n'));
    let e = err("a: 1\n---\nb: 2\n");
    assert!(e.starts_with("<string>:"), "{e}");
}

#[test]
fn yaml_bombs_are_stopped() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = i - 1;
        let refs = vec![format!("*a{prev}"); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let e = Config::from_yaml_str(&text).expect_err("a billion laughs");
    assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
    assert!(e.to_string().contains("too large or too complex"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn missing_file() {
    let e = Config::from_file(Path::new("/nonexistent/moth/broker.yaml")).expect_err("missing");
    assert_eq!(e.to_string(), "cannot read config file /nonexistent/moth/broker.yaml: No such file or directory");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn from_file_names_the_file_in_warnings() {
    let path = std::env::temp_dir().join(format!("moth-config-{}-warn.yaml", std::process::id()));
    std::fs::write(&path, HBMQTT_DEFAULT_BROKER).expect("write temp config");
    let config = Config::from_file(&path);
    std::fs::remove_file(&path).ok();
    let config = config.expect("valid file");
    assert!(config.warnings[0].starts_with(&format!("{}:8:1: plugins:", path.display())));
}

#[test]
fn raw_config_built_in_code() {
    let raw = ConfigFile {
        listeners: Some(vec![(
            "in-code".to_owned(),
            ListenerFile {
                bind: Some("127.0.0.1:0".to_owned()),
                max_connections_alt: Some(3),
                ..ListenerFile::default()
            },
        )]),
        max_qos: Some(1),
        auth: Some(AuthFile { allow_anonymous: Some(false), ..AuthFile::default() }),
        ..ConfigFile::default()
    };
    let config = Config::from_raw(raw).expect("valid");
    assert_eq!(config.listeners[0].name, "in-code");
    assert_eq!(config.listeners[0].bind, addr("127.0.0.1:0"));
    assert_eq!(config.listeners[0].max_connections, 3);
    assert_eq!(config.max_qos, QoS::AtLeastOnce);
    assert!(!config.auth.allow_anonymous);
    assert!(config.warnings.is_empty());

    let raw = ConfigFile {
        listeners: Some(vec![(
            "in-code".to_owned(),
            ListenerFile { bind: Some("nowhere".to_owned()), ..ListenerFile::default() },
        )]),
        ..ConfigFile::default()
    };
    assert_eq!(
        Config::from_raw(raw).expect_err("bad bind").to_string(),
        "listeners.in-code.bind: invalid address `nowhere`: missing port; expected `host:port`"
    );

    let twice = ListenerFile { bind: Some("1883".to_owned()), ..ListenerFile::default() };
    let raw = ConfigFile {
        listeners: Some(vec![("x".to_owned(), twice.clone()), ("x".to_owned(), twice)]),
        ..ConfigFile::default()
    };
    assert_eq!(Config::from_raw(raw).expect_err("duplicate").to_string(), "listeners.x: listener `x` is defined twice");
    assert_eq!(Config::from_raw(ConfigFile::default()).expect("empty").listeners, vec![]);
}

#[test]
fn raw_schema_matches_yaml() {
    let loaded = load_yaml(SEED_EXAMPLE, "<string>").expect("loads");
    let listeners = loaded.raw.listeners.expect("listeners");
    assert_eq!(listeners[0].0, "default");
    assert_eq!(listeners[0].1.max_connections_alt, Some(50000));
    assert_eq!(listeners[3].1.ssl, Some(true));
    assert_eq!(listeners[4].1.kind, Some(ListenerType::Ws));
    assert_eq!(loaded.raw.timeout_disconnect_delay, Some(2.0));
}

#[test]
fn error_helpers() {
    let e = Config::from_yaml_str("max-qos: 3\n").expect_err("bad");
    let d = e.diagnostic().expect("diagnostic");
    assert_eq!(d.origin, "<string>");
    assert_eq!(d.key, "max-qos");
    assert_eq!(d.position, Some(Position { line: 1, column: 10 }));
    assert_eq!(ListenerKind::Ws.to_string(), "ws");
}

#[test]
fn messages_stay_on_one_line() {
    let e = err("listeners:\n  a:\n    bind: \"127.0.0.1\\n:99999\"\n");
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains("127.0.0.1\\n:99999"), "{e}");
}

#[test]
fn metrics_section_is_off_by_default_and_validated_with_positions() {
    assert_eq!(ok("").metrics, None);
    let c = ok("metrics:\n  bind: 127.0.0.1:9100\n");
    assert_eq!(c.metrics, Some(MetricsConfig { bind: addr("127.0.0.1:9100"), path: "/metrics".into() }));
    let c = ok("metrics:\n  bind: 9101\n  path: /prom\n");
    assert_eq!(c.metrics.map(|m| (m.bind.port(), m.path)), Some((9101, "/prom".to_string())));
    assert_eq!(ok("metrics:\n  bind: 127.0.0.1:9100\n  enabled: off\n").metrics, None);
    let e = err("metrics:\n  path: /m\n");
    assert!(e.starts_with("<string>:1:1: metrics:") && e.contains("`bind` is missing"), "{e}");
    let e = err("metrics:\n  bind: 127.0.0.1:9100\n  path: metrics\n");
    assert!(e.starts_with("<string>:3:9: metrics.path:") && e.contains("starting with `/`"), "{e}");
    let e = err("metrics:\n  bind: 127.0.0.1:99999\n");
    assert!(e.starts_with("<string>:2:9: metrics.bind:") && e.contains("port out of range"), "{e}");
    assert!(has_warning(&ok("metrics:\n  bind: 127.0.0.1:9100\n  port: 3\n"), "metrics.port"));
    let e = err("listeners:\n  default:\n    bind: 127.0.0.1:1883\nmetrics:\n  bind: 127.0.0.1:1883\n");
    assert!(e.starts_with("<string>:5:9: metrics.bind:") && e.contains("listener `default`"), "{e}");
}

#[test]
fn log_level_and_format() {
    let c = ok("log-level: info,moth=debug\nlog-format: json\n");
    assert_eq!(c.log_level.as_deref(), Some("info,moth=debug"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(ok("").log_format, LogFormat::Text);
    let e = err("log-level: 'moth=[loud'\n");
    assert!(e.starts_with("<string>:1:12: log-level: invalid log filter"), "{e}");
    let e = err("log-format: xml\n");
    assert!(e.contains("log-format") && e.contains("`text` or `json`"), "{e}");
}

#[test]
fn io_reason_drops_os_error_number() {
    let e = std::io::Error::from_raw_os_error(2);
    assert_eq!(io_reason(&e), "No such file or directory");
}

#[test]
fn limits_against_one_client_read_their_keys_and_0_means_none() {
    let l =
        ok("max-queued-bytes: 0\nmax-subscriptions-per-client: 7\nretained-max-count: 3\nretained-max-bytes: 100\n")
            .limits;
    assert_eq!(
        (l.max_queued_bytes, l.max_subscriptions_per_client, l.retained_max_count, l.retained_max_bytes),
        (0, 7, 3, 100)
    );
    let d = ok("").limits;
    assert_eq!(
        (d.max_queued_bytes, d.max_subscriptions_per_client, d.retained_max_count, d.retained_max_bytes),
        (32 << 20, 1000, 1_000_000, 256 << 20),
        "the documented defaults"
    );
    assert!(err("max-queued-bytes: -1\n").contains("max-queued-bytes"));
}

#[test]
fn the_persistence_section() {
    use crate::config::{PersistenceConfig, SyncMode};
    assert_eq!(ok("").persistence, None, "off unless asked for");
    assert_eq!(ok("persistence:\n  enabled: false\n  path: /x\n").persistence, None);
    let p = ok("persistence:\n  enabled: yes\n  path: /var/lib/moth\n").persistence;
    assert_eq!(p, Some(PersistenceConfig { path: "/var/lib/moth".into(), sync: SyncMode::Batch }), "batch by default");
    let p = ok("persistence:\n  enabled: true\n  path: d\n  sync: periodic\n  sync-interval: 2.5\n").persistence;
    assert_eq!(p.map(|p| p.sync), Some(SyncMode::Periodic(Duration::from_millis(2500))));
    let p = ok("persistence:\n  enabled: true\n  path: d\n  sync: periodic\n").persistence;
    assert_eq!(p.map(|p| p.sync), Some(SyncMode::Periodic(Duration::from_secs(1))), "1 s by default");
    assert_eq!(
        ok("persistence:\n  enabled: true\n  path: d\n  sync: always\n").persistence.map(|p| p.sync),
        Some(SyncMode::Always)
    );
    let e = err("persistence:\n  enabled: true\n");
    assert!(e.contains("persistence") && e.contains("`path` is missing"), "{e}");
    let e = err("persistence:\n  enabled: true\n  path: d\n  sync: sometimes\n");
    assert!(e.contains("persistence.sync") && e.contains("`always`, `batch` or `periodic`"), "{e}");
    let e = err("persistence:\n  enabled: true\n  path: d\n  sync: periodic\n  sync-interval: 0\n");
    assert!(e.contains("sync-interval"), "{e}");
    let c = ok("persistence:\n  enabled: true\n  path: d\n  sync-interval: 5\n");
    assert!(has_warning(&c, "only read with `sync: periodic`"), "{:?}", c.warnings);
    let c = ok("persistence:\n  enabled: true\n  path: d\n  synk: always\n");
    assert!(has_warning(&c, "synk"), "an unknown key is named: {:?}", c.warnings);
}

#[test]
fn a_password_file_no_chain_reads_is_a_warning() {
    let c = ok("auth:\n  plugins: [auth_anonymous]\n  password-file: passwd\n");
    assert!(has_warning(&c, "`auth_file` is not in the chain"), "{:?}", c.warnings);
    let c = ok("auth:\n  plugins: [auth_file]\n  password-file: passwd\n");
    assert!(!has_warning(&c, "password-file"), "{:?}", c.warnings);
    // hbmqtt's implicit chain asks auth_file.
    assert!(!has_warning(&ok("auth:\n  password-file: passwd\n"), "password-file"));
}

#[test]
fn type_tls_and_wss_are_tcp_and_ws_with_ssl_on() {
    let files = "    certfile: /c.pem\n    keyfile: /k.pem\n";
    let c = ok(&format!("listeners:\n  a:\n    type: tls\n    bind: 127.0.0.1:8883\n{files}"));
    assert_eq!((c.listeners[0].kind, c.listeners[0].tls.is_some()), (ListenerKind::Tcp, true));
    let c = ok(&format!("listeners:\n  a:\n    type: wss\n    bind: 127.0.0.1:8884\n{files}"));
    assert_eq!((c.listeners[0].kind, c.listeners[0].tls.is_some()), (ListenerKind::Ws, true));
    let e = err(&format!("listeners:\n  a:\n    type: tls\n    ssl: off\n    bind: 127.0.0.1:8883\n{files}"));
    assert!(e.contains("`ssl` is off"), "{e}");
    let e = err("listeners:\n  a:\n    type: tls\n    bind: 127.0.0.1:8883\n");
    assert!(e.contains("certfile"), "TLS without its files is refused as with `ssl: on`: {e}");
}

#[test]
fn a_relative_path_in_a_file_error_also_says_where_it_resolved() {
    let e = Config::from_file(Path::new("no/such/broker.yaml")).expect_err("missing").to_string();
    let cwd = std::env::current_dir().expect("cwd");
    let abs = cwd.join("no/such/broker.yaml");
    assert!(e.contains(&format!("no/such/broker.yaml ({})", abs.display())), "{e}");
    let e = Config::from_file(Path::new("/no/such/broker.yaml")).expect_err("missing").to_string();
    assert!(e.contains("/no/such/broker.yaml:"), "an absolute path stays as it is: {e}");
}

#[test]
fn a_tab_is_reported_where_it_is() {
    let e = err("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:1883\n\tmax_connections: 5\n");
    assert!(e.starts_with("<string>:5:1:") && e.contains("tab"), "{e}");
}

#[test]
fn mosquittos_persistent_client_expiration_is_another_name_of_session_expiry() {
    let expiry = |yaml: &str| ok(yaml).session_expiry_interval;
    assert_eq!(expiry("persistent-client-expiration: 2d\n"), Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(expiry("persistent-client-expiration: 1m\n"), Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(expiry("persistent-client-expiration: 3h\n"), Some(Duration::from_secs(3 * 3600)));
    assert_eq!(expiry("persistent-client-expiration: 90\n"), Some(Duration::from_secs(90)));
    assert_eq!(expiry("session_expiry_interval: 60\n"), Some(Duration::from_secs(60)));
    let e = err("persistent-client-expiration: 2 days\n");
    assert!(e.contains("expected seconds or a count with h, d, w, m or y"), "{e}");
    let e = err("session-expiry-interval: 60\npersistent-client-expiration: 1d\n");
    assert!(e.contains("keep one"), "{e}");
}
