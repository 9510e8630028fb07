fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _e = rt.enter();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    for _ in 0..n {
        rt.spawn(async { std::future::pending::<()>().await });
    }
    let t = std::time::Instant::now();
    let d = tasktrace::snapshot::snapshot().unwrap();
    println!(
        "first: {:?} {} tasks {:?}",
        t.elapsed(),
        d.tasks.len(),
        d.notes.last()
    );
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let d = tasktrace::snapshot::snapshot().unwrap();
        println!(
            "{:?} {} tasks {:?}",
            t.elapsed(),
            d.tasks.len(),
            d.notes.last()
        );
    }
}
