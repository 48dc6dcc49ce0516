//! A small-object allocator for the evaluator's hot allocations (thunks,
//! environment frames, closures): per-thread free lists for blocks of up
//! to 512 bytes in 8-byte classes (a thunk is 24 bytes; a request aligned
//! to 16 takes a class of a multiple of 16, whose blocks are 16-aligned
//! since chunks are; attribute sets of up to 20 attributes and short
//! lists' vectors fit too), refilled from 64 KiB chunks; anything
//! larger goes to the system allocator. Small blocks are recycled, never
//! returned to the system, which suits a short-lived evaluation process.
//!
//! On Linux the chunks are cut from 16 MiB regions mapped by the pool
//! itself, the first 8 marked for transparent huge pages (`MADV_HUGEPAGE`): the
//! evaluator's small objects then fault in 2 MiB at a time rather than
//! 4 KiB (evalModules over 10 000 modules: ~23 000 page faults were most
//! of its system time) and take fewer TLB misses. Where huge pages are
//! off, the advice is ignored and the region behaves like any mapping.
//!
//! A binary opts in with
//! `#[global_allocator] static A: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

const STEP: usize = 8;
const CLASSES: usize = 64;
const CHUNK: usize = 64 * 1024;

/// See the module documentation.
pub struct PoolAlloc;

thread_local! {
    // const-initialised, no destructor: safe to use inside an allocator
    static FREE: [Cell<*mut u8>; CLASSES] = const { [const { Cell::new(ptr::null_mut()) }; CLASSES] };
    /// The unused part of the current region: (next chunk, end).
    static REGION: Cell<(*mut u8, *mut u8)> = const { Cell::new((ptr::null_mut(), ptr::null_mut())) };
}

/// The size of a region chunks are cut from (a multiple of [`HUGE_PAGE`]).
#[cfg(target_os = "linux")]
const REGION_SIZE: usize = 16 << 20;
/// A transparent huge page's size on x86_64 and (4 KiB-page) aarch64.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// A new 64 KiB chunk, 16-aligned (null if memory is exhausted).
#[cold]
#[inline(never)]
fn new_chunk() -> *mut u8 {
    #[cfg(target_os = "linux")]
    {
        let got = REGION.try_with(|r| {
            let (next, end) = r.get();
            if !next.is_null() && (end as usize) - (next as usize) >= CHUNK {
                // SAFETY: next + CHUNK <= end, inside the region.
                r.set((unsafe { next.add(CHUNK) }, end));
                return next;
            }
            let Some(start) = map_region() else { return ptr::null_mut() };
            // SAFETY: the region is REGION_SIZE bytes from `start`.
            r.set((unsafe { start.add(CHUNK) }, unsafe { start.add(REGION_SIZE) }));
            start
        });
        if let Ok(p) = got
            && !p.is_null()
        {
            return p;
        }
    }
    // SAFETY: CHUNK is non-zero and 16-aligned.
    unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, 16)) }
}

/// Map a region of [`REGION_SIZE`] bytes aligned to [`HUGE_PAGE`] (so
/// every huge page of it can be backed by one) and advise huge pages.
/// How many regions (the first 128 MiB of small objects of a process) are
/// advised for huge pages. A short evaluation gets all of them; a long one
/// (a nixpkgs walk's worker, gigabytes) would otherwise stall on the
/// kernel's compaction for each huge page where memory is mostly page
/// cache (measured: the walk's system time 3.5 s -> 9.5 s with every region
/// advised, 3.0 s with the first 8).
#[cfg(target_os = "linux")]
const HUGE_REGIONS: usize = 8;
/// Regions mapped so far by the process.
#[cfg(target_os = "linux")]
static REGIONS_MAPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(target_os = "linux")]
fn map_region() -> Option<*mut u8> {
    let len = REGION_SIZE + HUGE_PAGE;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice; it aliases nothing.
    let m = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return None;
    }
    let m = m as usize;
    let start = (m + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    // SAFETY: the head and tail trimmed here are parts of the mapping just
    // made that nothing uses; the advice only concerns the kept region
    // (failure, with huge pages disabled, is harmless).
    unsafe {
        if start > m {
            libc::munmap(m as *mut libc::c_void, start - m);
        }
        let tail = m + len - (start + REGION_SIZE);
        if tail > 0 {
            libc::munmap((start + REGION_SIZE) as *mut libc::c_void, tail);
        }
        if REGIONS_MAPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < HUGE_REGIONS {
            libc::madvise(start as *mut libc::c_void, REGION_SIZE, libc::MADV_HUGEPAGE);
        }
    }
    Some(start as *mut u8)
}

#[inline(always)]
fn class_of(layout: &Layout) -> Option<usize> {
    // the size rounded up to the alignment: a 16-aligned request takes a
    // class whose size is a multiple of 16, whose blocks sit at multiples
    // of 16 in a 16-aligned chunk; size 0 wraps to a class out of range
    let a = layout.align();
    let size = (layout.size() + a - 1) & !(a - 1);
    let c = size.wrapping_sub(1) / STEP;
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
                f[c].set(unsafe { *(head as *mut *mut u8) });
                return head;
            }
            let size = (c + 1) * STEP;
            let chunk = new_chunk();
            if chunk.is_null() {
                return ptr::null_mut();
            }
            let n = CHUNK / size;
            // thread blocks 1..n onto the free list, hand out block 0
            let mut next: *mut u8 = ptr::null_mut();
            for i in (1..n).rev() {
                // SAFETY: i * size + 8 <= CHUNK (blocks are at least 8 bytes,
            // 8-aligned).
                unsafe {
                    let b = chunk.add(i * size);
                    *(b as *mut *mut u8) = next;
                    next = b;
                }
            }
            f[c].set(next);
            chunk
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
