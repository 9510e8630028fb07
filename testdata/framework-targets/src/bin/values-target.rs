//! Async fns holding the values a person wants to see in a stuck service (issue 31): an
//! order being placed waits for stock, with its id, user, lines, coupon, cart, timeout and
//! peer kept across the await. Read by `tasktrace attach --values` and `core --values`
//! (crates/tasktrace-cli/tests/values.rs). Prints `ready` once every task is at its await.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A small struct of plain fields: shown field by field.
struct Cart {
    id: u32,
    total_cents: u64,
}

async fn wait_for_stock(user: &str, count: usize, gate: Arc<Notify>) -> usize {
    gate.notified().await;
    user.len() + count
}

#[allow(clippy::too_many_arguments)]
async fn place_order(
    order_id: u64,
    user: String,
    lines: Vec<u32>,
    coupon: Option<char>,
    cart: Cart,
    timeout: Duration,
    peer: SocketAddr,
    gate: Arc<Notify>,
) -> u64 {
    let n = wait_for_stock(&user, lines.len(), gate).await;
    // Used after the await: kept in the state machine across it.
    let cart = cart.id as u64 + cart.total_cents;
    println!("{order_id} {user} {lines:?} {coupon:?} {cart} {timeout:?} {peer} {n}");
    order_id
}

async fn audit(note: String, attempts: i32, ratio: f64, gate: Arc<Notify>) {
    gate.notified().await;
    println!("{note} {attempts} {ratio}");
}

#[tokio::main]
async fn main() {
    let gate = Arc::new(Notify::new());
    tokio::spawn(place_order(
        981,
        "bob".to_string(),
        vec![2, 5, 7, 11],
        Some('x'),
        Cart {
            id: 17,
            total_cents: 4599,
        },
        Duration::from_millis(1500),
        "10.0.0.7:443".parse().unwrap(),
        gate.clone(),
    ));
    tokio::spawn(audit("x".repeat(100), -3, 0.25, gate.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = &gate;
    }
}
