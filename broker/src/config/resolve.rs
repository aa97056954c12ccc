//! Resolution: the raw schema ([`ConfigFile`]) checked and turned into the
//! [`Config`] the broker runs on, one section at a time. Listeners are in
//! `listeners.rs`; what hbmqtt decides (both spellings, the `default`
//! listener) in `hbmqtt.rs`.
//!
//! The order of the steps is the order findings are reported in: the first
//! error wins, and warnings keep that order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::amqtt;
use super::bind::parse_bind;
use super::diagnostics::{At, ConfigError, Ctx, one_line, show_num, show_path};
use super::listeners::resolve_listeners;
use super::position::{Seg, child, path};
use super::schema::{AuthFile, ConfigFile, MetricsFile, OneOrMany, PersistenceFile, SecondsOrText, TopicCheckFile};
use super::types::{
    AuthConfig, ChainDefault, Config, DEFAULT_SYNC_INTERVAL, DEFAULT_TIMEOUT_DISCONNECT_DELAY, Limits, ListenerConfig,
    MAX_PACKET_SIZE_CAP, MetricsConfig, PersistenceConfig, PluginsConfig, SyncMode, TopicCheckConfig,
};
use crate::packet::QoS;

pub(super) fn resolve(raw: ConfigFile, ctx: &mut Ctx<'_>) -> Result<Config, ConfigError> {
    let listeners = resolve_listeners(raw.listeners.unwrap_or_default(), ctx)?;
    if listeners.is_empty() {
        let spot = ctx.spot(&path(&["listeners"]), At::Key);
        ctx.warn(
            &spot,
            "no listener has a `bind`, so no network connections will be accepted \
             (fine for an embedded broker; hbmqtt requires `listeners`)",
        );
    }
    let timeout_disconnect_delay = seconds_of(
        ("timeout-disconnect-delay", raw.timeout_disconnect_delay),
        ("timeout_disconnect_delay", raw.timeout_disconnect_delay_alt),
        ctx,
    )?
    .unwrap_or(DEFAULT_TIMEOUT_DISCONNECT_DELAY);
    let amqtt = amqtt::read(raw.plugins.as_ref(), ctx)?;
    let mut sys_interval = seconds_of(("sys_interval", raw.sys_interval), ("sys-interval", raw.sys_interval_alt), ctx)?
        .unwrap_or(Duration::ZERO);
    if let Some((seconds, at)) = amqtt.as_ref().and_then(|a| a.sys_interval.clone()) {
        sys_interval = ctx.seconds(&at, seconds)?;
    }
    let max_qos = resolve_max_qos(raw.max_qos, raw.max_qos_alt, ctx)?;
    let (auth, topic_check, library_options) = match amqtt {
        Some(plugins) => {
            let beside = [
                ("auth", raw.auth.is_some()),
                ("topic-check", raw.topic_check.is_some()),
                ("topic_check", raw.topic_check_alt.is_some()),
            ];
            amqtt_chains(plugins, &beside, ctx)?
        }
        None => {
            let auth = resolve_auth(raw.auth.unwrap_or_default(), ctx)?;
            (auth, resolve_topic_check_section(raw.topic_check, raw.topic_check_alt, ctx)?, BTreeMap::new())
        }
    };
    let mut limits = resolve_limits(raw.max_packet_size, raw.max_inflight, raw.max_queued_messages, ctx)?;
    resolve_mqtt5_limits(&mut limits, raw.receive_maximum, raw.topic_alias_maximum, ctx)?;
    // 0 means no limit for each, as for Mosquitto's byte limits.
    limits.max_queued_bytes = raw.max_queued_bytes.unwrap_or(limits.max_queued_bytes);
    limits.max_subscriptions_per_client =
        raw.max_subscriptions_per_client.unwrap_or(limits.max_subscriptions_per_client);
    limits.retained_max_count = raw.retained_max_count.unwrap_or(limits.retained_max_count);
    limits.retained_max_bytes = raw.retained_max_bytes.unwrap_or(limits.retained_max_bytes);
    limits.memory_limit = raw.memory_limit.unwrap_or(limits.memory_limit);
    let max_message_expiry_interval = match raw.max_message_expiry_interval {
        Some(v) => Some(ctx.seconds(&path(&["max-message-expiry-interval"]), v)?),
        None => None,
    };
    let session_expiry_interval = seconds_of(
        ("session-expiry-interval", raw.session_expiry_interval),
        ("session_expiry_interval", raw.session_expiry_interval_alt),
        ctx,
    )?;
    let session_expiry_interval =
        with_persistent_client_expiration(session_expiry_interval, raw.persistent_client_expiration, ctx)?;
    let metrics = match raw.metrics {
        Some(section) => resolve_metrics(section, &listeners, ctx)?,
        None => None,
    };
    let persistence = match raw.persistence {
        Some(section) => resolve_persistence(section, ctx)?,
        None => None,
    };
    check_log_level(raw.log_level.as_deref(), ctx)?;
    let mut plugins =
        resolve_plugins(raw.plugins_dir, raw.plugins_config, raw.plugin_timeout, raw.plugin_concurrency, ctx)?;
    add_library_options(&mut plugins, library_options, ctx)?;

    let config = Config {
        listeners,
        timeout_disconnect_delay,
        sys_interval,
        max_qos,
        auth,
        topic_check,
        limits,
        session_owner: raw.session_owner.unwrap_or_default(),
        session_expiry_interval,
        max_message_expiry_interval,
        shared_subscriptions: raw.shared_subscriptions.unwrap_or(true),
        response_information: raw.response_information.filter(|r| !r.is_empty()),
        metrics,
        persistence,
        log_level: raw.log_level,
        log_format: raw.log_format.unwrap_or_default(),
        plugins,
        warnings: std::mem::take(&mut ctx.warnings),
    };
    Ok(config)
}

/// A top-level duration with two spellings, given in seconds.
fn seconds_of(
    first: (&'static str, Option<f64>),
    second: (&'static str, Option<f64>),
    ctx: &mut Ctx<'_>,
) -> Result<Option<Duration>, ConfigError> {
    match ctx.pick(&[], first, second, show_num)? {
        Some((v, key)) => ctx.seconds(&path(&[key]), v).map(Some),
        None => Ok(None),
    }
}

/// Mosquitto's `persistent_client_expiration` habit, as another name of
/// `session-expiry-interval`: seconds, or `<n>h`, `d`, `w`, `m` (30 days) or
/// `y` (365 days), as `mosquitto.conf` writes it. Both given is an error:
/// they are one setting.
fn with_persistent_client_expiration(
    session_expiry: Option<Duration>,
    mosquitto: Option<SecondsOrText>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Duration>, ConfigError> {
    const KEY: &str = "persistent-client-expiration";
    let Some(value) = mosquitto else { return Ok(session_expiry) };
    let spot = ctx.spot(&path(&[KEY]), At::Value);
    if session_expiry.is_some() {
        let why = "says what `session-expiry-interval` says (Mosquitto's name for it); keep one";
        return Err(ctx.invalid(&ctx.spot(&path(&[KEY]), At::Key), why.to_string()));
    }
    let seconds = match value {
        SecondsOrText::Seconds(s) => s,
        SecondsOrText::Text(text) => match mosquitto_duration(&text) {
            Some(s) => s,
            None => {
                let why = format!("expected seconds or a count with h, d, w, m or y (`1d`), found `{text}`");
                return Err(ctx.invalid(&spot, why));
            }
        },
    };
    ctx.seconds(&path(&[KEY]), seconds).map(Some)
}

/// Seconds of a Mosquitto duration: `<n>` followed by `h`, `d`, `w`, `m`
/// (a month, 30 days) or `y` (365 days).
fn mosquitto_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u32 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let hour = 3600.0;
    let per = match unit {
        'h' => hour,
        'd' => 24.0 * hour,
        'w' => 7.0 * 24.0 * hour,
        'm' => 30.0 * 24.0 * hour,
        'y' => 365.0 * 24.0 * hour,
        _ => return None,
    };
    Some(f64::from(n) * per)
}

fn resolve_max_qos(first: Option<u8>, second: Option<u8>, ctx: &mut Ctx<'_>) -> Result<QoS, ConfigError> {
    match ctx.pick(&[], ("max-qos", first), ("max_qos", second), show_num)? {
        Some((v, key)) => QoS::from_u8(v).ok_or_else(|| {
            ctx.invalid(
                &ctx.spot(&path(&[key]), At::Value),
                format!("expected 0, 1 or 2, found {}", ctx.found(&path(&[key]), v)),
            )
        }),
        None => Ok(QoS::ExactlyOnce),
    }
}

/// `topic-check` under either spelling; absent, its defaults.
fn resolve_topic_check_section(
    first: Option<TopicCheckFile>,
    second: Option<TopicCheckFile>,
    ctx: &mut Ctx<'_>,
) -> Result<TopicCheckConfig, ConfigError> {
    match ctx.pick(&[], ("topic-check", first), ("topic_check", second), show_section)? {
        Some((section, key)) => resolve_topic_check(section, key, ctx),
        None => resolve_topic_check(TopicCheckFile::default(), "topic-check", ctx),
    }
}

/// `log-level` must be a filter the `moth` program can install.
fn check_log_level(level: Option<&str>, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    if let Some(level) = level
        && let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level)
    {
        let key = path(&["log-level"]);
        return Err(ctx.invalid(
            &ctx.spot(&key, At::Value),
            format!("invalid log filter {}: {}", ctx.found(&key, level), one_line(&e.to_string())),
        ));
    }
    Ok(())
}

fn show_section(_: &TopicCheckFile) -> String {
    "{...}".to_owned()
}

/// The chains of an amqtt `plugins:` map ([`amqtt`](super::amqtt)), and the
/// options it gives plugin libraries. The `auth` and
/// `topic-check` sections beside it are an error: amqtt ignores them, and
/// ignoring a section that asks for a password file would leave the broker
/// more open than its author meant.
fn amqtt_chains(
    plugins: amqtt::AmqttPlugins,
    beside: &[(&str, bool)],
    ctx: &Ctx<'_>,
) -> Result<(AuthConfig, TopicCheckConfig, BTreeMap<String, serde_json::Value>), ConfigError> {
    if let Some((key, _)) = beside.iter().find(|(_, present)| *present) {
        let spot = ctx.spot(&path(&[key]), At::Key);
        return Err(ctx.invalid(
            &spot,
            format!(
                "not read next to amqtt's `plugins:` map (amqtt ignores it too): put these settings in the \
                 plugins' options (FileAuthPlugin: {{password_file: ...}}, TopicAccessControlListPlugin: \
                 {{subscribe_acl: ...}}), or remove `plugins:` and keep `{key}`"
            ),
        ));
    }
    let auth = AuthConfig {
        plugins: Some(plugins.auth),
        allow_anonymous: plugins.allow_anonymous,
        password_file: plugins.password_file,
        default: ChainDefault::Deny,
    };
    let topic_check = TopicCheckConfig {
        enabled: true,
        plugins: Some(plugins.topic),
        acl: BTreeMap::new(),
        subscribe_acl: plugins.subscribe_acl,
        publish_acl: plugins.publish_acl,
        receive_acl: plugins.receive_acl,
        default: ChainDefault::Deny,
    };
    Ok((auth, topic_check, plugins.library_options))
}

/// The options amqtt's `plugins:` map gives plugin libraries (`auth_http`),
/// beside `plugins-config`; one plugin configured in both is an error.
fn add_library_options(
    plugins: &mut PluginsConfig,
    library_options: BTreeMap<String, serde_json::Value>,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    for (name, options) in library_options {
        if plugins.options.contains_key(&name) {
            let spot = ctx.spot(&path(&["plugins-config", &name]), At::Key);
            let why = "given twice: amqtt's `plugins:` map already configures this plugin; keep one";
            return Err(ctx.invalid(&spot, why.to_string()));
        }
        plugins.options.insert(name, options);
    }
    Ok(())
}

fn check_plugin_names(base: &[Seg], plugins: &Option<Vec<String>>, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    for (i, name) in plugins.iter().flatten().enumerate() {
        if name.trim().is_empty() {
            let mut p = child(base, "plugins");
            p.push(Seg::Index(i));
            return Err(ctx.invalid(&ctx.spot(&p, At::Value), "empty plugin name"));
        }
    }
    Ok(())
}

fn resolve_auth(auth: AuthFile, ctx: &mut Ctx<'_>) -> Result<AuthConfig, ConfigError> {
    let base = path(&["auth"]);
    let allow_anonymous = ctx
        .pick(
            &base,
            ("allow-anonymous", auth.allow_anonymous),
            ("allow_anonymous", auth.allow_anonymous_alt),
            show_num,
        )?
        .is_none_or(|(v, _)| v);
    let password_file = ctx
        .pick(
            &base,
            ("password-file", auth.password_file),
            ("password_file", auth.password_file_alt),
            |p: &PathBuf| show_path(p),
        )?
        .map(|(v, _)| v);
    check_plugin_names(&base, &auth.plugins, ctx)?;
    if password_file.is_some()
        && let Some(names) = &auth.plugins
        && !names.iter().any(|n| n == "auth_file")
    {
        // Only auth_file reads it: set with a chain that lacks it, the
        // file is silently unused, which a user who wrote it did not mean.
        let spot = ctx.spot(&path(&["auth", "plugins"]), At::Key);
        ctx.warn(&spot, "`password-file` is set but `auth_file` is not in the chain, so the file is not read");
    }
    Ok(AuthConfig { plugins: auth.plugins, allow_anonymous, password_file, default: auth.default.unwrap_or_default() })
}

fn resolve_topic_check(section: TopicCheckFile, key: &str, ctx: &mut Ctx<'_>) -> Result<TopicCheckConfig, ConfigError> {
    let base = path(&[key]);
    check_plugin_names(&base, &section.plugins, ctx)?;
    let show = |_: &BTreeMap<String, Vec<String>>| "{...}".to_owned();
    let subscribe =
        ctx.pick(&base, ("subscribe-acl", section.subscribe_acl), ("subscribe_acl", section.subscribe_acl_alt), show)?;
    let publish =
        ctx.pick(&base, ("publish-acl", section.publish_acl), ("publish_acl", section.publish_acl_alt), show)?;
    let receive =
        ctx.pick(&base, ("receive-acl", section.receive_acl), ("receive_acl", section.receive_acl_alt), show)?;
    let acl = section.acl.unwrap_or_default();
    Ok(TopicCheckConfig {
        enabled: section.enabled.unwrap_or(false),
        plugins: section.plugins,
        subscribe_acl: Some(subscribe.map_or_else(|| acl.clone(), |(v, _)| v)),
        publish_acl: Some(publish.map_or_else(|| acl.clone(), |(v, _)| v)),
        receive_acl: receive.map(|(v, _)| v),
        acl,
        default: section.default.unwrap_or_default(),
    })
}

/// The metrics endpoint; `None` when switched off. Its address may not be
/// a listener's.
fn resolve_metrics(
    section: MetricsFile,
    listeners: &[ListenerConfig],
    ctx: &Ctx<'_>,
) -> Result<Option<MetricsConfig>, ConfigError> {
    if section.enabled == Some(false) {
        return Ok(None);
    }
    let Some(bind_text) = &section.bind else {
        let spot = ctx.spot(&path(&["metrics"]), At::Key);
        return Err(ctx.invalid(&spot, "`bind` is missing: the address the metrics endpoint listens on"));
    };
    let bind_key = path(&["metrics", "bind"]);
    let bind = parse_bind(bind_text).map_err(|reason| {
        ctx.invalid(&ctx.spot(&bind_key, At::Value), format!("invalid address `{}`: {reason}", one_line(bind_text)))
    })?;
    let metrics_path = section.path.unwrap_or_else(|| "/metrics".to_string());
    if !metrics_path.starts_with('/') || metrics_path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?') {
        let key = path(&["metrics", "path"]);
        return Err(ctx.invalid(
            &ctx.spot(&key, At::Value),
            format!("expected a URL path starting with `/`, found {}", ctx.found(&key, &metrics_path)),
        ));
    }
    if bind.port() != 0
        && let Some(l) = listeners.iter().find(|l| l.bind == bind)
    {
        return Err(ctx.invalid(
            &ctx.spot(&bind_key, At::Value),
            format!("address `{bind}` is already used by listener `{}`", one_line(&l.name)),
        ));
    }
    Ok(Some(MetricsConfig { bind, path: metrics_path }))
}

/// The persistence section; `None` unless `enabled: true`. A section that
/// turns persistence on must say where (`path`): a store is never put in
/// a place the operator did not choose.
fn resolve_persistence(section: PersistenceFile, ctx: &mut Ctx<'_>) -> Result<Option<PersistenceConfig>, ConfigError> {
    if section.enabled != Some(true) {
        return Ok(None);
    }
    let dir = match section.path {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            let spot = ctx.spot(&path(&["persistence"]), At::Key);
            return Err(ctx.invalid(&spot, "`path` is missing: the directory the store is kept in"));
        }
    };
    let interval = match section.sync_interval {
        Some(v) => {
            let key = path(&["persistence", "sync-interval"]);
            let d = ctx.seconds(&key, v)?;
            if d.is_zero() {
                return Err(ctx.invalid(&ctx.spot(&key, At::Value), "expected a number of seconds above 0, found 0"));
            }
            Some(d)
        }
        None => None,
    };
    let sync = match section.sync.as_deref() {
        None | Some("batch") => SyncMode::Batch,
        Some("always") => SyncMode::Always,
        Some("periodic") => SyncMode::Periodic(interval.unwrap_or(DEFAULT_SYNC_INTERVAL)),
        Some(other) => {
            let key = path(&["persistence", "sync"]);
            return Err(ctx.invalid(
                &ctx.spot(&key, At::Value),
                format!("expected `always`, `batch` or `periodic`, found {}", ctx.found(&key, other)),
            ));
        }
    };
    if interval.is_some() && !matches!(sync, SyncMode::Periodic(_)) {
        let spot = ctx.spot(&path(&["persistence", "sync-interval"]), At::Key);
        ctx.warn(&spot, "only read with `sync: periodic`; ignored");
    }
    Ok(Some(PersistenceConfig { path: dir, sync }))
}

fn resolve_plugins(
    dirs: Option<OneOrMany>,
    options: Option<BTreeMap<String, serde_json::Value>>,
    timeout: Option<f64>,
    concurrency: Option<usize>,
    ctx: &Ctx<'_>,
) -> Result<PluginsConfig, ConfigError> {
    let dirs = match dirs {
        None => Vec::new(),
        Some(OneOrMany::One(d)) => vec![d],
        Some(OneOrMany::Many(v)) => v,
    };
    let mut plugins = PluginsConfig { dirs, ..PluginsConfig::default() };
    for (i, d) in plugins.dirs.iter().enumerate() {
        if d.as_os_str().is_empty() {
            let mut p = path(&["plugins-dir"]);
            p.push(Seg::Index(i));
            return Err(ctx.invalid(&ctx.spot(&p, At::Value), "empty directory path"));
        }
    }
    for (name, value) in options.into_iter().flatten() {
        // `name:` with nothing after it means "no options".
        let value = if value.is_null() { serde_json::Value::Object(Default::default()) } else { value };
        plugins.options.insert(name, value);
    }
    if let Some(t) = timeout {
        let key = path(&["plugin-timeout"]);
        plugins.timeout = ctx.seconds(&key, t)?;
        if plugins.timeout.is_zero() {
            return Err(ctx.invalid(&ctx.spot(&key, At::Value), "expected a positive number of seconds, found `0`"));
        }
    }
    if let Some(c) = concurrency {
        if c == 0 {
            let spot = ctx.spot(&path(&["plugin-concurrency"]), At::Value);
            return Err(ctx.invalid(&spot, "expected a positive integer, found `0`"));
        }
        plugins.concurrency = c;
    }
    Ok(plugins)
}

/// `receive-maximum` (not 0) and `topic-alias-maximum`.
fn resolve_mqtt5_limits(
    limits: &mut Limits,
    receive_maximum: Option<u16>,
    topic_alias_maximum: Option<u16>,
    ctx: &mut Ctx<'_>,
) -> Result<(), ConfigError> {
    if let Some(receive) = receive_maximum {
        if receive == 0 {
            let spot = ctx.spot(&path(&["receive-maximum"]), At::Value);
            return Err(ctx.invalid(&spot, "expected an integer from 1 to 65535, found `0`"));
        }
        limits.receive_maximum = receive;
    }
    if let Some(aliases) = topic_alias_maximum {
        limits.topic_alias_maximum = aliases;
    }
    Ok(())
}

fn resolve_limits(
    max_packet_size: Option<usize>,
    max_inflight: Option<u16>,
    max_queued_messages: Option<usize>,
    ctx: &mut Ctx<'_>,
) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(size) = max_packet_size {
        let spot = ctx.spot(&path(&["max-packet-size"]), At::Value);
        if size == 0 {
            return Err(ctx.invalid(&spot, "expected a positive number of bytes, found `0`"));
        }
        if size > MAX_PACKET_SIZE_CAP {
            ctx.warn(&spot, format!("{size} is larger than any MQTT packet; using {MAX_PACKET_SIZE_CAP} instead"));
        }
        limits.max_packet_size = size.min(MAX_PACKET_SIZE_CAP);
    }
    if let Some(inflight) = max_inflight {
        if inflight == 0 {
            let spot = ctx.spot(&path(&["max-inflight"]), At::Value);
            return Err(ctx.invalid(&spot, "expected an integer from 1 to 65535, found `0`"));
        }
        limits.max_inflight = inflight;
    }
    if let Some(queued) = max_queued_messages {
        limits.max_queued_messages = queued;
    }
    Ok(limits)
}
