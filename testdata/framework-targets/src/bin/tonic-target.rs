//! A tonic 0.14 gRPC service with a unary call stuck in the handler and a server-streaming
//! call whose stream waits for the next update. The service glue is written by hand as
//! tonic-build would generate it (no `protoc` needed): a `tower::Service` that routes by path
//! to `tonic::server::Grpc::unary` / `server_streaming` with tonic-prost's codec.
//!
//! `tonic-target serve`: serves on 127.0.0.1 (prints `port N`); `Approve` calls wait in
//! `approve → wait_for_approval` (a `Notify` never notified); `Watch` streams are driven by
//! `next_update`, which awaits an mpsc channel that never gets a message. Prints `ready` once
//! one of each is waiting (the client below makes them). A `Ping` call answers meanwhile.
//!
//! `tonic-target client PORT`: starts one `Approve` and one `Watch` call and holds them;
//! prints `sent`. `tonic-target ping PORT` makes one `Ping` call and prints its answer.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, Notify};
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::{Request, Response, Status};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Order {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Update {
    #[prost(string, tag = "1")]
    pub text: String,
}

struct App {
    approvals: Notify,
    waiting: AtomicUsize,
    changed: Notify,
    /// Kept so the update channels stay open (and empty).
    senders: std::sync::Mutex<Vec<mpsc::Sender<Update>>>,
}

impl App {
    fn one_more_waiting(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }
}

async fn wait_for_approval(app: &App, order: &Order) -> bool {
    let approved = app.approvals.notified();
    app.one_more_waiting();
    approved.await;
    order.id > 0
}

async fn approve(app: Arc<App>, request: Request<Order>) -> Result<Response<Update>, Status> {
    // The request is kept across the await (its message read with `--values`).
    let order = request.get_ref();
    let ok = wait_for_approval(&app, order).await;
    Ok(Response::new(Update {
        text: format!("order {}: {ok}", order.id),
    }))
}

async fn next_update(updates: &mut mpsc::Receiver<Update>) -> Option<Update> {
    updates.recv().await
}

type UpdateStream = Pin<Box<dyn futures::Stream<Item = Result<Update, Status>> + Send>>;

async fn watch(app: Arc<App>, _request: Request<Order>) -> Result<Response<UpdateStream>, Status> {
    let (tx, rx) = mpsc::channel(1);
    app.senders.lock().unwrap().push(tx);
    let app2 = app.clone();
    let stream = futures::stream::unfold((rx, app2, true), |(mut rx, app, first)| async move {
        if first {
            app.one_more_waiting();
        }
        let update = next_update(&mut rx).await?;
        Some((Ok(update), (rx, app, false)))
    });
    Ok(Response::new(Box::pin(stream) as UpdateStream))
}

/// The service, as tonic-build generates it.
#[derive(Clone)]
struct Orders(Arc<App>);

impl tonic::server::NamedService for Orders {
    const NAME: &'static str = "demo.Orders";
}

struct ApproveSvc(Arc<App>);
impl tonic::server::UnaryService<Order> for ApproveSvc {
    type Response = Update;
    type Future = BoxFuture<Response<Update>, Status>;
    fn call(&mut self, request: Request<Order>) -> Self::Future {
        Box::pin(approve(self.0.clone(), request))
    }
}

struct PingSvc;
impl tonic::server::UnaryService<Order> for PingSvc {
    type Response = Update;
    type Future = BoxFuture<Response<Update>, Status>;
    fn call(&mut self, request: Request<Order>) -> Self::Future {
        let id = request.into_inner().id;
        Box::pin(async move { Ok(Response::new(Update { text: format!("pong {id}") })) })
    }
}

struct WatchSvc(Arc<App>);
impl tonic::server::ServerStreamingService<Order> for WatchSvc {
    type Response = Update;
    type ResponseStream = UpdateStream;
    type Future = BoxFuture<Response<UpdateStream>, Status>;
    fn call(&mut self, request: Request<Order>) -> Self::Future {
        Box::pin(watch(self.0.clone(), request))
    }
}

impl<B> tower::Service<http::Request<B>> for Orders
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let app = self.0.clone();
        let codec = tonic_prost::ProstCodec::<Update, Order>::default();
        let mut grpc = tonic::server::Grpc::new(codec);
        match req.uri().path() {
            "/demo.Orders/Approve" => {
                Box::pin(async move { Ok(grpc.unary(ApproveSvc(app), req).await) })
            }
            "/demo.Orders/Ping" => Box::pin(async move { Ok(grpc.unary(PingSvc, req).await) }),
            "/demo.Orders/Watch" => {
                Box::pin(async move { Ok(grpc.server_streaming(WatchSvc(app), req).await) })
            }
            _ => Box::pin(async move {
                Ok(Status::unimplemented("no such method").into_http())
            }),
        }
    }
}

async fn serve() {
    let app = Arc::new(App {
        approvals: Notify::new(),
        waiting: AtomicUsize::new(0),
        changed: Notify::new(),
        senders: std::sync::Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("port {}", listener.local_addr().unwrap().port());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(Orders(app.clone()))
        .serve_with_incoming(incoming);
    let server = tokio::spawn(server);
    while app.waiting.load(Ordering::SeqCst) < 2 {
        app.changed.notified().await;
    }
    println!("ready");
    server.await.unwrap().unwrap();
}

async fn channel(port: &str) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn path(method: &'static str) -> http::uri::PathAndQuery {
    http::uri::PathAndQuery::from_static(method)
}

async fn client(port: &str) {
    let mut unary = channel(port).await;
    let mut streaming = unary.clone();
    let approve = tokio::spawn(async move {
        unary.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<Order, Update>::default();
        unary
            .unary(Request::new(Order { id: 7 }), path("/demo.Orders/Approve"), codec)
            .await
    });
    let watch = tokio::spawn(async move {
        streaming.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<Order, Update>::default();
        let mut updates = streaming
            .server_streaming(Request::new(Order { id: 8 }), path("/demo.Orders/Watch"), codec)
            .await?
            .into_inner();
        updates.message().await
    });
    println!("sent");
    let _ = approve.await;
    let _ = watch.await;
}

async fn ping(port: &str) {
    let mut grpc = channel(port).await;
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Order, Update>::default();
    let answer = grpc
        .unary(Request::new(Order { id: 1 }), path("/demo.Orders/Ping"), codec)
        .await
        .unwrap();
    println!("{}", answer.into_inner().text);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("serve") => rt.block_on(serve()),
        Some("client") => rt.block_on(client(&args[2])),
        Some("ping") => rt.block_on(ping(&args[2])),
        _ => {
            eprintln!("usage: tonic-target serve | client PORT | ping PORT");
            std::process::exit(2);
        }
    }
}
