//! The task registry: the pages that hold every task's [`Shared`] slot, so that
//! [`dump`](crate::dump()) can find every live traced future.
//!
//! # Invariants
//!
//! - **Pages.** Each of [`SHARDS`] shards owns pages of
//!   [`SLOTS_PER_PAGE`](pages::SLOTS_PER_PAGE) slots. A page is one allocation of
//!   [`PAGE_BYTES`](pages::PAGE_BYTES), aligned to its size, whose header names its shard and
//!   position: a slot's page and shard are found from the slot's address alone, so a slot needs
//!   no field for them. Pages never move. A page is freed only when none of its slots is in
//!   use: then no reference to them exists, and scans, which look at slots only under the shard
//!   lock, are not running on it. Slots are taken from the lowest page with one free, so the
//!   pages of a past burst of tasks empty out and are freed even while older tasks live on.
//! - **Who hands out.** [`register`] takes a vacant slot from its thread's shard (assigned
//!   round-robin on first use, so concurrent spawns on different threads take different locks):
//!   from the free list of its lowest page that has one, else from a new page; under the shard
//!   lock.
//!   It fills the slot after unlocking ([`Shared::hand_out`]); until the first reference is
//!   published the slot's count is 0, so scans pass it by.
//! - **Who gives back.** The last [`TaskRef`] to a slot ([`give_back`]), from whatever thread
//!   drops it, to the slot's own shard: one shard lock, for a push on the free list.
//! - **Free lists**: one per page, intrusive. A vacant slot's link (its `id` field) holds the
//!   index of the next vacant slot of the same page, plus one (0: none); read and written under
//!   the shard lock.
//! - **Scans** ([`snapshot`], [`registered_tasks`]) lock each shard in turn and take references
//!   only to open tasks, from counts that are not 0 ([`Shared::try_ref`]). No lock is taken
//!   while a shard lock is held, and none is taken on the poll path.
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
//! Memory per task: one 56-byte slot. Pages are filled before new ones are allocated, so the
//! slack is one page per shard in use (two while its last page is empty), plus the vacant
//! slots that tasks which ended left in pages that still hold live ones.

mod slot;

pub(crate) use slot::{Closed, Identity, Shared, Stamp, TaskRef, REQUESTED};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of registry shards (a power of two, more than the threads that usually spawn).
pub(crate) const SHARDS: usize = 64;

#[cfg(not(tasktrace_loom))]
mod pages;

/// Under loom, each slot is its own allocation: loom's atomics cannot sit in a `static`.
#[cfg(tasktrace_loom)]
mod pages {
    use crate::registry::Shared;
    use std::ptr::NonNull;

    pub(super) fn take_slot(_shard: usize) -> NonNull<Shared> {
        NonNull::from(Box::leak(Box::new(Shared::vacant())))
    }

    pub(super) fn give_back(slot: NonNull<Shared>) {
        // SAFETY: allocated by `take_slot` as a `Box`; the last reference is gone.
        drop(unsafe { Box::from_raw(slot.as_ptr()) });
    }

    pub(super) fn for_each_slot(_f: impl FnMut(NonNull<Shared>)) {}
}

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

/// Registers a new task: a slot handed out with one reference.
pub(crate) fn register(
    name: Option<Box<str>>,
    created_at: &'static std::panic::Location<'static>,
) -> TaskRef {
    let identity = Identity {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        parent: current(),
        created_at: Some(created_at),
    };
    let created = crate::clock::now();
    let slot = pages::take_slot(my_shard());
    // SAFETY: `take_slot` gives a vacant slot to this caller alone, with its page's provenance.
    unsafe { Shared::hand_out(slot, identity, name, created) }
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

/// Gives a slot back to its shard (the last reference to it is gone).
pub(crate) fn give_back(slot: NonNull<Shared>) {
    pages::give_back(slot);
}

/// Every open registered task at this moment.
pub(crate) fn snapshot() -> Vec<TaskRef> {
    let mut all = Vec::new();
    pages::for_each_slot(|slot| {
        // SAFETY: `for_each_slot` gives slots of live pages with their provenance.
        if let Some(task) = unsafe { Shared::try_ref(slot) } {
            all.push(task);
        }
    });
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
    let mut open = 0;
    pages::for_each_slot(|slot| {
        // SAFETY: a slot of a live page; its state word is always valid.
        open += usize::from(unsafe { slot.as_ref() }.is_open_task());
    });
    open
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

#[cfg(all(test, not(tasktrace_loom)))]
mod tests {
    use super::*;

    fn ids(tasks: Vec<TaskRef>) -> Vec<u64> {
        tasks.iter().map(|t| t.id()).collect()
    }

    #[test]
    fn tasks_leave_on_completion_and_drop_and_slots_are_reused() {
        let (a, ha) = crate::traced(async {});
        let (b, hb) = crate::traced(std::future::pending::<()>());
        assert!(ha.id() < hb.id());
        let live = ids(snapshot());
        assert!(live.contains(&ha.id()) && live.contains(&hb.id()));
        futures::executor::block_on(a);
        drop(b);
        let live = ids(snapshot());
        assert!(!live.contains(&ha.id()) && !live.contains(&hb.id()));
        // Closed, but their handles still answer from the slots.
        assert!(ha.is_closed() && hb.is_closed());
        let freed = [&*ha.shared as *const Shared, &*hb.shared as *const Shared];
        drop((ha, hb));
        // The next task of this thread reuses a freed slot (unless another test thread took
        // it first: threads may share a shard).
        let (_c, hc) = crate::traced(async {});
        let slot_c = &*hc.shared as *const Shared;
        assert!(freed.contains(&slot_c) || pages::usage(pages::shard_of(&hc.shared)).1 > 1);
    }

    #[test]
    fn the_pages_of_a_past_burst_are_freed() {
        let (first, hf) = crate::traced(async {});
        let shard = pages::shard_of(&hf.shared);
        let burst: Vec<_> = (0..2000).map(|_| crate::traced(async {})).collect();
        assert!(pages::usage(shard).0 >= 2000 / pages::SLOTS_PER_PAGE);
        drop(burst);
        // The first task still lives, in the first page: the burst's pages go but one.
        let (pages, live) = pages::usage(shard);
        // (Another test thread may share this shard and hold slots of its own.)
        assert!(
            pages <= 2 || live > 1,
            "{pages} pages kept for {live} tasks"
        );
        drop((first, hf));
        let (pages, live) = pages::usage(shard);
        assert!(pages <= pages::KEEP_PAGES || live > 0, "{pages} pages kept");
    }

    #[test]
    fn a_page_holds_292_slots_of_56_bytes() {
        assert_eq!(std::mem::size_of::<Shared>(), 56);
        assert_eq!(pages::SLOTS_PER_PAGE, 292);
        eprintln!(
            "Shared: {} bytes, {} per {}-byte page; Traced<Ready<()>>: {} bytes",
            std::mem::size_of::<Shared>(),
            pages::SLOTS_PER_PAGE,
            pages::PAGE_BYTES,
            std::mem::size_of::<crate::Traced<std::future::Ready<()>>>()
        );
    }

    #[test]
    fn names_live_beside_the_slots_until_the_last_handle_goes() {
        let (fut, handle) = crate::traced_named("worker", async {});
        let other = handle.clone();
        assert_eq!(handle.name(), Some("worker"));
        futures::executor::block_on(fut);
        drop(handle);
        assert_eq!(
            other.name(),
            Some("worker"),
            "kept while a handle refers to it"
        );
        assert_eq!(registered_tasks_with_id(other.id()), 0);
    }

    fn registered_tasks_with_id(id: u64) -> usize {
        ids(snapshot()).into_iter().filter(|&i| i == id).count()
    }

    #[test]
    fn parent_is_the_task_being_polled() {
        let (outer, ho) = crate::traced(async {
            let (inner, hi) = crate::traced(async {});
            inner.await;
            hi.shared.parent()
        });
        assert_eq!(futures::executor::block_on(outer), ho.id());
        assert_eq!(ho.shared.parent(), 0);
        assert_eq!(current(), 0, "restored after the poll");
    }
}
