//! A snapshot from a frozen fork of this process.
//!
//! How it is taken, and why each step is safe:
//! 1. **Fork.** The calling thread calls `fork()`. The child is a copy of this process with
//!    that one thread. Another thread may hold a lock (the allocator's, stdout's) at the fork,
//!    and nothing in the child would ever release it, so the child runs only async-signal-safe
//!    system calls and allocates nothing: `close_range` of every descriptor above stderr (the
//!    copy keeps no socket, file or epoll instance open), `prctl(PR_SET_PDEATHSIG, SIGKILL)`
//!    (killed if the forking thread dies), a check that its parent is still this process,
//!    then `SIGSTOP` to itself, and `_exit` should it ever be continued. The death signal
//!    follows the *thread* that forked, so the fork happens on the thread that then reads and
//!    reaps — never on a helper thread that would exit first.
//! 2. **Read.** The parent waits (with a deadline) until the child is stopped, then reads the
//!    child's memory with `process_vm_readv` — allowed for a parent under Yama's default
//!    `ptrace_scope`, no capability needed — with this executable's own debuginfo, indexed
//!    once and kept (`tasktrace-inspect`). The runtime handles are at the same addresses in
//!    the copy.
//! 3. **Kill and reap.** One `FrozenChild` guard owns the child's pid; its `Drop` sends
//!    `SIGKILL` and reaps it, so every path — success, error, timeout, panic — leaves no
//!    process and no zombie behind. Nothing else waits for that pid.
//!
//! The program's pause is the `fork()` itself: the kernel copies the page tables (the memory
//! is shared copy-on-write). It grows with the resident size; above
//! [`SnapshotOptions::max_resident`] a snapshot is refused.

use super::{Measured, Method, SnapshotError, SnapshotOptions};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tasktrace_inspect::debuginfo::DebugInfo;
use tasktrace_inspect::Prepared;

/// This executable's debuginfo, indexed on the first fork snapshot, with what every read
/// derives from it alone (tokio's layout, …).
static DEBUGINFO: OnceLock<Result<(DebugInfo, Prepared), String>> = OnceLock::new();

/// Reads the runtimes at `handles` from a frozen fork of this process.
pub(super) fn snapshot(
    handles: &[u64],
    options: &SnapshotOptions,
) -> Result<Measured, SnapshotError> {
    let (info, prepared) = debuginfo()?;
    let resident = resident_bytes();
    if resident > options.max_resident {
        return Err(SnapshotError(format!(
            "snapshot: not taken: {} MiB resident is above the limit of {} MiB \
             (SnapshotOptions::max_resident), the fork would pause the program too long",
            resident >> 20,
            options.max_resident >> 20
        )));
    }
    let started = Instant::now();
    let mut child = FrozenChild::fork()?;
    let paused = started.elapsed();
    child.wait_stopped(options.timeout)?;
    let opts = tasktrace_inspect::Options {
        runtime_handles: handles.to_vec(),
        values: options.values,
        ..Default::default()
    };
    let read = tasktrace_inspect::frozen::read_frozen(child.pid, info, prepared, &opts);
    drop(child);
    info.release_pages();
    let mut dump =
        read.map_err(|e| SnapshotError(format!("snapshot: cannot read the copy: {e}")))?;
    dump.notes.push(format!(
        "snapshot: read from a frozen copy of this process; the fork paused it {:.1} ms ({} MiB resident)",
        paused.as_secs_f64() * 1e3,
        resident >> 20
    ));
    Ok(Measured {
        dump,
        paused,
        method: Method::Fork,
        reader_resident: None,
        reader_pid: None,
    })
}

fn debuginfo() -> Result<&'static (DebugInfo, Prepared), SnapshotError> {
    DEBUGINFO
        .get_or_init(|| {
            let exe = std::fs::read_link("/proc/self/exe")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/proc/self/exe".into());
            let info = DebugInfo::load_with("/proc/self/exe", &exe, None).map_err(|e| {
                format!(
                    "snapshot: not taken: {e} (tasks are read with type layouts: build with \
                     `[profile.release] debug = true`, or put a debug file next to the executable)"
                )
            })?;
            let prepared = Prepared::new(&info).map_err(|e| format!("snapshot: not taken: {e}"))?;
            Ok((info, prepared))
        })
        .as_ref()
        .map_err(|e| SnapshotError(e.clone()))
}

/// Resident memory of this process, in bytes (0 if unknown).
fn resident_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// The stopped copy; killed and reaped on drop.
struct FrozenChild {
    pid: i32,
    /// Set once the child was reaped (it exited early): drop has nothing left to do.
    reaped: bool,
}

impl FrozenChild {
    /// Forks; the child closes its descriptors and stops itself (see the module docs).
    fn fork() -> Result<FrozenChild, SnapshotError> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only the async-signal-safe calls below and never returns
        // into Rust code: no allocation, no lock, no destructor runs in it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: raw system calls on integers; `_exit` does not return.
            unsafe {
                if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                    for fd in 3..65_536 {
                        libc::close(fd);
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() == parent {
                    libc::raise(libc::SIGSTOP);
                }
                libc::_exit(0);
            }
        }
        if pid < 0 {
            return Err(SnapshotError(format!(
                "snapshot: fork failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(FrozenChild { pid, reaped: false })
    }

    /// Waits until the child has stopped itself, at most `timeout`.
    fn wait_stopped(&mut self, timeout: Duration) -> Result<(), SnapshotError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes one int to `status`.
            let r =
                unsafe { libc::waitpid(self.pid, &mut status, libc::WUNTRACED | libc::WNOHANG) };
            if r == self.pid && libc::WIFSTOPPED(status) {
                return Ok(());
            }
            if r == self.pid {
                self.reaped = true;
                return Err(SnapshotError(
                    "snapshot: the frozen copy exited before it could be read".into(),
                ));
            }
            if r < 0 && stopped_per_proc(self.pid) {
                // Not waitable (SIGCHLD ignored by the program): /proc says it is stopped.
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SnapshotError(format!(
                    "snapshot: the frozen copy did not stop within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Whether `/proc/PID/stat` says the process is stopped (`T`).
fn stopped_per_proc(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let i = s.rfind(')')?;
            s[i + 1..].trim_start().chars().next()
        })
        == Some('T')
}

impl Drop for FrozenChild {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: `pid` is our own child, not yet reaped: no other process has this pid.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes one int to `status`.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            // Reaped, or not ours to wait for (auto-reaped with SIGCHLD ignored).
            if r == self.pid || r < 0 || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
