//! Logical stack traces of async tasks that stay complete in optimised builds.
//!
//! Wrap a future with [`traced`]; ask the returned [`TraceHandle`] for its
//! [`backtrace`](TraceHandle::backtrace) at any time: you get the tree of futures it is
//! suspended in, from its root async fn down to every leaf it waits on, with `file:line:col`.
//! No annotations in user code: leaf futures clone the waker, and the waker handed in during a
//! requested poll records the stack at each clone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! async fn foo() { bar().await }
//! async fn bar() { tokio::join!(fiz(), buz()); }
//! async fn fiz() { tokio::time::sleep(std::time::Duration::from_secs(60)).await }
//! async fn buz() { std::future::pending::<()>().await }
//!
//! let (fut, handle) = tasktrace::traced(foo());
//! let task = tokio::spawn(fut);
//! println!("{}", handle.backtrace().await.unwrap());
//! # task.abort();
//! # }
//! ```
//!
//! Every traced future is also in a process-wide registry: [`dump()`] asks them all at once
//! and returns a [`model::Dump`] (ids, names, spawn sites, parents, idle/running/scheduled
//! states, task-awaits-task edges and deadlock cycles; `Display` and JSON). With the `tokio`
//! feature (default), [`spawn()`] / [`spawn_named()`] spawn registered tasks whose
//! [`JoinHandle`] records which task awaits which.
//!
//! What each way needs: [`traced`] and [`spawn()`]'s dumps need line tables for locations
//! (`[profile.release] debug = "line-tables-only"`, or `"limited"` for full names of inlined
//! async fns); the `snapshot` feature reads type layouts, so it needs `debug = true`.
//!
//! Production hooks, each behind the cargo feature of its name: `http` (`GET /debug/tasks` in
//! text, JSON, folded stacks, SVG or pprof), `signal` (a dump on `SIGUSR1`) and `watchdog`
//! (blocked and stalled tasks reported through `tracing`).
//!
//! With the `snapshot` feature (Linux x86-64), [`dump()`] — and so each of the hooks — lists
//! every tokio task of the process, also the ones spawned with plain `tokio::spawn` by the
//! program or its libraries: [`snapshot`] reads them the way `tasktrace attach` does, from a
//! reader process it starts from the program's own executable, which stops the program's
//! threads only while it copies the task lists (milliseconds, at any heap size) and keeps the
//! debuginfo index in its own memory (needs type layouts: `debug = true`).

mod addr_hash;
mod answer;
mod capture;
mod capture_cache;
mod clock;
mod dump;
mod dwarf_lookup;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod registry;
#[cfg(all(feature = "signal", unix))]
pub mod signal;
#[cfg(all(feature = "snapshot", target_os = "linux", not(tasktrace_loom)))]
pub mod snapshot;
#[cfg(feature = "tokio")]
mod spawn;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod stack_walk;
mod symbolize;
mod sync;
mod trace;
mod traced;
mod waker;
#[cfg(feature = "watchdog")]
pub mod watchdog;

pub use dump::{dump, dump_with, DumpOptions, DEFAULT_DUMP_DEADLINE};
pub use error::TraceError;
pub use registry::{current_task_id, registered_tasks};
#[cfg(feature = "tokio")]
pub use spawn::{spawn, spawn_local, spawn_named, JoinHandle};
pub use trace::Trace;
pub use traced::{traced, traced_named, TraceHandle, Traced, DEFAULT_DEADLINE};
#[cfg(feature = "watchdog")]
pub use watchdog::watchdog;

/// The plain data model shared with the out-of-process reader (frames, trees, dumps).
pub use tasktrace_model as model;

/// The README's examples, compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
