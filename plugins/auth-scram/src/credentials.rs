//! A user's SCRAM-SHA-256 credentials in PostgreSQL's text form (RFC 5803's
//! fields): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
//! base64 throughout. The password itself is never stored: StoredKey proves
//! a client's proof, ServerKey signs the server's answer.

use hmac::{Hmac, KeyInit, Mac};
use moth_plugin_api::enhanced_auth::decode_base64;
use sha2::{Digest, Sha256};

/// The fewest PBKDF2 iterations accepted in a credential (RFC 7677's
/// minimum); fewer make a stolen file cheap to attack.
pub(crate) const MIN_ITERATIONS: u32 = 4096;
/// The most accepted: a typo of ten digits would make every login a
/// minute of CPU.
pub(crate) const MAX_ITERATIONS: u32 = 10_000_000;

/// One user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) iterations: u32,
    pub(crate) salt: Vec<u8>,
    pub(crate) stored_key: [u8; 32],
    pub(crate) server_key: [u8; 32],
}

impl Credentials {
    /// Reads PostgreSQL's form; the error says what is wrong, never the value.
    pub(crate) fn parse(text: &str) -> Result<Credentials, String> {
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or("does not start with SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$').ok_or("no `$` between the salt and the keys")?;
        let (iterations, salt) = params.split_once(':').ok_or("no `:` between the iterations and the salt")?;
        let (stored, server) = keys.split_once(':').ok_or("no `:` between StoredKey and ServerKey")?;
        let iterations: u32 = iterations.parse().map_err(|_| "the iteration count is not a number")?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!("{iterations} iterations: between {MIN_ITERATIONS} and {MAX_ITERATIONS} are accepted"));
        }
        let salt = decode_base64(salt).map_err(|e| format!("salt: {e}"))?;
        if salt.is_empty() {
            return Err("the salt is empty".into());
        }
        let key = |what: &str, b64: &str| -> Result<[u8; 32], String> {
            let bytes = decode_base64(b64).map_err(|e| format!("{what}: {e}"))?;
            bytes.try_into().map_err(|_| format!("{what} is not 32 bytes"))
        };
        Ok(Credentials {
            iterations,
            salt,
            stored_key: key("StoredKey", stored)?,
            server_key: key("ServerKey", server)?,
        })
    }

    /// Derives the credentials of `password` (RFC 5802 §3): what `moth
    /// passwd` and PostgreSQL store.
    pub(crate) fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Credentials {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Credentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// PostgreSQL's form of these credentials.
    #[cfg(test)]
    pub(crate) fn to_text(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            moth_plugin_api::enhanced_auth::encode_base64(&self.salt),
            moth_plugin_api::enhanced_auth::encode_base64(&self.stored_key),
            moth_plugin_api::enhanced_auth::encode_base64(&self.server_key)
        )
    }
}

/// HMAC-SHA-256. Any key length is valid for HMAC, so the key error cannot
/// happen; were it to, the all-zero result would match no proof (fail closed).
pub(crate) fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_form_round_trips_and_matches_rfc_7677() {
        // RFC 7677 §3: user "user", password "pencil", salt, 4096 iterations.
        let salt = decode_base64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = Credentials::derive(b"pencil", &salt, 4096);
        assert_eq!(Credentials::parse(&c.to_text()).unwrap(), c);
        // ServerSignature of the RFC's exchange, from these keys (scram.rs
        // checks the whole exchange).
        assert!(c.to_text().starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    }

    #[test]
    fn bad_credentials_say_what_is_wrong() {
        let good = Credentials::derive(b"pw", b"salt", 4096).to_text();
        for (bad, needle) in [
            ("SCRAM-SHA-1$4096:c2FsdA==$a:b", "does not start"),
            (&good.replace("4096", "10"), "iterations"),
            (&good.replace("4096", "many"), "not a number"),
            ("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA", "not 32 bytes"),
            ("SCRAM-SHA-256$4096:$AAAA:AAAA", "salt is empty"),
            ("SCRAM-SHA-256$4096:c2FsdA==", "no `$`"),
        ] {
            let e = Credentials::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
