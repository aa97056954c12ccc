//! `auth_file` (also `auth.file`): users and password hashes from the file
//! named by `auth.password-file`, hbmqtt's format: one `user:hash` per line,
//! `#` starts a comment line, blank lines are skipped.
//!
//! This first version reads **argon2id** hashes only (PHC strings,
//! `$argon2id$v=19$m=...,t=...,p=...$salt$hash`, what amqtt and
//! `argon2` write). A line with another format (`$6$` sha512-crypt from
//! hbmqtt, `$7$` from Mosquitto) is refused at start with its file and line:
//! the password-file work (issue 5) adds them.
//!
//! Answers: a listed user with the right password is allowed; with a wrong or
//! missing password, `BAD_CREDENTIALS` (CONNACK 4); a user not in the file,
//! or a client without user name, gets no opinion (the rest of the chain
//! decides). Verifying an argon2 hash takes tens of milliseconds of CPU: the
//! broker calls it on its blocking pool, never on a network thread.

use std::collections::HashMap;
use std::path::Path;

pub mod hash;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use moth_plugin_api::{AuthRequest, Capabilities, Decision, Plugin};

pub struct PasswordFile {
    /// User name -> PHC hash string (checked to parse when loaded).
    users: HashMap<String, String>,
}

impl PasswordFile {
    pub const NAME: &'static str = "auth_file";

    /// Reads and checks the whole file. Errors are one line starting with
    /// `file:line:`.
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a password file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PasswordFile, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let at = format!("{origin}:{}", i + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{at}: expected `user:hash`"));
            };
            if user.is_empty() {
                return Err(format!("{at}: empty user name"));
            }
            if !hash.starts_with("$argon2id$") {
                let scheme = hash.split('$').nth(1).map_or_else(|| "plain text".to_string(), |s| format!("${s}$"));
                return Err(format!(
                    "{at}: user `{user}`: hash format {scheme} is not supported yet; this version of moth reads argon2id (`$argon2id$...`) only"
                ));
            }
            PasswordHash::new(hash).map_err(|e| format!("{at}: user `{user}`: malformed argon2id hash: {e}"))?;
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("{at}: user `{user}` is listed twice"));
            }
        }
        Ok(PasswordFile { users })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl Plugin for PasswordFile {
    fn capabilities(&self) -> Capabilities {
        Capabilities::AUTHENTICATE
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let Some(user) = request.username() else { return Decision::ignore() };
        let Some(hash) = self.users.get(user) else { return Decision::ignore() };
        let Some(password) = request.password() else {
            return Decision::bad_credentials(format!("no password for `{user}`"));
        };
        match Argon2::default().verify_password(password, hash.as_str()) {
            Ok(()) => Decision::allow(),
            Err(_) => Decision::bad_credentials(format!("wrong password for `{user}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Params, PasswordHasher, Version};
    use moth_plugin_api::std_types::{RNone, ROption, RSlice, RStr};

    /// A cheap argon2id hash, as a test fixture should be.
    fn hash(password: &str) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(password.as_bytes(), b"saltsaltsaltsalt")
            .unwrap()
            .to_string()
    }

    fn req<'a>(user: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
        AuthRequest {
            client_id: RStr::from_str("c"),
            username: ROption::from(user.map(RStr::from_str)),
            password: ROption::from(password.map(RSlice::from_slice)),
            peer_addr: RStr::from_str("127.0.0.1:1"),
            listener: RStr::from_str("default"),
            protocol_level: 4,
            tls: RNone,
            extra: RSlice::EMPTY,
        }
    }

    #[test]
    fn argon2id_users() {
        let text = format!("# users\n\nalice:{}\nbob:{}\n", hash("wonderland"), hash("builder"));
        let f = PasswordFile::parse(&text, "passwd").unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.authenticate(&req(Some("alice"), Some(b"wonderland"))).is_allow());
        let wrong = f.authenticate(&req(Some("alice"), Some(b"builder")));
        assert_eq!(wrong.kind, moth_plugin_api::DecisionKind::BAD_CREDENTIALS);
        assert_eq!(f.authenticate(&req(Some("bob"), None)).kind, moth_plugin_api::DecisionKind::BAD_CREDENTIALS);
        assert!(f.authenticate(&req(Some("carol"), Some(b"x"))).is_ignore());
        assert!(f.authenticate(&req(None, None)).is_ignore());
    }

    #[test]
    fn other_formats_and_broken_lines_name_file_and_line() {
        let sha = "test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.";
        let e = PasswordFile::parse(&format!("# c\n{sha}\n"), "passwd").err().unwrap();
        assert!(e.starts_with("passwd:2: user `test`: hash format $6$ is not supported yet"), "{e}");
        let e = PasswordFile::parse("alice\n", "passwd").err().unwrap();
        assert_eq!(e, "passwd:1: expected `user:hash`");
        let e = PasswordFile::parse("alice:$argon2id$nonsense\n", "passwd").err().unwrap();
        assert!(e.starts_with("passwd:1: user `alice`: malformed argon2id hash"), "{e}");
        let e = PasswordFile::parse("alice:secret\n", "passwd").err().unwrap();
        assert!(e.contains("plain text"), "{e}");
    }
}
