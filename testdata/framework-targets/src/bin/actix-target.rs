//! An actix-web 4 service with requests stuck in a handler (`actix` in
//! crates/tasktrace-cli/tests/actix.rs).
//!
//! `actix-target EXPECTED`: serves on 127.0.0.1 with two workers (prints `port N`) and prints
//! `ready` once EXPECTED `POST /checkout` requests are stuck in `checkout → wait_for_approval`
//! (awaiting a `Notify` that is never notified). `GET /health` answers meanwhile, and
//! `GET /debug/tasks` answers the service's own every-task dump (`tasktrace::snapshot`, JSON).
//! The request head and keep-alive timeouts are an hour: a half-sent request and an idle
//! keep-alive connection stay open for the test to read. Nothing in it uses `tasktrace::spawn`.

use actix_web::{web, App, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tasktrace::model::Format;
use tokio::sync::Notify;

struct Shop {
    approvals: Notify,
    stuck: AtomicUsize,
    changed: Notify,
}

async fn checkout(shop: web::Data<Arc<Shop>>) -> String {
    let order = wait_for_approval(&shop).await;
    format!("approved {order}\n")
}

async fn wait_for_approval(shop: &Shop) -> u64 {
    let approved = shop.approvals.notified();
    shop.stuck.fetch_add(1, Ordering::SeqCst);
    shop.changed.notify_one();
    approved.await;
    42
}

async fn health() -> &'static str {
    "ok\n"
}

/// The service's own dump of every task, read on a blocking thread (a snapshot waits for
/// the reader process).
async fn debug_tasks() -> HttpResponse {
    match web::block(tasktrace::snapshot::snapshot).await {
        Ok(Ok(dump)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(dump.render(Format::Json)),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(format!("{e}\n")),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let expected: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let shop = Arc::new(Shop {
        approvals: Notify::new(),
        stuck: AtomicUsize::new(0),
        changed: Notify::new(),
    });
    let data = shop.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(data.clone()))
            .route("/checkout", web::post().to(checkout))
            .route("/health", web::get().to(health))
            .route("/debug/tasks", web::get().to(debug_tasks))
    })
    .workers(2)
    .client_request_timeout(Duration::from_secs(3600))
    .keep_alive(Duration::from_secs(3600))
    .bind(("127.0.0.1", 0))?;
    println!("port {}", server.addrs()[0].port());
    let server = server.run();
    let watcher = actix_web::rt::spawn(async move {
        loop {
            let changed = shop.changed.notified();
            if shop.stuck.load(Ordering::SeqCst) >= expected {
                println!("ready");
                return;
            }
            changed.await;
        }
    });
    let served = server.await;
    watcher.abort();
    served
}
