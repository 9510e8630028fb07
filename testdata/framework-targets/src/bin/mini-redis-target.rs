//! mini-redis 0.4.1 (tokio's example server, from crates.io, unchanged) with a subscriber and
//! an idle client connected.
//!
//! `mini-redis-target`: runs `mini_redis::server::run` on 127.0.0.1 (prints `port N`), then
//! connects two clients of its own: one subscribes to `news` (its server-side `Handler::run`
//! is in `Subscribe::apply`, waiting for a message or a command), the other sets a key and
//! stays connected (its handler reads the next frame). Prints `ready` once both requests were
//! answered, so both handlers are back waiting. A `GET` on a new connection is answered
//! meanwhile.
use tokio::net::TcpListener;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    println!("port {port}");
    tokio::spawn(mini_redis::server::run(listener, std::future::pending::<()>()));
    let addr = ("127.0.0.1", port);
    let subscriber = mini_redis::client::connect(addr)
        .await
        .unwrap()
        .subscribe(vec!["news".to_string()])
        .await
        .unwrap();
    let mut idle = mini_redis::client::connect(addr).await.unwrap();
    idle.set("hello", "world".into()).await.unwrap();
    println!("ready");
    std::future::pending::<()>().await;
    drop((subscriber, idle));
}
