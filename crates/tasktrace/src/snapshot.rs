//! `snapshot()`: every tokio task of this process — not only the ones started with
//! [`spawn`](crate::spawn()) or [`traced`](crate::traced()) — read from a frozen copy of the
//! process, the way `tasktrace attach` reads another one (feature `snapshot`, Linux x86-64).
//!
//! How a snapshot is taken, and why each step is safe:
//! 1. **Fork.** The calling thread calls `fork()`. The child is a copy of this process with
//!    that one thread. Another thread may hold a lock (the allocator's, stdout's) at the fork,
//!    and nothing in the child would ever release it, so the child runs only async-signal-safe
//!    system calls and allocates nothing: `close_range` of every descriptor above stderr (the
//!    copy keeps no socket, file or epoll instance open), `prctl(PR_SET_PDEATHSIG, SIGKILL)`
//!    (killed if the forking thread dies), a check that its parent is still this process,
//!    then `SIGSTOP` to itself, and `_exit` should it ever be continued. The death signal
//!    follows the *thread* that forked, so the fork happens on the thread that then reads and
//!    reaps — never on a helper thread that would exit first.
//! 2. **Read.** The parent waits (with a deadline) until the child is stopped, then reads the
//!    child's memory with `process_vm_readv` — allowed for a parent under Yama's default
//!    `ptrace_scope`, no capability needed — with this executable's own debuginfo, indexed
//!    once and kept (`tasktrace-inspect`). The runtimes are named by the addresses of
//!    `tokio::runtime::Handle` values (the current runtime's, and [`register_runtime`]'s),
//!    which the copy has at the same addresses.
//! 3. **Kill and reap.** One `FrozenChild` guard owns the child's pid; its `Drop` sends
//!    `SIGKILL` and reaps it, so every path — success, error, timeout, panic — leaves no
//!    process and no zombie behind. Nothing else waits for that pid.
//!
//! The program's pause is the `fork()` itself: the kernel copies the page tables (the memory
//! is shared copy-on-write). It grows with the resident size; above
//! [`SnapshotOptions::max_resident`] a snapshot is refused. Figures: `docs/BENCHMARKS.md`.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tasktrace_inspect::debuginfo::DebugInfo;
use tasktrace_inspect::Prepared;
use tasktrace_model::{task_label, Dump, TOKIO_ID_BASE};

/// How a snapshot is taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotOptions {
    /// Refuse to fork above this resident size, in bytes (default 4 GiB): the fork's pause
    /// grows with it (see `docs/BENCHMARKS.md`).
    pub max_resident: u64,
    /// Deadline for the copy to stop itself (default 2 s).
    pub timeout: Duration,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            max_resident: 4 << 30,
            timeout: Duration::from_secs(2),
        }
    }
}

impl SnapshotOptions {
    /// Sets [`max_resident`](Self::max_resident).
    pub fn max_resident(mut self, bytes: u64) -> Self {
        self.max_resident = bytes;
        self
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

/// This executable's debuginfo, indexed on the first snapshot, with what every read derives
/// from it alone (tokio's layout, …).
static DEBUGINFO: OnceLock<Result<(DebugInfo, Prepared), String>> = OnceLock::new();

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
    let (info, prepared) = debuginfo()?;
    let current = tokio::runtime::Handle::try_current().ok();
    let (mut child, handles, paused, resident) = {
        let registered = RUNTIMES.lock().unwrap_or_else(|e| e.into_inner());
        let handles: Vec<u64> = registered
            .iter()
            .chain(current.as_ref())
            .map(|h| h as *const tokio::runtime::Handle as u64)
            .collect();
        if handles.is_empty() {
            return Err(SnapshotError(
                "snapshot: no tokio runtime to read (call it inside one, or register_runtime)"
                    .into(),
            ));
        }
        let resident = resident_bytes();
        if resident > options.max_resident {
            return Err(SnapshotError(format!(
                "snapshot: not taken: {} MiB resident is above the limit of {} MiB \
                 (SnapshotOptions::max_resident), the fork would pause the program too long",
                resident >> 20,
                options.max_resident >> 20
            )));
        }
        // The handles stay where they are until the fork: the copy has them at these addresses.
        let started = Instant::now();
        let child = FrozenChild::fork()?;
        (child, handles, started.elapsed(), resident)
    };
    drop(current);
    child.wait_stopped(options.timeout)?;
    let opts = tasktrace_inspect::Options {
        runtime_handles: handles,
        ..Default::default()
    };
    let read = tasktrace_inspect::frozen::read_frozen(child.pid, info, prepared, &opts);
    drop(child);
    let mut dump =
        read.map_err(|e| SnapshotError(format!("snapshot: cannot read the copy: {e}")))?;
    dump.notes.retain(|n| !n.starts_with("read out of process"));
    dump.notes.push(format!(
        "snapshot: read from a frozen copy of this process; the fork paused it {:.1} ms ({} MiB resident)",
        paused.as_secs_f64() * 1e3,
        resident >> 20
    ));
    for t in &mut dump.tasks {
        t.source = Some("snapshot".into());
    }
    Ok(dump)
}

/// Moves a snapshot's tasks to tokio's id range ([`TOKIO_ID_BASE`]): their ids, the tasks
/// they await, their cycles.
fn in_tokio_range(mut snap: Dump) -> Dump {
    for t in &mut snap.tasks {
        t.tokio_id = Some(t.id);
        t.id += TOKIO_ID_BASE;
        for a in &mut t.awaits {
            *a += TOKIO_ID_BASE;
        }
    }
    for cycle in &mut snap.deadlocks {
        for id in cycle {
            *id += TOKIO_ID_BASE;
        }
    }
    snap
}

/// Whether a snapshot's task is one of the registry's: a task of `tasktrace::spawn` (or a
/// spawned `traced` future) shows in a snapshot as the `Traced` wrapper around its future.
pub(crate) fn is_registered(task: &tasktrace_model::Task) -> bool {
    task.trace
        .roots
        .first()
        .is_some_and(|r| r.frame.function.starts_with("tasktrace::traced::"))
}

/// The registry id a snapshot's registered task says it has (its `Traced` frame's note).
fn registry_id(task: &tasktrace_model::Task) -> Option<u64> {
    let note = task.trace.roots.first()?.frame.note.as_deref()?;
    note.strip_prefix(tasktrace_inspect::decode::REGISTERED_NOTE)?
        .parse()
        .ok()
}

/// Joins what the snapshot saw of the registry's tasks (`ours`) to them: each registry task
/// gets its tokio id and the edges the snapshot found for it (locks held by other tasks,
/// which its in-process trace cannot know), and every edge to a registered task — in `ours`
/// or `others` — names it by its registry id.
fn link_registered(
    registry: &mut Dump,
    ours: &[tasktrace_model::Task],
    others: &mut [tasktrace_model::Task],
) {
    let to_registry: std::collections::HashMap<u64, u64> = ours
        .iter()
        .filter_map(|t| Some((t.id, registry_id(t)?)))
        .filter(|(_, id)| registry.task(*id).is_some())
        .collect();
    let map = |id: u64| to_registry.get(&id).copied().unwrap_or(id);
    // The notes of the snapshot's trees name tasks by tokio's ids (`held by task 3`): in the
    // joined dump, `task N` is the registry's; say `tokio task N`, or the registry's id.
    let name = |tokio: u64| task_label(map(TOKIO_ID_BASE + tokio));
    for t in others.iter_mut() {
        for a in &mut t.awaits {
            *a = map(*a);
        }
        let roots: &mut Vec<_> = std::sync::Arc::make_mut(&mut t.trace.roots);
        let mut stack: Vec<&mut tasktrace_model::Node> = roots.iter_mut().collect();
        while let Some(n) = stack.pop() {
            if let Some(note) = &mut n.frame.note {
                if note.contains("task") {
                    *note = name_tasks(note, &name);
                }
            }
            stack.extend(n.children.iter_mut());
        }
    }
    for seen in ours {
        let Some(&id) = to_registry.get(&seen.id) else {
            continue;
        };
        if let Some(task) = registry.task_mut(id) {
            task.tokio_id = seen.tokio_id;
            for &a in &seen.awaits {
                task.add_await(map(a));
            }
        }
    }
}

/// `note` with each `task N` (and each id of a `tasks N, M` list) written by `name(N)`.
fn name_tasks(note: &str, name: &dyn Fn(u64) -> String) -> String {
    let mut out = String::with_capacity(note.len() + 16);
    let mut rest = note;
    while let Some(at) = rest.find("task") {
        out.push_str(&rest[..at]);
        let from = &rest[at..];
        // A word of its own (not `subtask`), followed by ids.
        let starts_word = !out.ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let list = [("tasks ", true), ("task ", false)]
            .into_iter()
            .find_map(|(word, plural)| Some((from.strip_prefix(word)?, plural)));
        let ids = list.filter(|_| starts_word).and_then(|(after, plural)| {
            let len = after
                .find(|c: char| !(c.is_ascii_digit() || (plural && (c == ',' || c == ' '))))
                .unwrap_or(after.len());
            let ids = after[..len].trim_end_matches([',', ' ']);
            ids.starts_with(|c: char| c.is_ascii_digit())
                .then_some((ids, &after[ids.len()..]))
        });
        match ids {
            Some((ids, after)) => {
                let named: Vec<String> = ids
                    .split(", ")
                    .filter_map(|n| n.parse().ok())
                    .map(name)
                    .collect();
                out.push_str(&named.join(", "));
                rest = after;
            }
            None => {
                out.push_str("task");
                rest = &from[4..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The registry's dump joined with a snapshot's: the registry's own tasks as they are (names,
/// durations, in-process trees), and every other task of the snapshot, in tokio's id range
/// ([`TOKIO_ID_BASE`]). When no
/// snapshot can be taken, the registry's dump with one note saying why and what to change.
pub(crate) fn join(mut registry: Dump) -> Dump {
    match snapshot() {
        Ok(snap) => {
            let snap = in_tokio_range(snap);
            let registered = registry.tasks.len();
            let (ours, mut others): (Vec<_>, Vec<_>) =
                snap.tasks.into_iter().partition(is_registered);
            link_registered(&mut registry, &ours, &mut others);
            registry.notes.push(format!(
                "sources: the registry ({registered} task(s) of tasktrace::spawn/traced) and a \
                 snapshot ({} other task(s), `tokio task N`: tokio's ids)",
                others.len()
            ));
            registry.notes.extend(snap.notes);
            registry.tasks.extend(others);
            // One id space now (the registry's tasks under their own ids): the cycles of
            // the whole, across the two sources.
            registry.deadlocks = registry.find_deadlocks();
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

fn debuginfo() -> Result<&'static (DebugInfo, Prepared), SnapshotError> {
    DEBUGINFO
        .get_or_init(|| {
            let exe = std::fs::read_link("/proc/self/exe")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/proc/self/exe".into());
            let info = DebugInfo::load_with("/proc/self/exe", &exe, None).map_err(|e| {
                format!(
                    "snapshot: not taken: {e} (tasks are read with type layouts: build with \
                     `[profile.release] debug = true`, or put a debug file next to the executable)"
                )
            })?;
            let prepared = Prepared::new(&info).map_err(|e| format!("snapshot: not taken: {e}"))?;
            Ok((info, prepared))
        })
        .as_ref()
        .map_err(|e| SnapshotError(e.clone()))
}

/// Resident memory of this process, in bytes (0 if unknown).
fn resident_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// The stopped copy; killed and reaped on drop.
struct FrozenChild {
    pid: i32,
    /// Set once the child was reaped (it exited early): drop has nothing left to do.
    reaped: bool,
}

impl FrozenChild {
    /// Forks; the child closes its descriptors and stops itself (see the module docs).
    fn fork() -> Result<FrozenChild, SnapshotError> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only the async-signal-safe calls below and never returns
        // into Rust code: no allocation, no lock, no destructor runs in it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: raw system calls on integers; `_exit` does not return.
            unsafe {
                if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                    for fd in 3..65_536 {
                        libc::close(fd);
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() == parent {
                    libc::raise(libc::SIGSTOP);
                }
                libc::_exit(0);
            }
        }
        if pid < 0 {
            return Err(SnapshotError(format!(
                "snapshot: fork failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(FrozenChild { pid, reaped: false })
    }

    /// Waits until the child has stopped itself, at most `timeout`.
    fn wait_stopped(&mut self, timeout: Duration) -> Result<(), SnapshotError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes one int to `status`.
            let r =
                unsafe { libc::waitpid(self.pid, &mut status, libc::WUNTRACED | libc::WNOHANG) };
            if r == self.pid && libc::WIFSTOPPED(status) {
                return Ok(());
            }
            if r == self.pid {
                self.reaped = true;
                return Err(SnapshotError(
                    "snapshot: the frozen copy exited before it could be read".into(),
                ));
            }
            if r < 0 && stopped_per_proc(self.pid) {
                // Not waitable (SIGCHLD ignored by the program): /proc says it is stopped.
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SnapshotError(format!(
                    "snapshot: the frozen copy did not stop within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Whether `/proc/PID/stat` says the process is stopped (`T`).
fn stopped_per_proc(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let i = s.rfind(')')?;
            s[i + 1..].trim_start().chars().next()
        })
        == Some('T')
}

impl Drop for FrozenChild {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: `pid` is our own child, not yet reaped: no other process has this pid.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes one int to `status`.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            // Reaped, or not ours to wait for (auto-reaped with SIGCHLD ignored).
            if r == self.pid || r < 0 || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_tasks;

    #[test]
    fn task_ids_in_notes_are_renamed_and_other_words_kept() {
        let name = |n: u64| format!("<{n}>");
        for (note, want) in [
            ("waiting on task 3", "waiting on <3>"),
            (
                "held by task 3, task 14 and 2 more",
                "held by <3>, <14> and 2 more",
            ),
            (
                "drives 2 HTTP/2 streams: tasks 10, 11",
                "drives 2 HTTP/2 streams: <10>, <11>",
            ),
            ("waiting on a task", "waiting on a task"),
            ("subtask 4; tasktrace task 5", "subtask 4; tasktrace <5>"),
            (
                "the block_on future of thread 7",
                "the block_on future of thread 7",
            ),
        ] {
            assert_eq!(name_tasks(note, &name), want, "{note}");
        }
    }
}
