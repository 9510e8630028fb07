//! ELF + DWARF of the executable: a compact index built in one pass, DIEs read on demand.
//!
//! Rust executables carry no `.debug_names`, so one pass over `.debug_info` (`debuginfo/scan.rs`) finds
//! what cannot be found later without reading everything again: types by qualified name
//! (namespaces joined with `::`, kept as a 64-bit hash, the DIE offset and a scope id);
//! tokio's task `poll` and `block_on` subprograms with their template parameters;
//! `<T as Future>::{vtable}` statics (a `dyn Future` vtable → the concrete type); the
//! `CONTEXT` thread-local's TLS offset; and the `__awaitee` locals of async fn bodies (their
//! lines are the user's await line when a macro owns the suspend point).
//!
//! Everything else — a type's members, variants, size, declaration line — is parsed from the
//! memory-mapped sections when a read asks for the DIE ([`DebugInfo::die`]) and kept for the
//! next asks (only the DIEs reads meet: thousands, not the executable's millions).
//!
//! A program built with `split-debuginfo` has only skeleton units in its `.debug_info`: their
//! split units, in a `.dwp` package or in `.dwo` files ([`crate::split_dwarf`] says what rustc
//! emits and where they are looked for), are found after the pass over the executable's own
//! units and indexed by the same code (`debuginfo/split.rs`), with the skeleton's line program
//! for their files and the executable's `.debug_addr` for their addresses. A split unit that
//! cannot be found is an error naming where it was looked for, not a partial index.
//!
//! Invariants: DIEs are keyed by their *DIE offset*, in one offset space: the executable's own
//! units at their `.debug_info` offsets (so cross-unit references resolve directly), each split
//! unit after them at an offset of its own (`scan::Place`); a DIE once parsed is never changed or
//! dropped while the `DebugInfo` lives (the references [`DebugInfo::die`] hands out borrow
//! it); the section bytes are the mapped files' (executable, debug file, split files) or owned
//! copies of decompressed sections, never both; every byte is untrusted and every parse error
//! is a `None`, never a panic. Lookups take `&self` and may run on several
//! threads at once (the in-process snapshot keeps one `DebugInfo` for the program's life).

mod cache;
mod dies;
mod program;
mod scan;
mod split;
mod variants;

use crate::bytes::FileBytes;
use crate::debugfile::DebugFile;
use crate::error::{Error, Result};
use crate::process::files::TargetFiles;
use crate::sections::Stored;
use crate::split_dwarf::{Places, Skeleton};
use gimli::{AttributeValue, RunTimeEndian, Section};
use object::{Object, ObjectSegment, ObjectSymbol};
use scan::{Index, Place, UnitAt, R};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use program::{what_program, Program};
pub use scan::KEPT_SUBPROGRAMS;
pub use variants::{Variant, VariantTable};

/// What kind of DIE an [`Die`] is (only the kinds the reader uses are kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A struct (Rust structs, enums with a variant part, tuples, closures, async envs).
    Struct,
    /// A union.
    Union,
    /// A C-like enum.
    Enum,
    /// A primitive.
    Base,
    /// A pointer or reference.
    Pointer,
    /// A struct member (field, or a variant's payload).
    Member,
    /// The variant part of an enum-like struct.
    VariantPart,
    /// One variant of a variant part.
    Variant,
    /// A generic type parameter.
    TemplateType,
    /// A typedef.
    Typedef,
}

/// One kept DIE.
#[derive(Clone, Debug)]
pub struct Die {
    /// Its kind.
    pub kind: Kind,
    /// Qualified name for types, plain name for members.
    pub name: String,
    /// `DW_AT_byte_size`.
    pub size: u64,
    /// `DW_AT_data_member_location` of a member.
    pub offset: u64,
    /// `DW_AT_type`, as a DIE offset.
    pub ty: Option<u64>,
    /// `DW_AT_discr` of a variant part (DIE offset of the tag member).
    pub discr: Option<u64>,
    /// `DW_AT_discr_value` of a variant.
    pub discr_value: Option<u64>,
    /// `DW_AT_decl_file` and `DW_AT_decl_line`.
    pub decl: Option<(String, u32)>,
    /// Kept children (members, variants, template parameters), as DIE offsets.
    pub children: Vec<u64>,
    /// The member children (fields) with a type: (name, offset, type), read with the DIE so
    /// that a field lookup is one DIE lookup, not one per field.
    pub members: Vec<(String, u64, u64)>,
    /// `DW_AT_containing_type` (of a `{vtable_type}`: the concrete type).
    pub containing: Option<u64>,
}

/// A subprogram of interest.
#[derive(Clone, Debug)]
pub struct Subprogram {
    /// Qualified name.
    pub name: String,
    /// Its template type parameters: name → type offset.
    pub template_types: Vec<(String, u64)>,
}

/// An `__awaitee` local of an async body: its type, the awaitee's offset in the state machine
/// (from its location expression, when it has one: optimised builds have none) and its
/// declared location.
#[derive(Clone, Debug)]
pub struct AwaiteeVar {
    /// Offset added to the state machine's address.
    pub offset: Option<u64>,
    /// Its type (DIE offset).
    pub ty: Option<u64>,
    /// Source file.
    pub file: Arc<str>,
    /// Source line.
    pub line: u32,
}

/// The index of an executable's debuginfo, and the DIEs read from it so far.
pub struct DebugInfo {
    exe: Arc<FileBytes>,
    debug: Option<Arc<FileBytes>>,
    /// The DWARF sections, in the debug file when there is one, else in the executable.
    sections: gimli::DwarfSections<Stored>,
    /// The split units of its skeleton units, when its DWARF is split.
    split: split::SplitUnits,
    index: Index,
    dies: cache::Kept<Die>,
    /// Enum variant tables by type (`None`: not an enum).
    variant_tables: cache::Kept<Option<VariantTable>>,
    /// Parsed abbreviation tables of the units DIEs were read from lately (bounded).
    abbreviations: Mutex<HashMap<usize, Arc<gimli::Abbreviations>>>,
    /// Offset of tokio's `CONTEXT` value in the executable's TLS block, and its type.
    /// (Several variables qualify: the `Storage<Context>` one is the real thread-local; a
    /// `Context`-typed twin under `{closure#1}` is a decoy.)
    pub context_tls: Vec<(u64, u64)>,
    /// `PT_TLS` (memsz, align) of the executable.
    pub tls: Option<(u64, u64)>,
    /// Entry point (`e_entry`), to compute the load bias from `AT_ENTRY`.
    pub entry: u64,
    /// `PT_LOAD` segments: (vaddr, file offset, file size).
    pub loads: Vec<(u64, u64, u64)>,
    /// Version of tokio found in the file paths of the debuginfo (`tokio-1.54.1`).
    pub tokio_version: Option<String>,
}

impl std::fmt::Debug for DebugInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugInfo")
            .field("exe", &self.exe)
            .field("debug", &self.debug)
            .field("types", &self.index.names.len())
            .field("units", &self.index.units.len())
            .field("split_files", &self.split.files())
            .field("tokio_version", &self.tokio_version)
            .finish_non_exhaustive()
    }
}

/// Keys of [`DebugInfo::subprograms`] above this are not code addresses: subprograms without
/// code (declarations, abstract instances) kept for their name and template parameters.
pub const DECL_SUBPROGRAM_KEYS: u64 = 1 << 62;

/// At most this many units' abbreviation tables are kept parsed between DIE reads.
const ABBREVIATIONS_KEPT: usize = 64;

impl DebugInfo {
    /// Maps and indexes the executable at `path`.
    pub fn load(path: &str) -> Result<DebugInfo> {
        let data = FileBytes::open(path).map_err(|e| Error::Io(path.to_string(), e))?;
        let files = TargetFiles::by_path();
        let target = Target {
            exe: path,
            files: &files,
        };
        Self::from_bytes(Arc::new(data), None, path, Some(target))
    }

    /// Reads the executable at `path` and indexes its debuginfo, from the executable itself
    /// or from a separate debug file ([`crate::debugfile`]: `explicit`, build id,
    /// `.gnu_debuglink` relative to `real_path`, the executable's path on disk).
    pub fn load_with(path: &str, real_path: &str, explicit: Option<&str>) -> Result<DebugInfo> {
        Self::load_with_debug_file(path, real_path, explicit, &TargetFiles::by_path())
            .map(|(info, _)| info)
    }

    /// [`load_with`](Self::load_with) for an executable whose debug file is looked up in the
    /// target's view of the file system (`files`), also handing back the separate debug file
    /// when the debuginfo came from one: the native-stack unwinder symbolises with the same
    /// bytes instead of finding, reading and checking the file again.
    pub fn load_with_debug_file(
        path: &str,
        real_path: &str,
        explicit: Option<&str>,
        files: &TargetFiles,
    ) -> Result<(DebugInfo, Option<DebugFile>)> {
        let data = FileBytes::open(path).map_err(|e| Error::Io(path.to_string(), e))?;
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(Error::NotElf(path.to_string()));
        }
        // Without debuginfo, say first whether there is anything to read at all (only then:
        // the symbol scan is not start-up work of every read).
        let no_types = |e: Error, data: &[u8]| match what_program(data) {
            Program::NotRust => Error::NotRust(real_path.to_string()),
            Program::RustWithoutTokio => Error::NoTokio(real_path.to_string()),
            Program::Tokio | Program::Unknown => e,
        };
        let debug_file = crate::debugfile::find(&data, real_path, explicit, files)
            .map_err(|e| no_types(e, &data))?;
        let data = Arc::new(data);
        let info = Self::from_bytes(
            data.clone(),
            debug_file
                .as_ref()
                .map(|f| (f.data.clone(), f.path.as_str())),
            path,
            Some(Target {
                exe: real_path,
                files,
            }),
        );
        match info {
            Err(e @ Error::NoDebugInfo(_)) => Err(no_types(e, &data)),
            Ok(i) if !i.index.has_tokio => Err(Error::NoTokio(real_path.to_string())),
            Ok(i) => Ok((i, debug_file)),
            Err(e) => Err(e),
        }
    }

    /// Indexes the bytes of an executable; `path` only names it in errors. The bytes are
    /// untrusted: a malformed ELF or DWARF gives an error, never a panic. Split DWARF files
    /// are not looked for: only the units in the bytes are indexed.
    pub fn parse(data: Vec<u8>, path: &str) -> Result<DebugInfo> {
        Self::from_bytes(Arc::new(FileBytes::Owned(data)), None, path, None)
    }

    /// Like [`parse`](Self::parse), with the DWARF from a separate debug file (its bytes and
    /// path) when given: the executable still gives the program headers and its data.
    pub fn parse_split(
        data: Vec<u8>,
        debug: Option<(&[u8], &str)>,
        path: &str,
    ) -> Result<DebugInfo> {
        let debug = debug.map(|(d, p)| (Arc::new(FileBytes::Owned(d.to_vec())), p));
        Self::from_bytes(Arc::new(FileBytes::Owned(data)), debug, path, None)
    }

    /// Indexes the DWARF of the executable `exe` (read at `path`), or of its separate debug
    /// file; with `target`, the split units of skeleton units are looked for
    /// ([`crate::split_dwarf`]) and indexed as the others.
    fn from_bytes(
        exe: Arc<FileBytes>,
        debug: Option<(Arc<FileBytes>, &str)>,
        path: &str,
        target: Option<Target<'_>>,
    ) -> Result<DebugInfo> {
        if exe.len() < 4 || &exe[..4] != b"\x7fELF" {
            return Err(Error::NotElf(path.to_string()));
        }
        let obj = object::File::parse(&**exe).map_err(|_| Error::NotElf(path.to_string()))?;
        let debug_obj = match &debug {
            Some((d, p)) => {
                Some(object::File::parse(&***d).map_err(|_| Error::NotElf(p.to_string()))?)
            }
            None => None,
        };
        let dwarf_obj = debug_obj.as_ref().unwrap_or(&obj);
        let dwarf_path = debug.as_ref().map_or(path, |d| d.1);
        if dwarf_obj.section_by_name(".debug_info").is_none() {
            return Err(Error::NoDebugInfo(dwarf_path.to_string()));
        }
        let mut tls = None;
        if let object::File::Elf64(elf) = &obj {
            use object::read::elf::ProgramHeader;
            let endian = elf.endian();
            for ph in elf.elf_program_headers() {
                if ph.p_type(endian) == object::elf::PT_TLS {
                    tls = Some((ph.p_memsz(endian), ph.p_align(endian).max(1)));
                }
            }
        }
        let loads = obj
            .segments()
            .map(|seg| {
                let (off, len) = seg.file_range();
                (seg.address(), off, len)
            })
            .collect();
        let entry = obj.entry();
        let build_id = crate::debugfile::build_id(&obj);
        let dwarf_bytes: &[u8] = match &debug {
            Some((d, _)) => d,
            None => &exe,
        };
        let sections = gimli::DwarfSections::load(|id| {
            crate::sections::dwarf_section(dwarf_obj, id).map(|data| Stored::new(dwarf_bytes, data))
        })
        .map_err(|e| Error::BadDwarf {
            path: dwarf_path.to_string(),
            why: e.to_string(),
        })?;
        drop(debug_obj);
        drop(obj);
        let mut info = DebugInfo {
            exe,
            debug: debug.map(|d| d.0),
            sections,
            split: split::SplitUnits::default(),
            index: Index::default(),
            dies: cache::Kept::default(),
            variant_tables: cache::Kept::default(),
            abbreviations: Mutex::new(HashMap::new()),
            context_tls: Vec::new(),
            tls,
            entry,
            loads,
            tokio_version: None,
        };
        // The executable's read path names it only when it is a path of its own (a core's
        // `--exe`), not `/proc/PID/exe`.
        let read_from = target
            .as_ref()
            .filter(|t| t.exe != path && !path.starts_with("/proc/"))
            .map(|_| path);
        let places = target.as_ref().map(|t| Places {
            exe: t.exe,
            read_from,
            debug_file: (dwarf_path != path).then_some(dwarf_path),
            build_id: build_id.as_deref(),
            files: t.files,
        });
        let (index, split) = info.index_units(places.as_ref(), dwarf_path)?;
        info.index = index;
        info.split = split;
        // The index is built: the pages the scan touched are the page cache's, not ours.
        info.release_pages();
        info.index
            .subprograms
            .retain(|&k, s| k < DECL_SUBPROGRAM_KEYS || !s.template_types.is_empty());
        info.context_tls = std::mem::take(&mut info.index.context_tls);
        // `debug = "line-tables-only"` or `"limited"`: names and lines, but no struct layouts.
        if info.index.names.is_empty() || !info.index.has_layouts {
            return Err(Error::NoDebugInfo(dwarf_path.to_string()));
        }
        info.tokio_version = info.index.files.iter().find_map(|f| tokio_version_in(f));
        Ok(info)
    }

    /// The one pass over the units ([`scan`]): the executable's (or its debug file's) own,
    /// then, when some are skeletons and `places` says where to look, their split units
    /// ([`split`]), found after the first pass and numbered in the skeletons' order. Each
    /// unit's pages are let go once it is indexed.
    fn index_units(
        &self,
        places: Option<&Places<'_>>,
        dwarf_path: &str,
    ) -> Result<(Index, split::SplitUnits)> {
        let cannot = |e: gimli::Error| Error::BadDwarf {
            path: dwarf_path.to_string(),
            why: e.to_string(),
        };
        let dwarf = self.dwarf();
        let mut scan = scan::Scan::default();
        // Each skeleton unit: what it says of its split unit, and where it is.
        let mut skeletons: Vec<Skeleton> = Vec::new();
        let mut skeleton_at: Vec<gimli::DebugInfoOffset> = Vec::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next().map_err(cannot)? {
            let Some(offset) = header.debug_info_offset() else {
                continue;
            };
            let unit = dwarf.unit(header).map_err(cannot)?;
            if let Some(gimli::DwoId(dwo_id)) = unit.dwo_id {
                let text = |v: Option<AttributeValue<R<'_>>>| {
                    let s = dwarf.attr_string(&unit, v?).ok()?;
                    Some(String::from_utf8_lossy(s.slice()).into_owned())
                };
                let dwo_name = text(unit.dwo_name().ok().flatten());
                let comp_dir = unit
                    .comp_dir
                    .map(|d| String::from_utf8_lossy(d.slice()).into_owned());
                skeletons.push(Skeleton {
                    dwo_id,
                    dwo_name,
                    comp_dir,
                });
                skeleton_at.push(offset);
            }
            let place = Place {
                base: offset.0 as u64,
                split: false,
            };
            scan.unit(UnitAt {
                dwarf: &dwarf,
                unit: &unit,
                place,
                split: None,
                lines: (&dwarf, &unit),
            })
            .map_err(cannot)?;
            let end = offset.0 + unit.header.length_including_self();
            if let Some(bytes) = dwarf.debug_info.reader().slice().get(offset.0..end) {
                self.dwarf_file().forget_within(bytes);
            }
        }
        let (Some(places), false) = (places, skeletons.is_empty()) else {
            return Ok((scan.finish(), split::SplitUnits::default()));
        };
        let split = split::SplitUnits::find(&skeletons, places)?;
        // Split units follow the executable's own in the offset space.
        let floor = dwarf.debug_info.reader().len() as u64;
        for (i, offset) in skeleton_at.iter().enumerate() {
            let i = i as u32;
            let in_split = |why: String| Error::BadDwarf {
                path: dwarf_path.to_string(),
                why: format!("the split unit of the unit at {:#x}: {why}", offset.0),
            };
            let skeleton = dwarf
                .debug_info
                .header_from_offset(*offset)
                .and_then(|h| dwarf.unit(h))
                .map_err(cannot)?;
            let split_dwarf = split
                .dwarf(i, &dwarf)
                .ok_or_else(|| in_split("its file has no such unit".into()))?;
            let header = split_dwarf
                .units()
                .next()
                .map_err(|e| in_split(e.to_string()))?
                .ok_or_else(|| in_split("its file has no unit".into()))?;
            let mut unit = split_dwarf
                .unit(header)
                .map_err(|e| in_split(e.to_string()))?;
            unit.copy_relocated_attributes(&skeleton);
            let place = Place {
                base: scan.next_split_base(floor),
                split: true,
            };
            scan.unit(UnitAt {
                dwarf: &split_dwarf,
                unit: &unit,
                place,
                split: Some(i),
                lines: (&dwarf, &skeleton),
            })
            .map_err(|e| in_split(e.to_string()))?;
            if let Some(file) = split.file(i) {
                file.forget_within(split_dwarf.debug_info.reader().slice());
            }
        }
        Ok((scan.finish(), split))
    }

    /// The file the DWARF sections are in.
    fn dwarf_file(&self) -> &FileBytes {
        self.debug.as_deref().unwrap_or(&self.exe)
    }

    /// Lets the kernel drop the pages of the executable and its DWARF sections from this
    /// process's resident memory: after a read, what the DIEs it parsed touched (they are
    /// kept parsed; a later read maps the pages it needs again from the page cache).
    pub fn release_pages(&self) {
        self.exe.forget_pages(0..self.exe.len());
        if let Some(d) = &self.debug {
            d.forget_pages(0..d.len());
        }
        self.split.release_pages();
    }

    /// A gimli view of the sections (cheap: slices, no parsing).
    fn dwarf(&self) -> gimli::Dwarf<R<'_>> {
        let file = self.dwarf_file();
        self.sections
            .borrow(|s| gimli::EndianSlice::new(s.bytes(file), RunTimeEndian::Little))
    }

    /// A gimli view of the DWARF unit `unit` is in: the executable's, or its split file's.
    fn dwarf_of(&self, unit: &scan::UnitInfo) -> Option<gimli::Dwarf<R<'_>>> {
        let main = self.dwarf();
        match unit.split {
            None => Some(main),
            Some(i) => self.split.dwarf(i, &main),
        }
    }

    /// The executable's bytes (for read-only data a core file leaves out).
    pub fn file_data(&self) -> &[u8] {
        &self.exe
    }

    /// The name of the static whose symbol is at link-time address `addr` (a data symbol of
    /// the executable's symbol table), demangled without its hash; `None` when it has none
    /// there (a stripped executable). One pass over the symbol table: callers keep the answer.
    pub fn static_at(&self, addr: u64) -> Option<String> {
        let obj = object::File::parse(&**self.exe).ok()?;
        obj.symbols()
            .find(|s| s.address() == addr && s.kind() == object::SymbolKind::Data)
            .and_then(|s| s.name().ok().map(crate::unwind::demangle))
    }

    /// How many types the index holds (for the figures of what the reader keeps).
    pub fn indexed_types(&self) -> usize {
        self.index.names.len()
    }

    /// Bytes the index holds in the heap, roughly (the DIEs parsed since not included).
    pub fn index_bytes(&self) -> usize {
        let ix = &self.index;
        ix.names.capacity() * 16
            + ix.scoped.capacity() * 12
            + ix.scopes.iter().map(|s| 24 + s.name.len()).sum::<usize>()
            + ix.units
                .iter()
                .map(|u| 48 + u.files.capacity() * 4)
                .sum::<usize>()
            + ix.files.iter().map(|f| 32 + f.len()).sum::<usize>()
            + ix.awaitees
                .values()
                .map(|v| 48 + v.capacity() * 48)
                .sum::<usize>()
            + ix.vtables.capacity() * 24
            + self.split.heap_bytes()
    }

    /// The DIE at a DIE offset (see the module doc: a type, member, variant part, variant, template
    /// parameter or typedef), parsed on first use.
    pub fn die(&self, off: u64) -> Option<&Die> {
        if let Some(d) = self.dies.get(off) {
            return Some(d);
        }
        let die = self.parse_die(off)?;
        Some(self.dies.insert(off, die))
    }

    /// The type behind typedefs (at most 8 deep: the DWARF is untrusted).
    pub fn strip(&self, mut ty: u64) -> u64 {
        for _ in 0..8 {
            match self.die(ty) {
                Some(d) if d.kind == Kind::Typedef => match d.ty {
                    Some(t) => ty = t,
                    None => break,
                },
                _ => break,
            }
        }
        ty
    }

    /// The size of a type, through typedefs (0 when unknown).
    pub fn type_size(&self, ty: u64) -> u64 {
        self.die(self.strip(ty)).map_or(0, |d| d.size)
    }

    /// The variants of the enum type `ty` (typedefs stripped), built on first use and kept.
    pub fn variant_table(&self, ty: u64) -> Option<&VariantTable> {
        if let Some(t) = self.variant_tables.get(ty) {
            return t.as_ref();
        }
        let table = VariantTable::build(self, ty);
        self.variant_tables.insert(ty, table).as_ref()
    }

    /// Every type with this qualified name, the ones with members (or variants, template
    /// parameters) first: a unit may only declare a type (`DW_AT_declaration`, no members)
    /// that another defines, and callers take the first for its layout — a build whose first
    /// unit declared `tokio::runtime::task::core::Trailer` read as an unsupported tokio.
    pub fn types_named(&self, name: &str) -> Vec<u64> {
        let h = scan::name_hash(name);
        let names = &self.index.names;
        let from = names.partition_point(|e| e.0 < h);
        let (mut defined, mut declared) = (Vec::new(), Vec::new());
        for &(_, off) in names[from..].iter().take_while(|e| e.0 == h) {
            // A 64-bit hash: the name is checked (a collision would name another type).
            match self.die(off) {
                Some(d) if d.name == name && !d.children.is_empty() => defined.push(off),
                Some(d) if d.name == name => declared.push(off),
                _ => {}
            }
        }
        defined.append(&mut declared);
        defined
    }

    /// Types whose qualified name starts with `prefix`, with their names (one pass over the
    /// index: for the reader's preparation, not for each read).
    pub fn types_with_prefix(&self, prefix: &str) -> Vec<(String, u64)> {
        // For each scope: whether all its types match, some may (with the rest of the
        // prefix to check against their own names), or none.
        let scope_names: Vec<String> = (0..self.index.scopes.len() as u32)
            .map(|id| self.scope_name(id) + "::")
            .collect();
        let mut out = Vec::new();
        for &(off, scope) in &self.index.scoped {
            let Some(q) = scope_names.get(scope as usize) else {
                continue;
            };
            let rest = if q.starts_with(prefix) {
                ""
            } else if let Some(rest) = prefix.strip_prefix(q.as_str()) {
                rest
            } else {
                continue;
            };
            if let Some(own) = self.own_name(off).filter(|n| n.starts_with(rest)) {
                out.push((format!("{q}{own}"), off));
            }
        }
        out
    }

    /// The subprogram starting at this (unrelocated) address (tokio's task `poll`s and
    /// `block_on`s only: [`KEPT_SUBPROGRAMS`]).
    pub fn subprogram_at(&self, pc: u64) -> Option<&Subprogram> {
        self.index.subprograms.get(&pc)
    }

    /// Every kept subprogram (entry address, unrelocated; keys from [`DECL_SUBPROGRAM_KEYS`]
    /// on are generic declarations without code), in no particular order.
    pub fn subprograms(&self) -> impl Iterator<Item = (u64, &Subprogram)> {
        self.index.subprograms.iter().map(|(pc, s)| (*pc, s))
    }

    /// The concrete type behind a `dyn Future` vtable at this (unrelocated) address.
    pub fn vtable_type(&self, addr: u64) -> Option<u64> {
        let t = *self.index.vtables.get(&addr)?;
        match self.die(t) {
            Some(d) if d.name.ends_with("{vtable_type}") => d.containing,
            _ => Some(t),
        }
    }

    /// The `__awaitee` locals of the async body `func` (qualified name of its poll closure).
    pub fn awaitees(&self, func: &str) -> &[AwaiteeVar] {
        self.index
            .awaitees
            .get(&scan::name_hash(func))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Reads `len` bytes of the executable's initialised data at unrelocated `addr`.
    pub fn read_file_data(&self, addr: u64, buf: &mut [u8]) -> bool {
        read_segments(&self.loads, &self.exe, addr, buf)
    }
}

/// Where to look for the split DWARF files of an executable: its path in the target, and how
/// the target's files are opened.
#[derive(Clone, Copy)]
struct Target<'a> {
    exe: &'a str,
    files: &'a TargetFiles,
}

/// Reads `buf.len()` bytes at `addr` from the file bytes of the `PT_LOAD` segment holding them.
fn read_segments(loads: &[(u64, u64, u64)], file: &[u8], addr: u64, buf: &mut [u8]) -> bool {
    // Addresses come from target memory and segments from the file: both untrusted, so
    // every sum is checked.
    let Some(end) = addr.checked_add(buf.len() as u64) else {
        return false;
    };
    for &(vaddr, off, len) in loads {
        if addr >= vaddr && vaddr.checked_add(len).is_some_and(|seg_end| end <= seg_end) {
            let src = off
                .checked_add(addr - vaddr)
                .and_then(|s| usize::try_from(s).ok())
                .and_then(|s| Some(s..s.checked_add(buf.len())?))
                .and_then(|r| file.get(r));
            if let Some(src) = src {
                buf.copy_from_slice(src);
                return true;
            }
        }
    }
    false
}

/// The tokio version in a source path of tokio's (`…/tokio-1.54.1/src/…` → `1.54.1`).
fn tokio_version_in(path: &str) -> Option<String> {
    let i = path.find("/tokio-")?;
    let v = &path[i + 7..];
    let (v, rest) = v.split_once('/')?;
    (v.starts_with(|c: char| c.is_ascii_digit()) && rest.starts_with("src/")).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_data_reads_are_bounds_checked() {
        let loads = [(0x1000, 0, 8), (u64::MAX - 4, 0, 16), (0x5000, u64::MAX, 8)];
        let file = b"\x7fELFabcd";
        let mut buf = [0u8; 4];
        assert!(read_segments(&loads, file, 0x1000, &mut buf));
        assert_eq!(&buf, b"\x7fELF");
        assert!(
            !read_segments(&loads, file, 0x1006, &mut buf),
            "past the segment"
        );
        // Near the top of the address space, and a file offset past the end: no overflow.
        assert!(!read_segments(&loads, file, u64::MAX - 2, &mut buf));
        assert!(!read_segments(&loads, file, u64::MAX - 4, &mut buf));
        assert!(!read_segments(&loads, file, 0x5000, &mut buf));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            DebugInfo::parse(b"nope".to_vec(), "x"),
            Err(Error::NotElf(_))
        ));
        let mut elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        elf.truncate(200);
        assert!(DebugInfo::parse(elf, "x").is_err());
    }
}
