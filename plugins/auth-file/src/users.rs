//! The parsed content of a password file: one `user:hash` per line, `#`
//! comment lines and blank lines skipped. Parsing never fails as a whole: a
//! malformed line, an unknown scheme or a duplicate user becomes a warning
//! naming `file:line`, and that user is *disabled* (kept, so that a login
//! attempt is refused with BAD_CREDENTIALS rather than left to the rest of
//! the chain).

use std::collections::HashMap;

use crate::hash::PasswordHash;
use crate::memory::BlockPool;

/// Users and their hashes; `None` marks a disabled user (broken line).
pub struct Users {
    map: HashMap<String, Option<PasswordHash>>,
    /// A hash of the same kind and cost as the file's users, verified for
    /// unknown and disabled users so that every answer costs the same time.
    dummy: Option<PasswordHash>,
}

/// What a lookup found.
pub enum Entry<'a> {
    /// The user name is not in the file.
    Unknown,
    /// The user is in the file without a usable hash (a disabled line).
    Disabled,
    /// The user's password hash.
    Hash(&'a PasswordHash),
}

impl Users {
    /// Parses `text`; `origin` (the file name) prefixes each warning. The
    /// warnings never contain a hash or a password.
    pub fn parse(text: &str, origin: &str) -> (Users, Vec<String>) {
        let mut map: HashMap<String, Option<PasswordHash>> = HashMap::new();
        let mut warnings = Vec::new();
        let mut dummy = None;
        for (i, line) in text.lines().enumerate() {
            let at = format!("{origin}:{}", i + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                warnings.push(format!("{at}: expected `user:hash`; line skipped"));
                continue;
            };
            if user.is_empty() {
                warnings.push(format!("{at}: empty user name; line skipped"));
                continue;
            }
            let parsed = match PasswordHash::parse(hash) {
                Ok(h) => Some(h),
                Err(e) => {
                    warnings.push(format!("{at}: user `{user}`: {e}; this user cannot log in"));
                    None
                }
            };
            if map.contains_key(user) {
                warnings.push(format!("{at}: user `{user}` is listed twice; this user cannot log in"));
                map.insert(user.to_string(), None);
                continue;
            }
            if dummy.is_none() {
                dummy.clone_from(&parsed);
            }
            map.insert(user.to_string(), parsed);
        }
        (Users { map, dummy }, warnings)
    }

    /// What the file says about `user`.
    pub fn get(&self, user: &str) -> Entry<'_> {
        match self.map.get(user) {
            None => Entry::Unknown,
            Some(None) => Entry::Disabled,
            Some(Some(h)) => Entry::Hash(h),
        }
    }

    /// The hash verified for unknown and disabled users.
    #[cfg(test)]
    pub fn dummy(&self) -> Option<&PasswordHash> {
        self.dummy.as_ref()
    }

    /// Spends the time of one verification without a real user behind it.
    pub fn burn(&self, password: &[u8], memory: &BlockPool) {
        if let Some(d) = &self.dummy {
            let _ = std::hint::black_box(d.verify(password, memory));
        }
    }

    /// How many users can log in (disabled ones are not counted).
    pub fn len(&self) -> usize {
        self.map.values().filter(|h| h.is_some()).count()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
