//! Every task of a program at one moment.

use crate::{Location, Trace};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Version of the JSON schema of [`Dump`] (see `docs/json-schema.md`). Bumped on any change
/// that is not a pure addition of optional fields.
pub const SCHEMA_VERSION: u32 = 4;

/// What a task is doing at the moment of the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Suspended, not scheduled: waiting for a wake-up since its last poll ended.
    Idle {
        /// Time since the last poll ended.
        #[serde(with = "millis", rename = "for_ms")]
        since: Duration,
    },
    /// Inside a call to `poll` right now (possibly blocked in synchronous code).
    Running {
        /// Time since that poll began.
        #[serde(with = "millis", rename = "for_ms")]
        since: Duration,
    },
    /// Woken and waiting in a run queue to be polled.
    Scheduled,
    /// Suspended and not scheduled, for a time the producer does not know (out-of-process
    /// reads: tokio records no poll times).
    Suspended,
    /// Inside a call to `poll` right now, for a time the producer does not know.
    InPoll,
    /// The producer could not tell.
    Unknown,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskState::Idle { since } => write!(f, "idle for {}", HumanDuration(*since)),
            TaskState::Running { since } => {
                write!(f, "running (inside poll for {})", HumanDuration(*since))
            }
            TaskState::Scheduled => f.write_str("scheduled"),
            TaskState::Suspended => f.write_str("idle"),
            TaskState::InPoll => f.write_str("running (inside poll)"),
            TaskState::Unknown => f.write_str("state unknown"),
        }
    }
}

/// A duration printed the way people read it: `850µs`, `12.3ms`, `4.2s`, `3m05s`.
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integer arithmetic in u64, rounded half up to a tenth: a float's `{:.1}` (or u128
        // formatting) costs ten times more, and a dump prints one duration per task.
        let whole = self.0.as_secs();
        if whole >= 60 {
            return write!(f, "{}m{:02}s", whole / 60, whole % 60);
        }
        let nanos = whole * 1_000_000_000 + u64::from(self.0.subsec_nanos());
        if nanos < 1_000_000 {
            write!(f, "{}µs", nanos / 1_000)
        } else if nanos < 1_000_000_000 {
            let tenths = (nanos + 50_000) / 100_000;
            write!(f, "{}.{}ms", tenths / 10, tenths % 10)
        } else {
            let tenths = (nanos + 50_000_000) / 100_000_000;
            write!(f, "{}.{}s", tenths / 10, tenths % 10)
        }
    }
}

/// One task: its identity, state and logical stack trace.
// `Deserialize`: src/task_serde.rs (one pass over the map; the derived one buffers the
// flattened state).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Task {
    /// Unique id within the dump (the producer's task id).
    pub id: u64,
    /// The name given at spawn, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the task was spawned (or its traced future created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_at: Option<Location>,
    /// The task that spawned this one, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// Idle, running, scheduled.
    #[serde(flatten)]
    pub state: TaskState,
    /// Number of polls so far, when known (the in-process producer counts modulo 2³²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    /// Ids of the tasks whose completion this task awaits (through their join handles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaits: Vec<u64>,
    /// The logical stack trace; empty when it could not be captured (see `error`).
    pub trace: Trace,
    /// Why the trace is missing or partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where this task's entry comes from when a dump joins several sources (`"snapshot"`: a
    /// frozen copy of the process read like a core); `None` for the producer's own tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// tokio's id of the task, in a dump that joins a producer's own tasks with tokio's (its
    /// `id` is then [`TOKIO_ID_BASE`] + this, so that ids stay unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokio_id: Option<u64>,
    /// References to the task held beyond the ones its runtime's task list and its join
    /// handle account for: its wakers (and its abort handles, which tokio counts alike), read
    /// from tokio's reference count for an idle task; `None` when not known. `Some(0)`: no
    /// waker for it exists, nothing can wake it ([`crate::Diagnosis::NeverWoken`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakers: Option<u64>,
    /// What it runs in: task-local values in scope, `tracing` spans (on its header line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<crate::TaskContext>,
}

/// In a dump that joins a producer's own tasks with every tokio task (a snapshot), tokio's
/// task N has the id `TOKIO_ID_BASE + N` (and [`Task::tokio_id`] N): the producer's ids and
/// tokio's both count from 1. Text shows such ids as `tokio task N`.
pub const TOKIO_ID_BASE: u64 = 1 << 48;

/// Writes a task id as text: `task 7`, or `tokio task 7` for an id in tokio's range.
pub(crate) fn write_task_id(out: &mut dyn fmt::Write, id: u64) -> fmt::Result {
    if id >= TOKIO_ID_BASE {
        write!(out, "tokio task {}", id - TOKIO_ID_BASE)
    } else {
        write!(out, "task {id}")
    }
}

/// A task id as text, as dumps write it: `task 7`, or `tokio task 7` for an id in tokio's
/// range.
///
/// ```
/// assert_eq!(tasktrace_model::task_label(7), "task 7");
/// assert_eq!(tasktrace_model::task_label(tasktrace_model::TOKIO_ID_BASE + 3), "tokio task 3");
/// ```
pub fn task_label(id: u64) -> String {
    let mut s = String::new();
    let _ = write_task_id(&mut s, id);
    s
}

/// A deadlock cycle as text: `task 3 -> task 7 -> task 3 await each other`.
///
/// ```
/// assert_eq!(tasktrace_model::cycle_text(&[3, 7]), "task 3 -> task 7 -> task 3 await each other");
/// ```
pub fn cycle_text(cycle: &[u64]) -> String {
    let names: Vec<String> = cycle.iter().map(|&id| task_label(id)).collect();
    let first = names.first().cloned().unwrap_or_default();
    format!("{} -> {first} await each other", names.join(" -> "))
}

impl Task {
    /// A task with the given id, an unknown state and no trace.
    pub fn new(id: u64) -> Self {
        Task {
            id,
            name: None,
            spawned_at: None,
            parent: None,
            state: TaskState::Unknown,
            polls: None,
            awaits: Vec::new(),
            trace: Trace::new(),
            error: None,
            source: None,
            tokio_id: None,
            wakers: None,
            context: Vec::new(),
        }
    }

    /// Adds an edge to task `id` to [`awaits`](Self::awaits), unless it is this task or
    /// already there.
    pub fn add_await(&mut self, id: u64) {
        if id != self.id && !self.awaits.contains(&id) {
            self.awaits.push(id);
        }
    }

    /// The header line of this task in text dumps.
    pub fn header(&self) -> String {
        let mut s = String::new();
        let _ = self.write_header(&mut s);
        s
    }

    /// Writes [`header`](Self::header) to `out`, without allocating (text dumps write one
    /// per task).
    pub fn write_header(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.write_header_with(out, false, &mut Default::default())
    }

    /// [`write_header`](Self::write_header), with the spawn site's column and, for a
    /// producer's own task a snapshot also saw, its tokio id when `columns` (the verbose view).
    /// Paths are shortened through `paths`, which remembers the last one.
    pub(crate) fn write_header_with<'a>(
        &'a self,
        out: &mut dyn fmt::Write,
        columns: bool,
        paths: &mut crate::clean::LastShortPath<'a>,
    ) -> fmt::Result {
        write_task_id(out, self.id)?;
        if let (true, true, Some(tokio)) = (columns, self.id < TOKIO_ID_BASE, self.tokio_id) {
            write!(out, " (tokio task {tokio})")?;
        }
        if let Some(name) = &self.name {
            write!(out, " \"{name}\"")?;
        }
        write!(out, " — {}", self.state)?;
        if let Some(loc) = &self.spawned_at {
            write!(out, ", spawned at {}:{}", paths.get(&loc.file), loc.line)?;
            if let (true, Some(col)) = (columns, loc.column) {
                write!(out, ":{col}")?;
            }
        }
        if let Some(parent) = self.parent {
            write!(out, " by ")?;
            write_task_id(out, parent)?;
        }
        if let Some(polls) = self.polls {
            write!(out, ", {polls} polls")?;
        }
        // A semaphore's waiter awaits every permit holder: name a few.
        for &id in self.awaits.iter().take(AWAITS_SHOWN) {
            write!(out, ", awaits ")?;
            write_task_id(out, id)?;
        }
        if self.awaits.len() > AWAITS_SHOWN {
            write!(out, " and {} more", self.awaits.len() - AWAITS_SHOWN)?;
        }
        for c in &self.context {
            write!(out, ", {c}")?;
        }
        if let Some(source) = &self.source {
            write!(out, " (from the {source})")?;
        }
        Ok(())
    }
}

/// How many awaited tasks a text header names (all are in [`Task::awaits`]).
const AWAITS_SHOWN: usize = 5;

/// Every task of a program at one moment, as one producer saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    /// The JSON schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The tasks, in id order.
    pub tasks: Vec<Task>,
    /// Cycles of tasks that await each other: each a list of task ids, in await order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlocks: Vec<Vec<u64>>,
    /// Warnings about the dump itself (tasks that could not be captured in time, what a core
    /// file cannot tell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the dump is not the program's every task (a task list cut short, tasks whose memory
    /// is missing); empty when it is whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial: Vec<String>,
    /// What the dump proves wrong besides deadlocks ([`Dump::find_diagnoses`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<crate::Diagnosis>,
    /// The program's threads (workers, `block_on` threads with their root future), when the
    /// producer was asked for them; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<crate::ThreadInfo>,
}

impl Default for Dump {
    fn default() -> Self {
        Dump::new(Vec::new())
    }
}

impl Dump {
    /// A dump of these tasks (sorted by id), with its deadlock cycles computed.
    pub fn new(tasks: Vec<Task>) -> Self {
        let tasks = by_id(tasks);
        let mut dump = Dump {
            schema_version: SCHEMA_VERSION,
            tasks,
            deadlocks: Vec::new(),
            notes: Vec::new(),
            partial: Vec::new(),
            diagnoses: Vec::new(),
            threads: Vec::new(),
        };
        dump.deadlocks = dump.find_deadlocks();
        dump.diagnoses = dump.find_diagnoses();
        dump
    }

    /// The task with this id.
    pub fn task(&self, id: u64) -> Option<&Task> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.tasks[i])
    }

    /// [`task`](Self::task), to change.
    pub fn task_mut(&mut self, id: u64) -> Option<&mut Task> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &mut self.tasks[i])
    }

    /// Cycles in the task-awaits-task graph, each reported once, starting at its smallest id.
    pub fn find_deadlocks(&self) -> Vec<Vec<u64>> {
        let mut cycles: Vec<Vec<u64>> = Vec::new();
        for start in &self.tasks {
            // Follow await edges from `start`; a cycle through `start` is found when we return to
            // it. Only the first edge of each task is followed to keep this linear per start; a
            // task awaiting several tasks gets each edge tried as a start path below.
            for &first in &start.awaits {
                let mut path = vec![start.id];
                let mut seen = std::collections::HashSet::from([start.id]);
                let mut cur = first;
                loop {
                    if cur == start.id {
                        let min_pos = path
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, id)| **id)
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        path.rotate_left(min_pos);
                        if !cycles.contains(&path) {
                            cycles.push(path);
                        }
                        break;
                    }
                    if !seen.insert(cur) {
                        break;
                    }
                    path.push(cur);
                    match self.task(cur).and_then(|t| t.awaits.first()) {
                        Some(&next) => cur = next,
                        None => break,
                    }
                }
            }
        }
        cycles.sort();
        cycles
    }
}

/// `tasks` ordered by id, tasks of one id in the order given (as a stable sort). A task is a
/// few hundred bytes and a read lists 10,000 in the runtime's list order: the ids are
/// sorted with their positions and each task moved once, instead of moving tasks at every
/// step of a sort.
fn by_id(tasks: Vec<Task>) -> Vec<Task> {
    if tasks.is_sorted_by_key(|t| t.id) {
        return tasks;
    }
    // (id, position): equal ids keep their order.
    let mut order: Vec<(u64, usize)> = tasks.iter().map(|t| t.id).zip(0..).collect();
    order.sort_unstable();
    let mut slots: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
    order.iter().filter_map(|&(_, i)| slots[i].take()).collect()
}

/// Serde helper: a [`Duration`] as a number of milliseconds (fractional).
pub(crate) mod millis {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        from_ms(ms).ok_or_else(|| D::Error::custom(format!("{ms} ms out of range")))
    }

    /// `ms` milliseconds (a negative number is none); `None` past what a `Duration` holds.
    pub(crate) fn from_ms(ms: f64) -> Option<Duration> {
        Duration::try_from_secs_f64(ms.max(0.0) / 1e3).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, awaits: &[u64]) -> Task {
        let mut t = Task::new(id);
        t.awaits = awaits.to_vec();
        t
    }

    #[test]
    fn a_dump_lists_its_tasks_by_id_equal_ids_in_the_order_given() {
        let named = |id, name: &str| {
            let mut t = Task::new(id);
            t.name = Some(name.into());
            t
        };
        let d = Dump::new(vec![
            task(9, &[]),
            named(5, "first"),
            task(1, &[]),
            named(5, "second"),
            task(7, &[]),
        ]);
        let got: Vec<(u64, Option<&str>)> =
            d.tasks.iter().map(|t| (t.id, t.name.as_deref())).collect();
        assert_eq!(
            got,
            [
                (1, None),
                (5, Some("first")),
                (5, Some("second")),
                (7, None),
                (9, None)
            ]
        );
    }

    #[test]
    fn human_durations_round_to_a_tenth() {
        let shown = |nanos: u64| HumanDuration(Duration::from_nanos(nanos)).to_string();
        assert_eq!(shown(850_400), "850µs");
        assert_eq!(shown(1_000_000), "1.0ms");
        assert_eq!(shown(12_349_999), "12.3ms");
        assert_eq!(shown(12_350_000), "12.4ms");
        assert_eq!(shown(999_960_000), "1000.0ms");
        assert_eq!(shown(4_240_000_000), "4.2s");
        assert_eq!(shown(185_000_000_000), "3m05s");
    }

    #[test]
    fn finds_a_two_task_cycle_once() {
        let d = Dump::new(vec![task(7, &[3]), task(3, &[7]), task(5, &[3])]);
        assert_eq!(d.deadlocks, vec![vec![3, 7]]);
        assert!(d
            .to_string()
            .starts_with("DEADLOCK: task 3 -> task 7 -> task 3"));
    }

    #[test]
    fn a_header_names_five_awaited_tasks_and_counts_the_rest() {
        let t = task(1, &[2, 3, 4, 5, 6, 7, 8]);
        assert!(
            t.header().ends_with(
                "awaits task 2, awaits task 3, awaits task 4, awaits task 5, awaits task 6 and 2 more"
            ),
            "{}",
            t.header()
        );
    }

    #[test]
    fn self_await_is_a_cycle() {
        let d = Dump::new(vec![task(1, &[1])]);
        assert_eq!(d.deadlocks, vec![vec![1]]);
    }

    #[test]
    fn chain_without_cycle_is_not_a_deadlock() {
        let d = Dump::new(vec![task(1, &[2]), task(2, &[3]), task(3, &[])]);
        assert!(d.deadlocks.is_empty());
    }

    #[test]
    fn json_has_tasks_array_and_state() {
        let mut t = Task::new(4);
        t.state = TaskState::Idle {
            since: Duration::from_millis(1500),
        };
        let json = serde_json::to_value(Dump::new(vec![t])).unwrap();
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["tasks"][0]["id"], 4);
        assert_eq!(json["tasks"][0]["state"], "idle");
        assert_eq!(json["tasks"][0]["for_ms"], 1500.0);
        let back: Dump = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.tasks[0].state,
            TaskState::Idle {
                since: Duration::from_millis(1500)
            }
        );
    }
}
