//! One task per tokio leaf (timer, channels, locks, sockets, join handle, select, timeout),
//! each waiting inside a user `async fn`, traced with `handle.backtrace()`: the dump the leaf
//! note tests render. Its own file, so that the snapshot's line numbers only change with it.

use tasktrace::model::{Dump, Task, Trace};

/// Traces of tasks waiting on tokio's leaves, each in a user `async fn`, as one dump.
pub async fn leaves_dump() -> Dump {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    async fn trace_of<F>(fut: F) -> Trace
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (fut, handle) = tasktrace::traced(fut);
        let task = tokio::spawn(fut);
        let trace = handle.backtrace().await.expect("trace");
        task.abort();
        trace.into_model()
    }
    async fn waits<F: Future>(leaf: F) {
        leaf.await;
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
    let (full_tx, _full_rx) = tokio::sync::mpsc::channel::<u32>(1);
    full_tx.try_send(0).unwrap();
    let (otx, orx) = tokio::sync::oneshot::channel::<u32>();
    let (btx, mut brx) = tokio::sync::broadcast::channel::<u32>(4);
    let (wtx, mut wrx) = tokio::sync::watch::channel(0u32);
    let notify = Arc::new(tokio::sync::Notify::new());
    let n2 = notify.clone();
    let mutex = Arc::new(tokio::sync::Mutex::new(0u32));
    let guard = mutex.clone().try_lock_owned().unwrap();
    let sem = Arc::new(tokio::sync::Semaphore::new(0));
    let child = tokio::spawn(std::future::pending::<()>());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let traces: Vec<(&str, Trace)> = vec![
        (
            "sleep",
            trace_of(waits(tokio::time::sleep(Duration::from_secs(600)))).await,
        ),
        (
            "mpsc recv",
            trace_of(async move { waits(rx.recv()).await }).await,
        ),
        (
            "mpsc send",
            trace_of(async move { waits(full_tx.send(1)).await }).await,
        ),
        ("oneshot", trace_of(async move { waits(orx).await }).await),
        (
            "broadcast",
            trace_of(async move { waits(brx.recv()).await }).await,
        ),
        (
            "watch",
            trace_of(async move { waits(wrx.changed()).await }).await,
        ),
        (
            "notify",
            trace_of(async move { waits(notify.notified()).await }).await,
        ),
        (
            "mutex",
            trace_of(async move { waits(mutex.lock()).await }).await,
        ),
        (
            "semaphore",
            trace_of(async move { waits(sem.acquire()).await }).await,
        ),
        (
            "join handle",
            trace_of(async move { waits(child).await }).await,
        ),
        (
            "accept",
            trace_of(async move { waits(listener.accept()).await }).await,
        ),
        (
            "select",
            trace_of(async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    _ = n2.notified() => {}
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
    drop((tx, otx, btx, wtx, guard));
    let tasks = traces
        .into_iter()
        .enumerate()
        .map(|(i, (name, trace))| {
            let mut t = Task::new(i as u64 + 1);
            t.name = Some(name.to_string());
            t.trace = trace;
            t
        })
        .collect();
    Dump::new(tasks)
}
