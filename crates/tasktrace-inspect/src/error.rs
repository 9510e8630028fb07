//! The errors of the reader: each one line, saying what failed and what to do.

use std::fmt;

/// Why a process or core file could not be read.
#[derive(Debug)]
pub enum Error {
    /// No process has this pid.
    NoSuchProcess(i32),
    /// ptrace or memory reads were refused.
    PermissionDenied(String),
    /// A file could not be read.
    Io(String, std::io::Error),
    /// The file is not an ELF (executable or core).
    NotElf(String),
    /// The executable carries no type information.
    NoDebugInfo(String),
    /// The executable is not a Rust program.
    NotRust(String),
    /// The executable is a Rust program without tokio in it.
    NoTokio(String),
    /// No tokio runtime was found in the target.
    NoRuntime(String),
    /// The tokio data structures are not the ones this reader knows.
    UnsupportedLayout(String),
    /// This tokio version's data structures lack a member the reader follows.
    UnsupportedTokio {
        /// `X.Y` (or `?`).
        version: String,
        /// `Type.member` that is missing.
        missing: String,
    },
    /// The core file is malformed.
    CorruptCore(String),
    /// The core file ends inside its headers: nothing of it can be read.
    TruncatedCore {
        /// The core file.
        path: String,
        /// Its size: where it was cut.
        size: u64,
        /// The part it ends in (`ELF header`, `program headers`, `notes`).
        within: &'static str,
    },
    /// A deadline passed.
    Timeout(String),
    /// Reading target memory failed.
    Memory(u64, usize),
    /// Anything else, with its explanation.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchProcess(pid) => write!(f, "no such process: {pid}"),
            Error::PermissionDenied(what) if what.contains("already traced") => {
                write!(f, "permission denied: {what}")
            }
            Error::PermissionDenied(what) => write!(
                f,
                "permission denied: {what} (run as the same user with ptrace allowed, e.g. \
                 /proc/sys/kernel/yama/ptrace_scope = 0, or as root)"
            ),
            Error::Io(path, e) => write!(f, "cannot read {path}: {e}"),
            Error::NotElf(path) => write!(f, "not an ELF file: {path}"),
            Error::NoDebugInfo(path) => write!(
                f,
                "no debuginfo with types in {path}: build it with `debug = true` (or \
                 `debug = 2`) in its cargo profile; `line-tables-only` and `limited` have no types"
            ),
            Error::NotRust(path) => write!(
                f,
                "{path} is not a Rust program (no Rust symbols, no rustc mark): tasktrace reads \
                 the tasks of tokio programs"
            ),
            Error::NoTokio(path) => write!(
                f,
                "{path} is a Rust program without tokio in it (no tokio symbol or type): there \
                 are no tokio tasks to read"
            ),
            Error::NoRuntime(why) => write!(f, "no tokio runtime found: {why}"),
            Error::UnsupportedLayout(why) => write!(f, "unsupported tokio layout: {why}"),
            Error::UnsupportedTokio { version, missing } => {
                write!(f, "unsupported tokio {version}: missing {missing}")
            }
            Error::CorruptCore(why) => write!(f, "corrupt core file: {why}"),
            Error::TruncatedCore { path, size, within } => write!(
                f,
                "truncated core file {path}: it ends at byte {size}, inside its {within}; \
                 nothing can be read (was the dump cut by `ulimit -c` or a full disk?)"
            ),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Memory(addr, len) => {
                write!(f, "cannot read {len} bytes of target memory at {addr:#x}")
            }
            Error::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
