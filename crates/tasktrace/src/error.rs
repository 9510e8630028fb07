//! Why a trace could not be taken.

use std::fmt;
use std::time::Duration;

/// Why [`TraceHandle::backtrace`](crate::TraceHandle::backtrace) returned no trace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceError {
    /// The traced future completed: there is nothing suspended to trace.
    Finished,
    /// The traced future was dropped before it completed.
    Dropped,
    /// The traced future panicked while it was being traced.
    Panicked,
    /// The future was not polled within the deadline.
    Timeout {
        /// The deadline that passed.
        deadline: Duration,
        /// True when it was inside `poll` the whole time (blocked in synchronous code).
        in_poll: bool,
        /// True when it was never polled at all.
        never_polled: bool,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Finished => f.write_str("the traced future has completed"),
            TraceError::Dropped => f.write_str("the traced future was dropped"),
            TraceError::Panicked => f.write_str("the traced future panicked during the trace"),
            TraceError::Timeout {
                deadline,
                in_poll: true,
                ..
            } => write!(
                f,
                "no trace within {deadline:?}: the future is inside poll (blocked in synchronous code?)"
            ),
            TraceError::Timeout {
                deadline,
                never_polled: true,
                ..
            } => write!(
                f,
                "no trace within {deadline:?}: the future has never been polled (not spawned?)"
            ),
            TraceError::Timeout { deadline, .. } => write!(
                f,
                "no trace within {deadline:?}: its executor did not poll the future after it was woken"
            ),
        }
    }
}

impl std::error::Error for TraceError {}
