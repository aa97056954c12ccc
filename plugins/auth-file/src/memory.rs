//! The working memory of argon2 checks: a few reusable block buffers, at
//! most one per CPU, so that the plugin's memory is bounded by the plugin
//! itself, whatever host calls it and on however many threads.
//!
//! Why not let `argon2` allocate: `Argon2::verify_password` allocates its
//! block array (19 MiB at OWASP parameters) on every call, zeroed and
//! 64-byte aligned. glibc serves such allocations from per-thread arenas and
//! hands them back poorly across the broker's blocking-pool threads: a storm
//! of 1,000 logins drove the broker from 8 MB to ~800 MB of RSS although only
//! two checks ever ran at once. Reusing the same few buffers keeps the
//! memory at (buffers x largest hash cost) during a storm.
//!
//! A caller beyond the limit waits for a buffer (`Mutex` + `Condvar`): the
//! plugin runs on a blocking thread, so waiting there is what bounds it. A
//! buffer too small for a hash is replaced by a larger one. When the last
//! lent buffer comes back and nobody waits (the storm is over), all idle
//! buffers but one are freed: between storms the plugin keeps one hash's
//! worth of memory, not one per CPU. Buffers are mapped from the kernel
//! ([`crate::mapped`]), so freeing them really returns the memory.

use std::sync::{Condvar, Mutex, PoisonError};

use argon2::Block;

use crate::mapped::Buffer;

/// A set of at most `limit` block buffers, lent out one caller at a time.
pub struct BlockPool {
    limit: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    /// Buffers not lent out right now.
    idle: Vec<Buffer>,
    /// Buffers in existence (idle or lent out); never above `limit`.
    created: usize,
    /// Callers waiting for a buffer.
    waiting: usize,
    /// The most buffers that ever existed at once.
    peak: usize,
}

/// One buffer lent out; goes back to the pool when dropped.
pub struct Lease<'a> {
    pool: &'a BlockPool,
    /// `None` only when a larger buffer could not be had (the lease is then
    /// never handed out; its slot goes back to the pool).
    buffer: Option<Buffer>,
}

impl BlockPool {
    /// A pool of at most `limit` buffers (at least one).
    pub fn new(limit: usize) -> BlockPool {
        BlockPool {
            limit: limit.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), created: 0, waiting: 0, peak: 0 }),
            returned: Condvar::new(),
        }
    }

    /// A pool of one buffer per CPU: more checks at once than CPUs would
    /// only share the same cores while holding more memory.
    pub fn per_cpu() -> BlockPool {
        BlockPool::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// A buffer of at least `len` blocks, waiting while all are lent out;
    /// `None` when the memory for a larger buffer cannot be had (the check
    /// then fails rather than aborting the process).
    pub fn lease(&self, len: usize) -> Option<Lease<'_>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let buffer = loop {
            if let Some(buffer) = state.idle.pop() {
                break Some(buffer);
            }
            if state.created < self.limit {
                state.created += 1;
                state.peak = state.peak.max(state.created);
                break None;
            }
            state.waiting += 1;
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        };
        drop(state);
        let mut lease = Lease { pool: self, buffer };
        if lease.buffer.as_ref().is_none_or(|b| b.block_count() < len) {
            // Replaced, not extended: the old contents need not be kept.
            // Outside the lock: other callers need not wait for it.
            lease.buffer = None;
            lease.buffer = Some(Buffer::new(len)?);
        }
        Some(lease)
    }

    /// Buffers in existence, lent out or idle.
    pub fn created(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).created
    }

    /// The most buffers that ever existed at once (never above the limit).
    pub fn peak(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).peak
    }

    /// Blocks held by the idle buffers (what the pool keeps between calls).
    pub fn idle_blocks(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).idle.iter().map(Buffer::block_count).sum()
    }
}

impl Lease<'_> {
    /// The buffer: at least the length asked for, contents left over from
    /// earlier checks (argon2 overwrites every block it reads).
    pub fn blocks(&mut self) -> &mut [Block] {
        self.buffer.as_mut().map_or(&mut [], Buffer::as_mut_slice)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap_or_else(PoisonError::into_inner);
        match self.buffer.take() {
            Some(buffer) => state.idle.push(buffer),
            None => state.created -= 1,
        }
        let mut spare = Vec::new();
        if state.waiting == 0 && state.idle.len() == state.created && state.created > 1 {
            // Nobody holds or wants a buffer: keep the largest, free the rest.
            state.idle.sort_by_key(Buffer::block_count);
            let keep_from = state.created - 1;
            spare = state.idle.drain(..keep_from).collect();
            state.created = 1;
        }
        drop(state);
        drop(spare); // unmapped outside the lock
        self.pool.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_returned_buffer_is_reused_not_reallocated() {
        let pool = BlockPool::new(2);
        let first = {
            let mut lease = pool.lease(64).unwrap();
            assert_eq!(lease.blocks().len(), 64);
            lease.blocks().as_ptr()
        };
        let mut again = pool.lease(64).unwrap();
        assert_eq!(again.blocks().as_ptr(), first, "the same allocation comes back");
        assert_eq!(pool.created(), 1);
    }

    #[test]
    fn an_impossible_size_is_refused_and_the_buffer_stays_usable() {
        let pool = BlockPool::new(1);
        assert!(pool.lease(usize::MAX / 1024).is_none());
        assert_eq!(pool.lease(4).unwrap().blocks().len(), 4, "the pool still lends its one buffer");
    }

    #[test]
    fn grows_when_a_hash_needs_more_blocks_and_keeps_the_larger_size() {
        let pool = BlockPool::new(1);
        assert_eq!(pool.lease(16).unwrap().blocks().len(), 16);
        assert_eq!(pool.lease(128).unwrap().blocks().len(), 128);
        // Smaller hashes get the larger buffer (argon2 uses the first blocks).
        assert_eq!(pool.lease(8).unwrap().blocks().len(), 128);
        assert_eq!(pool.created(), 1);
        assert_eq!(pool.idle_blocks(), 128);
    }

    /// Many threads, a limit of 2: never more than 2 buffers exist and never
    /// more than 2 are lent out at once; every caller gets one eventually.
    #[test]
    fn callers_beyond_the_limit_wait_and_memory_stays_bounded() {
        let pool = Arc::new(BlockPool::new(2));
        let (holding, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (pool, holding, most) = (pool.clone(), holding.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mut lease = pool.lease(32).unwrap();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        lease.blocks()[0] = Block::new();
                        std::thread::yield_now();
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "at most 2 leases at once");
        assert!(pool.peak() <= 2, "never more than 2 buffers");
        assert_eq!(pool.created(), 1, "all returned, nobody waiting: the spare buffer is freed");
        assert_eq!(pool.idle_blocks(), 32);
    }

    /// During a storm every buffer is kept; once all are back and nobody
    /// waits, only the largest stays.
    #[test]
    fn spare_buffers_are_freed_when_the_pool_goes_idle() {
        let pool = BlockPool::new(3);
        let mut a = pool.lease(16).unwrap();
        let b = pool.lease(64).unwrap();
        let c = pool.lease(16).unwrap();
        assert_eq!(pool.created(), 3);
        drop(b);
        drop(c);
        assert_eq!(pool.created(), 3, "one buffer still lent: nothing freed");
        assert_eq!(pool.idle_blocks(), 80);
        a.blocks()[0] = Block::new();
        drop(a);
        assert_eq!(pool.created(), 1, "all back: the spares are freed");
        assert_eq!(pool.idle_blocks(), 64, "the largest is kept");
        assert_eq!(pool.lease(64).unwrap().blocks().len(), 64);
    }
}
