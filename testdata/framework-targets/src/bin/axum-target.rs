//! An axum 0.8 service with requests stuck in a handler.
//!
//! `axum-target serve EXPECTED`: serves on 127.0.0.1 (prints `port N`), spawns a background
//! worker and a supervisor of two jobs in a `JoinSet` with plain `tokio::spawn`, and prints `ready` once EXPECTED requests are stuck in
//! `checkout → wait_for_approval` (awaiting a `Notify` that is never notified). `GET /health`
//! answers `ok` meanwhile. It serves its own `GET /debug/tasks` (`tasktrace::http`, with the
//! `snapshot` feature) on a second port (prints `debug-port N`); nothing in it uses
//! `tasktrace::spawn`.
//!
//! `axum-target client PORT H1 H2`: a reqwest client with H1 HTTP/1.1 and H2 HTTP/2 (prior
//! knowledge) `POST /checkout` requests in flight to that server; prints `sent` once they are
//! all started.
use axum::{extract::State, routing::get, routing::post, Router};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

struct App {
    approvals: Notify,
    stuck: AtomicUsize,
    changed: Notify,
    /// Never notified: the supervisor's jobs wait on it.
    stop: Notify,
}

async fn checkout(State(app): State<Arc<App>>) -> String {
    let order = wait_for_approval(&app).await;
    format!("approved {order}\n")
}

async fn wait_for_approval(app: &App) -> u64 {
    let approved = app.approvals.notified();
    app.stuck.fetch_add(1, Ordering::SeqCst);
    app.changed.notify_one();
    approved.await;
    42
}

async fn health() -> &'static str {
    "ok\n"
}

async fn background_worker(mut jobs: mpsc::Receiver<u64>) {
    while let Some(job) = jobs.recv().await {
        println!("job {job}");
    }
}

async fn job_member(app: Arc<App>) {
    app.stop.notified().await;
}

/// A supervisor of two jobs in a `JoinSet` (tokio `full`: its mutex is parking_lot's).
async fn supervisor(app: Arc<App>) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..2 {
        set.spawn(job_member(app.clone()));
    }
    while set.join_next().await.is_some() {}
}

async fn serve(expected: usize) {
    let app = Arc::new(App {
        approvals: Notify::new(),
        stuck: AtomicUsize::new(0),
        changed: Notify::new(),
        stop: Notify::new(),
    });
    let (jobs_tx, jobs_rx) = mpsc::channel(8);
    tokio::spawn(background_worker(jobs_rx));
    tokio::spawn(supervisor(app.clone()));
    let router = Router::new()
        .route("/checkout", post(checkout))
        .route("/health", get(health))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("port {}", listener.local_addr().unwrap().port());
    let debug = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("debug-port {}", debug.local_addr().unwrap().port());
    tokio::spawn(tasktrace::http::serve(debug));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    while app.stuck.load(Ordering::SeqCst) < expected {
        app.changed.notified().await;
    }
    println!("ready");
    server.await.unwrap().unwrap();
    drop(jobs_tx);
}

async fn client(port: u16, h1: usize, h2: usize) {
    let url = format!("http://127.0.0.1:{port}/checkout");
    let one = reqwest::Client::builder().http1_only().build().unwrap();
    let two = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut requests = Vec::new();
    for _ in 0..h1 {
        requests.push(tokio::spawn(one.post(&url).send()));
    }
    for _ in 0..h2 {
        requests.push(tokio::spawn(two.post(&url).send()));
    }
    println!("sent");
    for r in requests {
        let _ = r.await;
    }
}

fn main() {
    use std::io::Write;
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("serve") => rt.block_on(serve(args[2].parse().unwrap())),
        Some("client") => rt.block_on(client(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        )),
        _ => {
            eprintln!("usage: axum-target serve EXPECTED | client PORT H1 H2");
            std::process::exit(2);
        }
    }
    std::io::stdout().flush().unwrap();
}
