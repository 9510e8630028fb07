//! The state a traced future shares with its handles, the registry and dumps: one [`Shared`]
//! slot of 56 bytes per task, kept in the registry's pages ([`crate::registry`]) and reached
//! through counted references ([`TaskRef`]).
//!
//! # Why this shape
//!
//! Every registered task pays for its slot and for nothing else on the heap: the goal is at
//! most 64 bytes per idle task over plain tokio (docs/BENCHMARKS.md). There is no `Arc` header:
//! the reference count shares one word with the flags, and the slot, not a separate
//! allocation, outlives the future for as long as a handle refers to it, to answer `Finished`
//! or `Dropped`. What only some tasks need lives beside the slots, in [stripes](Stripe) keyed
//! by the slot's address: the name of a named task, and the queue of requests of a task being
//! asked for its trace.
//!
//! # Invariants
//!
//! - **References.** Bits 8.. of `state` count the [`TaskRef`]s to the slot: the traced
//!   future's, its handles', those of registry scans in progress. A slot with none is vacant
//!   and belongs to the registry. The reference that takes the count to 0 gives the slot back
//!   (`TaskRef::drop`), after removing what the stripe keeps for it. A new reference is made
//!   from an existing one (`clone`: one `fetch_add`), by [`Shared::hand_out`] on a vacant slot
//!   the caller owns, or by a scan through [`Shared::try_ref`], which never revives a count of
//!   0: so a slot is never handed out again while anything refers to it.
//! - **Flags**, bits 0..8 of `state`: `REQUESTED` (set with a queued request, cleared when the
//!   future takes the queue), `FINISHED` or `DROPPED` (together `CLOSED`: set once, under the
//!   stripe lock), `NAMED` (fixed when the slot is handed out).
//! - **Identity** (`id`, `parent`, `created_at`) is written only while the slot is vacant or
//!   being handed out, by its one owner, before the `Release` store that publishes the first
//!   reference; it is read-only while referenced. A vacant slot's `id` holds the registry's
//!   free-list link.
//! - **Stripe lock.** [`Shared::lock`] locks one of [`STRIPES`] mutexes, chosen by the slot's
//!   address. It guards the slot's `waker`, its request queue and its name in the stripe, and
//!   the close flags are set under it. No other lock is taken while it is held, and nothing is
//!   dropped under it that could run foreign code (wakers are dropped after unlocking).
//! - **`stamp`, `polls`** are written only by the thread polling the future (relaxed: readers
//!   only display them). `stamp` is the tick of the last poll start (with `IN_POLL`) or end,
//!   and the creation tick until the first poll; `polls` counts modulo 2³².

use super as registry;
use crate::addr_hash::BuildAddrHasher;
use crate::answer::{Answer, Reply};
use crate::clock;
use crate::sync::{fence, Arc, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::TraceError;
use std::cell::UnsafeCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::panic::Location;
use std::ptr::NonNull;
use std::task::Waker;

/// A request is queued: the next poll captures.
pub(crate) const REQUESTED: u32 = 1;
/// The future completed.
pub(crate) const FINISHED: u32 = 2;
/// The future was dropped unfinished.
pub(crate) const DROPPED: u32 = 4;
/// Closed either way.
pub(crate) const CLOSED: u32 = FINISHED | DROPPED;
/// The stripe holds a name for this slot.
const NAMED: u32 = 8;
const REF_SHIFT: u32 = 8;
const ONE_REF: u32 = 1 << REF_SHIFT;
const FLAG_BITS: u32 = ONE_REF - 1;
/// More references than this to one task is a leak of handles; refused long before the
/// 24-bit count could wrap.
const MAX_REFS: u32 = 1 << 23;

/// The stamp's in-poll bit (ticks are even, see [`crate::clock`]).
const IN_POLL: u64 = 1;

/// Number of stripe locks (a power of two).
pub(crate) const STRIPES: usize = 64;

/// One task's state: see the module doc for who may touch which field.
pub(crate) struct Shared {
    state: AtomicU32,
    polls: AtomicU32,
    stamp: AtomicU64,
    identity: UnsafeCell<Identity>,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the atomics are `Sync`; `identity` is written only by the one owner of a vacant
// slot and read-only while referenced, and `waker` is touched only under the stripe lock or by
// the owner of a vacant slot (see the module doc), so sharing `&Shared` between threads races
// on nothing. `Waker` is `Send + Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; no field is tied to a thread.
unsafe impl Send for Shared {}

/// A task's identity, fixed when its slot is handed out.
#[derive(Clone, Copy)]
pub(crate) struct Identity {
    /// Unique, never 0. While the slot is vacant: the registry's free-list link.
    pub(crate) id: u64,
    /// The registered task being polled on this thread when this one was created, or 0.
    pub(crate) parent: u64,
    /// Where the task was created; `None` only while vacant.
    pub(crate) created_at: Option<&'static Location<'static>>,
}

/// How a traced future stands, read without disturbing it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    /// Tick of the last poll start (in poll) or end (idle); the creation tick before the first
    /// poll.
    pub(crate) tick: u64,
    pub(crate) in_poll: bool,
    /// Polls so far, modulo 2³².
    pub(crate) polls: u64,
}

impl Shared {
    /// A vacant slot.
    pub(crate) fn vacant() -> Self {
        Shared {
            state: AtomicU32::new(0),
            polls: AtomicU32::new(0),
            stamp: AtomicU64::new(0),
            identity: UnsafeCell::new(Identity {
                id: 0,
                parent: 0,
                created_at: None,
            }),
            waker: UnsafeCell::new(None),
        }
    }

    /// Fills a vacant slot and publishes its first reference.
    ///
    /// # Safety
    /// `slot` is vacant and owned by the caller alone (just taken from the registry's free
    /// list or never used), and its pointer has the provenance of its page.
    pub(crate) unsafe fn hand_out(
        slot: NonNull<Shared>,
        identity: Identity,
        name: Option<Box<str>>,
        created: u64,
    ) -> TaskRef {
        // SAFETY: the caller owns the vacant slot; nothing else reads these fields until the
        // `Release` store below publishes it.
        let shared = unsafe { slot.as_ref() };
        // SAFETY: as above: the slot's cells are the caller's alone until it is published.
        unsafe {
            *shared.identity.get() = identity;
            *shared.waker.get() = None;
        }
        shared.stamp.store(created, Ordering::Relaxed);
        shared.polls.store(0, Ordering::Relaxed);
        let mut flags = 0;
        if let Some(name) = name {
            let replaced = stripe(slot.as_ptr() as usize)
                .names
                .insert(slot_key(slot), name);
            debug_assert!(replaced.is_none());
            flags |= NAMED;
        }
        shared.state.store(ONE_REF | flags, Ordering::Release);
        TaskRef(slot)
    }

    /// A new reference to an open task's slot, or `None` if the slot is vacant or its task
    /// closed (registry scans).
    ///
    /// # Safety
    /// `slot` points into a live page, with the page's provenance.
    pub(crate) unsafe fn try_ref(slot: NonNull<Shared>) -> Option<TaskRef> {
        // SAFETY: the page lives (caller); the state word is valid in every slot.
        let state = unsafe { &slot.as_ref().state };
        let mut s = state.load(Ordering::Relaxed);
        loop {
            let refs = s >> REF_SHIFT;
            if refs == 0 || refs >= MAX_REFS || s & CLOSED != 0 {
                return None;
            }
            match state.compare_exchange_weak(s, s + ONE_REF, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(TaskRef(slot)),
                Err(now) => s = now,
            }
        }
    }

    /// True if the slot holds a task that has not closed.
    pub(crate) fn is_open_task(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s >> REF_SHIFT != 0 && s & CLOSED == 0
    }

    fn identity(&self) -> &Identity {
        // SAFETY: read-only while referenced (module doc); `&self` comes from a reference.
        unsafe { &*self.identity.get() }
    }

    /// The free-list link of a vacant slot.
    ///
    /// # Safety
    /// The slot is vacant and the caller holds the lock of the registry shard that owns it.
    #[cfg_attr(tasktrace_loom, allow(dead_code))]
    pub(crate) unsafe fn link(&self) -> u64 {
        // SAFETY: see the function's contract.
        unsafe { (*self.identity.get()).id }
    }

    /// Sets the free-list link of a slot just given back.
    ///
    /// # Safety
    /// As for [`Shared::link`].
    #[cfg_attr(tasktrace_loom, allow(dead_code))]
    pub(crate) unsafe fn set_link(&self, next: u64) {
        // SAFETY: see the function's contract.
        unsafe { (*self.identity.get()).id = next }
    }

    /// Unique, never 0.
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.identity().id
    }

    /// The task being polled when this one was created, or 0.
    pub(crate) fn parent(&self) -> u64 {
        self.identity().parent
    }

    /// Where the task was created.
    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.identity()
            .created_at
            .expect("a referenced slot has its identity")
    }

    /// The name given at creation. Borrowed from the stripe, where it stays until the slot is
    /// given back, which `&self` (a reference's) prevents.
    pub(crate) fn name(&self) -> Option<&str> {
        if self.state.load(Ordering::Relaxed) & NAMED == 0 {
            return None;
        }
        let addr = self as *const Shared as usize;
        let name: *const str = &**stripe(addr).names.get(&addr)?;
        // SAFETY: the boxed string does not move when the map does, and is removed only when
        // the slot is given back, after the last reference (one outlives `&self`) is gone.
        Some(unsafe { &*name })
    }

    /// The stamp and poll count, relaxed.
    pub(crate) fn stamp(&self) -> Stamp {
        let raw = self.stamp.load(Ordering::Relaxed);
        Stamp {
            tick: raw & !IN_POLL,
            in_poll: raw & IN_POLL != 0,
            polls: u64::from(self.polls.load(Ordering::Relaxed)),
        }
    }

    /// The poll path's start: stamp `now` with `IN_POLL`, count the poll.
    #[inline(always)]
    pub(crate) fn poll_started(&self, now: u64) {
        self.stamp.store(now | IN_POLL, Ordering::Relaxed);
        self.polls.store(
            self.polls.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The poll path's end.
    #[inline(always)]
    pub(crate) fn poll_ended(&self, now: u64) {
        self.stamp.store(now & !IN_POLL, Ordering::Relaxed);
    }

    /// The flags, relaxed (the poll path's one look at them).
    #[inline(always)]
    pub(crate) fn flags(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & FLAG_BITS
    }

    /// The flags with `Acquire`: a close seen here happened before.
    pub(crate) fn flags_acquire(&self) -> u32 {
        self.state.load(Ordering::Acquire) & FLAG_BITS
    }

    /// Locks the slot's stripe: its waker, request queue and close flags.
    pub(crate) fn lock(&self) -> Locked<'_> {
        let key = self as *const Shared as usize;
        Locked {
            shared: self,
            key,
            stripe: stripe(key),
        }
    }
}

/// A slot with its stripe locked.
pub(crate) struct Locked<'a> {
    shared: &'a Shared,
    key: usize,
    stripe: MutexGuard<'static, Stripe>,
}

impl Locked<'_> {
    /// The task's waker.
    pub(crate) fn waker(&mut self) -> &mut Option<Waker> {
        // SAFETY: the waker is touched only under this lock while the slot is referenced
        // (module doc), and `&mut self` makes this borrow the only one through this guard.
        unsafe { &mut *self.shared.waker.get() }
    }

    /// Queues a request and sets `REQUESTED`.
    pub(crate) fn queue(&mut self, slot: Arc<Reply>) {
        match self.stripe.requests.entry(self.key) {
            Entry::Occupied(mut queue) => queue.get_mut().push(slot),
            Entry::Vacant(place) => {
                place.insert(Requests::One(slot));
            }
        }
        self.shared.state.fetch_or(REQUESTED, Ordering::Release);
    }

    /// Takes the queue and clears `REQUESTED`.
    pub(crate) fn take_requests(&mut self) -> Option<Requests> {
        self.shared.state.fetch_and(!REQUESTED, Ordering::Relaxed);
        self.stripe.requests.remove(&self.key)
    }

    /// Removes one queued request.
    pub(crate) fn withdraw(&mut self, slot: &Arc<Reply>) {
        if let Some(queue) = self.stripe.requests.get_mut(&self.key) {
            if queue.remove(slot) {
                self.stripe.requests.remove(&self.key);
            }
        }
    }

    /// Sets the close flag `why` (`FINISHED` or `DROPPED`).
    pub(crate) fn set_closed(&mut self, why: u32) {
        self.shared.state.fetch_or(why, Ordering::Release);
    }

    /// The flags; the close flags are set under this lock, so they are current.
    pub(crate) fn flags(&self) -> u32 {
        self.shared.flags()
    }
}

/// A counted reference to a task's slot (the `Arc` of a [`Shared`]).
pub(crate) struct TaskRef(NonNull<Shared>);

// SAFETY: a `TaskRef` only gives `&Shared`, which is `Sync`; the count is atomic.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl std::ops::Deref for TaskRef {
    type Target = Shared;

    #[inline(always)]
    fn deref(&self) -> &Shared {
        // SAFETY: the slot is not given back while this reference counts.
        unsafe { self.0.as_ref() }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        let old = self.state.fetch_add(ONE_REF, Ordering::Relaxed);
        if old >> REF_SHIFT >= MAX_REFS {
            self.state.fetch_sub(ONE_REF, Ordering::Relaxed);
            panic!("more than {MAX_REFS} handles to task {}", self.id());
        }
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // `Release`/`Acquire` as in `Arc`: every use through any reference happens before the
        // slot is given back and reused.
        if self.state.fetch_sub(ONE_REF, Ordering::Release) >> REF_SHIFT != 1 {
            return;
        }
        fence(Ordering::Acquire);
        give_back(self.0);
    }
}

/// The last reference is gone: clears what the stripe holds for the slot and gives it back.
#[cold]
#[inline(never)]
fn give_back(slot: NonNull<Shared>) {
    let key = slot_key(slot);
    // SAFETY: no reference is left, so nothing else reads or writes the slot's cells; scans
    // only read `state`.
    let shared = unsafe { slot.as_ref() };
    // SAFETY: as above: with no reference left, this thread alone touches the waker cell.
    let waker = unsafe { (*shared.waker.get()).take() };
    let (name, requests) = if shared.state.load(Ordering::Relaxed) & (NAMED | REQUESTED) != 0 {
        let mut stripe = stripe(key);
        (stripe.names.remove(&key), stripe.requests.remove(&key))
    } else {
        (None, None)
    };
    drop((waker, name, requests));
    shared.state.store(0, Ordering::Relaxed);
    registry::give_back(slot);
}

fn slot_key(slot: NonNull<Shared>) -> usize {
    slot.as_ptr() as usize
}

/// The requests queued for one task: nearly always one (a dump's or a handle's), kept without
/// a `Vec` (an allocation per task and dump, freed on the worker that answers).
pub(crate) enum Requests {
    One(Arc<Reply>),
    Many(Vec<Arc<Reply>>),
}

impl Requests {
    fn push(&mut self, slot: Arc<Reply>) {
        match self {
            Requests::One(first) => {
                let first = first.clone();
                *self = Requests::Many(vec![first, slot]);
            }
            Requests::Many(all) => all.push(slot),
        }
    }

    /// Removes `slot`; true when none is left.
    fn remove(&mut self, slot: &Arc<Reply>) -> bool {
        match self {
            Requests::One(only) => Arc::ptr_eq(only, slot),
            Requests::Many(all) => {
                all.retain(|s| !Arc::ptr_eq(s, slot));
                all.is_empty()
            }
        }
    }

    /// The queued requests, oldest first.
    pub(crate) fn as_slice(&self) -> &[Arc<Reply>] {
        match self {
            Requests::One(only) => std::slice::from_ref(only),
            Requests::Many(all) => all,
        }
    }
}

/// What the slots of one stripe keep beside them, by slot address.
#[derive(Default)]
pub(crate) struct Stripe {
    /// Requests waiting for the task's next poll (only tasks being asked have an entry).
    requests: HashMap<usize, Requests, BuildAddrHasher>,
    /// Names (only named tasks have an entry).
    names: HashMap<usize, Box<str>, BuildAddrHasher>,
}

/// The stripe of the slot at `addr`, locked. Consecutive slots map to different stripes.
fn stripe(addr: usize) -> MutexGuard<'static, Stripe> {
    let index = (addr / std::mem::size_of::<Shared>()) % STRIPES;
    // A poisoned stripe only means a panic elsewhere; the maps are consistent between writes.
    stripe_lock(index).lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(tasktrace_loom))]
fn stripe_lock(index: usize) -> &'static Mutex<Stripe> {
    // Padded so that two stripes never share a cache line.
    #[repr(align(128))]
    struct Padded(Mutex<Stripe>);
    static LOCKS: [Padded; STRIPES] = [const {
        Padded(Mutex::new(Stripe {
            requests: HashMap::with_hasher(BuildAddrHasher),
            names: HashMap::with_hasher(BuildAddrHasher),
        }))
    }; STRIPES];
    &LOCKS[index].0
}

#[cfg(tasktrace_loom)]
fn stripe_lock(_index: usize) -> &'static Mutex<Stripe> {
    // Loom's mutexes live in one model at a time; one stripe is enough for the models.
    loom::lazy_static! {
        static ref LOCK: Mutex<Stripe> = Mutex::new(Stripe::default());
    }
    &LOCK
}

/// Requests taken by a capturing poll. Answered explicitly; if the poll unwinds instead, the
/// drop answers `Panicked`, so no handle waits for a poll that will not come back. Usually
/// empty (a task closing with nobody asking): then neither answering nor dropping does a thing.
pub(crate) struct Taken(Option<Requests>);

impl Taken {
    pub(crate) fn answer(mut self, answer: Answer) {
        if let Some(slots) = self.0.take() {
            for slot in slots.as_slice() {
                slot.fill(answer.clone());
            }
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            for slot in slots.as_slice() {
                slot.fill(Err(TraceError::Panicked));
            }
        }
    }
}

/// Why a traced future closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    Finished,
    Dropped,
}

impl Closed {
    fn flag(self) -> u32 {
        match self {
            Closed::Finished => FINISHED,
            Closed::Dropped => DROPPED,
        }
    }

    /// The answer requests to a future closed this way get.
    fn error(self) -> TraceError {
        match self {
            Closed::Finished => TraceError::Finished,
            Closed::Dropped => TraceError::Dropped,
        }
    }
}

/// The answer a request to a future closed as `flags` say gets, if it is closed.
fn closed_error(flags: u32) -> Option<TraceError> {
    if flags & FINISHED != 0 {
        Some(Closed::Finished.error())
    } else if flags & DROPPED != 0 {
        Some(Closed::Dropped.error())
    } else {
        None
    }
}

impl Shared {
    /// A registered slot (see [`crate::registry`]).
    pub(crate) fn registered(
        created_at: &'static Location<'static>,
        name: Option<Box<str>>,
    ) -> TaskRef {
        clock::init();
        registry::register(name, created_at)
    }

    /// Queues a request and wakes the future. Fails at once if the future is gone.
    pub(crate) fn request(&self, slot: Arc<Reply>) -> Result<(), TraceError> {
        let waker = {
            let mut locked = self.lock();
            // The close bits are set under this lock: a relaxed load sees them.
            if let Some(err) = closed_error(locked.flags()) {
                return Err(err);
            }
            locked.queue(slot);
            locked.waker().clone()
        };
        // Woken outside the lock: some executors poll from inside `wake`.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Withdraws a request that timed out.
    pub(crate) fn withdraw(&self, slot: &Arc<Reply>) {
        self.lock().withdraw(slot);
    }

    pub(crate) fn take_requests(&self) -> Taken {
        Taken(self.lock().take_requests())
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn register_waker(&self, waker: &Waker) {
        let old = self.lock().waker().replace(waker.clone());
        // Dropped outside the lock: a waker's drop is foreign code.
        drop(old);
    }

    /// Closes the future for good (`why` is `Finished` or `Dropped`); idempotent.
    pub(crate) fn close(&self, why: Closed) {
        let (waker, requests) = {
            let mut locked = self.lock();
            if locked.flags() & CLOSED != 0 {
                return;
            }
            let waker = locked.waker().take();
            locked.set_closed(why.flag());
            (waker, Taken(locked.take_requests()))
        };
        // Closed tasks leave the registry's scans; the slot stays while references remain.
        drop(waker);
        requests.answer(Err(why.error()));
    }

    /// The drop of a traced future.
    pub(crate) fn drop_unfinished(&self) {
        // A finished future closed itself (`CLOSED` is set, under the lock, before `poll`
        // returns `Ready`): only an unfinished one takes the lock here.
        if !self.is_closed() {
            self.close(Closed::Dropped);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.flags_acquire() & CLOSED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_56_bytes() {
        if !cfg!(tasktrace_loom) {
            assert_eq!(std::mem::size_of::<Shared>(), 56);
        }
        assert_eq!(std::mem::size_of::<TaskRef>(), 8);
        assert_eq!(std::mem::size_of::<Option<TaskRef>>(), 8);
    }
}
