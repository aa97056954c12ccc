//! Password files as `moth passwd` edits them, pure: text in, text out.
//!
//! The file is one `user:hash` per line; `#` comments and blank lines are
//! kept as they are, so an operator's notes survive every edit. moth writes
//! argon2id PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), the
//! format amqtt 0.12 and Mosquitto 2.1 write too, or, for a file shared with
//! Mosquitto 2.0, Mosquitto's `$7$` (PBKDF2-HMAC-SHA512). Reading the file to
//! authenticate is the `auth_file` plugin's job, not this module's.
//!
//! The I/O (prompting, atomic replacement of the file) lives in
//! `passwd_cmd.rs` and `file_replace.rs`; everything here can be tested
//! without a disk or a terminal.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use thiserror::Error;

/// Argon2id cost parameters. The default is the current OWASP password
/// storage guidance (m=19456 KiB, t=2, p=1), which is also what the
/// `argon2` crate picks: about 40 ms and 19 MiB per check on the project
/// machine, on every CONNECT, so raising it has a price at reconnect storms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams { memory_kib: 19456, iterations: 2, parallelism: 1 }
    }
}

/// PBKDF2 iterations of a `$7$` hash by default: the OWASP guidance for
/// PBKDF2-HMAC-SHA512, and Mosquitto 2.1's default (2.0 wrote 101, which
/// costs an attacker almost nothing). Every Mosquitto 2.x reads any count.
pub(crate) const DEFAULT_PBKDF2_ITERATIONS: u32 = 210_000;

/// The kind of hash written (`moth passwd -H`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// argon2id PHC string (`-H argon2id`, the default).
    Argon2id(HashParams),
    /// Mosquitto's `$7$`, PBKDF2-HMAC-SHA512 (`-H sha512-pbkdf2`), so that
    /// one file serves moth and Mosquitto 2.0 (which has no argon2).
    MosquittoPbkdf2 { iterations: u32 },
    /// SCRAM-SHA-256 credentials in PostgreSQL's form (`-H scram-sha-256`),
    /// for the `scram` plugin's MQTT 5 enhanced authentication.
    ScramSha256 { iterations: u32 },
}

/// PBKDF2 iterations of SCRAM-SHA-256 credentials by default: MongoDB's.
/// Every SCRAM client computes them too, on every login, so a device's CPU
/// sets the bound (RFC 7677 asks for at least 4096, PostgreSQL's default).
pub(crate) const DEFAULT_SCRAM_ITERATIONS: u32 = 15_000;

impl Scheme {
    /// Hashes `password` with a fresh random salt.
    pub(crate) fn hash(self, password: &str) -> Result<String, PasswdError> {
        match self {
            Scheme::Argon2id(params) => hash_password(password, params),
            Scheme::MosquittoPbkdf2 { iterations } | Scheme::ScramSha256 { iterations } => {
                if password.is_empty() {
                    return Err(PasswdError::EmptyPassword);
                }
                let scram = matches!(self, Scheme::ScramSha256 { .. });
                // The scram plugin reads no fewer (RFC 7677) and no more.
                let allowed = if scram { 4096..=10_000_000 } else { 1..=u32::MAX };
                if !allowed.contains(&iterations) {
                    return Err(PasswdError::BadIterations(iterations));
                }
                let hashed = if scram {
                    moth_auth_file::hash::scram_sha256(password.as_bytes(), iterations)
                } else {
                    moth_auth_file::hash::mosquitto_pbkdf2(password.as_bytes(), iterations)
                };
                hashed.ok_or_else(|| PasswdError::Hash("the system gave no random bytes for a salt".into()))
            }
        }
    }
}

/// What can go wrong editing a password file; each message is one line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswdError {
    #[error("invalid username `{0}`: it must be non-empty and contain no `:`, line break or leading `#`")]
    BadUser(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error(
        "invalid argon2 parameters (memory {memory_kib} KiB, iterations {iterations}, parallelism {parallelism}): {reason}"
    )]
    BadParams { memory_kib: u32, iterations: u32, parallelism: u32, reason: String },
    #[error("invalid PBKDF2 iteration count {0}: at least 1 (scram-sha-256: 4096 to 10000000)")]
    BadIterations(u32),
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error("user `{0}` is not in the file")]
    NoSuchUser(String),
    #[error(
        "line {line}: user `{user}` already has a {scheme} hash; -U converts plain-text passwords only, so nothing was changed"
    )]
    AlreadyHashed { line: usize, user: String, scheme: String },
    #[error("line {line}: {reason}; nothing was changed")]
    Malformed { line: usize, reason: String },
}

/// Checks a username can be stored: the file format splits on the first
/// `:` and on line ends, and a line starting with `#` is a comment.
pub(crate) fn validate_user(user: &str) -> Result<(), PasswdError> {
    let bad = user.is_empty() || user.contains([':', '\n', '\r']) || user.starts_with('#');
    if bad { Err(PasswdError::BadUser(user.to_string())) } else { Ok(()) }
}

/// Hashes `password` to an argon2id PHC string with a fresh random salt.
pub(crate) fn hash_password(password: &str, params: HashParams) -> Result<String, PasswdError> {
    if password.is_empty() {
        return Err(PasswdError::EmptyPassword);
    }
    let p = Params::new(params.memory_kib, params.iterations, params.parallelism, None).map_err(|e| {
        PasswdError::BadParams {
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            reason: e.to_string(),
        }
    })?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswdError::Hash(e.to_string()))
}

/// The user of an entry line, `None` for a comment or a blank line.
fn entry_user(line: &str) -> Option<&str> {
    let trimmed = line.trim_end_matches('\r');
    if trimmed.trim().is_empty() || trimmed.trim_start().starts_with('#') {
        return None;
    }
    Some(trimmed.split_once(':').map_or(trimmed, |(u, _)| u))
}

/// Joins lines back into file text, always ending with a line break.
fn join(lines: &[String]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Sets `user`'s hash: replaces the user's line in place (and drops any
/// later duplicate, which would otherwise be ambiguous), or appends one.
pub(crate) fn set_user(text: &str, user: &str, hash: &str) -> String {
    let entry = format!("{user}:{hash}");
    let mut lines: Vec<String> = Vec::new();
    let mut found = false;
    for line in text.lines() {
        if entry_user(line) == Some(user) {
            if !found {
                lines.push(entry.clone());
                found = true;
            }
            continue;
        }
        lines.push(line.to_string());
    }
    if !found {
        lines.push(entry);
    }
    join(&lines)
}

/// Removes every line of `user`; an error when there is none.
pub(crate) fn delete_user(text: &str, user: &str) -> Result<String, PasswdError> {
    let lines: Vec<String> = text.lines().filter(|l| entry_user(l) != Some(user)).map(str::to_string).collect();
    if lines.len() == text.lines().count() {
        return Err(PasswdError::NoSuchUser(user.to_string()));
    }
    Ok(join(&lines))
}

/// The scheme prefix of a value that is already a password hash, in any
/// format a moth, hbmqtt, amqtt or Mosquitto file may hold.
///
/// This is how `-U` avoids Mosquitto's trap: `mosquitto_passwd -U` run on
/// a hashed file hashes the hashes, and every user is locked out. The cost
/// is that a plain-text password that itself starts like a hash (`$6$...`)
/// cannot be upgraded; the error names its line so it can be set by hand.
pub(crate) fn hash_scheme(value: &str) -> Option<&'static str> {
    const SCHEMES: [&str; 12] = [
        "$argon2id$",
        "$argon2i$",
        "$argon2d$",
        "$5$",
        "$6$",
        "$7$",
        "$2a$",
        "$2b$",
        "$2y$",
        "$pbkdf2",
        "$scrypt$",
        "SCRAM-SHA-256$",
    ];
    SCHEMES.into_iter().find(|s| value.starts_with(s))
}

/// Turns a plain-text `user:password` file into hashes, with `hash`
/// producing each one. All lines are checked before any is hashed: a file
/// with a hashed, malformed or empty entry is refused whole, unchanged.
pub(crate) fn upgrade(
    text: &str,
    mut hash: impl FnMut(&str) -> Result<String, PasswdError>,
) -> Result<String, PasswdError> {
    let mut plan: Vec<(String, Option<String>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some(_) = entry_user(line) else {
            plan.push((line.to_string(), None));
            continue;
        };
        let trimmed = line.trim_end_matches('\r');
        let Some((user, password)) = trimmed.split_once(':') else {
            return Err(PasswdError::Malformed { line: n, reason: "no `:` between user and password".into() });
        };
        validate_user(user).map_err(|e| PasswdError::Malformed { line: n, reason: e.to_string() })?;
        if let Some(scheme) = hash_scheme(password) {
            return Err(PasswdError::AlreadyHashed {
                line: n,
                user: user.to_string(),
                scheme: scheme.trim_end_matches('$').to_string() + "$",
            });
        }
        if password.is_empty() {
            return Err(PasswdError::Malformed { line: n, reason: format!("user `{user}` has an empty password") });
        }
        plan.push((user.to_string(), Some(password.to_string())));
    }
    let mut lines = Vec::with_capacity(plan.len());
    for (first, password) in plan {
        match password {
            None => lines.push(first),
            Some(pw) => lines.push(format!("{first}:{}", hash(&pw)?)),
        }
    }
    Ok(join(&lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    const CHEAP: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn verifies(hash: &str, password: &str) -> bool {
        let parsed = PasswordHash::new(hash).unwrap();
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    }

    #[test]
    fn hashes_are_argon2id_with_the_given_parameters_and_a_fresh_salt() {
        let a = hash_password("secret", CHEAP).unwrap();
        let b = hash_password("secret", CHEAP).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verifies(&a, "secret"));
        assert!(!verifies(&a, "Secret"));
        assert_eq!(hash_password("", CHEAP), Err(PasswdError::EmptyPassword));
        let bad = HashParams { memory_kib: 1, ..CHEAP };
        assert!(matches!(hash_password("x", bad), Err(PasswdError::BadParams { .. })));
    }

    /// `-H sha512-pbkdf2`: Mosquitto's `$7$` with a fresh 12-byte salt, read
    /// back by the auth_file plugin's own verifier.
    #[test]
    fn mosquitto_pbkdf2_hashes_verify_with_auth_file() {
        use moth_auth_file::hash::PasswordHash as FileHash;
        use moth_auth_file::memory::BlockPool;
        let scheme = Scheme::MosquittoPbkdf2 { iterations: 1000 };
        let h = scheme.hash("secret").unwrap();
        assert!(h.starts_with("$7$1000$"), "{h}");
        assert_ne!(h, scheme.hash("secret").unwrap(), "each hash has its own salt");
        let parsed = FileHash::parse(&h).unwrap();
        assert_eq!(parsed.scheme(), "mosquitto-pbkdf2-sha512");
        let pool = BlockPool::new(1);
        assert!(parsed.verify(b"secret", &pool) && !parsed.verify(b"secreT", &pool));
        assert_eq!(scheme.hash(""), Err(PasswdError::EmptyPassword));
        assert_eq!(Scheme::MosquittoPbkdf2 { iterations: 0 }.hash("x"), Err(PasswdError::BadIterations(0)));
        assert!(Scheme::Argon2id(CHEAP).hash("x").unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn default_parameters_follow_owasp() {
        let h = hash_password("x", HashParams::default()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[test]
    fn usernames_that_would_break_the_file_are_refused() {
        for bad in ["", "a:b", "a\nb", "a\rb", "#alice"] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
        assert!(validate_user("alice@example.org").is_ok());
    }

    #[test]
    fn set_user_replaces_in_place_keeps_comments_and_appends_new_users() {
        let text = "# users\nalice:H1\n\nbob:H2\nalice:H3\n";
        assert_eq!(set_user(text, "alice", "N"), "# users\nalice:N\n\nbob:H2\n");
        assert_eq!(set_user(text, "carol", "N"), "# users\nalice:H1\n\nbob:H2\nalice:H3\ncarol:N\n");
        assert_eq!(set_user("", "carol", "N"), "carol:N\n");
        assert_eq!(set_user("bob:H2", "carol", "N"), "bob:H2\ncarol:N\n", "a missing final newline is added");
        // `#alice` is a comment, not the user `alice`; a prefix is not the user.
        assert_eq!(set_user("#alice:x\nalicex:y\n", "alice", "N"), "#alice:x\nalicex:y\nalice:N\n");
    }

    #[test]
    fn delete_user_removes_the_user_or_says_it_is_not_there() {
        assert_eq!(delete_user("# c\nalice:H1\nbob:H2\n", "alice").unwrap(), "# c\nbob:H2\n");
        assert_eq!(delete_user("bob:H2\n", "alice"), Err(PasswdError::NoSuchUser("alice".into())));
    }

    #[test]
    fn upgrade_hashes_plain_text_and_refuses_hashed_or_broken_files() {
        let out = upgrade("# plain\nalice:wonderland\r\nbob:builder\n", |pw| Ok(format!("H({pw})"))).unwrap();
        assert_eq!(out, "# plain\nalice:H(wonderland)\nbob:H(builder)\n");

        let twice = upgrade(&out.replace("H(", "$argon2id$v=19$"), |_| panic!("nothing may be hashed"));
        assert!(matches!(twice, Err(PasswdError::AlreadyHashed { line: 2, ref user, .. }) if user == "alice"));
        let msg = twice.unwrap_err().to_string();
        assert!(msg.starts_with("line 2: user `alice` already has a $argon2id$ hash"), "{msg}");

        let mosq = "u:$7$101$AAECAwQFBgcICQoL$Xr99\n";
        assert!(matches!(upgrade(mosq, |_| Ok(String::new())), Err(PasswdError::AlreadyHashed { line: 1, .. })));
        let e = upgrade("alice:ok\nbob\n", |_| Ok(String::new())).unwrap_err();
        assert_eq!(e.to_string(), "line 2: no `:` between user and password; nothing was changed");
        let e = upgrade("alice:\n", |_| Ok(String::new())).unwrap_err();
        assert!(e.to_string().contains("empty password"), "{e}");
    }
}
