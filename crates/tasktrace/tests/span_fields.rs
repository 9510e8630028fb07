//! A snapshot with values shows the fields a task's `tracing` span recorded, looked up in
//! the program's global tracing-subscriber `Registry` (its `fmt` layer keeps them); without
//! values, none. A span made under a scoped dispatcher (`with_default`) has an id of its own
//! subscriber's, the same number as a span of the global one with the same name and target:
//! it shows without id and fields, not with the other span's. Its own process (a test
//! binary of its own): the global subscriber is set once, here.

use std::time::{Duration, Instant};
use tasktrace::model::{Dump, Task, TaskContext};
use tasktrace::snapshot::SnapshotOptions;
use tokio::sync::oneshot;
use tracing::Instrument;

async fn serve(order: oneshot::Receiver<u32>) -> u32 {
    order.await.unwrap_or(0)
}

async fn serve_scoped(order: oneshot::Receiver<u32>) -> u32 {
    order.await.unwrap_or(0)
}

/// The one task whose tree runs `function` (`span_fields::serve`), if the dump has it
/// suspended under it.
fn task_running<'d>(d: &'d Dump, function: &str) -> Option<&'d Task> {
    let found: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| {
            t.trace
                .walk()
                .iter()
                .any(|(_, n)| n.frame.function == function && !n.children.is_empty())
        })
        .collect();
    match found[..] {
        [t] => Some(t),
        _ => None,
    }
}

/// Takes snapshots with `options` until both tasks are suspended under their fns, 20 s at
/// most.
fn snapshot_until_parked(options: &SnapshotOptions) -> Dump {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = tasktrace::snapshot::snapshot_with(options)
            .unwrap_or_else(|e| panic!("this test needs a dev build with type layouts: {e}"));
        let parked = task_running(&d, "span_fields::serve").is_some()
            && task_running(&d, "span_fields::serve_scoped").is_some();
        if parked {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the two tasks were not suspended under their fns within 20 s: {d}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn span(id: Option<u64>, fields: Option<&str>) -> TaskContext {
    TaskContext::Span {
        name: "request".into(),
        target: "span_fields".into(),
        id,
        fields: fields.map(String::from),
    }
}

/// The id the snapshot read of the task's span.
fn span_id(t: &Task) -> Option<u64> {
    match &t.context[..] {
        [TaskContext::Span { id, .. }] => *id,
        other => panic!("one span: {other:?}"),
    }
}

#[test]
fn a_spans_fields_in_process_with_values_only() {
    tracing_subscriber::fmt().with_writer(std::io::sink).init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    // Made on this thread, first in each registry: the same slot, so the same id.
    let (global_tx, global_rx) = oneshot::channel();
    let global_span = tracing::info_span!("request", order_id = 981, user = "bob");
    let global_id = global_span
        .id()
        .expect("the global subscriber enables the span");
    rt.spawn(serve(global_rx).instrument(global_span));
    let scoped = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );
    let (scoped_tx, scoped_rx) = oneshot::channel();
    tracing::dispatcher::with_default(&scoped, || {
        let span = tracing::info_span!("request", order_id = 7);
        // The test's point: only the dispatcher tells the two spans apart.
        assert_eq!(span.id(), Some(global_id.clone()), "the same id in both");
        rt.spawn(serve_scoped(scoped_rx).instrument(span));
    });

    let with = snapshot_until_parked(&SnapshotOptions::default().values(true));
    let global = task_running(&with, "span_fields::serve").unwrap();
    let id = span_id(global);
    assert_eq!(id, Some(global_id.into_u64()), "{}", global.header());
    assert_eq!(
        global.context,
        vec![span(id, Some("order_id=981 user=\"bob\""))],
        "{}",
        global.header()
    );
    assert!(
        global
            .header()
            .contains(", in span request{order_id=981 user=\"bob\"} (span_fields) "),
        "{}",
        global.header()
    );
    let other = task_running(&with, "span_fields::serve_scoped").unwrap();
    assert_eq!(
        other.context,
        vec![span(None, None)],
        "a scoped dispatcher's span: no id, no fields (not the global span's): {}",
        other.header()
    );
    assert!(
        other.header().contains(", in span request (span_fields) "),
        "{}",
        other.header()
    );

    // Without values: the same spans, no fields.
    let without = snapshot_until_parked(&SnapshotOptions::default());
    let global = task_running(&without, "span_fields::serve").unwrap();
    assert_eq!(global.context, vec![span(id, None)], "{}", global.header());
    assert!(
        global.header().contains(", in span request (span_fields) "),
        "{}",
        global.header()
    );
    let other = task_running(&without, "span_fields::serve_scoped").unwrap();
    assert_eq!(other.context, vec![span(None, None)], "{}", other.header());

    // `dump()` with values joins the snapshot's context, fields and all.
    let dumped = rt.block_on(tasktrace::dump_with(
        tasktrace::DumpOptions::default().values(true),
    ));
    let global = task_running(&dumped, "span_fields::serve").unwrap();
    assert_eq!(
        global.context,
        vec![span(id, Some("order_id=981 user=\"bob\""))],
        "{}",
        global.header()
    );
    drop((global_tx, scoped_tx));
}
