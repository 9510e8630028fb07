//! Draws the flame graph of where the tasks of a small service wait (`docs/flamegraph.svg`):
//!
//! ```text
//! cargo run --release --example flamegraph -- docs/flamegraph.svg
//! ```
//!
//! The service (`tests/scenario/mod.rs`): connections reading requests, workers on job
//! queues, tickers, tasks queueing on a lock, a supervisor awaiting a task, and the seed
//! program. With `--format NAME` it prints that format instead (`text`, `grouped`, `folded`, …).

#[path = "../tests/scenario/mod.rs"]
mod scenario;

use tasktrace::model::Format;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut format = Format::Svg;
    while let Some(arg) = args.next() {
        if arg == "--format" {
            let name = args.next().unwrap_or_default();
            format = name.parse().unwrap_or_else(|e| {
                eprintln!("flamegraph: {e}");
                std::process::exit(2)
            });
        } else {
            out = Some(arg);
        }
    }
    let scale = scenario::Scale {
        connections: 120,
        workers: 40,
        tickers: 16,
        lockers: 8,
    };
    let service = scenario::Scenario::start(scale).await;
    let dump = service.dump().await;
    let rendered = dump.render(format);
    match out {
        Some(path) => {
            std::fs::write(&path, rendered).expect("write the output file");
            eprintln!("{} tasks drawn into {path}", dump.tasks.len());
        }
        None => print!("{rendered}"),
    }
}
