//! Logical frames: one function (async or not) at one source location.

use crate::value::{call_text, NamedValue};
use crate::wait::write_waits;
use crate::{task_label, Location, Wait};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of code a frame is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// The state machine of an `async fn`.
    AsyncFn,
    /// The state machine of an `async { }` block.
    AsyncBlock,
    /// A closure.
    Closure,
    /// A plain function (including hand-written `Future::poll`s).
    #[default]
    Fn,
    /// The leaf a task waits on (a timer, channel, socket, lock, another task, …).
    Leaf,
}

/// Where a frame stands in its future's life. In-process captures only ever see suspended
/// frames; the out-of-process reader also sees join branches that already completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStatus {
    /// Suspended here, waiting for its children.
    #[default]
    Suspended,
    /// Finished (a completed `join!` branch, kept to show the branch exists).
    Completed,
    /// Being polled right now.
    Running,
    /// Its state could not be read (the reader's note says why): the tree stops here.
    Unreadable,
}

/// One logical frame of a trace.
///
/// Two frames are the same logical frame when their function and location are equal; that is
/// what trees merge on (never on a raw instruction pointer, which differs between the two
/// branches of one `join!`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The function's name as found in the symbols or the debuginfo (demangled, not cleaned).
    pub function: String,
    /// Where in that function the trace passes: the call or await site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What kind of code this is.
    #[serde(default)]
    pub kind: FrameKind,
    /// Suspended, completed or running.
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: FrameStatus,
    /// What a leaf waits on (`"waiting on timer"`), or other facts worth a glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How this frame waits on its children, when a macro awaits several at once: the first
    /// of them (`select!`) or all of them (`join!`). Different diagnoses: any branch wakes a
    /// `select!`, a `join!` needs every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Branches>,
    /// What this frame waits on (a leaf's wait; in the default view, the waits of the hidden
    /// frames under it), as facts: rendered by [`Wait`]'s `Display`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Wait>,
    /// Other tasks this frame names, and how they relate to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    /// The values an async fn frame holds across its await (its arguments and live locals),
    /// when the producer was asked for them; shown as a call: `place_order(order_id: 981)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<NamedValue>,
    /// The guards of blocking locks (std's, parking_lot's) this async fn keeps across its
    /// await, by type: a diagnosis ([`crate::Diagnosis::GuardAcrossAwait`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<String>,
}

/// A task a frame names ([`Frame::related`]), other than one it waits on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Related {
    /// The frame is tasktrace's wrapper of the task with this registry id (read from outside,
    /// it says which of the registry's tasks the runtime's task is).
    Registered(u64),
    /// The frame's task is a stream (`what`: `HTTP/2 stream`) of the connection that the task
    /// `task` drives.
    StreamOf {
        /// What the streams are.
        what: String,
        /// The connection's task.
        task: u64,
    },
    /// The frame's task drives the connection whose streams (`what`) are these tasks.
    Drives {
        /// What the streams are.
        what: String,
        /// The streams' tasks.
        tasks: Vec<u64>,
    },
}

impl Related {
    /// Whether this names a task (not a registry id): a reader that renumbers tasks needs to
    /// touch it.
    pub fn names_tasks(&self) -> bool {
        !matches!(self, Related::Registered(_))
    }

    /// The task ids this names (not a registry id), for a reader that renumbers tasks.
    pub fn task_ids_mut(&mut self) -> Vec<&mut u64> {
        match self {
            Related::Registered(_) => Vec::new(),
            Related::StreamOf { task, .. } => vec![task],
            Related::Drives { tasks, .. } => tasks.iter_mut().collect(),
        }
    }
}

impl fmt::Display for Related {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Related::Registered(id) => write!(f, "tasktrace task {id}"),
            Related::StreamOf { what, task } => {
                write!(f, "{what} of the connection in {}", task_label(*task))
            }
            Related::Drives { what, tasks } => {
                let s = if tasks.len() == 1 { "" } else { "s" };
                let list: Vec<String> = tasks.iter().map(|&t| task_label(t)).collect();
                write!(f, "drives {} {what}{s}: {}", tasks.len(), list.join(", "))
            }
        }
    }
}

/// How a frame awaits its branches ([`Frame::branches`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branches {
    /// `select!`: done when the first of this many branches is.
    FirstOf(u32),
    /// `join!`: done when all of this many branches are.
    AllOf(u32),
}

impl fmt::Display for Branches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Branches::FirstOf(n) => write!(f, "select!: waits for the first of {n}"),
            Branches::AllOf(n) => write!(f, "join!: waits for all {n}"),
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Frame {
    /// A suspended frame of kind [`FrameKind::Fn`].
    pub fn new(function: impl Into<String>, location: Option<Location>) -> Self {
        Frame {
            function: function.into(),
            location,
            kind: FrameKind::Fn,
            status: FrameStatus::Suspended,
            note: None,
            branches: None,
            waits: Vec::new(),
            related: Vec::new(),
            values: Vec::new(),
            guards: Vec::new(),
        }
    }

    /// The same frame with another kind.
    pub fn with_kind(mut self, kind: FrameKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same frame with a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The same frame waiting on `wait`.
    pub fn with_wait(mut self, wait: Wait) -> Self {
        self.waits.push(wait);
        self
    }

    /// Adds `wait` unless the frame already says it.
    pub fn add_wait(&mut self, wait: Wait) {
        if !self.waits.contains(&wait) {
            self.waits.push(wait);
        }
    }

    /// Everything the frame's bracket says, in words: its note, the tasks it names, its
    /// waits (`2 branches; waiting on timer, Notify`). `None` when it says nothing.
    pub fn annotation(&self) -> Option<String> {
        let mut out = self.note.clone().unwrap_or_default();
        for r in &self.related {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&r.to_string());
        }
        for guard in &self.guards {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&format!("holds a {guard} across this await"));
        }
        write_waits(&mut out, &self.waits, "; ");
        (!out.is_empty()).then_some(out)
    }

    /// The same frame with another status.
    pub fn with_status(mut self, status: FrameStatus) -> Self {
        self.status = status;
        self
    }

    /// True when `other` is the same logical frame (function and location).
    pub fn same_logical_frame(&self, other: &Frame) -> bool {
        self.function == other.function && self.location == other.location
    }
}

impl fmt::Display for Frame {
    /// `async fn a::b at src/x.rs:12 [note]`: `file:line`, the column only in the alternate
    /// form (`{:#}`, the verbose view's label).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FrameKind::AsyncFn => write!(f, "async fn {}", self.function)?,
            FrameKind::AsyncBlock => write!(f, "async block in {}", self.function)?,
            FrameKind::Closure => write!(f, "closure in {}", self.function)?,
            _ => f.write_str(&self.function)?,
        }
        if !self.values.is_empty() {
            f.write_str(&call_text(&self.values))?;
        }
        match &self.location {
            Some(loc) if f.alternate() => write!(f, " at {loc}")?,
            Some(loc) => write!(f, " at {}:{}", loc.file, loc.line)?,
            None => {}
        }
        if self.status == FrameStatus::Completed {
            f.write_str(" (completed)")?;
        }
        if let Some(branches) = &self.branches {
            write!(f, " [{branches}]")?;
        }
        if let Some(words) = self.annotation() {
            write!(f, " [{words}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod branches_tests {
    use super::*;

    #[test]
    fn branches_render_and_round_trip() {
        let mut f = Frame::new("app::pick", None).with_kind(FrameKind::AsyncFn);
        f.branches = Some(Branches::FirstOf(3));
        assert_eq!(
            f.to_string(),
            "async fn app::pick [select!: waits for the first of 3]"
        );
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"branches\":{\"first_of\":3}"), "{json}");
        assert_eq!(serde_json::from_str::<Frame>(&json).unwrap(), f);
        f.branches = Some(Branches::AllOf(2));
        assert!(f.to_string().ends_with("[join!: waits for all 2]"));
    }
}
