//! [`SampledDiagnosis::HeldWhileWaiting`]: a task that holds what other tasks wait for (a
//! lock, a permit, a pool's connection: their waits name it as the holder) while it waits
//! on something else itself, in every one of at least
//! [`BLOCKED_SAMPLES`](super::BLOCKED_SAMPLES) consecutive samples spanning at least
//! [`BLOCKED_FOR`](super::BLOCKED_FOR).
//!
//! What it proves: at each of those moments the holder was suspended at an await with the
//! thing held, and the waiters could not go on; the await it was at is the one named. What it
//! cannot see: whether it released and took the thing again between two samples (each sample
//! still saw every waiter stuck behind it); holders the producer cannot name (a thread
//! outside the runtime, holders past the ones a wait lists). Tasks of a deadlock are left to
//! the DEADLOCK line, which says more.

use super::{SampledDiagnosis, Streak};
use crate::{Dump, FrameKind, Holder, Node, TaskState, Wait, WaitOn};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Finds [`SampledDiagnosis::HeldWhileWaiting`] over the samples of one process, added in
/// order.
#[derive(Default)]
pub struct HeldWhileWaiting {
    /// Per holder and kind of wait: since when, in how many consecutive samples.
    streaks: HashMap<(u64, WaitOn), Streak<()>>,
}

/// The wait a leaf of `nodes` shows, with the innermost async fn or block above it.
fn first_wait<'a>(
    nodes: &'a [Node],
    above: Option<&'a Node>,
) -> Option<(&'a Wait, Option<&'a Node>)> {
    for n in nodes {
        let here = if matches!(n.frame.kind, FrameKind::AsyncFn | FrameKind::AsyncBlock) {
            Some(n)
        } else {
            above
        };
        if let Some(w) = n.frame.waits.first() {
            return Some((w, above));
        }
        if let Some(found) = first_wait(&n.children, here) {
            return Some(found);
        }
    }
    None
}

impl HeldWhileWaiting {
    /// Adds the sample `dump`, taken at `at` (from any fixed start); returns the diagnoses
    /// that hold at it. A holder not seen holding alike in this sample starts over.
    pub fn add(&mut self, dump: &Dump, at: Duration) -> Vec<SampledDiagnosis> {
        let in_cycles: HashSet<u64> = dump.deadlocks.iter().flatten().copied().collect();
        // Who waits for what each task holds: (holder, kind) → the waiters and one wait. The
        // waits as the clean view words them (a permit's `Acquire` inside `RwLock::write` is
        // an RwLock write), for the few tasks whose waits name a holder.
        let mut held: HashMap<(u64, WaitOn), (BTreeSet<u64>, Wait)> = HashMap::new();
        for t in &dump.tasks {
            let names_holder = t
                .trace
                .any_node(|n| n.frame.waits.iter().any(|w| !w.held_by.is_empty()));
            if !names_holder {
                continue;
            }
            for (_, n) in t.trace.clean().walk() {
                for w in &n.frame.waits {
                    for h in &w.held_by {
                        if let Holder::Task(holder) = *h {
                            if holder != t.id {
                                held.entry((holder, w.on))
                                    .or_insert_with(|| (BTreeSet::new(), w.clone()))
                                    .0
                                    .insert(t.id);
                            }
                        }
                    }
                }
            }
        }
        let mut next = HashMap::new();
        let mut out = Vec::new();
        let mut keys: Vec<_> = held.keys().copied().collect();
        keys.sort_by_key(|(h, on)| (*h, on.json_name()));
        for key in keys {
            let holder = key.0;
            let (waiters, wait) = &held[&key];
            if in_cycles.contains(&holder) {
                continue;
            }
            // The holder is suspended at an await of its own (not polled, not woken).
            let Some(task) = dump.task(holder) else {
                continue;
            };
            if !matches!(task.state, TaskState::Idle { .. } | TaskState::Suspended) {
                continue;
            }
            let Some((own_wait, at_frame)) = first_wait(&task.trace.roots, None) else {
                continue;
            };
            let streak = Streak::next(self.streaks.remove(&key), (), at);
            if let Some(seen) = streak.proven(at) {
                out.push(SampledDiagnosis::HeldWhileWaiting {
                    holder,
                    waiters: waiters.iter().copied().collect(),
                    held: Box::new(Wait {
                        task: None,
                        ..wait.steady()
                    }),
                    waits: Box::new(own_wait.steady()),
                    function: at_frame.map(|n| n.frame.function.clone()),
                    location: at_frame.and_then(|n| n.frame.location.clone()),
                    samples: streak.samples,
                    seen_ms: seen.as_millis() as u64,
                });
            }
            next.insert(key, streak);
        }
        self.streaks = next;
        out
    }
}
