//! A dump of every task on `SIGUSR1`, while the program goes on.
//!
//! ```sh
//! cargo run -p tasktrace --features signal --example dump_on_signal &
//! kill -USR1 $!                       # the dump is written to stderr
//! TASKTRACE_DUMP_FILE=/tmp/tasks.txt cargo run -p tasktrace --features signal --example dump_on_signal
//! ```
//!
//! It stops by itself after a minute (or `DUMP_ON_SIGNAL_SECS` seconds).

use std::time::Duration;
use tokio::sync::oneshot;

async fn wait_for_payment(rx: oneshot::Receiver<u64>) -> Option<u64> {
    rx.await.ok()
}

async fn checkout(rx: oneshot::Receiver<u64>) {
    if let Some(amount) = wait_for_payment(rx).await {
        println!("paid {amount}");
    }
}

async fn heartbeat() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut payments = Vec::new();
    for i in 0..5 {
        let (tx, rx) = oneshot::channel();
        payments.push(tx);
        tasktrace::spawn_named(format!("checkout {i}"), checkout(rx));
    }
    tasktrace::spawn_named("heartbeat", heartbeat());

    tasktrace::signal::dump_on_sigusr1()?;
    let pid = std::process::id();
    match std::env::var_os(tasktrace::signal::DUMP_FILE_ENV) {
        Some(file) => println!(
            "pid {pid}: `kill -USR1 {pid}` appends a dump to {}",
            std::path::Path::new(&file).display()
        ),
        None => println!("pid {pid}: `kill -USR1 {pid}` writes a dump to stderr"),
    }
    let secs = std::env::var("DUMP_ON_SIGNAL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}
