//! `auth_file`'s moth-only options, from `plugins-config.auth_file`:
//!
//! ```yaml
//! plugins-config:
//!   auth_file:
//!     unknown-users: deny       # deny (the default, hbmqtt's and amqtt's rule) or ignore
//!     max-password-bytes: 1024  # longer passwords are refused before any hash is computed
//! ```
//!
//! - `unknown-users`: what a user name that is not in the file gets.
//!   hbmqtt's and amqtt's file plugins answer *False* for it, and any False
//!   refuses the client, so `deny` (CONNACK 4, as for a wrong password) is
//!   the default: a configuration written for them keeps their admission
//!   rule. `ignore` leaves such a user to the rest of the chain (a second
//!   password source, say), which only this moth key asks for.
//! - `max-password-bytes`: the longest password that is hashed. Unix
//!   sha-crypt (`$6$`, `$5$`) costs grow with the *square* of the password's
//!   length (a 64 KiB password costs seconds of CPU), so a longer password is
//!   refused at the cost of a length comparison, whoever the user is. 1 KiB
//!   by default, far above any human password; 1 to 65535 (MQTT's limit).

use moth_plugin_api::serde_json;
use serde::Deserialize;

/// Default of `max-password-bytes`.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;

/// What a user name missing from the file gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownUsers {
    /// Refused with BAD_CREDENTIALS (CONNACK 4), as hbmqtt and amqtt do.
    #[default]
    Deny,
    /// No opinion: the rest of the chain decides.
    Ignore,
}

/// The options, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Options {
    /// What a user name that is not in the file gets (`unknown-users`).
    pub unknown_users: UnknownUsers,
    /// Longer passwords are refused before hashing (`max-password-bytes`).
    pub max_password_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { unknown_users: UnknownUsers::Deny, max_password_bytes: DEFAULT_MAX_PASSWORD_BYTES }
    }
}

impl Options {
    /// Reads `plugins-config.auth_file` (JSON text; `{}` or `null` = the
    /// defaults). A mistake is a one-line error: an unknown key here may be
    /// a misspelt security setting, so it stops the start.
    pub fn from_json(json: &str) -> Result<Options, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("plugins-config.auth_file: {e}"))?;
        if value.is_null() {
            return Ok(Options::default());
        }
        let options: Options = serde_json::from_value(value).map_err(|e| format!("plugins-config.auth_file: {e}"))?;
        if !(1..=65535).contains(&options.max_password_bytes) {
            return Err(format!(
                "plugins-config.auth_file.max-password-bytes: expected 1 to 65535, found {}",
                options.max_password_bytes
            ));
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_both_rules() {
        assert_eq!(Options::from_json("{}").unwrap(), Options::default());
        assert_eq!(Options::from_json("null").unwrap(), Options::default());
        let o = Options::from_json(r#"{"unknown-users": "ignore", "max-password-bytes": 64}"#).unwrap();
        assert_eq!(o, Options { unknown_users: UnknownUsers::Ignore, max_password_bytes: 64 });
    }

    #[test]
    fn mistakes_are_errors() {
        let e = Options::from_json(r#"{"unknown-user": "ignore"}"#).unwrap_err();
        assert!(e.contains("unknown field `unknown-user`"), "{e}");
        let e = Options::from_json(r#"{"unknown-users": "allow"}"#).unwrap_err();
        assert!(e.contains("unknown variant `allow`"), "{e}");
        let e = Options::from_json(r#"{"max-password-bytes": 0}"#).unwrap_err();
        assert!(e.contains("expected 1 to 65535"), "{e}");
    }
}
