//! The tracing waker: a waker whose `clone` records the stack it was cloned from.
//!
//! # Invariants
//!
//! - A tracing waker is only ever **borrowed**. It is built by [`CaptureScope::with_waker`] on
//!   the stack of the capturing poll and lives inside the `Context` passed to the inner future;
//!   its data pointer is that [`CaptureScope`], which outlives the poll.
//! - `clone` never hands out a tracing waker: it records a path and returns a clone of the
//!   task's *real* waker (the one the executor passed in). So no tracing waker can outlive the
//!   poll, leaves that store the clone wake the real task later, and nothing of the tracer
//!   stays behind. `wake` and `drop` on the tracing vtable can then only be reached by code
//!   that forges a `Waker` from a borrowed one; they are implemented soundly anyway (forward,
//!   no-op), since nothing is owned.
//! - `wake_by_ref` records a path too (leaves such as `yield_now` or an exhausted coop budget
//!   wake without cloning) and forwards to the real waker.
//! - Leaves may clone from another thread during the poll (`Waker: Send + Sync`). The recorded
//!   paths sit behind a mutex; a clone on another thread cannot be located between the
//!   boundaries of this stack, so it is counted, not walked.
//! - Nested tracers: the real waker of an inner capturing `Traced` may itself be an outer
//!   tracing waker. The inner `clone` then calls the outer `clone`; both record the same leaf.
//!   The outermost active `clone` on this thread publishes its marker in [`LEAF_BOUNDARY`] so
//!   the outer tracer cuts its path there and the inner tracer's frames never appear as a leaf.

use crate::capture::{capture_between, marker_addr, RawPath};
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::Mutex;
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::thread::{self, ThreadId};

thread_local! {
    /// Marker of the outermost tracing-waker call active on this thread, or 0.
    static LEAF_BOUNDARY: Cell<usize> = const { Cell::new(0) };
}

/// State of one capturing poll, shared with the tracing waker through its data pointer.
pub(crate) struct CaptureScope<'a> {
    real: &'a Waker,
    root_marker: usize,
    thread: ThreadId,
    paths: Mutex<Vec<RawPath>>,
    foreign_clones: Mutex<usize>,
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

impl<'a> CaptureScope<'a> {
    /// A scope recording paths up to the frame that holds `root_marker`.
    pub(crate) fn new(real: &'a Waker, root_marker: usize) -> Self {
        CaptureScope {
            real,
            root_marker,
            thread: thread::current().id(),
            paths: Mutex::new(Vec::new()),
            foreign_clones: Mutex::new(0),
        }
    }

    /// A tracing waker that records into this scope. It borrows the scope, so it cannot
    /// outlive it; it is never dropped as a `Waker` (nothing to release).
    pub(crate) fn waker(&self) -> TracingWaker<'_> {
        let raw = RawWaker::new(self as *const Self as *const (), &VTABLE);
        TracingWaker {
            // SAFETY: the vtable functions below uphold the `RawWaker` contract for a data
            // pointer to a live `CaptureScope`; the borrow in `TracingWaker` keeps `self`
            // alive for as long as the waker can be used, and `clone` returns the real waker,
            // so no tracing waker escapes.
            waker: ManuallyDrop::new(unsafe { Waker::from_raw(raw) }),
            _scope: std::marker::PhantomData,
        }
    }

    /// Runs `f` with a tracing waker that records into this scope.
    #[cfg(test)]
    fn with_waker<R>(&self, f: impl FnOnce(&Waker) -> R) -> R {
        f(&self.waker())
    }

    /// The recorded paths, and the number of clones made on other threads.
    pub(crate) fn into_paths(self) -> (Vec<RawPath>, usize) {
        let paths = self.paths.into_inner().unwrap_or_else(|e| e.into_inner());
        let foreign = self
            .foreign_clones
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        (paths, foreign)
    }

    /// Records the path from the leaf (the caller of the waker function holding `leaf_marker`)
    /// up to the root.
    #[inline(never)]
    fn record(&self, leaf_marker: usize) {
        if thread::current().id() != self.thread {
            *self
                .foreign_clones
                .lock()
                .unwrap_or_else(|e| e.into_inner()) += 1;
            return;
        }
        let path = capture_between(leaf_marker, self.root_marker);
        self.paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
    }

    /// Records with the outermost active tracing-waker call as the leaf boundary, then runs
    /// `forward` with that boundary published for nested tracers.
    #[inline(always)]
    fn record_then<R>(&self, own_marker: usize, forward: impl FnOnce() -> R) -> R {
        struct Restore(usize);
        impl Drop for Restore {
            fn drop(&mut self) {
                LEAF_BOUNDARY.with(|b| b.set(self.0));
            }
        }
        let outer = LEAF_BOUNDARY.with(Cell::get);
        let boundary = if outer != 0 { outer } else { own_marker };
        self.record(boundary);
        let _restore = Restore(outer);
        LEAF_BOUNDARY.with(|b| b.set(boundary));
        forward()
    }
}

/// A borrowed tracing waker (see the module invariants).
pub(crate) struct TracingWaker<'s> {
    waker: ManuallyDrop<Waker>,
    _scope: std::marker::PhantomData<&'s CaptureScope<'s>>,
}

impl std::ops::Deref for TracingWaker<'_> {
    type Target = Waker;
    fn deref(&self) -> &Waker {
        &self.waker
    }
}

/// The waker a tracing waker stands for (through nested tracers), or `waker` itself. Records
/// nothing: for the tracer's own bookkeeping, which must not show up as a leaf.
pub(crate) fn untraced(mut waker: &Waker) -> &Waker {
    while std::ptr::eq(waker.vtable(), &VTABLE) {
        // SAFETY: a waker with our vtable is a tracing waker, whose data is a live scope that
        // outlives the borrow of `waker` (module invariants).
        waker = unsafe { scope(waker.data()) }.real;
    }
    waker
}

/// # Safety
/// `data` must point to a live `CaptureScope` (guaranteed: see the module invariants).
unsafe fn scope<'s>(data: *const ()) -> &'s CaptureScope<'s> {
    // SAFETY: by the caller's contract `data` is a `&CaptureScope` that outlives this call.
    unsafe { &*(data as *const CaptureScope<'s>) }
}

/// Moves an owned waker into a `RawWaker` without dropping it.
fn into_raw(waker: Waker) -> RawWaker {
    let waker = ManuallyDrop::new(waker);
    RawWaker::new(waker.data(), waker.vtable())
}

unsafe fn clone_raw(data: *const ()) -> RawWaker {
    let marker = 0u8;
    let own = marker_addr(&marker);
    // SAFETY: only reachable through a tracing waker, whose data is a live scope.
    let scope = unsafe { scope(data) };
    let real = scope.record_then(own, || scope.real.clone());
    std::hint::black_box(&marker);
    into_raw(real)
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    let marker = 0u8;
    let own = marker_addr(&marker);
    // SAFETY: as in `clone_raw`.
    let scope = unsafe { scope(data) };
    scope.record_then(own, || scope.real.wake_by_ref());
    std::hint::black_box(&marker);
}

unsafe fn wake_raw(data: *const ()) {
    // An owned tracing waker is never handed out (see the invariants); waking one is waking
    // by reference, and there is nothing to release.
    // SAFETY: as in `clone_raw`.
    unsafe { wake_by_ref_raw(data) }
}

unsafe fn drop_raw(_data: *const ()) {
    // The scope is borrowed, never owned by a waker: nothing to release.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn clone_returns_the_real_waker_and_records_a_path() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let real = Waker::from(counter.clone());
        let marker = 0u8;
        let scope = CaptureScope::new(&real, marker_addr(&marker));
        let cloned = scope.with_waker(|w| {
            assert!(!w.will_wake(&real), "the tracing waker is not the real one");
            w.clone()
        });
        // (`will_wake` compares vtable addresses, which Miri does not keep unique.)
        assert_eq!(cloned.data(), real.data(), "clone hands out the real waker");
        assert_eq!(
            Arc::strong_count(&counter),
            3,
            "real, counter and the clone"
        );
        cloned.wake();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        scope.with_waker(|w| w.wake_by_ref());
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        let (paths, foreign) = scope.into_paths();
        assert_eq!(
            paths.len(),
            2,
            "one path for the clone, one for wake_by_ref"
        );
        assert_eq!(foreign, 0);
        assert_eq!(Arc::strong_count(&counter), 2);
        drop(real);
        assert_eq!(Arc::strong_count(&counter), 1, "no waker leaked");
    }

    #[test]
    fn nested_scopes_both_record_and_forward() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let real = Waker::from(counter.clone());
        let marker = 0u8;
        let outer = CaptureScope::new(&real, marker_addr(&marker));
        let cloned = outer.with_waker(|outer_waker| {
            let inner = CaptureScope::new(outer_waker, marker_addr(&marker));
            let c = inner.with_waker(|w| w.clone());
            assert_eq!(inner.into_paths().0.len(), 1);
            c
        });
        assert_eq!(outer.into_paths().0.len(), 1);
        assert_eq!(cloned.data(), real.data());
        cloned.wake_by_ref();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(LEAF_BOUNDARY.with(Cell::get), 0, "boundary restored");
    }

    #[test]
    fn untraced_sees_through_nested_tracing_wakers_without_recording() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let real = Waker::from(counter.clone());
        let marker = 0u8;
        let outer = CaptureScope::new(&real, marker_addr(&marker));
        outer.with_waker(|outer_waker| {
            let inner = CaptureScope::new(outer_waker, marker_addr(&marker));
            inner.with_waker(|w| assert_eq!(untraced(w).data(), real.data()));
            assert!(inner.into_paths().0.is_empty());
        });
        assert!(outer.into_paths().0.is_empty());
        assert_eq!(untraced(&real).data(), real.data());
    }

    #[test]
    // The clone is the point: it is what a leaf on another thread does.
    #[allow(clippy::waker_clone_wake)]
    fn clone_on_another_thread_is_counted_not_walked() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let real = Waker::from(counter.clone());
        let marker = 0u8;
        let scope = CaptureScope::new(&real, marker_addr(&marker));
        scope.with_waker(|w| {
            thread::scope(|s| {
                s.spawn(|| w.clone().wake());
            });
        });
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        let (paths, foreign) = scope.into_paths();
        assert!(paths.is_empty());
        assert_eq!(foreign, 1);
    }
}
