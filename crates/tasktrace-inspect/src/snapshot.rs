//! A page cache in front of a target, so that a live process is stopped only while the reader
//! copies what it needs: [`Snapshot`] keeps every page read (4 KiB, read whole), and can be
//! told to [`prefetch`](Snapshot::prefetch) ranges (each task's cell) or to copy many pages at
//! once ([`copy_pages`](Snapshot::copy_pages)). Once the process is resumed
//! ([`Snapshot::resumed`]), decoding goes on from the copied pages; a read of a page never
//! copied then goes to the running process (counted: [`Snapshot::late_reads`]).
//!
//! Invariants (what makes a read from copies whole):
//! - While the process is stopped, every page is read from the stopped process: all of them are
//!   of one instant.
//! - After [`Snapshot::copies_only`] (the process runs again, but the reader has not yet
//!   read what must be read stopped), no page is read from the source: a page not copied
//!   is recorded as missed ([`Snapshot::has_missed`]) and reads as unreadable. A read that met
//!   none was made of one instant's copies, as if the process had stayed stopped; one that
//!   met any is thrown away by its caller.
//! - After [`Snapshot::resumed`], a page not copied is read from the running process and
//!   counted as late: only for decoding, whose readers check what they read.
//! - A page of a private file mapping the process may not write (its code, read-only data,
//!   the libraries' text: `MappedFile::writable` false) holds the same bytes stopped or
//!   running: it is never copied while the process is stopped, and is read from the process
//!   when first used, in any phase — neither missed nor late, nor part of what the next read
//!   copies.

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
    /// The pages of the mappings the process may not write, as sorted `[first, end)` page
    /// number ranges: the same stopped or running.
    constant: Vec<(u64, u64)>,
    /// The copied pages, in the order copied.
    pages: RefCell<Vec<Box<[u8]>>>,
    /// The number of each page tried (copied, or found unreadable), in the order tried.
    numbers: RefCell<Vec<u64>>,
    /// How many of `numbers` were tried while the process was stopped.
    copied_stopped: Cell<usize>,
    /// Page number → index in `pages` ([`UNREADABLE`]: not readable whole).
    index: RefCell<AddrMap<u32>>,
    /// The pages looked up last, by page number modulo [`RECENT`]: the reads of one task
    /// header (its page, and its vtable's in the executable) find theirs without a lookup.
    recent: [Cell<(u64, u32)>; RECENT],
    phase: Cell<Phase>,
    late: Cell<u64>,
    /// Pages met in [`Phase::CopiesOnly`] that were not copied.
    missed: RefCell<Vec<u64>>,
    /// Pages met in [`Phase::CopiesOnly`] that were (copied, or found unreadable).
    used: RefCell<crate::addr_hash::AddrSet>,
}

/// Where the process is, for the reads of a [`Snapshot`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Stopped: pages not copied yet are read from it.
    Stopped,
    /// Running, and the reader still reads what must be of one instant: only copies.
    CopiesOnly,
    /// Running, and what is read now may be late.
    Resumed,
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
        let maps = t.mapped_files();
        let mut constant: Vec<(u64, u64)> = maps
            .iter()
            .filter(|m| !m.writable)
            .map(|m| (m.start / PAGE, m.end.div_ceil(PAGE)))
            .collect();
        constant.sort_unstable();
        Snapshot {
            source,
            threads,
            states,
            entry: t.at_entry(),
            live: t.is_live(),
            proc_pid: t.proc_pid(),
            maps,
            constant,
            pages: RefCell::new(Vec::new()),
            numbers: RefCell::new(Vec::new()),
            copied_stopped: Cell::new(0),
            index: RefCell::new(AddrMap::default()),
            recent: std::array::from_fn(|_| Cell::new((u64::MAX, UNREADABLE))),
            phase: Cell::new(Phase::Stopped),
            late: Cell::new(0),
            missed: RefCell::new(Vec::new()),
            used: RefCell::default(),
        }
    }

    /// From now on the target runs: reads of pages not copied yet are counted as late.
    pub fn resumed(&self) {
        if self.phase.get() == Phase::Stopped {
            self.copied_stopped.set(self.numbers.borrow().len());
        }
        self.phase.set(Phase::Resumed);
    }

    /// From now on the target runs, and reads must be of the copies only (until
    /// [`resumed`](Self::resumed)): a page not copied reads as unreadable and is recorded
    /// ([`has_missed`](Self::has_missed)).
    pub fn copies_only(&self) {
        self.copied_stopped.set(self.numbers.borrow().len());
        self.phase.set(Phase::CopiesOnly);
    }

    /// True when a read from copies only met a page without a copy: what it read is not
    /// whole.
    pub fn has_missed(&self) -> bool {
        !self.missed.borrow().is_empty()
    }

    /// The copied pages a read from copies only used: what the next read needs copied
    /// (the others were copied for nothing).
    pub fn pages_used(&self) -> Vec<u64> {
        let mut used: Vec<u64> = self.used.borrow().iter().copied().collect();
        used.sort_unstable();
        used
    }

    /// The numbers of the pages tried while the process was stopped (copied, or found
    /// unreadable): what a next read of the same process will likely need, to be tried at
    /// once with [`copy_pages`](Self::copy_pages).
    pub fn pages_copied_stopped(&self) -> Vec<u64> {
        let n = if self.phase.get() != Phase::Stopped {
            self.copied_stopped.get()
        } else {
            self.numbers.borrow().len()
        };
        self.numbers.borrow()[..n].to_vec()
    }

    /// Pages read after [`resumed`](Self::resumed) (from the running process).
    pub fn late_reads(&self) -> u64 {
        self.late.get()
    }

    /// Bytes copied.
    pub fn copied(&self) -> u64 {
        self.pages.borrow().len() as u64 * PAGE
    }

    /// Copies the pages of each `[addr, addr + len)` of `ranges`, all in one step (best
    /// effort; at most 1,025 pages a range).
    pub fn prefetch(&self, ranges: &[(u64, u64)]) {
        self.copy_pages(ranges.iter().flat_map(|&(addr, len)| {
            let first = addr / PAGE;
            let last = addr.checked_add(len.max(1) - 1).map(|e| e / PAGE);
            last.map(|last| first..=last.min(first + 1024))
                .into_iter()
                .flatten()
        }));
    }

    /// Copies the pages numbered `pages` that are not copied yet, as few reads of the source
    /// as it allows ([`Source::read_many`]: one system call per 1,024 pages of a live
    /// process, where reading them one by one as met costs one each). A page that cannot be
    /// read whole is left to be tried again when it is used (best effort).
    pub fn copy_pages(&self, pages: impl IntoIterator<Item = u64>) {
        let all: Vec<u64> = pages.into_iter().filter(|&p| !self.constant(p)).collect();
        let mut missing: Vec<u64> = {
            let index = self.index.borrow();
            all.iter()
                .copied()
                .filter(|p| !index.contains_key(p))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if self.phase.get() == Phase::CopiesOnly {
            let mut used = self.used.borrow_mut();
            used.extend(
                all.into_iter()
                    .filter(|p| missing.binary_search(p).is_err()),
            );
            self.missed.borrow_mut().extend(missing);
            return;
        }
        let mut bufs: Vec<Box<[u8]>> = missing
            .iter()
            .map(|_| vec![0u8; PAGE as usize].into_boxed_slice())
            .collect();
        let mut read = vec![false; missing.len()];
        // The page at address 0 is never mapped (the kernel's `mmap_min_addr`): a null
        // pointer read is not worth a failed system call while the process is stopped.
        let mut from = usize::from(missing.first() == Some(&0));
        while from < missing.len() {
            let mut parts: Vec<(u64, &mut [u8])> = missing[from..]
                .iter()
                .zip(bufs[from..].iter_mut())
                .map(|(&p, buf)| (p * PAGE, &mut buf[..]))
                .collect();
            let n = self.source.read_many(&mut parts);
            read[from..from + n].iter_mut().for_each(|r| *r = true);
            from += n + 1; // past the page that failed
        }
        if self.phase.get() == Phase::Resumed {
            self.late
                .set(self.late.get() + read.iter().filter(|&&r| r).count() as u64);
        }
        let mut pages = self.pages.borrow_mut();
        let mut numbers = self.numbers.borrow_mut();
        let mut index = self.index.borrow_mut();
        for ((p, buf), ok) in missing.into_iter().zip(bufs).zip(read) {
            let at = match u32::try_from(pages.len()) {
                Ok(at) if ok => {
                    pages.push(buf);
                    at
                }
                _ => UNREADABLE,
            };
            numbers.push(p);
            index.insert(p, at);
        }
    }

    /// `f` of page `p`'s bytes (copied on first use, one lookup when it was); `None` when the
    /// page cannot be read whole.
    fn with_page<R>(&self, p: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let recent = &self.recent[p as usize % RECENT];
        let at = match recent.get() {
            (page, at) if page == p => at,
            _ => {
                let known = self.index.borrow().get(&p).copied();
                if known.is_some() && self.phase.get() == Phase::CopiesOnly && !self.constant(p) {
                    self.used.borrow_mut().insert(p);
                }
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

    /// True for a page of a mapping the process may not write (see the module's invariants).
    fn constant(&self, p: u64) -> bool {
        let i = self.constant.partition_point(|&(first, _)| first <= p);
        i > 0 && p < self.constant[i - 1].1
    }

    /// Copies page `p` (first use): its index in `pages`, or [`UNREADABLE`].
    fn copy_page(&self, p: u64) -> u32 {
        let constant = self.constant(p);
        match self.phase.get() {
            _ if constant => {}
            Phase::Stopped => {}
            Phase::CopiesOnly => {
                self.missed.borrow_mut().push(p);
                self.index.borrow_mut().insert(p, UNREADABLE);
                return UNREADABLE;
            }
            Phase::Resumed => self.late.set(self.late.get() + 1),
        }
        let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
        let at = if p != 0 && self.source.read(p * PAGE, &mut buf).is_ok() {
            let mut pages = self.pages.borrow_mut();
            pages.push(buf);
            u32::try_from(pages.len() - 1).unwrap_or(UNREADABLE)
        } else {
            UNREADABLE
        };
        if !constant {
            self.numbers.borrow_mut().push(p);
        }
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
                if self.phase.get() == Phase::CopiesOnly {
                    return Err(Error::Memory(addr, buf.len()));
                }
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

    /// Memory from page [`B`] on (page 0 is never read: the null page).
    struct Mem(Vec<u8>);

    /// The first page of [`Mem`], and its address.
    const B: u64 = 16;
    const BASE: u64 = B * PAGE;

    impl Source for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            let a = addr
                .checked_sub(BASE)
                .ok_or(Error::Memory(addr, buf.len()))? as usize;
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
        s.prefetch(&[(BASE, 10)]);
        let mut buf = vec![0u8; 1000];
        s.read(BASE + 4000, &mut buf).unwrap();
        assert_eq!(&buf[..], &mem[4000..5000]);
        s.resumed();
        assert_eq!(s.late_reads(), 0);
        let mut b = [0u8; 8];
        s.read(BASE + 2 * PAGE + 8, &mut b).unwrap();
        assert_eq!(s.late_reads(), 1);
        // The partial last page is read directly.
        let mut tail = [0u8; 50];
        s.read(BASE + 3 * PAGE + 10, &mut tail).unwrap();
        assert_eq!(
            &tail[..],
            &mem[(3 * PAGE + 10) as usize..(3 * PAGE + 60) as usize]
        );
        assert!(s.read(BASE + 3 * PAGE + 90, &mut [0u8; 20]).is_err());
    }

    /// Pages copied in one step are what a read from copies alone sees; a page not copied is
    /// never read from the source then: it reads as unreadable and is recorded as missed.
    #[test]
    fn a_read_from_copies_alone_records_what_it_lacked() {
        let mem: Vec<u8> = (0..4 * PAGE).map(|i| (i % 253) as u8).collect();
        let s = Snapshot::new(&crate::process::NoMemory, Mem(mem.clone()));
        s.copy_pages([B + 1, B, B + 1, 0]);
        assert_eq!(s.copied(), 2 * PAGE);
        assert_eq!(
            s.pages_copied_stopped(),
            [0, B, B + 1],
            "the null page is tried, and unreadable"
        );
        s.copies_only();
        let mut buf = [0u8; 16];
        s.read(BASE + PAGE + 8, &mut buf).unwrap();
        assert_eq!(&buf[..], &mem[(PAGE + 8) as usize..(PAGE + 24) as usize]);
        assert!(
            s.read(BASE + 2 * PAGE + 8, &mut buf).is_err(),
            "not copied: not read"
        );
        s.prefetch(&[(BASE + 3 * PAGE, 10)]);
        assert_eq!(*s.missed.borrow(), [B + 2, B + 3]);
        assert_eq!(s.pages_used(), [B + 1], "page B was copied for nothing");
        assert_eq!(s.copied(), 2 * PAGE, "nothing read from the source");
    }

    /// A mapping the process may not write is the same stopped or running: never copied with
    /// the others, read when used in any phase, and not part of what the next read copies.
    #[test]
    fn pages_the_process_cannot_write_are_read_when_used() {
        struct Mapped;
        impl Target for Mapped {
            fn read(&self, addr: u64, _: &mut [u8]) -> Result<()> {
                Err(Error::Memory(addr, 0))
            }
            fn threads(&self) -> &[Thread] {
                &[]
            }
            fn at_entry(&self) -> Option<u64> {
                None
            }
            fn is_live(&self) -> bool {
                true
            }
            fn mapped_files(&self) -> Vec<MappedFile> {
                vec![MappedFile {
                    start: BASE + 2 * PAGE,
                    end: BASE + 4 * PAGE,
                    offset: 0,
                    path: "/lib/libc.so.6".into(),
                    writable: false,
                }]
            }
        }
        let mem: Vec<u8> = (0..4 * PAGE).map(|i| (i % 239) as u8).collect();
        let s = Snapshot::new(&Mapped, Mem(mem.clone()));
        s.prefetch(&[(BASE, 4 * PAGE)]);
        assert_eq!(s.copied(), 2 * PAGE, "the constant pages are not copied");
        assert_eq!(s.pages_copied_stopped(), [B, B + 1]);
        s.copies_only();
        let mut buf = [0u8; 16];
        s.read(BASE + 3 * PAGE, &mut buf).unwrap();
        assert_eq!(&buf[..], &mem[3 * PAGE as usize..3 * PAGE as usize + 16]);
        s.read(BASE + 8, &mut buf).unwrap();
        assert!(!s.has_missed(), "a constant page is no miss");
        assert_eq!(s.pages_used(), [B], "nor is it copied next time");
        s.resumed();
        s.read(BASE + 2 * PAGE, &mut buf).unwrap();
        assert_eq!(s.late_reads(), 0, "nor is it late");
    }

    /// One `process_vm_readv` for many pages; it stops at the first it cannot read.
    #[test]
    fn process_memory_reads_many_ranges_at_once() {
        let mem: Vec<u8> = (0..3 * PAGE).map(|i| (i % 241) as u8).collect();
        let base = mem.as_ptr() as u64;
        let own = crate::process::ProcessMemory(std::process::id() as i32);
        let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        let mut parts: Vec<(u64, &mut [u8])> =
            vec![(base, &mut a), (base + 2 * PAGE, &mut b), (8, &mut c)];
        assert_eq!(own.read_many(&mut parts), 2);
        assert_eq!(&a[..], &mem[..64]);
        assert_eq!(&b[..], &mem[2 * PAGE as usize..2 * PAGE as usize + 64]);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(8, &mut a), (base, &mut b)];
        assert_eq!(own.read_many(&mut parts), 0, "the first unreadable: none");
    }
}
