//! `tasktrace::spawn`: tokio's `spawn` with a registered, named, traced task, and a join handle
//! that tells the dump which task it awaits.

use crate::registry::TaskRef;
use crate::traced::task_future_at;
use crate::TraceHandle;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Spawns `fut` on the current tokio runtime as a registered task: it appears in every
/// [`dump`](crate::dump()) with its spawn site (this call), its parent task and its trace.
///
/// Panics outside a tokio runtime, like [`tokio::spawn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tasktrace::spawn(async { 6 * 7 });
/// assert_eq!(task.await.unwrap(), 42);
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_at(fut, None, Location::caller())
}

/// [`spawn`] with a name, shown in dumps.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tasktrace::spawn_named("accept loop", std::future::pending::<()>());
/// let dump = tasktrace::dump().await;
/// assert_eq!(dump.task(task.id()).unwrap().name.as_deref(), Some("accept loop"));
/// task.abort();
/// # }
/// ```
#[track_caller]
pub fn spawn_named<F>(name: impl Into<String>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_at(fut, Some(name.into().into_boxed_str()), Location::caller())
}

/// [`spawn`] for a `!Send` future, on the current [`tokio::task::LocalSet`], as
/// [`tokio::task::spawn_local`] (panics outside one).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let rc = std::rc::Rc::new(5);
/// let out = local
///     .run_until(async move { tasktrace::spawn_local(async move { *rc + 1 }).await })
///     .await;
/// assert_eq!(out.unwrap(), 6);
/// # }
/// ```
#[track_caller]
pub fn spawn_local<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (fut, shared) = task_future_at(fut, None, Location::caller());
    JoinHandle {
        inner: tokio::task::spawn_local(fut),
        shared,
    }
}

fn spawn_at<F>(
    fut: F,
    name: Option<Box<str>>,
    at: &'static Location<'static>,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (fut, shared) = task_future_at(fut, name, at);
    JoinHandle {
        inner: tokio::spawn(fut),
        shared,
    }
}

/// The handle of a task spawned with [`spawn`]: tokio's [`JoinHandle`](tokio::task::JoinHandle)
/// plus the task's registry id. Awaiting it inside a registered task records the edge "awaits
/// task N" that dumps show and check for deadlock cycles.
///
/// Dropping it detaches the task, as with tokio.
pub struct JoinHandle<T> {
    inner: tokio::task::JoinHandle<T>,
    shared: TaskRef,
}

impl<T> JoinHandle<T> {
    /// The task's id in dumps.
    pub fn id(&self) -> u64 {
        self.shared.id()
    }

    /// tokio's id of the task.
    pub fn tokio_id(&self) -> tokio::task::Id {
        self.inner.id()
    }

    /// Cancels the task, as [`tokio::task::JoinHandle::abort`]; it leaves the registry when
    /// tokio drops it.
    pub fn abort(&self) {
        self.inner.abort()
    }

    /// True once the task has finished (completed, panicked or been aborted).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// A handle to ask this task alone for its trace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let task = tasktrace::spawn(tokio::time::sleep(std::time::Duration::from_secs(60)));
    /// let trace = task.trace_handle().backtrace().await.unwrap();
    /// assert!(!trace.is_empty());
    /// task.abort();
    /// # }
    /// ```
    pub fn trace_handle(&self) -> TraceHandle {
        TraceHandle::from_shared(self.shared.clone())
    }

    /// tokio's handle (awaiting it directly records no edge).
    pub fn into_tokio(self) -> tokio::task::JoinHandle<T> {
        self.inner
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("tokio_id", &self.inner.id())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = Pin::new(&mut self.inner).poll(cx);
        if out.is_pending() {
            crate::registry::note_await(self.shared.id());
        }
        out
    }
}
