//! How the benchmarks spawn and dump with this repository's `tasktrace`: registered tasks
//! (`tasktrace::spawn`) and `tasktrace::dump()` rendered as text.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// Dumps with `DumpOptions::fresh` (the `ours_fresh` row: every task woken and captured anew,
/// none of the last dump's captures reused).
static FRESH: AtomicBool = AtomicBool::new(false);

/// Sets whether [`dump`] re-captures every task.
pub fn set_fresh(fresh: bool) {
    FRESH.store(fresh, Ordering::Relaxed);
}

/// A registered task.
pub fn spawn<F>(_id: u64, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tasktrace::spawn(fut).into_tokio()
}

/// `tasktrace::dump()`: capture, symbolise and render every registered task.
pub async fn dump() -> String {
    let options = tasktrace::DumpOptions::default().fresh(FRESH.load(Ordering::Relaxed));
    tasktrace::dump_with(options).await.to_string()
}

/// Nothing to forget: the registry drops finished tasks itself.
pub fn clear() {}
