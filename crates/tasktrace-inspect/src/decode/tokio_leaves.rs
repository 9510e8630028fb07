//! tokio's own futures, read as the ends of a walk and as join shapes: what a leaf (`Sleep`,
//! a `JoinHandle`, a channel's or lock's future, I/O readiness) waits on, as a typed
//! [`Wait`], and the branches of `join!` (`MaybeDone`).

use super::{hyper, tower, Decoder, Link};
use crate::tokio::Tokio;
use crate::type_names::clean_type;
use tasktrace_model::{Frame, FrameKind, Timer, Wait, WaitOn};

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

impl Tokio<'_, '_> {
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

impl Decoder<'_, '_, '_> {
    pub(super) fn leaf(&mut self, addr: u64, ty: u64, name: &str) -> Frame {
        // Generic arguments naming closures (`PollFn<…::{closure_env#0}>`) are noise.
        let shown = if name.contains("{closure_env#") {
            name.split('<').next().unwrap_or(name)
        } else {
            name
        };
        let frame = Frame::new(clean_type(shown), None).with_kind(FrameKind::Leaf);
        match leaf_kind(name) {
            Some(LeafKind::Acquire) => self.waits_for_lock(addr, ty),
            Some(LeafKind::Notified) => self.waits_for_notify(addr, ty),
            _ => {}
        }
        let oneshot = leaf_kind(name) == Some(LeafKind::Oneshot);
        if oneshot {
            if let Some(key) = self.arc_member(addr, ty, "inner") {
                self.links.push(Link::Waits(key));
            }
        }
        if self.now.is_some() && leaf_kind(name) == Some(LeafKind::Sleep) {
            self.timed = true;
        }
        match self.tokio.leaf(addr, ty, name, self.now) {
            Some(Leaf {
                mut wait,
                awaits,
                header,
                stale,
            }) => {
                self.awaits.extend(awaits);
                self.awaited_headers.extend(header);
                // A oneshot receiver a library waits on: say what for.
                if let Some(on) = oneshot
                    .then(|| tower::response_wait(name).or_else(|| hyper::response_wait(name)))
                    .flatten()
                {
                    wait.on = on;
                }
                wait.socket = self.socket_of(addr, ty, name);
                let frame = frame.with_wait(wait);
                if stale {
                    self.stale_timers.push(frame.clone());
                }
                frame
            }
            None => frame,
        }
    }

    /// For an I/O leaf of a live target: its socket (`fd 9: 127.0.0.1:3000 to
    /// 127.0.0.1:51234`), from the descriptor the leaf holds or, failing that, the one the
    /// innermost of its three enclosing state machines holds (`TcpListener::accept`'s `self`).
    fn socket_of(&self, addr: u64, ty: u64, name: &str) -> Option<tasktrace_model::Socket> {
        if leaf_kind(name) != Some(LeafKind::Io) {
            return None;
        }
        let pid = self.r.target.proc_pid()?;
        // `accept` → `Registration::async_io` → `Readiness`: the listener is two levels up.
        let fd = std::iter::once((addr, ty))
            .chain(self.enclosing.iter().rev().take(3).copied())
            .find_map(|(a, t)| self.r.owned_fd(a, t))?;
        Some(self.shapes.sockets.describe(pid, fd))
    }
}
