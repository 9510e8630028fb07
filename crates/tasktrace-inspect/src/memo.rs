//! Decoded trees kept from one read of a process to the next ([`crate::Session`]): a task
//! whose future reads the same bytes as last time decodes to the same tree, so the tree is
//! taken from the last read instead of decoded again.
//!
//! A decode is a function of the bytes it reads from the target and of the debuginfo (fixed
//! for a session). [`Recorder`] notes every range a task's decode reads; [`Memo`] keeps, per
//! task, those ranges, a hash of their bytes and the decode's result. The next read re-reads
//! the ranges (from the pages copied while the process was stopped, or the running process,
//! as the decode itself would) and takes the kept result only when every byte hashes the
//! same. What a decode takes from elsewhere than target memory makes it unkeepable: a timer's
//! "3.2s left" depends on the clock (such decodes are not kept).
//!
//! Invariants: an entry is used only for the same task cell (header address, future address
//! and type); entries of tasks not met by a read are dropped at its end, so the memo holds at
//! most one entry per live task.

use crate::addr_hash::{fnv1a, FNV_BASIS};
use crate::decode::Link;
use crate::error::Result;
use crate::process::{MappedFile, Registers, Target, Thread};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tasktrace_model::Node;

/// A task cell: its header's address, its future's address and type.
pub(crate) type CellKey = (u64, u64, u64);

/// What a task's decode gave.
#[derive(Clone)]
pub(crate) struct Decoded {
    /// The tree.
    pub nodes: Arc<Vec<Node>>,
    /// Tasks awaited through join handles.
    pub awaits: Vec<u64>,
    /// Their headers.
    pub awaited_headers: Vec<u64>,
    /// Edges through shared state.
    pub links: Vec<Link>,
    /// The task's context: task-locals in scope, spans.
    pub context: Vec<tasktrace_model::TaskContext>,
    /// Frames in the tree.
    pub frames: usize,
}

struct Entry {
    ranges: Vec<(u64, u32)>,
    hash: u64,
    decoded: Decoded,
    /// The read that last met this task.
    read: u64,
}

/// Kept decodes of one process's tasks, across the reads of a session.
#[derive(Default)]
pub(crate) struct Memo {
    entries: Mutex<HashMap<CellKey, Entry>>,
    reads: Mutex<u64>,
    /// Each distinct tree once: tasks suspended alike share one (a dump of 10,000 idle
    /// tasks of one kind holds, and a reader process sends, one tree).
    trees: Mutex<std::collections::HashSet<Arc<Vec<Node>>>>,
}

impl Memo {
    /// Starts a read: returns its number (entries not met by it are dropped by
    /// [`end_read`](Self::end_read)).
    pub(crate) fn begin_read(&self) -> u64 {
        let mut n = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    }

    /// Drops the entries of tasks read `read` did not meet.
    pub(crate) fn end_read(&self, read: u64) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.read == read);
        // Trees no kept entry shares any more (the last dump's are dropped with it).
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t| Arc::strong_count(t) > 1);
    }

    /// The kept decode of `key`, if every range it read holds the same bytes in `t` now.
    pub(crate) fn get(&self, key: CellKey, t: &dyn Target, read: u64) -> Option<Decoded> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get_mut(&key)?;
        let mut buf = Vec::new();
        let mut hash = Hash::default();
        for &(addr, len) in &entry.ranges {
            buf.resize(len as usize, 0);
            t.read(addr, &mut buf).ok()?;
            hash.add(addr, &buf);
        }
        if hash.0 != entry.hash {
            return None;
        }
        entry.read = read;
        Some(entry.decoded.clone())
    }

    /// Keeps `decoded` for `key`, with the ranges its decode read (`recorder`); returns it
    /// with its tree shared with the equal trees kept.
    pub(crate) fn put(
        &self,
        key: CellKey,
        recorder: Recorder<'_>,
        mut decoded: Decoded,
        read: u64,
    ) -> Decoded {
        {
            let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
            match trees.get(&decoded.nodes) {
                Some(same) => decoded.nodes = same.clone(),
                None => {
                    trees.insert(decoded.nodes.clone());
                }
            }
        }
        let Some((ranges, hash)) = recorder.finish() else {
            return decoded;
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Entry {
                    ranges,
                    hash,
                    decoded: decoded.clone(),
                    read,
                },
            );
        decoded
    }
}

/// FNV-1a over (address, bytes) of each range read, in order.
struct Hash(u64);

impl Default for Hash {
    fn default() -> Self {
        Hash(FNV_BASIS)
    }
}

impl Hash {
    fn add(&mut self, addr: u64, bytes: &[u8]) {
        self.0 = fnv1a(fnv1a(self.0, &addr.to_le_bytes()), bytes);
    }
}

/// Most distinct ranges a kept decode may have read (a decode that read more is not kept:
/// checking it would cost about what decoding it does).
const MAX_RANGES: usize = 4096;

/// A target that notes every successful read made through it (a task's decode).
pub(crate) struct Recorder<'a> {
    inner: &'a dyn Target,
    reads: RefCell<Vec<(u64, u32)>>,
    /// Set when the decode used something besides target memory (the clock).
    unkeepable: std::cell::Cell<bool>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(inner: &'a dyn Target) -> Self {
        Recorder {
            inner,
            reads: RefCell::new(Vec::new()),
            unkeepable: std::cell::Cell::new(false),
        }
    }

    /// The decode read something that is not target memory: do not keep it.
    pub(crate) fn unkeepable(&self) {
        self.unkeepable.set(true);
    }

    /// The merged ranges read and the hash of their bytes now (as read); `None` when the
    /// decode cannot be kept.
    fn finish(self) -> Option<(Vec<(u64, u32)>, u64)> {
        if self.unkeepable.get() {
            return None;
        }
        let mut reads = self.reads.into_inner();
        reads.sort_unstable();
        let mut merged: Vec<(u64, u32)> = Vec::with_capacity(reads.len());
        for (addr, len) in reads {
            match merged.last_mut() {
                // Overlapping or adjacent: one range (never spanning bytes not read).
                Some((a, l)) if addr <= *a + u64::from(*l) => {
                    let end = (addr + u64::from(len)).max(*a + u64::from(*l));
                    *l = u32::try_from(end - *a).ok()?;
                }
                _ => merged.push((addr, len)),
            }
        }
        if merged.len() > MAX_RANGES {
            return None;
        }
        let mut hash = Hash::default();
        let mut buf = Vec::new();
        for &(addr, len) in &merged {
            buf.resize(len as usize, 0);
            self.inner.read(addr, &mut buf).ok()?;
            hash.add(addr, &buf);
        }
        Some((merged, hash.0))
    }
}

impl Target for Recorder<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read(addr, buf)?;
        if let Ok(len) = u32::try_from(buf.len()) {
            self.reads.borrow_mut().push((addr, len));
        } else {
            self.unkeepable.set(true);
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
    fn registers(&self, tid: i32) -> Option<Registers> {
        self.inner.registers(tid)
    }
    fn thread_name(&self, tid: i32) -> Option<String> {
        self.inner.thread_name(tid)
    }
    fn mapped_files(&self) -> Vec<MappedFile> {
        self.inner.mapped_files()
    }
    fn proc_pid(&self) -> Option<i32> {
        self.inner.proc_pid()
    }
}
