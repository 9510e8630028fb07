//! A cheap monotonic clock for the poll path.
//!
//! Each poll of a traced future stamps its start and end. `Instant::now()` costs a vDSO call
//! (~50-100 instructions); on x86-64 the time-stamp counter is one instruction. Ticks are turned
//! into durations only when a dump is taken, against a calibration pair taken at first use.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Ticks since an arbitrary origin (TSC cycles on x86-64, nanoseconds elsewhere).
#[inline(always)]
pub(crate) fn now() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: `rdtsc` is available on every x86-64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        origin().0.elapsed().as_nanos() as u64
    }
}

fn origin() -> &'static (Instant, u64) {
    static ORIGIN: OnceLock<(Instant, u64)> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            (Instant::now(), now())
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            (Instant::now(), 0)
        }
    })
}

/// Makes sure the calibration origin exists (call when the first traced future is created).
pub(crate) fn init() {
    origin();
}

/// Ticks per nanosecond, measured from the origin to now (at least a few ms of span are
/// needed for a good figure; before that, assume a nominal 1 GHz-ish rate is good enough).
fn ticks_per_ns() -> f64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let (t0, c0) = *origin();
        let ns = t0.elapsed().as_nanos() as f64;
        let ticks = now().saturating_sub(c0) as f64;
        if ns < 1e6 || ticks <= 0.0 {
            return calibrate_briefly();
        }
        ticks / ns
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        1.0
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
fn calibrate_briefly() -> f64 {
    let (t0, c0) = (Instant::now(), now());
    while t0.elapsed() < Duration::from_micros(200) {
        std::hint::spin_loop();
    }
    let ns = t0.elapsed().as_nanos() as f64;
    (now().saturating_sub(c0) as f64 / ns).max(1e-3)
}

/// Converts "ticks ago" measurements into durations, calibrated once per dump.
pub(crate) struct Elapsed {
    now: u64,
    ticks_per_ns: f64,
}

impl Elapsed {
    /// A converter for this moment.
    pub(crate) fn start() -> Self {
        Elapsed {
            ticks_per_ns: ticks_per_ns(),
            now: now(),
        }
    }

    /// Time from tick `then` to this moment.
    pub(crate) fn since(&self, then: u64) -> Duration {
        let ticks = self.now.saturating_sub(then) as f64;
        Duration::from_nanos((ticks / self.ticks_per_ns) as u64)
    }
}
