//! Reading a live process: [`attach`] for one read, [`Session`] for many reads of one process
//! (`record`, the snapshot reader) that keep what the debuginfo gives and what did not change.

use crate::options::Progress;
use crate::process::pid::exited;
use crate::read::{read_phased, SessionParts, Stop};
use crate::{
    debuginfo, memo, process, snapshot, threads, unwind, Error, Options, Prepared, Result,
};
use std::time::Duration;
use tasktrace_model::Dump;

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
    /// The mapped files' unwind tables and symbols: loaded at `new` for `--threads`, else at
    /// the first read that unwinds a stack (a `spawn_blocking` thread's), then kept.
    unwinder: std::sync::OnceLock<unwind::Unwinder>,
    progress: Progress,
    /// The trees of the last read, for the tasks whose futures have not changed since.
    memo: memo::Memo,
    /// The root futures on `block_on` threads' stacks, re-checked instead of scanned for.
    roots: threads::RootCache,
    /// The pages the last sample copied while the process was stopped: copied first, all at
    /// once, by the next one (most are needed again: the runtime, the task lists and cells,
    /// the threads' contexts), instead of one system call per page as the reader meets them.
    warm: std::sync::Mutex<Warm>,
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
        let unwinder = opts
            .threads
            .then(|| {
                let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
                let exe_debug = debug_file.as_ref().map(|file| unwind::ExeDebugFile {
                    exe_path: &exe_path,
                    file,
                });
                unwind::Unwinder::from_maps(&process::parse_maps(&maps), &files, exe_debug)
            })
            .map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from);
        Ok(Session {
            pid,
            ids,
            info,
            prepared,
            unwinder,
            progress,
            memo: memo::Memo::default(),
            roots: threads::RootCache::default(),
            warm: std::sync::Mutex::default(),
        })
    }

    /// Stops every thread, reads every task, detaches (on every path): the dump, and how long
    /// the process was stopped.
    ///
    /// From the second sample on, the stop is shorter: the pages the last sample needed are
    /// copied at once (one system call per 1,024 pages), the process is let go at once, and
    /// what must be of one instant (thread contexts, task lists, cells) is read from those
    /// copies alone. If that read meets a page that was not copied (a new task, a new
    /// allocation), it is thrown away and the process is stopped again for a read as the
    /// first (counted in the stopped time); tries that keep failing are made less often.
    pub fn sample(&self, opts: &Options) -> Result<(Dump, Duration)> {
        let try_copies = {
            let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            // A rescan of a `block_on` thread's stack (every 16th read) reads a window of it
            // the copies lack: that read is made stopped, not tried from copies first.
            let ready = !warm.pages.is_empty() && warm.wait == 0 && !self.roots.rescan_due();
            warm.wait = warm.wait.saturating_sub(1);
            ready
        };
        let mut stopped_before = Duration::ZERO;
        if try_copies {
            match self.read_once(opts, true)? {
                Once::Whole(dump, stopped) => {
                    let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
                    warm.backoff = 0;
                    warm.counts.whole += 1;
                    return Ok((dump, stopped));
                }
                Once::Missed(stopped) => {
                    stopped_before = stopped;
                    let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
                    warm.counts.missed += 1;
                    warm.wait = warm.backoff;
                    warm.backoff = (warm.backoff * 2).clamp(1, MAX_WARM_BACKOFF);
                }
            }
        }
        match self.read_once(opts, false)? {
            Once::Whole(dump, stopped) => Ok((dump, stopped + stopped_before)),
            Once::Missed(_) => unreachable!("a read made stopped never misses a copy"),
        }
    }

    /// How the session's reads from copies alone went (see [`sample`](Self::sample)).
    pub fn copy_reads(&self) -> CopyReads {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// One stop and read: with `copies_only`, of the last sample's pages copied at once, the
    /// process let go before anything is read ([`Once::Missed`] when a page was missing).
    fn read_once(&self, opts: &Options, copies_only: bool) -> Result<Once> {
        let (pid, ids, info, progress) = (self.pid, self.ids, &self.info, &self.progress);
        let process = process::live::LiveProcess::attach(pid, opts.timeout).map_err(|e| {
            if exited(pid) {
                Error::Exited {
                    process: ids.to_string(),
                    during: "attached",
                }
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
        let snap = snapshot::Snapshot::new(&process, process::ProcessMemory(pid));
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        snap.copy_pages(warm.pages.iter().copied());
        let mut process = Some(process);
        let mut stopped_for = None;
        if copies_only {
            process.take();
            stopped_for = Some(stopped.elapsed());
            snap.copies_only();
        }
        let read = self.memo.begin_read();
        let dump = read_phased(
            &snap,
            info,
            &self.prepared,
            opts,
            progress,
            SessionParts {
                unwinder: Some(&self.unwinder),
                memo: Some((&self.memo, read)),
                roots: Some(&self.roots),
            },
            Stop {
                prefetch: &|ranges| snap.prefetch(ranges),
                resume: &mut || {
                    if copies_only {
                        if snap.has_missed() {
                            return false;
                        }
                        warm.pages = snap.pages_used();
                    } else {
                        process.take();
                        stopped_for = Some(stopped.elapsed());
                        warm.pages = snap.pages_copied_stopped();
                    }
                    snap.resumed();
                    true
                },
            },
        );
        drop(warm);
        drop(process.take()); // detach (if not yet) before formatting anything
        info.release_pages();
        let stopped_for = stopped_for.unwrap_or_else(|| stopped.elapsed());
        if copies_only && snap.has_missed() {
            // Whatever came of it (an error too) was read from copies that were not whole;
            // the memo keeps what it had (this read met none of its tasks).
            return Ok(Once::Missed(stopped_for));
        }
        self.memo.end_read(read);
        // Killed (or exited) while stopped: its memory went away under the reader.
        let mut dump = match dump {
            Err(_) if exited(pid) => {
                return Err(Error::Exited {
                    process: ids.to_string(),
                    during: "read",
                })
            }
            Ok(Some(mut d)) if exited(pid) => {
                d.partial
                    .push(format!("{ids} exited while it was being read"));
                d
            }
            Ok(Some(d)) => d,
            Ok(None) => return Ok(Once::Missed(stopped_for)),
            Err(e) => return Err(e),
        };
        dump.notes.push(format!(
            "{ids} was stopped for {:.1} ms ({} KiB copied; {}{})",
            stopped_for.as_secs_f64() * 1e3,
            snap.copied() / 1024,
            if copies_only {
                "read from the copies while it ran on"
            } else {
                "decoded after it resumed"
            },
            match snap.late_reads() {
                0 => String::new(),
                n => format!(", reading {n} more pages from the running process"),
            }
        ));
        Ok(Once::Whole(dump, stopped_for))
    }
}

/// How [`Session::read_once`] went.
enum Once {
    /// A whole read, and how long the process was stopped for it.
    Whole(Dump, Duration),
    /// A read from copies alone met a page that was not copied: thrown away (the process was
    /// stopped this long for it).
    Missed(Duration),
}

/// Most samples a session waits, after reads from copies alone kept failing, before it tries
/// one again (the wait doubles with each failure in a row).
const MAX_WARM_BACKOFF: u32 = 32;

/// What a session learns from one sample for the next ([`Session::sample`]).
#[derive(Default)]
struct Warm {
    /// The pages the last sample needed copied while the process was stopped.
    pages: Vec<u64>,
    /// Samples to read stopped (without trying copies alone) before trying again.
    wait: u32,
    /// How many to wait after the next failed try.
    backoff: u32,
    counts: CopyReads,
}

/// How the reads from copies alone went over a session's samples ([`Session::copy_reads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyReads {
    /// Samples read whole from the copies (the process stopped only to copy them).
    pub whole: u64,
    /// Tries that met a page not copied: the process was stopped again for a read.
    pub missed: u64,
}

/// Drops the debuginfo index on another thread: freeing its million small allocations takes
/// a tenth of a second the caller need not wait for.
pub(crate) fn free_in_background(info: debuginfo::DebugInfo) {
    // Without a thread, the closure (and the index with it) is dropped here instead.
    let _ = std::thread::Builder::new()
        .name("tasktrace-free".into())
        .spawn(move || drop(info));
}

pub(crate) fn rename_path(e: Error, from: &str, to: &str) -> Error {
    match e {
        Error::NoDebugInfo(p) if p == from => Error::NoDebugInfo(to.to_string()),
        Error::NotElf(p) if p == from => Error::NotElf(to.to_string()),
        other => other,
    }
}
