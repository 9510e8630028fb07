//! A global allocator that counts the heap bytes live: the memory workload of the bench and
//! the memory test of the `tasktrace` crate (`crates/tasktrace/tests/memory.rs`, which
//! includes this file) count with it. Deterministic, unlike time or RSS.
//!
//! Counting is one atomic add per allocation and free, on one cache line that every thread
//! writes: workloads that measure time turn it off ([`stop`]) before they start, so that the
//! contenders that allocate more do not also pay a contended atomic per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Forwards to the system allocator, counting the bytes it hands out and takes back.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Whether allocations are counted (from the start, until [`stop`]).
static ON: AtomicBool = AtomicBool::new(true);

/// Stops counting for good: [`live`] means nothing afterwards.
#[allow(dead_code)] // the memory test never stops
pub fn stop() {
    ON.store(false, Ordering::Relaxed);
}

fn count(bytes: isize) {
    // A relaxed load of a line nobody writes after `stop`: shared, not contended.
    if ON.load(Ordering::Relaxed) {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Heap bytes live now (allocated minus freed since the process started).
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every call is forwarded to `System` unchanged; only the byte count is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
