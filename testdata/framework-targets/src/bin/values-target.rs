//! Async fns holding the values a person wants to see in a stuck service (issue 31): an
//! order being placed waits for stock, with its id, user, lines, coupon, cart, timeout and
//! peer kept across the await. A task of a LocalSet keeps a `std::sync::MutexGuard` across
//! its await (a diagnosis). A request's task runs in a task-local's scope (`TRACE_ID`) and a
//! `tracing` span (`request`, a tracing-subscriber `fmt` subscriber enables it): its task
//! context. Read by `tasktrace attach --values` and `core --values`
//! (crates/tasktrace-cli/tests/values.rs), and by its own in-process snapshot with values:
//! prints `ready` once every task is at its await, then `snapshot {…}` (JSON on one line).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument;

tokio::task_local! {
    /// The trace id of the request a task serves.
    static TRACE_ID: String;
}

/// A small struct of plain fields: shown field by field.
struct Cart {
    id: u32,
    total_cents: u64,
}

async fn wait_for_stock(user: &str, count: usize, gate: Arc<Notify>) -> usize {
    gate.notified().await;
    user.len() + count
}

#[allow(clippy::too_many_arguments)]
async fn place_order(
    order_id: u64,
    user: String,
    lines: Vec<u32>,
    coupon: Option<char>,
    cart: Cart,
    timeout: Duration,
    peer: SocketAddr,
    gate: Arc<Notify>,
) -> u64 {
    let n = wait_for_stock(&user, lines.len(), gate).await;
    // Used after the await: kept in the state machine across it.
    let cart = cart.id as u64 + cart.total_cents;
    println!("{order_id} {user} {lines:?} {coupon:?} {cart} {timeout:?} {peer} {n}");
    order_id
}

/// Keeps a blocking lock's guard across an await: any thread locking `counter` blocks until
/// this task runs again (only a future that is not `Send` can: a LocalSet's).
async fn hold_guard(counter: Arc<std::sync::Mutex<u64>>, gate: Arc<Notify>) {
    let mut count = counter.lock().unwrap();
    gate.notified().await; // @guard-held
    *count += 1;
}

async fn audit(note: String, attempts: i32, ratio: f64, gate: Arc<Notify>) {
    gate.notified().await;
    println!("{note} {attempts} {ratio}");
}

/// Serves a request, in its trace id's scope and its span.
async fn serve_request(request: u32, gate: Arc<Notify>) {
    gate.notified().await;
    TRACE_ID.with(|id| println!("{request} {id}"));
}

/// Whether the dump shows each of the program's async fns at its await: the order under its
/// stock wait, the audit, and the LocalSet's task with its guard.
fn all_parked(d: &tasktrace::model::Dump) -> bool {
    let parked = |function: &str| {
        d.tasks.iter().any(|t| {
            t.trace.roots.first().is_some_and(|r| {
                r.frame.function == function
                    && r.children
                        .iter()
                        .any(|c| !c.children.is_empty() || !c.frame.waits.is_empty())
            })
        })
    };
    // The request's async fn is under its scope and span: anywhere in its task's tree.
    let request_parked = d.tasks.iter().any(|t| {
        t.trace.walk().iter().any(|(_, n)| {
            n.frame.function == "values_target::serve_request" && !n.children.is_empty()
        })
    });
    parked("values_target::place_order")
        && parked("values_target::audit")
        && parked("values_target::hold_guard")
        && request_parked
}

#[tokio::main]
async fn main() {
    // As a service sets up its logs: spans are enabled (their output goes nowhere here).
    tracing_subscriber::fmt().with_writer(std::io::sink).init();
    tasktrace::snapshot::register_runtime(&tokio::runtime::Handle::current());
    let gate = Arc::new(Notify::new());
    let local_gate = gate.clone();
    std::thread::Builder::new()
        .name("local-rt".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let counter = Arc::new(std::sync::Mutex::new(0u64));
            local.spawn_local(hold_guard(counter, local_gate));
            rt.block_on(local.run_until(std::future::pending::<()>()));
        })
        .unwrap();
    tokio::spawn(place_order(
        981,
        "bob".to_string(),
        vec![2, 5, 7, 11],
        Some('x'),
        Cart {
            id: 17,
            total_cents: 4599,
        },
        Duration::from_millis(1500),
        "10.0.0.7:443".parse().unwrap(),
        gate.clone(),
    ));
    tokio::spawn(audit("x".repeat(100), -3, 0.25, gate.clone()));
    tokio::spawn(TRACE_ID.scope(
        "t-5".to_string(),
        serve_request(5, gate.clone()).instrument(tracing::info_span!("request", id = 5)),
    ));
    // Its own snapshot once every task is parked at its await, the LocalSet's too (which its
    // thread starts on its own time): an event, not a sleep (60 s at most).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let options = tasktrace::snapshot::SnapshotOptions::default().values(true);
    let inside = loop {
        match tasktrace::snapshot::snapshot_with(&options) {
            Ok(d) if all_parked(&d) || std::time::Instant::now() > deadline => break Ok(d),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(e),
        }
    };
    println!("ready");
    match inside {
        Ok(dump) => println!(
            "snapshot {}",
            dump.render(tasktrace::model::Format::Json)
                .replace('\n', " ")
        ),
        Err(e) => println!("snapshot-error {e}"),
    }
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = &gate;
    }
}
