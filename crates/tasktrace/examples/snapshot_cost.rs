//! The cost of `tasktrace::snapshot()`: the program's pause (the `fork`), the total time, and
//! the memory the snapshot keeps (this executable's debuginfo index), for N idle depth-5 tasks
//! and M MiB of extra resident memory.
//!
//! ```sh
//! cargo run -p tasktrace --features snapshot --example snapshot_cost -- 10000 1024
//! ```
//! (dev profile: the snapshot needs type layouts, which the workspace's release profile
//! leaves out; the reader itself is optimised in dev builds too.)

use std::time::{Duration, Instant};

async fn i1(rx: tokio::sync::oneshot::Receiver<()>) {
    i2(rx).await
}
async fn i2(rx: tokio::sync::oneshot::Receiver<()>) {
    i3(rx).await
}
async fn i3(rx: tokio::sync::oneshot::Receiver<()>) {
    i4(rx).await
}
async fn i4(rx: tokio::sync::oneshot::Receiver<()>) {
    i5(rx).await
}
async fn i5(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

fn resident_mib() -> u64 {
    let pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (pages * 4096) >> 20
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().map_or(1000, |s| s.parse().unwrap());
    let extra_mib: usize = args.next().map_or(0, |s| s.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let mut senders = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = tokio::sync::oneshot::channel();
        senders.push(tx);
        rt.spawn(i1(rx));
    }
    // Touched memory: the fork copies page tables for all of it.
    let ballast: Vec<u8> = vec![1u8; extra_mib << 20];
    std::thread::sleep(Duration::from_millis(200));
    let before = resident_mib();
    let t = Instant::now();
    let first = tasktrace::snapshot::snapshot().expect("snapshot");
    println!(
        "first snapshot (indexes the debuginfo): {:.0} ms, {} tasks; resident {} -> {} MiB",
        t.elapsed().as_secs_f64() * 1e3,
        first.tasks.len(),
        before,
        resident_mib()
    );
    let mut totals = Vec::new();
    let mut pauses = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let d = tasktrace::snapshot::snapshot().expect("snapshot");
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        let note = d.notes.iter().find(|n| n.contains("paused it")).unwrap();
        let ms: f64 = note
            .split("paused it ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        pauses.push(ms);
    }
    totals.sort_by(f64::total_cmp);
    pauses.sort_by(f64::total_cmp);
    println!(
        "{tasks} tasks, {} MiB resident: pause (fork) median {:.1} ms (min {:.1}, max {:.1}); total median {:.1} ms (min {:.1}, max {:.1})",
        resident_mib(),
        pauses[3],
        pauses[0],
        pauses[6],
        totals[3],
        totals[0],
        totals[6]
    );
    drop(ballast);
    drop(senders);
}
