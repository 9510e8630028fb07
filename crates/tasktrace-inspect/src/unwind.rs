//! Native stacks of stopped threads (x86-64), walked by `framehop` (the caching unwinder of
//! the samply profiler, which the in-process capture uses too) over the mapped ELF files'
//! `.eh_frame`/`.eh_frame_hdr`, with the unwind rule of each address cached across the
//! threads and samples of one target. Used by the threads view for a worker inside a poll:
//! what the task's code is doing right now.
//!
//! Each frame is symbolised from its module's DWARF with `addr2line` (the module's own, or a
//! separate debug file: the executable's as the type reader found it, [`ExeDebugFile`], a
//! library's found by build id or `.gnu_debuglink`, [`crate::debugfile`]; for a skeleton unit
//! of a `split-debuginfo` build, its split unit from the module's `.dwp` or the unit's `.dwo`,
//! [`crate::split_dwarf`], loaded when a frame first needs it and kept by addr2line): the
//! functions inlined at the pc, innermost first, then the physical function, each with its
//! file:line; a caller is looked up at its return address - 1 (the call). A module without
//! DWARF (libc) is named from its symbol table. The DWARF is indexed when the unwinder is made
//! (before a live target is stopped); line programs and inlined subroutines are read lazily.
//!
//! Only `rip`, `rsp` and `rbp` are known of the stopped thread (all framehop needs on
//! x86-64); a frame it cannot unwind ends the walk. Each step is checked (the stack grows
//! down, return addresses lie in a mapped file), and the walk is bounded.

use crate::bytes::FileBytes;
use crate::debugfile::DebugFile;
use crate::process::files::TargetFiles;
use crate::process::{MappedFile, Registers, Target};
use crate::split_dwarf::{self, LoadError, Places, Skeleton};
use addr2line::{LookupContinuation, LookupResult};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Unwinder as _};
use gimli::Reader as _;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use std::ops::{Deref, Range};
use std::sync::{Arc, Mutex, OnceLock};
use tasktrace_model::{Location, NativeFrame};

/// The DWARF reader of a module: its sections, owned.
type Reader = gimli::EndianReader<gimli::RunTimeEndian, SectionBytes>;

/// Deepest stack walked.
const MAX_FRAMES: usize = 64;

/// Bytes of a section of a module's file (mapped), shared with the module: framehop's
/// section data and the DWARF symboliser's reader. The range is checked against the file
/// when the value is made, so `deref` cannot go out of bounds.
#[derive(Clone, Debug)]
struct SectionBytes(Arc<FileBytes>, Range<usize>);

impl SectionBytes {
    /// `range` of `file`, or `None` when the file is shorter.
    fn new(file: Arc<FileBytes>, range: Range<usize>) -> Option<SectionBytes> {
        file.get(range.clone())?;
        Some(SectionBytes(file, range))
    }
}

impl Default for SectionBytes {
    fn default() -> Self {
        SectionBytes(Arc::new(FileBytes::Owned(Vec::new())), 0..0)
    }
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.get(self.1.clone()).unwrap_or(&[])
    }
}

// SAFETY: the bytes are owned by the `Arc`'d `FileBytes` (a mapping or a heap buffer, never
// moved or changed while it lives), so a `SectionBytes` derefs to the same address for as long
// as it or any clone of it (sharing the `Arc`) exists.
unsafe impl gimli::StableDeref for SectionBytes {}
// SAFETY: a clone shares the same `Arc` and range: it derefs to the same bytes.
unsafe impl gimli::CloneStableDeref for SectionBytes {}

/// One mapped ELF file with its symbols (its unwind tables are in the [`Unwinder`]'s walker).
struct Module {
    start: u64,
    end: u64,
    bias: u64,
    data: Arc<FileBytes>,
    /// (address, size, demangled name), sorted by address.
    symbols: Vec<(u64, u64, String)>,
    /// Executable segments: (vaddr, file offset, file size), to read code from the file (a
    /// core file does not keep file-backed code pages).
    code: Vec<(u64, u64, u64)>,
    /// Its file path in the target (the DWARF is loaded from it, or its debug file, on first
    /// use).
    path: String,
    /// How the target's files are opened (its library's debug files are looked up there).
    files: TargetFiles,
    /// The executable's separate debug file (its bytes and path), already read by the type
    /// reader, when this module is the executable ([`ExeDebugFile::fits`]).
    known_debug: Option<(Arc<FileBytes>, String)>,
    /// Its build id (split DWARF packages are looked up by it too).
    build_id: Option<Vec<u8>>,
    /// Its DWARF symboliser, made once; `None` inside when it has no DWARF.
    dwarf: OnceLock<Option<Symbols>>,
    /// Its split DWARF package, looked for when a split unit is first asked for; `None`
    /// inside when there is none (its split units are then `.dwo` files).
    package: OnceLock<Option<gimli::DwarfPackage<Reader>>>,
}

/// A module's DWARF symboliser, and the separate debug file its DWARF came from.
struct Symbols {
    context: addr2line::Context<Reader>,
    /// The debug file's path, when the DWARF is in one (its `.dwp` may be beside it).
    debug_path: Option<String>,
}

/// A reader of section `data` of `file` (from [`crate::sections`]): the file's own bytes
/// where the section is stored plain (mapped, not copied), a decompressed copy otherwise.
fn section_reader(
    file: &Arc<FileBytes>,
    data: Result<std::borrow::Cow<'_, [u8]>, String>,
) -> Result<Reader, LoadError> {
    let bytes = match data? {
        std::borrow::Cow::Borrowed(b) => {
            let start = (b.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize);
            SectionBytes::new(file.clone(), start..start.wrapping_add(b.len()))
        }
        std::borrow::Cow::Owned(v) => {
            let len = v.len();
            SectionBytes::new(Arc::new(FileBytes::Owned(v)), 0..len)
        }
    };
    Ok(Reader::new(
        bytes.unwrap_or_default(),
        gimli::RunTimeEndian::Little,
    ))
}

impl Module {
    /// The module mapped at `maps`, and its unwind tables for the walker (none without an
    /// `.eh_frame`).
    fn load(
        path: &str,
        maps: &[&MappedFile],
        files: &TargetFiles,
        exe_debug: Option<ExeDebugFile<'_>>,
    ) -> Option<(Module, Option<framehop::Module<SectionBytes>>)> {
        let first = maps.iter().min_by_key(|m| m.offset)?;
        let data = Arc::new(files.read_mapped(first)?);
        let obj = object::File::parse(&**data).ok()?;
        let section = |name: &str| {
            let s = obj.section_by_name(name)?;
            let (off, len) = s.file_range()?;
            let bytes = SectionBytes::new(data.clone(), off as usize..(off + len) as usize)?;
            Some((s.address()..s.address() + len, bytes))
        };
        let eh_frame = section(".eh_frame");
        let eh_frame_hdr = section(".eh_frame_hdr");
        let text = section(".text");
        // bias: a mapping at `start` of file offset `offset` holds the segment bytes at
        // vaddr `seg.vaddr + (offset - seg.offset)`.
        let seg = obj.segments().find(|s| {
            let (off, len) = s.file_range();
            first.offset >= off && first.offset < off + len.max(1)
        })?;
        let (seg_off, _) = seg.file_range();
        let vaddr = seg.address() + (first.offset - seg_off);
        let bias = first.start.wrapping_sub(vaddr);
        let mut symbols: Vec<(u64, u64, String)> = obj
            .symbols()
            .chain(obj.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), demangle(s.name().ok()?))))
            .collect();
        symbols.sort_by_key(|s| s.0);
        symbols.dedup_by_key(|s| s.0);
        let code = obj
            .segments()
            .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags.0 & object::elf::PF_X.0 != 0))
            .map(|s| (s.address(), s.file_range().0, s.file_range().1))
            .collect();
        let known_debug = exe_debug
            .filter(|g| g.fits(path, &obj))
            .map(|g| (g.file.data.clone(), g.file.path.clone()));
        let build_id = crate::debugfile::build_id(&obj);
        let (start, end) = (
            maps.iter().map(|m| m.start).min()?,
            maps.iter().map(|m| m.end).max()?,
        );
        let unwind = eh_frame.map(|(eh_frame_svma, eh_frame)| {
            let (text_svma, text) = text.unzip();
            let (hdr_svma, hdr) = eh_frame_hdr.unzip();
            let info = ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma,
                text,
                eh_frame_svma: Some(eh_frame_svma),
                eh_frame: Some(eh_frame),
                eh_frame_hdr_svma: hdr_svma,
                eh_frame_hdr: hdr,
                ..Default::default()
            };
            framehop::Module::new(path.to_string(), start..end, bias, info)
        });
        let module = Module {
            start,
            end,
            bias,
            data,
            symbols,
            code,
            path: path.to_string(),
            files: files.clone(),
            known_debug,
            build_id,
            dwarf: OnceLock::new(),
            package: OnceLock::new(),
        };
        Some((module, unwind))
    }

    /// The DWARF of this module (or of its separate debug file), indexed for address lookups.
    fn dwarf(&self) -> Option<&Symbols> {
        self.dwarf
            .get_or_init(|| {
                let found = match &self.known_debug {
                    Some(_) => None,
                    None => {
                        crate::debugfile::find(&self.data, &self.path, None, &self.files).ok()?
                    }
                };
                let (file, debug_path) = match (&self.known_debug, found) {
                    (Some((given, path)), _) => (given.clone(), Some(path.clone())),
                    (None, Some(f)) => (f.data, Some(f.path)),
                    (None, None) => (self.data.clone(), None),
                };
                let obj = object::File::parse(&**file).ok()?;
                obj.section_by_name(".debug_info")?;
                let dwarf = gimli::Dwarf::load(|id| {
                    section_reader(&file, crate::sections::dwarf_section(&obj, id))
                })
                .ok()?;
                let context = addr2line::Context::from_dwarf(dwarf).ok()?;
                Some(Symbols {
                    context,
                    debug_path,
                })
            })
            .as_ref()
    }

    /// The split unit addr2line asks for (of a skeleton unit: the module was built with
    /// `split-debuginfo`), from the module's package or the unit's `.dwo` file, found where
    /// [`crate::split_dwarf`] looks; `None` when neither is there: the frame then has what the
    /// module itself gives, its line and its symbol's name.
    fn split_unit(
        &self,
        load: &addr2line::SplitDwarfLoad<Reader>,
        debug_path: Option<&str>,
    ) -> Option<Arc<gimli::Dwarf<Reader>>> {
        let read_from = self
            .files
            .mapped_candidates(&self.path)
            .into_iter()
            .next()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| *p != self.path && !p.starts_with("/proc/"));
        let places = Places {
            exe: &self.path,
            read_from: read_from.as_deref(),
            debug_file: debug_path,
            build_id: self.build_id.as_deref(),
            files: &self.files,
        };
        let dwo_id = load.dwo_id.0;
        let package = self.package.get_or_init(|| {
            let fits = |d: &[u8]| split_dwarf::package_fits(d, dwo_id);
            let found =
                split_dwarf::first_fit(&places.package_candidates(), fits, &mut Vec::new())?;
            let file = Arc::new(found.data);
            let obj = object::File::parse(&**file).ok()?;
            let section = |id| section_reader(&file, crate::sections::dwo_section(&obj, id));
            gimli::DwarfPackage::load(
                section,
                Reader::new(SectionBytes::default(), gimli::RunTimeEndian::Little),
            )
            .ok()
        });
        if let Some(Ok(Some(unit))) = package
            .as_ref()
            .map(|p| p.find_cu(load.dwo_id, &load.parent))
        {
            return Some(Arc::new(unit));
        }
        let text = |r: &Option<Reader>| {
            let bytes = r.as_ref()?.to_slice().ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        let skeleton = Skeleton {
            dwo_id,
            dwo_name: text(&load.path),
            comp_dir: text(&load.comp_dir),
        };
        let fits = |d: &[u8]| split_dwarf::dwo_fits(d, dwo_id);
        let found =
            split_dwarf::first_fit(&places.dwo_candidates(&skeleton), fits, &mut Vec::new())?;
        let file = Arc::new(found.data);
        let obj = object::File::parse(&**file).ok()?;
        let mut dwarf =
            gimli::Dwarf::load(|id| section_reader(&file, crate::sections::dwo_section(&obj, id)))
                .ok()?;
        dwarf.make_dwo(&load.parent);
        Some(Arc::new(dwarf))
    }

    /// The functions at `pc` (a return address when not `first`), innermost first: inlined
    /// ones from the DWARF, then the physical one (its symbol name when DWARF has none).
    fn frames(&self, pc: u64, first: bool) -> Vec<NativeFrame> {
        // A frame no DWARF describes: named from the symbol table, and by its module.
        let physical = |function: Option<String>| NativeFrame {
            pc,
            function,
            location: None,
            inlined: false,
            tail_call: false,
            module: std::path::Path::new(&self.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
        };
        let symbol = self.symbol(pc).map(str::to_string);
        let probe = pc.wrapping_sub(self.bias).wrapping_sub(u64::from(!first));
        let Some(symbols) = self.dwarf() else {
            return vec![physical(symbol)];
        };
        // A skeleton unit's functions are in its split unit: loaded when first asked for,
        // and kept by addr2line.
        let mut lookup = symbols.context.find_frames(probe);
        let found = loop {
            match lookup {
                LookupResult::Output(found) => break found,
                LookupResult::Load { load, continuation } => {
                    let unit = self.split_unit(&load, symbols.debug_path.as_deref());
                    lookup = continuation.resume(unit);
                }
            }
        };
        let mut out = Vec::new();
        if let Ok(mut iter) = found {
            while let Ok(Some(f)) = iter.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok())
                    .map(|n| demangle(n.as_ref()));
                let location = f.location.as_ref().and_then(|l| {
                    Some(Location::new(l.file?, l.line?, l.column.filter(|&c| c > 0)))
                });
                out.push(NativeFrame {
                    pc,
                    function,
                    location,
                    inlined: true,
                    tail_call: false,
                    module: None,
                });
                if out.len() > MAX_FRAMES {
                    break;
                }
            }
        }
        match out.last_mut() {
            Some(last) => {
                last.inlined = false;
                if last.function.is_none() {
                    last.function = symbol;
                }
            }
            None => out.push(physical(symbol)),
        }
        out
    }

    fn symbol(&self, pc: u64) -> Option<&str> {
        self.symbol_at(pc).map(|(_, name)| name)
    }

    /// The symbol containing `pc`: its (runtime) start and its name.
    fn symbol_at(&self, pc: u64) -> Option<(u64, &str)> {
        let lpc = pc.wrapping_sub(self.bias);
        let i = self
            .symbols
            .partition_point(|s| s.0 <= lpc)
            .checked_sub(1)?;
        let (addr, size, name) = &self.symbols[i];
        (size == &0 || lpc < addr + size).then_some((addr.wrapping_add(self.bias), name.as_str()))
    }

    /// Five bytes of code at runtime address `pc`, from the module's file.
    fn code_at(&self, pc: u64) -> Option<[u8; 5]> {
        let lpc = pc.wrapping_sub(self.bias);
        let &(vaddr, off, _) = self
            .code
            .iter()
            .find(|(v, _, l)| lpc >= *v && lpc + 5 <= v + l)?;
        let at = usize::try_from(off + (lpc - vaddr)).ok()?;
        self.data.get(at..at + 5)?.try_into().ok()
    }

    /// The function that the frame returning to `caller_pc` called, when it is not the
    /// function of the frame below (`callee_pc`, a return address unless `callee_first`): it
    /// tail-called (jumped to) that one and its own frame is gone. From the direct `call rel32`
    /// before `caller_pc`, in this module; the called address must start a symbol (a PLT stub
    /// does not) other than the callee's.
    fn tail_caller(
        &self,
        caller_pc: u64,
        callee_pc: u64,
        callee_first: bool,
    ) -> Option<NativeFrame> {
        let call = self.code_at(caller_pc.checked_sub(5)?)?;
        if call[0] != 0xe8 {
            return None;
        }
        let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
        let target = caller_pc.wrapping_add_signed(i64::from(rel));
        let (start, name) = self.symbol_at(target)?;
        let (callee_start, _) = self.symbol_at(callee_pc.wrapping_sub(u64::from(!callee_first)))?;
        (start == target && start != callee_start).then(|| NativeFrame {
            pc: target,
            function: Some(name.to_string()),
            location: None,
            inlined: false,
            tail_call: true,
            module: None,
        })
    }
}

/// The executable's separate debug file, as the type reader found it (`--debuginfo`, build id
/// or `.gnu_debuglink`): the unwinder symbolises the executable with these bytes instead of
/// finding, reading and checking the file a second time.
#[derive(Clone, Copy)]
pub struct ExeDebugFile<'a> {
    /// The executable's path as the target maps it.
    pub exe_path: &'a str,
    /// Its debug file.
    pub file: &'a DebugFile,
}

impl ExeDebugFile<'_> {
    /// Whether the module at `path` (parsed: `obj`) is the executable this file describes:
    /// the same build id, or, when neither has one, the executable's path.
    fn fits(&self, path: &str, obj: &object::File<'_>) -> bool {
        match (&self.file.build_id, crate::debugfile::build_id(obj)) {
            (Some(want), Some(got)) => *want == got,
            (None, None) => path == self.exe_path,
            _ => false,
        }
    }
}

/// The unwinder of one target: its mapped ELF files, and framehop's walker over their unwind
/// tables with its rule cache (kept across the threads and samples of the target).
pub struct Unwinder {
    modules: Vec<Module>,
    walker: UnwinderX86_64<SectionBytes>,
    cache: Mutex<CacheX86_64>,
}

impl Unwinder {
    /// Loads the unwind tables and symbols of every file mapped into `t`; `exe_debug` is the
    /// executable's separate debug file when its debuginfo came from one.
    pub fn new(t: &dyn Target, exe_debug: Option<ExeDebugFile<'_>>) -> Self {
        let files = t
            .proc_pid()
            .map_or_else(TargetFiles::by_path, TargetFiles::of_process);
        Self::from_maps(&t.mapped_files(), &files, exe_debug)
    }

    /// Loads the unwind tables and symbols of these mapped files (e.g. read from
    /// `/proc/PID/maps` before the process is stopped, so it is not stopped for this).
    pub fn from_maps(
        maps: &[MappedFile],
        files: &TargetFiles,
        exe_debug: Option<ExeDebugFile<'_>>,
    ) -> Self {
        let mut paths: Vec<&str> = maps.iter().map(|m| m.path.as_str()).collect();
        paths.sort();
        paths.dedup();
        let mut walker = UnwinderX86_64::new();
        let modules = paths
            .into_iter()
            .filter_map(|p| {
                let of: Vec<&MappedFile> = maps.iter().filter(|m| m.path == p).collect();
                let (m, unwind) = Module::load(p, &of, files, exe_debug)?;
                if let Some(unwind) = unwind {
                    walker.add_module(unwind);
                }
                // Index the DWARF now, not while the target is stopped.
                m.dwarf();
                Some(m)
            })
            .collect();
        Unwinder {
            modules,
            walker,
            cache: Mutex::new(CacheX86_64::new()),
        }
    }

    /// True when nothing can be unwound (no mapped files known: a core file).
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    fn module(&self, pc: u64) -> Option<&Module> {
        self.modules.iter().find(|m| pc >= m.start && pc < m.end)
    }

    /// The native stack of a thread stopped at `regs`, innermost first: per physical frame,
    /// its inlined functions and then itself (see the module doc).
    pub fn native_stack(&self, t: &dyn Target, regs: Registers) -> Vec<NativeFrame> {
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let mut b = [0u8; 8];
            t.read(addr, &mut b).map_err(|_| ())?;
            Ok(u64::from_le_bytes(b))
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut unwind_regs = UnwindRegsX86_64::new(regs.rip, regs.rsp, regs.rbp);
        let mut address = FrameAddress::from_instruction_pointer(regs.rip);
        let (mut pc, mut sp) = (regs.rip, regs.rsp);
        for i in 0..MAX_FRAMES {
            let first = i == 0;
            let Some(m) = self.module(pc) else { break };
            out.extend(m.frames(pc, first));
            let next =
                self.walker
                    .unwind_frame(address, &mut unwind_regs, &mut cache, &mut read_stack);
            let Ok(Some(ra)) = next else { break };
            // The stack grows down: a caller's frame is above.
            if ra == 0 || unwind_regs.sp() <= sp {
                break;
            }
            if self.module(ra).is_some_and(|n| std::ptr::eq(n, m)) {
                out.extend(m.tail_caller(ra, pc, first));
            }
            let Some(caller) = FrameAddress::from_return_address(ra) else {
                break;
            };
            (address, pc, sp) = (caller, ra, unwind_regs.sp());
        }
        out
    }
}

/// Demangles a Rust symbol (legacy or v0) with `rustc-demangle`, without the hash suffix;
/// anything else (C symbols) is left as it is.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_rust_symbols() {
        assert_eq!(
            demangle("_ZN3std6thread5sleep17h0123456789abcdefE"),
            "std::thread::sleep"
        );
        assert_eq!(
            demangle("_ZN66_$LT$tokio..task..Foo$LT$T$GT$$u20$as$u20$core..future..Future$GT$4poll17h0123456789abcdefE"),
            "<tokio::task::Foo<T> as core::future::Future>::poll"
        );
        assert_eq!(demangle("clock_nanosleep"), "clock_nanosleep");
        assert_eq!(
            demangle("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep"),
            "std::thread::functions::sleep"
        );
        assert_eq!(
            demangle("_RNCNvCs1234_4test4main0B3_"),
            "test::main::{closure#0}"
        );
        assert_eq!(demangle("_RINvCs1_1a1fyE"), "a::f::<u64>");
        assert_eq!(demangle("_ZN3foo"), "_ZN3foo");
    }

    #[test]
    fn parses_proc_maps() {
        let maps = "55d0c0a00000-55d0c0a20000 r--p 00000000 fd:01 123 /usr/bin/x y\n\
                    7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";
        let m = crate::process::parse_maps(maps);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, "/usr/bin/x y");
        assert_eq!(
            (m[0].start, m[0].end, m[0].offset),
            (0x55d0c0a00000, 0x55d0c0a20000, 0)
        );
    }
}
