//! A small-object allocator for the evaluator's hot allocations (thunks,
//! environment frames, closures, sets): per-thread free lists for blocks
//! of up to 256 bytes in 8-byte classes (a thunk is 24 bytes; a request
//! aligned to 16 takes a class of a multiple of 16, whose blocks are
//! 16-aligned since chunks are), refilled from 64 KiB chunks (16 KiB
//! above 128 bytes); anything larger goes to the system allocator. Small
//! blocks are recycled, never returned to the system, which suits a
//! short-lived evaluation process.
//!
//! A binary opts in with
//! `#[global_allocator] static A: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const STEP: usize = 8;
const CLASSES: usize = 32;
/// Classes below this take [`CHUNK`]-byte chunks, the others (sets of 5 to
/// 10 attributes, longer frames) [`BIG_CHUNK`]-byte ones, so a short
/// evaluation that uses a few blocks of each does not hold 64 KiB per class.
const SMALL_CLASSES: usize = 16;
const CHUNK: usize = 64 * 1024;
const BIG_CHUNK: usize = 16 * 1024;

/// See the module documentation.
pub struct PoolAlloc;

/// The end of the highest chunk the pool has taken from the system so far:
/// where fresh memory is being used (see [`watch_chunks`]).
static FRONTIER: AtomicUsize = AtomicUsize::new(0);
/// The chunk end past which the watcher is woken (`usize::MAX`: none).
static WAKE_AT: AtomicUsize = AtomicUsize::new(usize::MAX);
static WATCHER: OnceLock<std::thread::Thread> = OnceLock::new();

/// Let `watcher` (a thread that waits with [`std::thread::park`]) know
/// where the pool takes fresh memory: it is unparked once a chunk ending
/// at or past `wake_at` is taken, after which it sets the next mark with
/// [`rearm_watch`] and reads the position with [`chunk_frontier`]. A helper
/// that populates the pages ahead of the evaluator uses this (the CLI's
/// `prefault`); without a watcher the pool does nothing more per chunk
/// than one atomic store and load.
pub fn watch_chunks(watcher: std::thread::Thread, wake_at: usize) -> bool {
    let ok = WATCHER.set(watcher).is_ok();
    if ok {
        WAKE_AT.store(wake_at, Ordering::Release);
    }
    ok
}

/// Wake the watcher again once a chunk ends at or past `wake_at`.
pub fn rearm_watch(wake_at: usize) {
    WAKE_AT.store(wake_at, Ordering::Release);
    // a chunk taken between the watcher's last look and this store would
    // otherwise go unnoticed until the next one
    if FRONTIER.load(Ordering::Acquire) >= wake_at {
        wake_watcher();
    }
}

/// The end of the highest chunk taken so far (0 before the first).
pub fn chunk_frontier() -> usize {
    FRONTIER.load(Ordering::Acquire)
}

#[inline]
fn chunk_taken(end: usize) {
    if end > FRONTIER.load(Ordering::Relaxed) {
        FRONTIER.store(end, Ordering::Release);
    }
    if end >= WAKE_AT.load(Ordering::Acquire) {
        WAKE_AT.store(usize::MAX, Ordering::Relaxed);
        wake_watcher();
    }
}

#[cold]
fn wake_watcher() {
    // `unpark` neither allocates nor blocks (a futex wake at most), so it
    // is safe inside the allocator
    if let Some(t) = WATCHER.get() {
        t.unpark();
    }
}

thread_local! {
    // const-initialised, no destructor: safe to use inside an allocator
    static FREE: [Cell<*mut u8>; CLASSES] = const { [const { Cell::new(ptr::null_mut()) }; CLASSES] };
}

/// The first block of a new chunk for class `c`, whose free list `free` is
/// empty; the chunk's other blocks are threaded onto that list. Kept out of
/// line so the allocation's fast path saves no registers.
#[cold]
#[inline(never)]
fn refill(free: &Cell<*mut u8>, c: usize) -> *mut u8 {
    let size = (c + 1) * STEP;
    let chunk_size = if c < SMALL_CLASSES { CHUNK } else { BIG_CHUNK };
    // SAFETY: chunk sizes are non-zero and 16-aligned.
    let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(chunk_size, 16)) };
    if chunk.is_null() {
        return ptr::null_mut();
    }
    chunk_taken(chunk as usize + chunk_size);
    let n = chunk_size / size;
    // thread blocks 1..n onto the free list, hand out block 0
    let mut next: *mut u8 = ptr::null_mut();
    for i in (1..n).rev() {
        // SAFETY: i * size + 8 <= chunk_size (blocks are at least 8
        // bytes, 8-aligned).
        unsafe {
            let b = chunk.add(i * size);
            *(b as *mut *mut u8) = next;
            next = b;
        }
    }
    free.set(next);
    chunk
}

/// Ask for the cache line at `p` (a hint only: any address, null
/// included, is fine).
#[inline(always)]
pub(crate) fn prefetch(p: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
fn class_of(layout: &Layout) -> Option<usize> {
    // the class of the size rounded up to the alignment, whose size minus
    // one is (size - 1) | (a - 1) for a power of two a: a 16-aligned
    // request takes a class whose size is a multiple of 16, whose blocks
    // sit at multiples of 16 in a 16-aligned chunk; size 0 wraps to a
    // class out of range
    let a = layout.align();
    let c = (layout.size().wrapping_sub(1) | (a - 1)) / STEP;
    if c < CLASSES && a <= 16 { Some(c) } else { None }
}

unsafe impl GlobalAlloc for PoolAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class_of(&layout) else {
            // SAFETY: forwarded with the caller's layout.
            return unsafe { System.alloc(layout) };
        };
        let got = FREE.try_with(|f| {
            let head = f[c].get();
            if !head.is_null() {
                // SAFETY: free blocks store the next pointer in their first word.
                let next = unsafe { *(head as *mut *mut u8) };
                f[c].set(next);
                // the next allocation of the class reads that block's first
                // word and writes the block: one freed long ago is no
                // longer cached, and reading it would stall that allocation
                prefetch(next);
                return head;
            }
            refill(&f[c], c)
        });
        match got {
            Ok(p) => p,
            // thread-local storage already torn down: fall back to the system
            // SAFETY: a block of the rounded class size is always big enough.
            Err(_) => unsafe { System.alloc(Layout::from_size_align_unchecked((c + 1) * STEP, 16)) },
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let Some(c) = class_of(&layout) else {
            // SAFETY: large blocks came from System with this layout.
            return unsafe { System.dealloc(p, layout) };
        };
        // If thread-local storage is gone the block is simply leaked.
        let _ = FREE.try_with(|f| {
            // SAFETY: the block is at least 8 bytes and no longer in use.
            unsafe { *(p as *mut *mut u8) = f[c].get() };
            f[c].set(p);
        });
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_small = class_of(&layout);
        // SAFETY: align and new_size come from a valid layout per the GlobalAlloc contract.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new_small = class_of(&new_layout);
        if old_small.is_none() && new_small.is_none() {
            // SAFETY: both sizes are system-allocated.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        if old_small.is_some() && old_small == new_small {
            return p;
        }
        // SAFETY: standard alloc-copy-free with valid layouts.
        unsafe {
            let q = self.alloc(new_layout);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class is that of the size rounded up to the alignment, and
    /// sizes past the pool, alignments above 16 and size 0 go elsewhere.
    #[test]
    fn class_of_rounds_to_the_alignment() {
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in 0..=300usize {
                let layout = Layout::from_size_align(size, align).unwrap();
                let rounded = size.next_multiple_of(align);
                let want = if size == 0 || rounded > CLASSES * STEP || align > 16 { None } else { Some((rounded - 1) / STEP) };
                assert_eq!(class_of(&layout), want, "size {size} align {align}");
            }
        }
    }
}
