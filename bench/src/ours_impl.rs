//! How the benchmarks spawn and dump with this repository's `tasktrace`: registered tasks
//! (`tasktrace::spawn`) and `tasktrace::dump()` rendered as text.

use std::future::Future;

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
    tasktrace::dump().await.to_string()
}

/// Nothing to forget: the registry drops finished tasks itself.
pub fn clear() {}
