//! The `tasktrace` command: read the task trees of a running tokio program (`attach`) or of a
//! core file (`core`) from outside, or run the bundled tour (`demo`). Thin: argument parsing,
//! filtering, output; the reading is `tasktrace-inspect`'s.
//!
//! Errors are one line on stderr and a non-zero exit status (2: bad usage, 1: failure).

use regex::Regex;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tasktrace_inspect::Options;
use tasktrace_model::Dump;

const USAGE: &str = "usage:
  tasktrace attach <PID> [--json] [--task REGEX] [--timeout SECS]
  tasktrace core <CORE> --exe <BIN> [--json] [--task REGEX]
  tasktrace demo [--json]";

struct Args {
    command: String,
    target: Option<String>,
    exe: Option<String>,
    json: bool,
    task: Option<Regex>,
    timeout: Duration,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut it = argv.iter();
    let command = it.next().ok_or("missing command")?.clone();
    if command == "-h" || command == "--help" || command == "help" {
        return Err(String::new());
    }
    let mut args = Args {
        command,
        target: None,
        exe: None,
        json: false,
        task: None,
        timeout: Duration::from_secs(5),
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--json" => args.json = true,
            "--exe" => args.exe = Some(value("--exe")?),
            "--task" => {
                let re = value("--task")?;
                args.task = Some(Regex::new(&re).map_err(|e| format!("bad --task regex: {e}"))?);
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("bad --timeout: {v} (seconds > 0)"))?;
                args.timeout = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if args.target.is_none() => args.target = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    Ok(args)
}

/// Keeps tasks whose root frame's function matches `re`.
fn filter(mut dump: Dump, re: &Regex) -> Dump {
    dump.tasks.retain(|t| {
        t.trace
            .roots
            .first()
            .is_some_and(|r| re.is_match(&r.frame.function))
    });
    dump
}

fn print(dump: &Dump, json: bool) -> Result<(), String> {
    use std::io::Write;
    let text = if json {
        let mut s =
            serde_json::to_string_pretty(dump).map_err(|e| format!("cannot write JSON: {e}"))?;
        s.push('\n');
        s
    } else {
        dump.to_string()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
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

fn demo(args: &Args) -> Result<Dump, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let target = me.with_file_name("tasktrace-demo-target");
    if !target.exists() {
        return Err(format!(
            "the demo target is missing: {} (build it with `cargo build -p tasktrace-cli`)",
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
        timeout: args.timeout,
        ..Options::default()
    };
    tasktrace_inspect::attach(pid, &opts).map_err(|e| e.to_string())
}

fn run(argv: &[String]) -> Result<(), (i32, String)> {
    let args = parse(argv).map_err(|e| {
        if e.is_empty() {
            (0, USAGE.to_string())
        } else {
            (2, format!("{e}\n{USAGE}"))
        }
    })?;
    let opts = Options {
        timeout: args.timeout,
        ..Options::default()
    };
    let dump = match args.command.as_str() {
        "attach" => {
            let t = args
                .target
                .as_deref()
                .ok_or((2, format!("attach needs a PID\n{USAGE}")))?;
            let pid: i32 = t
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or((2, format!("not a process id: {t}")))?;
            tasktrace_inspect::attach(pid, &opts).map_err(|e| (1, e.to_string()))?
        }
        "core" => {
            let core = args
                .target
                .as_deref()
                .ok_or((2, format!("core needs a core file\n{USAGE}")))?;
            let exe = args.exe.as_deref().ok_or((
                2,
                "core needs --exe <BIN>: the executable that dumped it".to_string(),
            ))?;
            tasktrace_inspect::core(core, exe, &opts).map_err(|e| (1, e.to_string()))?
        }
        "demo" => demo(&args).map_err(|e| (1, e))?,
        other => return Err((2, format!("unknown command {other}\n{USAGE}"))),
    };
    let dump = match &args.task {
        Some(re) => filter(dump, re),
        None => dump,
    };
    print(&dump, args.json).map_err(|e| (1, e))
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
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err((code, msg)) = run(&argv) {
        if code == 0 {
            println!("{msg}");
        } else {
            eprintln!("tasktrace: {msg}");
        }
        std::process::exit(code);
    }
}
