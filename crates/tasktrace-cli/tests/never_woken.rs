//! The NEVER WOKEN diagnosis (issue 31) on `testdata/framework-targets`' woken-target, dev and
//! release, by attach, from a core and by the program's own snapshot: the three tasks awaiting
//! a future that returns `Pending` without keeping its waker (one whose join handle is awaited,
//! one detached, one of a LocalSet) are diagnosed with their fn and await line, and no task
//! waiting on something that wakes (an mpsc channel, a timer, a `Notify`, a join handle, a TCP
//! socket, a tokio `Mutex`, a `JoinSet`, a LocalSet's `Notify`) is: each of those has a waker
//! counted. Then the check against false positives: the axum service and mini-redis, read
//! again and again while real requests run through them, never show a diagnosis.

mod support;

const SOURCE: &str = include_str!("../../../testdata/framework-targets/src/bin/woken-target.rs");

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::frameworks::*;
use support::*;
use tasktrace_model::{Diagnosis, Dump, TaskState};

/// The async fns of the tasks that can never be woken.
const STUCK: &[&str] = &[
    "woken_target::stuck",
    "woken_target::stuck_detached",
    "woken_target::stuck_local",
];

/// The async fns of the tasks waiting on something that wakes them.
const WAKEABLE: &[&str] = &[
    "woken_target::on_channel",
    "woken_target::on_timer",
    "woken_target::on_notify",
    "woken_target::on_join",
    "woken_target::on_socket",
    "woken_target::on_mutex",
    "woken_target::on_join_set",
    "woken_target::local_on_notify",
];

fn check(d: &Dump, what: &str) {
    let mut diagnosed = BTreeSet::new();
    for diagnosis in &d.diagnoses {
        match diagnosis {
            Diagnosis::NeverWoken {
                task,
                function,
                leaf,
                location,
            } => {
                let t = d.tasks.iter().find(|t| t.id == *task);
                let t = t.unwrap_or_else(|| panic!("{what}: no task {task}: {d}"));
                assert_eq!(&root_of(t).frame.function, function, "{what}");
                assert_eq!(leaf, "woken_target::Forgetful", "{what}: {diagnosis}");
                let location = location.as_ref().expect("the await line");
                assert!(
                    location.file.ends_with("src/bin/woken-target.rs"),
                    "{what}: {location:?}"
                );
                if function == "woken_target::stuck" {
                    assert_eq!(location.line, line_in(SOURCE, "// @stuck"), "{what}");
                }
                assert!(diagnosed.insert(function.as_str()), "{what}: twice: {d}");
            }
            other => panic!("{what}: a diagnosis that is wrong: {other}"),
        }
    }
    assert_eq!(
        diagnosed,
        STUCK.iter().copied().collect(),
        "{what}: the never-woken tasks, and only they: {d}"
    );
    // Each waiting task is idle with its wakers counted: the accounting, not an unknown,
    // keeps it out.
    // (`on_join_set`'s tasks are two: it, and the async block it put in its set.)
    for f in WAKEABLE {
        let tasks = rooted_at(d, f);
        assert!(!tasks.is_empty(), "{what}: the task of {f}: {d}");
        for t in tasks {
            assert_eq!(t.state, TaskState::Suspended, "{what}: {f}");
            assert!(
                t.wakers.is_some_and(|n| n >= 1),
                "{what}: {f} has a waker: {:?}",
                t.wakers
            );
        }
    }
}

fn never_woken(profile: &str) {
    let exe = build(profile).join("woken-target");
    let exe = exe.to_str().unwrap();
    let mut t = Target::spawn(exe, &[]);
    t.wait_for("ready");
    let inside: Dump = serde_json::from_str(&t.wait_for("snapshot "))
        .unwrap_or_else(|e| panic!("the target's own snapshot is a dump: {e}"));
    check(
        &inside,
        &format!("never woken {profile}, in-process snapshot"),
    );
    let pid = t.pid.to_string();
    check(
        &clean_dump(&["attach", &pid]),
        &format!("never woken {profile}, attach"),
    );
    // The text starts with them, in words.
    let text = String::from_utf8_lossy(&tasktrace(&["attach", &pid]).stdout).into_owned();
    let top: Vec<&str> = text.lines().take(STUCK.len()).collect();
    assert!(
        top.iter().all(|l| l.starts_with("NEVER WOKEN: task ")),
        "{text}"
    );
    let stuck_line = format!(
        " (woken_target::stuck) is suspended in woken_target::Forgetful at \
         src/bin/woken-target.rs:{} and no waker for it exists: nothing will poll it again \
         (only aborting it or dropping its runtime ends it)",
        line_in(SOURCE, "// @stuck")
    );
    assert!(top.iter().any(|l| l.ends_with(&stuck_line)), "{text}");
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("woken-{profile}"));
    if let Some(core) = gcore(t.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe]);
        let _ = std::fs::remove_file(&core);
        check(&d, &format!("never woken {profile}, core"));
    }
}

#[test]
fn never_woken_dev() {
    never_woken("dev");
}

#[test]
fn never_woken_release() {
    never_woken("release");
}

/// Requests sent by load threads until stopped: each thread sends `request` on a new
/// connection and reads the answer, again and again; answers starting with `answer` are
/// counted.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, request: &'static [u8], answer: &'static [u8], threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, sent) = (stop.clone(), sent.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                            continue;
                        };
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = s.write_all(request);
                        let mut buf = vec![0u8; answer.len()];
                        if s.read_exact(&mut buf).is_ok() && buf == answer {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            threads,
        }
    }

    /// Stops the threads; how many requests were answered.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

/// Reads `pid` `reads` times while the load runs: no read shows a diagnosis (none of these
/// services has a task that cannot be woken, nor a guard across an await).
fn no_diagnosis_under_load(
    pid: u32,
    port: u16,
    (request, answer): (&'static [u8], &'static [u8]),
    reads: usize,
    what: &str,
) {
    let load = Load::start(port, request, answer, 2);
    let pid = pid.to_string();
    let mut idle = 0;
    for i in 0..reads {
        let d = clean_dump(&["attach", &pid]);
        assert!(
            d.diagnoses.is_empty(),
            "{what}, read {i}: a diagnosis that is wrong: {:?}\n{d}",
            d.diagnoses
        );
        idle += d.tasks.iter().filter(|t| t.wakers.is_some()).count();
    }
    let sent = load.stop();
    assert!(sent > 0, "{what}: no request was answered");
    assert!(idle > 0, "{what}: no idle task was accounted for");
    println!(
        "{what}: {reads} reads, no diagnosis; {sent} requests answered meanwhile; {idle} idle \
         tasks' references accounted for"
    );
}

/// Reads per service: 20, or `TASKTRACE_NEVER_WOKEN_READS` (docs/BENCHMARKS.md records a
/// run of 100 per service and profile).
fn reads() -> usize {
    std::env::var("TASKTRACE_NEVER_WOKEN_READS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

fn services(profile: &str) {
    let bin = build(profile);
    let exe = bin.join("axum-target");
    let exe = exe.to_str().unwrap();
    let mut server = Target::spawn(exe, &["serve", "5"]);
    let port = server.wait_for("port ");
    let _client = Target::spawn(exe, &["client", &port, "3", "2"]);
    server.wait_for("ready");
    no_diagnosis_under_load(
        server.pid,
        port.parse().unwrap(),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 200",
        ),
        reads(),
        &format!("axum {profile}"),
    );
    let exe = bin.join("mini-redis-target");
    let mut redis = Target::spawn(exe.to_str().unwrap(), &[]);
    let port: u16 = redis.wait_for("port ").parse().unwrap();
    redis.wait_for("ready");
    no_diagnosis_under_load(
        redis.pid,
        port,
        (b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n", b"$5\r\nworld\r\n"),
        reads(),
        &format!("mini-redis {profile}"),
    );
}

#[test]
fn no_false_positive_under_load_dev() {
    services("dev");
}

#[test]
fn no_false_positive_under_load_release() {
    services("release");
}
