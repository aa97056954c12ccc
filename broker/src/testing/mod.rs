//! Support for the broker's unit tests, compiled only for them
//! (`#[cfg(test)]` in `lib.rs`): nothing here is part of the broker.
//!
//! - [`rng`]: a seeded generator of random topics and filters for the
//!   property tests of the subscription tree and the retained store.

pub(crate) mod rng;
