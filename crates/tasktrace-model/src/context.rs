//! What a task runs in (issue 31): the `tokio::task_local!` values in scope for it and the
//! `tracing` spans its future is instrumented with, shown on its header line.

use crate::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One piece of a task's context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskContext {
    /// A `tokio::task_local!` key in scope for the task (`KEY.scope(value, future)`).
    TaskLocal {
        /// The key's path (`app::TRACE_ID`).
        key: String,
        /// Its value, when values were asked for (they may be secrets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    /// A `tracing` span the task's future is `Instrumented` with.
    Span {
        /// The span's name.
        name: String,
        /// Its target (by default the module path where it was made).
        target: String,
    },
}

impl fmt::Display for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskContext::TaskLocal { key, value } => {
                let short = key.rsplit("::").next().unwrap_or(key);
                match value {
                    Some(v) => write!(f, "{short} = {v}"),
                    None => write!(f, "task-local {short}"),
                }
            }
            TaskContext::Span { name, target } => write!(f, "in span {name} ({target})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_as_words() {
        let local = |value| TaskContext::TaskLocal {
            key: "app::TRACE_ID".into(),
            value,
        };
        let text = Value::Str {
            text: "t-5".into(),
            cut: false,
        };
        assert_eq!(local(Some(text)).to_string(), "TRACE_ID = \"t-5\"");
        assert_eq!(local(None).to_string(), "task-local TRACE_ID");
        let span = TaskContext::Span {
            name: "request".into(),
            target: "app::http".into(),
        };
        assert_eq!(span.to_string(), "in span request (app::http)");
    }
}
