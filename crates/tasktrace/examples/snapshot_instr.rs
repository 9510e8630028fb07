//! The warm every-task dump counted under callgrind (docs/BENCHMARKS.md).
//!
//! `snapshot_instr TASKS DUMPS reader|fork`: TASKS idle tasks (a five-deep async fn chain each,
//! awaiting a oneshot, as snapshot-cost-target) on a 2-worker runtime; one first snapshot (the
//! reader indexes the debuginfo), then DUMPS more. Deadlines are long: under valgrind the index
//! takes minutes. Run two DUMPS counts and divide the difference of instructions by the
//! difference of counts: what one warm dump costs. Under valgrind only `fork` reads (the
//! reader process starts from `/proc/self/exe`, which is then valgrind's); with DUMPS 0 it
//! holds its tasks for examples/reader_instr.rs, which counts what the reader process does.
use std::time::Duration;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args[1].parse().unwrap();
    let dumps: usize = args[2].parse().unwrap();
    let method = match args[3].as_str() {
        "reader" => Method::ReaderProcess,
        _ => Method::Fork,
    };
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
    std::thread::sleep(Duration::from_millis(500));
    if dumps == 0 {
        // Held for a reader from outside (examples/reader_instr.rs): the runtime handle's
        // address, then wait until standard input closes.
        let handle = rt.handle().clone();
        println!("ready {}", &handle as *const tokio::runtime::Handle as u64);
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop(handle);
        return;
    }
    let mut options = SnapshotOptions::default()
        .method(method)
        .max_resident(u64::MAX);
    options.first_timeout = Duration::from_secs(3600);
    options.timeout = Duration::from_secs(120);
    options.reader_idle = Duration::from_secs(3600);
    let first = tasktrace::snapshot::snapshot_measured(&options).expect("the first snapshot");
    assert!(
        first.dump.tasks.len() >= tasks,
        "{} tasks",
        first.dump.tasks.len()
    );
    let mut seen = 0;
    for _ in 0..dumps {
        let m = tasktrace::snapshot::snapshot_measured(&options).expect("a snapshot");
        assert!(m.dump.tasks.len() >= tasks);
        seen = m.dump.tasks.len();
    }
    println!("tasks={tasks} dumps={dumps} seen={seen}");
    tasktrace::snapshot::stop_reader();
    drop(senders);
}
