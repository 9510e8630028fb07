//! The threads view: what each OS thread of the target does for tokio, from its `CONTEXT`
//! thread-local (see [`ThreadContext`]) and its stack.
//!
//! - Workers (`CONTEXT.scheduler` = a multi-thread worker context): worker index, local run
//!   queue length (`remotes[index]`'s queue: `tail − real head`), and the task it polls now
//!   (`current_task_id`, when that task's header has the RUNNING bit).
//! - `block_on` threads (a multi-thread runtime entered without a scheduler: `#[tokio::main]`;
//!   or a current_thread scheduler context): the root future. Its local is optimised out in
//!   release builds, so it is found by scanning the thread's stack upwards from `rsp` for an
//!   inline value of one of the types `block_on` is instantiated with (template parameter `F`
//!   of the `block_on` subprograms), whose state machine is suspended and whose pointers check
//!   out ([`Scan::plausible`]); the innermost best match is decoded like a task.
//! - Blocking-pool threads (a runtime handle, not entered): the blocking task they run.
//!
//! The same scan finds `LocalSet`s: a `LocalSet::block_on` root future (`RunUntil`) points at
//! its `LocalSet`, whose `LocalOwnedTasks` list the local tasks.

use crate::decode::{Decoder, Link, Shapes};
use crate::tokio::{layout, Flavor, RawTask, Runtime, ThreadContext, Tokio};
use crate::type_names::async_env;
use crate::value::Reader;
use tasktrace_model::{Node, ThreadInfo, ThreadRole, Trace};

/// Bytes of stack scanned above `rsp` for a root future.
const STACK_WINDOW: u64 = 512 * 1024;
/// Read granularity of the scan (a read failing ends the stack).
const CHUNK: u64 = 64 * 1024;
/// Smallest read of the scan, near the top of a stack mapping.
const PAGE: u64 = 4096;

/// The root futures a session found on each `block_on` thread's stack at its last scan.
///
/// A root future does not move while its `block_on` runs, so a read re-checks the ones found
/// before — each still above the stack pointer and as plausible as when found, a few reads —
/// instead of scanning the stack again (up to `STACK_WINDOW`, 512 KiB, copied while the target is
/// stopped: half a sample's stop). Any change (a candidate gone or scoring otherwise, a
/// thread new or gone) rescans, and so does every `RESCAN_EVERY`th (16th) read: a root future that
/// appeared above the remembered ones (a `block_on` entered again) is found within that many
/// samples.
#[derive(Default)]
pub struct RootCache(std::sync::Mutex<std::collections::HashMap<i32, Remembered>>);

/// One thread's root futures, with their scores, and reads since they were scanned for.
struct Remembered {
    found: Vec<(u32, RootFuture)>,
    reads: u32,
}

/// Reads between two full scans of a `block_on` thread's stack.
const RESCAN_EVERY: u32 = 16;

impl RootCache {
    /// Forgets the threads not in `tids` (those that exited): a long session of a program
    /// that starts threads again and again keeps only the live ones.
    fn keep_only(&self, tids: &[i32]) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|tid, _| tids.contains(tid));
    }

    /// True when the next read rescans a thread's stack for its count of reads alone: it
    /// needs a stack window no read before copied, so a read from copies alone would miss it
    /// ([`Session::sample`](crate::Session::sample) reads stopped instead).
    pub fn rescan_due(&self) -> bool {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.values().any(|m| m.reads >= RESCAN_EVERY)
    }

    /// The root futures on thread `tid`'s stack: the remembered ones if they all still hold,
    /// else a scan's.
    fn root_futures(&self, scan: &Scan<'_, '_, '_>, tid: i32) -> Vec<RootFuture> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rsp = scan.r.target.registers(tid).map(|regs| regs.rsp);
        let still = cache.get(&tid).is_some_and(|m| {
            m.reads < RESCAN_EVERY
                && !m.found.is_empty()
                && rsp.is_some_and(|rsp| {
                    m.found.iter().all(|&(score, f)| {
                        f.addr >= rsp && scan.plausible(f.addr, f.ty, 0) == Some(score)
                    })
                })
        });
        if still {
            let m = cache.get_mut(&tid).expect("checked above");
            m.reads += 1;
            return m.found.iter().map(|&(_, f)| f).collect();
        }
        let found = scan.scored_root_futures(tid);
        let out = found.iter().map(|&(_, f)| f).collect();
        cache.insert(tid, Remembered { found, reads: 1 });
        out
    }
}

/// A root future found on a `block_on` thread's stack.
#[derive(Clone, Copy, Debug)]
pub struct RootFuture {
    /// Its address.
    pub addr: u64,
    /// Its type.
    pub ty: u64,
}

/// What the reader knows of one thread.
pub struct ThreadFacts {
    /// The model's view.
    pub info: ThreadInfo,
    /// The root future of a `block_on` thread.
    pub root: Option<RootFuture>,
    /// Every plausible root future found on its stack, most plausible first (`root` is the
    /// first): a `LocalSet`'s `RunUntil` is looked for among them, as a stale copy of another
    /// future may score higher.
    pub candidates: Vec<RootFuture>,
}

/// Classifies every thread; finds and decodes the root futures of `block_on` threads.
pub fn threads(
    r: &Reader<'_>,
    tk: &Tokio<'_, '_>,
    roots: &RootTypes,
    contexts: &[ThreadContext],
    runtimes: &[Runtime],
    tasks: &[RawTask],
    remembered: Option<&RootCache>,
) -> Vec<ThreadFacts> {
    let scan = Scan::new(r, tk, roots);
    let root_futures = |tid: i32| match remembered {
        Some(cache) => cache.root_futures(&scan, tid),
        None => scan.root_futures(tid),
    };
    let runtime_no = |rt: &Runtime| {
        runtimes
            .iter()
            .position(|o| o.addr == rt.addr)
            .map(|i| i as u32 + 1)
    };
    let flavor_name = |f: Flavor| match f {
        Flavor::MultiThread => "multi_thread",
        Flavor::CurrentThread => "current_thread",
    };
    let running = |id: u64| tasks.iter().any(|t| t.id == id && t.running);
    if let Some(cache) = remembered {
        let tids: Vec<i32> = contexts.iter().map(|c| c.thread.tid).collect();
        cache.keep_only(&tids);
    }
    let mut out = Vec::new();
    for c in contexts {
        let tid = c.thread.tid;
        let mut info = ThreadInfo::new(tid as u64, ThreadRole::Other);
        info.name = r.target.thread_name(tid);
        info.syscall = r
            .target
            .registers(tid)
            .and_then(|regs| regs.syscall)
            .map(crate::process::syscalls::syscall);
        if let Some(h) = &c.handle {
            info.runtime = runtime_no(h);
            info.scheduler = Some(flavor_name(h.flavor).to_string());
        }
        let mut candidates = Vec::new();
        match (&c.scheduler, c.entered, &c.handle) {
            (Some(s), _, _) if s.flavor == Flavor::MultiThread => {
                info.role = ThreadRole::Worker;
                info.worker = tk.worker_index(s);
                if let (Some(i), Some(h)) = (info.worker, &c.handle) {
                    info.local_queue = tk.local_queue_len(h, i as u64);
                }
                info.task = c.task_id.filter(|&id| running(id));
                info.scheduler_tick = tk.scheduler_tick(s);
            }
            (Some(s), _, _) => {
                info.role = ThreadRole::BlockOn;
                info.local_queue = tk.current_thread_queue_len(s);
                info.task = c.task_id.filter(|&id| running(id));
                info.scheduler_tick = tk.scheduler_tick(s);
                candidates = root_futures(tid);
            }
            (None, Some(true), Some(_)) => {
                info.role = ThreadRole::BlockOn;
                candidates = root_futures(tid);
            }
            (None, _, Some(_)) => {
                info.role = ThreadRole::Blocking;
                info.task = c.task_id;
            }
            _ => {}
        }
        if info.role == ThreadRole::BlockOn && candidates.is_empty() {
            info.note = Some(if r.target.registers(tid).is_none() {
                "no registers: its root future cannot be looked for".into()
            } else {
                "its root future was not found on its stack".into()
            });
        }
        out.push(ThreadFacts {
            info,
            root: candidates.first().copied(),
            candidates,
        });
    }
    out
}

/// Decodes a root future into a trace (like a task's), with the ends of edges it holds
/// (the locks it holds, [`Link`]).
pub fn decode_root(
    r: &Reader<'_>,
    tk: &Tokio<'_, '_>,
    shapes: &Shapes,
    root: RootFuture,
) -> (Trace, Vec<Link>) {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut dec = Decoder::new(r, tk, shapes);
        let nodes = dec.decode(root.addr, root.ty, 0);
        (nodes, dec.links)
    }));
    let (nodes, links) = decoded.unwrap_or_else(|_| (Vec::<Node>::new(), Vec::new()));
    let trace = Trace {
        roots: std::sync::Arc::new(nodes),
    };
    (trace, links)
}

/// Where a state machine keeps its discriminant, and the values of its suspend variants.
#[derive(Clone, Debug)]
struct Tag {
    /// Offset of the tag from the start of the candidate type.
    offset: u64,
    /// Its size in bytes.
    size: u64,
    /// Discriminant values of `SuspendN` variants.
    suspend: Vec<u64>,
}

/// The types `block_on` is instantiated with (template parameter `F` of the `block_on`
/// subprograms), each with its size and quick-check tag: found in the debuginfo alone, once
/// for all the reads of one process ([`crate::Prepared`]).
pub struct RootTypes(Vec<(u64, u64, Tag)>);

impl RootTypes {
    /// Collects the candidate root future types (nothing is read from `r.target`).
    pub fn find(r: &Reader<'_>) -> Self {
        let mut types: Vec<u64> = Vec::new();
        for (_, sp) in r.info.subprograms() {
            if !layout::BLOCK_ON_FNS.iter().any(|p| sp.name.starts_with(p)) {
                continue;
            }
            for (n, t) in &sp.template_types {
                let t = r.strip(*t);
                // The same type appears once per compilation unit: keep one.
                if n == "F" && !types.iter().any(|&o| r.type_name(o) == r.type_name(t)) {
                    types.push(t);
                }
            }
        }
        let mut candidates = Vec::new();
        for t in types {
            let size = r.type_size(t);
            if size == 0 || size > STACK_WINDOW / 2 {
                continue;
            }
            if let Some(tag) = tag_of(r, t, 0) {
                candidates.push((t, size, tag));
            }
        }
        if std::env::var_os("TASKTRACE_DEBUG_SCAN").is_some() {
            for (t, size, tag) in &candidates {
                eprintln!("candidate {} size {size} tag {tag:?}", r.type_name(*t));
            }
        }
        RootTypes(candidates)
    }
}

/// The stack scan for root futures.
pub struct Scan<'r, 'a, 't> {
    r: &'r Reader<'a>,
    tk: &'t Tokio<'r, 'a>,
    /// Candidate types with their quick-check tag.
    candidates: &'t [(u64, u64, Tag)],
}

impl<'r, 'a, 't> Scan<'r, 'a, 't> {
    /// A scan for the `roots` types.
    pub fn new(r: &'r Reader<'a>, tk: &'t Tokio<'r, 'a>, roots: &'t RootTypes) -> Self {
        Scan {
            r,
            tk,
            candidates: &roots.0,
        }
    }

    /// The root future on the stack of thread `tid`: the most plausible of
    /// [`root_futures`](Self::root_futures).
    pub fn root_future(&self, tid: i32) -> Option<RootFuture> {
        self.root_futures(tid).into_iter().next()
    }

    /// Every plausible root future on the stack of thread `tid`, the most plausible first (on
    /// a tie, the innermost).
    pub fn root_futures(&self, tid: i32) -> Vec<RootFuture> {
        self.scored_root_futures(tid)
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    /// [`root_futures`](Self::root_futures) with their scores.
    fn scored_root_futures(&self, tid: i32) -> Vec<(u32, RootFuture)> {
        if self.candidates.is_empty() {
            return Vec::new();
        }
        let Some(regs) = self.r.target.registers(tid) else {
            return Vec::new();
        };
        let start = regs.rsp & !7;
        let stack = read_stack(self.r, start);
        let mut found: Vec<(u32, RootFuture)> = Vec::new();
        for &(ty, size, ref tag) in self.candidates {
            let mut o = 0u64;
            while o + size <= stack.len() as u64 {
                let at = (o + tag.offset) as usize;
                let mut b = [0u8; 8];
                b[..tag.size as usize].copy_from_slice(&stack[at..at + tag.size as usize]);
                let v = u64::from_le_bytes(b);
                if tag.suspend.contains(&v) {
                    let addr = start + o;
                    if let Some(score) = self.plausible(addr, ty, 0) {
                        found.push((score, RootFuture { addr, ty }));
                    }
                }
                o += 8;
            }
        }
        // Best score first; on a tie the innermost (lowest) copy.
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.addr.cmp(&b.1.addr)));
        found
    }

    /// Whether a value of type `ty` at `addr` looks live: state machines in a valid state
    /// (the root: suspended), join handles pointing at task headers whose vtable's `poll` is
    /// a known function, `Arc`s with sane counts, references and boxes readable. `None`:
    /// implausible; otherwise a score (more checked pointers: more certain).
    pub fn plausible(&self, addr: u64, ty: u64, depth: usize) -> Option<u32> {
        let r = self.r;
        let ty = r.strip(ty);
        if depth > 4 {
            return Some(0);
        }
        let name = r.type_name(ty);
        let generic = name.split('<').next().unwrap_or(name);
        if async_env(name).is_some() {
            let v = r.variant(ty, addr).ok()??;
            let ok = if depth == 0 {
                v.name.starts_with("Suspend")
            } else {
                v.name.starts_with("Suspend") || v.name == "Unresumed"
            };
            if !ok {
                return None;
            }
            // A local moved out before this await keeps its slot in the variant, and the
            // slot may since hold another local's bytes: one implausible member is allowed
            // (and costs a point), a second rejects the copy.
            let (mut score, mut stale) = (1u32, 0);
            for (_, off, mt) in r.members(v.ty) {
                match self.plausible(addr + v.offset + off, mt, depth + 1) {
                    Some(s) => score += s,
                    None if stale == 0 => stale = 1,
                    None => return None,
                }
            }
            return Some(score.saturating_sub(stale));
        }
        match generic {
            "tokio::runtime::task::join::JoinHandle" => {
                let header = r.pointer(addr).ok()?;
                let lay = self.tk.layout();
                let vtable = r.pointer(header.checked_add(lay.header_vtable)?).ok()?;
                let poll = r.u64(vtable.checked_add(lay.vtable_poll)?).ok()?;
                r.info.subprogram_at(poll.wrapping_sub(r.bias))?;
                Some(3)
            }
            "alloc::sync::Arc" | "alloc::rc::Rc" => {
                let p = r.pointer(addr).ok()?;
                if p == 0 || p % 8 != 0 {
                    return None;
                }
                let strong = r.u64(p).ok()?;
                let weak = r.u64(p + 8).ok()?;
                ((1..1 << 40).contains(&strong) && (1..1 << 40).contains(&weak)).then_some(1)
            }
            "alloc::boxed::Box" => {
                let p = r.u64(addr).ok()?;
                let mut b = [0u8; 1];
                (p != 0 && r.bytes(p, &mut b).is_ok()).then_some(0)
            }
            _ => {
                let d = r.info.die(ty)?;
                if d.kind == crate::debuginfo::Kind::Pointer {
                    // References must point somewhere readable; raw pointers may be anything.
                    if name.starts_with('&') {
                        let p = r.u64(addr).ok()?;
                        let mut b = [0u8; 1];
                        return (p != 0 && r.bytes(p, &mut b).is_ok()).then_some(0);
                    }
                    return Some(0);
                }
                if d.kind != crate::debuginfo::Kind::Struct || depth >= 3 {
                    return Some(0);
                }
                let mut score = 0;
                for (_, off, mt) in r.members(ty) {
                    score += self.plausible(addr + off, mt, depth + 1)?;
                }
                Some(score)
            }
        }
    }
}

/// The readable stack from `start` upwards (at most [`STACK_WINDOW`] bytes): big reads,
/// then page by page near the end of the mapping.
fn read_stack(r: &Reader<'_>, start: u64) -> Vec<u8> {
    let mut stack = Vec::new();
    let mut step = CHUNK;
    while (stack.len() as u64) < STACK_WINDOW {
        let mut chunk = vec![0u8; step as usize];
        if r.target
            .read(start + stack.len() as u64, &mut chunk)
            .is_ok()
        {
            stack.extend_from_slice(&chunk);
        } else if step > PAGE {
            step = PAGE;
        } else {
            break;
        }
    }
    stack
}

/// The quick-check tag of a candidate: its own state machine's, or that of the first state
/// machine among its members (e.g. `RunUntil.future`).
fn tag_of(r: &Reader<'_>, ty: u64, depth: usize) -> Option<Tag> {
    use crate::debuginfo::Kind;
    let ty = r.strip(ty);
    let d = r.info.die(ty)?;
    if async_env(r.type_name(ty)).is_some() {
        let part = d
            .children
            .iter()
            .filter_map(|c| r.info.die(*c))
            .find(|c| c.kind == Kind::VariantPart)?;
        let tag = r.info.die(part.discr?)?;
        let size = tag.ty.map(|t| r.type_size(t)).unwrap_or(1).clamp(1, 8);
        let mut suspend = Vec::new();
        for v in part.children.iter().filter_map(|c| r.info.die(*c)) {
            if v.kind != Kind::Variant {
                continue;
            }
            let Some(value) = v.discr_value else { continue };
            let is_suspend = v.children.iter().filter_map(|c| r.info.die(*c)).any(|m| {
                m.kind == Kind::Member
                    && m.ty.is_some_and(|t| {
                        crate::type_names::last_segment(r.type_name(t)).starts_with("Suspend")
                    })
            });
            if is_suspend {
                suspend.push(value);
            }
        }
        return (!suspend.is_empty()).then_some(Tag {
            offset: tag.offset,
            size,
            suspend,
        });
    }
    if depth >= 2 || d.kind != Kind::Struct {
        return None;
    }
    r.members(ty).into_iter().find_map(|(_, off, mt)| {
        tag_of(r, mt, depth + 1).map(|t| Tag {
            offset: t.offset + off,
            ..t
        })
    })
}
