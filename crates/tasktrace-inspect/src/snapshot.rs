//! A page cache in front of a target, so that a live process is stopped only while the reader
//! copies what it needs: [`Snapshot`] keeps every page read (4 KiB, read whole), and can be
//! told to [`prefetch`](Snapshot::prefetch) ranges (each task's cell). Once the process is
//! resumed ([`Snapshot::resumed`]), decoding goes on from the copied pages; a read of a page
//! never copied then goes to the running process (counted: [`Snapshot::late_reads`]).

use crate::addr_hash::AddrMap;
use crate::error::{Error, Result};
use crate::process::{MappedFile, Registers, Source, Target, Thread, ThreadState, ThreadStates};
use std::cell::{Cell, RefCell};

const PAGE: u64 = 4096;

/// Marks a page that could not be read whole in [`Snapshot`]'s index.
const UNREADABLE: u32 = u32::MAX;

/// Entries of the recent-pages cache (a power of two).
const RECENT: usize = 8;

/// A cached view of a target: its threads, registers and names copied, its memory cached by
/// page.
pub struct Snapshot<S: Source> {
    source: S,
    threads: Vec<Thread>,
    states: ThreadStates,
    entry: Option<u64>,
    live: bool,
    proc_pid: Option<i32>,
    maps: Vec<MappedFile>,
    /// The copied pages, in the order copied.
    pages: RefCell<Vec<Box<[u8]>>>,
    /// Page number → index in `pages` ([`UNREADABLE`]: not readable whole).
    index: RefCell<AddrMap<u32>>,
    /// The pages looked up last, by page number modulo [`RECENT`]: the reads of one task
    /// header (its page, and its vtable's in the executable) find theirs without a lookup.
    recent: [Cell<(u64, u32)>; RECENT],
    resumed: Cell<bool>,
    late: Cell<u64>,
}

impl<S: Source> Snapshot<S> {
    /// A snapshot of `t` (its threads and registers now), reading memory through `source`.
    pub fn new(t: &dyn Target, source: S) -> Self {
        let threads = t.threads().to_vec();
        let mut states = ThreadStates::default();
        for th in &threads {
            states.push(ThreadState {
                tid: th.tid,
                regs: t.registers(th.tid),
                name: t.thread_name(th.tid),
            });
        }
        Snapshot {
            source,
            threads,
            states,
            entry: t.at_entry(),
            live: t.is_live(),
            proc_pid: t.proc_pid(),
            maps: t.mapped_files(),
            pages: RefCell::new(Vec::new()),
            index: RefCell::new(AddrMap::default()),
            recent: std::array::from_fn(|_| Cell::new((u64::MAX, UNREADABLE))),
            resumed: Cell::new(false),
            late: Cell::new(0),
        }
    }

    /// From now on the target runs: reads of pages not copied yet are counted as late.
    pub fn resumed(&self) {
        self.resumed.set(true);
    }

    /// Pages read after [`resumed`](Self::resumed) (from the running process).
    pub fn late_reads(&self) -> u64 {
        self.late.get()
    }

    /// Bytes copied.
    pub fn copied(&self) -> u64 {
        self.pages.borrow().len() as u64 * PAGE
    }

    /// Copies the pages of `[addr, addr + len)` (best effort).
    pub fn prefetch(&self, addr: u64, len: u64) {
        let first = addr / PAGE;
        let Some(last) = addr.checked_add(len.max(1) - 1).map(|e| e / PAGE) else {
            return;
        };
        for p in first..=last.min(first + 1024) {
            let _ = self.page(p);
        }
    }

    /// Whether page `p` is readable (copied on first use).
    fn page(&self, p: u64) -> bool {
        self.with_page(p, |_| ()).is_some()
    }

    /// `f` of page `p`'s bytes (copied on first use, one lookup when it was); `None` when the
    /// page cannot be read whole.
    fn with_page<R>(&self, p: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let recent = &self.recent[p as usize % RECENT];
        let at = match recent.get() {
            (page, at) if page == p => at,
            _ => {
                let known = self.index.borrow().get(&p).copied();
                let at = known.unwrap_or_else(|| self.copy_page(p));
                recent.set((p, at));
                at
            }
        };
        if at == UNREADABLE {
            return None;
        }
        self.pages.borrow().get(at as usize).map(|page| f(page))
    }

    /// Copies page `p` (first use): its index in `pages`, or [`UNREADABLE`].
    fn copy_page(&self, p: u64) -> u32 {
        if self.resumed.get() {
            self.late.set(self.late.get() + 1);
        }
        let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
        let at = if self.source.read(p * PAGE, &mut buf).is_ok() {
            let mut pages = self.pages.borrow_mut();
            pages.push(buf);
            u32::try_from(pages.len() - 1).unwrap_or(UNREADABLE)
        } else {
            UNREADABLE
        };
        self.index.borrow_mut().insert(p, at);
        at
    }
}

impl<S: Source> Target for Snapshot<S> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return Err(Error::Memory(addr, buf.len()));
        };
        let mut at = addr;
        while at < end {
            let p = at / PAGE;
            let off = (at % PAGE) as usize;
            let n = ((PAGE - at % PAGE).min(end - at)) as usize;
            let done = (at - addr) as usize;
            let out = &mut buf[done..done + n];
            if self
                .with_page(p, |page| out.copy_from_slice(&page[off..off + n]))
                .is_none()
            {
                // A page that is not whole (e.g. the end of a mapping): read the bytes directly.
                return self
                    .source
                    .read(at, &mut buf[done..])
                    .map_err(|_| Error::Memory(addr, buf.len()));
            }
            at += n as u64;
        }
        Ok(())
    }

    fn threads(&self) -> &[Thread] {
        &self.threads
    }

    fn at_entry(&self) -> Option<u64> {
        self.entry
    }

    fn is_live(&self) -> bool {
        self.live
    }

    fn proc_pid(&self) -> Option<i32> {
        self.proc_pid
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

    struct Mem(Vec<u8>);

    impl Source for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            let a = addr as usize;
            let src = self
                .0
                .get(a..a + buf.len())
                .ok_or(Error::Memory(addr, buf.len()))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn reads_across_pages_and_counts_late_reads() {
        let mem: Vec<u8> = (0..3 * PAGE + 100).map(|i| (i % 251) as u8).collect();
        let s = Snapshot::new(&crate::process::NoMemory, Mem(mem.clone()));
        s.prefetch(0, 10);
        let mut buf = vec![0u8; 1000];
        s.read(4000, &mut buf).unwrap();
        assert_eq!(&buf[..], &mem[4000..5000]);
        s.resumed();
        assert_eq!(s.late_reads(), 0);
        let mut b = [0u8; 8];
        s.read(2 * PAGE + 8, &mut b).unwrap();
        assert_eq!(s.late_reads(), 1);
        // The partial last page is read directly.
        let mut tail = [0u8; 50];
        s.read(3 * PAGE + 10, &mut tail).unwrap();
        assert_eq!(
            &tail[..],
            &mem[(3 * PAGE + 10) as usize..(3 * PAGE + 60) as usize]
        );
        assert!(s.read(3 * PAGE + 90, &mut [0u8; 20]).is_err());
    }
}
