//! `dump()`: every registered task, its state and its logical stack trace, at once.
//!
//! How a dump runs, and why it never stops the program:
//! 1. It copies the registry (each shard locked only to clone `Arc`s) and reads each task's
//!    poll stamp: idle since when, inside a poll since when, or never polled.
//! 2. A task not polled since the last dump captured it is still suspended where that capture
//!    found it: the capture is reused and the task is left alone ([`crate::capture_cache`];
//!    [`DumpOptions::fresh`] turns this off). Every other task gets a request and is woken
//!    (the handshake of [`crate::traced`]). Each answers on its own next poll, on whatever
//!    worker or executor polls it, with a tracing waker: captures run concurrently, spread
//!    over the workers, and no worker ever waits for another.
//! 3. It waits — as an ordinary future, one wake-up per answer — until every task has answered,
//!    or the deadline passes, or every task still silent is stuck inside one poll for at least
//!    [`DumpOptions::stuck_after`]. Such a task is reported as running, never waited for.
//! 4. It builds the [`Dump`] — symbolising each distinct capture once (addresses are cached
//!    process-wide) — on tokio's blocking pool when a tokio runtime is current, so that a cold
//!    symbolisation or a dump of many tasks does not hold a worker; elsewhere in place.

use crate::addr_hash::BuildAddrHasher;
use crate::answer::{Captured, Reply};
use crate::capture::RawPath;
use crate::capture_cache::CaptureCache;
use crate::clock::Elapsed;
use crate::registry;
use crate::registry::{Shared, Stamp, TaskRef};
use crate::sync::Arc;
use crate::TraceError;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tasktrace_model::{Dump, Location, Task, TaskState};

/// How long a dump waits for tasks to answer unless told otherwise.
pub const DEFAULT_DUMP_DEADLINE: Duration = Duration::from_secs(1);

/// How often a waiting dump checks whether the silent tasks are all stuck inside a poll.
const STUCK_CHECK: Duration = Duration::from_millis(10);

/// Options of [`dump_with`].
///
/// ```
/// use std::time::Duration;
/// let options = tasktrace::DumpOptions::default().deadline(Duration::from_millis(250));
/// assert_eq!(options.deadline, Duration::from_millis(250));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DumpOptions {
    /// The longest a dump waits for tasks to be polled (default 1 s). Tasks that have not
    /// answered by then are reported without a trace, with their state.
    pub deadline: Duration,
    /// A task inside one poll for at least this long is taken to be stuck (blocked in
    /// synchronous code): once only such tasks are left, the dump ends early (default 50 ms).
    pub stuck_after: Duration,
    /// With the `snapshot` feature: also list every other tokio task, read from a frozen
    /// copy of the process ([`crate::snapshot`]); default true. Without the feature, unused.
    pub snapshot: bool,
    /// Wake and capture every task, even one not polled since the last dump captured it.
    /// By default (false) such a task is left alone: a future changes only when it is polled,
    /// so it is still suspended where that capture found it, and the capture is reused (the
    /// poll count says whether it was polled since). Fresh dumps also show which tasks still
    /// get polled: a task whose executor stopped then reads "not captured".
    pub fresh: bool,
    /// With the `snapshot` feature: also read the values of the async fn frames of the
    /// tasks the snapshot lists (their arguments and the locals kept across their await),
    /// of the task-locals in scope, and the fields their `tracing` spans recorded; default
    /// false.
    pub values: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            deadline: DEFAULT_DUMP_DEADLINE,
            stuck_after: Duration::from_millis(50),
            snapshot: true,
            fresh: false,
            values: false,
        }
    }
}

impl DumpOptions {
    /// Sets [`deadline`](Self::deadline).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets [`stuck_after`](Self::stuck_after).
    pub fn stuck_after(mut self, stuck_after: Duration) -> Self {
        self.stuck_after = stuck_after;
        self
    }

    /// Sets [`fresh`](Self::fresh).
    pub fn fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }

    /// Sets [`snapshot`](Self::snapshot).
    pub fn snapshot(mut self, snapshot: bool) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// Sets [`values`](Self::values).
    pub fn values(mut self, values: bool) -> Self {
        self.values = values;
        self
    }
}

/// Every registered task — each [`traced`](crate::traced()) future and each task of
/// [`spawn`](crate::spawn()) — with its id, name, spawn site, parent, state, poll count,
/// the tasks it awaits, and its logical stack trace. Deadlock cycles are in
/// [`Dump::deadlocks`].
///
/// Works on any executor; never blocks one; returns within the deadline (1 s) plus the
/// symbolisation time. See [`dump_with`] for the options.
///
/// ```
/// # #[tokio::main]
/// # async fn main() {
/// async fn wait_for_orders(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
///     rx.await.unwrap()
/// }
/// let (_tx, rx) = tokio::sync::oneshot::channel();
/// let task = tasktrace::spawn_named("orders", wait_for_orders(rx));
/// let dump = tasktrace::dump().await;
/// let entry = dump.task(task.id()).unwrap();
/// assert_eq!(entry.name.as_deref(), Some("orders"));
/// assert!(entry.trace.to_string().contains("wait_for_orders"));
/// println!("{dump}");
/// task.abort();
/// # }
/// ```
pub async fn dump() -> Dump {
    dump_with(DumpOptions::default()).await
}

/// [`dump`] with options.
///
/// ```
/// # futures::executor::block_on(async {
/// use std::time::Duration;
/// let dump = tasktrace::dump_with(
///     tasktrace::DumpOptions::default().deadline(Duration::from_millis(100)),
/// )
/// .await;
/// println!("{}", serde_json::to_string(&dump).unwrap());
/// # });
/// ```
pub async fn dump_with(options: DumpOptions) -> Dump {
    let number = CaptureCache::begin();
    let tasks = registry::snapshot();
    let start = Elapsed::start();
    let kept = if options.fresh {
        None
    } else {
        CaptureCache::last()
    };
    let mut kept = kept.as_deref().map(CaptureCache::reader);
    let collector = std::sync::Arc::new(Collector::default());
    let waker = Waker::from(collector.clone());
    let mut asked = Vec::with_capacity(tasks.len());
    let mut requested = 0;
    for shared in tasks {
        let before = shared.stamp();
        if let Some(captured) = kept.as_mut().and_then(|k| k.reusable(shared.id(), &before)) {
            // Not polled since the last dump captured it: still suspended there.
            asked.push(Asked {
                shared,
                before,
                slot: None,
                answer: Some(Ok(captured)),
                after: None,
            });
            continue;
        }
        let slot = Arc::new(Reply::with_waker(waker.clone()));
        // A closed task has finished since the snapshot: left out.
        if shared.request(slot.clone()).is_ok() {
            requested += 1;
            asked.push(Asked {
                shared,
                before,
                slot: Some(slot),
                answer: None,
                after: None,
            });
        }
    }
    drop(waker);
    collector.expect(requested);

    Wait {
        collector: &collector,
        asked: &mut asked,
        deadline: futures_timer::Delay::new(options.deadline),
        check: futures_timer::Delay::new(STUCK_CHECK),
        stuck_after: options.stuck_after,
    }
    .await;

    // Answers and the states of the silent tasks are read now; the rest is plain CPU work on
    // owned data, done off the worker.
    let end = Elapsed::start();
    for a in &mut asked {
        if let (None, Some(slot)) = (&a.answer, &a.slot) {
            a.answer = slot.take_answer().or_else(|| {
                a.shared.withdraw(slot);
                slot.take_answer()
            });
        }
        if a.answer.is_none() {
            a.after = Some(a.shared.stamp());
        }
    }
    let deadline = options.deadline;
    #[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
    if options.snapshot {
        let snapshot = crate::snapshot::SnapshotOptions::default().values(options.values);
        return off_worker(move || {
            crate::snapshot::join(assemble(asked, number, &start, &end, deadline), &snapshot)
        })
        .await;
    }
    off_worker(move || registry_only(assemble(asked, number, &start, &end, deadline), &options))
        .await
}

/// Builds the dump (number `number`) from the answers: one `Task` per task still alive, each
/// distinct capture symbolised once; keeps the captures for the next dump.
fn assemble(
    asked: Vec<Asked>,
    number: u64,
    start: &Elapsed,
    end: &Elapsed,
    deadline: Duration,
) -> Dump {
    let mut uniques: Vec<&Arc<Captured>> = Vec::new();
    let mut kept = CaptureCache::new(number, asked.len());
    let mut index: HashMap<&[RawPath], usize, BuildAddrHasher> = HashMap::default();
    let mut tasks = Vec::with_capacity(asked.len());
    let mut trace_of: Vec<Option<usize>> = Vec::with_capacity(asked.len());
    let (mut finished, mut silent) = (0usize, 0usize);
    for a in &asked {
        let mut task = describe(&a.shared, a.before.polls);
        let mut unique = None;
        match (&a.answer, &a.after) {
            (Some(Ok(captured)), _) => {
                task.state = state_before(&a.before, start);
                task.awaits = captured.awaits.clone();
                if captured.paths.is_empty() {
                    task.error = Some(
                        "no leaf touched the waker in the capturing poll (std::future::pending, \
                         or a child of FuturesUnordered?)"
                            .into(),
                    );
                } else {
                    if captured.foreign > 0 {
                        task.error = Some(format!(
                            "{} waker clone(s) on other threads during the capture are not shown",
                            captured.foreign
                        ));
                    }
                    let next = uniques.len();
                    let i = *index.entry(&captured.paths).or_insert(next);
                    if i == next {
                        uniques.push(captured);
                    }
                    unique = Some(i);
                }
                // Kept for the next dump, tasks with equal captures sharing one. A capture
                // without a path is not kept: that poll cloned no waker, so nothing may wake
                // the task again but a dump, and asking again is the only way to see it move.
                if let Some(i) = unique {
                    let u = uniques[i];
                    let same = u.awaits == captured.awaits && u.foreign == captured.foreign;
                    let shared = if same { u } else { captured };
                    // A reused capture may be another task's: this task's count at its
                    // capture is the one read now (the condition of the reuse).
                    let polls = if a.slot.is_none() {
                        a.before.polls
                    } else {
                        captured.polls
                    };
                    kept.push(task.id, polls, shared.clone());
                }
            }
            (Some(Err(TraceError::Finished | TraceError::Dropped)), _) => {
                finished += 1;
                continue;
            }
            (Some(Err(e)), _) => {
                task.state = TaskState::Unknown;
                task.error = Some(e.to_string());
            }
            (None, after) => {
                silent += 1;
                let now = after.unwrap_or(a.before);
                if now.in_poll {
                    let since = end.since(now.tick);
                    task.state = TaskState::Running { since };
                    task.error = Some(format!("inside poll for {since:.1?}; not captured"));
                } else if now.polls == 0 {
                    task.state = TaskState::Scheduled;
                    task.error = Some(format!(
                        "never polled since it was created {:.1?} ago; not captured",
                        // Before the first poll, the stamp is the creation tick.
                        end.since(now.tick)
                    ));
                } else {
                    task.state = TaskState::Scheduled;
                    task.error = Some(format!(
                        "woken for the dump but not polled within {deadline:?}; not captured"
                    ));
                }
            }
        }
        tasks.push(task);
        trace_of.push(unique);
    }
    let traces: Vec<tasktrace_model::Trace> =
        uniques.iter().map(|c| c.to_trace().into_model()).collect();
    for (task, unique) in tasks.iter_mut().zip(trace_of) {
        if let Some(i) = unique {
            task.trace = traces[i].clone();
        }
    }
    kept.keep();
    let mut dump = Dump::new(tasks);
    if silent > 0 {
        dump.notes.push(format!(
            "{silent} task(s) could not be captured (inside a poll, or not polled in time)"
        ));
    }
    if finished > 0 {
        dump.notes.push(format!(
            "{finished} task(s) finished during the dump and are left out"
        ));
    }
    dump
}

/// The registry's dump when no snapshot is joined to it: an empty one says why it is empty.
fn registry_only(mut dump: Dump, options: &DumpOptions) -> Dump {
    if dump.tasks.is_empty() {
        let why = if !cfg!(feature = "snapshot") {
            "the `snapshot` feature lists every tokio task"
        } else if !cfg!(target_os = "linux") {
            "the `snapshot` feature, which lists every tokio task, works on Linux only"
        } else if !options.snapshot {
            "DumpOptions::snapshot is off"
        } else {
            "no snapshot in this build"
        };
        dump.notes.push(format!(
            "no tasks: none was started with tasktrace::spawn or traced ({why})"
        ));
    }
    dump
}

/// Runs `f` on tokio's blocking pool when a tokio runtime is current (so that a cold
/// symbolisation of many tasks does not hold a worker), else right here.
async fn off_worker<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    #[cfg(all(feature = "tokio", not(tasktrace_loom)))]
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let job = std::sync::Arc::new(Mutex::new(Some(f)));
        let taken = job.clone();
        let out = rt
            .spawn_blocking(move || {
                let f = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
                f.map(|f| f())
            })
            .await;
        match out {
            Ok(Some(r)) => return r,
            Ok(None) => unreachable!("the job runs once"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down and never ran it.
            Err(_) => {}
        }
        let f = job.lock().unwrap_or_else(|e| e.into_inner()).take();
        return f.expect("a cancelled job was not run")();
    }
    f()
}

/// One task asked for its trace.
struct Asked {
    shared: TaskRef,
    /// Its stamp when the dump began.
    before: Stamp,
    /// Where its answer comes; `None` when its last capture was reused.
    slot: Option<Arc<Reply>>,
    answer: Option<Result<Arc<Captured>, TraceError>>,
    /// Its stamp when the dump gave up on it (no answer).
    after: Option<Stamp>,
}

/// The task's identity and poll count when the dump began, without state or trace.
pub(crate) fn describe(shared: &Shared, polls: u64) -> Task {
    let mut task = Task::new(shared.id());
    task.name = shared.name().map(str::to_owned);
    let at = shared.created_at();
    task.spawned_at = Some(Location::new(at.file(), at.line(), Some(at.column())));
    let parent = shared.parent();
    task.parent = (parent != 0).then_some(parent);
    task.polls = Some(polls);
    task
}

/// The state of a task at the moment the dump began.
fn state_before(before: &Stamp, start: &Elapsed) -> TaskState {
    if before.polls == 0 && !before.in_poll {
        TaskState::Scheduled
    } else if before.in_poll {
        TaskState::Running {
            since: start.since(before.tick),
        }
    } else {
        TaskState::Idle {
            since: start.since(before.tick),
        }
    }
}

/// Counts answers and wakes the dump (one waker shared by every slot).
///
/// Only the last expected answer wakes the dump (the deadline and stuck-check timers wake it
/// otherwise): one wake-up per dump instead of one per task, which with 10,000 tasks was a
/// futex wake of the dumping thread from the workers for nearly every answer.
struct Collector {
    answered: AtomicUsize,
    /// How many answers the dump waits for; `usize::MAX` while requests are being queued.
    expected: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            answered: AtomicUsize::new(0),
            expected: AtomicUsize::new(usize::MAX),
            waker: Mutex::new(None),
        }
    }
}

impl Collector {
    /// Sets the number of answers to wait for. `Wait::poll` reads the count after it
    /// registered its waker, and each answer reads `expected` after it counted itself, all
    /// sequentially consistent: either the dump sees the last answer, or the last answer sees
    /// `expected` and the registered waker.
    fn expect(&self, n: usize) {
        self.expected.store(n, Ordering::SeqCst);
    }
}

impl Wake for Collector {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        let answered = self.answered.fetch_add(1, Ordering::SeqCst) + 1;
        if answered < self.expected.load(Ordering::SeqCst) {
            return;
        }
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Waits for every answer, the deadline, or only stuck tasks left.
struct Wait<'a> {
    collector: &'a Collector,
    asked: &'a mut Vec<Asked>,
    deadline: futures_timer::Delay,
    check: futures_timer::Delay,
    stuck_after: Duration,
}

impl Wait<'_> {
    /// True when every task that has not answered is inside one poll for `stuck_after` or
    /// more. Takes the answers that have come meanwhile.
    fn only_stuck_left(&mut self) -> bool {
        let now = Elapsed::start();
        let mut stuck = true;
        for a in self.asked.iter_mut() {
            if let (None, Some(slot)) = (&a.answer, &a.slot) {
                a.answer = slot.take_answer();
            }
            if a.answer.is_none() {
                let s = a.shared.stamp();
                if !(s.in_poll && now.since(s.tick) >= self.stuck_after) {
                    stuck = false;
                }
            }
        }
        stuck
    }
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        *this
            .collector
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if this.collector.answered.load(Ordering::SeqCst)
            >= this.collector.expected.load(Ordering::SeqCst)
        {
            return Poll::Ready(());
        }
        if Pin::new(&mut this.deadline).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        while Pin::new(&mut this.check).poll(cx).is_ready() {
            if this.only_stuck_left() {
                return Poll::Ready(());
            }
            this.check.reset(STUCK_CHECK);
        }
        Poll::Pending
    }
}
