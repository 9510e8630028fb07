//! Plain data model of logical stack traces for async Rust.
//!
//! Two producers fill it — the in-process capture of the `tasktrace` crate and the
//! out-of-process reader of `tasktrace-inspect` — and every renderer reads it. The model
//! knows nothing of how a trace was obtained: no unsafe, no I/O, no platform code.
//!
//! - [`Location`]: a source position (`file:line:col`).
//! - [`Frame`]: one logical frame (an async fn, async block, plain fn or leaf) with its location.
//! - [`Trace`]: a tree of frames (a forest of [`Node`]s), built by merging root-to-leaf paths.
//! - [`Task`], [`Dump`]: every task of a program with its state and trace; [`ThreadInfo`]: its
//!   threads (workers, `block_on` threads with their root future, a polling worker's native
//!   stack of [`NativeFrame`]s), when the producer knows them.
//! - [`clean`]: from captured frames to readable ones. `Display` of a [`Trace`] or [`Dump`] is
//!   the default view ([`Trace::clean`]: `seed::foo::{{closure}}` reads `async fn seed::foo`,
//!   runtime and combinator plumbing is hidden, leaves say what they wait on); `{:#}` is the
//!   verbose view ([`Trace::normalized`]: every frame, with columns).
//! - [`top`]: the task table of `tasktrace top` and `/debug/tasks/top` (samples → where each
//!   task waits, for how long, how busy), as text or JSON.
//! - [`Format`]: [`Dump::render`] / [`Trace::render`] as text, verbose text, grouped text
//!   (`1,000 tasks like this`), JSON (schema in `docs/json-schema.md`), folded stacks and an SVG
//!   flame graph (cargo feature `flamegraph`, default).
//!
//! ```
//! use tasktrace_model::{Frame, Location, Trace};
//!
//! let foo = Frame::new("app::foo::{{closure}}", Some(Location::new("src/main.rs", 20, Some(11))));
//! let fiz = Frame::new("app::fiz::{{closure}}", Some(Location::new("src/main.rs", 28, Some(15))));
//! let buz = Frame::new("app::buz::{{closure}}", Some(Location::new("src/main.rs", 32, Some(11))));
//! let mut trace = Trace::new();
//! trace.insert_path([foo.clone(), fiz]);
//! trace.insert_path([foo, buz]);
//! assert_eq!(trace.roots.len(), 1);
//! assert_eq!(trace.roots[0].children.len(), 2);
//! assert_eq!(
//!     trace.to_string(),
//!     "╼ async fn app::foo at src/main.rs:20\n  \
//!        ├╼ async fn app::fiz at src/main.rs:28\n  \
//!        └╼ async fn app::buz at src/main.rs:32\n"
//! );
//! // Columns are in the verbose view (and in JSON).
//! assert!(format!("{trace:#}").contains("app::foo at src/main.rs:20:11"));
//! ```

pub mod clean;
mod context;
mod diagnosis;
mod dump;
mod frame;
mod location;
#[cfg(feature = "pprof")]
pub mod pprof;
pub mod record;
mod render;
mod sampled;
mod task_serde;
mod thread;
pub mod top;
mod trace;
mod value;
mod wait;

pub use context::TaskContext;
pub use diagnosis::{is_blocking_guard, Diagnosis};
pub use dump::{cycle_text, task_label, Dump, Task, TaskState, SCHEMA_VERSION, TOKIO_ID_BASE};
pub use frame::{Branches, Frame, FrameKind, FrameStatus, Related};
pub use location::Location;
pub use render::Format;
pub use sampled::{
    task_flags, BlockedWorkers, HeldWhileWaiting, SampledDiagnoser, SampledDiagnosis, TaskFlag,
    BLOCKED_FOR, BLOCKED_SAMPLES,
};
pub use thread::{NativeFrame, Syscall, ThreadInfo, ThreadRole};
pub use trace::{Node, Trace};
pub use value::{call_text, NamedValue, Value};
pub use wait::{join_waits, Holder, PoolUse, Socket, Timer, Wait, WaitOn, HOLDERS_SHOWN};
