//! Target program for tasktrace's out-of-process tests (see build.sh).
//! Shared by every tokio version from 1.38 on: use no API newer than 1.38.
//!
//! Usage: tokio-target [N_IDLE]   (default 20)
//! Prints `ready <port> <pid>` once every task below is spawned, then serves
//! a TCP echo server on 127.0.0.1:<port> until killed.

use std::time::Duration;

use futures::future::{FutureExt, Shared};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex, Notify, Semaphore};
use tokio::task::{JoinHandle, LocalSet};

const LONG: Duration = Duration::from_secs(3600);

#[inline(never)]
async fn fiz() -> u32 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    7
}

#[inline(never)]
async fn buz() -> u32 {
    tokio::time::sleep(LONG).await;
    11
}

#[inline(never)]
async fn bar() -> u32 {
    let (a, b) = tokio::join!(fiz(), buz());
    a + b
}

#[inline(never)]
async fn foo() -> u32 {
    bar().await + 1
}

#[inline(never)]
async fn wait_for(handle: JoinHandle<u32>) -> u32 {
    handle.await.unwrap_or(0)
}

#[inline(never)]
async fn select_loop(mut rx: mpsc::Receiver<u32>, notify: std::sync::Arc<Notify>) -> u32 {
    let mut seen = 0u32;
    let mut tick = tokio::time::interval(LONG);
    tick.tick().await;
    loop {
        tokio::select! {
            v = rx.recv() => match v {
                Some(v) => seen += v,
                None => return seen,
            },
            _ = notify.notified() => seen += 1,
            _ = tick.tick() => seen += 2,
        }
    }
}

#[inline(never)]
async fn unordered_sleeps() -> usize {
    let mut set = FuturesUnordered::new();
    for i in 0..3u64 {
        set.push(tokio::time::sleep(LONG + Duration::from_secs(i)));
    }
    let mut n = 0;
    while set.next().await.is_some() {
        n += 1;
    }
    let all = futures::future::join_all((0..2u64).map(|i| tokio::time::sleep(LONG + Duration::from_secs(i)))).await;
    n + all.len()
}

/// `join_all` of three sleeps, the first of which finishes at once (a `MaybeDone::Done`).
#[inline(never)]
async fn join_all_sleeps() -> usize {
    let sleeps = (0..3u64).map(|i| {
        tokio::time::sleep(if i == 0 {
            Duration::from_millis(1)
        } else {
            LONG + Duration::from_secs(i)
        })
    });
    futures::future::join_all(sleeps).await.len()
}

#[inline(never)]
async fn set_member(n: u64) -> u64 {
    tokio::time::sleep(LONG * 2 + Duration::from_secs(n)).await;
    n
}

/// A `JoinSet` of two tasks, awaited with `join_next`.
#[inline(never)]
async fn join_set_waiter() -> usize {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..2u64 {
        set.spawn(set_member(i));
    }
    let mut n = 0;
    while set.join_next().await.is_some() {
        n += 1;
    }
    n
}

/// One of two tasks awaiting the same `futures` `Shared` sleep.
#[inline(never)]
async fn shared_waiter(s: Shared<tokio::time::Sleep>) {
    s.await
}

#[inline(never)]
async fn idle(i: usize, rx: oneshot::Receiver<()>) -> usize {
    let _ = rx.await;
    i
}

#[inline(never)]
async fn semaphore_waiter(sem: std::sync::Arc<Semaphore>) -> u32 {
    let _p = sem.acquire().await;
    1
}

#[inline(never)]
async fn mutex_waiter(m: std::sync::Arc<Mutex<u32>>) -> u32 {
    *m.lock().await
}

#[inline(never)]
async fn local_leaf(n: u64) -> u64 {
    tokio::time::sleep(LONG + Duration::from_secs(n)).await;
    n
}

/// A current_thread runtime with a LocalSet, on its own OS thread. Sends on `polled` once
/// its three tasks have each been polled to their sleep, so `main` prints `ready` only then
/// (a thread that starts late on a loaded machine would otherwise be read half set up).
fn local_runtime(polled: std::sync::mpsc::Sender<()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let a = tokio::task::spawn_local(local_leaf(1));
        let b = tokio::task::spawn_local(local_leaf(2));
        let c = tokio::spawn(local_leaf(3));
        // The spawned tasks run before this sleep's timer fires.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _ = polled.send(());
        let _ = tokio::join!(a, b, c);
    });
}

async fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Awaits a `spawn_blocking` closure that does not return (a blocking task is in no task list:
/// the reader finds it through this join handle).
async fn blocking_waiter() -> u64 {
    tokio::task::spawn_blocking(|| {
        std::thread::sleep(LONG);
        7
    })
    .await
    .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n_idle: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);

    let (local_polled, local_ready) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("local-rt".into())
        .spawn(move || local_runtime(local_polled))
        .expect("local runtime thread");

    let joined = tokio::spawn(foo());
    let waiter = tokio::spawn(wait_for(joined));

    let (tx, rx) = mpsc::channel::<u32>(4);
    let notify = std::sync::Arc::new(Notify::new());
    let selector = tokio::spawn(select_loop(rx, notify.clone()));
    let unordered = tokio::spawn(unordered_sleeps());
    let joined_all = tokio::spawn(join_all_sleeps());
    let join_set = tokio::spawn(join_set_waiter());
    let shared = tokio::time::sleep(LONG).shared();
    let shared_a = tokio::spawn(shared_waiter(shared.clone()));
    let shared_b = tokio::spawn(shared_waiter(shared));

    let sem = std::sync::Arc::new(Semaphore::new(0));
    let sem_task = tokio::spawn(semaphore_waiter(sem.clone()));
    let mutex = std::sync::Arc::new(Mutex::new(5u32));
    let guard = mutex.clone().lock_owned().await;
    let mutex_task = tokio::spawn(mutex_waiter(mutex.clone()));

    let mut idle_tx = Vec::with_capacity(n_idle);
    let mut idle_tasks = Vec::with_capacity(n_idle);
    for i in 0..n_idle {
        let (otx, orx) = oneshot::channel();
        idle_tx.push(otx);
        idle_tasks.push(tokio::spawn(idle(i, orx)));
    }

    let blocking = tokio::task::spawn_blocking(|| std::thread::sleep(LONG));
    let blocking_waiter_task = tokio::spawn(blocking_waiter());

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    // Let fiz finish so bar's join! holds a MaybeDone::Done branch.
    tokio::time::sleep(Duration::from_millis(50)).await;
    local_ready
        .recv_timeout(Duration::from_secs(30))
        .expect("the local runtime's tasks were not polled within 30 s");
    println!("ready {} {}", port, std::process::id());

    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(echo(s));
            }
            Err(_) => break,
        }
    }

    // Unreachable in practice; keeps every handle alive until here.
    drop((tx, notify, guard, idle_tx, idle_tasks, blocking));
    drop((waiter, selector, unordered, joined_all, sem_task, mutex_task));
    drop((join_set, shared_a, shared_b, blocking_waiter_task));
}
