//! The production hooks against a real running service: a tokio runtime with a dozen
//! registered tasks, the HTTP endpoint over real TCP, `SIGUSR1` sent to a real child process,
//! and the watchdog's `tracing` events captured by a subscriber.
//!
//! Every wait has a deadline; nothing asserts on timing beyond "at least this long".

mod support;

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::http::{get, request};
use tasktrace::model::{Dump, Frame};
use tokio::sync::oneshot;

/// The longest any single wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The HTTP test and the idle-watchdog test wake every registered task (dumps, captures):
/// they take turns, so that one does not reset the other's idle tasks.
static WAKES_EVERY_TASK: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    WAKES_EVERY_TASK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The service: twelve tasks in three shapes
// ---------------------------------------------------------------------------------------------

async fn serve_orders(rx: oneshot::Receiver<()>) {
    read_order(rx).await
}

async fn read_order(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn ticker() {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn fan_out(a: oneshot::Receiver<()>, b: oneshot::Receiver<()>) {
    tokio::join!(wait_left(a), wait_right(b));
}

async fn wait_left(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn wait_right(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// Twelve registered tasks named `{prefix}orders-N`, `{prefix}ticker-N`, `{prefix}fanout-N`;
/// aborted on drop.
struct Service {
    tasks: Vec<tasktrace::JoinHandle<()>>,
    _senders: Vec<oneshot::Sender<()>>,
}

impl Service {
    fn start(prefix: &str) -> Service {
        let mut tasks = Vec::new();
        let mut senders = Vec::new();
        for i in 0..4 {
            let (tx, rx) = oneshot::channel();
            senders.push(tx);
            tasks.push(tasktrace::spawn_named(
                format!("{prefix}orders-{i}"),
                serve_orders(rx),
            ));
        }
        for i in 0..4 {
            tasks.push(tasktrace::spawn_named(
                format!("{prefix}ticker-{i}"),
                ticker(),
            ));
        }
        for i in 0..4 {
            let (ta, a) = oneshot::channel();
            let (tb, b) = oneshot::channel();
            senders.extend([ta, tb]);
            tasks.push(tasktrace::spawn_named(
                format!("{prefix}fanout-{i}"),
                fan_out(a, b),
            ));
        }
        Service {
            tasks,
            _senders: senders,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn ends_with_fn(frame: &Frame, name: &str) -> bool {
    frame.function.ends_with(&format!("::{name}"))
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

#[test]
fn http_answers_every_format_of_a_running_service() {
    let _turn = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(http_answers_every_format());
}

async fn http_answers_every_format() {
    let service = Service::start("http-");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(tasktrace::http::serve(listener));

    // text (the default)
    let text = get(addr, "/debug/tasks").await;
    assert_eq!(text.status, 200);
    assert_eq!(text.content_type, "text/plain; charset=utf-8");
    let body = text.text();
    for i in 0..4 {
        for kind in ["orders", "ticker", "fanout"] {
            assert!(
                body.contains(&format!("\"http-{kind}-{i}\"")),
                "{kind}-{i} in:\n{body}"
            );
        }
    }
    let orders = body.find("\"http-orders-0\"").unwrap();
    let serve = orders + body[orders..].find("serve_orders").expect("its root frame");
    assert!(body[serve..].find("read_order").is_some(), "{body}");

    // json: the model, with the tree of each task
    let json = get(addr, "/debug/tasks?format=json").await;
    assert_eq!(
        (json.status, &*json.content_type),
        (200, "application/json")
    );
    let dump: Dump = serde_json::from_slice(&json.body).expect("a dump in JSON");
    let named = |name: &str| {
        dump.tasks
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} in the JSON dump"))
    };
    for i in 0..4 {
        let orders = named(&format!("http-orders-{i}"));
        let [root] = &orders.trace.roots[..] else {
            panic!("one root: {:#?}", orders.trace)
        };
        assert!(
            ends_with_fn(&root.frame, "serve_orders"),
            "{:?}",
            root.frame
        );
        assert_eq!(root.children.len(), 1);
        let read = &root.children[0];
        assert!(ends_with_fn(&read.frame, "read_order"), "{:?}", read.frame);
        let leaf = orders.trace.paths().pop().unwrap().pop().unwrap().clone();
        assert_eq!(
            leaf.annotation().as_deref(),
            Some("waiting on oneshot receive")
        );
        assert!(orders
            .spawned_at
            .as_ref()
            .is_some_and(|l| l.file.ends_with("hooks.rs")));

        // join!(wait_left, wait_right): two branches under fan_out
        let fanout = named(&format!("http-fanout-{i}"));
        let paths = fanout.trace.paths();
        assert_eq!(paths.len(), 2, "two branches: {}", fanout.trace);
        for (path, branch) in paths.iter().zip(["wait_left", "wait_right"]) {
            assert!(ends_with_fn(path[0], "fan_out"), "{}", fanout.trace);
            assert!(
                path.iter().any(|f| ends_with_fn(f, branch)),
                "{branch} in {}",
                fanout.trace
            );
        }
        let ticker = named(&format!("http-ticker-{i}"));
        assert!(ticker.trace.to_string().contains("waiting on timer"));
    }

    // folded: one line per distinct stack, counting tasks
    let folded = get(addr, "/debug/tasks?format=folded").await;
    assert_eq!(folded.status, 200);
    let body = folded.text();
    let line = body
        .lines()
        .find(|l| l.contains("serve_orders") && l.contains("read_order"))
        .unwrap_or_else(|| panic!("the orders stack in:\n{body}"));
    assert!(
        line.find("serve_orders") < line.find("read_order"),
        "{line}"
    );
    assert!(line.ends_with(" 4"), "four orders tasks: {line}");

    // svg: a flame graph
    let svg = get(addr, "/debug/tasks?format=svg").await;
    assert_eq!((svg.status, &*svg.content_type), (200, "image/svg+xml"));
    let body = svg.text();
    assert!(
        body.starts_with("<?xml") && body.contains("<svg"),
        "{body:.200}"
    );
    assert!(body.contains("serve_orders"));

    // pprof: gunzipped and decoded as profile.proto
    let pprof = get(addr, "/debug/tasks?format=pprof").await;
    assert_eq!(
        (pprof.status, &*pprof.content_type),
        (200, "application/octet-stream")
    );
    let profile = profile::decode(&pprof.body);
    let stacks = profile.stacks_of("http-orders-2");
    assert_eq!(stacks.len(), 1, "one path, one sample");
    let stack = &stacks[0];
    let root = stack.last().expect("a root");
    assert!(root.contains("serve_orders"), "root last: {stack:?}");
    let read = stack.iter().position(|f| f.contains("read_order")).unwrap();
    assert!(read < stack.len() - 1, "leaf first: {stack:?}");
    assert_eq!(profile.stacks_of("http-fanout-1").len(), 2, "two branches");
    assert_eq!(profile.sample_type(), ("tasks", "count"));
    assert!(
        !stack.iter().any(|f| f.contains("{{closure}}")),
        "the default view: {stack:?}"
    );
    let raw = get(addr, "/debug/tasks?format=pprof-raw").await;
    let raw = profile::decode(&raw.body);
    let stack = &raw.stacks_of("http-orders-2")[0];
    assert!(
        stack.last().unwrap().contains("serve_orders::{{closure}}"),
        "{stack:?}"
    );
    assert!(stack.len() > 2, "every frame: {stack:?}");
    go_pprof_reads(&pprof.body);

    // fresh=1: every task captured anew, the same tasks and traces
    let fresh = get(addr, "/debug/tasks?format=json&fresh=1").await;
    assert_eq!(fresh.status, 200);
    let dump: Dump = serde_json::from_slice(&fresh.body).unwrap();
    let orders = dump
        .tasks
        .iter()
        .find(|t| t.name.as_deref() == Some("http-orders-2"))
        .expect("http-orders-2 in a fresh dump");
    assert!(!orders.trace.is_empty(), "{}", orders.header());

    // task=<regex>: the tasks whose root frame matches
    let only = get(addr, "/debug/tasks?format=json&task=fan_out%24").await;
    assert_eq!(only.status, 200);
    let dump: Dump = serde_json::from_slice(&only.body).unwrap();
    let names: Vec<&str> = dump
        .tasks
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    for i in 0..4 {
        assert!(names.contains(&&*format!("http-fanout-{i}")), "{names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("http-orders")));
    assert!(dump.tasks.iter().all(|t| t
        .trace
        .roots
        .iter()
        .any(|r| ends_with_fn(&r.frame, "fan_out"))));
    let raw = get(
        addr,
        "/debug/tasks?task=hooks%3A%3Aticker%3A%3A%5C%7B%5C%7Bclosure",
    )
    .await;
    assert!(
        raw.text().contains("\"http-ticker-3\""),
        "the raw name matches too"
    );
    assert!(!raw.text().contains("\"http-orders-0\""));

    // errors: one line each; HEAD works; other methods do not
    for (target, status) in [
        ("/debug/tasks?format=yaml", 400),
        ("/debug/tasks?task=%5Bunclosed", 400),
        ("/debug/tasks?colour=blue", 400),
        ("/debug/tasks?fresh=maybe", 400),
        ("/metrics", 404),
        ("/", 404),
    ] {
        let answer = get(addr, target).await;
        assert_eq!(answer.status, status, "{target}");
        assert_eq!(
            answer.text().lines().count(),
            1,
            "{target}: {}",
            answer.text()
        );
    }
    assert_eq!(request(addr, "POST", "/debug/tasks").await.status, 405);
    assert_eq!(request(addr, "HEAD", "/debug/tasks").await.status, 200);

    // A recording over time: every sample has the four orders tasks at the same place, so
    // their stack sums four per sample.
    let rec = get(
        addr,
        "/debug/tasks/record?seconds=1&rate=10&format=folded&task=serve_orders",
    )
    .await;
    assert_eq!(rec.status, 200, "{}", rec.text());
    let folded = rec.text();
    let orders: Vec<&str> = folded
        .lines()
        .filter(|l| l.contains("serve_orders") && l.contains("read_order"))
        .collect();
    assert_eq!(orders.len(), 1, "one summed stack: {folded}");
    let line = orders[0];
    assert!(
        line.find("serve_orders") < line.find("read_order"),
        "serve_orders above read_order: {line}"
    );
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n % 4 == 0 && (4..=44).contains(&n), "{folded}");
    assert!(!folded.contains("ticker"), "filtered: {folded}");
    let scope = get(addr, "/debug/tasks/record?seconds=0.3&format=speedscope").await;
    assert_eq!(scope.content_type, "application/json");
    let v: serde_json::Value = serde_json::from_str(&scope.text()).expect("speedscope JSON");
    assert_eq!(v["profiles"][0]["type"], "sampled");
    let svg = get(addr, "/debug/tasks/record?seconds=0.3").await;
    assert!(svg.text().contains("<svg"), "svg by default");
    for target in [
        "/debug/tasks/record?seconds=0",
        "/debug/tasks/record?seconds=1000",
        "/debug/tasks/record?rate=1000",
        "/debug/tasks/record?format=text",
    ] {
        let answer = get(addr, target).await;
        assert_eq!(answer.status, 400, "{target}");
        assert_eq!(answer.text().lines().count(), 1, "{target}");
    }

    // Still serving, the service still there.
    assert_eq!(get(addr, "/debug/tasks?format=folded").await.status, 200);
    assert!(!server.is_finished());
    server.abort();
    drop(service);
}

/// `http::respond` mounted in a hyper service of the program's own, next to its routes.
#[test]
fn respond_mounts_in_an_existing_hyper_service() {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};

    async fn app(
        req: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        if req.uri().path() == tasktrace::http::PATH {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let answer = tasktrace::http::respond(target).await;
            return Ok(hyper::Response::builder()
                .status(answer.status)
                .header("content-type", answer.content_type)
                .body(Full::new(Bytes::from(answer.body)))
                .unwrap());
        }
        Ok(hyper::Response::new(Full::new(Bytes::from_static(
            b"the app's own route\n",
        ))))
    }

    let _turn = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _service = Service::start("mount-");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            hyper::service::service_fn(app),
                        )
                        .await;
                });
            }
        });
        let own = get(addr, "/").await;
        assert_eq!((own.status, &*own.text()), (200, "the app's own route\n"));
        let tasks = get(addr, "/debug/tasks?format=grouped&task=serve_orders").await;
        assert_eq!(tasks.status, 200);
        let text = tasks.text();
        assert!(text.contains("4 tasks like this"), "{text}");
        assert!(text.contains("read_order"), "{text}");
        let bad = get(addr, "/debug/tasks?format=nope").await;
        assert_eq!(bad.status, 400);
        server.abort();
    });
}

/// Go's own `pprof` reads the answer (as in `crates/seed/tests/pprof_reader.rs`; skipped where
/// Go is not installed, except in CI, which installs it).
fn go_pprof_reads(gz: &[u8]) {
    let dir = std::env::temp_dir().join(format!("tasktrace-hooks-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tasks.pb.gz");
    std::fs::write(&file, gz).unwrap();
    let go = match Command::new("go")
        .args(["tool", "pprof", "-traces"])
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED the go pprof check: Go is not installed here ({e})");
            return;
        }
        Err(e) => panic!("go tool pprof must run in CI: {e}"),
    };
    let stdout = String::from_utf8_lossy(&go.stdout);
    assert!(
        go.status.success(),
        "pprof failed: {}",
        String::from_utf8_lossy(&go.stderr)
    );
    let sample = stdout
        .split("-----------+-------------------------------------------------------")
        .find(|s| s.contains("http-orders-2"))
        .unwrap_or_else(|| panic!("the sample of http-orders-2 in:\n{stdout}"));
    let read = sample.find("read_order").expect("read_order in the stack");
    let serve = sample
        .find("serve_orders")
        .expect("serve_orders in the stack");
    assert!(read < serve, "leaf first, root last:\n{sample}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A reader of the `profile.proto` fields the export writes (numbers from profile.proto).
mod profile {
    use prost::Message;
    use std::io::Read;

    #[derive(Clone, PartialEq, Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }

    /// Gunzips and decodes a profile.
    pub fn decode(gz: &[u8]) -> Profile {
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut raw)
            .expect("valid gzip");
        let p = Profile::decode(raw.as_slice()).expect("a valid profile.proto");
        assert_eq!(p.string_table[0], "", "string 0 is empty");
        p
    }

    impl Profile {
        fn string(&self, i: i64) -> &str {
            &self.string_table[usize::try_from(i).unwrap()]
        }

        pub fn sample_type(&self) -> (&str, &str) {
            let t = &self.sample_type[0];
            (self.string(t.r#type), self.string(t.unit))
        }

        /// The stacks (function names, leaf first) of the samples labelled `task_name=name`.
        pub fn stacks_of(&self, name: &str) -> Vec<Vec<String>> {
            self.sample
                .iter()
                .filter(|s| {
                    s.label
                        .iter()
                        .any(|l| self.string(l.key) == "task_name" && self.string(l.str) == name)
                })
                .map(|s| {
                    assert_eq!(s.value, [1]);
                    s.location_id
                        .iter()
                        .map(|&id| {
                            let loc = self.location.iter().find(|l| l.id == id).unwrap();
                            let f = loc.line[0].function_id;
                            let func = self.function.iter().find(|x| x.id == f).unwrap();
                            self.string(func.system_name).to_owned()
                        })
                        .collect()
                })
                .collect()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SIGUSR1, in a child process (this test binary run again, as `signal_child`)
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "TASKTRACE_HOOKS_SIGNAL_CHILD";

/// The child side of the SIGUSR1 tests: does nothing unless run by them. Serves twelve
/// tasks, installs the SIGUSR1 dump, prints `READY` (after the harness's `test signal_child ... `), then answers each line on stdin with
/// `pong N`, N the number of its tasks a fresh dump finds, until stdin closes.
#[test]
fn signal_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    assert!(
        tasktrace::signal::dump_on_sigusr1().is_err(),
        "outside a runtime: an error"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _service = Service::start("sig-");
        tasktrace::signal::dump_on_sigusr1().expect("installed");
        println!("READY");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        while tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
            .await
            .unwrap()
            > 0
        {
            let dump = tasktrace::dump().await;
            let ours = dump
                .tasks
                .iter()
                .filter(|t| t.name.as_deref().is_some_and(|n| n.starts_with("sig-")))
                .count();
            println!("pong {ours}");
            line.clear();
        }
    });
}

/// A running `signal_child`, its stdout lines and its stderr.
struct ChildService {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl ChildService {
    fn start(dump_file: Option<&std::path::Path>) -> ChildService {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["signal_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env_remove(tasktrace::signal::DUMP_FILE_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(file) = dump_file {
            cmd.env(tasktrace::signal::DUMP_FILE_ENV, file);
        }
        let mut child = cmd.spawn().expect("the test binary runs again");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut service = ChildService {
            child,
            lines,
            stderr,
        };
        service.expect_line(|l| l.ends_with("READY"));
        service
    }

    /// Waits for a stdout line that `want` accepts.
    fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "child: no expected line within {DEADLINE:?} ({e}); stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn sigusr1(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("kill -USR1");
    }

    /// Pings the child: it answers with the number of its tasks a dump finds.
    fn ping(&mut self) -> usize {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"ping\n").unwrap();
        stdin.flush().unwrap();
        let line = self.expect_line(|l| l.starts_with("pong "));
        line["pong ".len()..].parse().unwrap()
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "child failed: {status}\n{}",
                    self.stderr()
                );
                return;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("child did not exit within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        // Only when a test failed half-way (finish() waits for the exit otherwise).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HEADER: &str = "tasktrace: dump on SIGUSR1 (pid ";

/// Waits until `read()` holds `count` complete dumps of the child's twelve tasks.
fn wait_for_dumps(count: usize, read: impl Fn() -> String) -> String {
    let until = Instant::now() + DEADLINE;
    loop {
        let text = read();
        let dumps = text.matches(HEADER).count();
        let last = text.rfind(HEADER).map_or("", |i| &text[i..]);
        if dumps >= count && last.contains("\"sig-fanout-3\"") && last.contains("\n\n") {
            assert_eq!(dumps, count, "exactly {count} dump(s):\n{text}");
            return text;
        }
        assert!(
            Instant::now() < until,
            "no {count} dump(s) within {DEADLINE:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_dump(text: &str, pid: u32) {
    assert!(
        text.contains(&format!("{HEADER}{pid}, 20")) && text.contains(" UTC)\n"),
        "{text}"
    );
    for i in 0..4 {
        for kind in ["orders", "ticker", "fanout"] {
            assert!(text.contains(&format!("\"sig-{kind}-{i}\"")), "{text}");
        }
    }
    assert!(text.contains("serve_orders") && text.contains("read_order"));
    assert!(text.contains("wait_left") && text.contains("wait_right"));
}

#[test]
fn sigusr1_writes_the_dump_to_stderr_and_the_service_keeps_running() {
    let mut child = ChildService::start(None);
    let pid = child.child.id();
    assert_eq!(child.ping(), 12);
    child.sigusr1();
    let text = wait_for_dumps(1, || child.stderr());
    check_dump(&text, pid);
    // Still running, its tasks all there, and a second signal gives a second dump.
    assert_eq!(child.ping(), 12);
    child.sigusr1();
    wait_for_dumps(2, || child.stderr());
    assert_eq!(child.ping(), 12);
    child.finish();
}

#[test]
fn sigusr1_appends_the_dump_to_the_file_of_tasktrace_dump_file() {
    let dir = std::env::temp_dir().join(format!("tasktrace-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dumps.txt");
    std::fs::write(&file, "earlier content\n").unwrap();
    let mut child = ChildService::start(Some(&file));
    let pid = child.child.id();
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    child.sigusr1();
    check_dump(&wait_for_dumps(1, read), pid);
    assert_eq!(child.ping(), 12);
    child.sigusr1();
    let text = wait_for_dumps(2, read);
    assert!(text.starts_with("earlier content\n"), "appended");
    assert!(!child.stderr().contains(HEADER), "not on stderr");
    assert_eq!(child.ping(), 12);
    child.finish();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigusr1_outside_a_runtime_is_an_error_not_a_panic() {
    let err = tasktrace::signal::dump_on_sigusr1().unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------------------------

#[path = "../src/watchdog/test_logs.rs"]
mod logs;
use logs::{events, Logs};

/// Holds its worker thread inside one poll until released (or 30 s).
async fn blocking_handler(release: mpsc::Receiver<()>) {
    let _ = release.recv_timeout(DEADLINE);
}

#[test]
fn watchdog_reports_a_task_blocked_inside_a_poll_once() {
    let logs = Logs::default();
    let _subscriber = logs.install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = tasktrace::watchdog::WatchdogConfig::default()
        .interval(Duration::from_millis(20))
        .in_poll_after(Duration::from_millis(150))
        .repeat_after(Duration::from_secs(3600));
    config.idle_after = None;
    let watchdog = tasktrace::watchdog(config).unwrap();

    let (release, released) = mpsc::channel();
    let task = {
        let _runtime = rt.enter();
        tasktrace::spawn_named("wd-blocker", blocking_handler(released))
    };
    let id = task.id();
    let event = logs.wait_for(|e| e.contains("wd-blocker") && e.contains("inside one poll"));
    assert!(
        event.contains("WARN") && event.contains("tasktrace::watchdog"),
        "{event}"
    );
    assert!(
        event.contains(&format!("task {id} \"wd-blocker\"")),
        "{event}"
    );
    assert!(event.contains(&format!("task_id={id}")), "{event}");
    assert!(event.contains("tests/hooks.rs:"), "the spawn site: {event}");
    assert!(event.contains("in_poll_for="), "{event}");
    assert!(event.contains("worker thread is blocked"), "{event}");

    // Rate-limited: many scans later, still one report of it.
    std::thread::sleep(Duration::from_millis(400));
    let reports = events(&logs.text())
        .iter()
        .filter(|e| e.contains("\"wd-blocker\""))
        .count();
    assert_eq!(reports, 1, "{}", logs.text());

    release.send(()).unwrap();
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the blocker finishes once released")
            .unwrap()
    });
    watchdog.stop();
}

async fn idle_worker(rx: oneshot::Receiver<()>) {
    wait_for_go(rx).await
}

async fn wait_for_go(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// `1.2s`, `350.123456ms`, `20.5µs` (as `Debug` prints a `Duration`).
fn parse_duration(s: &str) -> Duration {
    let unit = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let n: f64 = s[..s.len() - unit.len()].parse().unwrap();
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "µs" => 1e-6,
        "ns" => 1e-9,
        _ => panic!("unit of {s}"),
    };
    Duration::from_secs_f64(n * scale)
}

#[test]
fn watchdog_reports_an_idle_task_with_its_trace() {
    let _turn = serial();
    let logs = Logs::default();
    let _subscriber = logs.install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (go, rx) = oneshot::channel();
    let task = {
        let _runtime = rt.enter();
        tasktrace::spawn_named("wd-idle", idle_worker(rx))
    };
    let id = task.id();
    let watched = Arc::new(Mutex::new(Vec::new()));
    let seen = watched.clone();
    let watchdog = tasktrace::watchdog(
        tasktrace::watchdog::WatchdogConfig::default()
            .interval(Duration::from_millis(20))
            .idle_after(Duration::from_millis(150))
            .repeat_after(Duration::from_millis(300))
            .watch_idle(move |t| {
                seen.lock().unwrap().push(t.id);
                t.name.as_deref() == Some("wd-idle")
            }),
    )
    .unwrap();

    let first = logs.wait_for(|e| e.contains("\"wd-idle\"") && e.contains("has been idle"));
    assert!(first.contains(&format!("task_id={id}")), "{first}");
    assert!(first.contains("tests/hooks.rs:"), "the spawn site: {first}");
    // The trace says where it waits.
    let idle = first.find("idle_worker").expect("the root frame");
    let wait = first.find("wait_for_go").expect("the frame it waits in");
    assert!(idle < wait, "{first}");
    assert!(first.contains("waiting on oneshot receive"), "{first}");
    assert!(watched.lock().unwrap().contains(&id), "the filter saw it");

    // Reported again after repeat_after, idle all along: the watchdog's own capture poll did
    // not count as activity.
    let second = logs.wait_for(|e| {
        e.contains("\"wd-idle\"") && e.contains("has been idle") && e != first.as_str()
    });
    // The `idle_for` field, at full precision (`Debug` of a `Duration`).
    let idle_for = |e: &str| {
        let at = e.find(" idle_for=").expect("the idle_for field") + " idle_for=".len();
        parse_duration(e[at..].split(' ').next().unwrap())
    };
    assert!(idle_for(&first) >= Duration::from_millis(150), "{first}");
    // Reported again no sooner than 300 ms later, so idle at least that much longer (a reset
    // by the capture would show about 300 ms, not 450+).
    assert!(
        idle_for(&second) >= idle_for(&first) + Duration::from_millis(290),
        "{first}\n{second}"
    );
    // Filtered out: no other task reported.
    assert!(events(&logs.text())
        .iter()
        .filter(|e| e.contains("has been idle"))
        .all(|e| e.contains("\"wd-idle\"")));
    watchdog.stop();
    go.send(()).unwrap();
    rt.block_on(async { tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap() });
}
