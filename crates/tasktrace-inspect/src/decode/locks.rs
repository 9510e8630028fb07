//! tokio's locks: which task holds the lock another task waits for.
//!
//! Every tokio `Mutex`, `RwLock` and `Semaphore` is a `batch_semaphore::Semaphore` inside; a
//! task waiting to lock one is suspended in that semaphore's `Acquire` future (its
//! `semaphore: &Semaphore`), and a task holding one keeps a guard or permit alive across its
//! await: a saved local of an `async fn` state machine's current variant (`MutexGuard { lock:
//! &Mutex }`, `OwnedMutexGuard { lock: Arc<Mutex> }`, `RwLockWriteGuard { s: &Semaphore }`,
//! `SemaphorePermit { sem: &Semaphore }`, …). Both ends are keyed by the semaphore's address
//! and joined by [`super::links::resolve`]: the waiter awaits the holder (its header says so,
//! and two tasks each holding the lock the other waits for are a deadlock cycle).
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

impl Reader<'_> {
    /// The address of the semaphore a guard, lock or `Acquire` future at `addr` refers to:
    /// through references, `Arc`s and the fields in [`TOWARD_SEMAPHORE`], a few steps deep.
    fn semaphore_of(&self, addr: u64, ty: u64, depth: usize) -> Option<u64> {
        if depth > 6 {
            return None;
        }
        let ty = self.strip(ty);
        let name = self.type_name(ty);
        if name == SEMAPHORE {
            return Some(addr);
        }
        if name.starts_with('&') || name.starts_with("alloc::sync::Arc<") {
            let (p, pointee) = self.thin_pointer(ty, addr).ok()??;
            return (p != 0)
                .then(|| self.semaphore_of(p, pointee?, depth + 1))
                .flatten();
        }
        if name.starts_with("alloc::sync::ArcInner<") {
            let (off, t) = self.member(ty, "data")?;
            return self.semaphore_of(addr + off, t, depth + 1);
        }
        TOWARD_SEMAPHORE.iter().find_map(|field| {
            let (off, t) = self.member(ty, field)?;
            self.semaphore_of(addr + off, t, depth + 1)
        })
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
    /// lock guard or permit among them is a lock this task holds.
    pub(super) fn holds_locks(&mut self, base: u64, variant_ty: u64) {
        let r = self.r;
        for (_, off, t) in r.members(variant_ty) {
            let t = r.strip(t);
            if is_guard(r.type_name(t)) {
                if let Some(key) = r.semaphore_of(base + off, t, 0) {
                    self.links.push(Link::HoldsLock(key));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_guard;

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
