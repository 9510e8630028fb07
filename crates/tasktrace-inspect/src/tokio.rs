//! Everything that depends on tokio's internals, in one place (multi-thread and
//! current-thread runtimes; tested with 1.54.1, checked by hand against 1.47.1 and 1.38.2,
//! whose member paths differ only where the lookups below already search by name). Fields are found by their DWARF member names, never by
//! hard-coded offsets; a missing one is reported as an unsupported layout naming the field
//! and the tokio version found in the debuginfo.
//!
//! Path: thread-local `CONTEXT` (`fs_base − roundup(PT_TLS memsz, align) + offset`) →
//! `current.handle` (`Option<scheduler::Handle>`) → `MultiThread`/`CurrentThread(Arc<Handle>)` →
//! `shared.owned.list.lists[i]` → `head` → each task's `Trailer.owned.next` (the trailer is at
//! `vtable.trailer_offset`, the id at `vtable.id_offset`). The future's type is the template
//! parameter `T` of the subprogram at `vtable.poll` (`raw::poll<T, S>`); the future itself is
//! the `Running` variant of `core.stage.stage` in `Cell<T, S>`.

use crate::error::{Error, Result};
use crate::value::Reader;
use std::collections::{HashMap, HashSet};

/// Most tasks read from one runtime (a bound on corrupt lists).
pub const MAX_TASKS: usize = 1_000_000;

/// Header state bits.
const RUNNING: u64 = 0b1;
const COMPLETE: u64 = 0b10;
const NOTIFIED: u64 = 0b100;

/// A join branch (`MaybeDone`).
pub enum Branch {
    /// Still running: the branch future's (address, type).
    Pending(u64, u64),
    /// Finished: the branch future's type name.
    Done(String),
}

/// What a recognised leaf future waits on.
pub struct Leaf {
    /// `"waiting on timer, 19.6s left"`, `"waiting on task 7"`, …
    pub note: String,
    /// The task awaited through a join handle.
    pub awaits: Option<u64>,
}

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
}

/// The runtime's layout as found in the debuginfo.
pub struct Tokio<'r, 'a> {
    r: &'r Reader<'a>,
    header_ty: u64,
    vtable_ty: u64,
    trailer_ty: u64,
    cells: HashMap<String, u64>,
}

fn version(r: &Reader<'_>) -> String {
    r.info
        .tokio_version
        .clone()
        .unwrap_or_else(|| "unknown version".to_string())
}

impl<'r, 'a> Tokio<'r, 'a> {
    /// Finds tokio's task types in the debuginfo.
    pub fn new(r: &'r Reader<'a>) -> Result<Self> {
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
        Ok(Tokio {
            r,
            header_ty,
            vtable_ty,
            trailer_ty,
            cells,
        })
    }

    fn layout(&self, what: &str) -> String {
        format!("tokio {}: {what}", version(self.r))
    }

    /// Address and type of the runtime's scheduler `Handle` (multi-thread or current-thread),
    /// from the first thread whose `CONTEXT` holds one.
    pub fn runtime(&self) -> Result<(u64, u64)> {
        let r = self.r;
        let ctx = &r.info.context_tls;
        let (off, ctx_ty) = ctx
            .iter()
            .find(|(_, t)| r.type_name(*t).contains("Storage<"))
            .or_else(|| ctx.first())
            .copied()
            .ok_or_else(|| {
                Error::NoRuntime(
                    "no `tokio::runtime::context::CONTEXT` thread-local in the debuginfo".into(),
                )
            })?;
        let (memsz, align) = r
            .info
            .tls
            .ok_or_else(|| Error::NoRuntime("the executable has no PT_TLS segment".into()))?;
        let block = memsz.div_ceil(align) * align;
        let (cur_off, cur_ty) = r.field(ctx_ty, "current", &self.layout("CONTEXT"))?;
        let (h_off, h_ty) = r.field(cur_ty, "handle", &self.layout("CONTEXT.current"))?;
        let (v_off, cell_ty) = r.field(h_ty, "value", &self.layout("CONTEXT.current.handle"))?;
        let (o_off, opt_ty) = r.find_enum(cell_ty).ok_or_else(|| {
            Error::UnsupportedLayout(self.layout("CONTEXT.current.handle is not an Option"))
        })?;
        for t in r.target.threads() {
            if t.fs_base < block {
                continue;
            }
            let addr = t.fs_base - block + off + cur_off + h_off + v_off + o_off;
            let Ok(Some(some)) = r.variant(opt_ty, addr) else {
                continue;
            };
            if some.name != "Some" {
                continue;
            }
            let Some((o0, handle_ty)) = r.member(some.ty, "__0") else {
                continue;
            };
            let haddr = addr + some.offset + o0;
            let Ok(Some(kind)) = r.variant(handle_ty, haddr) else {
                continue;
            };
            // Both schedulers keep their tasks in `shared.owned` (an `OwnedTasks`).
            if kind.name != "MultiThread" && kind.name != "CurrentThread" {
                continue;
            }
            let Some((a0, arc_ty)) = r.member(kind.ty, "__0") else {
                continue;
            };
            let Ok(Some((inner, Some(inner_ty)))) =
                r.thin_pointer(arc_ty, haddr + kind.offset + a0)
            else {
                continue;
            };
            let (d_off, d_ty) = r.field(inner_ty, "data", &self.layout("ArcInner"))?;
            return Ok((inner + d_off, d_ty));
        }
        Err(Error::NoRuntime(
            "no thread has a runtime handle in tokio's CONTEXT (has the runtime started?)".into(),
        ))
    }

    /// Every task in the runtime's owned lists.
    pub fn tasks(&self, handle: (u64, u64), limit: usize) -> Result<(Vec<RawTask>, Vec<String>)> {
        let r = self.r;
        let mut notes = Vec::new();
        let (l_off, lists_ty) = r.field(
            handle.1,
            "lists",
            &self.layout("multi_thread::Handle.shared.owned.list"),
        )?;
        let (p_off, p_ty) =
            r.field(lists_ty, "data_ptr", &self.layout("owned lists (Box<[_]>)"))?;
        let (n_off, _) = r.field(lists_ty, "length", &self.layout("owned lists (Box<[_]>)"))?;
        let base = handle.0 + l_off;
        let data = r.u64(base + p_off)?;
        let count = r.u64(base + n_off)?.min(1 << 16);
        let elem_ty = r
            .pointee(p_ty)
            .ok_or_else(|| Error::UnsupportedLayout(self.layout("owned lists: no element type")))?;
        let elem_size = r.type_size(elem_ty);
        let (head_off, head_ty) = r.field(elem_ty, "head", &self.layout("owned list shard"))?;

        let v = |name| r.field(self.vtable_ty, name, &self.layout("task Vtable"));
        let (poll_off, _) = v("poll")?;
        let (trailer_off_off, _) = v("trailer_offset")?;
        let (id_off_off, _) = v("id_offset")?;
        let (vt_off, _) = r.field(self.header_ty, "vtable", &self.layout("task Header"))?;
        let (st_off, _) = r.field(self.header_ty, "state", &self.layout("task Header"))?;
        let (owned_off, owned_ty) =
            r.field(self.trailer_ty, "owned", &self.layout("task Trailer"))?;
        let (next_off, _) = r.field(owned_ty, "next", &self.layout("task Trailer.owned"))?;

        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for i in 0..count {
            let shard = data + i * elem_size;
            let mut cur = match r.thin_pointer(head_ty, shard + head_off)? {
                Some((p, _)) => p,
                None => 0,
            };
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
                let vtable = r.u64(cur + vt_off)?;
                let state = r.u64(cur + st_off)?;
                let id = r.u64(cur + r.u64(vtable + id_off_off)?)?;
                let trailer = cur + r.u64(vtable + trailer_off_off)?;
                let poll = r.u64(vtable + poll_off)?;
                let mut task = RawTask {
                    header: cur,
                    id,
                    running: state & RUNNING != 0,
                    notified: state & NOTIFIED != 0,
                    complete: state & COMPLETE != 0,
                    future: None,
                    error: None,
                };
                match self.future_of(cur, poll) {
                    Ok(f) => task.future = f,
                    Err(e) => task.error = Some(e.to_string()),
                }
                out.push(task);
                cur = r.u64(trailer + owned_off + next_off)?;
            }
        }
        Ok((out, notes))
    }

    /// The root future of the task at `header`, whose vtable's poll is at `poll`.
    fn future_of(&self, header: u64, poll: u64) -> Result<Option<(u64, u64)>> {
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
            .cells
            .get(tname)
            .ok_or_else(|| Error::Other(format!("no task cell type for future `{tname}`")))?;
        let (c_off, core_ty) = r.field(cell, "core", &self.layout("task Cell"))?;
        let (s_off, stage_ty) = r.field(core_ty, "stage", &self.layout("task Core"))?;
        let (e_off, enum_ty) = r
            .find_enum(stage_ty)
            .ok_or_else(|| Error::UnsupportedLayout(self.layout("task stage is not an enum")))?;
        let addr = header + c_off + s_off + e_off;
        match r.variant(enum_ty, addr)? {
            Some(v) if v.name == "Running" => {
                let (f_off, f_ty) = r.member(v.ty, "__0").ok_or_else(|| {
                    Error::UnsupportedLayout(self.layout("Stage::Running has no field"))
                })?;
                Ok(Some((addr + v.offset + f_off, f_ty)))
            }
            _ => Ok(None),
        }
    }

    /// The id of the task whose header is at `header` (for a `JoinHandle`'s raw task).
    pub fn task_id(&self, header: u64) -> Result<u64> {
        let r = self.r;
        let (vt_off, _) = r.field(self.header_ty, "vtable", &self.layout("task Header"))?;
        let (id_off_off, _) = r.field(self.vtable_ty, "id_offset", &self.layout("task Vtable"))?;
        let vtable = r.u64(header + vt_off)?;
        r.u64(header + r.u64(vtable + id_off_off)?)
    }

    /// True for tokio's join branch type (`MaybeDone`).
    pub fn is_maybe_done(&self, generic: &str) -> bool {
        generic == "tokio::future::maybe_done::MaybeDone"
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
        let generic = name.split('<').next().unwrap_or(name);
        let note = |s: &str| {
            Some(Leaf {
                note: s.to_string(),
                awaits: None,
            })
        };
        match generic {
            "tokio::time::sleep::Sleep" => {
                // 1.53+: `deadline: Instant` (std `Instant { t: Timespec { tv_sec, tv_nsec } }`).
                let deadline = (|| {
                    let (d_off, d_ty) = r.member_deep(ty, "deadline", 3)?;
                    let sec = r.member_deep(d_ty, "tv_sec", 6)?;
                    let nsec = r.member_deep(d_ty, "tv_nsec", 6)?;
                    let s = r.u64(addr + d_off + sec.0).ok()?;
                    let ns = r.uint(addr + d_off + nsec.0, 4).ok()?;
                    Some(s as f64 + ns as f64 * 1e-9)
                })();
                let text = match (deadline, now) {
                    (None, _) => "waiting on timer".to_string(),
                    (Some(d), Some(now)) if d >= now => {
                        format!("waiting on timer, {:.1}s left", d - now)
                    }
                    (Some(d), Some(now)) => {
                        format!("waiting on timer, deadline passed {:.1}s ago", now - d)
                    }
                    (Some(d), None) => {
                        format!("waiting on timer, deadline at {d:.1}s (CLOCK_MONOTONIC)")
                    }
                };
                note(&text)
            }
            "tokio::runtime::task::join::JoinHandle" => {
                let id = r
                    .member_deep(ty, "raw", 2)
                    .and_then(|(off, t)| r.thin_pointer(t, addr + off).ok().flatten())
                    .and_then(|(p, _)| (p != 0).then_some(p))
                    .and_then(|p| self.task_id(p).ok());
                match id {
                    Some(id) => Some(Leaf {
                        note: format!("waiting on task {id}"),
                        awaits: Some(id),
                    }),
                    None => note("waiting on a task"),
                }
            }
            "tokio::sync::oneshot::Receiver" => note("waiting on oneshot channel"),
            "tokio::sync::notify::Notified" => note("waiting on Notify"),
            "tokio::sync::batch_semaphore::Acquire" => note("waiting on semaphore/mutex acquire"),
            "tokio::runtime::io::scheduled_io::Readiness" => note("waiting on I/O readiness"),
            // `core::future::poll_fn` (tokio ≥ 1.40-ish) or tokio's own copy (1.38).
            g if g.ends_with("::poll_fn::PollFn") && name.contains("tokio::sync::mpsc") => {
                note("waiting on mpsc channel")
            }
            _ if generic.starts_with("tokio::io::util::")
                || generic.starts_with("tokio::net::") =>
            {
                note("waiting on I/O readiness")
            }
            _ => None,
        }
    }
}
