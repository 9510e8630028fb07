//! `tasktrace attach PID --threads` on `testdata/tokio-targets` (tokio 1.54.1), in a debug and
//! in an optimised build (where `block_on`'s future local is optimised out and is found on the
//! stack): every worker with its index and local queue, the `#[tokio::main]` thread with
//! main's own future suspended at `listener.accept().await`, the current_thread runtime's
//! `LocalSet::block_on` thread with its root future, the blocking-pool thread; and the target
//! still runs after the detach. The release build is also read from a `gcore` core file.
//! And the demo target's native stack of a worker inside a poll (live and from a core), with
//! inlined frames and source lines.

mod support;

use std::process::Command;

use support::*;
use tasktrace_model::{Dump, FrameKind, Node, ThreadInfo, ThreadRole};

fn leaves(n: &Node) -> Vec<&Node> {
    if n.children.is_empty() {
        return vec![n];
    }
    n.children.iter().flat_map(leaves).collect()
}

fn find<'n>(n: &'n Node, func: &str) -> Option<&'n Node> {
    if n.frame.function == func {
        return Some(n);
    }
    n.children.iter().find_map(|c| find(c, func))
}

fn threads_with(d: &Dump, role: ThreadRole) -> Vec<&ThreadInfo> {
    d.threads.iter().filter(|t| t.role == role).collect()
}

fn check(profile: &str) {
    let exe = build_target("1.54.1", profile);
    let t = Target::start(&exe, &["3"]);
    let pid = t.pid.to_string();
    let d = dump_of(&tasktrace(&["attach", &pid, "--threads", "--json"]));
    let ctx = format!("{profile} build");
    assert_eq!(
        d.threads.len(),
        6,
        "{ctx}: main, 2 workers, local-rt, 2 blocking: {d:#?}"
    );

    // Workers: distinct indexes, a local queue each.
    let workers = threads_with(&d, ThreadRole::Worker);
    assert!(!workers.is_empty(), "{ctx}: no worker");
    let mut idx: Vec<u32> = workers.iter().map(|w| w.worker.expect("index")).collect();
    idx.sort();
    idx.dedup();
    assert_eq!(idx.len(), workers.len(), "{ctx}: worker indexes {idx:?}");
    for w in &workers {
        assert_eq!(w.runtime, Some(1), "{ctx}: {w:?}");
        assert_eq!(w.scheduler.as_deref(), Some("multi_thread"));
        assert!(w.local_queue.is_some(), "{ctx}: {w:?}");
        assert!(w.trace.is_empty());
    }

    // The `#[tokio::main]` thread: main's future, suspended at the accept.
    let main = d
        .threads
        .iter()
        .find(|th| th.tid == u64::from(t.pid))
        .expect("the main thread");
    assert_eq!(main.role, ThreadRole::BlockOn, "{ctx}: {main:?}");
    assert_eq!(main.runtime, Some(1));
    assert_eq!(main.trace.roots.len(), 1, "{ctx}: {main:#?}");
    let root = &main.trace.roots[0];
    assert_eq!(root.frame.function, format!("{PREFIX}main"), "{root:#?}");
    assert_eq!(root.frame.kind, FrameKind::AsyncBlock);
    let at = root.frame.location.as_ref().expect("await line");
    assert!(at.file.ends_with("src/main.rs"), "{at:?}");
    assert_eq!(
        at.line,
        line("match listener.accept().await"),
        "{ctx}: {root:#?}"
    );
    assert!(!root.children.is_empty(), "{ctx}: the accept: {root:#?}");
    assert!(
        leaves(root).iter().any(|l| l
            .frame
            .annotation()
            .as_deref()
            .unwrap_or("")
            .contains("I/O")),
        "{ctx}: waiting on the listener: {root:#?}"
    );

    // The current_thread runtime's thread, in `LocalSet::block_on`: its async block, joining
    // three join handles on the LocalSet's and the runtime's tasks.
    let local = d
        .threads
        .iter()
        .find(|th| th.name.as_deref() == Some("local-rt"))
        .expect("the local-rt thread");
    assert_eq!(local.role, ThreadRole::BlockOn, "{ctx}: {local:?}");
    assert_eq!(local.runtime, Some(2));
    assert_eq!(local.scheduler.as_deref(), Some("current_thread"));
    // (Under tokio's own `run_until` async fn, which the JSON-raw view keeps.)
    let lroot = find(&local.trace.roots[0], &format!("{PREFIX}local_runtime"))
        .unwrap_or_else(|| panic!("{ctx}: no local_runtime frame: {local:#?}"));
    assert_eq!(lroot.frame.kind, FrameKind::AsyncBlock);
    assert_eq!(
        lroot.frame.location.as_ref().map(|l| l.line),
        Some(line("let _ = tokio::join!(a, b, c);")),
        "{ctx}: {lroot:#?}"
    );
    let local_ids: Vec<u64> = tasks_of(&d, "local_leaf").iter().map(|t| t.id).collect();
    assert_eq!(local_ids.len(), 3, "{ctx}");
    for l in leaves(lroot) {
        assert!(
            l.frame
                .function
                .starts_with("tokio::runtime::task::join::JoinHandle"),
            "{l:#?}"
        );
    }

    // The blocking pool threads run the two `spawn_blocking` sleeps; the one awaited by
    // `blocking_waiter` is listed as a task, running on its thread.
    let blocking = threads_with(&d, ThreadRole::Blocking);
    assert_eq!(blocking.len(), 2, "{ctx}: {blocking:?}");
    assert!(
        blocking.iter().all(|b| b.task.is_some()),
        "{ctx}: {blocking:?}"
    );
    let waited = one(&d, "blocking_waiter").awaits[0];
    assert!(
        blocking.iter().any(|b| b.task == Some(waited)) && d.task(waited).is_some(),
        "{ctx}: the awaited blocking task and its thread: {blocking:?}"
    );

    // The text view lists them before the tasks.
    let text = tasktrace(&["attach", &pid, "--threads"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("block_on of runtime 1 (multi_thread)"),
        "{text}"
    );
    assert!(text.contains("— worker 0 of runtime 1"), "{text}");
    assert!(
        text.contains("async block in tokio_target::main at src/main.rs:"),
        "{text}"
    );
    // Without --threads, no threads.
    let plain = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    assert!(plain.threads.is_empty());

    t.assert_running_and_echoes();
    if profile == "release" {
        from_a_core_file(&t, &exe);
    }
}

/// The same view from a `gcore` core file: registers from `NT_PRSTATUS`, the stack from the
/// core's memory.
fn from_a_core_file(t: &Target, exe: &str) {
    let Some(d) = threads_from_a_core(t, exe, "threads-core", "") else {
        return;
    };
    let main = d
        .threads
        .iter()
        .find(|th| th.tid == u64::from(t.pid))
        .expect("the main thread in the core");
    assert_eq!(main.role, ThreadRole::BlockOn);
    let root = &main.trace.roots[0];
    assert_eq!(root.frame.function, format!("{PREFIX}main"), "{root:#?}");
    assert_eq!(
        root.frame.location.as_ref().map(|l| l.line),
        Some(line("match listener.accept().await"))
    );
    assert!(!threads_with(&d, ThreadRole::Worker).is_empty());
    assert_eq!(tasks_of(&d, "local_leaf").len(), 3);
}

#[test]
fn threads_view_of_a_debug_build() {
    check("dev");
}

#[test]
fn threads_view_of_a_release_build() {
    check("release");
}

/// A worker inside a poll (the demo target's `spinner` task sleeps synchronously in its
/// poll): its native stack, unwound with `.eh_frame` through libc, shows the task's code
/// inside tokio's poll machinery.
#[test]
fn native_stack_of_a_worker_inside_a_poll() {
    let exe = env!("CARGO_BIN_EXE_tasktrace-demo-target");
    let t = Target::start(exe, &[]);
    let d = attach_threads(&t);
    check_native_stack(&d, "live");
    // Idle workers are not unwound.
    for th in &d.threads {
        if th.task.is_none() {
            assert!(th.native_stack.is_empty(), "{th:#?}");
        }
    }
    t.assert_running_and_echoes();
    // The same stack from a core file (registers from NT_PRSTATUS, files from NT_FILE).
    if let Some(d) = threads_from_a_core(&t, exe, "native-core", "") {
        check_native_stack(&d, "core");
    }
}

/// `tasktrace attach --threads --json` of `t`.
fn attach_threads(t: &Target) -> Dump {
    dump_of(&tasktrace(&[
        "attach",
        &t.pid.to_string(),
        "--threads",
        "--json",
    ]))
}

/// `tasktrace core --threads --json` of a `gcore` of `t` (the core file removed after), with
/// `--debuginfo debug` unless it is empty; `None` when gcore is not installed.
fn threads_from_a_core(t: &Target, exe: &str, name: &str, debug: &str) -> Option<Dump> {
    let prefix = target_dir().join(format!("{name}-{}", std::process::id()));
    let core = gcore(t.pid, &prefix)?;
    let mut args = vec!["core", &core, "--exe", exe, "--threads", "--json"];
    if !debug.is_empty() {
        args.extend(["--debuginfo", debug]);
    }
    let d = dump_of(&tasktrace(&args));
    let _ = std::fs::remove_file(&core);
    Some(d)
}

/// A stripped executable whose DWARF is only in a separate debug file, given with
/// `--debuginfo` (no debuglink), then found through `.gnu_debuglink`, live and from a core:
/// the native stack still has the spinner's line, so the unwinder symbolised the executable
/// with that file (the bytes the type reader found, handed on, not read a second time).
#[test]
fn native_stack_from_a_separate_debug_file() {
    if !objcopy(&["--version"]) {
        missing("objcopy", "apt-get install binutils");
        return;
    }
    let exe = env!("CARGO_BIN_EXE_tasktrace-demo-target");
    let dir = Scratch::new("native-debugfile");
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8").to_string();
    let debug = s(dir.join("demo.debug"));
    let stripped = s(dir.join("demo"));
    assert!(objcopy(&["--only-keep-debug", exe, &debug]));
    assert!(objcopy(&["--strip-debug", exe, &stripped]));
    let t = Target::start(&stripped, &[]);
    let d = dump_of(&tasktrace(&[
        "attach",
        &t.pid.to_string(),
        "--threads",
        "--json",
        "--debuginfo",
        &debug,
    ]));
    check_native_stack(&d, "stripped, --debuginfo");
    t.assert_running_and_echoes();
    if let Some(d) = threads_from_a_core(&t, &stripped, "native-debugfile-core", &debug) {
        check_native_stack(&d, "core of the stripped executable, --debuginfo");
    }
    drop(t);

    // Found through `.gnu_debuglink`, with no build id in either file: the executable's
    // module is known by its path.
    let plain = s(dir.join("demo-no-id"));
    let unnoted = s(dir.join("demo-no-id.debug"));
    assert!(objcopy(&[
        "--remove-section=.note.gnu.build-id",
        exe,
        &plain
    ]));
    assert!(objcopy(&["--only-keep-debug", &plain, &unnoted]));
    let linked = s(dir.join("demo-linked"));
    let link = format!("--add-gnu-debuglink={unnoted}");
    assert!(objcopy(&["--strip-debug", &link, &plain, &linked]));
    let t = Target::start(&linked, &[]);
    let d = attach_threads(&t);
    check_native_stack(&d, "stripped, .gnu_debuglink, no build id");
    t.assert_running_and_echoes();
}

/// A process in another mount namespace, as a container's process is to a debugger on the
/// host: its stripped executable and the debug file its `.gnu_debuglink` names exist only
/// in its namespace (a tmpfs mounted there). Attached from outside, the tasks are read with
/// that debug file, and the native stack is symbolised from the executable it runs: both
/// opened through `/proc/PID/root`, not at the paths on this side (where nothing is).
#[test]
fn a_process_in_another_mount_namespace() {
    let ns = |args: &[&str]| {
        Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !objcopy(&["--version"]) || !ns(&["true"]) {
        missing(
            "objcopy or unshare -m",
            "binutils, and root for a mount namespace",
        );
        return;
    }
    let exe = env!("CARGO_BIN_EXE_tasktrace-demo-target");
    let dir = Scratch::new("mount-ns");
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8").to_string();
    let (debug, stripped, app) = (
        s(dir.join("demo.debug")),
        s(dir.join("demo")),
        s(dir.join("app")),
    );
    assert!(objcopy(&["--only-keep-debug", exe, &debug]));
    let link = format!("--add-gnu-debuglink={debug}");
    assert!(objcopy(&["--strip-debug", &link, exe, &stripped]));
    std::fs::create_dir(&app).unwrap();
    let inside =
        format!("mount -t tmpfs tt-app {app} && cp {stripped} {debug} {app}/ && exec {app}/demo");
    let t = Target::start(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &inside],
    );
    let ours = format!("{app}/demo");
    assert!(
        !std::path::Path::new(&ours).exists(),
        "{ours} is visible outside"
    );
    let d = attach_threads(&t);
    check_native_stack(&d, "another mount namespace");
    t.assert_running_and_echoes();
}

/// The executable deleted and another file put at its path while the process runs (a deploy
/// that installs the new binary before restarting): the native stack is still symbolised from
/// the file the process runs, never from the one now at the path.
#[test]
fn an_executable_replaced_on_disk_since_it_started() {
    let exe = env!("CARGO_BIN_EXE_tasktrace-demo-target");
    let dir = Scratch::new("replaced-exe");
    let path = dir.join("demo");
    std::fs::copy(exe, &path).unwrap();
    let t = Target::start(path.to_str().unwrap(), &[]);
    std::fs::remove_file(&path).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_tasktrace"), &path).unwrap();
    let d = attach_threads(&t);
    check_native_stack(&d, "replaced on disk");
    t.assert_running_and_echoes();
}

/// A core read on another machine: the executable given with `--exe` is not at the path the
/// core's file notes name (that one is gone). The native stack is symbolised from `--exe`.
#[test]
fn a_core_with_its_executable_moved() {
    let exe = env!("CARGO_BIN_EXE_tasktrace-demo-target");
    let dir = Scratch::new("moved-exe");
    let (built, shipped) = (dir.join("built"), dir.join("shipped"));
    std::fs::create_dir(&built).unwrap();
    std::fs::create_dir(&shipped).unwrap();
    std::fs::copy(exe, built.join("demo")).unwrap();
    let t = Target::start(built.join("demo").to_str().unwrap(), &[]);
    let Some(core) = gcore(t.pid, &dir.join("core")) else {
        return;
    };
    drop(t);
    std::fs::rename(built.join("demo"), shipped.join("demo")).unwrap();
    let d = dump_of(&tasktrace(&[
        "core",
        &core,
        "--exe",
        shipped.join("demo").to_str().unwrap(),
        "--threads",
        "--json",
    ]));
    check_native_stack(&d, "core, executable moved");
}

/// The spinner's worker: its native stack goes from `sleep` (libc, named by its symbol
/// table) through the spinner's own code (named by DWARF, with the line of its `sleep` call
/// in the demo target's source; inlined into tokio's `Core::poll` in an optimised build) to
/// tokio's worker loop.
fn check_native_stack(d: &Dump, ctx: &str) {
    let spinner = d
        .tasks
        .iter()
        .find(|task| {
            task.trace
                .roots
                .first()
                .is_some_and(|r| r.frame.function == "tasktrace_demo_target::spinner")
        })
        .unwrap_or_else(|| panic!("{ctx}: the spinner task"));
    let worker = d
        .threads
        .iter()
        .find(|th| th.task == Some(spinner.id))
        .unwrap_or_else(|| panic!("{ctx}: no thread polls the spinner: {:#?}", d.threads));
    assert_eq!(worker.role, ThreadRole::Worker);
    let stack = &worker.native_stack;
    let text: Vec<String> = stack.iter().map(ToString::to_string).collect();
    let at = |what: &str| {
        stack
            .iter()
            .position(|f| f.function.as_deref().is_some_and(|n| n.contains(what)))
            .unwrap_or_else(|| panic!("{ctx}: no {what} in the native stack {text:#?}"))
    };
    assert!(at("sleep") < at("worker::Context::run"), "{ctx}: {text:#?}");
    // A libc without DWARF (no debug package): its frames name their module
    // (`clock_nanosleep in libc.so.6`).
    let libc = &stack[at("sleep")];
    assert!(
        libc.location.is_some()
            || libc
                .module
                .as_deref()
                .is_some_and(|m| m.starts_with("libc")),
        "{ctx}: {text:#?}"
    );
    assert!(
        at("sleep") < at("tasktrace_demo_target::spinner"),
        "{ctx}: {text:#?}"
    );
    assert!(
        at("tasktrace_demo_target::spinner") < at("Core<T,S>::poll"),
        "{ctx}: {text:#?}"
    );
    assert!(
        at("Core<T,S>::poll") < at("worker::Context::run"),
        "{ctx}: {text:#?}"
    );
    // The spinner's frame: the line of its call to `sleep` (looked up at the return
    // address - 1), in the demo target's source.
    let i = at("tasktrace_demo_target::spinner");
    let f = &stack[i];
    let loc = f
        .location
        .as_ref()
        .unwrap_or_else(|| panic!("{ctx}: the spinner frame has no location: {text:#?}"));
    assert!(
        loc.file.ends_with("tasktrace-demo-target.rs"),
        "{ctx}: {text:#?}"
    );
    let src = include_str!("../src/bin/tasktrace-demo-target.rs");
    let line_of = |marker: &str| {
        src.lines()
            .position(|l| l.contains(marker))
            .map(|i| i as u32 + 1)
    };
    assert_eq!(Some(loc.line), line_of("// @spin_step"), "{ctx}: {text:#?}");
    // `spinner → spin_step → pause → sleep`. An optimised build makes `pause` a tail call of
    // `spin_step`, whose frame is then put back from the spinner's call, marked.
    assert!(at("sleep") < at("::pause"), "{ctx}: {text:#?}");
    assert!(at("::pause") < at("::spin_step"), "{ctx}: {text:#?}");
    assert!(
        at("::spin_step") < at("tasktrace_demo_target::spinner"),
        "{ctx}: {text:#?}"
    );
    let pause = &stack[at("::pause")];
    assert_eq!(
        pause.location.as_ref().map(|l| l.line),
        line_of("// @pause_sleep"),
        "{ctx}: {text:#?}"
    );
    let step = &stack[at("::spin_step")];
    assert_eq!(step.tail_call, !cfg!(debug_assertions), "{ctx}: {text:#?}");
    // Tokio's frames have lines too (its source in the cargo registry).
    let core = &stack[at("Core<T,S>::poll")];
    assert!(
        core.location
            .as_ref()
            .is_some_and(|l| l.file.ends_with(".rs")),
        "{ctx}: {text:#?}"
    );
    if cfg!(debug_assertions) {
        assert!(
            at("tasktrace_demo_target::spinner") < at("tokio::runtime::task::raw::poll"),
            "{ctx}: {text:#?}"
        );
    } else {
        // Optimised: the spinner's poll is inlined; below it in the list, at the same pc,
        // come more inlined frames and then the physical function they are all inside.
        assert!(f.inlined, "{ctx}: {text:#?}");
        let physical = stack[i..]
            .iter()
            .find(|g| !g.inlined)
            .unwrap_or_else(|| panic!("{ctx}: no physical frame under the spinner: {text:#?}"));
        assert_eq!(physical.pc, f.pc, "{ctx}: {text:#?}");
        assert!(physical.function.is_some(), "{ctx}: {text:#?}");
    }
    // The list ends in a physical frame (an inlined run always does).
    assert!(stack.last().is_some_and(|f| !f.inlined), "{ctx}: {text:#?}");
}
