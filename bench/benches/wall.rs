//! Wall time with criterion: ping-pong, the depth-10 chain and spawning, per contender.
//! Dumps, first traces and memory are one-shot measurements in fresh processes: see
//! `src/main.rs` and `run.sh`.
//!
//! `TASKTRACE_BENCH_QUICK=1` shortens every measurement (smoke runs).

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tasktrace_bench::{
    current_thread, two_workers, with_contender, CHAIN_BATCH, CONTENDERS, PINGPONG_BATCH,
    SPAWN_TASKS,
};

fn contenders() -> Vec<&'static str> {
    if cfg!(all(tokio_unstable, feature = "taskdump")) {
        vec!["tokio_taskdump"]
    } else {
        CONTENDERS.to_vec()
    }
}

fn quick() -> bool {
    std::env::var_os("TASKTRACE_BENCH_QUICK").is_some()
}

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(200));
    } else {
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    }
    g
}

fn pingpong(c: &mut Criterion) {
    let mut g = config(c, "pingpong");
    for name in contenders() {
        let rt = current_thread();
        g.bench_function(name, |b| {
            b.iter(|| with_contender!(name, m => rt.block_on(m::ping_pong(PINGPONG_BATCH))))
        });
    }
    g.finish();
}

fn chain(c: &mut Criterion) {
    let mut g = config(c, "chain");
    for name in contenders() {
        let rt = current_thread();
        g.bench_function(name, |b| {
            b.iter(|| with_contender!(name, m => rt.block_on(m::chain(CHAIN_BATCH))))
        });
    }
    g.finish();
}

fn spawn(c: &mut Criterion) {
    let mut g = config(c, "spawn");
    g.sample_size(10);
    let n = if quick() {
        SPAWN_TASKS / 100
    } else {
        SPAWN_TASKS
    };
    for name in contenders() {
        let rt = two_workers();
        g.bench_function(name, |b| {
            b.iter(|| with_contender!(name, m => rt.block_on(m::spawn_many(n))))
        });
    }
    g.finish();
}

criterion_group!(benches, pingpong, chain, spawn);
criterion_main!(benches);
