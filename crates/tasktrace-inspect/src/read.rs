//! One read of a stopped target, in phases: while it is stopped, what must be copied (task
//! lists, the cells and futures they point to, the stacks of threads that run blocking tasks);
//! after it resumes, decoding, links between tasks, threads and native stacks — into a
//! [`Dump`].

use crate::options::Progress;
use crate::{
    debugfile, debuginfo, decode, memo, process, threads, tokio, unwind, value, Error, Options,
    Prepared, Result,
};
use std::sync::OnceLock;
use tasktrace_model::{
    Dump, Frame, FrameKind, FrameStatus, Node, Task, TaskState, ThreadRole, Trace,
};

/// Reads every task of a stopped target.
pub fn read(t: &dyn process::Target, info: &debuginfo::DebugInfo, opts: &Options) -> Result<Dump> {
    read_prepared(t, info, &Prepared::new(info)?, opts)
}

/// [`read`] with what was found in `info` before ([`Prepared::new`], for repeated reads of
/// one executable).
pub fn read_prepared(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    opts: &Options,
) -> Result<Dump> {
    read_held(
        t,
        info,
        prepared,
        opts,
        &Progress::new(opts.progress),
        SessionParts::default(),
    )
}

/// [`read_phased`] of a target that stays stopped (or never ran: a core file).
pub(crate) fn read_held(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    opts: &Options,
    progress: &Progress,
    parts: SessionParts<'_>,
) -> Result<Dump> {
    let dump = read_phased(t, info, prepared, opts, progress, parts, Stop::none())?;
    Ok(dump.expect("a read whose resume always goes on is never abandoned"))
}

/// What a session keeps across its reads, for one read ([`read_phased`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct SessionParts<'s> {
    /// The mapped files' unwind tables (for `--threads`, and the stacks of `spawn_blocking`
    /// threads): made at a session's first need, and kept for its later reads.
    pub(crate) unwinder: Option<&'s OnceLock<unwind::Unwinder>>,
    /// The last read's trees, and this read's number.
    pub(crate) memo: Option<(&'s memo::Memo, u64)>,
    /// The root futures found on `block_on` threads' stacks by the last reads.
    pub(crate) roots: Option<&'s threads::RootCache>,
}

/// Most blocking threads whose stacks are copied while the target is stopped.
const MAX_BLOCKING_STACKS: usize = 32;

/// How much of a thread's stack is copied while the target is stopped, from its stack pointer
/// up (one read), to be unwound after it resumes: enough for the frames of a poll above the
/// worker's loop, or above tokio's blocking pool (a closure and what it calls); bounded so
/// that the pause stays short. What an unwind needs beyond it is read from the running
/// process (the outermost frames, which outlive the poll; counted as late reads).
const STACK_COPY: u64 = 128 * 1024;

/// Ranges of the target's memory: (address, length).
pub(crate) type Ranges = [(u64, u64)];

/// How a read meets its target's stop ([`read_phased`]).
pub(crate) struct Stop<'h> {
    /// Called once, while the target is stopped, with the ranges (address, length) to copy
    /// now: the stacks that change once it runs, every task's cell.
    pub(crate) prefetch: &'h dyn Fn(&Ranges),
    /// Called once everything that must be read stopped is read: let the target run on.
    /// False abandons the read (`read_phased` gives `None`): what was read stopped is not
    /// whole (a read from copies made beforehand met a page that was not copied).
    pub(crate) resume: &'h mut dyn FnMut() -> bool,
}

impl Stop<'static> {
    /// A target that stays stopped (or never ran: a core file): nothing to copy or resume.
    pub(crate) fn none() -> Self {
        Stop {
            prefetch: &|_| {},
            // A closure without captures is zero-sized: leaking its box allocates nothing.
            resume: Box::leak(Box::new(|| true)),
        }
    }
}

/// [`read`] in two phases: first everything that must be read while the target is stopped
/// (thread contexts, task lists, stacks), then `stop.prefetch(ranges)` with the stacks and cells
/// to copy; then `stop.resume()`, then the decoding (from what was copied, see
/// [`snapshot`]). `None` when `stop.resume()` abandoned the read.
pub(crate) fn read_phased(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    opts: &Options,
    progress: &Progress,
    parts: SessionParts<'_>,
    stop: Stop<'_>,
) -> Result<Option<Dump>> {
    let SessionParts {
        unwinder,
        memo,
        roots,
    } = parts;
    let bias = match t.at_entry() {
        Some(e) => e.wrapping_sub(info.entry),
        None => 0,
    };
    let reader = value::Reader {
        target: t,
        info,
        bias,
    };
    let tk = tokio::Tokio::with(&reader, prepared.tokio.clone());
    let contexts = tk.thread_contexts()?;
    let mut runtimes = tk.runtimes(&contexts);
    for &handle in &opts.runtime_handles {
        if let Some(rt) = tk.runtime_of_handle(handle)? {
            if !runtimes.iter().any(|o| o.addr == rt.addr) {
                runtimes.push(rt);
            }
        }
    }
    // A truncated core may have lost the way to its tasks (threads, runtime, list links)
    // but not the tasks: they are looked for in the memory that is there.
    let scan = t.memory_to_scan();
    if runtimes.is_empty() && scan.is_empty() {
        return Err(Error::NoRuntime(
            "no thread has a runtime handle in tokio's CONTEXT (has the runtime started?)".into(),
        ));
    }
    let mut raw = Vec::new();
    let mut notes = Vec::new();
    let mut partial = Vec::new();
    for rt in &runtimes {
        let left = opts.max_tasks.saturating_sub(raw.len());
        let (mut tasks, n) = match tk.tasks(rt, left) {
            Ok(found) => found,
            Err(e) if !scan.is_empty() => (
                Vec::new(),
                vec![format!("the runtime's task lists are unreadable: {e}")],
            ),
            Err(e) => return Err(e),
        };
        raw.append(&mut tasks);
        partial.extend(n);
    }
    let lists_cut = runtimes.is_empty() || !partial.is_empty();
    if !scan.is_empty() && lists_cut {
        let known: std::collections::HashSet<u64> = raw.iter().map(|t| t.header).collect();
        let left = opts.max_tasks.saturating_sub(raw.len());
        let mut found = tk.scan_tasks(&scan, &known, left);
        if runtimes.is_empty() && found.is_empty() {
            return Err(Error::NoRuntime(
                "no thread has a runtime handle in tokio's CONTEXT, and no task header is in \
                 the memory present"
                    .into(),
            ));
        }
        if runtimes.is_empty() {
            partial.push(format!(
                "{} task(s) found by scanning the memory present for task headers (no \
                 runtime is reachable: its threads are in the missing part); a task whose \
                 header is in the missing part is not listed",
                found.len()
            ));
        } else {
            notes.push(format!(
                "{} more task(s) found by scanning the memory present for task headers",
                found.len()
            ));
        }
        raw.append(&mut found);
    }
    drop(scan);
    if runtimes.len() > 1 {
        notes.push(format!("{} runtimes", runtimes.len()));
    }
    // Threads: their roles, and the root futures of `block_on` threads (found on their
    // stacks). A `LocalSet::block_on` root leads to the LocalSet's own task list.
    let mut facts = threads::threads(
        &reader,
        &tk,
        &prepared.roots,
        &contexts,
        &runtimes,
        &raw,
        roots,
    );
    let mut local_sets = 0;
    for f in &facts {
        // The most plausible root future that leads to a LocalSet whose list reads. Only the
        // most plausible one failing says a LocalSet is unreadable: the others are often stale
        // copies on the stack (a main thread with no LocalSet read `partial` on every attach).
        let mut failed = None;
        for (i, root) in f.candidates.iter().enumerate() {
            let left = opts.max_tasks.saturating_sub(raw.len());
            match tk.local_set_tasks((root.addr, root.ty), left) {
                Some(Ok((mut tasks, n))) => {
                    local_sets += 1;
                    raw.append(&mut tasks);
                    partial.extend(n);
                    failed = None;
                    break;
                }
                Some(Err(e)) if i == 0 => failed = Some(e),
                Some(Err(_)) | None => {}
            }
        }
        if let Some(e) = failed {
            partial.push(format!(
                "the LocalSet of thread {} could not be read: {e}",
                f.info.tid
            ));
        }
    }
    if local_sets > 0 {
        notes.push(format!(
            "{local_sets} LocalSet{} (found on block_on stacks)",
            if local_sets == 1 { "" } else { "s" }
        ));
    }
    // The threads inside a poll: their stacks change once resumed, so a few pages of each
    // are copied now, from the stack pointer up (one read), and unwound after the resume.
    let polling: Vec<usize> = if opts.threads {
        (0..facts.len())
            .filter(|&i| {
                let info = &facts[i].info;
                info.task.is_some()
                    && info.role != ThreadRole::Blocking
                    && (!opts.blocked_stacks_only || info.syscall.is_some())
            })
            .collect()
    } else {
        Vec::new()
    };
    // What is copied now, while the target is stopped, in one step (`stop.prefetch`): those
    // stacks; a blocking thread's (it changes once resumed: a few pages of it, from its stack
    // pointer up, are unwound later for the blocking task it runs — if a task awaits that one,
    // it is listed with the closure's native callees); and each task's cell (header to the
    // end of its future). Then the target runs on: the decoding below reads from the copies.
    let mut copy: Vec<(u64, u64)> = Vec::with_capacity(raw.len() + polling.len());
    let blocking = facts
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.info.role == ThreadRole::Blocking
                && f.info.task.is_some()
                && !opts.asked_from(f.info.tid)
        })
        .take(MAX_BLOCKING_STACKS)
        .map(|(i, _)| i);
    for i in polling.iter().copied().chain(blocking) {
        if let Some(regs) = t.registers(facts[i].info.tid as i32) {
            copy.push((regs.rsp, STACK_COPY));
        }
    }
    for t in &raw {
        if let Some((addr, ty)) = t.future {
            let end = addr.saturating_add(reader.type_size(ty));
            copy.push((t.header, end.saturating_sub(t.header)));
        }
    }
    (stop.prefetch)(&copy);
    if !(stop.resume)() {
        return Ok(None);
    }
    if !polling.is_empty() {
        let mut own = None;
        let unwinder = unwinder_for(unwinder, &mut own, t, opts);
        for i in polling {
            let tid = facts[i].info.tid as i32;
            if let Some(regs) = t.registers(tid) {
                facts[i].info.native_stack = unwinder.native_stack(t, regs);
            }
        }
    }
    progress.say(|| format!("copied {} tasks; decoding them", raw.len()));
    // Which types can hold a future: decided once per type, for every read of the process.
    let shapes = decode::Shapes::with_cache(&prepared.shapes);
    let decoding = Decoding {
        info,
        prepared,
        shapes: &shapes,
        bias,
        values: opts.values,
    };
    if opts.threads {
        for (f, c) in facts.iter_mut().zip(&contexts) {
            if f.info.role == ThreadRole::BlockOn && f.info.task.is_none() {
                f.info.task = c
                    .task_id
                    .filter(|&id| raw.iter().any(|t| t.id == id && t.running));
            }
        }
    }
    let mut tasks = Vec::with_capacity(raw.len());
    let total = raw.len();
    let mut links = vec![Vec::new(); total];
    let (mut frames, mut undecoded) = (0usize, 0usize);
    // The listed tasks' headers, looked up only when a task awaits a `spawn_blocking` one
    // (below): sorted then, not hashed on every read.
    let mut listed: Vec<u64> = raw.iter().map(|t| t.header).collect();
    let mut awaited_headers: Vec<u64> = Vec::new();
    for (i, rt) in raw.into_iter().enumerate() {
        if i > 0 && i % 10_000 == 0 {
            progress.say(|| format!("decoded {i} of {total} tasks"));
        }
        let mut task = Task::new(rt.id);
        task.spawned_at = rt
            .spawned_at
            .and_then(|at| tk.location(at))
            .map(|(file, line, col)| tasktrace_model::Location::new(file, line, Some(col)));
        task.state = task_state(&rt);
        task.wakers = rt.wakers();
        task.error = rt.error.clone();
        match rt.future {
            Some((addr, ty)) if rt.running => {
                let name = reader.type_name(ty);
                let (func, kind) = decode::async_fn_name(&reader, ty)
                    .unwrap_or_else(|| (name.to_string(), FrameKind::Fn));
                let frame = Frame::new(func, None)
                    .with_kind(kind)
                    .with_status(FrameStatus::Running)
                    .with_note("being polled: its state is not stable");
                let _ = addr;
                task.trace = Trace {
                    roots: std::sync::Arc::new(vec![Node::new(frame)]),
                };
            }
            Some(_) if frames >= opts.max_frames => {
                undecoded += 1;
                task.error = Some(format!(
                    "not decoded: the read's budget of {} frames is spent",
                    opts.max_frames
                ));
            }
            Some((addr, ty)) => {
                let key = (rt.header, addr, ty);
                match decode_task(t, &decoding, key, memo) {
                    Some(d) => {
                        links[tasks.len()] = d.links;
                        frames += d.frames;
                        task.awaits = d.awaits;
                        task.context = d.context;
                        awaited_headers.extend(d.awaited_headers);
                        task.trace = Trace { roots: d.nodes };
                    }
                    None => task.error = Some("its future could not be decoded".into()),
                }
            }
            None if rt.complete => {
                task.error
                    .get_or_insert_with(|| "completed; output not yet taken".into());
            }
            None => {
                task.error
                    .get_or_insert_with(|| "no future (stage not Running)".into());
            }
        }
        tasks.push(task);
    }
    // `spawn_blocking` tasks are in no task list: the ones awaited through a join handle are
    // found through it, and listed as the tasks they are.
    awaited_headers.sort_unstable();
    awaited_headers.dedup();
    if !awaited_headers.is_empty() {
        listed.sort_unstable();
    }
    let mut own_unwinder = None;
    for header in awaited_headers {
        if listed.binary_search(&header).is_ok() || tasks.len() >= opts.max_tasks {
            continue;
        }
        if let Some((rt, func)) = tk.blocking_task(header) {
            if tasks.iter().any(|t: &Task| t.id == rt.id) {
                continue;
            }
            let thread = facts
                .iter()
                .find(|f| f.info.role == ThreadRole::Blocking && f.info.task == Some(rt.id))
                .map(|f| f.info.tid);
            // What the closure runs now: its thread's native stack (from the pages copied
            // while stopped), unwound now that the target runs on.
            let stack = match thread
                .filter(|&tid| !opts.asked_from(tid))
                .and_then(|tid| t.registers(tid as i32))
            {
                Some(regs) if rt.running => {
                    unwinder_for(unwinder, &mut own_unwinder, t, opts).native_stack(t, regs)
                }
                _ => Vec::new(),
            };
            tasks.push(blocking_task(&reader, &rt, func, thread, &stack));
            links.push(Vec::new());
        }
    }
    // The `block_on` root futures: shown in the threads view, and looked at for the locks
    // they hold when a task waits on a lock (it is told which thread holds it).
    let mut root_links = Vec::new();
    let waits_on_locks = links
        .iter()
        .flatten()
        .any(|l| matches!(l, decode::Link::WaitsLock(_)));
    if opts.threads || waits_on_locks {
        for f in &mut facts {
            if let Some(root) = f.root {
                let (trace, links) = threads::decode_root(&reader, &tk, &shapes, root);
                if opts.threads {
                    f.info.trace = trace;
                }
                root_links.push((f.info.tid, links));
            }
        }
    }
    decode::resolve(&mut tasks, &links, &root_links);
    if undecoded > 0 {
        partial.push(format!(
            "{undecoded} task(s) not decoded: the budget of {} frames per read is spent",
            opts.max_frames
        ));
    }
    notes.push(format!(
        "read out of process (tokio {}): how long tasks have been idle or running is not known (tokio records no poll times)",
        info.tokio_version
            .as_deref()
            .unwrap_or("of unknown version")
    ));
    let mut dump = Dump::new(tasks);
    dump.notes = notes;
    dump.partial = partial;
    if opts.threads {
        dump.threads = facts.into_iter().map(|f| f.info).collect();
    }
    Ok(Some(dump))
}

/// A task's state, from its header's state bits.
fn task_state(rt: &tokio::RawTask) -> TaskState {
    if rt.running {
        TaskState::InPoll
    } else if rt.notified {
        TaskState::Scheduled
    } else {
        TaskState::Suspended
    }
}

/// A `spawn_blocking` task awaited through its join handle (in no task list): its closure
/// (`func`, the closure's type), the thread running it and, from that thread's native `stack`
/// (innermost first), the line the closure is at and the functions it is in now, outermost
/// first (the innermost a leaf: where the thread waits, often a system call).
fn blocking_task(
    r: &value::Reader<'_>,
    rt: &tokio::RawTask,
    func: u64,
    thread: Option<u64>,
    stack: &[tasktrace_model::NativeFrame],
) -> Task {
    let mut task = Task::new(rt.id);
    task.state = task_state(rt);
    let name = r.type_name(func);
    // `app::handler::{async_fn#0}::{closure_env#0}` → `app::handler`.
    let function = name.split("::{").next().unwrap_or(name).to_string();
    let mut location = r
        .info
        .die(func)
        .and_then(|d| d.decl.clone())
        .map(|(file, line)| tasktrace_model::Location::new(file, line, None));
    let note = match (rt.running, thread) {
        (true, Some(tid)) => format!("spawn_blocking closure, running on thread {tid}"),
        (true, None) => "spawn_blocking closure, running".to_string(),
        (false, _) => "spawn_blocking closure, not started yet".to_string(),
    };
    // The closure's own frame is the outermost one in its function (a closure inside it, or
    // one it calls, is above it); what is above that, it runs now.
    let prefix = format!("{function}::");
    let own = stack.iter().rposition(|f| {
        f.function
            .as_deref()
            .is_some_and(|n| n.starts_with(&prefix))
    });
    let mut callees = Vec::new();
    if let Some(at) = own {
        if let Some(loc) = &stack[at].location {
            location = Some(loc.clone());
        }
        callees = stack[..at].iter().rev().collect();
    }
    let mut node = Node::new(
        Frame::new(function, location)
            .with_kind(FrameKind::Closure)
            .with_note(note),
    );
    // Nested from the innermost out: each callee under the one that called it.
    let mut below: Option<Node> = None;
    for (i, f) in callees.iter().enumerate().rev() {
        let kind = if i + 1 == callees.len() {
            FrameKind::Leaf
        } else {
            FrameKind::Fn
        };
        let name = f
            .function
            .clone()
            .or_else(|| f.module.as_ref().map(|m| format!("{m} at {:#x}", f.pc)))
            .unwrap_or_else(|| format!("{:#x}", f.pc));
        let mut n = Node::new(Frame::new(name, f.location.clone()).with_kind(kind));
        n.children.extend(below.take());
        below = Some(n);
    }
    node.children.extend(below);
    task.trace = Trace {
        roots: std::sync::Arc::new(vec![node]),
    };
    task
}

/// The session's unwinder, made at its first need and kept (loading the mapped files' unwind
/// tables and symbols costs ~200 ms for a service's executable with compressed debug
/// sections: made again for every read, it was most of an in-process dump's time whenever the
/// dump's own `spawn_blocking` thread was unwound), or without a session one for this read.
fn unwinder_for<'u>(
    kept: Option<&'u OnceLock<unwind::Unwinder>>,
    own: &'u mut Option<unwind::Unwinder>,
    t: &dyn process::Target,
    opts: &Options,
) -> &'u unwind::Unwinder {
    match kept {
        Some(cell) => cell.get_or_init(|| own_unwinder(t, opts)),
        None => own.get_or_insert_with(|| own_unwinder(t, opts)),
    }
}

/// An unwinder of the target's native stacks built for one read (a session keeps its own):
/// the mapped files' unwind tables and symbols, and the debug file given, if any.
pub(crate) fn own_unwinder(t: &dyn process::Target, opts: &Options) -> unwind::Unwinder {
    let given = opts
        .debuginfo
        .as_deref()
        .and_then(debugfile::DebugFile::read);
    let exe_debug = given
        .as_ref()
        .map(|file| unwind::ExeDebugFile { exe_path: "", file });
    unwind::Unwinder::new(t, exe_debug)
}

/// Decodes the future of the task cell `key` (header, future address, type); with a memo,
/// takes the last read's tree when the bytes it read are unchanged, and keeps this one.
/// `None` when decoding panicked: target memory is untrusted, and a corrupt value must cost
/// this task its trace, never the whole read (nor leave a process stopped).
/// What every task's decode of one read shares.
struct Decoding<'a> {
    info: &'a debuginfo::DebugInfo,
    prepared: &'a Prepared,
    shapes: &'a decode::Shapes,
    bias: u64,
    /// Read the values of async fn frames ([`Options::values`]).
    values: bool,
}

fn decode_task(
    t: &dyn process::Target,
    with: &Decoding<'_>,
    key: memo::CellKey,
    memo: Option<(&memo::Memo, u64)>,
) -> Option<memo::Decoded> {
    let Decoding {
        info,
        prepared,
        shapes,
        bias,
        values,
    } = *with;
    // A kept tree may have been decoded without values (or with): values are read fresh.
    let memo = memo.filter(|_| !values);
    let (_, addr, ty) = key;
    if let Some(kept) = memo.and_then(|(m, read)| m.get(key, t, read)) {
        return Some(kept);
    }
    let recorder = memo::Recorder::new(t);
    let target: &dyn process::Target = if memo.is_some() { &recorder } else { t };
    let decoded = {
        let reader = value::Reader { target, info, bias };
        let tk = tokio::Tokio::with(&reader, prepared.tokio.clone());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut dec = decode::Decoder::new(&reader, &tk, shapes).with_values(values);
            let nodes = dec.decode(addr, ty, 0);
            let frames = count_frames(&nodes);
            let timed = dec.timed;
            let decoded = memo::Decoded {
                nodes: std::sync::Arc::new(nodes),
                awaits: dec.awaits,
                awaited_headers: dec.awaited_headers,
                links: dec.links,
                context: dec.context,
                frames,
            };
            (decoded, timed)
        }))
        .ok()?
    };
    let (decoded, timed) = decoded;
    match memo {
        Some((m, read)) => {
            if timed {
                recorder.unkeepable();
            }
            Some(m.put(key, recorder, decoded, read))
        }
        None => Some(decoded),
    }
}

/// Frames in these trees.
pub(crate) fn count_frames(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| 1 + count_frames(&n.children)).sum()
}
