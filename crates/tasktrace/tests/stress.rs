//! Stress: ping-pong pairs exchange messages while traces are taken in a tight loop from
//! another task. Every message must arrive (no lost wake-up), nothing may hang, and the traces
//! must really contain the tasks. `TASKTRACE_SOAK=<seconds>` turns it into a soak test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasktrace::{traced, TraceHandle};
use tokio::sync::mpsc;

const PAIRS: usize = 32;

fn soak() -> Option<Duration> {
    std::env::var("TASKTRACE_SOAK")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
}

async fn ping(tx: mpsc::Sender<u64>, mut rx: mpsc::Receiver<u64>, rounds: u64) -> u64 {
    let mut sum = 0;
    for i in 0..rounds {
        tx.send(i).await.unwrap();
        sum += rx.recv().await.unwrap();
    }
    sum
}

async fn pong(tx: mpsc::Sender<u64>, mut rx: mpsc::Receiver<u64>) -> u64 {
    let mut count = 0;
    while let Some(v) = rx.recv().await {
        count += 1;
        if tx.send(v).await.is_err() {
            break;
        }
    }
    count
}

#[test]
fn ping_pong_under_continuous_tracing() {
    let rounds: u64 = if soak().is_some() { 1_000_000 } else { 10_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let traces = Arc::new(AtomicU64::new(0));
    let with_frames = Arc::new(AtomicU64::new(0));
    let (sum, pongs) = rt.block_on(async {
        let mut handles: Vec<TraceHandle> = Vec::new();
        let mut pings = Vec::new();
        let mut pongs = Vec::new();
        for _ in 0..PAIRS {
            let (a_tx, a_rx) = mpsc::channel(1);
            let (b_tx, b_rx) = mpsc::channel(1);
            let (p, ph) = traced(ping(a_tx, b_rx, rounds));
            let (q, qh) = traced(pong(b_tx, a_rx));
            handles.push(ph);
            handles.push(qh);
            pings.push(tokio::spawn(p));
            pongs.push(tokio::spawn(q));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tracer = {
            let (stop, traces, with_frames) = (stop.clone(), traces.clone(), with_frames.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let h = &handles[i % handles.len()];
                    i += 1;
                    if let Ok(trace) = h.backtrace().await {
                        traces.fetch_add(1, Ordering::Relaxed);
                        if !trace.is_empty() {
                            with_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if soak().is_some_and(|d| started.elapsed() > d) {
                        break;
                    }
                }
            })
        };
        let mut sum = 0;
        for p in pings {
            sum += tokio::time::timeout(Duration::from_secs(120), p)
                .await
                .expect("a ping task hung: lost wake-up?")
                .unwrap();
        }
        let mut pong_count = 0;
        for q in pongs {
            pong_count += q.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        tracer.await.unwrap();
        (sum, pong_count)
    });
    let expected: u64 = (0..rounds).sum::<u64>() * PAIRS as u64;
    assert_eq!(sum, expected, "every message came back");
    assert_eq!(pongs, rounds * PAIRS as u64, "every message was answered");
    let (t, f) = (
        traces.load(Ordering::Relaxed),
        with_frames.load(Ordering::Relaxed),
    );
    assert!(t > 0, "traces were taken during the exchange");
    assert_eq!(t, f, "every trace taken had frames");
    eprintln!(
        "stress: {} messages, {t} traces taken during the exchange",
        2 * rounds * PAIRS as u64
    );
}
