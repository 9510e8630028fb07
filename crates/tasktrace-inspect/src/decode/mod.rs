//! Decodes a future's memory into logical frames.
//!
//! - `async fn` / `async` block state machines (`…::{async_fn_env#0}`): the variant selected by
//!   `__state` (3+N = SuspendN) gives the await line (its `decl_line`; when a macro such as
//!   `join!` owns the suspend point, the body's `__awaitee` local at the same offset gives the
//!   caller's line) and the child (`__awaitee`, or every element of a `futures` tuple for
//!   `join!`/`select!`).
//! - Join branches (`MaybeDone` of tokio or futures, recognised by [`Tokio`]): `Done` shows as
//!   a completed frame at the branch fn's closing brace (its `Returned` variant's line), `Gone`
//!   (output already taken) is left out;
//!   `Pin`/`Box` (thin, or `dyn Future` through its vtable's `{vtable_type}` to the concrete
//!   type).
//! - Sets of futures the in-process capture cannot see (polled with their own wakers):
//!   `FuturesUnordered` (its list of all tasks), `join_all` (its `MaybeDone` slice, or the
//!   `FuturesOrdered` behind it), reached through `stream.next()` or a `poll_fn` closure that
//!   borrows the set; a `JoinSet`'s tasks (a join handle leaf each, under `join_next`'s
//!   `poll_fn`).
//! - `futures`' `Shared`: the one future its clones drive, under every holder (the walk's
//!   cycle guard is per task, so each holder's tree shows it).
//! - Leaves: whatever [`Tokio::leaf`] recognises (timers, join handles, channels, locks, I/O),
//!   otherwise the type's name.
//!
//! Walks are bounded: depth, total nodes, and no `(address, type)` is decoded twice.

mod actix;
mod context;
mod futures_util;
mod generic;
mod hyper;
mod links;
mod locks;
mod names;
mod pools;
mod tasktrace;
mod tokio_leaves;
mod tower;
mod values;

pub use generic::{ShapeCache, Shapes};
pub use links::{resolve, Link};
pub use names::async_fn_name;
pub use pools::PoolKind;

use crate::tokio::Tokio;
use crate::type_names::async_env;
use crate::type_names::clean_type;
use crate::value::Reader;
use futures_util::{FUTURES_UNORDERED, JOIN_ALL, MAX_UNORDERED, ORDER_WRAPPER, SHARED};
use tasktrace_model::{Branches, Frame, FrameKind, FrameStatus, Location, Node};
use tokio_leaves::{leaf_kind, Branch};

/// Deepest chain decoded.
const MAX_DEPTH: usize = 64;
/// Most nodes per task.
const MAX_NODES: usize = 4096;

/// `stream.next()` and friends: they hold `stream: &mut St`, and what they wait on is the
/// stream.
const NEXT: &[&str] = &[
    "futures_util::stream::stream::next::Next",
    "futures_util::stream::stream::select_next_some::SelectNextSome",
];
/// The note of a state machine that was never polled.
const NOT_YET_POLLED: &str = "not yet polled";
/// Not a future, but one end of an edge between tasks ([`links`]).
const ONESHOT_SENDER: &str = "tokio::sync::oneshot::Sender";

/// Decoding state for one task.
pub struct Decoder<'r, 'a, 't> {
    r: &'r Reader<'a>,
    tokio: &'t Tokio<'r, 'a>,
    shapes: &'t Shapes,
    seen: crate::addr_hash::AddrKeySet<(u64, u64)>,
    nodes: usize,
    /// Task ids this task awaits through join handles.
    pub awaits: Vec<u64>,
    /// The headers of those tasks.
    pub awaited_headers: Vec<u64>,
    /// Ends of edges to other tasks through shared state, joined by [`resolve`].
    pub links: Vec<Link>,
    /// Monotonic clock now, for a live target's timers.
    now: Option<f64>,
    /// Whether the tree depends on the clock (a live timer's time left): such a decode is not
    /// kept for the next read (`memo.rs`).
    pub timed: bool,
    /// The timer leaves met whose deadline passed long ago ([`Leaf::stale`]): beside a
    /// branch that still waits, one is left out (nothing will poll it).
    stale_timers: Vec<Frame>,
    /// The state machines the walk is inside, innermost last: where an I/O leaf's socket is
    /// looked for when the leaf itself does not hold it (`TcpListener::accept`'s `self`).
    enclosing: Vec<(u64, u64)>,
    /// Whether async fn frames get their values ([`crate::Options::values`]).
    values: bool,
    /// The task's context met on the way: task-locals in scope, spans (see `decode/context.rs`).
    pub context: Vec<tasktrace_model::TaskContext>,
}

/// How tokio's `select!` or `join!` awaits the branches of its `futures` tuple, from the
/// locals of the suspend point `variant`: `select!` keeps a `disabled` mask beside them;
/// `join!` wraps each branch in a `MaybeDone`. `None` when neither shows.
fn branches_of(r: &Reader<'_>, variant: u64, branches: &[(&str, u64, u64)]) -> Option<Branches> {
    let n = u32::try_from(branches.len()).ok()?;
    if r.member(variant, "disabled").is_some() {
        return Some(Branches::FirstOf(n));
    }
    let maybe_done = |t: u64| {
        r.type_name(r.strip(t))
            .starts_with("tokio::future::maybe_done::MaybeDone<")
    };
    (n > 0 && branches.iter().all(|&(_, _, t)| maybe_done(t))).then_some(Branches::AllOf(n))
}

fn monotonic_now() -> f64 {
    // SAFETY: all-zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl<'r, 'a, 't> Decoder<'r, 'a, 't> {
    /// A decoder for one task.
    pub fn new(r: &'r Reader<'a>, tokio: &'t Tokio<'r, 'a>, shapes: &'t Shapes) -> Self {
        Decoder {
            r,
            tokio,
            shapes,
            seen: Default::default(),
            nodes: 0,
            awaits: Vec::new(),
            awaited_headers: Vec::new(),
            links: Vec::new(),
            now: r.target.is_live().then(monotonic_now),
            timed: false,
            stale_timers: Vec::new(),
            enclosing: Vec::new(),
            values: false,
            context: Vec::new(),
        }
    }

    /// The same decoder, reading the values of async fn frames (their arguments and the
    /// locals they keep across their await) when `on`.
    pub fn with_values(mut self, on: bool) -> Self {
        self.values = on;
        self
    }

    /// Frames of the future `ty` at `addr` (usually one node with its subtree).
    pub fn decode(&mut self, addr: u64, ty: u64, depth: usize) -> Vec<Node> {
        let ty = self.r.strip(ty);
        if depth > MAX_DEPTH || self.nodes > MAX_NODES || !self.seen.insert((addr, ty)) {
            return vec![Node::new(
                Frame::new("…", None)
                    .with_kind(FrameKind::Leaf)
                    .with_note("walk bounded (depth, size or cycle)"),
            )];
        }
        self.nodes += 1;
        let name = self.r.type_name(ty);
        if let Some((func, kind)) = async_fn_name(self.r, ty) {
            return self.state_machine(addr, ty, func, kind, depth);
        }
        let generic = name.split('<').next().unwrap_or(name);
        if self.tokio.is_maybe_done(generic) {
            return self.maybe_done(addr, ty, depth);
        }
        if let Some((off, inner)) = self.tokio.inner_future(ty) {
            return self.decode(addr + off, inner, depth + 1);
        }
        if self.tokio.is_join_set(ty) {
            return vec![self.join_set(addr, ty, name)];
        }
        match generic {
            "core::pin::Pin" | "alloc::boxed::Box" | "core::ptr::non_null::NonNull" => {
                if let Some(nodes) = self.pointer(addr, ty, depth) {
                    return nodes;
                }
            }
            g if g.starts_with("&mut ") => {
                if let Some(nodes) = self.pointer(addr, ty, depth) {
                    return nodes;
                }
            }
            g if NEXT.contains(&g) => {
                if let Some(nodes) = self.follow(addr, ty, "stream", depth) {
                    return nodes;
                }
            }
            ORDER_WRAPPER => {
                if let Some((off, t)) = self.r.member(ty, "data") {
                    return self.decode(addr + off, t, depth + 1);
                }
            }
            FUTURES_UNORDERED => {
                return vec![self.unordered(addr, ty, name, depth)];
            }
            SHARED => {
                return vec![self.shared(addr, ty, name, depth)];
            }
            g if tasktrace::WRAPPERS.contains(&g) => {
                return vec![self.traced(addr, ty, name, depth)];
            }
            // `poll_fn(|cx| set.poll_…(cx))` (as `JoinSet::join_next` is): what it waits on is
            // the set its closure borrows.
            g if g.ends_with("::poll_fn::PollFn") => {
                if let Some(nodes) = self.poll_fn(addr, ty, depth) {
                    return nodes;
                }
            }
            JOIN_ALL => {
                if let Some(node) = self.join_all(addr, ty, name, depth) {
                    return vec![node];
                }
            }
            actix::DISPATCHER => return vec![self.actix_dispatcher(addr, ty, depth)],
            hyper::H2_CLIENT_TASK => return vec![self.h2_client_task(addr, ty, depth)],
            hyper::H1_DISPATCHER if self.is_h1_client(ty) => {
                return vec![self.h1_client(addr, ty, depth)];
            }
            g if hyper::is_leaf_type(g) => return vec![self.hyper_leaf(addr, ty, depth)],
            g if hyper::is_link_type(g) => {
                self.hyper_link(addr, ty, g);
                return Vec::new();
            }
            _ => {}
        }
        // A future written by hand: a frame over the futures it owns, if any (see
        // [`generic`]); else a leaf named by its type.
        if leaf_kind(name).is_none() {
            if let Some(node) = self.hand_written(addr, ty, depth) {
                return vec![node];
            }
        }
        vec![Node::new(self.leaf(addr, ty, name))]
    }

    /// True for the types [`decode`](Self::decode) knows by name: state machines, join
    /// branches, sets of futures, tokio's leaves. A search through a future written by hand
    /// stops at them.
    fn is_known(&self, ty: u64, name: &str) -> bool {
        let generic = name.split('<').next().unwrap_or(name);
        async_env(name).is_some()
            || leaf_kind(name).is_some()
            || self.tokio.is_maybe_done(generic)
            || self.tokio.inner_future(ty).is_some()
            || self.tokio.is_join_set(ty)
            || NEXT.contains(&generic)
            || hyper::is_link_type(generic)
            || hyper::is_leaf_type(generic)
            || (generic == hyper::H1_DISPATCHER && self.is_h1_client(ty))
            || [
                ORDER_WRAPPER,
                FUTURES_UNORDERED,
                SHARED,
                JOIN_ALL,
                actix::DISPATCHER,
                hyper::H2_CLIENT_TASK,
            ]
            .contains(&generic)
            || tasktrace::WRAPPERS.contains(&generic)
    }

    /// Decodes what the pointer member `field` of `ty` at `addr` points to.
    fn follow(&mut self, addr: u64, ty: u64, field: &str, depth: usize) -> Option<Vec<Node>> {
        let (off, t) = self.r.member(ty, field)?;
        let (p, pointee) = self.r.thin_pointer(t, addr + off).ok()??;
        let pointee = pointee?;
        (p != 0).then(|| self.decode(p, pointee, depth + 1))
    }

    /// A `JoinSet`: one child per task it holds (a join handle leaf, so the task is among
    /// the ones this task awaits).
    fn join_set(&mut self, addr: u64, ty: u64, name: &str) -> Node {
        let mut node = Node::new(Frame::new(clean_type(name), None).with_kind(FrameKind::Fn));
        let Some((length, handles)) = self.tokio.join_set_handles(addr, ty, MAX_UNORDERED) else {
            node.frame.note = Some("its task list could not be read".into());
            return node;
        };
        for (h, h_ty) in handles {
            let frame = self.leaf(h, h_ty, self.r.type_name(h_ty));
            node.children.push(Node::new(frame));
        }
        node.frame.note = Some(format!(
            "{length} task{}",
            if length == 1 { "" } else { "s" }
        ));
        node
    }

    /// A `poll_fn` whose closure borrows a set of futures or tasks (`JoinSet`,
    /// `FuturesUnordered`): that set, decoded. `None` for any other closure.
    fn poll_fn(&mut self, addr: u64, ty: u64, depth: usize) -> Option<Vec<Node>> {
        let r = self.r;
        let (f_off, f_ty) = r.member(ty, "f")?;
        for (_, off, m_ty) in r.members(r.strip(f_ty)) {
            // A captured `&mut set` (or `&mut &mut set`).
            let mut at = Some((addr + f_off + off, m_ty));
            for _ in 0..2 {
                let Some((p, Some(pointee))) = at.and_then(|(a, t)| r.thin_pointer(t, a).ok()?)
                else {
                    break;
                };
                let pointee = r.strip(pointee);
                let generic = r.type_name(pointee).split('<').next().unwrap_or_default();
                if p != 0
                    && (self.tokio.is_join_set(pointee)
                        || generic == "futures_util::stream::futures_unordered::FuturesUnordered")
                {
                    return Some(self.decode(p, pointee, depth + 1));
                }
                at = Some((p, pointee));
            }
        }
        None
    }

    fn state_machine(
        &mut self,
        addr: u64,
        ty: u64,
        func: String,
        kind: FrameKind,
        depth: usize,
    ) -> Vec<Node> {
        let r = self.r;
        let frame = |loc: Option<Location>| Frame::new(func.clone(), loc).with_kind(kind);
        let variant = match r.variant(ty, addr) {
            Ok(Some(v)) => v,
            Ok(None) => return vec![Node::new(frame(None).with_note("unknown state"))],
            Err(e) => {
                return vec![Node::new(
                    frame(None)
                        .with_note(format!("unreadable: {e}"))
                        .with_status(FrameStatus::Unreadable),
                )]
            }
        };
        let loc = variant
            .decl
            .as_ref()
            .map(|(f, l)| Location::new(f.clone(), *l, None));
        let wanted = self.values;
        let values = || {
            if wanted {
                values::frame_values(r, addr + variant.offset, variant.ty)
            } else {
                Vec::new()
            }
        };
        match variant.name.as_str() {
            "Unresumed" => {
                let mut f = frame(loc).with_note(NOT_YET_POLLED);
                f.values = values();
                return vec![Node::new(f)];
            }
            "Returned" => {
                return vec![Node::new(frame(loc).with_status(FrameStatus::Completed))];
            }
            "Panicked" => return vec![Node::new(frame(loc).with_note("panicked"))],
            _ => {}
        }
        let base = addr + variant.offset;
        self.holds_locks(base, variant.ty);
        let awaitee = r.member(variant.ty, "__awaitee");
        let loc = self.await_location(ty, loc, awaitee);
        let mut node = Node::new(frame(loc));
        node.frame.values = values();
        // Blocking locks' guards in the saved state: held across this await.
        node.frame.guards = r
            .members(variant.ty)
            .into_iter()
            .map(|(_, _, t)| r.type_name(r.strip(t)))
            .filter(|name| tasktrace_model::is_blocking_guard(name))
            .map(tasktrace_model::clean::trim_generics)
            .collect();
        self.enclosing.push((addr, ty));
        if let Some((f_off, f_ty)) = r.member(variant.ty, "futures") {
            if r.type_name(f_ty).starts_with('(') {
                let branches = r.members(f_ty);
                node.frame.branches = branches_of(r, variant.ty, &branches);
                for (_, off, t) in branches {
                    let children = self.decode(base + f_off + off, t, depth + 1);
                    node.children.extend(children);
                }
                self.enclosing.pop();
                return vec![node];
            }
        }
        if let Some((a_off, a_ty)) = awaitee {
            node.children = self.decode(base + a_off, a_ty, depth + 1);
        }
        self.enclosing.pop();
        vec![node]
    }

    /// The await line of a suspend point; for a macro's (outside the fn's own file), the line
    /// of the body's `__awaitee` local of the same type (or at the same offset).
    fn await_location(
        &self,
        env_ty: u64,
        loc: Option<Location>,
        awaitee: Option<(u64, u64)>,
    ) -> Option<Location> {
        let r = self.r;
        let own_file = r.variant_decl_file(env_ty, "Unresumed");
        let loc = loc?;
        if own_file.as_deref().is_none_or(|f| f == loc.file) {
            return Some(loc);
        }
        let env = r.type_name(env_ty);
        let body = env
            .replace("{async_fn_env#", "{async_fn#")
            .replace("{async_block_env#", "{async_block#");
        let in_file: Vec<_> = r
            .info
            .awaitees(&body)
            .iter()
            .filter(|v| own_file.as_deref() == Some(&*v.file))
            .collect();
        let same = |v: &&&crate::debuginfo::AwaiteeVar| match awaitee {
            Some((off, ty)) => {
                v.offset == Some(off) || v.ty.is_some_and(|t| r.type_name(t) == r.type_name(ty))
            }
            None => false,
        };
        in_file
            .iter()
            .find(same)
            .or_else(|| in_file.first())
            .map(|v| Location::new(v.file.to_string(), v.line, None))
            .or(Some(loc))
    }

    fn maybe_done(&mut self, addr: u64, ty: u64, depth: usize) -> Vec<Node> {
        match self.tokio.maybe_done(addr, ty) {
            Some(Branch::Pending(a, t)) => self.decode(a, t, depth + 1),
            Some(Branch::Done(inner)) => {
                let (func, kind) =
                    async_env(&inner).unwrap_or_else(|| (clean_type(&inner), FrameKind::Fn));
                // An async fn's `Returned` variant is declared at its closing brace: where it
                // completed.
                let loc = self
                    .r
                    .info
                    .types_named(&inner)
                    .iter()
                    .find_map(|&t| self.r.variant_decl(t, "Returned"))
                    .map(|(f, l)| Location::new(f, l, None));
                vec![Node::new(
                    Frame::new(func, loc)
                        .with_kind(kind)
                        .with_status(FrameStatus::Completed),
                )]
            }
            None => Vec::new(),
        }
    }

    /// `Pin<P>`, `Box<T>`, `Box<dyn Future>`: follow to the pointee.
    fn pointer(&mut self, addr: u64, ty: u64, depth: usize) -> Option<Vec<Node>> {
        let r = self.r;
        // A fat pointer somewhere inside: members `pointer` and `vtable`.
        let mut t = ty;
        let mut base = addr;
        for _ in 0..4 {
            let ms = r.members(t);
            let p = ms.iter().find(|m| m.0 == "pointer");
            let v = ms.iter().find(|m| m.0 == "vtable");
            if let (Some(p), Some(v)) = (p, v) {
                let data = r.pointer(base + p.1).ok()?;
                let vtable = r.pointer(base + v.1).ok()?;
                let concrete = r.info.vtable_type(vtable.wrapping_sub(r.bias))?;
                return Some(self.decode(data, concrete, depth + 1));
            }
            match ms.first() {
                Some((_, off, mt)) if ms.len() == 1 => {
                    base += off;
                    t = r.strip(*mt);
                }
                _ => break,
            }
        }
        let (ptr, pointee) = r.thin_pointer(ty, addr).ok()??;
        if ptr == 0 {
            return None;
        }
        Some(self.decode(ptr, pointee?, depth + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Target, Thread};
    use std::future::Future;
    use std::pin::Pin;

    /// This test process as a target (its own memory, read with `process_vm_readv`).
    struct SelfTarget(Option<u64>);

    impl Target for SelfTarget {
        fn read(&self, addr: u64, buf: &mut [u8]) -> crate::Result<()> {
            use crate::process::Source;
            crate::process::ProcessMemory(std::process::id() as i32).read(addr, buf)
        }
        fn threads(&self) -> &[Thread] {
            &[]
        }
        fn at_entry(&self) -> Option<u64> {
            self.0
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    /// Join branches as `futures`' `MaybeDone` holds them: `Gone` (output taken) is left out,
    /// `Done` is a completed frame, `Future` is decoded.
    #[test]
    fn maybe_done_branches_gone_done_and_pending() {
        use futures::future::{maybe_done, FutureExt};
        use std::pin::Pin;
        with_this_process(|r, tk, info| {
            let mut gone = maybe_done(std::future::ready(1u32));
            let mut done = maybe_done(std::future::ready(2u32));
            let pending = maybe_done(std::future::pending::<u32>());
            assert!((&mut gone).now_or_never().is_some());
            assert!((&mut done).now_or_never().is_some());
            assert_eq!(Pin::new(&mut gone).take_output(), Some(1));
            // Optimised test builds keep no type layouts for this crate (`debug = "limited"`).
            let ty_of = |name: &str| info.types_named(name).first().copied();
            let (Some(ready), Some(never)) = (
            ty_of("futures_util::future::maybe_done::MaybeDone<core::future::ready::Ready<u32>>"),
            ty_of(
                "futures_util::future::maybe_done::MaybeDone<core::future::pending::Pending<u32>>",
            ),
        ) else {
            eprintln!("no MaybeDone types in this test binary's debuginfo: skipped");
            return;
        };
            let at = |p: *const u8| p as u64;
            let shapes = Shapes::new();
            let mut dec = Decoder::new(r, tk, &shapes);
            assert!(dec
                .decode(at(std::ptr::addr_of!(gone).cast()), ready, 0)
                .is_empty());
            let d = dec.decode(at(std::ptr::addr_of!(done).cast()), ready, 0);
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].frame.status, FrameStatus::Completed, "{d:#?}");
            assert!(
                d[0].frame
                    .function
                    .starts_with("core::future::ready::Ready"),
                "{d:#?}"
            );
            let p = dec.decode(at(std::ptr::addr_of!(pending).cast()), never, 0);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].frame.status, FrameStatus::Suspended);
            assert!(
                p[0].frame
                    .function
                    .starts_with("core::future::pending::Pending"),
                "{p:#?}"
            );
            let _ = (&gone, &done, &pending);
        });
    }

    /// Runs `f` with a reader of this test process (its own memory and debuginfo) and its
    /// tokio types; skipped (saying why) when the test binary has no debuginfo with types
    /// (optimised test builds).
    pub(super) fn with_this_process(
        f: impl FnOnce(&Reader<'_>, &Tokio<'_, '_>, &crate::debuginfo::DebugInfo),
    ) {
        // Make sure tokio's task types are in this binary's debuginfo.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { tokio::spawn(async {}).await.unwrap() });
        let info = match crate::debuginfo::DebugInfo::load("/proc/self/exe") {
            Ok(i) => i,
            Err(e) => {
                eprintln!("this test binary has no usable debuginfo ({e}): skipped");
                return;
            }
        };
        let entry = std::fs::read("/proc/self/auxv")
            .ok()
            .and_then(|a| crate::process::auxv_entry(&a));
        let target = SelfTarget(entry);
        let r = Reader {
            target: &target,
            info: &info,
            bias: entry.map_or(0, |e| e.wrapping_sub(info.entry)),
        };
        let Ok(tk) = Tokio::new(&r) else {
            eprintln!("no tokio types in this test binary's debuginfo: skipped");
            return;
        };
        f(&r, &tk, &info);
    }

    async fn first_waiter() {
        std::future::pending::<()>().await
    }

    async fn second_waiter() {
        std::future::pending::<()>().await
    }

    /// A future written by hand that owns futures three ways: through a `Vec` of boxed
    /// `dyn Future`s (`select_all`), an `Option<Box<…>>`, and an `Arc` (shared: not followed).
    struct Holder {
        select: futures::future::SelectAll<BoxedWaiter>,
        maybe: Option<BoxedWaiter>,
        shared: std::sync::Arc<std::sync::Mutex<Option<BoxedWaiter>>>,
    }

    type BoxedWaiter = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The generic search: the frames under a hand-written future are what it owns and
    /// drives (each `select_all` member, the `Some` of an option), not what it shares.
    #[test]
    fn hand_written_futures_are_searched() {
        use futures::FutureExt;
        with_this_process(|r, tk, info| {
            let mut holder = Holder {
                select: futures::future::select_all(vec![
                    Box::pin(first_waiter()) as BoxedWaiter,
                    Box::pin(second_waiter()),
                ]),
                maybe: Some(Box::pin(first_waiter())),
                shared: std::sync::Arc::new(std::sync::Mutex::new(Some(Box::pin(second_waiter())))),
            };
            assert!((&mut holder.select).now_or_never().is_none());
            assert!(holder.maybe.as_mut().unwrap().now_or_never().is_none());
            let Some(&ty) = info
                .types_named("tasktrace_inspect::decode::tests::Holder")
                .first()
            else {
                eprintln!("no Holder type in this test binary's debuginfo: skipped");
                return;
            };
            let shapes = Shapes::new();
            let mut dec = Decoder::new(r, tk, &shapes);
            let nodes = dec.decode(std::ptr::addr_of!(holder) as u64, ty, 0);
            let [h] = &nodes[..] else {
                panic!("{nodes:#?}")
            };
            assert_eq!(h.frame.function, "tasktrace_inspect::decode::tests::Holder");
            assert_eq!(h.frame.kind, FrameKind::Fn);
            // Names compared without their generic arguments.
            let bare = |n: &Node| {
                n.frame
                    .function
                    .split('<')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            let names: Vec<String> = h.children.iter().map(bare).collect();
            // SelectAll → its two members (a frame of its own), then the option's future.
            assert_eq!(
                names,
                [
                    "futures_util::future::select_all::SelectAll",
                    "tasktrace_inspect::decode::tests::first_waiter"
                ],
                "{h:#?}"
            );
            let sel: Vec<String> = h.children[0].children.iter().map(bare).collect();
            assert_eq!(
                sel,
                [
                    "tasktrace_inspect::decode::tests::first_waiter",
                    "tasktrace_inspect::decode::tests::second_waiter"
                ],
                "{h:#?}"
            );
            for waiter in h.children[0].children.iter().chain([&h.children[1]]) {
                assert_eq!(waiter.frame.kind, FrameKind::AsyncFn, "{waiter:#?}");
                let line = waiter.frame.location.as_ref().expect("await line").line;
                assert!(line > 0, "{waiter:#?}");
            }
            assert!(holder.shared.lock().unwrap().is_some());
        });
    }
}
