//! Everyday shapes from crates.io (`testdata/framework-targets`' everyday-target): the
//! connection pools of sqlx on SQLite, deadpool and bb8 (each a pool of one connection held
//! by one task while three wait), a semaphore, an `RwLock`, tokio-stream's `chunks_timeout`
//! and `spawn_blocking`; in debug and release builds, read three ways: `tasktrace attach`, the
//! program's own in-process snapshot (the `snapshot` feature), and `tasktrace core` on a
//! gcore.
//!
//! What is asserted is what a person debugging a service stuck on its pool asks: which task
//! holds the connection the waiters want, and how big the pool is — each waiter's leaf names
//! the holder and its header awaits it; that a stream's expired timeout, which nothing polls,
//! is not shown as something its task waits on; and that a `spawn_blocking` closure an async
//! fn awaits is a task, with its line and what its thread runs. Every wait has a deadline;
//! nothing asserts on timing.

mod support;

const SOURCE: &str = include_str!("../../../testdata/framework-targets/src/bin/everyday-target.rs");

use support::frameworks::*;
use support::*;
use tasktrace_model::{Dump, FrameKind, Node, SampledDiagnosis, Task, WaitOn};

/// Each pool: the async fn holding its connection, the one waiting, the waiter's leaf type
/// and the library's name in the note.
const POOLS: [(&str, &str, &str, &str); 3] = [
    (
        "sqlx_slow_request",
        "sqlx_waiting_request",
        "tokio::sync::batch_semaphore::Acquire",
        "sqlx",
    ),
    (
        "deadpool_slow_request",
        "deadpool_waiting_request",
        "tokio::sync::batch_semaphore::Acquire",
        "deadpool",
    ),
    (
        "bb8_slow_request",
        "bb8_waiting_request",
        "tokio::sync::notify::Notified",
        "bb8",
    ),
];

/// The one task rooted at the target's async fn `func`.
fn only_task<'d>(d: &'d Dump, func: &str, what: &str) -> &'d Task {
    // Only its async fn: a `spawn_blocking` closure's task is named by that fn too.
    let mut tasks = rooted_at(d, &format!("everyday_target::{func}"));
    tasks.retain(|t| root_of(t).frame.kind == FrameKind::AsyncFn);
    assert_eq!(tasks.len(), 1, "{what}: one task at {func}: {d:#?}");
    tasks[0]
}

/// The id other tasks' notes and `awaits` use for `t`.
fn id_of(t: &Task) -> u64 {
    t.tokio_id.unwrap_or(t.id)
}

/// Three tasks wait for each pool's one connection: each waiter's leaf (under its own async
/// fn, down the library's chain) names the holder and the pool's size, and it awaits the
/// holder.
fn check_pools(d: &Dump, what: &str) {
    for (holder, waiter, leaf, pool) in POOLS {
        let h = only_task(d, holder, what);
        let waiters = rooted_at(d, &format!("everyday_target::{waiter}"));
        assert_eq!(waiters.len(), 3, "{what}: three tasks at {waiter}: {d:#?}");
        let want = format!(
            "waiting for a {pool} connection (1 of 1 in use: task {})",
            id_of(h)
        );
        for w in waiters {
            let root = root_of(w);
            assert!(
                root.frame.kind == FrameKind::AsyncFn,
                "{what}: {waiter} is the waiter's root: {w:#?}"
            );
            let leaves: Vec<&Node> = all_nodes(&root.children)
                .into_iter()
                .filter(|n| n.frame.kind == FrameKind::Leaf && n.frame.function == leaf)
                .collect();
            assert_eq!(leaves.len(), 1, "{what}: one {leaf} under {waiter}: {w:#?}");
            assert_eq!(
                leaves[0].frame.annotation().as_deref(),
                Some(want.as_str()),
                "{what}: the {pool} waiter's leaf: {w:#?}"
            );
            assert!(
                w.awaits.contains(&id_of(h)),
                "{what}: the {pool} waiter awaits its holder {}: {w:#?}",
                id_of(h)
            );
        }
        // The holder waits on something else (its request), not on a connection.
        let notes: Vec<String> = all_nodes(&h.trace.roots)
            .iter()
            .filter_map(|n| n.frame.annotation())
            .collect();
        assert!(
            notes.iter().all(|n| !n.contains("connection")),
            "{what}: the holder {holder} waits for no connection: {h:#?}"
        );
    }
}

/// The batcher waits for its next item only: the timer of its last chunk, expired long ago,
/// is not under it (a core has no clock to tell: not checked there).
fn check_batcher(d: &Dump, what: &str) {
    let b = only_task(d, "batcher", what);
    let leaves: Vec<&Node> = all_nodes(&b.trace.roots)
        .into_iter()
        .filter(|n| n.children.is_empty())
        .collect();
    assert!(
        leaves
            .iter()
            .all(|n| n.frame.function != "tokio::time::sleep::Sleep"),
        "{what}: no expired timer under the batcher: {b:#?}"
    );
    assert!(
        leaves
            .iter()
            .any(|n| n.frame.annotation().as_deref() == Some("waiting on mpsc receive")),
        "{what}: the batcher waits for its next item: {b:#?}"
    );
}

/// The task awaiting a `spawn_blocking` closure awaits the blocking task, which is listed:
/// the closure (named by its async fn) at the line it waits on, on its thread, over what that
/// thread runs down to a leaf.
fn check_blocking(d: &Dump, what: &str) {
    let w = only_task(d, "blocking_report", what);
    let [id] = w.awaits[..] else {
        panic!("{what}: blocking_report awaits one task: {w:#?}")
    };
    let b = d
        .tasks
        .iter()
        .find(|t| id_of(t) == id)
        .unwrap_or_else(|| panic!("{what}: the blocking task {id} is listed: {d:#?}"));
    let closure = root_of(b);
    assert_eq!(
        (closure.frame.kind, closure.frame.function.as_str()),
        (FrameKind::Closure, "everyday_target::blocking_report"),
        "{what}: {b:#?}"
    );
    assert!(
        closure
            .frame
            .annotation()
            .as_deref()
            .is_some_and(|n| n.starts_with("spawn_blocking closure, running on thread ")),
        "{what}: {b:#?}"
    );
    assert_eq!(
        closure.frame.location.as_ref().map(|l| l.line),
        Some(line_in(SOURCE, "let first = rx.recv().unwrap_or(0);")),
        "{what}: the closure's line: {b:#?}"
    );
    let mut n = closure;
    while let Some(c) = n.children.first() {
        n = c;
    }
    assert!(
        !closure.children.is_empty() && n.frame.kind == FrameKind::Leaf,
        "{what}: what the blocking thread runs: {b:#?}"
    );
}

/// The semaphore's waiter names both permit holders (either may let go: it awaits neither);
/// the RwLock's writer awaits both readers.
fn check_permits_and_readers(d: &Dump, what: &str) {
    for (holder, waiter, awaited, lock) in [
        ("permit_holder", "permit_waiter", false, "semaphore acquire"),
        ("reader", "writer", true, "RwLock write"),
    ] {
        let mut held: Vec<u64> = rooted_at(d, &format!("everyday_target::{holder}"))
            .iter()
            .map(|t| id_of(t))
            .collect();
        held.sort_unstable();
        assert_eq!(held.len(), 2, "{what}: two {holder} tasks: {d:#?}");
        let w = only_task(d, waiter, what);
        let leaf = only_child(root_of(w));
        let want = format!(
            "waiting on {lock}, held by task {}, task {}",
            held[0], held[1]
        );
        assert_eq!(
            leaf.frame.annotation().as_deref(),
            Some(want.as_str()),
            "{what}: {w:#?}"
        );
        let mut awaits = w.awaits.clone();
        awaits.sort_unstable();
        assert_eq!(
            awaits == held,
            awaited,
            "{what}: what {waiter} awaits: {w:#?}"
        );
    }
}

/// Over consecutive samples (`top --once`), each task holding what others wait for while it
/// waits itself is diagnosed with its waiters, what they wait for and its own await: the pool
/// connections' holders, the permit holders, the readers — and no other task is.
fn check_held_while_waiting(live: &Dump, pid: &str, what: &str) {
    let out = tasktrace(&[
        "top",
        pid,
        "--once",
        "--samples",
        "5",
        "--interval",
        "0.4",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{what}: {out:?}");
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).expect("top's JSON");
    let found: Vec<SampledDiagnosis> =
        serde_json::from_value(table["sampled_diagnoses"].clone()).expect("sampled diagnoses");
    let mut holders = Vec::new();
    let mut expect = |holder: &str, waiter: &str, on: WaitOn| {
        for h in rooted_at(live, &format!("everyday_target::{holder}")) {
            let mut waiters: Vec<u64> = rooted_at(live, &format!("everyday_target::{waiter}"))
                .iter()
                .filter(|t| root_of(t).frame.kind == FrameKind::AsyncFn)
                .map(|t| id_of(t))
                .collect();
            waiters.sort_unstable();
            holders.push((id_of(h), holder.to_string(), waiters, on));
        }
    };
    expect(
        "sqlx_slow_request",
        "sqlx_waiting_request",
        WaitOn::PoolConnection,
    );
    expect(
        "deadpool_slow_request",
        "deadpool_waiting_request",
        WaitOn::PoolConnection,
    );
    expect(
        "bb8_slow_request",
        "bb8_waiting_request",
        WaitOn::PoolConnection,
    );
    expect("permit_holder", "permit_waiter", WaitOn::Semaphore);
    expect("reader", "writer", WaitOn::RwLockWrite);
    assert_eq!(holders.len(), 7, "{what}: {live}");
    for (id, function, waiters, on) in &holders {
        let d = found.iter().find(|d| d.task() == *id).unwrap_or_else(|| {
            panic!("{what}: no diagnosis of {function}'s task {id}: {found:#?}")
        });
        match d {
            SampledDiagnosis::HeldWhileWaiting {
                waiters: seen,
                held,
                waits,
                function: f,
                samples,
                ..
            } => {
                assert_eq!(seen, waiters, "{what}: {d:#?}");
                assert_eq!(held.on, *on, "{what}: {d:#?}");
                assert_eq!(waits.on, WaitOn::Notify, "{what}: {d:#?}");
                assert_eq!(
                    f.as_deref(),
                    Some(format!("everyday_target::{function}").as_str()),
                    "{what}: {d:#?}"
                );
                assert!(*samples >= 3, "{what}: {d:#?}");
                assert!(d.to_string().starts_with("HELD WHILE WAITING: "), "{d}");
            }
            other => panic!("{what}: {other:#?}"),
        }
    }
    assert_eq!(
        found.len(),
        holders.len(),
        "{what}: only the holders: {found:#?}"
    );
}

fn everyday(profile: &str) {
    let exe = build(profile).join("everyday-target");
    let exe = exe.to_str().unwrap();
    let mut t = Target::spawn(exe, &[]);
    t.wait_for("ready");
    let inside: Dump = serde_json::from_str(&t.wait_for("snapshot "))
        .unwrap_or_else(|e| panic!("the target's own snapshot is a dump: {e}"));
    check_pools(&inside, &format!("everyday {profile}, in-process snapshot"));
    check_permits_and_readers(&inside, &format!("everyday {profile}, in-process snapshot"));
    check_batcher(&inside, &format!("everyday {profile}, in-process snapshot"));
    check_blocking(&inside, &format!("everyday {profile}, in-process snapshot"));
    let pid = t.pid.to_string();
    let live = clean_dump(&["attach", &pid]);
    check_pools(&live, &format!("everyday {profile}, attach"));
    check_permits_and_readers(&live, &format!("everyday {profile}, attach"));
    check_batcher(&live, &format!("everyday {profile}, attach"));
    check_blocking(&live, &format!("everyday {profile}, attach"));
    check_held_while_waiting(&live, &pid, &format!("everyday {profile}, top"));
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("everyday-{profile}"));
    if let Some(core) = gcore(t.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe]);
        let _ = std::fs::remove_file(&core);
        check_pools(&d, &format!("everyday {profile}, core"));
        check_permits_and_readers(&d, &format!("everyday {profile}, core"));
        check_blocking(&d, &format!("everyday {profile}, core"));
    }
}

#[test]
fn everyday_dev() {
    everyday("dev");
}

#[test]
fn everyday_release() {
    everyday("release");
}
