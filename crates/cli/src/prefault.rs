//! Faulting in the heap's fresh pages just ahead of the evaluator, on the
//! other core, from the thread that waits for the evaluator thread.
//!
//! An evaluation that keeps its data (the module system keeps nearly all of
//! it) touches a fresh page every few microseconds, and the first touch of
//! a page costs a page fault: on this project's VM about 2.6 µs, a fifth of
//! the wall time of evalModules over 10 000 modules (23 000 faults). While
//! the evaluator runs, its waiting parent thread is woken whenever the
//! small-object pool takes chunks near the end of what has been populated,
//! and populates the next [`AHEAD`] bytes past the pool's highest chunk with
//! one `madvise(MADV_POPULATE_WRITE)` (Linux 5.14+), so the evaluator's own
//! first touches find the pages present. Populating never changes a byte
//! (pages that already hold data are left as they are) and stays below the
//! heap's `brk` top; at most [`AHEAD`] bytes are made resident before the
//! evaluator needs them. A kernel without the advice ends it after one try;
//! an evaluation that takes less than [`START`] bytes never sees it.

use std::sync::atomic::{AtomicBool, Ordering};

/// How far past the pool's highest chunk pages are kept populated.
const AHEAD: usize = 512 << 10;
/// How much the pool takes before populating starts (short evaluations,
/// most `-E` and `-A hello`, are over by then).
const START: usize = 2 << 20;

/// Wakes the waiting thread when the evaluator thread ends, however it ends
/// (a value made in the evaluator's closure, dropped on return or panic).
pub struct DoneSignal(std::thread::Thread);

impl DoneSignal {
    /// To be moved into the evaluator thread's closure.
    pub fn new() -> DoneSignal {
        DoneSignal(std::thread::current())
    }
}

/// Set by [`DoneSignal`] before it wakes the waiting thread (`JoinHandle::
/// is_finished` turns true only after the closure's values are dropped, so
/// it could still be false when the waiting thread wakes).
static EVALUATOR_DONE: AtomicBool = AtomicBool::new(false);

impl Drop for DoneSignal {
    fn drop(&mut self) {
        EVALUATOR_DONE.store(true, Ordering::Release);
        self.0.unpark();
    }
}

/// Populate ahead of the evaluator until the evaluator thread (which holds
/// a [`DoneSignal`] made on this thread) has dropped it; the caller then
/// joins it. Returns at once where there is no core to spare or no support.
pub fn assist() {
    #[cfg(target_os = "linux")]
    if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
        populate_ahead();
    }
}

#[cfg(target_os = "linux")]
fn populate_ahead() {
    use ferrix_eval::alloc::{chunk_frontier, rearm_watch, watch_chunks};
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    // woken by the pool's first chunk (or by the evaluator's end)
    if !watch_chunks(std::thread::current(), 0) {
        return;
    }
    let mut start = None;
    let mut done = 0usize;
    loop {
        std::thread::park();
        if EVALUATOR_DONE.load(Ordering::Acquire) {
            return;
        }
        let frontier = chunk_frontier();
        if frontier == 0 {
            rearm_watch(0);
            continue;
        }
        let first = *start.get_or_insert(frontier);
        if frontier < first + START {
            rearm_watch(first + START);
            continue;
        }
        // SAFETY: sbrk(0) only reads the current program break.
        let top = unsafe { libc::sbrk(0) } as usize;
        let from = done.max(frontier).next_multiple_of(page);
        let to = (frontier + AHEAD).min(top) / page * page;
        if to > from {
            // SAFETY: the range lies inside the heap below the program
            // break (mapped, read-write); populating changes no byte of it.
            let r = unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_POPULATE_WRITE) };
            if r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                return; // a kernel without MADV_POPULATE_WRITE
            }
            done = to;
        }
        // look again when the pool is half-way through what is populated
        // (or at its next chunk, when the break held this back)
        let next = if done > frontier { done - AHEAD / 2 } else { frontier + 1 };
        rearm_watch(next.max(frontier + 1));
    }
}
