//! The watchdog's view of the tokio tasks the registry does not know (plain `tokio::spawn`,
//! the frameworks' tasks): a [snapshot](crate::snapshot) every
//! [`snapshot_interval`](super::WatchdogConfig::snapshot_interval), compared with the one before.
//!
//! tokio records no poll times (without `tokio_unstable`), so a snapshot's task has no idle
//! duration of its own. What the watchdog can know is where each task waits in every snapshot:
//! a task seen suspended at the same await points, with the same timer deadlines, in every
//! snapshot for [`idle_after`](super::WatchdogConfig::idle_after) is reported as waiting there
//! that long. A task woken in between that came back to the same place counts as waiting (a
//! loop on a channel that is served, say); the event says so, and
//! [`watch_idle`](super::WatchdogConfig::watch_idle) picks the tasks that matter. Timers tell
//! more: a timer whose deadline passed before the next snapshot has fired, so a timer in the
//! same place then is a new one (a periodic loop), never taken for a stall.
//!
//! Deadlocks are certain where idleness is not: a cycle of tasks each awaiting the next (a
//! join handle, a lock another holds — see the snapshot's `deadlocks`) does not undo itself.
//! A cycle seen in two snapshots in a row, made of the same tasks, is reported as an `ERROR`
//! with each task's trace, once per [`repeat_after`](super::WatchdogConfig::repeat_after).
//!
//! Invariants: only the watchdog's thread touches a [`Sightings`]; entries are keyed by tokio's
//! task id (a cycle: by its ids) and dropped as soon as a snapshot no longer lists the task
//! (the cycle).

use super::{WatchdogConfig, TARGET};
use crate::model::{Task, TaskState};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tasktrace_model::{Location, Timer, TOKIO_ID_BASE};

/// Timer deadlines read from two snapshots are the same deadline within this, plus the time
/// each read took (the waits give the time left to the millisecond, as of the read).
const SAME_DEADLINE: Duration = Duration::from_millis(250);

/// Where a task waits, as far as two snapshots can be compared.
#[derive(PartialEq)]
struct WaitPoint {
    /// Each frame of the tree, depth first: its depth, function and location.
    frames: Vec<(usize, String, Option<Location>)>,
}

struct Sighting {
    at: WaitPoint,
    /// The timers it waits on, as instants (start of the snapshot + time left at the read).
    deadlines: Vec<Instant>,
    /// How long the snapshot that read `deadlines` took: their uncertainty.
    read_for: Duration,
    /// The first snapshot that saw it waiting here.
    since: Instant,
    reported: Option<Instant>,
    round: u64,
}

/// What the watchdog remembers between snapshots.
#[derive(Default)]
pub(super) struct Sightings {
    seen: HashMap<u64, Sighting>,
    last: Option<Instant>,
    rounds: u64,
    /// Whether the reason the snapshots cannot be taken was already said.
    refusal_said: bool,
    /// Deadlock cycles (tokio ids, as the snapshot gives them) seen in the last snapshot, and
    /// when each was last reported.
    cycles: HashMap<Vec<u64>, Option<Instant>>,
    /// Cycles seen in two snapshots in a row, to report.
    deadlocked: Vec<Deadlock>,
}

/// A cycle of tasks awaiting each other, seen in two snapshots in a row.
pub(super) struct Deadlock {
    /// The cycle: tokio ids, in await order.
    cycle: Vec<u64>,
    /// Each task's header and tree.
    traces: String,
}

/// An unregistered task waiting for too long, ready to report.
pub(super) struct Stalled {
    task: Task,
    waited: Duration,
}

impl Sightings {
    /// Takes a snapshot when one is due and returns the tasks seen waiting at the same place
    /// for `idle_after` or longer that may be reported (again), marked as reported.
    pub(super) fn scan(&mut self, config: &WatchdogConfig, now: Instant) -> Vec<Stalled> {
        let (Some(idle_after), Some(every)) = (config.idle_after, config.snapshot_interval) else {
            return Vec::new();
        };
        if self.last.is_some_and(|at| now.duration_since(at) < every) {
            return Vec::new();
        }
        self.last = Some(now);
        let taken = Instant::now();
        let snap = match crate::snapshot::snapshot() {
            Ok(snap) => snap,
            Err(e) => {
                if !self.refusal_said {
                    self.refusal_said = true;
                    tracing::warn!(
                        target: TARGET,
                        "{e}; the watchdog watches only the tasks of tasktrace::spawn/traced"
                    );
                }
                return Vec::new();
            }
        };
        let read_for = taken.elapsed();
        self.find_deadlocks(&snap, config, now);
        self.rounds += 1;
        let round = self.rounds;
        let mut stalled = Vec::new();
        for task in snap.tasks {
            if crate::snapshot::is_registered(&task) || task.state != TaskState::Suspended {
                self.seen.remove(&task.id);
                continue;
            }
            let at = wait_point(&task);
            let deadlines = deadlines(&task, taken);
            let sighting = self.seen.entry(task.id).or_insert_with(|| Sighting {
                at: WaitPoint { frames: Vec::new() },
                deadlines: Vec::new(),
                read_for,
                since: taken,
                reported: None,
                round,
            });
            let tolerance = SAME_DEADLINE + sighting.read_for + read_for;
            if sighting.at != at || !same_timers(&sighting.deadlines, &deadlines, taken, tolerance)
            {
                sighting.at = at;
                sighting.since = taken;
                sighting.reported = None;
            }
            sighting.deadlines = deadlines;
            sighting.read_for = read_for;
            sighting.round = round;
            let waited = taken.duration_since(sighting.since);
            let may_report = sighting
                .reported
                .is_none_or(|r| now.duration_since(r) >= config.repeat_after);
            if waited >= idle_after && may_report {
                sighting.reported = Some(now);
                stalled.push(Stalled { task, waited });
            }
        }
        self.seen.retain(|_, s| s.round == round);
        stalled
    }
}

impl Sightings {
    /// Keeps the snapshot's cycles; those also in the snapshot before, and not reported within
    /// `repeat_after`, go to [`deadlocks`](Self::deadlocks).
    fn find_deadlocks(&mut self, snap: &crate::model::Dump, config: &WatchdogConfig, now: Instant) {
        let mut cycles = HashMap::new();
        for cycle in &snap.deadlocks {
            let reported = match self.cycles.get(cycle) {
                // Seen before: a deadlock.
                Some(reported) => {
                    if reported.is_none_or(|at| now.duration_since(at) >= config.repeat_after) {
                        let traces = cycle
                            .iter()
                            .filter_map(|&id| snap.task(id))
                            .map(|t| format!("{}\n{}", t.header(), t.trace.clean()))
                            .collect::<Vec<_>>()
                            .join("\n");
                        self.deadlocked.push(Deadlock {
                            cycle: cycle.clone(),
                            traces,
                        });
                        Some(now)
                    } else {
                        *reported
                    }
                }
                None => None,
            };
            cycles.insert(cycle.clone(), reported);
        }
        self.cycles = cycles;
    }

    /// The deadlocks found by the last [`scan`](Self::scan)s, to report.
    pub(super) fn deadlocks(&mut self) -> Vec<Deadlock> {
        std::mem::take(&mut self.deadlocked)
    }

    /// A task returned by [`scan`](Self::scan) that was not reported after all (over the
    /// scan's budget): it comes again at the next snapshot.
    pub(super) fn held_back(&mut self, id: u64) {
        if let Some(s) = self.seen.get_mut(&id) {
            s.reported = None;
        }
    }
}

impl Stalled {
    /// The task as the idle filter sees it: tokio's id, no name, the snapshot's tree.
    pub(super) fn task(&self) -> &Task {
        &self.task
    }

    /// Emits the `WARN` event; `every` is the snapshot interval, which the message names.
    pub(super) fn emit(&self, every: Duration) {
        let trace = format!("\n{}", self.task.trace.to_string().trim_end());
        tracing::warn!(
            target: TARGET,
            tokio_task_id = self.task.id,
            idle_for = ?self.waited,
            trace = %trace,
            "tokio task {} (not started with tasktrace::spawn) has waited at the same await \
             points in every snapshot for {:.1?} (snapshots every {every:.1?}; a wake-up that \
             led back to the same place in between is not seen); where it waits: the `trace` \
             field",
            self.task.id,
            self.waited,
        );
    }
}

impl Deadlock {
    /// Emits the `ERROR` event: the cycle, and each task's trace in the `trace` field.
    pub(super) fn emit(&self) {
        // The snapshot's ids are tokio's: named as dumps name them.
        let in_tokio_range: Vec<u64> = self.cycle.iter().map(|id| TOKIO_ID_BASE + id).collect();
        let trace = format!("\n{}", self.traces.trim_end());
        tracing::error!(
            target: TARGET,
            tokio_task_ids = ?self.cycle,
            trace = %trace,
            "deadlock: {} (seen in two snapshots in a row; each task's trace: the `trace` \
             field)",
            tasktrace_model::cycle_text(&in_tokio_range),
        );
    }
}

fn wait_point(task: &Task) -> WaitPoint {
    WaitPoint {
        frames: task
            .trace
            .walk()
            .into_iter()
            .map(|(depth, node)| {
                (
                    depth,
                    node.frame.function.clone(),
                    node.frame.location.clone(),
                )
            })
            .collect(),
    }
}

/// The deadlines of the timers a task waits on, from its leaves' waits (the time left, or
/// passed, as of the read `taken`).
fn deadlines(task: &Task, taken: Instant) -> Vec<Instant> {
    task.trace
        .walk()
        .into_iter()
        .flat_map(|(_, node)| node.frame.waits.iter())
        .filter_map(|w| match w.timer? {
            Timer::LeftMs(ms) => Some(taken + Duration::from_millis(ms)),
            Timer::PassedMs(ms) => taken.checked_sub(Duration::from_millis(ms)),
            Timer::AtMs(_) => None,
        })
        .collect()
}

/// Whether the timers `now` are the ones seen before: as many, each at the same deadline, and
/// none of the earlier ones due by now (a timer that fired and waits again is a new one).
fn same_timers(before: &[Instant], now: &[Instant], at: Instant, tolerance: Duration) -> bool {
    before.len() == now.len()
        && before.iter().zip(now).all(|(b, n)| {
            let gap = if b > n { *b - *n } else { *n - *b };
            *b > at && gap <= tolerance
        })
}
