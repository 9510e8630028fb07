//! The out-of-process reader against every tokio version it supports: builds
//! `testdata/tokio-targets` (dev profile) against tokio 1.38.2 … 1.54.1 with its `build.sh`,
//! each with tokio's features listed one by one and with `full` (its `parking_lot`),
//! runs each, attaches with `tasktrace attach --json`, and asserts the task trees' structure
//! (await lines, join branches — one completed —, sleep leaves, join handles, the second
//! runtime's task), and that the target still runs after the detach; and that tokio 1.32 (an
//! older layout) is refused with `unsupported tokio 1.32: missing OwnedTasks.list`. Every
//! idle task has its waker counted in tokio's reference count (the NEVER WOKEN diagnosis's
//! accounting), and none is diagnosed.
//!
//! A build with `--cfg tokio_unstable` (as tokio-console users build) gives each task's spawn
//! location, read from the task (`Vtable.spawn_location_offset`); a plain build has none.
//!
//! Builds are cached under the cargo target dir (`tokio-targets/`), sharing one target dir
//! across versions so the common dependencies compile once; a rerun only checks freshness.
//! Every wait has a deadline; nothing asserts on timing.

mod support;

use support::*;
use tasktrace_model::{Branches, FrameKind, FrameStatus, Node, TaskState};

/// Every tokio version the reader supports (docs/tokio-layouts.md).
const VERSIONS: &[&str] = &["1.38.2", "1.43.1", "1.47.1", "1.50.0", "1.52.0", "1.54.1"];

/// Number of idle tasks the target spawns (its first argument).
const N_IDLE: usize = 3;

fn child_of<'n>(n: &'n Node, func: &str) -> &'n Node {
    n.children
        .iter()
        .find(|c| c.frame.function == func)
        .unwrap_or_else(|| panic!("no child {func} under {n:#?}"))
}

/// Reads the target built against tokio `version` in `profile` (`dev`, or `dev-full`: tokio
/// with `features = ["full"]`, whose `parking_lot` changes tokio's internal mutexes).
fn check_version(version: &str, profile: &str) {
    let exe = build_target(version, profile);
    let t = Target::start(&exe, &[&N_IDLE.to_string()]);
    let pid = t.pid.to_string();
    let d = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    let ctx = format!("tokio {version}");
    assert!(
        d.notes.iter().any(|n| n.contains(&ctx)),
        "{ctx}: version not in the notes {:?}",
        d.notes
    );
    let ctx = format!("{ctx} ({profile})");

    // foo → bar → join!(fiz (completed), buz → Sleep).
    let foo_task = one(&d, "foo");
    let foo_node = root(foo_task);
    is_async(foo_node, "foo", "bar().await + 1");
    let bar = only_child(foo_node);
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
    assert_eq!(bar.children.len(), 2, "{ctx}: both join branches: {bar:#?}");
    assert_eq!(
        bar.frame.branches,
        Some(Branches::AllOf(2)),
        "{ctx}: {bar:#?}"
    );
    let fiz = child_of(bar, &format!("{PREFIX}fiz"));
    assert_eq!(fiz.frame.status, FrameStatus::Completed, "{ctx}: {fiz:#?}");
    assert!(fiz.children.is_empty());
    // Completed at fiz's closing brace (three lines below its `async fn` line).
    let done_at = fiz.frame.location.as_ref().expect("where fiz completed");
    assert!(done_at.file.ends_with("src/main.rs"), "{done_at:?}");
    assert_eq!(done_at.line, line("async fn fiz()") + 3, "{ctx}: {fiz:#?}");
    let buz = child_of(bar, &format!("{PREFIX}buz"));
    is_async(buz, "buz", "tokio::time::sleep(LONG).await");
    is_leaf(only_child(buz), "tokio::time::sleep::Sleep", "s left");

    // A join handle on foo's task.
    let waiter = one(&d, "wait_for");
    is_async(root(waiter), "wait_for", "handle.await.unwrap_or(0)");
    is_leaf(
        only_child(root(waiter)),
        "tokio::runtime::task::join::JoinHandle",
        &format!("waiting on task {}", foo_task.id),
    );
    assert_eq!(waiter.awaits, vec![foo_task.id], "{ctx}");

    // select! over three branches.
    let sel = root(one(&d, "select_loop"));
    is_async(sel, "select_loop", "tokio::select! {");
    assert_eq!(sel.children.len(), 3, "{ctx}: select branches: {sel:#?}");
    assert_eq!(
        sel.frame.branches,
        Some(Branches::FirstOf(3)),
        "{ctx}: {sel:#?}"
    );
    assert!(
        sel.children
            .iter()
            .any(|c| c.frame.function == "tokio::sync::notify::Notified"),
        "{sel:#?}"
    );

    // Semaphore and mutex waiters, idle tasks on oneshot channels.
    for (func, line) in [
        ("semaphore_waiter", "sem.acquire().await"),
        ("mutex_waiter", "m.lock().await"),
    ] {
        let n = root(one(&d, func));
        is_async(n, func, line);
        let mut leaf = n;
        while let Some(c) = leaf.children.first() {
            leaf = c;
        }
        is_leaf(leaf, "tokio::sync::batch_semaphore::Acquire", "semaphore");
    }
    let idle = tasks_of(&d, "idle");
    assert_eq!(idle.len(), N_IDLE, "{ctx}: idle tasks");
    for t in idle {
        is_async(root(t), "idle", "let _ = rx.await;");
        is_leaf(
            only_child(root(t)),
            "tokio::sync::oneshot::Receiver",
            "oneshot",
        );
    }

    // A task awaiting a `spawn_blocking` closure: the blocking task (in no task list) is
    // listed, found through the join handle, as the closure it runs and the thread running it.
    let bw = one(&d, "blocking_waiter");
    let [blocking_id] = bw.awaits[..] else {
        panic!("{ctx}: blocking_waiter awaits one task: {bw:#?}");
    };
    let blocking = d
        .task(blocking_id)
        .unwrap_or_else(|| panic!("{ctx}: the blocking task {blocking_id} is not listed: {d}"));
    let b = root(blocking);
    assert_eq!(
        (b.frame.kind, b.frame.function.as_str()),
        (FrameKind::Closure, &*format!("{PREFIX}blocking_waiter")),
        "{ctx}: {blocking:#?}"
    );
    assert!(
        b.frame
            .annotation()
            .as_deref()
            .is_some_and(|n| n.starts_with("spawn_blocking closure, running on thread ")),
        "{ctx}: {blocking:#?}"
    );
    // Its thread's native stack says where in the closure it is (the line it called from)
    // and what it runs there: the sleep it called, down to the leaf the thread waits in.
    assert_eq!(
        b.frame.location.as_ref().map(|l| l.line),
        Some(line("        std::thread::sleep(LONG);")),
        "{ctx}: the closure's line: {blocking:#?}"
    );
    let mut n = b;
    while let Some(c) = n.children.first() {
        n = c;
    }
    assert!(
        !b.children.is_empty() && n.frame.kind == FrameKind::Leaf,
        "{ctx}: what the closure runs: {blocking:#?}"
    );

    // The second runtime (current_thread, on its own thread) runs a LocalSet: two
    // `spawn_local` tasks (in the LocalSet's own list, found through its `block_on` root
    // future on that thread's stack) and one `tokio::spawn`ed (in the runtime's list).
    let local = tasks_of(&d, "local_leaf");
    assert_eq!(local.len(), 3, "{ctx}: current_thread and LocalSet tasks");
    for t in local {
        let n = root(t);
        is_async(
            n,
            "local_leaf",
            "sleep(LONG + Duration::from_secs(n)).await",
        );
        is_leaf(only_child(n), "tokio::time::sleep::Sleep", "s left");
    }
    assert!(d.notes.iter().any(|n| n.contains("2 runtimes")), "{ctx}");
    assert!(d.notes.iter().any(|n| n.contains("1 LocalSet")), "{ctx}");

    let unordered = root(one(&d, "unordered_sleeps"));
    is_async(
        unordered,
        "unordered_sleeps",
        "while set.next().await.is_some()",
    );
    assert_eq!(unordered.frame.kind, FrameKind::AsyncFn);
    // Its FuturesUnordered (through `Next`): one child per future in the set.
    let set = only_child(unordered);
    assert!(
        set.frame
            .function
            .starts_with("futures_util::stream::futures_unordered::FuturesUnordered"),
        "{ctx}: {unordered:#?}"
    );
    assert_eq!(set.children.len(), 3, "{ctx}: {set:#?}");
    for c in &set.children {
        is_leaf(c, "tokio::time::sleep::Sleep", "s left");
    }
    // join_all: its three elements, the finished one completed.
    let all = root(one(&d, "join_all_sleeps"));
    is_async(
        all,
        "join_all_sleeps",
        "futures::future::join_all(sleeps).await",
    );
    let join = only_child(all);
    assert!(
        join.frame
            .function
            .starts_with("futures_util::future::join_all::JoinAll"),
        "{join:#?}"
    );
    assert_eq!(join.children.len(), 3, "{ctx}: {join:#?}");
    assert_eq!(
        join.children[0].frame.status,
        FrameStatus::Completed,
        "{join:#?}"
    );
    for c in &join.children[1..] {
        is_leaf(c, "tokio::time::sleep::Sleep", "s left");
    }

    // A JoinSet awaited with `join_next`: under tokio's `join_next` (a `poll_fn` borrowing
    // the set), the set with a join handle per member task; the task awaits both.
    let js_task = one(&d, "join_set_waiter");
    let js_root = root(js_task);
    is_async(
        js_root,
        "join_set_waiter",
        "while set.join_next().await.is_some()",
    );
    let set = only_child(only_child(js_root));
    assert!(
        set.frame
            .function
            .starts_with("tokio::task::join_set::JoinSet"),
        "{ctx}: {js_root:#?}"
    );
    assert_eq!(
        set.frame.annotation().as_deref(),
        Some("2 tasks"),
        "{ctx}: {set:#?}"
    );
    let mut members: Vec<u64> = tasks_of(&d, "set_member").iter().map(|t| t.id).collect();
    members.sort();
    assert_eq!(members.len(), 2, "{ctx}: the set's tasks");
    let mut held = Vec::new();
    for h in &set.children {
        is_leaf(
            h,
            "tokio::runtime::task::join::JoinHandle",
            "waiting on task ",
        );
        let note = h.frame.annotation().unwrap_or_default();
        held.push(
            note.trim_start_matches("waiting on task ")
                .parse::<u64>()
                .unwrap(),
        );
    }
    held.sort();
    assert_eq!(held, members, "{ctx}: {set:#?}");
    let mut awaits = js_task.awaits.clone();
    awaits.sort();
    assert_eq!(awaits, members, "{ctx}");

    // Two tasks awaiting clones of one `futures` `Shared` sleep: each shows the shared future
    // (with its holder count) and the sleep inside it.
    let shared = tasks_of(&d, "shared_waiter");
    assert_eq!(shared.len(), 2, "{ctx}: shared waiters");
    for t in shared {
        let n = root(t);
        is_async(n, "shared_waiter", "s.await");
        let s = only_child(n);
        assert!(
            s.frame
                .function
                .starts_with("futures_util::future::future::shared::Shared"),
            "{ctx}: {n:#?}"
        );
        assert_eq!(
            s.frame.annotation().as_deref(),
            Some("shared by 2 holders"),
            "{ctx}: {s:#?}"
        );
        is_leaf(only_child(s), "tokio::time::sleep::Sleep", "s left");
    }

    // tokio's reference count, read the same in every version: every idle task waits on
    // something that wakes it, so each has a waker counted, and none is diagnosed never woken.
    for t in d.tasks.iter().filter(|t| t.state == TaskState::Suspended) {
        assert!(
            t.wakers.is_some_and(|n| n >= 1),
            "{ctx}: task {} has its waker counted: {:?}\n{d}",
            t.id,
            t.wakers
        );
    }
    assert!(d.diagnoses.is_empty(), "{ctx}: {:?}", d.diagnoses);

    t.assert_running_and_echoes();
}

/// A version outside the range: its owned task list is `OwnedTasks.inner: Mutex<…>` (≤ 1.34).
const UNSUPPORTED: &str = "1.32.0";

#[test]
fn every_supported_tokio_version_reads_correctly() {
    for v in VERSIONS {
        check_version(v, "dev");
        check_version(v, "dev-full");
    }
    // An older layout: one clear line naming the version and the missing member, and the
    // target runs on.
    let exe = build_target(UNSUPPORTED, "dev");
    let t = Target::start(&exe, &["1"]);
    let out = tasktrace(&["attach", &t.pid.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "tasktrace: unsupported tokio 1.32: missing OwnedTasks.list"
    );
    t.assert_running_and_echoes();
}

/// The LocalSet of the second runtime is found on every attach, not by chance: its
/// `RunUntil` is looked for among every plausible root future on its thread's stack (a stale
/// copy of another future scored higher about half the time under tokio `full`).
#[test]
fn the_local_set_is_found_on_every_attach() {
    let exe = build_target("1.54.1", "dev-full");
    let t = Target::start(&exe, &[&N_IDLE.to_string()]);
    let pid = t.pid.to_string();
    for i in 0..20 {
        let d = dump_of(&tasktrace(&["attach", &pid, "--json"]));
        assert_eq!(
            tasks_of(&d, "local_leaf").len(),
            3,
            "attach {i}: the LocalSet's tasks and the runtime's: {d}"
        );
        assert!(
            d.notes
                .iter()
                .any(|n| n == "1 LocalSet (found on block_on stacks)"),
            "attach {i}: {:?}",
            d.notes
        );
        // Whole: a thread without a LocalSet is not said to have an unreadable one.
        assert!(d.partial.is_empty(), "attach {i}: {:?}", d.partial);
    }
    t.assert_running_and_echoes();
}

/// 10,000 idle tasks: every one read, the dump says how long the target was stopped, and the
/// target runs on. The times are printed (for docs/BENCHMARKS.md), never asserted.
#[test]
fn ten_thousand_tasks_are_read_with_the_stopped_time_reported() {
    const N: usize = 10_000;
    let exe = build_target("1.54.1", "dev");
    let t = Target::start(&exe, &[&N.to_string()]);
    let started = std::time::Instant::now();
    let d = dump_of(&tasktrace(&["attach", &t.pid.to_string(), "--json"]));
    let total = started.elapsed();
    let idle = tasks_of(&d, "idle");
    assert_eq!(idle.len(), N);
    for task in idle.iter().step_by(997) {
        is_async(root(task), "idle", "let _ = rx.await;");
    }
    let stopped = d
        .notes
        .iter()
        .find(|n| n.contains("was stopped for"))
        .expect("the stopped time in the notes");
    eprintln!(
        "{N} tasks: attach + full dump {:.0} ms; {stopped}",
        total.as_secs_f64() * 1e3
    );
    t.assert_running_and_echoes();
}

#[test]
fn a_tokio_unstable_build_shows_where_each_task_was_spawned() {
    let exe = build_target("1.54.1", "dev-unstable");
    let t = Target::start(&exe, &[&N_IDLE.to_string()]);
    let d = dump_of(&tasktrace(&["attach", &t.pid.to_string(), "--json"]));
    for (func, spawn) in [
        ("foo", "tokio::spawn(foo())"),
        ("wait_for", "tokio::spawn(wait_for(joined))"),
        ("select_loop", "tokio::spawn(select_loop("),
    ] {
        let task = one(&d, func);
        let at = task
            .spawned_at
            .as_ref()
            .unwrap_or_else(|| panic!("{func}: no spawn location: {task:#?}"));
        assert!(at.file.ends_with("src/main.rs"), "{func}: {at:?}");
        assert_eq!(at.line, line(spawn), "{func}: {at:?}");
        assert!(at.column.is_some_and(|c| c > 0), "{func}: {at:?}");
    }
    // The trees read as in a plain build.
    is_async(root(one(&d, "foo")), "foo", "bar().await + 1");
    t.assert_running_and_echoes();
    drop(t);

    // A plain build keeps no spawn location: none is made up.
    let plain = build_target("1.54.1", "dev");
    let t = Target::start(&plain, &[&N_IDLE.to_string()]);
    let d = dump_of(&tasktrace(&["attach", &t.pid.to_string(), "--json"]));
    assert!(one(&d, "foo").spawned_at.is_none());
}
