//! The sampling engine of `record` and `top`: one [`Session`] (the debuginfo indexed once),
//! a sample at a set period, the process stopped only inside [`Sampler::sample`].
//!
//! Invariants: the signals that end a command are blocked while a sample holds the process
//! stopped ([`crate::interrupt::Blocked`]), and `Session::sample` detaches on every path, so
//! the process is never left stopped; samples never pile up: when they take longer than the
//! period, the period follows what they take (a moving average, with a quarter to spare), and
//! [`Sampler::lowered`] says so; every wait has a deadline and ends early when asked to.
//! The samples read the threads too (`Options::threads`, forced on): each is fed, in order,
//! to the model's [`SampledDiagnoser`], whose diagnoses come with the sample.

use std::time::{Duration, Instant};
use tasktrace_inspect::{Options, Session};
use tasktrace_model::{Dump, SampledDiagnoser, SampledDiagnosis};

/// Samples of one live process at a period.
pub struct Sampler {
    session: Session,
    opts: Options,
    /// The period asked for.
    wanted: Duration,
    /// How long a sample typically takes, stop to decoded dump (a moving average).
    typical: Option<Duration>,
    lowered: bool,
    /// The signals blocked while the process is stopped.
    signals: Vec<libc::c_int>,
    /// How long the process was stopped, per sample.
    stopped: Vec<Duration>,
    /// When the first sample was asked for (sample times are from it).
    start: Instant,
    /// What consecutive samples prove (workers blocked, things held while waiting).
    diagnoser: SampledDiagnoser,
}

/// One sample: the dump, and how long the process was stopped for it.
pub struct Sample {
    /// Every task, as read.
    pub dump: Dump,
    /// How long the process was stopped.
    pub stopped: Duration,
    /// What this sample and the ones before it prove together ([`SampledDiagnoser`]).
    pub sampled: Vec<SampledDiagnosis>,
}

impl Sampler {
    /// Indexes the debuginfo of process `pid` (the process is not stopped); samples will
    /// come every `period`, with `signals` blocked while one holds the process. The threads
    /// are read whatever `opts.threads` says.
    pub fn new(
        pid: i32,
        mut opts: Options,
        period: Duration,
        signals: &[libc::c_int],
    ) -> Result<Sampler, String> {
        // The threads, for the blocked workers; their native stacks (unwound while the
        // process is stopped) only where a diagnosis needs one, unless asked for.
        opts.blocked_stacks_only = !opts.threads;
        opts.threads = true;
        let session = Session::new(pid, &opts).map_err(|e| e.to_string())?;
        Ok(Sampler {
            session,
            opts,
            wanted: period,
            typical: None,
            lowered: false,
            signals: signals.to_vec(),
            stopped: Vec::new(),
            start: Instant::now(),
            diagnoser: SampledDiagnoser::default(),
        })
    }

    /// Stops the process, reads every task, lets it go (on every path).
    pub fn sample(&mut self) -> Result<Sample, tasktrace_inspect::Error> {
        let t0 = Instant::now();
        let (dump, stopped) = {
            let _blocked = crate::interrupt::Blocked::new(&self.signals);
            self.session.sample(&self.opts)?
        };
        let took = t0.elapsed();
        self.stopped.push(stopped);
        // The first sample pays for first uses (the unwinder's tables, the decoders' caches):
        // the period follows the samples after it.
        if self.stopped.len() > 1 {
            let avg = self
                .typical
                .map_or(took, |t| t.mul_f64(0.8) + took.mul_f64(0.2));
            self.typical = Some(avg);
            self.lowered |= self.period() > self.wanted;
        }
        let sampled = self
            .diagnoser
            .add(&dump, t0.saturating_duration_since(self.start));
        Ok(Sample {
            dump,
            stopped,
            sampled,
        })
    }

    /// The period now: the one asked for, or longer when samples take longer than it.
    pub fn period(&self) -> Duration {
        let typical = self.typical.unwrap_or_default();
        self.wanted.max(typical.mul_f64(1.25))
    }

    /// True once the period had to be lengthened.
    pub fn lowered(&self) -> bool {
        self.lowered
    }

    /// Waits until a period after `since`, in steps of at most 50 ms, returning early once
    /// `stop()` is true.
    pub fn wait_next(&self, since: Instant, mut stop: impl FnMut() -> bool) {
        let wake = since + self.period();
        while !stop() {
            let now = Instant::now();
            if now >= wake {
                break;
            }
            std::thread::sleep((wake - now).min(Duration::from_millis(50)));
        }
    }

    /// How the samples read from copies made in one step went
    /// ([`Session::sample`](tasktrace_inspect::Session::sample)).
    pub fn copy_reads(&self) -> tasktrace_inspect::CopyReads {
        self.session.copy_reads()
    }

    /// How many samples were taken.
    pub fn samples(&self) -> usize {
        self.stopped.len()
    }

    /// The stopped time per sample over the `last` samples (all of them with `usize::MAX`):
    /// median and max.
    pub fn stopped_summary(&self, last: usize) -> (Duration, Duration) {
        let from = self.stopped.len().saturating_sub(last);
        tasktrace_model::top::table::median_max(&self.stopped[from..])
    }
}
