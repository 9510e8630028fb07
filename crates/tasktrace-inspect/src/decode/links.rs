//! Edges between tasks that go through shared state, which no single task's tree shows.
//!
//! A decoder that meets one end of such an edge records a [`Link`] keyed by the address of
//! the shared allocation both ends point to (an `Arc`'s inner block): a `oneshot` channel's
//! receiver ([`Link::Waits`]) and its sender ([`Link::Completes`]); an HTTP/2 connection's
//! stream store ([`Link::Drives`]) and each stream's reference into it ([`Link::DrivenBy`]).
//! Once every task is decoded, [`resolve`] joins the ends: a task waiting on a channel whose
//! sender another task holds awaits that task (so it shows in the header, and in deadlock
//! cycles), and the root frames of a connection's task and its streams' tasks name each other.
//!
//! Keys are only compared, never read: a stale or corrupt key joins nothing.

use super::PoolKind;
use std::collections::{BTreeMap, BTreeSet};
use tasktrace_model::{Holder, PoolUse, Related, Task, Wait, WaitOn};

/// One end of an edge, found in a task's future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Waits on the channel `key` (a `oneshot::Receiver`).
    Waits(u64),
    /// Will complete the channel `key` (holds its `oneshot::Sender`).
    Completes(u64),
    /// Drives the streams of the connection `key`; what they are.
    Drives(u64, &'static str),
    /// Is a stream (what) of the connection `key`.
    DrivenBy(u64, &'static str),
    /// Waits to lock the tokio lock (or semaphore) `key` (the `Acquire` future of its batch
    /// semaphore).
    WaitsLock(u64),
    /// Holds the tokio lock `key` (a `Mutex` or `RwLock` guard): a waiter needs every
    /// holder to let go.
    HoldsLock(u64),
    /// Holds permits of the semaphore `key`: a waiter needs any of the holders to let go.
    HoldsPermit(u64),
    /// Holds the receiver of the bounded mpsc channel whose capacity semaphore is `key`: a
    /// sender waiting there waits for this task to receive.
    Receives(u64),
    /// Waits on the tokio `Notify` `key` (its `Notified` leaf).
    WaitsNotify(u64),
    /// Holds a connection of the pool `pool` of `size` connections, whose waiters wait on
    /// `key` (a semaphore's `Acquire` or a `Notify`): a waiter needs any holder to let go.
    HoldsConnection {
        /// What the pool's waiters wait on.
        key: u64,
        /// Which library's pool.
        pool: PoolKind,
        /// The pool's maximum size.
        size: u64,
    },
}

/// Joins the links of every task (`links[i]` belongs to `tasks[i]`): adds `awaits` edges and
/// notes on the tasks' root frames. `threads` are the links of `block_on` root futures, by
/// thread id: a lock one holds is named as held by that thread (no task to await).
pub fn resolve(tasks: &mut [Task], links: &[Vec<Link>], threads: &[(u64, Vec<Link>)]) {
    let mut completes = BTreeMap::new();
    let mut drives = BTreeMap::new();
    // A read lock or a semaphore can have several holders; `true` for a semaphore's.
    let mut holders: BTreeMap<u64, (BTreeSet<u64>, bool)> = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    let mut pools = Pools::default();
    for (task, ls) in tasks.iter().zip(links) {
        for l in ls {
            match *l {
                Link::HoldsConnection { key, pool, size } => {
                    pools.held(key, pool, size, Holder::Task(task.id));
                }
                Link::Completes(k) => {
                    completes.entry(k).or_insert(task.id);
                }
                Link::HoldsLock(k) | Link::HoldsPermit(k) => {
                    let h = holders.entry(k).or_default();
                    h.0.insert(task.id);
                    h.1 |= matches!(l, Link::HoldsPermit(_));
                }
                Link::Receives(k) => {
                    receivers.entry(k).or_insert(task.id);
                }
                Link::Drives(k, _) => {
                    drives.entry(k).or_insert(task.id);
                }
                _ => {}
            }
        }
    }
    for (tid, ls) in threads {
        for l in ls {
            if let Link::HoldsConnection { key, pool, size } = *l {
                pools.held(key, pool, size, Holder::Thread(*tid));
            }
        }
    }
    let mut driven: BTreeMap<u64, (&'static str, BTreeSet<u64>)> = BTreeMap::new();
    for (task, ls) in tasks.iter_mut().zip(links) {
        let waits_locks = ls
            .iter()
            .filter(|l| matches!(l, Link::WaitsLock(_)))
            .count();
        for l in ls {
            match *l {
                // A pool's waiter: the tasks holding its connections.
                Link::WaitsLock(k) | Link::WaitsNotify(k) if pools.0.contains_key(&k) => {
                    let held = &pools.0[&k];
                    let (by, wait) = held.waiter_view(task.id);
                    if let [one] = by.as_slice() {
                        task.add_await(*one);
                    }
                    let old = if matches!(l, Link::WaitsLock(_)) {
                        WaitOn::Acquire
                    } else {
                        WaitOn::Notify
                    };
                    edit_leaf_waits(task, old, |w| *w = wait.clone());
                }
                // A sender on a full bounded channel: its receiver makes room.
                Link::WaitsLock(k) if receivers.contains_key(&k) => {
                    let by = receivers[&k];
                    task.add_await(by);
                    if waits_locks == 1 {
                        edit_leaf_waits(task, WaitOn::Acquire, |w| {
                            *w = Wait {
                                task: Some(by),
                                ..Wait::new(WaitOn::MpscSend)
                            }
                        });
                    }
                }
                Link::WaitsLock(k) => {
                    let (by, permits) = holders.get(&k).map_or((Vec::new(), false), |h| {
                        (h.0.iter().copied().filter(|&h| h != task.id).collect(), h.1)
                    });
                    // A lock's waiter awaits every holder. A semaphore's waits for any one of
                    // them: only a sole holder is awaited (several are no cycle of waits).
                    if !permits || by.len() == 1 {
                        for &h in &by {
                            task.add_await(h);
                        }
                    }
                    let mut list: Vec<Holder> = by.iter().map(|&h| Holder::Task(h)).collect();
                    list.extend(
                        threads
                            .iter()
                            .filter(|(_, ls)| {
                                ls.contains(&Link::HoldsLock(k))
                                    || ls.contains(&Link::HoldsPermit(k))
                            })
                            .map(|(tid, _)| Holder::Thread(*tid)),
                    );
                    // With one lock awaited, its leaf is the one `Acquire`: say who holds it
                    // (a few of them: a semaphore can have thousands of permit holders).
                    if waits_locks == 1 && !list.is_empty() {
                        edit_leaf_waits(task, WaitOn::Acquire, |w| w.set_holders(list.clone()));
                    }
                }
                Link::Waits(k) => {
                    if let Some(&by) = completes.get(&k) {
                        task.add_await(by);
                    }
                }
                Link::DrivenBy(k, what) => {
                    if let Some(&conn) = drives.get(&k) {
                        if conn != task.id {
                            driven
                                .entry(conn)
                                .or_insert((what, BTreeSet::new()))
                                .1
                                .insert(task.id);
                            relate(
                                task,
                                Related::StreamOf {
                                    what: what.to_string(),
                                    task: conn,
                                },
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for task in tasks.iter_mut() {
        if let Some((what, ids)) = driven.get(&task.id) {
            relate(
                task,
                Related::Drives {
                    what: what.to_string(),
                    tasks: ids.iter().copied().collect(),
                },
            );
        }
    }
}

/// Edits the waits on `on` of the task's leaves.
fn edit_leaf_waits(task: &mut Task, on: WaitOn, edit: impl Fn(&mut Wait)) {
    fn visit(nodes: &mut [tasktrace_model::Node], on: WaitOn, edit: &dyn Fn(&mut Wait)) {
        for n in nodes {
            for w in n.frame.waits.iter_mut().filter(|w| w.on == on) {
                edit(w);
            }
            visit(&mut n.children, on, edit);
        }
    }
    let roots: &mut Vec<_> = std::sync::Arc::make_mut(&mut task.trace.roots);
    visit(roots, on, &edit);
}

/// The connections held of each pool, by the key its waiters wait on.
#[derive(Default)]
struct Pools(BTreeMap<u64, PoolHolders>);

struct PoolHolders {
    pool: PoolKind,
    size: u64,
    holders: BTreeSet<Holder>,
}

impl Pools {
    fn held(&mut self, key: u64, pool: PoolKind, size: u64, by: Holder) {
        self.0
            .entry(key)
            .or_insert_with(|| PoolHolders {
                pool,
                size,
                holders: BTreeSet::new(),
            })
            .holders
            .insert(by);
    }
}

impl PoolHolders {
    /// What the waiter `task` sees: the other tasks holding a connection, and its leaf's wait
    /// (`waiting for a sqlx connection (1 of 1 in use: task 7)`).
    fn waiter_view(&self, task: u64) -> (Vec<u64>, Wait) {
        let others: Vec<Holder> = self
            .holders
            .iter()
            .copied()
            .filter(|h| *h != Holder::Task(task))
            .collect();
        let tasks = others
            .iter()
            .filter_map(|h| match h {
                Holder::Task(id) => Some(*id),
                Holder::Thread(_) => None,
            })
            .collect();
        let mut wait = Wait {
            pool: Some(PoolUse {
                library: self.pool.name().to_string(),
                in_use: self.holders.len() as u64,
                size: self.size,
            }),
            ..Wait::new(WaitOn::PoolConnection)
        };
        // None but itself: it holds the only connections (the wait says so).
        wait.set_holders(others);
        (tasks, wait)
    }
}

/// Adds `related` to the task's (first) root frame, once (a stream holds several references
/// to its connection).
fn relate(task: &mut Task, related: Related) {
    let roots: &mut Vec<_> = std::sync::Arc::make_mut(&mut task.trace.roots);
    if let Some(root) = roots.first_mut() {
        if !root.frame.related.contains(&related) {
            root.frame.related.push(related);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasktrace_model::{Frame, FrameKind, Node, Trace};

    /// A lock with eight holders (read guards): its waiter awaits all eight, and its note
    /// names five and counts the rest; a semaphore's eight permit holders are named the same
    /// way but not awaited (any one of them letting go would do).
    #[test]
    fn many_holders_are_named_a_few_and_a_locks_awaited() {
        for (hold, awaited) in [
            (Link::HoldsLock(0x1000), (1..=8).collect::<Vec<u64>>()),
            (Link::HoldsPermit(0x1000), Vec::new()),
        ] {
            let tasks = waiter_after(hold);
            assert_eq!(tasks[8].awaits, awaited, "{hold:?}");
            let note = tasks[8].trace.roots[0].children[0].frame.annotation();
            assert_eq!(
                note.as_deref(),
                Some(
                    "waiting on semaphore/mutex acquire, held by task 1, task 2, task 3, \
                     task 4, task 5 and 3 more"
                )
            );
            assert!(tasks[..8].iter().all(|t| t.awaits.is_empty()));
        }
    }

    /// Task 9 waits on the lock 0x1000 that tasks 1 to 8 hold (`hold`), resolved.
    fn waiter_after(hold: Link) -> Vec<Task> {
        let mut tasks: Vec<Task> = (1..=9).map(Task::new).collect();
        let acquire = Node::new(
            Frame::new("tokio::sync::batch_semaphore::Acquire", None)
                .with_kind(FrameKind::Leaf)
                .with_wait(Wait::new(WaitOn::Acquire)),
        );
        let mut root = Node::new(Frame::new("app::limited", None).with_kind(FrameKind::AsyncFn));
        root.children.push(acquire);
        tasks[8].trace = Trace {
            roots: std::sync::Arc::new(vec![root]),
        };
        let mut links = vec![vec![hold]; 8];
        links.push(vec![Link::WaitsLock(0x1000)]);
        resolve(&mut tasks, &links, &[]);
        tasks
    }

    /// A pool's waiter names its holders with the pool's size and awaits a sole holder; one
    /// that holds the pool's only connection itself is told so; a `block_on` holder is named
    /// by its thread.
    #[test]
    fn a_pool_waiter_names_the_connection_holders() {
        let hold = Link::HoldsConnection {
            key: 0x1000,
            pool: PoolKind::Deadpool,
            size: 8,
        };
        let tasks = waiter_after(hold);
        let note = |t: &Task| t.trace.roots[0].children[0].frame.annotation().unwrap();
        assert_eq!(
            note(&tasks[8]),
            "waiting for a deadpool connection (8 of 8 in use: task 1, task 2, task 3, task 4, \
             task 5 and 3 more)"
        );
        assert!(tasks[8].awaits.is_empty(), "any of eight may let go");

        let mut tasks: Vec<Task> = waiter_after(Link::Receives(0x2000));
        let links = vec![Vec::new(); 8]
            .into_iter()
            .chain([vec![Link::WaitsLock(0x1000), hold]])
            .collect::<Vec<_>>();
        reset_acquire(&mut tasks[8]);
        resolve(&mut tasks, &links, &[]);
        assert_eq!(
            note(&tasks[8]),
            "waiting for a deadpool connection (1 of 8 in use: this task itself)"
        );

        reset_acquire(&mut tasks[8]);
        let mut links = vec![Vec::new(); 8];
        links.push(vec![Link::WaitsLock(0x1000)]);
        links[1] = vec![hold];
        resolve(&mut tasks, &links, &[(77, vec![hold])]);
        assert_eq!(
            note(&tasks[8]),
            "waiting for a deadpool connection (2 of 8 in use: task 2, the block_on future of \
             thread 77)"
        );
        assert_eq!(tasks[8].awaits, vec![2]);
    }

    /// Puts the plain `Acquire` wait back on the task's leaf.
    fn reset_acquire(task: &mut Task) {
        let roots = std::sync::Arc::make_mut(&mut task.trace.roots);
        roots[0].children[0].frame.waits = vec![Wait::new(WaitOn::Acquire)];
        task.awaits.clear();
    }
}
