//! Logical frames: one function (async or not) at one source location.

use crate::Location;
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
        if let Some(note) = &self.note {
            write!(f, " [{note}]")?;
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
