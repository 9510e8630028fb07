//! A task suspended three async fns deep on each kind of real leaf: the trace must show the
//! three frames, in order, with their await lines, in every profile.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use support::{has_names, line_of, project, UserNode};
use tokio::io::AsyncReadExt;

const SOURCE: &str = include_str!("leaves.rs");
const FILE: &str = "tests/leaves.rs";

async fn level1<F: Future>(leaf: F) -> F::Output {
    level2(leaf).await // await-level1
}

async fn level2<F: Future>(leaf: F) -> F::Output {
    level3(leaf).await // await-level2
}

async fn level3<F: Future>(leaf: F) -> F::Output {
    leaf.await // await-level3
}

/// Traces `level1(leaf)` spawned on the runtime and checks the chain.
async fn assert_three_deep<F>(leaf: F)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (fut, handle) = tasktrace::traced(level1(leaf));
    let task = tokio::spawn(fut);
    let trace = handle.backtrace().await.expect("a trace");
    task.abort();
    let users = project(&trace, FILE);
    let dump = format!("{trace:#}");
    assert_eq!(users.len(), 1, "one root frame in the test file:\n{dump}");
    let l1 = &users[0];
    let l2 = only_child(l1, &dump);
    let l3 = only_child(l2, &dump);
    for (node, name) in [(l1, "level1"), (l2, "level2"), (l3, "level3")] {
        assert_eq!(
            node.line(),
            line_of(SOURCE, &format!("// await-{name}")),
            "{name} suspended at its await line:\n{dump}"
        );
        if has_names() {
            assert_eq!(node.short(), name, "frame name:\n{dump}");
        }
    }
    // Below level3 there is the leaf itself: the trace reaches past the user's frames.
    let depth_of_level3 = trace
        .walk()
        .into_iter()
        .find(|(_, n)| n.frame.same_logical_frame(&l3.frame))
        .map(|(_, n)| n.children.len())
        .expect("level3 in the raw tree");
    assert!(depth_of_level3 > 0, "level3 has the leaf below it:\n{dump}");
}

fn only_child<'a>(node: &'a UserNode, dump: &str) -> &'a UserNode {
    let chained: Vec<&UserNode> = node
        .children
        .iter()
        .filter(|c| c.short().starts_with("level") || !has_names())
        .collect();
    assert!(
        !chained.is_empty(),
        "{} has a child in the test file:\n{dump}",
        node.short()
    );
    chained[0]
}

/// A hand-written leaf future that stores the waker, as real leaves do.
struct StoresWaker {
    waker: Option<Waker>,
}

impl Future for StoresWaker {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

macro_rules! leaf_test {
    ($name:ident, $setup:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            assert_three_deep($setup).await;
        }
    };
}

leaf_test!(tokio_sleep, tokio::time::sleep(Duration::from_secs(600)));

leaf_test!(mpsc_recv, {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
    async move {
        let _keep = tx;
        rx.recv().await
    }
});

leaf_test!(oneshot_recv, {
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    async move {
        let _keep = tx;
        rx.await.ok()
    }
});

leaf_test!(broadcast_recv, {
    let (tx, mut rx) = tokio::sync::broadcast::channel::<u32>(4);
    async move {
        let _keep = tx;
        rx.recv().await.ok()
    }
});

leaf_test!(watch_changed, {
    let (tx, mut rx) = tokio::sync::watch::channel(0u32);
    async move {
        let _keep = tx;
        rx.changed().await.ok()
    }
});

leaf_test!(notify_notified, {
    let notify = Arc::new(tokio::sync::Notify::new());
    async move { notify.notified().await }
});

leaf_test!(mutex_lock, {
    let mutex = Arc::new(tokio::sync::Mutex::new(0u32));
    let guard = mutex.clone().try_lock_owned().expect("free");
    async move {
        let _held = guard;
        *mutex.lock().await
    }
});

leaf_test!(semaphore_acquire, {
    let sem = Arc::new(tokio::sync::Semaphore::new(0));
    async move { sem.acquire().await.is_ok() }
});

leaf_test!(join_handle, {
    let child = tokio::spawn(std::future::pending::<()>());
    async move { child.await.ok() }
});

leaf_test!(select_two_branches, {
    let notify = Arc::new(tokio::sync::Notify::new());
    async move {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => 1,
            _ = notify.notified() => 2,
        }
    }
});

leaf_test!(
    timeout,
    tokio::time::timeout(Duration::from_secs(600), std::future::pending::<()>())
);

leaf_test!(futures_oneshot, {
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    async move {
        let _keep = tx;
        rx.await.ok()
    }
});

leaf_test!(hand_written_leaf, StoresWaker { waker: None });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_accept() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert_three_deep(async move { listener.accept().await.is_ok() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stream_read() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert_three_deep(async move {
        let _keep = client;
        let mut buf = [0u8; 16];
        server.read(&mut buf).await.ok()
    })
    .await;
}

/// The select! leaf shows both branches as siblings below the select.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_branches_are_siblings() {
    let notify = Arc::new(tokio::sync::Notify::new());
    let (fut, handle) = tasktrace::traced(async move {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => 1,
            _ = notify.notified() => 2,
        }
    });
    let task = tokio::spawn(fut);
    let trace = handle.backtrace().await.unwrap();
    task.abort();
    assert_eq!(trace.roots.len(), 1);
    let paths = trace.paths();
    assert_eq!(paths.len(), 2, "one path per branch:\n{trace:#}");
    let text = format!("{trace:#}");
    assert!(text.contains("sleep"), "timer branch:\n{text}");
    assert!(
        text.to_lowercase().contains("notif"),
        "notify branch:\n{text}"
    );
}
