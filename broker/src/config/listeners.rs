//! Listeners: each entry under `listeners` read with its spellings merged,
//! the `default` template applied (`hbmqtt.rs`), then checked and built
//! into a [`ListenerConfig`]: address, TLS, WebSocket path.
//!
//! A setting remembers where it was written, so that a value inherited from
//! `default` is reported where it is written, under the listener it broke.

use std::collections::HashSet;
use std::path::PathBuf;

use super::bind::parse_bind;
use super::diagnostics::{At, ConfigError, Ctx, Spot, one_line, show_num};
use super::hbmqtt;
use super::position::{Seg, child, display_path, path};
use super::schema::ListenerFile;
use super::schema::ListenerType;
use super::types::{ListenerConfig, ListenerKind, TlsConfig};

/// A listener value and where it was written (`listeners.<name>.<key>`).
#[derive(Debug, Clone)]
pub(super) struct Written<T> {
    pub(super) value: T,
    pub(super) path: Vec<Seg>,
}

/// One listener's settings with both spellings merged.
#[derive(Debug, Clone, Default)]
pub(super) struct ListenerFields {
    pub(super) bind: Option<Written<String>>,
    pub(super) kind: Option<Written<ListenerType>>,
    pub(super) max_connections: Option<Written<usize>>,
    pub(super) ssl: Option<Written<bool>>,
    pub(super) cafile: Option<Written<PathBuf>>,
    pub(super) capath: Option<Written<PathBuf>>,
    pub(super) cadata: Option<Written<String>>,
    pub(super) certfile: Option<Written<PathBuf>>,
    pub(super) keyfile: Option<Written<PathBuf>>,
    pub(super) path: Option<Written<String>>,
    pub(super) require_certificate: Option<Written<bool>>,
    pub(super) use_identity_as_username: Option<Written<bool>>,
}

impl ListenerFields {
    /// Reads one entry under `listeners`, merging the two spellings of its keys.
    fn read(name: &str, file: ListenerFile, ctx: &mut Ctx<'_>) -> Result<Self, ConfigError> {
        let base = path(&["listeners", name]);
        fn at<T>(base: &[Seg], value: T, key: &str) -> Option<Written<T>> {
            Some(Written { value, path: child(base, key) })
        }
        let max_connections = ctx.pick(
            &base,
            ("max_connections", file.max_connections),
            ("max-connections", file.max_connections_alt),
            show_num,
        )?;
        let require_certificate = ctx.pick(
            &base,
            ("require_certificate", file.require_certificate),
            ("require-certificate", file.require_certificate_alt),
            show_num,
        )?;
        let use_identity_as_username = ctx.pick(
            &base,
            ("use_identity_as_username", file.use_identity_as_username),
            ("use-identity-as-username", file.use_identity_as_username_alt),
            show_num,
        )?;
        Ok(ListenerFields {
            bind: file.bind.and_then(|v| at(&base, v, "bind")),
            kind: file.kind.and_then(|v| at(&base, v, "type")),
            max_connections: max_connections.and_then(|(v, key)| at(&base, v, key)),
            ssl: file.ssl.and_then(|v| at(&base, v, "ssl")),
            cafile: file.cafile.and_then(|v| at(&base, v, "cafile")),
            capath: file.capath.and_then(|v| at(&base, v, "capath")),
            cadata: file.cadata.and_then(|v| at(&base, v, "cadata")),
            certfile: file.certfile.and_then(|v| at(&base, v, "certfile")),
            keyfile: file.keyfile.and_then(|v| at(&base, v, "keyfile")),
            path: file.path.and_then(|v| at(&base, v, "path")),
            require_certificate: require_certificate.and_then(|(v, key)| at(&base, v, key)),
            use_identity_as_username: use_identity_as_username.and_then(|(v, key)| at(&base, v, key)),
        })
    }
}

/// Whether a listener setting was written under the listener itself (not
/// inherited from `default`).
pub(super) fn is_own<T>(name: &str, written: &Written<T>) -> bool {
    written.path.get(1) == Some(&Seg::Key(name.to_owned()))
}

/// Where to report a listener setting: under the listener's own name, at the
/// position where the value was written (which may be in `default`).
fn listener_spot<T>(ctx: &Ctx<'_>, name: &str, key: &str, written: Option<&Written<T>>, at: At) -> Spot {
    let own = path(&["listeners", name, key]);
    match written {
        Some(w) => {
            let inherited = w.path.get(1) != Some(&Seg::Key(name.to_owned()));
            Spot {
                key: display_path(&own),
                pos: ctx.pos(&w.path, at),
                note: if inherited { " (inherited from `listeners.default`)".to_owned() } else { String::new() },
            }
        }
        None => {
            Spot { key: display_path(&own), pos: ctx.pos(&path(&["listeners", name]), At::Key), note: String::new() }
        }
    }
}

/// Reads every listener, applies hbmqtt's `default` template and builds
/// the ones with a `bind`, in file order. Two may not share an address.
pub(super) fn resolve_listeners(
    entries: Vec<(String, ListenerFile)>,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut template = None;
    let mut named = Vec::new();
    for (name, file) in entries {
        if !names.insert(name.clone()) {
            // From a file too: a repeated listener name is more likely a copy
            // and paste slip than a deliberate override, so it is not "last wins".
            let spot = ctx.spot(&path(&["listeners", &name]), At::Key);
            return Err(ctx.invalid(&spot, format!("listener `{}` is defined twice", one_line(&name))));
        }
        let fields = ListenerFields::read(&name, file, ctx)?;
        if name == "default" {
            template = Some(fields);
        } else {
            named.push((name, fields));
        }
    }

    let mut out: Vec<(ListenerConfig, Spot)> = Vec::new();
    for (name, fields) in hbmqtt::apply_default_listener(template, named) {
        match build_listener(&name, fields, ctx)? {
            Some(built) => out.push(built),
            // Only the others get here: `default` is only built with a `bind`.
            None => {
                let spot = ctx.spot(&path(&["listeners", &name]), At::Key);
                ctx.warn(&spot, "no `bind`, so this listener is not started");
            }
        }
    }

    for (i, (listener, bind_spot)) in out.iter().enumerate() {
        if listener.bind.port() == 0 {
            continue;
        }
        if let Some((other, _)) = out[..i].iter().find(|(o, _)| o.bind == listener.bind) {
            return Err(ctx.invalid(
                bind_spot,
                format!("address `{}` is already used by listener `{}`", listener.bind, one_line(&other.name)),
            ));
        }
    }
    Ok(out.into_iter().map(|(listener, _)| listener).collect())
}

/// Builds one listener; `None` when it has no `bind` (a template, not started).
fn build_listener(
    name: &str,
    fields: ListenerFields,
    ctx: &Ctx<'_>,
) -> Result<Option<(ListenerConfig, Spot)>, ConfigError> {
    let Some(bind_text) = &fields.bind else {
        return Ok(None);
    };
    let bind_spot = listener_spot(ctx, name, "bind", Some(bind_text), At::Value);
    let bind = parse_bind(&bind_text.value).map_err(|reason| {
        ctx.invalid(&bind_spot, format!("invalid address `{}`: {reason}", one_line(&bind_text.value)))
    })?;
    let max_connections = fields.max_connections.as_ref().map_or(0, |w| w.value);
    let (kind, tls_by_type) = fields.kind.as_ref().map_or((ListenerKind::Tcp, false), |w| w.value.split());
    let tls = tls_settings(name, &fields, tls_by_type, ctx)?;
    let ws_path = ws_path(name, kind, fields.path, ctx)?;
    let listener = ListenerConfig { name: name.to_owned(), bind, kind, max_connections, tls, ws_path };
    Ok(Some((listener, bind_spot)))
}

/// The TLS settings of a listener with `ssl` on, `None` without. Settings
/// that cannot work are refused here rather than at the first client.
fn tls_settings(
    name: &str,
    fields: &ListenerFields,
    tls_by_type: bool,
    ctx: &Ctx<'_>,
) -> Result<Option<TlsConfig>, ConfigError> {
    let client_cert_options = [
        ("require_certificate", fields.require_certificate.as_ref()),
        ("use_identity_as_username", fields.use_identity_as_username.as_ref()),
    ];
    if tls_by_type && let Some(off) = fields.ssl.as_ref().filter(|s| !s.value && is_own(name, s)) {
        let spot = listener_spot(ctx, name, "ssl", Some(off), At::Value);
        return Err(ctx.invalid(&spot, "`type: tls` and `type: wss` mean TLS, but `ssl` is off"));
    }
    if !tls_by_type && !fields.ssl.as_ref().is_some_and(|s| s.value) {
        // Set on a plain listener itself, these are mistakes; inherited from
        // `default` (written for the TLS listeners), they just do not apply.
        for (key, written) in client_cert_options {
            if written.is_some_and(|w| w.value && is_own(name, w)) {
                let key = written.and_then(|w| w.path.last()).map_or(key.to_owned(), seg_text);
                let spot = listener_spot(ctx, name, &key, written, At::Key);
                return Err(ctx.invalid(&spot, "client certificates need TLS: set `ssl: on` on this listener"));
            }
        }
        return Ok(None);
    }
    let ssl_spot = listener_spot(ctx, name, "ssl", fields.ssl.as_ref(), At::Key);
    let missing: Vec<&str> = [("certfile", fields.certfile.is_none()), ("keyfile", fields.keyfile.is_none())]
        .into_iter()
        .filter_map(|(key, absent)| absent.then_some(key))
        .collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ");
        let verb = if missing.len() == 1 { "is" } else { "are" };
        return Err(ctx.invalid(&ssl_spot, format!("`ssl` is on but {list} {verb} missing")));
    }
    // Without a CA nothing can verify a client certificate, so neither
    // option could ever be satisfied: say so now, not at the first client.
    let has_ca = fields.cafile.is_some() || fields.capath.is_some() || fields.cadata.is_some();
    for (key, written) in client_cert_options {
        if written.is_some_and(|w| w.value) && !has_ca {
            let key = written.and_then(|w| w.path.last()).map_or(key.to_owned(), seg_text);
            let spot = listener_spot(ctx, name, &key, written, At::Key);
            return Err(ctx.invalid(
                &spot,
                "needs the CAs that client certificates are checked against: set `cafile`, `capath` or `cadata`",
            ));
        }
    }
    let value = |w: &Option<Written<PathBuf>>| w.as_ref().map(|w| w.value.clone());
    Ok(Some(TlsConfig {
        certfile: value(&fields.certfile),
        keyfile: value(&fields.keyfile),
        cafile: value(&fields.cafile),
        capath: value(&fields.capath),
        cadata: fields.cadata.as_ref().map(|w| w.value.clone()),
        require_certificate: fields.require_certificate.as_ref().is_some_and(|w| w.value),
        use_identity_as_username: fields.use_identity_as_username.as_ref().is_some_and(|w| w.value),
    }))
}

/// `path`: the one URL path a ws listener accepts upgrades on.
fn ws_path(
    name: &str,
    kind: ListenerKind,
    path: Option<Written<String>>,
    ctx: &Ctx<'_>,
) -> Result<Option<String>, ConfigError> {
    match path {
        None => Ok(None),
        // A `path` in `default` is for the ws listeners among the others.
        Some(w) if kind != ListenerKind::Ws && !is_own(name, &w) => Ok(None),
        Some(w) => {
            let spot = listener_spot(ctx, name, "path", Some(&w), At::Value);
            if kind != ListenerKind::Ws {
                return Err(ctx.invalid(&spot, "`path` applies to `type: ws` listeners only"));
            }
            if !w.value.starts_with('/') || w.value.chars().any(|c| c.is_whitespace() || c == '?' || c == '#') {
                return Err(
                    ctx.invalid(&spot, format!("expected a URL path such as `/mqtt`, found `{}`", one_line(&w.value)))
                );
            }
            Ok(Some(w.value))
        }
    }
}

/// The text of a key segment (the spelling the file used).
fn seg_text(seg: &Seg) -> String {
    match seg {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => i.to_string(),
    }
}
