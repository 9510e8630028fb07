//! `snapshot()`: every tokio task of this process — not only the ones started with
//! [`spawn`](crate::spawn()) or [`traced`](crate::traced()) — read from its memory by the
//! out-of-process reader (`tasktrace-inspect`), the way `tasktrace attach` reads another
//! process (feature `snapshot`, Linux x86-64).
//!
//! Two ways to take one ([`Method`]):
//! - **A reader process** (`snapshot/reader.rs`, the default): a process started from this executable
//!   indexes its debuginfo (in its own memory, kept there for the next snapshots) and stops
//!   this program's threads with ptrace only while it copies the task lists and futures. The
//!   pause depends on what is read, not on the heap; this process keeps nothing.
//! - **A frozen fork** (`snapshot/fork.rs`): this process forks, the child stops itself, and this
//!   process reads the child's memory. The pause is the `fork()` (page tables copied: it
//!   grows with the resident size, refused above [`SnapshotOptions::max_resident`]) and the
//!   index lives in this process. Used when asked for, or when the reader process cannot
//!   read (ptrace refused: a seccomp profile, Yama's `ptrace_scope` 3).
//!
//! The runtimes are named to the reader by the addresses of `tokio::runtime::Handle` values
//! (the current runtime's, and [`register_runtime`]'s): they stay where they are, under the
//! lock of the registered list, until the read is done. Figures: `docs/BENCHMARKS.md`.

mod fork;
mod reader;
mod span_fields;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tasktrace_model::{Dump, Related, TOKIO_ID_BASE};

/// How a snapshot reads this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// The reader process; a fork when the reader process cannot read (the default).
    Auto,
    /// The reader process only.
    ReaderProcess,
    /// A frozen fork only.
    Fork,
}

/// How a snapshot is taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotOptions {
    /// Which way (default [`Method::Auto`]).
    pub method: Method,
    /// Refuse to fork above this resident size, in bytes (default 4 GiB): the fork's pause
    /// grows with it (see `docs/BENCHMARKS.md`). The reader process has no such limit.
    pub max_resident: u64,
    /// Deadline for the threads (or the forked copy) to stop (default 2 s).
    pub timeout: Duration,
    /// Deadline for the reader process's first answer, which indexes the debuginfo
    /// (default 30 s; later answers get [`timeout`](Self::timeout) plus 10 s).
    pub first_timeout: Duration,
    /// The reader process exits after this long without a snapshot (default 120 s); the
    /// next snapshot starts another (and indexes again).
    pub reader_idle: Duration,
    /// Also read the values of async fn frames: their arguments and the locals they keep
    /// across their await, the values of the task-locals in scope, and the fields the
    /// `tracing` spans of the tasks recorded (where tracing-subscriber's `fmt` layer keeps
    /// them) (default false: values may hold what a dump should not show).
    pub values: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            method: Method::Auto,
            max_resident: 4 << 30,
            timeout: Duration::from_secs(2),
            first_timeout: Duration::from_secs(30),
            reader_idle: Duration::from_secs(120),
            values: false,
        }
    }
}

impl SnapshotOptions {
    /// Sets [`max_resident`](Self::max_resident).
    pub fn max_resident(mut self, bytes: u64) -> Self {
        self.max_resident = bytes;
        self
    }

    /// Sets [`method`](Self::method).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Sets [`values`](Self::values).
    pub fn values(mut self, on: bool) -> Self {
        self.values = on;
        self
    }
}

/// The reader process, once started (see [`reader`]); `None` until the first snapshot and
/// after it failed.
static READER: Mutex<Option<reader::Reader>> = Mutex::new(None);

/// Ends the reader process, if one runs (it would exit by itself after
/// [`SnapshotOptions::reader_idle`]); the next snapshot starts another. Returns once it has
/// been reaped, or after a second.
pub fn stop_reader() {
    let taken = READER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = taken {
        r.kill();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !r.is_gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Marked gone just before its reaper reaps it: give that a moment.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Why a snapshot was not taken, with what to change where there is something to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError(String);

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SnapshotError {}

/// Runtimes registered with [`register_runtime`]. A snapshot names each to the reader by the
/// address of its handle here, taken and forked while this lock is held (so none moves).
static RUNTIMES: Mutex<Vec<tokio::runtime::Handle>> = Mutex::new(Vec::new());

/// Makes snapshots read the tasks of `handle`'s runtime too, also when called outside it (the
/// current runtime is always read).
///
/// ```
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// tasktrace::snapshot::register_runtime(rt.handle());
/// ```
pub fn register_runtime(handle: &tokio::runtime::Handle) {
    RUNTIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(handle.clone());
}

/// Every task of the current runtime (and of the registered ones): their trees read from a
/// frozen copy of this process. Blocking: call it from a blocking context
/// ([`dump`](crate::dump()) does), not from a task.
///
/// ```no_run
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let _guard = rt.enter();
/// match tasktrace::snapshot::snapshot() {
///     Ok(dump) => println!("{dump}"),
///     Err(e) => eprintln!("no snapshot: {e}"),
/// }
/// ```
pub fn snapshot() -> Result<Dump, SnapshotError> {
    snapshot_with(&SnapshotOptions::default())
}

/// [`snapshot`] with options.
pub fn snapshot_with(options: &SnapshotOptions) -> Result<Dump, SnapshotError> {
    snapshot_measured(options).map(|m| m.dump)
}

/// A snapshot, and what taking it cost the program.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Measured {
    /// The tasks read.
    pub dump: Dump,
    /// How long the program was paused: the reader process's stop of its threads, or the
    /// fork.
    pub paused: Duration,
    /// Which way it was read ([`Method::ReaderProcess`] or [`Method::Fork`]).
    pub method: Method,
    /// The reader process's resident memory after the read, in bytes (the reader only).
    pub reader_resident: Option<u64>,
    /// The reader process's pid (the reader only).
    pub reader_pid: Option<u32>,
}

/// [`snapshot_with`], with its cost ([`Measured`]).
pub fn snapshot_measured(options: &SnapshotOptions) -> Result<Measured, SnapshotError> {
    // Keeps the linker from leaving out the reader's start (nothing else refers to it).
    std::hint::black_box(&reader::READER_HOOK);
    let current = tokio::runtime::Handle::try_current().ok();
    let registered = RUNTIMES.lock().unwrap_or_else(|e| e.into_inner());
    // The handles stay where they are until the read is done: read at these addresses.
    let handles: Vec<u64> = registered
        .iter()
        .chain(current.as_ref())
        .map(|h| h as *const tokio::runtime::Handle as u64)
        .collect();
    if handles.is_empty() {
        return Err(SnapshotError(
            "snapshot: no tokio runtime to read (call it inside one, or register_runtime)".into(),
        ));
    }
    let mut measured = match options.method {
        Method::Fork => fork::snapshot(&handles, options)?,
        Method::ReaderProcess => by_reader(&handles, options)?,
        Method::Auto => match by_reader(&handles, options) {
            Ok(m) => m,
            Err(why) => {
                let mut m = fork::snapshot(&handles, options)
                    .map_err(|e| SnapshotError(format!("{why}; {e}")))?;
                m.dump
                    .notes
                    .push(format!("{why}; read from a fork instead"));
                m
            }
        },
    };
    drop(registered);
    drop(current);
    let dump = &mut measured.dump;
    if options.values {
        span_fields::fill(dump);
    }
    dump.notes.retain(|n| !n.starts_with("read out of process"));
    for t in &mut dump.tasks {
        t.source = Some("snapshot".into());
    }
    Ok(measured)
}

/// A snapshot read by the reader process (started, or started again, as needed).
fn by_reader(handles: &[u64], options: &SnapshotOptions) -> Result<Measured, SnapshotError> {
    let mut slot = READER.lock().unwrap_or_else(|e| e.into_inner());
    let reply = loop {
        if slot.as_ref().is_some_and(reader::Reader::is_gone) {
            *slot = None;
        }
        let first = slot.is_none();
        let reader = match &mut *slot {
            Some(r) => r,
            None => slot.insert(reader::Reader::spawn()?),
        };
        let deadline = if first {
            options.first_timeout
        } else {
            options.timeout + Duration::from_secs(10)
        };
        match reader.ask(handles, options, deadline) {
            Ok(reply) => break reply,
            Err(e) => {
                let ended = reader.ended();
                *slot = None; // killed on drop
                              // A reader that had ended (idle, or killed) is started again, once: the
                              // new one is `first`.
                if first || !ended {
                    return Err(e);
                }
            }
        }
    };
    let mut dump = reply
        .result
        .map_err(|e| SnapshotError(format!("snapshot: the reader process cannot read: {e}")))?
        .into_dump();
    // Its own note says how long this process was stopped and how much was copied.
    dump.notes.push(format!(
        "snapshot: read by the reader process (pid {}, {} MiB resident; it keeps the index, \
         this process nothing)",
        reply.reader_pid,
        reply.reader_kib >> 10,
    ));
    Ok(Measured {
        dump,
        paused: Duration::from_micros(reply.stopped_us),
        method: Method::ReaderProcess,
        reader_resident: Some(reply.reader_kib << 10),
        reader_pid: Some(reply.reader_pid),
    })
}

/// Whether a snapshot's task is one of the registry's: a task of `tasktrace::spawn` (or a
/// spawned `traced` future) shows in a snapshot as the `Traced` wrapper around its future.
pub(crate) fn is_registered(task: &tasktrace_model::Task) -> bool {
    task.trace
        .roots
        .first()
        .is_some_and(|r| r.frame.function.starts_with("tasktrace::traced::"))
}

/// Whether a snapshot's task is one of tasktrace's own (its HTTP server and connections, its
/// signal listener): its root is an async fn or block of this crate (not a registered
/// task's wrapper, which [`is_registered`] takes).
fn is_own(task: &tasktrace_model::Task) -> bool {
    task.trace.roots.first().is_some_and(|r| {
        let f = &r.frame.function;
        f.starts_with("tasktrace::") && !f.starts_with("tasktrace::traced::")
    })
}

/// The registry id a snapshot's registered task says it has (its `Traced` frame's).
fn registry_id(task: &tasktrace_model::Task) -> Option<u64> {
    task.trace
        .roots
        .first()?
        .frame
        .related
        .iter()
        .find_map(|r| match r {
            Related::Registered(id) => Some(*id),
            _ => None,
        })
}

/// Writes each task id the frames of `task` name (in waits, in related tasks) as `rename`
/// says. A tree that names no task is left as it is: it is shared (an `Arc`) with the
/// reader's cache of idle tasks, and copying 10,000 of them to change nothing is the cost of
/// a big dump.
fn rename_tasks_in_frames(task: &mut tasktrace_model::Task, rename: &dyn Fn(u64) -> u64) {
    let names_tasks = task.trace.any_node(|n| {
        n.frame.waits.iter().any(|w| w.names_tasks())
            || n.frame.related.iter().any(|r| r.names_tasks())
    });
    if !names_tasks {
        return;
    }
    let roots: &mut Vec<_> = std::sync::Arc::make_mut(&mut task.trace.roots);
    let mut stack: Vec<&mut tasktrace_model::Node> = roots.iter_mut().collect();
    while let Some(n) = stack.pop() {
        for w in &mut n.frame.waits {
            for id in w.task_ids_mut() {
                *id = rename(*id);
            }
        }
        for r in &mut n.frame.related {
            for id in r.task_ids_mut() {
                *id = rename(*id);
            }
        }
        stack.extend(n.children.iter_mut());
    }
}

/// Gives the frames of a registry task's in-process tree the values the snapshot read in
/// the same frames (`seen`: the snapshot's tree of that task): a frame takes the values of
/// the snapshot's frame of the same function at the same line. Where the snapshot has that
/// function at that line twice with different values (a `join!` of two calls of one async
/// fn), neither is given: which branch is which is not known, and a wrong value is worse
/// than none.
fn graft_values(task: &mut tasktrace_model::Task, seen: &tasktrace_model::Task) {
    use std::collections::hash_map::Entry;
    type Key = (String, Option<u32>);
    // The two producers name one async fn differently (`app::run::{{closure}}` from its
    // symbol, `app::run::{async_fn_env#0}` from its type): compared by the fn itself.
    let key = |f: &tasktrace_model::Frame| -> Key {
        (
            tasktrace_model::clean::enclosing_function(&f.function),
            f.location.as_ref().map(|l| l.line),
        )
    };
    let mut found: HashMap<Key, Option<&[tasktrace_model::NamedValue]>> = HashMap::new();
    for (_, n) in seen.trace.walk() {
        if n.frame.values.is_empty() {
            continue;
        }
        match found.entry(key(&n.frame)) {
            Entry::Vacant(e) => {
                e.insert(Some(&n.frame.values));
            }
            Entry::Occupied(mut e) => {
                if e.get().is_some_and(|v| v != n.frame.values.as_slice()) {
                    e.insert(None);
                }
            }
        }
    }
    if found.values().all(Option::is_none) {
        return;
    }
    let roots: &mut Vec<_> = std::sync::Arc::make_mut(&mut task.trace.roots);
    let mut stack: Vec<&mut tasktrace_model::Node> = roots.iter_mut().collect();
    while let Some(n) = stack.pop() {
        if let Some(Some(values)) = found.get(&key(&n.frame)) {
            n.frame.values = values.to_vec();
        }
        stack.extend(n.children.iter_mut());
    }
}

/// The registry's dump joined with a snapshot's: the registry's own tasks as they are (names,
/// durations, in-process trees), and every other task of the snapshot, in tokio's id range
/// ([`TOKIO_ID_BASE`]). When no
/// snapshot can be taken, the registry's dump with one note saying why and what to change.
pub(crate) fn join(mut registry: Dump, options: &SnapshotOptions) -> Dump {
    match snapshot_with(options) {
        Ok(snap) => {
            let registered = registry.tasks.len();
            let (ours, others): (Vec<_>, Vec<_>) = snap.tasks.into_iter().partition(is_registered);
            // tasktrace's own tasks (its HTTP server and connections, its signal listener) are
            // not the program's: left out, said once, and no edge points at them.
            let (own, mut others): (Vec<_>, Vec<_>) = others.into_iter().partition(is_own);
            let left_out: HashSet<u64> = own.iter().map(|t| t.id).collect();
            // One renumbering, in one walk of each tree: a registered task is named by its
            // registry id, every other task of the snapshot moves to tokio's id range.
            let to_registry: HashMap<u64, u64> = ours
                .iter()
                .filter_map(|t| Some((t.id, registry_id(t)?)))
                .filter(|(_, id)| registry.task(*id).is_some())
                .collect();
            let rename = |id: u64| to_registry.get(&id).copied().unwrap_or(id + TOKIO_ID_BASE);
            for t in &mut others {
                t.tokio_id = Some(t.id);
                t.id += TOKIO_ID_BASE;
                t.awaits.retain(|a| !left_out.contains(a));
                for a in &mut t.awaits {
                    *a = rename(*a);
                }
                rename_tasks_in_frames(t, &rename);
            }
            // Each registry task gets its tokio id, the edges the snapshot found for it
            // (locks held by other tasks, which its in-process trace cannot know), and, when
            // asked, the values of its frames.
            for seen in &ours {
                let Some(task) = to_registry
                    .get(&seen.id)
                    .and_then(|&id| registry.task_mut(id))
                else {
                    continue;
                };
                task.tokio_id = Some(seen.id);
                // What it runs in (task-locals, spans) only the snapshot reads.
                task.context.clone_from(&seen.context);
                for &a in &seen.awaits {
                    task.add_await(rename(a));
                }
                if options.values {
                    graft_values(task, seen);
                }
            }
            registry.notes.push(format!(
                "sources: the registry ({registered} task(s) of tasktrace::spawn/traced) and a \
                 snapshot ({} other task(s), `tokio task N`: tokio's ids)",
                others.len()
            ));
            if !own.is_empty() {
                registry.notes.push(format!(
                    "{} task(s) of tasktrace itself (its HTTP server, signal listener) left out",
                    own.len()
                ));
            }
            registry.notes.extend(snap.notes);
            registry.partial.extend(snap.partial);
            registry.tasks.extend(others);
            // One id space now (the registry's tasks under their own ids): the cycles of
            // the whole, across the two sources.
            registry.deadlocks = registry.find_deadlocks();
            registry.diagnoses = registry.find_diagnoses();
        }
        Err(e) => {
            registry.notes.push(format!(
                "{e}; only the tasks of tasktrace::spawn/traced are listed"
            ));
            if registry.tasks.is_empty() {
                registry
                    .notes
                    .push("no tasks: none was started with tasktrace::spawn or traced, and no snapshot could be taken".into());
            }
        }
    }
    registry
}
