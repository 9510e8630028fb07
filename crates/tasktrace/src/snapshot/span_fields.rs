//! The fields the spans of a snapshot's tasks recorded (`order_id=981 user="bob"`), looked up
//! in this program's own subscriber by the ids the reader read from the spans.
//!
//! Only here, in process: the fields live in the subscriber, not in the span. With
//! tracing-subscriber's `Registry` (the subscriber `tracing_subscriber::fmt().init()` and
//! `registry().with(fmt::layer())` build on), its `fmt` layer keeps each span's fields
//! formatted, as `FormattedFields<DefaultFields>` in the span's extensions. tasktrace depends on
//! the same tracing-subscriber 0.3 as the program (Cargo makes it one crate), so the
//! program's `Registry` is found by its type.
//!
//! The reader read each id while the program was stopped (or from a fork); the span may have
//! closed since and its slot been reused. The registry's ids carry the slot's generation (a
//! reused slot answers to a new id), and a span's fields are taken only when the span found
//! has the name and target read from memory: otherwise the span shows without its fields.
//! The reader keeps the id only of a span whose dispatcher is global (`Kind::Global`): the
//! global default's, or, rarely, that of a `Dispatch::from_static` subscriber set as a scoped
//! one, which nothing here tells apart from the global's but the name-and-target check (the
//! one case where a span could be shown with another span's fields: same id, name and
//! target in both subscribers).

use tasktrace_model::{Dump, TaskContext};
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::registry::{LookupSpan, SpanData};

/// Gives each span of `dump`'s task contexts that has an id its recorded fields, where the
/// program's global subscriber is a tracing-subscriber `Registry` keeping them formatted.
pub(super) fn fill(dump: &mut Dump) {
    let wanted = dump
        .tasks
        .iter()
        .flat_map(|t| &t.context)
        .any(|c| matches!(c, TaskContext::Span { id: Some(_), .. }));
    if !wanted {
        return;
    }
    // The ids are the global subscriber's (the reader kept only those): looked up on a
    // thread of its own, where no scoped dispatcher (`with_default`) of the caller's thread
    // stands in front of the global one.
    // A thread that cannot be started, or a panic inside the subscriber's lookup, leaves
    // the spans without fields.
    std::thread::scope(|s| {
        let looked_up = std::thread::Builder::new()
            .name("tasktrace-spans".into())
            .spawn_scoped(s, || {
                tracing::dispatcher::get_default(|d| look_up(d, dump));
            });
        if let Ok(thread) = looked_up {
            let _ = thread.join();
        }
    });
}

/// Writes the fields of every span of `dump` whose id `dispatch`'s `Registry` knows.
fn look_up(dispatch: &tracing::Dispatch, dump: &mut Dump) {
    let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
        return;
    };
    for c in dump.tasks.iter_mut().flat_map(|t| t.context.iter_mut()) {
        let TaskContext::Span {
            name,
            target,
            id: Some(id),
            fields,
        } = c
        else {
            continue;
        };
        let Some(data) = registry.span_data(&tracing::Id::from_u64(*id)) else {
            continue;
        };
        let meta = data.metadata();
        if meta.name() != name || meta.target() != target {
            continue;
        }
        let extensions = data.extensions();
        if let Some(f) = extensions.get::<FormattedFields<DefaultFields>>() {
            *fields = Some(without_styling(&f.fields));
        }
    }
}

/// `text` without its terminal styling: the `fmt` layer writes a field's name in italics
/// and its `=` dimmed (`ESC[3m…ESC[0m`) when its output has colours. A value's own control
/// characters are escaped by its `Debug` (`\u{1b}`): every ESC left is styling.
fn without_styling(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // A control sequence: `ESC [`, parameters, and a final letter.
        if chars.next() == Some('[') {
            for p in chars.by_ref() {
                if p.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{look_up, without_styling};
    use tasktrace_model::{Dump, Task, TaskContext};

    fn span(name: &str, target: &str, id: u64) -> TaskContext {
        TaskContext::Span {
            name: name.into(),
            target: target.into(),
            id: Some(id),
            fields: None,
        }
    }

    /// An id read from memory is given the fields of the span the subscriber has under it
    /// only when that span has the name and target read with the id (a slot reused between
    /// the read and the lookup holds another span).
    #[test]
    fn fields_only_for_the_span_read() {
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .finish(),
        );
        tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!("request", order_id = 981, user = "bob");
            let id = request.id().expect("enabled").into_u64();
            let here = module_path!();
            let mut task = Task::new(1);
            task.context = vec![
                span("request", here, id),
                span("other", here, id),
                span("request", "elsewhere", id),
                span("request", here, id + 1000),
            ];
            let mut dump = Dump::default();
            dump.tasks.push(task);
            look_up(&dispatch, &mut dump);
            let fields: Vec<Option<&str>> = dump.tasks[0]
                .context
                .iter()
                .map(|c| match c {
                    TaskContext::Span { fields, .. } => fields.as_deref(),
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(
                fields,
                [Some("order_id=981 user=\"bob\""), None, None, None]
            );
        });
    }

    #[test]
    fn styling_is_taken_out_of_formatted_fields() {
        assert_eq!(
            without_styling("\u{1b}[3morder_id\u{1b}[0m\u{1b}[2m=\u{1b}[0m981 \u{1b}[3muser\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"bob\""),
            "order_id=981 user=\"bob\""
        );
        assert_eq!(without_styling("order_id=981"), "order_id=981");
        assert_eq!(without_styling("a=\"\\u{1b}[3m\""), "a=\"\\u{1b}[3m\"");
    }
}
