//! What indexing an executable's debuginfo costs: `cargo run --release -p tasktrace-inspect
//! --example index_cost -- EXE` prints the time to index it and to prepare a read (tokio's
//! layout), the resident memory (anonymous and file-backed) before and after, and the sizes
//! of the index. Figures in docs/BENCHMARKS.md.

use std::time::Instant;
use tasktrace_inspect::debuginfo::DebugInfo;

fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("RssAnon:"), kib("RssFile:"))
}

fn main() {
    let Some(exe) = std::env::args().nth(1) else {
        eprintln!("usage: index_cost EXE");
        std::process::exit(2);
    };
    let before = rss();
    let started = Instant::now();
    let info = match DebugInfo::load(&exe) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("index_cost: {e}");
            std::process::exit(1);
        }
    };
    let indexed = started.elapsed();
    let after_index = rss();
    let started = Instant::now();
    let prepared = tasktrace_inspect::Prepared::new(&info);
    let prepare = started.elapsed();
    info.release_pages();
    let after = rss();
    println!(
        "executable      {exe} ({} MB)",
        info.file_data().len() >> 20
    );
    println!("index           {:.0} ms", indexed.as_secs_f64() * 1e3);
    println!(
        "prepare         {:.0} ms ({})",
        prepare.as_secs_f64() * 1e3,
        if prepared.is_ok() { "ok" } else { "no tokio" }
    );
    println!(
        "types indexed   {} ({} KiB of index)",
        info.indexed_types(),
        info.index_bytes() >> 10
    );
    println!(
        "resident        anon {} -> {} -> {} KiB, file {} -> {} -> {} KiB (before, indexed, prepared)",
        before.0, after_index.0, after.0, before.1, after_index.1, after.1
    );
    let peak = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        .unwrap_or_default();
    println!("peak resident   {peak} KiB");
}
