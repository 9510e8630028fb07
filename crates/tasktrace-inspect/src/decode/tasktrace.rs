//! tasktrace's own wrappers: a task started with `tasktrace::spawn` is a
//! `tasktrace::traced::TaskFuture<F>`, a future wrapped by `tasktrace::traced` a
//! `tasktrace::traced::Traced<F>`; in both, `inner` is the future and `shared: TaskRef` points
//! at its registry slot (`tasktrace::shared::Shared`, its `identity` cell holding the
//! registry's task id). The frame says that id (`tasktrace task 7`), so a reader — `attach`,
//! or the in-process snapshot joining its tasks with the registry's — can tell which of the
//! registry's tasks the tokio task is.

use super::Decoder;
use tasktrace_model::{Frame, FrameKind, Node, Related};

/// The wrapper types (their generic names).
pub(super) const WRAPPERS: [&str; 2] =
    ["tasktrace::traced::TaskFuture", "tasktrace::traced::Traced"];

impl Decoder<'_, '_, '_> {
    /// A wrapper at `addr`: a frame noting its registry id, over the future it wraps.
    pub(super) fn traced(&mut self, addr: u64, ty: u64, name: &str, depth: usize) -> Node {
        let mut frame = Frame::new(super::clean_type(name), None).with_kind(FrameKind::Fn);
        if let Some(id) = self.registry_id(addr, ty) {
            frame.related.push(Related::Registered(id));
        }
        let mut node = Node::new(frame);
        if let Some((off, inner)) = self.r.member(ty, "inner") {
            node.children = self.decode(addr + off, inner, depth + 1);
        }
        node
    }

    /// `shared` → the slot → `identity.value.id`; `None` when any step is missing (another
    /// tasktrace version's layout) or the id is not one the registry hands out.
    fn registry_id(&self, addr: u64, ty: u64) -> Option<u64> {
        let r = self.r;
        let (off, task_ref) = r.member(ty, "shared")?;
        let (slot, shared) = r.thin_pointer(task_ref, addr + off).ok()??;
        let (id_off, cell) = r.member(shared?, "identity")?;
        let (v_off, identity) = r.member(cell, "value")?;
        let (i_off, _) = r.member(identity, "id")?;
        let id = r.uint(slot + id_off + v_off + i_off, 8).ok()?;
        (slot != 0 && id != 0 && id < tasktrace_model::TOKIO_ID_BASE).then_some(id)
    }
}
