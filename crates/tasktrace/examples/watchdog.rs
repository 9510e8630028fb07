//! The stall watchdog: a task that blocks its worker inside a poll, and one idle for too long,
//! reported through `tracing`.
//!
//! ```sh
//! cargo run -p tasktrace --features watchdog --example watchdog
//! ```
//!
//! Runs for about three seconds.

use std::time::Duration;
use tasktrace::watchdog::WatchdogConfig;
use tokio::sync::oneshot;

/// Blocks the worker thread inside one poll: `std::thread::sleep` in async code.
async fn resize_images() {
    std::thread::sleep(Duration::from_millis(1500));
}

async fn wait_for_reply(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn call_upstream(rx: oneshot::Receiver<()>) {
    wait_for_reply(rx).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().without_time().init();
    let watchdog = tasktrace::watchdog(
        WatchdogConfig::default()
            .interval(Duration::from_millis(100))
            .in_poll_after(Duration::from_millis(500))
            .idle_after(Duration::from_secs(1))
            // Idle tasks that matter here: upstream calls.
            .watch_idle(|task| task.trace.to_string().contains("call_upstream")),
    )?;

    let (_reply, rx) = oneshot::channel();
    let upstream = tasktrace::spawn_named("upstream call", call_upstream(rx));
    let blocker = tasktrace::spawn_named("image resize", resize_images());
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocker.await.ok();
    upstream.abort();
    watchdog.stop();
    Ok(())
}
