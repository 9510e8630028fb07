//! The `tasktrace` command: read the task trees of a running tokio program (`attach`) or of a
//! core file (`core`) from outside, or run the bundled tour (`demo`). Thin: argument parsing,
//! filtering, output; the reading is `tasktrace-inspect`'s.
//!
//! Errors are one line on stderr and a non-zero exit status (2: bad usage, 1: failure).

mod interrupt;
mod record;
mod sampling;
mod top;

use clap::{Args, Parser, Subcommand};
use regex::Regex;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tasktrace_inspect::Options;
use tasktrace_model::{Dump, Format};

const USAGE: &str =
    "tasktrace attach <PID> [--format FMT] [-o FILE] [--task REGEX] [--threads] [--values] [--timeout SECS]
       tasktrace core <CORE> [--exe BIN] [--sysroot DIR] [--format FMT] [-o FILE] [--task REGEX] [--threads] [--values]
       tasktrace record <PID> --duration SECS [--rate HZ] [--format folded|svg|speedscope|pprof] [-o FILE] [--task REGEX] [--threads]
       tasktrace top <PID> [--interval SECS] [--once [--samples N] [--format text|json]]
       tasktrace demo [--format FMT] [-o FILE]";

/// Dump the async tasks of a running tokio program, or of a core file, from outside: every
/// task with the logical stack it is suspended in, read from DWARF debuginfo alone.
#[derive(Parser, Debug)]
#[command(name = "tasktrace", version, override_usage = USAGE)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Stop every thread of a live process, read its tasks, detach (on every path).
    Attach {
        /// The process id.
        #[arg(value_parser = parse_pid)]
        pid: i32,
        /// Deadline for stopping every thread, in seconds.
        #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout,
              allow_negative_numbers = true)]
        timeout: Duration,
        /// A separate debug file for the executable (when it has no debuginfo of its own
        /// and none is found by build id or `.gnu_debuglink`).
        #[arg(long, value_name = "FILE")]
        debuginfo: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Read the tasks of a core file (e.g. from `gcore PID`).
    Core {
        /// The core file.
        core: String,
        /// The executable that dumped it (default: the one the core names, found under
        /// `--sysroot` or where it was, or by build id from `DEBUGINFOD_URLS`).
        #[arg(long, value_name = "BIN")]
        exe: Option<String>,
        /// The dumping machine's (or container's) files, copied here: the executable, its
        /// libraries and debug files are looked up under DIR first.
        #[arg(long, value_name = "DIR")]
        sysroot: Option<String>,
        /// A separate debug file for the executable (see `attach --debuginfo`).
        #[arg(long, value_name = "FILE")]
        debuginfo: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Where a live process's tasks wait over time: attach at a rate, sum the stacks of every
    /// task over the samples (a frame's width: task-time spent there).
    Record(record::RecordArgs),
    /// A live table of a process's tasks: where each waits, for how long, how busy it is;
    /// refreshed every `--interval` (`--once`: printed once).
    Top(top::TopArgs),
    /// Start the bundled example target, attach to it and print its tasks.
    Demo {
        /// Deadline for stopping every thread, in seconds.
        #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout,
              allow_negative_numbers = true)]
        timeout: Duration,
        #[command(flatten)]
        out: Output,
    },
}

/// How the dump is printed.
#[derive(Args, Debug)]
struct Output {
    /// Output format: text, verbose, grouped, json, json-raw, folded, svg, pprof (gzipped
    /// profile.proto of the default view, one sample per task path), pprof-raw (every frame).
    #[arg(long, value_name = "FMT", default_value = "text", value_parser = parse_format)]
    format: OutFormat,
    /// Same as `--format json-raw`: the dump as JSON with every frame as read (`--format
    /// json` is the default view's; docs/json-schema.md).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Write the output to this file (default: standard output).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<String>,
    /// Keep only the tasks whose root function matches this regular expression.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    task: Option<Regex>,
    /// Also list the threads: workers (local queue, task being polled), block_on threads
    /// with their root future (e.g. `#[tokio::main]`'s), blocking-pool threads.
    #[arg(long)]
    threads: bool,
    /// Also show the values in each async fn frame: its arguments and the locals it keeps
    /// across its await (`place_order(order_id: 981, user: "bob")`), and the values of the
    /// task-locals in scope for a task on its header line (`TRACE_ID = "t-5"`). Off by
    /// default: values may hold secrets. The fields a `tracing` span recorded are not read
    /// from outside (they live in the subscriber): the program's own snapshot shows them.
    #[arg(long)]
    values: bool,
}

/// A renderer of the model, or the pprof export (bytes, not text).
#[derive(Clone, Copy, Debug)]
enum OutFormat {
    Model(Format),
    /// `raw`: every frame, as `json-raw`; otherwise the default view, as `json`.
    Pprof {
        raw: bool,
    },
}

fn parse_format(s: &str) -> Result<OutFormat, String> {
    match s {
        "pprof" => Ok(OutFormat::Pprof { raw: false }),
        "pprof-raw" => Ok(OutFormat::Pprof { raw: true }),
        _ => s
            .parse()
            .map(OutFormat::Model)
            .map_err(|_: String| Format::unknown(s, &["pprof", "pprof-raw"])),
    }
}

pub(crate) fn parse_pid(s: &str) -> Result<i32, String> {
    s.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("not a process id: {s}"))
}

pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_seconds(s, "--timeout")
}

/// Seconds, more than zero, for the option `flag`.
pub(crate) fn parse_seconds(s: &str, flag: &str) -> Result<Duration, String> {
    s.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad {flag}: {s} (seconds > 0)"))
}

pub(crate) fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0 && *r <= 1000.0)
        .ok_or_else(|| format!("bad --rate: {s} (samples per second, 0 < HZ <= 1000)"))
}

pub(crate) fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("bad --task regex: {e}"))
}

/// Keeps tasks whose root frame's function matches `re`, and says how many did.
fn filter(mut dump: Dump, re: &Regex) -> Dump {
    let all = dump.tasks.len();
    dump.tasks.retain(|t| {
        t.trace
            .roots
            .first()
            .is_some_and(|r| re.is_match(&r.frame.function))
    });
    // A cycle is shown only when every task of it is (a dump never names a task it leaves
    // out).
    let kept: std::collections::HashSet<u64> = dump.tasks.iter().map(|t| t.id).collect();
    dump.deadlocks
        .retain(|cycle| cycle.iter().all(|id| kept.contains(id)));
    dump.notes.push(format!(
        "{} of {all} tasks match --task {}",
        dump.tasks.len(),
        re.as_str()
    ));
    dump
}

fn print(dump: &Dump, out: &Output) -> Result<(), String> {
    let format = if out.json {
        OutFormat::Model(Format::JsonRaw)
    } else {
        out.format
    };
    let bytes = match format {
        OutFormat::Model(f) => {
            let mut s = dump.render(f);
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s.into_bytes()
        }
        OutFormat::Pprof { raw: false } => tasktrace_model::pprof::to_pprof(&dump.cleaned()),
        OutFormat::Pprof { raw: true } => tasktrace_model::pprof::to_pprof(dump),
    };
    if let Some(path) = &out.output {
        return std::fs::write(path, &bytes).map_err(|e| format!("cannot write {path}: {e}"));
    }
    write_stdout(&bytes)
}

/// Writes `bytes` to standard output.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the output: {e}"))
        }
        _ => Ok(()),
    }
}

/// The demo target, killed when dropped.
struct DemoChild(Child);

impl Drop for DemoChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Under `cargo run --bin tasktrace` only `tasktrace` is built: builds the demo target beside
/// it, with the same profile, in the same target directory. Nothing happens outside cargo.
fn build_demo_target(me: &std::path::Path) -> Result<(), String> {
    let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(|d| std::path::PathBuf::from(d).join("Cargo.toml")),
    ) else {
        return Ok(());
    };
    let ours = std::fs::read_to_string(&manifest)
        .is_ok_and(|m| m.contains("name = \"tasktrace-demo-target\""));
    let (Some(profile_dir), true) = (me.parent(), ours) else {
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--bin", "tasktrace-demo-target"]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => return Ok(()),
    }
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    eprintln!(
        "tasktrace demo: building the demo target (`cargo build --bin tasktrace-demo-target`)"
    );
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo to build the demo target: {e}"))?;
    if !status.success() {
        return Err(format!("building the demo target failed ({status})"));
    }
    Ok(())
}

fn demo(timeout: Duration, threads: bool) -> Result<Dump, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let target = me.with_file_name("tasktrace-demo-target");
    if !target.exists() {
        build_demo_target(&me)?;
    }
    if !target.exists() {
        return Err(format!(
            "the demo target is missing: {} (build it with `cargo build -p tasktrace-cli`; \
             `cargo install` installs it beside `tasktrace`)",
            target.display()
        ));
    }
    let mut child = DemoChild(
        Command::new(&target)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", target.display()))?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or("no stdout from the demo target")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("ready") => break,
            Ok(_) => continue,
            Err(_) => {
                return Err("the demo target did not print `ready` within its 30s deadline".into())
            }
        }
    }
    let pid = child.0.id() as i32;
    eprintln!(
        "tasktrace demo: attached to {} (pid {pid})",
        target.display()
    );
    let opts = Options {
        timeout,
        threads,
        ..Options::default()
    };
    tasktrace_inspect::attach(pid, &opts).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    let (dump, out) = match cli.command {
        Cmd::Record(args) => return record::record(args),
        Cmd::Top(args) => return top::top(args),
        Cmd::Attach {
            pid,
            timeout,
            debuginfo,
            out,
        } => {
            let opts = Options {
                timeout,
                threads: out.threads,
                values: out.values,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                debuginfo,
                ..Options::default()
            };
            (
                tasktrace_inspect::attach(pid, &opts).map_err(|e| e.to_string())?,
                out,
            )
        }
        Cmd::Core {
            core,
            exe,
            sysroot,
            debuginfo,
            out,
        } => {
            let opts = Options {
                threads: out.threads,
                values: out.values,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                debuginfo,
                sysroot,
                ..Options::default()
            };
            (
                tasktrace_inspect::core(&core, exe.as_deref(), &opts).map_err(|e| e.to_string())?,
                out,
            )
        }
        Cmd::Demo { timeout, out } => (demo(timeout, out.threads)?, out),
    };
    let dump = match &out.task {
        Some(re) => filter(dump, re),
        None => dump,
    };
    print(&dump, &out)
}

fn main() {
    // Never a panic trace: an internal error is one line too (a held process is detached by
    // its guard while unwinding, or by the kernel when this process exits).
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        eprintln!("tasktrace: internal error: {what}{at}");
    }));
    // Bad usage: clap's message and exit status 2 (0 for --help / --version).
    let cli = Cli::parse();
    if let Err(msg) = run(cli) {
        eprintln!("tasktrace: {msg}");
        std::process::exit(1);
    }
}
