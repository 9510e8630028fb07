//! The task registry: every live traced future, so that [`dump`](crate::dump()) can ask them all.
//!
//! # Invariants
//!
//! - **Who inserts.** [`traced`](crate::traced()) (and therefore [`spawn`](crate::spawn())) inserts
//!   the task's `Shared` when it creates it, before any handle or future exists. Nothing else
//!   inserts.
//! - **Who removes.** `Shared::close` removes it, exactly once: when the traced future completes,
//!   or when it is dropped unfinished (an aborted task, a runtime shutting down, a `select!`
//!   that lost). A leaked future (`mem::forget`) stays registered, reported idle.
//! - **Locks.** The registry is [`SHARDS`] shards, each a mutex around a slab (`Vec` of entries
//!   plus a free list). A thread inserts into its own shard (assigned round-robin on first use),
//!   so concurrent spawns on different threads take different locks; the slot `(shard, index)`
//!   is stored in the task, so removal, from whatever thread drops or completes the task, locks
//!   only that shard, for a `Vec` write. A dump locks each shard in turn, only to clone the
//!   `Arc`s. No lock is taken while another is held, and none is taken on the poll path.
//! - **Ids** come from one global counter (`fetch_add`, no lock): unique, increasing in creation
//!   order, never 0 (0 means "no task").
//! - **Current task.** [`set_current`] keeps, per thread, the id of the registered task being
//!   polled (a `const` thread-local `Cell`: two plain moves per poll). A task created during that
//!   poll records it as its parent.
//! - **Awaits.** A capturing poll opens an [`AwaitScope`]; a [`JoinHandle`](crate::JoinHandle)
//!   found pending inside it notes the awaited task's id there. Outside a capture this is one
//!   thread-local read per join-handle poll, and nothing on the poll path of `Traced`. Only
//!   handles polled by the capturing poll count: a handle inside a `FuturesUnordered` that is
//!   not re-polled, or tokio's own `JoinHandle`, records no edge.
//!
//! Memory per task: [`TaskInfo`] (40 bytes in the task's `Shared`, plus the name's heap string
//! and its box when it has one) and one 8-byte slab entry.

use crate::sync::Arc;
use crate::traced::Shared;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Number of registry shards (a power of two, more than the threads that usually spawn).
pub(crate) const SHARDS: usize = 64;
const _: () = assert!(SHARDS <= 256, "a shard index is a u8");

/// An emptied shard keeps at most this many slots allocated.
const SHRINK_ABOVE: usize = 1024;

/// A task's identity, fixed at creation.
#[derive(Debug)]
pub(crate) struct TaskInfo {
    /// Unique, never 0.
    pub(crate) id: u64,
    /// The registered task that was being polled on this thread when this one was created.
    pub(crate) parent: u64,
    /// Clock tick at creation.
    pub(crate) created: u64,
    /// Thin (one word): most tasks have no name, and every task pays for the field.
    #[allow(clippy::redundant_allocation)]
    name: Option<Box<Box<str>>>,
    index: u32,
    shard: u8,
}

impl TaskInfo {
    /// The name given at creation.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|n| &**n)
    }
}

type Entry = Option<Arc<Shared>>;

#[derive(Default)]
struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

// Padded so that two shards never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Slab>);

static REGISTRY: [Shard; SHARDS] = [const {
    Shard(Mutex::new(Slab {
        entries: Vec::new(),
        free: Vec::new(),
    }))
}; SHARDS];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, `usize::MAX` until assigned.
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The registered task being polled on this thread, or 0.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// Join handles found pending during the capturing poll running on this thread.
    static AWAITS: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

fn lock(shard: usize) -> std::sync::MutexGuard<'static, Slab> {
    // A poisoned shard only means a panic elsewhere; the slab is consistent between writes.
    REGISTRY[shard].0.lock().unwrap_or_else(|e| e.into_inner())
}

fn my_shard() -> usize {
    MY_SHARD.with(|s| {
        let mut shard = s.get();
        if shard == usize::MAX {
            shard = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(shard);
        }
        shard
    })
}

/// Creates a task's `Shared` with `make` and registers it.
pub(crate) fn register(
    name: Option<Box<str>>,
    make: impl FnOnce(TaskInfo) -> Arc<Shared>,
) -> Arc<Shared> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let parent = current();
    let created = crate::clock::now();
    let info = |shard: usize, index: u32| TaskInfo {
        id,
        parent,
        created,
        name: name.map(Box::new),
        shard: shard as u8,
        index,
    };
    if cfg!(tasktrace_loom) {
        // Loom models the handshake alone; its `Arc`s must not outlive a model.
        return make(info(0, u32::MAX));
    }
    let shard = my_shard();
    let mut slab = lock(shard);
    let index = match slab.free.pop() {
        Some(i) => i,
        None => {
            slab.entries.push(None);
            u32::try_from(slab.entries.len() - 1).expect("fewer than 2^32 tasks per shard")
        }
    };
    let shared = make(info(shard, index));
    slab.entries[index as usize] = Some(shared.clone());
    shared
}

/// Removes a task (called once, by `Shared::close`).
pub(crate) fn unregister(task: &TaskInfo) {
    if task.index == u32::MAX {
        return;
    }
    let removed = {
        let mut slab = lock(task.shard as usize);
        let removed = slab.entries[task.index as usize].take();
        if removed.is_some() {
            slab.free.push(task.index);
        }
        if slab.free.len() == slab.entries.len() {
            // Empty: start over, and give back the memory of a past burst of tasks.
            slab.entries.clear();
            slab.free.clear();
            if slab.entries.capacity() > SHRINK_ABOVE {
                slab.entries.shrink_to(SHRINK_ABOVE);
                slab.free.shrink_to(SHRINK_ABOVE);
            }
        }
        removed
    };
    // Dropped outside the lock.
    drop(removed);
}

/// Every registered task at this moment.
pub(crate) fn snapshot() -> Vec<Arc<Shared>> {
    let mut all = Vec::new();
    for shard in 0..SHARDS {
        let slab = lock(shard);
        all.extend(slab.entries.iter().flatten().cloned());
    }
    all
}

/// Number of registered tasks (live traced futures).
///
/// ```
/// let (fut, _handle) = tasktrace::traced(async {});
/// assert!(tasktrace::registered_tasks() >= 1);
/// drop(fut);
/// ```
pub fn registered_tasks() -> usize {
    (0..SHARDS)
        .map(|shard| {
            let slab = lock(shard);
            slab.entries.len() - slab.free.len()
        })
        .sum()
}

/// The id of the registered task being polled on this thread, if any.
///
/// ```
/// # futures::executor::block_on(async {
/// assert_eq!(tasktrace::current_task_id(), None);
/// let (fut, handle) = tasktrace::traced(async { tasktrace::current_task_id() });
/// assert_eq!(fut.await, Some(handle.id()));
/// # });
/// ```
pub fn current_task_id() -> Option<u64> {
    Some(current()).filter(|&id| id != 0)
}

#[inline(always)]
fn current() -> u64 {
    CURRENT.with(Cell::get)
}

/// Makes `id` the current task of this thread; returns the previous one, to restore.
#[inline(always)]
pub(crate) fn set_current(id: u64) -> u64 {
    CURRENT.with(|c| c.replace(id))
}

/// Collects the task-awaits-task edges of one capturing poll (nested captures stack).
pub(crate) struct AwaitScope {
    outer: Option<Vec<u64>>,
}

impl AwaitScope {
    pub(crate) fn enter() -> Self {
        AwaitScope {
            outer: AWAITS
                .try_with(|a| a.replace(Some(Vec::new())))
                .ok()
                .flatten(),
        }
    }

    /// The ids noted since `enter`, without duplicates, in first-seen order.
    pub(crate) fn finish(mut self) -> Vec<u64> {
        let outer = self.outer.take();
        let mut ids = AWAITS
            .try_with(|a| a.replace(outer))
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        std::mem::forget(self);
        ids
    }
}

impl Drop for AwaitScope {
    fn drop(&mut self) {
        // Unwinding out of the capturing poll.
        let outer = self.outer.take();
        let _ = AWAITS.try_with(|a| a.replace(outer));
    }
}

/// Notes that the task being captured on this thread awaits task `id` (a pending join handle).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[inline]
pub(crate) fn note_await(id: u64) {
    // `try_with`: a join handle may be polled while this thread's locals are being destroyed.
    let _ = AWAITS.try_with(|a| {
        if let Some(ids) = a.borrow_mut().as_mut() {
            ids.push(id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_leave_on_completion_and_drop_and_slots_are_reused() {
        let (a, ha) = crate::traced(async {});
        let (b, hb) = crate::traced(std::future::pending::<()>());
        assert!(ha.id() < hb.id());
        let shard = ha.shared.task.shard as usize;
        let ids = |v: Vec<Arc<Shared>>| v.iter().map(|s| s.task.id).collect::<Vec<_>>();
        let live = ids(snapshot());
        assert!(live.contains(&ha.id()) && live.contains(&hb.id()));
        let slots = lock(shard).entries.len();
        futures::executor::block_on(a);
        drop(b);
        let live = ids(snapshot());
        assert!(!live.contains(&ha.id()) && !live.contains(&hb.id()));
        // The next tasks of this thread reuse the freed slots.
        let (_c, _hc) = crate::traced(async {});
        let (_d, _hd) = crate::traced(async {});
        assert!(lock(shard).entries.len() <= slots);
    }

    #[test]
    fn an_emptied_shard_gives_its_memory_back() {
        let (first, hf) = crate::traced(async {});
        let shard = hf.shared.task.shard as usize;
        let burst: Vec<_> = (0..5000).map(|_| crate::traced(async {})).collect();
        drop(burst);
        drop(first);
        // (Another test thread may share this shard and keep it from emptying.)
        let slab = lock(shard);
        assert!(slab.entries.capacity() <= SHRINK_ABOVE || !slab.entries.is_empty());
    }

    #[test]
    fn identity_stays_small() {
        // id, parent, created, name (8), slot (5): the registry adds this and one 8-byte slab
        // entry per task.
        assert!(std::mem::size_of::<TaskInfo>() <= 40);
        assert_eq!(std::mem::size_of::<Entry>(), 8);
        eprintln!(
            "Shared: {} bytes (TaskInfo {}), Traced<Ready<()>>: {} bytes",
            std::mem::size_of::<Shared>(),
            std::mem::size_of::<TaskInfo>(),
            std::mem::size_of::<crate::Traced<std::future::Ready<()>>>()
        );
    }

    #[test]
    fn parent_is_the_task_being_polled() {
        let (outer, ho) = crate::traced(async {
            let (inner, hi) = crate::traced(async {});
            inner.await;
            hi.shared.task.parent
        });
        assert_eq!(futures::executor::block_on(outer), ho.id());
        assert_eq!(ho.shared.task.parent, 0);
        assert_eq!(current(), 0, "restored after the poll");
    }
}
