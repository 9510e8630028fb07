//! Shared pieces of the fuzz targets: a [`Target`] whose memory is the fuzz input
//! ([`MemTarget`]), a recording wrapper to make seeds from a real core ([`Recorder`]), a
//! writer of small core files ([`mini_core`]) and the demo target's debuginfo, loaded once.
//!
//! The `MemTarget` input format (little-endian):
//!
//! ```text
//! u8   thread count n (at most 16)
//! n ×  u64 fs_base of each thread
//! u64  AT_ENTRY (0: none)
//! then chunks until the input ends: u64 address, u32 length, that many bytes (a chunk cut
//! by the end of the input keeps what is there)
//! ```

use std::cell::RefCell;
use std::sync::OnceLock;
use tasktrace_inspect::debuginfo::DebugInfo;
use tasktrace_inspect::process::{Target, Thread};
use tasktrace_inspect::{Error, Result};

/// Most threads a [`MemTarget`] input declares.
pub const MAX_THREADS: usize = 16;

/// A stopped target whose memory is a few chunks of bytes.
pub struct MemTarget<'a> {
    threads: Vec<Thread>,
    entry: Option<u64>,
    /// (address, bytes), sorted by address.
    chunks: Vec<(u64, &'a [u8])>,
}

impl<'a> MemTarget<'a> {
    /// Decodes the input format above (never fails: missing parts are empty).
    pub fn from_bytes(data: &'a [u8]) -> MemTarget<'a> {
        let mut cur = Cursor { data, at: 0 };
        let n = cur
            .take(1)
            .map_or(0, |b| usize::from(b[0]).min(MAX_THREADS));
        let mut threads = Vec::new();
        for i in 0..n {
            let Some(fs_base) = cur.u64() else { break };
            threads.push(Thread {
                tid: 1000 + i as i32,
                fs_base,
            });
        }
        let entry = cur.u64().filter(|&e| e != 0);
        let mut chunks = Vec::new();
        while let Some(addr) = cur.u64() {
            let Some(len) = cur.take(4) else { break };
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let len = len.min(data.len() - cur.at);
            chunks.push((addr, cur.take(len).unwrap_or(&[])));
        }
        chunks.sort_by_key(|c| c.0);
        MemTarget {
            threads,
            entry,
            chunks,
        }
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Encodes a [`MemTarget`] input.
pub fn encode(fs_bases: &[u64], entry: Option<u64>, chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![fs_bases.len().min(MAX_THREADS) as u8];
    for fs in fs_bases.iter().take(MAX_THREADS) {
        out.extend_from_slice(&fs.to_le_bytes());
    }
    out.extend_from_slice(&entry.unwrap_or(0).to_le_bytes());
    for (addr, bytes) in chunks {
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

impl Target for MemTarget<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let end = addr
            .checked_add(buf.len() as u64)
            .ok_or(Error::Memory(addr, buf.len()))?;
        // Chunks may overlap: look back from the last one starting at or below `addr`.
        let upto = self.chunks.partition_point(|c| c.0 <= addr);
        for &(start, bytes) in self.chunks[..upto].iter().rev().take(8) {
            if end <= start.saturating_add(bytes.len() as u64) {
                let off = (addr - start) as usize;
                buf.copy_from_slice(&bytes[off..off + buf.len()]);
                return Ok(());
            }
        }
        Err(Error::Memory(addr, buf.len()))
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
}

/// Wraps a target and records every successful read `(address, bytes)`.
pub struct Recorder<'t> {
    inner: &'t dyn Target,
    /// The reads, in order.
    pub reads: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl<'t> Recorder<'t> {
    /// Records the reads of `inner`.
    pub fn new(inner: &'t dyn Target) -> Self {
        Recorder {
            inner,
            reads: RefCell::new(Vec::new()),
        }
    }

    /// The recorded reads merged into chunks (reads closer than `gap` bytes join; the bytes
    /// in between are zero).
    pub fn chunks(&self, gap: u64) -> Vec<(u64, Vec<u8>)> {
        let mut reads = self.reads.borrow().clone();
        reads.sort_by_key(|r| r.0);
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for (addr, bytes) in reads {
            if let Some((start, buf)) = out.last_mut() {
                let end = *start + buf.len() as u64;
                if addr <= end + gap {
                    let off = (addr - *start) as usize;
                    let need = off + bytes.len();
                    if buf.len() < need {
                        buf.resize(need, 0);
                    }
                    buf[off..need].copy_from_slice(&bytes);
                    continue;
                }
            }
            out.push((addr, bytes));
        }
        out
    }
}

impl Target for Recorder<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read(addr, buf)?;
        self.reads.borrow_mut().push((addr, buf.to_vec()));
        Ok(())
    }

    fn threads(&self) -> &[Thread] {
        self.inner.threads()
    }

    fn at_entry(&self) -> Option<u64> {
        self.inner.at_entry()
    }

    fn is_live(&self) -> bool {
        false
    }
}

/// A small x86-64 ELF core file: one `NT_PRSTATUS` per thread (its tid and `fs_base`), an
/// `NT_AUXV` with `AT_ENTRY`, and one `PT_LOAD` per chunk.
pub fn mini_core(threads: &[Thread], entry: Option<u64>, chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    fn note(out: &mut Vec<u8>, ty: u32, desc: &[u8]) {
        out.extend_from_slice(&5u32.to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(b"CORE\0\0\0\0");
        out.extend_from_slice(desc);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut notes = Vec::new();
    for t in threads {
        let mut prstatus = vec![0u8; 336];
        prstatus[32..36].copy_from_slice(&t.tid.to_le_bytes());
        prstatus[112 + 168..112 + 176].copy_from_slice(&t.fs_base.to_le_bytes());
        note(&mut notes, 1, &prstatus); // NT_PRSTATUS
    }
    let mut auxv = Vec::new();
    if let Some(e) = entry {
        auxv.extend_from_slice(&9u64.to_le_bytes());
        auxv.extend_from_slice(&e.to_le_bytes());
    }
    auxv.extend_from_slice(&[0u8; 16]);
    note(&mut notes, 6, &auxv); // NT_AUXV

    let phnum = 1 + chunks.len();
    let mut offset = 64 + 56 * phnum as u64;
    let mut out = Vec::new();
    // ELF header.
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&64u16.to_le_bytes());
    out.extend_from_slice(&56u16.to_le_bytes());
    out.extend_from_slice(&(phnum as u16).to_le_bytes());
    out.extend_from_slice(&64u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let phdr = |out: &mut Vec<u8>, ty: u32, off: u64, vaddr: u64, len: u64, align: u64| {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&6u32.to_le_bytes()); // PF_R | PF_W
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&vaddr.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
    };
    phdr(&mut out, 4, offset, 0, notes.len() as u64, 4); // PT_NOTE
    offset += notes.len() as u64;
    for (addr, bytes) in chunks {
        phdr(&mut out, 1, offset, *addr, bytes.len() as u64, 1); // PT_LOAD
        offset += bytes.len() as u64;
    }
    out.extend_from_slice(&notes);
    for (_, bytes) in chunks {
        out.extend_from_slice(bytes);
    }
    out
}

/// The bundled demo target (`tasktrace-demo-target`) whose debuginfo the fuzz targets read
/// memory with: `$TASKTRACE_FUZZ_EXE`, else the main workspace's debug build.
pub fn demo_exe() -> String {
    std::env::var("TASKTRACE_FUZZ_EXE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/debug/tasktrace-demo-target"
        )
        .to_string()
    })
}

/// The demo target's debuginfo, loaded once per process. Panics (a setup error, not a
/// finding) if it cannot be loaded.
pub fn demo_info() -> &'static DebugInfo {
    static INFO: OnceLock<DebugInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let exe = demo_exe();
        DebugInfo::load(&exe).unwrap_or_else(|e| {
            eprintln!(
                "the fuzz targets need the demo target's debuginfo: {e}\n\
                 build it (`cargo build -p tasktrace-cli --bin tasktrace-demo-target`) or set \
                 TASKTRACE_FUZZ_EXE"
            );
            std::process::exit(2)
        })
    })
}

/// Read options of the fuzz targets: the defaults (the caps under test are the real ones).
pub fn options() -> tasktrace_inspect::Options {
    tasktrace_inspect::Options::default()
}

/// Makes seed inputs from a real core of the demo target: reads it in full through a
/// [`Recorder`], then writes what was read as a `read_memory` input
/// (`OUT/read_memory/demo-seed`) and as a small core file (`OUT/core_file/demo-mini-core`),
/// after checking that both give the same tasks and trees as the real core.
pub fn mkseed(core: &str, exe: &str, out: &str) {
    use tasktrace_inspect::process::core_file::CoreFile;
    let info = DebugInfo::load(exe).expect("the executable's debuginfo");
    let file = CoreFile::open(core).expect("the core");
    let opts = options();
    let rec = Recorder::new(&file);
    let real = tasktrace_inspect::read(&rec, &info, &opts).expect("a read of the real core");
    let chunks = rec.chunks(64);
    let fs: Vec<u64> = file.threads().iter().map(|t| t.fs_base).collect();

    let mem = encode(&fs, file.at_entry(), &chunks);
    let from_mem = tasktrace_inspect::read(&MemTarget::from_bytes(&mem), &info, &opts)
        .expect("a read of the seed");
    let mini = mini_core(file.threads(), file.at_entry(), &chunks);
    let from_mini = tasktrace_inspect::read(
        &CoreFile::parse(mini.clone(), "mini.core").expect("the mini core parses"),
        &info,
        &opts,
    )
    .expect("a read of the mini core");
    for (what, d) in [("read_memory seed", &from_mem), ("mini core", &from_mini)] {
        assert_eq!(
            d.tasks.len(),
            real.tasks.len(),
            "the {what} gives the real core's tasks"
        );
        assert_eq!(
            d.to_string(),
            real.to_string(),
            "the {what} gives the same trees"
        );
    }
    for (dir, name, bytes) in [
        ("read_memory", "demo-seed", &mem),
        ("core_file", "demo-mini-core", &mini),
    ] {
        let dir = std::path::Path::new(out).join(dir);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("write the seed");
    }
    eprintln!(
        "mkseed: {} tasks, {} reads in {} chunks: read_memory seed {} bytes, mini core {} bytes",
        real.tasks.len(),
        rec.reads.borrow().len(),
        chunks.len(),
        mem.len(),
        mini.len()
    );
}
