//! The captures of the last dump, reused for the tasks that have not been polled since.
//!
//! # Why a capture can be reused
//!
//! A suspended future changes only when it is polled. A task that is not inside a poll, and
//! whose poll count is the one its last capture was taken at, is suspended exactly where that
//! capture found it: the dump reuses the capture instead of waking the task for a new one. A
//! warm dump of idle tasks then wakes none of them — no work for the executor, and none of the
//! extra polls a dump otherwise causes. [`DumpOptions::fresh`](crate::DumpOptions::fresh)
//! turns the reuse off (every task is woken and captured anew).
//!
//! # Invariants
//!
//! - An entry's `polls` is the task's poll count during its capturing poll, read by the
//!   polling thread itself ([`Captured::polls`]), so it is exact. The dump compares it with
//!   the count it loads (relaxed, like every stamp it reads): a poll that ends while the dump
//!   reads may be missed, and the task is then reported as it was before that poll — the same
//!   moment its state and idle time describe. The count wraps at 2³²; a task polled exactly a
//!   multiple of 2³² times between two dumps would be taken for unchanged.
//! - Entries are keyed by the registry id, which is never reused, so an entry cannot describe
//!   another task.
//! - Only captures answered `Ok` with at least one path are kept (a task that finished,
//!   failed or stayed silent is asked again next time; so is one whose capturing poll cloned
//!   no waker: nothing but a dump's wake may ever poll such a future again, so reusing its
//!   capture could leave it unpolled for good where the dump used to move it on).
//! - An entry's count is its own task's: a shared capture's [`Captured::polls`] is the count
//!   of the task that answered it, so a reused capture keeps the count of the entry it came
//!   from (equal to the count the dump read, or it would not have been reused). The cache holds the tasks of the last dump only: a task gone
//!   since is dropped by the next one. Tasks with equal captures share one `Arc`, so what stays
//!   between dumps is an id, a count and a pointer per task, and each distinct capture once.
//! - Concurrent dumps each read the cache they found. A dump's cache replaces the kept one only
//!   if the dump began later (dumps are numbered as they begin): a dump that began before
//!   some tasks were spawned, and ended after another dump had captured them, would otherwise
//!   throw their captures away.

use crate::answer::Captured;
use crate::registry::Stamp;
use crate::sync::Arc;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Number of the next dump to begin.
static NEXT_DUMP: AtomicU64 = AtomicU64::new(1);

/// The captures kept by the last dump.
static LAST: Mutex<Option<std::sync::Arc<CaptureCache>>> = Mutex::new(None);

/// One dump's captures, in the order the dump listed its tasks (the registry's order).
pub(crate) struct CaptureCache {
    /// The dump's number ([`CaptureCache::begin`]).
    dump: u64,
    entries: Vec<Entry>,
}

struct Entry {
    id: u64,
    /// The task's poll count during its capturing poll.
    polls: u64,
    captured: Arc<Captured>,
}

impl CaptureCache {
    /// The captures the last dump kept, if any.
    pub(crate) fn last() -> Option<std::sync::Arc<CaptureCache>> {
        LAST.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The number of a dump that begins now (before it lists the tasks).
    pub(crate) fn begin() -> u64 {
        NEXT_DUMP.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes this the cache the next dump reads, unless the kept one is of a dump that began
    /// later.
    pub(crate) fn keep(self) {
        let dump = self.dump;
        let mut this = Some(std::sync::Arc::new(self));
        {
            let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_ref().is_none_or(|l| l.dump < dump) {
                std::mem::swap(&mut *last, &mut this);
            }
        }
        // Dropped outside the lock (the replaced cache, or this one if it came too late):
        // freeing 10,000 entries is not for a held lock.
        drop(this);
    }

    /// The cache of dump number `dump` (from [`begin`](Self::begin)), with room for `n`
    /// tasks.
    pub(crate) fn new(dump: u64, n: usize) -> Self {
        CaptureCache {
            dump,
            entries: Vec::with_capacity(n),
        }
    }

    /// Keeps `captured`, the capture of task `id` taken at its poll count `polls` (the count
    /// of the task's own capturing poll; `captured` may be an equal capture of another task,
    /// whose [`Captured::polls`] is then that task's).
    pub(crate) fn push(&mut self, id: u64, polls: u64, captured: Arc<Captured>) {
        self.entries.push(Entry {
            id,
            polls,
            captured,
        });
    }

    /// A reader for a dump that visits tasks in the registry's order.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            entries: &self.entries,
            next: 0,
            by_id: None,
        }
    }
}

/// Finds entries by task id: in the registry's order an id is the next entry's (one
/// comparison a task when the set of tasks did not change); otherwise through an index, built
/// on the first miss.
pub(crate) struct Reader<'a> {
    entries: &'a [Entry],
    next: usize,
    by_id: Option<HashMap<u64, usize>>,
}

impl Reader<'_> {
    /// The kept capture of task `id`, if the task has not been polled since it was taken and
    /// is not inside a poll now (`now` is the stamp the dump read).
    pub(crate) fn reusable(&mut self, id: u64, now: &Stamp) -> Option<Arc<Captured>> {
        let at = match self.entries.get(self.next) {
            Some(e) if e.id == id => self.next,
            _ => {
                let entries = self.entries;
                let by_id = self.by_id.get_or_insert_with(|| {
                    entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect()
                });
                *by_id.get(&id)?
            }
        };
        self.next = at + 1;
        let entry = &self.entries[at];
        (!now.in_poll && now.polls == entry.polls).then(|| entry.captured.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(polls: u64, in_poll: bool) -> Stamp {
        Stamp {
            tick: 0,
            in_poll,
            polls,
        }
    }

    fn cache(entries: &[(u64, u64)]) -> (CaptureCache, Arc<Captured>) {
        let captured = Arc::new(Captured::default());
        let mut cache = CaptureCache::new(0, entries.len());
        for &(id, polls) in entries {
            cache.push(id, polls, captured.clone());
        }
        (cache, captured)
    }

    #[test]
    fn reuses_only_captures_of_tasks_not_polled_since() {
        let (cache, captured) = cache(&[(1, 5), (2, 7), (3, 9)]);
        let mut reader = cache.reader();
        let hit = reader.reusable(1, &stamp(5, false)).expect("unchanged");
        assert!(Arc::ptr_eq(&hit, &captured));
        assert!(
            reader.reusable(2, &stamp(8, false)).is_none(),
            "polled since"
        );
        assert!(
            reader.reusable(3, &stamp(9, true)).is_none(),
            "inside a poll"
        );
    }

    #[test]
    fn finds_tasks_out_of_order_and_misses_new_ones() {
        let (cache, _) = cache(&[(1, 1), (2, 1), (3, 1), (4, 1)]);
        let mut reader = cache.reader();
        assert!(
            reader.reusable(10, &stamp(1, false)).is_none(),
            "a new task"
        );
        assert!(reader.reusable(3, &stamp(1, false)).is_some());
        assert!(
            reader.reusable(4, &stamp(1, false)).is_some(),
            "in order again"
        );
        assert!(reader.reusable(1, &stamp(1, false)).is_some());
        assert!(reader.reusable(2, &stamp(1, false)).is_some());
    }
}
