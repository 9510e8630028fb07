//! `tasktrace top` in a real terminal: tmux runs it (`send-keys` types, `capture-pane` reads
//! the screen) against the bundled demo target and the axum service of
//! `testdata/framework-targets` (dev and release). The table lists the tasks with where and how
//! long, refreshes, filters, opens a tree and quits; Ctrl-C, SIGTERM during a held sample, the
//! terminal closed and the target exiting each end it with one line and the terminal
//! restored; the target runs on. `--once --format json|text` for scripts. Every wait is on a
//! screen or a file showing something, with a deadline.

mod support;

use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{demo_line, tasktrace, Scratch, Target, TASKTRACE};

const TARGET: &str = env!("CARGO_BIN_EXE_tasktrace-demo-target");
/// How long a screen or a file may take to show what a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// A tmux server of the test's own (its own socket), with one session running a command;
/// killed on drop.
struct Tmux {
    socket: String,
    dir: Scratch,
}

impl Tmux {
    /// Runs `tasktrace top` with `args` in a `width`×`height` terminal; its stderr, exit
    /// status and the terminal's settings after it are written to files. `None` (after
    /// saying so, or failing under CI) when tmux is not installed.
    fn top(name: &str, args: &[String], width: u16, height: u16, env: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            support::missing("tmux", "scripts/test-all installs it");
            return None;
        }
        let dir = Scratch::new(&format!("top-{name}"));
        let socket = format!("tasktrace-test-{name}-{}", std::process::id());
        let d = dir.path().display();
        let script = format!(
            "{env} {TASKTRACE} top {} 2>{d}/stderr; echo $? >{d}/status.tmp; \
             stty -a >{d}/stty; mv {d}/status.tmp {d}/status; sleep 600",
            args.join(" ")
        );
        let t = Tmux { socket, dir };
        let out = t
            .cmd(&["-f", "/dev/null", "new-session", "-d", "-s", "top"])
            .args(["-x", &width.to_string(), "-y", &height.to_string(), &script])
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(t)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }

    /// The screen now.
    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "top"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names: `Enter`, `Escape`, `C-c`, or text).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = self
                .cmd(&["send-keys", "-t", "top", k])
                .status()
                .expect("tmux send-keys");
            assert!(status.success());
        }
    }

    /// Types `text` as it is (`send-keys -l`: no key names).
    fn type_text(&self, text: &str) {
        let status = self
            .cmd(&["send-keys", "-t", "top", "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Waits until the screen satisfies `ok` (its text); returns it.
    fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen did not show {what} within {DEADLINE:?}:\n{screen}\nstderr: {}",
                self.file("stderr").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name)).ok()
    }

    /// Waits for `tasktrace top` to exit; returns its exit status and its stderr.
    fn wait_exit(&self) -> (i32, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.file("status") {
                let status = status.trim().parse().expect("an exit status");
                return (status, self.file("stderr").unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "tasktrace top did not exit within {DEADLINE:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of `tasktrace top` (the child of the pane's shell).
    fn top_pid(&self) -> i32 {
        let out = self
            .cmd(&["list-panes", "-t", "top", "-F", "#{pane_pid}"])
            .output()
            .expect("tmux list-panes");
        let shell: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid");
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .find(|p: &i32| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "tasktrace")
            })
            .expect("tasktrace top runs in the pane")
    }

    /// Asserts the terminal left raw mode once `tasktrace top` exited.
    fn assert_terminal_restored(&self) {
        let stty = self.file("stty").unwrap_or_default();
        let words: Vec<&str> = stty.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig"] {
            assert!(words.contains(&mode), "{mode} is back on: {stty}");
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

/// The screen's line holding `needle`.
fn row<'s>(screen: &'s str, needle: &str) -> Option<&'s str> {
    screen.lines().find(|l| l.contains(needle))
}

/// A WHERE cell: the function and the line of `// @marker` in the demo target (its file name
/// may be cut short to fit).
fn place(function: &str, marker: &str) -> Regex {
    Regex::new(&format!(r" {function} \S*:{} ", demo_line(marker))).unwrap()
}

/// The screen's line matching `re`.
fn row_at<'s>(screen: &'s str, re: &Regex) -> Option<&'s str> {
    screen.lines().find(|l| re.is_match(l))
}

/// The WAITED cell of a table line (the cell before the BUSY cell), in seconds.
fn waited(line: &str) -> Option<f64> {
    let re = Regex::new(r"(\d+)(?:\.(\d))?(ms|s)\+?\s+\d+%(?:\s|$)").unwrap();
    let c = re.captures(line)?;
    let whole: f64 = c[1].parse().ok()?;
    let tenth: f64 = c
        .get(2)
        .map_or(0.0, |t| t.as_str().parse::<f64>().unwrap() / 10.0);
    Some(if &c[3] == "ms" {
        whole / 1000.0
    } else {
        whole + tenth
    })
}

/// The sample number in the status line.
fn sample_no(screen: &str) -> u64 {
    let re = Regex::new(r"sample (\d+)[ /]").unwrap();
    re.captures(screen)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0)
}

fn top_args(t: &Target, more: &[&str]) -> Vec<String> {
    std::iter::once(t.pid.to_string())
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

/// The process is running, not stopped (`t`/`T` in /proc/PID/stat).
fn assert_not_stopped(pid: u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
    assert!(!matches!(state, 't' | 'T'), "process {pid} left stopped");
}

#[test]
fn the_table_refreshes_filters_opens_a_tree_and_quits() {
    let t = Target::start(TARGET, &[]);
    let Some(tmux) = Tmux::top("live", &top_args(&t, &["--interval", "0.2"]), 100, 40, "") else {
        return;
    };
    let sleeper = place("sleeper", "sleeper_sleep");
    // Every task, each with where it waits and for how long.
    let screen = tmux.wait_screen("the table", |s| row_at(s, &sleeper).is_some());
    assert!(screen.contains(&format!("pid {} · ", t.pid)), "{screen}");
    assert!(screen.contains("ID") && screen.contains("WHERE") && screen.contains("WAITED"));
    let fiz = place("fiz", "fiz_sleep");
    assert!(
        row_at(&screen, &fiz).is_some_and(|l| l.contains("Sleep [waiting on timer")),
        "{screen}"
    );
    assert!(screen.contains("DEADLOCK: task"), "{screen}");
    assert!(
        screen.contains("stopped "),
        "the stopped time per sample: {screen}"
    );
    // Refreshes: the sleeper's wait grows with the samples.
    let first = sample_no(&screen);
    let screen = tmux.wait_screen("the sleeper waiting a second", |s| {
        row_at(s, &sleeper)
            .and_then(waited)
            .is_some_and(|w| w >= 1.0)
    });
    assert!(sample_no(&screen) > first, "{screen}");
    let line = row_at(&screen, &sleeper).unwrap();
    assert!(
        line.contains("s+"),
        "waiting since the first sample: {line}"
    );

    // `/` filters as typed; Enter keeps the filter.
    tmux.type_text("/lock_both");
    let screen = tmux.wait_screen("the filtered table", |s| {
        s.contains("filter /lock_both/ 2 shown")
    });
    assert!(row_at(&screen, &sleeper).is_none(), "{screen}");
    let lock = place("lock_both", "lock_second");
    assert_eq!(
        screen.lines().filter(|l| lock.is_match(l)).count(),
        2,
        "{screen}"
    );
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the keys line back", |s| s.contains("Enter tree"));

    // Enter opens the selected task's whole tree, the text renderer's.
    tmux.keys(&["Enter"]);
    let lock = format!(
        "async fn tasktrace_demo_target::lock_both at src/bin/tasktrace-demo-target.rs:{}",
        demo_line("lock_second")
    );
    let screen = tmux.wait_screen("the tree", |s| s.contains(&lock));
    assert!(
        Regex::new(r"task \d+ — idle, awaits task \d+")
            .unwrap()
            .is_match(&screen),
        "{screen}"
    );
    assert!(
        screen.contains(
            "╼ tokio::sync::batch_semaphore::Acquire [waiting on Mutex lock, held by task"
        ),
        "{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the table again", |s| s.contains("WAITS ON"));

    // `g` groups the two identical tasks.
    tmux.keys(&["g"]);
    let screen = tmux.wait_screen("the group", |s| s.contains("TASKS"));
    assert!(
        row(&screen, "2×").is_some_and(|l| l.contains("lock_both")),
        "{screen}"
    );

    tmux.keys(&["q"]);
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("tasktrace top: quit after ")
            && stderr.contains(&format!("process {} was left running", t.pid)),
        "{stderr}"
    );
    tmux.assert_terminal_restored();
    t.assert_running_and_echoes();
}

#[test]
fn ctrl_c_a_signal_during_a_held_sample_and_a_closed_terminal_each_end_it() {
    let t = Target::start(TARGET, &[]);
    let sleeper = place("sleeper", "sleeper_sleep");

    // Ctrl-C (a key in raw mode).
    let Some(tmux) = Tmux::top("ctrl-c", &top_args(&t, &["--interval", "0.2"]), 100, 30, "") else {
        return;
    };
    tmux.wait_screen("the table", |s| row_at(s, &sleeper).is_some());
    tmux.keys(&["C-c"]);
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("tasktrace top: interrupted (Ctrl-C) after"),
        "{stderr}"
    );
    tmux.assert_terminal_restored();
    t.assert_running_and_echoes();
    drop(tmux);

    // SIGTERM while a sample holds the target stopped (the tests' hold hook: 1.5 s per
    // sample): the sample ends, the target is let go, then the view ends.
    let Some(tmux) = Tmux::top(
        "sigterm",
        &top_args(&t, &["--interval", "0.2"]),
        100,
        30,
        "TASKTRACE_TEST_HOLD_MS=1500",
    ) else {
        return;
    };
    tmux.wait_screen("the table", |s| row_at(s, &sleeper).is_some());
    let top = tmux.top_pid();
    // The next sample holds the target: wait until it is stopped, then signal.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", t.pid)).unwrap();
        if matches!(
            stat[stat.rfind(')').unwrap() + 2..].chars().next(),
            Some('t' | 'T')
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no held sample within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sends SIGTERM to the tasktrace process this test started.
    unsafe { libc::kill(top, libc::SIGTERM) };
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("tasktrace top: terminated (SIGTERM) after"),
        "{stderr}"
    );
    assert!(stderr.contains("was left running"), "{stderr}");
    tmux.assert_terminal_restored();
    assert_not_stopped(t.pid);
    t.assert_running_and_echoes();
    drop(tmux);

    // The terminal closed (tmux kills the session: SIGHUP).
    let Some(tmux) = Tmux::top("hangup", &top_args(&t, &["--interval", "0.2"]), 100, 30, "") else {
        return;
    };
    tmux.wait_screen("the table", |s| row_at(s, &sleeper).is_some());
    let top = tmux.top_pid();
    let out = tmux.cmd(&["kill-session", "-t", "top"]).output().unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + DEADLINE;
    while Path::new(&format!("/proc/{top}")).exists()
        && !std::fs::read_to_string(format!("/proc/{top}/stat")).is_ok_and(|s| s.contains(") Z"))
    {
        assert!(
            Instant::now() < deadline,
            "tasktrace top outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = tmux.file("stderr").unwrap_or_default();
    assert!(
        stderr.contains("tasktrace top: the terminal was closed"),
        "{stderr}"
    );
    assert_not_stopped(t.pid);
    t.assert_running_and_echoes();
}

#[test]
fn the_target_exiting_ends_it_at_80_columns() {
    let t = Target::start(TARGET, &["--exit-after-ms", "4000"]);
    let Some(tmux) = Tmux::top("exit", &top_args(&t, &["--interval", "0.2"]), 80, 24, "") else {
        return;
    };
    // At 80 columns the WHERE cell keeps the line number.
    let line = format!(":{}", demo_line("sleeper_sleep"));
    let screen = tmux.wait_screen("the table", |s| {
        row(s, "sleeper").is_some_and(|l| l.contains(&line) && waited(l).is_some())
    });
    assert!(
        row(&screen, "WAITS ON").is_some_and(|l| l.contains("BUSY")),
        "{screen}"
    );
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("tasktrace top: process {} exited (after ", t.pid)),
        "{stderr}"
    );
    tmux.assert_terminal_restored();
}

#[test]
fn four_thousand_tasks_scroll_and_filter() {
    let t = Target::start(TARGET, &["--idle-tasks", "4000"]);
    let Some(tmux) = Tmux::top("4000", &top_args(&t, &[]), 80, 24, "") else {
        return;
    };
    let screen = tmux.wait_screen("the table", |s| s.contains(" tasks · sample "));
    let count: usize = Regex::new(r"(\d+) tasks")
        .unwrap()
        .captures(&screen)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0);
    assert!(count > 4000, "{screen}");
    // Sorted by id (column 1), End shows the last task: the spinner, running.
    tmux.keys(&["1"]);
    tmux.wait_screen("sorted by id", |s| s.contains("sorted by ID↑"));
    tmux.keys(&["End"]);
    let last = Regex::new(r"(?m)^(\d+)\s+running").unwrap();
    let screen = tmux.wait_screen("the last task", |s| last.is_match(s));
    let id: u64 = last.captures(&screen).unwrap()[1].parse().unwrap();
    assert!(id > 4000, "{screen}");
    tmux.keys(&["PageUp"]);
    tmux.type_text("/^2000 ");
    let screen = tmux.wait_screen("one task", |s| s.contains("/ 1 shown"));
    assert!(
        Regex::new(r"(?m)^2000\s+idle\s+idle")
            .unwrap()
            .is_match(&screen),
        "{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the whole table", |s| {
        s.contains("Enter tree") && !s.contains("shown")
    });
    tmux.keys(&["q"]);
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    t.assert_running_and_echoes();
}

#[test]
fn once_prints_every_task_as_json_and_text() {
    let t = Target::start(TARGET, &[]);
    let pid = t.pid.to_string();
    let out = tasktrace(&[
        "top",
        &pid,
        "--once",
        "--format",
        "json",
        "--interval",
        "0.2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tasks = v["tasks"].as_array().expect("tasks");
    let dump = support::dump_of(&tasktrace(&["attach", &pid, "--format", "json"]));
    let mut ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.sort();
    let every: Vec<u64> = dump.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, every, "every task");
    assert_eq!(v["samples"], 2);
    assert!(v["stopped_ms"]["median"].as_f64().unwrap() > 0.0);
    let sleeper = tasks
        .iter()
        .find(|t| t["root"] == "sleeper")
        .expect("the sleeper");
    assert_eq!(sleeper["state"], "idle");
    assert_eq!(sleeper["where"]["function"], "sleeper");
    assert_eq!(sleeper["where"]["file"], "src/bin/tasktrace-demo-target.rs");
    assert_eq!(sleeper["where"]["line"], demo_line("sleeper_sleep"));
    assert!(sleeper["waits_on"]
        .as_str()
        .unwrap()
        .starts_with("Sleep [waiting on timer"));
    assert!(
        sleeper["waited_ms"].as_u64().unwrap() >= 200,
        "two samples 0.2 s apart"
    );
    assert_eq!(sleeper["waiting_since_first_sample"], true);
    let spinner = tasks
        .iter()
        .find(|t| t["state"] == "running")
        .expect("the spinner");
    assert_eq!(spinner["busy_pct"], 100);
    assert!(spinner["waited_ms"].is_null());
    assert_eq!(v["deadlocks"].as_array().map(Vec::len), Some(1));

    let out = tasktrace(&["top", &pid, "--once", "--samples", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "process {pid}: {} tasks; 1 sample; stopped",
            every.len()
        )),
        "{text}"
    );
    assert!(text.contains("\nDEADLOCK: task "), "{text}");
    assert!(
        Regex::new(&format!(r"(?m)^\s*\d+\s+idle\s+sleeper\s+sleeper tasktrace-demo-target.rs:{}\s+Sleep \[waiting on timer", demo_line("sleeper_sleep")))
            .unwrap()
            .is_match(&text),
        "{text}"
    );

    // Without a terminal, the live view says what to do instead.
    let out = tasktrace(&["top", &pid]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs a terminal (`--once` prints the table instead)"),
        "{err}"
    );
    t.assert_running_and_echoes();
}

const AXUM_SOURCE: &str =
    include_str!("../../../testdata/framework-targets/src/bin/axum-target.rs");

/// The axum service with five requests stuck in its handler (three HTTP/1 connections, two
/// HTTP/2 streams): the table lists each request's task at `wait_for_approval`'s await with
/// how long it has waited, refreshes, filters, opens a request's tree and quits; the service
/// still answers afterwards.
fn axum_service(profile: &str) {
    let bin = support::frameworks::build(profile);
    let exe = bin.join("axum-target");
    let exe = exe.to_str().unwrap();
    let mut server = Target::spawn(exe, &["serve", "5"]);
    let port: u16 = server.wait_for("port ").parse().unwrap();
    let debug_port: u16 = server.wait_for("debug-port ").parse().unwrap();
    let _client = Target::spawn(exe, &["client", &port.to_string(), "3", "2"]);
    server.wait_for("ready");
    let Some(tmux) = Tmux::top(
        &format!("axum-{profile}"),
        &top_args(&server, &["--interval", "0.3"]),
        120,
        40,
        "",
    ) else {
        return;
    };
    let approval = support::frameworks::line_in(AXUM_SOURCE, "approved.await");
    let stuck = Regex::new(&format!(r" wait_for_approval \S*:{approval} ")).unwrap();
    let requests = |s: &str| s.lines().filter(|l| stuck.is_match(l)).count();
    // Each stuck request, where it waits and for how long: a second and more, sample after
    // sample.
    let screen = tmux.wait_screen("five requests waiting a second", |s| {
        requests(s) == 5
            && s.lines()
                .filter(|l| stuck.is_match(l))
                .all(|l| waited(l).is_some_and(|w| w >= 1.0))
    });
    for l in screen.lines().filter(|l| stuck.is_match(l)) {
        assert!(l.contains("[waiting on Notify]"), "{l}\n{screen}");
    }
    assert!(
        screen.contains(&format!("pid {} · ", server.pid)),
        "{screen}"
    );
    let first = sample_no(&screen);
    let screen = tmux.wait_screen("a later sample", |s| sample_no(s) > first + 1);
    assert_eq!(requests(&screen), 5, "{screen}");

    // `/` filters: the requests and nothing else.
    tmux.type_text("/wait_for_approval");
    let screen = tmux.wait_screen("the filtered table", |s| {
        s.contains("filter /wait_for_approval/ 5 shown")
    });
    assert_eq!(requests(&screen), 5, "{screen}");
    assert!(!screen.contains("background_worker"), "{screen}");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the keys line back", |s| s.contains("Enter tree"));

    // Enter opens the selected request's tree: the handler chain under its connection or
    // stream task, with the await lines.
    tmux.keys(&["Enter"]);
    let chain =
        format!("async fn axum_target::wait_for_approval at src/bin/axum-target.rs:{approval}");
    let screen = tmux.wait_screen("the request's tree", |s| s.contains(&chain));
    let checkout = format!(
        "async fn axum_target::checkout at src/bin/axum-target.rs:{}",
        support::frameworks::line_in(AXUM_SOURCE, "wait_for_approval(&app).await")
    );
    let at = |needle: &str| screen.lines().position(|l| l.contains(needle));
    assert!(
        at(&checkout).is_some_and(|c| at(&chain).is_some_and(|w| c < w)),
        "checkout above wait_for_approval: {screen}"
    );
    assert!(screen.contains("[waiting on Notify]"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the table again", |s| s.contains("WAITS ON"));

    tmux.keys(&["q"]);
    let (status, stderr) = tmux.wait_exit();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("process {} was left running", server.pid)),
        "{stderr}"
    );
    tmux.assert_terminal_restored();
    assert_not_stopped(server.pid);
    support::frameworks::assert_serves(port);

    // In process, the same table: the service's own `/debug/tasks/top` (`tasktrace::http`
    // with the `snapshot` feature, no `tasktrace::spawn` in it) lists the five requests at
    // the same await, waiting since the first of its samples.
    let body = support::frameworks::debug_get(
        debug_port,
        "/debug/tasks/top?samples=3&interval=0.3&format=json",
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (&v["in_process"], &v["samples"]),
        (&true.into(), &3.into()),
        "{v:#}"
    );
    let waiting: Vec<&serde_json::Value> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["where"]["function"] == "wait_for_approval")
        .collect();
    assert_eq!(waiting.len(), 5, "{v:#}");
    for t in waiting {
        assert_eq!(t["where"]["line"], approval, "{t:#}");
        assert_eq!(t["state"], "idle", "{t:#}");
        assert!(
            t["waits_on"]
                .as_str()
                .unwrap()
                .contains("[waiting on Notify]"),
            "{t:#}"
        );
        // How long: from the first sample's dump to the last's (the first dump, which starts
        // the reader process, may take longer than the interval: no lower bound here).
        assert!(t["waited_ms"].as_u64().is_some(), "{t:#}");
        assert_eq!(t["waiting_since_first_sample"], true, "{t:#}");
    }
    support::frameworks::assert_serves(port);
}

#[test]
fn axum_service_dev() {
    axum_service("dev");
}

#[test]
fn axum_service_release() {
    axum_service("release");
}

/// `top --once` over five samples of `t`, as text.
fn once_text(t: &Target) -> String {
    let out = tasktrace(&[
        "top",
        &t.pid.to_string(),
        "--once",
        "--samples",
        "5",
        "--interval",
        "0.4",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `top --once` over five samples of `t`, as JSON.
fn once_json(t: &Target) -> serde_json::Value {
    let out = tasktrace(&[
        "top",
        &t.pid.to_string(),
        "--once",
        "--format",
        "json",
        "--samples",
        "5",
        "--interval",
        "0.4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// A worker busy on the CPU inside one poll — the demo's burner, computing in a loop that
/// never yields — is diagnosed with its thread and task (its scheduler's tick did not move),
/// and the spinner (blocked in a system call) is told apart; the yielder, as busy but
/// yielding after each step, is not diagnosed.
#[test]
fn a_worker_busy_in_one_poll_is_diagnosed_and_a_yielding_task_is_not() {
    let t = Target::start(TARGET, &["--burner", "--yielder"]);
    let v = once_json(&t);
    let sampled = v["sampled_diagnoses"]
        .as_array()
        .expect("sampled_diagnoses");
    let busy: Vec<&serde_json::Value> = sampled
        .iter()
        .filter_map(|d| d.get("worker_busy"))
        .collect();
    assert_eq!(busy.len(), 1, "only the burner: {sampled:#?}");
    let d = busy[0];
    assert_eq!(d["function"], "tasktrace_demo_target::burner", "{d:#}");
    assert!(d["samples"].as_u64().unwrap() >= 3, "{d:#}");
    assert!(d["seen_ms"].as_u64().unwrap() >= 1000, "{d:#}");
    let blocked: Vec<&serde_json::Value> = sampled
        .iter()
        .filter_map(|d| d.get("worker_blocked"))
        .collect();
    assert_eq!(blocked.len(), 1, "the spinner, blocked: {sampled:#?}");
    assert_ne!(blocked[0]["task"], d["task"], "{sampled:#?}");
    assert_eq!(sampled.len(), 2, "nothing else: {sampled:#?}");
    let text = once_text(&t);
    let line = Regex::new(
        "(?m)^WORKER BUSY: thread \\d+ \\S* ?was inside one poll of task \\d+ \\(tasktrace_demo_target::burner\\), on the CPU, in all \\d+ samples over \\d+\\.\\d s: its scheduler took no other task meanwhile$",
    )
    .unwrap();
    assert!(line.is_match(&text), "{text}");
    t.assert_running_and_echoes();
}

/// A worker blocked inside a poll — the demo's spinner, in `std::thread::sleep` in a loop
/// inside one poll — is diagnosed with its thread, task, frame and system call, and its row
/// says so; a task busy on the CPU that yields after each step (`--yielder`) is not, nor is
/// any waiting task; on a current-thread runtime running only the yielder, nothing is.
#[test]
fn a_blocked_worker_is_diagnosed_and_a_yielding_task_is_not() {
    let t = Target::start(TARGET, &["--yielder"]);
    let v = once_json(&t);
    let sampled = v["sampled_diagnoses"]
        .as_array()
        .expect("sampled_diagnoses");
    assert_eq!(sampled.len(), 1, "only the spinner: {sampled:#?}");
    let d = &sampled[0]["worker_blocked"];
    assert_eq!(d["function"], "tasktrace_demo_target::pause", "{d:#}");
    assert_eq!(d["location"]["file"], "src/bin/tasktrace-demo-target.rs");
    assert_eq!(d["location"]["line"], demo_line("pause_sleep"));
    assert!(
        matches!(
            d["syscall"]["name"].as_str(),
            Some("clock_nanosleep" | "nanosleep")
        ),
        "{d:#}"
    );
    assert!(d["samples"].as_u64().unwrap() >= 3, "{d:#}");
    assert!(d["seen_ms"].as_u64().unwrap() >= 1000, "{d:#}");
    let thread = d["thread"].as_u64().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{}/task/{thread}", t.pid)).exists(),
        "a thread of the target: {d:#}"
    );
    let tasks = v["tasks"].as_array().unwrap();
    let flagged: Vec<&serde_json::Value> = tasks
        .iter()
        .filter(|t| {
            t["diagnoses"]
                .as_array()
                .is_some_and(|d| d.iter().any(|f| f == "BLOCKS WORKER"))
        })
        .collect();
    assert_eq!(flagged.len(), 1, "{tasks:#?}");
    assert_eq!(flagged[0]["id"], d["task"]);
    assert_eq!(flagged[0]["state"], "running");

    // The same words in the text table.
    let text = once_text(&t);
    let line = Regex::new(&format!(
        "(?m)^WORKER BLOCKED: thread \\d+ \\S* ?was in system call (clock_)?nanosleep \
         inside a poll of task \\d+, in tasktrace_demo_target::pause at \
         src/bin/tasktrace-demo-target.rs:{}, in all \\d+ samples over \\d+\\.\\d s: it \
         polls no other task while it blocks$",
        demo_line("pause_sleep")
    ))
    .unwrap();
    assert!(line.is_match(&text), "{text}");
    assert!(text.contains("BLOCKS WORKER"), "{text}");
    t.assert_running_and_echoes();

    let t = Target::start(TARGET, &["--current-thread", "--yielder"]);
    let v = once_json(&t);
    assert_eq!(v["sampled_diagnoses"], serde_json::json!([]), "{v:#}");
    t.assert_running_and_echoes();
}
