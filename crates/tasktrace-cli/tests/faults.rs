//! Fault injection against the out-of-process reader, with real child processes, real ptrace
//! and real core files: the target exits (killed while stopped, or on its own) during an
//! attach; threads are created and exit during the stop; memory becomes unreadable mid-walk;
//! the task list is corrupted (a cycle, a dangling pointer); ptrace is refused (the target is
//! already traced). Each gives a clear one-line error or a dump marked partial
//! (`Dump::partial`), never a panic or a hang — and every live target is checked to
//! be still running afterwards (not stopped in /proc/PID/stat, and it still echoes over TCP).
//!
//! Every child is killed on drop, every wait has a deadline, every attach is detached (the
//! reader's `LiveProcess` detaches on drop).

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tasktrace_inspect::debuginfo::DebugInfo;
use tasktrace_inspect::process::core_file::CoreFile;
use tasktrace_inspect::process::live::LiveProcess;
use tasktrace_inspect::process::Thread;
use tasktrace_inspect::{Error, Options, Result};
use tasktrace_model::Dump;

mod support;
use support::{tasktrace_env as tasktrace, wait_child, TASKTRACE};

const TARGET: &str = env!("CARGO_BIN_EXE_tasktrace-demo-target");
const FOO: &str = "tasktrace_demo_target::foo";

/// A running demo target, killed on drop.
struct Demo {
    child: Child,
    addr: String,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let mut child = Command::new(TARGET)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the target");
        let addr = wait_ready(child.stdout.take().expect("stdout"));
        Demo { child, addr }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Not stopped, and it answers over TCP.
    fn assert_running(&self, after: &str) {
        assert_running(self.pid(), &self.addr, after);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (60 s at most) for the target's `ready <addr>` line; returns the address.
fn wait_ready(stdout: impl Read + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let l = rx
            .recv_timeout(left)
            .expect("the target did not print `ready` within 60s");
        if let Some(rest) = l.strip_prefix("ready") {
            return rest.trim().to_string();
        }
    }
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// The process is not stopped (within 10 s: a detach is asynchronous) and echoes over TCP.
fn assert_running(pid: i32, addr: &str, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(proc_state(pid), Some('t' | 'T')) {
        assert!(
            Instant::now() < deadline,
            "target left stopped after {after}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect after {after}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("no echo after {after}: {e}"));
    assert_eq!(&buf, b"ping");
}

/// A failed run: exit code 1, one line on stderr, no panic.
fn assert_clean_failure(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line: {err}");
    err
}

fn json_dump(out: &Output) -> Dump {
    serde_json::from_slice(&out.stdout).expect("a JSON dump")
}

fn has_foo(d: &Dump) -> bool {
    d.tasks.iter().any(|t| {
        t.trace
            .roots
            .first()
            .is_some_and(|r| r.frame.function == FOO)
    })
}

fn is_partial(d: &Dump) -> bool {
    !d.partial.is_empty()
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn ptrace(request: i32, ...) -> i64;
}

// ---------------------------------------------------------------------------------------------
// The target exits while attached.

#[test]
fn target_killed_while_held_stopped_gives_a_clear_error() {
    let mut t = Demo::start(&[]);
    let pid = t.pid();
    // Hold the target stopped (test hook), and kill it meanwhile.
    let mut tt = Command::new(TASKTRACE)
        .args(["attach", &pid.to_string()])
        .env("TASKTRACE_TEST_HOLD_MS", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tasktrace");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(proc_state(pid), Some('t' | 'T')) {
        assert!(
            Instant::now() < deadline,
            "tasktrace never stopped the target"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: SIGKILL to the target child we started.
    unsafe { kill(pid, 9) };
    let status = wait_child(&mut tt, Duration::from_secs(60), "tasktrace");
    let mut err = String::new();
    tt.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let out = Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    };
    let err = assert_clean_failure(&out, "target killed while stopped");
    assert!(
        err.contains(&format!("process {pid} exited while it was being")),
        "{err}"
    );
    let st = wait_child(&mut t.child, Duration::from_secs(10), "the killed target");
    assert!(!st.success(), "killed: {st:?}");
}

#[test]
fn target_exiting_on_its_own_during_attaches() {
    // The target exits by itself 12 s after it started (a dev build of tasktrace takes a few
    // seconds to index the debuginfo): attach until it is gone.
    let mut t = Demo::start(&["--exit-after-ms", "12000"]);
    let pid = t.pid().to_string();
    let (mut dumps, mut errors) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the target never exited");
        let out = tasktrace(&["attach", &pid, "--json"], &[]);
        if out.status.success() {
            let d = json_dump(&out);
            assert!(has_foo(&d) || is_partial(&d), "{d}");
            dumps += 1;
        } else {
            // Which error depends on where the exit lands (before the attach, during the
            // seize, during the read): each is one line.
            let err = assert_clean_failure(&out, "attach of an exiting target");
            eprintln!("exiting target: {}", err.trim_end());
            errors += 1;
        }
    }
    // It exited by itself, normally: never left stopped or killed by the reader.
    let st = wait_child(&mut t.child, Duration::from_secs(10), "the target");
    assert_eq!(st.code(), Some(0), "{st:?}");
    eprintln!("exiting target: {dumps} dumps, {errors} clean errors");
    assert!(dumps + errors > 0);
}

// ---------------------------------------------------------------------------------------------
// Threads created and exiting during the stop.

#[test]
fn threads_created_and_exiting_during_the_stop() {
    let t = Demo::start(&["--thread-churn"]);
    let pid = t.pid().to_string();
    for i in 0..5 {
        let out = tasktrace(&["attach", &pid, "--json"], &[]);
        assert!(
            out.status.success(),
            "attach {i} under thread churn: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let d = json_dump(&out);
        assert!(has_foo(&d), "attach {i}: {d}");
        assert!(d.tasks.len() >= 58, "attach {i}: {d}");
        assert!(!matches!(proc_state(t.pid()), Some('t' | 'T')));
    }
    // The churning thread still runs: the thread ids keep changing.
    let tids = || {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = tids();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tids() == before {
        assert!(Instant::now() < deadline, "thread churn stopped");
        std::thread::sleep(Duration::from_millis(1));
    }
    t.assert_running("5 attaches under thread churn");
}

// ---------------------------------------------------------------------------------------------
// Memory unreadable mid-walk, and corrupted task lists: wrappers around a real target.

/// A target that fails reads after the first `fail_after` ones, or inside `range`, and
/// returns `value` for 8-byte reads at `corrupt_at`.
struct Faulty<'t> {
    inner: &'t dyn tasktrace_inspect::process::Target,
    reads: Cell<usize>,
    fail_after: usize,
    range: Option<(u64, u64)>,
    corrupt: Option<(u64, u64)>,
    /// Every 8-byte read (address, value), when recording.
    log: Option<RefCell<Vec<(u64, u64)>>>,
}

impl<'t> Faulty<'t> {
    fn new(inner: &'t dyn tasktrace_inspect::process::Target) -> Self {
        Faulty {
            inner,
            reads: Cell::new(0),
            fail_after: usize::MAX,
            range: None,
            corrupt: None,
            log: None,
        }
    }
}

impl tasktrace_inspect::process::Target for Faulty<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let n = self.reads.get();
        self.reads.set(n + 1);
        let in_range = self
            .range
            .is_some_and(|(a, b)| addr < b && addr.saturating_add(buf.len() as u64) > a);
        if n >= self.fail_after || in_range {
            return Err(Error::Memory(addr, buf.len()));
        }
        if let Some((at, value)) = self.corrupt {
            if addr == at && buf.len() == 8 {
                buf.copy_from_slice(&value.to_le_bytes());
                return Ok(());
            }
        }
        self.inner.read(addr, buf)?;
        if let (Some(log), 8) = (&self.log, buf.len()) {
            log.borrow_mut()
                .push((addr, u64::from_le_bytes(buf[..8].try_into().unwrap())));
        }
        Ok(())
    }

    fn threads(&self) -> &[Thread] {
        self.inner.threads()
    }

    fn at_entry(&self) -> Option<u64> {
        self.inner.at_entry()
    }

    fn is_live(&self) -> bool {
        self.inner.is_live()
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    full: usize,
    partial: usize,
    errors: usize,
}

/// Checks one faulty read: an error of one line, or a dump that is complete or says it is
/// partial, whose tasks were all decoded without a panic.
fn check(result: Result<Dump>, clean: &Dump, what: &str, o: &mut Outcomes) {
    match result {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{what}: {msg:?}");
            o.errors += 1;
        }
        Ok(d) => {
            for t in &d.tasks {
                let err = t.error.as_deref().unwrap_or("");
                assert!(
                    !err.contains("could not be decoded"),
                    "{what}: a decoder panicked: {t:?}"
                );
                assert!(!err.contains('\n'), "{what}: {err:?}");
            }
            if d.tasks.len() < clean.tasks.len() {
                assert!(
                    is_partial(&d),
                    "{what}: {} of {} tasks and no partial: note: {:?}",
                    d.tasks.len(),
                    clean.tasks.len(),
                    d.notes
                );
            }
            if is_partial(&d) {
                o.partial += 1;
            } else {
                o.full += 1;
            }
        }
    }
}

/// The address of the first task-list link of a clean read (the 8-byte read that returned
/// the second listed task's header), and the first two tasks' headers.
fn first_link(t: &dyn tasktrace_inspect::process::Target, info: &DebugInfo) -> (u64, u64, u64) {
    let bias = t.at_entry().map_or(0, |e| e.wrapping_sub(info.entry));
    let rec = Faulty {
        log: Some(RefCell::new(Vec::new())),
        ..Faulty::new(t)
    };
    let reader = tasktrace_inspect::value::Reader {
        target: &rec,
        info,
        bias,
    };
    let tk = tasktrace_inspect::tokio::Tokio::new(&reader).expect("tokio types");
    let contexts = tk.thread_contexts().expect("thread contexts");
    let rts = tk.runtimes(&contexts);
    rec.log.as_ref().unwrap().borrow_mut().clear();
    let (raw, _) = tk.tasks(&rts[0], 100_000).expect("the task list");
    assert!(raw.len() > 2, "{raw:?}");
    let log = rec.log.as_ref().unwrap().borrow();
    let &(link, _) = log
        .iter()
        .find(|&&(_, v)| v == raw[1].header)
        .expect("a read returned the second task's header");
    (link, raw[0].header, raw[1].header)
}

/// Makes a core of a running demo target with gcore (None if gcore is missing).
fn gcore(t: &Demo, dir: &support::Scratch) -> Option<String> {
    support::gcore(t.pid() as u32, &dir.join("core"))
}

#[test]
fn memory_unreadable_mid_walk_and_corrupt_lists_of_a_core() {
    let t = Demo::start(&[]);
    let dir = support::Scratch::new("faults");
    let Some(core) = gcore(&t, &dir) else { return };
    t.assert_running("gcore");
    let info = DebugInfo::load(TARGET).expect("debuginfo");
    let file = CoreFile::open(&core).expect("the core");
    drop(dir);
    let opts = Options::default();

    let counted = Faulty::new(&file);
    let clean = tasktrace_inspect::read(&counted, &info, &opts).expect("a clean read");
    assert!(!is_partial(&clean), "{:?}", clean.notes);
    let total = counted.reads.get();
    assert!(total > 100, "{total} reads");

    // Reads fail from the N-th on, for N spread over the whole read.
    let mut o = Outcomes::default();
    let step = (total / 80).max(1);
    let mut injected = 0;
    for n in (0..=total).step_by(step) {
        let f = Faulty {
            fail_after: n,
            ..Faulty::new(&file)
        };
        check(
            tasktrace_inspect::read(&f, &info, &opts),
            &clean,
            &format!("reads failing after {n}"),
            &mut o,
        );
        injected += 1;
    }
    assert!(o.partial > 0, "{o:?}");

    // A hole in memory: the page of the third listed task's header and the next ones.
    let (link, h0, h1) = first_link(&file, &info);
    for (a, b) in [(h1, h1 + 1), (h1 & !0xfff, (h1 & !0xfff) + 0x4000)] {
        let f = Faulty {
            range: Some((a, b)),
            ..Faulty::new(&file)
        };
        check(
            tasktrace_inspect::read(&f, &info, &opts),
            &clean,
            &format!("reads failing in {a:#x}..{b:#x}"),
            &mut o,
        );
        injected += 1;
    }

    // A cycle: the first link points back to the first task.
    let f = Faulty {
        corrupt: Some((link, h0)),
        ..Faulty::new(&file)
    };
    let d = tasktrace_inspect::read(&f, &info, &opts).expect("a partial dump");
    assert!(
        d.partial.iter().any(|n| n.contains("cycle")),
        "{:?}",
        d.notes
    );
    assert!(d.tasks.len() < clean.tasks.len());
    check(Ok(d), &clean, "cycle", &mut o);
    // A dangling pointer: the link points to unmapped memory.
    let f = Faulty {
        corrupt: Some((link, 0xdead_beef_0000)),
        ..Faulty::new(&file)
    };
    let d = tasktrace_inspect::read(&f, &info, &opts).expect("a partial dump");
    assert!(
        d.partial.iter().any(|n| n.contains("unreadable")),
        "{:?}",
        d.notes
    );
    check(Ok(d), &clean, "dangling link", &mut o);
    injected += 2;

    // The per-read frame budget: tasks past it are listed, not decoded, and the dump says so.
    let small = Options {
        max_frames: 20,
        ..Options::default()
    };
    let d = tasktrace_inspect::read(&file, &info, &small).expect("a budgeted read");
    assert_eq!(d.tasks.len(), clean.tasks.len());
    assert!(
        d.partial.iter().any(|n| n.contains("budget of 20 frames")),
        "{:?}",
        d.notes
    );
    let undecoded = d
        .tasks
        .iter()
        .filter(|t| t.error.as_deref().is_some_and(|e| e.contains("budget")))
        .count();
    assert!(undecoded > 0 && undecoded < d.tasks.len(), "{undecoded}");
    eprintln!(
        "core faults: {injected} injected over {total} reads of a clean read \
         ({} tasks): {o:?}",
        clean.tasks.len()
    );
}

#[test]
fn memory_unreadable_mid_walk_and_corrupt_lists_of_a_live_process() {
    let t = Demo::start(&[]);
    let pid = t.pid();
    let info = DebugInfo::load(TARGET).expect("debuginfo");
    let opts = Options::default();
    let timeout = Duration::from_secs(10);
    let (clean, total, link, h0) = {
        let p = LiveProcess::attach(pid, timeout).expect("attach");
        let counted = Faulty::new(&p);
        let clean = tasktrace_inspect::read(&counted, &info, &opts).expect("a clean read");
        let (link, h0, _) = first_link(&p, &info);
        (clean, counted.reads.get(), link, h0)
    };
    t.assert_running("a clean live read");
    let mut o = Outcomes::default();
    for n in [0, 1, 5, total / 10, total / 3, total / 2, total - 1] {
        {
            let p = LiveProcess::attach(pid, timeout).expect("attach");
            let f = Faulty {
                fail_after: n,
                ..Faulty::new(&p)
            };
            check(
                tasktrace_inspect::read(&f, &info, &opts),
                &clean,
                &format!("live reads failing after {n}"),
                &mut o,
            );
        }
        t.assert_running(&format!("reads failing after {n}"));
    }
    for (what, value, expect) in [
        ("cycle", h0, "cycle"),
        ("dangling", 0xdead_beef_0000, "unreadable"),
    ] {
        {
            let p = LiveProcess::attach(pid, timeout).expect("attach");
            let f = Faulty {
                corrupt: Some((link, value)),
                ..Faulty::new(&p)
            };
            let d = tasktrace_inspect::read(&f, &info, &opts).expect("a partial dump");
            assert!(
                d.partial.iter().any(|n| n.contains(expect)),
                "{what}: {:?}",
                d.notes
            );
            check(Ok(d), &clean, what, &mut o);
        }
        t.assert_running(what);
    }
    eprintln!("live faults: 9 injected: {o:?}");
}

// ---------------------------------------------------------------------------------------------
// ptrace refused: the target is already traced.

/// The demo target started under `PTRACE_TRACEME` by a dedicated tracer thread, which resumes
/// it at every stop until it dies.
struct Traced {
    pid: i32,
    addr: String,
    tracer: Option<std::thread::JoinHandle<()>>,
}

impl Traced {
    fn start() -> Traced {
        let (tx, rx) = mpsc::channel();
        let tracer = std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(TARGET);
            cmd.stdout(Stdio::piped());
            // SAFETY: ptrace(PTRACE_TRACEME) is a plain syscall, async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if ptrace(0, 0, 0usize, 0usize) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("start the traced target");
            let pid = child.id() as i32;
            let stdout = child.stdout.take().expect("stdout");
            tx.send((pid, stdout)).unwrap();
            loop {
                let mut status = 0;
                // SAFETY: `status` is a valid out-pointer.
                let r = unsafe { waitpid(pid, &mut status, 0x4000_0000) }; // __WALL
                if r != pid {
                    break;
                }
                if status & 0xff == 0x7f {
                    // Stopped: resume, passing the signal on (not our exec SIGTRAP).
                    let sig = (status >> 8) & 0xff;
                    let pass = if sig == 5 { 0 } else { sig as usize };
                    // SAFETY: PTRACE_CONT (7) of our tracee; no pointers.
                    unsafe { ptrace(7, pid, 0usize, pass) };
                } else {
                    break; // exited or killed
                }
            }
            // Reaped above (this only returns its error), or killed by `Traced::drop`.
            let _ = child.wait();
        });
        let (pid, stdout) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the tracer thread started the target");
        let addr = wait_ready(stdout);
        Traced {
            pid,
            addr,
            tracer: Some(tracer),
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // SAFETY: SIGKILL to the target we started; the tracer thread reaps it.
        unsafe { kill(self.pid, 9) };
        if let Some(t) = self.tracer.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn ptrace_refused_when_the_target_is_already_traced() {
    let t = Traced::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", t.pid)).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0"),
        "{status}"
    );
    let out = tasktrace(&["attach", &t.pid.to_string()], &[]);
    let err = assert_clean_failure(&out, "attach of a traced process");
    assert!(err.contains("is already traced by process"), "{err}");
    assert_running(t.pid, &t.addr, "a refused attach");
    // A second refusal is the same (nothing was left half-attached).
    let out = tasktrace(&["attach", &t.pid.to_string(), "--json"], &[]);
    assert_clean_failure(&out, "second attach of a traced process");
    assert_running(t.pid, &t.addr, "a second refused attach");
}

// ---------------------------------------------------------------------------------------------
// Truncated core files.

/// `(p_type, p_offset, p_filesz)` of each program header of the ELF core `bytes`.
fn program_headers(bytes: &[u8]) -> Vec<(u32, usize, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| {
            let ph = phoff + i * phentsize;
            let p_type = u32::from_le_bytes(bytes[ph..ph + 4].try_into().unwrap());
            (p_type, u64_at(ph + 8), u64_at(ph + 32))
        })
        .collect()
}

/// A gcore of the demo target cut at several points. Inside its headers: one line, exit 1.
/// Anywhere past them — in the heap, in the thread stacks, in the notes (gcore writes them
/// after the memory) — it reads: the first note says how much is there, and every task it
/// lists is the full core's task with the same tree.
#[test]
fn truncated_cores_read_what_is_there() {
    let t = Demo::start(&[]);
    let dir = support::Scratch::new("truncated");
    let Some(core) = gcore(&t, &dir) else { return };
    t.assert_running("gcore");
    let bytes = std::fs::read(&core).expect("the core");
    let full = json_dump(&support::tasktrace(&[
        "core", &core, "--exe", TARGET, "--json",
    ]));
    assert!(has_foo(&full), "{full}");
    let cut = |at: usize| {
        // One file, rewritten for each cut: a core is hundreds of MB.
        let path = dir.join("cut");
        std::fs::write(&path, &bytes[..at]).unwrap();
        path.to_str().unwrap().to_string()
    };

    // The ELF header, the program header table.
    let phdrs_end = 64 + program_headers(&bytes).len() * 56;
    for at in [10, 64 + 20, phdrs_end - 1] {
        let out = support::tasktrace(&["core", &cut(at), "--exe", TARGET]);
        let err = assert_clean_failure(&out, &format!("cut at {at}"));
        assert!(
            err.contains("truncated core file") && err.contains(&format!("ends at byte {at}")),
            "cut at {at}: {err}"
        );
    }

    let (_, notes_at, notes_len) = *program_headers(&bytes)
        .iter()
        .find(|p| p.0 == 4)
        .expect("a PT_NOTE segment");
    let last_load = program_headers(&bytes)
        .iter()
        .filter(|p| p.0 == 1 && p.2 > 0)
        .map(|p| p.1 + p.2 / 2)
        .max()
        .unwrap();
    let n = bytes.len();
    let points = [
        ("40 %", n * 2 / 5, false),
        ("60 %", n * 3 / 5, false),
        ("80 %", n * 4 / 5, true),
        ("inside the last memory segment", last_load, true),
        ("inside the notes", notes_at + notes_len / 2, true),
    ];
    for (what, at, all_there) in points {
        if at >= n {
            continue;
        }
        let out = support::tasktrace(&["core", &cut(at), "--exe", TARGET, "--json"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what} (byte {at}): {err}");
        let d = json_dump(&out);
        let first = d.notes.first().map(String::as_str).unwrap_or("");
        assert!(
            first.starts_with(&format!("truncated core: {at} of ")),
            "{what}: {:?}",
            d.notes
        );
        assert!(has_foo(&d), "{what}: {d}");
        for task in &d.tasks {
            let Some(same) = full.tasks.iter().find(|f| f.id == task.id) else {
                // The scan also finds the blocking pool's tasks, which no owned list holds.
                assert!(
                    task.trace.to_string().contains("BlockingTask"),
                    "{what}: {task:?}"
                );
                continue;
            };
            // A lock held by a thread's `block_on` future is named only when that thread's
            // registers are in the core (its notes were not cut off): compare without it.
            let (ours, theirs) = (
                without_thread_holders(&task.trace.to_string()),
                without_thread_holders(&same.trace.to_string()),
            );
            if ours != theirs {
                // Cut short where its memory is missing: the same tree down to a frame marked
                // unreadable, and the dump says it is partial.
                let lines: Vec<&str> = ours.lines().collect();
                let (last, above) = lines.split_last().unwrap();
                assert!(
                    last.contains("[unreadable: cannot read"),
                    "{what}: {ours}\n{theirs}"
                );
                assert!(
                    theirs.starts_with(&above.join("\n")),
                    "{what}: {ours}\n{theirs}"
                );
                assert!(is_partial(&d), "{what}: {:?}", d.notes);
            }
        }
        let missing = full
            .tasks
            .iter()
            .filter(|f| !d.tasks.iter().any(|t| t.id == f.id))
            .count();
        if all_there {
            assert_eq!(missing, 0, "{what}: {d}");
        } else if missing > 0 {
            assert!(is_partial(&d), "{what}: {missing} missing: {:?}", d.notes);
        }
        eprintln!(
            "truncated {what} (byte {at} of {n}): {} tasks, {missing} of the full read's missing",
            d.tasks.len()
        );
    }
}

/// `text` without the ", held by the block_on future of thread N" of lock leaves.
fn without_thread_holders(text: &str) -> String {
    const HELD: &str = ", held by the block_on future of thread ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HELD) {
        out.push_str(&rest[..at]);
        rest = rest[at + HELD.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}
