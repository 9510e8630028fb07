//! The out-of-process reader on programs built on real frameworks from crates.io
//! (`testdata/framework-targets`: axum 0.8 over hyper-util's auto connection, reqwest, …), in
//! debug and release builds, live and from a core file.
//!
//! What is asserted is what a person debugging a stuck service asks: where each stuck request
//! waits, under which connection task, in the default (clean) view. Builds are cached under
//! the cargo target dir (`framework-targets/`); every wait has a deadline; nothing asserts on
//! timing.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::frameworks::*;
use support::*;
use tasktrace_model::{Dump, FrameKind, NamedValue, Node, Related, Task, Value, WaitOn};

const AXUM_SOURCE: &str =
    include_str!("../../../testdata/framework-targets/src/bin/axum-target.rs");
const STACK_SOURCE: &str =
    include_str!("../../../testdata/framework-targets/src/bin/service-stack-target.rs");
const TONIC_SOURCE: &str =
    include_str!("../../../testdata/framework-targets/src/bin/tonic-target.rs");
const LINES_SOURCE: &str =
    include_str!("../../../testdata/framework-targets/src/bin/lines-target.rs");

/// The line of axum-target.rs containing `text`.
fn axum_line(text: &str) -> u32 {
    line_in(AXUM_SOURCE, text)
}

/// Whether `n` is `checkout → wait_for_approval → [waiting on Notify]`, with their await lines.
fn is_checkout_chain(n: &Node) -> bool {
    let at = |n: &Node, func: &str, line: u32| {
        n.frame.function == format!("axum_target::{func}")
            && n.frame.kind == FrameKind::AsyncFn
            && n.frame
                .location
                .as_ref()
                .is_some_and(|l| l.file.ends_with("src/bin/axum-target.rs") && l.line == line)
    };
    if !at(n, "checkout", axum_line("wait_for_approval(&app).await")) {
        return false;
    }
    let [w] = &n.children[..] else { return false };
    if !at(w, "wait_for_approval", axum_line("approved.await")) {
        return false;
    }
    let [leaf] = &w.children[..] else {
        return false;
    };
    leaf.frame.kind == FrameKind::Leaf
        && leaf.frame.annotation().as_deref() == Some("waiting on Notify")
        && leaf.children.is_empty()
}

/// The server: three HTTP/1 requests stuck in `checkout`, each under its connection task;
/// two HTTP/2 streams, each a task of its own under its connection; the background worker.
fn check_server(d: &Dump, what: &str) {
    let chains = |t: &Task| {
        root_of(t)
            .children
            .iter()
            .filter(|c| is_checkout_chain(c))
            .count()
    };
    let h1: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| {
            let r = root_of(t);
            r.frame.function == "axum::serve::handle_connection"
                && r.frame.kind == FrameKind::AsyncBlock
                && chains(t) == 1
        })
        .collect();
    assert_eq!(
        h1.len(),
        3,
        "{what}: three HTTP/1 connections with a stuck checkout: {d}"
    );
    for t in &h1 {
        // Beside the handler: the connection's socket, and axum's graceful-shutdown signal.
        let notes: Vec<String> = root_of(t)
            .children
            .iter()
            .filter_map(|c| c.frame.annotation())
            .collect();
        assert!(
            notes.iter().any(|n| is_io(Some(n), "readiness", what))
                && notes.iter().any(|n| n == "waiting on watch change"),
            "{what}: {t:#?}"
        );
    }
    let streams: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| {
            root_of(t)
                .frame
                .function
                .starts_with("hyper::proto::h2::server::H2Stream")
        })
        .collect();
    assert_eq!(streams.len(), 2, "{what}: two HTTP/2 stream tasks: {d}");
    let mut conns = Vec::new();
    for s in &streams {
        assert_eq!(chains(s), 1, "{what}: the stream's handler chain: {s:#?}");
        let conn = stream_connection(root_of(s))
            .unwrap_or_else(|| panic!("{what}: the stream names its connection: {s:#?}"));
        conns.push(conn);
    }
    assert_eq!(conns[0], conns[1], "{what}: both streams on one connection");
    let conn = d.task(conns[0]).expect("the connection's task");
    let r = root_of(conn);
    assert_eq!(
        r.frame.function, "axum::serve::handle_connection",
        "{conn:#?}"
    );
    let mut ids: Vec<u64> = streams.iter().map(|s| s.id).collect();
    ids.sort();
    assert!(
        r.frame.related.iter().any(|rel| matches!(
            rel,
            Related::Drives { what, tasks } if what == "HTTP/2 stream" && *tasks == ids
        )),
        "{what}: the connection names its streams: {conn:#?}"
    );
    // A JoinSet (tokio `full`: parking_lot's mutex around its lists) names its tasks: the
    // supervisor awaits both, and its tree says which (the default view folds the set's two
    // join handles into one leaf: `2 branches; waiting on task 7, task 8`).
    let sup = rooted_at(d, "axum_target::supervisor");
    assert_eq!(sup.len(), 1, "{what}: the supervisor: {d}");
    let mut members: Vec<&Task> = rooted_at(d, "axum_target::job_member");
    members.sort_by_key(|t| t.id);
    assert_eq!(members.len(), 2, "{what}: the supervisor's jobs: {d}");
    let mut awaited = sup[0].awaits.clone();
    awaited.sort();
    let ids: Vec<u64> = members.iter().map(|t| t.id).collect();
    assert_eq!(
        awaited, ids,
        "{what}: the supervisor awaits its jobs: {:#?}",
        sup[0]
    );
    let notes: String = all_nodes(std::slice::from_ref(root_of(sup[0])))
        .iter()
        .filter_map(|n| n.frame.annotation())
        .collect::<Vec<_>>()
        .join("; ");
    for m in &members {
        let tokio_id = m.tokio_id.unwrap_or(m.id);
        assert!(
            notes.contains(&format!("task {tokio_id}")),
            "{what}: the supervisor's tree names task {tokio_id}: {notes}"
        );
    }
    // No edge to a task the dump does not show.
    for t in &d.tasks {
        for a in &t.awaits {
            assert!(
                d.task(*a).is_some(),
                "{what}: task {} awaits {a}, not in the dump: {d}",
                t.id
            );
        }
    }
    let worker: Vec<&Task> = rooted_at(d, "axum_target::background_worker");
    assert_eq!(worker.len(), 1, "{what}: the background worker: {d}");
    let w = root_of(worker[0]);
    assert_eq!(
        w.frame.location.as_ref().map(|l| l.line),
        Some(axum_line("jobs.recv().await"))
    );
    assert!(
        w.children
            .iter()
            .any(|c| c.frame.annotation().as_deref() == Some("waiting on mpsc receive")),
        "{what}: {w:#?}"
    );
}

/// The client: five requests in flight, each waiting for its response from its connection's
/// task (HTTP/1: the connection task; HTTP/2: the stream's task, driven by the connection).
fn check_client(d: &Dump, what: &str) {
    let pending: Vec<&Task> = rooted_at(d, "reqwest::async_impl::client::Pending");
    assert_eq!(pending.len(), 5, "{what}: five requests in flight: {d}");
    for p in &pending {
        let r = root_of(p);
        assert!(
            r.children.iter().any(|c| c.frame.kind == FrameKind::Leaf
                && c.frame.annotation().as_deref() == Some("waiting for the HTTP response")),
            "{what}: {p:#?}"
        );
        let [by] = p.awaits[..] else {
            panic!("{what}: the request awaits its connection's task: {p:#?}")
        };
        assert!(d.task(by).is_some(), "{what}: task {by} is in the dump");
    }
    let mut by: Vec<u64> = pending.iter().map(|p| p.awaits[0]).collect();
    by.sort();
    by.dedup();
    assert_eq!(
        by.len(),
        5,
        "{what}: each request has its own connection or stream"
    );
    let streams = by
        .iter()
        .filter(|&&id| stream_connection(root_of(d.task(id).unwrap())).is_some())
        .count();
    assert_eq!(
        streams, 2,
        "{what}: the HTTP/2 requests wait on their streams' tasks"
    );
    // The HTTP/1 requests wait on their connections' tasks, each named by what it waits for.
    let h1 = by
        .iter()
        .filter(|&&id| {
            let t = d.task(id).unwrap();
            all_nodes(&t.trace.roots).iter().any(|n| {
                n.frame.kind == FrameKind::Leaf
                    && n.frame.function == "hyper::proto::h1::dispatch::Dispatcher"
                    && n.frame.annotation().as_deref()
                        == Some("HTTP/1 client connection: waiting for the response")
            })
        })
        .count();
    assert_eq!(
        h1, 3,
        "{what}: three HTTP/1 connections wait for their responses: {d}"
    );
}

fn axum_service(profile: &str) {
    let bin = build(profile);
    let exe = bin.join("axum-target");
    let exe = exe.to_str().unwrap();
    let mut server = Target::spawn(exe, &["serve", "5"]);
    let port = server.wait_for("port ");
    let debug_port: u16 = server.wait_for("debug-port ").parse().unwrap();
    let client = Target::spawn(exe, &["client", &port, "3", "2"]);
    server.wait_for("ready");
    settle(server.pid, any_state);
    let port: u16 = port.parse().unwrap();

    // From inside: the service's own /debug/tasks (tasktrace::http with the snapshot feature;
    // no tasktrace::spawn in it) lists the same tasks, and its own.
    let inside = debug_tasks(debug_port);
    check_server(&inside, &format!("{profile}, its own /debug/tasks"));
    // From inside, tasktrace's own tasks (the server answering this very request) are left
    // out, and said so; from outside (below) every task of the process is listed.
    let own = |d: &Dump| {
        d.tasks
            .iter()
            .filter(|t| {
                t.trace
                    .roots
                    .first()
                    .is_some_and(|r| r.frame.function.starts_with("tasktrace::http"))
            })
            .count()
    };
    assert_eq!(
        own(&inside),
        0,
        "{profile}: tasktrace's own tasks listed: {inside}"
    );
    assert!(
        inside.notes.iter().any(|n| n
            .ends_with("task(s) of tasktrace itself (its HTTP server, signal listener) left out")),
        "{:?}",
        inside.notes
    );
    assert!(
        inside
            .tasks
            .iter()
            .all(|t| t.source.as_deref() == Some("snapshot")),
        "{profile}: every task from the snapshot: {inside}"
    );
    assert!(
        inside
            .notes
            .iter()
            .any(|n| n.starts_with("sources: the registry (0 task(s)")),
        "{:?}",
        inside.notes
    );
    assert_serves(port);

    let live = clean_dump(&["attach", &server.pid.to_string()]);
    check_server(&live, &format!("{profile}, live"));
    assert!(
        own(&live) >= 1,
        "{profile}: from outside, the debug server is a task: {live}"
    );
    assert_serves(port);
    let from_client = clean_dump(&["attach", &client.pid.to_string()]);
    check_client(&from_client, &format!("{profile}, client"));

    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("axum-{profile}"));
    if let Some(core) = gcore(server.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe]);
        let _ = std::fs::remove_file(&core);
        check_server(&d, &format!("{profile}, core"));
    }
    assert_serves(port);
}

#[test]
fn axum_service_dev() {
    axum_service("dev");
}

#[test]
fn axum_service_release() {
    axum_service("release");
}

/// A tower `ServiceBuilder` stack: the first request down to `handle → lookup` (under the
/// user's `service_fn` block, beside the `timeout` layer's timer); the second waiting on the
/// `Buffer`'s worker task, an edge to it.
fn check_stack(d: &Dump, what: &str) {
    const FILE: &str = "src/bin/service-stack-target.rs";
    let workers: Vec<&Task> = rooted_at(d, "tower::buffer::worker::Worker");
    assert_eq!(workers.len(), 1, "{what}: the Buffer's worker task: {d}");
    let worker = workers[0];
    let waits: Vec<WaitOn> = root_of(worker)
        .children
        .iter()
        .flat_map(|c| c.frame.waits.iter().map(|w| w.on))
        .collect();
    assert!(
        waits.contains(&WaitOn::MpscReceive) && waits.iter().any(|w| w.is_lock()),
        "{what}: the worker waits for requests and for a permit: {worker:#?}"
    );
    let block = "service_stack_target::main";
    let conn_line = line_in(STACK_SOURCE, ".serve_connection(") + 1;
    let svc_line = line_in(STACK_SOURCE, "ready.call(req).await");
    let conns: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| is_at(root_of(t), FrameKind::AsyncBlock, block, FILE, conn_line))
        .collect();
    assert_eq!(conns.len(), 2, "{what}: two connection tasks: {d}");
    let service_block = |t: &Task| -> Node {
        let svc: Vec<&Node> = root_of(t)
            .children
            .iter()
            .filter(|c| is_at(c, FrameKind::AsyncBlock, block, FILE, svc_line))
            .collect();
        assert_eq!(
            svc.len(),
            1,
            "{what}: the service_fn block under the connection: {t:#?}"
        );
        svc[0].clone()
    };
    let in_handler = conns
        .iter()
        .find(|t| t.awaits.is_empty())
        .unwrap_or_else(|| panic!("{what}: a request in the handler: {d}"));
    let svc = service_block(in_handler);
    let handle = svc
        .children
        .iter()
        .find(|c| c.frame.function == "service_stack_target::handle")
        .unwrap_or_else(|| panic!("{what}: handle under the service block: {svc:#?}"));
    assert!(is_at(
        handle,
        FrameKind::AsyncFn,
        "service_stack_target::handle",
        FILE,
        line_in(STACK_SOURCE, "lookup(key).await")
    ));
    let [lookup] = &handle.children[..] else {
        panic!("{what}: {handle:#?}")
    };
    assert!(
        is_at(
            lookup,
            FrameKind::AsyncFn,
            "service_stack_target::lookup",
            FILE,
            line_in(STACK_SOURCE, "NEVER.notified().await")
        ),
        "{what}: {lookup:#?}"
    );
    assert_eq!(lookup.children.len(), 1);
    assert_eq!(
        lookup.children[0].frame.annotation().as_deref(),
        Some("waiting on Notify")
    );
    assert!(
        svc.children.iter().any(|c| c
            .frame
            .annotation()
            .as_deref()
            .is_some_and(|n| n.starts_with("waiting on timer"))),
        "{what}: the timeout layer's timer beside the handler: {svc:#?}"
    );
    let queued = conns
        .iter()
        .find(|t| !t.awaits.is_empty())
        .unwrap_or_else(|| panic!("{what}: a request waiting on the worker: {d}"));
    assert_eq!(queued.awaits, [worker.id], "{what}: {queued:#?}");
    let svc = service_block(queued);
    assert!(
        svc.children.iter().any(|c| c.frame.kind == FrameKind::Leaf
            && c.frame.annotation().as_deref()
                == Some("waiting on the tower Buffer's worker task")),
        "{what}: {svc:#?}"
    );
}

/// `Framed` lines driven by `for_each_concurrent`: three lines in `handle_line → slow_lookup`
/// under the busy connection's `serve_conn` (one branch each in the verbose view, merged with
/// a count in the default view), and the idle connection reading its socket.
fn check_lines(clean: &Dump, raw: &Dump, what: &str) {
    const FILE: &str = "src/bin/lines-target.rs";
    let serve = "lines_target::serve_conn";
    let busy_line = line_in(LINES_SOURCE, ".for_each_concurrent(") + 1;
    let idle_line = line_in(LINES_SOURCE, "framed.next().await");
    let busy: Vec<&Task> = clean
        .tasks
        .iter()
        .filter(|t| is_at(root_of(t), FrameKind::AsyncFn, serve, FILE, busy_line))
        .collect();
    assert_eq!(busy.len(), 1, "{what}: the busy connection: {clean}");
    let r = root_of(busy[0]);
    let handle: Vec<&Node> = r
        .children
        .iter()
        .filter(|c| c.frame.function == "lines_target::handle_line")
        .collect();
    assert_eq!(handle.len(), 1, "{what}: {r:#?}");
    assert!(is_at(
        handle[0],
        FrameKind::AsyncFn,
        "lines_target::handle_line",
        FILE,
        line_in(LINES_SOURCE, "slow_lookup(&line).await")
    ));
    assert_eq!(
        handle[0].frame.annotation().as_deref(),
        Some("3 branches"),
        "{what}: {r:#?}"
    );
    let [lookup] = &handle[0].children[..] else {
        panic!("{what}: {r:#?}")
    };
    assert!(is_at(
        lookup,
        FrameKind::AsyncFn,
        "lines_target::slow_lookup",
        FILE,
        line_in(LINES_SOURCE, "NEVER.notified().await")
    ));
    assert!(
        r.children
            .iter()
            .any(|c| is_io(c.frame.annotation().as_deref(), "read", what)),
        "{what}: the Framed's socket: {r:#?}"
    );
    // Verbose: three branches, each its own `handle_line`.
    let t = raw.task(busy[0].id).expect("the busy task, verbose");
    let n = all_nodes(&t.trace.roots)
        .into_iter()
        .filter(|n| n.frame.function == "lines_target::handle_line")
        .count();
    assert_eq!(n, 3, "{what}: {t:#?}");
    let idle: Vec<&Task> = clean
        .tasks
        .iter()
        .filter(|t| is_at(root_of(t), FrameKind::AsyncFn, serve, FILE, idle_line))
        .collect();
    assert_eq!(idle.len(), 1, "{what}: the idle connection: {clean}");
    assert!(
        all_nodes(&root_of(idle[0]).children).iter().any(|c| is_io(
            c.frame.annotation().as_deref(),
            "read",
            what
        )),
        "{what}: {:#?}",
        idle[0]
    );
}

/// A `ping` line is answered `pong`.
fn assert_pongs(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert_eq!(answer, "pong\n");
}

/// Whether an I/O leaf's note says `op` (read, accept, readiness): from a live process (or a
/// snapshot of one) with its socket (`waiting to read from 127.0.0.1:51234 (fd 9)`), from a
/// core without.
fn is_io(note: Option<&str>, op: &str, what: &str) -> bool {
    let Some(note) = note else { return false };
    let live = !what.ends_with("core");
    match (op, live) {
        ("read", true) => {
            note.starts_with("waiting to read from 127.0.0.1:") && note.ends_with(')')
        }
        ("accept", true) => {
            note.starts_with("waiting to accept on 127.0.0.1:") && note.ends_with(')')
        }
        ("readiness", true) => {
            note.starts_with("waiting on I/O readiness (fd ") && note.contains(" to 127.0.0.1:")
        }
        ("read", false) => note == "waiting on socket read",
        ("accept", false) => note == "waiting on socket accept",
        ("readiness", false) => note == "waiting on I/O readiness",
        _ => panic!("no such op {op}"),
    }
}

/// Runs the target `name` of the build `profile` until `ready`; reads it live (the default
/// view, and the verbose one), then from a core; `serves` checks it still answers after each.
fn live_and_core(
    profile: &str,
    name: &str,
    serves: fn(u16),
    settled: fn(&Dump) -> bool,
    check: &dyn Fn(&Dump, &Dump, &str),
) {
    let exe = build(profile).join(name);
    let exe = exe.to_str().unwrap();
    let mut t = Target::spawn(exe, &[]);
    let port: u16 = t.wait_for("port ").parse().unwrap();
    t.wait_for("ready");
    settle(t.pid, settled);
    let pid = t.pid.to_string();
    let raw = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    check(
        &clean_dump(&["attach", &pid]),
        &raw,
        &format!("{name} {profile}, live"),
    );
    serves(port);
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("{name}-{profile}"));
    if let Some(core) = gcore(t.pid, &prefix) {
        let clean = clean_dump(&["core", &core, "--exe", exe]);
        let raw = dump_of(&tasktrace(&["core", &core, "--exe", exe, "--json"]));
        let _ = std::fs::remove_file(&core);
        check(&clean, &raw, &format!("{name} {profile}, core"));
    }
    serves(port);
}

/// The second request has reached the `Buffer`'s worker (it awaits the worker's task).
fn request_at_worker(d: &Dump) -> bool {
    d.tasks.iter().any(|t| !t.awaits.is_empty())
}

fn any_state(_: &Dump) -> bool {
    true
}

#[test]
fn tower_stack_dev() {
    live_and_core(
        "dev",
        "service-stack-target",
        assert_serves,
        request_at_worker,
        &|d, _, w| check_stack(d, w),
    );
}

#[test]
fn tower_stack_release() {
    live_and_core(
        "release",
        "service-stack-target",
        assert_serves,
        request_at_worker,
        &|d, _, w| check_stack(d, w),
    );
}

#[test]
fn framed_lines_dev() {
    live_and_core("dev", "lines-target", assert_pongs, any_state, &check_lines);
}

#[test]
fn framed_lines_release() {
    live_and_core(
        "release",
        "lines-target",
        assert_pongs,
        any_state,
        &check_lines,
    );
}

/// mini-redis 0.4.1 from crates.io: async methods named with their type (`Handler::run`,
/// `Subscribe::apply`, `Listener::accept`), the I/O leaves naming their operation, and no
/// compiler-made name in the default view.
fn check_mini_redis(clean: &Dump, _raw: &Dump, what: &str) {
    let text = clean.to_string();
    for bad in ["{impl#", "_env#", "{closure"] {
        assert!(
            !text.contains(bad),
            "{what}: {bad} in the default view:\n{text}"
        );
    }
    let handlers: Vec<&Task> = rooted_at(clean, "mini_redis::server::Listener::run");
    assert_eq!(handlers.len(), 2, "{what}: two connection handlers: {text}");
    for h in &handlers {
        let [run] = &root_of(h).children[..] else {
            panic!("{what}: {h:#?}")
        };
        assert_eq!(
            run.frame.function, "mini_redis::server::Handler::run",
            "{what}: {h:#?}"
        );
        assert_eq!(run.frame.kind, FrameKind::AsyncFn);
    }
    let nodes: Vec<&Node> = handlers
        .iter()
        .flat_map(|h| all_nodes(&h.trace.roots))
        .collect();
    let apply = nodes
        .iter()
        .find(|n| n.frame.function == "mini_redis::cmd::subscribe::Subscribe::apply")
        .unwrap_or_else(|| panic!("{what}: Subscribe::apply: {text}"));
    assert_eq!(apply.frame.kind, FrameKind::AsyncFn);
    let under_apply = all_nodes(&apply.children);
    assert!(
        under_apply
            .iter()
            .any(|n| is_io(n.frame.annotation().as_deref(), "read", what)),
        "{what}: a socket read under Subscribe::apply: {apply:#?}"
    );
    assert!(
        under_apply
            .iter()
            .any(|n| n.frame.annotation().as_deref() == Some("waiting on broadcast receive")),
        "{what}: a broadcast receive under Subscribe::apply: {apply:#?}"
    );
    let reads = nodes
        .iter()
        .filter(|n| is_io(n.frame.annotation().as_deref(), "read", what))
        .count();
    assert_eq!(reads, 2, "{what}: each handler reads its socket: {text}");
    let accept = clean
        .tasks
        .iter()
        .flat_map(|t| all_nodes(&t.trace.roots))
        .find(|n| n.frame.function == "mini_redis::server::Listener::accept")
        .unwrap_or_else(|| panic!("{what}: Listener::accept: {text}"));
    let [leaf] = &accept.children[..] else {
        panic!("{what}: {accept:#?}")
    };
    assert!(
        is_io(leaf.frame.annotation().as_deref(), "accept", what),
        "{what}: {leaf:#?}"
    );
}

/// A `GET` on a new connection is answered (RESP: `$5` then `world`).
fn assert_redis_answers(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n").unwrap();
    let mut buf = [0u8; 11];
    s.read_exact(&mut buf).expect("an answer");
    assert_eq!(&buf, b"$5\r\nworld\r\n");
}

#[test]
fn mini_redis_dev() {
    live_and_core(
        "dev",
        "mini-redis-target",
        assert_redis_answers,
        any_state,
        &check_mini_redis,
    );
}

#[test]
fn mini_redis_release() {
    live_and_core(
        "release",
        "mini-redis-target",
        assert_redis_answers,
        any_state,
        &check_mini_redis,
    );
}

/// tonic: the unary call down to `approve → wait_for_approval → [waiting on Notify]`, the
/// server-streaming call's stream down to `next_update → [waiting on mpsc channel]`, each in
/// its HTTP/2 stream's task under the connection task that drives them.
fn check_tonic_server(d: &Dump, what: &str) {
    const FILE: &str = "src/bin/tonic-target.rs";
    let line = |t: &str| line_in(TONIC_SOURCE, t);
    let streams: Vec<&Task> = rooted_at(d, "hyper::proto::h2::server::H2Stream");
    assert_eq!(streams.len(), 2, "{what}: two stream tasks: {d}");
    let find = |block_line: u32| {
        streams
            .iter()
            .find(|t| {
                let [b] = &root_of(t).children[..] else {
                    return false;
                };
                b.frame.kind == FrameKind::AsyncBlock
                    && b.frame
                        .location
                        .as_ref()
                        .is_some_and(|l| l.file.ends_with(FILE) && l.line == block_line)
            })
            .unwrap_or_else(|| panic!("{what}: a stream task at line {block_line}: {d}"))
    };
    let unary = find(line("grpc.unary(ApproveSvc(app), req).await"));
    let [block] = &root_of(unary).children[..] else {
        unreachable!()
    };
    let [approve] = &block.children[..] else {
        panic!("{what}: {block:#?}")
    };
    assert!(
        is_at(
            approve,
            FrameKind::AsyncFn,
            "tonic_target::approve",
            FILE,
            line("wait_for_approval(&app, order).await")
        ),
        "{what}: {approve:#?}"
    );
    let [wait] = &approve.children[..] else {
        panic!("{what}: {approve:#?}")
    };
    assert!(is_at(
        wait,
        FrameKind::AsyncFn,
        "tonic_target::wait_for_approval",
        FILE,
        line("approved.await")
    ));
    assert_eq!(
        wait.children[0].frame.annotation().as_deref(),
        Some("waiting on Notify")
    );
    let streaming = find(line("next_update(&mut rx).await?"));
    let [block] = &root_of(streaming).children[..] else {
        unreachable!()
    };
    assert_eq!(
        block.frame.function, "tonic_target::watch",
        "{what}: {block:#?}"
    );
    let [next] = &block.children[..] else {
        panic!("{what}: {block:#?}")
    };
    assert!(
        is_at(
            next,
            FrameKind::AsyncFn,
            "tonic_target::next_update",
            FILE,
            line("updates.recv().await")
        ),
        "{what}: {next:#?}"
    );
    assert_eq!(
        next.children[0].frame.annotation().as_deref(),
        Some("waiting on mpsc receive")
    );
    let conn = |t: &Task| -> u64 {
        stream_connection(root_of(t))
            .unwrap_or_else(|| panic!("{what}: the stream names its connection: {t:#?}"))
    };
    assert_eq!(conn(unary), conn(streaming), "{what}: one connection");
    let c = root_of(d.task(conn(unary)).expect("the connection task"));
    assert_eq!(
        c.frame.function, "tonic::transport::server::serve_connection",
        "{what}: {c:#?}"
    );
    assert!(
        c.frame
            .annotation()
            .as_deref()
            .is_some_and(|n| n.contains("drives 2 HTTP/2 streams")),
        "{what}: {c:#?}"
    );
}

/// The tonic client: the unary call waits for its response on its stream's task; the
/// streaming call reads the response body.
fn check_tonic_client(d: &Dump, what: &str) {
    let leaves: Vec<(&Task, &Node)> = d
        .tasks
        .iter()
        .flat_map(|t| all_nodes(&t.trace.roots).into_iter().map(move |n| (t, n)))
        .filter(|(_, n)| n.frame.kind == FrameKind::Leaf)
        .collect();
    let (unary, _) = leaves
        .iter()
        .find(|(_, n)| n.frame.annotation().as_deref() == Some("waiting for the HTTP response"))
        .unwrap_or_else(|| panic!("{what}: the unary call: {d}"));
    let [stream_task] = unary.awaits[..] else {
        panic!("{what}: {unary:#?}")
    };
    assert!(
        stream_connection(root_of(d.task(stream_task).expect("its stream task"))).is_some(),
        "{what}: {d}"
    );
    assert!(
        leaves
            .iter()
            .any(|(_, n)| n.frame.annotation().as_deref() == Some("waiting on the HTTP body")),
        "{what}: the streaming call reads its body: {d}"
    );
}

/// The unary handler's frame shows the tonic `Request` it keeps by its message, and the
/// message it borrows from it.
fn check_tonic_values(d: &Dump, what: &str) {
    let approve: Vec<&Node> = d
        .tasks
        .iter()
        .flat_map(|t| t.trace.walk())
        .map(|(_, n)| n)
        .filter(|n| n.frame.function == "tonic_target::approve")
        .collect();
    let [approve] = &approve[..] else {
        panic!("{what}: one approve frame: {d}")
    };
    let order = Value::Struct {
        name: "Order".into(),
        fields: vec![NamedValue {
            name: "id".into(),
            value: Value::Int(7),
        }],
    };
    let value = |name: &str| {
        approve
            .frame
            .values
            .iter()
            .find(|v| v.name == name)
            .map(|v| &v.value)
    };
    assert_eq!(
        value("request"),
        Some(&Value::Struct {
            name: "Request".into(),
            fields: vec![NamedValue {
                name: "message".into(),
                value: order.clone(),
            }],
        }),
        "{what}: {:?}",
        approve.frame.values
    );
    assert_eq!(value("order"), Some(&order), "{what}");
}

fn tonic_service(profile: &str) {
    let exe = build(profile).join("tonic-target");
    let exe = exe.to_str().unwrap();
    let mut server = Target::spawn(exe, &["serve"]);
    let port = server.wait_for("port ");
    let client = Target::spawn(exe, &["client", &port]);
    server.wait_for("ready");
    settle(server.pid, any_state);
    let pings = || {
        let mut ping = Target::spawn(exe, &["ping", &port]);
        assert_eq!(ping.wait_for("pong "), "1");
    };
    check_tonic_server(
        &clean_dump(&["attach", &server.pid.to_string()]),
        &format!("tonic {profile}, live"),
    );
    // With values, the unary call's handler shows the request's message.
    let d = clean_dump(&["attach", &server.pid.to_string(), "--values"]);
    check_tonic_server(&d, &format!("tonic {profile}, live, values"));
    check_tonic_values(&d, &format!("tonic {profile}, values"));
    pings();
    check_tonic_client(
        &clean_dump(&["attach", &client.pid.to_string()]),
        &format!("tonic client {profile}"),
    );
    let prefix = target_dir()
        .join("framework-cores")
        .join(format!("tonic-{profile}"));
    if let Some(core) = gcore(server.pid, &prefix) {
        let d = clean_dump(&["core", &core, "--exe", exe]);
        let _ = std::fs::remove_file(&core);
        check_tonic_server(&d, &format!("tonic {profile}, core"));
    }
    pings();
}

#[test]
fn tonic_service_dev() {
    tonic_service("dev");
}

#[test]
fn tonic_service_release() {
    tonic_service("release");
}

// ---------------------------------------------------------------------------------------------
// One program, one tree: the in-process dump and `tasktrace attach` agree.

/// The kind of a wait, as both producers say it (the same `WaitOn`: the words are the model's).
fn wait_kind(on: WaitOn) -> String {
    on.json_name()
}

/// A task's trace as both producers can state it: for each root-to-leaf path, its frames with
/// a source location (function, kind, line), and the kinds of wait at its end (in process the
/// note sits on the last such frame, `waiting on mpsc receive, Notify`; from outside on leaf
/// frames below it).
type Waits = std::collections::HashMap<Vec<(String, FrameKind, u32)>, Vec<String>>;

fn waits_of(t: &Task) -> Waits {
    let mut out = Waits::new();
    for path in t.trace.paths() {
        let frames: Vec<(String, FrameKind, u32)> = path
            .iter()
            .filter_map(|f| Some((f.function.clone(), f.kind, f.location.as_ref()?.line)))
            .collect();
        let kinds = out.entry(frames).or_default();
        for f in &path {
            kinds.extend(f.waits.iter().map(|w| wait_kind(w.on)));
        }
        kinds.sort_unstable();
        kinds.dedup();
    }
    out
}

fn one_program_one_tree(profile: &str) {
    let exe = build(profile).join("both-ways-target");
    let mut t = Target::spawn(exe.to_str().unwrap(), &[]);
    let own: Dump = serde_json::from_str(&t.wait_for("dump ")).expect("its own dump, JSON");
    t.wait_for("ready");
    let outside = clean_dump(&["attach", &t.pid.to_string()]);
    let what = format!("both ways, {profile}");
    assert_eq!(own.tasks.len(), 7, "{what}: {own}");
    for task in &own.tasks {
        let ours = waits_of(task);
        assert!(
            ours.keys().all(|frames| !frames.is_empty()),
            "{what}: every path has user frames: {task:#?}"
        );
        assert!(
            ours.values()
                .all(|kinds| !kinds.is_empty() && !kinds.iter().any(|k| k == "in")),
            "{what}: every path says what it waits on: {ours:?}"
        );
        let same = outside.tasks.iter().find(|o| waits_of(o) == ours);
        assert!(
            same.is_some(),
            "{what}: task {} ({:?}) in process:\n{}\nnot the same from outside:\n{outside}",
            task.id,
            task.name,
            task.trace
        );
    } // The `lock` task waits on the mutex main's future holds (an `OwnedMutexGuard` saved in
      // its state machine, found on the main thread's stack): only a read from outside names
      // the holder.
    let locker = outside
        .tasks
        .iter()
        .find(|t| t.trace.to_string().contains("both_ways_target::locker"))
        .unwrap_or_else(|| panic!("{what}: no locker task: {outside}"));
    assert!(
        locker
            .trace
            .to_string()
            .contains(&format!("held by the block_on future of thread {}", t.pid)),
        "{what}: {}",
        locker.trace
    );
}

#[test]
fn one_program_one_tree_dev() {
    one_program_one_tree("dev");
}

#[test]
fn one_program_one_tree_release() {
    one_program_one_tree("release");
}
