//! Async fns holding the values a person wants to see in a stuck service (issue 31): an
//! order being placed waits for stock, with its id, user, lines, coupon, cart, timeout and
//! peer kept across the await. A task of a LocalSet keeps a `std::sync::MutexGuard` across
//! its await (a diagnosis). A request's task runs in a task-local's scope (`TRACE_ID`) and a
//! `tracing` span (`request{id=5 user="bob"}`, a tracing-subscriber `fmt` subscriber enables
//! it and keeps its fields): its task context. Read by `tasktrace attach --values` and
//! `core --values` (crates/tasktrace-cli/tests/values.rs), and by its own in-process snapshot
//! with values: prints `ready` once every task is at its await, then `snapshot {…}` (JSON on
//! one line), then `plain-snapshot {…}`, its snapshot without values.
//!
//! Requests, as a service sees them: an axum handler holds its extractors (`Path`, `Query`,
//! `Json`) across its await for stock, and another waits for the one connection of a sqlx
//! pool (held by a slow task) to run its query, the SQL kept in sqlx's own frames. A client
//! sends both requests over real TCP connections and keeps them open.

#[path = "../fixture.rs"]
mod fixture;

use axum::extract::{Json, Path, Query, State};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
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

/// What the service's handlers share.
struct App {
    stock: Notify,
    db: sqlx::SqlitePool,
}

/// An order's body, as JSON.
#[derive(serde::Deserialize)]
struct NewOrder {
    user: String,
    qty: u32,
}

/// How to deliver it, from the query string.
#[derive(serde::Deserialize)]
struct Delivery {
    express: bool,
    note: String,
}

async fn create_order(
    State(app): State<Arc<App>>,
    id: Path<u64>,
    delivery: Query<Delivery>,
    Json(order): Json<NewOrder>,
) -> String {
    app.stock.notified().await; // @order-handler
    format!(
        "{} {} {} {} {}",
        id.0, delivery.express, delivery.note, order.user, order.qty
    )
}

async fn report(State(app): State<Arc<App>>, Path(user): Path<String>) -> String {
    let orders: i64 = sqlx::query_scalar("select count(*) from orders where user = ?")
        .bind(&user)
        .fetch_one(&app.db)
        .await
        .unwrap_or(0);
    format!("{user} {orders}")
}

/// Holds the pool's only connection until the stock arrives (says so on `held`).
async fn hold_connection(app: Arc<App>, held: tokio::sync::oneshot::Sender<()>) {
    let conn = app.db.acquire().await.expect("a connection");
    let _ = held.send(());
    app.stock.notified().await;
    drop(conn);
}

/// Serves the orders API on `listener`.
async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) {
    let routes = axum::Router::new()
        .route("/orders/{id}", axum::routing::post(create_order))
        .route("/report/{user}", axum::routing::get(report))
        .with_state(app);
    axum::serve(listener, routes).await.unwrap();
}

/// Sends both requests, each on its own connection, and keeps the connections open.
async fn client(port: u16) {
    let body = r#"{"user":"bob","qty":2}"#;
    let order = format!(
        "POST /orders/981?express=true&note=gift%20wrap HTTP/1.1\r\nhost: shop\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let report = "GET /report/bob HTTP/1.1\r\nhost: shop\r\n\r\n".to_string();
    let mut open = Vec::new();
    for request in [order, report] {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        open.push(conn);
    }
    // A timer, not `pending()`: a task no waker can reach is diagnosed NEVER WOKEN.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(open);
}

/// Whether some task's tree has `function` suspended at an await (with a frame or a wait
/// under it).
fn parked_anywhere(d: &tasktrace::model::Dump, function: &str) -> bool {
    d.tasks.iter().any(|t| {
        t.trace.walk().iter().any(|(_, n)| {
            n.frame.function == function && (!n.children.is_empty() || !n.frame.waits.is_empty())
        })
    })
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
        && parked_anywhere(d, "values_target::create_order")
        && parked_anywhere(d, "values_target::report")
        && request_parked
}

#[tokio::main]
async fn main() {
    // As a service sets up its logs: spans are enabled (their output goes nowhere here).
    tracing_subscriber::fmt().with_writer(std::io::sink).init();
    tasktrace::snapshot::register_runtime(&tokio::runtime::Handle::current());
    let gate = Arc::new(Notify::new());
    let local_gate = gate.clone();
    fixture::local_set_thread(move |local| {
        let counter = Arc::new(std::sync::Mutex::new(0u64));
        local.spawn_local(hold_guard(counter, local_gate));
    });
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
    let db = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3600))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let app = Arc::new(App {
        stock: Notify::new(),
        db,
    });
    // The pool's one connection is held before any request asks for it.
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(hold_connection(app.clone(), held_tx));
    held_rx.await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, app));
    tokio::spawn(client(port));
    tokio::spawn(TRACE_ID.scope(
        "t-5".to_string(),
        serve_request(5, gate.clone()).instrument(tracing::info_span!(
            "request",
            id = 5,
            user = "bob"
        )),
    ));
    // Its own snapshot once every task is parked at its await, the LocalSet's too.
    let options = tasktrace::snapshot::SnapshotOptions::default().values(true);
    fixture::print_own_snapshot_when(&options, all_parked).await;
    // And one without values: no values, and no span fields (they are values too).
    fixture::print_snapshot("plain-snapshot", tasktrace::snapshot::snapshot());
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = &gate;
    }
}
