//! The executable that dumped a core, for a core read without `--exe`.
//!
//! A core names it: its `NT_FILE` note lists every file mapping with the file's path, and the
//! main program is the file mapped at the entry point (`AT_ENTRY` of `NT_AUXV`); without that
//! mapping, `AT_EXECFN` points at the path the program was executed by (in the core's stack
//! memory; as given to `execve`, so perhaps relative). That path is the dumping machine's (or
//! container's): it is looked up under the sysroot first, then as it is
//! ([`TargetFiles::candidates`]).
//!
//! A file found there is taken only if it is the image the core holds: cores keep the first
//! page of each file mapping, so the build id of the executable mapped is read from the core
//! itself (its ELF header, program headers, `PT_NOTE`) and compared. When no file there fits,
//! that build id is asked of the debuginfod servers (`/buildid/ID/executable`,
//! [`crate::debuginfod`]). When nothing fits, [`Error::NoExecutable`] lists each place looked.

use super::core_file::CoreFile;
use super::files::{TargetFiles, DELETED};
use super::{MappedFile, Target};
use crate::bytes::FileBytes;
use crate::debugfile::hex;
use crate::debuginfod;
use crate::error::{Error, Looked, Result};
use std::path::Path;

/// The executable a core was dumped by, as found.
#[derive(Clone, Debug)]
pub struct CoreExecutable {
    /// Its path in the dumping process.
    pub path_in_core: String,
    /// Where this process reads it.
    pub file: String,
}

/// Finds the executable that dumped `core` (read from `core_path`) through `files` (see the
/// module doc).
pub fn find(core: &CoreFile, core_path: &str, files: &TargetFiles) -> Result<CoreExecutable> {
    let maps = core.mapped_files();
    let entry = core.at_entry();
    let named = entry
        .and_then(|e| main_mapping(&maps, e))
        .map(|m| m.path.clone())
        .or_else(|| core.execfn());
    let id = entry.and_then(|e| image_build_id(core, &maps, e));
    let mut looked = Vec::new();
    let fits = |p: &Path| -> std::result::Result<(), String> {
        let data =
            FileBytes::open(&p.to_string_lossy()).map_err(|e| format!("cannot read: {e}"))?;
        let obj = object::File::parse(&*data).map_err(|_| "not an ELF file".to_string())?;
        match (&id, crate::debugfile::build_id(&obj)) {
            (Some(want), Some(got)) if *want != got => Err(format!(
                "its build id {} is not the one in the core, {}",
                hex(&got),
                hex(want)
            )),
            _ => Ok(()),
        }
    };
    if let Some(path) = &named {
        let path = path.strip_suffix(DELETED).unwrap_or(path);
        for p in files.candidates(path) {
            if !std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                looked.push(Looked::missing(&p));
                continue;
            }
            match fits(&p) {
                Ok(()) => {
                    return Ok(CoreExecutable {
                        path_in_core: path.to_string(),
                        file: p.display().to_string(),
                    })
                }
                Err(why) => looked.push(Looked::unfit(&p, why)),
            }
        }
    }
    if let Some(id) = &id {
        let client = debuginfod::Client::from_env();
        if let Some(p) = client.find(id, debuginfod::Artifact::Executable, &fits, &mut looked) {
            return Ok(CoreExecutable {
                path_in_core: named.unwrap_or_else(|| p.display().to_string()),
                file: p.display().to_string(),
            });
        }
    }
    Err(Error::NoExecutable {
        core: core_path.to_string(),
        named,
        looked,
    })
}

/// The mapping of the main program: the file mapped at the entry point.
fn main_mapping(maps: &[MappedFile], entry: u64) -> Option<&MappedFile> {
    maps.iter().find(|m| (m.start..m.end).contains(&entry))
}

/// ELF64 `PT_LOAD`, `PT_NOTE`, `NT_GNU_BUILD_ID`.
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;
/// Most program headers and note bytes read: a crafted core cannot make the reader allocate
/// more.
const MAX_PHDRS: usize = 256;
const MAX_NOTES: u64 = 64 << 10;

/// The build id of the main program's image as the core holds it: its ELF header and program
/// headers at the start of its first mapping, its `PT_NOTE` segments where they are loaded.
fn image_build_id(core: &CoreFile, maps: &[MappedFile], entry: u64) -> Option<Vec<u8>> {
    let main = main_mapping(maps, entry)?;
    let first = maps
        .iter()
        .filter(|m| m.path == main.path && m.offset == 0)
        .min_by_key(|m| m.start)?;
    let base = first.start;
    let mut ehdr = [0u8; 64];
    core.read(base, &mut ehdr).ok()?;
    // 64-bit, little-endian ELF (the only cores read).
    if &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
        return None;
    }
    let u16_at =
        |b: &[u8], at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let u32_at =
        |b: &[u8], at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let u64_at =
        |b: &[u8], at: usize| Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?));
    let phoff = u64_at(&ehdr, 32)?;
    let phentsize = usize::from(u16_at(&ehdr, 54)?);
    let phnum = usize::from(u16_at(&ehdr, 56)?);
    if phentsize < 56 || phnum > MAX_PHDRS {
        return None;
    }
    let mut phdrs = vec![0u8; phentsize * phnum];
    core.read(base.checked_add(phoff)?, &mut phdrs).ok()?;
    let headers: Vec<(u32, u64, u64, u64)> = phdrs
        .chunks_exact(phentsize)
        .filter_map(|h| Some((u32_at(h, 0)?, u64_at(h, 8)?, u64_at(h, 16)?, u64_at(h, 32)?)))
        .collect();
    // The load bias: where the segment holding file offset 0 was mapped, less its address.
    let (_, _, vaddr0, _) = headers
        .iter()
        .find(|(ty, offset, _, _)| *ty == PT_LOAD && *offset == 0)?;
    let bias = base.wrapping_sub(vaddr0 & !0xfff);
    for &(_, _, vaddr, size) in headers.iter().filter(|h| h.0 == PT_NOTE) {
        let mut notes = vec![0u8; usize::try_from(size.min(MAX_NOTES)).ok()?];
        if core.read(vaddr.wrapping_add(bias), &mut notes).is_err() {
            continue;
        }
        if let Some(id) = gnu_build_id(&notes) {
            return Some(id);
        }
    }
    None
}

/// The `NT_GNU_BUILD_ID` of owner `GNU` in a note segment's bytes.
fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let word = |at: usize| u32::from_le_bytes(notes[at..at + 4].try_into().unwrap());
        let (namesz, descsz, ty) = (word(0) as usize, word(4) as usize, word(8));
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(name_end..name_end + descsz)?;
        if ty == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gnu_build_id_note_is_found_among_others() {
        let mut notes = Vec::new();
        // An ABI tag note first, then the build id.
        for (name, ty, desc) in [
            (&b"GNU\0"[..], 1u32, &[0u8, 0, 0, 0, 3, 0, 0, 0][..]),
            (&b"GNU\0"[..], NT_GNU_BUILD_ID, &[0xab, 0xcd, 0xef][..]),
        ] {
            notes.extend((name.len() as u32).to_le_bytes());
            notes.extend((desc.len() as u32).to_le_bytes());
            notes.extend(ty.to_le_bytes());
            notes.extend(name);
            notes.extend(desc);
            notes.resize(notes.len().next_multiple_of(4), 0);
        }
        assert_eq!(gnu_build_id(&notes), Some(vec![0xab, 0xcd, 0xef]));
        // Cut short or garbage: none, and no panic.
        assert_eq!(gnu_build_id(&notes[..20]), None);
        assert_eq!(gnu_build_id(&[0xff; 40]), None);
    }
}
