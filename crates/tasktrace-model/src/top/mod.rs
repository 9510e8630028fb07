//! The task table of `tasktrace top` and of the in-process `/debug/tasks/top`: from samples
//! of one process (dumps taken some time apart) to one row per task — where it waits, how
//! long it has been seen waiting there, how often it was seen running, the diagnoses naming
//! it — and the table written as text or JSON. No terminal here: the CLI's live view draws
//! these rows; both producers print the same table.
//!
//! Modules, one job each: [`spot`] (a task's tree → where it waits), [`history`] (samples →
//! rows with waits and busy %), [`view`] (columns, sort, grouping), [`table`] (the table
//! printed once, text or JSON).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tasktrace_model::top::history::History;
//! use tasktrace_model::top::table::{render, Producer, Summary, TableFormat};
//! use tasktrace_model::{Dump, Frame, FrameKind, Location, Task, TaskState, Trace};
//!
//! let mut task = Task::new(7);
//! task.state = TaskState::Suspended;
//! task.trace.insert_path([
//!     Frame::new("app::serve", Some(Location::new("src/main.rs", 12, None)))
//!         .with_kind(FrameKind::AsyncFn),
//!     Frame::new("tokio::sync::notify::Notified", None).with_kind(FrameKind::Leaf),
//! ]);
//! let dump = Dump::new(vec![task]);
//! let mut history = History::default();
//! let t0 = Instant::now();
//! history.add(&dump, t0, &[]);
//! let rows = history.add(&dump, t0 + Duration::from_secs(1), &[]);
//! assert_eq!(rows[0].waited, Some(Duration::from_secs(1)));
//! let summary = Summary {
//!     pid: 42,
//!     samples: 2,
//!     interval: Duration::from_secs(1),
//!     producer: Producer::InProcess { took: (Duration::ZERO, Duration::ZERO) },
//!     deadlocks: Vec::new(),
//!     diagnoses: Vec::new(),
//!     sampled: Vec::new(),
//! };
//! let text = render(&rows, &summary, TableFormat::Text);
//! assert!(text.contains("serve main.rs:12"), "{text}");
//! ```

pub mod history;
pub mod spot;
pub mod table;
pub mod view;
