//! Debuginfo from a debuginfod server: a stripped release build of `testdata/tokio-targets`
//! (tokio 1.54.1) runs; its debug file (`objcopy --only-keep-debug`) is served by elfutils'
//! own `debuginfod -F DIR`, and `tasktrace attach` finds it by build id through
//! `DEBUGINFOD_URLS`, caches it under `DEBUGINFOD_CACHE_PATH`, and reads it from the cache
//! once the server is gone. When no server has it, one line lists each URL with its answer;
//! a server that accepts but never answers is given up at `DEBUGINFOD_TIMEOUT`, and a download
//! cut off leaves nothing in the cache. A `gcore`
//! core of it, read with `core CORE` alone after its executable moved away, gets the
//! executable (`/executable`) and its debug file from the servers by the build id in the core.
//!
//! `debuginfod` missing fails the test under CI (`CI` set: a broken install step of
//! `scripts/test-all`), and skips it, loudly, elsewhere.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tasktrace_model::{Branches, FrameStatus, Node};

/// How long the server may take to scan its directory and serve the debug file.
const SERVE_DEADLINE: Duration = Duration::from_secs(90);

/// A running `debuginfod`, killed (and reaped) when dropped: on every path of the test.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `debuginfod -F dir` on a free port, its database and log in `scratch`.
    fn start(dir: &Path, scratch: &Path) -> Server {
        let port = free_port();
        std::fs::create_dir_all(scratch).expect("the server's directory");
        let log = scratch.join("debuginfod.log");
        let child = Command::new("debuginfod")
            .arg("-F")
            .arg(dir)
            .args(["-p", &port.to_string(), "-d"])
            .arg(scratch.join("debuginfod.sqlite"))
            // One scan at start-up, no rescans or grooming, no source indexing: only what
            // the test asks for.
            .args([
                "-c",
                "1",
                "-t",
                "0",
                "-g",
                "0",
                "--disable-source-scan",
                "-v",
            ])
            // Not a federating server: it answers from its own directory only.
            .env_remove("DEBUGINFOD_URLS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the server's log"))
            .spawn()
            .expect("start debuginfod");
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
        }
    }

    /// Waits until the server answers `path` with 200 (it scans its directory first).
    fn wait_until_served(&mut self, path: &str) {
        let deadline = Instant::now() + SERVE_DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                panic!("debuginfod exited ({st}): {}", self.log());
            }
            let status = http_status(self.port, path);
            if status == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "debuginfod did not serve {path} within {SERVE_DEADLINE:?} (last answer \
                 {status:?}): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's pick for a socket bound to port 0).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address").port()
}

/// The HTTP status of `GET path` on 127.0.0.1:`port`, `None` when there is no answer within
/// 5 s (only the status line is read).
fn http_status(port: u16, path: &str) -> Option<u16> {
    let limit = Duration::from_secs(5);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `debuginfod` is there; `false` (after a loud line) when it is not, outside CI.
fn debuginfod_installed() -> bool {
    if Command::new("debuginfod").arg("--version").output().is_ok() {
        return true;
    }
    missing(
        "debuginfod",
        "scripts/test-all installs the debuginfod package: apt-get install debuginfod",
    );
    false
}

/// The build id of `file` (hex), as `readelf -n` shows it.
fn build_id(file: &str) -> String {
    let out = Command::new("readelf")
        .args(["-n", file])
        .output()
        .expect("readelf");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("a build id")
}

fn child_of<'n>(n: &'n Node, func: &str) -> &'n Node {
    let name = format!("{PREFIX}{func}");
    n.children
        .iter()
        .find(|c| c.frame.function == name)
        .unwrap_or_else(|| panic!("no child {name} under {n:#?}"))
}

/// Asserts the trees read: foo → bar → join!(fiz (completed), buz → Sleep), and a task
/// waiting on foo's; returns how many tasks each root function has. `timer`: what the sleep's
/// note says (the time left, or from a core its deadline).
fn read_with_types_timer(out: &Output, timer: &str) -> BTreeMap<String, usize> {
    let d = dump_of(out);
    let foo_task = one(&d, "foo");
    let foo_node = root(foo_task);
    is_async(foo_node, "foo", "bar().await + 1");
    let bar = only_child(foo_node);
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
    assert_eq!(bar.frame.branches, Some(Branches::AllOf(2)), "{bar:#?}");
    assert_eq!(bar.children.len(), 2, "{bar:#?}");
    let fiz = child_of(bar, "fiz");
    assert_eq!(fiz.frame.status, FrameStatus::Completed, "{fiz:#?}");
    let buz = child_of(bar, "buz");
    is_async(buz, "buz", "tokio::time::sleep(LONG).await");
    is_leaf(only_child(buz), "tokio::time::sleep::Sleep", timer);
    let waiter = one(&d, "wait_for");
    is_leaf(
        only_child(root(waiter)),
        "tokio::runtime::task::join::JoinHandle",
        &format!("waiting on task {}", foo_task.id),
    );
    let mut roots = BTreeMap::new();
    for t in &d.tasks {
        let f = t.trace.roots.first().map(|r| r.frame.function.clone());
        *roots.entry(f.unwrap_or_default()).or_default() += 1;
    }
    roots
}

/// [`read_with_types_timer`] of a live process.
fn read_with_types(out: &Output) -> BTreeMap<String, usize> {
    read_with_types_timer(out, "s left")
}

fn fails_with(out: &Output, parts: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for p in parts {
        assert!(err.contains(p), "{err:?} lacks {p:?}");
    }
    err
}

#[test]
fn debug_files_come_from_a_debuginfod_server_then_its_cache() {
    if !debuginfod_installed() {
        return;
    }
    assert!(objcopy(&["--version"]), "objcopy (binutils) is needed");
    let exe = build_target("1.54.1", "release");
    let scratch = Scratch::new("debuginfod");
    let s = |p: PathBuf| p.to_str().expect("utf-8").to_string();
    let served = scratch.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let debug = s(served.join("tokio-target.debug"));
    let stripped = s(scratch.join("tokio-target"));
    // Compressed, as distributions' debug files (and their debuginfod servers') are.
    assert!(objcopy(&[
        "--only-keep-debug",
        "--compress-debug-sections=zlib",
        &exe,
        &debug
    ]));
    assert!(objcopy(&["--strip-debug", &exe, &stripped]));
    let id = build_id(&stripped);
    let t = Target::start(&stripped, &["1"]);
    let pid = t.pid.to_string();
    let attach = ["attach", &pid, "--json"];
    // No debug file on this machine's debug dirs, whatever is installed.
    let no_dirs = ("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent");

    // What every task looks like, read with the debug file given.
    let want = read_with_types(&tasktrace(&[
        "attach",
        &pid,
        "--json",
        "--debuginfo",
        &debug,
    ]));

    // No server, an empty cache: the one line says where it looked and what to do.
    let empty = s(scratch.join("cache-empty"));
    let cached_path = format!("{empty}/{id}/debuginfo");
    fails_with(
        &tasktrace_env(
            &attach,
            &[
                no_dirs,
                ("DEBUGINFOD_URLS", ""),
                ("DEBUGINFOD_CACHE_PATH", &empty),
            ],
        ),
        &[
            &format!(
                "/nonexistent/.build-id/{}/{}.debug (not there)",
                &id[..2],
                &id[2..]
            ),
            &format!("{cached_path} (not there)"),
            "debug = true",
            "--debuginfo FILE",
            "DEBUGINFOD_URLS",
        ],
    );

    let mut server = Server::start(&served, &scratch.join("server"));
    server.wait_until_served(&format!("/buildid/{id}/debuginfo"));
    let cache = s(scratch.join("cache"));
    // The first URL answers 503 (no such API there), the second has it: tried in order.
    let wrong = format!("{}/nothing", server.url);
    let urls = format!("{wrong} {}", server.url);
    let env = [
        no_dirs,
        ("DEBUGINFOD_URLS", urls.as_str()),
        ("DEBUGINFOD_CACHE_PATH", cache.as_str()),
        ("DEBUGINFOD_TIMEOUT", "30"),
    ];
    let fetched = tasktrace_env(&attach, &env);
    let got = read_with_types(&fetched);
    assert_eq!(got, want, "every task, as with --debuginfo");
    // A download of megabytes says how far it is, and when it is done.
    let said = String::from_utf8_lossy(&fetched.stderr);
    let url = format!("{}/buildid/{id}/debuginfo", server.url);
    assert!(
        said.contains(&format!("tasktrace: downloading {url}: ")),
        "{said}"
    );
    assert!(
        said.contains(&format!("tasktrace: downloaded {url} (")),
        "{said}"
    );
    // The cache holds the file whole, and nothing else (no temporary file left).
    let entry = Path::new(&cache).join(&id);
    let names: Vec<_> = std::fs::read_dir(&entry)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["debuginfo"], "{entry:?}");
    assert_eq!(
        std::fs::read(entry.join("debuginfo")).unwrap(),
        std::fs::read(&debug).unwrap()
    );

    // A core of it, its executable moved away since (the process runs on): `core CORE`
    // alone fetches both the executable and its debug file by the build id in the core.
    // A second server has the executable (the first one answers 404 for it): a server
    // serves a stripped executable with its symbol table as debuginfo too, and which of two
    // files one server answers with is its choice.
    if let Some(core) = gcore(t.pid, &scratch.join("core")) {
        let exe_dir = scratch.join("served-exe");
        std::fs::create_dir_all(&exe_dir).unwrap();
        std::fs::copy(&stripped, exe_dir.join("tokio-target")).unwrap();
        let mut exe_server = Server::start(&exe_dir, &scratch.join("server-exe"));
        exe_server.wait_until_served(&format!("/buildid/{id}/executable"));
        let exe_path = format!("/buildid/{id}/executable");
        assert_eq!(http_status(server.port, &exe_path), Some(404));
        let moved = s(scratch.join("moved-away"));
        std::fs::rename(&stripped, &moved).unwrap();
        let fresh = s(scratch.join("cache-core"));
        let both = format!("{} {}", server.url, exe_server.url);
        let core_env = [
            no_dirs,
            ("DEBUGINFOD_URLS", both.as_str()),
            ("DEBUGINFOD_CACHE_PATH", fresh.as_str()),
        ];
        let from_core = read_with_types_timer(
            &tasktrace_env(&["core", &core, "--json"], &core_env),
            "deadline at",
        );
        assert_eq!(from_core, want, "every task, from the core");
        drop(exe_server);
        for artifact in ["executable", "debuginfo"] {
            let cached = Path::new(&fresh).join(&id).join(artifact);
            assert!(cached.is_file(), "{cached:?} not cached");
        }
        // No server: the path the core names, and what to do.
        fails_with(
            &tasktrace_env(
                &["core", &core],
                &[
                    no_dirs,
                    ("DEBUGINFOD_URLS", ""),
                    ("DEBUGINFOD_CACHE_PATH", &empty),
                ],
            ),
            &[
                &format!("the core names {stripped}; looked in {stripped} (not there)"),
                &format!("{empty}/{id}/executable (not there)"),
                "--exe BIN",
                "--sysroot DIR",
            ],
        );
        std::fs::rename(&moved, &stripped).unwrap();
    }

    // Only a server without it: the URL and its answer.
    fails_with(
        &tasktrace_env(
            &attach,
            &[
                no_dirs,
                ("DEBUGINFOD_URLS", wrong.as_str()),
                ("DEBUGINFOD_CACHE_PATH", &empty),
            ],
        ),
        &[&format!("{wrong}/buildid/{id}/debuginfo (503)")],
    );

    // The server gone: the cache serves.
    drop(server);
    let cached = tasktrace_env(&attach, &env);
    let got = read_with_types(&cached);
    assert_eq!(got, want, "every task, from the cache");
    let said = String::from_utf8_lossy(&cached.stderr);
    assert!(!said.contains("download"), "nothing downloaded: {said}");
    // …and without the cache, the URL that does not answer is named.
    fails_with(
        &tasktrace_env(
            &attach,
            &[
                no_dirs,
                ("DEBUGINFOD_URLS", urls.as_str()),
                ("DEBUGINFOD_CACHE_PATH", &empty),
            ],
        ),
        &[&format!(
            "{}/buildid/{id}/debuginfo (failed: ",
            urls.split(' ').nth(1).unwrap()
        )],
    );
    t.assert_running_and_echoes();
}

/// Accepts connections on a free port and never answers, for `limit`: a server that hangs.
fn silent_server(limit: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("its address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut held = Vec::new();
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
}

/// Answers every request on a free port with a 200 that promises a megabyte and sends a
/// kilobyte of it before closing, for `limit`: a download cut off.
fn cut_off_server(limit: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("its address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
            let _ = conn.write_all(&[0x7f; 1024]);
        }
    });
    port
}

#[test]
fn a_download_cut_off_leaves_nothing_in_the_cache() {
    assert!(objcopy(&["--version"]), "objcopy (binutils) is needed");
    let exe = build_target("1.54.1", "release");
    let scratch = Scratch::new("debuginfod-cut");
    let stripped = scratch.join("tokio-target");
    let stripped = stripped.to_str().expect("utf-8");
    assert!(objcopy(&["--strip-debug", &exe, stripped]));
    let id = build_id(stripped);
    let t = Target::start(stripped, &["1"]);
    let url = format!(
        "http://127.0.0.1:{}",
        cut_off_server(Duration::from_secs(60))
    );
    let cache = scratch.join("cache");
    let out = tasktrace_env(
        &["attach", &t.pid.to_string()],
        &[
            ("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent"),
            ("DEBUGINFOD_URLS", &url),
            ("DEBUGINFOD_CACHE_PATH", cache.to_str().expect("utf-8")),
        ],
    );
    // The download's progress line, then the error's one line.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<_> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("tasktrace: downloading "), "{err}");
    let failed = format!("{url}/buildid/{id}/debuginfo (failed: ");
    assert!(lines[1].contains(&failed), "{err}");
    // Not a byte of it in the cache: no entry, no temporary file.
    let left: Vec<_> = std::fs::read_dir(cache.join(&id))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache: {left:?}");
    t.assert_running_and_echoes();
}

#[test]
fn a_server_that_does_not_answer_is_given_up_at_debuginfod_timeout() {
    assert!(objcopy(&["--version"]), "objcopy (binutils) is needed");
    let exe = build_target("1.54.1", "release");
    let scratch = Scratch::new("debuginfod-silent");
    let stripped = scratch.join("tokio-target");
    let stripped = stripped.to_str().expect("utf-8");
    assert!(objcopy(&["--strip-debug", &exe, stripped]));
    let id = build_id(stripped);
    let t = Target::start(stripped, &["1"]);
    let port = silent_server(Duration::from_secs(60));
    let url = format!("http://127.0.0.1:{port}");
    let cache = scratch.join("cache");
    let started = Instant::now();
    let out = tasktrace_env(
        &["attach", &t.pid.to_string()],
        &[
            ("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent"),
            ("DEBUGINFOD_URLS", &url),
            ("DEBUGINFOD_CACHE_PATH", cache.to_str().expect("utf-8")),
            ("DEBUGINFOD_TIMEOUT", "1"),
        ],
    );
    fails_with(
        &out,
        &[&format!(
            "{url}/buildid/{id}/debuginfo (timed out: DEBUGINFOD_TIMEOUT 1s"
        )],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up after {:?}",
        started.elapsed()
    );
    t.assert_running_and_echoes();
}
