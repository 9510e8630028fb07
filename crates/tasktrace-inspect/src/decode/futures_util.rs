//! futures-util's combinators that hold many futures: `FuturesUnordered` (and the
//! `FuturesOrdered`, `buffer_unordered`, `for_each_concurrent` built on it), `Shared`, `join_all`.
//! Each is a frame over the futures it polls (the first [`MAX_UNORDERED`]).

use super::Decoder;
use crate::type_names::clean_type;
use std::collections::HashSet;
use tasktrace_model::{Frame, FrameKind, Node};

/// Most children listed of one `FuturesUnordered` / `join_all`.
pub(super) const MAX_UNORDERED: usize = 1024;

/// `FuturesOrdered`'s element wrapper: `data` is the future.
pub(super) const ORDER_WRAPPER: &str = "futures_util::stream::futures_ordered::OrderWrapper";

pub(super) const FUTURES_UNORDERED: &str =
    "futures_util::stream::futures_unordered::FuturesUnordered";

pub(super) const SHARED: &str = "futures_util::future::future::shared::Shared";

pub(super) const JOIN_ALL: &str = "futures_util::future::join_all::JoinAll";

impl Decoder<'_, '_, '_> {
    /// A `FuturesUnordered`: one child per future in its list of all tasks (`head_all`, then
    /// each task's `next_all`), whose `future: Option<Fut>` is `Some`. The in-process capture
    /// cannot see these: they are polled with the set's own wakers.
    pub(super) fn unordered(&mut self, addr: u64, ty: u64, name: &str, depth: usize) -> Node {
        let r = self.r;
        let mut node = Node::new(Frame::new(clean_type(name), None).with_kind(FrameKind::Fn));
        let Some((h_off, h_ty)) = r.member(ty, "head_all") else {
            return node;
        };
        let mut cur = r.thin_pointer(h_ty, addr + h_off).ok().flatten();
        let mut seen = HashSet::new();
        let mut count = 0usize;
        while let Some((task, Some(task_ty))) = cur {
            if task == 0 || !seen.insert(task) || seen.len() > MAX_UNORDERED {
                break;
            }
            if let Some((f_off, f_ty)) = r.member(task_ty, "future") {
                if let Some((e_off, opt)) = r.find_enum(f_ty) {
                    let at = task + f_off + e_off;
                    if let Ok(Some(v)) = r.variant(opt, at) {
                        if v.name == "Some" {
                            if let Some((o, t)) = r.member(v.ty, "__0") {
                                count += 1;
                                let children = self.decode(at + v.offset + o, t, depth + 1);
                                node.children.extend(children);
                            }
                        }
                    }
                }
            }
            cur = r
                .member(task_ty, "next_all")
                .and_then(|(n_off, n_ty)| r.thin_pointer(n_ty, task + n_off).ok().flatten());
        }
        node.frame.note = Some(format!(
            "{count} future{}",
            if count == 1 { "" } else { "s" }
        ));
        node
    }

    /// A `futures` `Shared`: the one future all its clones drive (shown under each holder),
    /// or that its output is ready.
    pub(super) fn shared(&mut self, addr: u64, ty: u64, name: &str, depth: usize) -> Node {
        let r = self.r;
        let mut node = Node::new(Frame::new(clean_type(name), None).with_kind(FrameKind::Fn));
        // `inner: Option<Arc<Inner<Fut>>>`: `None` once this clone got the output.
        let arc = r.member(ty, "inner").and_then(|(o_off, o_ty)| {
            let v = r.variant(o_ty, addr + o_off).ok()??;
            let (a_off, a_ty) = r.member(v.ty, "__0")?;
            Some((addr + o_off + v.offset + a_off, a_ty))
        });
        let Some((arc, arc_ty)) = arc else {
            node.frame.note = Some("output taken".into());
            return node;
        };
        let holders = r
            .thin_pointer(arc_ty, arc)
            .ok()
            .flatten()
            .and_then(|(p, t)| {
                let (s_off, _) = r.member_deep(t?, "strong", 1)?;
                r.u64(p + s_off).ok()
            });
        let state = self
            .r
            .arc_data(arc, arc_ty)
            .ok()
            .flatten()
            .and_then(|(inner, t)| {
                let (f_off, f_ty) = r.member_deep(t, "future_or_output", 1)?;
                let (e_off, e_ty) = r.find_enum(f_ty)?;
                let at = inner + f_off + e_off;
                let v = r.variant(e_ty, at).ok()??;
                Some((v.name.clone(), at + v.offset, v.ty))
            });
        match state {
            Some((variant, at, v_ty)) if variant == "Future" => {
                if let Some((o, t)) = r.member(v_ty, "__0") {
                    node.children = self.decode(at + o, t, depth + 1);
                }
                node.frame.note = holders.map(|n| format!("shared by {n} holders"));
            }
            Some(_) => node.frame.note = Some("output ready".into()),
            None => node.frame.note = Some("its state could not be read".into()),
        }
        node
    }

    /// A `join_all`: `kind` is `Small { elems: Pin<Box<[MaybeDone<F>]>> }` (one child per
    /// element: done ones completed) or `Big { fut: Collect<FuturesOrdered<F>, _> }`.
    pub(super) fn join_all(
        &mut self,
        addr: u64,
        ty: u64,
        name: &str,
        depth: usize,
    ) -> Option<Node> {
        let r = self.r;
        let (k_off, k_ty) = r.member(ty, "kind")?;
        let v = r.variant(k_ty, addr + k_off).ok()??;
        let base = addr + k_off + v.offset;
        let mut node = Node::new(Frame::new(clean_type(name), None).with_kind(FrameKind::Fn));
        if let Some((e_off, e_ty)) = r.member(v.ty, "elems") {
            // Pin<Box<[T]>>: down to the fat pointer's `data_ptr` / `length`.
            let (mut off, mut t) = (e_off, e_ty);
            for _ in 0..4 {
                if r.member(t, "data_ptr").is_some() {
                    break;
                }
                let ms = r.members(t);
                let &(_, o, mt) = ms.first()?;
                off += o;
                t = mt;
            }
            let (p_off, p_ty) = r.member(t, "data_ptr")?;
            let (n_off, _) = r.member(t, "length")?;
            let data = r.pointer(base + off + p_off).ok()?;
            let len = r.u64(base + off + n_off).ok()?.min(MAX_UNORDERED as u64);
            let elem = r.pointee(p_ty)?;
            let size = r.type_size(elem);
            for i in 0..len {
                let children = self.decode(data + i * size, elem, depth + 1);
                node.children.extend(children);
            }
        } else if let Some((f_off, f_ty)) = r.member(v.ty, "fut") {
            // Collect { stream: FuturesOrdered { in_progress_queue: FuturesUnordered, .. }, .. }
            let (s_off, s_ty) = r.member(f_ty, "stream")?;
            let (q_off, q_ty) = r.member(s_ty, "in_progress_queue")?;
            let at = base + f_off + s_off + q_off;
            let inner = self.unordered(at, r.strip(q_ty), r.type_name(q_ty), depth + 1);
            node.children = inner.children;
        } else {
            return None;
        }
        Some(node)
    }
}
