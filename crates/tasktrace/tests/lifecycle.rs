//! A handle always answers: with a trace, or at once when the future is gone, or at its
//! deadline when the future is stuck inside poll or never polled. Nested traced futures can be
//! asked together, many requests at once are fine, and tracing never changes results.

mod support;

use std::time::Duration;
use support::{leaf_frames, project};
use tasktrace::{traced, TraceError};

const SOURCE: &str = include_str!("lifecycle.rs");

async fn sleeper() {
    tokio::time::sleep(Duration::from_secs(600)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_future_answers_at_once() {
    let (fut, handle) = traced(async { 7 });
    assert_eq!(tokio::spawn(fut).await.unwrap(), 7);
    assert_eq!(handle.backtrace().await.unwrap_err(), TraceError::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_future_answers_at_once() {
    let (fut, handle) = traced(sleeper());
    let task = tokio::spawn(fut);
    task.abort();
    let _ = task.await;
    assert_eq!(handle.backtrace().await.unwrap_err(), TraceError::Dropped);
    let (fut, handle) = traced(sleeper());
    drop(fut);
    assert_eq!(handle.backtrace().await.unwrap_err(), TraceError::Dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_stuck_in_poll_times_out_with_a_clear_error() {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (fut, handle) = traced(async move {
        tokio::task::yield_now().await;
        started_tx.send(()).unwrap();
        // A blocking call inside poll: no trace can be taken until it returns.
        std::thread::sleep(Duration::from_millis(1500));
    });
    let task = tokio::spawn(fut);
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    let err = handle
        .clone()
        .with_deadline(Duration::from_millis(200))
        .backtrace()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TraceError::Timeout { in_poll: true, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("inside poll"), "{err}");
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_polled_future_times_out_and_says_so() {
    let (fut, handle) = traced(sleeper());
    let err = handle
        .with_deadline(Duration::from_millis(50))
        .backtrace()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TraceError::Timeout {
                never_polled: true,
                in_poll: false,
                ..
            }
        ),
        "{err:?}"
    );
    drop(fut);
}

async fn inner_level() {
    sleeper().await // inner-await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_traced_futures_answer_together() {
    let (inner, inner_handle) = traced(inner_level());
    let (outer, outer_handle) = traced(async move {
        inner.await;
    });
    let task = tokio::spawn(outer);
    let (outer_trace, inner_trace) =
        tokio::join!(outer_handle.backtrace(), inner_handle.backtrace());
    task.abort();
    let (outer_trace, inner_trace) = (outer_trace.unwrap(), inner_trace.unwrap());
    let outer_users = project(&outer_trace, "tests/lifecycle.rs");
    let inner_users = project(&inner_trace, "tests/lifecycle.rs");
    // The outer tree goes through the inner future down to the same leaf.
    assert_eq!(outer_users.len(), 1, "{outer_trace:#}");
    let inner_await = support::line_of(SOURCE, "// inner-await");
    let leaves_of = |trace: &tasktrace::Trace| support::paths_through_line(trace, inner_await);
    assert_eq!(
        leaves_of(&outer_trace),
        1,
        "outer reaches the inner await:\n{outer_trace:#}"
    );
    assert_eq!(
        leaves_of(&inner_trace),
        1,
        "inner reaches its await:\n{inner_trace:#}"
    );
    // The inner tree starts at the inner future; the outer one has one path only (the
    // tracer's bookkeeping does not add branches).
    assert_eq!(inner_users.len(), 1, "{inner_trace:#}");
    assert_eq!(inner_users[0].line(), inner_await, "{inner_trace:#}");
    assert_eq!(outer_trace.paths().len(), 1, "{outer_trace:#}");
    if support::has_names() {
        assert_eq!(inner_users[0].short(), "inner_level", "{inner_trace:#}");
    }
    // Neither tree has the tracer's own machinery as a leaf.
    for trace in [&outer_trace, &inner_trace] {
        for leaf in leaf_frames(trace) {
            assert!(
                !leaf.function.contains("tasktrace"),
                "tracer leaf {leaf} in\n{trace:#}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_all_answered() {
    let (fut, handle) = traced(sleeper());
    let task = tokio::spawn(fut);
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move { h.backtrace().await })
        })
        .collect();
    for r in requests {
        let trace = r.await.unwrap().expect("every request answered");
        assert_eq!(project(&trace, "tests/lifecycle.rs").len(), 1, "{trace:#}");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_does_not_change_results() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
    // Half of the messages wait for the first trace, so that tracing really overlaps the
    // exchange (a fast release build could otherwise finish before the tracer starts).
    let (traced_once, first_trace) = tokio::sync::oneshot::channel::<()>();
    let producer = tokio::spawn(async move {
        let mut first_trace = Some(first_trace);
        for i in 0..2000u64 {
            if i == 1000 {
                let wait = first_trace.take().unwrap();
                tokio::time::timeout(std::time::Duration::from_secs(30), wait)
                    .await
                    .expect("no trace within 30 s while the consumer ran")
                    .unwrap();
            }
            tx.send(i).await.unwrap();
        }
    });
    let (fut, handle) = traced(async move {
        let mut sum = 0u64;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    });
    let consumer = tokio::spawn(fut);
    let tracer = tokio::spawn(async move {
        let mut traces = 0;
        let mut traced_once = Some(traced_once);
        while let Ok(trace) = handle.backtrace().await {
            assert!(!trace.is_empty());
            traces += 1;
            if let Some(tx) = traced_once.take() {
                let _ = tx.send(());
            }
        }
        traces
    });
    producer.await.unwrap();
    assert_eq!(consumer.await.unwrap(), (0..2000u64).sum::<u64>());
    let traces = tracer.await.unwrap();
    assert!(traces > 0, "at least one trace was taken while it ran");
}

#[test]
fn works_on_another_executor() {
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let (fut, handle) = traced(async { rx.await.unwrap() + 1 });
    let executor = std::thread::spawn(move || futures::executor::block_on(fut));
    let trace = futures::executor::block_on(handle.backtrace()).unwrap();
    let text = format!("{trace:#}");
    assert!(text.contains("oneshot"), "{text}");
    tx.send(41).unwrap();
    assert_eq!(executor.join().unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_during_trace_answers() {
    let (fut, handle) = traced(async {
        tokio::task::yield_now().await;
        panic!("boom");
    });
    let task = tokio::spawn(fut);
    let answer = handle.backtrace().await;
    assert!(task.await.unwrap_err().is_panic());
    // Either the trace was taken before the panicking poll, or that poll answered.
    if let Err(e) = answer {
        assert!(
            matches!(e, TraceError::Panicked | TraceError::Dropped),
            "{e:?}"
        );
    }
}

fn recurse(depth: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            sleeper().await
        } else {
            recurse(depth - 1).await // recurse-await
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_deep_stacks_keep_the_root_side() {
    let (fut, handle) = traced(recurse(400));
    let task = tokio::spawn(fut);
    let trace = handle.backtrace().await.unwrap();
    task.abort();
    assert_eq!(trace.roots.len(), 1, "one root:\n{trace:#}");
    let recurse_line = support::line_of(SOURCE, "// recurse-await");
    let users = project(&trace, "tests/lifecycle.rs");
    assert_eq!(users.len(), 1, "{trace:#}");
    assert_eq!(
        users[0].line(),
        recurse_line,
        "the outermost recursion is the root"
    );
    assert_eq!(trace.paths().len(), 1);
}

/// Counts the polls of a task, and those whose waker would not wake the first poll's.
#[derive(Default)]
struct WakerWatch {
    first: Option<std::task::Waker>,
    polls: usize,
    changed: usize,
}

impl WakerWatch {
    /// A future that looks at its waker once and is ready.
    fn look(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            match &self.first {
                Some(w) if !w.will_wake(cx.waker()) => self.changed += 1,
                Some(_) => {}
                None => self.first = Some(cx.waker().clone()),
            }
            self.polls += 1;
            std::task::Poll::Ready(())
        })
    }
}

async fn hopping_task(mut wakes: tokio::sync::mpsc::UnboundedReceiver<()>) -> WakerWatch {
    let mut watch = WakerWatch::default();
    loop {
        watch.look().await;
        if wakes.recv().await.is_none() {
            return watch;
        }
    }
}

async fn spawned_sleeper() {
    sleeper().await // spawned-sleeper-await
}

/// `tasktrace::spawn` registers its task's waker once, on the first poll, because tokio's
/// harness polls a task with the same waker every time. This checks that assumption against
/// the tokio in use, on a task woken 400 times from the other worker and from outside the
/// runtime, and that a spawned task traced after moving between workers still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_is_polled_with_one_waker_and_answers_after_moving() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tasktrace::spawn(hopping_task(rx));
    for i in 0..400 {
        let tx = tx.clone();
        if i % 2 == 0 {
            tokio::spawn(async move { tx.send(()).unwrap() })
                .await
                .unwrap();
        } else {
            std::thread::spawn(move || tx.send(()).unwrap())
                .join()
                .unwrap();
        }
        tokio::task::yield_now().await;
    }
    drop(tx);
    let watch = task.await.unwrap();
    assert_eq!(watch.polls, 401);
    assert_eq!(watch.changed, 0, "tokio polled the task with another waker");

    let task = tasktrace::spawn(async {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        spawned_sleeper().await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let trace = task.trace_handle().backtrace().await.unwrap();
    task.abort();
    let line = support::line_of(SOURCE, "// spawned-sleeper-await");
    assert_eq!(support::paths_through_line(&trace, line), 1, "{trace:#}");
    let users = project(&trace, "tests/lifecycle.rs");
    assert_eq!(users.len(), 1, "one root: {trace:#}");
    let under = &users[0].children;
    assert!(
        under.iter().any(|c| c.line() == line),
        "spawned_sleeper's await under the task's root: {trace:#}"
    );
}
