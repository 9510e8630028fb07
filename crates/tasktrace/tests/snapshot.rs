//! `tasktrace::snapshot`: every tokio task of this process — plain `tokio::spawn` ones
//! included — read from a frozen fork of it, and `dump()` joining them with the registry's.
//! Real runtimes, real forks; waits are bounded and wait on events (or re-take a snapshot
//! until the expected state shows, with a deadline); nothing asserts on timing.

mod support;

use std::time::{Duration, Instant};
use support::runtime;
use tasktrace::model::{Dump, FrameKind, Node, Task};
use tokio::sync::oneshot;

const SOURCE: &str = include_str!("snapshot.rs");

/// One test at a time: they count this process's children and descriptors, which another
/// test's runtime or snapshot would change.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn line(text: &str) -> u32 {
    support::line_of(SOURCE, text)
}

async fn inner_wait(rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0) // inner await
}

async fn outer_wait(rx: oneshot::Receiver<u32>) -> u32 {
    inner_wait(rx).await + 1 // outer await
}

fn is_at(n: &Node, func: &str, at: &str) -> bool {
    n.frame.function == format!("snapshot::{func}")
        && n.frame.kind == FrameKind::AsyncFn
        && n.frame
            .location
            .as_ref()
            .is_some_and(|l| l.line == line(at))
}

/// `outer_wait → inner_wait → [waiting on oneshot channel]`, with their await lines.
fn is_outer_chain(t: &Task) -> bool {
    let [root] = &t.trace.roots[..] else {
        return false;
    };
    let [inner] = &root.children[..] else {
        return false;
    };
    let [leaf] = &inner.children[..] else {
        return false;
    };
    is_at(root, "outer_wait", "// outer await")
        && is_at(inner, "inner_wait", "// inner await")
        && leaf.frame.annotation().as_deref() == Some("waiting on oneshot receive")
}

/// Takes snapshots until `done` holds (every task suspended where expected), 20 s at most.
fn snapshot_until(done: impl Fn(&Dump) -> bool) -> Dump {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = match tasktrace::snapshot::snapshot() {
            Ok(d) => d,
            Err(e) if e.to_string().contains("debug = true") => {
                panic!("this test needs a build with type layouts (the dev profile): {e}")
            }
            Err(e) => panic!("{e}"),
        };
        if done(&d) || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plain_tokio_spawn_tasks_with_their_await_lines() {
    let _serial = serial();
    let rt = runtime();
    let _enter = rt.enter();
    let mut senders = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        rt.spawn(outer_wait(rx));
    }
    let d = snapshot_until(|d| d.tasks.iter().filter(|t| is_outer_chain(t)).count() == 3);
    let chains: Vec<&Task> = d.tasks.iter().filter(|t| is_outer_chain(t)).collect();
    assert_eq!(chains.len(), 3, "{d}");
    for t in chains {
        assert_eq!(t.source.as_deref(), Some("snapshot"));
    }
    let stopped = format!("process {} was stopped for", std::process::id());
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("snapshot: read by the reader process"))
            && d.notes.iter().any(|n| n.starts_with(&stopped)),
        "{:?}",
        d.notes
    );
    drop(senders);
}

/// Half of a lock-order deadlock: holds `first`, waits until the other half holds its own,
/// then waits for `second` forever.
async fn lock_both(
    first: std::sync::Arc<tokio::sync::Mutex<u32>>,
    second: std::sync::Arc<tokio::sync::Mutex<u32>>,
    both_hold: std::sync::Arc<tokio::sync::Barrier>,
) -> u32 {
    let held = first.lock().await;
    both_hold.wait().await;
    let wanted = second.lock().await; // lock second
    *held + *wanted
}

/// A watchdog on `rt` scanning every 20 ms, a snapshot every 100 ms, reporting tasks idle for
/// `idle_after`, each once.
fn snapshot_watchdog(
    rt: &tokio::runtime::Runtime,
    idle_after: Duration,
) -> tasktrace::watchdog::Watchdog {
    let _enter = rt.enter();
    tasktrace::watchdog(
        tasktrace::watchdog::WatchdogConfig::default()
            .interval(Duration::from_millis(20))
            .idle_after(idle_after)
            .snapshot_interval(Some(Duration::from_millis(100)))
            .repeat_after(Duration::from_secs(3600)),
    )
    .unwrap()
}

/// The dump's one deadlock is the cycle of tasks `a` and `b`.
fn assert_one_cycle(d: &Dump, a: u64, b: u64) {
    assert_eq!(d.deadlocks, vec![vec![a.min(b), a.max(b)]], "{d}");
}

/// The two halves of a lock-order deadlock on two mutexes, to spawn.
fn lock_order_pair() -> [impl std::future::Future<Output = u32> + Send; 2] {
    let (m1, m2) = (
        std::sync::Arc::new(tokio::sync::Mutex::new(1)),
        std::sync::Arc::new(tokio::sync::Mutex::new(2)),
    );
    let both_hold = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    [
        lock_both(m1.clone(), m2.clone(), both_hold.clone()),
        lock_both(m2, m1, both_hold),
    ]
}

/// Two plain `tokio::spawn` tasks deadlocked on two tokio mutexes: the snapshot names each
/// one's lock holder (the guard saved in the other's state) and reports the cycle.
#[test]
fn a_lock_order_deadlock_among_plain_tasks() {
    let _serial = serial();
    let rt = runtime();
    let enter = rt.enter();
    let [first, second] = lock_order_pair();
    rt.spawn(first);
    rt.spawn(second);
    let d = snapshot_until(|d| !d.deadlocks.is_empty());
    let pair: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| {
            t.trace
                .roots
                .first()
                .is_some_and(|r| is_at(r, "lock_both", "// lock second"))
        })
        .collect();
    assert_eq!(pair.len(), 2, "{d}");
    for (me, other) in [(pair[0], pair[1]), (pair[1], pair[0])] {
        assert_eq!(me.awaits, vec![other.id], "{d}");
        // Under `tokio::sync::Mutex::lock`'s frame, its `Acquire`.
        let mut leaf = &me.trace.roots[0];
        while let [only] = &leaf.children[..] {
            leaf = only;
        }
        assert!(leaf.children.is_empty(), "{d}");
        let note = leaf.frame.annotation().unwrap_or_default();
        assert!(
            note.contains(&format!("held by task {}", other.id)),
            "{note:?}"
        );
    }
    assert_one_cycle(&d, pair[0].id, pair[1].id);
    // The tasks never end: dropping the runtime drops them, still waiting.
    drop(enter);
    drop(rt);
}

/// `dump()` lists the registry's tasks as always and every other task from a snapshot, each
/// marked with its source, and says which sources it used.
#[test]
fn dump_joins_registry_and_snapshot() {
    let _serial = serial();
    let rt = runtime();
    rt.block_on(async {
        let (_tx1, rx1) = oneshot::channel();
        let (_tx2, rx2) = oneshot::channel();
        let registered = tasktrace::spawn_named("registered", outer_wait(rx1));
        tokio::spawn(outer_wait(rx2));
        let deadline = Instant::now() + Duration::from_secs(20);
        let d = loop {
            let d = tasktrace::dump().await;
            let plain = d
                .tasks
                .iter()
                .filter(|t| t.source.as_deref() == Some("snapshot") && is_outer_chain(t))
                .count();
            if plain == 1 || Instant::now() > deadline {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mine = d.task(registered.id()).expect("the registered task");
        assert_eq!(mine.name.as_deref(), Some("registered"));
        assert_eq!(mine.source, None, "the registry's own entry");
        let plain: Vec<&Task> = d
            .tasks
            .iter()
            .filter(|t| t.source.as_deref() == Some("snapshot") && is_outer_chain(t))
            .collect();
        assert_eq!(plain.len(), 1, "the plain tokio::spawn task, once: {d}");
        // The registered task is not listed a second time from the snapshot.
        assert!(
            !d.tasks.iter().any(|t| t.source.is_some()
                && t.trace
                    .roots
                    .first()
                    .is_some_and(|r| r.frame.function.starts_with("tasktrace::traced::"))),
            "{d}"
        );
        assert!(
            d.notes
                .iter()
                .any(|n| n.starts_with("sources: the registry")),
            "{:?}",
            d.notes
        );
        assert!(d.to_string().contains("(from the snapshot)"));
        // Ids stay unique: tokio's in their own range, shown `tokio task N`.
        for t in &plain {
            let n = t.tokio_id.expect("tokio's id");
            assert_eq!(t.id, tasktrace::model::TOKIO_ID_BASE + n);
            assert!(d.to_string().contains(&format!("tokio task {n} — ")), "{d}");
        }
        registered.abort();
    });
}

async fn placed(order_id: u64, user: String, rx: oneshot::Receiver<u32>) -> u32 {
    let n = rx.await.unwrap_or(0); // @placed-await
    n + order_id as u32 + user.len() as u32
}

async fn fetch(key: u64, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0) + key as u32 // @fetch-await
}

async fn two_fetches(a: oneshot::Receiver<u32>, b: oneshot::Receiver<u32>) -> u32 {
    let (x, y) = tokio::join!(fetch(1, a), fetch(2, b));
    x + y
}

/// The frames of `t` running `function` (however the producer wrote its name).
fn frames_of<'a>(t: &'a Task, function: &str) -> Vec<&'a Node> {
    t.trace
        .walk()
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| tasktrace::model::clean::enclosing_function(&n.frame.function) == function)
        .collect()
}

/// With values, `dump()` gives a registry task's in-process frames the values the snapshot
/// read in them; where one async fn runs twice at one line (a `join!` of two calls), neither
/// frame is given values rather than possibly the other's.
#[test]
fn dump_with_values_gives_registry_frames_their_values() {
    let _serial = serial();
    let rt = runtime();
    rt.block_on(async {
        let (_tx, rx) = oneshot::channel();
        let (_ta, a) = oneshot::channel();
        let (_tb, b) = oneshot::channel();
        let order = tasktrace::spawn(placed(981, "bob".to_string(), rx));
        let pair = tasktrace::spawn(two_fetches(a, b));
        let options = tasktrace::DumpOptions::default().values(true);
        let deadline = Instant::now() + Duration::from_secs(20);
        let d = loop {
            let d = tasktrace::dump_with(options.clone()).await;
            let shown = d.task(order.id()).is_some_and(|t| {
                frames_of(t, "snapshot::placed")
                    .iter()
                    .any(|n| !n.frame.values.is_empty())
            });
            if shown || Instant::now() > deadline {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mine = d.task(order.id()).expect("the registered task");
        assert_eq!(mine.source, None, "the registry's own entry: {d}");
        let [placed] = &frames_of(mine, "snapshot::placed")[..] else {
            panic!("one placed frame: {d:#}")
        };
        assert_eq!(
            placed.frame.location.as_ref().map(|l| l.line),
            Some(line("// @placed-await"))
        );
        let value = |name: &str| {
            placed
                .frame
                .values
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.value.to_string())
        };
        assert_eq!(value("order_id").as_deref(), Some("981"), "{d:#}");
        assert_eq!(value("user").as_deref(), Some("\"bob\""), "{d:#}");
        let both = d.task(pair.id()).expect("the joined task");
        let fetches = frames_of(both, "snapshot::fetch");
        // (The in-process capture shows the two branches, which stand at the same frames, as
        // one node or two.)
        assert!(!fetches.is_empty(), "{d:#}");
        assert!(
            fetches.iter().all(|n| n.frame.values.is_empty()),
            "a join's two calls of one fn at one line get no values: {d:#}"
        );
        // Without values asked, none.
        let plain = tasktrace::dump().await;
        assert!(
            plain.task(order.id()).is_some_and(|t| t
                .trace
                .walk()
                .iter()
                .all(|(_, n)| n.frame.values.is_empty())),
            "{plain:#}"
        );
        order.abort();
        pair.abort();
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// No child of this process left, stopped or zombie (once the reader process is ended).
fn no_children() -> bool {
    tasktrace::snapshot::stop_reader();
    let mut status = 0;
    // SAFETY: waitpid writes one int to `status`.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// This process's resident memory, in KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// A thousand snapshots in a row while a ping-pong runs: every message delivered, no process
/// left behind, the open descriptors unchanged, and this process's resident memory flat (the
/// reader process keeps the index, this process nothing).
#[test]
fn a_thousand_snapshots_leave_nothing_behind() {
    let _serial = serial();
    let rt = runtime();
    let _enter = rt.enter();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    rt.spawn(async move {
        while let Some(n) = ping_rx.recv().await {
            if pong_tx.send(n).await.is_err() {
                break;
            }
        }
    });
    let stopped = stop.clone();
    let pinger = rt.spawn(async move {
        let mut n = 0u64;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            ping_tx.send(n).await.unwrap();
            let back = pong_rx.recv().await.unwrap();
            assert_eq!(back, n, "a message lost or reordered");
            n += 1;
        }
        n
    });
    // Index the debuginfo once before counting descriptors.
    let first = tasktrace::snapshot::snapshot().expect("a first snapshot");
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.starts_with("snapshot: read by the reader process")),
        "{:?}",
        first.notes
    );
    let fds = open_fds();
    let resident = resident_kib();
    for i in 0..1000 {
        let d = tasktrace::snapshot::snapshot().unwrap_or_else(|e| panic!("snapshot {i}: {e}"));
        assert!(!d.tasks.is_empty());
    }
    let grown = resident_kib().saturating_sub(resident);
    assert!(
        grown < 8 << 10,
        "resident memory grew {grown} KiB over 1,000 snapshots"
    );
    assert_eq!(open_fds(), fds, "descriptors leaked");
    assert!(no_children(), "a child process was left behind");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let delivered = rt.block_on(pinger).unwrap();
    assert!(delivered > 0, "the ping-pong ran during the snapshots");
}

/// A fork is refused above its resident limit; the reader process has none.
#[test]
fn fork_refused_above_the_resident_limit_the_reader_process_is_not() {
    use tasktrace::snapshot::{Method, SnapshotOptions};
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    let small = SnapshotOptions::default().max_resident(1);
    let e = tasktrace::snapshot::snapshot_with(&small.clone().method(Method::Fork))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("above the limit") && e.contains("max_resident"),
        "{e}"
    );
    let d = tasktrace::snapshot::snapshot_with(&small).expect("the reader process reads");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("snapshot: read by the reader process")),
        "{:?}",
        d.notes
    );
    assert!(no_children());
}

/// Both ways read the same tasks: a frozen fork and the reader process.
#[test]
fn the_fork_and_the_reader_process_read_the_same_tasks() {
    use tasktrace::snapshot::{Method, SnapshotOptions};
    let _serial = serial();
    let rt = runtime();
    let _enter = rt.enter();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        rt.spawn(outer_wait(rx));
    }
    snapshot_until(|d| d.tasks.iter().filter(|t| is_outer_chain(t)).count() == 4);
    for method in [Method::Fork, Method::ReaderProcess] {
        let d = tasktrace::snapshot::snapshot_with(&SnapshotOptions::default().method(method))
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        let chains = d.tasks.iter().filter(|t| is_outer_chain(t)).count();
        assert_eq!(chains, 4, "{method:?}: {d}");
    }
    drop(senders);
    assert!(no_children());
}

/// Snapshots do not disturb the program: its sockets carry data both ways and accept new
/// connections, its `tokio::process` child is still its own to wait for, and its signal
/// handlers still run.
#[test]
fn snapshots_leave_the_program_undisturbed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _serial = serial();
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut child = tokio::process::Command::new("sleep")
            .arg("600")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sleep");
        let mut usr2 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2()).unwrap();
        for i in 0..50 {
            tokio::task::spawn_blocking(tasktrace::snapshot::snapshot)
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("snapshot {i}: {e}"));
        }
        let ten = Duration::from_secs(10);
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tokio::time::timeout(ten, server.read_exact(&mut buf))
            .await
            .expect("a read within 10 s")
            .unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        tokio::time::timeout(ten, client.read_exact(&mut buf))
            .await
            .expect("a read within 10 s")
            .unwrap();
        assert_eq!(&buf, b"pong");
        let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::timeout(ten, listener.accept())
            .await
            .expect("an accept within 10 s")
            .unwrap();
        assert!(child.try_wait().unwrap().is_none(), "the child still runs");
        child.kill().await.unwrap();
        let status = tokio::time::timeout(ten, child.wait())
            .await
            .expect("the child's exit within 10 s")
            .unwrap();
        assert!(!status.success());
        // SAFETY: kill sends a signal to this process; SIGUSR2 has a handler (tokio's).
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
        tokio::time::timeout(ten, usr2.recv())
            .await
            .expect("the signal handler within 10 s");
    });
    assert!(no_children());
}

#[path = "../src/watchdog/test_logs.rs"]
mod logs;

/// Sleeps in a loop: the timer is re-armed on every turn, so it is never taken for a stall.
async fn ticking() {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await; // ticking await
    }
}

/// Sleeps for an hour: one timer, the same deadline in every snapshot.
async fn long_nap() {
    tokio::time::sleep(Duration::from_secs(3600)).await; // napping await
}

/// The watchdog, with no task registered, reports a plain `tokio::spawn` task seen waiting in
/// the same place in every snapshot, with its tree (`outer_wait` above `inner_wait` above the
/// channel), and not a loop that keeps re-arming its timer.
#[test]
fn watchdog_reports_unregistered_tasks_waiting_in_every_snapshot() {
    let _serial = serial();
    let logs = logs::Logs::default();
    let _subscriber = logs.install();
    let rt = runtime();
    let (tx, rx) = oneshot::channel();
    rt.spawn(outer_wait(rx));
    rt.spawn(ticking());
    rt.spawn(long_nap());
    let watchdog = snapshot_watchdog(&rt, Duration::from_millis(300));
    let event = logs.wait_for(|e| e.contains("tokio task") && e.contains("outer_wait"));
    assert!(event.contains("tokio_task_id="), "{event}");
    assert!(event.contains("in every snapshot"), "{event}");
    let at = |what: &str| {
        event
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {event}"))
    };
    assert!(
        at("snapshot::outer_wait") < at("snapshot::inner_wait"),
        "{event}"
    );
    assert!(
        at("snapshot::inner_wait") < at("waiting on oneshot receive"),
        "{event}"
    );
    assert!(
        event.contains(&format!("tests/snapshot.rs:{}", line("// inner await"))),
        "the await line: {event}"
    );
    // One timer, the same deadline each time: waiting there.
    let nap = logs.wait_for(|e| e.contains("tokio task") && e.contains("long_nap"));
    assert!(nap.contains("waiting on timer, 3"), "{nap}");
    // All three were seen from the first snapshot on: by now the ticking one would have been
    // reported too if its re-armed timer were taken for a stall.
    watchdog.stop();
    let text = logs.text();
    assert!(!text.contains("ticking"), "{text}");
    assert_eq!(
        logs::events(&text)
            .iter()
            .filter(|e| e.contains("outer_wait"))
            .count(),
        1,
        "reported once (repeat_after 1 h): {text}"
    );
    drop(tx);
}

/// Holds `lock` while it sends to a channel of capacity 1: the second send waits for the
/// consumer, which waits for `lock` first.
async fn producer(
    lock: std::sync::Arc<tokio::sync::Mutex<u32>>,
    tx: tokio::sync::mpsc::Sender<u32>,
    holds: oneshot::Sender<()>,
) {
    let guard = lock.lock().await;
    let _ = holds.send(());
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap(); // send on a full channel
    drop(guard);
}

async fn consumer(
    lock: std::sync::Arc<tokio::sync::Mutex<u32>>,
    mut rx: tokio::sync::mpsc::Receiver<u32>,
) {
    loop {
        let guard = lock.lock().await; // lock before receiving
        let Some(v) = rx.recv().await else { break };
        let _ = *guard + v;
    }
}

/// A producer holding a lock blocks on a full bounded channel; the channel's consumer waits
/// for that lock: the producer awaits the consumer (it holds the channel's receiver), the
/// consumer awaits the producer (it holds the lock), and the cycle is reported.
#[test]
fn a_deadlock_through_a_full_channel_and_a_lock() {
    let _serial = serial();
    let rt = runtime();
    let enter = rt.enter();
    let lock = std::sync::Arc::new(tokio::sync::Mutex::new(0));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let (holds_tx, holds) = oneshot::channel();
    rt.spawn(producer(lock.clone(), tx, holds_tx));
    rt.block_on(holds).unwrap();
    rt.spawn(consumer(lock, rx));
    let d = snapshot_until(|d| !d.deadlocks.is_empty());
    let find = |func: &str, at: &str| {
        d.tasks
            .iter()
            .find(|t| t.trace.roots.first().is_some_and(|r| is_at(r, func, at)))
            .unwrap_or_else(|| panic!("{func} at {at}: {d}"))
    };
    let (p, c) = (
        find("producer", "// send on a full channel"),
        find("consumer", "// lock before receiving"),
    );
    assert_eq!(p.awaits, vec![c.id], "{d}");
    assert_eq!(c.awaits, vec![p.id], "{d}");
    let text = p.trace.to_string();
    assert!(
        text.contains(&format!(
            "waiting on mpsc send (channel full), received by task {}",
            c.id
        )),
        "{text}"
    );
    assert_one_cycle(&d, p.id, c.id);
    drop(enter);
    drop(rt);
}

/// The watchdog reports a deadlock among plain tasks as an `ERROR`, once: the cycle and each
/// task's trace down to the lock it waits for.
#[test]
fn watchdog_reports_a_deadlock_seen_in_two_snapshots() {
    let _serial = serial();
    let logs = logs::Logs::default();
    let _subscriber = logs.install();
    let rt = runtime();
    let [first, second] = lock_order_pair();
    rt.spawn(first);
    rt.spawn(second);
    let watchdog = snapshot_watchdog(&rt, Duration::from_secs(3600));
    let event = logs.wait_for(|e| e.contains("deadlock:"));
    watchdog.stop();
    assert!(
        event.starts_with("ERROR") || event.contains(" ERROR "),
        "{event}"
    );
    assert!(event.contains("tokio_task_ids="), "{event}");
    assert!(event.contains("await each other"), "{event}");
    // Both tasks' trees, each down to the lock the other holds.
    assert_eq!(event.matches("snapshot::lock_both").count(), 2, "{event}");
    assert_eq!(event.matches("held by task").count(), 2, "{event}");
    let text = logs.text();
    assert_eq!(
        logs::events(&text)
            .iter()
            .filter(|e| e.contains("deadlock:"))
            .count(),
        1,
        "reported once (repeat_after 1 h): {text}"
    );
    drop(rt);
}

/// The same deadlock between a `tasktrace::spawn`ed task and a plain one: `dump()` joins the
/// registry with the snapshot in one id space — the registered task under its own id, with
/// its tokio id in the header and the edge the snapshot found (the lock the other holds) —
/// and reports the cycle across the two sources.
#[test]
fn a_deadlock_across_registered_and_plain_tasks() {
    let _serial = serial();
    let rt = runtime();
    let enter = rt.enter();
    let [first, second] = lock_order_pair();
    let ours = tasktrace::spawn(first);
    rt.spawn(second);
    let ours = ours.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let d = rt.block_on(tasktrace::dump());
        if !d.deadlocks.is_empty() || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let registered = d.task(ours).unwrap_or_else(|| panic!("{d}"));
    let tokio_id = registered
        .tokio_id
        .unwrap_or_else(|| panic!("no tokio id: {d}"));
    // The verbose view says it (the default header stays as it was).
    let verbose = d.render(tasktrace::model::Format::Verbose);
    assert!(
        verbose.contains(&format!("task {ours} (tokio task {tokio_id}) — ")),
        "{verbose}"
    );
    let plain: Vec<&Task> = d
        .tasks
        .iter()
        .filter(|t| t.source.is_some())
        .filter(|t| {
            t.trace
                .roots
                .first()
                .is_some_and(|r| is_at(r, "lock_both", "// lock second"))
        })
        .collect();
    let [other] = plain[..] else { panic!("{d}") };
    assert_eq!(other.awaits, vec![ours], "{d}");
    assert_eq!(registered.awaits, vec![other.id], "{d}");
    // Its tree's note names the holder as the joined dump does: the registry's task.
    assert!(
        other
            .trace
            .to_string()
            .contains(&format!("held by task {ours}]")),
        "{}",
        other.trace
    );
    assert_eq!(d.deadlocks, vec![vec![ours, other.id]], "{d}");
    assert!(
        d.to_string().starts_with(&format!(
            "DEADLOCK: task {ours} -> tokio task {} -> task {ours}",
            other.id - tasktrace::model::TOKIO_ID_BASE
        )),
        "{d}"
    );
    drop(enter);
    drop(rt);
}

async fn two_steps(first: oneshot::Receiver<u32>, second: oneshot::Receiver<u32>) -> u32 {
    let a = first.await.unwrap_or(0); // first step
    let b = second.await.unwrap_or(0); // second step
    a + b
}

/// Where a `two_steps` task is suspended: the line of its await, if it is one.
fn step_of(t: &Task) -> Option<u32> {
    let [root] = &t.trace.roots[..] else {
        return None;
    };
    (root.frame.function == "snapshot::two_steps")
        .then(|| root.frame.location.as_ref().map(|l| l.line))
        .flatten()
}

/// The reader process keeps the trees of tasks whose futures did not change: later snapshots
/// show them the same, a task that moved on is shown where it is now, and a timer's time left
/// (from the clock, not from memory) is never taken from an earlier snapshot.
#[test]
fn later_snapshots_show_what_moved_and_keep_what_did_not() {
    let _serial = serial();
    let rt = runtime();
    let _enter = rt.enter();
    let (first, second) = (line("// first step"), line("// second step"));
    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    for _ in 0..20 {
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        firsts.push(a);
        seconds.push(b);
        rt.spawn(two_steps(ra, rb));
    }
    rt.spawn(async { tokio::time::sleep(Duration::from_secs(600)).await });
    let at = |d: &Dump, l: u32| d.tasks.iter().filter(|t| step_of(t) == Some(l)).count();
    let d = snapshot_until(|d| at(d, first) == 20);
    assert_eq!(at(&d, first), 20, "{d}");
    for _ in 0..3 {
        let again = tasktrace::snapshot::snapshot().unwrap();
        assert_eq!(at(&again, first), 20, "{again}");
    }
    for tx in firsts.drain(..10) {
        tx.send(1).unwrap();
    }
    let d = snapshot_until(|d| at(d, second) == 10);
    assert_eq!((at(&d, first), at(&d, second)), (10, 10), "{d}");
    let timer = |d: &Dump| -> String {
        d.tasks
            .iter()
            .flat_map(|t| t.trace.roots.iter())
            .flat_map(|r| r.children.iter())
            .filter_map(|n| n.frame.annotation())
            .find(|n| n.starts_with("waiting on timer"))
            .unwrap_or_else(|| panic!("no timer in {d}"))
    };
    let before = timer(&d);
    std::thread::sleep(Duration::from_millis(300));
    let after = timer(&tasktrace::snapshot::snapshot().unwrap());
    assert_ne!(
        before, after,
        "the time left was taken from the last snapshot"
    );
    drop((firsts, seconds));
    assert!(no_children());
}

/// The reader process outlives the thread that started it (the death signal it asks for
/// follows that thread): a snapshot from a thread that then ends, and the next from another,
/// are read by the same reader.
#[test]
fn the_reader_process_outlives_the_thread_that_started_it() {
    use tasktrace::snapshot::{snapshot_measured, SnapshotOptions};
    let _serial = serial();
    tasktrace::snapshot::stop_reader();
    let rt = runtime();
    let handle = rt.handle().clone();
    let first = std::thread::spawn(move || {
        let _enter = handle.enter();
        snapshot_measured(&SnapshotOptions::default()).expect("a snapshot from a thread")
    })
    .join()
    .unwrap();
    let _enter = rt.enter();
    let second = snapshot_measured(&SnapshotOptions::default()).expect("a second snapshot");
    assert!(first.reader_pid.is_some());
    assert_eq!(
        first.reader_pid, second.reader_pid,
        "the reader was started again"
    );
    assert!(no_children());
}
