//! ELF + DWARF of the executable, read once into an owned index.
//!
//! Rust executables carry no `.debug_names`, so one pass over `.debug_info` keeps what the
//! upper layers ask for: types by qualified name (namespaces joined with `::`), their members,
//! variant parts and template parameters; subprograms by entry address (the task vtable's
//! `poll` → its `T`); `<T as Future>::{vtable}` statics (a `dyn Future` vtable → the concrete
//! type); the `CONTEXT` thread-local's TLS offset; and the `__awaitee` locals of async fn
//! bodies (their lines are the user's await line when a macro owns the suspend point).
//! Everything is keyed by `.debug_info` offset, so cross-unit references resolve directly.

use crate::debugfile::DebugFile;
use crate::error::{Error, Result};
use crate::target::files::TargetFiles;
use gimli::{AttributeValue, RunTimeEndian};
use object::{Object, ObjectSegment};
use std::collections::HashMap;

/// What an executable is, from its symbols and its `.comment` (kept by `strip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// Symbols, none of them Rust's, and no rustc mark.
    NotRust,
    /// Rust, and its symbol table names no tokio item.
    RustWithoutTokio,
    /// Rust with tokio symbols.
    Tokio,
    /// No symbol table to tell by (stripped), or not an ELF `object` reads.
    Unknown,
}

fn what_program(data: &[u8]) -> Program {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(file) = object::File::parse(data) else {
        return Program::Unknown;
    };
    let rustc_mark = file
        .section_by_name(".comment")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| d.windows(5).any(|w| w == b"rustc"));
    let (mut rust, mut tokio, mut any) = (false, false, false);
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        let Ok(name) = sym.name() else { continue };
        any = true;
        // Legacy (`_ZN…17h<hash>E`) and v0 (`_R…`) mangling, and the runtime's own symbols.
        if name.starts_with("_R") || name.contains("17h") || name.starts_with("rust_") {
            rust = true;
        }
        if name.contains("tokio") {
            tokio = true;
            break;
        }
    }
    match (rust || rustc_mark, tokio, any) {
        (_, true, _) => Program::Tokio,
        (false, false, true) => Program::NotRust,
        (true, false, true) => Program::RustWithoutTokio,
        // No symbols at all (stripped): nothing to tell by.
        (_, false, false) => Program::Unknown,
    }
}

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
    /// `DW_AT_type`, as a `.debug_info` offset.
    pub ty: Option<u64>,
    /// `DW_AT_discr` of a variant part (`.debug_info` offset of the tag member).
    pub discr: Option<u64>,
    /// `DW_AT_discr_value` of a variant.
    pub discr_value: Option<u64>,
    /// `DW_AT_decl_file` and `DW_AT_decl_line`.
    pub decl: Option<(String, u32)>,
    /// Kept children (members, variants, template parameters), as `.debug_info` offsets.
    pub children: Vec<u64>,
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
    /// Its type (`.debug_info` offset).
    pub ty: Option<u64>,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
}

/// The index of an executable's debuginfo.
#[derive(Debug, Default)]
pub struct DebugInfo {
    dies: HashMap<u64, Die>,
    types_by_name: HashMap<String, Vec<u64>>,
    subprograms: HashMap<u64, Subprogram>,
    /// Count of subprograms without code kept for their template parameters.
    decl_subprograms: u64,
    vtables: HashMap<u64, u64>,
    awaitees: HashMap<String, Vec<AwaiteeVar>>,
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
    /// The executable's bytes (for read-only data a core file leaves out).
    pub file_data: Vec<u8>,
    /// Version of tokio found in the file paths of the debuginfo (`tokio-1.54.1`).
    pub tokio_version: Option<String>,
}

type R<'a> = gimli::EndianSlice<'a, RunTimeEndian>;

/// Keys of [`DebugInfo::subprograms`] above this are not code addresses: subprograms without
/// code (declarations, abstract instances) kept for their name and template parameters.
pub const DECL_SUBPROGRAM_KEYS: u64 = 1 << 62;

impl DebugInfo {
    /// Reads and indexes the executable at `path`.
    pub fn load(path: &str) -> Result<DebugInfo> {
        let data = std::fs::read(path).map_err(|e| Error::Io(path.to_string(), e))?;
        Self::parse(data, path)
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
        let data = std::fs::read(path).map_err(|e| Error::Io(path.to_string(), e))?;
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
        let split = crate::debugfile::find(&data, real_path, explicit, files)
            .map_err(|e| no_types(e, &data))?;
        let info = match &split {
            Some(f) => Self::parse_split(data, Some((&f.data, &f.path)), path),
            None => Self::parse(data, path),
        };
        match info {
            // The bytes went to the parser: read them again, on this error path only.
            Err(e @ Error::NoDebugInfo(_)) => Err(match std::fs::read(path) {
                Ok(data) => no_types(e, &data),
                Err(_) => e,
            }),
            Ok(i) if i.types_with_prefix("tokio::").next().is_none() => {
                Err(Error::NoTokio(real_path.to_string()))
            }
            Ok(i) => Ok((i, split)),
            Err(e) => Err(e),
        }
    }

    /// Indexes the bytes of an executable; `path` only names it in errors. The bytes are
    /// untrusted: a malformed ELF or DWARF gives an error, never a panic.
    pub fn parse(data: Vec<u8>, path: &str) -> Result<DebugInfo> {
        Self::parse_split(data, None, path)
    }

    /// Like [`parse`](Self::parse), with the DWARF from a separate debug file (its bytes and
    /// path) when given: the executable still gives the program headers and its data.
    pub fn parse_split(
        data: Vec<u8>,
        debug: Option<(&[u8], &str)>,
        path: &str,
    ) -> Result<DebugInfo> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(Error::NotElf(path.to_string()));
        }
        let mut info = DebugInfo::default();
        {
            let obj = object::File::parse(&*data).map_err(|_| Error::NotElf(path.to_string()))?;
            let debug_obj = match &debug {
                Some((d, p)) => {
                    Some(object::File::parse(*d).map_err(|_| Error::NotElf(p.to_string()))?)
                }
                None => None,
            };
            let dwarf_obj = debug_obj.as_ref().unwrap_or(&obj);
            let path = debug.as_ref().map_or(path, |d| d.1);
            if dwarf_obj.section_by_name(".debug_info").is_none() {
                return Err(Error::NoDebugInfo(path.to_string()));
            }
            info.entry = obj.entry();
            if let object::File::Elf64(elf) = &obj {
                use object::read::elf::ProgramHeader;
                let endian = elf.endian();
                for ph in elf.elf_program_headers() {
                    let t = ph.p_type(endian);
                    if t == object::elf::PT_TLS {
                        info.tls = Some((ph.p_memsz(endian), ph.p_align(endian).max(1)));
                    }
                }
            }
            for seg in obj.segments() {
                let (off, len) = seg.file_range();
                info.loads.push((seg.address(), off, len));
            }
            let sections =
                gimli::DwarfSections::load(|id| crate::sections::dwarf_section(dwarf_obj, id))
                    .map_err(|e| Error::Other(format!("cannot load DWARF of {path}: {e}")))?;
            let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, RunTimeEndian::Little));
            info.scan(&dwarf)
                .map_err(|e| Error::Other(format!("cannot parse DWARF of {path}: {e}")))?;
            info.subprograms
                .retain(|&k, s| k < DECL_SUBPROGRAM_KEYS || !s.template_types.is_empty());
            // A symbol fallback for vtables: `<T as Future>::{vtable}` variables are found in
            // the DWARF scan; nothing else is needed from the symbol table.
        }
        // `debug = "line-tables-only"` or `"limited"`: names and lines, but no struct layouts.
        let has_layouts = info
            .dies
            .values()
            .any(|d| d.kind == Kind::Member && d.offset > 0);
        if info.types_by_name.is_empty() || !has_layouts {
            return Err(Error::NoDebugInfo(path.to_string()));
        }
        info.file_data = data;
        Ok(info)
    }

    fn scan(&mut self, dwarf: &gimli::Dwarf<R<'_>>) -> gimli::Result<()> {
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let mut files: HashMap<u64, String> = HashMap::new();
            // Stack of (depth, name segment, kind) of the enclosing namespaces/types/subprograms.
            let mut scope: Vec<(isize, String, u8)> = Vec::new();
            // Stack of (depth, die offset) of kept parents, to attach children.
            let mut parents: Vec<(isize, u64)> = Vec::new();
            let mut entries = unit.entries();
            while let Some(entry) = entries.next_dfs()? {
                let depth = entry.depth();
                while scope.last().is_some_and(|s| s.0 >= depth) {
                    scope.pop();
                }
                while parents.last().is_some_and(|p| p.0 >= depth) {
                    parents.pop();
                }
                let goff = match entry.offset().to_debug_info_offset(&unit.header) {
                    Some(o) => o.0 as u64,
                    None => continue,
                };
                let tag = entry.tag();
                let name = match entry.attr_value(gimli::DW_AT_name) {
                    Some(v) => dwarf
                        .attr_string(&unit, v)
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    None => String::new(),
                };
                let in_subprogram = scope.iter().any(|s| s.2 == 2);
                let qualify = |name: &str| -> String {
                    let mut q = String::new();
                    for (_, seg, kind) in &scope {
                        if *kind == 2 {
                            continue;
                        }
                        q.push_str(seg);
                        q.push_str("::");
                    }
                    q.push_str(name);
                    q
                };
                let kind = match tag {
                    gimli::DW_TAG_namespace => {
                        scope.push((depth, name, 0));
                        continue;
                    }
                    gimli::DW_TAG_subprogram => {
                        let qname = qualify(&name);
                        let key = match entry.attr_value(gimli::DW_AT_low_pc) {
                            Some(AttributeValue::Addr(pc)) => Some(pc),
                            // A method's declaration (its code is a separate DIE pointing
                            // here with DW_AT_specification) or an abstract instance: it
                            // holds the name and the template parameters. Kept under a key
                            // no code address has (dropped at the end if not generic).
                            _ if !name.is_empty() => {
                                self.decl_subprograms += 1;
                                Some(DECL_SUBPROGRAM_KEYS + self.decl_subprograms)
                            }
                            _ => None,
                        };
                        if let Some(pc) = key {
                            self.subprograms.insert(
                                pc,
                                Subprogram {
                                    name: qname.clone(),
                                    template_types: Vec::new(),
                                },
                            );
                            parents.push((depth, u64::MAX - pc));
                        }
                        scope.push((depth, qname, 2));
                        continue;
                    }
                    gimli::DW_TAG_variable => {
                        self.variable(dwarf, &unit, entry, &name, &scope, &mut files);
                        continue;
                    }
                    gimli::DW_TAG_structure_type => Kind::Struct,
                    gimli::DW_TAG_union_type => Kind::Union,
                    gimli::DW_TAG_enumeration_type => Kind::Enum,
                    gimli::DW_TAG_base_type => Kind::Base,
                    gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => Kind::Pointer,
                    gimli::DW_TAG_member => Kind::Member,
                    gimli::DW_TAG_variant_part => Kind::VariantPart,
                    gimli::DW_TAG_variant => Kind::Variant,
                    gimli::DW_TAG_template_type_parameter => Kind::TemplateType,
                    gimli::DW_TAG_typedef => Kind::Typedef,
                    _ => continue,
                };
                let ty = entry
                    .attr_value(gimli::DW_AT_type)
                    .and_then(|v| ref_offset(&unit, v));
                if kind == Kind::TemplateType {
                    // A subprogram's template parameter: keep it on the subprogram.
                    if let Some(&(_, p)) = parents.last() {
                        if p > u64::MAX / 2 {
                            let pc = u64::MAX - p;
                            if let (Some(sp), Some(ty)) = (self.subprograms.get_mut(&pc), ty) {
                                sp.template_types.push((name.clone(), ty));
                            }
                            continue;
                        }
                    }
                }
                if in_subprogram && matches!(kind, Kind::Member | Kind::Variant) {
                    continue;
                }
                let is_type = matches!(
                    kind,
                    Kind::Struct
                        | Kind::Union
                        | Kind::Enum
                        | Kind::Base
                        | Kind::Pointer
                        | Kind::Typedef
                );
                let full = if is_type {
                    qualify(&name)
                } else {
                    name.clone()
                };
                let decl = match (
                    entry.attr_value(gimli::DW_AT_decl_file),
                    entry.attr_value(gimli::DW_AT_decl_line),
                ) {
                    (Some(AttributeValue::FileIndex(f)), Some(l)) => {
                        let file = file_name(dwarf, &unit, f, &mut files);
                        l.udata_value().map(|l| (file, l as u32))
                    }
                    _ => None,
                };
                if self.tokio_version.is_none() {
                    if let Some((file, _)) = &decl {
                        if let Some(i) = file.find("/tokio-") {
                            let v = &file[i + 7..];
                            let (v, rest) = v.split_once('/').unwrap_or((v, ""));
                            if v.starts_with(|c: char| c.is_ascii_digit())
                                && rest.starts_with("src/")
                            {
                                self.tokio_version = Some(v.to_string());
                            }
                        }
                    }
                }
                let die = Die {
                    kind,
                    name: full.clone(),
                    size: entry
                        .attr_value(gimli::DW_AT_byte_size)
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0),
                    offset: entry
                        .attr_value(gimli::DW_AT_data_member_location)
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0),
                    ty,
                    discr: entry
                        .attr_value(gimli::DW_AT_discr)
                        .and_then(|v| ref_offset(&unit, v)),
                    discr_value: entry.attr_value(gimli::DW_AT_discr_value).and_then(|v| {
                        v.udata_value()
                            .or_else(|| v.sdata_value().map(|s| s as u64))
                    }),
                    decl,
                    children: Vec::new(),
                    containing: entry
                        .attr_value(gimli::DW_AT_containing_type)
                        .and_then(|v| ref_offset(&unit, v)),
                };
                if let Some(&(_, p)) = parents.last() {
                    if let Some(parent) = self.dies.get_mut(&p) {
                        parent.children.push(goff);
                    }
                }
                if is_type && !full.is_empty() {
                    self.types_by_name.entry(full).or_default().push(goff);
                }
                if matches!(kind, Kind::Struct | Kind::Union | Kind::Enum) {
                    scope.push((depth, name, 1));
                }
                if entry.has_children() {
                    parents.push((depth, goff));
                }
                self.dies.insert(goff, die);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn variable(
        &mut self,
        dwarf: &gimli::Dwarf<R<'_>>,
        unit: &gimli::Unit<R<'_>>,
        entry: &gimli::DebuggingInformationEntry<R<'_>>,
        name: &str,
        scope: &[(isize, String, u8)],
        files: &mut HashMap<u64, String>,
    ) {
        let bytes = match entry.attr_value(gimli::DW_AT_location) {
            Some(AttributeValue::Exprloc(expr)) => expr.0.slice(),
            _ => &[],
        };
        let ty = entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| ref_offset(unit, v));
        if name == "__awaitee" {
            // Location `DW_OP_fbreg N, DW_OP_deref, DW_OP_plus_uconst OFF`: OFF is the offset.
            let offset = bytes
                .iter()
                .rposition(|&b| b == 0x23)
                .and_then(|i| read_uleb(&bytes[i + 1..]));
            let func = scope.iter().rev().find(|s| s.2 == 2).map(|s| s.1.clone());
            if let (Some(func), Some(AttributeValue::FileIndex(f)), Some(l)) = (
                func,
                entry.attr_value(gimli::DW_AT_decl_file),
                entry
                    .attr_value(gimli::DW_AT_decl_line)
                    .and_then(|l| l.udata_value()),
            ) {
                let file = file_name(dwarf, unit, f, files);
                self.awaitees.entry(func).or_default().push(AwaiteeVar {
                    offset,
                    ty,
                    file,
                    line: l as u32,
                });
            }
            return;
        }
        if bytes.is_empty() {
            return;
        }
        let in_ns = |n: &str| scope.iter().any(|s| s.1 == n);
        if name == "__RUST_STD_INTERNAL_VAL" && in_ns("CONTEXT") && in_ns("context") {
            // DW_OP_const8u off (0x0e), DW_OP_GNU_push_tls_address (0xe0) / form_tls_address.
            if bytes.len() >= 10 && bytes[0] == 0x0e && (bytes[9] == 0xe0 || bytes[9] == 0x9b) {
                let off = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
                if let Some(ty) = ty {
                    self.context_tls.push((off, ty));
                }
            }
            return;
        }
        if name.ends_with("::{vtable}")
            && (name.contains("Future>") || name.contains("Stream>") || name.contains("Body>"))
        {
            // `<T as core::future::future::Future>::{vtable}` (or `…Stream>`, a boxed
            // stream a future waits on) at DW_OP_addr A (0x03).
            if bytes.len() == 9 && bytes[0] == 0x03 {
                let addr = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
                // The concrete type is the `DW_AT_containing_type` of the variable (older
                // rustc) or of its `{vtable_type}` (resolved at lookup).
                let containing = entry
                    .attr_value(gimli::DW_AT_containing_type)
                    .and_then(|v| ref_offset(unit, v));
                if let Some(t) = containing.or(ty) {
                    self.vtables.insert(addr, t);
                }
            }
        }
    }

    /// The DIE at a `.debug_info` offset.
    pub fn die(&self, off: u64) -> Option<&Die> {
        self.dies.get(&off)
    }

    /// Every type with this qualified name.
    pub fn types_named(&self, name: &str) -> &[u64] {
        self.types_by_name
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Types whose qualified name starts with `prefix`.
    pub fn types_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.types_by_name
            .iter()
            .filter(move |(n, _)| n.starts_with(prefix))
            .flat_map(|(n, v)| v.iter().map(move |o| (n.as_str(), *o)))
    }

    /// The subprogram starting at this (unrelocated) address.
    pub fn subprogram_at(&self, pc: u64) -> Option<&Subprogram> {
        self.subprograms.get(&pc)
    }

    /// Every subprogram (entry address, unrelocated; keys from [`DECL_SUBPROGRAM_KEYS`] on are
    /// generic declarations without code), in no particular order.
    pub fn subprograms(&self) -> impl Iterator<Item = (u64, &Subprogram)> {
        self.subprograms.iter().map(|(pc, s)| (*pc, s))
    }

    /// The concrete type behind a `dyn Future` vtable at this (unrelocated) address.
    pub fn vtable_type(&self, addr: u64) -> Option<u64> {
        let t = *self.vtables.get(&addr)?;
        match self.dies.get(&t) {
            Some(d) if d.name.ends_with("{vtable_type}") => d.containing,
            _ => Some(t),
        }
    }

    /// The `__awaitee` locals of the async body `func` (qualified name of its poll closure).
    pub fn awaitees(&self, func: &str) -> &[AwaiteeVar] {
        self.awaitees.get(func).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Reads `len` bytes of the executable's initialised data at unrelocated `addr`.
    pub fn read_file_data(&self, addr: u64, buf: &mut [u8]) -> bool {
        // Addresses come from target memory and segments from the file: both untrusted, so
        // every sum is checked.
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        for &(vaddr, off, len) in &self.loads {
            if addr >= vaddr && vaddr.checked_add(len).is_some_and(|seg_end| end <= seg_end) {
                let src = off
                    .checked_add(addr - vaddr)
                    .and_then(|s| usize::try_from(s).ok())
                    .and_then(|s| Some(s..s.checked_add(buf.len())?))
                    .and_then(|r| self.file_data.get(r));
                if let Some(src) = src {
                    buf.copy_from_slice(src);
                    return true;
                }
            }
        }
        false
    }
}

fn ref_offset(unit: &gimli::Unit<R<'_>>, v: AttributeValue<R<'_>>) -> Option<u64> {
    match v {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header).map(|o| o.0 as u64),
        AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
        _ => None,
    }
}

fn file_name(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    index: u64,
    cache: &mut HashMap<u64, String>,
) -> String {
    if let Some(s) = cache.get(&index) {
        return s.clone();
    }
    let mut path = String::new();
    if let Some(lp) = &unit.line_program {
        let header = lp.header();
        if let Some(file) = header.file(index) {
            if let Some(dir) = file.directory(header) {
                if let Ok(d) = dwarf.attr_string(unit, dir) {
                    path.push_str(&d.to_string_lossy());
                }
            }
            if let Ok(n) = dwarf.attr_string(unit, file.path_name()) {
                let n = n.to_string_lossy();
                if n.starts_with('/') || path.is_empty() {
                    path = n.into_owned();
                } else {
                    if !path.ends_with('/') {
                        path.push('/');
                    }
                    path.push_str(&n);
                }
            }
        }
    }
    cache.insert(index, path.clone());
    path
}

fn read_uleb(bytes: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_data_reads_are_bounds_checked() {
        let info = DebugInfo {
            loads: vec![(0x1000, 0, 8), (u64::MAX - 4, 0, 16), (0x5000, u64::MAX, 8)],
            file_data: b"\x7fELFabcd".to_vec(),
            ..DebugInfo::default()
        };
        let mut buf = [0u8; 4];
        assert!(info.read_file_data(0x1000, &mut buf));
        assert_eq!(&buf, b"\x7fELF");
        assert!(!info.read_file_data(0x1006, &mut buf), "past the segment");
        // Near the top of the address space, and a file offset past the end: no overflow.
        assert!(!info.read_file_data(u64::MAX - 2, &mut buf));
        assert!(!info.read_file_data(u64::MAX - 4, &mut buf));
        assert!(!info.read_file_data(0x5000, &mut buf));
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
