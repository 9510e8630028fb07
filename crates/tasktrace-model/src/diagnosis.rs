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

use crate::{Dump, Location, Node};
use serde::{Deserialize, Serialize};
use std::fmt;

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
        for task in &self.tasks {
            let mut stack: Vec<&Node> = task.trace.roots.iter().collect();
            while let Some(n) = stack.pop() {
                for guard in &n.frame.guards {
                    out.push(Diagnosis::GuardAcrossAwait {
                        task: task.id,
                        function: n.frame.function.clone(),
                        location: n.frame.location.clone(),
                        guard: guard.clone(),
                    });
                }
                stack.extend(n.children.iter());
            }
        }
        out
    }
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
}
