//! A stall watchdog: registered tasks blocked inside one poll, or idle for too long, reported
//! through [`tracing`] (cargo feature `watchdog`).
//!
//! ```no_run
//! use std::time::Duration;
//! use tasktrace::watchdog::WatchdogConfig;
//!
//! let _watchdog = tasktrace::watchdog(
//!     WatchdogConfig::default()
//!         .in_poll_after(Duration::from_millis(500))
//!         .idle_after(Duration::from_secs(30))
//!         .watch_idle(|task| task.name.as_deref().is_some_and(|n| n.starts_with("request"))),
//! )?;
//! // ... the program runs; dropping `_watchdog` stops it.
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It runs on its own thread, so a blocked worker (or a whole stalled runtime) does not stop
//! it. Every [`interval`](WatchdogConfig::interval) it reads each registered task's poll
//! stamp — the same atomics a [`dump`](crate::dump()) reads, written by every poll anyway — so
//! it adds nothing to the poll path. Two kinds of `WARN` events, target `tasktrace::watchdog`:
//!
//! - **inside one poll** longer than [`in_poll_after`](WatchdogConfig::in_poll_after): the
//!   task is running synchronous code (a blocking call, a long loop) and holds its worker
//!   thread. A task inside a poll cannot be traced, so the event has its id, name, spawn site
//!   and how long (`in_poll_for`).
//! - **idle** longer than [`idle_after`](WatchdogConfig::idle_after) (off by default: many
//!   tasks wait for hours by design) and accepted by [`watch_idle`](WatchdogConfig::watch_idle):
//!   the task is woken once for a capture, like a dump does, and the event carries its logical
//!   stack trace (`trace`), which says where it waits. The watchdog's own capture polls do not
//!   count as activity; anything else that polls the task does, including dumps.
//!
//! With the `snapshot` feature, idle reports cover every tokio task, not only the registered
//! ones: every [`snapshot_interval`](WatchdogConfig::snapshot_interval) the watchdog takes a
//! [snapshot](crate::snapshot) (a fork: a pause of 5–30 ms, figures in `docs/BENCHMARKS.md`)
//! and reports a task that is not in the registry once it has been seen suspended at the same
//! await points in every snapshot for [`idle_after`](WatchdogConfig::idle_after) (tokio
//! records no poll times; see `snapshots.rs` for what that can and cannot tell). Such an event
//! has `tokio_task_id` instead of `task_id`. Tasks inside a poll are seen only in the registry.
//!
//! With the snapshots comes a third kind, an `ERROR`: a **deadlock**, tasks each awaiting the
//! next (through join handles, or tokio locks another holds) in two snapshots in a row; the
//! event names the cycle (`tokio_task_ids`) and carries each task's trace.
//!
//! Event fields: `task_id`, `task_name` (when named), `spawned_at`, and `in_poll_for` or
//! `idle_for` and `trace`. Each task is reported at most once per
//! [`repeat_after`](WatchdogConfig::repeat_after), and at most
//! [`max_reports`](WatchdogConfig::max_reports) per scan.

use crate::answer::Captured;
use crate::clock::Elapsed;
use crate::model::{Task, TaskState};
use crate::registry;
use crate::registry::{Shared, TaskRef};
use crate::sync::Arc;
use crate::traced::Request;
use crate::{TraceError, TraceHandle};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

#[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
mod snapshots;

/// The `tracing` target of the watchdog's events.
pub const TARGET: &str = "tasktrace::watchdog";

/// At most this many idle tasks are traced per scan (the others wait for the next scans).
const MAX_CAPTURES: usize = 256;

type IdleFilter = std::sync::Arc<dyn Fn(&Task) -> bool + Send + Sync>;

/// What [`watchdog`](crate::watchdog()) reports, and how often.
///
/// ```
/// use std::time::Duration;
/// let config = tasktrace::watchdog::WatchdogConfig::default()
///     .interval(Duration::from_millis(250))
///     .idle_after(Duration::from_secs(10));
/// assert_eq!(config.idle_after, Some(Duration::from_secs(10)));
/// assert_eq!(config.in_poll_after, Some(Duration::from_secs(1)));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WatchdogConfig {
    /// How often the registry is scanned (default 1 s).
    pub interval: Duration,
    /// Report tasks inside one poll for this long: a blocked worker (default 1 s; `None`: off).
    pub in_poll_after: Option<Duration>,
    /// Report tasks idle (suspended, not woken) for this long, with their trace (default
    /// `None`: off).
    pub idle_after: Option<Duration>,
    /// Report each task at most once per this much time (default 60 s).
    pub repeat_after: Duration,
    /// How long to wait for an idle task's trace before reporting it without (default 500 ms).
    pub trace_deadline: Duration,
    /// At most this many events per scan; the others come at the next scans, and one event
    /// (at most once per [`repeat_after`](Self::repeat_after)) says how many were held back
    /// (default 20).
    pub max_reports: usize,
    /// With the `snapshot` feature and [`idle_after`](Self::idle_after) set: how often a
    /// snapshot is taken to watch the tasks the registry does not know (default 10 s; `None`:
    /// only registered tasks are watched). Each snapshot pauses the program for the time of a
    /// `fork()`. Without the feature, unused.
    pub snapshot_interval: Option<Duration>,
    idle_filter: Option<IdleFilter>,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            interval: Duration::from_secs(1),
            in_poll_after: Some(Duration::from_secs(1)),
            idle_after: None,
            repeat_after: Duration::from_secs(60),
            trace_deadline: Duration::from_millis(500),
            max_reports: 20,
            snapshot_interval: Some(Duration::from_secs(10)),
            idle_filter: None,
        }
    }
}

impl std::fmt::Debug for WatchdogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogConfig")
            .field("interval", &self.interval)
            .field("in_poll_after", &self.in_poll_after)
            .field("idle_after", &self.idle_after)
            .field("repeat_after", &self.repeat_after)
            .field("trace_deadline", &self.trace_deadline)
            .field("max_reports", &self.max_reports)
            .field("snapshot_interval", &self.snapshot_interval)
            .field("watch_idle", &self.idle_filter.is_some())
            .finish()
    }
}

impl WatchdogConfig {
    /// Sets [`interval`](Self::interval).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Reports tasks inside one poll for `after` or longer ([`in_poll_after`](Self::in_poll_after)).
    pub fn in_poll_after(mut self, after: Duration) -> Self {
        self.in_poll_after = Some(after);
        self
    }

    /// Reports tasks idle for `after` or longer, with their trace ([`idle_after`](Self::idle_after)).
    pub fn idle_after(mut self, after: Duration) -> Self {
        self.idle_after = Some(after);
        self
    }

    /// Sets [`repeat_after`](Self::repeat_after).
    pub fn repeat_after(mut self, every: Duration) -> Self {
        self.repeat_after = every;
        self
    }

    /// Sets [`trace_deadline`](Self::trace_deadline).
    pub fn trace_deadline(mut self, deadline: Duration) -> Self {
        self.trace_deadline = deadline;
        self
    }

    /// Sets [`max_reports`](Self::max_reports).
    pub fn max_reports(mut self, n: usize) -> Self {
        self.max_reports = n.max(1);
        self
    }

    /// Sets [`snapshot_interval`](Self::snapshot_interval).
    pub fn snapshot_interval(mut self, every: Option<Duration>) -> Self {
        self.snapshot_interval = every;
        self
    }

    /// Reports an idle task only when `watch` accepts it: called with the task as a dump would
    /// show it — id, name, spawn site, idle state and trace — so it can pick the tasks, or the
    /// await points (a frame of the trace), that should never wait that long. Default: every
    /// task. A task it turns down is looked at again after [`repeat_after`](Self::repeat_after).
    pub fn watch_idle(mut self, watch: impl Fn(&Task) -> bool + Send + Sync + 'static) -> Self {
        self.idle_filter = Some(std::sync::Arc::new(watch));
        self
    }
}

/// A running watchdog ([`watchdog`](crate::watchdog())). Dropping it stops the watchdog
/// thread (and waits for it); [`detach`](Self::detach) keeps it running for the life of the
/// process.
#[must_use = "dropping the Watchdog stops it: keep it, or call .detach()"]
#[derive(Debug)]
pub struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Lets the watchdog run until the process exits.
    pub fn detach(mut self) {
        if let Some(stop) = self.stop.take() {
            std::mem::forget(stop);
        }
        self.thread.take();
    }

    /// Stops the watchdog and waits for its thread to finish its current scan.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a stall watchdog on its own thread (see the [module docs](mod@crate::watchdog)): every
/// [`interval`](WatchdogConfig::interval) it reports, as `tracing` warnings, the registered
/// tasks stuck inside one poll and, when asked, those idle for too long, with their traces.
///
/// Events go to the `tracing` subscriber that is the default on the calling thread (a scoped
/// one, as tests set, is carried over to the watchdog thread), else to the global one.
///
/// # Errors
///
/// When the thread cannot be spawned.
///
/// ```
/// use std::time::Duration;
/// let watchdog = tasktrace::watchdog(
///     tasktrace::watchdog::WatchdogConfig::default().interval(Duration::from_millis(10)),
/// )
/// .unwrap();
/// watchdog.stop();
/// ```
pub fn watchdog(config: WatchdogConfig) -> std::io::Result<Watchdog> {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let scoped = !dispatch.is::<tracing::subscriber::NoSubscriber>();
    // The watchdog thread is outside every runtime: its snapshots read this one by its handle.
    #[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        crate::snapshot::register_runtime(&runtime);
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tasktrace-watchdog".into())
        .spawn(move || {
            let run = || {
                let mut state = State::default();
                let interval = config.interval.max(Duration::from_millis(1));
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    state.scan(&config);
                }
            };
            if scoped {
                tracing::dispatcher::with_default(&dispatch, run);
            } else {
                run();
            }
        })?;
    Ok(Watchdog {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// What the watchdog remembers of a task between scans.
struct Seen {
    /// The poll count when it was last looked at, plus the watchdog's own capture polls.
    polls: u64,
    /// When its current idle stretch began; `None` while in a poll or never polled.
    idle_since: Option<Instant>,
    /// When it was last reported (or turned down by the idle filter).
    reported: Option<Instant>,
    /// The scan that last saw it (entries of tasks gone are dropped).
    scan: u64,
}

#[derive(Default)]
struct State {
    seen: HashMap<u64, Seen>,
    scans: u64,
    /// When the last "N more not reported" event was emitted (rate-limited like the others).
    held_back_reported: Option<Instant>,
    /// The tasks outside the registry, as the snapshots saw them.
    #[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
    sightings: snapshots::Sightings,
}

/// An idle task to trace and report.
struct Idle {
    shared: TaskRef,
    polls: u64,
    idle: Duration,
}

impl State {
    fn scan(&mut self, config: &WatchdogConfig) {
        self.scans += 1;
        let scan = self.scans;
        let tasks = registry::snapshot();
        let elapsed = Elapsed::start();
        let now = Instant::now();
        let may_report = |seen: &Seen| {
            seen.reported
                .is_none_or(|at| now.duration_since(at) >= config.repeat_after)
        };
        let mut budget = config.max_reports;
        let mut held_back = 0usize;
        let mut idle = Vec::new();
        for shared in tasks {
            let stamp = shared.stamp();
            let seen = self.seen.entry(shared.id()).or_insert(Seen {
                polls: stamp.polls,
                idle_since: None,
                reported: None,
                scan,
            });
            seen.scan = scan;
            if stamp.in_poll {
                seen.polls = stamp.polls;
                seen.idle_since = None;
                let inside = elapsed.since(stamp.tick);
                if config.in_poll_after.is_some_and(|t| inside >= t) && may_report(seen) {
                    if budget == 0 {
                        held_back += 1;
                        continue;
                    }
                    budget -= 1;
                    seen.reported = Some(now);
                    report_in_poll(&shared, inside);
                }
                continue;
            }
            if stamp.polls == 0 {
                // Never polled yet: scheduled, not stalled on anything of its own.
                continue;
            }
            if seen.polls != stamp.polls || seen.idle_since.is_none() {
                seen.polls = stamp.polls;
                let ago = elapsed.since(stamp.tick);
                seen.idle_since = Some(now.checked_sub(ago).unwrap_or(now));
            }
            let idle_for = seen.idle_since.map_or(Duration::ZERO, |s| now - s);
            if config.idle_after.is_some_and(|t| idle_for >= t)
                && may_report(seen)
                && idle.len() < MAX_CAPTURES
            {
                // Marked now: a task the filter turns down is looked at again later.
                seen.reported = Some(now);
                idle.push(Idle {
                    polls: stamp.polls,
                    shared,
                    idle: idle_for,
                });
            }
        }
        self.seen.retain(|_, s| s.scan == scan);
        if !idle.is_empty() {
            let answers = capture_all(&idle, config.trace_deadline);
            for (task, answer) in idle.iter().zip(answers) {
                let id = task.shared.id();
                // The capture's own poll is not activity.
                if task.shared.stamp().polls == task.polls + 1 {
                    if let Some(seen) = self.seen.get_mut(&id) {
                        seen.polls = task.polls + 1;
                    }
                }
                let Some(event) = idle_event(task, answer, config.idle_filter.as_ref()) else {
                    continue;
                };
                if budget == 0 {
                    held_back += 1;
                    if let Some(seen) = self.seen.get_mut(&id) {
                        seen.reported = None;
                    }
                    continue;
                }
                budget -= 1;
                event.emit();
            }
        }
        #[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
        for stalled in self.sightings.scan(config, now) {
            if config
                .idle_filter
                .as_ref()
                .is_some_and(|accept| !accept(stalled.task()))
            {
                continue;
            }
            if budget == 0 {
                held_back += 1;
                self.sightings.held_back(stalled.task().id);
                continue;
            }
            budget -= 1;
            stalled.emit(config.snapshot_interval.unwrap_or_default());
        }
        #[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
        for deadlock in self.sightings.deadlocks() {
            deadlock.emit();
        }
        if held_back > 0
            && self
                .held_back_reported
                .is_none_or(|at| now.duration_since(at) >= config.repeat_after)
        {
            self.held_back_reported = Some(now);
            tracing::warn!(
                target: TARGET,
                held_back,
                "{held_back} more stalled task(s) not reported in this scan (max_reports = {})",
                config.max_reports
            );
        }
    }
}

fn spawned_at(shared: &Shared) -> String {
    let at = shared.created_at();
    format!("{}:{}:{}", at.file(), at.line(), at.column())
}

fn title(shared: &Shared) -> String {
    match shared.name() {
        Some(name) => format!("task {} \"{name}\"", shared.id()),
        None => format!("task {}", shared.id()),
    }
}

fn report_in_poll(shared: &Shared, inside: Duration) {
    tracing::warn!(
        target: TARGET,
        task_id = shared.id(),
        task_name = shared.name(),
        spawned_at = %spawned_at(shared),
        in_poll_for = ?inside,
        "{} (spawned at {}) has been inside one poll for {inside:.1?}: its worker thread is \
         blocked (no trace can be taken inside a poll)",
        title(shared),
        spawned_at(shared),
    );
}

/// An idle report, ready to emit.
struct IdleEvent<'a> {
    idle: &'a Idle,
    trace: String,
}

impl IdleEvent<'_> {
    fn emit(&self) {
        let shared = &self.idle.shared;
        // On a line of its own: fmt subscribers print a field's value as it is.
        let trace = format!("\n{}", self.trace.trim_end());
        tracing::warn!(
            target: TARGET,
            task_id = shared.id(),
            task_name = shared.name(),
            spawned_at = %spawned_at(shared),
            idle_for = ?self.idle.idle,
            trace = %trace,
            "{} (spawned at {}) has been idle for {:.1?}; where it waits: the `trace` field",
            title(shared),
            spawned_at(shared),
            self.idle.idle,
        );
    }
}

/// The report of an idle task, unless it has woken up or finished meanwhile or the filter
/// turns it down.
fn idle_event<'a>(
    idle: &'a Idle,
    answer: Result<Arc<Captured>, TraceError>,
    filter: Option<&IdleFilter>,
) -> Option<IdleEvent<'a>> {
    let mut task = crate::dump::describe(&idle.shared, idle.polls);
    task.state = TaskState::Idle { since: idle.idle };
    let trace = match answer {
        Ok(captured) => {
            task.trace = captured.to_trace().into_model();
            task.trace.to_string()
        }
        Err(TraceError::Finished | TraceError::Dropped) => return None,
        Err(e) => {
            task.error = Some(e.to_string());
            format!("(no trace: {e})\n")
        }
    };
    if filter.is_some_and(|accept| !accept(&task)) {
        return None;
    }
    Some(IdleEvent { idle, trace })
}

/// Captures every task's trace at once, each with `deadline`, on this thread.
fn capture_all(tasks: &[Idle], deadline: Duration) -> Vec<Result<Arc<Captured>, TraceError>> {
    let mut pending: Vec<(Pin<Box<Request>>, Option<_>)> = tasks
        .iter()
        .map(|t| {
            let request = TraceHandle::from_shared(t.shared.clone()).capture(deadline);
            (Box::pin(request), None)
        })
        .collect();
    block_on(std::future::poll_fn(|cx| {
        let mut all = true;
        for (request, answer) in pending.iter_mut() {
            if answer.is_none() {
                match request.as_mut().poll(cx) {
                    Poll::Ready(a) => *answer = Some(a),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    pending
        .into_iter()
        .map(|(_, answer)| answer.expect("every request answered"))
        .collect()
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this (the watchdog's own) thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// The log capture of the unit tests here and of the integration tests (which include the
/// file by path).
#[cfg(test)]
mod test_logs;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::test_logs::Logs;

    #[test]
    fn reports_are_capped_per_scan_and_each_task_reported_once() {
        let logs = Logs::default();
        let _subscriber = logs.install();
        // Three tasks, each blocked inside its poll on a thread of its own.
        let release = std::sync::Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let release = release.clone();
                let (fut, handle) = crate::traced_named(
                    format!("capped-{i}"),
                    std::future::poll_fn(move |_| {
                        let until = Instant::now() + Duration::from_secs(30);
                        while !release.load(Ordering::Acquire) && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Poll::Ready(())
                    }),
                );
                ids.push(handle.id());
                std::thread::spawn(move || futures::executor::block_on(fut))
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(30);
        let in_poll = |shared: &Shared| {
            let s = shared.stamp();
            s.in_poll && Elapsed::start().since(s.tick) >= Duration::from_millis(60)
        };
        while registry::snapshot()
            .iter()
            .filter(|s| ids.contains(&s.id()) && in_poll(s))
            .count()
            < 3
        {
            assert!(
                Instant::now() < until,
                "the three tasks block in their polls"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let config = WatchdogConfig::default()
            .in_poll_after(Duration::from_millis(50))
            .repeat_after(Duration::from_secs(3600))
            .max_reports(2);
        let ours = |text: &str| {
            text.lines()
                .filter(|l| l.contains("\"capped-") && l.contains("inside one poll"))
                .count()
        };
        let mut state = State::default();
        state.scan(&config);
        let first = logs.take();
        assert_eq!(ours(&first), 2, "{first}");
        assert!(
            first.contains("more stalled task(s) not reported"),
            "{first}"
        );
        state.scan(&config);
        let second = logs.take();
        assert_eq!(ours(&second), 1, "the third one: {second}");
        state.scan(&config);
        let third = logs.take();
        assert_eq!(ours(&third), 0, "each once: {third}");
        release.store(true, Ordering::Release);
        for t in threads {
            t.join().unwrap();
        }
    }
}
