//! What a task runs in (issue 31): the `tokio::task_local!` values in scope for it and the
//! `tracing` spans its future is instrumented with, shown on its header line.
//!
//! A span's recorded fields (`order_id=981`) come only from the program's own snapshot, and
//! only with values: they are read from its subscriber (tracing-subscriber's `fmt` layer
//! keeps them formatted), which has no layout a reader from outside could rely on.

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
        /// Its id in the program's global subscriber (`tracing::span::Id`), when the span was
        /// made under that one (not under a scoped dispatcher's `with_default`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The fields it recorded, as the subscriber formatted them (`order_id=981
        /// user="bob"`): only in the program's own snapshot, only when values were asked
        /// for (they may be secrets), and only where tracing-subscriber's `fmt` layer keeps
        /// them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<String>,
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
            // As the `fmt` layer prints a span: `request{order_id=981}`.
            TaskContext::Span {
                name,
                target,
                fields: Some(fields),
                ..
            } if !fields.is_empty() => write!(f, "in span {name}{{{fields}}} ({target})"),
            TaskContext::Span { name, target, .. } => write!(f, "in span {name} ({target})"),
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
        let span = |fields: Option<&str>| TaskContext::Span {
            name: "request".into(),
            target: "app::http".into(),
            id: Some(3),
            fields: fields.map(String::from),
        };
        assert_eq!(span(None).to_string(), "in span request (app::http)");
        assert_eq!(span(Some("")).to_string(), "in span request (app::http)");
        assert_eq!(
            span(Some("order_id=981 user=\"bob\"")).to_string(),
            "in span request{order_id=981 user=\"bob\"} (app::http)"
        );
    }

    #[test]
    fn a_span_without_id_or_fields_reads_from_older_json_and_writes_none() {
        let old = r#"{"span":{"name":"request","target":"app"}}"#;
        let span: TaskContext = serde_json::from_str(old).unwrap();
        assert_eq!(
            span,
            TaskContext::Span {
                name: "request".into(),
                target: "app".into(),
                id: None,
                fields: None,
            }
        );
        assert_eq!(serde_json::to_string(&span).unwrap(), old);
        let full = TaskContext::Span {
            name: "request".into(),
            target: "app".into(),
            id: Some(7),
            fields: Some("order_id=981".into()),
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(
            json,
            r#"{"span":{"name":"request","target":"app","id":7,"fields":"order_id=981"}}"#
        );
        assert_eq!(serde_json::from_str::<TaskContext>(&json).unwrap(), full);
    }
}
