//! [`ChunkBuf`]: a page-aligned buffer of one [`CHUNK_SIZE`] chunk, recycled
//! through a small process-wide pool.
//!
//! An importer reads a large file straight into these buffers and shares each
//! one ([`SharedChunk`]) between everything that consumes the bytes: the NAR
//! hasher, the chunk's BLAKE3 and the chunk store. Because the buffer is
//! page-aligned and a full chunk is a whole number of pages, the redb backend
//! writes it to disk with `O_DIRECT` from the buffer itself. So a byte of a
//! large file is copied once (by the kernel, out of the page cache) instead of
//! once per consumer, and buffers are reused rather than allocated (and
//! faulted in) per chunk.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io::{self, Read};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use crate::CHUNK_SIZE;

/// Alignment of every buffer: a page, as `O_DIRECT` needs.
pub const CHUNK_ALIGN: usize = 4096;

/// Free buffers kept for reuse; more are freed (an import keeps far fewer
/// than this in flight).
const POOL_MAX: usize = 32;

fn layout() -> Layout {
    Layout::from_size_align(CHUNK_SIZE, CHUNK_ALIGN).expect("valid layout")
}

/// One allocation of `layout()`.
struct Block(NonNull<u8>);

// SAFETY: a Block is the sole owner of its allocation; moving it between
// threads moves that ownership, and a shared `&Block` gives no access to the
// bytes (only `ChunkBuf` reads them: shared reads through `&ChunkBuf`,
// writes only through `&mut ChunkBuf`), like a `Box<[u8]>`.
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

impl Block {
    fn new() -> Block {
        // Zeroed once when first allocated (so the bytes are initialised);
        // reuse through the pool never clears them again.
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout()) };
        Block(NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout())))
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated by `Block::new` with the same layout.
        unsafe { dealloc(self.0.as_ptr(), layout()) }
    }
}

static POOL: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// A page-aligned buffer holding up to [`CHUNK_SIZE`] bytes.
pub struct ChunkBuf {
    block: Option<Block>,
    len: usize,
}

/// A filled [`ChunkBuf`] shared by the consumers of its bytes.
pub type SharedChunk = Arc<ChunkBuf>;

impl ChunkBuf {
    /// An empty buffer, from the pool if one is free.
    pub fn new() -> ChunkBuf {
        let block = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_else(Block::new);
        ChunkBuf { block: Some(block), len: 0 }
    }

    /// Replaces the contents with exactly `n` bytes (at most [`CHUNK_SIZE`])
    /// read from `r`; an `UnexpectedEof` error if `r` ends first.
    pub fn fill_from(&mut self, r: &mut dyn Read, n: usize) -> io::Result<()> {
        assert!(n <= CHUNK_SIZE, "a chunk buffer holds at most CHUNK_SIZE bytes");
        self.len = 0;
        r.read_exact(&mut self.all_mut()[..n])?;
        self.len = n;
        Ok(())
    }

    fn all_mut(&mut self) -> &mut [u8] {
        let block = self.block.as_ref().expect("present until drop");
        // SAFETY: the block is CHUNK_SIZE initialised bytes (zeroed when
        // allocated), owned by us and borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(block.0.as_ptr(), CHUNK_SIZE) }
    }
}

impl Default for ChunkBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let block = self.block.as_ref().expect("present until drop");
        // SAFETY: the first `len` bytes are initialised and only written
        // through `&mut self`.
        unsafe { std::slice::from_raw_parts(block.0.as_ptr(), self.len) }
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOL_MAX {
                pool.push(block);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_aligned_and_recycles() {
        let mut b = ChunkBuf::new();
        assert_eq!(b.as_ptr() as usize % CHUNK_ALIGN, 0);
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        b.fill_from(&mut &data[..], 4999).unwrap();
        assert_eq!(&b[..], &data[..4999]);
        let err = b.fill_from(&mut &data[..10], 11).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(b.is_empty(), "a failed fill leaves the buffer empty");
        drop(b);
        let c = ChunkBuf::new();
        assert!(c.is_empty());
    }
}
