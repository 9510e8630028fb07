//! A lazily indexed symboliser for the running executable.
//!
//! Why: backtrace-rs's first `resolve` builds addr2line's index of *every* compile unit (its
//! header, abbreviations, root DIE and range list) before it answers: 10-20 ms in a 20 MB
//! binary, which is the whole cost of a cold first trace. A trace needs a handful of units.
//! This module reads `.debug_aranges` (one small table: address range → unit), and parses a
//! unit — its line program and its subprograms' address ranges — only when an address in it
//! is asked for. Each unit is parsed once and kept.
//!
//! What it answers must be what backtrace-rs answers (the tests compare the two on real
//! stacks): for one address, its logical frames innermost first — the innermost inlined
//! function with the line-table location of the address, then each enclosing function with the
//! call site (`DW_AT_call_file/line/column`) of the inlined function below it; names from
//! `DW_AT_linkage_name` or `DW_AT_name`, following `DW_AT_abstract_origin` and
//! `DW_AT_specification` (also into other units), demangled like backtrace-rs. Anything it
//! cannot answer exactly — an address outside the executable (a shared library), not covered
//! by `.debug_aranges`, compressed sections, malformed DWARF — returns `None`, and the caller
//! falls back to backtrace-rs.
//!
//! Invariants: the executable is mapped read-only once and the mapping is never unmapped
//! (`'static`: the index lives as long as the process); all mutable state (the parsed units)
//! is behind one mutex, held for the duration of one lookup.

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSegment};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

type R = EndianSlice<'static, RunTimeEndian>;

/// One logical frame at an address, as backtrace-rs's `Symbol` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolFrame {
    /// Demangled name (`{:#}`), if the DWARF names the function.
    pub(crate) name: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
}

/// The executable's DWARF and what has been parsed of it so far.
struct Index {
    dwarf: gimli::Dwarf<R>,
    /// Runtime address minus file address.
    bias: usize,
    /// Runtime address range of the executable's loaded segments.
    text: std::ops::Range<usize>,
    /// `.debug_aranges`: (begin, end, unit offset), sorted by begin.
    aranges: Vec<(u64, u64, usize)>,
    /// Unit header offsets, sorted (to find the unit of a cross-unit reference).
    unit_offsets: OnceLock<Vec<usize>>,
    units: Mutex<HashMap<usize, Option<Box<ParsedUnit>>>>,
}

/// One unit, parsed on first use.
struct ParsedUnit {
    unit: gimli::Unit<R>,
    /// The line table, by sequence, sorted by start address.
    sequences: Vec<Sequence>,
    files: Vec<String>,
    /// Subprogram address ranges: (begin, end, DIE offset), sorted by begin.
    functions: Vec<(u64, u64, gimli::UnitOffset)>,
}

fn index() -> Option<&'static Index> {
    static INDEX: OnceLock<Option<Index>> = OnceLock::new();
    INDEX.get_or_init(Index::load).as_ref()
}

/// The logical frames at `addr` (a runtime address inside a call instruction), innermost
/// first; `None` when this module cannot answer exactly what backtrace-rs would.
pub(crate) fn resolve(addr: usize) -> Option<Vec<SymbolFrame>> {
    with_unit(addr, |index, _, parsed, probe| {
        index.frames(parsed, probe).ok()?
    })
}

/// Calls `f(index, unit offset, parsed unit, file address)` with the unit containing runtime
/// address `addr` (parsed on first use, under the units' lock).
fn with_unit<T>(
    addr: usize,
    f: impl FnOnce(&Index, usize, &ParsedUnit, u64) -> Option<T>,
) -> Option<T> {
    let index = index()?;
    if !index.text.contains(&addr) {
        return None;
    }
    let probe = (addr - index.bias) as u64;
    let unit_off = index.unit_of(probe)?;
    let mut units = index.units.lock().unwrap_or_else(|e| e.into_inner());
    let parsed = units
        .entry(unit_off)
        .or_insert_with(|| index.parse_unit(unit_off).map(Box::new))
        .as_deref()?;
    f(index, unit_off, parsed, probe)
}

/// Whether `addr` is in the executable's loaded segments (not a shared library's).
pub(crate) fn in_executable(addr: usize) -> bool {
    index().is_some_and(|i| i.text.contains(&addr))
}

/// The function (not inlined: the physical one) whose code contains `addr`, as an identity:
/// (unit, DIE). `None` outside the executable's DWARF (a shared library, a PLT stub).
pub(crate) fn function_at(addr: usize) -> Option<(usize, usize)> {
    with_unit(addr, |_, unit_off, parsed, probe| {
        let i = parsed.functions.partition_point(|f| f.0 <= probe);
        parsed.functions[..i]
            .iter()
            .rev()
            .find(|f| f.0 <= probe && probe < f.1)
            .map(|f| (unit_off, f.2 .0))
    })
}

impl Index {
    fn load() -> Option<Index> {
        if cfg!(miri) {
            return None;
        }
        let map = executable()?;
        let obj = object::File::parse(map).ok()?;
        let bias = load_bias(&obj)?;
        let (lo, hi) = obj
            .segments()
            .map(|s| (s.address(), s.address() + s.size()))
            .fold((u64::MAX, 0), |(l, h), (a, b)| (l.min(a), h.max(b)));
        let section = |id: gimli::SectionId| -> Result<R, ()> {
            match obj.section_by_name(id.name()) {
                // Compressed sections would need decompressing into memory: leave them (and
                // so the whole lookup) to backtrace-rs.
                Some(s)
                    if s.compressed_file_range().map_err(|_| ())?.format
                        != object::CompressionFormat::None =>
                {
                    Err(())
                }
                Some(s) => Ok(EndianSlice::new(
                    s.data().map_err(|_| ())?,
                    RunTimeEndian::Little,
                )),
                None => Ok(EndianSlice::new(&[], RunTimeEndian::Little)),
            }
        };
        let dwarf = gimli::Dwarf::load(section).ok()?;
        let mut aranges = Vec::new();
        let mut headers = dwarf.debug_aranges.headers();
        while let Some(h) = headers.next().ok()? {
            let unit = h.debug_info_offset().0;
            let mut entries = h.entries();
            while let Some(e) = entries.next().ok()? {
                let r = e.range();
                if r.begin < r.end {
                    aranges.push((r.begin, r.end, unit));
                }
            }
        }
        if aranges.is_empty() {
            return None;
        }
        aranges.sort_unstable();
        Some(Index {
            dwarf,
            bias,
            text: (lo as usize).wrapping_add(bias)..(hi as usize).wrapping_add(bias),
            aranges,
            unit_offsets: OnceLock::new(),
            units: Mutex::new(HashMap::new()),
        })
    }

    fn unit_of(&self, probe: u64) -> Option<usize> {
        let i = self.aranges.partition_point(|a| a.0 <= probe);
        let &(begin, end, unit) = self.aranges.get(i.checked_sub(1)?)?;
        (begin <= probe && probe < end).then_some(unit)
    }

    fn parse_unit(&self, offset: usize) -> Option<ParsedUnit> {
        let header = self
            .dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(offset))
            .ok()?;
        let unit = self.dwarf.unit(header).ok()?;
        let (sequences, files) = match &unit.line_program {
            Some(program) => parse_lines(&self.dwarf, &unit, program.clone()).ok()?,
            None => (Vec::new(), Vec::new()),
        };
        let mut functions = Vec::new();
        let mut entries = unit.entries();
        while let Some(entry) = entries.next_dfs().ok()? {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let mut ranges = self.dwarf.die_ranges(&unit, entry).ok()?;
            while let Some(r) = ranges.next().ok()? {
                if r.begin < r.end {
                    functions.push((r.begin, r.end, entry.offset()));
                }
            }
        }
        functions.sort_unstable_by_key(|f| (f.0, f.1));
        Some(ParsedUnit {
            unit,
            sequences,
            files,
            functions,
        })
    }

    /// The frames at `probe` in `pu`, innermost first. `Ok(None)`: not answerable here.
    fn frames(&self, pu: &ParsedUnit, probe: u64) -> gimli::Result<Option<Vec<SymbolFrame>>> {
        let location = pu.location(probe);
        // The subprogram containing the probe: the last one starting at or below it that also
        // ends above it (ranges of distinct functions do not overlap).
        let i = pu.functions.partition_point(|f| f.0 <= probe);
        let Some(&(_, _, func)) = pu.functions[..i]
            .iter()
            .rev()
            .find(|f| f.0 <= probe && probe < f.1)
        else {
            // No function: backtrace-rs reports the bare location, or falls back to the
            // symbol table; leave that to it.
            return Ok(None);
        };
        let unit = &pu.unit;
        let mut cursor = unit.entries_at_offset(func)?;
        let Some(root) = cursor.next_dfs()? else {
            return Ok(None);
        };
        let root_depth = root.depth();
        let func_name = self.name_of(unit, root, 0)?;
        // The chain of inlined subroutines containing the probe, outermost first.
        let mut chain: Vec<(isize, InlinedCall)> = Vec::new();
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if depth <= root_depth {
                break;
            }
            if entry.tag() != gimli::DW_TAG_inlined_subroutine {
                continue;
            }
            let mut contains = false;
            let mut ranges = self.dwarf.die_ranges(unit, entry)?;
            while let Some(r) = ranges.next()? {
                if r.begin <= probe && probe < r.end {
                    contains = true;
                    break;
                }
            }
            if !contains {
                continue;
            }
            while chain.last().is_some_and(|c| c.0 >= depth) {
                chain.pop();
            }
            let udata = |at| {
                entry
                    .attr_value(at)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0)
            };
            let call_file = match entry.attr_value(gimli::DW_AT_call_file) {
                Some(AttributeValue::FileIndex(f)) => Some(f),
                Some(v) => v.udata_value(),
                None => None,
            };
            chain.push((
                depth,
                InlinedCall {
                    name: self.name_of(unit, entry, 0)?,
                    file: call_file,
                    line: udata(gimli::DW_AT_call_line) as u32,
                    column: udata(gimli::DW_AT_call_column) as u32,
                },
            ));
        }
        let mut out = Vec::with_capacity(chain.len() + 1);
        let mut next = location;
        for (_, call) in chain.iter().rev() {
            let (file, line, column) = next.take().unwrap_or_default();
            out.push(SymbolFrame {
                name: call.name.clone(),
                file,
                line,
                column,
            });
            next = Some((
                call.file.and_then(|f| pu.files.get(f as usize).cloned()),
                (call.line != 0).then_some(call.line),
                (call.column != 0).then_some(call.column),
            ));
        }
        let (file, line, column) = next.unwrap_or_default();
        out.push(SymbolFrame {
            name: func_name,
            file,
            line,
            column,
        });
        Ok(Some(out))
    }

    /// The demangled name of a function DIE, following abstract origins and specifications.
    fn name_of(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        depth: u32,
    ) -> gimli::Result<Option<String>> {
        for at in [
            gimli::DW_AT_linkage_name,
            gimli::DW_AT_MIPS_linkage_name,
            gimli::DW_AT_name,
        ] {
            if let Some(v) = entry.attr_value(at) {
                let raw = self.dwarf.attr_string(unit, v)?;
                return Ok(Some(demangle(&raw.to_string_lossy())));
            }
        }
        if depth >= 16 {
            return Ok(None);
        }
        for at in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
            match entry.attr_value(at) {
                Some(AttributeValue::UnitRef(off)) => {
                    let e = unit.entry(off)?;
                    return self.name_of(unit, &e, depth + 1);
                }
                Some(AttributeValue::DebugInfoRef(off)) => {
                    let Some(start) = self.unit_containing(off.0) else {
                        return Ok(None);
                    };
                    let header = self
                        .dwarf
                        .debug_info
                        .header_from_offset(gimli::DebugInfoOffset(start))?;
                    let other = self.dwarf.unit(header)?;
                    let Some(local) = gimli::DebugInfoOffset(off.0).to_unit_offset(&other.header)
                    else {
                        return Ok(None);
                    };
                    let e = other.entry(local)?;
                    return self.name_of(&other, &e, depth + 1);
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// The offset of the unit whose bytes hold `.debug_info` offset `off`.
    fn unit_containing(&self, off: usize) -> Option<usize> {
        let offsets = self.unit_offsets.get_or_init(|| {
            let mut v = Vec::new();
            let mut units = self.dwarf.units();
            while let Ok(Some(h)) = units.next() {
                if let Some(o) = h.debug_info_offset() {
                    v.push(o.0);
                }
            }
            v
        });
        let i = offsets.partition_point(|&o| o <= off);
        offsets.get(i.checked_sub(1)?).copied()
    }
}

struct InlinedCall {
    name: Option<String>,
    file: Option<u64>,
    line: u32,
    column: u32,
}

/// One contiguous run of line rows, `[start, end)`.
struct Sequence {
    start: u64,
    end: u64,
    rows: Vec<Row>,
}

/// One line row: from `address` on, code is at `file:line:column` (line 0: none).
#[derive(Clone, Copy)]
struct Row {
    address: u64,
    file: u64,
    line: u32,
    column: u32,
}

/// The unit's line table and its file names.
fn parse_lines(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    program: gimli::IncompleteLineProgram<R>,
) -> gimli::Result<(Vec<Sequence>, Vec<String>)> {
    let mut sequences = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut state = program.rows();
    while let Some((_, row)) = state.next_row()? {
        if row.end_sequence() {
            if let Some(start) = rows.first().map(|r| r.address) {
                sequences.push(Sequence {
                    start,
                    end: row.address(),
                    rows: std::mem::take(&mut rows),
                });
            }
            continue;
        }
        let line = row.line().map_or(0, |l| l.get() as u32);
        let column = match row.column() {
            gimli::ColumnType::LeftEdge => 0,
            gimli::ColumnType::Column(c) => c.get() as u32,
        };
        let entry = Row {
            address: row.address(),
            file: row.file_index(),
            line,
            column,
        };
        // Rows at the same address: the last one wins.
        match rows.last_mut() {
            Some(last) if last.address == entry.address => *last = entry,
            _ => rows.push(entry),
        }
    }
    sequences.sort_unstable_by_key(|s| s.start);
    let header = state.header();
    let mut files = Vec::new();
    let mut i = 0;
    loop {
        match header.file(i) {
            Some(file) => files.push(file_path(dwarf, unit, file, header)?),
            // DWARF ≤ 4 has no file 0.
            None if i == 0 => files.push(String::new()),
            None => break,
        }
        i += 1;
    }
    Ok((sequences, files))
}

/// A line-table file as a path: the unit's directory, the file's directory, the file name
/// (an absolute component replaces what came before).
fn file_path(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    file: &gimli::FileEntry<R>,
    header: &gimli::LineProgramHeader<R>,
) -> gimli::Result<String> {
    let mut path = unit
        .comp_dir
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file.directory_index() != 0 {
        if let Some(dir) = file.directory(header) {
            push_path(&mut path, &dwarf.attr_string(unit, dir)?.to_string_lossy());
        }
    }
    push_path(
        &mut path,
        &dwarf.attr_string(unit, file.path_name())?.to_string_lossy(),
    );
    Ok(path)
}

fn push_path(path: &mut String, part: &str) {
    if part.starts_with('/') {
        *path = part.to_string();
    } else {
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(part);
    }
}

fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_string(),
    }
}

impl ParsedUnit {
    /// The line-table location of `probe`: (file, line, column) as backtrace-rs reports them
    /// (no line for line 0; the column only with a line, 0 meaning the left edge).
    fn location(&self, probe: u64) -> Option<(Option<String>, Option<u32>, Option<u32>)> {
        let s = self.sequences.partition_point(|s| s.start <= probe);
        let seq = self.sequences.get(s.checked_sub(1)?)?;
        if probe < seq.start || probe >= seq.end {
            return None;
        }
        let r = seq.rows.partition_point(|r| r.address <= probe);
        let row = seq.rows.get(r.checked_sub(1)?)?;
        let line = (row.line != 0).then_some(row.line);
        Some((
            self.files.get(row.file as usize).cloned(),
            line,
            line.map(|_| row.column),
        ))
    }
}

/// The running executable's file, mapped once for the life of the process.
pub(crate) fn executable() -> Option<&'static [u8]> {
    static MAP: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *MAP.get_or_init(|| {
        let file = std::fs::File::open("/proc/self/exe").ok()?;
        // SAFETY: the mapping is read-only and private; an executable that is running cannot
        // be written to (ETXTBSY), and a replaced file keeps its old inode mapped. The mapping
        // is leaked: it lives, like everything that reads it, until the process exits.
        let map: &'static [u8] = unsafe { Box::leak(Box::new(memmap2::Mmap::map(&file).ok()?)) };
        Some(map)
    })
}

/// Elsewhere than Linux the executable is left to backtrace-rs.
#[cfg(not(target_os = "linux"))]
pub(crate) fn load_bias(_: &object::File<'_>) -> Option<usize> {
    None
}

/// Runtime address minus file address of the running executable, from where the kernel put
/// its program headers (`AT_PHDR`).
#[cfg(target_os = "linux")]
pub(crate) fn load_bias(obj: &object::File<'_>) -> Option<usize> {
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let at_phdr = unsafe { libc::getauxval(libc::AT_PHDR) } as usize;
    if at_phdr == 0 {
        return None;
    }
    let object::File::Elf64(elf) = obj else {
        return None;
    };
    use object::read::elf::{FileHeader, ProgramHeader};
    let endian = elf.endian();
    let header = elf.elf_header();
    let phoff = header.e_phoff(endian);
    // The program headers' file address: PT_PHDR's, or inside the segment mapping offset 0.
    let phdr_vaddr = elf
        .elf_program_headers()
        .iter()
        .find(|p| p.p_type(endian) == object::elf::PT_PHDR)
        .map(|p| p.p_vaddr(endian))
        .or_else(|| {
            elf.elf_program_headers()
                .iter()
                .find(|p| {
                    p.p_type(endian) == object::elf::PT_LOAD
                        && p.p_offset(endian) <= phoff
                        && phoff < p.p_offset(endian) + p.p_filesz(endian)
                })
                .map(|p| p.p_vaddr(endian) + (phoff - p.p_offset(endian)))
        })?;
    Some(at_phdr.wrapping_sub(phdr_vaddr as usize))
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// What backtrace-rs answers for `addr`, in the same shape.
    fn backtrace_rs(addr: usize) -> Vec<SymbolFrame> {
        let mut out = Vec::new();
        backtrace::resolve(addr as *mut std::ffi::c_void, |s| {
            out.push(SymbolFrame {
                name: s.name().map(|n| format!("{n:#}")),
                file: s.filename().map(|f| f.display().to_string()),
                line: s.lineno(),
                column: s.colno(),
            })
        });
        out
    }

    #[inline(never)]
    fn stack_ips() -> Vec<usize> {
        let mut ips = Vec::new();
        backtrace::trace(|f| {
            ips.push(f.ip() as usize);
            true
        });
        std::hint::black_box(ips)
    }

    async fn level3() -> Vec<usize> {
        tokio::task::yield_now().await;
        stack_ips()
    }
    async fn level2() -> Vec<usize> {
        level3().await
    }
    async fn level1() -> Vec<usize> {
        tokio::join!(level2(), async { 1 }).0
    }

    #[test]
    fn answers_what_backtrace_rs_answers_on_a_real_stack() {
        // A real async stack: tokio's scheduler, a task, a join, three inlined async fns.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ips = rt.block_on(async { tokio::spawn(level1()).await.unwrap() });
        let mut answered = 0;
        for ip in ips {
            let addr = ip.wrapping_sub(1);
            if let Some(ours) = resolve(addr) {
                answered += 1;
                assert_eq!(ours, backtrace_rs(addr), "at {addr:#x}");
            }
        }
        eprintln!("{answered} addresses answered, all as backtrace-rs does");
        assert!(answered >= 8, "the frames of this executable: {answered}");
    }

    #[test]
    fn addresses_outside_the_executable_are_left_to_backtrace_rs() {
        assert_eq!(resolve(8), None);
        let libc_fn = libc::getpid as *const () as usize;
        if !index().is_some_and(|i| i.text.contains(&libc_fn)) {
            assert_eq!(resolve(libc_fn), None);
        }
    }
}
