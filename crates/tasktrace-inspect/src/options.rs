//! How to read a target ([`Options`]), and the progress lines a long read prints.

use std::time::Duration;

/// How to read a target.
#[derive(Clone, Debug)]
pub struct Options {
    /// Deadline for stopping every thread of a live process.
    pub timeout: Duration,
    /// Most tasks listed.
    pub max_tasks: usize,
    /// Most frames decoded in one read, over all tasks (each task's decode has its own depth
    /// and size caps): with a corrupt task list of many plausible tasks, this bounds the
    /// reader's time and memory. Tasks past it are listed without a trace, and the dump says
    /// so ([`Dump::partial`](tasktrace_model::Dump::partial)).
    pub max_frames: usize,
    /// Also list the threads ([`Dump::threads`](tasktrace_model::Dump::threads)): workers with their local queue and the task
    /// they poll, `block_on` threads with their root future, blocking-pool threads.
    pub threads: bool,
    /// With `threads`: unwind the native stack only of a thread polling a task that is
    /// stopped in a system call (what a blocked worker's diagnosis needs), not of every thread
    /// polling one. Unwinding happens while the target is stopped: `record` and `top` sample
    /// a hundred times a second, and a worker busy on the CPU is most of what they stop.
    pub blocked_stacks_only: bool,
    /// The target's own thread that asked for this read, when it reads itself (the `snapshot`
    /// feature's reader is asked by a thread of the program, which waits for the answer): its
    /// stack is tasktrace's wait, so it is neither copied nor unwound — a `dump()` runs on a
    /// `spawn_blocking` thread that the requesting task awaits, and that thread's stack would
    /// otherwise be unwound at every dump (an unwinder costs the reader ~200 ms and ~50 MiB).
    pub reading_thread: Option<i32>,
    /// A separate debug file for the executable (`objcopy --only-keep-debug` output, a
    /// distribution's `.debug` file). Without it, an executable without debuginfo is looked up
    /// by build id and `.gnu_debuglink` ([`debugfile`](crate::debugfile)).
    pub debuginfo: Option<String>,
    /// A core file's machine's (or container's) root directory, as copied to this one: the
    /// executable, its libraries and debug files are looked up under it first
    /// ([`process::files`](crate::process::files)). Not used for a live process (its files are read through `/proc`).
    pub sysroot: Option<String>,
    /// Print progress lines on stderr once a read takes longer than a moment (half a
    /// second): which phase it is in, how many tasks are decoded.
    pub progress: bool,
    /// Addresses of `tokio::runtime::Handle` values in the target: runtimes read besides the
    /// ones its threads have entered (a [`frozen`](crate::frozen) copy has no threads to ask).
    pub runtime_handles: Vec<u64>,
    /// Also read the values of async fn frames: their arguments and the locals they keep
    /// across their await (`place_order(order_id: 981, user: "bob")`), bounded (see
    /// `decode/values.rs`), and the values of the task-locals in scope for each task (their
    /// keys are shown either way). Off by default: values may hold what a dump should not
    /// show.
    pub values: bool,
}

/// Progress lines on stderr, once the read has taken longer than [`Progress::QUIET`].
pub(crate) struct Progress {
    on: bool,
    started: std::time::Instant,
}

impl Progress {
    /// Quiet for this long.
    const QUIET: Duration = Duration::from_millis(500);

    pub(crate) fn new(on: bool) -> Self {
        Progress {
            on,
            started: std::time::Instant::now(),
        }
    }

    pub(crate) fn say(&self, what: impl FnOnce() -> String) {
        if self.on && self.started.elapsed() >= Self::QUIET {
            eprintln!(
                "tasktrace: [{:.1}s] {}",
                self.started.elapsed().as_secs_f64(),
                what()
            );
        }
    }
}

impl Options {
    /// True for the target's thread that asked for this read ([`Options::reading_thread`]).
    pub(crate) fn asked_from(&self, tid: u64) -> bool {
        self.reading_thread.is_some_and(|t| t as u64 == tid)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(5),
            max_tasks: 100_000,
            max_frames: 1_000_000,
            threads: false,
            blocked_stacks_only: false,
            reading_thread: None,
            debuginfo: None,
            sysroot: None,
            progress: false,
            runtime_handles: Vec::new(),
            values: false,
        }
    }
}
