//! The values in each frame (issue 31): `tasktrace attach --values` and `core --values` on
//! `testdata/framework-targets`' values-target, dev and release. An order waits for stock:
//! its async fn's arguments (an integer, a `String`, a `Vec`, an `Option`, a struct, a
//! `Duration`, a `SocketAddr`) are read from its state machine and shown as a call, and the
//! async fn it awaits shows its own (a `&str` through its reference); a long string is cut.
//! Without `--values`, no value is shown. The program's own snapshot with values reads the
//! same. An axum handler shows its extractors, and sqlx's frames under a handler waiting for
//! a connection show the query's SQL. A LocalSet's task holding a `std::sync::MutexGuard`
//! across its await is diagnosed — and nothing else is (no false positive). A request's task
//! shows its context on its header line: the task-local `TRACE_ID` in scope (its value only
//! with values) and the `tracing` span it is instrumented with, its id read from outside
//! too, and its recorded fields only in the program's own snapshot with values.

mod support;

const SOURCE: &str = include_str!("../../../testdata/framework-targets/src/bin/values-target.rs");

use support::frameworks::*;
use support::*;
use tasktrace_model::{Diagnosis, Dump, FrameKind, NamedValue, Node, Task, TaskContext, Value};

fn value<'a>(values: &'a [NamedValue], name: &str, what: &str) -> &'a Value {
    &values
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{what}: no value {name}: {values:?}"))
        .value
}

fn int(n: i128) -> Value {
    Value::Int(n)
}

fn text(s: &str) -> Value {
    Value::Str {
        text: s.to_string(),
        cut: false,
    }
}

/// The order's frame and the one it awaits, each with its values.
fn check(d: &Dump, what: &str) {
    let order = rooted_at(d, "values_target::place_order");
    assert_eq!(order.len(), 1, "{what}: the order task: {d}");
    let root: &Node = root_of(order[0]);
    assert_eq!(root.frame.kind, FrameKind::AsyncFn, "{what}");
    let v = &root.frame.values;
    assert_eq!(value(v, "order_id", what), &int(981), "{what}");
    assert_eq!(value(v, "user", what), &text("bob"), "{what}");
    assert_eq!(
        value(v, "lines", what),
        &Value::Seq {
            len: 4,
            first: vec![int(2), int(5), int(7)]
        },
        "{what}"
    );
    assert_eq!(
        value(v, "coupon", what),
        &Value::Variant {
            name: "Some".into(),
            fields: vec![NamedValue {
                name: "__0".into(),
                value: Value::Char('x')
            }]
        },
        "{what}"
    );
    assert_eq!(
        value(v, "cart", what),
        &Value::Struct {
            name: "Cart".into(),
            fields: vec![
                NamedValue {
                    name: "id".into(),
                    value: int(17)
                },
                NamedValue {
                    name: "total_cents".into(),
                    value: int(4599)
                },
            ]
        },
        "{what}"
    );
    assert_eq!(
        value(v, "timeout", what),
        &Value::DurationNs(1_500_000_000),
        "{what}"
    );
    assert_eq!(
        value(v, "peer", what),
        &Value::Plain("10.0.0.7:443".into()),
        "{what}"
    );
    // Under it, the async fn it awaits, with its own values.
    let stock = only_child(root);
    assert_eq!(
        stock.frame.function, "values_target::wait_for_stock",
        "{what}: {root:#?}"
    );
    let v = &stock.frame.values;
    assert_eq!(value(v, "user", what), &text("bob"), "{what}");
    assert_eq!(value(v, "count", what), &int(4), "{what}");
    // A long string is cut; numbers of every kind read.
    let audit = rooted_at(d, "values_target::audit");
    assert_eq!(audit.len(), 1, "{what}: {d}");
    let v = &root_of(audit[0]).frame.values;
    assert_eq!(
        value(v, "note", what),
        &Value::Str {
            text: "x".repeat(64),
            cut: true
        },
        "{what}"
    );
    assert_eq!(value(v, "attempts", what), &int(-3), "{what}");
    assert_eq!(
        value(v, "ratio", what),
        &Value::Float("0.25".into()),
        "{what}"
    );
    check_requests(d, what);
    check_diagnosis(d, what);
}

/// The request's task (its async fn is under its task-local's scope and its span).
fn request_task<'d>(d: &'d Dump, what: &str) -> &'d Task {
    let found: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| {
            t.trace
                .walk()
                .iter()
                .any(|(_, n)| n.frame.function == "values_target::serve_request")
        })
        .collect();
    assert_eq!(found.len(), 1, "{what}: the request's task: {d}");
    found[0]
}

/// The fields the request's span recorded, as tracing-subscriber's `fmt` layer keeps them.
const SPAN_FIELDS: &str = "id=5 user=\"bob\"";

/// The request's task context: its trace id (with `value` when values are read) and its span
/// (with `fields` when the program's own snapshot read them). Returns the span's id: the
/// program's subscriber is its global one, so every read has it.
fn check_context(d: &Dump, value: Option<Value>, fields: Option<&str>, what: &str) -> u64 {
    let task = request_task(d, what);
    let id = match task.context.get(1) {
        Some(TaskContext::Span { id: Some(id), .. }) => *id,
        _ => panic!("{what}: the span's id: {:?}", task.context),
    };
    assert_eq!(
        task.context,
        vec![
            TaskContext::TaskLocal {
                key: "values_target::TRACE_ID".into(),
                value,
            },
            TaskContext::Span {
                name: "request".into(),
                target: "values_target".into(),
                id: Some(id),
                fields: fields.map(String::from),
            },
        ],
        "{what}: {}",
        task.header()
    );
    // No other task has a context.
    assert!(
        d.tasks
            .iter()
            .all(|t| t.id == task.id || t.context.is_empty()),
        "{what}: {d}"
    );
    id
}

fn field(name: &str, value: Value) -> NamedValue {
    NamedValue {
        name: name.into(),
        value,
    }
}

fn strukt(name: &str, fields: Vec<NamedValue>) -> Value {
    Value::Struct {
        name: name.into(),
        fields,
    }
}

/// The one node of `d` whose frame runs `function`.
fn frame_of<'a>(d: &'a Dump, function: &str, what: &str) -> &'a Node {
    let found: Vec<&Node> = d
        .tasks
        .iter()
        .flat_map(|t| t.trace.walk())
        .map(|(_, n)| n)
        .filter(|n| n.frame.function == function)
        .collect();
    assert_eq!(found.len(), 1, "{what}: one frame of {function}: {d}");
    found[0]
}

/// The axum handler shows its extractors (a `Path`, a `Query` of a struct, the `Json` body
/// destructured into its struct); the handler waiting for a sqlx connection shows its
/// argument, and sqlx's frames under it show the query's SQL.
fn check_requests(d: &Dump, what: &str) {
    let order = frame_of(d, "values_target::create_order", what);
    assert_eq!(
        order.frame.location.as_ref().map(|l| l.line),
        Some(line_in(SOURCE, "// @order-handler")),
        "{what}"
    );
    let v = &order.frame.values;
    assert_eq!(
        value(v, "id", what),
        &strukt("Path", vec![field("__0", int(981))]),
        "{what}"
    );
    assert_eq!(
        value(v, "delivery", what),
        &strukt(
            "Query",
            vec![field(
                "__0",
                strukt(
                    "Delivery",
                    vec![
                        field("express", Value::Bool(true)),
                        field("note", text("gift wrap"))
                    ]
                )
            )]
        ),
        "{what}"
    );
    assert_eq!(
        value(v, "order", what),
        &strukt(
            "NewOrder",
            vec![field("user", text("bob")), field("qty", int(2))]
        ),
        "{what}"
    );
    let report = frame_of(d, "values_target::report", what);
    assert_eq!(
        value(&report.frame.values, "user", what),
        &text("bob"),
        "{what}"
    );
    let sql = strukt(
        "Query",
        vec![field(
            "sql",
            text("select count(*) from orders where user = ?"),
        )],
    );
    fn below<'a>(n: &'a Node, out: &mut Vec<&'a Node>) {
        for c in &n.children {
            out.push(c);
            below(c, out);
        }
    }
    let mut under = Vec::new();
    below(report, &mut under);
    let shown: Vec<&str> = under
        .into_iter()
        .filter(|n| n.frame.values.iter().any(|v| v.value == sql))
        .map(|n| n.frame.function.as_str())
        .collect();
    assert!(
        shown.iter().any(|f| f.starts_with("sqlx_core::")),
        "{what}: no sqlx frame under the handler shows its query: {report:#?}"
    );
}

/// The one task keeping a blocking lock's guard across its await is diagnosed, and only it.
fn check_diagnosis(d: &Dump, what: &str) {
    let holder = rooted_at(d, "values_target::hold_guard");
    assert_eq!(holder.len(), 1, "{what}: the LocalSet's task: {d}");
    match &d.diagnoses[..] {
        [Diagnosis::GuardAcrossAwait {
            task,
            function,
            guard,
            location,
        }] => {
            assert_eq!(*task, holder[0].id, "{what}");
            assert_eq!(function, "values_target::hold_guard", "{what}");
            assert!(
                guard.contains("MutexGuard<u64>") && guard.starts_with("std::sync::"),
                "{what}: {guard}"
            );
            assert_eq!(
                location.as_ref().map(|l| l.line),
                Some(line_in(SOURCE, "// @guard-held")),
                "{what}"
            );
        }
        other => panic!("{what}: one diagnosis, of the guard: {other:?}"),
    }
}

fn values(profile: &str) {
    let exe = build(profile).join("values-target");
    let exe = exe.to_str().unwrap();
    let mut t = Target::spawn(exe, &[]);
    t.wait_for("ready");
    let inside: Dump = serde_json::from_str(&t.wait_for("snapshot "))
        .unwrap_or_else(|e| panic!("the target's own snapshot is a dump: {e}"));
    let what = format!("values {profile}, in-process snapshot");
    check(&inside, &what);
    // In process, with values, the span's recorded fields from the program's subscriber.
    let id = check_context(&inside, Some(text("t-5")), Some(SPAN_FIELDS), &what);
    let header = request_task(&inside, &what).header();
    assert!(
        header.contains(", TRACE_ID = \"t-5\", in span request{id=5 user=\"bob\"} (values_target)"),
        "{what}: {header}"
    );
    // Without values, neither the task-local's value nor the span's fields.
    let plain: Dump = serde_json::from_str(&t.wait_for("plain-snapshot "))
        .unwrap_or_else(|e| panic!("the target's own snapshot without values is a dump: {e}"));
    let what = format!("values {profile}, in-process snapshot without values");
    assert_eq!(check_context(&plain, None, None, &what), id, "{what}");
    let header = request_task(&plain, &what).header();
    assert!(
        header.contains(", task-local TRACE_ID, in span request (values_target)"),
        "{what}: {header}"
    );
    let pid = t.pid.to_string();
    let d = clean_dump(&["attach", &pid, "--values"]);
    let what = format!("values {profile}, attach");
    check(&d, &what);
    // From outside, the same span (the same id), without its fields even with values: they
    // are the subscriber's, not read out of process.
    assert_eq!(
        check_context(&d, Some(text("t-5")), None, &what),
        id,
        "{what}"
    );
    // The text shows them as a call.
    let shown =
        String::from_utf8_lossy(&tasktrace(&["attach", &pid, "--values"]).stdout).into_owned();
    assert!(
        shown.contains(
            "async fn values_target::place_order(order_id: 981, user: \"bob\", lines: [4 items: \
             2, 5, 7, …], coupon: Some('x'), cart: Cart { id: 17, total_cents: 4599 }, timeout: \
             Duration(1.5s), peer: 10.0.0.7:443"
        ),
        "{shown}"
    );
    assert!(
        shown.contains(
            "id: Path(981), delivery: Query(Delivery { express: true, note: \"gift wrap\" }), \
             order: NewOrder { user: \"bob\", qty: 2 })"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("(self: Query { sql: \"select count(*) from orders where user = ?\" }"),
        "{shown}"
    );
    assert!(
        shown.contains(", TRACE_ID = \"t-5\", in span request (values_target)\n"),
        "{shown}"
    );
    // Opt-in: no values without the flag (a task-local's key, and the span, still show).
    let plain = clean_dump(&["attach", &pid]);
    check_context(
        &plain,
        None,
        None,
        &format!("values {profile}, attach without values"),
    );
    let plain_text = String::from_utf8_lossy(&tasktrace(&["attach", &pid]).stdout).into_owned();
    assert!(
        plain_text.contains(", task-local TRACE_ID, in span request (values_target)\n"),
        "{plain_text}"
    );
    assert!(
        plain.tasks.iter().all(|t| t
            .trace
            .walk()
            .iter()
            .all(|(_, n)| n.frame.values.is_empty())),
        "values shown without --values: {plain}"
    );
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("values-{profile}"));
    if let Some(core) = gcore(t.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe, "--values"]);
        let _ = std::fs::remove_file(&core);
        let what = format!("values {profile}, core");
        check(&d, &what);
        assert_eq!(
            check_context(&d, Some(text("t-5")), None, &what),
            id,
            "{what}"
        );
    }
}

#[test]
fn values_dev() {
    values("dev");
}

#[test]
fn values_release() {
    values("release");
}
