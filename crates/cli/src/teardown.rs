//! Ending a command before its heap is torn down.
//!
//! When a process exits, the kernel frees every page it touched before the
//! process counts as ended, and only then does its parent (the shell, a
//! build script) go on. An evaluation's heap is mostly live data up to the
//! end (evalModules over 10 000 modules: 88 MB), and freeing it takes the
//! kernel 10–20 ms on this project's VM, after the result is printed. So
//! the evaluating commands, once their output is written, start a helper
//! that shares the process's memory (`clone(CLONE_VM)`, no copy of it) and
//! holds no file; the process then exits without freeing anything (the
//! memory still has a user), and the helper, killed by the kernel when its
//! parent is gone (`PR_SET_PDEATHSIG`), frees it in the background. The
//! linker mold ends the same way. Small heaps are freed as usual, and so
//! is the heap of a run under valgrind, which cannot run such a helper.

/// Below this peak resident size (KiB) the exit is cheap and nothing is
/// handed off.
#[cfg(target_os = "linux")]
const MIN_KIB: libc::c_long = 32 << 10;

/// Hand the freeing of the process's memory to a helper that outlives the
/// process by the time the kernel takes to free it. Call it last, once the
/// command's output is written: the helper closes its copies of the file
/// descriptors at once, so a reader of the output sees its end when the
/// process exits.
pub fn hand_off() {
    #[cfg(target_os = "linux")]
    hand_off_linux();
}

#[cfg(target_os = "linux")]
fn hand_off_linux() {
    // SAFETY: getrusage only writes the struct it is given.
    let peak = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return;
        }
        ru.ru_maxrss
    };
    // valgrind cannot run a process that shares its memory with another
    // (it ends the run with an error); its preloaded library names it
    if peak < MIN_KIB || std::env::var_os("LD_PRELOAD").is_some_and(|p| p.to_string_lossy().contains("vgpreload")) {
        return;
    }
    #[repr(C, align(16))]
    struct Stack([u8; 16 << 10]);
    static mut STACK: Stack = Stack([0; 16 << 10]);

    /// The helper, given its parent's process id as its argument: it
    /// shares the parent's memory and (through the thread pointer) its
    /// thread's libc state, so it makes system calls only.
    extern "C" fn helper(parent: *mut libc::c_void) -> libc::c_int {
        // SAFETY: plain system calls on the helper's own file table and
        // process; none touches memory the exiting parent uses.
        unsafe {
            if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
                for fd in 0..1024 {
                    libc::syscall(libc::SYS_close, fd);
                }
            }
            libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // the parent may be gone already, before the signal was asked for
            if libc::syscall(libc::SYS_getppid) as usize == parent as usize {
                loop {
                    libc::syscall(libc::SYS_pause);
                }
            }
            libc::syscall(libc::SYS_exit, 0);
        }
        0
    }

    // SAFETY: getpid has no preconditions. The helper runs on its own
    // static stack (used by no one else: this runs once, at the end), with
    // the parent's memory shared, and makes only system calls; clone's
    // failure leaves the ordinary exit.
    unsafe {
        let parent = libc::getpid() as usize as *mut libc::c_void;
        let stack = &raw mut STACK;
        let top = (stack as *mut u8).add(std::mem::size_of::<Stack>()) as *mut libc::c_void;
        libc::clone(helper, top, libc::CLONE_VM | libc::SIGCHLD, parent);
    }
}
