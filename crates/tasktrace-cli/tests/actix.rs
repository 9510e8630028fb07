//! An actix-web 4 service from crates.io (`testdata/framework-targets`' actix-target: two
//! workers, each a current-thread runtime with a `LocalSet`), in debug and release builds,
//! read three ways: `tasktrace attach`, the service's own `GET /debug/tasks` (the `snapshot`
//! feature), and `tasktrace core` on a gcore.
//!
//! Four connections are open: two requests stuck in the handler, one whose head is half sent,
//! one idle between requests (keep-alive). What is asserted is what a person debugging a
//! stuck actix service asks: each connection is a task, named by the peer it serves and what
//! its request is doing, with the handler's async fn chain under it. Every wait has a
//! deadline; nothing asserts on timing.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::frameworks::*;
use support::*;
use tasktrace_model::{Dump, FrameKind, Node, Task};

const SOURCE: &str = include_str!("../../../testdata/framework-targets/src/bin/actix-target.rs");
const DISPATCHER: &str = "actix_http::h1::dispatcher::Dispatcher";

/// The client's ends of the four connections (kept open for the whole test).
struct Clients {
    stuck: Vec<TcpStream>,
    half_sent: TcpStream,
    idle: TcpStream,
}

impl Clients {
    fn open(port: u16) -> Clients {
        let connect = || {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        };
        let stuck = (0..2)
            .map(|_| {
                let mut s = connect();
                s.write_all(b"POST /checkout HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        let mut half_sent = connect();
        half_sent
            .write_all(b"POST /checkout HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        // One answered request, then the connection stays open.
        let mut idle = connect();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"ok\n") {
            let n = idle.read(&mut buf).expect("the health answer");
            assert!(n > 0, "the idle connection closed: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        Clients {
            stuck,
            half_sent,
            idle,
        }
    }

    fn port(s: &TcpStream) -> u16 {
        s.local_addr().unwrap().port()
    }
}

/// The dispatcher frame of the connection from `peer_port`, in its task.
fn connection<'d>(d: &'d Dump, peer_port: u16, what: &str) -> (&'d Task, &'d Node) {
    let from = format!("HTTP/1 connection from 127.0.0.1:{peer_port}: ");
    let found: Vec<(&Task, &Node)> = d
        .tasks
        .iter()
        .flat_map(|t| {
            all_nodes(&t.trace.roots)
                .into_iter()
                .filter(|n| {
                    n.frame.function == DISPATCHER
                        && n.frame
                            .annotation()
                            .as_deref()
                            .is_some_and(|s| s.starts_with(&from))
                })
                .map(move |n| (t, n))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: one connection from port {peer_port}: {d:#?}"
    );
    found[0]
}

/// The connection's state, as its frame says it.
fn state(n: &Node) -> &str {
    let note = n.frame.note.as_deref().unwrap_or_default();
    note.split_once(": ").map_or("", |(_, s)| s)
}

fn check_actix(d: &Dump, c: &Clients, what: &str) {
    let line = |text: &str| line_in(SOURCE, text);
    for s in &c.stuck {
        let (task, conn) = connection(d, Clients::port(s), what);
        assert_eq!(state(conn), "in the handler", "{what}: {task:#?}");
        // The connection is the task's frame over the handler: checkout → wait_for_approval
        // → the Notify it awaits, and the socket beside.
        let handler = all_nodes(&conn.children)
            .into_iter()
            .find(|n| {
                is_at(
                    n,
                    FrameKind::AsyncFn,
                    "actix_target::checkout",
                    "actix-target.rs",
                    line("let order = wait_for_approval(&shop).await;"),
                )
            })
            .unwrap_or_else(|| panic!("{what}: checkout under the connection: {task:#?}"));
        let waits = only_child(handler);
        assert!(
            is_at(
                waits,
                FrameKind::AsyncFn,
                "actix_target::wait_for_approval",
                "actix-target.rs",
                line("    approved.await;"),
            ),
            "{what}: {waits:#?}"
        );
        is_leaf(only_child(waits), "tokio::sync::notify::Notified", "Notify");
        assert!(
            conn.children
                .iter()
                .any(|n| n.frame.function.contains("TcpStream")),
            "{what}: the connection's socket: {conn:#?}"
        );
    }
    let (task, conn) = connection(d, Clients::port(&c.half_sent), what);
    let received = "POST /checkout HTTP/1.1\r\nHost: x\r\n".len();
    assert_eq!(
        state(conn),
        format!("reading a request ({received} bytes received)"),
        "{what}: {task:#?}"
    );
    assert!(
        conn.children.iter().any(|n| n
            .frame
            .annotation()
            .as_deref()
            .is_some_and(|s| s.starts_with("request head timeout: "))),
        "{what}: the head timer of the half-sent request: {conn:#?}"
    );
    let (task, conn) = connection(d, Clients::port(&c.idle), what);
    assert_eq!(state(conn), "waiting for a request", "{what}: {task:#?}");
    assert!(
        conn.children.iter().any(|n| n
            .frame
            .annotation()
            .as_deref()
            .is_some_and(|s| s.starts_with("keep-alive timeout: "))),
        "{what}: the keep-alive timer of the idle connection: {conn:#?}"
    );
    // Each worker's `ServerWorker` future is a task of its own.
    let workers = d
        .tasks
        .iter()
        .filter(|t| root_of(t).frame.function == "actix_server::worker::ServerWorker")
        .count();
    assert_eq!(workers, 2, "{what}: the two workers: {d:#?}");
}

/// Until the half-sent request's bytes are in its dispatcher's buffer (30 s at most).
fn half_sent_read(d: &Dump) -> bool {
    d.tasks.iter().any(|t| {
        all_nodes(&t.trace.roots)
            .iter()
            .any(|n| n.frame.function == DISPATCHER && state(n).starts_with("reading a request"))
    })
}

fn actix(profile: &str) {
    let exe = build(profile).join("actix-target");
    let exe = exe.to_str().unwrap();
    let mut t = Target::spawn(exe, &["2"]);
    let port: u16 = t.wait_for("port ").parse().unwrap();
    let clients = Clients::open(port);
    t.wait_for("ready");
    settle(t.pid, half_sent_read);
    check_actix(
        &whole_dump(t.pid),
        &clients,
        &format!("actix {profile}, attach"),
    );
    assert_serves(port);
    check_actix(
        &debug_tasks(port),
        &clients,
        &format!("actix {profile}, /debug/tasks"),
    );
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("actix-{profile}"));
    if let Some(core) = gcore(t.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe]);
        let _ = std::fs::remove_file(&core);
        check_actix(&d, &clients, &format!("actix {profile}, core"));
    }
    assert_serves(port);
}

#[test]
fn actix_dev() {
    actix("dev");
}

#[test]
fn actix_release() {
    actix("release");
}
