//! One program read both ways (`one_program_one_tree` in crates/tasktrace-cli/tests/
//! frameworks.rs): its own `tasktrace::dump()` of the tasks it started with
//! `tasktrace::spawn_named`, printed as JSON on one line (`dump {…}`), and `tasktrace attach`
//! from outside. Both must show the same frames at the same lines for every task.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tasktrace::model::Format;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

async fn chain_root(rx: oneshot::Receiver<u32>) -> u32 {
    chain_mid(rx).await + 1
}

async fn chain_mid(rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

async fn joiner(notify: Arc<Notify>) {
    tokio::join!(nap(), wait_notify(notify));
}

async fn nap() {
    tokio::time::sleep(Duration::from_secs(3600)).await
}

async fn wait_notify(notify: Arc<Notify>) {
    notify.notified().await
}

async fn acceptor(listener: TcpListener) {
    let _ = listener.accept().await;
}

async fn reader(mut stream: TcpStream) {
    let mut buf = [0u8; 8];
    let _ = stream.read(&mut buf).await;
}

async fn locker(lock: Arc<Mutex<()>>) {
    let _guard = lock.lock().await;
}

async fn receiver(mut rx: mpsc::Receiver<u32>) {
    while rx.recv().await.is_some() {}
}

async fn selector(notify: Arc<Notify>, mut rx: mpsc::Receiver<u32>) {
    tokio::select! {
        _ = notify.notified() => {}
        _ = rx.recv() => {}
    }
}

#[tokio::main(worker_threads = 2)]
async fn main() {
    let (_tx, rx) = oneshot::channel();
    let notify = Arc::new(Notify::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(other.local_addr().unwrap()).await.unwrap();
    let (_server, _) = other.accept().await.unwrap();
    let lock = Arc::new(Mutex::new(()));
    let held = lock.clone().lock_owned().await;
    let (_mtx, mrx) = mpsc::channel(1);
    let (_stx, srx) = mpsc::channel(1);
    let tasks = [
        tasktrace::spawn_named("chain", chain_root(rx)).id(),
        tasktrace::spawn_named("join", async move { joiner(notify.clone()).await; 0 }).id(),
        tasktrace::spawn_named("accept", async move { acceptor(listener).await; 0 }).id(),
        tasktrace::spawn_named("read", async move { reader(client).await; 0 }).id(),
        tasktrace::spawn_named("lock", async move { locker(lock).await; 0 }).id(),
        tasktrace::spawn_named("mpsc", async move { receiver(mrx).await; 0 }).id(),
        tasktrace::spawn_named("select", async move {
            selector(Arc::new(Notify::new()), srx).await;
            0
        })
        .id(),
    ];
    // Its own dump once every task waits where it will stay (30 s at most).
    let deadline = Instant::now() + Duration::from_secs(30);
    let dump = loop {
        let dump = tasktrace::dump_with(tasktrace::DumpOptions::default().snapshot(false)).await;
        let traced = tasks
            .iter()
            .filter(|id| dump.task(**id).is_some_and(|t| !t.trace.is_empty()))
            .count();
        if traced == tasks.len() || Instant::now() > deadline {
            break dump;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("dump {}", dump.render(Format::Json).replace('\n', " "));
    println!("ready");
    std::future::pending::<()>().await;
    drop(held);
}
