//! Out-of-process reader of tokio tasks: list every task of an unmodified tokio program (a
//! live process by pid, or a core file) with the logical stack it is suspended in, from its
//! DWARF debuginfo alone, as a [`tasktrace_model::Dump`].
//!
//! Layers, bottom up, one module each: [`process`] (memory, threads and registers of a stopped
//! process or a core file), [`snapshot`] (a page cache: a live process is stopped only while
//! what is needed is copied, then decoded while it runs), [`debuginfo`] (an owned index of the
//! executable's DWARF; [`debugfile`] finds it in a separate file, [`debuginfod`] on a
//! debuginfod server), [`value`] (typed reads),
//! [`tokio`] (everything tokio-version-specific: runtimes, owned task lists, LocalSets, task
//! cells, workers' queues; member chains per version in [`tokio::layout`]), [`decode`] (state
//! machines, join branches, sets of futures, futures written by hand, and leaves → frames), [`threads`] (what each
//! thread does; `block_on` root futures found on the stack), [`unwind`] (native stacks, by
//! framehop). [`Prepared`] is what a read derives from the debuginfo alone, found once per
//! process and before it is stopped.
//!
//! Supported: tokio 1.38 – 1.54 (tested with 1.38.2, 1.43.1, 1.47.1, 1.50.0, 1.52.0, 1.54.1;
//! the layout of each is in [`tokio::layout`]), multi-thread and current-thread runtimes, several
//! runtimes in one process, x86-64 Linux (glibc), PIE and non-PIE executables, debug or
//! optimised, built with full debuginfo (`debug = true`).

#![warn(missing_docs)]

mod addr_hash;
pub mod bytes;
pub mod debugfile;
pub mod debuginfo;
pub mod debuginfod;
pub mod decode;
mod error;
pub mod frozen;
mod memo;
mod prepared;
pub mod process;
mod sections;
pub mod snapshot;
pub mod sockets;
pub mod threads;
pub mod tokio;
pub mod unwind;
pub mod value;

pub use error::{Error, FileFound, Looked, Result, ServerAnswer};
pub use prepared::Prepared;

use std::time::Duration;
use tasktrace_model::{
    Dump, Frame, FrameKind, FrameStatus, Node, Task, TaskState, ThreadRole, Trace,
};

/// How to read a target.
#[derive(Clone, Debug)]
pub struct Options {
    /// Deadline for stopping every thread of a live process.
    pub timeout: Duration,
    /// Most tasks listed.
    pub max_tasks: usize,
    /// Most frames decoded in one read, over all tasks (each task's decode has its own depth
    /// and size caps): with a corrupt task list of many plausible tasks, this bounds the
    /// reader's time and memory. Tasks past it are listed without a trace, and the dump gets a
    /// `partial:` note.
    pub max_frames: usize,
    /// Also list the threads ([`Dump::threads`]): workers with their local queue and the task
    /// they poll, `block_on` threads with their root future, blocking-pool threads.
    pub threads: bool,
    /// A separate debug file for the executable (`objcopy --only-keep-debug` output, a
    /// distribution's `.debug` file). Without it, an executable without debuginfo is looked up
    /// by build id and `.gnu_debuglink` ([`debugfile`]).
    pub debuginfo: Option<String>,
    /// A core file's machine's (or container's) root directory, as copied to this one: the
    /// executable, its libraries and debug files are looked up under it first
    /// ([`process::files`]). Not used for a live process (its files are read through `/proc`).
    pub sysroot: Option<String>,
    /// Print progress lines on stderr once a read takes longer than a moment (half a
    /// second): which phase it is in, how many tasks are decoded.
    pub progress: bool,
    /// Addresses of `tokio::runtime::Handle` values in the target: runtimes read besides the
    /// ones its threads have entered (a [`frozen`] copy has no threads to ask).
    pub runtime_handles: Vec<u64>,
}

/// Progress lines on stderr, once the read has taken longer than [`Progress::QUIET`].
struct Progress {
    on: bool,
    started: std::time::Instant,
}

impl Progress {
    /// Quiet for this long.
    const QUIET: Duration = Duration::from_millis(500);

    fn new(on: bool) -> Self {
        Progress {
            on,
            started: std::time::Instant::now(),
        }
    }

    fn say(&self, what: impl FnOnce() -> String) {
        if self.on && self.started.elapsed() >= Self::QUIET {
            eprintln!(
                "tasktrace: [{:.1}s] {}",
                self.started.elapsed().as_secs_f64(),
                what()
            );
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(5),
            max_tasks: 100_000,
            max_frames: 1_000_000,
            threads: false,
            debuginfo: None,
            sysroot: None,
            progress: false,
            runtime_handles: Vec::new(),
        }
    }
}

/// Reads every task of the live process `pid`: loads its executable's debuginfo, stops all
/// its threads, reads, and detaches (on every path) before returning.
pub fn attach(pid: i32, opts: &Options) -> Result<Dump> {
    let session = Session::new(pid, opts)?;
    let dump = session.sample(opts).map(|(dump, _)| dump);
    free_in_background(session.info);
    dump
}

/// Repeated reads of one live process (`tasktrace record`): its executable's debuginfo is
/// indexed, and its mapped files' unwind tables loaded, once for all of them.
pub struct Session {
    pid: i32,
    /// Its pid and, in a container, its pid there: how notes and errors name it.
    ids: process::pid::ProcessIds,
    info: debuginfo::DebugInfo,
    prepared: Prepared,
    unwinder: Option<unwind::Unwinder>,
    progress: Progress,
    /// The trees of the last read, for the tasks whose futures have not changed since.
    memo: memo::Memo,
}

impl Session {
    /// Indexes the debuginfo of process `pid`'s executable (and, with `opts.threads`, the
    /// unwind tables of its mapped files); the process is not stopped.
    pub fn new(pid: i32, opts: &Options) -> Result<Session> {
        if pid <= 0 || std::fs::metadata(format!("/proc/{pid}")).is_err() {
            return Err(Error::NoSuchProcess(pid));
        }
        let progress = Progress::new(opts.progress);
        let exe_link = format!("/proc/{pid}/exe");
        let exe = std::fs::read_link(&exe_link).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Error::PermissionDenied(format!("cannot read {exe_link}"))
            } else if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                Error::NoSuchProcess(pid)
            } else {
                Error::Io(exe_link.clone(), e)
            }
        })?;
        // Read the executable through /proc (works even if the file was replaced on disk).
        let exe_path = exe.to_string_lossy();
        // Its debug file and libraries are looked up as the process sees them (it may be in
        // a container; its executable may have been replaced on disk since it started).
        let files = process::files::TargetFiles::of_process(pid);
        let (info, debug_file) = debuginfo::DebugInfo::load_with_debug_file(
            &exe_link,
            &exe_path,
            opts.debuginfo.as_deref(),
            &files,
        )
        .map_err(|e| rename_path(e, &exe_link, &exe_path))?;
        // Tokio's layout and the like come from the debuginfo alone: found now, not while
        // the process is stopped (and a program without tokio is never stopped).
        let prepared = Prepared::new(&info)?;
        // The pages the index and the preparation touched are the page cache's, not ours.
        info.release_pages();
        let ids = process::pid::ProcessIds::of(pid);
        progress.say(|| format!("indexed the debuginfo of {}; stopping {ids}", exe.display()));
        // The threads view unwinds native stacks: load the mapped files' unwind tables and
        // symbols now, not while the process is stopped.
        let unwinder = opts.threads.then(|| {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            let exe_debug = debug_file.as_ref().map(|file| unwind::ExeDebugFile {
                exe_path: &exe_path,
                file,
            });
            unwind::Unwinder::from_maps(&process::parse_maps(&maps), &files, exe_debug)
        });
        Ok(Session {
            pid,
            ids,
            info,
            prepared,
            unwinder,
            progress,
            memo: memo::Memo::default(),
        })
    }

    /// Stops every thread, reads every task, detaches (on every path): the dump, and how long
    /// the process was stopped.
    pub fn sample(&self, opts: &Options) -> Result<(Dump, Duration)> {
        let (pid, ids, info, progress) = (self.pid, self.ids, &self.info, &self.progress);
        let process = process::live::LiveProcess::attach(pid, opts.timeout).map_err(|e| {
            if exited(pid) {
                Error::Other(format!("{ids} exited while it was being attached"))
            } else {
                e
            }
        })?;
        // Test hook (test builds only): keep the target stopped a while, so tests can
        // interrupt a held attach.
        #[cfg(feature = "test-hooks")]
        if let Some(ms) = std::env::var("TASKTRACE_TEST_HOLD_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(Duration::from_millis(ms.min(60_000)));
        }
        // The stop began at the first thread's interrupt (what `attach` reads before it is not
        // counted).
        let stopped = process.stopped_at();
        // Read through a page cache: once the task lists, stacks and task cells are copied,
        // the process is detached and runs on while the copies are decoded.
        let snap = snapshot::Snapshot::new(&process, snapshot::ProcessMemory(pid));
        let mut process = Some(process);
        let mut stopped_for = None;
        let read = self.memo.begin_read();
        let dump = read_phased(
            &snap,
            info,
            &self.prepared,
            opts,
            progress,
            SessionParts {
                unwinder: self.unwinder.as_ref(),
                memo: Some((&self.memo, read)),
            },
            Stop {
                prefetch: &|addr, len| snap.prefetch(addr, len),
                resume: &mut || {
                    process.take();
                    stopped_for = Some(stopped.elapsed());
                },
            },
        );
        drop(process.take()); // detach (if not yet) before formatting anything
        self.memo.end_read(read);
        info.release_pages();
        let stopped_for = stopped_for.unwrap_or_else(|| stopped.elapsed());
        // Killed (or exited) while stopped: its memory went away under the reader.
        let mut dump = match dump {
            Err(_) if exited(pid) => {
                return Err(Error::Other(format!(
                    "{ids} exited while it was being read"
                )))
            }
            Ok(mut d) if exited(pid) => {
                d.notes
                    .push(format!("partial: {ids} exited while it was being read"));
                d
            }
            other => other?,
        };
        dump.notes.push(format!(
            "{ids} was stopped for {:.1} ms ({} KiB copied; decoded after it resumed{})",
            stopped_for.as_secs_f64() * 1e3,
            snap.copied() / 1024,
            match snap.late_reads() {
                0 => String::new(),
                n => format!(", reading {n} more pages from the running process"),
            }
        ));
        Ok((dump, stopped_for))
    }
}

/// Drops the debuginfo index on another thread: freeing its million small allocations takes
/// a tenth of a second the caller need not wait for.
fn free_in_background(info: debuginfo::DebugInfo) {
    // Without a thread, the closure (and the index with it) is dropped here instead.
    let _ = std::thread::Builder::new()
        .name("tasktrace-free".into())
        .spawn(move || drop(info));
}

/// Frames in these trees.
fn count_frames(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| 1 + count_frames(&n.children)).sum()
}

/// True if `pid` is gone or a zombie.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_none_or(|state| matches!(state, 'Z' | 'X' | 'x')),
        Err(_) => true,
    }
}

fn rename_path(e: Error, from: &str, to: &str) -> Error {
    match e {
        Error::NoDebugInfo(p) if p == from => Error::NoDebugInfo(to.to_string()),
        Error::NotElf(p) if p == from => Error::NotElf(to.to_string()),
        other => other,
    }
}

/// Reads every task from the core file `core` of the executable `exe`; without `exe`, of the
/// one the core names ([`process::core_exe`]), under [`Options::sysroot`] when given.
pub fn core(core: &str, exe: Option<&str>, opts: &Options) -> Result<Dump> {
    let files = process::files::TargetFiles::by_path().with_sysroot(opts.sysroot.as_deref());
    let exe_given = exe.is_some();
    // An executable given is read first (a wrong one is said before a bad core); one that is
    // not is found from the core.
    let (found, opened) = match exe {
        Some(exe) => (
            process::core_exe::CoreExecutable {
                path_in_core: exe.to_string(),
                file: exe.to_string(),
            },
            None,
        ),
        None => {
            let file = process::core_file::CoreFile::open(core)?;
            (process::core_exe::find(&file, core, &files)?, Some(file))
        }
    };
    let exe = found.file.as_str();
    // Debuglinks are relative to the executable's directory in the target (under the
    // sysroot, as every path of it).
    let (info, debug_file) = debuginfo::DebugInfo::load_with_debug_file(
        exe,
        &found.path_in_core,
        opts.debuginfo.as_deref(),
        &files,
    )
    .map_err(|e| rename_path(e, &found.path_in_core, exe))?;
    let mut file = match opened {
        Some(file) => file,
        None => process::core_file::CoreFile::open(core)?,
    };
    let mut truncated = file.truncation().map(|(present, expected)| {
        format!(
            "truncated core: {present} of {expected} bytes present ({:.0} %); what was in the \
             missing part cannot be read",
            present as f64 * 100.0 / expected as f64
        )
    });
    if file.threads_from_memory() {
        use process::Target;
        if let Some(&(vaddr, _, len)) = info.loads.iter().find(|l| l.1 == 0) {
            let n = (len.min(4096) as usize).min(info.file_data().len());
            file.place_image(&info.file_data()[..n], vaddr, info.entry);
        }
        if let Some(note) = &mut truncated {
            note.push_str(&match file.threads().len() {
                0 => "; its notes (threads, registers) were cut off, and no thread's control \
                      block is in the memory present"
                    .to_string(),
                n => format!(
                    "; its notes were cut off: {n} thread(s) found by their control blocks in \
                     memory, without registers (no native stacks)"
                ),
            });
        }
    }
    // The executable is the one given or found, wherever the core says it was mapped from:
    // the pages of it the core left out are read from it, and its unwind tables.
    let maps = process::Target::mapped_files(&file);
    let entry = process::Target::at_entry(&file).unwrap_or(0);
    let mapped = maps
        .iter()
        .find(|m| (m.start..m.end).contains(&entry))
        .map_or(exe, |m| m.path.as_str());
    let files = files.with_executable(mapped, exe);
    file.set_files(files.clone());
    let dump = check_core_matches(&file, &info, core, exe, exe_given).and_then(|()| {
        let unwinder = opts.threads.then(|| {
            let exe_debug = debug_file.as_ref().map(|file| unwind::ExeDebugFile {
                exe_path: mapped,
                file,
            });
            unwind::Unwinder::from_maps(&maps, &files, exe_debug)
        });
        read_phased(
            &file,
            &info,
            &Prepared::new(&info)?,
            opts,
            &Progress::new(opts.progress),
            SessionParts {
                unwinder: unwinder.as_ref(),
                memo: None,
            },
            Stop::none(),
        )
    });
    drop(debug_file);
    free_in_background(info);
    // What a core cannot tell, said once (the leaves show it: sockets without addresses,
    // timers as deadlines).
    let dump = dump.map(|mut d| {
        d.notes.push(CORE_NOTE.to_string());
        d
    });
    match (dump, truncated) {
        (Ok(mut dump), Some(note)) => {
            let cut_short = dump
                .tasks
                .iter()
                .filter(|t| {
                    t.error.is_some()
                        || t.trace.walk().iter().any(|(_, n)| {
                            n.frame
                                .note
                                .as_deref()
                                .is_some_and(|n| n.starts_with("unreadable"))
                        })
                })
                .count();
            if cut_short > 0 {
                dump.notes.insert(
                    0,
                    format!(
                        "partial: {cut_short} task(s) with memory in the missing part (their \
                         trees stop at an unreadable frame)"
                    ),
                );
            }
            dump.notes.insert(0, note);
            Ok(dump)
        }
        // What failed was most likely in the part that is missing: say that first.
        (Err(e), Some(note)) => Err(Error::Other(format!("{note}: {e}"))),
        (dump, None) => dump,
    }
}

/// What a read of a core file cannot tell, and why.
const CORE_NOTE: &str = "read from a core file: a socket shows its descriptor but not its \
     addresses (they are in the kernel's tables, not in a core), and a timer its deadline on \
     CLOCK_MONOTONIC instead of the time left (a core does not record when it was taken)";

/// Checks that `exe` is the executable that dumped `core`: the first page of its image, as
/// the core holds it (cores keep the ELF headers of file mappings), equals the file's.
/// `given`: `exe` is the `--exe` given (else it was found from the core).
fn check_core_matches(
    file: &process::core_file::CoreFile,
    info: &debuginfo::DebugInfo,
    core: &str,
    exe: &str,
    given: bool,
) -> Result<()> {
    use process::Target;
    let entry = file
        .at_entry()
        .ok_or_else(|| Error::CorruptCore(format!("{core}: no NT_AUXV note (no entry point)")))?;
    let bias = entry.wrapping_sub(info.entry);
    let Some(&(vaddr, 0, len)) = info.loads.iter().find(|l| l.1 == 0) else {
        return Ok(());
    };
    let n = len.min(4096) as usize;
    let mut image = vec![0u8; n];
    // Cores keep the first page of file mappings (the kernel's default coredump_filter and
    // gcore both do); a core without it at the computed address is from another executable.
    let in_core = file.read(vaddr.wrapping_add(bias), &mut image).is_ok();
    if !in_core || info.file_data().get(..n) != Some(&image[..]) {
        let hint = if given {
            "wrong --exe, or rebuilt since?"
        } else {
            "found where the core says it was: rebuilt since? give the right one with --exe BIN"
        };
        return Err(Error::Other(format!(
            "{core} was not dumped by {exe}: the executable image in the core differs ({hint})"
        )));
    }
    Ok(())
}

/// Reads every task of a stopped target.
pub fn read(t: &dyn process::Target, info: &debuginfo::DebugInfo, opts: &Options) -> Result<Dump> {
    read_prepared(t, info, &Prepared::new(info)?, opts)
}

/// [`read`] with what was found in `info` before ([`Prepared::new`], for repeated reads of
/// one executable).
pub fn read_prepared(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    opts: &Options,
) -> Result<Dump> {
    read_phased(
        t,
        info,
        prepared,
        opts,
        &Progress::new(opts.progress),
        SessionParts::default(),
        Stop::none(),
    )
}

/// What a session keeps across its reads, for one read ([`read_phased`]).
#[derive(Clone, Copy, Default)]
struct SessionParts<'s> {
    /// The mapped files' unwind tables (for `--threads`).
    unwinder: Option<&'s unwind::Unwinder>,
    /// The last read's trees, and this read's number.
    memo: Option<(&'s memo::Memo, u64)>,
}

/// How a read meets its target's stop ([`read_phased`]).
/// Most blocking threads whose stacks are copied while the target is stopped.
const MAX_BLOCKING_STACKS: usize = 32;
/// How much of a blocking thread's stack is copied, from its stack pointer up: enough for the
/// frames above tokio's blocking pool (a closure and what it calls), bounded so that the
/// pause stays short.
const BLOCKING_STACK_COPY: u64 = 128 * 1024;

struct Stop<'h> {
    /// Called for each task's cell (address, length) while the target is stopped: copy it now.
    prefetch: &'h dyn Fn(u64, u64),
    /// Called once everything that must be read stopped is read: let the target run on.
    resume: &'h mut dyn FnMut(),
}

impl Stop<'static> {
    /// A target that stays stopped (or never ran: a core file): nothing to copy or resume.
    fn none() -> Self {
        Stop {
            prefetch: &|_, _| {},
            // A closure without captures is zero-sized: leaking its box allocates nothing.
            resume: Box::leak(Box::new(|| {})),
        }
    }
}

/// [`read`] in two phases: first everything that must be read while the target is stopped
/// (thread contexts, task lists, stacks), with `stop.prefetch(addr, len)` called for each
/// task's cell; then `stop.resume()`, then the decoding (from what was copied, see
/// [`snapshot`]).
fn read_phased(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    opts: &Options,
    progress: &Progress,
    parts: SessionParts<'_>,
    stop: Stop<'_>,
) -> Result<Dump> {
    let SessionParts { unwinder, memo } = parts;
    let bias = match t.at_entry() {
        Some(e) => e.wrapping_sub(info.entry),
        None => 0,
    };
    let reader = value::Reader {
        target: t,
        info,
        bias,
    };
    let tk = tokio::Tokio::with(&reader, prepared.tokio.clone());
    let contexts = tk.thread_contexts()?;
    let mut runtimes = tk.runtimes(&contexts);
    for &handle in &opts.runtime_handles {
        if let Some(rt) = tk.runtime_of_handle(handle)? {
            if !runtimes.iter().any(|o| o.addr == rt.addr) {
                runtimes.push(rt);
            }
        }
    }
    // A truncated core may have lost the way to its tasks (threads, runtime, list links)
    // but not the tasks: they are looked for in the memory that is there.
    let scan = t.memory_to_scan();
    if runtimes.is_empty() && scan.is_empty() {
        return Err(Error::NoRuntime(
            "no thread has a runtime handle in tokio's CONTEXT (has the runtime started?)".into(),
        ));
    }
    let mut raw = Vec::new();
    let mut notes = Vec::new();
    for rt in &runtimes {
        let left = opts.max_tasks.saturating_sub(raw.len());
        let (mut tasks, n) = match tk.tasks(rt, left) {
            Ok(found) => found,
            Err(e) if !scan.is_empty() => (
                Vec::new(),
                vec![format!(
                    "partial: the runtime's task lists are unreadable: {e}"
                )],
            ),
            Err(e) => return Err(e),
        };
        raw.append(&mut tasks);
        notes.extend(n);
    }
    let lists_cut = runtimes.is_empty() || notes.iter().any(|n| n.starts_with("partial:"));
    if !scan.is_empty() && lists_cut {
        let known: std::collections::HashSet<u64> = raw.iter().map(|t| t.header).collect();
        let left = opts.max_tasks.saturating_sub(raw.len());
        let mut found = tk.scan_tasks(&scan, &known, left);
        if runtimes.is_empty() && found.is_empty() {
            return Err(Error::NoRuntime(
                "no thread has a runtime handle in tokio's CONTEXT, and no task header is in \
                 the memory present"
                    .into(),
            ));
        }
        notes.push(if runtimes.is_empty() {
            format!(
                "partial: {} task(s) found by scanning the memory present for task headers (no \
                 runtime is reachable: its threads are in the missing part); a task whose \
                 header is in the missing part is not listed",
                found.len()
            )
        } else {
            format!(
                "{} more task(s) found by scanning the memory present for task headers",
                found.len()
            )
        });
        raw.append(&mut found);
    }
    drop(scan);
    if runtimes.len() > 1 {
        notes.push(format!("{} runtimes", runtimes.len()));
    }
    // Threads: their roles, and the root futures of `block_on` threads (found on their
    // stacks). A `LocalSet::block_on` root leads to the LocalSet's own task list.
    let mut facts = threads::threads(&reader, &tk, &prepared.roots, &contexts, &runtimes, &raw);
    let mut local_sets = 0;
    for f in &facts {
        // The most plausible root future that leads to a LocalSet whose list reads.
        let mut failed = None;
        for root in &f.candidates {
            let left = opts.max_tasks.saturating_sub(raw.len());
            match tk.local_set_tasks((root.addr, root.ty), left) {
                Some(Ok((mut tasks, n))) => {
                    local_sets += 1;
                    raw.append(&mut tasks);
                    notes.extend(n);
                    failed = None;
                    break;
                }
                Some(Err(e)) => failed = failed.or(Some(e)),
                None => {}
            }
        }
        if let Some(e) = failed {
            notes.push(format!(
                "partial: the LocalSet of thread {} could not be read: {e}",
                f.info.tid
            ));
        }
    }
    if local_sets > 0 {
        notes.push(format!(
            "{local_sets} LocalSet{} (found on block_on stacks)",
            if local_sets == 1 { "" } else { "s" }
        ));
    }
    // Native stacks of the threads inside a poll (their stacks change once resumed).
    if opts.threads {
        let polling: Vec<usize> = (0..facts.len())
            .filter(|&i| facts[i].info.task.is_some() && facts[i].info.role != ThreadRole::Blocking)
            .collect();
        if !polling.is_empty() {
            let own;
            let unwinder = match unwinder {
                Some(u) => u,
                None => {
                    own = own_unwinder(t, opts);
                    &own
                }
            };
            for i in polling {
                let tid = facts[i].info.tid as i32;
                if let Some(regs) = t.registers(tid) {
                    facts[i].info.native_stack = unwinder.native_stack(t, regs);
                }
            }
        }
    }
    // A blocking thread's stack changes once resumed: a few pages of it are copied now, from
    // its stack pointer up, to be unwound later for the blocking task it runs (if a task
    // awaits that one, it is listed with the closure's native callees).
    for f in facts
        .iter()
        .filter(|f| f.info.role == ThreadRole::Blocking && f.info.task.is_some())
        .take(MAX_BLOCKING_STACKS)
    {
        if let Some(regs) = t.registers(f.info.tid as i32) {
            (stop.prefetch)(regs.rsp, BLOCKING_STACK_COPY);
        }
    }
    // Copy each task's cell (header to the end of its future) while the target is stopped;
    // then let it run on: the decoding below reads from the copies.
    for t in &raw {
        if let Some((addr, ty)) = t.future {
            let end = addr.saturating_add(reader.type_size(ty));
            (stop.prefetch)(t.header, end.saturating_sub(t.header));
        }
    }
    (stop.resume)();
    progress.say(|| format!("copied {} tasks; decoding them", raw.len()));
    // Which types can hold a future: decided once per type, for every read of the process.
    let shapes = decode::Shapes::with_cache(&prepared.shapes);
    if opts.threads {
        for (f, c) in facts.iter_mut().zip(&contexts) {
            if f.info.role == ThreadRole::BlockOn && f.info.task.is_none() {
                f.info.task = c
                    .task_id
                    .filter(|&id| raw.iter().any(|t| t.id == id && t.running));
            }
        }
    }
    let mut tasks = Vec::with_capacity(raw.len());
    let total = raw.len();
    let mut links = vec![Vec::new(); total];
    let (mut frames, mut undecoded) = (0usize, 0usize);
    let listed: std::collections::HashSet<u64> = raw.iter().map(|t| t.header).collect();
    let mut awaited_headers: Vec<u64> = Vec::new();
    for (i, rt) in raw.into_iter().enumerate() {
        if i > 0 && i % 10_000 == 0 {
            progress.say(|| format!("decoded {i} of {total} tasks"));
        }
        let mut task = Task::new(rt.id);
        task.spawned_at = rt
            .spawned_at
            .and_then(|at| tk.location(at))
            .map(|(file, line, col)| tasktrace_model::Location::new(file, line, Some(col)));
        task.state = task_state(&rt);
        task.error = rt.error.clone();
        match rt.future {
            Some((addr, ty)) if rt.running => {
                let name = reader.type_name(ty);
                let (func, kind) = decode::async_fn_name(&reader, ty)
                    .unwrap_or_else(|| (name.to_string(), FrameKind::Fn));
                let frame = Frame::new(func, None)
                    .with_kind(kind)
                    .with_status(FrameStatus::Running)
                    .with_note("being polled: its state is not stable");
                let _ = addr;
                task.trace = Trace {
                    roots: std::sync::Arc::new(vec![Node::new(frame)]),
                };
            }
            Some(_) if frames >= opts.max_frames => {
                undecoded += 1;
                task.error = Some(format!(
                    "not decoded: the read's budget of {} frames is spent",
                    opts.max_frames
                ));
            }
            Some((addr, ty)) => {
                let key = (rt.header, addr, ty);
                match decode_task(t, info, prepared, &shapes, bias, key, memo) {
                    Some(d) => {
                        links[tasks.len()] = d.links;
                        frames += d.frames;
                        task.awaits = d.awaits;
                        awaited_headers.extend(d.awaited_headers);
                        task.trace = Trace { roots: d.nodes };
                    }
                    None => task.error = Some("its future could not be decoded".into()),
                }
            }
            None if rt.complete => {
                task.error
                    .get_or_insert_with(|| "completed; output not yet taken".into());
            }
            None => {
                task.error
                    .get_or_insert_with(|| "no future (stage not Running)".into());
            }
        }
        tasks.push(task);
    }
    // `spawn_blocking` tasks are in no task list: the ones awaited through a join handle are
    // found through it, and listed as the tasks they are.
    awaited_headers.sort_unstable();
    awaited_headers.dedup();
    let mut blocking_unwinder = None;
    for header in awaited_headers {
        if listed.contains(&header) || tasks.len() >= opts.max_tasks {
            continue;
        }
        if let Some((rt, func)) = tk.blocking_task(header) {
            if tasks.iter().any(|t: &Task| t.id == rt.id) {
                continue;
            }
            let thread = facts
                .iter()
                .find(|f| f.info.role == ThreadRole::Blocking && f.info.task == Some(rt.id))
                .map(|f| f.info.tid);
            // What the closure runs now: its thread's native stack (from the pages copied
            // while stopped), unwound now that the target runs on.
            let stack = match thread.and_then(|tid| t.registers(tid as i32)) {
                Some(regs) if rt.running => {
                    let u = match unwinder {
                        Some(u) => u,
                        None => blocking_unwinder.get_or_insert_with(|| own_unwinder(t, opts)),
                    };
                    u.native_stack(t, regs)
                }
                _ => Vec::new(),
            };
            tasks.push(blocking_task(&reader, &rt, func, thread, &stack));
            links.push(Vec::new());
        }
    }
    // The `block_on` root futures: shown in the threads view, and looked at for the locks
    // they hold when a task waits on a lock (it is told which thread holds it).
    let mut root_links = Vec::new();
    let waits_on_locks = links
        .iter()
        .flatten()
        .any(|l| matches!(l, decode::Link::WaitsLock(_)));
    if opts.threads || waits_on_locks {
        for f in &mut facts {
            if let Some(root) = f.root {
                let (trace, links) = threads::decode_root(&reader, &tk, &shapes, root);
                if opts.threads {
                    f.info.trace = trace;
                }
                root_links.push((f.info.tid, links));
            }
        }
    }
    decode::resolve(&mut tasks, &links, &root_links);
    if undecoded > 0 {
        notes.push(format!(
            "partial: {undecoded} task(s) not decoded: the budget of {} frames per read is spent",
            opts.max_frames
        ));
    }
    notes.push(format!(
        "read out of process (tokio {}): how long tasks have been idle or running is not known (tokio records no poll times)",
        info.tokio_version
            .as_deref()
            .unwrap_or("of unknown version")
    ));
    let mut dump = Dump::new(tasks);
    dump.notes = notes;
    if opts.threads {
        dump.threads = facts.into_iter().map(|f| f.info).collect();
    }
    Ok(dump)
}

/// A task's state, from its header's state bits.
fn task_state(rt: &tokio::RawTask) -> TaskState {
    if rt.running {
        TaskState::InPoll
    } else if rt.notified {
        TaskState::Scheduled
    } else {
        TaskState::Suspended
    }
}

/// A `spawn_blocking` task awaited through its join handle (in no task list): its closure
/// (`func`, the closure's type), the thread running it and, from that thread's native `stack`
/// (innermost first), the line the closure is at and the functions it is in now, outermost
/// first (the innermost a leaf: where the thread waits, often a system call).
fn blocking_task(
    r: &value::Reader<'_>,
    rt: &tokio::RawTask,
    func: u64,
    thread: Option<u64>,
    stack: &[tasktrace_model::NativeFrame],
) -> Task {
    let mut task = Task::new(rt.id);
    task.state = task_state(rt);
    let name = r.type_name(func);
    // `app::handler::{async_fn#0}::{closure_env#0}` → `app::handler`.
    let function = name.split("::{").next().unwrap_or(name).to_string();
    let mut location = r
        .info
        .die(func)
        .and_then(|d| d.decl.clone())
        .map(|(file, line)| tasktrace_model::Location::new(file, line, None));
    let note = match (rt.running, thread) {
        (true, Some(tid)) => format!("spawn_blocking closure, running on thread {tid}"),
        (true, None) => "spawn_blocking closure, running".to_string(),
        (false, _) => "spawn_blocking closure, not started yet".to_string(),
    };
    // The closure's own frame is the outermost one in its function (a closure inside it, or
    // one it calls, is above it); what is above that, it runs now.
    let prefix = format!("{function}::");
    let own = stack.iter().rposition(|f| {
        f.function
            .as_deref()
            .is_some_and(|n| n.starts_with(&prefix))
    });
    let mut callees = Vec::new();
    if let Some(at) = own {
        if let Some(loc) = &stack[at].location {
            location = Some(loc.clone());
        }
        callees = stack[..at].iter().rev().collect();
    }
    let mut node = Node::new(
        Frame::new(function, location)
            .with_kind(FrameKind::Closure)
            .with_note(note),
    );
    // Nested from the innermost out: each callee under the one that called it.
    let mut below: Option<Node> = None;
    for (i, f) in callees.iter().enumerate().rev() {
        let kind = if i + 1 == callees.len() {
            FrameKind::Leaf
        } else {
            FrameKind::Fn
        };
        let name = f
            .function
            .clone()
            .or_else(|| f.module.as_ref().map(|m| format!("{m} at {:#x}", f.pc)))
            .unwrap_or_else(|| format!("{:#x}", f.pc));
        let mut n = Node::new(Frame::new(name, f.location.clone()).with_kind(kind));
        n.children.extend(below.take());
        below = Some(n);
    }
    node.children.extend(below);
    task.trace = Trace {
        roots: std::sync::Arc::new(vec![node]),
    };
    task
}

/// An unwinder of the target's native stacks built for one read (a session keeps its own):
/// the mapped files' unwind tables and symbols, and the debug file given, if any.
fn own_unwinder(t: &dyn process::Target, opts: &Options) -> unwind::Unwinder {
    let given = opts
        .debuginfo
        .as_deref()
        .and_then(debugfile::DebugFile::read);
    let exe_debug = given
        .as_ref()
        .map(|file| unwind::ExeDebugFile { exe_path: "", file });
    unwind::Unwinder::new(t, exe_debug)
}

/// Decodes the future of the task cell `key` (header, future address, type); with a memo,
/// takes the last read's tree when the bytes it read are unchanged, and keeps this one.
/// `None` when decoding panicked: target memory is untrusted, and a corrupt value must cost
/// this task its trace, never the whole read (nor leave a process stopped).
fn decode_task(
    t: &dyn process::Target,
    info: &debuginfo::DebugInfo,
    prepared: &Prepared,
    shapes: &decode::Shapes,
    bias: u64,
    key: memo::CellKey,
    memo: Option<(&memo::Memo, u64)>,
) -> Option<memo::Decoded> {
    let (_, addr, ty) = key;
    if let Some(kept) = memo.and_then(|(m, read)| m.get(key, t, read)) {
        return Some(kept);
    }
    let recorder = memo::Recorder::new(t);
    let target: &dyn process::Target = if memo.is_some() { &recorder } else { t };
    let decoded = {
        let reader = value::Reader { target, info, bias };
        let tk = tokio::Tokio::with(&reader, prepared.tokio.clone());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut dec = decode::Decoder::new(&reader, &tk, shapes);
            let nodes = dec.decode(addr, ty, 0);
            let frames = count_frames(&nodes);
            let timed = dec.timed;
            let decoded = memo::Decoded {
                nodes: std::sync::Arc::new(nodes),
                awaits: dec.awaits,
                awaited_headers: dec.awaited_headers,
                links: dec.links,
                frames,
            };
            (decoded, timed)
        }))
        .ok()?
    };
    let (decoded, timed) = decoded;
    match memo {
        Some((m, read)) => {
            if timed {
                recorder.unkeepable();
            }
            Some(m.put(key, recorder, decoded, read))
        }
        None => Some(decoded),
    }
}

/// The README's examples, compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
