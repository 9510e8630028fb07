//! Helpers of the tests that build `testdata/tokio-targets` against real tokio versions, run
//! it, and read it with `tasktrace`. Every child is killed on drop; every wait has a deadline.
#![allow(dead_code)]

pub mod frameworks;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use tasktrace_model::{Dump, FrameKind, Node, Task};

/// The `tasktrace` binary under test.
pub const TASKTRACE: &str = env!("CARGO_BIN_EXE_tasktrace");
/// The target's source (await lines are looked up in it).
pub const SOURCE: &str = include_str!("../../../../testdata/tokio-targets/main.rs");
/// Its crate's path prefix.
pub const PREFIX: &str = "tokio_target::";

/// One build at a time: every version's build writes the same `target/PROFILE/tokio-target`
/// of the shared target dir before `build.sh` copies it away.
static BUILD: Mutex<()> = Mutex::new(());

/// The cargo target dir of this test run (`…/target`).
pub fn target_dir() -> PathBuf {
    std::path::Path::new(TASKTRACE)
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

/// A directory of one test's own under the system's temp dir, removed on drop: when the test
/// passes and when an assertion fails, so that no core file of hundreds of MB outlives a run.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `…/tasktrace-WHAT-PID`, emptied and created.
    pub fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tasktrace-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: impl AsRef<std::path::Path>) -> PathBuf {
        self.0.join(name)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the target against tokio `version` in `profile` (`dev` or `release`) and returns
/// the binary's path. Cached under `<target>/tokio-targets`.
pub fn build_target(version: &str, profile: &str) -> String {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = target_dir().join("tokio-targets");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/tokio-targets/build.sh"
    );
    let mut child = Command::new("bash")
        .arg(script)
        .args([version, profile])
        .arg(&out_dir)
        .env("TOKIO_TARGETS_SHARED_TARGET_DIR", out_dir.join("target"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run build.sh");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = wait_child(
        &mut child,
        Duration::from_secs(900),
        &format!("building the tokio {version} target"),
    );
    let out = reader.join().expect("stdout thread");
    assert!(
        status.success(),
        "building the tokio {version} target failed"
    );
    out.trim().lines().last().expect("binary path").to_string()
}

/// The line of the first line of the target's source containing `text`.
pub fn line(text: &str) -> u32 {
    SOURCE
        .lines()
        .position(|l| l.contains(text))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no line with {text:?} in main.rs"))
}

/// A running target, killed on drop.
pub struct Target {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its echo server's port.
    pub port: u16,
    /// Its stdout, line by line.
    lines: mpsc::Receiver<String>,
}

impl Target {
    /// Starts `exe` and waits (60 s at most) for its `ready <port> <pid>` line.
    pub fn start(exe: &str, args: &[&str]) -> Target {
        let mut t = Target::spawn(exe, args);
        let rest = t.wait_for("ready ");
        // `ready <port> <pid>` (tokio-targets) or `ready <ip>:<port>` (the demo).
        let first = rest.split_whitespace().next().unwrap_or("");
        t.port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        t
    }

    /// Starts `exe` with `args`, its stdout read line by line ([`wait_for`](Self::wait_for)).
    pub fn spawn(exe: &str, args: &[&str]) -> Target {
        // An executable this test process has just written can be "busy" for a moment: a
        // child forked meanwhile by another test thread holds the written file's descriptor
        // until it execs (ETXTBSY). That passes; anything else fails now.
        let mut tries = 0;
        let mut child = loop {
            match Command::new(exe).args(args).stdout(Stdio::piped()).spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.expect("start the target"),
            }
        };
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let _ = tx.send(l);
            }
        });
        let pid = child.id();
        Target {
            child,
            pid,
            port: 0,
            lines: rx,
        }
    }

    /// Waits (60 s at most) for the next line starting with `prefix`; returns the rest.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!("the target did not print `{prefix}…` within 60s ({e})")
            });
            if let Some(rest) = l.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }

    /// Asserts the target is not left stopped and still serves its echo port.
    pub fn assert_running_and_echoes(&self) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        let state = stat[stat.rfind(')').expect(")") + 2..]
            .chars()
            .next()
            .expect("state");
        assert!(!matches!(state, 't' | 'T'), "target left stopped");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("echo after detach");
        assert_eq!(&buf, b"ping");
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tasktrace` with a 120 s deadline.
pub fn tasktrace(args: &[&str]) -> Output {
    tasktrace_env(args, &[])
}

/// Runs `tasktrace` with extra environment variables, with a 120 s deadline.
pub fn tasktrace_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(TASKTRACE)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tasktrace");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = wait_child(
        &mut child,
        Duration::from_secs(120),
        &format!("tasktrace {args:?}"),
    );
    Output {
        status,
        stdout: o.join().expect("stdout thread"),
        stderr: e.join().expect("stderr thread"),
    }
}

/// The JSON dump `tasktrace … --json` printed.
pub fn dump_of(out: &Output) -> Dump {
    assert!(
        out.status.success(),
        "tasktrace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON dump")
}

/// Tasks whose root frame is the async fn `func` of the target.
pub fn tasks_of<'d>(d: &'d Dump, func: &str) -> Vec<&'d Task> {
    let name = format!("{PREFIX}{func}");
    d.tasks
        .iter()
        .filter(|t| {
            t.trace
                .roots
                .first()
                .is_some_and(|r| r.frame.function == name && r.frame.kind == FrameKind::AsyncFn)
        })
        .collect()
}

/// The one task rooted at `func`.
pub fn one<'d>(d: &'d Dump, func: &str) -> &'d Task {
    let ts = tasks_of(d, func);
    assert_eq!(ts.len(), 1, "tasks rooted at {func}: {d}");
    ts[0]
}

/// The single root of a task's trace.
pub fn root(t: &Task) -> &Node {
    assert_eq!(t.trace.roots.len(), 1, "{t:?}");
    &t.trace.roots[0]
}

/// Asserts `n` is the async fn `func` suspended at the line containing `at`.
pub fn is_async(n: &Node, func: &str, at: &str) {
    assert_eq!(n.frame.function, format!("{PREFIX}{func}"), "{n:#?}");
    assert_eq!(n.frame.kind, FrameKind::AsyncFn, "{n:#?}");
    let loc = n.frame.location.as_ref().expect("a location");
    assert!(loc.file.ends_with("src/main.rs"), "{loc:?}");
    assert_eq!(loc.line, line(at), "await line of {func}");
}

/// The single child of `n`.
pub fn only_child(n: &Node) -> &Node {
    assert_eq!(n.children.len(), 1, "{n:#?}");
    &n.children[0]
}

/// Asserts `n` is a leaf of type `ty` whose note contains `note`.
pub fn is_leaf(n: &Node, ty: &str, note: &str) {
    assert_eq!(n.frame.kind, FrameKind::Leaf, "{n:#?}");
    assert!(n.frame.function.starts_with(ty), "{n:#?}");
    let got = n.frame.annotation().unwrap_or_default();
    assert!(got.contains(note), "note {got:?} lacks {note:?}");
    assert!(n.children.is_empty());
}

/// A test that cannot run here because `what` is missing: under CI (`.ci/run` sets `CI`) a
/// broken install step must not pass, so this fails the test; elsewhere it says so loudly and
/// the caller returns.
pub fn missing(what: &str, hint: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing under CI ({hint})"
    );
    eprintln!("\n*** {what} is missing: this test did NOT run fully ({hint}) ***\n");
}

/// Dumps the core of the running process `pid` with `gcore` (120 s deadline) as
/// `<prefix>.<pid>` and returns its path; `None` (and a line saying why) when gcore is not
/// installed, outside CI: under CI (`CI` set) a missing gcore fails the test.
pub fn gcore(pid: u32, prefix: &std::path::Path) -> Option<String> {
    if Command::new("gcore").arg("--version").output().is_err() {
        missing("gcore", "scripts/test-all installs gdb");
        return None;
    }
    if let Some(dir) = prefix.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let out = Command::new("timeout")
        .args(["120", "gcore", "-o"])
        .arg(prefix)
        .arg(pid.to_string())
        .output()
        .expect("run gcore");
    assert!(
        out.status.success(),
        "gcore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(format!("{}.{pid}", prefix.display()))
}

/// Waits for `child` at most `limit`; past it, kills it and fails the test naming `what`.
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `objcopy` (binutils) with `args`; false when it fails or is not installed.
pub fn objcopy(args: &[&str]) -> bool {
    Command::new("objcopy")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// The demo target's source, whose lines carry `// @name` markers.
pub const DEMO_SOURCE: &str = include_str!("../../src/bin/tasktrace-demo-target.rs");

/// The line of the demo target's source that ends with the marker `// @name`.
pub fn demo_line(name: &str) -> u32 {
    let marker = format!("// @{name}");
    DEMO_SOURCE
        .lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no marker {marker} in the demo target"))
}
