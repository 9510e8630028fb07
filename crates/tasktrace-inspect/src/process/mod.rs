//! A stopped view of a target: its memory and its threads, from a live process or a core file.

pub mod core_exe;
pub mod core_file;
pub mod files;
pub mod live;
mod memory;
pub mod pid;
pub mod syscalls;

pub use memory::{ProcessMemory, Source};

use crate::error::Result;

/// One thread of the target.
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    /// Kernel thread id.
    pub tid: i32,
    /// The `fs` segment base (x86-64 thread pointer): where its static TLS block ends.
    pub fs_base: u64,
}

/// The registers of one stopped thread that the reader uses (x86-64): where its stack is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Frame pointer (or a general register in code built without frame pointers).
    pub rbp: u64,
    /// The system call the thread was blocked in when it was stopped: its number, when the
    /// stop interrupted one that the kernel will restart ([`blocked_syscall`]).
    pub syscall: Option<u64>,
}

/// The system call a stopped x86-64 thread was blocked in, from its `orig_rax` and `rax`:
/// `orig_rax` keeps the number of the thread's last system call (−1 after an interrupt), and
/// `rax` holds one of the kernel's restart codes (`-ERESTARTSYS` … `-ERESTART_RESTARTBLOCK`,
/// −512 to −516) only when the stop interrupted that call before it finished — a call that
/// had returned holds its result instead. So a number is given only for a thread that was
/// inside a blocking call (and will resume it), never for one running its own code.
pub fn blocked_syscall(orig_rax: u64, rax: u64) -> Option<u64> {
    let restarting = (-516..=-512).contains(&(rax as i64));
    ((orig_rax as i64) >= 0 && restarting).then_some(orig_rax)
}

impl Registers {
    /// Reads `rip`, `rsp`, `rbp` from a raw x86-64 `user_regs_struct` (as in `NT_PRSTATUS`).
    pub fn from_user_regs(regs: &[u8]) -> Option<Registers> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(regs.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Registers {
            rbp: word(32)?,
            rip: word(128)?,
            rsp: word(152)?,
            syscall: blocked_syscall(word(120)?, word(80)?),
        })
    }
}

/// What a target keeps of one stopped thread beside its [`Thread`]: its registers and its
/// name, when it has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// Kernel thread id.
    pub tid: i32,
    /// Its registers (a core has them for every thread it dumped; a live process's are read
    /// while stopped).
    pub regs: Option<Registers>,
    /// Its name (`comm`), when known.
    pub name: Option<String>,
}

/// The [`ThreadState`]s of a target's threads, looked up by tid.
#[derive(Clone, Debug, Default)]
pub struct ThreadStates(Vec<ThreadState>);

impl ThreadStates {
    /// Adds a thread's state.
    pub fn push(&mut self, state: ThreadState) {
        self.0.push(state);
    }

    fn get(&self, tid: i32) -> Option<&ThreadState> {
        self.0.iter().find(|s| s.tid == tid)
    }

    /// The registers of thread `tid`.
    pub fn registers(&self, tid: i32) -> Option<Registers> {
        self.get(tid).and_then(|s| s.regs)
    }

    /// The name of thread `tid`.
    pub fn name(&self, tid: i32) -> Option<String> {
        self.get(tid).and_then(|s| s.name.clone())
    }
}

/// A file mapped into the target (from `/proc/PID/maps`): `[start, end)` maps `path` from
/// byte `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedFile {
    /// First address.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The file.
    pub path: String,
    /// Whether its bytes may change while the process runs: the process may write it (`w` in
    /// `/proc/PID/maps`), or it is shared (`s`: another process may write the file); true
    /// when not known, as in a core. A private mapping the process may not write holds the
    /// same bytes stopped or running: the reader need not copy it while it is stopped.
    pub writable: bool,
}

/// Parses `/proc/PID/maps`: the file-backed mappings.
pub fn parse_maps(maps: &str) -> Vec<MappedFile> {
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms, offset, _dev, _inode) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            let path = f.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(MappedFile {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
                writable: perms.as_bytes().get(1) != Some(&b'-')
                    || perms.as_bytes().get(3) != Some(&b'p'),
            })
        })
        .collect()
}

/// Memory and threads of a stopped target.
pub trait Target {
    /// Reads `buf.len()` bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;
    /// The threads, main thread first.
    fn threads(&self) -> &[Thread];
    /// `AT_ENTRY` from the auxiliary vector: the relocated entry point.
    fn at_entry(&self) -> Option<u64>;
    /// True for a live process (times such as a sleep's remaining time make sense).
    fn is_live(&self) -> bool;
    /// The registers of thread `tid`, when the target has them.
    fn registers(&self, _tid: i32) -> Option<Registers> {
        None
    }
    /// The name of thread `tid` (`comm`), when the target knows it.
    fn thread_name(&self, _tid: i32) -> Option<String> {
        None
    }
    /// The files mapped into the target (for native stack unwinding), when known.
    fn mapped_files(&self) -> Vec<MappedFile> {
        Vec::new()
    }
    /// The pid whose `/proc` entries describe this target's descriptors (its sockets), for a
    /// live target.
    fn proc_pid(&self) -> Option<i32> {
        None
    }
    /// The memory a scan may look through, where the target holds it as bytes (a core file):
    /// how a truncated core's tasks are found when the way to them is cut off. Live targets
    /// give none (a scan of a live process would be slow and racy).
    fn memory_to_scan(&self) -> Vec<MemoryRange<'_>> {
        Vec::new()
    }
}

/// A target without memory or threads: what the debuginfo alone tells is found with it
/// ([`crate::Prepared`]), before a target exists.
pub(crate) struct NoMemory;

impl Target for NoMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        Err(crate::Error::Memory(addr, buf.len()))
    }
    fn threads(&self) -> &[Thread] {
        &[]
    }
    fn at_entry(&self) -> Option<u64> {
        None
    }
    fn is_live(&self) -> bool {
        false
    }
}

/// Bytes of target memory at `addr` ([`Target::memory_to_scan`]).
#[derive(Clone, Copy, Debug)]
pub struct MemoryRange<'a> {
    /// Where they are in the target.
    pub addr: u64,
    /// The bytes.
    pub bytes: &'a [u8],
    /// Mapped writable (heap, stacks) rather than read-only (code, constants).
    pub writable: bool,
}

/// Finds `AT_ENTRY` (9) in a raw auxiliary vector.
pub(crate) fn auxv_entry(auxv: &[u8]) -> Option<u64> {
    auxv_value(auxv, AT_ENTRY)
}

/// `AT_ENTRY`: the program's entry point.
const AT_ENTRY: u64 = 9;
/// `AT_EXECFN`: the address of the path the program was executed by.
pub(crate) const AT_EXECFN: u64 = 31;

/// The value of `key` in an auxiliary vector (x86-64: pairs of 8-byte words).
pub(crate) fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    auxv.chunks_exact(16).find_map(|c| {
        let k = u64::from_le_bytes(c[..8].try_into().ok()?);
        let val = u64::from_le_bytes(c[8..].try_into().ok()?);
        (k == key).then_some(val)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a private mapping the process cannot write is taken as unchanging; anonymous
    /// mappings are not listed.
    #[test]
    fn maps_say_which_files_may_change() {
        let maps = "\
55b1ea922000-55b1ea9c1000 r-xp 00041000 fe:00 5456907 /app/server
55b1ea9c1000-55b1ea9c8000 r--p 000df000 fe:00 5456907 /app/server
55b1ea9c8000-55b1ea9ca000 rw-p 000e5000 fe:00 5456907 /app/server
7fea7e400000-7fea7e401000 r--s 00000000 00:05 42 /dev/shm/table
55b2242ec000-55b22430d000 rw-p 00000000 00:00 0 [heap]
";
        let m = parse_maps(maps);
        let writable: Vec<(u64, bool)> = m.iter().map(|m| (m.start, m.writable)).collect();
        assert_eq!(
            writable,
            [
                (0x55b1ea922000, false),
                (0x55b1ea9c1000, false),
                (0x55b1ea9c8000, true),
                (0x7fea7e400000, true),
            ]
        );
        assert_eq!(m[1].offset, 0xdf000);
        assert_eq!(m[3].path, "/dev/shm/table");
    }
}
