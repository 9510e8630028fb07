//! What each task has been seen doing over the samples: one [`Row`] per task of the last
//! sample, with how long it has been seen waiting at the same spot and how often it was seen
//! running.
//!
//! Invariants: a task's wait starts at the first sample that saw it at its spot (same
//! [`Spot::key`]) and not running, and is reset by a sample that sees it elsewhere or running —
//! what happened between two samples is not seen, so a wait is "seen in every sample since";
//! [`Row::from_start`] marks a wait already under way at the first sample (it may be longer);
//! busy % counts the last [`BUSY_WINDOW`] samples a task was in; tasks gone from a sample are
//! forgotten. Each distinct tree of a sample is summarised once.

use super::spot::{self, Place, Spot};
use crate::{task_flags, Dump, Node, SampledDiagnosis, TaskFlag, TaskState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Busy % is over this many of a task's last samples.
pub const BUSY_WINDOW: u32 = 64;

/// A task's state, in a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Inside `poll` at the sample.
    Running,
    /// Woken, in a run queue.
    Scheduled,
    /// Suspended, waiting to be woken.
    Idle,
    /// The reader could not tell.
    Unknown,
}

impl State {
    fn of(state: &TaskState) -> State {
        match state {
            TaskState::Running { .. } | TaskState::InPoll => State::Running,
            TaskState::Scheduled => State::Scheduled,
            TaskState::Idle { .. } | TaskState::Suspended => State::Idle,
            TaskState::Unknown => State::Unknown,
        }
    }

    /// `running`, `scheduled`, `idle`, `unknown`.
    pub fn word(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Scheduled => "scheduled",
            State::Idle => "idle",
            State::Unknown => "unknown",
        }
    }
}

/// One task as the table shows it.
#[derive(Clone, Debug)]
pub struct Row {
    /// The task's id.
    pub id: u64,
    /// Its name, when it has one.
    pub name: Option<String>,
    /// What it did at the last sample.
    pub state: State,
    /// Where it waits (for a task running now: where it waited last, if it was seen waiting).
    pub spot: Option<Spot>,
    /// How long it has been seen waiting at its spot; `None` while it runs.
    pub waited: Option<Duration>,
    /// The wait was under way at the first sample (it may have begun earlier).
    pub from_start: bool,
    /// How often it was seen running, in % of its last samples (at most [`BUSY_WINDOW`]).
    pub busy: u32,
    /// The diagnoses naming it at the last sample (the dump's, and the samples' together).
    pub flags: Vec<TaskFlag>,
}

impl Row {
    /// The root function, or `?`.
    pub fn root(&self) -> &str {
        self.spot.as_ref().map_or("?", |s| s.root.as_str())
    }

    /// The innermost user frame with its line, or `-`.
    pub fn place(&self) -> Option<&Place> {
        self.spot.as_ref()?.place.as_ref()
    }

    /// What the leaf waits on (`running` while the task runs), with the number of other
    /// waiting branches: `Sleep [waiting on timer] (+1)`.
    pub fn wait(&self) -> String {
        if self.state == State::Running {
            return "running".into();
        }
        match &self.spot {
            Some(s) if s.more > 0 => format!("{} (+{})", s.wait, s.more),
            Some(s) => s.wait.clone(),
            None => "-".into(),
        }
    }

    /// The wait as the table writes it: `12.0s`, `12.0s+` when it was under way at the
    /// first sample, `-` while running.
    pub fn waited_text(&self) -> String {
        match self.waited {
            None => "-".into(),
            Some(d) => format!("{}{}", human(d), if self.from_start { "+" } else { "" }),
        }
    }

    /// The diagnoses naming it, as the model words them: `DEADLOCK, LOCK HELD`, or `-`.
    pub fn flags_text(&self) -> String {
        if self.flags.is_empty() {
            return "-".into();
        }
        let words: Vec<String> = self.flags.iter().map(TaskFlag::to_string).collect();
        words.join(", ")
    }

    /// Every column's text joined, for the `/` filter.
    pub fn text(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.id,
            self.name.as_deref().unwrap_or(""),
            self.state.word(),
            self.flags_text(),
            self.root(),
            self.place().map(Place::label).unwrap_or_default(),
            self.wait()
        )
    }
}

/// A duration in a narrow column: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What was seen of one task.
struct Seen {
    /// Its spot at the last sample that saw it waiting.
    spot: Option<Spot>,
    /// Since when it has been seen waiting at that spot; `None` while running.
    since: Option<Instant>,
    from_start: bool,
    /// One bit per sample, the newest lowest: seen running.
    running: u64,
    samples: u32,
}

/// Every task's past, over the samples of one process.
#[derive(Default)]
pub struct History {
    tasks: HashMap<u64, Seen>,
    first: Option<Instant>,
}

impl History {
    /// Adds a sample taken at `at`, with what the samples up to it prove (`sampled`);
    /// returns every task of it, in id order.
    pub fn add(&mut self, dump: &Dump, at: Instant, sampled: &[SampledDiagnosis]) -> Vec<Row> {
        let first = *self.first.get_or_insert(at);
        let mut flags = task_flags(dump, sampled);
        let cleaned = dump.cleaned();
        // Tasks suspended alike share one tree: summarise each tree once.
        let mut spots: HashMap<*const Vec<Node>, Option<Spot>> = HashMap::new();
        let mut rows = Vec::with_capacity(cleaned.tasks.len());
        let mut next: HashMap<u64, Seen> = HashMap::with_capacity(cleaned.tasks.len());
        for task in &cleaned.tasks {
            let state = State::of(&task.state);
            let running = state == State::Running;
            let spot = if running || task.trace.is_empty() {
                None
            } else {
                spots
                    .entry(Arc::as_ptr(&task.trace.roots))
                    .or_insert_with(|| spot::of(&task.trace))
                    .clone()
            };
            let before = self.tasks.remove(&task.id);
            let mut seen = match before {
                Some(s) => s,
                None => Seen {
                    spot: None,
                    since: None,
                    from_start: false,
                    running: 0,
                    samples: 0,
                },
            };
            seen.running = (seen.running << 1) | u64::from(running);
            seen.samples = (seen.samples + 1).min(BUSY_WINDOW);
            match spot {
                None if running => seen.since = None,
                None => {
                    seen.spot = None;
                    seen.since = None;
                }
                Some(spot) => {
                    let same = seen.since.is_some()
                        && seen.spot.as_ref().is_some_and(|s| s.key == spot.key);
                    if !same {
                        seen.since = Some(at);
                        seen.from_start = at == first;
                    }
                    seen.spot = Some(spot);
                }
            }
            let window = if seen.samples >= 64 {
                u64::MAX
            } else {
                (1u64 << seen.samples) - 1
            };
            rows.push(Row {
                id: task.id,
                name: task.name.clone(),
                state,
                spot: seen.spot.clone(),
                waited: seen.since.map(|s| at.saturating_duration_since(s)),
                from_start: seen.from_start && seen.since.is_some(),
                busy: (seen.running & window).count_ones() * 100 / seen.samples,
                flags: flags.remove(&task.id).unwrap_or_default(),
            });
            next.insert(task.id, seen);
        }
        self.tasks = next;
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, FrameKind, Location, Task, Trace};

    fn task(id: u64, line: u32, running: bool) -> Task {
        let mut t = Task::new(id);
        if running {
            t.state = TaskState::InPoll;
        } else {
            t.state = TaskState::Suspended;
            let mut trace = Trace::new();
            trace.insert_path([
                Frame::new("app::work", Some(Location::new("src/main.rs", line, None)))
                    .with_kind(FrameKind::AsyncFn),
                Frame::new("tokio::sync::notify::Notified", None).with_kind(FrameKind::Leaf),
            ]);
            t.trace = trace;
        }
        t
    }

    #[test]
    fn a_wait_lasts_while_the_spot_stays_and_resets_when_it_moves_or_runs() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut h = History::default();
        let rows = h.add(
            &Dump::new(vec![task(1, 10, false), task(2, 10, false)]),
            s(0),
            &[],
        );
        assert_eq!(rows[0].waited, Some(Duration::ZERO));
        assert!(rows[0].from_start);
        let rows = h.add(
            &Dump::new(vec![
                task(1, 10, false),
                task(2, 11, false),
                task(3, 10, false),
            ]),
            s(1),
            &[],
        );
        assert_eq!(rows[0].waited, Some(Duration::from_secs(1)));
        assert_eq!(rows[0].waited_text(), "1.0s+");
        assert_eq!(
            (rows[1].waited, rows[1].from_start),
            (Some(Duration::ZERO), false)
        );
        assert_eq!(
            (rows[2].waited, rows[2].from_start),
            (Some(Duration::ZERO), false)
        );
        let rows = h.add(
            &Dump::new(vec![task(1, 10, true), task(3, 10, false)]),
            s(2),
            &[],
        );
        assert_eq!(rows.len(), 2, "task 2 is gone");
        assert_eq!(rows[0].waited, None);
        assert_eq!(rows[0].wait(), "running");
        assert_eq!(rows[0].root(), "work", "a running task keeps its last root");
        assert_eq!(rows[0].busy, 33);
        let rows = h.add(&Dump::new(vec![task(1, 10, false)]), s(3), &[]);
        assert_eq!(
            rows[0].waited,
            Some(Duration::ZERO),
            "back from running: a new wait"
        );
        assert_eq!(rows[0].busy, 25);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
        assert_eq!(human(Duration::from_secs(7380)), "2h03m");
    }
}
