//! [`Trace`]: the model's tree of logical frames, plus the scoped-trace primitive
//! ([`Trace::root`] / [`Trace::leaf`]) that every capture rests on.

use crate::capture::{capture_between, marker_addr, RawPath};
use crate::symbolize::symbolize;
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A logical stack trace: a tree of frames from the root down to every leaf.
///
/// It is the model crate's [`tasktrace_model::Trace`] (reach it through `Deref`, e.g.
/// `trace.roots`, or take it with [`Trace::into_model`]); `Display` renders the
/// `╼ └╼ ├╼ │` tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Trace(tasktrace_model::Trace);

impl Trace {
    /// The plain data tree.
    pub fn into_model(self) -> tasktrace_model::Trace {
        self.0
    }
}

impl From<tasktrace_model::Trace> for Trace {
    fn from(t: tasktrace_model::Trace) -> Self {
        Trace(t)
    }
}

impl From<Trace> for tasktrace_model::Trace {
    fn from(t: Trace) -> Self {
        t.0
    }
}

impl Deref for Trace {
    type Target = tasktrace_model::Trace;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Trace {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A root scope active on this thread.
struct ActiveRoot {
    marker: usize,
    paths: Vec<RawPath>,
}

thread_local! {
    /// Active roots on this thread, innermost last. Leaves record into the innermost one.
    static ROOTS: RefCell<Vec<ActiveRoot>> = const { RefCell::new(Vec::new()) };
}

/// Pops the roots pushed since `depth` when a root scope ends, unwinding included.
struct RootGuard {
    depth: usize,
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        ROOTS.with(|r| r.borrow_mut().truncate(self.depth));
    }
}

impl Trace {
    /// Runs `f` and returns its result with the trace of every [`Trace::leaf`] called beneath
    /// it: a "downtrace" from this call to each leaf, in execution order.
    ///
    /// Roots nest: leaves belong to the innermost root of their thread.
    ///
    /// ```
    /// use tasktrace::Trace;
    ///
    /// #[inline(never)]
    /// fn bar() { Trace::leaf() }
    /// #[inline(never)]
    /// fn baz() { Trace::leaf() }
    /// #[inline(never)]
    /// fn foo() { bar(); baz(); }
    ///
    /// let ((), trace) = Trace::root(|| foo());
    /// let text = trace.to_string();
    /// assert!(text.find("bar").unwrap() < text.find("baz").unwrap());
    /// ```
    #[inline(never)]
    pub fn root<R>(f: impl FnOnce() -> R) -> (R, Trace) {
        let marker = 0u8;
        let depth = ROOTS.with(|r| {
            let mut roots = r.borrow_mut();
            roots.push(ActiveRoot {
                marker: marker_addr(&marker),
                paths: Vec::new(),
            });
            roots.len() - 1
        });
        let guard = RootGuard { depth };
        let result = f();
        std::hint::black_box(&marker);
        let paths = ROOTS.with(|r| {
            r.borrow_mut()
                .get_mut(depth)
                .map(|root| std::mem::take(&mut root.paths))
                .unwrap_or_default()
        });
        drop(guard);
        let mut trace = tasktrace_model::Trace::new();
        for path in &paths {
            trace.insert_path(symbolize(path, Some(file!())));
        }
        (result, Trace(trace))
    }

    /// Contributes the path from the innermost active [`Trace::root`] of this thread down to
    /// the caller of `leaf`. Outside any root it does nothing (one thread-local read).
    #[inline(always)]
    pub fn leaf() {
        // The local used after the call keeps the call from being a tail call, so the caller's
        // frame is still on the stack while `leaf_inner` walks it.
        let keep = 0u8;
        leaf_inner();
        std::hint::black_box(&keep);
    }
}

#[inline(never)]
fn leaf_inner() {
    let marker = 0u8;
    let leaf_marker = marker_addr(&marker);
    let root_marker = ROOTS.with(|r| r.borrow().last().map(|root| root.marker));
    let Some(root_marker) = root_marker else {
        return;
    };
    let path = capture_between(leaf_marker, root_marker);
    ROOTS.with(|r| {
        if let Some(root) = r.borrow_mut().last_mut() {
            root.paths.push(path);
        }
    });
    std::hint::black_box(&marker);
}
