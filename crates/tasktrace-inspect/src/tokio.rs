//! Everything that depends on tokio's internals, in one place: multi-thread and
//! current-thread runtimes of tokio 1.38 – 1.54. The member chains of each version are in
//! [`layout`] (by DWARF member names, never hard-coded offsets); a missing member gives
//! `unsupported tokio X.Y: missing Type.member`.
//!
//! Path: thread-local `CONTEXT` (`fs_base − roundup(PT_TLS memsz, align) + offset`) →
//! `current.handle` (`Option<scheduler::Handle>`) → `MultiThread`/`CurrentThread(Arc<Handle>)` →
//! `shared.owned.list.lists[i]` → `head` → each task's `Trailer.owned.next` (the trailer is at
//! `vtable.trailer_offset`, the id at `vtable.id_offset`). The future's type is the template
//! parameter `T` of the subprogram at `vtable.poll` (`raw::poll<T, S>`); the future itself is
//! the `Running` variant of `core.stage.stage` in `Cell<T, S>`.

pub mod layout;

use crate::error::{Error, Result};
use crate::value::Reader;
use layout::Layout;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tasktrace_model::{Timer, Wait, WaitOn};

/// Most tasks read from one runtime (a bound on corrupt lists).
pub const MAX_TASKS: usize = 1_000_000;

/// Header state bits.
const RUNNING: u64 = 0b1;
const COMPLETE: u64 = 0b10;
const NOTIFIED: u64 = 0b100;

/// Deepest await chain searched from a `block_on` root for a `LocalSet`'s `RunUntil`.
const MAX_RUN_UNTIL_DEPTH: usize = 16;

/// A join branch (`MaybeDone`).
pub enum Branch {
    /// Still running: the branch future's (address, type).
    Pending(u64, u64),
    /// Finished: the branch future's type name.
    Done(String),
}

/// What a recognised leaf future waits on.
pub struct Leaf {
    /// What it waits on (a timer with its deadline, a task, …).
    pub wait: Wait,
    /// The task awaited through a join handle.
    pub awaits: Option<u64>,
    /// The header of that task (a `spawn_blocking` task is in no task list: it is found
    /// through the join handles awaiting it).
    pub header: Option<u64>,
    /// A timer whose deadline passed long enough ago ([`STALE_TIMER_SECS`]) that its task
    /// would have been woken and polled since: whatever owns it is not waiting on it.
    pub stale: bool,
}

/// How long past its deadline a timer is taken as not waited on: a fired timer wakes its task
/// within microseconds, so one still pending this long after was not polled again.
pub const STALE_TIMER_SECS: f64 = 1.0;

/// One task as found in the owned lists.
#[derive(Clone, Debug)]
pub struct RawTask {
    /// Address of its `Header` (the task's cell).
    pub header: u64,
    /// Task id.
    pub id: u64,
    /// Being polled right now.
    pub running: bool,
    /// Scheduled (woken, in a run queue).
    pub notified: bool,
    /// Finished (its output not yet taken).
    pub complete: bool,
    /// The root future: (address, type), when its stage is `Running`.
    pub future: Option<(u64, u64)>,
    /// Why the future could not be located.
    pub error: Option<String>,
    /// Address of the `core::panic::Location` it was spawned at (`tokio_unstable` builds).
    pub spawned_at: Option<u64>,
}

/// Which scheduler a runtime handle belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `multi_thread::Handle`.
    MultiThread,
    /// `current_thread::Handle`.
    CurrentThread,
}

/// One runtime found in the target: its scheduler handle (`ArcInner<Handle>.data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Address of the handle.
    pub addr: u64,
    /// Its type (`multi_thread::handle::Handle` or `current_thread::Handle`).
    pub ty: u64,
    /// Its scheduler.
    pub flavor: Flavor,
}

/// Where a task cell's `Stage` is and how to read it, or why it cannot be found.
type StageAt = std::result::Result<Arc<Stage>, String>;

/// The `Stage` enum of one future type's task cells, resolved once for all its tasks.
#[derive(Debug)]
struct Stage {
    /// Offset of the `Stage` in the cell.
    offset: u64,
    /// Its variants.
    table: crate::debuginfo::VariantTable,
    /// The `Running` variant (index in the table) and where its future is: (offset from the
    /// `Stage`, type).
    running: Option<(usize, u64, u64)>,
}

/// A thread's `scheduler::Context` (set while it runs a scheduler: a worker, or a
/// current_thread `block_on`): the variant's payload.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerContext {
    /// Which scheduler.
    pub flavor: Flavor,
    /// Address of `multi_thread::worker::Context` / `current_thread::Context`.
    pub addr: u64,
    /// Its type.
    pub ty: u64,
}

/// What tokio's `CONTEXT` thread-local holds on one thread.
#[derive(Clone, Copy, Debug)]
pub struct ThreadContext {
    /// The thread.
    pub thread: crate::process::Thread,
    /// `current.handle`: the runtime the thread has entered.
    pub handle: Option<Runtime>,
    /// `scheduler`: set on workers and on a current_thread `block_on`.
    pub scheduler: Option<SchedulerContext>,
    /// `runtime`: `Entered` (true) or `NotEntered` (false).
    pub entered: Option<bool>,
    /// `current_task_id`.
    pub task_id: Option<u64>,
}

/// What this tokio version looks like, found in the debuginfo alone (no memory is read):
/// member offsets, task cell types, the timer's deadline. Kept across the reads of one
/// process ([`crate::Prepared`]), so that a sample does not pay for it while its target is
/// stopped.
pub struct Types {
    /// Member offsets of this tokio version.
    pub layout: Layout,
    cells: HashMap<String, u64>,
    /// `Sleep` → deadline seconds and nanoseconds (offsets), when the version has one.
    sleep_deadline: Option<(u64, u64, u64)>,
    /// Per task `poll` function (a runtime address of the one process these types are used
    /// for, whose load bias does not change): where its `Stage` is (or why not).
    stages: Mutex<HashMap<u64, StageAt>>,
    /// `core::panic::Location`: offsets of its file (a `&str` or `NonNull<str>`: pointer and
    /// length), line and column.
    location: Option<(u64, u64, u64)>,
}

/// The runtime of one target, read with its version's [`Types`].
pub struct Tokio<'r, 'a> {
    r: &'r Reader<'a>,
    types: Arc<Types>,
    /// The `Stage` last resolved, by its `poll` function.
    last_stage: std::cell::RefCell<Option<(u64, StageAt)>>,
}

impl Types {
    /// Finds tokio's task types in the debuginfo `r.info` (nothing is read from `r.target`).
    pub fn find(r: &Reader<'_>) -> Result<Self> {
        let ty = |name: &str| -> Result<u64> {
            r.info.types_named(name).first().copied().ok_or_else(|| {
                Error::NoRuntime(format!(
                    "the debuginfo has no type `{name}` (is this a tokio program?)"
                ))
            })
        };
        let header_ty = ty("tokio::runtime::task::core::Header")?;
        let vtable_ty = ty("tokio::runtime::task::raw::Vtable")?;
        let trailer_ty = ty("tokio::runtime::task::core::Trailer")?;
        let layout = Layout::new(r, header_ty, vtable_ty, trailer_ty)?;
        let sleep_deadline = r
            .info
            .types_named("tokio::time::sleep::Sleep")
            .first()
            .and_then(|&sleep| {
                let l = layout.resolver(r);
                let (d_off, d_ty) = l.opt(sleep, layout::SLEEP_DEADLINE)?;
                let (s_off, _) = l.opt(d_ty, layout::INSTANT_SECS)?;
                let (n_off, _) = l.opt(d_ty, layout::INSTANT_NANOS)?;
                Some((sleep, d_off + s_off, d_off + n_off))
            });
        let mut cells = HashMap::new();
        for (_, cell) in r
            .info
            .types_with_prefix("tokio::runtime::task::core::Cell<")
        {
            if let Some(d) = r.info.die(cell) {
                for c in &d.children {
                    if let Some(p) = r.info.die(*c) {
                        if p.kind == crate::debuginfo::Kind::TemplateType && p.name == "T" {
                            if let Some(t) = p.ty {
                                cells.entry(r.type_name(t).to_string()).or_insert(cell);
                            }
                        }
                    }
                }
            }
        }
        let location = r
            .info
            .types_named("core::panic::location::Location")
            .iter()
            .find_map(|&ty| {
                let l = layout.resolver(r);
                let (file, _) = l.opt(ty, &["filename", "file"])?;
                let (line, _) = l.opt(ty, &["line"])?;
                let (col, _) = l.opt(ty, &["col"])?;
                Some((file, line, col))
            });
        Ok(Types {
            layout,
            cells,
            sleep_deadline,
            stages: Default::default(),
            location,
        })
    }
}

impl<'r, 'a> Tokio<'r, 'a> {
    /// Finds tokio's task types in the debuginfo, for one read.
    pub fn new(r: &'r Reader<'a>) -> Result<Self> {
        Ok(Self::with(r, Arc::new(Types::find(r)?)))
    }

    /// Reads with types found before ([`Types::find`]).
    pub fn with(r: &'r Reader<'a>, types: Arc<Types>) -> Self {
        Tokio {
            r,
            types,
            last_stage: Default::default(),
        }
    }

    /// Member offsets of this tokio version.
    pub fn layout(&self) -> &Layout {
        &self.types.layout
    }

    /// The `CONTEXT` thread-local: its offset in the TLS block, the `Context` type, and the
    /// offset of the `Context` inside the variable (`Storage<Context>.val.value`).
    fn context_var(&self) -> Result<(u64, u64)> {
        let r = self.r;
        let ctx = &r.info.context_tls;
        let (off, var_ty) = ctx
            .iter()
            .find(|(_, t)| r.type_name(*t).contains("Storage<"))
            .or_else(|| ctx.first())
            .copied()
            .ok_or_else(|| {
                Error::NoRuntime(
                    "no `tokio::runtime::context::CONTEXT` thread-local in the debuginfo".into(),
                )
            })?;
        let l = self.types.layout.resolver(r);
        let (v_off, ctx_ty) = if r.type_name(var_ty).contains("Storage<") {
            l.one(var_ty, layout::CONTEXT_IN_STORAGE)?
        } else {
            (0, var_ty)
        };
        Ok((off + v_off, ctx_ty))
    }

    /// What `CONTEXT` says on every thread (threads whose TLS cannot be read are left out).
    pub fn thread_contexts(&self) -> Result<Vec<ThreadContext>> {
        let r = self.r;
        let (off, ctx_ty) = self.context_var()?;
        let (memsz, align) = r
            .info
            .tls
            .ok_or_else(|| Error::NoRuntime("the executable has no PT_TLS segment".into()))?;
        let block = memsz.div_ceil(align.max(1)) * align.max(1);
        let l = self.types.layout.resolver(r);
        let (h_off, h_ty) = l.one(ctx_ty, layout::CONTEXT_HANDLE)?;
        let sched = l.opt(ctx_ty, layout::CONTEXT_SCHEDULER);
        let task_id = l.opt(ctx_ty, layout::CONTEXT_TASK_ID);
        let entered = l.opt(ctx_ty, layout::CONTEXT_RUNTIME);
        let mut out = Vec::new();
        for t in r.target.threads() {
            if t.fs_base < block {
                continue;
            }
            let base = t.fs_base - block + off;
            let mut c = ThreadContext {
                thread: *t,
                handle: self.handle_at(base + h_off, h_ty).ok().flatten(),
                scheduler: None,
                entered: None,
                task_id: None,
            };
            if let Some((s_off, _)) = sched {
                let p = r.pointer(base + s_off).unwrap_or(0);
                if p != 0 {
                    c.scheduler = self.scheduler_context(p).ok().flatten();
                }
            }
            if let Some((e_off, e_ty)) = entered {
                if let Ok(Some(v)) = r.variant(e_ty, base + e_off) {
                    c.entered = Some(v.name == "Entered");
                }
            }
            if let Some((i_off, i_ty)) = task_id {
                c.task_id = self.option_u64(base + i_off, i_ty);
            }
            out.push(c);
        }
        Ok(out)
    }

    /// An `Option<u64-like>` (`Option<task::Id>`, niche or tagged): its value when `Some`.
    fn option_u64(&self, addr: u64, ty: u64) -> Option<u64> {
        let r = self.r;
        let (e_off, e_ty) = r.find_enum(ty)?;
        let v = r.variant(e_ty, addr + e_off).ok()??;
        if v.name != "Some" {
            return None;
        }
        let (o, t) = r.member(v.ty, "__0")?;
        self.int(addr + e_off + v.offset + o, t)
    }

    /// An integer wrapped in single-member structs (`Id(NonZero<u64>)`, atomics, cells).
    pub fn int(&self, addr: u64, ty: u64) -> Option<u64> {
        let r = self.r;
        let mut t = r.strip(ty);
        let mut a = addr;
        for _ in 0..8 {
            let d = r.info.die(t)?;
            if d.kind == crate::debuginfo::Kind::Base {
                return r.uint(a, d.size).ok();
            }
            let ms = r.members(t);
            let &(_, o, mt) = ms.first()?;
            a += o;
            t = r.strip(mt);
        }
        None
    }

    /// The runtime behind an `Option<scheduler::Handle>` at `addr`.
    fn handle_at(&self, addr: u64, ty: u64) -> Result<Option<Runtime>> {
        let r = self.r;
        let Some((o_off, opt_ty)) = r.find_enum(ty) else {
            return Err(self
                .types
                .layout
                .resolver(r)
                .missing("Context.current.handle (not an Option)"));
        };
        let addr = addr + o_off;
        let Some(some) = r.variant(opt_ty, addr)? else {
            return Ok(None);
        };
        if some.name != "Some" {
            return Ok(None);
        }
        let Some((o0, handle_ty)) = r.member(some.ty, "__0") else {
            return Ok(None);
        };
        self.scheduler_handle(addr + some.offset + o0, handle_ty)
    }

    /// The runtime of a `tokio::runtime::Handle` value at `addr`.
    pub fn runtime_of_handle(&self, addr: u64) -> Result<Option<Runtime>> {
        let r = self.r;
        let Some(&ty) = r.info.types_named("tokio::runtime::handle::Handle").first() else {
            return Err(Error::Other(
                "no tokio::runtime::Handle type in the debuginfo".into(),
            ));
        };
        let Some((off, inner)) = r.member(ty, "inner") else {
            return Ok(None);
        };
        self.scheduler_handle(addr + off, inner)
    }

    /// The runtime of a `scheduler::Handle` value at `addr`.
    pub fn scheduler_handle(&self, addr: u64, handle_ty: u64) -> Result<Option<Runtime>> {
        let r = self.r;
        let Some(kind) = r.variant(handle_ty, addr)? else {
            return Ok(None);
        };
        let flavor = match kind.name.as_str() {
            "MultiThread" => Flavor::MultiThread,
            "CurrentThread" => Flavor::CurrentThread,
            _ => return Ok(None),
        };
        let Some((a0, arc_ty)) = r.member(kind.ty, "__0") else {
            return Ok(None);
        };
        Ok(self
            .arc_data(addr + kind.offset + a0, arc_ty)?
            .map(|(addr, ty)| Runtime { addr, ty, flavor }))
    }

    /// The value behind an `Arc<T>` (or `Rc<T>`) stored at `addr`: (address, type).
    pub fn arc_data(&self, addr: u64, arc_ty: u64) -> Result<Option<(u64, u64)>> {
        let r = self.r;
        let Some((inner, Some(inner_ty))) = r.thin_pointer(arc_ty, addr)? else {
            return Ok(None);
        };
        if inner == 0 {
            return Ok(None);
        }
        let (d_off, d_ty) = self
            .types
            .layout
            .resolver(r)
            .one(inner_ty, layout::ARC_DATA)?;
        Ok(Some((inner + d_off, d_ty)))
    }

    /// The `scheduler::Context` at `addr` (a worker's or a current_thread `block_on`'s).
    fn scheduler_context(&self, addr: u64) -> Result<Option<SchedulerContext>> {
        let r = self.r;
        let Some(&ty) = r
            .info
            .types_named("tokio::runtime::scheduler::Context")
            .first()
        else {
            return Ok(None);
        };
        let Some(v) = r.variant(ty, addr)? else {
            return Ok(None);
        };
        let flavor = match v.name.as_str() {
            "MultiThread" => Flavor::MultiThread,
            "CurrentThread" => Flavor::CurrentThread,
            _ => return Ok(None),
        };
        let Some((o, t)) = r.member(v.ty, "__0") else {
            return Ok(None);
        };
        Ok(Some(SchedulerContext {
            flavor,
            addr: addr + v.offset + o,
            ty: t,
        }))
    }

    /// Every runtime some thread has entered (its `CONTEXT.current.handle`), first seen first.
    pub fn runtimes(&self, contexts: &[ThreadContext]) -> Vec<Runtime> {
        let mut out: Vec<Runtime> = Vec::new();
        for c in contexts {
            if let Some(h) = c.handle {
                if !out.iter().any(|o| o.addr == h.addr) {
                    out.push(h);
                }
            }
        }
        out
    }

    /// Every task in the runtime's owned lists.
    pub fn tasks(&self, rt: &Runtime, limit: usize) -> Result<(Vec<RawTask>, Vec<String>)> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (l_off, lists_ty) = l.one(rt.ty, layout::OWNED_LISTS)?;
        let (p_off, p_ty) = l.one(lists_ty, &["data_ptr"])?;
        let (n_off, _) = l.one(lists_ty, &["length"])?;
        let base = rt.addr + l_off;
        let data = r.pointer(base + p_off)?;
        let count = r.u64(base + n_off)?.min(1 << 16);
        let elem_ty = r
            .pointee(p_ty)
            .ok_or_else(|| l.missing("ShardedList.lists (no element type)"))?;
        let elem_size = r.type_size(elem_ty);
        let (head_off, head_ty) = l.one(elem_ty, layout::SHARD_HEAD)?;
        let mut heads = Vec::with_capacity(count as usize);
        for i in 0..count {
            let shard = data + i * elem_size;
            heads.push(match r.thin_pointer(head_ty, shard + head_off)? {
                Some((p, _)) => p,
                None => 0,
            });
        }
        self.walk_lists(&heads, limit)
    }

    /// Every task in linked lists starting at `heads` (owned lists: `Trailer.owned` links),
    /// and why the lists were not read to their ends (a dump's [`partial`](tasktrace_model::Dump::partial)
    /// reasons), if they were not.
    pub fn walk_lists(&self, heads: &[u64], limit: usize) -> Result<(Vec<RawTask>, Vec<String>)> {
        let mut notes = Vec::new();
        let mut seen = crate::addr_hash::AddrSet::default();
        let mut out = Vec::new();
        for (i, &head) in heads.iter().enumerate() {
            let mut cur = head;
            while cur != 0 {
                if !seen.insert(cur) {
                    notes.push(format!(
                        "owned task list {i} has a cycle at {cur:#x}; stopped there"
                    ));
                    break;
                }
                if out.len() >= limit {
                    notes.push(format!("stopped after {limit} tasks"));
                    return Ok((out, notes));
                }
                // Target memory is untrusted: an unreadable task or link (a dangling pointer,
                // memory gone mid-walk) ends this list, and the dump says so.
                let (task, next) = match self.task_at(cur) {
                    Ok(t) => t,
                    Err(e) => {
                        notes.push(format!(
                            "owned task list {i}: the task at {cur:#x} is unreadable \
                             ({e}); the rest of this list is not listed"
                        ));
                        break;
                    }
                };
                out.push(task);
                cur = next;
            }
        }
        Ok((out, notes))
    }

    /// The `spawn_blocking` task whose header is at `header` (found through a join handle
    /// awaiting it: blocking tasks are in no task list), with the type of the closure it runs;
    /// `None` for any other task.
    pub fn blocking_task(&self, header: u64) -> Option<(RawTask, u64)> {
        let r = self.r;
        let (task, _) = self.task_at(header).ok()?;
        // Its future, `BlockingTask<F>`, is found as any task's is (its stage's `Running`
        // payload); its `func` is taken while it runs, so the closure is known by its type.
        let (_, fut) = task.future?;
        let fut = r.strip(fut);
        if !r.type_name(fut).starts_with(layout::BLOCKING_TASK_TYPE) {
            return None;
        }
        let func = r.strip(r.type_param(fut, "T")?);
        Some((task, func))
    }

    /// The task whose header is at `header`, and the next task of its owned list.
    fn task_at(&self, header: u64) -> Result<(RawTask, u64)> {
        let r = self.r;
        let lay = &self.types.layout;
        let vtable = r.pointer(header.wrapping_add(lay.header_vtable))?;
        let state = r.u64(header.wrapping_add(lay.header_state))?;
        let id_at = r.u64(vtable.wrapping_add(lay.vtable_id_offset))?;
        let id = r.u64(header.wrapping_add(id_at))?;
        let trailer_at = r.u64(vtable.wrapping_add(lay.vtable_trailer_offset))?;
        let poll = r.u64(vtable.wrapping_add(lay.vtable_poll))?;
        let next = r.u64(
            header
                .wrapping_add(trailer_at)
                .wrapping_add(lay.trailer_next),
        )?;
        let spawned_at = lay.vtable_spawn_location_offset.and_then(|off| {
            let at = r.u64(vtable.wrapping_add(off)).ok()?;
            r.pointer(header.wrapping_add(at)).ok().filter(|&p| p != 0)
        });
        let mut task = RawTask {
            header,
            id,
            running: state & RUNNING != 0,
            notified: state & NOTIFIED != 0,
            complete: state & COMPLETE != 0,
            future: None,
            error: None,
            spawned_at,
        };
        match self.future_of(header, poll) {
            Ok(f) => task.future = f,
            Err(e) => task.error = Some(e.to_string()),
        }
        Ok((task, next))
    }

    /// Every task found by scanning `memory` for task headers: for a core whose way to the
    /// runtime (threads, their TLS, the runtime's lists) is in a part cut off. The
    /// executable's read-only memory gives the task vtables (their `poll` is one of tokio's
    /// `raw::poll` instances); a word of writable memory pointing at one of them, where a
    /// header has its vtable, is a task header if its state holds a reference and its id is
    /// readable. Tasks already in `known` are skipped.
    pub fn scan_tasks(
        &self,
        memory: &[crate::process::MemoryRange<'_>],
        known: &HashSet<u64>,
        limit: usize,
    ) -> Vec<RawTask> {
        let r = self.r;
        let lay = &self.types.layout;
        let polls: HashSet<u64> = r
            .info
            .subprograms()
            .filter(|(_, sp)| sp.name.starts_with("tokio::runtime::task::raw::poll"))
            .map(|(pc, _)| pc.wrapping_add(r.bias))
            .collect();
        if polls.is_empty() {
            return Vec::new();
        }
        let vtables: HashSet<u64> = memory
            .iter()
            .filter(|m| !m.writable && m.addr % 8 == 0)
            .flat_map(|m| words(m))
            .filter(|(_, w)| polls.contains(w))
            .map(|(at, _)| at.wrapping_sub(lay.vtable_poll))
            .collect();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (at, w) in memory
            .iter()
            .filter(|m| m.writable && m.addr % 8 == 0)
            .flat_map(|m| words(m))
        {
            if out.len() >= limit {
                break;
            }
            if !vtables.contains(&w) {
                continue;
            }
            let header = at.wrapping_sub(lay.header_vtable);
            if known.contains(&header) || !seen.insert(header) {
                continue;
            }
            // A live task holds at least one reference (the owned list's); the count is the
            // state's bits above the six flags.
            let refs = r.u64(header.wrapping_add(lay.header_state)).unwrap_or(0) >> 6;
            if refs == 0 || refs > 1 << 24 {
                continue;
            }
            if let Ok((task, _)) = self.task_at(header) {
                if task.id != 0 {
                    out.push(task);
                }
            }
        }
        out.sort_by_key(|t| t.id);
        out
    }

    /// The root future of the task at `header`, whose vtable's poll is at `poll`.
    fn future_of(&self, header: u64, poll: u64) -> Result<Option<(u64, u64)>> {
        let r = self.r;
        // Many tasks share a future type: resolve each `poll` function once (and the tasks of
        // a list are often alike: the last one's is at hand without a lock).
        let last = self.last_stage.borrow().clone().filter(|(p, _)| *p == poll);
        let stage = if let Some((_, s)) = last {
            s
        } else {
            let cached = self
                .types
                .stages
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&poll)
                .cloned();
            match cached {
                Some(s) => s,
                None => {
                    let s = self.stage(poll).map_err(|e| e.to_string());
                    self.types
                        .stages
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(poll, s.clone());
                    s
                }
            }
        };
        *self.last_stage.borrow_mut() = Some((poll, stage.clone()));
        let stage = stage.map_err(Error::Other)?;
        let addr = header + stage.offset;
        let tag = match stage.table.tag() {
            Some((off, size)) => Some(r.uint(addr + off, size)?),
            None => None,
        };
        let active = stage.table.pick(tag);
        match (active, stage.running) {
            (Some(v), Some((i, off, ty))) if std::ptr::eq(v, &stage.table.variants[i]) => {
                Ok(Some((addr + off, ty)))
            }
            (Some(v), None) if v.name == "Running" => {
                Err(self.types.layout.resolver(r).missing("Stage::Running.__0"))
            }
            _ => Ok(None),
        }
    }

    /// The `Stage` of the tasks polled by `poll`, resolved ([`Stage`]).
    fn stage(&self, poll: u64) -> Result<Arc<Stage>> {
        let r = self.r;
        let (offset, enum_ty) = self.stage_of(poll)?;
        let table = r
            .info
            .variant_table(r.strip(enum_ty))
            .cloned()
            .ok_or_else(|| self.types.layout.resolver(r).missing("Stage (no variants)"))?;
        let running = table
            .variants
            .iter()
            .position(|v| v.name == "Running")
            .and_then(|i| {
                let v = &table.variants[i];
                let (f_off, f_ty) = r.member(v.ty, "__0")?;
                Some((i, v.offset + f_off, f_ty))
            });
        Ok(Arc::new(Stage {
            offset,
            table,
            running,
        }))
    }

    /// Where the `Stage` enum of the tasks polled by `poll` is in their cell: (offset, type).
    fn stage_of(&self, poll: u64) -> Result<(u64, u64)> {
        let r = self.r;
        let sp = r
            .info
            .subprogram_at(poll.wrapping_sub(r.bias))
            .ok_or_else(|| {
                Error::Other(format!(
                    "no debuginfo for the task's poll function at {poll:#x}"
                ))
            })?;
        let t = sp
            .template_types
            .iter()
            .find(|(n, _)| n == "T")
            .map(|(_, t)| *t)
            .ok_or_else(|| Error::Other(format!("`{}` has no template parameter T", sp.name)))?;
        let tname = r.type_name(t);
        let cell = *self
            .types
            .cells
            .get(tname)
            .ok_or_else(|| Error::Other(format!("no task cell type for future `{tname}`")))?;
        let l = self.types.layout.resolver(r);
        let (s_off, stage_ty) = l.one(cell, layout::CELL_STAGE)?;
        let (e_off, enum_ty) = r
            .find_enum(stage_ty)
            .ok_or_else(|| l.missing("CoreStage.stage (not an enum)"))?;
        Ok((s_off + e_off, enum_ty))
    }

    /// The index of the worker whose `multi_thread::worker::Context` is `ctx`.
    pub fn worker_index(&self, ctx: &SchedulerContext) -> Option<u32> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (w_off, w_ty) = l.opt(ctx.ty, layout::WORKER_CTX_WORKER)?;
        let (worker, worker_ty) = self.arc_data(ctx.addr + w_off, w_ty).ok()??;
        let (i_off, i_ty) = l.opt(worker_ty, layout::WORKER_INDEX)?;
        self.int(worker + i_off, i_ty).map(|i| i as u32)
    }

    /// Tasks in the local run queue of worker `index` of the multi-thread runtime `rt`.
    pub fn local_queue_len(&self, rt: &Runtime, index: u64) -> Option<u64> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (rm_off, rm_ty) = l.opt(rt.ty, layout::MT_REMOTES)?;
        let (p_off, p_ty) = l.opt(rm_ty, &["data_ptr"])?;
        let (n_off, _) = l.opt(rm_ty, &["length"])?;
        let data = r.pointer(rt.addr + rm_off + p_off).ok()?;
        let n = r.u64(rt.addr + rm_off + n_off).ok()?;
        if index >= n {
            return None;
        }
        let remote_ty = r.pointee(p_ty)?;
        let remote = data + index * r.type_size(remote_ty);
        let (q_off, q_ty) = l.opt(remote_ty, layout::REMOTE_QUEUE)?;
        let (inner, inner_ty) = self.arc_data(remote + q_off, q_ty).ok()??;
        let (h_off, h_ty) = l.opt(inner_ty, layout::QUEUE_HEAD)?;
        let (t_off, t_ty) = l.opt(inner_ty, layout::QUEUE_TAIL)?;
        let head = self.int(inner + h_off, h_ty)?;
        let tail = self.int(inner + t_off, t_ty)?;
        // `head` packs (steal, real) halves; the length counts from the real head.
        let half = r.type_size(t_ty).clamp(1, 4) * 8;
        let mask = (1u64 << half) - 1;
        Some(tail.wrapping_sub(head & mask) & mask)
    }

    /// Tasks in the run queue of a current_thread scheduler (`current_thread::Context` at
    /// `ctx`), when its core is in place.
    pub fn current_thread_queue_len(&self, ctx: &SchedulerContext) -> Option<u64> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (c_off, c_ty) = l.opt(ctx.ty, layout::CT_CTX_CORE)?;
        let (core, core_ty) = r.thin_pointer(c_ty, ctx.addr + c_off).ok()??;
        if core == 0 {
            return None;
        }
        let (q_off, q_ty) = l.opt(core_ty?, layout::CT_CORE_QUEUE_LEN)?;
        self.int(core + q_off, q_ty)
    }

    /// The `RunUntil` (the future `LocalSet::block_on`/`run_until` drives) at `root` or
    /// awaited by it (`run_until`'s async fn awaits it; `main → serve → local.run_until(…)`),
    /// at most [`MAX_RUN_UNTIL_DEPTH`] awaits down.
    fn find_run_until(&self, root: (u64, u64), depth: usize) -> Option<(u64, u64)> {
        let r = self.r;
        let name = r.type_name(root.1);
        if name.starts_with(layout::RUN_UNTIL_TYPE) {
            return Some(root);
        }
        if depth >= MAX_RUN_UNTIL_DEPTH || crate::decode::async_env(name).is_none() {
            return None;
        }
        let v = r.variant(root.1, root.0).ok()??;
        let (a_off, a_ty) = r.member(v.ty, "__awaitee")?;
        self.find_run_until((root.0 + v.offset + a_off, r.strip(a_ty)), depth + 1)
    }

    /// The tasks of the `LocalSet` driven by the root future `root` (a `RunUntil`, or an
    /// async fn awaiting one), if it is one: its `LocalOwnedTasks` list.
    pub fn local_set_tasks(
        &self,
        root: (u64, u64),
        limit: usize,
    ) -> Option<Result<(Vec<RawTask>, Vec<String>)>> {
        let r = self.r;
        let root = self.find_run_until(root, 0)?;
        let l = self.types.layout.resolver(r);
        let set = (|| {
            let (ls_off, ls_ty) = l.one(root.1, layout::RUN_UNTIL_LOCAL_SET)?;
            let (set, set_ty) = r
                .thin_pointer(ls_ty, root.0 + ls_off)?
                .ok_or_else(|| l.missing("RunUntil.local_set"))?;
            let set_ty = set_ty.ok_or_else(|| l.missing("RunUntil.local_set (type)"))?;
            let (c_off, c_ty) = l.one(set_ty, layout::LOCAL_SET_CONTEXT)?;
            let (ctx, ctx_ty) = self
                .arc_data(set + c_off, c_ty)?
                .ok_or_else(|| l.missing("LocalSet.context"))?;
            let (s_off, s_ty) = l.one(ctx_ty, layout::LOCAL_CONTEXT_SHARED)?;
            let (shared, shared_ty) = self
                .arc_data(ctx + s_off, s_ty)?
                .ok_or_else(|| l.missing("local::Context.shared"))?;
            let (h_off, h_ty) = l.one(shared_ty, layout::LOCAL_OWNED_HEAD)?;
            let head = match r.thin_pointer(h_ty, shared + h_off)? {
                Some((p, _)) => p,
                None => 0,
            };
            self.walk_lists(&[head], limit)
        })();
        Some(set)
    }

    /// True for a `tokio::task::JoinSet<T>` type.
    pub fn is_join_set(&self, ty: u64) -> bool {
        self.r.type_name(ty).starts_with(layout::JOIN_SET_TYPE)
    }

    /// The join handles a `JoinSet` at `addr` holds (its `IdleNotifiedSet`'s notified list,
    /// then its idle one): their (address, type), at most `limit`; and the set's length.
    pub fn join_set_handles(
        &self,
        addr: u64,
        ty: u64,
        limit: usize,
    ) -> Option<(u64, Vec<layout::Field>)> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (n_off, n_ty) = l.opt(ty, layout::JOIN_SET_LENGTH)?;
        let length = self.int(addr + n_off, n_ty)?;
        let (a_off, a_ty) = l.opt(ty, layout::JOIN_SET_LISTS)?;
        let (mutex, mutex_ty) = self.arc_data(addr + a_off, a_ty).ok()??;
        let (d_off, lists_ty) = l.opt(mutex_ty, layout::MUTEX_DATA)?;
        let lists = mutex + d_off;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for head in layout::IDLE_SET_HEADS {
            let (h_off, h_ty) = l.opt(lists_ty, head)?;
            let mut cur = r.thin_pointer(h_ty, lists + h_off).ok()?;
            while let Some((entry, Some(entry_ty))) = cur {
                if entry == 0 || out.len() >= limit || !seen.insert(entry) {
                    break;
                }
                let (v_off, v_ty) = l.opt(entry_ty, layout::LIST_ENTRY_VALUE)?;
                // Down the std wrappers (`UnsafeCell`, `ManuallyDrop`, and in newer toolchains
                // `MaybeDangling`), whose member names vary, to the join handle.
                let (mut off, mut t) = (v_off, v_ty);
                for _ in 0..6 {
                    if r.type_name(t).starts_with(layout::JOIN_HANDLE_TYPE) {
                        break;
                    }
                    let &(_, o, mt) = r.members(t).first()?;
                    off += o;
                    t = r.strip(mt);
                }
                out.push((entry + off, t));
                cur = l
                    .opt(entry_ty, layout::LIST_ENTRY_NEXT)
                    .and_then(|(x_off, x_ty)| r.thin_pointer(x_ty, entry + x_off).ok().flatten());
            }
        }
        Some((length, out))
    }

    /// The file, line and column of the `core::panic::Location` at `addr` (where a task of a
    /// `tokio_unstable` build was spawned). Memory is untrusted: a file name that is not
    /// short UTF-8 gives `None`.
    pub fn location(&self, addr: u64) -> Option<(String, u32, u32)> {
        let (file, line, col) = self.types.location?;
        let r = self.r;
        let ptr = r.pointer(addr.checked_add(file)?).ok()?;
        let len = r.u64(addr.checked_add(file)?.checked_add(8)?).ok()?;
        if ptr == 0 || len == 0 || len > 4096 {
            return None;
        }
        let mut name = vec![0u8; len as usize];
        r.bytes(ptr, &mut name).ok()?;
        let line = r.uint(addr.checked_add(line)?, 4).ok()? as u32;
        let col = r.uint(addr.checked_add(col)?, 4).ok()? as u32;
        Some((String::from_utf8(name).ok()?, line, col))
    }

    /// The id of the task whose header is at `header` (for a `JoinHandle`'s raw task).
    pub fn task_id(&self, header: u64) -> Result<u64> {
        let r = self.r;
        let vtable = r.pointer(header + self.types.layout.header_vtable)?;
        r.u64(header.wrapping_add(r.u64(vtable + self.types.layout.vtable_id_offset)?))
    }

    /// The future a tokio wrapper future drives, when `ty` is one whose own frame says
    /// nothing (`RunUntil`, the future of `LocalSet::block_on`/`run_until`): (offset, type).
    pub fn inner_future(&self, ty: u64) -> Option<(u64, u64)> {
        let r = self.r;
        if !r.type_name(ty).starts_with(layout::RUN_UNTIL_TYPE) {
            return None;
        }
        self.types
            .layout
            .resolver(r)
            .opt(ty, layout::RUN_UNTIL_FUTURE)
    }

    /// True for a join branch type (`MaybeDone` of tokio's `join!`/`try_join!`, or of the
    /// futures crate's `join!`/`join_all`): variants `Future`, `Done`, `Gone`.
    pub fn is_maybe_done(&self, generic: &str) -> bool {
        matches!(
            generic,
            "tokio::future::maybe_done::MaybeDone"
                | "futures_util::future::maybe_done::MaybeDone"
                | "futures_util::future::try_maybe_done::TryMaybeDone"
        )
    }

    /// The state of a `MaybeDone` join branch: `Future { future }` (1.54: a pin-projected
    /// field; the variant's first member), `Done`, or `Gone` (`None`).
    pub fn maybe_done(&self, addr: u64, ty: u64) -> Option<Branch> {
        let r = self.r;
        let v = r.variant(ty, addr).ok()??;
        if v.name.starts_with("Future") {
            let &(_, off, t) = r.members(v.ty).first()?;
            return Some(Branch::Pending(addr + v.offset + off, t));
        }
        if v.name.starts_with("Done") {
            // The finished branch's future type is MaybeDone's generic argument.
            let name = r.type_name(ty);
            let inner = name
                .find('<')
                .map(|i| &name[i + 1..name.len().saturating_sub(1)])
                .unwrap_or(name);
            return Some(Branch::Done(inner.to_string()));
        }
        None
    }

    /// What the leaf future `ty` at `addr` waits on, if it is one of tokio's. `now` is the
    /// monotonic clock of a live target (a timer's time left).
    pub fn leaf(&self, addr: u64, ty: u64, name: &str, now: Option<f64>) -> Option<Leaf> {
        let r = self.r;
        let leaf = |wait: Wait| {
            Some(Leaf {
                wait,
                awaits: None,
                header: None,
                stale: false,
            })
        };
        match leaf_kind(name)? {
            LeafKind::Sleep => {
                // The deadline's chain differs per version (see `layout::SLEEP_DEADLINE`).
                let deadline = self.types.sleep_deadline.and_then(|(sleep, s_off, n_off)| {
                    if r.strip(ty) != sleep && r.type_name(ty) != r.type_name(sleep) {
                        return None;
                    }
                    let s = r.u64(addr + s_off).ok()?;
                    let ns = r.uint(addr + n_off, 4).ok()?;
                    Some(s.saturating_mul(1000).saturating_add(ns / 1_000_000))
                });
                let now_ms = now.map(|n| (n * 1000.0) as u64);
                let (timer, stale) = match (deadline, now_ms) {
                    (None, _) => (None, false),
                    (Some(d), Some(now)) if d >= now => (Some(Timer::LeftMs(d - now)), false),
                    (Some(d), Some(now)) => (
                        Some(Timer::PassedMs(now - d)),
                        (now - d) as f64 >= STALE_TIMER_SECS * 1000.0,
                    ),
                    (Some(d), None) => (Some(Timer::AtMs(d)), false),
                };
                let mut found = leaf(Wait {
                    timer,
                    ..Wait::new(WaitOn::Timer)
                })?;
                found.stale = stale;
                Some(found)
            }
            LeafKind::JoinHandle => {
                let header = r
                    .member_deep(ty, "raw", 2)
                    .and_then(|(off, t)| r.thin_pointer(t, addr + off).ok().flatten())
                    .and_then(|(p, _)| (p != 0).then_some(p));
                match header.and_then(|p| Some((p, self.task_id(p).ok()?))) {
                    Some((header, id)) => Some(Leaf {
                        wait: Wait::task(id),
                        awaits: Some(id),
                        header: Some(header),
                        stale: false,
                    }),
                    None => leaf(Wait::new(WaitOn::Task)),
                }
            }
            LeafKind::Oneshot => leaf(Wait::new(WaitOn::OneshotReceive)),
            LeafKind::Notified => leaf(Wait::new(WaitOn::Notify)),
            LeafKind::Acquire => leaf(Wait::new(WaitOn::Acquire)),
            LeafKind::Mpsc => leaf(Wait::new(WaitOn::MpscReceive)),
            LeafKind::Broadcast => leaf(Wait::new(WaitOn::BroadcastReceive)),
            LeafKind::Io => leaf(Wait::new(WaitOn::Io)),
        }
    }
}

/// The tokio futures and resources that end a walk: what a task waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// `time::Sleep`.
    Sleep,
    /// A `JoinHandle` (an edge to another task).
    JoinHandle,
    /// A `oneshot::Receiver`.
    Oneshot,
    /// `Notify::notified()`.
    Notified,
    /// A semaphore permit (and so every mutex and rwlock lock).
    Acquire,
    /// An mpsc receive (`recv()`'s `poll_fn`, or a receiver a hand-written future polls).
    Mpsc,
    /// A broadcast receive (`broadcast::Receiver::recv`'s `Recv`).
    Broadcast,
    /// Socket or I/O readiness (`tokio::net` types, `tokio::io::util` futures, `Readiness`).
    Io,
}

/// The kind of tokio leaf the type `name` is, if it is one.
pub fn leaf_kind(name: &str) -> Option<LeafKind> {
    let generic = name.split('<').next().unwrap_or(name);
    Some(match generic {
        "tokio::time::sleep::Sleep" => LeafKind::Sleep,
        "tokio::runtime::task::join::JoinHandle" => LeafKind::JoinHandle,
        "tokio::sync::oneshot::Receiver" => LeafKind::Oneshot,
        "tokio::sync::broadcast::Recv" => LeafKind::Broadcast,
        "tokio::sync::notify::Notified" => LeafKind::Notified,
        "tokio::sync::batch_semaphore::Acquire" => LeafKind::Acquire,
        "tokio::runtime::io::scheduled_io::Readiness" => LeafKind::Io,
        "tokio::sync::mpsc::bounded::Receiver"
        | "tokio::sync::mpsc::unbounded::UnboundedReceiver" => LeafKind::Mpsc,
        // `core::future::poll_fn` (tokio ≥ 1.40-ish) or tokio's own copy (1.38).
        g if g.ends_with("::poll_fn::PollFn") && name.contains("tokio::sync::mpsc") => {
            LeafKind::Mpsc
        }
        g if g.starts_with("tokio::io::util::") || g.starts_with("tokio::net::") => LeafKind::Io,
        _ => return None,
    })
}

/// The 8-byte words of `m`, with their addresses (`m.addr` is 8-aligned).
fn words<'a>(m: &crate::process::MemoryRange<'a>) -> impl Iterator<Item = (u64, u64)> + 'a {
    let base = m.addr;
    m.bytes.chunks_exact(8).enumerate().map(move |(i, w)| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        (base + i as u64 * 8, u64::from_le_bytes(word))
    })
}
