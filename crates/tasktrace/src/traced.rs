//! `traced(fut)`: a future that can be asked for its logical stack trace.
//!
//! # Protocol between a [`TraceHandle`] and its [`Traced`] future
//!
//! They share one [`Shared`] slot (see [`crate::registry::slot`] for its layout and references):
//! - the flags: `REQUESTED` is set by a handle when it queues a request and cleared by the
//!   future when it takes the queue; `FINISHED` or `DROPPED` (together `CLOSED`) is set once,
//!   when the future completes or is dropped. All three change under the slot's stripe lock,
//!   so a relaxed load under it sees them, and no request is ever left queued without the flag.
//! - under the stripe lock: the task's waker (updated only when the executor hands in a waker
//!   that would not wake the same task; a tokio task's root, [`TaskFuture`], registers it
//!   once) and the queue of pending requests.
//! - the stamp and poll count, written only by the polling thread, for readers to display.
//! - the task's identity in the [registry](crate::registry): id, name, parent, spawn site. A
//!   slot is in the registry's scans from [`traced`] until `CLOSED` is set.
//!
//! The fast path of `poll` when nobody asks: one relaxed load of the flags, a `will_wake`
//! comparison (two words; for a [`TaskFuture`], one bool), the stamp stored at the start and
//! the end (one relaxed load of the recent time each, see [`crate::clock`]), the count, and
//! the thread's current task id set for the poll and restored after it (thread-local, see
//! [`crate::registry`]). No allocation, no lock, no syscall. The flag may be read stale; that
//! is fine, because the handle wakes the task after setting it, and the executor's wake/poll
//! handshake orders the flag before the next poll.
//!
//! Why no request is lost: `poll` registers a new waker (under the lock) *before* it loads
//! the flags. A request whose critical section came first is ordered before that lock
//! acquisition, so the load sees `REQUESTED`; one that came after finds the new waker and wakes
//! it. With an unchanged waker, a request always finds a waker that wakes this task.
//!
//! A request is answered on the next poll, which runs the inner future with a tracing waker
//! (see [`crate::waker`]). If that poll never comes (the future is stuck inside a poll, or its
//! executor stopped), the handle gives up at its deadline and says which.

use crate::answer::{Captured, Reply};
use crate::capture::marker_addr;
use crate::registry;
use crate::registry::{Closed, Shared, TaskRef, REQUESTED};
use crate::sync::Arc;
use crate::waker::{self, CaptureScope};
use crate::{clock, Trace, TraceError};
use pin_project_lite::pin_project;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Deadline of [`TraceHandle::backtrace`] unless set with [`TraceHandle::with_deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);

pin_project! {
    /// A future wrapped by [`traced`]: behaves exactly like the inner future, and answers its
    /// [`TraceHandle`]'s requests for a logical stack trace on its next poll.
    pub struct Traced<F> {
        #[pin]
        inner: F,
        shared: TaskRef,
        // The waker of the last poll, to notice cheaply (`will_wake`) when it changes: any
        // executor, or a caller polling it by hand, may hand in another one.
        last_waker: Option<Waker>,
    }

    impl<F> PinnedDrop for Traced<F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().shared.drop_unfinished();
        }
    }
}

pin_project! {
    /// The root future of a tokio task spawned by [`spawn`](crate::spawn()): a [`Traced`]
    /// that registers its waker once. tokio's harness polls a task with the same waker every
    /// time (made from the task's header; moving between workers does not change it), so the
    /// `will_wake` test of [`Traced`] is left out of the poll path.
    pub(crate) struct TaskFuture<F> {
        #[pin]
        inner: F,
        shared: TaskRef,
        waker_registered: bool,
    }

    impl<F> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().shared.drop_unfinished();
        }
    }
}

/// Wraps `fut` so that its logical stack trace can be asked for at any time through the
/// returned handle. Works with any executor; costs next to nothing while nobody asks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// async fn wait_forever() {
///     std::future::pending::<()>().await
/// }
/// async fn leaf() {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await
/// }
/// async fn root() {
///     leaf().await
/// }
/// let (fut, handle) = tasktrace::traced(root());
/// let task = tokio::spawn(fut);
/// let trace = handle.backtrace().await.unwrap();
/// assert!(trace.to_string().contains("leaf"));
/// task.abort();
/// # }
/// ```
#[track_caller]
pub fn traced<F: Future>(fut: F) -> (Traced<F>, TraceHandle) {
    traced_at(fut, None, Location::caller())
}

/// [`traced`] with a name, shown in [`dump`](crate::dump())s.
///
/// ```
/// let (fut, handle) = tasktrace::traced_named("worker", async { 1 });
/// assert_eq!(handle.name(), Some("worker"));
/// assert_eq!(futures::executor::block_on(fut), 1);
/// ```
#[track_caller]
pub fn traced_named<F: Future>(name: impl Into<String>, fut: F) -> (Traced<F>, TraceHandle) {
    traced_at(fut, Some(name.into().into_boxed_str()), Location::caller())
}

pub(crate) fn traced_at<F: Future>(
    fut: F,
    name: Option<Box<str>>,
    created_at: &'static Location<'static>,
) -> (Traced<F>, TraceHandle) {
    let shared = Shared::registered(created_at, name);
    let handle = TraceHandle::from_shared(shared.clone());
    (Traced::from_shared(fut, shared), handle)
}

/// [`traced_at`] for the root future of a tokio task (see [`TaskFuture`]).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn task_future_at<F: Future>(
    fut: F,
    name: Option<Box<str>>,
    created_at: &'static Location<'static>,
) -> (TaskFuture<F>, TaskRef) {
    let shared = Shared::registered(created_at, name);
    let task = TaskFuture {
        inner: fut,
        shared: shared.clone(),
        waker_registered: false,
    };
    (task, shared)
}

impl<F> Traced<F> {
    pub(crate) fn from_shared(inner: F, shared: TaskRef) -> Self {
        Traced {
            inner,
            shared,
            last_waker: None,
        }
    }

    /// A new handle to this future.
    pub fn handle(&self) -> TraceHandle {
        TraceHandle {
            shared: self.shared.clone(),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

/// Marks the end of a poll on every path out of it, unwinding included, and gives the thread
/// back its previous current task.
struct PollStamp<'a> {
    shared: &'a Shared,
    outer_task: u64,
}

impl Drop for PollStamp<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.shared.poll_ended(clock::now());
        registry::set_current(self.outer_task);
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let last_waker = this.last_waker;
        poll_traced(this.inner, this.shared, cx, |shared, cx| {
            if !matches!(last_waker, Some(w) if w.will_wake(cx.waker())) {
                // Inside an outer capture the waker is a tracing waker: keep the real one, and
                // do not let this bookkeeping clone show up in the outer trace.
                let real = waker::untraced(cx.waker());
                if !matches!(last_waker, Some(w) if w.will_wake(real)) {
                    shared.register_waker(real);
                    *last_waker = Some(real.clone());
                }
            }
        })
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let registered = this.waker_registered;
        poll_traced(this.inner, this.shared, cx, |shared, cx| {
            if !*registered {
                shared.register_waker(cx.waker());
                *registered = true;
            }
        })
    }
}

/// The poll of [`Traced`] and [`TaskFuture`]: stamps, the current task, the waker kept up to
/// date by `watch_waker` (before `flags` is loaded: see the module doc), and a capturing poll
/// when a request waits.
#[inline(always)]
fn poll_traced<F: Future>(
    inner: Pin<&mut F>,
    shared: &Shared,
    cx: &mut Context<'_>,
    watch_waker: impl FnOnce(&Shared, &Context<'_>),
) -> Poll<F::Output> {
    shared.poll_started(clock::now());
    let stamp = PollStamp {
        shared,
        outer_task: registry::set_current(shared.id()),
    };
    watch_waker(shared, cx);
    let out = if shared.flags() & REQUESTED != 0 {
        poll_capturing(inner, cx, shared)
    } else {
        inner.poll(cx)
    };
    drop(stamp);
    if out.is_ready() {
        shared.close(Closed::Finished);
    }
    out
}

/// The root boundary of a capture: polls `inner` with a tracing waker. Never inlined, and not
/// a tail call (the marker is used after the poll), so its frame is on the stack during the
/// poll and holds `marker`; whatever the optimiser inlined into it is kept in the trace.
#[inline(never)]
fn poll_capturing<F: Future>(
    inner: Pin<&mut F>,
    cx: &mut Context<'_>,
    shared: &Shared,
) -> Poll<F::Output> {
    let marker = 0u8;
    let requests = shared.take_requests();
    let scope = CaptureScope::new(cx.waker(), marker_addr(&marker));
    let waker = scope.waker();
    let mut tracing_cx = Context::from_waker(&waker);
    let awaits = registry::AwaitScope::enter();
    let out = inner.poll(&mut tracing_cx);
    std::hint::black_box(&marker);
    let awaits = awaits.finish();
    if out.is_ready() {
        requests.answer(Err(TraceError::Finished));
    } else {
        let (paths, foreign) = scope.into_paths();
        requests.answer(Ok(Arc::new(Captured {
            paths,
            foreign,
            awaits,
            polls: shared.stamp().polls,
        })));
    }
    out
}

/// Asks a [`Traced`] future for its logical stack trace. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct TraceHandle {
    pub(crate) shared: TaskRef,
    deadline: Duration,
}

impl std::fmt::Debug for TraceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceHandle")
            .field("id", &self.shared.id())
            .field("created_at", &self.shared.created_at())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl TraceHandle {
    pub(crate) fn from_shared(shared: TaskRef) -> Self {
        TraceHandle {
            shared,
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// The same handle with another deadline for [`backtrace`](Self::backtrace).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Where the traced future was created (the call to [`traced`], or to
    /// [`spawn`](crate::spawn())).
    pub fn created_at(&self) -> &'static Location<'static> {
        self.shared.created_at()
    }

    /// The task's id in the registry: the `id` it has in a [`dump`](crate::dump()).
    pub fn id(&self) -> u64 {
        self.shared.id()
    }

    /// The name given with [`traced_named`] or [`spawn_named`](crate::spawn_named()).
    pub fn name(&self) -> Option<&str> {
        self.shared.name()
    }

    /// True once the traced future has completed or been dropped (it has then left the
    /// registry).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The logical stack trace of the traced future: the tree of futures it is suspended in,
    /// from its root down to every leaf it waits on.
    ///
    /// The future is woken and traced on its next poll. Fails at once if it has completed or
    /// been dropped, and after the deadline (default 1 s) if it is not polled in time — for
    /// instance because it is stuck inside a blocking call.
    pub async fn backtrace(&self) -> Result<Trace, TraceError> {
        let captured = self.capture(self.deadline).await?;
        Ok(captured.to_trace())
    }

    /// Requests a capture and waits for it, up to `deadline`.
    pub(crate) fn capture(&self, deadline: Duration) -> Request {
        Request::new(self.shared.clone(), deadline)
    }
}

/// A pending capture request, answered by the traced future or by the deadline.
pub(crate) struct Request {
    shared: TaskRef,
    slot: Arc<Reply>,
    deadline: Duration,
    timer: futures_timer::Delay,
    queued: Option<Result<(), TraceError>>,
}

impl Request {
    fn new(shared: TaskRef, deadline: Duration) -> Self {
        Request {
            shared,
            slot: Arc::new(Reply::default()),
            deadline,
            timer: futures_timer::Delay::new(deadline),
            queued: None,
        }
    }
}

impl Future for Request {
    type Output = Result<Arc<Captured>, TraceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.queued.is_none() {
            let queued = this.shared.request(this.slot.clone());
            if let Err(e) = &queued {
                return Poll::Ready(Err(e.clone()));
            }
            this.queued = Some(queued);
        }
        if let Poll::Ready(answer) = this.slot.poll_answer(cx) {
            return Poll::Ready(answer);
        }
        if Pin::new(&mut this.timer).poll(cx).is_ready() {
            this.shared.withdraw(&this.slot);
            // The answer may have raced the timer.
            if let Poll::Ready(answer) = this.slot.poll_answer(cx) {
                return Poll::Ready(answer);
            }
            let stamp = this.shared.stamp();
            return Poll::Ready(Err(TraceError::Timeout {
                deadline: this.deadline,
                in_poll: stamp.in_poll,
                never_polled: stamp.polls == 0,
            }));
        }
        Poll::Pending
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if matches!(self.queued, Some(Ok(()))) {
            self.shared.withdraw(&self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The request/answer handshake driven by hand (these run under Miri in CI).
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A leaf that stores a clone of the waker and stays pending until `ready` is set.
    struct Leaf {
        stored: Option<Waker>,
        ready: bool,
    }
    impl Future for Leaf {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.ready {
                return Poll::Ready(5);
            }
            self.stored = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn request_wakes_the_task_and_the_next_poll_answers() {
        let task_wakes = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = Waker::from(task_wakes.clone());
        let mut task_cx = Context::from_waker(&task_waker);
        let (fut, handle) = traced(Leaf {
            stored: None,
            ready: false,
        });
        let mut fut = pin!(fut);
        assert!(fut.as_mut().poll(&mut task_cx).is_pending());

        let asker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut request = pin!(handle.capture(Duration::from_secs(30)));
        assert!(request
            .as_mut()
            .poll(&mut Context::from_waker(&asker))
            .is_pending());
        assert_eq!(task_wakes.0.load(Ordering::SeqCst), 1, "the task was woken");

        assert!(fut.as_mut().poll(&mut task_cx).is_pending());
        let Poll::Ready(Ok(captured)) = request.as_mut().poll(&mut Context::from_waker(&asker))
        else {
            panic!("the capturing poll answered");
        };
        assert_eq!(captured.foreign, 0);
        if !cfg!(miri) {
            assert_eq!(captured.paths.len(), 1, "one leaf cloned the waker");
        }
        // The leaf kept the task's real waker, not the tracing one.
        let stored = fut.as_mut().project().inner.stored.clone().unwrap();
        assert_eq!(stored.data(), task_waker.data());
        stored.wake();
        assert_eq!(task_wakes.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn completion_and_drop_answer_pending_requests() {
        let task_waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&task_waker);
        let (fut, handle) = traced(Leaf {
            stored: None,
            ready: false,
        });
        let mut fut = pin!(fut);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let mut request = pin!(handle.capture(Duration::from_secs(30)));
        assert!(request.as_mut().poll(&mut cx).is_pending());
        fut.as_mut().project().inner.ready = true;
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(5));
        assert!(matches!(
            request.as_mut().poll(&mut cx),
            Poll::Ready(Err(TraceError::Finished))
        ));

        let (fut, handle) = traced(Leaf {
            stored: None,
            ready: false,
        });
        let mut request = pin!(handle.capture(Duration::from_secs(30)));
        assert!(request.as_mut().poll(&mut cx).is_pending());
        drop(fut);
        assert!(matches!(
            request.as_mut().poll(&mut cx),
            Poll::Ready(Err(TraceError::Dropped))
        ));
    }

    #[test]
    fn a_task_future_registers_its_waker_once_and_answers() {
        let task_wakes = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = Waker::from(task_wakes.clone());
        let mut task_cx = Context::from_waker(&task_waker);
        let leaf = Leaf {
            stored: None,
            ready: false,
        };
        let (fut, shared) = task_future_at(leaf, None, Location::caller());
        let handle = TraceHandle::from_shared(shared);
        let mut fut = pin!(fut);
        let asker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut asker_cx = Context::from_waker(&asker);

        // Asked before its first poll: no waker to wake yet; the first poll answers.
        let mut request = pin!(handle.capture(Duration::from_secs(30)));
        assert!(request.as_mut().poll(&mut asker_cx).is_pending());
        assert_eq!(task_wakes.0.load(Ordering::SeqCst), 0);
        assert!(fut.as_mut().poll(&mut task_cx).is_pending());
        assert!(matches!(
            request.as_mut().poll(&mut asker_cx),
            Poll::Ready(Ok(_))
        ));

        // Asked again: the waker registered by the first poll is woken.
        let mut request = pin!(handle.capture(Duration::from_secs(30)));
        assert!(request.as_mut().poll(&mut asker_cx).is_pending());
        assert_eq!(task_wakes.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(fut.as_mut().poll(&mut task_cx).is_pending());
        assert!(matches!(
            request.as_mut().poll(&mut asker_cx),
            Poll::Ready(Ok(_))
        ));
        fut.as_mut().project().inner.ready = true;
        assert_eq!(fut.as_mut().poll(&mut task_cx), Poll::Ready(5));
        assert!(handle.is_closed());
    }
}

#[cfg(all(test, tasktrace_loom))]
mod loom_tests {
    //! Model-checks the handshake: whatever the interleaving of a request and the future's
    //! poll (first poll registering its waker, or a later one), the request is either answered
    //! by that poll or the task is woken so that its next poll answers it.
    use super::*;
    use crate::sync::Ordering;
    use std::pin::pin;
    use std::task::Wake;

    struct Flag(loom::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn check(polled_before: bool) {
        loom::model(move || {
            let (fut, handle) = traced(std::future::pending::<()>());
            let woken = std::sync::Arc::new(Flag(loom::sync::atomic::AtomicBool::new(false)));
            let waker = Waker::from(woken.clone());
            let mut fut = Box::pin(fut);
            if polled_before {
                assert!(fut
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
            }
            let slot = Arc::new(Reply::default());
            let shared = handle.shared.clone();
            let requester = {
                let slot = slot.clone();
                loom::thread::spawn(move || shared.request(slot).unwrap())
            };
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            requester.join().unwrap();
            let asker = Waker::from(std::sync::Arc::new(Flag(
                loom::sync::atomic::AtomicBool::new(false),
            )));
            let answered = slot
                .poll_answer(&mut Context::from_waker(&asker))
                .is_ready();
            let woke = woken.0.load(Ordering::SeqCst);
            assert!(answered || woke, "request lost: neither answered nor woken");
            if !answered {
                // The wake-up leads to a poll that answers.
                assert!(fut
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                let mut answer = pin!(std::future::poll_fn(|cx| slot.poll_answer(cx)));
                assert!(answer
                    .as_mut()
                    .poll(&mut Context::from_waker(&asker))
                    .is_ready());
            }
        });
    }

    #[test]
    fn request_racing_the_first_poll() {
        check(false);
    }

    #[test]
    fn request_racing_a_later_poll() {
        check(true);
    }
}
