//! `tasktrace top PID`: a live table of a running program's tasks — where each waits, how long
//! it has been seen waiting there, how often it was seen running — refreshed every
//! `--interval` by the sampling engine of `record` ([`crate::sampling`]); `--once` prints the
//! table for scripts.
//!
//! The table itself — where each task waits, its rows over the samples, their sort and
//! grouping, the table printed once — is the model's ([`tasktrace_model::top`]), shared with
//! the in-process `/debug/tasks/top`. Modules here, one job each: [`app`] (the live view's
//! state, its `/` filter and keys), [`screen`] (drawing), [`terminal`] (raw mode and its
//! restoring), [`keys`] (keys read from the terminal, a closed terminal seen), [`live`] (the
//! sampler and screen threads).
//!
//! Invariants: the process is stopped only inside a sample, and left running on every way out
//! (q, Ctrl-C, SIGTERM, the terminal closed, the process exiting, an error); each way out ends
//! with one line on stderr saying why, after the terminal is restored.

mod app;
mod keys;
mod live;
mod screen;
mod terminal;

use crate::sampling::Sampler;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tasktrace_inspect::process::pid::exited;
use tasktrace_inspect::Options;
use tasktrace_model::top::history::History;
use tasktrace_model::top::table::{self, Producer, Summary, TableFormat};

/// The signals that end the view (blocked while a sample holds the process).
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGHUP, libc::SIGTERM];

/// `tasktrace top`'s arguments.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The process id.
    #[arg(value_parser = crate::parse_pid)]
    pub pid: i32,
    /// Seconds between samples (lengthened, and said, when a sample takes longer).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,
    /// Print the table once, after `--samples` samples, instead of the live view.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: how many samples, `--interval` apart (the waits and busy % are over
    /// them).
    #[arg(long, value_name = "N", default_value = "2", requires = "once",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// With `--once`: text or json.
    #[arg(long, value_name = "FMT", default_value = "text", requires = "once")]
    pub format: TableFormat,
    /// Deadline for stopping every thread at each sample, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = crate::parse_timeout,
          allow_negative_numbers = true)]
    pub timeout: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::parse_seconds(s, "--interval")
}

/// How the live view ended.
pub enum Ending {
    /// `q` or Ctrl-C.
    Quit,
    /// A signal (SIGINT, SIGHUP, SIGTERM), or Ctrl-C typed (SIGINT: in raw mode the terminal
    /// sends none, the key comes as a key).
    Signal(libc::c_int),
    /// The terminal went away (reading or drawing failed).
    TerminalGone,
    /// A sample failed (the process exited, or could not be read).
    SampleFailed(tasktrace_inspect::Error),
    /// The view could not run.
    Failed(String),
}

/// Runs `tasktrace top`.
pub fn top(args: TopArgs) -> Result<(), String> {
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !args.once && !terminal {
        return Err(
            "top: the live view needs a terminal (`--once` prints the table instead)".into(),
        );
    }
    let opts = Options {
        timeout: args.timeout,
        ..Options::default()
    };
    // Indexing the debuginfo (or fetching it from debuginfod) holds nothing: a signal may end
    // it as it would any command.
    let sampler = Sampler::new(args.pid, opts, args.interval, &SIGNALS)?;
    // From here on blocked for good, in this thread and the sampler's (see
    // `crate::interrupt`): taken between two draws, or two samples.
    let _blocked = crate::interrupt::Blocked::new(&SIGNALS);
    if args.once {
        return print_once(sampler, &args);
    }
    let pid = args.pid;
    let ended = live::run(
        sampler,
        pid,
        &SIGNALS,
        args.timeout + Duration::from_secs(10),
    )?;
    let after = format!(
        "after {} sample{}",
        ended.samples,
        if ended.samples == 1 { "" } else { "s" }
    );
    let left = if ended.sampler_done {
        format!("process {pid} was left running")
    } else {
        format!("the last sample did not end in time; process {pid} is let go as this exits")
    };
    match ended.ending {
        Ending::Quit => eprintln!("tasktrace top: quit {after}; {left}"),
        Ending::Signal(s) => eprintln!(
            "tasktrace top: {} {after}; {left}",
            crate::interrupt::describe(s)
        ),
        Ending::TerminalGone => {
            eprintln!("tasktrace top: the terminal was closed {after}; {left}")
        }
        Ending::SampleFailed(_) if exited(pid) => {
            eprintln!("tasktrace top: process {pid} exited ({after})")
        }
        Ending::SampleFailed(e) => return Err(format!("{e} ({after}; {left})")),
        Ending::Failed(e) => return Err(format!("top: {e} ({left})")),
    }
    Ok(())
}

/// `--once`: the samples, then the table.
fn print_once(mut sampler: Sampler, args: &TopArgs) -> Result<(), String> {
    let mut history = History::default();
    let mut rows = Vec::new();
    let mut last = None;
    let mut signal = None;
    let mut stop = || {
        signal = signal.or_else(|| crate::interrupt::take_pending(&SIGNALS));
        signal.is_some()
    };
    for i in 0..args.samples {
        let t0 = Instant::now();
        let sample = sampler.sample().map_err(|e| e.to_string())?;
        rows = history.add(&sample.dump, t0, &sample.sampled);
        last = Some(sample);
        if i + 1 < args.samples {
            sampler.wait_next(t0, &mut stop);
        }
        if stop() {
            let s = signal.unwrap_or(libc::SIGINT);
            return Err(format!("top: {}", crate::interrupt::describe(s)));
        }
    }
    let last = last.expect("--samples is at least 1");
    let summary = Summary {
        pid: args.pid,
        samples: sampler.samples(),
        interval: sampler.period(),
        producer: Producer::Attached {
            stopped: sampler.stopped_summary(usize::MAX),
        },
        deadlocks: last.dump.deadlocks,
        diagnoses: last.dump.diagnoses,
        sampled: last.sampled,
    };
    let out = table::render(&rows, &summary, args.format);
    crate::write_stdout(out.as_bytes())
}
