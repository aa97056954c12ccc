//! `auth_http`: a plugin library (loaded from `plugins-dir`) that asks an
//! HTTP service who may connect and which topics each client may use, with
//! the options and the wire format of amqtt's `amqtt.contrib.http`
//! (`HttpAuthTopicPlugin`; EMQX's and mosquitto-go-auth's HTTP backends
//! work the same way):
//!
//! ```yaml
//! auth:
//!   plugins: [auth_http]
//!   allow-anonymous: false
//! topic-check:
//!   enabled: true
//!   plugins: [auth_http]
//! plugins-config:
//!   auth_http:
//!     host: auth.internal
//!     port: 8080
//!     with_tls: false          # https when true (ca-file: a PEM CA to trust instead of the web's roots)
//!     user_uri: /mqtt/user     # CONNECT: {username, password, client_id}
//!     topic_uri: /mqtt/acl     # (also acl_uri) topic use: {username, client_id, topic, acc}
//!     superuser_uri: /mqtt/su  # optional: {username}; a superuser's topics are not asked
//!     request_method: post     # get (default: form fields go in the query), post, put
//!     params_mode: json        # json (default) or form
//!     response_mode: json      # json (default), status or text
//!     timeout: 5               # seconds per request, connecting included
//!     cache-ttl: 30            # moth: seconds a topic answer is reused (0: never)
//!     auth-cache-ttl: 0        # moth: seconds an authentication answer is reused (default: never)
//!     check-receive: false     # moth: also ask (acc 1) before each delivery
//! ```
//!
//! `acc` is 1 to receive, 2 to publish, 4 to subscribe (amqtt's codes). The
//! answers, per `response_mode`:
//! - `status`: 2xx allows, 4xx refuses, any other status has no opinion;
//! - `json`: a 2xx with `{"ok": true}` allows, `{"ok": null}` has no
//!   opinion, `{"ok": false}`, any other body or status refuses;
//! - `text`: a 2xx whose body is `ok` (any case) allows; anything else refuses.
//!
//! A refused CONNECT gets CONNACK 4 (bad user name or password). A service
//! that cannot be reached, times out or answers what cannot be read is an
//! error, which the broker counts and treats as a refusal: fail closed. The
//! requests go over one keep-alive connection pool. An authentication
//! answer cached (`auth-cache-ttl`) is keyed by an HMAC of the password
//! under a key made at start, never the password itself.

mod cache;
mod options;

use hmac::{Hmac, KeyInit, Mac};
use moth_plugin_api::serde_json::{self, Value, json};
use moth_plugin_api::{AuthRequest, Capabilities, Decision, Plugin, TopicAction, TopicRequest, export_plugin, log};
use sha2::Sha256;

use cache::Cache;
use options::{Method, Options, Params, Response};

/// What the service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allow,
    Refuse,
    NoOpinion,
}

/// The largest answer body read; a longer one is an error.
const MAX_BODY: u64 = 64 * 1024;

struct AuthHttp {
    options: Options,
    agent: ureq::Agent,
    topics: Cache<(u8, Option<String>, String, String), Answer>,
    superusers: Cache<String, Answer>,
    logins: Cache<(Option<String>, String, [u8; 32]), Answer>,
    /// Keys the HMAC of cached passwords.
    secret: [u8; 32],
}

impl AuthHttp {
    fn from_options(json: &str) -> Result<AuthHttp, String> {
        let options = Options::parse(json)?;
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .user_agent(options.user_agent.as_str())
            .max_redirects(0);
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("plugins-config.auth_http.ca-file: {}: {e}", path.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("plugins-config.auth_http.ca-file: {}: no certificate in it", path.display()));
            }
            let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certs)).build();
            config = config.tls_config(tls);
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no random bytes from the system: {e}"))?;
        log::info(&format!("asking {} (timeout {} ms)", options.base, options.timeout.as_millis()));
        Ok(AuthHttp {
            agent: config.build().new_agent(),
            topics: Cache::new(options.cache_ttl, options.cache_size),
            superusers: Cache::new(options.cache_ttl, options.cache_size),
            logins: Cache::new(options.auth_cache_ttl, options.cache_size),
            secret,
            options,
        })
    }

    /// One request to `uri` with `fields`; its answer per `response_mode`.
    fn ask(&self, uri: &str, fields: &[(&str, Value)]) -> Result<Answer, String> {
        let url = format!("{}{uri}", self.options.base);
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let response = match (self.options.method, self.options.params) {
            (Method::Get, Params::Form) => {
                let mut request = self.agent.get(&url);
                for (k, v) in fields {
                    request = request.query(*k, text(v));
                }
                request.call()
            }
            (method, params) => {
                let body = match params {
                    Params::Json => {
                        Value::Object(fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()).to_string()
                    }
                    Params::Form => form(fields.iter().map(|(k, v)| (*k, text(v)))),
                };
                let kind =
                    if params == Params::Json { "application/json" } else { "application/x-www-form-urlencoded" };
                match method {
                    Method::Get => self.agent.get(&url).header("Content-Type", kind).force_send_body().send(&body),
                    Method::Post => self.agent.post(&url).header("Content-Type", kind).send(&body),
                    Method::Put => self.agent.put(&url).header("Content-Type", kind).send(&body),
                }
            }
        };
        let mut response = response.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let ok = (200..300).contains(&status);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| format!("{url}: answer {status}: {e}"))?;
        Ok(match self.options.response {
            Response::Status if ok => Answer::Allow,
            Response::Status if (400..500).contains(&status) => Answer::Refuse,
            Response::Status => Answer::NoOpinion,
            Response::Text => {
                if ok && body.trim().eq_ignore_ascii_case("ok") {
                    Answer::Allow
                } else {
                    Answer::Refuse
                }
            }
            Response::Json if !ok => Answer::Refuse,
            Response::Json => json_answer(&body),
        })
    }

    fn password_mac(&self, password: &[u8]) -> [u8; 32] {
        match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(password);
                mac.finalize().into_bytes().into()
            }
            // Cannot happen (HMAC takes any key); the request is then made.
            Err(_) => [0; 32],
        }
    }

    fn is_superuser(&self, uri: &str, username: &str) -> Result<bool, String> {
        let a = self.superusers.get_or(|| username.to_string(), || self.ask(uri, &[("username", json!(username))]))?;
        Ok(a == Answer::Allow)
    }
}

/// The plugin's decision on the service's answer; `refused` says how a
/// refusal is put (bad credentials for a login, a denial for a topic).
fn decide(answer: Result<Answer, String>, refused: Decision) -> Decision {
    match answer {
        Ok(Answer::Allow) => Decision::allow(),
        Ok(Answer::Refuse) => refused,
        Ok(Answer::NoOpinion) => Decision::ignore(),
        Err(e) => Decision::deny(format!("HTTP service: {e}")),
    }
}

/// amqtt's reading of a JSON answer: `ok` (also `Ok`, `OK`) true or false,
/// null for no opinion; anything else refuses.
fn json_answer(body: &str) -> Answer {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else { return Answer::Refuse };
    for key in ["OK", "Ok", "ok"] {
        match map.get(key) {
            Some(Value::Null) => return Answer::NoOpinion,
            Some(Value::Bool(true)) => return Answer::Allow,
            Some(Value::Bool(false)) => return Answer::Refuse,
            _ => {}
        }
    }
    Answer::Refuse
}

/// `application/x-www-form-urlencoded`.
fn form<'a>(fields: impl Iterator<Item = (&'a str, String)>) -> String {
    fn encode(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(k, &mut out);
        out.push('=');
        encode(&v, &mut out);
    }
    out
}

impl Plugin for AuthHttp {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities(0);
        if self.options.user_uri.is_some() {
            caps = caps | Capabilities::AUTHENTICATE;
        }
        if self.options.topic_uri.is_some() {
            caps = caps | Capabilities::CHECK_TOPIC;
            if self.options.check_receive {
                caps = caps | Capabilities::CHECK_RECEIVE;
            }
        }
        caps
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let Some(uri) = &self.options.user_uri else { return Decision::ignore() };
        let password = match request.password().map(std::str::from_utf8) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return Decision::deny("the password is not UTF-8 text, which the service cannot be sent"),
        };
        let username = request.username();
        let answer = self.logins.get_or(
            || {
                (
                    username.map(str::to_string),
                    request.client_id().to_string(),
                    self.password_mac(password.unwrap_or("").as_bytes()),
                )
            },
            || {
                let fields = [
                    ("username", json!(username)),
                    ("password", json!(password)),
                    ("client_id", json!(request.client_id())),
                ];
                self.ask(uri, &fields)
            },
        );
        decide(answer, Decision::bad_credentials("refused by the HTTP service"))
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> Decision {
        let Some(uri) = &self.options.topic_uri else { return Decision::ignore() };
        let acc: u8 = match request.action {
            TopicAction::RECEIVE => 1,
            TopicAction::PUBLISH => 2,
            TopicAction::SUBSCRIBE => 4,
            _ => return Decision::ignore(),
        };
        if let (Some(su), Some(user)) = (&self.options.superuser_uri, request.username()) {
            match self.is_superuser(su, user) {
                Ok(true) => return Decision::allow(),
                Ok(false) => {}
                Err(e) => return Decision::deny(format!("HTTP service: {e}")),
            }
        }
        let username = request.username();
        let answer = self.topics.get_or(
            || (acc, username.map(str::to_string), request.client_id().to_string(), request.topic().to_string()),
            || {
                let fields = [
                    ("username", json!(username)),
                    ("client_id", json!(request.client_id())),
                    ("topic", json!(request.topic())),
                    ("acc", json!(acc)),
                ];
                self.ask(uri, &fields)
            },
        );
        decide(answer, Decision::deny("refused by the HTTP service"))
    }
}

export_plugin! {
    name: "auth_http",
    version: env!("CARGO_PKG_VERSION"),
    description: "Authentication and topic checks answered by an HTTP service (amqtt's contrib.http)",
    constructor: AuthHttp::from_options,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_read_as_amqtt_reads_them() {
        assert_eq!(json_answer(r#"{"ok": true}"#), Answer::Allow);
        assert_eq!(json_answer(r#"{"Ok": false, "error": "no"}"#), Answer::Refuse);
        assert_eq!(json_answer(r#"{"OK": null}"#), Answer::NoOpinion);
        for refused in [r#"{"error": "x"}"#, r#"{"ok": "yes"}"#, "[]", "ok", ""] {
            assert_eq!(json_answer(refused), Answer::Refuse, "{refused}");
        }
    }

    #[test]
    fn form_fields_are_percent_encoded() {
        let f = form([("username", "a b".to_string()), ("topic", "s/+/#&x=1".to_string())].into_iter());
        assert_eq!(f, "username=a+b&topic=s%2F%2B%2F%23%26x%3D1");
    }
}
