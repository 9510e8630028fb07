//! Everyday shapes of a tokio service (`everyday` in crates/tasktrace-cli/tests/everyday.rs).
//!
//! - Connection pools as services use them: for each of sqlx (SQLite), deadpool and bb8, a
//!   pool of one connection, one task holding that connection across an await (a slow
//!   request in a transaction) and three tasks waiting for a connection.
//! - A tokio `Semaphore` of two permits with both held and a waiter, and an `RwLock`
//!   read-held by two tasks with a writer waiting.
//! - A batcher reading a channel in chunks (tokio-stream's `chunks_timeout`): its one item
//!   went out in a chunk when the timeout expired, and it waits for the next; the expired
//!   timer stays in the stream, polled by nothing.
//!
//! - A report computed on a blocking thread (`spawn_blocking`), awaited by an async fn: the
//!   closure waits on a channel nothing sends to.
//!
//! Prints `ready` once its own every-task dump shows every waiter parked and the batcher's
//! timer a second and a half stale, then that dump (`snapshot {…}`, JSON on one line), which
//! must show what `tasktrace attach` shows. Everything is plain `tokio::spawn`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tasktrace::model::{Dump, Format, Node, TaskState};
use tokio::sync::{mpsc, oneshot, Notify, RwLock, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// What deadpool and bb8 pool here: a stand-in for a database connection.
struct Conn {
    id: u32,
}

struct DeadpoolManager;

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = Conn;
    type Error = std::io::Error;

    async fn create(&self) -> Result<Conn, std::io::Error> {
        Ok(Conn { id: 1 })
    }

    async fn recycle(
        &self,
        _: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<std::io::Error> {
        Ok(())
    }
}

struct Bb8Manager;

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Conn;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<Conn, std::io::Error> {
        Ok(Conn { id: 2 })
    }

    async fn is_valid(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

type DeadPool = deadpool::managed::Pool<DeadpoolManager>;

/// Holds a sqlx connection in an open transaction while the request "runs".
async fn sqlx_slow_request(pool: sqlx::SqlitePool, release: Arc<Notify>) -> i64 {
    let mut tx = pool.begin().await.expect("begin");
    let one: i64 = sqlx::query_scalar("select 1")
        .fetch_one(&mut *tx)
        .await
        .expect("select");
    release.notified().await;
    tx.commit().await.expect("commit");
    one
}

/// Waits for a sqlx connection.
async fn sqlx_waiting_request(pool: sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("select 2")
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
}

async fn deadpool_slow_request(pool: DeadPool, release: Arc<Notify>) -> u32 {
    let conn = pool.get().await.expect("deadpool get");
    release.notified().await;
    conn.id
}

async fn deadpool_waiting_request(pool: DeadPool) -> u32 {
    let conn = pool.get().await.expect("deadpool get");
    conn.id
}

async fn bb8_slow_request(pool: bb8::Pool<Bb8Manager>, release: Arc<Notify>) -> u32 {
    let conn = pool.get().await.expect("bb8 get");
    release.notified().await;
    conn.id
}

async fn bb8_waiting_request(pool: bb8::Pool<Bb8Manager>) -> u32 {
    match pool.get().await {
        Ok(conn) => conn.id,
        Err(_) => 0,
    }
}

/// Sends each chunk of the channel's items on: a chunk when ten are in or 100 ms after the
/// first of it.
async fn batcher(rx: mpsc::Receiver<u32>, first_chunk: oneshot::Sender<usize>) {
    let chunks = ReceiverStream::new(rx).chunks_timeout(10, Duration::from_millis(100));
    tokio::pin!(chunks);
    let mut first_chunk = Some(first_chunk);
    while let Some(chunk) = chunks.next().await {
        if let Some(tx) = first_chunk.take() {
            let _ = tx.send(chunk.len());
        }
    }
}

/// Awaits a closure run on a blocking thread, which waits for a message that never comes.
async fn blocking_report() -> u32 {
    let (_never, rx) = std::sync::mpsc::channel::<u32>();
    tokio::task::spawn_blocking(move || {
        let first = rx.recv().unwrap_or(0);
        first + 1
    })
    .await
    .unwrap_or(0)
}

async fn permit_holder(sem: Arc<Semaphore>, release: Arc<Notify>) {
    let _permit = sem.acquire().await.expect("permit");
    release.notified().await;
}

async fn permit_waiter(sem: Arc<Semaphore>) {
    let _permit = sem.acquire().await.expect("permit");
}

async fn reader(lock: Arc<RwLock<u32>>, release: Arc<Notify>) -> u32 {
    let value = lock.read().await;
    release.notified().await;
    *value
}

async fn writer(lock: Arc<RwLock<u32>>) {
    *lock.write().await += 1;
}

/// The async fns that wait for a connection, permit or lock, and how many tasks run each.
const WAITERS: [(&str, usize); 5] = [
    ("sqlx_waiting_request", 3),
    ("deadpool_waiting_request", 3),
    ("bb8_waiting_request", 3),
    ("permit_waiter", 1),
    ("writer", 1),
];

/// Whether every waiter of `dump` is parked in its leaf (tokio's `Acquire` or `Notified`).
fn all_parked(dump: &Dump) -> bool {
    fn leaves(n: &Node) -> Vec<&Node> {
        if n.children.is_empty() {
            return vec![n];
        }
        n.children.iter().flat_map(leaves).collect()
    }
    WAITERS.iter().all(|(w, count)| {
        let parked = dump.tasks.iter().filter(|t| {
            t.state != TaskState::InPoll
                && t.trace.roots.iter().any(|r| {
                    r.frame.function == format!("everyday_target::{w}")
                        && leaves(r).iter().any(|l| {
                            l.frame.function.ends_with("::Acquire")
                                || l.frame.function.ends_with("::Notified")
                        })
                })
        });
        parked.count() == *count
    }) && dump.tasks.iter().any(|t| {
        t.trace.roots.iter().any(|r| {
            r.frame.function == "everyday_target::blocking_report" && !r.children.is_empty()
        })
    })
}

#[tokio::main]
async fn main() {
    tasktrace::snapshot::register_runtime(&tokio::runtime::Handle::current());
    let release = Arc::new(Notify::new());

    let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3600))
        .connect("sqlite::memory:")
        .await
        .expect("sqlite pool");
    let dead = DeadPool::builder(DeadpoolManager)
        .max_size(1)
        .build()
        .expect("deadpool");
    let bb8 = bb8::Pool::builder()
        .max_size(1)
        .connection_timeout(Duration::from_secs(3600))
        .build(Bb8Manager)
        .await
        .expect("bb8");
    let sem = Arc::new(Semaphore::new(2));
    let lock = Arc::new(RwLock::new(0));

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(sqlx_slow_request(sqlite.clone(), release.clone())).abort_handle());
    tasks.push(tokio::spawn(deadpool_slow_request(dead.clone(), release.clone())).abort_handle());
    tasks.push(tokio::spawn(bb8_slow_request(bb8.clone(), release.clone())).abort_handle());
    for _ in 0..2 {
        tasks.push(tokio::spawn(permit_holder(sem.clone(), release.clone())).abort_handle());
        tasks.push(tokio::spawn(reader(lock.clone(), release.clone())).abort_handle());
    }
    // The holders first: each waiter below must find its pool empty.
    while sqlite.num_idle() != 0
        || sqlite.size() != 1
        || dead.status().available != 0
        || dead.status().size != 1
        || bb8.state().connections != 1
        || bb8.state().idle_connections != 0
        || sem.available_permits() != 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..3 {
        tasks.push(tokio::spawn(sqlx_waiting_request(sqlite.clone())).abort_handle());
        tasks.push(tokio::spawn(deadpool_waiting_request(dead.clone())).abort_handle());
        tasks.push(tokio::spawn(bb8_waiting_request(bb8.clone())).abort_handle());
    }
    tasks.push(tokio::spawn(blocking_report()).abort_handle());
    let (items, rx) = mpsc::channel(16);
    let (first_chunk, chunked) = oneshot::channel();
    tasks.push(tokio::spawn(batcher(rx, first_chunk)).abort_handle());
    items.send(1).await.expect("the batcher runs");
    assert_eq!(chunked.await, Ok(1), "the first chunk went out on its timeout");
    // Its timer (expired 100 ms after the item) is stale from a second on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tasks.push(tokio::spawn(permit_waiter(sem.clone())).abort_handle());
    tasks.push(tokio::spawn(writer(lock.clone())).abort_handle());
    // Its own dump once every waiter is parked (60 s at most).
    let deadline = Instant::now() + Duration::from_secs(60);
    let dump = loop {
        match tasktrace::snapshot::snapshot() {
            Ok(d) if all_parked(&d) || Instant::now() > deadline => break Ok(d),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(e),
        }
    };
    println!("ready");
    match dump {
        Ok(dump) => println!("snapshot {}", dump.render(Format::Json).replace('\n', " ")),
        Err(e) => println!("snapshot-error {e}"),
    }
    // Until the test kills it: the holders never let go.
    std::future::pending::<()>().await;
    drop(items);
}
