//! Times the first trace in a fresh process (cold symbolisation) and a second one (warm).

use std::time::Instant;

#[tokio::main]
async fn main() {
    let (fut, handle) = tasktrace::traced(seed::foo());
    let task = tokio::spawn(fut);
    let t0 = Instant::now();
    let first = handle.backtrace().await.expect("trace");
    let cold = t0.elapsed();
    let t1 = Instant::now();
    let _second = handle.backtrace().await.expect("trace");
    let warm = t1.elapsed();
    task.abort();
    println!(
        "cold first trace: {cold:?} ({} nodes); warm: {warm:?}",
        first.node_count()
    );
}
