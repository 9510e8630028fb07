//! What a dump costs, printed (timings depend on the machine: nothing is asserted). Run with
//! `cargo run --release --manifest-path bench/Cargo.toml --example dump_cost`.
//!
//! 10,000 idle tasks five async fns deep, on a 2-worker runtime, dumped cold (first
//! symbolisation) then warm, while a ticker task measures the longest gap between its polls
//! (how long the dump held a worker). And the cost of a traced poll when nobody asks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn d1(n: Arc<tokio::sync::Notify>) {
    d2(n).await
}
async fn d2(n: Arc<tokio::sync::Notify>) {
    d3(n).await
}
async fn d3(n: Arc<tokio::sync::Notify>) {
    d4(n).await
}
async fn d4(n: Arc<tokio::sync::Notify>) {
    d5(n).await
}
async fn d5(n: Arc<tokio::sync::Notify>) {
    tokio::select! {
        _ = n.notified() => {}
        _ = tokio::time::sleep(Duration::from_secs(600)) => {}
    }
}

async fn cost_of_dumping_many_idle_tasks() {
    for n in [1_000usize, 10_000] {
        let notify = Arc::new(tokio::sync::Notify::new());
        let handles: Vec<_> = (0..n)
            .map(|_| tasktrace::spawn(d1(notify.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let max_gap_us = Arc::new(AtomicU64::new(0));
        let ticker = {
            let max_gap_us = max_gap_us.clone();
            tokio::spawn(async move {
                let mut last = Instant::now();
                loop {
                    tokio::task::yield_now().await;
                    let now = Instant::now();
                    let gap = now.duration_since(last).as_micros() as u64;
                    max_gap_us.fetch_max(gap, Ordering::Relaxed);
                    last = now;
                }
            })
        };
        for round in 0..4 {
            max_gap_us.store(0, Ordering::Relaxed);
            let t = Instant::now();
            let dump = tokio::spawn(tasktrace::dump()).await.unwrap();
            let took = t.elapsed();
            let t = Instant::now();
            let text = dump.to_string();
            let render = t.elapsed();
            let captured = dump.tasks.iter().filter(|t| !t.trace.is_empty()).count();
            println!(
                "{n} tasks, dump {round}: {took:?} ({captured} captured), Display {render:?} \
                 ({} KiB), longest ticker gap {}µs",
                text.len() / 1024,
                max_gap_us.load(Ordering::Relaxed)
            );
        }
        ticker.abort();
        notify.notify_waiters();
        for h in handles {
            let _ = h.await;
        }
    }
}

/// A future that is pending `n` times, touching nothing.
struct PendingN(u64);

impl std::future::Future for PendingN {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 = std::hint::black_box(self.0) - 1;
        std::task::Poll::Pending
    }
}

fn ns_per_poll(fut: impl std::future::Future<Output = ()>, polls: u64) -> f64 {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let t = Instant::now();
    while fut.as_mut().poll(&mut cx).is_pending() {}
    t.elapsed().as_nanos() as f64 / polls as f64
}

fn cost_of_a_poll_nobody_asks() {
    const POLLS: u64 = 20_000_000;
    for _ in 0..3 {
        let plain = ns_per_poll(PendingN(POLLS), POLLS);
        let traced = ns_per_poll(tasktrace::traced(PendingN(POLLS)).0, POLLS);
        println!("plain {plain:.2} ns/poll, traced {traced:.2} ns/poll");
    }
}

/// Spawns `n` short tasks from `spawners` tasks at once and waits until all have run.
async fn spawn_many(n: usize, spawners: usize, ours: bool) -> Duration {
    let t = Instant::now();
    let per = n / spawners;
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..spawners {
        let done = done.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                let done = done.clone();
                let task = async move {
                    done.fetch_add(1, Ordering::Relaxed);
                };
                if ours {
                    drop(tasktrace::spawn(task));
                } else {
                    drop(tokio::spawn(task));
                }
            }
        });
    }
    while done.load(Ordering::Relaxed) < (per * spawners) as u64 {
        tokio::task::yield_now().await;
    }
    t.elapsed()
}

async fn cost_of_spawning_short_tasks() {
    for _ in 0..3 {
        let tokio_only = spawn_many(200_000, 4, false).await;
        let ours = spawn_many(200_000, 4, true).await;
        println!(
            "200k short tasks from 4 spawners: tokio::spawn {tokio_only:?}, tasktrace::spawn {ours:?}"
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    cost_of_dumping_many_idle_tasks().await;
    tokio::task::spawn_blocking(cost_of_a_poll_nobody_asks)
        .await
        .expect("the poll cost run");
    cost_of_spawning_short_tasks().await;
}
