//! The plugin's options: amqtt's `contrib.http` names (snake_case) and
//! moth's kebab-case spellings of the same keys, plus moth's own (CA file,
//! caches, delivery checks). An unknown option stops the start: it may be
//! one that decides who gets in.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How the request carries its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    #[default]
    Get,
    Post,
    Put,
}

/// `params_mode`: a JSON body, or form fields (the query string for GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Params {
    #[default]
    Json,
    Form,
}

/// `response_mode`: how the service's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Response {
    /// 2xx allows, 4xx refuses, anything else: no opinion.
    Status,
    /// 2xx with `{"ok": true}` allows, `{"ok": null}` no opinion, anything else refuses.
    #[default]
    Json,
    /// 2xx with the body `ok` (any case) allows; anything else refuses.
    Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    host: String,
    port: u16,
    #[serde(default, alias = "with-tls")]
    with_tls: bool,
    #[serde(alias = "user-uri")]
    user_uri: Option<String>,
    /// amqtt's documentation says `topic_uri`, its code reads `acl_uri`.
    #[serde(alias = "topic-uri", alias = "acl_uri", alias = "acl-uri")]
    topic_uri: Option<String>,
    #[serde(alias = "superuser-uri")]
    superuser_uri: Option<String>,
    #[serde(default, alias = "request-method")]
    request_method: Method,
    #[serde(default, alias = "params-mode")]
    params_mode: Params,
    #[serde(default, alias = "response-mode")]
    response_mode: Response,
    #[serde(alias = "user-agent")]
    user_agent: Option<String>,
    timeout: Option<f64>,
    #[serde(alias = "ca-file")]
    ca_file: Option<PathBuf>,
    #[serde(alias = "cache-ttl")]
    cache_ttl: Option<f64>,
    #[serde(alias = "auth-cache-ttl")]
    auth_cache_ttl: Option<f64>,
    #[serde(alias = "cache-size")]
    cache_size: Option<usize>,
    #[serde(default, alias = "check-receive")]
    check_receive: bool,
}

/// The options, checked.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// `http(s)://host:port`, no trailing slash.
    pub base: String,
    pub user_uri: Option<String>,
    pub topic_uri: Option<String>,
    pub superuser_uri: Option<String>,
    pub method: Method,
    pub params: Params,
    pub response: Response,
    pub user_agent: String,
    /// The whole request, connection included (`timeout`, default 5 s).
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// How long a topic answer is reused (`cache-ttl`, default 30 s; 0: never).
    pub cache_ttl: Duration,
    /// How long an authentication answer is reused (`auth-cache-ttl`,
    /// default 0: every CONNECT asks).
    pub auth_cache_ttl: Duration,
    /// Answers kept at most, per cache (`cache-size`, default 100000).
    pub cache_size: usize,
    /// Ask about every delivery too (`check-receive`, amqtt's receive check).
    pub check_receive: bool,
}

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_CACHE_SIZE: usize = 100_000;

fn seconds(key: &str, value: Option<f64>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::try_from_secs_f64(s).map_err(|_| format!("plugins-config.auth_http.{key}: {s} is too long"))
        }
        Some(s) => Err(format!("plugins-config.auth_http.{key}: expected seconds, found {s}")),
    }
}

fn uri(key: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(u) if !u.starts_with('/') => {
            Err(format!("plugins-config.auth_http.{key}: `{u}` must be a path starting with `/`"))
        }
        other => Ok(other),
    }
}

impl Options {
    pub(crate) fn parse(json: &str) -> Result<Options, String> {
        let raw: Raw =
            moth_plugin_api::serde_json::from_str(json).map_err(|e| format!("plugins-config.auth_http: {e}"))?;
        if raw.user_uri.is_none() && raw.topic_uri.is_none() {
            return Err("plugins-config.auth_http: neither user_uri nor topic_uri is set: nothing to ask".into());
        }
        if raw.host.is_empty() || raw.host.contains(['/', ' ']) {
            return Err(format!("plugins-config.auth_http.host: `{}` is not a host name or address", raw.host));
        }
        let scheme = if raw.with_tls { "https" } else { "http" };
        let timeout = seconds("timeout", raw.timeout, DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err("plugins-config.auth_http.timeout: must be above 0".into());
        }
        Ok(Options {
            base: format!("{scheme}://{}:{}", raw.host, raw.port),
            user_uri: uri("user_uri", raw.user_uri)?,
            topic_uri: uri("topic_uri", raw.topic_uri)?,
            superuser_uri: uri("superuser_uri", raw.superuser_uri)?,
            method: raw.request_method,
            params: raw.params_mode,
            response: raw.response_mode,
            user_agent: raw.user_agent.unwrap_or_else(|| "moth".into()),
            timeout,
            ca_file: raw.ca_file,
            cache_ttl: seconds("cache-ttl", raw.cache_ttl, DEFAULT_CACHE_TTL)?,
            auth_cache_ttl: seconds("auth-cache-ttl", raw.auth_cache_ttl, Duration::ZERO)?,
            cache_size: raw.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            check_receive: raw.check_receive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqtt_and_moth_spellings_and_their_defaults() {
        let o =
            Options::parse(r#"{"host": "auth.local", "port": 8080, "user_uri": "/user", "acl_uri": "/acl"}"#).unwrap();
        assert_eq!(o.base, "http://auth.local:8080");
        assert_eq!((o.user_uri.as_deref(), o.topic_uri.as_deref()), (Some("/user"), Some("/acl")));
        assert_eq!((o.method, o.params, o.response), (Method::Get, Params::Json, Response::Json));
        assert_eq!((o.timeout, o.cache_ttl, o.auth_cache_ttl), (DEFAULT_TIMEOUT, DEFAULT_CACHE_TTL, Duration::ZERO));
        let o = Options::parse(
            r#"{"host": "h", "port": 1, "with-tls": true, "topic-uri": "/t", "request-method": "post",
                "params-mode": "form", "response-mode": "status", "cache-ttl": 0}"#,
        )
        .unwrap();
        assert_eq!(o.base, "https://h:1");
        assert_eq!(
            (o.method, o.params, o.response, o.cache_ttl),
            (Method::Post, Params::Form, Response::Status, Duration::ZERO)
        );
    }

    #[test]
    fn options_that_cannot_work_stop_the_start() {
        for (json, needle) in [
            (r#"{"host": "h", "port": 1}"#, "nothing to ask"),
            (r#"{"host": "h", "port": 1, "user_uri": "user"}"#, "starting with `/`"),
            (r#"{"host": "h", "port": 1, "user_uri": "/u", "password_hash": "md5"}"#, "unknown field"),
            (r#"{"host": "h", "port": 1, "user_uri": "/u", "timeout": 0}"#, "above 0"),
            (r#"{"host": "h", "port": 1, "user_uri": "/u", "response_mode": "xml"}"#, "unknown variant"),
            (r#"{"host": "http://h", "port": 1, "user_uri": "/u"}"#, "not a host"),
        ] {
            let e = Options::parse(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
