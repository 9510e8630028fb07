//! tokio's locks: which task holds the lock another task waits for.
//!
//! Every tokio `Mutex`, `RwLock` and `Semaphore` is a `batch_semaphore::Semaphore` inside; a
//! task waiting to lock one is suspended in that semaphore's `Acquire` future (its
//! `semaphore: &Semaphore`), and a task holding one keeps a guard or permit alive across its
//! await: a saved local of an `async fn` state machine's current variant (`MutexGuard { lock:
//! &Mutex }`, `OwnedMutexGuard { lock: Arc<Mutex> }`, `RwLockWriteGuard { s: &Semaphore }`,
//! `SemaphorePermit { sem: &Semaphore }`, …). Both ends are keyed by the semaphore's address
//! and joined by [`super::links::resolve`]: the waiter awaits the holders of a lock (its
//! header says so, and two tasks each holding the lock the other waits for are a deadlock
//! cycle). A semaphore's waiter needs only one of its permit holders to let go, so it awaits
//! a holder only when there is one; several are named, not awaited.
//!
//! A bounded `mpsc` channel's capacity is a semaphore too: a sender blocked on a full channel
//! waits in an `Acquire` of it, and the task holding the channel's `Receiver` (a saved local,
//! as guards are) is the one that makes room; the sender awaits it.
//!
//! Only guards held by async fn state machines are seen (not ones inside hand-written futures
//! or behind `Arc`s), and only by tasks: a guard held by a `block_on` root future names no task.

use super::links::Link;
use super::Decoder;
use crate::value::Reader;

/// The semaphore every tokio lock is built on.
const SEMAPHORE: &str = "tokio::sync::batch_semaphore::Semaphore";

/// Fields that lead from a guard (or a lock, or a public `Semaphore`) to its semaphore:
/// never into the data the lock guards.
const TOWARD_SEMAPHORE: [&str; 4] = ["lock", "s", "sem", "ll_sem"];

/// True for the type of a tokio lock guard or semaphore permit.
fn is_guard(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("tokio::sync::") else {
        return false;
    };
    let generic = rest.split('<').next().unwrap_or(rest);
    let last = generic.rsplit("::").next().unwrap_or(generic);
    last.ends_with("Guard") || last.ends_with("SemaphorePermit")
}

/// A bounded mpsc channel's receiver, and the path from it to the channel's capacity
/// semaphore (`Receiver.chan: Rx`, `Rx.inner: Arc<Chan>`, `Chan.semaphore: bounded::Semaphore`,
/// its `semaphore`): the one a sender blocked on a full channel waits on.
const RECEIVER: &str = "tokio::sync::mpsc::bounded::Receiver<";
const RECEIVER_TO_SEMAPHORE: [&str; 4] = ["chan", "inner", "semaphore", "semaphore"];

/// Most steps taken from a guard, lock or receiver to its semaphore (pointers and fields).
const MAX_STEPS: usize = 6;

impl Reader<'_> {
    /// The value at `addr` (type `ty`) stands for, through references, `Arc`s and their inner
    /// blocks, each a step counted in `steps`: its address and (stripped) type; `None` at a
    /// null or unreadable pointer, or past [`MAX_STEPS`].
    fn through_pointers(&self, mut addr: u64, ty: u64, steps: &mut usize) -> Option<(u64, u64)> {
        let mut ty = self.strip(ty);
        loop {
            if *steps > MAX_STEPS {
                return None;
            }
            let name = self.type_name(ty);
            if name.starts_with('&') || name.starts_with("alloc::sync::Arc<") {
                let (p, pointee) = self.thin_pointer(ty, addr).ok()??;
                if p == 0 {
                    return None;
                }
                (addr, ty) = (p, self.strip(pointee?));
            } else if name.starts_with("alloc::sync::ArcInner<") {
                let (off, t) = self.member(ty, "data")?;
                (addr, ty) = (addr + off, self.strip(t));
            } else {
                return Some((addr, ty));
            }
            *steps += 1;
        }
    }

    /// The address of the semaphore a guard, lock or `Acquire` future at `addr` refers to:
    /// through pointers and the fields in [`TOWARD_SEMAPHORE`], a few steps deep.
    fn semaphore_of(&self, addr: u64, ty: u64, mut steps: usize) -> Option<u64> {
        let (addr, ty) = self.through_pointers(addr, ty, &mut steps)?;
        if self.type_name(ty) == SEMAPHORE {
            return Some(addr);
        }
        TOWARD_SEMAPHORE.iter().find_map(|field| {
            let (off, t) = self.member(ty, field)?;
            self.semaphore_of(addr + off, t, steps + 1)
        })
    }

    /// The value reached from `addr` (type `ty`) through the members `path` (bounded by
    /// it), following pointers on the way (those counted in `steps`); its address if it is
    /// the semaphore.
    fn semaphore_along(&self, addr: u64, ty: u64, path: &[&str], mut steps: usize) -> Option<u64> {
        let (addr, ty) = self.through_pointers(addr, ty, &mut steps)?;
        match path.split_first() {
            None => (self.type_name(ty) == SEMAPHORE).then_some(addr),
            Some((field, rest)) => {
                let (off, t) = self.member(ty, field)?;
                self.semaphore_along(addr + off, t, rest, steps)
            }
        }
    }
}

impl Decoder<'_, '_, '_> {
    /// An `Acquire` leaf at `addr`: the task waits for the semaphore it names.
    pub(super) fn waits_for_lock(&mut self, addr: u64, ty: u64) {
        let r = self.r;
        if let Some(key) = r
            .member(ty, "semaphore")
            .and_then(|(off, t)| r.semaphore_of(addr + off, t, 0))
        {
            self.links.push(Link::WaitsLock(key));
        }
    }

    /// The members of a state machine's current variant (at `base`, type `variant_ty`): each
    /// lock guard or permit among them is a lock this task holds; a bounded mpsc receiver, a
    /// channel whose senders wait for this task when it is full; a pool's connection handle, a
    /// connection it holds (see [`super::pools`]).
    pub(super) fn holds_locks(&mut self, base: u64, variant_ty: u64) {
        let r = self.r;
        for (_, off, t) in r.members(variant_ty) {
            let t = r.strip(t);
            let name = r.type_name(t);
            if name.starts_with(RECEIVER) {
                if let Some(key) = r.semaphore_along(base + off, t, &RECEIVER_TO_SEMAPHORE, 0) {
                    self.links.push(Link::Receives(key));
                }
                continue;
            }
            self.holds_connection(base + off, t, name);
            if is_guard(name) {
                if let Some(key) = r.semaphore_of(base + off, t, 0) {
                    self.links.push(if name.ends_with("SemaphorePermit") {
                        Link::HoldsPermit(key)
                    } else {
                        Link::HoldsLock(key)
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::with_this_process;
    use super::super::{Decoder, Shapes};
    use super::is_guard;
    use crate::decode::Link;
    use futures::FutureExt;
    use std::sync::Arc;
    use tokio::sync::{Mutex, RwLock, Semaphore};

    /// Every kind of tokio guard and permit, held across an await.
    async fn hold_all(
        m: &Mutex<u32>,
        om: Arc<Mutex<u32>>,
        rw: &RwLock<u32>,
        wrw: &RwLock<u32>,
        orw: Arc<RwLock<u32>>,
        sem: &Semaphore,
        osem: Arc<Semaphore>,
    ) -> u32 {
        let g1 = m.lock().await;
        let g2 = om.lock_owned().await;
        let g3 = rw.read().await;
        let g4 = wrw.write().await;
        let g5 = orw.read_owned().await;
        let p1 = sem.acquire().await.unwrap();
        let p2 = osem.acquire_owned().await.unwrap();
        std::future::pending::<()>().await;
        drop((p1, p2));
        *g1 + *g2 + *g3 + *g4 + *g5
    }

    /// A real state machine holding every kind of guard: each is found, keyed by its lock's
    /// semaphore, and a task waiting to lock the same mutex waits on the same key.
    #[test]
    fn held_guards_and_waiters_meet_at_the_semaphore() {
        with_this_process(|r, tk, info| {
            let m = Mutex::new(1);
            let om = Arc::new(Mutex::new(2));
            let (rw, wrw, orw) = (RwLock::new(3), RwLock::new(4), Arc::new(RwLock::new(5)));
            let (sem, osem) = (Semaphore::new(1), Arc::new(Semaphore::new(1)));
            let mut holder = Box::pin(hold_all(
                &m,
                om.clone(),
                &rw,
                &wrw,
                orw.clone(),
                &sem,
                osem.clone(),
            ));
            assert!(holder.as_mut().now_or_never().is_none());
            let mut waiter = Box::pin(m.lock());
            assert!(waiter.as_mut().now_or_never().is_none());

            let ty_of = |name: &str| info.types_named(name).first().copied();
            let Some(env) =
                ty_of("tasktrace_inspect::decode::locks::tests::hold_all::{async_fn_env#0}")
            else {
                eprintln!("no hold_all state machine in this test binary's debuginfo: skipped");
                return;
            };
            let shapes = Shapes::new();
            let mut dec = Decoder::new(r, tk, &shapes);
            dec.decode(holder.as_ref().get_ref() as *const _ as u64, env, 0);
            let mut held: Vec<u64> = dec
                .links
                .iter()
                .filter_map(|l| match l {
                    Link::HoldsLock(k) | Link::HoldsPermit(k) => Some(*k),
                    _ => None,
                })
                .collect();
            held.sort_unstable();
            // Where each lock's semaphore is, found from the lock itself.
            let sem_of = |addr: *const u8, name: &str| {
                let ty = ty_of(name).unwrap_or_else(|| panic!("no {name}"));
                r.semaphore_of(addr as u64, ty, 0)
                    .unwrap_or_else(|| panic!("no semaphore in {name}"))
            };
            let mutex = sem_of(
                (&m as *const Mutex<u32>).cast(),
                "tokio::sync::mutex::Mutex<u32>",
            );
            let rwlock = "tokio::sync::rwlock::RwLock<u32>";
            let semaphore = "tokio::sync::semaphore::Semaphore";
            let mut want = vec![
                mutex,
                sem_of(Arc::as_ptr(&om).cast(), "tokio::sync::mutex::Mutex<u32>"),
                sem_of((&rw as *const RwLock<u32>).cast(), rwlock),
                sem_of((&wrw as *const RwLock<u32>).cast(), rwlock),
                sem_of(Arc::as_ptr(&orw).cast(), rwlock),
                sem_of((&sem as *const Semaphore).cast(), semaphore),
                sem_of(Arc::as_ptr(&osem).cast(), semaphore),
            ];
            want.sort_unstable();
            assert_eq!(held, want, "guards found: {:?}", dec.links);
            // The two permits are a semaphore's (a waiter needs any holder to let go).
            let permits = dec
                .links
                .iter()
                .filter(|l| matches!(l, Link::HoldsPermit(_)));
            assert_eq!(permits.count(), 2, "{:?}", dec.links);

            // The waiter: `Mutex::lock`'s state machine, down to its `Acquire`.
            let Some((_, lock_env)) = info
                .types_with_prefix("tokio::sync::mutex::")
                .into_iter()
                .find(|(n, _)| n.contains("::lock::{async_fn_env#0}") && n.ends_with("<u32>"))
            else {
                eprintln!("no Mutex::lock state machine in this test binary: skipped");
                return;
            };
            let mut dec = Decoder::new(r, tk, &shapes);
            dec.decode(waiter.as_ref().get_ref() as *const _ as u64, lock_env, 0);
            assert_eq!(dec.links, [Link::WaitsLock(mutex)]);
        });
    }

    #[test]
    fn guards_and_permits_are_told_from_locks_and_futures() {
        for name in [
            "tokio::sync::mutex::MutexGuard<u32>",
            "tokio::sync::mutex::OwnedMutexGuard<alloc::vec::Vec<u8, alloc::alloc::Global>>",
            "tokio::sync::rwlock::write_guard::RwLockWriteGuard<u32>",
            "tokio::sync::rwlock::owned_read_guard::OwnedRwLockReadGuard<u32, u32>",
            "tokio::sync::semaphore::SemaphorePermit",
            "tokio::sync::semaphore::OwnedSemaphorePermit",
        ] {
            assert!(is_guard(name), "{name}");
        }
        for name in [
            "tokio::sync::mutex::Mutex<u32>",
            "tokio::sync::batch_semaphore::Acquire",
            "std::sync::mutex::MutexGuard<u32>",
            "tokio::sync::mutex::Mutex<tokio::sync::mutex::MutexGuard<u32>>",
        ] {
            assert!(!is_guard(name), "{name}");
        }
    }
}
