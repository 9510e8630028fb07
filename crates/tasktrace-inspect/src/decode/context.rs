//! A task's context (issue 31), noted while its future is decoded: the `tokio::task_local!`
//! values in scope and the `tracing` spans its futures are `Instrumented` with.
//!
//! - A task-local: `KEY.scope(value, future)` is a `TaskLocalFuture`, which keeps the value in
//!   its `slot` whenever the task is not being polled (a poll swaps it into the thread-local
//!   and back). The key is named by its static (`local: &'static LocalKey<T>` points at it),
//!   whose symbol is in the executable's symbol table (`app::TRACE_ID`; a stripped executable
//!   has none, and the key is then not shown). The value is read with the values decoder,
//!   only when values are asked for (it may be a secret); the key alone otherwise.
//! - A span: `Instrumented { inner, span }`, whose `Span { inner: Option<Inner>, meta }` is
//!   enabled when `inner` is `Some`; its name and target are the `&'static str`s of its
//!   `&'static Metadata`. `Inner { id: Id, subscriber: Dispatch }` gives its id, kept when
//!   its dispatcher is the global one (`Dispatch { subscriber: Kind::Global(..) }`, what
//!   `set_global_default` stores): the program's own snapshot looks the id up there for the
//!   span's fields. The fields are not read here: they live in the subscriber
//!   (tracing-subscriber's `Registry` keeps them, when a layer formats them, as a `String` in
//!   a type-keyed map of each span's slot in a sharded slab): no layout to rely on.

use super::values::read_value;
use super::Decoder;
use crate::tokio::layout;
use tasktrace_model::{TaskContext, Value};

/// `tracing::instrument::Instrumented<T>` (generic name).
const INSTRUMENTED: &str = "tracing::instrument::Instrumented";
/// Most pieces of context noted for one task.
const MAX_CONTEXT: usize = 8;

impl Decoder<'_, '_, '_> {
    /// Notes the context the future of type `ty` (generic name `generic`) at `addr` gives its
    /// task, if it is a task-local's scope or an instrumented future.
    pub(super) fn note_context(&mut self, addr: u64, ty: u64, generic: &str) {
        let found = match generic {
            layout::TASK_LOCAL_FUTURE => self.task_local(addr, ty),
            INSTRUMENTED => self.span(addr, ty),
            _ => return,
        };
        if let Some(c) = found {
            if self.context.len() < MAX_CONTEXT && !self.context.contains(&c) {
                self.context.push(c);
            }
        }
    }

    /// The task-local a `TaskLocalFuture` at `addr` holds in scope; `None` when its slot is
    /// empty (its future has finished) or a step is missing.
    fn task_local(&self, addr: u64, ty: u64) -> Option<TaskContext> {
        let r = self.r;
        let l = self.tokio.layout().resolver(r);
        let (k_off, _) = l.opt(ty, layout::TASK_LOCAL_KEY)?;
        let key = self.tokio.task_local_key(r.pointer(addr + k_off).ok()?)?;
        let (s_off, s_ty) = l.opt(ty, layout::TASK_LOCAL_SLOT)?;
        let slot = addr + s_off;
        let some = r.variant(s_ty, slot).ok()??;
        if some.name != "Some" {
            return None;
        }
        let value = match (self.values, r.member(some.ty, "__0")) {
            (true, Some((v_off, v_ty))) => Some(read_value(r, slot + some.offset + v_off, v_ty, 0)),
            _ => None,
        };
        Some(TaskContext::TaskLocal { key, value })
    }

    /// The span an `Instrumented` at `addr` enters; `None` for a span no subscriber enabled.
    fn span(&self, addr: u64, ty: u64) -> Option<TaskContext> {
        let r = self.r;
        let (s_off, s_ty) = r.member(ty, "span")?;
        let span = addr + s_off;
        let (i_off, i_ty) = r.member(s_ty, "inner")?;
        let some = r.variant(i_ty, span + i_off).ok()??;
        if some.name != "Some" {
            return None;
        }
        let id = self.global_span_id(span + i_off + some.offset, some.ty);
        let (m_off, m_ty) = r.member(s_ty, "meta")?;
        let (meta, meta_ty) = r.thin_pointer(m_ty, span + m_off).ok()??;
        let meta_ty = r.strip(meta_ty?);
        if meta == 0 {
            return None;
        }
        let text = |field: &str| {
            let (off, t) = r.member(meta_ty, field)?;
            match read_value(r, meta + off, t, 0) {
                Value::Str { text, .. } => Some(text),
                _ => None,
            }
        };
        Some(TaskContext::Span {
            name: text("name")?,
            target: text("target")?,
            id,
            fields: None,
        })
    }

    /// The id of the span whose `Some(Inner { id, subscriber })` payload (type `some_ty`) is
    /// at `addr`, when its dispatcher is the global one: an id means something only in its
    /// own subscriber, and the global one is the subscriber the program's snapshot can find
    /// again (a scoped dispatcher is some thread's, for a while).
    fn global_span_id(&self, addr: u64, some_ty: u64) -> Option<u64> {
        let r = self.r;
        let (inner_off, inner_ty) = r.member(some_ty, "__0")?;
        let inner = addr + inner_off;
        let (d_off, d_ty) = r.member(inner_ty, "subscriber")?;
        let (k_off, k_ty) = r.member(d_ty, "subscriber")?;
        if r.variant(k_ty, inner + d_off + k_off).ok()??.name != "Global" {
            return None;
        }
        // `Id(NonZeroU64)`: eight bytes, never zero.
        let (id_off, id_ty) = r.member(inner_ty, "id")?;
        if r.type_size(id_ty) != 8 {
            return None;
        }
        r.u64(inner + id_off).ok().filter(|&id| id != 0)
    }
}
