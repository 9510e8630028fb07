//! Connection pools: which task holds the connection another task waits for.
//!
//! A task that takes a connection from a pool keeps a handle to it alive across its awaits (a
//! saved local of an `async fn` state machine: sqlx's `PoolConnection` or a `Transaction` on
//! one, deadpool's `Object`, bb8's `PooledConnection`). Every such handle points back to its
//! pool's shared block, and from there to what a task waiting for a connection is suspended
//! on: a tokio `Semaphore` (sqlx, deadpool: the waiter's leaf is that semaphore's `Acquire`)
//! or a tokio `Notify` (bb8: the waiter's leaf is its `Notified`). A holder records a
//! [`Link::HoldsConnection`] keyed by the address of that semaphore or `Notify`, with the
//! pool's size read from its configuration; [`super::links::resolve`] joins it to the waiters
//! of the same key, whose leaf then names the holders: `waiting for a deadpool connection
//! (1 of 1 in use: task 7)`.
//!
//! What each library keeps where is in its own file ([`sqlx`], [`deadpool`], [`bb8`]): the
//! holder types and the field paths from a holder to the pool, from the pool to the key and to
//! its size. A path that does not match the program's types (another version of the library)
//! records nothing: the waiter keeps tokio's plain note, never a wrong holder.
//!
//! Only handles held by async fn state machines are seen (not ones inside hand-written futures
//! or other structs), as for tokio's lock guards (see [`super::locks`]).

mod bb8;
mod deadpool;
mod sqlx;

use super::links::Link;
use super::Decoder;
use crate::value::Reader;

/// A pool library whose connection holders are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// `sqlx::Pool` (any database).
    Sqlx,
    /// `deadpool::managed::Pool` (deadpool-postgres, deadpool-redis, … and custom managers).
    Deadpool,
    /// `bb8::Pool`.
    Bb8,
}

impl PoolKind {
    /// The library's name, as a waiter's note says it.
    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Sqlx => "sqlx",
            PoolKind::Deadpool => "deadpool",
            PoolKind::Bb8 => "bb8",
        }
    }
}

/// One step of a [`Path`]: a field, or the payload of an enum's active variant.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The member of that name.
    Field(&'static str),
    /// The single field of the enum's active variant when it is the one named (`None`: any).
    Variant(Option<&'static str>),
}

/// A path through a library's types; pointers (`&`, `Arc`, `Weak`, …) on the way are followed
/// without a step of their own.
type Path = &'static [Step];

/// What waiters for a connection are suspended on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    /// A tokio `Semaphore` (its batch semaphore: where `Acquire` waiters point).
    Semaphore,
    /// A tokio `Notify`.
    Notify,
}

impl Key {
    fn type_name(self) -> &'static str {
        match self {
            Key::Semaphore => "tokio::sync::batch_semaphore::Semaphore",
            Key::Notify => "tokio::sync::notify::Notify",
        }
    }
}

/// How one library's pool is laid out.
struct PoolShape {
    kind: PoolKind,
    /// The types of connection handles (name prefixes, generics open) and the path from each
    /// to the pool's shared block.
    holders: &'static [(&'static str, Path)],
    /// From the shared block to what a waiter waits on.
    to_key: Path,
    key: Key,
    /// From the shared block to the pool's maximum size (an integer).
    to_size: Path,
}

const SHAPES: [&PoolShape; 3] = [&sqlx::SHAPE, &deadpool::SHAPE, &bb8::SHAPE];

/// Most pointers followed along one path.
const MAX_POINTERS: usize = 8;

impl Reader<'_> {
    /// Through references, `Arc`s, `Weak`s and their inner blocks: the value `addr` (type
    /// `ty`) stands for; `None` at a null, dangling or unreadable pointer.
    fn pointed_to(&self, mut addr: u64, ty: u64, hops: &mut usize) -> Option<(u64, u64)> {
        let mut ty = self.strip(ty);
        loop {
            let name = self.type_name(ty);
            if name.starts_with('&')
                || name.starts_with("*const ")
                || name.starts_with("*mut ")
                || name.starts_with("alloc::sync::Arc<")
                || name.starts_with("alloc::sync::Weak<")
            {
                let (p, pointee) = self.thin_pointer(ty, addr).ok()??;
                // `Weak::new()` dangles at usize::MAX.
                if p == 0 || p == u64::MAX {
                    return None;
                }
                (addr, ty) = (p, self.strip(pointee?));
            } else if name.starts_with("alloc::sync::ArcInner<") {
                let (off, t) = self.member(ty, "data")?;
                (addr, ty) = (addr + off, self.strip(t));
            } else {
                return Some((addr, ty));
            }
            *hops += 1;
            if *hops > MAX_POINTERS {
                return None;
            }
        }
    }

    /// The value reached from `addr` (type `ty`) along `path`, pointers followed on the way
    /// and at the end.
    fn along(&self, addr: u64, ty: u64, path: Path) -> Option<(u64, u64)> {
        let mut hops = 0;
        let (mut addr, mut ty) = self.pointed_to(addr, ty, &mut hops)?;
        for step in path {
            let (off, t) = match *step {
                Step::Field(name) => self.member(ty, name)?,
                Step::Variant(want) => {
                    let v = self.active_variant(ty, addr).ok()??;
                    if want.is_some_and(|w| w != v.name) {
                        return None;
                    }
                    let (off, t) = self.member(v.ty, "__0")?;
                    (v.offset + off, t)
                }
            };
            (addr, ty) = self.pointed_to(addr + off, t, &mut hops)?;
        }
        Some((addr, ty))
    }

    /// The connection handle at `addr` (type `ty`, named `name`), if it is one of a known
    /// pool: the pool, the address waiters for its connections wait on, and its size.
    fn connection_of(&self, addr: u64, ty: u64, name: &str) -> Option<(PoolKind, u64, u64)> {
        SHAPES.iter().find_map(|shape| {
            let (_, to_pool) = shape.holders.iter().find(|(h, _)| name.starts_with(h))?;
            let (pool, pool_ty) = self.along(addr, ty, to_pool)?;
            let (key, key_ty) = self.along(pool, pool_ty, shape.to_key)?;
            if self.type_name(key_ty) != shape.key.type_name() {
                return None;
            }
            let (size_at, size_ty) = self.along(pool, pool_ty, shape.to_size)?;
            let size = self.uint(size_at, self.type_size(size_ty)).ok()?;
            Some((shape.kind, key, size))
        })
    }
}

impl Decoder<'_, '_, '_> {
    /// A member of a state machine's current variant (at `addr`, type `ty` stripped, named
    /// `name`): a connection handle of a known pool is a connection this task holds.
    pub(super) fn holds_connection(&mut self, addr: u64, ty: u64, name: &str) {
        if let Some((pool, key, size)) = self.r.connection_of(addr, ty, name) {
            self.links.push(Link::HoldsConnection { key, pool, size });
        }
    }

    /// A `Notified` leaf at `addr`: the task waits on the `Notify` it names (a pool's, when a
    /// connection holder says so).
    pub(super) fn waits_for_notify(&mut self, addr: u64, ty: u64) {
        const TO_NOTIFY: Path = &[Step::Field("notify")];
        if let Some((key, key_ty)) = self.r.along(addr, ty, TO_NOTIFY) {
            if self.r.type_name(key_ty) == Key::Notify.type_name() {
                self.links.push(Link::WaitsNotify(key));
            }
        }
    }
}
