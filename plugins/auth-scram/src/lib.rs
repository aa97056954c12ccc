//! `scram`: a plugin library (loaded from `plugins-dir`) that runs the
//! MQTT 5 enhanced authentication method `SCRAM-SHA-256` (RFC 5802, RFC
//! 7677): the client proves it knows its password without sending it, and
//! the broker proves it knows the user's credentials (CONNACK carries the
//! server's signature). Re-authentication (AUTH 0x19) runs the same
//! exchange. Credentials are PostgreSQL's (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`;
//! `moth passwd -H scram-sha-256` writes them, and a PostgreSQL
//! `pg_authid.rolpassword` can be copied as it is):
//!
//! ```yaml
//! auth:
//!   plugins: [scram]
//!   allow-anonymous: false
//! plugins-dir: /usr/lib/moth/plugins
//! plugins-config:
//!   scram:
//!     credentials-file: /etc/moth/scram   # user:SCRAM-SHA-256$... lines, as moth passwd writes them
//!     users:                              # and/or inline
//!       alice: "SCRAM-SHA-256$4096:c2FsdA==$...:..."
//!     plain-passwords: true               # also check CONNECT passwords against them (default)
//! ```
//!
//! Answers:
//! - a CONNECT with method `SCRAM-SHA-256`: the exchange. A right proof
//!   admits the client as the SCRAM user (the broker uses that user name for
//!   topic checks and the session), a wrong one gets 0x86 "bad user name or
//!   password". An unknown user is given a made-up salt and refused at the
//!   proof in the same way, so the exchange does not tell who exists. A
//!   CONNECT user name other than the SCRAM user is refused (0x87);
//! - another method: not mine (the next plugin, or 0x8C);
//! - a CONNECT without a method (any MQTT version) with a user name and
//!   password, when `plain-passwords` is on: the password is checked against
//!   the user's credentials (a PBKDF2 per login, as costly as the exchange);
//!   right: allow, wrong: bad credentials, unknown user or no password: no
//!   opinion.

mod credentials;
mod scram;

use std::collections::BTreeMap;
use std::path::PathBuf;

use moth_plugin_api::enhanced_auth::encode_base64;
use moth_plugin_api::serde_json;
use moth_plugin_api::{AuthReply, AuthRequest, AuthStep, Capabilities, Decision, Plugin, export_plugin, log};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use credentials::Credentials;

/// The one method this plugin runs.
const METHOD: &str = "SCRAM-SHA-256";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    #[serde(default)]
    users: BTreeMap<String, String>,
    credentials_file: Option<PathBuf>,
    #[serde(default = "yes")]
    plain_passwords: bool,
}

fn yes() -> bool {
    true
}

struct Scram {
    users: BTreeMap<String, Credentials>,
    plain_passwords: bool,
    /// Keys the made-up salts of unknown users: the same user gets the same
    /// salt on every try (a changing one would tell it is made up), and
    /// nobody can compute it without this secret.
    mock_secret: [u8; 32],
}

impl Scram {
    fn from_options(json: &str) -> Result<Scram, String> {
        let options: Options = serde_json::from_str(json).map_err(|e| format!("plugins-config.scram: {e}"))?;
        let mut users = BTreeMap::new();
        if let Some(path) = &options.credentials_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("plugins-config.scram.credentials-file: {}: {e}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let parsed = line
                    .split_once(':')
                    .ok_or("no `:`".to_string())
                    .and_then(|(user, entry)| Credentials::parse(entry).map(|c| (user.to_string(), c)));
                match parsed {
                    Ok((user, c)) => {
                        users.insert(user, c);
                    }
                    // Like auth_file: that user cannot log in, the others can.
                    Err(e) => log::warn(&format!("{}:{}: skipped: {e}", path.display(), n + 1)),
                }
            }
        }
        for (user, entry) in &options.users {
            let c = Credentials::parse(entry).map_err(|e| format!("plugins-config.scram.users.{user}: {e}"))?;
            users.insert(user.clone(), c);
        }
        let mut mock_secret = [0u8; 32];
        getrandom::fill(&mut mock_secret).map_err(|e| format!("no random bytes from the system: {e}"))?;
        log::info(&format!("{} SCRAM-SHA-256 users", users.len()));
        Ok(Scram { users, plain_passwords: options.plain_passwords, mock_secret })
    }

    /// The user's credentials, or made-up ones that no proof matches.
    fn credentials(&self, user: &str) -> Credentials {
        self.users.get(user).cloned().unwrap_or_else(|| Credentials {
            iterations: credentials::MIN_ITERATIONS,
            salt: credentials::hmac(&self.mock_secret, user.as_bytes())[..16].to_vec(),
            stored_key: credentials::hmac(&self.mock_secret, b"no stored key"),
            server_key: [0; 32],
        })
    }

    fn first(&self, step: &AuthStep) -> AuthReply {
        let Some(data) = &step.data else {
            return AuthReply::Deny("no client-first-message in the authentication data".into());
        };
        let mut nonce = [0u8; 18];
        if let Err(e) = getrandom::fill(&mut nonce) {
            return AuthReply::Deny(format!("no random bytes for a nonce: {e}"));
        }
        match scram::client_first(data, &encode_base64(&nonce), |user| self.credentials(user)) {
            Err(e) => AuthReply::Deny(e),
            Ok((_, pending, _)) if step.username.as_deref().is_some_and(|u| u != pending.user) => {
                AuthReply::Deny(format!("the SCRAM user `{}` is not the connection's user name", pending.user))
            }
            Ok((server_first, pending, _)) => match serde_json::to_string(&pending) {
                Ok(state) => AuthReply::Continue { data: server_first.into_bytes(), state },
                Err(e) => AuthReply::Deny(format!("cannot keep the exchange's state: {e}")),
            },
        }
    }

    fn last(&self, step: &AuthStep, state: &str) -> AuthReply {
        let pending: scram::Pending = match serde_json::from_str(state) {
            Ok(p) => p,
            Err(e) => return AuthReply::Deny(format!("the exchange's state is not this plugin's: {e}")),
        };
        if step.step != 2 {
            return AuthReply::Deny("SCRAM takes two steps".into());
        }
        let Some(data) = &step.data else {
            return AuthReply::Deny("no client-final-message in the authentication data".into());
        };
        if !self.users.contains_key(&pending.user) {
            return AuthReply::BadCredentials(format!("unknown user `{}`", pending.user));
        }
        match scram::client_final(data, &pending, &self.credentials(&pending.user)) {
            Ok(server_final) => {
                AuthReply::Success { data: Some(server_final.into_bytes()), username: Some(pending.user) }
            }
            Err(e) if e == "invalid proof" => AuthReply::BadCredentials(format!("user `{}`: {e}", pending.user)),
            Err(e) => AuthReply::Deny(e),
        }
    }
}

impl Plugin for Scram {
    fn capabilities(&self) -> Capabilities {
        // Both calls are PBKDF2 and nothing else.
        Capabilities::AUTHENTICATE | Capabilities::ENHANCED_AUTHENTICATE | Capabilities::CPU_BOUND_AUTHENTICATE
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let (Some(user), Some(password)) = (request.username(), request.password()) else {
            return Decision::ignore();
        };
        let Some(stored) = self.users.get(user).filter(|_| self.plain_passwords) else {
            return Decision::ignore();
        };
        let derived = Credentials::derive(password, &stored.salt, stored.iterations);
        if bool::from(derived.stored_key.ct_eq(&stored.stored_key)) {
            Decision::allow()
        } else {
            Decision::bad_credentials("wrong password")
        }
    }

    fn enhanced_auth(&self, step: &AuthStep) -> AuthReply {
        if step.method != METHOD {
            return AuthReply::NotMine;
        }
        match step.state.as_deref() {
            None => self.first(step),
            Some(state) => self.last(step, state),
        }
    }
}

export_plugin! {
    name: "scram",
    version: env!("CARGO_PKG_VERSION"),
    description: "MQTT 5 enhanced authentication with SCRAM-SHA-256; credentials in PostgreSQL's format",
    constructor: Scram::from_options,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin() -> Scram {
        let alice = Credentials::derive(b"wonderland", b"alice-salt", 4096).to_text();
        Scram::from_options(&format!(r#"{{"users": {{"alice": "{alice}"}}}}"#)).unwrap()
    }

    fn step(data: &[u8], state: Option<String>, n: u32) -> AuthStep {
        AuthStep { method: METHOD.into(), data: Some(data.to_vec()), state, step: n, ..AuthStep::default() }
    }

    #[test]
    fn an_unknown_user_gets_a_steady_made_up_salt_and_is_refused_at_the_proof() {
        let p = plugin();
        let salt_of = |user: &str| match p.enhanced_auth(&step(format!("n,,n={user},r=abc").as_bytes(), None, 1)) {
            AuthReply::Continue { data, .. } => String::from_utf8(data).unwrap().split(',').nth(1).unwrap().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(salt_of("mallory"), salt_of("mallory"), "the same on every try");
        assert_ne!(salt_of("mallory"), salt_of("eve"));
        let AuthReply::Continue { state, .. } = p.enhanced_auth(&step(b"n,,n=mallory,r=abc", None, 1)) else {
            panic!()
        };
        let proof = b"c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert!(matches!(p.enhanced_auth(&step(proof, Some(state), 2)), AuthReply::BadCredentials(_)));
    }

    #[test]
    fn other_methods_are_not_mine_and_plain_passwords_are_checked() {
        let p = plugin();
        let mut s = step(b"", None, 1);
        s.method = "OAUTHBEARER".into();
        assert_eq!(p.enhanced_auth(&s), AuthReply::NotMine);
        let ok = AuthRequest::new_for_test("c", Some("alice"), Some(b"wonderland"));
        assert_eq!(p.authenticate(&ok), Decision::allow());
        let wrong = AuthRequest::new_for_test("c", Some("alice"), Some(b"looking-glass"));
        assert!(matches!(p.authenticate(&wrong).kind, k if k == moth_plugin_api::DecisionKind::BAD_CREDENTIALS));
        let unknown = AuthRequest::new_for_test("c", Some("bob"), Some(b"x"));
        assert_eq!(p.authenticate(&unknown), Decision::ignore());
    }

    #[test]
    fn a_connect_user_name_other_than_the_scram_user_is_refused() {
        let mut s = step(b"n,,n=alice,r=abc", None, 1);
        s.username = Some("admin".into());
        assert!(matches!(plugin().enhanced_auth(&s), AuthReply::Deny(e) if e.contains("not the connection's")));
    }
}
