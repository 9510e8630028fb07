//! Tasks that can never be woken, beside tasks waiting on everything that does wake (issue
//! 31's NEVER WOKEN diagnosis). Three tasks await a future that returns `Pending` without
//! keeping its waker — one whose join handle another task awaits, one detached, one of a
//! LocalSet — and are diagnosed; tasks waiting on a live mpsc channel, a timer, a `Notify` kept
//! elsewhere, a join handle, a TCP socket, a tokio `Mutex` held elsewhere, a `JoinSet`, and a
//! LocalSet's task on a `Notify`, are not. Read by `tasktrace attach` and `core`
//! (crates/tasktrace-cli/tests/never_woken.rs), and by its own in-process snapshot: prints
//! `ready` once every task is at its await, then `snapshot {…}` (JSON on one line).

#[path = "../fixture.rs"]
mod fixture;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Mutex, Notify};

/// Returns `Pending` and keeps no waker: nothing will ever wake the task that awaits it.
struct Forgetful;

impl Future for Forgetful {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Never woken; its join handle is awaited by [`on_join`].
async fn stuck(job: u32) -> u32 {
    Forgetful.await; // @stuck
    job
}

/// Never woken; its join handle is dropped.
async fn stuck_detached(job: u32) {
    Forgetful.await;
    println!("{job}");
}

/// Never woken, in a LocalSet.
async fn stuck_local(job: u32) {
    Forgetful.await;
    println!("{job}");
}

async fn on_channel(mut rx: mpsc::Receiver<u32>) {
    while let Some(n) = rx.recv().await {
        println!("{n}");
    }
}

async fn on_timer() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

async fn on_notify(gate: Arc<Notify>) {
    gate.notified().await;
}

async fn on_join(handle: tokio::task::JoinHandle<u32>) {
    let _ = handle.await;
}

async fn on_socket(mut stream: tokio::net::TcpStream) {
    let mut buf = [0u8; 16];
    let _ = stream.read(&mut buf).await;
}

async fn on_mutex(lock: Arc<Mutex<u32>>) {
    *lock.lock().await += 1;
}

async fn on_join_set() {
    let mut set = tokio::task::JoinSet::new();
    set.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
    set.join_next().await;
}

async fn local_on_notify(gate: Arc<Notify>) {
    gate.notified().await;
}

/// The async fns whose tasks must be parked at their await before anything reads them.
const PARKED: &[&str] = &[
    "woken_target::stuck",
    "woken_target::stuck_detached",
    "woken_target::stuck_local",
    "woken_target::on_channel",
    "woken_target::on_timer",
    "woken_target::on_notify",
    "woken_target::on_join",
    "woken_target::on_socket",
    "woken_target::on_mutex",
    "woken_target::on_join_set",
    "woken_target::local_on_notify",
];

/// Whether every task of [`PARKED`] is suspended at its await (its root has a child: it was
/// polled and did not finish).
fn all_parked(d: &tasktrace::model::Dump) -> bool {
    PARKED.iter().all(|f| {
        d.tasks.iter().any(|t| {
            t.trace
                .roots
                .first()
                .is_some_and(|r| r.frame.function == *f && !r.children.is_empty())
        })
    })
}

#[tokio::main]
async fn main() {
    tasktrace::snapshot::register_runtime(&tokio::runtime::Handle::current());
    let gate = Arc::new(Notify::new());
    let local_gate = gate.clone();
    fixture::local_set_thread(move |local| {
        local.spawn_local(stuck_local(3));
        local.spawn_local(local_on_notify(local_gate));
    });
    let (tx, rx) = mpsc::channel(4);
    let lock = Arc::new(Mutex::new(0));
    let held = lock.clone().lock_owned().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let stuck = tokio::spawn(stuck(1));
    drop(tokio::spawn(stuck_detached(2)));
    tokio::spawn(on_channel(rx));
    tokio::spawn(on_timer());
    tokio::spawn(on_notify(gate.clone()));
    tokio::spawn(on_join(stuck));
    tokio::spawn(on_socket(server));
    tokio::spawn(on_mutex(lock));
    tokio::spawn(on_join_set());
    // Its own snapshot once every task is parked at its await, the LocalSet's too.
    let options = tasktrace::snapshot::SnapshotOptions::default();
    fixture::print_own_snapshot_when(&options, all_parked).await;
    // Everything the waiting tasks wait on stays alive: the sender, the guard, the client.
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = (&tx, &held, &client, &gate);
    }
}
