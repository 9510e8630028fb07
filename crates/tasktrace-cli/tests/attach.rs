//! End-to-end: run the bundled tokio target, read it from outside with `tasktrace attach` and
//! from a `gcore` core file with `tasktrace core`, and assert the task trees' structure; bad
//! inputs give one-line errors and a non-zero exit. Every child is killed on drop and every
//! wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tasktrace_model::{Dump, FrameKind, FrameStatus, Node, Task, TaskState};

mod support;
use support::{demo_line, dump_of, tasktrace, TASKTRACE};

const TARGET: &str = env!("CARGO_BIN_EXE_tasktrace-demo-target");
const PREFIX: &str = "tasktrace_demo_target::";

/// The line of the `// @name` marker in the target's source.
fn line(name: &str) -> u32 {
    demo_line(name)
}

/// A running target, killed on drop.
struct Target {
    child: Child,
    addr: String,
}

impl Target {
    fn start(args: &[&str]) -> Target {
        Target::start_exe(TARGET, args)
    }

    fn start_exe(exe: &str, args: &[&str]) -> Target {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the target");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let _ = tx.send(l);
            }
        });
        let mut t = Target {
            child,
            addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = rx
                .recv_timeout(left)
                .expect("the target did not print `ready` within 60s");
            if let Some(rest) = l.strip_prefix("ready") {
                t.addr = rest.trim().to_string();
                return t;
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root_fn(t: &Task) -> &str {
    t.trace
        .roots
        .first()
        .map(|r| r.frame.function.as_str())
        .unwrap_or("")
}

fn tasks_of<'d>(d: &'d Dump, func: &str) -> Vec<&'d Task> {
    let name = format!("{PREFIX}{func}");
    d.tasks
        .iter()
        .filter(|t| root_fn(t) == name && t.trace.roots[0].frame.kind == FrameKind::AsyncFn)
        .collect()
}

fn one<'d>(d: &'d Dump, func: &str) -> &'d Task {
    let ts = tasks_of(d, func);
    assert_eq!(ts.len(), 1, "tasks rooted at {func}: {d}");
    ts[0]
}

fn root(t: &Task) -> &Node {
    assert_eq!(t.trace.roots.len(), 1, "{t:?}");
    &t.trace.roots[0]
}

/// Asserts `n` is the async fn `func` suspended at the marker line `at`.
fn is_async(n: &Node, func: &str, at: &str) {
    assert_eq!(n.frame.function, format!("{PREFIX}{func}"), "{n:#?}");
    assert_eq!(n.frame.kind, FrameKind::AsyncFn, "{n:#?}");
    let loc = n.frame.location.as_ref().expect("a location");
    assert!(
        loc.file.ends_with("src/bin/tasktrace-demo-target.rs"),
        "{loc:?}"
    );
    assert_eq!(loc.line, line(at), "await line of {func}");
}

fn only_child(n: &Node) -> &Node {
    assert_eq!(n.children.len(), 1, "{n:#?}");
    &n.children[0]
}

fn is_leaf(n: &Node, ty: &str, note: &str) {
    assert_eq!(n.frame.kind, FrameKind::Leaf, "{n:#?}");
    assert!(n.frame.function.starts_with(ty), "{n:#?}");
    let got = n.frame.annotation().unwrap_or_default();
    assert!(got.contains(note), "note {got:?} lacks {note:?}");
    assert!(n.children.is_empty());
}

/// The trees every read of the target must show (live or core).
fn assert_trees(d: &Dump, live: bool, spinner: bool) {
    let timer = if live { "left" } else { "waiting on timer" };
    // foo → bar → join!(fiz, buz), each on its sleep.
    let foo_node = root(one(d, "foo"));
    is_async(foo_node, "foo", "foo_await");
    let bar = only_child(foo_node);
    is_async(bar, "bar", "bar_join");
    assert_eq!(bar.children.len(), 2, "join branches apart: {bar:#?}");
    is_async(&bar.children[0], "fiz", "fiz_sleep");
    is_leaf(
        only_child(&bar.children[0]),
        "tokio::time::sleep::Sleep",
        timer,
    );
    is_async(&bar.children[1], "buz", "buz_sleep");
    is_leaf(
        only_child(&bar.children[1]),
        "tokio::time::sleep::Sleep",
        timer,
    );

    // A task awaiting another's JoinHandle.
    let sleeper = one(d, "sleeper");
    is_async(root(sleeper), "sleeper", "sleeper_sleep");
    let waiter = one(d, "wait_for");
    is_async(root(waiter), "wait_for", "wait_for_await");
    is_leaf(
        only_child(root(waiter)),
        "tokio::runtime::task::join::JoinHandle",
        &format!("waiting on task {}", sleeper.id),
    );
    assert_eq!(waiter.awaits, vec![sleeper.id]);

    // A select! loop: both branches.
    let sel = root(one(d, "select_loop"));
    is_async(sel, "select_loop", "select");
    assert_eq!(sel.children.len(), 2, "{sel:#?}");
    assert!(sel.children[0].frame.function.contains("mpsc"), "{sel:#?}");
    is_leaf(
        only_child(&sel.children[0]),
        "core::future::poll_fn::PollFn",
        "mpsc",
    );
    is_leaf(&sel.children[1], "tokio::sync::notify::Notified", "Notify");

    // A boxed dyn future, through its vtable to the concrete type.
    let boxed = root(one(d, "boxed"));
    is_async(boxed, "boxed", "boxed_await");
    let inner = only_child(boxed);
    is_async(inner, "fiz", "fiz_sleep");
    is_leaf(only_child(inner), "tokio::time::sleep::Sleep", timer);

    // A mutex acquire (through tokio's `Mutex::lock` async fn).
    let locker = root(one(d, "locker"));
    is_async(locker, "locker", "locker_lock");
    let leaf = first_leaf(locker);
    is_leaf(
        leaf,
        "tokio::sync::batch_semaphore::Acquire",
        "semaphore/mutex",
    );

    // Its lock is held by main's `block_on` future (the `OwnedMutexGuard` saved in `run`'s
    // state), not by a task: the thread is named, and no task is awaited.
    let note = leaf.frame.annotation().unwrap_or_default();
    assert!(
        note.contains("held by the block_on future of thread ") && !note.contains("task"),
        "{note:?}"
    );
    assert!(one(d, "locker").awaits.is_empty());

    // A lock-order deadlock: each `lock_both` holds one mutex (a guard saved in its state
    // machine) and waits for the other's; each awaits the other, and the cycle is reported.
    let pair = tasks_of(d, "lock_both");
    assert_eq!(pair.len(), 2, "{d}");
    for (me, other) in [(pair[0], pair[1]), (pair[1], pair[0])] {
        let lb = root(me);
        is_async(lb, "lock_both", "lock_second");
        let leaf = first_leaf(lb);
        is_leaf(
            leaf,
            "tokio::sync::batch_semaphore::Acquire",
            &format!("held by task {}", other.id),
        );
        assert_eq!(me.awaits, vec![other.id], "{me:#?}");
    }
    let mut cycle = vec![pair[0].id, pair[1].id];
    cycle.sort_unstable();
    assert_eq!(d.deadlocks, vec![cycle], "{d}");

    // Many idle tasks.
    let idle = tasks_of(d, "idle");
    assert_eq!(idle.len(), 50);
    for t in idle {
        is_async(root(t), "idle", "idle_await");
        is_leaf(
            only_child(root(t)),
            "tokio::sync::oneshot::Receiver",
            "oneshot",
        );
    }

    // The echo server: accept loop and one connection.
    let server = root(one(d, "echo_server"));
    is_async(server, "echo_server", "accept");
    let accept = only_child(server);
    assert!(accept.frame.function.contains("accept"), "{accept:#?}");
    let conn = d
        .tasks
        .iter()
        .find(|t| root(t).frame.kind == FrameKind::AsyncBlock)
        .expect("the connection task");
    let c = root(conn);
    assert_eq!(c.frame.function, format!("{PREFIX}echo_server"));
    assert_eq!(
        c.frame.location.as_ref().map(|l| l.line),
        Some(line("echo_read"))
    );
    let leaf = first_leaf(c);
    assert!(
        leaf.frame
            .annotation()
            .as_deref()
            .unwrap_or("")
            .contains("I/O"),
        "{c:#?}"
    );
    // A task inside `poll` right now is reported as running, not decoded.
    if spinner {
        let spin = one(d, "spinner");
        assert_eq!(spin.state, TaskState::InPoll, "{spin:?}");
        assert_eq!(root(spin).frame.status, FrameStatus::Running);
    }
    assert_eq!(d.tasks.len(), 50 + 9 + 1 + usize::from(spinner), "{d}");
}

/// The node reached by following first children down from `n`.
fn first_leaf(mut n: &Node) -> &Node {
    while let Some(c) = n.children.first() {
        n = c;
    }
    n
}

/// Connects a client and waits (bounded) until the server runs its connection task.
fn connect(t: &Target, tasks: usize) -> TcpStream {
    let s = TcpStream::connect(&t.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = dump_of(&tasktrace(&["attach", &t.pid().to_string(), "--json"]));
        if d.tasks.len() == tasks {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the connection task never appeared: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect(")") + 2..];
    after.chars().next().expect("state")
}

#[test]
fn attach_reads_every_tree_and_leaves_the_target_running() {
    let t = Target::start(&[]);
    let mut client = connect(&t, 61);
    let pid = t.pid().to_string();

    let d = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    assert_trees(&d, true, true);

    // Text output: the model's rendering.
    let text = tasktrace(&["attach", &pid]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("╼ async fn tasktrace_demo_target::foo at "),
        "{text}"
    );
    assert!(text.contains("waiting on task"), "{text}");

    // Folded stacks: foo;bar;fiz;…Sleep, root first, one line per join branch.
    let folded = tasktrace(&["attach", &pid, "--format", "folded"]);
    assert!(folded.status.success());
    let folded = String::from_utf8_lossy(&folded.stdout);
    let foo_lines: Vec<&str> = folded
        .lines()
        .filter(|l| l.starts_with("tasktrace_demo_target::foo at "))
        .collect();
    assert_eq!(foo_lines.len(), 2, "one line per join branch:\n{folded}");
    for (line, branch) in foo_lines.iter().zip(["buz", "fiz"]) {
        let frames: Vec<&str> = line.split(';').collect();
        assert!(
            frames[1].starts_with("tasktrace_demo_target::bar at "),
            "{line}"
        );
        assert!(
            frames[2].starts_with(&format!("tasktrace_demo_target::{branch} at ")),
            "{line}"
        );
        assert_eq!(frames[3], "tokio::time::sleep::Sleep", "{line}");
        assert!(line.ends_with(" 1"), "{line}");
    }
    assert!(
        folded
            .lines()
            .any(|l| l.starts_with("tasktrace_demo_target::idle at ") && l.ends_with(" 50")),
        "the 50 idle tasks fold into one line:\n{folded}"
    );

    // pprof: a gzip stream (its decoding is checked by Go's pprof in the seed crate).
    let pprof = tasktrace(&["attach", &pid, "--format", "pprof"]);
    assert!(pprof.status.success());
    assert_eq!(pprof.stdout.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");

    // --task filters by root fn.
    let idle = dump_of(&tasktrace(&["attach", &pid, "--json", "--task", "::idle$"]));
    assert_eq!(idle.tasks.len(), 50);

    // Still running after every detach: not stopped, and it still echoes.
    assert!(
        !matches!(proc_state(t.pid()), 't' | 'T'),
        "target left stopped"
    );
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).expect("echo after detach");
    assert_eq!(&buf, b"ping");
}

#[test]
fn demo_prints_the_bundled_targets_tasks() {
    let out = tasktrace(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("async fn tasktrace_demo_target::bar at "),
        "{text}"
    );
    assert!(text.contains("waiting on timer"), "{text}");
}

/// `-o FILE` writes the output to the file (attach, core, demo alike); `--task` says how many
/// tasks matched, also when none did, and shows no deadlock among tasks it leaves out; a bad
/// `--format` lists every format inside its parentheses.
#[test]
fn output_file_task_filter_and_format_errors() {
    let dir = support::Scratch::new("out");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let demo_out = path("demo.json");
    let out = tasktrace(&["demo", "--format", "json", "-o", &demo_out]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "written to the file, not stdout");
    let d: Dump = serde_json::from_str(&std::fs::read_to_string(&demo_out).unwrap()).unwrap();
    assert!(d.tasks.len() >= 60, "{d}");
    assert!(
        !d.deadlocks.is_empty(),
        "the demo's lock-order deadlock: {d}"
    );

    let t = Target::start(&[]);
    let pid = t.pid().to_string();
    let attach_out = path("attach.txt");
    let out = tasktrace(&["attach", &pid, "--task", "no_such_fn", "-o", &attach_out]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&attach_out).unwrap();
    let tasks = d.tasks.len();
    assert!(
        text.contains(&format!("note: 0 of {tasks} tasks match --task no_such_fn")),
        "{text}"
    );
    assert!(
        !text.contains("DEADLOCK"),
        "a cycle of tasks not shown: {text}"
    );
    let locked = dump_of(&tasktrace(&[
        "attach",
        &pid,
        "--json",
        "--task",
        "lock_both",
    ]));
    assert_eq!(locked.tasks.len(), 2, "{locked}");
    assert_eq!(
        locked.deadlocks.len(),
        1,
        "both tasks of the cycle are shown: {locked}"
    );
    assert!(locked
        .notes
        .iter()
        .any(|n| n == &format!("2 of {tasks} tasks match --task lock_both")));

    if let Some(core) = support::gcore(t.pid(), &dir.join("core")) {
        let core_out = path("core.folded");
        let out = tasktrace(&[
            "core", &core, "--exe", TARGET, "--format", "folded", "-o", &core_out,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let folded = std::fs::read_to_string(&core_out).unwrap();
        assert!(folded.lines().any(|l| l.ends_with(" 50")), "{folded}");
    }

    let out = tasktrace(&["attach", &pid, "--format", "xml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "unknown format \"xml\" (one of: text, verbose, grouped, json, json-raw, folded, \
             svg, pprof, pprof-raw)"
        ),
        "{err}"
    );
}

#[test]
fn core_file_shows_the_same_trees() {
    let t = Target::start(&[]);
    let _client = connect(&t, 61);
    let dir = support::Scratch::new("core");
    let Some(core) = support::gcore(t.pid(), &dir.join("core")) else {
        return;
    };
    drop(t); // the process has exited: only the core remains

    let d = dump_of(&tasktrace(&["core", &core, "--exe", TARGET, "--json"]));
    assert_trees(&d, false, true);
    // Without --exe: the executable is the one the core names (NT_FILE at the entry point).
    let named = dump_of(&tasktrace(&["core", &core, "--json"]));
    assert_trees(&named, false, true);
    assert_eq!(named.tasks.len(), d.tasks.len(), "{named}");
    // What a core cannot tell is said once.
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("read from a core file: a socket shows")),
        "{:?}",
        d.notes
    );
    // Another executable than the one that dumped the core is refused: a copy of the target
    // whose first page differs (a byte of the ELF header's padding, unused by loaders).
    let other = dir.join("other-exe");
    let mut bytes = std::fs::read(TARGET).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&other, bytes).unwrap();
    fails_with(
        &["core", &core, "--exe", other.to_str().unwrap()],
        1,
        "was not dumped by",
    );
}

/// Builds the same target, optimised with full debuginfo, from its own tiny workspace in
/// `tests/nopie`, for `target` with `rustflags`, into `<target dir>/<name>`.
fn build_demo_variant(name: &str, target: &str, rustflags: &str, env: &[(&str, &str)]) -> String {
    let target_dir = std::path::Path::new(TARGET)
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join(name);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nopie/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            target,
            "--manifest-path",
            manifest,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", rustflags)
        .envs(env.iter().copied())
        .spawn()
        .expect("run cargo");
    let status = support::wait_child(
        &mut child,
        Duration::from_secs(900),
        &format!("building the {name} target"),
    );
    assert!(status.success(), "building the {name} target failed");
    let exe = target_dir.join(format!("{target}/release/tasktrace-demo-target"));
    exe.to_str().expect("utf-8 path").to_string()
}

/// The demo target as an optimised non-PIE executable with full debuginfo.
fn build_nopie() -> String {
    build_demo_variant(
        "nopie",
        "x86_64-unknown-linux-gnu",
        "-C relocation-model=static",
        &[],
    )
}

#[test]
fn attach_reads_an_optimised_non_pie_executable() {
    let exe = build_nopie();
    let elf = std::fs::read(&exe).expect("the non-PIE target");
    assert_eq!(
        u16::from_le_bytes([elf[16], elf[17]]),
        2,
        "ET_EXEC: not PIE"
    );
    let t = Target::start_exe(&exe, &[]);
    let _client = connect(&t, 61);
    let d = dump_of(&tasktrace(&["attach", &t.pid().to_string(), "--json"]));
    assert_trees(&d, true, true);
}

#[test]
fn attach_reads_a_static_musl_lto_executable() {
    // Static musl binaries are what `FROM scratch` containers ship: no glibc, musl's own
    // thread control blocks and TLS layout.
    const MUSL: &str = "x86_64-unknown-linux-musl";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == MUSL)
        });
    if !installed {
        eprintln!("the {MUSL} target is not installed (rustup target add {MUSL}): skipped");
        return;
    }
    // Built the way services ship: fat LTO, one codegen unit, `panic = "abort"`.
    let exe = build_demo_variant(
        "musl",
        MUSL,
        "",
        &[
            ("CARGO_PROFILE_RELEASE_LTO", "fat"),
            ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
            ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
        ],
    );
    let t = Target::start_exe(&exe, &[]);
    let _client = connect(&t, 61);
    let pid = t.pid().to_string();
    let d = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    assert_trees(&d, true, true);
    // Its threads are found too: the workers and the `block_on` thread with its root future.
    let out = tasktrace(&["attach", &pid, "--threads"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("— block_on of runtime"), "{text}");
    assert!(
        text.contains("\"tokio-rt-worker\" — worker 0 of runtime"),
        "{text}"
    );
}

#[test]
fn attach_reads_a_current_thread_runtime() {
    let t = Target::start(&["--current-thread"]);
    let _client = connect(&t, 60);
    let d = dump_of(&tasktrace(&["attach", &t.pid().to_string(), "--json"]));
    assert_trees(&d, true, false);
}

#[test]
fn interrupted_attach_detaches_and_the_target_runs_on() {
    let t = Target::start(&[]);
    let mut client = connect(&t, 61);
    // Hold the target stopped (test hook), interrupt tasktrace meanwhile.
    let mut tt = Command::new(TASKTRACE)
        .args(["attach", &t.pid().to_string()])
        .env("TASKTRACE_TEST_HOLD_MS", "20000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tasktrace");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(proc_state(t.pid()), 't' | 'T') {
        assert!(
            Instant::now() < deadline,
            "tasktrace never stopped the target"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second reader is refused while the first holds the target.
    fails_with(
        &["attach", &t.pid().to_string()],
        1,
        "is already traced by process",
    );
    // SAFETY: sends SIGINT to the tasktrace child we started.
    unsafe { libc_kill(tt.id() as i32, 2) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = tt.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = tt.kill();
            let _ = tt.wait();
            panic!("tasktrace did not exit within 30s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(proc_state(t.pid()), 't' | 'T') {
        assert!(
            Instant::now() < deadline,
            "target left stopped after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    client.write_all(b"pong").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).expect("echo after Ctrl-C");
    assert_eq!(&buf, b"pong");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn fails_with(args: &[&str], code: i32, message: &str) {
    let out = tasktrace(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}: {err:?} lacks {message:?}");
    assert!(!err.contains("panicked"), "{err}");
    if code == 1 {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = support::Scratch::new("bad");
    let text = dir.join("text");
    std::fs::write(&text, "not an elf at all").unwrap();
    let text = text.to_str().unwrap();
    let truncated = dir.join("truncated");
    // A core header that promises segments the file does not hold.
    let exe = std::fs::read(TARGET).unwrap();
    std::fs::write(&truncated, &exe[..64]).unwrap();
    let truncated = truncated.to_str().unwrap();

    fails_with(&["attach", "2147483647"], 1, "no such process: 2147483647");
    fails_with(&["attach", "abc"], 2, "not a process id");
    fails_with(&["core", text, "--exe", TARGET], 1, "not an ELF file");
    // Executables with nothing to read: not Rust at all, or Rust without tokio (a build
    // script of this very build).
    if std::path::Path::new("/bin/ls").exists() {
        fails_with(
            &["core", TARGET, "--exe", "/bin/ls"],
            1,
            "is not a Rust program",
        );
    }
    let build_dir = std::path::Path::new(TARGET).parent().unwrap().join("build");
    let script = std::fs::read_dir(&build_dir).ok().and_then(|dirs| {
        dirs.filter_map(|d| d.ok())
            .map(|d| d.path().join("build-script-build"))
            .find(|p| p.exists())
    });
    if let Some(script) = script {
        fails_with(
            &["core", TARGET, "--exe", script.to_str().unwrap()],
            1,
            "a Rust program without tokio in it",
        );
    }
    fails_with(&["core", TARGET, "--exe", text], 1, "not an ELF file");
    fails_with(&["core", TARGET, "--exe", TARGET], 1, "corrupt core file");
    fails_with(
        &["core", truncated, "--exe", TARGET],
        1,
        "corrupt core file",
    );
    fails_with(
        &["core", "/nonexistent/core", "--exe", TARGET],
        1,
        "cannot read /nonexistent/core",
    );
    // Without --exe the core is read first (for the executable it names).
    fails_with(&["core", text], 1, "not an ELF file");
    fails_with(
        &["core", "/nonexistent/core"],
        1,
        "cannot read /nonexistent/core",
    );
    fails_with(&["core", TARGET], 1, "corrupt core file");
    fails_with(&["frobnicate"], 2, "unrecognized subcommand");
    fails_with(&["attach", "1", "--timeout", "-3"], 2, "bad --timeout");
    fails_with(&["attach", "1", "--task", "("], 2, "bad --task regex");
    let help = tasktrace(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("tasktrace attach <PID>"));

    // An executable without debuginfo: a stripped copy of the target.
    let stripped = dir.join("stripped");
    let st = Command::new("strip")
        .arg("-g")
        .arg("-o")
        .arg(&stripped)
        .arg(TARGET)
        .status();
    if st.is_ok_and(|s| s.success()) {
        fails_with(
            &["core", text, "--exe", stripped.to_str().unwrap()],
            1,
            "debug = true",
        );
    }

    // A process with tokio's debuginfo whose runtime never started.
    let t = Target::start(&["--no-runtime"]);
    fails_with(
        &["attach", &t.pid().to_string()],
        1,
        "no tokio runtime found",
    );
    assert!(
        !matches!(proc_state(t.pid()), 't' | 'T'),
        "target left stopped"
    );
}
