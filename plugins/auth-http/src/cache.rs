//! Answers reused for a while, so that a busy client's every PUBLISH is not
//! an HTTP request. Bounded: when full, expired answers go first, then all
//! (the next requests refill it), so memory never grows past `size` entries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Cache<K, V> {
    ttl: Duration,
    size: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Copy> Cache<K, V> {
    /// A cache keeping each answer `ttl` (zero: keeps nothing), at most `size`.
    pub(crate) fn new(ttl: Duration, size: usize) -> Self {
        Cache { ttl, size, entries: Mutex::new(HashMap::new()) }
    }

    fn on(&self) -> bool {
        !self.ttl.is_zero() && self.size > 0
    }

    /// The answer kept for the key `key` builds, or else `ask`'s, kept when
    /// it is one (an error is not kept). With the cache off, `key` is not
    /// even built: no allocation, no hash per call.
    pub(crate) fn get_or(&self, key: impl FnOnce() -> K, ask: impl FnOnce() -> Result<V, String>) -> Result<V, String> {
        if !self.on() {
            return ask();
        }
        let key = key();
        if let Some(v) = self.get(&key) {
            return Ok(v);
        }
        let v = ask()?;
        self.put(key, v);
        Ok(v)
    }

    fn get(&self, key: &K) -> Option<V> {
        if !self.on() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| *v)
    }

    fn put(&self, key: K, value: V) {
        if !self.on() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.size {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.size {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_for_their_ttl_within_the_size() {
        let c = Cache::new(Duration::from_secs(60), 2);
        c.put(1, true);
        c.put(2, false);
        assert_eq!((c.get(&1), c.get(&2), c.get(&3)), (Some(true), Some(false), None));
        c.put(3, true);
        assert!(c.entries.lock().unwrap().len() <= 2, "never more than its size");
        assert_eq!(c.get(&3), Some(true));
        let off = Cache::new(Duration::ZERO, 10);
        off.put(1, true);
        assert_eq!(off.get(&1), None, "a zero ttl keeps nothing");
        let short = Cache::new(Duration::from_nanos(1), 10);
        short.put(1, true);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(short.get(&1), None, "an expired answer is not used");
    }
}
