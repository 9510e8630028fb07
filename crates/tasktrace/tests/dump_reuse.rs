//! A dump reuses the captures of the last one for tasks not polled since (`capture_cache`):
//! idle tasks are not woken again, a task that moved on is captured anew, and
//! `DumpOptions::fresh` wakes every task.
//!
//! Its own test binary, and its tests one at a time (`ONE_AT_A_TIME`): a dump of another test
//! running concurrently would poll these tasks and break the poll counts asserted here.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tasktrace::model::{Dump, Task};
use tasktrace::{dump, dump_with, DumpOptions};
use tokio::sync::oneshot;

const FILE: &str = "tests/dump_reuse.rs";

/// Held by each test for its whole run (the tests of a binary run concurrently).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn first_stage(rx: oneshot::Receiver<()>) {
    let _ = rx.await; // AWAIT-FIRST
}

async fn second_stage() {
    tokio::time::sleep(Duration::from_secs(600)).await // AWAIT-SECOND
}

async fn two_stages(rx: oneshot::Receiver<()>) {
    first_stage(rx).await;
    second_stage().await;
}

/// Counts the polls of the future it wraps.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicU64>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// The line of this file that holds `marker` in a comment.
fn line_of(marker: &str) -> u32 {
    let source = include_str!("dump_reuse.rs");
    let at = source
        .lines()
        .position(|l| l.ends_with(&format!("// {marker}")))
        .expect("marker in this file");
    at as u32 + 1
}

/// Whether a frame of this file in the task's trace is at `line`.
fn waits_at(task: &Task, line: u32) -> bool {
    fn any(nodes: &[support::UserNode], line: u32) -> bool {
        nodes
            .iter()
            .any(|n| n.line() == line || any(&n.children, line))
    }
    any(&support::project(&task.trace, FILE), line)
}

fn task(dump: &Dump, id: u64) -> &Task {
    dump.task(id)
        .unwrap_or_else(|| panic!("task {id} missing from the dump:\n{dump}"))
}

/// The tasks' poll counts once a dump has left all of them alone. (A dump's wake-up can reach a
/// task inside a poll, e.g. its first: tokio then polls it once more after that poll, after
/// the dump may have returned. A dump that polls none of the tasks wakes none, so after it
/// nothing of the dumps is left to poll them.)
async fn settled(tasks: &[(tasktrace::JoinHandle<()>, Arc<AtomicU64>)]) -> Vec<u64> {
    let counts = || -> Vec<u64> {
        tasks
            .iter()
            .map(|(_, p)| p.load(Ordering::SeqCst))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = counts();
    loop {
        let _ = dump().await;
        let after = counts();
        if after == before {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "dumps still poll the idle tasks after 10 s"
        );
        before = after;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tasks_are_not_woken_again_and_tasks_that_moved_on_are_captured_anew() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (first, second) = (line_of("AWAIT-FIRST"), line_of("AWAIT-SECOND"));
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (tx, rx) = oneshot::channel();
        let polls = Arc::new(AtomicU64::new(0));
        let handle = tasktrace::spawn(Counted {
            inner: Box::pin(two_stages(rx)),
            polls: polls.clone(),
        });
        senders.push(Some(tx));
        tasks.push((handle, polls));
    }

    // The first dump wakes every task and captures it.
    let d1 = dump().await;
    let polls_after_first = settled(&tasks).await;
    for (h, _) in &tasks {
        let t = task(&d1, h.id());
        assert!(waits_at(t, first), "{}\n{}", t.header(), t.trace);
    }

    // Not polled since: the next dumps reuse those captures, and leave the tasks alone.
    for _ in 0..3 {
        let d = dump().await;
        for ((h, p), &before) in tasks.iter().zip(&polls_after_first) {
            let t = task(&d, h.id());
            assert!(waits_at(t, first), "{}\n{}", t.header(), t.trace);
            assert_eq!(
                t.polls,
                Some(before),
                "the poll count shown is the current one"
            );
            assert_eq!(p.load(Ordering::SeqCst), before, "task {} woken", h.id());
        }
    }

    // Half the tasks move on to their second stage: they are polled, so captured anew.
    let moved: Vec<usize> = (0..tasks.len()).step_by(2).collect();
    for &i in &moved {
        let _ = senders[i].take().expect("sent once").send(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while moved
        .iter()
        .any(|&i| tasks[i].1.load(Ordering::SeqCst) == polls_after_first[i])
    {
        assert!(Instant::now() < deadline, "woken tasks not polled in 10 s");
        tokio::task::yield_now().await;
    }
    let d = dump().await;
    for (i, (h, _)) in tasks.iter().enumerate() {
        let t = task(&d, h.id());
        let line = if moved.contains(&i) { second } else { first };
        assert!(waits_at(t, line), "task {i}: {}\n{}", t.header(), t.trace);
    }

    // `fresh`: every task is woken and polled once more, and shows the same place.
    let before = settled(&tasks).await;
    let d = dump_with(DumpOptions::default().fresh(true)).await;
    for (i, ((h, p), before)) in tasks.iter().zip(before).enumerate() {
        assert_eq!(p.load(Ordering::SeqCst), before + 1, "task {i} polled once");
        let t = task(&d, h.id());
        let line = if moved.contains(&i) { second } else { first };
        assert!(waits_at(t, line), "task {i}: {}\n{}", t.header(), t.trace);
    }

    for (h, _) in tasks {
        h.abort();
    }
}

/// Pending on its first poll without keeping the waker; ready on any later poll.
struct PendingOnceWithoutWaker(bool);

impl Future for PendingOnceWithoutWaker {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        Poll::Pending
    }
}

/// A capturing poll that cloned no waker is not reused: nothing but a dump would ever poll
/// that task again, so the next dump asks it again (here it then finishes).
#[tokio::test(flavor = "current_thread")]
async fn a_capture_without_a_waker_clone_is_asked_again() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let handle = tasktrace::spawn(PendingOnceWithoutWaker(false));
    // Not polled yet (this thread has not yielded): the dump's wake-up is its first poll.
    let first = dump().await;
    let t = task(&first, handle.id());
    assert!(
        t.error
            .as_deref()
            .is_some_and(|e| e.contains("no leaf touched the waker")),
        "{}: {:?}",
        t.header(),
        t.error
    );
    assert!(!handle.is_finished());
    let second = dump().await;
    assert!(handle.is_finished(), "the second dump polled it again");
    assert!(
        second.task(handle.id()).is_none(),
        "finished during the dump"
    );
}
