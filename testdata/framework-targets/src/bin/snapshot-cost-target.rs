//! What an every-task dump costs a real service (`bench/snapshot-cost.sh`, issue 26).
//!
//! `snapshot-cost-target TASKS BALLAST_MIB DUMPS METHOD`: an axum service (serving on
//! 127.0.0.1, answering one real reqwest request, so the executable is what a service's is:
//! ~120 MB with `debug = true`) with TASKS idle tasks (a five-deep async fn chain each, awaiting
//! a oneshot) and BALLAST_MIB of touched heap. It takes one snapshot (the first: the reader
//! process starts and indexes the debuginfo), then DUMPS more, and prints one line of
//! `key=value` figures: resident memory before the first and after the last, the first
//! snapshot's time, and the median and largest pause and total of the others. METHOD is
//! `reader` or `fork`. With DUMPS 0 it takes none: it prints `ready` and waits to be read from
//! outside (`tasktrace attach`, gdb) until its standard input closes.
use axum::{routing::get, Router};
use std::time::{Duration, Instant};
use tasktrace::snapshot::{Method, SnapshotOptions};

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

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: snapshot-cost-target TASKS BALLAST_MIB DUMPS reader|fork");
        std::process::exit(2);
    }
    let tasks: usize = args[1].parse().unwrap();
    let ballast_mib: usize = args[2].parse().unwrap();
    let dumps: usize = args[3].parse().unwrap();
    let method = match args[4].as_str() {
        "reader" => Method::ReaderProcess,
        "fork" => Method::Fork,
        m => panic!("method {m}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    // A real service: one route served, one real request answered.
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/health", get(|| async { "ok\n" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let body = reqwest::get(format!("http://{addr}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok\n");
    });
    let mut senders = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = tokio::sync::oneshot::channel();
        senders.push(tx);
        rt.spawn(i1(rx));
    }
    // Touched heap: a fork copies the page tables of all of it.
    let mut ballast: Vec<u8> = Vec::with_capacity(ballast_mib << 20);
    ballast.resize(ballast_mib << 20, 1);
    std::thread::sleep(Duration::from_millis(200));
    if dumps == 0 {
        println!("ready");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    // The fork's resident limit lifted: the bench measures what it would cost.
    let options = SnapshotOptions::default()
        .method(method)
        .max_resident(u64::MAX);
    let before = resident_kib();
    let t = Instant::now();
    let first = tasktrace::snapshot::snapshot_measured(&options).expect("the first snapshot");
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let seen = first.dump.tasks.len();
    assert!(seen >= tasks, "{seen} tasks seen of {tasks}");
    let (mut pauses, mut totals) = (Vec::new(), Vec::new());
    let mut reader_kib = 0;
    for _ in 0..dumps {
        let t = Instant::now();
        let m = tasktrace::snapshot::snapshot_measured(&options).expect("a snapshot");
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        pauses.push(m.paused.as_secs_f64() * 1e3);
        reader_kib = m.reader_resident.unwrap_or(0) >> 10;
        assert!(m.dump.tasks.len() >= tasks);
    }
    let after = resident_kib();
    let max_pause = pauses.iter().copied().fold(0.0, f64::max);
    println!(
        "tasks={tasks} ballast_mib={ballast_mib} method={} resident_before_kib={before} \
         resident_after_kib={after} kept_kib={} first_ms={first_ms:.1} first_pause_ms={:.2} \
         pause_median_ms={:.2} pause_max_ms={max_pause:.2} total_median_ms={:.1} reader_kib={reader_kib}",
        args[4],
        after.saturating_sub(before),
        first.paused.as_secs_f64() * 1e3,
        median(&mut pauses),
        median(&mut totals),
    );
    tasktrace::snapshot::stop_reader();
    drop(ballast);
    drop(senders);
}
