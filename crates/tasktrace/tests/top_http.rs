//! `GET /debug/tasks/top`: the table of `tasktrace top --once`, taken in process, over real
//! HTTP on a real TCP listener, from a real multi-thread runtime whose tasks wait at known
//! lines (a timer inside an async fn, a channel's receive). With the `snapshot` feature, a
//! plain `tokio::spawn` task is in the table too.
//!
//! Waits are bounded: each request has a deadline, and a table is asked for again until every
//! task shows where it is known to wait (20 s at most). Nothing asserts on timing.

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::runtime;
use tokio::sync::mpsc;

const SOURCE: &str = include_str!("top_http.rs");

/// The line of this file with `marker` on it (its first: the wait itself).
fn line(marker: &str) -> u32 {
    support::line_of(SOURCE, marker)
}

async fn top_nap() {
    tokio::time::sleep(Duration::from_secs(3600)).await; // nap await
}

async fn top_napper() {
    top_nap().await
}

async fn top_listen(mut rx: mpsc::Receiver<u32>) {
    while rx.recv().await.is_some() {} // listen await
}

/// One GET: status, content type, body.
async fn get(addr: SocketAddr, target: &str) -> (u16, String, String) {
    let answer = support::http::get(addr, target).await;
    (answer.status, answer.content_type.clone(), answer.text())
}

/// The row of the task named `name`.
fn row<'v>(table: &'v Value, name: &str) -> Option<&'v Value> {
    table["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
}

/// True when the task named `name` is idle with `root` as its root, waiting in `function` at
/// the line with `marker`, its wait (the leaf as the model words it) saying `on`.
fn waits_at(table: &Value, name: &str, root: &str, function: &str, marker: &str, on: &str) -> bool {
    let Some(r) = row(table, name) else {
        return false;
    };
    r["state"] == "idle"
        && r["root"] == root
        && r["where"]["function"] == function
        && r["where"]["line"] == line(marker)
        && r["where"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("top_http.rs"))
        && r["waits_on"].as_str().is_some_and(|w| w.contains(on))
}

/// Asks for the JSON table until `done` holds, 20 s at most.
async fn table_until(addr: SocketAddr, target: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, content_type, body) = get(addr, target).await;
        assert_eq!(
            (status, &*content_type),
            (200, "application/json"),
            "{body}"
        );
        let table: Value = serde_json::from_str(&body).expect("a JSON table");
        if done(&table) {
            return table;
        }
        assert!(
            Instant::now() < until,
            "the tasks did not show where they wait within 20 s:\n{body}"
        );
    }
}

#[test]
fn the_table_of_tasks_waiting_at_known_lines() {
    runtime().block_on(async {
        let napper = tasktrace::spawn_named("top-napper", top_napper());
        let (tx, rx) = mpsc::channel(1);
        let listener = tasktrace::spawn_named("top-listener", top_listen(rx));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let server = tokio::spawn(tasktrace::http::serve(tcp));

        let target = "/debug/tasks/top?samples=2&interval=0.1&format=json";
        let napper_waits = |t: &Value| {
            waits_at(
                t,
                "top-napper",
                "top_napper",
                "top_nap",
                "// nap await",
                "waiting on timer",
            )
        };
        let listener_waits = |t: &Value| {
            waits_at(
                t,
                "top-listener",
                "top_listen",
                "top_listen",
                "// listen await",
                "waiting on mpsc receive",
            )
        };
        let table = table_until(addr, target, |t| napper_waits(t) && listener_waits(t)).await;
        assert_eq!(table["in_process"], true, "{table:#}");
        assert_eq!(table["pid"], std::process::id());
        assert_eq!(table["samples"], 2);
        // 0.1 s, or the longest dump if one took longer.
        assert!(table["interval_ms"].as_u64().is_some_and(|ms| ms >= 100));
        assert!(table["dump_ms"]["median"].is_number(), "{table:#}");
        assert!(table.get("stopped_ms").is_none());
        for name in ["top-napper", "top-listener"] {
            let r = row(&table, name).unwrap();
            // Idle at the same spot in both samples: a wait seen since the first one.
            assert!(r["waited_ms"].is_u64(), "{r:#}");
            assert_eq!(r["waiting_since_first_sample"], true, "{r:#}");
            assert_eq!(r["busy_pct"], 0, "{r:#}");
            assert_eq!(r["other_branches"], 0, "{r:#}");
        }

        // task= keeps the rows of the tasks whose root matches.
        let only = table_until(addr, &format!("{target}&task=top_listen"), listener_waits).await;
        let tasks = only["tasks"].as_array().unwrap();
        assert!(tasks.iter().all(|t| t["root"] == "top_listen"), "{only:#}");

        // text: the header's columns, then the rows.
        let (status, content_type, text) = get(
            addr,
            "/debug/tasks/top?samples=2&interval=0.1&task=top_napper%7Ctop_listen",
        )
        .await;
        assert_eq!(
            (status, &*content_type),
            (200, "text/plain; charset=utf-8"),
            "{text}"
        );
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert!(
            first.starts_with(&format!("in-process, process {}: ", std::process::id()))
                && first.contains("; 2 samples ")
                && first.contains("s apart; each dump took: median"),
            "{text}"
        );
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .split("  ")
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(
            header,
            ["ID", "NAME", "STATE", "ROOT", "WHERE", "WAITS ON", "WAITED", "BUSY"],
            "{text}"
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 2, "{text}");
        let napper_row = rows.iter().find(|r| r.contains("top-napper")).unwrap();
        let at = format!("top_nap top_http.rs:{}", line("// nap await"));
        for cell in ["idle", "top_napper", &at, "waiting on timer", "0%"] {
            assert!(napper_row.contains(cell), "{cell} in {napper_row}\n{text}");
        }
        let listen_row = rows.iter().find(|r| r.contains("top-listener")).unwrap();
        let at = format!("top_listen top_http.rs:{}", line("// listen await"));
        assert!(listen_row.contains(&at), "{at} in {listen_row}\n{text}");

        // Bad parameters: 400 with one line; the server goes on.
        for bad in [
            "/debug/tasks/top?samples=0",
            "/debug/tasks/top?samples=61",
            "/debug/tasks/top?interval=0.01",
            "/debug/tasks/top?interval=60",
            "/debug/tasks/top?format=svg",
            "/debug/tasks/top?task=(",
            "/debug/tasks/top?rate=10",
            "/debug/tasks/top?values=1",
        ] {
            let (status, _, body) = get(addr, bad).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(body.lines().count(), 1, "{bad}: {body}");
        }
        let (status, _, _) = get(addr, "/debug/tasks/top?samples=1").await;
        assert_eq!(status, 200);

        drop(tx);
        napper.abort();
        listener.abort();
        server.abort();
    });
}

/// With the `snapshot` feature the dumps list every tokio task: a plain `tokio::spawn` one is
/// a row of the table, waiting where it waits.
#[cfg(feature = "snapshot")]
#[test]
fn a_plain_tokio_task_is_in_the_table() {
    runtime().block_on(async {
        let (tx, rx) = mpsc::channel(1);
        let plain = tokio::spawn(top_listen(rx));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let server = tokio::spawn(tasktrace::http::serve(tcp));
        let target = "/debug/tasks/top?samples=2&interval=0.1&format=json&task=top_listen";
        let table = table_until(addr, target, |t| {
            t["tasks"].as_array().is_some_and(|tasks| {
                tasks.iter().any(|r| {
                    r["name"].is_null()
                        && r["state"] == "idle"
                        && r["root"] == "top_listen"
                        && r["where"]["line"] == line("// listen await")
                        && r["waits_on"]
                            .as_str()
                            .is_some_and(|w| w.contains("waiting on mpsc receive"))
                        && r["waited_ms"].is_u64()
                })
            })
        })
        .await;
        assert_eq!(table["in_process"], true);
        drop(tx);
        plain.abort();
        server.abort();
    });
}
