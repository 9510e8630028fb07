//! The seed program of the project, traced: `foo` → `bar` → `join!(fiz, buz)` → leaves.
//!
//! Line numbers matter: the tests and the README quote them (`foo` awaits at line 20:11).
//! Every function is a plain `async fn`, exactly as a user would write it: no annotations.
//! The example `taskdump` prints this trace; `tests/seed_tree.rs` checks it in every profile.

use std::task::Poll;
/// A leaf that stores the waker and never completes.
pub async fn pending() {
    let mut waker = None;
    std::future::poll_fn(|cx| {
        waker = Some(cx.waker().clone());
        Poll::<()>::Pending
    })
    .await
}

/// The root: awaits `bar`.
pub async fn foo() {
    bar().await;
}

/// Joins two branches.
pub async fn bar() {
    tokio::join!(fiz(), buz());
}

/// First branch: waits on the leaf directly.
pub async fn fiz() {
    pending().await;
}

/// Second branch: one more level before the leaf.
pub async fn buz() {
    baz().await;
}

/// Waits on the leaf.
pub async fn baz() {
    pending().await;
}

/// Spawns the traced seed program on the current tokio runtime and returns its trace.
pub async fn trace_seed() -> Result<tasktrace::Trace, tasktrace::TraceError> {
    let (fut, handle) = tasktrace::traced(foo());
    let task = tokio::spawn(fut);
    let trace = handle.backtrace().await;
    task.abort();
    trace
}
