//! `tasktrace record`: where a live process's tasks wait over time. It attaches at a rate,
//! reads every task each time (the debuginfo indexed once, [`tasktrace_inspect::Session`]),
//! and sums the default-view stacks over the samples ([`tasktrace_model::record`]): the width
//! of a frame in the flame graph is the task-time spent there.
//!
//! Never piling up: a sample that takes longer than the period lowers the rate (and says so).
//! Ctrl-C ends the recording early and still writes the output: `SIGINT` is blocked while a
//! sample holds the process stopped (so the handler that would detach and exit never runs
//! then), and a handler that only sets a flag takes it between samples.

use regex::Regex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tasktrace_inspect::{Options, Session};
use tasktrace_model::record::{RecordFormat, Recording};

/// Parses `--duration`: seconds, more than zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::parse_seconds(s, "--duration")
}

/// How to record: `tasktrace record`'s arguments.
#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// The process id.
    #[arg(value_parser = crate::parse_pid)]
    pub pid: i32,
    /// How long to record, in seconds (Ctrl-C ends it early and still writes the output).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Duration,
    /// Samples per second (lowered, and said, if a sample takes longer than its period).
    #[arg(long, value_name = "HZ", default_value = "10", value_parser = crate::parse_rate)]
    pub rate: f64,
    /// Output format: folded, svg, speedscope, pprof.
    #[arg(long, value_name = "FMT", default_value = "svg", value_parser = str::parse::<RecordFormat>)]
    pub format: RecordFormat,
    /// Write the output to this file (default: standard output).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<String>,
    /// Keep only the tasks whose root function matches this regular expression.
    #[arg(long, value_name = "REGEX", value_parser = crate::parse_regex)]
    pub task: Option<Regex>,
    /// Also sample the native stacks of the threads inside a poll.
    #[arg(long)]
    pub threads: bool,
    /// Deadline for stopping every thread at each sample, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = crate::parse_timeout,
          allow_negative_numbers = true)]
    pub timeout: Duration,
}

/// Set by the `SIGINT` handler: end the recording after the current sample.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// `SIGINT` blocked in the calling thread while it lives (and so in the threads it spawns).
struct SigintBlocked;

impl SigintBlocked {
    fn new() -> Self {
        set_sigint_mask(libc::SIG_BLOCK);
        SigintBlocked
    }
}

impl Drop for SigintBlocked {
    fn drop(&mut self) {
        // A Ctrl-C that came while blocked is delivered now, to `on_sigint`.
        set_sigint_mask(libc::SIG_UNBLOCK);
    }
}

fn set_sigint_mask(how: libc::c_int) {
    // SAFETY: builds a signal set on the stack and changes this thread's mask; both calls
    // only read and write the pointed-to sets.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

fn install_sigint() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Records, then writes the output; a summary (samples, stopped time per sample) goes to
/// stderr.
pub fn record(args: RecordArgs) -> Result<(), String> {
    let opts = Options {
        timeout: args.timeout,
        threads: args.threads,
        ..Options::default()
    };
    let session = Session::new(args.pid, &opts).map_err(|e| e.to_string())?;
    install_sigint();
    let mut rec = Recording::default();
    let mut stopped: Vec<Duration> = Vec::new();
    let wanted = Duration::from_secs_f64(1.0 / args.rate);
    // How long a sample typically takes (a moving average): the period follows it, so one
    // slow sample (the machine busy for a moment) does not slow all the others.
    let mut typical: Option<Duration> = None;
    let mut lowered = false;
    let started = Instant::now();
    eprintln!(
        "tasktrace record: process {} for {:.1}s at {} Hz (Ctrl-C ends it early)",
        args.pid,
        args.duration.as_secs_f64(),
        args.rate
    );
    while started.elapsed() < args.duration && !STOP.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        let sample = {
            let _blocked = SigintBlocked::new();
            session.sample(&opts)
        };
        let (mut dump, held) = match sample {
            Ok(s) => s,
            // The process is gone: what was recorded is still written.
            Err(e) if rec.samples() > 0 => {
                eprintln!("tasktrace record: stopped early: {e}");
                break;
            }
            Err(e) => return Err(e.to_string()),
        };
        if let Some(re) = &args.task {
            dump.tasks.retain(|t| {
                t.trace
                    .roots
                    .first()
                    .is_some_and(|r| re.is_match(&r.frame.function))
            });
        }
        rec.add(&dump);
        for th in &dump.threads {
            if !th.native_stack.is_empty() {
                let name = th
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("thread {}", th.tid));
                rec.add_native(&name, &th.native_stack);
            }
        }
        stopped.push(held);
        let took = t0.elapsed();
        let avg = typical.map_or(took, |t| t.mul_f64(0.8) + took.mul_f64(0.2));
        typical = Some(avg);
        // Never pile up: samples come no faster than they take, with a quarter to spare.
        let period = wanted.max(avg.mul_f64(1.25));
        lowered |= period > wanted;
        let left = period.saturating_sub(t0.elapsed());
        let wake = Instant::now() + left;
        while Instant::now() < wake && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(50)));
        }
    }
    if lowered {
        eprintln!(
            "tasktrace record: samples took longer than the period: the rate was lowered to \
             {:.1} Hz",
            rec.samples() as f64 / started.elapsed().as_secs_f64()
        );
    }
    stopped.sort();
    let median = stopped.get(stopped.len() / 2).copied().unwrap_or_default();
    let max = stopped.last().copied().unwrap_or_default();
    eprintln!(
        "tasktrace record: {} samples in {:.1}s; process stopped per sample: median {:.1} ms, \
         max {:.1} ms",
        rec.samples(),
        started.elapsed().as_secs_f64(),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    let title = format!("Where the tasks of process {} waited", args.pid);
    let bytes = rec.render(args.format, &title);
    match &args.output {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| format!("cannot write {path}: {e}")),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(&bytes).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(format!("cannot write the output: {e}"))
                }
                _ => Ok(()),
            }
        }
    }
}
