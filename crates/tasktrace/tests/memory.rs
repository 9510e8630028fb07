//! Memory per registered idle task over plain tokio: issue 17's goal is at most 64 bytes.
//!
//! Counted by a counting allocator, which is deterministic (unlike time): the same tasks are
//! spawned with `tokio::spawn` and with `tasktrace::spawn`, and the heap each leaves live is
//! compared. This file holds one test on purpose: another test running in the same process
//! would allocate during the count.

use std::sync::atomic::{AtomicUsize, Ordering};

// The bench's counting allocator, the same file.
#[path = "../../../bench/src/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Tasks that have been polled once.
static POLLED: AtomicUsize = AtomicUsize::new(0);

async fn wait_forever() {
    POLLED.fetch_add(1, Ordering::Relaxed);
    std::future::pending::<()>().await
}

async fn idle() {
    wait_forever().await
}

/// Heap bytes per task left live by `n` idle tasks spawned with `spawn`, each polled once.
fn heap_per_task(
    rt: &tokio::runtime::Runtime,
    n: usize,
    spawn: fn() -> tokio::task::JoinHandle<()>,
) -> f64 {
    rt.block_on(async {
        let mut handles = Vec::with_capacity(n);
        POLLED.store(0, Ordering::Relaxed);
        let before = counting::live();
        for _ in 0..n {
            handles.push(spawn());
        }
        // Every task polled once (and, for ours, its waker registered in its slot).
        while POLLED.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        let bytes = counting::live() - before;
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await;
        }
        bytes as f64 / n as f64
    })
}

fn plain() -> tokio::task::JoinHandle<()> {
    tokio::spawn(idle())
}

fn registered() -> tokio::task::JoinHandle<()> {
    tasktrace::spawn(idle()).into_tokio()
}

#[test]
fn a_registered_idle_task_costs_at_most_64_bytes_over_plain_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm up at full size: the runtime (its run queue keeps the capacity it grew to), the
    // clock thread, the registry's statics.
    let n = 20_000;
    heap_per_task(&rt, n, plain);
    heap_per_task(&rt, n, registered);
    let plain = heap_per_task(&rt, n, plain);
    let ours = heap_per_task(&rt, n, registered);
    eprintln!(
        "heap per idle task: plain tokio {plain:.1} B, tasktrace::spawn {ours:.1} B, +{:.1} B",
        ours - plain
    );
    assert!(plain > 0.0, "the count sees tokio's task allocations");
    assert!(
        ours - plain <= 64.0,
        "a registered idle task costs {:.1} bytes over plain tokio (goal: at most 64)",
        ours - plain
    );
}
