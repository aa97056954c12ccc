//! A short-lived cache of successful logins, so that a reconnect storm
//! (thousands of devices coming back after a network blip) does not run one
//! slow hash verification per client.
//!
//! The plain password is never stored: an entry is keyed by
//! HMAC-SHA256(per-process random key, user ‖ 0 ‖ password). Only *successful*
//! verifications are cached, so a hit tells nothing an attacker did not
//! already know. Entries live [`TTL`]; the cache holds at most [`CAPACITY`]
//! entries (expired ones are dropped first, then everything) and is emptied
//! whenever the password file is reloaded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a successful login is remembered.
pub const TTL: Duration = Duration::from_secs(60);
/// At most this many remembered logins (32 bytes of key + an instant each).
pub const CAPACITY: usize = 16_384;

type Key = [u8; 32];

/// Recently verified (user, password) pairs, keyed by a keyed hash so the
/// cache never holds a password; entries live for [`TTL`].
pub struct SuccessCache {
    secret: [u8; 32],
    entries: Mutex<HashMap<Key, Instant>>,
}

impl SuccessCache {
    /// A cache with a fresh random key; `None` when the system has no
    /// randomness to give (the plugin then works without a cache).
    pub fn new() -> Option<SuccessCache> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).ok()?;
        Some(SuccessCache { secret, entries: Mutex::new(HashMap::new()) })
    }

    fn key(&self, user: &str, password: &[u8]) -> Key {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// True when `user` logged in with `password` less than [`TTL`] ago.
    pub fn hit(&self, user: &str, password: &[u8]) -> bool {
        let key = self.key(user, password);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(&key).is_some_and(|at| at.elapsed() < TTL)
    }

    /// Remembers a successful login.
    pub fn remember(&self, user: &str, password: &[u8]) {
        let key = self.key(user, password);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, at| at.elapsed() < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, Instant::now());
    }

    /// Forgets everything (the users changed).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_user_and_password_only() {
        let c = SuccessCache::new().unwrap();
        assert!(!c.hit("alice", b"pw"));
        c.remember("alice", b"pw");
        assert!(c.hit("alice", b"pw"));
        assert!(!c.hit("alice", b"pW"));
        assert!(!c.hit("alic", b"epw"), "user and password are separated");
        c.clear();
        assert!(!c.hit("alice", b"pw"));
    }

    #[test]
    fn stays_bounded() {
        let c = SuccessCache::new().unwrap();
        for i in 0..CAPACITY + 10 {
            c.remember(&format!("u{i}"), b"pw");
        }
        assert!(c.entries.lock().unwrap().len() <= CAPACITY);
    }
}
