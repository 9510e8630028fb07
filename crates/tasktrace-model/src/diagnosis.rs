//! Diagnoses: what a dump proves is wrong, beyond where each task waits — printed at the top
//! of the text, like `DEADLOCK:` (issue 31).
//!
//! A diagnosis is made only from complete evidence in the dump's own facts, so that none is
//! wrong: [`Diagnosis::GuardAcrossAwait`] needs a suspended async fn frame whose saved state
//! holds the guard of a blocking lock ([`crate::Frame::guards`], which the out-of-process
//! reader fills from the state machine's variant: the guard is alive across that await, by
//! construction). What it cannot see: a guard inside another value (a struct field), a guard
//! held by a `block_on` future (a thread, not a task), blocking locks of other crates than
//! std's and `lock_api`'s (parking_lot, spin's through lock_api).
//!
//! [`Diagnosis::NeverWoken`] needs an idle task whose reference count the producer accounted
//! for entirely ([`crate::Task::wakers`] is `Some(0)`): tokio counts every `Waker` of a task
//! as a reference, and this one has none besides its runtime's list's and its join handle's.
//! What it cannot see: an `AbortHandle` is counted like a waker, so a task with one is never
//! diagnosed; nor is a task of `tasktrace::spawn`/`traced`, whose slot keeps a waker (a dump
//! wakes it); nor a `block_on` future (a thread, not a task).

use crate::{Dump, FrameKind, Location, Node, TaskState};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// One thing a dump proves wrong.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Diagnosis {
    /// A task's async fn keeps a blocking lock's guard (`std::sync::MutexGuard`, a
    /// parking_lot guard) across its await: every thread that locks it blocks — a worker
    /// thread of the runtime included — until the task is polled again and lets go.
    GuardAcrossAwait {
        /// The task.
        task: u64,
        /// The async fn holding it.
        function: String,
        /// Where it waits.
        location: Option<Location>,
        /// The guard's type.
        guard: String,
    },
    /// An idle task no waker exists for: nothing will ever poll it again (aborting it through
    /// its join handle, or dropping its runtime, still ends it). Typically a hand-written
    /// future returned `Pending` without keeping its waker (or dropped it).
    NeverWoken {
        /// The task.
        task: u64,
        /// Its root frame's function (the fn it was spawned with).
        function: String,
        /// The innermost frame it is suspended in (the first, if it waits on several).
        leaf: String,
        /// Where it waits: the leaf's own location, or else the await line of the innermost
        /// frame above it that has one (a hand-written future's frame has none).
        location: Option<Location>,
    },
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnosis::GuardAcrossAwait {
                task,
                function,
                location,
                guard,
            } => {
                write!(
                    f,
                    "LOCK HELD ACROSS AWAIT: {} holds a {guard} in async fn {function}",
                    crate::task_label(*task)
                )?;
                if let Some(l) = location {
                    write!(f, " at {}:{}", l.file, l.line)?;
                }
                f.write_str(
                    " while it waits: any thread locking it blocks until the task runs again",
                )
            }
            Diagnosis::NeverWoken {
                task,
                function,
                leaf,
                location,
            } => {
                write!(
                    f,
                    "NEVER WOKEN: {} ({function}) is suspended in {leaf}",
                    crate::task_label(*task)
                )?;
                if let Some(l) = location {
                    write!(f, " at {}:{}", l.file, l.line)?;
                }
                f.write_str(
                    " and no waker for it exists: nothing will poll it again (only aborting it \
                     or dropping its runtime ends it)",
                )
            }
        }
    }
}

/// Whether `ty` (a type's name) is the guard of a lock that blocks its thread.
pub fn is_blocking_guard(ty: &str) -> bool {
    let generic = ty.split('<').next().unwrap_or(ty);
    matches!(
        generic,
        "std::sync::mutex::MutexGuard"
            | "std::sync::poison::mutex::MutexGuard"
            | "std::sync::rwlock::RwLockReadGuard"
            | "std::sync::rwlock::RwLockWriteGuard"
            | "std::sync::poison::rwlock::RwLockReadGuard"
            | "std::sync::poison::rwlock::RwLockWriteGuard"
            | "lock_api::mutex::MutexGuard"
            | "lock_api::remutex::ReentrantMutexGuard"
            | "lock_api::rwlock::RwLockReadGuard"
            | "lock_api::rwlock::RwLockWriteGuard"
            | "lock_api::rwlock::RwLockUpgradableReadGuard"
    )
}

impl Dump {
    /// The diagnoses of this dump's tasks, from their frames' facts.
    pub fn find_diagnoses(&self) -> Vec<Diagnosis> {
        let mut out = Vec::new();
        // Tasks suspended alike share one tree (an `Arc`), and a producer lists them side
        // by side: the frames holding guards are looked for once per run of tasks sharing a
        // tree, not once per task (10,000 idle tasks of one kind are one walk, not 10,000).
        let mut last: Option<&Arc<Vec<Node>>> = None;
        let mut guarded: Vec<&Node> = Vec::new();
        let mut stack: Vec<&Node> = Vec::new();
        for task in &self.tasks {
            if let Some(d) = never_woken(task) {
                out.push(d);
            }
            let roots = &task.trace.roots;
            if !last.is_some_and(|l| Arc::ptr_eq(l, roots)) {
                last = Some(roots);
                guarded.clear();
                stack.clear();
                stack.extend(roots.iter());
                while let Some(n) = stack.pop() {
                    if !n.frame.guards.is_empty() {
                        guarded.push(n);
                    }
                    stack.extend(n.children.iter());
                }
            }
            for n in &guarded {
                for guard in &n.frame.guards {
                    out.push(Diagnosis::GuardAcrossAwait {
                        task: task.id,
                        function: n.frame.function.clone(),
                        location: n.frame.location.clone(),
                        guard: guard.clone(),
                    });
                }
            }
        }
        out
    }
}

/// [`Diagnosis::NeverWoken`] for `task`, if its evidence is complete: idle, every reference
/// to it accounted for with no waker left, and a trace to name it by.
fn never_woken(task: &crate::Task) -> Option<Diagnosis> {
    if task.wakers != Some(0)
        || !matches!(task.state, TaskState::Suspended | TaskState::Idle { .. })
    {
        return None;
    }
    let root = task.trace.roots.first()?;
    // Named by its outermost async fn or block: a wrapper around it (a task-local's scope,
    // a tracing span's `Instrumented`) is not what the task runs.
    let mut named = None;
    let (mut leaf, mut location) = (root, root.frame.location.as_ref());
    loop {
        if named.is_none() && matches!(leaf.frame.kind, FrameKind::AsyncFn | FrameKind::AsyncBlock)
        {
            named = Some(leaf);
        }
        let Some(child) = leaf.children.first() else {
            break;
        };
        leaf = child;
        location = leaf.frame.location.as_ref().or(location);
    }
    Some(Diagnosis::NeverWoken {
        task: task.id,
        function: named.unwrap_or(root).frame.function.clone(),
        leaf: leaf.frame.function.clone(),
        location: location.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, FrameKind, Task, Trace};

    #[test]
    fn a_blocking_guard_kept_across_an_await_is_diagnosed_once() {
        let mut frame = Frame::new("app::bump", Some(Location::new("src/main.rs", 9, None)))
            .with_kind(FrameKind::AsyncFn);
        frame.guards = vec!["std::sync::poison::mutex::MutexGuard<u64>".into()];
        let mut trace = Trace::new();
        trace.insert_path([frame]);
        let mut task = Task::new(7);
        task.trace = trace;
        let dump = Dump::new(vec![task, Task::new(8)]);
        assert_eq!(dump.diagnoses.len(), 1);
        assert_eq!(
            dump.diagnoses[0].to_string(),
            "LOCK HELD ACROSS AWAIT: task 7 holds a std::sync::poison::mutex::MutexGuard<u64> in \
             async fn app::bump at src/main.rs:9 while it waits: any thread locking it blocks \
             until the task runs again"
        );
        assert!(dump
            .to_string()
            .starts_with("LOCK HELD ACROSS AWAIT: task 7"));
        assert!(is_blocking_guard(
            "lock_api::mutex::MutexGuard<parking_lot::raw_mutex::RawMutex, u32>"
        ));
        assert!(!is_blocking_guard("tokio::sync::mutex::MutexGuard<u32>"));
    }

    /// Tasks sharing a tree (one `Arc`, as a producer gives tasks suspended alike), listed
    /// side by side or apart, each get the tree's diagnosis under their own id.
    #[test]
    fn tasks_sharing_a_tree_each_get_its_guard() {
        let mut frame = Frame::new("app::bump", Some(Location::new("src/main.rs", 9, None)))
            .with_kind(FrameKind::AsyncFn);
        frame.guards = vec!["std::sync::poison::mutex::MutexGuard<u64>".into()];
        let mut guarded = Trace::new();
        guarded.insert_path([Frame::new("app::outer", None), frame]);
        let mut plain = Trace::new();
        plain.insert_path([Frame::new("app::idle", None)]);
        let task = |id, trace: &Trace| {
            let mut t = Task::new(id);
            t.trace = trace.clone();
            t
        };
        let dump = Dump::new(vec![
            task(1, &guarded),
            task(2, &guarded),
            task(3, &plain),
            task(4, &guarded),
            task(5, &plain),
        ]);
        let tasks: Vec<u64> = dump
            .diagnoses
            .iter()
            .map(|d| match d {
                Diagnosis::GuardAcrossAwait { task, .. } => *task,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(tasks, [1, 2, 4]);
    }

    #[test]
    fn an_idle_task_with_no_waker_is_diagnosed_and_only_it() {
        let root = Frame::new("app::stuck", Some(Location::new("src/main.rs", 20, None)))
            .with_kind(FrameKind::AsyncFn);
        let leaf = Frame::new("app::Forgetful", None);
        let mut trace = Trace::new();
        trace.insert_path([root, leaf]);
        let task = |id, wakers, state| {
            let mut t = Task::new(id);
            t.trace = trace.clone();
            t.wakers = wakers;
            t.state = state;
            t
        };
        let dump = Dump::new(vec![
            task(3, Some(0), TaskState::Suspended),
            task(4, Some(1), TaskState::Suspended),
            task(5, None, TaskState::Suspended),
            task(6, Some(0), TaskState::Scheduled),
        ]);
        assert_eq!(dump.diagnoses.len(), 1, "{:?}", dump.diagnoses);
        assert_eq!(
            dump.diagnoses[0].to_string(),
            "NEVER WOKEN: task 3 (app::stuck) is suspended in app::Forgetful at src/main.rs:20 \
             and no waker for it exists: nothing will poll it again (only aborting it or \
             dropping its runtime ends it)"
        );
        assert!(dump.to_string().starts_with("NEVER WOKEN: task 3"));
    }

    #[test]
    fn a_never_woken_task_is_named_by_its_async_fn_not_its_wrapper() {
        let scope = Frame::new("tokio::task::task_local::TaskLocalFuture<String, F>", None)
            .with_kind(FrameKind::Fn);
        let root = Frame::new("app::stuck", Some(Location::new("src/main.rs", 20, None)))
            .with_kind(FrameKind::AsyncFn);
        let leaf = Frame::new("app::Forgetful", None);
        let mut trace = Trace::new();
        trace.insert_path([scope, root, leaf]);
        let mut task = Task::new(3);
        task.trace = trace;
        task.wakers = Some(0);
        task.state = TaskState::Suspended;
        let dump = Dump::new(vec![task]);
        assert!(
            dump.diagnoses[0]
                .to_string()
                .starts_with("NEVER WOKEN: task 3 (app::stuck) is suspended in app::Forgetful"),
            "{}",
            dump.diagnoses[0]
        );
    }

    /// docs/json-schema.md names every diagnosis by its JSON key.
    #[test]
    fn the_schema_lists_every_diagnosis() {
        let doc = include_str!("../../../docs/json-schema.md");
        for d in [
            Diagnosis::GuardAcrossAwait {
                task: 1,
                function: String::new(),
                location: None,
                guard: String::new(),
            },
            Diagnosis::NeverWoken {
                task: 1,
                function: String::new(),
                leaf: String::new(),
                location: None,
            },
        ] {
            let json = serde_json::to_value(&d).unwrap();
            let key = json.as_object().unwrap().keys().next().unwrap().clone();
            assert!(
                doc.contains(&format!("{{\"{key}\"")),
                "docs/json-schema.md lacks the diagnosis {key}"
            );
        }
    }
}
