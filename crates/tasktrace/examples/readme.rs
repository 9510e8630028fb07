//! The example of the crate's README: `cargo run -p tasktrace --example readme`.

async fn foo() {
    bar().await
}

async fn bar() {
    tokio::join!(fiz(), buz());
}

async fn fiz() {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await
}

async fn buz() {
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _ = rx.await;
}

#[tokio::main]
async fn main() {
    let (fut, handle) = tasktrace::traced(foo());
    tokio::spawn(fut);
    println!("{}", handle.backtrace().await.unwrap());
}
