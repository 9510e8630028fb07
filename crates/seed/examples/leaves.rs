//! Traces tasks waiting on common leaves (timer, channels, locks, sockets, join handles) and
//! prints each trace: `cargo run --example leaves` (default view), `-- --verbose` (every frame)
//! or `-- --raw` (the frames as captured, unclean).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

async fn trace_of<F>(fut: F) -> tasktrace::Trace
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (fut, handle) = tasktrace::traced(fut);
    let task = tokio::spawn(fut);
    let trace = handle.backtrace().await.expect("trace");
    task.abort();
    trace
}

async fn waits<F: Future>(leaf: F) -> F::Output {
    leaf.await
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let (mtx, mut mrx) = tokio::sync::mpsc::channel::<u32>(1);
    let (otx, orx) = tokio::sync::oneshot::channel::<u32>();
    let (btx, mut brx) = tokio::sync::broadcast::channel::<u32>(4);
    let (wtx, mut wrx) = tokio::sync::watch::channel(0u32);
    let notify = Arc::new(tokio::sync::Notify::new());
    let n2 = notify.clone();
    let mutex = Arc::new(tokio::sync::Mutex::new(0u32));
    let guard = mutex.clone().try_lock_owned().unwrap();
    let sem = Arc::new(tokio::sync::Semaphore::new(0));
    let child = tokio::spawn(std::future::pending::<()>());
    let traces = vec![
        (
            "sleep",
            trace_of(waits(tokio::time::sleep(Duration::from_secs(600)))).await,
        ),
        (
            "mpsc recv",
            trace_of(async move { waits(mrx.recv()).await }).await,
        ),
        (
            "oneshot",
            trace_of(async move { waits(orx).await.ok() }).await,
        ),
        (
            "broadcast",
            trace_of(async move { waits(brx.recv()).await.ok() }).await,
        ),
        (
            "watch",
            trace_of(async move { waits(wrx.changed()).await.ok() }).await,
        ),
        (
            "notify",
            trace_of(async move { waits(notify.notified()).await }).await,
        ),
        (
            "mutex",
            trace_of(async move { *waits(mutex.lock()).await }).await,
        ),
        (
            "semaphore",
            trace_of(async move { waits(sem.acquire()).await.is_ok() }).await,
        ),
        (
            "join handle",
            trace_of(async move { waits(child).await.ok() }).await,
        ),
        (
            "accept",
            trace_of(async move { waits(listener.accept()).await.is_ok() }).await,
        ),
        (
            "read",
            trace_of(async move {
                let mut buf = [0u8; 16];
                waits(server.read(&mut buf)).await.ok()
            })
            .await,
        ),
        (
            "select",
            trace_of(async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(600)) => 1,
                    _ = n2.notified() => 2,
                }
            })
            .await,
        ),
        (
            "timeout",
            trace_of(waits(tokio::time::timeout(
                Duration::from_secs(600),
                std::future::pending::<()>(),
            )))
            .await,
        ),
    ];
    let _keep = (mtx, otx, btx, wtx, guard, client);
    for (name, trace) in traces {
        println!("== {name}");
        match mode.as_str() {
            "--raw" => {
                for (depth, node) in trace.walk() {
                    let f = &node.frame;
                    let loc = f
                        .location
                        .as_ref()
                        .map(|l| l.to_string())
                        .unwrap_or_default();
                    println!("{:w$}{} @ {}", "", f.function, loc, w = depth * 2);
                }
            }
            "--verbose" => print!("{trace:#}"),
            _ => print!("{trace}"),
        }
    }
}
