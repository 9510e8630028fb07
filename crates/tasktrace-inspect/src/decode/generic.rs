//! Futures written by hand: the futures that a type no decoder knows owns and drives.
//!
//! hyper's dispatcher, tower's `Oneshot`, axum's route future, a `Fuse`, a user's own
//! `impl Future` struct: none is an async state machine, and each is only a wrapper around the
//! futures it polls. For such a type the walker searches what it owns and decodes what it finds
//! (state machines, known combinators, tokio leaves) as its children.
//!
//! What the search follows, and why:
//! - struct members, tuple and closure captures, the active variant of an enum (by its
//!   discriminant, niche-encoded too: [`Reader::variant`]), so `Option`'s `Some`;
//! - the elements of a `Vec<T>` (at most [`MAX_ELEMENTS`]: `select_all`'s futures);
//! - owning pointers: `Box<T>`, `&mut T` (a future borrowed by the one that polls it, as
//!   `select!` borrows its branches), `Pin<P>` of either, and `Box<dyn Future>` /
//!   `Box<dyn Stream>` (and `Box<dyn http_body::Body>`) through the vtable to the concrete type.
//!
//! What it does not follow: shared ownership (`Arc`, `Rc`, `Weak`, `&T`) and raw pointers. A
//! future behind them is owned by someone else too, and may be driven by another task; a
//! library whose structure needs them gets a decoder of its own (`decode/hyper.rs`, …).
//!
//! Cost: whether a type can hold a future at all is decided once per type, from the DWARF
//! alone ([`Shapes`], shared by every task of a read), so a search never reads a member that
//! cannot lead to a future (the common case: buffers, headers, counters, `Arc`s). At most
//! [`MAX_MEMBERS`] members of one type are looked at; depth, node count and the
//! no-address-twice rule of the walker bound the rest.

use super::Decoder;
use crate::debuginfo::Kind;
use crate::value::Reader;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tasktrace_model::{Frame, FrameKind, Node};

/// Most members of one type the search looks at: a budget per type.
const MAX_MEMBERS: usize = 128;

/// Most elements of one `Vec` searched.
const MAX_ELEMENTS: u64 = 1024;

/// Deepest type nesting the shape analysis follows.
const MAX_SHAPE_DEPTH: usize = 48;

/// What a type is to the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A future a decoder knows by name (state machine, combinator, tokio leaf): decoded.
    Known,
    /// `Box<dyn Future>`, `&mut dyn Stream`, …: decoded through the vtable.
    DynFuture,
    /// `Box<T>` or `&mut T`: the pointee is searched.
    Owned(u64),
    /// `Vec<T>`: each element is searched.
    Elements(u64),
    /// A struct, tuple, closure or enum: its members (or active variant) are searched.
    Fields,
    /// Nothing a future can be found in: plain data, shared or raw pointers.
    Nothing,
}

/// Which types can hold a future, decided once per type from its DWARF: shared by the reads
/// of one process ([`crate::Prepared`]), as it depends on the debuginfo alone.
#[derive(Clone, Default)]
pub struct ShapeCache(Arc<Mutex<HashMap<u64, bool>>>);

/// What the decoding of one read shares between its tasks.
#[derive(Default)]
pub struct Shapes {
    holds: ShapeCache,
    /// The live target's sockets, for the notes of I/O leaves (read once per read).
    pub(super) sockets: crate::sockets::Sockets,
}

impl Shapes {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decided types from `cache`, and new decisions added to it.
    pub fn with_cache(cache: &ShapeCache) -> Self {
        Shapes {
            holds: cache.clone(),
            sockets: Default::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<u64, bool>> {
        self.holds.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Types searched through without a frame of their own: the standard library's wrappers
/// (`Option`, `Pin`, `ManuallyDrop`, `UnsafeCell`, `poll_fn`'s `PollFn`), tuples and closures.
fn is_wrapper(name: &str) -> bool {
    name.starts_with("core::")
        || name.starts_with("alloc::")
        || name.starts_with("std::")
        || name.starts_with('(')
        || name.starts_with('&')
        || name.contains("{closure_env#")
}

/// Shared ownership and markers: never searched.
fn is_shared(name: &str) -> bool {
    const SHARED: &[&str] = &[
        "alloc::sync::Arc<",
        "alloc::sync::Weak<",
        "alloc::rc::Rc<",
        "alloc::rc::Weak<",
        "core::marker::PhantomData<",
        "core::ptr::non_null::NonNull<",
        "core::cell::Ref<",
    ];
    SHARED.iter().any(|p| name.starts_with(p))
}

/// An owning pointer's name (thin `Box`/`&mut` pointers, or the fat pointer struct of one).
fn is_owning_pointer(name: &str) -> bool {
    name.starts_with("alloc::boxed::Box<") || name.starts_with("&mut ")
}

/// A trait object that is a future, or something polled like one: a stream, an HTTP body
/// (a streaming response's body is polled by the task that sends it).
/// Only the trait of the object itself counts: `Box<dyn CloneService<…, Future = Pin<Box<dyn
/// Future>>>>` is a service, whatever its associated types are.
fn is_dyn_future(name: &str) -> bool {
    const POLLED: &[&str] = &[
        "core::future::future::Future",
        "futures_core::stream::Stream",
        "futures_core::future::Future",
        "http_body::Body",
    ];
    name.find("dyn ")
        .map(|i| &name[i + "dyn ".len()..])
        .is_some_and(|t| POLLED.iter().any(|p| t.starts_with(p)))
}

impl Decoder<'_, '_, '_> {
    fn class(&self, ty: u64) -> Class {
        let r = self.r;
        let ty = r.strip(ty);
        let Some(d) = r.info.die(ty) else {
            return Class::Nothing;
        };
        let name = d.name.as_str();
        match d.kind {
            Kind::Pointer if is_owning_pointer(name) => d.ty.map_or(Class::Nothing, Class::Owned),
            Kind::Struct | Kind::Union => {
                if self.is_known(ty, name) {
                    Class::Known
                } else if is_shared(name) {
                    Class::Nothing
                } else if name.starts_with("alloc::vec::Vec<") {
                    r.type_param(ty, "T")
                        .map_or(Class::Nothing, Class::Elements)
                } else if r.member(ty, "vtable").is_some() && r.member(ty, "pointer").is_some() {
                    if is_owning_pointer(name) && is_dyn_future(name) {
                        Class::DynFuture
                    } else {
                        Class::Nothing
                    }
                } else {
                    Class::Fields
                }
            }
            _ => Class::Nothing,
        }
    }

    /// Whether a value of `ty` can own a future the search would find (cached per type).
    fn holds(&self, ty: u64) -> bool {
        self.holds_at(self.r.strip(ty), 0)
    }

    fn holds_at(&self, ty: u64, depth: usize) -> bool {
        if let Some(&known) = self.shapes.known().get(&ty) {
            return known;
        }
        if depth > MAX_SHAPE_DEPTH {
            return false;
        }
        // A type met again while it is being decided (a recursive type) holds nothing
        // through that path.
        self.shapes.known().insert(ty, false);
        let r = self.r;
        let holds = match self.class(ty) {
            Class::Known | Class::DynFuture => true,
            Class::Owned(p) | Class::Elements(p) => self.holds_at(r.strip(p), depth + 1),
            Class::Fields => r
                .members(ty)
                .into_iter()
                .map(|(_, _, t)| t)
                .chain(r.variant_types(ty))
                .take(MAX_MEMBERS)
                .any(|t| self.holds_at(r.strip(t), depth + 1)),
            Class::Nothing => false,
        };
        self.shapes.known().insert(ty, holds);
        holds
    }

    /// The hand-written future `ty` at `addr` as a frame over the futures it owns; `None` if
    /// it owns none (right now: an enum's active variant may hold none).
    pub(super) fn hand_written(&mut self, addr: u64, ty: u64, depth: usize) -> Option<Node> {
        let name = self.r.type_name(ty);
        // Task-local scopes and instrumented futures are hand-written futures: what they say
        // about the task is noted on the way down.
        self.note_context(addr, ty, name.split('<').next().unwrap_or(name));
        let mut children = self.owned_futures(addr, ty, depth);
        self.drop_stale_timers(&mut children);
        if children.is_empty() {
            return None;
        }
        let mut node =
            Node::new(Frame::new(super::clean_type(name), None).with_kind(FrameKind::Fn));
        node.children = children;
        Some(node)
    }

    /// Leaves out the timers among `children` that expired long ago when a sibling still
    /// waits: a stream's timeout (`chunks_timeout`, a keep-alive timer) its owner no longer
    /// polls. A timer that is all a future waits on stays (a runtime whose timers stopped
    /// firing is worth seeing).
    fn drop_stale_timers(&self, children: &mut Vec<Node>) {
        let stale = |n: &Node| n.children.is_empty() && self.stale_timers.contains(&n.frame);
        if children.iter().any(|n| !stale(n)) {
            children.retain(|n| !stale(n));
        }
    }

    /// The futures owned by the value `ty` at `addr`: searched through its members, or its
    /// active variant's.
    pub(super) fn owned_futures(&mut self, addr: u64, ty: u64, depth: usize) -> Vec<Node> {
        let r: &Reader = self.r;
        let ty = r.strip(ty);
        let mut out = Vec::new();
        if !self.within_budget(depth) || !self.holds(ty) {
            return out;
        }
        let (base, fields_of) = match r.variant(ty, addr) {
            Ok(Some(v)) => (addr + v.offset, v.ty),
            Ok(None) if r.variant_types(ty).is_empty() => (addr, ty),
            // An enum whose discriminant says no known variant: nothing to trust.
            _ => return out,
        };
        for (_, off, t) in r.members(fields_of).into_iter().take(MAX_MEMBERS) {
            if self.holds(t) {
                out.extend(self.owned_member(base + off, t, depth + 1));
            }
        }
        out
    }

    /// What one member (or a pointee) that can hold futures holds.
    fn owned_member(&mut self, addr: u64, ty: u64, depth: usize) -> Vec<Node> {
        if !self.within_budget(depth) {
            return Vec::new();
        }
        let ty = self.r.strip(ty);
        match self.class(ty) {
            // A state machine never polled is owned, not driven: nothing waits in it.
            Class::Known | Class::DynFuture => {
                let mut found = self.decode(addr, ty, depth);
                found.retain(|n| n.frame.note.as_deref() != Some(super::NOT_YET_POLLED));
                found
            }
            Class::Owned(pointee) => match self.r.pointer(addr) {
                Ok(p) if p != 0 => self.owned_member(p, pointee, depth + 1),
                _ => Vec::new(),
            },
            Class::Elements(elem) => {
                let r = self.r;
                let size = r.type_size(elem);
                let (Some((p_off, _)), Some((n_off, _))) =
                    (r.member_deep(ty, "ptr", 3), r.member(ty, "len"))
                else {
                    return Vec::new();
                };
                let (Ok(data), Ok(len)) = (r.pointer(addr + p_off), r.u64(addr + n_off)) else {
                    return Vec::new();
                };
                let mut out = Vec::new();
                if size == 0 || data == 0 {
                    return out;
                }
                for i in 0..len.min(MAX_ELEMENTS) {
                    out.extend(self.owned_member(data + i * size, elem, depth + 1));
                }
                out
            }
            Class::Fields if is_wrapper(self.r.type_name(ty)) => {
                self.owned_futures(addr, ty, depth)
            }
            Class::Fields => {
                if !self.seen.insert((addr, ty)) {
                    return Vec::new();
                }
                self.nodes += 1;
                self.hand_written(addr, ty, depth).into_iter().collect()
            }
            Class::Nothing => Vec::new(),
        }
    }

    fn within_budget(&self, depth: usize) -> bool {
        depth <= super::MAX_DEPTH && self.nodes <= super::MAX_NODES
    }
}
