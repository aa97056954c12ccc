//! The password-hash formats a password file may hold, parsed once at load
//! and verified on every CONNECT. Public so that `moth passwd` (and tests)
//! can share it as `moth_auth_file::hash`.
//!
//! - `$argon2id$...` PHC strings (amqtt 0.12, Mosquitto 2.1, `moth passwd`);
//! - `$6$` / `$5$` Unix sha-crypt (hbmqtt, passlib, `mkpasswd`), with or
//!   without `rounds=N$`;
//! - Mosquitto `$6$`: one SHA-512 of `password ‖ salt`, standard base64;
//! - Mosquitto `$7$`: PBKDF2-HMAC-SHA512 with its iteration count.
//!
//! The two `$6$` share a prefix and are told apart by the shape of the hash
//! part: 88 characters of standard base64 ending in `=` is Mosquitto's,
//! 86 characters of the crypt alphabet `./0-9A-Za-z` is sha512-crypt.
//! Every comparison of digests is constant-time (`subtle`).

use argon2::{Argon2, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha_crypt::ShaCrypt;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Why a hash string could not be read. One line, without the hash itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("unknown hash scheme {0} (expected $argon2id$, $6$, $5$ or $7$)")]
    UnknownScheme(String),
    #[error("plain-text password (expected a hash such as $argon2id$...; `moth passwd -U` converts a plain-text file)")]
    PlainText,
    #[error("malformed {scheme} hash: {why}")]
    Malformed { scheme: &'static str, why: String },
}

/// One parsed password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// A PHC string, checked to parse, verified by the `argon2` crate.
    Argon2id(String),
    /// `$6$` or `$5$` crypt string, checked for shape, verified by `sha-crypt`.
    ShaCrypt(String),
    /// Mosquitto `$6$`: salt bytes and the 64-byte SHA-512 digest.
    MosquittoSha512 { salt: Vec<u8>, digest: Vec<u8> },
    /// Mosquitto `$7$`: PBKDF2-HMAC-SHA512 iterations, salt and derived key.
    MosquittoPbkdf2 { iterations: u32, salt: Vec<u8>, digest: Vec<u8> },
}

/// Never prints salts or digests: a hash is still a secret worth guarding.
impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}

const CRYPT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn malformed(scheme: &'static str, why: impl Into<String>) -> HashError {
    HashError::Malformed { scheme, why: why.into() }
}

fn is_crypt_text(s: &str) -> bool {
    s.bytes().all(|b| CRYPT_ALPHABET.contains(&b))
}

/// Mosquitto's `$6$` digest part: 88 chars of standard base64 ending in `=`.
fn looks_mosquitto_sha512(hash_part: &str) -> bool {
    hash_part.len() == 88
        && hash_part.ends_with('=')
        && hash_part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

impl PasswordHash {
    /// Reads the hash part of a `user:hash` line.
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        if !text.starts_with('$') {
            return Err(HashError::PlainText);
        }
        let scheme = text.split('$').nth(1).unwrap_or_default();
        match scheme {
            "argon2id" => {
                argon2::password_hash::phc::PasswordHash::new(text)
                    .map_err(|e| malformed("$argon2id$", e.to_string()))?;
                Ok(PasswordHash::Argon2id(text.to_string()))
            }
            "6" | "5" => {
                let fields: Vec<&str> = text[scheme.len() + 2..].split('$').collect();
                if scheme == "6" && fields.len() == 2 && looks_mosquitto_sha512(fields[1]) {
                    return Self::parse_mosquitto_sha512(fields[0], fields[1]);
                }
                Self::check_sha_crypt(scheme, &fields)?;
                Ok(PasswordHash::ShaCrypt(text.to_string()))
            }
            "7" => {
                let fields: Vec<&str> = text[3..].split('$').collect();
                let [iterations, salt, digest] = fields[..] else {
                    return Err(malformed("$7$", "expected $7$<iterations>$<salt>$<hash>"));
                };
                let iterations: u32 = iterations.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    malformed("$7$", format!("iteration count `{iterations}` is not a positive number"))
                })?;
                let salt = STANDARD.decode(salt).map_err(|e| malformed("$7$", format!("salt: {e}")))?;
                let digest = STANDARD.decode(digest).map_err(|e| malformed("$7$", format!("hash: {e}")))?;
                if digest.is_empty() || digest.len() > 64 {
                    return Err(malformed("$7$", format!("hash is {} bytes, expected 1..=64", digest.len())));
                }
                Ok(PasswordHash::MosquittoPbkdf2 { iterations, salt, digest })
            }
            other => Err(HashError::UnknownScheme(format!("${other}$"))),
        }
    }

    fn parse_mosquitto_sha512(salt: &str, digest: &str) -> Result<PasswordHash, HashError> {
        let salt = STANDARD.decode(salt).map_err(|e| malformed("Mosquitto $6$", format!("salt: {e}")))?;
        let digest = STANDARD.decode(digest).map_err(|e| malformed("Mosquitto $6$", format!("hash: {e}")))?;
        if digest.len() != 64 {
            return Err(malformed("Mosquitto $6$", format!("hash is {} bytes, expected 64", digest.len())));
        }
        Ok(PasswordHash::MosquittoSha512 { salt, digest })
    }

    /// `[rounds=N$]salt$hash` after `$6$`/`$5$`, checked so that a broken
    /// line is reported at load rather than failing silently at login.
    fn check_sha_crypt(scheme: &str, fields: &[&str]) -> Result<(), HashError> {
        let name = if scheme == "6" { "$6$ sha512-crypt" } else { "$5$ sha256-crypt" };
        let (rounds, salt, hash) = match fields {
            [salt, hash] => (None, *salt, *hash),
            [rounds, salt, hash] => (Some(*rounds), *salt, *hash),
            _ => return Err(malformed(name, "expected $<id>$[rounds=N$]<salt>$<hash>")),
        };
        if let Some(r) = rounds {
            let n = r.strip_prefix("rounds=").and_then(|n| n.parse::<u32>().ok());
            if !n.is_some_and(|n| (1000..=999_999_999).contains(&n)) {
                return Err(malformed(name, format!("`{r}`: expected rounds=N with N in 1000..=999999999")));
            }
        }
        if salt.len() > 16 || !is_crypt_text(salt) {
            return Err(malformed(name, "salt must be 0..16 characters of ./0-9A-Za-z"));
        }
        let want = if scheme == "6" { 86 } else { 43 };
        if hash.len() != want || !is_crypt_text(hash) {
            return Err(malformed(
                name,
                format!("hash must be {want} characters of ./0-9A-Za-z, found {}", hash.len()),
            ));
        }
        Ok(())
    }

    /// A short name of the scheme, for logs.
    pub fn scheme(&self) -> &'static str {
        match self {
            PasswordHash::Argon2id(_) => "argon2id",
            PasswordHash::ShaCrypt(s) if s.starts_with("$5$") => "sha256-crypt",
            PasswordHash::ShaCrypt(_) => "sha512-crypt",
            PasswordHash::MosquittoSha512 { .. } => "mosquitto-sha512",
            PasswordHash::MosquittoPbkdf2 { .. } => "mosquitto-pbkdf2-sha512",
        }
    }

    /// True when `password` matches. Takes the full cost of the hash whether
    /// or not it matches; digest comparisons are constant-time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Argon2id(phc) => Argon2::default().verify_password(password, phc.as_str()).is_ok(),
            PasswordHash::ShaCrypt(s) => ShaCrypt::default().verify_password(password, s.as_str()).is_ok(),
            PasswordHash::MosquittoSha512 { salt, digest } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                h.finalize().as_slice().ct_eq(digest).into()
            }
            PasswordHash::MosquittoPbkdf2 { iterations, salt, digest } => {
                let mut out = vec![0u8; digest.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                out.ct_eq(digest).into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hbmqtt `samples/passwd`, password `test`.
    const HBMQTT: &str =
        "$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.";
    /// Mosquitto samples (anchors.md 5.2), password `secret`.
    const MOSQ6: &str =
        "$6$AAECAwQFBgcICQoL$JqsxEv/ucyxjA5DKsQ+Y8CDWaQDNQI9FpAkmfwAqWfwZLk/JEGgM0EpylrJHAZKKyFQjJeZ3nFaHjPzOzPPmPw==";
    const MOSQ7: &str = "$7$101$AAECAwQFBgcICQoL$Xr99N9ym9ys8TWxis5ajETJq6EVYzmc6nb8t3pUYnPBbCAbICS4xejTltonXWCtJNBvA+By+TXUqU6qCblO00w==";

    #[test]
    fn published_samples_verify_and_wrong_passwords_do_not() {
        let h = PasswordHash::parse(HBMQTT).unwrap();
        assert_eq!(h.scheme(), "sha512-crypt");
        assert!(h.verify(b"test"));
        assert!(!h.verify(b"Test"));
        let h = PasswordHash::parse(MOSQ6).unwrap();
        assert_eq!(h.scheme(), "mosquitto-sha512");
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"secreT"));
        let h = PasswordHash::parse(MOSQ7).unwrap();
        assert_eq!(h.scheme(), "mosquitto-pbkdf2-sha512");
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b""));
    }

    #[test]
    fn sha_crypt_with_and_without_rounds_and_sha256() {
        let s512 = sha_crypt_string(sha_crypt::Algorithm::Sha512Crypt, 5000, b"test");
        assert!(s512.starts_with("$6$rounds=5000$"), "{s512}");
        let h = PasswordHash::parse(&s512).unwrap();
        assert_eq!(h.scheme(), "sha512-crypt");
        assert!(h.verify(b"test") && !h.verify(b"tesT"));
        let s256 = sha_crypt_string(sha_crypt::Algorithm::Sha256Crypt, 5000, b"test");
        // 5000 is the default: the same hash without the field must verify.
        let bare = s256.replace("rounds=5000$", "");
        for s in [s256, bare] {
            let h = PasswordHash::parse(&s).unwrap();
            assert_eq!(h.scheme(), "sha256-crypt");
            assert!(h.verify(b"test") && !h.verify(b"x"), "{s}");
        }
    }

    /// Builds a crypt string with the `sha-crypt` hasher (the verifier is
    /// checked independently against the published hbmqtt sample above).
    fn sha_crypt_string(alg: sha_crypt::Algorithm, rounds: u32, password: &[u8]) -> String {
        use sha_crypt::PasswordHasher;
        let hasher = ShaCrypt::new(alg, sha_crypt::Params::new(rounds).unwrap());
        hasher.hash_password_with_salt(password, b"saltsalt").unwrap().to_string()
    }

    #[test]
    fn malformed_and_unknown_are_errors() {
        assert_eq!(PasswordHash::parse("secret"), Err(HashError::PlainText));
        assert_eq!(PasswordHash::parse("$2b$10$abc"), Err(HashError::UnknownScheme("$2b$".into())));
        for bad in [
            "$argon2id$nonsense",
            "$6$salt",
            "$6$rounds=10$salt$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.",
            "$6$salt$short",
            "$7$abc$AAEC$AAEC",
            "$7$101$AAEC",
            "$7$101$!!!$AAEC",
        ] {
            assert!(matches!(PasswordHash::parse(bad), Err(HashError::Malformed { .. })), "{bad}");
        }
    }
}
