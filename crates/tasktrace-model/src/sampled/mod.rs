//! Diagnoses from consecutive samples of one live process (`tasktrace record` and `top`; issue
//! 31): what no single dump proves, but the same thing seen in every one of many samples does.
//!
//! [`SampledDiagnosis::WorkerBlocked`]: a runtime thread polling the same task, stopped inside
//! a system call (a call a previous stop interrupted goes on as `restart_syscall`: the same
//! call), with the same native stack (the same return addresses, frame by frame), in
//! every one of at least [`BLOCKED_SAMPLES`] consecutive samples spanning at least
//! [`BLOCKED_FOR`]. What it proves: at each of those moments the thread was blocked in the
//! kernel inside that task's poll, at that frame, and so polled no other task. What it cannot
//! see: whether that was one poll or a poll blocking again each time the task was polled (both
//! keep the worker from other tasks); what happened between two samples; a poll busy on the
//! CPU (from outside, a task polled again and again at the same line looks the same as one long
//! poll: it is not diagnosed); threads whose stacks the producer could not unwind.
//!
//! [`SampledDiagnosis::WorkerBusy`]: a runtime thread polling the same task, never in a
//! system call, with its scheduler's tick (tokio's `Core::tick`, one per task taken from its
//! queues) unchanged, in every one of at least [`BLOCKED_SAMPLES`] consecutive samples
//! spanning at least [`BLOCKED_FOR`]. What it proves: the scheduler took no other task in all
//! that time — one poll ran all along (with at most the few polls tokio makes from its LIFO
//! slot inside one turn), busy on the CPU. What it cannot see: which frame is hot (the stacks
//! of busy threads are not unwound while sampling, to keep the stop short: `--threads`
//! records them); a thread in `block_in_place` (its core moved to another thread: no tick,
//! not diagnosed, rightly).
//!
//! Tasks notified but not run (starved) are not diagnosed: a task seen scheduled in every
//! sample may have run between them and been woken again, and no fact of a dump tells the two
//! apart (tokio keeps no count of a task's polls).
//!
//! [`SampledDiagnosis::HeldWhileWaiting`]: see [`HeldWhileWaiting`].
//!
//! [`task_flags`] says, per task, which diagnoses name it — a table's narrow column.
//! [`SampledDiagnoser`] finds them all, fed each sample in order.

mod held;

pub use held::HeldWhileWaiting;

use crate::clean::{path_crate, short_path};
use crate::{task_label, Diagnosis, Dump, Location, Syscall, ThreadRole, Wait};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Consecutive samples a thread must be seen blocked in, at least.
pub const BLOCKED_SAMPLES: u32 = 3;
/// How long those samples must span, at least.
pub const BLOCKED_FOR: Duration = Duration::from_secs(1);

/// One thing consecutive samples prove wrong.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SampledDiagnosis {
    /// A worker thread blocked in a system call inside one task's poll, at the same frame, in
    /// every one of `samples` consecutive samples over `seen_ms`: the runtime has one thread
    /// fewer meanwhile (with a current-thread runtime, none).
    WorkerBlocked {
        /// The thread's id.
        thread: u64,
        /// Its name.
        thread_name: Option<String>,
        /// The task it polls.
        task: u64,
        /// The innermost function of the program's own code on its stack (a Rust function
        /// not of a registry crate nor of the toolchain), when one has a source location.
        function: Option<String>,
        /// Where in it.
        location: Option<Location>,
        /// The system call.
        syscall: Syscall,
        /// Samples it was seen in.
        samples: u32,
        /// Milliseconds from the first of them to the last.
        seen_ms: u64,
    },
    /// A worker thread inside one poll of one task, on the CPU (no system call), its
    /// scheduler taking no other task, in every one of `samples` consecutive samples over
    /// `seen_ms`.
    WorkerBusy {
        /// The thread's id.
        thread: u64,
        /// Its name.
        thread_name: Option<String>,
        /// The task it polls.
        task: u64,
        /// The task's root function (what it was spawned with), when the dump names it.
        function: Option<String>,
        /// Samples it was seen in.
        samples: u32,
        /// Milliseconds from the first of them to the last.
        seen_ms: u64,
    },
    /// A task holding what other tasks wait for, suspended at an await of its own, in every
    /// one of `samples` consecutive samples over `seen_ms` ([`HeldWhileWaiting`](crate::HeldWhileWaiting)).
    HeldWhileWaiting {
        /// The task holding it.
        holder: u64,
        /// The tasks waiting for it (in the last sample).
        waiters: Vec<u64>,
        /// What they wait for (with its holders: `holder` is one).
        held: Box<Wait>,
        /// What the holder itself waits on.
        waits: Box<Wait>,
        /// The holder's innermost async fn (or block) above that wait.
        function: Option<String>,
        /// Its await.
        location: Option<Location>,
        /// Samples it was seen in.
        samples: u32,
        /// Milliseconds from the first of them to the last.
        seen_ms: u64,
    },
}

impl SampledDiagnosis {
    /// The task it names.
    pub fn task(&self) -> u64 {
        match self {
            SampledDiagnosis::WorkerBlocked { task, .. }
            | SampledDiagnosis::WorkerBusy { task, .. } => *task,
            SampledDiagnosis::HeldWhileWaiting { holder, .. } => *holder,
        }
    }

    /// Keeps the diagnoses of a whole recording in `kept`: `new` replaces one of the same
    /// thread, task, call and place seen for fewer samples (the same streak, grown), or is
    /// added.
    pub fn keep_longest(kept: &mut Vec<SampledDiagnosis>, new: SampledDiagnosis) {
        // What makes two the same streak: everything but how long it was seen.
        let place = |d: &SampledDiagnosis| {
            let mut d = d.clone();
            match &mut d {
                SampledDiagnosis::WorkerBlocked {
                    samples, seen_ms, ..
                }
                | SampledDiagnosis::WorkerBusy {
                    samples, seen_ms, ..
                } => (*samples, *seen_ms) = (0, 0),
                SampledDiagnosis::HeldWhileWaiting {
                    samples,
                    seen_ms,
                    waiters,
                    ..
                } => {
                    (*samples, *seen_ms) = (0, 0);
                    waiters.clear();
                }
            }
            d
        };
        let at = place(&new);
        match kept.iter_mut().find(|k| place(k) == at) {
            Some(k) if k.samples() < new.samples() => *k = new,
            Some(_) => {}
            None => kept.push(new),
        }
    }

    /// Samples it was seen in.
    pub fn samples(&self) -> u32 {
        match self {
            SampledDiagnosis::WorkerBlocked { samples, .. }
            | SampledDiagnosis::WorkerBusy { samples, .. }
            | SampledDiagnosis::HeldWhileWaiting { samples, .. } => *samples,
        }
    }
}

impl fmt::Display for SampledDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampledDiagnosis::WorkerBlocked {
                thread,
                thread_name,
                task,
                function,
                location,
                syscall,
                samples,
                seen_ms,
            } => {
                write!(f, "WORKER BLOCKED: thread {thread}")?;
                if let Some(name) = thread_name {
                    write!(f, " \"{name}\"")?;
                }
                write!(
                    f,
                    " was in {syscall} inside a poll of {}",
                    task_label(*task)
                )?;
                if let Some(function) = function {
                    write!(f, ", in {function}")?;
                }
                if let Some(l) = location {
                    write!(f, " at {}:{}", l.file, l.line)?;
                }
                write!(
                    f,
                    ", in all {samples} samples over {:.1} s: it polls no other task while it blocks",
                    *seen_ms as f64 / 1e3
                )
            }
            SampledDiagnosis::WorkerBusy {
                thread,
                thread_name,
                task,
                function,
                samples,
                seen_ms,
            } => {
                write!(f, "WORKER BUSY: thread {thread}")?;
                if let Some(name) = thread_name {
                    write!(f, " \"{name}\"")?;
                }
                write!(f, " was inside one poll of {}", task_label(*task))?;
                if let Some(function) = function {
                    write!(f, " ({function})")?;
                }
                write!(
                    f,
                    ", on the CPU, in all {samples} samples over {:.1} s: its scheduler took no \
                     other task meanwhile",
                    *seen_ms as f64 / 1e3
                )
            }
            SampledDiagnosis::HeldWhileWaiting {
                holder,
                waiters,
                held,
                waits,
                function,
                location,
                samples,
                seen_ms,
            } => {
                let them: Vec<String> = waiters.iter().map(|&w| task_label(w)).collect();
                write!(
                    f,
                    "HELD WHILE WAITING: {} holds what {} {} ({held}) and is itself {waits}",
                    task_label(*holder),
                    them.join(", "),
                    if them.len() == 1 {
                        "waits for"
                    } else {
                        "wait for"
                    },
                )?;
                if let Some(function) = function {
                    write!(f, " in {function}")?;
                }
                if let Some(l) = location {
                    write!(f, " at {}:{}", l.file, l.line)?;
                }
                write!(
                    f,
                    ", in all {samples} samples over {:.1} s",
                    *seen_ms as f64 / 1e3
                )
            }
        }
    }
}

/// One thing (`key`: what must stay the same) seen in each of the last consecutive samples:
/// since when, in how many.
struct Streak<K> {
    key: K,
    first: Duration,
    samples: u32,
}

impl<K: PartialEq> Streak<K> {
    /// The streak after a sample at `at` that saw `key`: `prev` one longer if it saw the same,
    /// else a new one.
    fn next(prev: Option<Streak<K>>, key: K, at: Duration) -> Self {
        match prev {
            Some(s) if s.key == key => Streak {
                samples: s.samples + 1,
                ..s
            },
            _ => Streak {
                key,
                first: at,
                samples: 1,
            },
        }
    }

    /// How long it spans at `at`, once it proves something: [`BLOCKED_SAMPLES`] samples over
    /// [`BLOCKED_FOR`] at least.
    fn proven(&self, at: Duration) -> Option<Duration> {
        let seen = at.saturating_sub(self.first);
        (self.samples >= BLOCKED_SAMPLES && seen >= BLOCKED_FOR).then_some(seen)
    }
}

/// What a blocked thread must keep: its task and its native stack's pcs (the system call's
/// number is not part of it: a call interrupted by a sample's stop goes on, once resumed, as
/// `restart_syscall`, from the same instruction).
type BlockedAt = (u64, Vec<u64>);

/// Whether `syscall` is the kernel's continuation of a call a stop interrupted.
fn is_restart(syscall: &Syscall) -> bool {
    syscall.name.as_deref() == Some("restart_syscall")
}

/// Finds [`SampledDiagnosis::WorkerBlocked`] over the samples of one process, added in order.
///
/// ```
/// use std::time::Duration;
/// use tasktrace_model::{BlockedWorkers, Dump, NativeFrame, Syscall, ThreadInfo, ThreadRole};
/// let mut worker = ThreadInfo::new(12, ThreadRole::Worker);
/// worker.task = Some(7);
/// worker.syscall = Some(Syscall { number: 230, name: Some("clock_nanosleep".into()) });
/// worker.native_stack = vec![NativeFrame { pc: 0x10, ..Default::default() }];
/// let mut dump = Dump::new(Vec::new());
/// dump.threads = vec![worker];
/// let mut blocked = BlockedWorkers::default();
/// let found: Vec<usize> = (0..4u64)
///     .map(|s| blocked.add(&dump, Duration::from_millis(500 * s)).len())
///     .collect();
/// assert_eq!(found, [0, 0, 1, 1], "three samples over a second");
/// ```
#[derive(Default)]
pub struct BlockedWorkers {
    /// Per thread: blocked alike.
    streaks: HashMap<u64, Streak<BlockedAt>>,
    /// Per thread in a streak: the system call it was seen in (not a `restart_syscall`
    /// when any sample saw the call itself).
    calls: HashMap<u64, Syscall>,
    /// Per thread: inside one poll, by its task and scheduler tick.
    busy: HashMap<u64, Streak<(u64, u64)>>,
}

impl BlockedWorkers {
    /// Adds the sample `dump`, taken at `at` (from any fixed start); returns the diagnoses
    /// that hold at it. A thread not seen blocked alike in this sample starts over.
    pub fn add(&mut self, dump: &Dump, at: Duration) -> Vec<SampledDiagnosis> {
        let mut out = self.add_busy(dump, at);
        let mut next = HashMap::new();
        let mut calls = HashMap::new();
        for th in &dump.threads {
            let (Some(task), Some(syscall)) = (th.task, &th.syscall) else {
                continue;
            };
            if !matches!(th.role, ThreadRole::Worker | ThreadRole::BlockOn)
                || th.native_stack.is_empty()
            {
                continue;
            }
            let pcs: Vec<u64> = th.native_stack.iter().map(|f| f.pc).collect();
            let streak = Streak::next(self.streaks.remove(&th.tid), (task, pcs), at);
            let call = match self.calls.remove(&th.tid) {
                Some(seen) if streak.samples > 1 && is_restart(syscall) => seen,
                _ => syscall.clone(),
            };
            if let Some(seen) = streak.proven(at) {
                // The innermost frame of the program's own code: a Rust function (a path;
                // C's, as in libc, are bare names) in a source file of no registry crate and
                // not the toolchain's.
                let own = th.native_stack.iter().find(|f| {
                    f.function.as_ref().is_some_and(|n| n.contains("::"))
                        && f.location
                            .as_ref()
                            .is_some_and(|l| path_crate(&short_path(&l.file)).is_none())
                });
                out.push(SampledDiagnosis::WorkerBlocked {
                    thread: th.tid,
                    thread_name: th.name.clone(),
                    task,
                    function: own.and_then(|f| f.function.clone()),
                    location: own.and_then(|f| f.location.clone()).map(|mut l| {
                        l.file = short_path(&l.file).into_owned();
                        l
                    }),
                    syscall: call.clone(),
                    samples: streak.samples,
                    seen_ms: seen.as_millis() as u64,
                });
            }
            next.insert(th.tid, streak);
            calls.insert(th.tid, call);
        }
        self.streaks = next;
        self.calls = calls;
        out
    }

    /// [`SampledDiagnosis::WorkerBusy`] at the sample `dump` taken at `at`.
    fn add_busy(&mut self, dump: &Dump, at: Duration) -> Vec<SampledDiagnosis> {
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for th in &dump.threads {
            let (Some(task), Some(tick), None) = (th.task, th.scheduler_tick, &th.syscall) else {
                continue;
            };
            if !matches!(th.role, ThreadRole::Worker | ThreadRole::BlockOn) {
                continue;
            }
            let streak = Streak::next(self.busy.remove(&th.tid), (task, tick), at);
            if let Some(seen) = streak.proven(at) {
                out.push(SampledDiagnosis::WorkerBusy {
                    thread: th.tid,
                    thread_name: th.name.clone(),
                    task,
                    function: dump
                        .task(task)
                        .and_then(|t| t.trace.roots.first())
                        .map(|r| r.frame.function.clone()),
                    samples: streak.samples,
                    seen_ms: seen.as_millis() as u64,
                });
            }
            next.insert(th.tid, streak);
        }
        self.busy = next;
        out
    }
}

/// Every diagnosis of consecutive samples: fed each sample of one process in order.
#[derive(Default)]
pub struct SampledDiagnoser {
    blocked: BlockedWorkers,
    held: HeldWhileWaiting,
}

impl SampledDiagnoser {
    /// Adds the sample `dump`, taken at `at` (from any fixed start); returns the diagnoses
    /// that hold at it.
    pub fn add(&mut self, dump: &Dump, at: Duration) -> Vec<SampledDiagnosis> {
        let mut out = self.blocked.add(dump, at);
        out.extend(self.held.add(dump, at));
        out
    }
}

/// A diagnosis naming a task, in a word or two (a table's column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskFlag {
    /// The task is in a deadlock cycle.
    Deadlock,
    /// It holds a blocking lock's guard across an await ([`Diagnosis::GuardAcrossAwait`]).
    LockHeld,
    /// Its poll blocks a worker ([`SampledDiagnosis::WorkerBlocked`]).
    WorkerBlocked,
    /// It holds what others wait for while it waits ([`SampledDiagnosis::HeldWhileWaiting`]).
    HeldWhileWaiting,
    /// Nothing can wake it ([`Diagnosis::NeverWoken`]).
    NeverWoken,
}

impl fmt::Display for TaskFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskFlag::Deadlock => "DEADLOCK",
            TaskFlag::LockHeld => "LOCK HELD",
            TaskFlag::WorkerBlocked => "BLOCKS WORKER",
            TaskFlag::HeldWhileWaiting => "HOLDS, WAITS",
            TaskFlag::NeverWoken => "NEVER WOKEN",
        })
    }
}

/// Which diagnoses name each task: `dump`'s deadlocks and diagnoses, and `sampled` (each
/// task's flags sorted, once each).
pub fn task_flags(dump: &Dump, sampled: &[SampledDiagnosis]) -> HashMap<u64, Vec<TaskFlag>> {
    let mut out: HashMap<u64, Vec<TaskFlag>> = HashMap::new();
    let named =
        dump.deadlocks
            .iter()
            .flatten()
            .map(|&id| (id, TaskFlag::Deadlock))
            .chain(dump.diagnoses.iter().map(|d| match d {
                Diagnosis::GuardAcrossAwait { task, .. } => (*task, TaskFlag::LockHeld),
                Diagnosis::NeverWoken { task, .. } => (*task, TaskFlag::NeverWoken),
            }))
            .chain(sampled.iter().map(|d| {
                let flag = match d {
                    SampledDiagnosis::WorkerBlocked { .. }
                    | SampledDiagnosis::WorkerBusy { .. } => TaskFlag::WorkerBlocked,
                    SampledDiagnosis::HeldWhileWaiting { .. } => TaskFlag::HeldWhileWaiting,
                };
                (d.task(), flag)
            }));
    for (id, flag) in named {
        out.entry(id).or_default().push(flag);
    }
    for flags in out.values_mut() {
        flags.sort();
        flags.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NativeFrame, ThreadInfo};

    fn worker(task: u64, syscall: Option<u64>, pc: u64) -> ThreadInfo {
        let mut w = ThreadInfo::new(12, ThreadRole::Worker);
        w.name = Some("tokio-runtime-w".into());
        w.task = Some(task);
        w.syscall = syscall.map(|number| Syscall {
            number,
            name: Some("clock_nanosleep".into()),
        });
        w.native_stack = vec![
            NativeFrame {
                pc: 0x7f00,
                function: Some("clock_nanosleep".into()),
                module: Some("libc.so.6".into()),
                ..Default::default()
            },
            NativeFrame {
                pc: 0x5500,
                function: Some("std::thread::sleep".into()),
                location: Some(Location::new(
                    "/rustc/abc/library/std/src/thread/mod.rs",
                    900,
                    None,
                )),
                ..Default::default()
            },
            NativeFrame {
                pc,
                function: Some("app::handler::{{closure}}".into()),
                location: Some(Location::new("/home/me/app/src/main.rs", 40, None)),
                ..Default::default()
            },
        ];
        w
    }

    fn sample(threads: Vec<ThreadInfo>) -> Dump {
        let mut d = Dump::new(Vec::new());
        d.threads = threads;
        d
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn blocked_alike_in_three_samples_over_a_second_is_diagnosed_with_its_frame() {
        let mut b = BlockedWorkers::default();
        assert!(b
            .add(&sample(vec![worker(7, Some(230), 0x10)]), ms(0))
            .is_empty());
        assert!(b
            .add(&sample(vec![worker(7, Some(230), 0x10)]), ms(600))
            .is_empty());
        let found = b.add(&sample(vec![worker(7, Some(230), 0x10)]), ms(1200));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "WORKER BLOCKED: thread 12 \"tokio-runtime-w\" was in system call clock_nanosleep \
             inside a poll of task 7, in app::handler::{{closure}} at src/main.rs:40, in all 3 \
             samples over 1.2 s: it polls no other task while it blocks"
        );
        let flags = task_flags(&Dump::new(Vec::new()), &found);
        assert_eq!(flags[&7], [TaskFlag::WorkerBlocked]);
    }

    /// A sleep a sample's stop interrupted goes on as `restart_syscall` (from the same
    /// instruction): the streak goes on, and names the call itself.
    #[test]
    fn a_call_restarted_after_a_stop_keeps_the_streak_and_its_name() {
        let restarted = |mut w: ThreadInfo| {
            w.syscall = Some(Syscall {
                number: 219,
                name: Some("restart_syscall".into()),
            });
            w
        };
        let mut b = BlockedWorkers::default();
        b.add(&sample(vec![worker(7, Some(230), 0x10)]), ms(0));
        b.add(
            &sample(vec![restarted(worker(7, Some(230), 0x10))]),
            ms(600),
        );
        let found = b.add(
            &sample(vec![restarted(worker(7, Some(230), 0x10))]),
            ms(1200),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .to_string()
                .contains("in system call clock_nanosleep inside"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn running_code_another_task_another_frame_or_a_gap_starts_over() {
        // Each second sample differs: on the CPU, another task, another pc, no thread.
        let breaks = [
            worker(7, None, 0x10),
            worker(8, Some(230), 0x10),
            worker(7, Some(230), 0x20),
        ];
        for other in breaks {
            let mut b = BlockedWorkers::default();
            for (i, th) in [
                worker(7, Some(230), 0x10),
                other.clone(),
                worker(7, Some(230), 0x10),
                worker(7, Some(230), 0x10),
            ]
            .into_iter()
            .enumerate()
            {
                let found = b.add(&sample(vec![th]), ms(1000 * i as u64));
                assert!(found.is_empty(), "{other:?}: {found:?}");
            }
        }
        let mut b = BlockedWorkers::default();
        b.add(&sample(vec![worker(7, Some(230), 0x10)]), ms(0));
        b.add(&sample(Vec::new()), ms(500));
        b.add(&sample(vec![worker(7, Some(230), 0x10)]), ms(1000));
        assert!(b
            .add(&sample(vec![worker(7, Some(230), 0x10)]), ms(1500))
            .is_empty());
        // Many samples within less than a second: not yet.
        let mut b = BlockedWorkers::default();
        for i in 0..50 {
            assert!(b
                .add(&sample(vec![worker(7, Some(230), 0x10)]), ms(10 * i))
                .is_empty());
        }
    }
}
