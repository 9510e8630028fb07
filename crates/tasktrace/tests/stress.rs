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

/// Rounds of task churn in [`tasks_finishing_panicking_and_aborted_during_dumps`].
fn churn_rounds() -> usize {
    if soak().is_some() {
        100_000
    } else {
        400
    }
}

async fn churn_finish(i: u64) -> u64 {
    tokio::task::yield_now().await;
    i * 2
}

async fn churn_panic() -> u64 {
    tokio::task::yield_now().await;
    panic!("stress: a task panicking during a dump");
}

async fn churn_pending(rx: tokio::sync::oneshot::Receiver<()>) -> u64 {
    let _ = rx.await;
    0
}

/// Tasks finish, panic, are aborted and are dropped unpolled while `dump()` runs in a loop:
/// every dump ends, shows the long-lived tasks with their traces, and every message of the
/// long-lived ping-pong pairs still arrives; every short task's outcome is the expected one.
#[test]
fn tasks_finishing_panicking_and_aborted_during_dumps() {
    // The panicking tasks' messages are expected: keep them out of the test output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if !msg.starts_with("stress:") {
            default_hook(info);
        }
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rounds = churn_rounds();
    let pair_rounds: u64 = if soak().is_some() { 200_000 } else { 20_000 };
    let (dumps, outcomes, sum) = rt.block_on(async move {
        // Long-lived pairs, registered (tasktrace::spawn).
        let mut pings = Vec::new();
        let mut anchor_ids = Vec::new();
        for _ in 0..4 {
            let (a_tx, a_rx) = mpsc::channel(1);
            let (b_tx, b_rx) = mpsc::channel(1);
            let p = tasktrace::spawn_named("anchor-ping", ping(a_tx, b_rx, pair_rounds));
            let q = tasktrace::spawn_named("anchor-pong", pong(b_tx, a_rx));
            anchor_ids.push(p.id());
            anchor_ids.push(q.id());
            pings.push((p, q));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let dumps = Arc::new(AtomicU64::new(0));
        let with_anchors = Arc::new(AtomicU64::new(0));
        let dumper = {
            let stop = stop.clone();
            let dumps = dumps.clone();
            let with_anchors = with_anchors.clone();
            let anchor_ids = anchor_ids.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let d = tokio::time::timeout(
                        Duration::from_secs(30),
                        tasktrace::dump_with(
                            tasktrace::DumpOptions::default().deadline(Duration::from_millis(500)),
                        ),
                    )
                    .await
                    .expect("a dump hung");
                    // Long-lived tasks still running are in every dump; those that answered
                    // have frames.
                    for id in &anchor_ids {
                        if let Some(t) = d.task(*id) {
                            if t.error.is_none() {
                                assert!(!t.trace.is_empty(), "{t:?}");
                            }
                        }
                    }
                    if anchor_ids.iter().all(|id| d.task(*id).is_some()) {
                        with_anchors.fetch_add(1, Ordering::Relaxed);
                    }
                    dumps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (mut finished, mut panicked, mut aborted, mut dropped) = (0u64, 0u64, 0u64, 0u64);
        // At least `rounds` rounds, and on until 20 dumps overlapped the churn (30 s at most).
        let started = Instant::now();
        let mut i = 0u64;
        while i < rounds as u64
            || (dumps.load(Ordering::Relaxed) < 20 && started.elapsed() < Duration::from_secs(30))
        {
            i += 1;
            let f = tasktrace::spawn_named("churn-finish", churn_finish(i));
            let p = tasktrace::spawn_named("churn-panic", churn_panic());
            let (keep_tx, keep_rx) = tokio::sync::oneshot::channel();
            let a = tasktrace::spawn_named("churn-abort", churn_pending(keep_rx));
            // A traced future dropped without ever being polled.
            let (unpolled, _h) = tasktrace::traced(churn_finish(i));
            drop(unpolled);
            dropped += 1;
            tokio::task::yield_now().await;
            a.abort();
            assert_eq!(f.await.expect("finished"), i * 2);
            finished += 1;
            assert!(p.await.expect_err("panicked").is_panic());
            panicked += 1;
            assert!(a.await.expect_err("aborted").is_cancelled());
            aborted += 1;
            drop(keep_tx);
        }
        let mut sum = 0;
        for (p, q) in pings {
            sum += tokio::time::timeout(Duration::from_secs(120), p)
                .await
                .expect("an anchor hung: lost wake-up?")
                .unwrap();
            q.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        dumper.await.unwrap();
        let dumps = dumps.load(Ordering::Relaxed);
        assert!(
            with_anchors.load(Ordering::Relaxed) > 0,
            "no dump showed every long-lived task"
        );
        // Nothing of the churn is left registered.
        let last = tasktrace::dump().await;
        assert!(
            last.tasks
                .iter()
                .all(|t| !t.name.as_deref().unwrap_or("").starts_with("churn-")),
            "{last}"
        );
        (dumps, (finished, panicked, aborted, dropped), sum)
    });
    assert_eq!(
        sum,
        (0..pair_rounds).sum::<u64>() * 4,
        "every message came back"
    );
    assert!(dumps > 0, "dumps were taken during the churn");
    let n = outcomes.0;
    assert!(n >= rounds as u64);
    assert_eq!(outcomes, (n, n, n, n));
    eprintln!(
        "stress churn: {} tasks finished, {} panicked, {} aborted, {} dropped unpolled, \
         {} messages, during {dumps} dumps",
        outcomes.0,
        outcomes.1,
        outcomes.2,
        outcomes.3,
        2 * pair_rounds * 4
    );
}
