//! The bundled example target of `tasktrace demo` and of the tests: an unmodified tokio program
//! with the shapes the out-of-process reader decodes. It prints `ready <addr>` once every task
//! is spawned and then runs until killed (with `--no-runtime`: never starts the runtime).
//!
//! Lines marked `// @name` are looked up by the tests (they assert the await lines).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

/// Number of idle tasks, each waiting on its own oneshot channel (`--idle-tasks N`: N).
const IDLE_TASKS: usize = 50;

async fn foo() {
    bar().await; // @foo_await
}

async fn bar() {
    tokio::join!(fiz(), buz()); // @bar_join
}

async fn fiz() {
    tokio::time::sleep(Duration::from_secs(3600)).await; // @fiz_sleep
}

async fn buz() {
    tokio::time::sleep(Duration::from_secs(7200)).await; // @buz_sleep
}

async fn sleeper() -> u32 {
    tokio::time::sleep(Duration::from_secs(5400)).await; // @sleeper_sleep
    7
}

async fn wait_for(handle: tokio::task::JoinHandle<u32>) -> u32 {
    handle.await.unwrap_or(0) // @wait_for_await
}

async fn select_loop(mut rx: mpsc::Receiver<u32>, notify: std::sync::Arc<Notify>) {
    loop {
        tokio::select! { // @select
            Some(v) = rx.recv() => println!("got {v}"),
            _ = notify.notified() => println!("notified"),
        }
    }
}

async fn boxed() {
    let inner: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(fiz());
    inner.await; // @boxed_await
}

async fn locker(mutex: std::sync::Arc<tokio::sync::Mutex<u32>>) {
    let guard = mutex.lock().await; // @locker_lock
    drop(guard);
}

/// Half of a lock-order deadlock: holds `first`, waits until the other half holds its own,
/// then waits for `second`, which the other half holds (and so on forever).
async fn lock_both(
    first: std::sync::Arc<tokio::sync::Mutex<u32>>,
    second: std::sync::Arc<tokio::sync::Mutex<u32>>,
    both_hold: std::sync::Arc<tokio::sync::Barrier>,
) -> u32 {
    let held = first.lock().await;
    both_hold.wait().await;
    let wanted = second.lock().await; // @lock_second
    *held + *wanted
}

async fn idle(rx: oneshot::Receiver<()>) {
    let _ = rx.await; // @idle_await
}

/// A task that never yields: it stays inside `poll`, occupying one worker (reported as
/// running).
async fn spinner() {
    loop {
        spin_step(); // @spin_step
    }
}

static SPINS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One turn of the spinner: it counts, then pauses. The pause is its last call, which an
/// optimised build turns into a jump (a tail call): this function's frame is then gone from
/// the stack while `pause` runs, and the threads view puts it back, marked.
#[inline(never)]
fn spin_step() {
    SPINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    pause()
}

/// Sleeps a quarter of a second: long beside the delay a loaded machine puts between the
/// end of a sleep and the thread running again, so that samples find the thread inside the
/// call (a blocked-worker diagnosis needs it there in every sample of a second; with 50 ms,
/// a CI machine busy with builds caught it between two sleeps too often).
#[inline(never)]
fn pause() {
    std::thread::sleep(Duration::from_millis(250)); // @pause_sleep
                                                    // Work after the sleep: `pause` itself stays on the stack (no tail call to `sleep`).
    SPINS.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
}

/// A task busy on the CPU that yields after each step (`--yielder`): often seen running, but
/// it never keeps its worker from other tasks (what a blocked-worker diagnosis must not
/// mistake for the spinner).
async fn yielder() {
    loop {
        busy_step();
        tokio::task::yield_now().await; // @yielder_yield
    }
}

/// A task busy on the CPU that never yields (`--burner`): one poll that never ends, with no
/// system call — a worker kept from every other task by computing.
async fn burner() {
    loop {
        busy_step(); // @burner_step
    }
}

/// Spawns a task every 10 ms that keeps 8 KiB across its await, forever (`--task-churn`):
/// new tasks in new memory between any two samples of a recorder (what its reads from the
/// last sample's copies cannot have copied).
async fn churner() {
    let mut keep = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (tx, rx) = oneshot::channel::<()>();
        keep.push(tx);
        tokio::spawn(async move {
            let buf = [7u8; 8192];
            let _ = rx.await;
            std::hint::black_box(&buf);
        });
    }
}

/// A few hundred microseconds of arithmetic, no system call.
#[inline(never)]
fn busy_step() {
    let mut x = 0u64;
    for i in 0..200_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
}

async fn echo_server(listener: TcpListener) {
    loop {
        let accepted = listener.accept().await; // @accept
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            loop {
                let read = socket.read(&mut buf).await; // @echo_read
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    // `--no-runtime`: a process with tokio's debuginfo but no runtime running (for the tests'
    // "no tokio runtime found" case).
    if std::env::args().any(|a| a == "--no-runtime") {
        println!("ready (no runtime)");
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    // Fault injection for tests/faults.rs. `--exit-after-ms N`: the process exits by itself
    // N ms after it started. `--thread-churn`: a thread creates and joins short-lived threads
    // in a tight loop (threads appear and exit while a reader stops the process).
    let args: Vec<String> = std::env::args().collect();
    if let Some(ms) = args
        .iter()
        .position(|a| a == "--exit-after-ms")
        .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
    {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            std::process::exit(0);
        });
    }
    if args.iter().any(|a| a == "--thread-churn") {
        std::thread::spawn(|| loop {
            let _ = std::thread::spawn(|| std::hint::black_box(0u64)).join();
        });
    }
    // `--current-thread`: the same tasks on a current_thread runtime (without the spinner,
    // which would hold its only thread).
    let current_thread = std::env::args().any(|a| a == "--current-thread");
    let idle_tasks = args
        .iter()
        .position(|a| a == "--idle-tasks")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(IDLE_TASKS);
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(3);
        b
    };
    let with_yielder = args.iter().any(|a| a == "--yielder");
    let with_burner = args.iter().any(|a| a == "--burner");
    let with_churn = args.iter().any(|a| a == "--task-churn");
    builder.enable_all().build().expect("runtime").block_on(run(
        !current_thread,
        idle_tasks,
        Extras {
            yielder: with_yielder,
            burner: with_burner,
            churn: with_churn,
        },
    ));
}

/// The tasks only some tests want.
struct Extras {
    /// `--yielder`.
    yielder: bool,
    /// `--burner`.
    burner: bool,
    /// `--task-churn`.
    churn: bool,
}

async fn run(with_spinner: bool, idle_tasks: usize, extras: Extras) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(foo());
    let waited = tokio::spawn(sleeper());
    tokio::spawn(wait_for(waited));
    let (tx, rx) = mpsc::channel(4);
    let notify = std::sync::Arc::new(Notify::new());
    tokio::spawn(select_loop(rx, notify.clone()));
    tokio::spawn(boxed());
    let mutex = std::sync::Arc::new(tokio::sync::Mutex::new(0));
    let held = mutex.clone().lock_owned().await;
    tokio::spawn(locker(mutex));
    let mut keep = Vec::new();
    for _ in 0..idle_tasks {
        let (otx, orx) = oneshot::channel();
        keep.push(otx);
        tokio::spawn(idle(orx));
    }
    tokio::spawn(echo_server(listener));
    let (m1, m2) = (
        std::sync::Arc::new(tokio::sync::Mutex::new(1)),
        std::sync::Arc::new(tokio::sync::Mutex::new(2)),
    );
    let both_hold = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    tokio::spawn(lock_both(m1.clone(), m2.clone(), both_hold.clone()));
    tokio::spawn(lock_both(m2, m1, both_hold));
    if with_spinner {
        tokio::spawn(spinner());
    }
    if extras.yielder {
        tokio::spawn(yielder());
    }
    if extras.burner {
        tokio::spawn(burner());
    }
    if extras.churn {
        tokio::spawn(churner());
    }
    // Give every task its first poll so each sits at its await point.
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("ready {addr}");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = (&tx, &notify, &keep, &held);
    }
}
