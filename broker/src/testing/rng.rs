//! Test support: a tiny deterministic random generator and random topic
//! names and filters drawn from a small alphabet of levels (including empty
//! levels and `$` levels), shared by the randomized tests of the
//! subscription tree and the retained store.

use crate::topic;

/// xorshift64*: enough randomness for a test, no extra crates.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const LEVELS: [&str; 5] = ["a", "b", "", "$SYS", "$"];

pub(crate) fn random_topic(rng: &mut Rng) -> String {
    loop {
        let n = 1 + rng.below(4);
        let topic = (0..n).map(|_| rng.pick(&LEVELS)).collect::<Vec<_>>().join("/");
        // Only "" (one empty level) is invalid; draw again.
        if topic::is_valid_name(&topic) {
            return topic;
        }
    }
}

pub(crate) fn random_filter(rng: &mut Rng) -> String {
    loop {
        let n = rng.below(4);
        let mut levels: Vec<&str> = (0..n).map(|_| if rng.below(3) == 0 { "+" } else { rng.pick(&LEVELS) }).collect();
        if n == 0 || rng.below(3) == 0 {
            levels.push("#");
        }
        let filter = levels.join("/");
        // Only "" (one empty level) is invalid; draw again.
        if topic::is_valid_filter(&filter) {
            return filter;
        }
    }
}
