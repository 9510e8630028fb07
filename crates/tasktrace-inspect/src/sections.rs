//! The DWARF sections of an ELF file, decompressed where the file compresses them:
//! `SHF_COMPRESSED` sections (zlib or zstd, as `ld --compress-debug-sections`, `objcopy` and
//! distributions' debug files make them) and the older `.zdebug_*` ones. Read by the type
//! reader ([`crate::debuginfo`]) and the native-frame symboliser ([`crate::unwind`]) alike,
//! from an executable or debug file (`.debug_info`, …) or from a split DWARF file
//! (`.debug_info.dwo`, …, [`crate::split_dwarf`]).

use object::{Object, ObjectSection};
use std::borrow::Cow;

/// A compressed section may claim at most this ratio (plus a page): deflate cannot exceed
/// about 1032:1, DWARF compresses 3-10:1, and a corrupt header must not make the reader
/// allocate gigabytes.
const MAX_RATIO: u64 = 1100;

/// The bytes of DWARF section `id` of `obj`, decompressed when compressed; empty when the file
/// has no such section. The error names the section and what is wrong with it.
pub(crate) fn dwarf_section<'d>(
    obj: &object::File<'d>,
    id: gimli::SectionId,
) -> Result<Cow<'d, [u8]>, String> {
    named(obj, id.name())
}

/// The bytes of the split DWARF section `id` of `obj` (a `.dwo` file or a `.dwp` package:
/// `.debug_info.dwo`, `.debug_cu_index`, …), as [`dwarf_section`]; empty when `id` has no
/// split form or the file has no such section.
pub(crate) fn dwo_section<'d>(
    obj: &object::File<'d>,
    id: gimli::SectionId,
) -> Result<Cow<'d, [u8]>, String> {
    match id.dwo_name() {
        Some(name) => named(obj, name),
        None => Ok(Cow::Borrowed(&[])),
    }
}

fn named<'d>(obj: &object::File<'d>, name: &str) -> Result<Cow<'d, [u8]>, String> {
    let Some(section) = obj.section_by_name(name) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let compressed = section
        .compressed_data()
        .map_err(|e| format!("section {name}: {e}"))?;
    let limit = (compressed.data.len() as u64)
        .saturating_mul(MAX_RATIO)
        .saturating_add(4096);
    if compressed.format != object::CompressionFormat::None && compressed.uncompressed_size > limit
    {
        return Err(format!(
            "section {name}: {} compressed bytes claim to hold {}",
            compressed.data.len(),
            compressed.uncompressed_size
        ));
    }
    compressed
        .decompress()
        .map_err(|e| format!("section {name}: cannot decompress it: {e}"))
}

/// Where a section's bytes are kept: in the file they were read from (mapped, never copied),
/// or in the heap when the file compresses them.
pub(crate) enum Stored {
    /// A range of the file's bytes.
    Mapped(std::ops::Range<usize>),
    /// Decompressed into the heap.
    Owned(Vec<u8>),
}

impl Stored {
    /// Keeps `data`, a section of `file` ([`dwarf_section`], [`dwo_section`]): its range when
    /// it is a slice of `file`, else the bytes.
    pub(crate) fn new(file: &[u8], data: Cow<'_, [u8]>) -> Stored {
        match data {
            Cow::Borrowed(b) => {
                let start = (b.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize);
                match start.checked_add(b.len()) {
                    Some(end) if end <= file.len() => Stored::Mapped(start..end),
                    _ => Stored::Owned(b.to_vec()),
                }
            }
            Cow::Owned(v) => Stored::Owned(v),
        }
    }

    /// The section's bytes, `file` being the file it was read from.
    pub(crate) fn bytes<'a>(&'a self, file: &'a [u8]) -> &'a [u8] {
        match self {
            Stored::Mapped(r) => file.get(r.clone()).unwrap_or(&[]),
            Stored::Owned(v) => v,
        }
    }
}
