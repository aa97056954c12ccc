//! One argon2 working buffer, mapped straight from the kernel (`mmap`), so
//! that dropping it gives the memory back to the system at once.
//!
//! Why not a `Vec<Block>`: after glibc frees one large block it raises its
//! mmap threshold to that size, and later buffers of the same size come from
//! its per-thread arenas, which keep freed memory. That is how argon2's own
//! per-call allocation grew the broker to ~800 MB; a pool that frees its
//! spare buffers after a storm would meet the same trap at every storm.
//! Mapped memory does not depend on the allocator's thresholds, is
//! page-aligned (argon2 wants 64 bytes) and starts zeroed (a valid `Block`).
//! On other systems than Unix, a plain `Vec` stands in.

use argon2::Block;

/// `len` blocks of zeroed memory, released when dropped.
pub struct Buffer {
    #[cfg(unix)]
    ptr: std::ptr::NonNull<Block>,
    #[cfg(unix)]
    len: usize,
    #[cfg(not(unix))]
    blocks: Vec<Block>,
}

// SAFETY: the buffer owns its mapping exclusively, like a `Vec<Block>` owns
// its allocation; `Block` is plain data.
#[cfg(unix)]
unsafe impl Send for Buffer {}

#[cfg(unix)]
impl Buffer {
    /// `None` when the system refuses the memory (or the size overflows).
    pub fn new(len: usize) -> Option<Buffer> {
        let bytes = len.checked_mul(size_of::<Block>())?;
        if bytes == 0 {
            return Some(Buffer { ptr: std::ptr::NonNull::dangling(), len: 0 });
        }
        // SAFETY: an anonymous private mapping of `bytes`, asking for no
        // address and no file; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Buffer { ptr: std::ptr::NonNull::new(p.cast())?, len })
    }

    /// How many Argon2 blocks the buffer holds.
    pub fn block_count(&self) -> usize {
        self.len
    }

    /// The blocks, for one verification at a time.
    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: the mapping holds `len` blocks, is page-aligned (more than
        // `Block`'s 64), zero-initialised (a valid `Block`), and is borrowed
        // mutably through `self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(unix)]
impl Drop for Buffer {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, of this size, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len * size_of::<Block>()) };
        }
    }
}

#[cfg(not(unix))]
impl Buffer {
    pub fn new(len: usize) -> Option<Buffer> {
        let mut blocks = Vec::new();
        blocks.try_reserve_exact(len).ok()?;
        blocks.resize(len, Block::new());
        Some(Buffer { blocks })
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_zeroed_writable_and_aligned() {
        let mut b = Buffer::new(300).unwrap();
        assert_eq!(b.block_count(), 300);
        let blocks = b.as_mut_slice();
        assert_eq!(blocks.as_ptr() as usize % 64, 0);
        assert!(blocks.iter().all(|blk| blk.as_ref().iter().all(|w| *w == 0)));
        blocks[299].as_mut()[127] = 7;
        assert_eq!(b.as_mut_slice()[299].as_ref()[127], 7);
        assert_eq!(Buffer::new(0).unwrap().block_count(), 0);
        assert!(Buffer::new(usize::MAX / 512).is_none(), "an impossible size is refused, not a crash");
    }
}
