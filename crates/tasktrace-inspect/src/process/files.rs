//! Where the reader opens a target's files: the executable's debug file, the mapped libraries
//! the native-stack unwinder reads. A path in `/proc/PID/maps` or in the executable's
//! `.gnu_debuglink` is a path *in the target's mount namespace*; the reader may run in
//! another one (attaching from the host to a process in a container), and the file at that
//! path may have been replaced since the target mapped it (a deploy that installs the new
//! binary while the old process runs: maps then say `/app/server (deleted)`).
//!
//! So, for a live target, each file is opened as the target sees it, best first:
//! 1. for a mapped file, the very file mapped, even deleted or replaced since:
//!    `/proc/PID/map_files/START-END` (needs `CAP_SYS_ADMIN` or `CAP_CHECKPOINT_RESTORE`,
//!    which an attaching root has), or `/proc/PID/exe` for the executable (ptrace access is
//!    enough);
//! 2. `/proc/PID/root/PATH`: the path in the target's mount namespace;
//! 3. `PATH` as this process sees it.
//!
//! In the same mount namespace 2 and 3 are the same file. A mapped file deleted since is read
//! only through 1: whatever is at its path now is another file. A core file has no process to
//! ask: its paths are opened under the sysroot given (`--sysroot DIR`: a copy of the dumping
//! machine's or container's files, as gdb's `set sysroot`), then as they are, except the
//! executable's, which is the `--exe` given (a core is often read on another machine, the
//! executable copied to another path). A file found under neither is read from nowhere: the
//! pages of it the core left out are unreadable, not made up.

use super::MappedFile;
use crate::bytes::FileBytes;
use std::path::{Path, PathBuf};

/// What `/proc/PID/maps` appends to a mapped file deleted (or replaced) since.
pub const DELETED: &str = " (deleted)";

/// How to open the files of one target (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct TargetFiles {
    /// The live process, when there is one.
    pid: Option<i32>,
    /// The executable's path in the target, and where this process reads it.
    exe: Option<(String, String)>,
    /// Where the target's root is, for a core file read away from its machine.
    sysroot: Option<PathBuf>,
}

impl TargetFiles {
    /// The files of live process `pid`, opened as it sees them.
    pub fn of_process(pid: i32) -> Self {
        TargetFiles {
            pid: Some(pid),
            ..TargetFiles::default()
        }
    }

    /// These files, with the executable mapped from `mapped` in the target read from `file`.
    pub fn with_executable(self, mapped: &str, file: &str) -> Self {
        TargetFiles {
            exe: Some((mapped.to_string(), file.to_string())),
            ..self
        }
    }

    /// Files opened by their paths, as this process sees them (a core file's).
    pub fn by_path() -> Self {
        TargetFiles::default()
    }

    /// These files, looked up under `sysroot` first when one is given.
    pub fn with_sysroot(self, sysroot: Option<&str>) -> Self {
        TargetFiles {
            sysroot: sysroot.map(PathBuf::from),
            ..self
        }
    }

    /// Where this process reads the file mapped from `path` in the target, best first: the
    /// executable given for it, else [`candidates`](Self::candidates).
    pub fn mapped_candidates(&self, path: &str) -> Vec<PathBuf> {
        match &self.exe {
            Some((mapped, file)) if mapped == path => vec![PathBuf::from(file)],
            _ => self.candidates(path),
        }
    }

    /// Where to look for the file at `path` in the target, best first.
    pub fn candidates(&self, path: &str) -> Vec<PathBuf> {
        let mut out = Vec::with_capacity(3);
        if let (Some(pid), Some(rel)) = (self.pid, path.strip_prefix('/')) {
            out.push(Path::new(&format!("/proc/{pid}/root")).join(rel));
        }
        if let Some(root) = &self.sysroot {
            out.push(root.join(path.trim_start_matches('/')));
        }
        out.push(PathBuf::from(path));
        out
    }

    /// The bytes of the first of [`candidates`](Self::candidates) that can be read.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.candidates(path)
            .iter()
            .find_map(|p| std::fs::read(p).ok())
    }

    /// The bytes of the file mapped at `m`: the mapping itself first (the file mapped, even
    /// replaced since), then by its path.
    pub fn read_mapped(&self, m: &MappedFile) -> Option<FileBytes> {
        if let Some((_, file)) = self.exe.as_ref().filter(|(mapped, _)| *mapped == m.path) {
            return FileBytes::open(file).ok();
        }
        if let Some(pid) = self.pid {
            let mapping = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
            if let Ok(data) = FileBytes::open(&mapping) {
                return Some(data);
            }
            let exe = format!("/proc/{pid}/exe");
            if std::fs::read_link(&exe).is_ok_and(|p| p.as_os_str() == m.path.as_str()) {
                if let Ok(data) = FileBytes::open(&exe) {
                    return Some(data);
                }
            }
        }
        if m.path.ends_with(DELETED) {
            return None;
        }
        self.candidates(&m.path)
            .iter()
            .find_map(|p| FileBytes::open(&p.to_string_lossy()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_target_is_looked_at_through_its_root_first() {
        let f = TargetFiles::of_process(42);
        assert_eq!(
            f.candidates("/app/server"),
            [
                PathBuf::from("/proc/42/root/app/server"),
                PathBuf::from("/app/server")
            ]
        );
        // Deleted since it was mapped, and not readable through the mapping: not the file
        // now at its path.
        let gone = MappedFile {
            start: 1,
            end: 2,
            offset: 0,
            path: "/bin/sh (deleted)".into(),
            writable: false,
        };
        assert!(TargetFiles::by_path().read_mapped(&gone).is_none());
        assert_eq!(
            TargetFiles::by_path().candidates("/app/server"),
            [PathBuf::from("/app/server")]
        );
        let copied = TargetFiles::by_path()
            .with_sysroot(Some("/copy"))
            .with_executable("/app/server", "/tmp/server");
        assert_eq!(
            copied.candidates("/app/server"),
            [
                PathBuf::from("/copy/app/server"),
                PathBuf::from("/app/server")
            ]
        );
        assert_eq!(
            copied.mapped_candidates("/app/server"),
            [PathBuf::from("/tmp/server")]
        );
    }

    #[test]
    fn a_mapping_reads_the_file_mapped() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let first = super::super::parse_maps(&maps)
            .into_iter()
            .find(|m| Path::new(&m.path) == exe)
            .expect("the test executable is mapped");
        let want = std::fs::read(&exe).unwrap();
        let own = TargetFiles::of_process(std::process::id() as i32);
        assert!(own.read_mapped(&first).as_deref() == Some(&want[..]));
    }
}
