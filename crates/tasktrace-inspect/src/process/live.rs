//! A live process, stopped with ptrace for the time of one read.
//!
//! Invariants:
//! - Who stops what: [`LiveProcess::attach`] `PTRACE_SEIZE`s every thread listed in
//!   `/proc/PID/task` (re-listing until no new thread appears; a seize does not stop a
//!   thread), then stops them all with `PTRACE_INTERRUPT` one after the other — the stop is
//!   counted from the first — lists once more for a thread created meanwhile (seized and
//!   interrupted at once), then waits (with a deadline) until each reports its stop. Nothing
//!   else is ever done to the threads: no signal is sent, no register or memory is written.
//! - When it is detached: every seized thread is recorded as soon as it is seized. The
//!   `Drop` of [`LiveProcess`] detaches all of them — on success, on every error (the
//!   value is dropped by `?`), on a timeout, and on a panic (unwinding drops it); a thread
//!   seized but not yet stopped (an error between the seizes and the interrupts) is
//!   interrupted first, since only a stopped thread can be detached. A `SIGINT`
//!   handler (installed while a process is held) detaches the recorded threads with raw
//!   syscalls (async-signal-safe) before exiting with status 130.
//! - Why that is safe even if all of this fails: `PTRACE_INTERRUPT` stops are not
//!   group-stops, so if the tracer dies (even by `SIGKILL`) the kernel detaches every tracee
//!   and lets it run on. A seized thread is never left in a state the target can observe.
//! - A signal that reached a thread before our interrupt (a signal-delivery-stop) is given
//!   back to it on detach, so the target sees every signal it was sent.
//! - What is fixed or only shown (the entry point, the mappings, the threads' names) is read
//!   before the first thread is stopped; registers while it is.
//! - Memory is read with `process_vm_readv` (falling back to `/proc/PID/mem`), only while
//!   the threads are stopped.

use super::{auxv_entry, MappedFile, Registers, Target, Thread};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most threads recorded for the `SIGINT` handler.
const MAX_SIGNAL_TIDS: usize = 4096;
/// The threads held now, for the `SIGINT` handler: a slot is taken by [`LiveProcess::record`]
/// (the first free one) and freed by the drop that detaches its thread, so slots are reused
/// from one sample to the next.
static SIGNAL_TIDS: [AtomicI32; MAX_SIGNAL_TIDS] = [const { AtomicI32::new(0) }; MAX_SIGNAL_TIDS];
/// One past the highest slot ever taken: how far the handler looks.
static SIGNAL_COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    let n = SIGNAL_COUNT.load(Ordering::SeqCst).min(MAX_SIGNAL_TIDS);
    for slot in &SIGNAL_TIDS[..n] {
        let tid = slot.load(Ordering::SeqCst);
        if tid > 0 {
            // SAFETY: ptrace and _exit are async-signal-safe raw syscalls; detaching a thread
            // we seized has no memory-safety effect on this process.
            unsafe {
                libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, 0usize);
            }
        }
    }
    // SAFETY: terminating the process from a signal handler without running destructors.
    unsafe { libc::_exit(130) };
}

/// A live process whose threads are all stopped; detached on drop.
pub struct LiveProcess {
    /// The `SIGINT`/`SIGTERM` actions before ours, restored on drop.
    old_actions: Option<[libc::sigaction; 2]>,
    pid: i32,
    seized: Vec<i32>,
    /// The `SIGNAL_TIDS` slots taken, with their threads.
    slots: Vec<(usize, i32)>,
    /// When the first thread was told to stop.
    stopped_at: Option<Instant>,
    /// Signals that arrived before our interrupt, given back on detach.
    signals: Vec<(i32, i32)>,
    threads: Vec<Thread>,
    /// Registers and name of each thread, read while it is stopped.
    states: super::ThreadStates,
    /// File mappings, read while stopped.
    maps: Vec<MappedFile>,
    entry: Option<u64>,
}

impl LiveProcess {
    /// Seizes and stops every thread of `pid`, waiting at most `timeout` for them to stop.
    pub fn attach(pid: i32, timeout: Duration) -> Result<LiveProcess> {
        let deadline = Instant::now() + timeout;
        let task_dir = format!("/proc/{pid}/task");
        if pid <= 0 || std::fs::metadata(format!("/proc/{pid}")).is_err() {
            return Err(Error::NoSuchProcess(pid));
        }
        // Read before the first thread stops, to keep the stop short: the entry point (fixed
        // for the process's life), the mappings (a mapping made between this read and the
        // stop is one no thread stopped in has used yet) and the threads' names (only shown;
        // a thread that appears meanwhile has its name read while stopped).
        let entry = std::fs::read(format!("/proc/{pid}/auxv"))
            .ok()
            .and_then(|auxv| auxv_entry(&auxv));
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map(|m| super::parse_maps(&m))
            .unwrap_or_default();
        let names: Vec<(i32, Option<String>)> = std::fs::read_dir(&task_dir)
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .map(|tid| (tid, thread_name(pid, tid)))
                    .collect()
            })
            .unwrap_or_default();
        let mut proc = LiveProcess::holding(pid, Some(install_sigint()));
        // Seize every thread first (a seize does not stop it), listing again until nothing new
        // appears; then interrupt them all in one go, so that the stop lasts from the first
        // interrupt only as long as the interrupts themselves; then list once more, while they
        // come to their stops, for a thread created since the last listing (seized and
        // interrupted at once).
        for _round in 0..8 {
            if proc.seize_new(&task_dir)? == 0 {
                break;
            }
        }
        if proc.seized.is_empty() {
            return Err(Error::NoSuchProcess(pid));
        }
        proc.stopped_at = Some(Instant::now());
        proc.seized.iter().for_each(|&tid| interrupt(tid));
        for _round in 0..8 {
            let before = proc.seized.len();
            if proc.seize_new(&task_dir)? == 0 {
                break;
            }
            proc.seized[before..].iter().for_each(|&tid| interrupt(tid));
        }
        let mut stopped = Vec::new();
        for i in 0..proc.seized.len() {
            let tid = proc.seized[i];
            if let Some(sig) = wait_stop(tid, deadline, timeout)? {
                stopped.push(tid);
                if sig != 0 {
                    proc.signals.push((tid, sig));
                }
            }
        }
        proc.seized.retain(|t| stopped.contains(t));
        for &tid in &proc.seized {
            let regs = user_regs(tid)?;
            proc.threads.push(Thread {
                tid,
                fs_base: regs.fs_base,
            });
            let name = match names.iter().find(|(t, _)| *t == tid) {
                Some((_, name)) => name.clone(),
                None => thread_name(pid, tid),
            };
            proc.states.push(super::ThreadState {
                tid,
                regs: Some(Registers {
                    rip: regs.rip,
                    rsp: regs.rsp,
                    rbp: regs.rbp,
                    syscall: super::blocked_syscall(regs.orig_rax, regs.rax),
                }),
                name,
            });
        }
        // Main thread first.
        proc.threads.sort_by_key(|t| (t.tid != pid, t.tid));
        proc.maps = maps;
        proc.entry = entry;
        Ok(proc)
    }

    /// A process of which nothing is seized yet; `old_actions`: the signal actions to restore
    /// when it is dropped.
    fn holding(pid: i32, old_actions: Option<[libc::sigaction; 2]>) -> LiveProcess {
        LiveProcess {
            old_actions,
            pid,
            seized: Vec::new(),
            slots: Vec::new(),
            stopped_at: None,
            signals: Vec::new(),
            threads: Vec::new(),
            states: super::ThreadStates::default(),
            maps: Vec::new(),
            entry: None,
        }
    }

    /// Seizes the threads of `/proc/PID/task` not seized yet (without stopping them): how
    /// many. A thread that exits meanwhile is skipped; a seize refused for another reason is
    /// an error (the ones seized so far are detached by the caller's drop).
    fn seize_new(&mut self, task_dir: &str) -> Result<usize> {
        let pid = self.pid;
        let dir = std::fs::read_dir(task_dir).map_err(|_| Error::NoSuchProcess(pid))?;
        let mut tids: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        let mut new = 0;
        for tid in tids {
            if self.seized.contains(&tid) {
                continue;
            }
            // SAFETY: PTRACE_SEIZE takes no pointers (addr and data are 0).
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0usize, 0usize) };
            if r != 0 {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::ESRCH) => continue, // the thread exited meanwhile
                    // A thread that has exited but is not yet reaped refuses the seize with
                    // EPERM too (ptrace_attach checks exit_state): under thread churn that is
                    // not a permission problem, just a thread that is gone.
                    Some(libc::EPERM) | Some(libc::EACCES) if thread_has_exited(pid, tid) => {
                        continue
                    }
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        let ids = super::pid::ProcessIds::of(pid);
                        return Err(Error::PermissionDenied(match tracer_of(pid) {
                            Some(tracer) => format!(
                                "{ids} is already traced by process {tracer} (a debugger?); \
                                 detach it first"
                            ),
                            None => format!("cannot ptrace {ids}: {err}"),
                        }));
                    }
                    _ => {
                        return Err(Error::Ptrace {
                            op: "ptrace seize",
                            tid,
                            source: err,
                        })
                    }
                }
            }
            self.record(tid);
            new += 1;
        }
        Ok(new)
    }

    fn record(&mut self, tid: i32) {
        self.seized.push(tid);
        let free = SIGNAL_TIDS.iter().position(|slot| {
            slot.compare_exchange(0, tid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if let Some(i) = free {
            self.slots.push((i, tid));
            SIGNAL_COUNT.fetch_max(i + 1, Ordering::SeqCst);
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// When the first of its threads was told to stop: the process has been (partly) stopped
    /// since.
    pub fn stopped_at(&self) -> Instant {
        self.stopped_at.unwrap_or_else(Instant::now)
    }
}

/// The name of thread `tid` of `pid` (`/proc/PID/task/TID/comm`).
fn thread_name(pid: i32, tid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Whether thread `tid` of `pid` is gone or has exited (a zombie, `Z`, or dead, `X`, in
/// `/proc/PID/task/TID/stat`), so that a refused seize of it means nothing.
fn thread_has_exited(pid: i32, tid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
        return true;
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X") | None)
}

/// The pid tracing `pid`, if any (`TracerPid` in `/proc/PID/status`).
fn tracer_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("TracerPid:"))?;
    let tracer: i32 = line["TracerPid:".len()..].trim().parse().ok()?;
    (tracer != 0).then_some(tracer)
}

/// Stops seized thread `tid` (`PTRACE_INTERRUPT`): its stop is reported to [`wait_stop`]. A
/// second interrupt of an interrupted thread changes nothing.
fn interrupt(tid: i32) {
    // SAFETY: PTRACE_INTERRUPT takes no pointers; on a thread we did not seize it fails
    // (ESRCH) and does nothing.
    unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize) };
}

/// How long [`wait_stop`] polls without sleeping: longer than a stopping thread usually takes
/// to be scheduled and stop (tens of µs), short enough that the tracer's core is not kept busy
/// for a thread that takes long.
const SPIN: Duration = Duration::from_micros(500);

/// Waits until `tid` reports a ptrace stop. `Ok(Some(sig))`: stopped; `sig` is a signal that
/// was on its way to the thread (a signal-delivery-stop came before our interrupt) and must be
/// passed back on detach, or 0. `Ok(None)`: the thread exited.
///
/// A thread stops some microseconds after its interrupt, once it is scheduled: the wait polls,
/// yielding the CPU between polls, for up to [`SPIN`] (a sleep of 10 µs lasts 60 with the
/// default timer slack: sleeping from the first poll made the stop wait for the timer, not for
/// the threads), then sleeps ever longer up to a millisecond. Whether the thread is gone is
/// asked of `/proc` only once the pause is that long.
fn wait_stop(tid: i32, deadline: Instant, timeout: Duration) -> Result<Option<i32>> {
    const LONGEST: Duration = Duration::from_millis(1);
    let spin_until = Instant::now() + SPIN;
    let mut pause = Duration::from_micros(20);
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == tid {
            if libc::WIFSTOPPED(status) {
                let event = (status >> 16) & 0xff;
                let sig = if event == 0 {
                    libc::WSTOPSIG(status)
                } else {
                    0
                };
                return Ok(Some(sig));
            }
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Ok(None);
            }
        } else if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Ok(None);
            }
            return Err(Error::Ptrace {
                op: "waitpid",
                tid,
                source: err,
            });
        }
        if r == 0 && pause >= LONGEST && thread_gone(tid) {
            // Killed before it reported the stop (the process was killed meanwhile).
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "thread {tid} did not stop within the --timeout of {:.1}s (detached again)",
                timeout.as_secs_f64()
            )));
        }
        if Instant::now() < spin_until {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(LONGEST);
        }
    }
}

/// True if the thread `tid` has exited (no longer listed, or a zombie).
fn thread_gone(tid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_none_or(|state| matches!(state, 'Z' | 'X' | 'x')),
        Err(_) => true,
    }
}

fn user_regs(tid: i32) -> Result<libc::user_regs_struct> {
    // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct to the pointer we pass.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            tid,
            0usize,
            &mut regs as *mut libc::user_regs_struct,
        )
    };
    if r != 0 {
        return Err(Error::Ptrace {
            op: "reading the registers",
            tid,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(regs)
}

/// Installs [`on_sigint`] for `SIGINT` and `SIGTERM`; returns the previous actions.
fn install_sigint() -> [libc::sigaction; 2] {
    // SAFETY: installs a handler that only makes async-signal-safe calls; the old actions are
    // written to valid out-pointers.
    unsafe {
        let mut old: [libc::sigaction; 2] = std::mem::zeroed();
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, &mut old[0]);
        libc::sigaction(libc::SIGTERM, &sa, &mut old[1]);
        old
    }
}

impl Drop for LiveProcess {
    fn drop(&mut self) {
        for &tid in &self.seized {
            let sig = self
                .signals
                .iter()
                .find(|(t, _)| *t == tid)
                .map_or(0, |(_, s)| *s) as usize;
            // SAFETY: PTRACE_DETACH of a thread we seized and stopped; `data` is a signal
            // number to deliver (0: none), not a pointer.
            let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, sig) };
            if r != 0 {
                // Not stopped (ESRCH): still on its way to the stop, or seized but never
                // interrupted (an error came between the seizes and the interrupts). Interrupt
                // it (a second interrupt of an interrupted thread changes nothing), wait
                // briefly for its stop, then detach again.
                interrupt(tid);
                let grace = Duration::from_millis(200);
                let _ = wait_stop(tid, Instant::now() + grace, grace);
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, 0usize) };
            }
        }
        // Every thread runs again; now free their slots (a look at each of ours, not at all
        // of them: that took 0.1 ms of the stop per thread).
        for &(i, tid) in &self.slots {
            let _ = SIGNAL_TIDS[i].compare_exchange(tid, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
        if let Some(old) = self.old_actions.take() {
            // SAFETY: restores the actions saved by `install_sigint`.
            unsafe {
                libc::sigaction(libc::SIGINT, &old[0], std::ptr::null_mut());
                libc::sigaction(libc::SIGTERM, &old[1], std::ptr::null_mut());
            }
        }
    }
}

impl Target for LiveProcess {
    fn proc_pid(&self) -> Option<i32> {
        Some(self.pid)
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        use super::Source;
        if super::ProcessMemory(self.pid).read(addr, buf).is_ok() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{}/mem", self.pid))
            .map_err(|_| Error::Memory(addr, buf.len()))?;
        mem.read_exact_at(buf, addr)
            .map_err(|_| Error::Memory(addr, buf.len()))
    }

    fn threads(&self) -> &[Thread] {
        &self.threads
    }

    fn at_entry(&self) -> Option<u64> {
        self.entry
    }

    fn is_live(&self) -> bool {
        true
    }

    fn registers(&self, tid: i32) -> Option<Registers> {
        self.states.registers(tid)
    }

    fn thread_name(&self, tid: i32) -> Option<String> {
        self.states.name(tid)
    }

    fn mapped_files(&self) -> Vec<MappedFile> {
        self.maps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tracer of `pid` (`TracerPid` of its status), 0 when none.
    fn tracer(pid: i32) -> i32 {
        tracer_of(pid).unwrap_or(0)
    }

    /// A thread seized but never interrupted (an error came between the seizes and the
    /// interrupts) cannot be detached as a stopped one is: the drop interrupts it first, and
    /// the process is left untraced and running.
    #[test]
    fn a_seized_thread_never_interrupted_is_detached_by_the_drop() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let pid = child.id() as i32;
        let mut proc = LiveProcess::holding(pid, None);
        assert_eq!(proc.seize_new(&format!("/proc/{pid}/task")).unwrap(), 1);
        assert_ne!(tracer(pid), 0, "seized (by this test's thread)");
        drop(proc);
        assert_eq!(tracer(pid), 0, "detached");
        assert!(!thread_gone(pid), "and running on");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
