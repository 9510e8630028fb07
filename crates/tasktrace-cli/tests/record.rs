//! `tasktrace record` against the bundled demo target: real attaches at a rate, the stacks
//! summed over the samples, in every output format; the target runs on afterwards. Counts are
//! checked against the number of samples the recording reports (not against the clock), so a
//! loaded machine that lowers the rate does not fail the test.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{tasktrace, Scratch, Target, TASKTRACE};

const TARGET: &str = env!("CARGO_BIN_EXE_tasktrace-demo-target");

fn temp(dir: &Scratch, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// Records `secs` seconds in `format` to a file; returns its bytes, the number of samples
/// the summary reports, and the summary.
fn record(t: &Target, dir: &Scratch, secs: &str, format: &str) -> (Vec<u8>, u64, String) {
    let file = temp(dir, &format!("out.{format}"));
    let pid = t.pid.to_string();
    let out = tasktrace(&[
        "record",
        &pid,
        "--duration",
        secs,
        "--rate",
        "10",
        "--format",
        format,
        "-o",
        &file,
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let samples: u64 = err
        .split_whitespace()
        .zip(err.split_whitespace().skip(1))
        .find_map(|(n, w)| n.parse().ok().filter(|_| w == "samples"))
        .unwrap_or_else(|| panic!("no sample count in the summary: {err}"));
    assert!(
        err.contains("process stopped per sample: median"),
        "the stopped time per sample: {err}"
    );
    (std::fs::read(&file).expect("the output file"), samples, err)
}

/// How the summary says the samples went: (read from copies made in one step, stopped
/// twice because those copies lacked a page).
fn copies_only(summary: &str) -> (u64, u64) {
    let number_before = |words: &str| -> u64 {
        let at = summary
            .find(words)
            .unwrap_or_else(|| panic!("no `{words}` in the summary: {summary}"));
        summary[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before `{words}`: {summary}"))
    };
    (
        number_before(" read from copies made in one step"),
        number_before(" stopped twice"),
    )
}

/// The samples of the folded stacks through `frame` that end waiting on a timer.
fn timer_count(folded: &str, frame: &str) -> u64 {
    let counts: Vec<u64> = folded
        .lines()
        .filter(|l| l.contains(frame) && l.contains(";[waiting on timer]"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !counts.is_empty(),
        "no timer stack through {frame}:\n{folded}"
    );
    counts.iter().sum()
}

#[test]
fn three_seconds_at_ten_hertz_in_every_format() {
    let t = Target::start(TARGET, &[]);
    let dir = Scratch::new("record-formats");

    let (folded, n, err) = record(&t, &dir, "3", "folded");
    let folded = String::from_utf8(folded).unwrap();
    if !err.contains("rate was lowered") {
        assert!((20..=32).contains(&n), "about 30 samples at 10 Hz: {err}");
    }
    // The first sample is read while the process is stopped; the next ones (nothing new in
    // this target) mostly from the copies of the pages the one before needed, made in one
    // step: the counts below hold for those samples as for the first.
    let (from_copies, twice) = copies_only(&err);
    assert!(from_copies >= 1 && from_copies + twice < n, "{err}");
    // The tasks waiting on a timer are in every sample, each wait summed into one stack
    // (the time left, which changes, is not part of it).
    assert_eq!(timer_count(&folded, "::sleeper at "), n, "{folded}");
    assert_eq!(
        timer_count(&folded, "::fiz at "),
        n * 2,
        "fiz under foo and under boxed: {folded}"
    );
    let foo_fiz = folded
        .lines()
        .find(|l| l.starts_with("tasktrace_demo_target::foo at ") && l.contains("::fiz at "))
        .expect("foo → bar → fiz → timer");
    assert!(
        foo_fiz.find("::bar at ") < foo_fiz.find("::fiz at "),
        "bar above fiz: {foo_fiz}"
    );
    t.assert_running_and_echoes();

    let (svg, n, _) = record(&t, &dir, "1", "svg");
    let svg = String::from_utf8(svg).unwrap();
    assert!(n > 0 && svg.contains("<svg") && svg.contains("tasktrace_demo_target::sleeper"));

    let (json, n, _) = record(&t, &dir, "1", "speedscope");
    check_speedscope(&serde_json::from_slice(&json).expect("speedscope JSON"), n);

    let (pprof, n, _) = record(&t, &dir, "1", "pprof");
    assert_eq!(&pprof[..2], b"\x1f\x8b", "gzipped");
    if Command::new("go").arg("version").output().is_ok() {
        let file = temp(&dir, "top.pb.gz");
        std::fs::write(&file, &pprof).unwrap();
        let top = Command::new("go")
            .args(["tool", "pprof", "-top", &file])
            .output()
            .expect("go tool pprof");
        let text = String::from_utf8_lossy(&top.stdout);
        assert!(
            top.status.success(),
            "{}",
            String::from_utf8_lossy(&top.stderr)
        );
        assert!(text.contains("Type: samples"), "{text}");
        assert!(text.contains("tasktrace_demo_target::sleeper"), "{text}");
        assert!(n > 0);
    } else {
        eprintln!("go is not installed: `go tool pprof` not run");
    }
    t.assert_running_and_echoes();
}

/// speedscope's file format: `shared.frames`, `sampled` profiles whose samples index frames
/// (root first) and whose weights sum to `endValue`; the sleeper's group has one stack of
/// weight `samples`, ending in its timer wait.
fn check_speedscope(v: &serde_json::Value, samples: u64) {
    assert_eq!(
        v["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = v["shared"]["frames"].as_array().expect("shared.frames");
    let profiles = v["profiles"].as_array().expect("profiles");
    assert!(!profiles.is_empty());
    for p in profiles {
        assert_eq!(p["type"], "sampled");
        let stacks = p["samples"].as_array().unwrap();
        let weights = p["weights"].as_array().unwrap();
        assert_eq!(stacks.len(), weights.len(), "{p}");
        let total: u64 = weights.iter().map(|w| w.as_u64().unwrap()).sum();
        assert_eq!(p["endValue"].as_u64(), Some(total), "{p}");
        for s in stacks {
            for i in s.as_array().unwrap() {
                assert!((i.as_u64().unwrap() as usize) < frames.len(), "{p}");
            }
        }
    }
    let name = |i: &serde_json::Value| frames[i.as_u64().unwrap() as usize]["name"].clone();
    let sleeper = profiles
        .iter()
        .find(|p| p["name"].as_str().is_some_and(|n| n.contains("::sleeper")))
        .expect("the sleeper's group");
    let stack = sleeper["samples"][0].as_array().unwrap();
    assert!(name(&stack[0]).as_str().unwrap().contains("::sleeper"));
    assert_eq!(name(stack.last().unwrap()), "waiting on timer");
    assert_eq!(sleeper["weights"][0].as_u64(), Some(samples));
    let file = &frames[stack[0].as_u64().unwrap() as usize];
    assert!(file["file"]
        .as_str()
        .unwrap()
        .ends_with("tasktrace-demo-target.rs"));
    assert!(file["line"].as_u64().unwrap() > 0);
}

/// Ctrl-C ends a long recording early, and the output is still written; the target runs on.
#[test]
fn ctrl_c_ends_the_recording_and_writes_the_output() {
    let t = Target::start(TARGET, &[]);
    let dir = Scratch::new("record-interrupted");
    let file = temp(&dir, "interrupted.folded");
    let mut child = Command::new(TASKTRACE)
        .args([
            "record",
            &t.pid.to_string(),
            "--duration",
            "600",
            "--format",
            "folded",
            "-o",
            &file,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tasktrace record");
    // Interrupted once it has started recording (its first line).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.starts_with("tasktrace record: process"), "{first}");
    // SAFETY: kill sends SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = support::wait_child(&mut child, Duration::from_secs(60), "tasktrace record");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        rest.iter().any(|l| l.contains("samples in")),
        "the summary: {rest:?}"
    );
    assert!(
        std::path::Path::new(&file).exists(),
        "the output was written"
    );
    t.assert_running_and_echoes();
}

/// The demo's spinner blocks a worker (`std::thread::sleep` in a loop inside one poll): the
/// recording's summary says so once, with the thread, the task and the frame; the task that
/// yields after each step (`--yielder`) is not named.
#[test]
fn a_blocked_worker_is_diagnosed_once() {
    let t = Target::start(TARGET, &["--yielder"]);
    let dir = Scratch::new("record-blocked");
    let (_, _, err) = record(&t, &dir, "2", "folded");
    let blocked: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("WORKER BLOCKED: "))
        .collect();
    assert_eq!(blocked.len(), 1, "{err}");
    assert!(
        blocked[0].contains(&format!(
            ", in tasktrace_demo_target::pause at src/bin/tasktrace-demo-target.rs:{}, in all ",
            support::demo_line("pause_sleep")
        )),
        "{err}"
    );
    t.assert_running_and_echoes();
}

/// A target that spawns a task every 10 ms in new memory (`--task-churn`): the reads from the
/// last sample's copies meet pages that were not copied, and the samples are read stopped
/// instead — every one still whole: each has the sleeper's timer and the two fiz timers, and
/// the new tasks are listed.
#[test]
fn samples_stay_whole_when_new_tasks_appear_between_them() {
    let t = Target::start(TARGET, &["--task-churn"]);
    let dir = Scratch::new("record-churn");
    let (folded, n, err) = record(&t, &dir, "2", "folded");
    let folded = String::from_utf8(folded).unwrap();
    let (_, twice) = copies_only(&err);
    assert!(
        twice >= 1,
        "new tasks between samples: some read stopped again: {err}"
    );
    assert_eq!(timer_count(&folded, "::sleeper at "), n, "{folded}");
    assert_eq!(timer_count(&folded, "::fiz at "), n * 2, "{folded}");
    let churned: u64 = folded
        .lines()
        .filter(|l| l.starts_with("async block in tasktrace_demo_target::churner at "))
        .filter(|l| l.contains("[waiting on oneshot receive]"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        churned > n,
        "more new tasks than samples, each waiting on its oneshot: {folded}"
    );
    t.assert_running_and_echoes();
}
