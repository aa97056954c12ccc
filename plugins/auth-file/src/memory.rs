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
//! memory at (buffers × largest hash cost), allocated once.
//!
//! A caller beyond the limit waits for a buffer (`Mutex` + `Condvar`): the
//! plugin runs on a blocking thread, so waiting there is what bounds it. A
//! buffer too small for a hash is grown; buffers are never shrunk (a file
//! holds hashes of one cost in practice, and reloads keep that cost).

use std::sync::{Condvar, Mutex, PoisonError};

use argon2::Block;

/// A set of at most `limit` block buffers, lent out one caller at a time.
pub struct BlockPool {
    limit: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    /// Buffers not lent out right now.
    idle: Vec<Vec<Block>>,
    /// Buffers in existence (idle or lent out); never above `limit`.
    created: usize,
}

/// One buffer lent out; goes back to the pool when dropped.
pub struct Lease<'a> {
    pool: &'a BlockPool,
    blocks: Vec<Block>,
}

impl BlockPool {
    /// A pool of at most `limit` buffers (at least one).
    pub fn new(limit: usize) -> BlockPool {
        BlockPool {
            limit: limit.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), created: 0 }),
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
        let blocks = loop {
            if let Some(blocks) = state.idle.pop() {
                break blocks;
            }
            if state.created < self.limit {
                state.created += 1;
                break Vec::new();
            }
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
        };
        drop(state);
        let mut lease = Lease { pool: self, blocks };
        if lease.blocks.len() < len {
            // Replaced, not extended: the old contents need not be copied.
            // Outside the lock: other callers need not wait for it.
            lease.blocks = Vec::new();
            lease.blocks.try_reserve_exact(len).ok()?;
            lease.blocks.resize(len, Block::new());
        }
        Some(lease)
    }

    /// Buffers in existence, lent out or idle.
    pub fn created(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).created
    }

    /// Blocks held by the idle buffers (what the pool keeps between calls).
    pub fn idle_blocks(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).idle.iter().map(Vec::len).sum()
    }
}

impl Lease<'_> {
    /// The buffer: at least the length asked for, contents left over from
    /// earlier checks (argon2 overwrites every block it reads).
    pub fn blocks(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        self.pool.state.lock().unwrap_or_else(PoisonError::into_inner).idle.push(blocks);
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
        assert_eq!(pool.created(), 2, "800 leases from 2 buffers");
        assert_eq!(pool.idle_blocks(), 64);
    }
}
