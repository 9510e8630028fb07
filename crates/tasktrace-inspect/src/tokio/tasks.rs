//! The tasks of a runtime: its owned lists (`shared.owned.list.lists[i]` → each task's
//! `Trailer.owned.next`), the lists of `LocalSet`s and `JoinSet`s, blocking tasks found through
//! their join handles, and, when the lists are cut short (a truncated core), task headers found
//! by scanning memory. Each task's root future is the `Running` variant of its cell's `Stage`.

use super::layout::state::{
    CANCELLED, COMPLETE, JOIN_INTEREST, NOTIFIED, OWNED_LIST_REFS, REF_COUNT_SHIFT, RUNNING,
};
use super::{layout, Runtime, Tokio};
use crate::error::{Error, Result, TaskTypeMissing};
use std::collections::HashSet;
use std::sync::Arc;

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
    /// Aborted, to be cancelled at its next poll.
    pub cancelled: bool,
    /// Its `JoinHandle` exists.
    pub join_interest: bool,
    /// Its reference count (the state word's bits above the flags).
    pub refs: u64,
    /// Found in an owned list (a runtime's or a LocalSet's), which holds a reference to it;
    /// false for a task found otherwise (a blocking task through its join handle, a header
    /// found by scanning memory).
    pub listed: bool,
    /// The root future: (address, type), when its stage is `Running`.
    pub future: Option<(u64, u64)>,
    /// Why the future could not be located.
    pub error: Option<String>,
    /// Address of the `core::panic::Location` it was spawned at (`tokio_unstable` builds).
    pub spawned_at: Option<u64>,
}

impl RawTask {
    /// How many references to this task are held beyond the ones its owned list and its
    /// `JoinHandle` account for: its wakers (every `Waker` of a tokio task is a counted
    /// reference; the one a poll borrows is not, but no poll is running) and its
    /// `AbortHandle`s, which tokio counts alike. Known only for a task found in an owned list,
    /// idle (not running, not notified — a `Notified` in a run queue holds one too — not
    /// complete, not cancelled) with its future in place; `None` otherwise. `Some(0)`: no
    /// waker for it exists, and nothing can wake it. A reference held mid-transition (a join
    /// handle being dropped clears `JOIN_INTEREST` before it lets go of its reference) only
    /// makes this larger, never zero by mistake.
    pub fn wakers(&self) -> Option<u64> {
        if !self.listed
            || self.running
            || self.notified
            || self.complete
            || self.cancelled
            || self.future.is_none()
        {
            return None;
        }
        self.refs
            .checked_sub(OWNED_LIST_REFS + u64::from(self.join_interest))
    }
}

/// The `Stage` enum of one future type's task cells, resolved once for all its tasks.
#[derive(Debug)]
pub(super) struct Stage {
    /// Offset of the `Stage` in the cell.
    offset: u64,
    /// Its variants.
    table: crate::debuginfo::VariantTable,
    /// The `Running` variant (index in the table) and where its future is: (offset from the
    /// `Stage`, type).
    running: Option<(usize, u64, u64)>,
}

/// Deepest await chain searched from a `block_on` root for a `LocalSet`'s `RunUntil`.
const MAX_RUN_UNTIL_DEPTH: usize = 16;

/// The 8-byte words of `m`, with their addresses (`m.addr` is 8-aligned).
fn words<'a>(m: &crate::process::MemoryRange<'a>) -> impl Iterator<Item = (u64, u64)> + 'a {
    let base = m.addr;
    m.bytes.chunks_exact(8).enumerate().map(move |(i, w)| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        (base + i as u64 * 8, u64::from_le_bytes(word))
    })
}

impl Tokio<'_, '_> {
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
                out.push(RawTask {
                    listed: true,
                    ..task
                });
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
            cancelled: state & CANCELLED != 0,
            join_interest: state & JOIN_INTEREST != 0,
            refs: state >> REF_COUNT_SHIFT,
            listed: false,
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
            let refs = r.u64(header.wrapping_add(lay.header_state)).unwrap_or(0) >> REF_COUNT_SHIFT;
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
        let stage = stage.map_err(|why| Error::TaskType {
            poll,
            missing: TaskTypeMissing::Stage(why),
        })?;
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
            .ok_or(Error::TaskType {
                poll,
                missing: TaskTypeMissing::PollFunction,
            })?;
        let t = sp
            .template_types
            .iter()
            .find(|(n, _)| n == "T")
            .map(|(_, t)| *t)
            .ok_or_else(|| Error::TaskType {
                poll,
                missing: TaskTypeMissing::FutureParameter(sp.name.clone()),
            })?;
        let tname = r.type_name(t);
        let cell = *self.types.cells.get(tname).ok_or_else(|| Error::TaskType {
            poll,
            missing: TaskTypeMissing::CellType(tname.to_string()),
        })?;
        let l = self.types.layout.resolver(r);
        let (s_off, stage_ty) = l.one(cell, layout::CELL_STAGE)?;
        let (e_off, enum_ty) = r
            .find_enum(stage_ty)
            .ok_or_else(|| l.missing("CoreStage.stage (not an enum)"))?;
        Ok((s_off + e_off, enum_ty))
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
        if depth >= MAX_RUN_UNTIL_DEPTH || crate::type_names::async_env(name).is_none() {
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
                .r
                .arc_data(set + c_off, c_ty)?
                .ok_or_else(|| l.missing("LocalSet.context"))?;
            let (s_off, s_ty) = l.one(ctx_ty, layout::LOCAL_CONTEXT_SHARED)?;
            let (shared, shared_ty) = self
                .r
                .arc_data(ctx + s_off, s_ty)?
                .ok_or_else(|| l.missing("local::Context.shared"))?;
            let (h_off, h_ty) = l.one(shared_ty, layout::LOCAL_OWNED_HEAD)?;
            let head = match r.thin_pointer(h_ty, shared + h_off)? {
                Some((p, _)) => p,
                None => 0,
            };
            // A stale copy of a root future on the stack can lead through pointers that still
            // read to a "list" whose head is no task (seen: a head of 0x1): that is not this
            // thread's LocalSet, and the caller tries the next candidate.
            if head != 0 {
                self.task_at(head)?;
            }
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
        let length = self.r.int(addr + n_off, n_ty)?;
        let (a_off, a_ty) = l.opt(ty, layout::JOIN_SET_LISTS)?;
        let (mutex, mutex_ty) = self.r.arc_data(addr + a_off, a_ty).ok()??;
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
}
