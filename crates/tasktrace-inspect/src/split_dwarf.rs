//! Split DWARF: where the units of a program built with `split-debuginfo = "packed"` or
//! `"unpacked"` are, and whether a file found is the one wanted. The type reader
//! ([`crate::debuginfo`]) and the native-frame symboliser ([`crate::unwind`]) both look here.
//!
//! What rustc emits on x86-64 Linux (measured with rustc 1.95.0, LLVM 22, `debug = true`, dev
//! and release, on `testdata/tokio-targets` with tokio 1.54.1, with `llvm-dwarfdump` and
//! `readelf`):
//!
//! - Both modes link the same executable: for every unit of a crate cargo compiled, only a
//!   *skeleton unit* is in its `.debug_info` (215 of the 235 units of that target), DWARF 4
//!   with the GNU extension — a `DW_TAG_compile_unit` with `DW_AT_GNU_dwo_name` (an absolute
//!   path), `DW_AT_GNU_dwo_id`, `DW_AT_comp_dir`, `DW_AT_GNU_addr_base`, `DW_AT_stmt_list`
//!   and the unit's address ranges, no child. The other 20 units are the standard library's,
//!   precompiled and complete. The line tables stay in the executable's `.debug_line`, and
//!   the addresses in its `.debug_addr`.
//! - `"packed"`: rustc packs the split units (its built-in `thorin`, no `dwp` tool needed)
//!   into `<exe>.dwp` beside the executable (`target/PROFILE/NAME.dwp`, and a copy under
//!   `deps/`), then deletes the `.dwo` files. The package is an ELF relocatable with
//!   `.debug_info.dwo`, `.debug_abbrev.dwo`, `.debug_str.dwo`, `.debug_str_offsets.dwo`,
//!   `.debug_loc.dwo` and a version 2 `.debug_cu_index` (217 units): no `.debug_line.dwo`,
//!   no type units, no build id.
//! - `"unpacked"`: the split units stay one per codegen unit in `.dwo` files (ELF, sections
//!   `SHF_EXCLUDE`) under `target/PROFILE/deps/`, at the path `DW_AT_GNU_dwo_name` gives (220
//!   files for the 215 skeletons); no object file is kept. Nightly's `-Zsplit-dwarf-kind=single`
//!   leaves the split sections in the `.o` files instead, which the skeletons then name: read
//!   the same way.
//! - In a split unit, addresses are indexes into the executable's `.debug_addr`
//!   (`DW_FORM_GNU_addr_index`; a static's location is `DW_OP_GNU_addr_index N`, a
//!   thread-local's `DW_OP_GNU_const_index N, DW_OP_GNU_push_tls_address`), strings are
//!   indexes into `.debug_str_offsets.dwo`, and `DW_AT_decl_file` numbers a file of the
//!   skeleton's line program.
//! - With `-C dwarf-version=5`, the standard forms: `DW_TAG_skeleton_unit` with
//!   `DW_AT_dwo_name`, the dwo id in the unit headers (`DW_UT_skeleton`,
//!   `DW_UT_split_compile`), `DW_OP_addrx`/`DW_OP_constx`, a version 5 `.debug_cu_index`.
//!
//! Where each is looked for, best first (every path as the target sees it: under
//! `/proc/PID/root` for a live process, under `--sysroot` for a core, then as it is):
//! - the package: `<exe>.dwp` beside the executable (and beside the file read for it, a core's
//!   `--exe`); beside its separate debug file, `<debug>.dwp` and, for `NAME.debug`,
//!   `NAME.dwp`; in each debug directory (`/usr/lib/debug` or
//!   `TASKTRACE_DEBUG_FILE_DIRECTORY`), `DIR/.build-id/xx/rest.dwp` and
//!   `DIR/<the executable's path>.dwp`. A package is used when it holds the unit asked for.
//! - a unit's `.dwo`: at `DW_AT_dwo_name` (joined to `DW_AT_comp_dir` when relative), then
//!   its file name beside the executable and beside the debug file (a build directory
//!   copied along with it). A file is used when its unit has the skeleton's dwo id.

use crate::bytes::FileBytes;
use crate::error::Looked;
use crate::process::files::{self, TargetFiles};
use std::path::{Path, PathBuf};

/// What a skeleton unit says of its split unit.
#[derive(Clone, Debug)]
pub struct Skeleton {
    /// The id the split unit has too (`DW_AT_GNU_dwo_id`, or the DWARF 5 unit header's).
    pub dwo_id: u64,
    /// `DW_AT_dwo_name` / `DW_AT_GNU_dwo_name`: the `.dwo` file (or object file).
    pub dwo_name: Option<String>,
    /// `DW_AT_comp_dir`, which a relative `dwo_name` is relative to.
    pub comp_dir: Option<String>,
}

/// A program's places for its split DWARF files (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Places<'a> {
    /// The executable's path in the target.
    pub exe: &'a str,
    /// Where this process read the executable, when that is a path of its own (a core's
    /// `--exe`), not `/proc/PID/exe` nor the target's path.
    pub read_from: Option<&'a str>,
    /// The separate debug file the skeleton units came from, as this process opened it.
    pub debug_file: Option<&'a str>,
    /// The executable's build id.
    pub build_id: Option<&'a [u8]>,
    /// How the target's files are opened.
    pub files: &'a TargetFiles,
}

/// A split DWARF file found.
pub struct Found {
    /// Where, as this process opened it.
    pub path: String,
    /// Its bytes, mapped.
    pub data: FileBytes,
}

impl Places<'_> {
    /// The executable's path in the target, without a `(deleted)` mark.
    fn exe(&self) -> &str {
        self.exe.strip_suffix(files::DELETED).unwrap_or(self.exe)
    }

    /// The directories a copied file may be beside: the executable's (as the target sees it,
    /// and as read here) and the debug file's.
    fn beside(&self, name: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(dir) = Path::new(self.exe()).parent() {
            out.extend(self.files.candidates(&dir.join(name).to_string_lossy()));
        }
        for file in self.read_from.iter().chain(&self.debug_file) {
            if let Some(dir) = Path::new(file).parent() {
                out.push(dir.join(name));
            }
        }
        out
    }

    /// Where the DWARF package of the executable may be, best first.
    pub fn package_candidates(&self) -> Vec<PathBuf> {
        let exe = self.exe();
        let mut out = self.files.candidates(&format!("{exe}.dwp"));
        if let Some(read) = self.read_from {
            out.push(PathBuf::from(format!("{read}.dwp")));
        }
        if let Some(debug) = self.debug_file {
            out.push(PathBuf::from(format!("{debug}.dwp")));
            if let Some(stem) = debug.strip_suffix(".debug") {
                out.push(PathBuf::from(format!("{stem}.dwp")));
            }
        }
        let rel = exe.trim_start_matches('/');
        for dir in crate::debugfile::debug_dirs(self.files) {
            if let Some(id) = self.build_id.filter(|id| id.len() >= 2) {
                let h = crate::debugfile::hex(id);
                out.push(
                    dir.join(".build-id")
                        .join(&h[..2])
                        .join(format!("{}.dwp", &h[2..])),
                );
            }
            out.push(dir.join(format!("{rel}.dwp")));
        }
        dedup(out)
    }

    /// Where the split unit of `skeleton` may be, best first.
    pub fn dwo_candidates(&self, skeleton: &Skeleton) -> Vec<PathBuf> {
        let Some(name) = skeleton.dwo_name.as_deref() else {
            return Vec::new();
        };
        let path = match &skeleton.comp_dir {
            Some(dir) if !name.starts_with('/') => Path::new(dir).join(name),
            _ => PathBuf::from(name),
        };
        let mut out = self.files.candidates(&path.to_string_lossy());
        if let Some(file) = path.file_name() {
            out.extend(self.beside(&file.to_string_lossy()));
        }
        dedup(out)
    }
}

/// `paths` without repeats, in their order.
fn dedup(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(paths.len());
    for p in paths {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The first of `candidates` that can be read and that `fits` accepts; each one tried that
/// is not it goes into `looked`, with why.
pub fn first_fit(
    candidates: &[PathBuf],
    fits: impl Fn(&[u8]) -> Result<(), String>,
    looked: &mut Vec<Looked>,
) -> Option<Found> {
    for p in candidates {
        let Ok(data) = FileBytes::open(&p.to_string_lossy()) else {
            looked.push(Looked::missing(p));
            continue;
        };
        match fits(&data) {
            Ok(()) => {
                return Some(Found {
                    path: p.display().to_string(),
                    data,
                })
            }
            Err(why) => looked.push(Looked::unfit(p, why)),
        }
    }
    None
}

/// Why a split DWARF file's sections could not be loaded (gimli's package loader wants an
/// error it can make from its own).
#[derive(Debug)]
pub struct LoadError(pub String);

impl From<gimli::Error> for LoadError {
    fn from(e: gimli::Error) -> Self {
        LoadError(e.to_string())
    }
}

impl From<String> for LoadError {
    fn from(e: String) -> Self {
        LoadError(e)
    }
}

/// The dwo id as written in messages.
pub fn dwo_id_text(id: u64) -> String {
    format!("{id:#018x}")
}

/// Checks that `data` is a DWARF package (`.dwp`) holding the split unit `dwo_id`.
pub fn package_fits(data: &[u8], dwo_id: u64) -> Result<(), String> {
    let obj = object::File::parse(data).map_err(|_| "not an ELF file".to_string())?;
    let index = crate::sections::dwo_section(&obj, gimli::SectionId::DebugCuIndex)?;
    if index.is_empty() {
        return Err("it is no DWARF package (no .debug_cu_index)".into());
    }
    let index = gimli::DebugCuIndex::new(&index, gimli::LittleEndian)
        .index()
        .map_err(|e| format!("its .debug_cu_index: {e}"))?;
    match index.find(dwo_id) {
        Some(_) => Ok(()),
        None => Err(format!(
            "it has no unit {} (another build's package?)",
            dwo_id_text(dwo_id)
        )),
    }
}

/// Checks that `data` is a split DWARF object (`.dwo`, or an object file with `.dwo`
/// sections) whose unit is the split unit `dwo_id`.
pub fn dwo_fits(data: &[u8], dwo_id: u64) -> Result<(), String> {
    let obj = object::File::parse(data).map_err(|_| "not an ELF file".to_string())?;
    let dwarf = gimli::DwarfSections::load(|id| crate::sections::dwo_section(&obj, id))?;
    let mut dwarf = dwarf.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    dwarf.file_type = gimli::DwarfFileType::Dwo;
    let found = dwarf
        .units()
        .next()
        .ok()
        .flatten()
        .and_then(|header| dwarf.unit(header).ok())
        .and_then(|unit| unit.dwo_id);
    match found {
        Some(gimli::DwoId(id)) if id == dwo_id => Ok(()),
        Some(gimli::DwoId(id)) => Err(format!(
            "its unit is {}, not {} (another build's?)",
            dwo_id_text(id),
            dwo_id_text(dwo_id)
        )),
        None => Err("it has no split unit (no .debug_info.dwo)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places<'a>(files: &'a TargetFiles, debug_file: Option<&'a str>) -> Places<'a> {
        Places {
            exe: "/app/server",
            read_from: Some("/copies/server"),
            debug_file,
            build_id: Some(&[0xab, 0xcd, 0xef]),
            files,
        }
    }

    #[test]
    fn a_package_is_looked_for_beside_the_executable_its_debug_file_and_in_debug_dirs() {
        let files = TargetFiles::of_process(42);
        let got = places(&files, Some("/debug/server.debug")).package_candidates();
        let at = |p: &str| {
            got.iter()
                .position(|g| g == Path::new(p))
                .unwrap_or_else(|| panic!("{p} not in {got:?}"))
        };
        // The target's view first, then this process's, then the copy read, then the debug
        // file's neighbours, then the debug directories.
        assert_eq!(at("/proc/42/root/app/server.dwp"), 0);
        assert!(at("/app/server.dwp") < at("/copies/server.dwp"));
        assert!(at("/copies/server.dwp") < at("/debug/server.debug.dwp"));
        assert!(at("/debug/server.debug.dwp") < at("/debug/server.dwp"));
        let by_id = got
            .iter()
            .position(|p| p.ends_with(".build-id/ab/cdef.dwp"))
            .expect("by build id");
        // `DIR/app/server.dwp`: the last of the paths that end so.
        let by_path = got
            .iter()
            .rposition(|p| p.ends_with("app/server.dwp"))
            .expect("by path under a debug directory");
        assert!(at("/debug/server.dwp") < by_id.min(by_path));
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "{got:?}");
    }

    #[test]
    fn a_dwo_is_looked_for_where_its_skeleton_says_then_beside_the_executable() {
        let files = TargetFiles::by_path();
        let p = places(&files, None);
        let absolute = Skeleton {
            dwo_id: 1,
            dwo_name: Some("/build/target/debug/deps/a-1.x.rcgu.dwo".into()),
            comp_dir: Some("/build".into()),
        };
        assert_eq!(
            p.dwo_candidates(&absolute),
            [
                PathBuf::from("/build/target/debug/deps/a-1.x.rcgu.dwo"),
                PathBuf::from("/app/a-1.x.rcgu.dwo"),
                PathBuf::from("/copies/a-1.x.rcgu.dwo"),
            ]
        );
        let relative = Skeleton {
            dwo_id: 1,
            dwo_name: Some("deps/b.dwo".into()),
            comp_dir: Some("/build".into()),
        };
        assert_eq!(
            p.dwo_candidates(&relative)[0],
            PathBuf::from("/build/deps/b.dwo")
        );
        let unnamed = Skeleton {
            dwo_id: 1,
            dwo_name: None,
            comp_dir: None,
        };
        assert!(p.dwo_candidates(&unnamed).is_empty());
    }

    #[test]
    fn files_that_are_not_the_split_file_wanted_say_why() {
        assert_eq!(
            package_fits(b"nope", 1).unwrap_err(),
            "not an ELF file".to_string()
        );
        assert_eq!(dwo_fits(b"", 1).unwrap_err(), "not an ELF file".to_string());
        // This test binary: an ELF without split sections.
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(package_fits(&own, 1)
            .unwrap_err()
            .contains("no .debug_cu_index"));
        assert!(dwo_fits(&own, 1).unwrap_err().contains("no split unit"));
        // A truncated ELF header: an error, never a panic.
        assert!(dwo_fits(&own[..64], 1).is_err());
        assert!(package_fits(&own[..64], 1).is_err());
    }

    #[test]
    fn found_files_are_the_first_that_fit() {
        let own = std::env::current_exe().unwrap();
        let mut looked = Vec::new();
        let candidates = [
            PathBuf::from("/nonexistent/x.dwp"),
            own.clone(),
            own.clone(),
        ];
        let found = first_fit(&candidates, |_| Err("no".to_string()), &mut looked);
        assert!(found.is_none());
        assert_eq!(looked.len(), 3);
        assert_eq!(looked[0], Looked::missing(Path::new("/nonexistent/x.dwp")));
        let found = first_fit(&candidates, |_| Ok(()), &mut Vec::new()).expect("found");
        assert_eq!(found.path, own.display().to_string());
    }
}
