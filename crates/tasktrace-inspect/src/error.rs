//! The errors of the reader: each one line, saying what failed and what to do.

use std::fmt;

/// Why a process or core file could not be read. Each variant says what failed with the
/// values that tell which (a pid, a path, an address); `Display` writes the one line the CLI
/// prints, and [`source`](std::error::Error::source) gives the OS or inner error when there is
/// one. New variants may come: match with a catch-all arm.
#[derive(Debug)]
#[non_exhaustive]
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
    /// The executable carries no type information, and no separate debug file for it was
    /// found where it was looked for.
    NoDebugFile {
        /// The executable.
        exe: String,
        /// Each place looked in, in order, and what was there.
        looked: Vec<Looked>,
    },
    /// The executable's DWARF is split (`split-debuginfo = "packed"` or `"unpacked"`), and the
    /// `.dwp` or `.dwo` files of some of its units were not found.
    NoSplitDwarf {
        /// The executable.
        exe: String,
        /// How many of its split units were not found.
        missing: usize,
        /// How many split units it has.
        units: usize,
        /// Where the package and the first missing unit's `.dwo` were looked for, in order,
        /// and what was there.
        looked: Vec<Looked>,
    },
    /// The executable that dumped a core file was not given, and not found where the core
    /// says it was.
    NoExecutable {
        /// The core file.
        core: String,
        /// The executable's path in the core (`NT_FILE`, `AT_EXECFN`), when it has one.
        named: Option<String>,
        /// Each place looked in, in order, and what was there.
        looked: Vec<Looked>,
    },
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
    /// A word read where a pointer is expected is no user-space address (memory is
    /// untrusted: a stale or corrupt value).
    NotAPointer {
        /// The word.
        value: u64,
        /// Where it was read.
        at: u64,
    },
    /// A type lacks the member the reader follows (a std or library type, not tokio's:
    /// those are [`Error::UnsupportedTokio`]).
    MissingMember {
        /// The type.
        ty: String,
        /// The member (or members tried).
        member: &'static str,
    },
    /// What a task's poll function says of its future cannot be read from the debuginfo.
    TaskType {
        /// The poll function's address.
        poll: u64,
        /// What is missing.
        missing: TaskTypeMissing,
    },
    /// A ptrace or wait call on a thread failed.
    Ptrace {
        /// What was done (`seize`, `waitpid`, `read the registers`).
        op: &'static str,
        /// The thread.
        tid: i32,
        /// The OS error.
        source: std::io::Error,
    },
    /// The DWARF of a file cannot be loaded or parsed.
    BadDwarf {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The debug file given with `--debuginfo` is not the executable's.
    DebugFileMismatch {
        /// The debug file.
        path: String,
        /// The executable.
        exe: String,
        /// How they differ.
        why: String,
    },
    /// The core file was dumped by another executable than the one read with it.
    CoreNotFrom {
        /// The core file.
        core: String,
        /// The executable.
        exe: String,
        /// Whether the executable was given (`--exe`), rather than found where the core says.
        given: bool,
    },
    /// A read of a truncated core file failed, most likely in its missing part.
    InMissingPart {
        /// What the core is missing.
        truncated: String,
        /// The error of the read.
        source: Box<Error>,
    },
    /// The process exited while it was being attached or read.
    Exited {
        /// The process, as errors name it (`process 42`, `process 42 (1 in its container)`).
        process: String,
        /// `attached` or `read`.
        during: &'static str,
    },
}

/// What [`Error::TaskType`] is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskTypeMissing {
    /// No subprogram at the poll function's address.
    PollFunction,
    /// The poll function (named) has no template parameter `T` (the future's type).
    FutureParameter(String),
    /// No task cell type is in the debuginfo for the future (named).
    CellType(String),
    /// The `Stage` in the task cell cannot be found (why, as first found for this poll
    /// function: it is kept for the other tasks it polls).
    Stage(String),
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
            Error::NoDebugFile { exe, looked } => {
                write!(
                    f,
                    "no debuginfo with types in {exe}, and no separate debug file for it; \
                     looked in "
                )?;
                for (i, place) in looked.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{place}")?;
                }
                write!(
                    f,
                    "; to read it, build it with `debug = true` in its cargo profile, give one \
                     with --debuginfo FILE (or install it at \
                     /usr/lib/debug/.build-id/xx/rest.debug), or name a debuginfod server in \
                     DEBUGINFOD_URLS"
                )
            }
            Error::NoSplitDwarf {
                exe,
                missing,
                units,
                looked,
            } => {
                write!(
                    f,
                    "{exe} keeps its debuginfo in split DWARF files (`split-debuginfo`), and "
                )?;
                if missing == units {
                    write!(f, "none of its {units} split units was found")?;
                } else {
                    write!(f, "{missing} of its {units} split units were not found")?;
                }
                for (i, place) in looked.iter().enumerate() {
                    let sep = if i == 0 { "; looked in " } else { ", " };
                    write!(f, "{sep}{place}")?;
                }
                if *missing > 1 {
                    write!(f, ", and for the .dwo files of {} more units", missing - 1)?;
                }
                write!(
                    f,
                    "; to read it, put its .dwp beside it (or its .dwo files where it names \
                     them: its build's target directory), or build it with \
                     `split-debuginfo = \"off\"`"
                )
            }
            Error::NoExecutable {
                core,
                named,
                looked,
            } => {
                write!(f, "cannot find the executable that dumped {core}: ")?;
                match named {
                    Some(path) => write!(f, "the core names {path}")?,
                    None => write!(
                        f,
                        "the core names none (no NT_FILE mapping at its entry point, no \
                         AT_EXECFN)"
                    )?,
                }
                for (i, place) in looked.iter().enumerate() {
                    let sep = if i == 0 { "; looked in " } else { ", " };
                    write!(f, "{sep}{place}")?;
                }
                write!(
                    f,
                    "; give it with --exe BIN, or the dumping machine's files with --sysroot \
                     DIR, or name a debuginfod server that has it in DEBUGINFOD_URLS"
                )
            }
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
            Error::NotAPointer { value, at } => {
                write!(f, "not a pointer: {value:#x} read at {at:#x}")
            }
            Error::MissingMember { ty, member } => write!(f, "{ty} has no {member} member"),
            Error::TaskType { poll, missing } => match missing {
                TaskTypeMissing::PollFunction => {
                    write!(f, "no debuginfo for the task's poll function at {poll:#x}")
                }
                TaskTypeMissing::FutureParameter(name) => {
                    write!(f, "`{name}` has no template parameter T")
                }
                TaskTypeMissing::CellType(future) => {
                    write!(f, "no task cell type for future `{future}`")
                }
                TaskTypeMissing::Stage(why) => f.write_str(why),
            },
            Error::Ptrace { op, tid, source } => write!(f, "{op} of thread {tid}: {source}"),
            Error::BadDwarf { path, why } => write!(f, "cannot read the DWARF of {path}: {why}"),
            Error::DebugFileMismatch { path, exe, why } => {
                write!(f, "--debuginfo {path} does not fit {exe}: {why}")
            }
            Error::CoreNotFrom { core, exe, given } => {
                let hint = if *given {
                    "wrong --exe, or rebuilt since?"
                } else {
                    "found where the core says it was: rebuilt since? give the right one with \
                     --exe BIN"
                };
                write!(
                    f,
                    "{core} was not dumped by {exe}: the executable image in the core differs \
                     ({hint})"
                )
            }
            Error::InMissingPart { truncated, source } => write!(f, "{truncated}: {source}"),
            Error::Exited { process, during } => {
                write!(f, "{process} exited while it was being {during}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, e) | Error::Ptrace { source: e, .. } => Some(e),
            Error::InMissingPart { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A place a separate debug file was looked for, and what was there
/// ([`Error::NoDebugFile`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Looked {
    /// A file: a build-id or debuglink path, or a debuginfod cache entry.
    File {
        /// The path, as this process opened it.
        path: String,
        /// What was there.
        found: FileFound,
    },
    /// A debuginfod server, asked for the build id.
    Server {
        /// The URL requested.
        url: String,
        /// Its answer.
        answer: ServerAnswer,
    },
}

impl Looked {
    /// No file at `path`.
    pub fn missing(path: &std::path::Path) -> Looked {
        Looked::File {
            path: path.display().to_string(),
            found: FileFound::Missing,
        }
    }

    /// A file at `path` that is not the debug file wanted, and why.
    pub fn unfit(path: &std::path::Path, why: String) -> Looked {
        Looked::File {
            path: path.display().to_string(),
            found: FileFound::Unfit(why),
        }
    }
}

/// What a debug file's path held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileFound {
    /// Nothing (or nothing this process may read).
    Missing,
    /// A file that is not the one wanted (another build id, a CRC-32 that differs, no
    /// `.debug_info`), and why.
    Unfit(String),
}

/// A debuginfod server's answer to a request that gave no file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAnswer {
    /// An HTTP status other than 200 (404: it does not have that build id).
    Status(u16),
    /// A deadline passed.
    TimedOut {
        /// For connecting and the answer's first byte (`DEBUGINFOD_TIMEOUT`).
        start: std::time::Duration,
        /// For the whole download (`DEBUGINFOD_MAXTIME`).
        whole: std::time::Duration,
    },
    /// No answer: the connection or the transfer failed, and how.
    Failed(String),
    /// A file that is not the one wanted, and why.
    Unfit(String),
    /// The answer could not be stored in the cache, and why.
    Cache(String),
}

impl fmt::Display for Looked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Looked::File { path, found } => match found {
                FileFound::Missing => write!(f, "{path} (not there)"),
                FileFound::Unfit(why) => write!(f, "{path} (not it: {why})"),
            },
            Looked::Server { url, answer } => match answer {
                ServerAnswer::Status(code) => write!(f, "{url} ({code})"),
                ServerAnswer::TimedOut { start, whole } => write!(
                    f,
                    "{url} (timed out: DEBUGINFOD_TIMEOUT {}s to answer, DEBUGINFOD_MAXTIME {}s \
                     in all)",
                    start.as_secs_f64(),
                    whole.as_secs_f64()
                ),
                ServerAnswer::Failed(why) => write!(f, "{url} (failed: {why})"),
                ServerAnswer::Unfit(why) => write!(f, "{url} (not it: {why})"),
                ServerAnswer::Cache(why) => write!(f, "{url} (not cached: {why})"),
            },
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
