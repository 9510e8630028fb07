//! `tasktrace record`: where a live process's tasks wait over time. It attaches at a rate,
//! reads every task each time (the debuginfo indexed once: [`crate::sampling`]),
//! and sums the default-view stacks over the samples ([`tasktrace_model::record`]): the width
//! of a frame in the flame graph is the task-time spent there.
//!
//! Never piling up: a sample that takes longer than the period lowers the rate (and says so).
//! Ctrl-C ends the recording early and still writes the output: `SIGINT` is blocked while a
//! sample holds the process stopped, and a handler that only sets a flag
//! ([`crate::interrupt`]) takes it between samples.

use crate::sampling::Sampler;
use regex::Regex;
use std::time::{Duration, Instant};
use tasktrace_inspect::Options;
use tasktrace_model::record::{RecordFormat, Recording};
use tasktrace_model::SampledDiagnosis;

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

/// Records, then writes the output; a summary (samples, stopped time per sample) goes to
/// stderr.
pub fn record(args: RecordArgs) -> Result<(), String> {
    let opts = Options {
        timeout: args.timeout,
        threads: args.threads,
        ..Options::default()
    };
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut sampler = Sampler::new(args.pid, opts, period, &[libc::SIGINT])?;
    crate::interrupt::install(&[libc::SIGINT]);
    let stop = || crate::interrupt::received().is_some();
    let mut rec = Recording::default();
    let mut diagnoses: Vec<SampledDiagnosis> = Vec::new();
    let started = Instant::now();
    eprintln!(
        "tasktrace record: process {} for {:.1}s at {} Hz (Ctrl-C ends it early)",
        args.pid,
        args.duration.as_secs_f64(),
        args.rate
    );
    while started.elapsed() < args.duration && !stop() {
        let t0 = Instant::now();
        let mut dump = match sampler.sample() {
            Ok(s) => {
                for d in s.sampled {
                    SampledDiagnosis::keep_longest(&mut diagnoses, d);
                }
                s.dump
            }
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
        // The samples read the threads anyway (for the diagnoses); their stacks are
        // recorded when asked for.
        for th in dump.threads.iter().filter(|_| args.threads) {
            if !th.native_stack.is_empty() {
                let name = th
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("thread {}", th.tid));
                rec.add_native(&name, &th.native_stack);
            }
        }
        sampler.wait_next(t0, stop);
    }
    if sampler.lowered() {
        eprintln!(
            "tasktrace record: samples took longer than the period: the rate was lowered to \
             {:.1} Hz",
            rec.samples() as f64 / started.elapsed().as_secs_f64()
        );
    }
    let (median, max) = sampler.stopped_summary(usize::MAX);
    let copies = sampler.copy_reads();
    eprintln!(
        "tasktrace record: {} samples in {:.1}s; process stopped per sample: median {:.2} ms, \
         max {:.1} ms; {} read from copies made in one step, {} stopped twice (the copies \
         lacked a page the read needed: new tasks or memory)",
        rec.samples(),
        started.elapsed().as_secs_f64(),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        copies.whole,
        copies.missed,
    );
    for d in &diagnoses {
        eprintln!("{d}");
    }
    let title = format!("Where the tasks of process {} waited", args.pid);
    let bytes = rec.render(args.format, &title);
    match &args.output {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| format!("cannot write {path}: {e}")),
        None => crate::write_stdout(&bytes),
    }
}
