//! The reader process: a snapshot read from outside, the way `tasktrace attach` reads, by a
//! process this library starts from the program's own executable.
//!
//! Why a process: a `fork` pauses the program for as long as the kernel copies its page
//! tables, which grows with its resident memory (~20 ms per GiB), and a reader inside the
//! program keeps its debuginfo index in the program's heap. The reader process keeps the index
//! in its own memory and stops the program's threads only while it copies the task lists and
//! futures (ptrace, as `attach`), then decodes after they run on: the pause depends on what is
//! read, not on the heap.
//!
//! How it is started, and why each step is safe:
//! 1. **Spawn.** [`Reader::spawn`] runs, from a thread of its own, `/proc/self/exe` (the program's executable, also when
//!    replaced on disk since) with [`READER_ENV`] set to this process's pid, standard input
//!    and output as pipes, standard error to `/dev/null`. `std::process::Command` spawns with
//!    `posix_spawn` (a `vfork`: no page tables copied). The program then allows the reader to
//!    trace it, `prctl(PR_SET_PTRACER, reader)` (Yama's default `ptrace_scope` lets only
//!    ancestors trace otherwise; the allowance names one process and ends with it).
//! 2. **The reader's start.** The executable holds [`READER_HOOK`] in `.init_array`: it runs
//!    before `main` in every start of the program, returns at once when [`READER_ENV`] is not
//!    set, and otherwise becomes the reader and never returns into `main`. First it closes every
//!    descriptor above standard error (a socket the program had open without `O_CLOEXEC`
//!    must not stay open in another process), asks to be killed when the program dies
//!    (`PR_SET_PDEATHSIG`), and checks that its parent is still the program.
//! 3. **Requests.** One JSON line each way: the runtime handles to read and the deadline in,
//!    the dump (or the error) and the stop's figures out. The program waits for the answer
//!    with a deadline; a reader that misses it is killed and a new one started next time.
//!    The reader indexes the debuginfo on the first request and keeps it; it exits after
//!    [`SnapshotOptions::reader_idle`] without a request, or when its input closes.
//! 4. **Reaping.** The thread that started the reader (it must outlive the reader: the death
//!    signal follows the thread that started a process) waits for the reader's exit without
//!    reaping it (`waitid(WNOWAIT)`), marks it gone under the lock that killing takes, then
//!    reaps it: a reader is never left a zombie, and its pid is never signalled once it may be
//!    reused.

use super::{SnapshotError, SnapshotOptions};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasktrace_model::{Dump, Node};

/// Set (to the program's pid) in the reader's environment: the executable starts as a reader.
pub(crate) const READER_ENV: &str = "TASKTRACE_SNAPSHOT_READER";

/// Shown for the reader in `ps` (its `argv[0]`).
const READER_NAME: &str = "tasktrace-snapshot-reader";

/// What the program asks the reader.
#[derive(Serialize, Deserialize)]
struct Request {
    /// Addresses of `tokio::runtime::Handle` values in the program.
    handles: Vec<u64>,
    /// Deadline for stopping the program's threads, in milliseconds.
    timeout_ms: u64,
    /// Exit after this long without a request, in milliseconds.
    idle_ms: u64,
    /// Read the values of async fn frames.
    #[serde(default)]
    values: bool,
    /// The program's thread asking (it waits for the answer: its stack is not unwound).
    #[serde(default)]
    asking_thread: Option<i32>,
}

/// A dump as the reader sends it: each distinct tree once (tasks suspended alike share one:
/// 10,000 idle tasks of one kind are one tree, not 10,000), the tasks with empty traces and
/// the index of theirs.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireDump {
    dump: Dump,
    trees: Vec<Arc<Vec<Node>>>,
    tree_of: Vec<u32>,
}

impl WireDump {
    fn new(mut dump: Dump) -> WireDump {
        let mut index: HashMap<*const Vec<Node>, u32> = HashMap::new();
        let mut trees = Vec::new();
        let mut tree_of = Vec::with_capacity(dump.tasks.len());
        for t in &mut dump.tasks {
            let roots = std::mem::take(&mut t.trace.roots);
            let i = *index.entry(Arc::as_ptr(&roots)).or_insert_with(|| {
                trees.push(roots.clone());
                (trees.len() - 1) as u32
            });
            tree_of.push(i);
        }
        WireDump {
            dump,
            trees,
            tree_of,
        }
    }

    /// The dump, its tasks' trees shared as they were in the reader.
    pub(crate) fn into_dump(self) -> Dump {
        let mut dump = self.dump;
        for (t, &i) in dump.tasks.iter_mut().zip(&self.tree_of) {
            if let Some(tree) = self.trees.get(i as usize) {
                t.trace.roots = tree.clone();
            }
        }
        dump
    }
}

/// What the reader answers.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reply {
    /// The dump, or why there is none.
    pub result: Result<WireDump, String>,
    /// How long the program's threads were stopped, in microseconds.
    pub stopped_us: u64,
    /// The reader's resident memory after the read, in KiB.
    pub reader_kib: u64,
    /// The reader's pid.
    pub reader_pid: u32,
}

/// A running reader process, as the program sees it.
pub(crate) struct Reader {
    pid: u32,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// Set by the reaping thread, under its lock, once the reader has exited.
    gone: Arc<Mutex<bool>>,
    /// Set when its pipes closed under a request: it has ended (or is ending).
    closed: bool,
}

impl Reader {
    /// Starts a reader from this program's executable and lets it trace this process.
    pub(crate) fn spawn() -> Result<Reader, SnapshotError> {
        // The reader is started by the thread that will reap it: `PR_SET_PDEATHSIG` follows
        // the thread that started a process, not the process, and a thread of the blocking
        // pool that asked for a dump exits when idle: the reader would die with it.
        let (started, start) = std::sync::mpsc::channel();
        let gone = Arc::new(Mutex::new(false));
        let marked = gone.clone();
        std::thread::Builder::new()
            .name("tasktrace-reader".into())
            .spawn(move || {
                let mut child = match reader_command().spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = started.send(Err(e.to_string()));
                        return;
                    }
                };
                let pid = child.id();
                let pipes = (child.stdin.take(), child.stdout.take());
                let _ = started.send(Ok((pid, pipes)));
                wait_without_reaping(pid);
                *marked.lock().unwrap_or_else(|e| e.into_inner()) = true;
                let _ = child.wait();
            })
            .map_err(|e| {
                SnapshotError(format!(
                    "snapshot: cannot start a thread for the reader process: {e}"
                ))
            })?;
        let (pid, pipes) = start
            .recv()
            .map_err(|_| SnapshotError("snapshot: the reader's thread ended at once".into()))?
            .map_err(|e| {
                SnapshotError(format!("snapshot: cannot start the reader process: {e}"))
            })?;
        let (Some(input), Some(output)) = pipes else {
            kill_unless_gone(pid, &gone);
            return Err(SnapshotError(
                "snapshot: the reader process has no pipes".into(),
            ));
        };
        // SAFETY: prctl with integer arguments; it changes only who may trace this process.
        // EINVAL (no Yama) means no allowance is needed.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, pid as libc::c_ulong, 0, 0, 0) };
        Ok(Reader {
            pid,
            input,
            output: BufReader::new(output),
            gone,
            closed: false,
        })
    }

    /// Whether the reader has exited.
    pub(crate) fn is_gone(&self) -> bool {
        *self.gone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the reader has ended: exited, or its pipes closed under a request.
    pub(crate) fn ended(&self) -> bool {
        self.closed || self.is_gone()
    }

    /// Asks for a read of the runtimes at `handles`; `deadline` bounds the whole exchange
    /// (the first one indexes the debuginfo).
    pub(crate) fn ask(
        &mut self,
        handles: &[u64],
        options: &SnapshotOptions,
        deadline: Duration,
    ) -> Result<Reply, SnapshotError> {
        let request = Request {
            handles: handles.to_vec(),
            timeout_ms: options.timeout.as_millis() as u64,
            idle_ms: options.reader_idle.as_millis() as u64,
            values: options.values,
            // SAFETY: gettid has no preconditions.
            asking_thread: Some(unsafe { libc::gettid() }),
        };
        let mut line =
            serde_json::to_string(&request).map_err(|e| SnapshotError(format!("snapshot: {e}")))?;
        line.push('\n');
        self.input
            .write_all(line.as_bytes())
            .map_err(|e| SnapshotError(format!("snapshot: the reader process is gone ({e})")))?;
        let started = Instant::now();
        let mut answer = String::new();
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            if self.output.buffer().is_empty() && !readable(self.output.get_ref(), left) {
                return Err(SnapshotError(format!(
                    "snapshot: the reader process did not answer within {deadline:?}"
                )));
            }
            let before = answer.len();
            self.output.read_line(&mut answer).map_err(|e| {
                SnapshotError(format!("snapshot: cannot read the reader's answer: {e}"))
            })?;
            if answer.ends_with('\n') {
                break;
            }
            if answer.len() == before {
                self.closed = true;
                return Err(SnapshotError(
                    "snapshot: the reader process exited without answering".into(),
                ));
            }
        }
        serde_json::from_str(&answer)
            .map_err(|e| SnapshotError(format!("snapshot: the reader's answer is garbled: {e}")))
    }

    /// Kills the reader (its reaping thread then reaps it).
    pub(crate) fn kill(&self) {
        kill_unless_gone(self.pid, &self.gone);
    }
}

/// Kills the reader `pid` unless its reaping thread has marked it `gone`.
fn kill_unless_gone(pid: u32, gone: &Mutex<bool>) {
    let gone = gone.lock().unwrap_or_else(|e| e.into_inner());
    if !*gone {
        // SAFETY: the reader has not exited (checked under the lock its reaper takes before
        // reaping it), so `pid` is still our child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command that starts a reader: this executable, told to be one.
fn reader_command() -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0(READER_NAME)
        .env(READER_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Blocks until child `pid` has exited, leaving it unreaped.
fn wait_without_reaping(pid: u32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes one siginfo_t to `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Whether `fd` has data (or end of file) within `wait`.
fn readable(fd: &impl AsRawFd, wait: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll reads and writes the one pollfd given.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// Runs first in every start of the executable (see the module docs): becomes the reader
/// process when [`READER_ENV`] is set, and returns at once otherwise.
#[used]
#[link_section = ".init_array"]
pub(crate) static READER_HOOK: extern "C" fn() = reader_hook;

extern "C" fn reader_hook() {
    let Some(parent) = std::env::var_os(READER_ENV) else {
        return;
    };
    // SAFETY: raw system calls on integers, before anything else runs in this process.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..65_536 {
                libc::close(fd);
            }
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let parent: i32 = parent.to_str().and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: getppid has no preconditions.
    if parent <= 0 || unsafe { libc::getppid() } != parent {
        std::process::exit(1);
    }
    let code = std::panic::catch_unwind(|| serve(parent)).unwrap_or(101);
    std::process::exit(code)
}

/// The reader's loop: a read per request line, until the input closes or stays idle.
fn serve(parent: i32) -> i32 {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let mut session: Option<tasktrace_inspect::Session> = None;
    let mut idle = Duration::from_secs(120);
    loop {
        // One request at a time (the program waits for each answer): nothing is buffered
        // between them, so the pipe itself says whether the next one came.
        if !readable(&std::io::stdin(), idle) {
            return 0;
        }
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let Ok(request) = serde_json::from_str::<Request>(&line) else {
            return 2;
        };
        idle = Duration::from_millis(request.idle_ms.max(1000));
        let opts = tasktrace_inspect::Options {
            timeout: Duration::from_millis(request.timeout_ms.max(100)),
            runtime_handles: request.handles,
            values: request.values,
            reading_thread: request.asking_thread,
            ..Default::default()
        };
        let (result, stopped) = read(parent, &mut session, &opts);
        let reply = Reply {
            result: result.map(WireDump::new),
            stopped_us: stopped.as_micros() as u64,
            reader_kib: resident_kib(),
            reader_pid: std::process::id(),
        };
        let Ok(mut text) = serde_json::to_string(&reply) else {
            return 3;
        };
        text.push('\n');
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return 0;
        }
    }
}

/// One read of the program, indexing its debuginfo first if this reader has not yet.
fn read(
    parent: i32,
    session: &mut Option<tasktrace_inspect::Session>,
    opts: &tasktrace_inspect::Options,
) -> (Result<Dump, String>, Duration) {
    if session.is_none() {
        match tasktrace_inspect::Session::new(parent, opts) {
            Ok(s) => *session = Some(s),
            Err(e) => return (Err(e.to_string()), Duration::ZERO),
        }
    }
    let Some(s) = session.as_ref() else {
        return (Err("no session".into()), Duration::ZERO);
    };
    match s.sample(opts) {
        Ok((dump, stopped)) => (Ok(dump), stopped),
        Err(e) => (Err(e.to_string()), Duration::ZERO),
    }
}

/// This process's resident memory, in KiB (0 if unknown).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
