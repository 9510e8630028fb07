//! Reading a live process's memory by pid (`process_vm_readv`), with or without ptrace: what a
//! page cache reads its misses from after the process is resumed ([`crate::snapshot`]), and how
//! the reader checks a process is readable before it attaches.

use crate::error::{Error, Result};

/// Reads misses of a [`Snapshot`](crate::snapshot::Snapshot): the target's memory, while it lasts.
pub trait Source {
    /// Reads `buf.len()` bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;
}

/// The memory of a live process by pid (`process_vm_readv`), usable after the ptrace detach.
pub struct ProcessMemory(pub i32);

impl Source for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, writable for its length; the remote iovec is only
        // interpreted by the kernel in the target's address space.
        let n = unsafe { libc::process_vm_readv(self.0, &local, 1, &remote, 1, 0) };
        if n == buf.len() as isize {
            Ok(())
        } else {
            Err(Error::Memory(addr, buf.len()))
        }
    }
}
