//! Connection pools as services use them (`pools` in crates/tasktrace-cli/tests/pools.rs):
//! for each of sqlx (SQLite), deadpool and bb8, a pool of one connection, one task holding
//! that connection across an await (a slow request in a transaction) and one task waiting
//! for a connection. A tokio `Semaphore` of two permits with both held and a waiter, and an
//! `RwLock` read-held by two tasks with a writer waiting, are beside them. Prints `ready` once
//! its own every-task dump shows every waiter parked, then that dump (`snapshot {…}`, JSON
//! on one line), which must show what `tasktrace attach` shows. Everything is plain `tokio::spawn`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tasktrace::model::{Dump, Format, Node, TaskState};
use tokio::sync::{Notify, RwLock, Semaphore};

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

/// The async fns that wait for a connection, permit or lock.
const WAITERS: [&str; 5] = [
    "sqlx_waiting_request",
    "deadpool_waiting_request",
    "bb8_waiting_request",
    "permit_waiter",
    "writer",
];

/// Whether every waiter of `dump` is parked in its leaf (tokio's `Acquire` or `Notified`).
fn all_parked(dump: &Dump) -> bool {
    fn leaves(n: &Node) -> Vec<&Node> {
        if n.children.is_empty() {
            return vec![n];
        }
        n.children.iter().flat_map(leaves).collect()
    }
    WAITERS.iter().all(|w| {
        dump.tasks.iter().any(|t| {
            t.state != TaskState::InPoll
                && t.trace.roots.iter().any(|r| {
                    r.frame.function == format!("pools_target::{w}")
                        && leaves(r).iter().any(|l| {
                            l.frame.function.ends_with("::Acquire")
                                || l.frame.function.ends_with("::Notified")
                        })
                })
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
    tasks.push(tokio::spawn(sqlx_waiting_request(sqlite.clone())).abort_handle());
    tasks.push(tokio::spawn(deadpool_waiting_request(dead.clone())).abort_handle());
    tasks.push(tokio::spawn(bb8_waiting_request(bb8.clone())).abort_handle());
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
}
