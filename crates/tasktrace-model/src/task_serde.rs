//! [`Task`]'s `Deserialize`, written out: one pass over the task's map.
//!
//! The derived one had to buffer: `Task` flattens its [`TaskState`] (`"state": "idle",
//! "for_ms": 3.0` sit beside the task's own fields), and serde derives a flattened,
//! internally tagged field by collecting the keys it does not know into buffered values, then
//! reading the state from them, buffered again. A dump read back from JSON (the snapshot's
//! reader process sends one per dump, 10,000 tasks) spent most of its decoding there
//! (docs/BENCHMARKS.md). This reads each key once, in place. The JSON is the same: `Task`
//! keeps its derived `Serialize`, and the test below round-trips every field and every state.

use crate::dump::millis;
use crate::{Task, TaskState};
use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// The keys of a task's map: its fields, with its state's two (`state`, `for_ms`) in place of
/// `state`. Other keys are ignored, as the derived form ignored them.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Id,
    Name,
    SpawnedAt,
    Parent,
    State,
    ForMs,
    Polls,
    Awaits,
    Trace,
    Error,
    Source,
    TokioId,
    Wakers,
    Context,
    #[serde(other)]
    Other,
}

/// [`TaskState`]'s tag, as [`TaskState`]'s `Serialize` writes it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateTag {
    Idle,
    Running,
    Scheduled,
    Suspended,
    InPoll,
    Unknown,
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Task, D::Error> {
        d.deserialize_map(TaskVisitor)
    }
}

struct TaskVisitor;

impl<'de> Visitor<'de> for TaskVisitor {
    type Value = Task;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task (a map)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Task, A::Error> {
        let mut task = Task::new(0);
        let (mut id, mut trace, mut tag, mut for_ms) = (None, None, None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => id = Some(map.next_value()?),
                Key::Name => task.name = map.next_value()?,
                Key::SpawnedAt => task.spawned_at = map.next_value()?,
                Key::Parent => task.parent = map.next_value()?,
                Key::State => tag = Some(map.next_value::<StateTag>()?),
                Key::ForMs => for_ms = Some(map.next_value::<f64>()?),
                Key::Polls => task.polls = map.next_value()?,
                Key::Awaits => task.awaits = map.next_value()?,
                Key::Trace => trace = Some(map.next_value()?),
                Key::Error => task.error = map.next_value()?,
                Key::Source => task.source = map.next_value()?,
                Key::TokioId => task.tokio_id = map.next_value()?,
                Key::Wakers => task.wakers = map.next_value()?,
                Key::Context => task.context = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        task.id = id.ok_or_else(|| A::Error::missing_field("id"))?;
        task.trace = trace.ok_or_else(|| A::Error::missing_field("trace"))?;
        let since = || {
            let ms = for_ms.ok_or_else(|| A::Error::missing_field("for_ms"))?;
            millis::from_ms(ms)
                .ok_or_else(|| A::Error::custom(format!("for_ms: {ms} ms out of range")))
        };
        task.state = match tag.ok_or_else(|| A::Error::missing_field("state"))? {
            StateTag::Idle => TaskState::Idle { since: since()? },
            StateTag::Running => TaskState::Running { since: since()? },
            StateTag::Scheduled => TaskState::Scheduled,
            StateTag::Suspended => TaskState::Suspended,
            StateTag::InPoll => TaskState::InPoll,
            StateTag::Unknown => TaskState::Unknown,
        };
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Frame, Location, Task, TaskContext, TaskState, Trace};
    use std::time::Duration;

    /// Every field set, in every state: what is written is read back whole. Adding a field to
    /// `Task` breaks the destructuring below until it is read here too.
    #[test]
    fn a_task_round_trips_with_every_field_and_state() {
        let mut trace = Trace::new();
        trace.insert_path([Frame::new(
            "app::main",
            Some(Location::new("src/main.rs", 3, None)),
        )]);
        for state in [
            TaskState::Idle {
                since: Duration::from_micros(1500),
            },
            TaskState::Running {
                since: Duration::from_millis(20),
            },
            TaskState::Scheduled,
            TaskState::Suspended,
            TaskState::InPoll,
            TaskState::Unknown,
        ] {
            let t = Task {
                id: 7,
                name: Some("worker".into()),
                spawned_at: Some(Location::new("src/lib.rs", 12, Some(5))),
                parent: Some(1),
                state,
                polls: Some(42),
                awaits: vec![3, 4],
                trace: trace.clone(),
                error: Some("partial".into()),
                source: Some("snapshot".into()),
                tokio_id: Some(9),
                wakers: Some(0),
                context: vec![TaskContext::Span {
                    name: "request".into(),
                    target: "app".into(),
                    id: Some(3),
                    fields: Some("order_id=981".into()),
                }],
            };
            let Task {
                id: _,
                name: _,
                spawned_at: _,
                parent: _,
                state: _,
                polls: _,
                awaits: _,
                trace: _,
                error: _,
                source: _,
                tokio_id: _,
                wakers: _,
                context: _,
            } = &t;
            let json = serde_json::to_string(&t).unwrap();
            let back: Task = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t, "{json}");
        }
    }

    /// The fields left out are their defaults, keys it does not know are skipped, and what a
    /// task cannot be without (`id`, `trace`, `state`, an idle task's `for_ms`) is an error
    /// naming it.
    #[test]
    fn a_task_is_read_as_the_schema_says() {
        let t: Task = serde_json::from_str(
            r#"{"id":3,"state":"idle","for_ms":2.5,"trace":{"roots":[]},"later":[1,{"x":2}]}"#,
        )
        .unwrap();
        let mut want = Task::new(3);
        want.state = TaskState::Idle {
            since: Duration::from_micros(2500),
        };
        assert_eq!(t, want);
        for (json, missing) in [
            (r#"{"state":"suspended","trace":{"roots":[]}}"#, "id"),
            (r#"{"id":1,"state":"suspended"}"#, "trace"),
            (r#"{"id":1,"trace":{"roots":[]}}"#, "state"),
            (
                r#"{"id":1,"state":"running","trace":{"roots":[]}}"#,
                "for_ms",
            ),
        ] {
            let e = serde_json::from_str::<Task>(json).unwrap_err().to_string();
            assert!(
                e.contains(&format!("missing field `{missing}`")),
                "{json}: {e}"
            );
        }
        let e = serde_json::from_str::<Task>(r#"{"id":1,"state":"asleep","trace":{"roots":[]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `asleep`"), "{e}");
    }
}
