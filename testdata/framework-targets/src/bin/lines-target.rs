//! A line server on `tokio_util::codec::Framed` whose connections are driven by
//! `StreamExt::for_each_concurrent`, with three lines stuck in the per-line async fn.
//!
//! `lines-target`: serves on 127.0.0.1 (prints `port N`), connects to itself twice, and sends
//! three lines on the first connection: each is handled by `handle_line → slow_lookup`, which
//! awaits a `Notify` never notified. The second connection sends nothing: its `Framed` waits
//! to read. Prints `ready` once the three lines are in `slow_lookup`; a line `ping` on a new
//! connection is answered `pong` meanwhile.
use futures::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::codec::{Framed, LinesCodec};

static IN_LOOKUP: AtomicUsize = AtomicUsize::new(0);
static CHANGED: Notify = Notify::const_new();
static NEVER: Notify = Notify::const_new();

async fn slow_lookup(key: &str) -> usize {
    IN_LOOKUP.fetch_add(1, Ordering::SeqCst);
    CHANGED.notify_one();
    NEVER.notified().await;
    key.len()
}

async fn handle_line(line: String) {
    let n = slow_lookup(&line).await;
    println!("{line}: {n}");
}

async fn serve_conn(sock: TcpStream) {
    let mut framed = Framed::new(sock, LinesCodec::new());
    // A first `ping` line is a health check: answered, then the connection closes.
    let first = match framed.next().await {
        Some(Ok(line)) => line,
        _ => return,
    };
    if first == "ping" {
        let _ = framed.send("pong").await;
        return;
    }
    let rest = framed.filter_map(|l| async move { l.ok() });
    futures::stream::iter([first])
        .chain(rest)
        .for_each_concurrent(4, handle_line)
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    println!("port {port}");
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_conn(sock));
        }
    });
    let mut busy = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    busy.write_all(b"alpha\nbeta\ngamma\n").await.unwrap();
    let idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    while IN_LOOKUP.load(Ordering::SeqCst) < 3 {
        CHANGED.notified().await;
    }
    println!("ready");
    std::future::pending::<()>().await;
    drop((busy, idle));
}
