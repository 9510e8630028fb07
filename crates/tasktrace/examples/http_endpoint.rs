//! `GET /debug/tasks` on loopback, for a small service of a dozen tasks.
//!
//! ```sh
//! cargo run -p tasktrace --features http --example http_endpoint
//! curl 'http://127.0.0.1:6669/debug/tasks'                      # text
//! curl 'http://127.0.0.1:6669/debug/tasks?format=json'          # the model as JSON
//! curl 'http://127.0.0.1:6669/debug/tasks?format=folded&task=handle_'
//! curl -o tasks.svg 'http://127.0.0.1:6669/debug/tasks?format=svg'
//! curl -o tasks.pb.gz 'http://127.0.0.1:6669/debug/tasks?format=pprof'   # go tool pprof -traces tasks.pb.gz
//! curl 'http://127.0.0.1:6669/debug/tasks/top?samples=3&interval=1'   # the table of `tasktrace top`
//! ```
//!
//! The endpoint shows the internals of the process: bind it to loopback or an internal admin
//! port, never to the public internet. `TASKTRACE_HTTP_ADDR` picks another address.

use std::time::Duration;
use tokio::sync::mpsc;

async fn handle_connection(id: usize, mut rx: mpsc::Receiver<String>) {
    while let Some(request) = read_request(&mut rx).await {
        println!("connection {id}: {request}");
    }
}

async fn read_request(rx: &mut mpsc::Receiver<String>) -> Option<String> {
    rx.recv().await
}

async fn flush_metrics() {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut senders = Vec::new();
    for id in 0..10 {
        let (tx, rx) = mpsc::channel(8);
        senders.push(tx);
        tasktrace::spawn_named(format!("connection {id}"), handle_connection(id, rx));
    }
    tasktrace::spawn_named("metrics", flush_metrics());

    let addr = std::env::var("TASKTRACE_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:6669".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "serving http://{}/debug/tasks (Ctrl-C to stop)",
        listener.local_addr()?
    );
    tokio::select! {
        served = tasktrace::http::serve(listener) => served,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
