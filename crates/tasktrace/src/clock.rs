//! A cheap monotonic clock for the poll path: a "recent time" kept by a background thread.
//!
//! Each poll of a traced future stamps its start and end. Reading a real clock there is not
//! cheap where services run: on the 2-core development VM `rdtsc` measured 19-22 ns a read and
//! `Instant::now()` ~40 ns, and with two `rdtsc` per poll the ping-pong benchmark ran 1.26x
//! slower than plain tokio in wall time (while its instruction count, where `rdtsc` counts as
//! one, looked fine). So the poll path reads no clock: it reads [`now`], one relaxed load of a
//! global that the `tasktrace-clock` thread sets every [`TICK`]. Durations in dumps are then
//! accurate to about a tick, which is plenty for "idle for 3.2s" or "inside one poll for 1.5s";
//! the thread costs ~100 wake-ups a second.
//!
//! # Invariants
//!
//! - **Ticks** are nanoseconds since `ORIGIN` (an `Instant` fixed at first use) plus
//!   [`BASE`]: never 0 (0 means "never polled" in a stamp) and even (bit 0 is the stamp's
//!   in-poll flag).
//! - **Who writes `RECENT`.** Only the clock thread, with `fetch_max`, so it never goes back,
//!   not even while a restarted thread and a late old one both run. Everyone else only loads
//!   it, relaxed: a stale value is only an older time.
//! - **Lag.** `RECENT` is behind the real time by at most [`TICK`] plus the thread's scheduling
//!   delay. Readers measure against the real clock ([`Elapsed`]), so a duration is never
//!   under-estimated, and over-estimated by at most that lag.
//! - **Liveness.** [`init`] (at every traced future's creation: one load once started) starts
//!   the thread the first time. [`Elapsed::start`] (every dump and watchdog round) starts it
//!   again if it does not run in *this* process: after a `fork` the child has only the forking
//!   thread, and a failed spawn leaves none. `TICKER_PID` is the process the thread was started
//!   in (0: never started); the starter holds `STARTING`. Until a thread runs, `RECENT` holds
//!   the time of the last tick, or of the last start.
//! - Under Miri and loom there is no thread: [`now`] reads the real clock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often the clock thread refreshes the recent time: the resolution of durations.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Added to every tick, so that no tick is 0.
const BASE: u64 = 2;

/// The recent time, in ticks; 0 until [`init`].
static RECENT: AtomicU64 = AtomicU64::new(0);

/// The process id the clock thread was started in (0: not started).
static TICKER_PID: AtomicU32 = AtomicU32::new(0);

const REAL_CLOCK_ONLY: bool = cfg!(any(miri, tasktrace_loom));

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The real time, in ticks.
fn real_now() -> u64 {
    (origin().elapsed().as_nanos() as u64 + BASE) & !1
}

/// The recent time, in ticks (see the module doc): the poll path's clock.
#[inline(always)]
pub(crate) fn now() -> u64 {
    if REAL_CLOCK_ONLY {
        return real_now();
    }
    RECENT.load(Ordering::Relaxed)
}

/// Sets the recent time and starts the clock thread, once (call when a traced future is
/// created: one relaxed load once started).
#[inline]
pub(crate) fn init() {
    if !REAL_CLOCK_ONLY && TICKER_PID.load(Ordering::Relaxed) == 0 {
        start_in(std::process::id());
    }
}

/// Makes sure the clock thread runs in this process (before durations are read: this asks the
/// kernel for the process id, which `init` leaves out).
fn ensure_running() {
    if REAL_CLOCK_ONLY {
        return;
    }
    let pid = std::process::id();
    if TICKER_PID.load(Ordering::Relaxed) != pid {
        start_in(pid);
    }
}

#[cold]
fn start_in(pid: u32) {
    // One starter at a time; the others then see the pid it set.
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if TICKER_PID.load(Ordering::Relaxed) == pid {
        return;
    }
    RECENT.fetch_max(real_now(), Ordering::Relaxed);
    let started = std::thread::Builder::new()
        .name("tasktrace-clock".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            RECENT.fetch_max(real_now(), Ordering::Relaxed);
            std::thread::sleep(TICK);
        });
    if started.is_ok() {
        TICKER_PID.store(pid, Ordering::Relaxed);
    }
    // On failure (no threads left): stamps keep the last recent time; the next dump retries.
}

/// Converts "ticks ago" measurements into durations, against the real clock.
pub(crate) struct Elapsed {
    now: u64,
}

impl Elapsed {
    /// A converter for this moment.
    pub(crate) fn start() -> Self {
        ensure_running();
        Elapsed { now: real_now() }
    }

    /// Time from tick `then` to this moment (at least 0).
    pub(crate) fn since(&self, then: u64) -> Duration {
        Duration::from_nanos(self.now.saturating_sub(then))
    }
}

#[cfg(all(test, not(miri), not(tasktrace_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_recent_time_advances_and_durations_are_never_under_estimated() {
        init();
        let first = now();
        assert!(first != 0 && first % 2 == 0, "{first}");
        // The thread ticks (a deadline, not a timing: a loaded machine may delay it).
        let deadline = Instant::now() + Duration::from_secs(20);
        while now() == first {
            assert!(Instant::now() < deadline, "the clock thread never ticked");
            std::thread::sleep(TICK);
        }
        let stamp = now();
        assert!(stamp > first);
        std::thread::sleep(Duration::from_millis(30));
        assert!(Elapsed::start().since(stamp) >= Duration::from_millis(30));
        assert_eq!(TICKER_PID.load(Ordering::Relaxed), std::process::id());
    }
}
