//! Debuginfo in a separate file, the way distributions and `objcopy --only-keep-debug` ship
//! it. For an executable without `.debug_info`, in this order (gdb's):
//!
//! 1. the file given explicitly (`--debuginfo FILE`, [`crate::Options::debuginfo`]);
//! 2. the build-id layout: `DIR/.build-id/xx/rest.debug` for the executable's
//!    `NT_GNU_BUILD_ID` note (hex `xxrest…`), for each debug directory `DIR` (`/usr/lib/debug`,
//!    or the `:`-separated list in `TASKTRACE_DEBUG_FILE_DIRECTORY`);
//! 3. `.gnu_debuglink` (a file name and the CRC-32 of that file): next to the executable,
//!    in its `.debug/` subdirectory, and under `DIR/<the executable's directory>/`;
//! 4. by build id from the debuginfod cache, then the servers of `DEBUGINFOD_URLS`
//!    ([`crate::debuginfod`]).
//!
//! When none is found, [`Error::NoDebugFile`] lists each place looked in and what was there.
//!
//! A candidate is used only if it matches: same build id when both files have one, and for a
//! debuglink the CRC. An explicit file that does not match is an error, not skipped.

use crate::bytes::FileBytes;
use crate::debuginfod;
use crate::error::{Error, Looked, Result};
use crate::process::files::{self, TargetFiles};
use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where distributions install separate debug files.
const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// A separate debug file: its bytes, path and build id. Read once per read of a target: the
/// type reader indexes it, and the native-stack unwinder symbolises with the same bytes
/// (shared, hence the `Arc`).
pub struct DebugFile {
    /// The file's bytes (mapped).
    pub data: Arc<FileBytes>,
    /// Where it was found.
    pub path: String,
    /// Its build id (`NT_GNU_BUILD_ID`), which is the executable's when it has one.
    pub build_id: Option<Vec<u8>>,
}

impl DebugFile {
    /// The file at `path` with its build id, or `None` when it cannot be read or is no ELF.
    pub fn read(path: &str) -> Option<DebugFile> {
        let data = FileBytes::open(path).ok()?;
        Self::new(data, path)
    }

    fn new(data: FileBytes, path: &str) -> Option<DebugFile> {
        let build_id = build_id(&object::File::parse(&*data).ok()?);
        Some(DebugFile {
            data: Arc::new(data),
            path: path.to_string(),
            build_id,
        })
    }
}

/// The build id (`NT_GNU_BUILD_ID`) of an ELF file.
pub fn build_id(obj: &object::File<'_>) -> Option<Vec<u8>> {
    obj.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// `.gnu_debuglink`: the debug file's name and its CRC-32.
pub fn debuglink(obj: &object::File<'_>) -> Option<(String, u32)> {
    let (name, crc) = obj.gnu_debuglink().ok().flatten()?;
    Some((String::from_utf8_lossy(name).into_owned(), crc))
}

/// The debug directories searched (build-id and debuglink layouts): the ones given, as this
/// process sees them; by default the target's `/usr/lib/debug`, then this machine's.
pub(crate) fn debug_dirs(files: &TargetFiles) -> Vec<PathBuf> {
    match std::env::var("TASKTRACE_DEBUG_FILE_DIRECTORY") {
        Ok(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
        _ => files.candidates(DEFAULT_DEBUG_DIR),
    }
}

/// CRC-32 (IEEE 802.3, the one `.gnu_debuglink` records).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

fn has_debug_info(obj: &object::File<'_>) -> bool {
    obj.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.data().is_ok_and(|d| !d.is_empty()))
}

/// Checks that `data` is debuginfo for the executable with build id `want`: an ELF with
/// `.debug_info` and, when both have one, the same build id.
fn matches(data: &[u8], want: Option<&[u8]>) -> std::result::Result<(), String> {
    let obj = object::File::parse(data).map_err(|_| "not an ELF file".to_string())?;
    if !has_debug_info(&obj) && obj.section_by_name(".debug_cu_index").is_some() {
        return Err(
            "it is a split DWARF package (.dwp): put it beside the executable instead, \
                    named as it with .dwp added"
                .into(),
        );
    }
    if !has_debug_info(&obj) {
        return Err("it has no .debug_info".into());
    }
    if let (Some(want), Some(got)) = (want, build_id(&obj)) {
        if want != got.as_slice() {
            return Err(format!(
                "its build id {} is not the executable's {}",
                hex(&got),
                hex(want)
            ));
        }
    }
    Ok(())
}

/// `b` in lower-case hex, as build ids are written.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The separate debug file of the executable `exe_data` (found at `exe_path` in the target:
/// the directory debuglinks are relative to, opened through `files`), or `None` when the
/// executable carries its own debuginfo and none was asked for. `Err` when none is found for
/// an executable without debuginfo (saying where it looked), or when the explicit one does
/// not match.
pub fn find(
    exe_data: &[u8],
    exe_path: &str,
    explicit: Option<&str>,
    files: &TargetFiles,
) -> Result<Option<DebugFile>> {
    let obj = object::File::parse(exe_data).map_err(|_| Error::NotElf(exe_path.to_string()))?;
    let id = build_id(&obj);
    if let Some(path) = explicit {
        let data = FileBytes::open(path).map_err(|e| Error::Io(path.to_string(), e))?;
        matches(&data, id.as_deref()).map_err(|why| Error::DebugFileMismatch {
            path: path.to_string(),
            exe: exe_path.to_string(),
            why,
        })?;
        return Ok(DebugFile::new(data, path));
    }
    if has_debug_info(&obj) {
        return Ok(None);
    }
    let mut looked = Vec::new();
    let try_file = |p: &Path, crc: Option<u32>, looked: &mut Vec<Looked>| -> Option<DebugFile> {
        let Ok(data) = FileBytes::open(&p.to_string_lossy()) else {
            looked.push(Looked::missing(p));
            return None;
        };
        if let Some(want) = crc.filter(|c| crc32(&data) != *c) {
            let why = format!("its CRC-32 is not the {want:08x} of the .gnu_debuglink");
            looked.push(Looked::unfit(p, why));
            return None;
        }
        if let Err(why) = matches(&data, id.as_deref()) {
            looked.push(Looked::unfit(p, why));
            return None;
        }
        DebugFile::new(data, &p.display().to_string())
    };
    let dirs = debug_dirs(files);
    if let Some(id) = id.as_deref().filter(|id| id.len() >= 2) {
        let h = hex(id);
        for d in &dirs {
            let p = d
                .join(".build-id")
                .join(&h[..2])
                .join(format!("{}.debug", &h[2..]));
            if let Some(f) = try_file(&p, None, &mut looked) {
                return Ok(Some(f));
            }
        }
    }
    if let Some((name, crc)) = debuglink(&obj) {
        let exe_path = exe_path.strip_suffix(files::DELETED).unwrap_or(exe_path);
        let exe_dir = Path::new(exe_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut candidates = Vec::new();
        for beside in [exe_dir.join(&name), exe_dir.join(".debug").join(&name)] {
            candidates.extend(files.candidates(&beside.to_string_lossy()));
        }
        for d in &dirs {
            let rel = exe_dir.strip_prefix("/").unwrap_or(&exe_dir);
            candidates.push(d.join(rel).join(&name));
        }
        for p in candidates {
            if let Some(f) = try_file(&p, Some(crc), &mut looked) {
                return Ok(Some(f));
            }
        }
    }
    // Last, as gdb does: the debuginfod servers (and their cache), by build id.
    if let Some(id) = id.as_deref() {
        let accept = |p: &Path| {
            let data =
                FileBytes::open(&p.to_string_lossy()).map_err(|e| format!("cannot read: {e}"))?;
            matches(&data, Some(id))
        };
        let client = debuginfod::Client::from_env();
        let found = client.find(id, debuginfod::Artifact::Debuginfo, &accept, &mut looked);
        if let Some(f) = found.and_then(|p| DebugFile::read(&p.to_string_lossy())) {
            return Ok(Some(f));
        }
    }
    if looked.is_empty() {
        return Err(Error::NoDebugInfo(exe_path.to_string()));
    }
    Err(Error::NoDebugFile {
        exe: exe_path.to_string(),
        looked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
