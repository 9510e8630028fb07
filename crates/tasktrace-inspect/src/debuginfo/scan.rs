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
    /// `.debug_info` offset of its header.
    pub offset: u64,
    /// `DW_AT_str_offsets_base` (DWARF 5 `strx` forms).
    pub str_offsets_base: usize,
    /// Its line program's file index → id in [`Index::files`] (`u32::MAX`: none).
    pub files: Vec<u32>,
}

/// The index of one executable's DWARF.
#[derive(Default)]
pub(super) struct Index {
    /// Units by `.debug_info` offset, ascending.
    pub units: Vec<UnitInfo>,
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

/// Builds the index in one pass over `dwarf`; `done(start, end)` is told each `.debug_info`
/// range the pass is finished with (so its pages can be let go).
pub(super) fn scan(
    dwarf: &gimli::Dwarf<R<'_>>,
    mut done: impl FnMut(usize, usize),
) -> gimli::Result<Index> {
    let mut ix = Index::default();
    let mut file_ids: HashMap<Arc<str>, u32> = HashMap::new();
    let mut scope_ids: HashMap<(u32, u64), u32> = HashMap::new();
    let mut decl_subprograms = 0u64;
    let mut attrs = Vec::new();
    let mut qname = String::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let Some(unit_offset) = header.debug_info_offset() else {
            continue;
        };
        let unit = dwarf.unit(header)?;
        let files = unit_files(dwarf, &unit, &mut ix.files, &mut file_ids);
        let unit_index = ix.units.len();
        ix.units.push(UnitInfo {
            offset: unit_offset.0 as u64,
            str_offsets_base: unit.str_offsets_base.0,
            files,
        });
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
            let goff = match at.to_debug_info_offset(&unit.header) {
                Some(o) => o.0 as u64,
                None => continue,
            };
            let attr =
                |name: gimli::DwAt| attrs.iter().find(|a| a.name() == name).map(|a| a.value());
            let name: &[u8] = match attr(gimli::DW_AT_name) {
                Some(v) => dwarf
                    .attr_string(&unit, v)
                    .map(|s| s.slice())
                    .unwrap_or(&[]),
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
                        qualified(&levels, name, &mut qname);
                        KEPT_SUBPROGRAMS
                            .iter()
                            .any(|p| qname.starts_with(p))
                            .then(|| match attr(gimli::DW_AT_low_pc) {
                                Some(AttributeValue::Addr(pc)) => pc,
                                _ => {
                                    decl_subprograms += 1;
                                    super::DECL_SUBPROGRAM_KEYS + decl_subprograms
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
                        let ty = attr(gimli::DW_AT_type).and_then(|v| ref_offset(&unit.header, v));
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
                    variable(&unit.header, &mut ix, &levels, &attrs, name, unit_index);
                }
                _ => {
                    // A type.
                    if !name.is_empty() {
                        ix.names.push((fnv(parent_state, name), goff));
                        let scoped = levels.iter().any(|l| l.kind != LevelKind::Subprogram);
                        if scoped {
                            let scope = scope_of(&mut levels, &mut ix.scopes, &mut scope_ids);
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
        let end = unit_offset.0 + unit.header.length_including_self();
        done(unit_offset.0, end);
    }
    ix.names.sort_unstable();
    ix.scoped.sort_unstable();
    ix.names.shrink_to_fit();
    ix.scoped.shrink_to_fit();
    ix.scopes.shrink_to_fit();
    Ok(ix)
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

/// The variables the reader needs: `__awaitee` locals, tokio's `CONTEXT` thread-local, and
/// `<T as Future>::{vtable}` statics.
fn variable(
    header: &gimli::UnitHeader<R<'_>>,
    ix: &mut Index,
    levels: &[Level<'_>],
    attrs: &[gimli::Attribute<R<'_>>],
    name: &[u8],
    unit_index: usize,
) {
    let attr = |n: gimli::DwAt| attrs.iter().find(|a| a.name() == n).map(|a| a.value());
    let bytes = match attr(gimli::DW_AT_location) {
        Some(AttributeValue::Exprloc(expr)) => expr.0.slice(),
        _ => &[],
    };
    let ty = attr(gimli::DW_AT_type).and_then(|v| ref_offset(header, v));
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
        // DW_OP_const8u off (0x0e), DW_OP_GNU_push_tls_address (0xe0) / form_tls_address.
        if bytes.len() >= 10 && bytes[0] == 0x0e && (bytes[9] == 0xe0 || bytes[9] == 0x9b) {
            let off = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
            if let Some(ty) = ty {
                ix.context_tls.push((off, ty));
            }
        }
        return;
    }
    let is_vtable = name.ends_with(b"::{vtable}")
        && [&b"Future>"[..], b"Stream>", b"Body>"]
            .iter()
            .any(|k| name.windows(k.len()).any(|w| w == *k));
    if is_vtable && bytes.len() == 9 && bytes[0] == 0x03 {
        // `<T as core::future::future::Future>::{vtable}` (or `…Stream>`, a boxed stream a
        // future waits on) at DW_OP_addr A (0x03). The concrete type is the
        // `DW_AT_containing_type` of the variable (older rustc) or of its `{vtable_type}`
        // (resolved at lookup).
        let addr = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let containing = attr(gimli::DW_AT_containing_type).and_then(|v| ref_offset(header, v));
        if let Some(t) = containing.or(ty) {
            ix.vtables.insert(addr, t);
        }
    }
}

/// A reference attribute as a `.debug_info` offset.
pub(super) fn ref_offset(
    header: &gimli::UnitHeader<R<'_>>,
    v: AttributeValue<R<'_>>,
) -> Option<u64> {
    match v {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(header).map(|o| o.0 as u64),
        AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
        _ => None,
    }
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
    fn the_hash_of_a_name_built_by_segments_is_the_hash_of_the_whole_name() {
        let state = fnv(fnv(FNV_BASIS, b"tokio"), b"::");
        let state = fnv(fnv(state, b"runtime"), b"::");
        assert_eq!(fnv(state, b"Handle"), name_hash("tokio::runtime::Handle"));
        assert_ne!(name_hash("a::b"), name_hash("a::c"));
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
