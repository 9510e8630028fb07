//! A frozen copy of a process, read by the process it was copied from.
//!
//! `tasktrace::snapshot` forks its own process; the child stops itself at once, and the
//! parent reads the child's memory — the parent's own memory as it was at the fork — with
//! `process_vm_readv` (a parent may read its child under Yama's default `ptrace_scope`, no
//! capability needed). The child has one thread and no registers worth reading, so the
//! runtimes to read are named by the caller: the addresses of `tokio::runtime::Handle` values
//! ([`Options::runtime_handles`]), which are at the same addresses in the copy.
//!
//! Reading never writes to the child; the caller owns the child's life (stopping, killing and
//! reaping it).

use crate::debuginfo::DebugInfo;
use crate::process::{ProcessMemory, Source};
use crate::process::{Target, Thread};
use crate::snapshot::Snapshot;
use crate::{Error, Options, Prepared, Result};
use tasktrace_model::Dump;

/// A stopped child process, without threads.
struct FrozenChild {
    pid: i32,
    entry: Option<u64>,
}

impl Target for FrozenChild {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        ProcessMemory(self.pid).read(addr, buf)
    }
    fn threads(&self) -> &[Thread] {
        &[]
    }
    fn at_entry(&self) -> Option<u64> {
        self.entry
    }
    fn is_live(&self) -> bool {
        true
    }
    fn proc_pid(&self) -> Option<i32> {
        // The copy closed its descriptors; the reading process is the one copied, and its
        // descriptors are the ones the copy's memory names.
        Some(std::process::id() as i32)
    }
}

/// Reads every task of the runtimes at `opts.runtime_handles` in the stopped copy `pid` of
/// this process, whose executable's debuginfo is `info` (with `prepared` found in it once
/// for all the copies).
pub fn read_frozen(
    pid: i32,
    info: &DebugInfo,
    prepared: &Prepared,
    opts: &Options,
) -> Result<Dump> {
    if opts.runtime_handles.is_empty() {
        return Err(Error::NoRuntime(
            "no tokio runtime handle to read (call it inside a runtime, or register one)".into(),
        ));
    }
    let auxv = format!("/proc/{pid}/auxv");
    let auxv = std::fs::read(&auxv).map_err(|e| Error::Io(auxv, e))?;
    let child = FrozenChild {
        pid,
        entry: crate::process::auxv_entry(&auxv),
    };
    // A page at a time (one system call each), as `attach` reads: not a call per field.
    let cached = Snapshot::new(&child, ProcessMemory(pid));
    crate::read_prepared(&cached, info, prepared, opts)
}
