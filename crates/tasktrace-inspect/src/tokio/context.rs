//! Which runtimes a target runs, and what each thread does for them: tokio's `CONTEXT`
//! thread-local on every thread (`fs_base − roundup(PT_TLS memsz, align) + offset`) →
//! `current.handle` → the scheduler's handle; a worker's index and local run queue.

use super::{layout, Tokio};
use crate::error::{Error, Result};

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

/// Which scheduler a runtime handle belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `multi_thread::Handle`.
    MultiThread,
    /// `current_thread::Handle`.
    CurrentThread,
}

impl Tokio<'_, '_> {
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
                c.task_id = self.r.option_u64(base + i_off, i_ty);
            }
            out.push(c);
        }
        Ok(out)
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
            return Err(Error::UnsupportedLayout(
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
            .r
            .arc_data(addr + kind.offset + a0, arc_ty)?
            .map(|(addr, ty)| Runtime { addr, ty, flavor }))
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

    /// The index of the worker whose `multi_thread::worker::Context` is `ctx`.
    pub fn worker_index(&self, ctx: &SchedulerContext) -> Option<u32> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (w_off, w_ty) = l.opt(ctx.ty, layout::WORKER_CTX_WORKER)?;
        let (worker, worker_ty) = self.r.arc_data(ctx.addr + w_off, w_ty).ok()??;
        let (i_off, i_ty) = l.opt(worker_ty, layout::WORKER_INDEX)?;
        self.r.int(worker + i_off, i_ty).map(|i| i as u32)
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
        let (inner, inner_ty) = self.r.arc_data(remote + q_off, q_ty).ok()??;
        let (h_off, h_ty) = l.opt(inner_ty, layout::QUEUE_HEAD)?;
        let (t_off, t_ty) = l.opt(inner_ty, layout::QUEUE_TAIL)?;
        let head = self.r.int(inner + h_off, h_ty)?;
        let tail = self.r.int(inner + t_off, t_ty)?;
        // `head` packs (steal, real) halves; the length counts from the real head.
        let half = r.type_size(t_ty).clamp(1, 4) * 8;
        let mask = (1u64 << half) - 1;
        Some(tail.wrapping_sub(head & mask) & mask)
    }

    /// The tick of the scheduler whose context is `ctx` (a worker's `Core::tick`, or a
    /// current-thread runtime's): one per turn of its run loop, each turn taking one task.
    /// `None` when its core is not in place (a worker between turns, or inside
    /// `block_in_place`, whose core another thread took).
    pub fn scheduler_tick(&self, ctx: &SchedulerContext) -> Option<u64> {
        self.core_int(ctx, layout::CORE_TICK)
    }

    /// Tasks in the run queue of a current_thread scheduler (`current_thread::Context` at
    /// `ctx`), when its core is in place.
    pub fn current_thread_queue_len(&self, ctx: &SchedulerContext) -> Option<u64> {
        self.core_int(ctx, layout::CT_CORE_QUEUE_LEN)
    }

    /// The integer at `path` in the `Core` of the scheduler context `ctx`, when its core is
    /// in place (`core: RefCell<Option<Box<Core>>>`).
    fn core_int(&self, ctx: &SchedulerContext, path: &[&str]) -> Option<u64> {
        let r = self.r;
        let l = self.types.layout.resolver(r);
        let (c_off, c_ty) = l.opt(ctx.ty, layout::CT_CTX_CORE)?;
        let (core, core_ty) = r.thin_pointer(c_ty, ctx.addr + c_off).ok()??;
        if core == 0 {
            return None;
        }
        let (off, ty) = l.opt(core_ty?, path)?;
        self.r.int(core + off, ty)
    }
}
