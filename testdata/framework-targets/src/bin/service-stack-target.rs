//! A hyper 1 server whose service is a tower `ServiceBuilder` stack (`buffer` →
//! `concurrency_limit(1)` → `timeout`) over `service_fn(handle)`, with two requests stuck.
//!
//! `service-stack-target`: serves on 127.0.0.1 (prints `port N`), then sends itself two
//! `POST /lookup` requests over raw TCP. The first goes through the stack into
//! `handle → lookup`, which awaits a `Notify` never notified, holding the one concurrency
//! permit. The second reaches the `Buffer`'s worker task, which waits for a permit: that
//! request's connection task waits on the worker (a oneshot channel the worker will answer).
//! Prints `ready` once the first request is in `lookup` and the second has been handed to the
//! worker. `GET /health` is answered before the stack, so it works meanwhile.
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// Requests inside `lookup`, and requests that entered the stack.
static IN_LOOKUP: AtomicUsize = AtomicUsize::new(0);
static ENTERED: AtomicUsize = AtomicUsize::new(0);
static CHANGED: Notify = Notify::const_new();
static NEVER: Notify = Notify::const_new();

async fn lookup(key: String) -> String {
    IN_LOOKUP.fetch_add(1, Ordering::SeqCst);
    CHANGED.notify_one();
    NEVER.notified().await;
    format!("{key}: found\n")
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let key = req.uri().path().to_string();
    let value = lookup(key).await;
    Ok(Response::new(Full::new(Bytes::from(value))))
}

async fn send_lookup(port: u16) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"POST /lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    // Hold the connection open; the answer never comes.
    std::future::pending::<()>().await;
    drop(s);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let stack = ServiceBuilder::new()
        .buffer(16)
        .concurrency_limit(1)
        .timeout(Duration::from_secs(3600))
        .service_fn(handle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    println!("port {port}");
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let stack = stack.clone();
            let svc = tower::service_fn(move |req: Request<Incoming>| {
                let mut stack = stack.clone();
                async move {
                    if req.uri().path() == "/health" {
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok\n"))));
                    }
                    ENTERED.fetch_add(1, Ordering::SeqCst);
                    CHANGED.notify_one();
                    let answer: Result<_, BoxError> = match stack.ready().await {
                        Ok(ready) => ready.call(req).await,
                        Err(e) => Err(e),
                    };
                    Ok(answer.unwrap_or_else(|e| {
                        Response::new(Full::new(Bytes::from(format!("error: {e}\n"))))
                    }))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    // One request at a time, so the first holds the permit before the second arrives.
    tokio::spawn(send_lookup(port));
    while IN_LOOKUP.load(Ordering::SeqCst) < 1 {
        CHANGED.notified().await;
    }
    tokio::spawn(send_lookup(port));
    while ENTERED.load(Ordering::SeqCst) < 2 {
        CHANGED.notified().await;
    }
    println!("ready");
    std::future::pending::<()>().await;
}
