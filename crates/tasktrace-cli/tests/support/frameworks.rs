//! Helpers of the tests that build and read `testdata/framework-targets` (real programs on
//! crates.io frameworks and pools): its build, and questions about the trees read from it.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tasktrace_model::{Dump, FrameKind, Node, Task};

/// One build at a time (the two profiles' tests run in parallel).
static BUILD: Mutex<()> = Mutex::new(());

/// Builds every target of `testdata/framework-targets` in `profile` (`dev` or `release`);
/// returns the directory of the binaries.
pub fn build(profile: &str) -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/framework-targets"
    );
    let target = target_dir().join("framework-targets");
    let mut child = Command::new(env!("CARGO"))
        .args(["build", "--bins", "--profile", profile, "--manifest-path"])
        .arg(format!("{dir}/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdout(Stdio::null())
        .spawn()
        .expect("run cargo build");
    let status = wait_child(
        &mut child,
        Duration::from_secs(1200),
        &format!("building the framework targets ({profile})"),
    );
    assert!(status.success(), "building the framework targets failed");
    target.join(if profile == "dev" { "debug" } else { profile })
}

/// The line of `source` containing `text`.
pub fn line_in(source: &str, text: &str) -> u32 {
    source
        .lines()
        .position(|l| l.contains(text))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no line with {text:?}"))
}

/// The tasks whose (one) root frame is `function`.
pub fn rooted_at<'d>(d: &'d Dump, function: &str) -> Vec<&'d Task> {
    d.tasks
        .iter()
        .filter(|t| root_of(t).frame.function == function)
        .collect()
}

/// Whether `n` is the async fn or block `func` of the target's `file`, suspended at `line`.
pub fn is_at(n: &Node, kind: FrameKind, func: &str, file: &str, line: u32) -> bool {
    n.frame.function == func
        && n.frame.kind == kind
        && n.frame
            .location
            .as_ref()
            .is_some_and(|l| l.file.ends_with(file) && l.line == line)
}

/// Every node of a tree, depth first.
pub fn all_nodes(nodes: &[Node]) -> Vec<&Node> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n);
        out.extend(all_nodes(&n.children));
    }
    out
}

/// Reads the target `pid` until a read is whole, no task is inside a poll and `done` holds
/// (60 s at most, then the test fails saying so):
/// `ready` is printed by one task while another may still be between its last counter update
/// and its suspension (or, for a tower `Buffer`, before the worker took the request).
pub fn settle(pid: u32, done: fn(&Dump) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = clean_dump(&["attach", &pid.to_string()]);
        let polling = d
            .tasks
            .iter()
            .any(|t| t.state == tasktrace_model::TaskState::InPoll);
        if !polling && d.partial.is_empty() && done(&d) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} did not settle within 60 s (a whole read, no task in a poll, the \
             expected state); the last read's partial reasons: {:?}",
            d.partial
        );
    }
}

/// The default view of the process `pid`, read whole: a read that says it is partial (a task
/// list cut short) is taken again, up to three times, the last one kept.
pub fn whole_dump(pid: u32) -> Dump {
    let mut d = clean_dump(&["attach", &pid.to_string()]);
    for _ in 0..2 {
        if d.partial.is_empty() {
            break;
        }
        d = clean_dump(&["attach", &pid.to_string()]);
    }
    d
}

/// The default view of a dump, as JSON (`--format json`).
pub fn clean_dump(args: &[&str]) -> Dump {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    dump_of(&tasktrace(&all))
}

/// The connection task an HTTP/2 stream's root frame names (`HTTP/2 stream of the connection
/// in task 4`).
pub fn stream_connection(root: &Node) -> Option<u64> {
    root.frame.related.iter().find_map(|r| match r {
        tasktrace_model::Related::StreamOf { what, task } if what == "HTTP/2 stream" => Some(*task),
        _ => None,
    })
}

pub fn root_of(t: &Task) -> &Node {
    assert_eq!(t.trace.roots.len(), 1, "one root: {t:#?}");
    &t.trace.roots[0]
}

/// The service's own `GET /debug/tasks?format=json`.
pub fn debug_tasks(port: u16) -> Dump {
    serde_json::from_str(&debug_get(port, "/debug/tasks?format=json")).expect("a JSON dump")
}

/// The body of `GET target` on a service's debug port (`tasktrace::http`), asserting a `200`.
pub fn debug_get(port: u16, target: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // The first snapshot indexes the executable's debuginfo: seconds for a dev build.
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200"), "{target}: {head}");
    body.to_string()
}

/// `GET /health` answers `ok`.
pub fn assert_serves(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(
        body.starts_with("HTTP/1.1 200") && body.ends_with("ok\n"),
        "{body:?}"
    );
}
