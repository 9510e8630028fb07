//! The benchmark driver: one workload per invocation (so cold measurements get a fresh process
//! and callgrind sees one workload), a smoke mode, and the report that prints the table.
//!
//! ```text
//! tasktrace-bench --smoke                      every workload, every contender, tiny sizes
//! tasktrace-bench pingpong CONTENDER N         N round trips (run under callgrind)
//! tasktrace-bench chain CONTENDER N            N iterations of the depth-10 chain (callgrind)
//! tasktrace-bench dump CONTENDER N WARM        cold dump of N idle tasks, then WARM more
//!                                              (CONTENDER ours_fresh: ours, every dump fresh)
//! tasktrace-bench first-trace CONTENDER        first trace of one depth-10 task
//! tasktrace-bench memory CONTENDER N           heap and RSS per idle task, N tasks
//! tasktrace-bench spawn CONTENDER N REPS       N short-lived tasks on 2 workers
//! tasktrace-bench report RESULTS CRITERION     the markdown table
//! ```
//!
//! Measurements print `RESULT workload contender key=value…` lines; `bench/run.sh` collects them.

use std::time::{Duration, Instant};
use tasktrace_bench::{clear_all, median, set_keep_handles, settle, with_contender, CONTENDERS};

mod counting;
mod report;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Contender names this build can run.
fn contenders() -> Vec<&'static str> {
    if cfg!(all(tokio_unstable, feature = "taskdump")) {
        vec!["tokio_taskdump"]
    } else {
        CONTENDERS.to_vec()
    }
}

/// Ends the process if a dump does not come back in time (tokio's `Handle::dump` can freeze
/// the runtime: see docs/BENCHMARKS.md), printing what was measured before.
struct Watchdog {
    tx: std::sync::mpsc::Sender<Option<Duration>>,
}

impl Watchdog {
    const LIMIT: Duration = Duration::from_secs(20);

    fn start(contender: &str, n: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Option<Duration>>();
        let contender = contender.to_string();
        std::thread::spawn(move || {
            let mut done = Vec::new();
            loop {
                match rx.recv_timeout(Self::LIMIT) {
                    Ok(Some(d)) => done.push(d),
                    Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        let cold = done.first().map(|d| ms(*d)).unwrap_or("nan".into());
                        let warm = if done.len() > 1 {
                            ms(median(done[1..].to_vec()))
                        } else {
                            "nan".into()
                        };
                        println!(
                            "RESULT dump {contender} n={n} cold_ms={cold} warm_ms={warm} froze_at_dump={}",
                            done.len() + 1
                        );
                        std::process::exit(3);
                    }
                }
            }
        });
        Watchdog { tx }
    }

    fn done(&self, d: Duration) {
        let _ = self.tx.send(Some(d));
    }

    fn stop(&self) {
        let _ = self.tx.send(None);
    }
}

/// Cold dump of `n` idle depth-5 tasks (first dump in this process), then `warm` more.
fn dump(contender: &str, n: usize, warm: usize, deep: bool) -> (Duration, Duration, usize) {
    set_keep_handles(true);
    let rt = tasktrace_bench::two_workers();
    let result = with_contender!(contender, m => rt.block_on(async {
        let idle = m::spawn_idle(n, deep);
        settle().await;
        let watchdog = Watchdog::start(contender, n);
        let t = Instant::now();
        let text = m::dump().await;
        let cold = t.elapsed();
        watchdog.done(cold);
        if std::env::var_os("TASKTRACE_BENCH_PRINT").is_some() {
            eprintln!("{text}");
        }
        let bytes = text.len();
        let mut warms = Vec::new();
        for _ in 0..warm {
            let t = Instant::now();
            let text = m::dump().await;
            warms.push(t.elapsed());
            watchdog.done(t.elapsed());
            std::hint::black_box(text);
        }
        watchdog.stop();
        idle.finish().await;
        let warm = if warms.is_empty() { cold } else { median(warms) };
        (cold, warm, bytes)
    }));
    clear_all();
    set_keep_handles(false);
    result
}

/// Live heap bytes and RSS per idle depth-5 task.
fn memory(contender: &str, n: usize) -> (f64, f64) {
    // tasktrace 0.1.1 can only dump through the handles, so they are kept (8 bytes each in
    // the harness's Vec); without a handle its task also frees its request channel at once.
    set_keep_handles(true);
    let rt = tasktrace_bench::two_workers();
    // Warm up the runtime, timers and the contender's statics with a few tasks.
    with_contender!(contender, m => rt.block_on(async {
        let idle = m::spawn_idle(16, false);
        settle().await;
        idle.finish().await;
    }));
    let heap0 = counting::live();
    let rss0 = rss_bytes();
    let idle = with_contender!(contender, m => rt.block_on(async {
        let idle = m::spawn_idle(n, false);
        settle().await;
        idle
    }));
    let heap = (counting::live() - heap0) as f64 / n as f64;
    let rss = (rss_bytes() as f64 - rss0 as f64) / n as f64;
    if contender == "ours" {
        // What a dump leaves behind for the next one (the reused captures, `capture_cache`).
        rt.block_on(async { drop(tasktrace::dump().await) });
        let kept = (counting::live() - heap0) as f64 / n as f64 - heap;
        println!("RESULT memory_kept_by_dump ours n={n} per_task={kept:.1}");
    }
    rt.block_on(idle.finish());
    clear_all();
    set_keep_handles(false);
    (heap, rss)
}

fn spawn(contender: &str, n: u64, reps: usize) -> Duration {
    set_keep_handles(false);
    let rt = tasktrace_bench::two_workers();
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let sum = with_contender!(contender, m => rt.block_on(m::spawn_many(n)));
        times.push(t.elapsed());
        std::hint::black_box(sum);
    }
    median(times)
}

fn smoke() {
    let t = Instant::now();
    for c in contenders() {
        let v =
            with_contender!(c, m => tasktrace_bench::current_thread().block_on(m::ping_pong(200)));
        assert_eq!(v, 200, "{c}: ping-pong");
        with_contender!(c, m => tasktrace_bench::current_thread().block_on(m::chain(50)));
        let (cold, warm, bytes) = dump(c, 20, 1, false);
        let (first, _, first_bytes) = dump(c, 1, 0, true);
        let (heap, _) = memory(c, 200);
        let spawned = spawn(c, 1000, 1);
        println!(
            "smoke {c:16} dump20 cold {} ms warm {} ms ({bytes} bytes)  first trace {} ms ({first_bytes} bytes)  heap/task {heap:.0} B  spawn1k {} ms",
            ms(cold),
            ms(warm),
            ms(first),
            ms(spawned)
        );
    }
    println!("smoke ok in {:.1} s", t.elapsed().as_secs_f64());
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: expected {what}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("--smoke");
    if !matches!(cmd, "--smoke" | "smoke" | "memory") {
        // Only the memory workload reads the count (see `counting`).
        counting::stop();
    }
    match cmd {
        "--smoke" | "smoke" => smoke(),
        "pingpong" => {
            let c: String = arg(&args, 1, "contender");
            let n: u64 = arg(&args, 2, "round trips");
            let v = with_contender!(c.as_str(), m => tasktrace_bench::current_thread().block_on(m::ping_pong(n)));
            assert_eq!(v, n);
        }
        "chain" => {
            let c: String = arg(&args, 1, "contender");
            let n: u64 = arg(&args, 2, "iterations");
            with_contender!(c.as_str(), m => tasktrace_bench::current_thread().block_on(m::chain(n)));
        }
        "dump" => {
            let c: String = arg(&args, 1, "contender");
            let n: usize = arg(&args, 2, "tasks");
            let warm: usize = arg(&args, 3, "warm repetitions");
            tasktrace_bench::ours_impl::set_fresh(c == "ours_fresh");
            let (cold, warm, bytes) = dump(&c, n, warm, false);
            println!(
                "RESULT dump {c} n={n} cold_ms={} warm_ms={} bytes={bytes}",
                ms(cold),
                ms(warm)
            );
        }
        "first-trace" => {
            let c: String = arg(&args, 1, "contender");
            let (cold, warm, bytes) = dump(&c, 1, 3, true);
            println!(
                "RESULT first_trace {c} cold_ms={} warm_ms={} bytes={bytes}",
                ms(cold),
                ms(warm)
            );
        }
        "memory" => {
            let c: String = arg(&args, 1, "contender");
            let n: usize = arg(&args, 2, "tasks");
            let (heap, rss) = memory(&c, n);
            println!("RESULT memory {c} n={n} heap_per_task={heap:.1} rss_per_task={rss:.1}");
        }
        "spawn" => {
            let c: String = arg(&args, 1, "contender");
            let n: u64 = arg(&args, 2, "tasks");
            let reps: usize = arg(&args, 3, "repetitions");
            let t = spawn(&c, n, reps);
            println!("RESULT spawn {c} n={n} median_ms={}", ms(t));
        }
        "dump-parts" => {
            // Where our dump's time goes: capture + symbolise (`dump()`) vs render (`Display`).
            let n: usize = arg(&args, 1, "tasks");
            let reps: usize = arg(&args, 2, "repetitions");
            let rt = tasktrace_bench::two_workers();
            rt.block_on(async {
                let idle = tasktrace_bench::ours::spawn_idle(n, false);
                settle().await;
                let (mut captures, mut renders, mut drops) = (Vec::new(), Vec::new(), Vec::new());
                let mut fresh = Vec::new();
                for _ in 0..reps {
                    let t = Instant::now();
                    let dump = tasktrace::dump().await;
                    captures.push(t.elapsed());
                    let t = Instant::now();
                    let text = dump.to_string();
                    renders.push(t.elapsed());
                    let t = Instant::now();
                    drop(dump);
                    drop(text);
                    drops.push(t.elapsed());
                    // Every task woken and captured anew (nothing reused from the last dump).
                    let t = Instant::now();
                    let dump = tasktrace::dump_with(tasktrace::DumpOptions::default().fresh(true)).await;
                    fresh.push(t.elapsed());
                    drop(dump);
                }
                println!(
                    "RESULT dump_parts ours n={n} first_capture_ms={} capture_ms={} fresh_capture_ms={} first_render_ms={} render_ms={} drop_ms={}",
                    ms(captures[0]),
                    ms(median(captures[1..].to_vec())),
                    ms(median(fresh.clone())),
                    ms(renders[0]),
                    ms(median(renders[1..].to_vec())),
                    ms(median(drops[1..].to_vec()))
                );
                idle.finish().await;
            });
        }
        "cold-resolve" => {
            // What the first symbolisation costs in this binary, without any of tasktrace.
            let mut ips = Vec::new();
            backtrace::trace(|f| {
                ips.push(f.ip() as usize);
                true
            });
            let (rss0, heap0) = (rss_bytes(), counting::live());
            let t = Instant::now();
            backtrace::resolve(ips[0] as *mut std::ffi::c_void, |s| {
                std::hint::black_box(s.name());
            });
            let first = t.elapsed();
            println!(
                "first resolve: +{} KiB RSS, +{} KiB live heap",
                (rss_bytes() - rss0) / 1024,
                (counting::live() - heap0) / 1024
            );
            if args.get(1).map(String::as_str) == Some("first") {
                println!("RESULT cold_resolve - first_ms={}", ms(first));
                return;
            }
            let t = Instant::now();
            for &ip in &ips[1..] {
                backtrace::resolve(ip as *mut std::ffi::c_void, |s| {
                    std::hint::black_box(s.name());
                });
            }
            println!(
                "RESULT cold_resolve - first_ms={} next_{}_ms={}",
                ms(first),
                ips.len() - 1,
                ms(t.elapsed())
            );
        }
        "contenders" => println!("{}", contenders().join(" ")),
        "report" => {
            let results: String = arg(&args, 1, "results file");
            let criterion: String = arg(&args, 2, "criterion directory");
            report::print(&results, &criterion);
        }
        other => {
            eprintln!("unknown command {other}; see the doc comment of bench/src/main.rs");
            std::process::exit(2);
        }
    }
}
