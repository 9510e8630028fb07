//! An ELF core file (the kernel's or `gcore`'s) as a [`Target`].
//!
//! What a core holds, and what this reader takes from it:
//! - `PT_LOAD` segments: the process memory. A segment's `p_filesz` may be smaller than its
//!   `p_memsz` (pages the dumper left out, e.g. unmodified file-backed text): bytes past
//!   `p_filesz` are not in the core. Those are read from the mapped file named by `NT_FILE`,
//!   when it is still on disk; otherwise the read fails (never returns made-up zeros).
//! - `NT_PRSTATUS`, one per thread: `pr_pid` (at 32) is the thread id, `pr_reg` (at 112) the
//!   x86-64 `user_regs_struct`, whose `fs_base` (at +168) is the thread pointer.
//! - `NT_AUXV`: the auxiliary vector, for `AT_ENTRY` (the relocation bias of a PIE) and
//!   `AT_EXECFN` (the path the program was executed by).
//!
//! A core may be cut short (`ulimit -c`, systemd-coredump's size caps, a full disk): the
//! segments that run past the end of the file keep the bytes that are there, and a read of
//! the missing part fails like a read of unmapped memory ([`CoreFile::truncation`] says how
//! much is missing). A core cut inside its ELF header or program headers, or inside notes
//! that come before all its memory (the kernel's layout), has nothing that can be read:
//! [`Error::TruncatedCore`]. gcore writes its notes *after* the memory, so a cut gcore core
//! has memory but no threads, registers, auxv or file list: the threads are then found by
//! their thread control blocks (glibc's `tcbhead_t` starts with two pointers to itself, at 0
//! and 16, and the thread pointer `fs_base` points at it), without registers, and the
//! executable's load address by its first page ([`CoreFile::place_image`]). Section headers
//! (gcore writes them last) are not used.
//!
//! Everything in the file is untrusted: every offset and length is checked, and a malformed
//! core gives [`Error::CorruptCore`], never a panic.

use super::files::TargetFiles;
use super::{auxv_entry, auxv_value, Registers, Target, Thread, AT_EXECFN};
use crate::error::{Error, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// `pr_reg` in `struct elf_prstatus` on x86-64.
const PRSTATUS_REGS: usize = 112;
/// `pr_pid` in `struct elf_prstatus` on x86-64.
const PRSTATUS_PID: usize = 32;
/// `fs_base` in `struct user_regs_struct` on x86-64.
const REGS_FS_BASE: usize = 168;

/// One `PT_LOAD` segment: `[vaddr, vaddr + memsz)`, of which the first `filesz` bytes are
/// at `offset` in the core; of those, the first `present` are in the file (fewer when the
/// core is truncated).
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    present: u64,
    writable: bool,
}

/// `tid` in glibc's `struct pthread` on x86-64 (2.26 and later), read only for threads found
/// by their control blocks in a core whose notes were cut off.
const PTHREAD_TID: u64 = 0x2d0;

/// One `NT_FILE` entry: `[start, end)` maps `path` from byte `offset`.
#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

/// A core file, read into memory.
pub struct CoreFile {
    data: Vec<u8>,
    segments: Vec<Segment>,
    mappings: Vec<Mapping>,
    threads: Vec<Thread>,
    states: super::ThreadStates,
    entry: Option<u64>,
    /// `AT_EXECFN`: where the path the program was executed by is in its memory.
    execfn: Option<u64>,
    /// The size the core should have (the end of its last segment), when the file is shorter.
    expected_size: Option<u64>,
    /// Whether the notes were cut off and the threads found in memory instead.
    threads_from_memory: bool,
    /// Where the mapped files are read (pages the core left out).
    files: TargetFiles,
}

impl CoreFile {
    /// Reads and indexes the core file at `path`.
    pub fn open(path: &str) -> Result<CoreFile> {
        let data = std::fs::read(path).map_err(|e| Error::Io(path.to_string(), e))?;
        Self::parse(data, path)
    }

    /// Indexes the bytes of a core file; `path` only names it in errors.
    pub fn parse(data: Vec<u8>, path: &str) -> Result<CoreFile> {
        let corrupt = |why: &str| Error::CorruptCore(format!("{path}: {why}"));
        let size = data.len() as u64;
        let cut = |within: &'static str| Error::TruncatedCore {
            path: path.to_string(),
            size,
            within,
        };
        if !data.starts_with(b"\x7fELF") {
            return Err(Error::NotElf(path.to_string()));
        }
        if data.len() < std::mem::size_of::<elf::FileHeader64<Endianness>>() {
            return Err(cut("ELF header"));
        }
        let header = elf::FileHeader64::<Endianness>::parse(&*data)
            .map_err(|_| corrupt("malformed ELF header (not a 64-bit ELF file?)"))?;
        let endian = header
            .endian()
            .map_err(|_| corrupt("malformed ELF header (unknown byte order)"))?;
        if header.e_type(endian) != elf::ET_CORE {
            return Err(corrupt(
                "an ELF file, but not a core file (e_type is not ET_CORE)",
            ));
        }
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Err(corrupt(
                "not an x86-64 core (only x86-64 Linux is supported)",
            ));
        }
        let mut segments = Vec::new();
        let mut threads = Vec::new();
        let mut states = super::ThreadStates::default();
        let mut mappings = Vec::new();
        let mut entry = None;
        let mut execfn = None;
        let table_end = header.e_phoff(endian).saturating_add(
            u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian)),
        );
        if table_end > size {
            return Err(cut("program headers"));
        }
        let program_headers = header
            .program_headers(endian, &*data)
            .map_err(|_| corrupt("malformed program header table"))?;
        let mut expected = size;
        let mut notes_cut = false;
        for ph in program_headers {
            let (offset, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
            expected = expected.max(offset.saturating_add(filesz));
            match ph.p_type(endian) {
                elf::PT_LOAD => segments.push(Segment {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    offset,
                    filesz,
                    present: filesz.min(size.saturating_sub(offset)),
                    writable: ph.p_flags(endian).0 & elf::PF_W.0 != 0,
                }),
                elf::PT_NOTE if offset.saturating_add(filesz) > size => notes_cut = true,
                elf::PT_NOTE => {
                    let notes = ph
                        .notes(endian, &*data)
                        .map_err(|_| corrupt("unreadable PT_NOTE segment"))?;
                    let Some(mut notes) = notes else { continue };
                    while let Some(note) = notes.next().map_err(|_| corrupt("malformed note"))? {
                        let desc = note.desc();
                        match note.n_type(endian) {
                            elf::NT_PRSTATUS => {
                                let t = prstatus_thread(desc).ok_or_else(|| {
                                    corrupt("NT_PRSTATUS note too short for x86-64")
                                })?;
                                states.push(super::ThreadState {
                                    tid: t.tid,
                                    regs: desc
                                        .get(PRSTATUS_REGS..)
                                        .and_then(Registers::from_user_regs),
                                    name: None,
                                });
                                threads.push(t);
                            }
                            elf::NT_AUXV => {
                                entry = auxv_entry(desc);
                                execfn = auxv_value(desc, AT_EXECFN);
                            }
                            elf::NT_FILE => mappings = parse_nt_file(desc).unwrap_or_default(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if notes_cut && segments.iter().all(|s| s.present == 0) {
            return Err(cut("notes"));
        }
        if segments.is_empty() {
            return Err(corrupt("no PT_LOAD segments (no memory in the core)"));
        }
        segments.sort_by_key(|s| s.vaddr);
        let mut core = CoreFile {
            data,
            segments,
            mappings,
            threads,
            states,
            entry,
            execfn,
            expected_size: (expected > size).then_some(expected),
            threads_from_memory: false,
            files: TargetFiles::by_path(),
        };
        if core.threads.is_empty() && notes_cut {
            core.threads = core.threads_in_memory();
            core.threads_from_memory = true;
        }
        if core.threads.is_empty() && !notes_cut {
            return Err(corrupt("no NT_PRSTATUS notes (no threads in the core)"));
        }
        Ok(core)
    }

    /// Threads found by their control blocks in the writable memory present: an 8-aligned
    /// address `a` holding `a` at `a` and at `a + 16` is glibc's `tcbhead_t` (`tcb`, `self`),
    /// and `a` is the thread's `fs_base`.
    fn threads_in_memory(&self) -> Vec<Thread> {
        let mut out = Vec::new();
        for seg in self.segments.iter().filter(|s| s.writable) {
            // Segment headers are untrusted: a range past the file or the address space is
            // skipped, never overflowed.
            let range = usize::try_from(seg.offset).ok().and_then(|start| {
                let end = start.checked_add(usize::try_from(seg.present).ok()?)?;
                Some(start..end)
            });
            let Some(bytes) = range.and_then(|r| self.data.get(r)) else {
                continue;
            };
            if seg.vaddr.checked_add(bytes.len() as u64).is_none() {
                continue;
            }
            let word = |at: usize| -> Option<u64> {
                Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
            };
            for at in (0..bytes.len().saturating_sub(24)).step_by(8) {
                let addr = seg.vaddr + at as u64;
                if word(at) == Some(addr) && word(at + 16) == Some(addr) {
                    let mut tid = [0u8; 4];
                    let tid = if self.read_into(addr.wrapping_add(PTHREAD_TID), &mut tid) {
                        i32::from_le_bytes(tid).max(0)
                    } else {
                        0
                    };
                    out.push(Thread { tid, fs_base: addr });
                }
            }
        }
        out
    }

    /// The path the program was executed by (`AT_EXECFN`, as given to `execve`: perhaps
    /// relative), when the core holds it.
    pub fn execfn(&self) -> Option<String> {
        const MAX_PATH: usize = 4096;
        let at = self.execfn?;
        let mut path = Vec::new();
        // Byte by byte: the string may end just before the end of the memory present.
        let mut byte = [0u8; 1];
        while path.len() < MAX_PATH && self.read_into(at.checked_add(path.len() as u64)?, &mut byte)
        {
            if byte[0] == 0 {
                return (!path.is_empty()).then(|| String::from_utf8_lossy(&path).into_owned());
            }
            path.push(byte[0]);
        }
        None
    }

    /// Reads the pages the core left out from `files` (the executable given, the sysroot)
    /// instead of the paths the core names, as they are.
    pub fn set_files(&mut self, files: TargetFiles) {
        self.files = files;
    }

    /// Whether the threads were found in memory, the notes being cut off (no registers then).
    pub fn threads_from_memory(&self) -> bool {
        self.threads_from_memory
    }

    /// Where the executable is loaded, when the core has no `NT_AUXV` (its notes cut off):
    /// the segment that starts with the executable's first bytes `first_page`, which it maps at
    /// `image_vaddr` (its link-time address), gives the bias; the entry point `entry` moved by
    /// it is then what [`Target::at_entry`] says. False if no segment starts with those bytes.
    pub fn place_image(&mut self, first_page: &[u8], image_vaddr: u64, entry: u64) -> bool {
        let found = self.segments.iter().find(|s| {
            s.present >= first_page.len() as u64
                && self
                    .data
                    .get(s.offset as usize..s.offset as usize + first_page.len())
                    == Some(first_page)
        });
        match found {
            Some(seg) => {
                self.entry = Some(entry.wrapping_add(seg.vaddr.wrapping_sub(image_vaddr)));
                true
            }
            None => false,
        }
    }

    /// `(present, expected)` bytes when the core is truncated: its segments run past the end.
    pub fn truncation(&self) -> Option<(u64, u64)> {
        self.expected_size
            .map(|expected| (self.data.len() as u64, expected))
    }

    /// Copies what the core holds of `[addr, addr + buf.len())` into `buf`, reading left-out
    /// pages from their mapped files. False if any byte is in neither.
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let seg_idx = self.segments.partition_point(|s| s.vaddr <= at);
            let Some(seg) = seg_idx.checked_sub(1).map(|i| self.segments[i]) else {
                return false;
            };
            let rel = at - seg.vaddr;
            if rel >= seg.memsz {
                return false;
            }
            let want = (buf.len() - done) as u64;
            let n = if rel < seg.present {
                let n = want.min(seg.present - rel);
                let start = (seg.offset + rel) as usize;
                buf[done..done + n as usize].copy_from_slice(&self.data[start..start + n as usize]);
                n
            } else if rel < seg.filesz {
                // Cut off the end of a truncated core: not in the file, and the mapped file
                // (if any) may differ from what the process had.
                return false;
            } else {
                let n = want.min(seg.memsz - rel);
                if !self.read_mapped_file(at, &mut buf[done..done + n as usize]) {
                    return false;
                }
                n
            };
            done += n as usize;
        }
        true
    }

    /// Reads `buf` from the file mapped at `addr` (a page the dumper left out).
    fn read_mapped_file(&self, addr: u64, buf: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(m) = self
            .mappings
            .iter()
            .find(|m| m.start <= addr && addr.saturating_add(buf.len() as u64) <= m.end)
        else {
            return false;
        };
        let Some(at) = m.offset.checked_add(addr - m.start) else {
            return false;
        };
        // Only regular files: a path in a (possibly crafted) core must not make the reader
        // block on a FIFO or a device.
        let file = self
            .files
            .mapped_candidates(&m.path)
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|md| md.is_file()));
        let Some(Ok(f)) = file.map(std::fs::File::open) else {
            return false;
        };
        f.read_exact_at(buf, at).is_ok()
    }
}

/// The thread of one `NT_PRSTATUS` note.
fn prstatus_thread(desc: &[u8]) -> Option<Thread> {
    let word = |at: usize| -> Option<[u8; 8]> { desc.get(at..at + 8)?.try_into().ok() };
    let pid: [u8; 4] = desc.get(PRSTATUS_PID..PRSTATUS_PID + 4)?.try_into().ok()?;
    Some(Thread {
        tid: i32::from_le_bytes(pid),
        fs_base: u64::from_le_bytes(word(PRSTATUS_REGS + REGS_FS_BASE)?),
    })
}

/// Parses an `NT_FILE` note: `count`, `page_size`, then `count` × (start, end, page offset),
/// then `count` NUL-terminated paths.
fn parse_nt_file(desc: &[u8]) -> Option<Vec<Mapping>> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            desc.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    let count = usize::try_from(word(0)?).ok()?;
    let page = word(1)?;
    let names_at = count.checked_mul(24)?.checked_add(16)?;
    let mut names = desc.get(names_at..)?.split(|&b| b == 0);
    let mut out = Vec::with_capacity(count.min(4096));
    for i in 0..count {
        let (start, end, pgoff) = (word(2 + 3 * i)?, word(3 + 3 * i)?, word(4 + 3 * i)?);
        let path = String::from_utf8_lossy(names.next()?).into_owned();
        out.push(Mapping {
            start,
            end,
            offset: pgoff.checked_mul(page)?,
            path,
        });
    }
    Some(out)
}

impl Target for CoreFile {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if self.read_into(addr, buf) {
            Ok(())
        } else {
            Err(Error::Memory(addr, buf.len()))
        }
    }

    fn threads(&self) -> &[Thread] {
        &self.threads
    }

    fn at_entry(&self) -> Option<u64> {
        self.entry
    }

    fn is_live(&self) -> bool {
        false
    }

    fn registers(&self, tid: i32) -> Option<Registers> {
        self.states.registers(tid)
    }

    fn memory_to_scan(&self) -> Vec<super::MemoryRange<'_>> {
        self.segments
            .iter()
            .filter_map(|s| {
                let start = usize::try_from(s.offset).ok()?;
                let bytes = self
                    .data
                    .get(start..start.checked_add(s.present as usize)?)?;
                Some(super::MemoryRange {
                    addr: s.vaddr,
                    bytes,
                    writable: s.writable,
                })
            })
            .collect()
    }

    fn mapped_files(&self) -> Vec<super::MappedFile> {
        self.mappings
            .iter()
            .map(|m| super::MappedFile {
                start: m.start,
                end: m.end,
                offset: m.offset,
                path: m.path.clone(),
                writable: true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_elf() {
        let err = CoreFile::parse(b"not an elf at all".to_vec(), "x.core")
            .err()
            .expect("rejected");
        assert!(matches!(err, Error::NotElf(_)), "{err}");
    }

    #[test]
    fn elf_header_cut_is_a_truncated_core() {
        let err = CoreFile::parse(b"\x7fELF\x02\x01\x01".to_vec(), "x.core")
            .err()
            .expect("rejected");
        assert!(
            matches!(
                err,
                Error::TruncatedCore {
                    size: 7,
                    within: "ELF header",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("ends at byte 7"), "{err}");
    }

    /// A core laid out as the kernel writes it: header, program headers, notes, then memory.
    fn kernel_layout_core(note_len: u64, mem_len: u64) -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        d[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
        d[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        d[20..24].copy_from_slice(&1u32.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        d[52..54].copy_from_slice(&64u16.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&2u16.to_le_bytes());
        let notes_at = 64 + 2 * 56;
        let phdr = |p_type: u32, flags: u32, offset: u64, vaddr: u64, len: u64| {
            let mut p = Vec::new();
            p.extend_from_slice(&p_type.to_le_bytes());
            p.extend_from_slice(&flags.to_le_bytes());
            for w in [offset, vaddr, 0, len, len, 1] {
                p.extend_from_slice(&w.to_le_bytes());
            }
            p
        };
        d.extend(phdr(elf::PT_NOTE.0, 4, notes_at, 0, note_len));
        d.extend(phdr(
            elf::PT_LOAD.0,
            6,
            notes_at + note_len,
            0x10000,
            mem_len,
        ));
        // One NT_PRSTATUS note filling the segment ("CORE", then the registers, all zero).
        d.extend_from_slice(&5u32.to_le_bytes());
        d.extend_from_slice(&(note_len as u32 - 20).to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(b"CORE\0\0\0\0");
        d.resize((notes_at + note_len + mem_len) as usize, 0);
        d
    }

    #[test]
    fn cut_inside_the_headers_or_leading_notes_reads_nothing() {
        let whole = kernel_layout_core(20 + 336, 4096);
        let within = |at: usize| match CoreFile::parse(whole[..at].to_vec(), "k.core") {
            Err(Error::TruncatedCore { size, within, .. }) => {
                assert_eq!(size, at as u64);
                within
            }
            Err(e) => panic!("cut at {at}: {e}"),
            Ok(_) => panic!("cut at {at}: read"),
        };
        assert_eq!(within(40), "ELF header");
        assert_eq!(within(64 + 56), "program headers");
        assert_eq!(within(64 + 112 + 10), "notes");
        // Cut in the memory: what is there reads, the rest fails like unmapped memory.
        let core = CoreFile::parse(whole[..whole.len() - 1000].to_vec(), "k.core")
            .expect("memory cut: still a core");
        assert_eq!(
            core.truncation(),
            Some((whole.len() as u64 - 1000, whole.len() as u64))
        );
        let mut buf = [0u8; 8];
        assert!(core.read(0x10000, &mut buf).is_ok());
        assert!(
            core.read(0x10000 + 4000, &mut buf).is_err(),
            "in the cut part"
        );
    }

    #[test]
    fn executable_is_not_a_core() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = CoreFile::parse(exe, "self").err().expect("rejected");
        assert!(err.to_string().contains("not a core file"), "{err}");
    }

    #[test]
    fn nt_file_parses_and_bounds() {
        let mut d = Vec::new();
        for w in [1u64, 4096, 0x1000, 0x3000, 2] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        d.extend_from_slice(b"/bin/x\0");
        let m = parse_nt_file(&d).expect("parsed");
        assert_eq!((m[0].start, m[0].end, m[0].offset), (0x1000, 0x3000, 8192));
        assert_eq!(m[0].path, "/bin/x");
        assert!(parse_nt_file(&d[..30]).is_none(), "short note rejected");
        let mut huge = d.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_nt_file(&huge).is_none(), "absurd count rejected");
    }

    /// A core whose only memory is a left-out page mapped from `path` at file `offset`.
    fn left_out_page(path: &str, offset: u64) -> CoreFile {
        CoreFile {
            data: Vec::new(),
            segments: vec![Segment {
                vaddr: 0x1000,
                memsz: 0x1000,
                offset: 0,
                filesz: 0,
                present: 0,
                writable: false,
            }],
            mappings: vec![Mapping {
                start: 0x1000,
                end: 0x2000,
                offset,
                path: path.to_string(),
            }],
            threads: Vec::new(),
            states: crate::process::ThreadStates::default(),
            entry: None,
            expected_size: None,
            threads_from_memory: false,
            files: TargetFiles::by_path(),
            execfn: None,
        }
    }

    #[test]
    fn left_out_pages_read_from_their_file_with_checked_offsets() {
        // Regression: a crafted NT_FILE page offset near u64::MAX overflowed the sum.
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        let mut buf = [0u8; 4];
        left_out_page(exe, 0).read(0x1000, &mut buf).unwrap();
        assert_eq!(&buf, b"\x7fELF");
        assert!(left_out_page(exe, u64::MAX - 2)
            .read(0x1800, &mut buf)
            .is_err());
        assert!(
            left_out_page(exe, 0).read(0x1ffe, &mut buf).is_err(),
            "past the segment"
        );
    }

    #[test]
    fn execfn_is_the_string_at_at_execfn() {
        let memory = |bytes: &[u8], execfn: Option<u64>| {
            let mut core = left_out_page("/nonexistent", 0);
            core.data = bytes.to_vec();
            core.segments[0].memsz = bytes.len() as u64;
            core.segments[0].filesz = bytes.len() as u64;
            core.segments[0].present = bytes.len() as u64;
            core.mappings.clear();
            core.execfn = execfn;
            core
        };
        let core = memory(b"x\0/app/server\0", Some(0x1002));
        assert_eq!(core.execfn().as_deref(), Some("/app/server"));
        // Without its NUL in the memory present, or pointing nowhere: none.
        assert_eq!(memory(b"/app/ser", Some(0x1000)).execfn(), None);
        assert_eq!(memory(b"/app\0", Some(0x9000)).execfn(), None);
        assert_eq!(memory(b"/app\0", None).execfn(), None);
    }

    #[test]
    fn left_out_pages_are_never_read_from_fifos_or_devices() {
        // A crafted core naming a FIFO (or /dev/stdin) must not block the reader.
        let dir = std::env::temp_dir().join(format!("tasktrace-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut buf = [0u8; 8];
        assert!(left_out_page(fifo.to_str().unwrap(), 0)
            .read(0x1000, &mut buf)
            .is_err());
        assert!(left_out_page("/dev/zero", 0)
            .read(0x1000, &mut buf)
            .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
