//! The one pass over `.debug_info` that builds the [`Index`]: what cannot be found later
//! without reading every unit again. Nothing of a DIE is copied but what a lookup needs to
//! find it: a type is a 64-bit hash of its qualified name, its offset and the id of the scope
//! it is declared in (16 bytes); its members, variants, sizes and lines are read from the
//! mapped sections when a read asks for them ([`super::DebugInfo::die`]).
//!
//! Qualified names are `namespace::…::Type::Nested::Name`, the segments of enclosing
//! namespaces and types (not subprograms) joined by `::`, as rustc prints type names. Their
//! hash is FNV-1a over those bytes, built incrementally down the tree (each scope keeps the
//! state after `prefix::name::`), so no name is ever assembled to be hashed.

use super::{AwaiteeVar, Subprogram};
use crate::addr_hash::{fnv1a as fnv, FNV_BASIS};
use gimli::{AttributeValue, RunTimeEndian};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) type R<'a> = gimli::EndianSlice<'a, RunTimeEndian>;

/// The scope id of the root (no enclosing namespace or type).
pub(super) const ROOT: u32 = u32::MAX;

/// Subprograms the reader looks up: tokio's task `poll` functions (a task vtable's `poll` →
/// the future type `T`) and the `block_on`s (their future type `F`: the root futures of
/// threads). Every other subprogram is skipped: a service has hundreds of thousands.
pub const KEPT_SUBPROGRAMS: &[&str] = &[
    "tokio::runtime::task::raw::",
    "tokio::runtime::park::CachedParkThread::block_on<",
    "tokio::runtime::scheduler::current_thread::CurrentThread::block_on<",
];

/// The hash of a qualified name, as the index keys it.
pub(super) fn name_hash(name: &str) -> u64 {
    fnv(FNV_BASIS, name.as_bytes())
}

/// A namespace or type that encloses indexed types.
pub(super) struct Scope {
    /// The enclosing scope, or [`ROOT`].
    pub parent: u32,
    /// Its own name segment.
    pub name: Box<str>,
}

/// What is kept of a unit to read its DIEs later.
pub(super) struct UnitInfo {
    /// Where it starts in the index's offset space ([`Place::base`]): the `.debug_info`
    /// offset of its header for the executable's units.
    pub offset: u64,
    /// Its header's offset in its own `.debug_info` (a split unit's: in the `.debug_info.dwo`
    /// of its file, or of its contribution to a package).
    pub header: u64,
    /// Its number among the split units, for a split unit.
    pub split: Option<u32>,
    /// `DW_AT_str_offsets_base` (DWARF 5 `strx` forms).
    pub str_offsets_base: usize,
    /// Its line program's file index → id in [`Index::files`] (`u32::MAX`: none).
    pub files: Vec<u32>,
}

/// The index of one executable's DWARF.
#[derive(Default)]
pub(super) struct Index {
    /// Units by offset ([`UnitInfo::offset`]), ascending.
    pub units: Vec<UnitInfo>,
    /// The end of the last unit in the offset space.
    pub end: u64,
    /// (qualified-name hash, DIE offset) of every named type, sorted.
    pub names: Vec<(u64, u64)>,
    /// (DIE offset, scope id) of every named type declared inside a scope, sorted by offset.
    pub scoped: Vec<(u64, u32)>,
    /// Scopes by id.
    pub scopes: Vec<Scope>,
    /// File paths, each once.
    pub files: Vec<Arc<str>>,
    /// [`KEPT_SUBPROGRAMS`] by entry address (declarations: keys from
    /// [`super::DECL_SUBPROGRAM_KEYS`] on).
    pub subprograms: HashMap<u64, Subprogram>,
    /// `dyn Future`/`Stream`/`Body` vtable address → the concrete type (or its
    /// `{vtable_type}`).
    pub vtables: HashMap<u64, u64>,
    /// `__awaitee` locals by the qualified-name hash of their async body.
    pub awaitees: HashMap<u64, Vec<AwaiteeVar>>,
    /// TLS offsets and types of tokio's `CONTEXT` thread-local.
    pub context_tls: Vec<(u64, u64)>,
    /// Whether some struct member has a non-zero offset (type layouts, not line tables only).
    pub has_layouts: bool,
    /// Whether some type is declared in a `tokio` namespace.
    pub has_tokio: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LevelKind {
    Namespace,
    Type,
    Subprogram,
}

/// One enclosing namespace, type or subprogram during the walk.
struct Level<'a> {
    depth: isize,
    kind: LevelKind,
    name: &'a [u8],
    /// FNV state after `prefix::name::` (namespaces and types; a subprogram's is its parent's).
    state: u64,
    /// FNV of the subprogram's qualified name (subprograms).
    own: u64,
    /// The scope id, once a type inside needed it.
    scope: Option<u32>,
    /// The key of a kept subprogram (its template parameters are kept).
    kept: Option<u64>,
}

/// Where a unit's DIEs are in the index's offset space: the executable's own units at their
/// `.debug_info` offsets; split units after them, each at the offset the index gave it
/// ([`super::split`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    /// The offset of the unit's first byte (its header).
    pub base: u64,
    /// A split unit: a `DW_FORM_ref_addr` in it would point into its own file (rustc makes
    /// none), which is not followed.
    pub split: bool,
}

impl Place {
    /// The offset of the DIE at `at` in the unit.
    pub(super) fn die(self, at: gimli::UnitOffset) -> u64 {
        self.base + at.0 as u64
    }

    /// A reference attribute of the unit, as an offset.
    pub(super) fn reference(self, v: AttributeValue<R<'_>>) -> Option<u64> {
        match v {
            AttributeValue::UnitRef(o) => Some(self.die(o)),
            AttributeValue::DebugInfoRef(o) if !self.split => Some(o.0 as u64),
            _ => None,
        }
    }
}

/// Builds the [`Index`], one unit at a time ([`Scan::unit`]), in one pass over each.
#[derive(Default)]
pub(super) struct Scan {
    ix: Index,
    file_ids: HashMap<Arc<str>, u32>,
    scope_ids: HashMap<(u32, u64), u32>,
    decl_subprograms: u64,
    qname: String,
}

/// Where a unit to index is: its DWARF, its place, and the DWARF and unit whose line program
/// numbers its `DW_AT_decl_file`s (its own; a split unit's skeleton's).
pub(super) struct UnitAt<'u, 'a> {
    /// The unit's DWARF (for a split unit, its split file's with the executable's addresses).
    pub dwarf: &'u gimli::Dwarf<R<'a>>,
    /// The unit (a split unit with the skeleton's address base copied in).
    pub unit: &'u gimli::Unit<R<'a>>,
    /// Where its DIEs are in the index's offset space.
    pub place: Place,
    /// The split unit's number ([`super::split::SplitUnits::dwarf`]), for a split unit.
    pub split: Option<u32>,
    /// The DWARF and unit of its line program.
    pub lines: (&'u gimli::Dwarf<R<'a>>, &'u gimli::Unit<R<'a>>),
}

impl Scan {
    /// The offset the next split unit gets: after every unit indexed so far, and at least
    /// `floor` (the end of the executable's `.debug_info`).
    pub(super) fn next_split_base(&self, floor: u64) -> u64 {
        self.ix.end.max(floor)
    }

    /// Indexes one unit.
    pub(super) fn unit(&mut self, at: UnitAt<'_, '_>) -> gimli::Result<()> {
        let UnitAt {
            dwarf,
            unit,
            place,
            split,
            lines,
        } = at;
        let ix = &mut self.ix;
        let qname = &mut self.qname;
        let files = unit_files(lines.0, lines.1, &mut ix.files, &mut self.file_ids);
        let unit_index = ix.units.len();
        let Some(header) = unit.header.debug_info_offset() else {
            return Ok(());
        };
        let header = header.0 as u64;
        ix.units.push(UnitInfo {
            offset: place.base,
            header,
            split,
            str_offsets_base: unit.str_offsets_base.0,
            files,
        });
        ix.end = ix
            .end
            .max(place.base + unit.header.length_including_self() as u64);
        // An index into `.debug_addr` (split units' addresses and TLS offsets).
        let addr = |i: u64| {
            let i = usize::try_from(i).ok()?;
            dwarf.address(unit, gimli::DebugAddrIndex(i)).ok()
        };
        let mut attrs = Vec::new();
        let mut levels: Vec<Level<'_>> = Vec::new();
        let mut raw = unit.entries_raw(None)?;
        while !raw.is_empty() {
            let depth = raw.next_depth();
            let at = raw.next_offset();
            let Some(abbrev) = raw.read_abbreviation()? else {
                continue;
            };
            while levels.last().is_some_and(|l| l.depth >= depth) {
                levels.pop();
            }
            let tag = abbrev.tag();
            let wanted = matches!(
                tag,
                gimli::DW_TAG_namespace
                    | gimli::DW_TAG_subprogram
                    | gimli::DW_TAG_variable
                    | gimli::DW_TAG_structure_type
                    | gimli::DW_TAG_union_type
                    | gimli::DW_TAG_enumeration_type
                    | gimli::DW_TAG_base_type
                    | gimli::DW_TAG_pointer_type
                    | gimli::DW_TAG_reference_type
                    | gimli::DW_TAG_typedef
                    | gimli::DW_TAG_template_type_parameter
            ) || (tag == gimli::DW_TAG_member && !ix.has_layouts);
            if !wanted {
                raw.skip_attributes(abbrev.attributes())?;
                continue;
            }
            raw.read_attributes(abbrev.attributes(), &mut attrs)?;
            let goff = place.die(at);
            let attr =
                |name: gimli::DwAt| attrs.iter().find(|a| a.name() == name).map(|a| a.value());
            let name: &[u8] = match attr(gimli::DW_AT_name) {
                Some(v) => dwarf.attr_string(unit, v).map(|s| s.slice()).unwrap_or(&[]),
                None => &[],
            };
            let parent_state = levels
                .iter()
                .rev()
                .find(|l| l.kind != LevelKind::Subprogram)
                .map_or(FNV_BASIS, |l| l.state);
            let has_children = abbrev.has_children();
            match tag {
                gimli::DW_TAG_namespace => {
                    if levels.is_empty() && name == b"tokio" {
                        ix.has_tokio = true;
                    }
                    let state = fnv(fnv(parent_state, name), b"::");
                    levels.push(Level {
                        depth,
                        kind: LevelKind::Namespace,
                        name,
                        state,
                        own: 0,
                        scope: None,
                        kept: None,
                    });
                }
                gimli::DW_TAG_subprogram => {
                    let own = fnv(parent_state, name);
                    let kept = if levels.first().is_some_and(|l| l.name == b"tokio") {
                        qualified(&levels, name, qname);
                        KEPT_SUBPROGRAMS
                            .iter()
                            .any(|p| qname.starts_with(p))
                            .then(|| {
                                let pc = attr(gimli::DW_AT_low_pc)
                                    .and_then(|v| dwarf.attr_address(unit, v).ok().flatten());
                                match pc {
                                    Some(pc) => pc,
                                    None => {
                                        self.decl_subprograms += 1;
                                        super::DECL_SUBPROGRAM_KEYS + self.decl_subprograms
                                    }
                                }
                            })
                    } else {
                        None
                    };
                    if let Some(key) = kept {
                        ix.subprograms.insert(
                            key,
                            Subprogram {
                                name: qname.clone(),
                                template_types: Vec::new(),
                            },
                        );
                    }
                    if has_children {
                        levels.push(Level {
                            depth,
                            kind: LevelKind::Subprogram,
                            name,
                            state: parent_state,
                            own,
                            scope: None,
                            kept,
                        });
                    }
                }
                gimli::DW_TAG_template_type_parameter => {
                    let parent = levels.last().filter(|l| l.depth == depth - 1);
                    if let Some(key) = parent.and_then(|l| l.kept) {
                        let ty = attr(gimli::DW_AT_type).and_then(|v| place.reference(v));
                        if let (Some(sp), Some(ty)) = (ix.subprograms.get_mut(&key), ty) {
                            sp.template_types
                                .push((String::from_utf8_lossy(name).into_owned(), ty));
                        }
                    }
                }
                gimli::DW_TAG_member => {
                    if attr(gimli::DW_AT_data_member_location)
                        .and_then(|v| v.udata_value())
                        .is_some_and(|o| o > 0)
                    {
                        ix.has_layouts = true;
                    }
                }
                gimli::DW_TAG_variable => {
                    let var = Var {
                        attrs: &attrs,
                        name,
                        place,
                        addr: &addr,
                    };
                    variable(ix, &levels, var, unit_index);
                }
                _ => {
                    // A type.
                    if !name.is_empty() {
                        ix.names.push((fnv(parent_state, name), goff));
                        let scoped = levels.iter().any(|l| l.kind != LevelKind::Subprogram);
                        if scoped {
                            let scope = scope_of(&mut levels, &mut ix.scopes, &mut self.scope_ids);
                            ix.scoped.push((goff, scope));
                        }
                    }
                    if has_children
                        && matches!(
                            tag,
                            gimli::DW_TAG_structure_type
                                | gimli::DW_TAG_union_type
                                | gimli::DW_TAG_enumeration_type
                        )
                    {
                        levels.push(Level {
                            depth,
                            kind: LevelKind::Type,
                            name,
                            state: fnv(fnv(parent_state, name), b"::"),
                            own: 0,
                            scope: None,
                            kept: None,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The index, sorted and trimmed.
    pub(super) fn finish(self) -> Index {
        let mut ix = self.ix;
        ix.names.sort_unstable();
        ix.scoped.sort_unstable();
        ix.names.shrink_to_fit();
        ix.scoped.shrink_to_fit();
        ix.scopes.shrink_to_fit();
        ix
    }
}

/// `levels`' qualified name (namespaces and types) followed by `name`, into `out`.
fn qualified(levels: &[Level<'_>], name: &[u8], out: &mut String) {
    out.clear();
    for l in levels.iter().filter(|l| l.kind != LevelKind::Subprogram) {
        out.push_str(&String::from_utf8_lossy(l.name));
        out.push_str("::");
    }
    out.push_str(&String::from_utf8_lossy(name));
}

/// The scope id of the innermost namespace or type of `levels`, making ids for the levels
/// that have none yet (one id per distinct qualified scope, whichever unit declares it).
fn scope_of(
    levels: &mut [Level<'_>],
    scopes: &mut Vec<Scope>,
    ids: &mut HashMap<(u32, u64), u32>,
) -> u32 {
    let mut parent = ROOT;
    for l in levels
        .iter_mut()
        .filter(|l| l.kind != LevelKind::Subprogram)
    {
        parent = match l.scope {
            Some(id) => id,
            None => {
                let key = (parent, fnv(FNV_BASIS, l.name));
                let id = *ids.entry(key).or_insert_with(|| {
                    scopes.push(Scope {
                        parent,
                        name: String::from_utf8_lossy(l.name).into(),
                    });
                    (scopes.len() - 1) as u32
                });
                l.scope = Some(id);
                id
            }
        };
    }
    parent
}

/// The file table of `unit`'s line program, each path interned in `files`.
fn unit_files(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    files: &mut Vec<Arc<str>>,
    ids: &mut HashMap<Arc<str>, u32>,
) -> Vec<u32> {
    let Some(lp) = &unit.line_program else {
        return Vec::new();
    };
    let header = lp.header();
    let count = header.file_names().len() as u64;
    // DWARF 5 numbers files from 0, earlier versions from 1.
    let first = u64::from(header.version() < 5);
    let mut out = vec![u32::MAX; (count + first) as usize];
    let mut path = String::new();
    for index in first..count + first {
        let Some(file) = header.file(index) else {
            continue;
        };
        path.clear();
        if let Some(dir) = file.directory(header) {
            if let Ok(d) = dwarf.attr_string(unit, dir) {
                path.push_str(&d.to_string_lossy());
            }
        }
        if let Ok(n) = dwarf.attr_string(unit, file.path_name()) {
            let n = n.to_string_lossy();
            if n.starts_with('/') || path.is_empty() {
                path.clear();
                path.push_str(&n);
            } else {
                if !path.ends_with('/') {
                    path.push('/');
                }
                path.push_str(&n);
            }
        }
        // A relative path in a dependency's unit (some of them name a crate's own files
        // `src/…`) is relative to that crate's directory: joined, it reads
        // `actix-web-4.18.1/src/resource.rs` like the crate's other files, not as a file of
        // the program's own crate.
        if !path.starts_with('/') {
            if let Some(dir) = unit.comp_dir.as_ref().map(|d| d.to_string_lossy()) {
                if dir.contains("/registry/src/") || dir.contains("/git/checkouts/") {
                    path.insert(0, '/');
                    path.insert_str(0, dir.trim_end_matches('/'));
                }
            }
        }
        let id = match ids.get(path.as_str()) {
            Some(&id) => id,
            None => {
                let p: Arc<str> = path.as_str().into();
                files.push(p.clone());
                let id = (files.len() - 1) as u32;
                ids.insert(p, id);
                id
            }
        };
        out[index as usize] = id;
    }
    out
}

/// A variable DIE's attributes, and how to read them.
struct Var<'v, 'a> {
    attrs: &'v [gimli::Attribute<R<'a>>],
    name: &'v [u8],
    place: Place,
    /// An index into `.debug_addr` → the address (or constant) there.
    addr: &'v dyn Fn(u64) -> Option<u64>,
}

/// The address a static's location expression gives: `DW_OP_addr A`, or in a split unit
/// `DW_OP_addrx N` / `DW_OP_GNU_addr_index N` (the `N`th entry of the unit's `.debug_addr`).
/// Anything more than the one operation is not a static's plain address.
fn static_address(expr: &[u8], addr: &dyn Fn(u64) -> Option<u64>) -> Option<u64> {
    match *expr.first()? {
        // DW_OP_addr
        0x03 if expr.len() == 9 => Some(u64::from_le_bytes(expr[1..9].try_into().ok()?)),
        // DW_OP_addrx, DW_OP_GNU_addr_index
        0xa1 | 0xfb => {
            let (n, len) = read_uleb_len(&expr[1..])?;
            (1 + len == expr.len()).then_some(())?;
            addr(n)
        }
        _ => None,
    }
}

/// The TLS offset a thread-local's location expression gives: `DW_OP_const8u OFF` or, in a
/// split unit, `DW_OP_constx N` / `DW_OP_GNU_const_index N` (the offset is the `N`th entry of
/// `.debug_addr`), then `DW_OP_GNU_push_tls_address` or `DW_OP_form_tls_address`.
fn tls_offset(expr: &[u8], addr: &dyn Fn(u64) -> Option<u64>) -> Option<u64> {
    let tls = |b: Option<&u8>| matches!(b, Some(0xe0 | 0x9b));
    match *expr.first()? {
        // DW_OP_const8u
        0x0e if expr.len() >= 10 && tls(expr.get(9)) => {
            Some(u64::from_le_bytes(expr[1..9].try_into().ok()?))
        }
        // DW_OP_constx, DW_OP_GNU_const_index
        0xa2 | 0xfc => {
            let (n, len) = read_uleb_len(&expr[1..])?;
            tls(expr.get(1 + len)).then_some(())?;
            addr(n)
        }
        _ => None,
    }
}

/// The variables the reader needs: `__awaitee` locals, tokio's `CONTEXT` thread-local, and
/// `<T as Future>::{vtable}` statics.
fn variable(ix: &mut Index, levels: &[Level<'_>], var: Var<'_, '_>, unit_index: usize) {
    let Var {
        attrs,
        name,
        place,
        addr,
    } = var;
    let attr = |n: gimli::DwAt| attrs.iter().find(|a| a.name() == n).map(|a| a.value());
    let bytes = match attr(gimli::DW_AT_location) {
        Some(AttributeValue::Exprloc(expr)) => expr.0.slice(),
        _ => &[],
    };
    let ty = attr(gimli::DW_AT_type).and_then(|v| place.reference(v));
    if name == b"__awaitee" {
        // Location `DW_OP_fbreg N, DW_OP_deref, DW_OP_plus_uconst OFF`: OFF is the offset.
        let offset = bytes
            .iter()
            .rposition(|&b| b == 0x23)
            .and_then(|i| read_uleb(&bytes[i + 1..]));
        let func = levels
            .iter()
            .rev()
            .find(|l| l.kind == LevelKind::Subprogram);
        let file = match attr(gimli::DW_AT_decl_file) {
            Some(AttributeValue::FileIndex(f)) => ix.units[unit_index]
                .files
                .get(f as usize)
                .and_then(|&id| ix.files.get(id as usize))
                .cloned(),
            _ => None,
        };
        let line = attr(gimli::DW_AT_decl_line).and_then(|l| l.udata_value());
        if let (Some(func), Some(file), Some(line)) = (func, file, line) {
            ix.awaitees.entry(func.own).or_default().push(AwaiteeVar {
                offset,
                ty,
                file,
                line: line as u32,
            });
        }
        return;
    }
    if bytes.is_empty() {
        return;
    }
    let in_ns = |n: &[u8]| levels.iter().any(|l| l.name == n);
    if name == b"__RUST_STD_INTERNAL_VAL" && in_ns(b"CONTEXT") && in_ns(b"context") {
        if let (Some(off), Some(ty)) = (tls_offset(bytes, addr), ty) {
            ix.context_tls.push((off, ty));
        }
        return;
    }
    let is_vtable = name.ends_with(b"::{vtable}")
        && [&b"Future>"[..], b"Stream>", b"Body>"]
            .iter()
            .any(|k| name.windows(k.len()).any(|w| w == *k));
    if !is_vtable {
        return;
    }
    // `<T as core::future::future::Future>::{vtable}` (or `…Stream>`, a boxed stream a
    // future waits on) at its address. The concrete type is the `DW_AT_containing_type` of
    // the variable (older rustc) or of its `{vtable_type}` (resolved at lookup).
    if let Some(at) = static_address(bytes, addr) {
        let containing = attr(gimli::DW_AT_containing_type).and_then(|v| place.reference(v));
        if let Some(t) = containing.or(ty) {
            ix.vtables.insert(at, t);
        }
    }
}

fn read_uleb(bytes: &[u8]) -> Option<u64> {
    read_uleb_len(bytes).map(|(v, _)| v)
}

/// An unsigned LEB128 at the start of `bytes`, and how many bytes it takes.
fn read_uleb_len(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_name_built_by_segments_is_the_hash_of_the_whole_name() {
        let state = fnv(fnv(FNV_BASIS, b"tokio"), b"::");
        let state = fnv(fnv(state, b"runtime"), b"::");
        assert_eq!(fnv(state, b"Handle"), name_hash("tokio::runtime::Handle"));
        assert_ne!(name_hash("a::b"), name_hash("a::c"));
    }

    #[test]
    fn statics_and_thread_locals_are_found_in_plain_and_split_units() {
        // `.debug_addr` entries of a split unit.
        let addr = |i: u64| [0x1000, 0x2000].get(i as usize).copied();
        let mut plain = vec![0x03];
        plain.extend(0x4000u64.to_le_bytes());
        assert_eq!(static_address(&plain, &addr), Some(0x4000));
        // DW_OP_GNU_addr_index 1, DW_OP_addrx 0.
        assert_eq!(static_address(&[0xfb, 0x01], &addr), Some(0x2000));
        assert_eq!(static_address(&[0xa1, 0x00], &addr), Some(0x1000));
        // More than the address, an index past the table, a cut expression: not a static.
        assert_eq!(static_address(&[0xfb, 0x01, 0x06], &addr), None);
        assert_eq!(static_address(&[0xfb, 0x05], &addr), None);
        assert_eq!(static_address(&[0xfb, 0x81], &addr), None);
        assert_eq!(static_address(&plain[..5], &addr), None);
        assert_eq!(static_address(&[], &addr), None);

        let mut tls = vec![0x0e];
        tls.extend(0x38u64.to_le_bytes());
        tls.push(0xe0);
        assert_eq!(tls_offset(&tls, &addr), Some(0x38));
        // DW_OP_GNU_const_index 0 / DW_OP_constx 1, then the TLS operation.
        assert_eq!(tls_offset(&[0xfc, 0x00, 0xe0], &addr), Some(0x1000));
        assert_eq!(tls_offset(&[0xa2, 0x01, 0x9b], &addr), Some(0x2000));
        assert_eq!(tls_offset(&[0xfc, 0x00], &addr), None);
        assert_eq!(tls_offset(&[0xfc, 0x00, 0x06], &addr), None);
        assert_eq!(tls_offset(&tls[..9], &addr), None);
    }

    #[test]
    fn references_are_offsets_in_the_unit_s_place() {
        let own = Place {
            base: 0x100,
            split: false,
        };
        let split = Place {
            base: 0x9000,
            split: true,
        };
        let unit_ref = AttributeValue::UnitRef(gimli::UnitOffset(0x20));
        let info_ref = AttributeValue::DebugInfoRef(gimli::DebugInfoOffset(0x40));
        assert_eq!(own.reference(unit_ref), Some(0x120));
        assert_eq!(split.reference(unit_ref), Some(0x9020));
        assert_eq!(own.reference(info_ref), Some(0x40));
        assert_eq!(split.reference(info_ref), None);
        assert_eq!(split.die(gimli::UnitOffset(0xb)), 0x900b);
    }

    #[test]
    fn the_kept_subprograms_cover_every_block_on_the_reader_looks_for() {
        for f in crate::tokio::layout::BLOCK_ON_FNS {
            assert!(KEPT_SUBPROGRAMS.iter().any(|k| f.starts_with(k)), "{f}");
        }
        assert!(KEPT_SUBPROGRAMS
            .iter()
            .any(|k| "tokio::runtime::task::raw::poll<".starts_with(k)));
    }
}
