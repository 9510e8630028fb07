//! `tasktrace::dump()` over real runtimes: every registered task is listed with its name,
//! spawn site, parent, state and trace; stuck, busy and blocked runtimes never make it hang;
//! join handles awaiting each other are reported as a deadlock; tasks leave the registry when
//! they finish or are dropped; tasks of a non-tokio executor are dumped too.
//!
//! Tests of this file run concurrently in one process and share the registry: each asserts
//! only about the tasks it created.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tasktrace::model::{Dump, Task, TaskState, Trace};
use tasktrace::{dump, dump_with, DumpOptions};
use tokio::sync::{mpsc, Notify};

const FILE: &str = "tests/dump.rs";

async fn sleeper() {
    tokio::time::sleep(Duration::from_secs(600)).await
}

async fn receiver(mut rx: mpsc::Receiver<u32>) {
    rx.recv().await;
}

async fn notified(notify: Arc<Notify>) {
    notify.notified().await
}

async fn joiner(notify: Arc<Notify>) {
    tokio::join!(sleeper(), notified(notify));
}

async fn yielder(counter: Arc<AtomicU64>) {
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
    }
}

/// Every function name of the trace (demangled, as captured).
fn functions(trace: &Trace) -> Vec<String> {
    fn walk(nodes: &[tasktrace::model::Node], out: &mut Vec<String>) {
        for n in nodes {
            out.push(n.frame.function.clone());
            walk(&n.children, out);
        }
    }
    let mut out = Vec::new();
    walk(&trace.roots, &mut out);
    out
}

/// True when the trace has a frame of this test file, and — when the build keeps names of
/// inlined frames — a frame of the function `name`.
fn shows(trace: &Trace, name: &str) -> bool {
    let in_file = trace.roots.iter().any(|r| {
        let mut stack = vec![r];
        while let Some(n) = stack.pop() {
            if n.frame
                .location
                .as_ref()
                .is_some_and(|l| l.file.ends_with(FILE))
            {
                return true;
            }
            stack.extend(n.children.iter());
        }
        false
    });
    in_file
        && (!support::has_names()
            || functions(trace)
                .iter()
                .any(|f| support::short_name(f) == name))
}

fn task(dump: &Dump, id: u64) -> &Task {
    dump.task(id)
        .unwrap_or_else(|| panic!("task {id} missing from the dump:\n{dump}"))
}

fn spawned_at(t: &Task) -> (String, u32) {
    let at = t.spawned_at.as_ref().expect("spawn site");
    (at.file.clone(), at.line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_of_several_shapes_a_named_one_and_a_stuck_one() {
    let notify = Arc::new(Notify::new());
    let mut senders = Vec::new();
    // id -> (expected function, spawn line)
    let mut expected: HashMap<u64, (&str, u32)> = HashMap::new();
    let mut handles = Vec::new();
    for i in 0..200 {
        let (h, line, shape) = match i % 4 {
            0 => (tasktrace::spawn(sleeper()), line!(), "sleeper"),
            1 => {
                let (tx, rx) = mpsc::channel(1);
                senders.push(tx);
                (tasktrace::spawn(receiver(rx)), line!(), "receiver")
            }
            2 => {
                let n = notify.clone();
                (tasktrace::spawn(notified(n)), line!(), "notified")
            }
            _ => {
                let n = notify.clone();
                (tasktrace::spawn(joiner(n)), line!(), "joiner")
            }
        };
        expected.insert(h.id(), (shape, line));
        handles.push(h);
    }
    let (named, named_line) = (tasktrace::spawn_named("the named one", sleeper()), line!());

    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (stuck, stuck_line) = (
        tasktrace::spawn(async move {
            tokio::task::yield_now().await;
            started_tx.send(()).unwrap();
            // Blocking inside poll: one of the two workers is gone for 3 s.
            std::thread::sleep(Duration::from_secs(3));
        }),
        line!() - 6,
    );
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let dump = dump().await;
    eprintln!(
        "dump of {} tasks took {:?}",
        dump.tasks.len(),
        started.elapsed()
    );

    for (&id, &(shape, line)) in &expected {
        let t = task(&dump, id);
        assert_eq!(t.name, None);
        let (file, at) = spawned_at(t);
        assert!(file.ends_with(FILE), "{file}");
        assert_eq!(at, line, "spawn line of a {shape} task");
        // Idle, or not yet polled (or in its first poll) when the dump began.
        assert!(!matches!(t.state, TaskState::Unknown), "{}", t.header());
        assert!(t.polls.is_some());
        assert!(
            shows(&t.trace, shape),
            "{shape} task:\n{}\n{}",
            t.header(),
            t.trace
        );
        assert_eq!(t.error, None, "{}", t.header());
    }
    let n = task(&dump, named.id());
    assert_eq!(n.name.as_deref(), Some("the named one"));
    assert_eq!(spawned_at(n), (spawned_at(n).0, named_line));
    assert!(shows(&n.trace, "sleeper"));

    let s = task(&dump, stuck.id());
    assert_eq!(spawned_at(s).1, stuck_line);
    assert!(
        matches!(s.state, TaskState::Running { .. }),
        "{}",
        s.header()
    );
    assert!(s.trace.is_empty());
    assert!(
        s.error.as_deref().unwrap().contains("inside poll"),
        "{:?}",
        s.error
    );

    let text = dump.to_string();
    assert!(text.contains(&format!("task {} \"the named one\"", named.id())));
    assert!(text.contains(&format!("task {} — running", stuck.id())));

    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&dump).unwrap()).expect("valid JSON");
    let tasks = json["tasks"].as_array().expect("top-level tasks array");
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    for id in expected.keys().chain([named.id(), stuck.id()].iter()) {
        assert!(ids.contains(id), "task {id} missing from JSON");
    }
    let stuck_json = tasks.iter().find(|t| t["id"] == stuck.id()).unwrap();
    assert_eq!(stuck_json["state"], "running");
    let named_json = tasks.iter().find(|t| t["id"] == named.id()).unwrap();
    assert_eq!(named_json["name"], "the named one");
    assert_eq!(named_json["state"], "idle");
    assert!(named_json["trace"]["roots"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));

    for h in &handles {
        h.abort();
    }
    named.abort();
    stuck.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_is_the_spawning_task() {
    let (parent, parent_line) = (
        tasktrace::spawn(async {
            let child = tasktrace::spawn(sleeper());
            let id = child.id();
            // Keep the child alive past the parent's end.
            std::mem::forget(child);
            id
        }),
        line!() - 7,
    );
    let parent_id = parent.id();
    let child_id = parent.await.unwrap();
    let dump = dump().await;
    assert!(dump.task(parent_id).is_none(), "the finished parent left");
    let child = task(&dump, child_id);
    assert_eq!(child.parent, Some(parent_id));
    assert_eq!(spawned_at(child).1, parent_line + 1);
    assert!(child.header().contains(&format!("by task {parent_id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_runtime_dumped_back_to_back_does_not_freeze() {
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..250)
        .map(|_| tasktrace::spawn(yielder(counter.clone())))
        .collect();
    tokio::task::yield_now().await;
    for round in 0..5 {
        let before = counter.load(Ordering::Relaxed);
        let dump = dump().await;
        let mut captured = 0;
        for h in &handles {
            let t = task(&dump, h.id());
            if shows(&t.trace, "yielder") {
                captured += 1;
            } else {
                // Not captured: it must say why.
                assert!(t.error.is_some(), "{}", t.header());
            }
        }
        eprintln!("round {round}: {captured}/250 captured");
        assert!(
            captured >= 200,
            "round {round}: only {captured} of 250 busy tasks captured"
        );
        assert!(
            counter.load(Ordering::Relaxed) > before,
            "the busy tasks kept running during the dump"
        );
    }
    for h in handles {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_with_one_worker_blocked_ends_by_its_deadline() {
    let (blocked_tx, blocked_rx) = std::sync::mpsc::channel();
    let blocker = tasktrace::spawn_named("blocker", async move {
        tokio::task::yield_now().await;
        blocked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(4));
    });
    let sleepers: Vec<_> = (0..100).map(|_| tasktrace::spawn(sleeper())).collect();
    tokio::task::spawn_blocking(move || blocked_rx.recv().unwrap())
        .await
        .unwrap();
    // Dumped from a task on the one worker left, with a deadline shorter than the block, and
    // no early cut-off: only the deadline can end it.
    let options = DumpOptions::default()
        .deadline(Duration::from_millis(500))
        .stuck_after(Duration::from_secs(3600));
    let dump = tokio::spawn(dump_with(options)).await.unwrap();
    let b = task(&dump, blocker.id());
    assert!(
        matches!(b.state, TaskState::Running { .. }),
        "{}",
        b.header()
    );
    assert!(b.error.as_deref().unwrap().contains("not captured"));
    assert!(dump
        .notes
        .iter()
        .any(|n| n.contains("could not be captured")));
    for s in &sleepers {
        assert!(shows(&task(&dump, s.id()).trace, "sleeper"));
    }
    for s in sleepers {
        s.abort();
    }
    blocker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_awaiting_each_other_are_a_deadlock() {
    let (to_a, from_b) = tokio::sync::oneshot::channel::<tasktrace::JoinHandle<()>>();
    let (to_b, from_a) = tokio::sync::oneshot::channel::<tasktrace::JoinHandle<()>>();
    let a = tasktrace::spawn_named("a", async move {
        let _ = from_b.await.unwrap().await;
    });
    let b = tasktrace::spawn_named("b", async move {
        let _ = from_a.await.unwrap().await;
    });
    let (a_id, b_id) = (a.id(), b.id());
    // A third task awaits a fourth one: an edge, not a cycle.
    let (to_waiter, from_extra) = tokio::sync::oneshot::channel::<tasktrace::JoinHandle<()>>();
    let waiter = tasktrace::spawn(async move { from_extra.await.unwrap().await.is_err() });
    let extra = tasktrace::spawn(sleeper());
    let extra_id = extra.id();
    to_a.send(b).ok().unwrap();
    to_b.send(a).ok().unwrap();
    to_waiter.send(extra).ok().unwrap();

    // The handles reach the tasks asynchronously: dump until both edges are seen.
    let mut found = None;
    for _ in 0..200 {
        let dump = dump().await;
        if dump.deadlocks.iter().any(|c| c.contains(&a_id)) {
            found = Some(dump);
            break;
        }
        tokio::task::yield_now().await;
    }
    let dump = found.expect("the cycle a <-> b was reported");
    let mut cycle = vec![a_id, b_id];
    cycle.sort();
    assert!(dump.deadlocks.contains(&cycle), "{:?}", dump.deadlocks);
    assert_eq!(task(&dump, a_id).awaits, vec![b_id]);
    assert_eq!(task(&dump, b_id).awaits, vec![a_id]);
    let text = dump.to_string();
    assert!(
        text.contains(&format!("DEADLOCK: task {} -> task {}", cycle[0], cycle[1])),
        "{text}"
    );
    assert!(text.contains(&format!("awaits task {b_id}")));
    // Awaiting a task that is not in a cycle is an edge, not a deadlock.
    assert_eq!(task(&dump, waiter.id()).awaits, vec![extra_id]);
    assert!(!dump.deadlocks.iter().any(|c| c.contains(&waiter.id())));
    let json = serde_json::to_value(&dump).unwrap();
    assert!(json["deadlocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == &serde_json::json!(cycle)));
    waiter.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_leave_the_registry_when_they_finish_or_are_dropped() {
    let done = tasktrace::spawn(async { 1 });
    let done_id = done.id();
    assert_eq!(done.await.unwrap(), 1);

    let aborted = tasktrace::spawn(sleeper());
    let aborted_id = aborted.id();
    tokio::task::yield_now().await;
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());

    let (never_polled, handle) = tasktrace::traced(sleeper());
    let never_polled_id = handle.id();
    let (kept, kept_handle) = tasktrace::traced(sleeper());
    // `kept` never answers: short deadlines keep the other tests' dumps from waiting on it.
    let quick = || dump_with(DumpOptions::default().deadline(Duration::from_millis(100)));
    let before = quick().await;
    assert!(before.task(never_polled_id).is_some());
    assert!(before.task(kept_handle.id()).is_some());
    drop(never_polled);
    assert!(handle.is_closed());

    let after = quick().await;
    for id in [done_id, aborted_id, never_polled_id] {
        assert!(after.task(id).is_none(), "task {id} still listed");
    }
    // Never polled, never handed to an executor: listed, without a trace, and why.
    let k = task(&after, kept_handle.id());
    assert!(matches!(k.state, TaskState::Scheduled), "{}", k.header());
    assert!(k.error.as_deref().unwrap().contains("never polled"));
    drop(kept);
}

#[test]
fn tasks_of_a_non_tokio_executor_are_dumped_with_their_trees() {
    use futures::channel::{mpsc as fmpsc, oneshot as foneshot};
    use futures::task::LocalSpawnExt;
    use futures::StreamExt;

    async fn consume(mut rx: fmpsc::Receiver<u32>) -> u32 {
        rx.next().await.unwrap_or(0)
    }
    async fn wait_both(a: foneshot::Receiver<()>, b: fmpsc::Receiver<u32>) {
        let _ = futures::join!(a, consume(b));
    }

    let (ids_tx, ids_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = foneshot::channel::<()>();
    let executor = std::thread::spawn(move || {
        let mut pool = futures::executor::LocalPool::new();
        let spawner = pool.spawner();
        let mut keep = Vec::new();
        for i in 0..10 {
            let (tx, rx) = fmpsc::channel(1);
            let (otx, orx) = foneshot::channel();
            let (fut, handle) = if i % 2 == 0 {
                let (f, h) = tasktrace::traced_named(format!("consumer {i}"), consume(rx));
                (
                    futures::FutureExt::boxed_local(async move {
                        f.await;
                    }),
                    h,
                )
            } else {
                let (f, h) = tasktrace::traced(wait_both(orx, rx));
                (futures::FutureExt::boxed_local(f), h)
            };
            spawner.spawn_local(fut).unwrap();
            ids_tx.send((handle.id(), i)).unwrap();
            keep.push((tx, otx));
        }
        drop(ids_tx);
        pool.run_until(async {
            let _ = stop_rx.await;
        });
        drop(keep);
    });
    let ids: Vec<(u64, i32)> = ids_rx.iter().collect();
    // Dumped from another non-tokio executor: no runtime anywhere.
    let dump = futures::executor::block_on(tasktrace::dump());
    for &(id, i) in &ids {
        let t = task(&dump, id);
        if i % 2 == 0 {
            assert_eq!(t.name, Some(format!("consumer {i}")));
            assert!(shows(&t.trace, "consume"), "{}\n{}", t.header(), t.trace);
        } else {
            assert!(shows(&t.trace, "wait_both"), "{}\n{}", t.header(), t.trace);
            // Both branches of the join are in the tree.
            assert!(shows(&t.trace, "consume"), "{}\n{}", t.header(), t.trace);
        }
        assert!(spawned_at(t).0.ends_with(FILE));
    }
    stop_tx.send(()).unwrap();
    executor.join().unwrap();
    let after = futures::executor::block_on(tasktrace::dump());
    for &(id, _) in &ids {
        assert!(after.task(id).is_none(), "dropped with the executor");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_a_sample_dump() {
    async fn handle_request(notify: Arc<Notify>) {
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
    async fn server(notify: Arc<Notify>) {
        let child = tasktrace::spawn_named("request 1", handle_request(notify));
        let _ = child.await;
    }
    let notify = Arc::new(Notify::new());
    let server = tasktrace::spawn_named("server", server(notify.clone()));
    let dump = loop {
        let d = dump().await;
        // The server may spawn its child during the dump: wait for a dump that has both.
        let child = d.task(server.id()).and_then(|t| t.awaits.first());
        if child.is_some_and(|&c| d.task(c).is_some()) {
            break d;
        }
        tokio::task::yield_now().await;
    };
    let server_task = task(&dump, server.id());
    let child_id = server_task.awaits[0];
    let child = task(&dump, child_id);
    assert_eq!(child.parent, Some(server.id()));
    assert_eq!(child.name.as_deref(), Some("request 1"));
    assert!(shows(&child.trace, "handle_request"));
    let mine = Dump::new(vec![server_task.clone(), child.clone()]);
    println!("{mine}");
    println!("{}", serde_json::to_string(&mine).unwrap());
    notify.notify_waiters();
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn dump_from_a_task_on_a_current_thread_runtime_lists_itself_too() {
    let sleepers: Vec<_> = (0..50).map(|_| tasktrace::spawn(sleeper())).collect();
    let (dumper, dumper_line) = (
        tasktrace::spawn_named("dumper", async { tasktrace::dump().await }),
        line!() - 1,
    );
    let dumper_id = dumper.id();
    let dump = dumper.await.unwrap();
    for s in &sleepers {
        let t = task(&dump, s.id());
        assert!(shows(&t.trace, "sleeper"), "{}\n{}", t.header(), t.trace);
        // Spawned from the test's body, which is no registered task.
        assert_eq!(t.parent, None);
    }
    // The dumping task was inside its poll when the dump began, and answered on its next one.
    let me = task(&dump, dumper_id);
    assert_eq!(spawned_at(me).1, dumper_line);
    assert!(
        matches!(me.state, TaskState::Running { .. }),
        "{}",
        me.header()
    );
    assert!(!me.trace.is_empty(), "{}", me.header());
    if support::has_names() {
        assert!(
            functions(&me.trace).iter().any(|f| f.contains("dump_with")),
            "{}",
            me.trace
        );
    }
    for s in sleepers {
        s.abort();
    }
}

/// Pending on its first poll without keeping the waker (counting that poll in `first_polls`);
/// ready on any later poll. Only a dump's wake-up polls it again: it then finishes inside the
/// capturing poll.
struct FinishesWhenAsked {
    polled: bool,
    first_polls: Arc<AtomicU64>,
}

impl std::future::Future for FinishesWhenAsked {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.polled {
            return std::task::Poll::Ready(());
        }
        self.polled = true;
        self.first_polls.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Pending
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_finishing_during_the_dump_are_left_out_and_noted() {
    let first_polls = Arc::new(AtomicU64::new(0));
    let finishing: Vec<_> = (0..20)
        .map(|_| {
            tasktrace::spawn(FinishesWhenAsked {
                polled: false,
                first_polls: first_polls.clone(),
            })
        })
        .collect();
    let staying = tasktrace::spawn(sleeper());
    // Dump only once every finishing task has had its first poll: a dump whose wake-up met a
    // task's first poll would see it pending (and list it) and then have it finish after the
    // answer, on the poll its wake-up queued (seen on a loaded CI machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while first_polls.load(Ordering::SeqCst) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 20 tasks were polled within 30 s",
            first_polls.load(Ordering::SeqCst)
        );
        tokio::task::yield_now().await;
    }
    // A deadline long enough for every woken task to answer: a task the dump gave up on
    // would finish after it, listed by it (a busy machine once made 100 ms too short).
    let d = dump_with(DumpOptions::default().deadline(Duration::from_secs(10))).await;
    for h in &finishing {
        assert!(d.task(h.id()).is_none(), "finished task {} listed", h.id());
    }
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("finished during the dump")),
        "{:?}",
        d.notes
    );
    assert!(shows(&task(&d, staying.id()).trace, "sleeper"));
    // Each left-out task did finish: on the poll the dump's wake-up gave it.
    for h in finishing {
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("a task the dump left out did not finish within 10 s")
            .unwrap();
    }
    staying.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dumps_are_each_answered() {
    let tasks: Vec<_> = (0..100).map(|_| tasktrace::spawn(sleeper())).collect();
    let (a, b, c) = tokio::join!(
        dump(),
        tokio::spawn(dump()),
        tokio::task::spawn_blocking(|| futures::executor::block_on(dump()))
    );
    for d in [a, b.unwrap(), c.unwrap()] {
        for t in &tasks {
            assert!(shows(&task(&d, t.id()).trace, "sleeper"));
        }
    }
    for t in tasks {
        t.abort();
    }
}
