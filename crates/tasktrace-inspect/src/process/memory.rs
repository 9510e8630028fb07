//! Reading a live process's memory by pid (`process_vm_readv`), with or without ptrace: what a
//! page cache reads its misses from after the process is resumed ([`crate::snapshot`]), and how
//! the reader checks a process is readable before it attaches.

use crate::error::{Error, Result};

/// Reads misses of a [`Snapshot`](crate::snapshot::Snapshot): the target's memory, while it lasts.
pub trait Source {
    /// Reads `buf.len()` bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;

    /// Reads each `(addr, buf)` in order, stopping at the first that cannot be read whole:
    /// how many were read. A source that can read many ranges in one call (a live process:
    /// one `process_vm_readv`) overrides it; the process is stopped for fewer system calls.
    fn read_many(&self, parts: &mut [(u64, &mut [u8])]) -> usize {
        for (i, (addr, buf)) in parts.iter_mut().enumerate() {
            if self.read(*addr, buf).is_err() {
                return i;
            }
        }
        parts.len()
    }
}

/// Most ranges one `process_vm_readv` takes (the kernel's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

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

    fn read_many(&self, parts: &mut [(u64, &mut [u8])]) -> usize {
        let mut done = 0;
        for chunk in parts.chunks_mut(MAX_IOVECS) {
            let mut local = Vec::with_capacity(chunk.len());
            let mut remote = Vec::with_capacity(chunk.len());
            for (addr, buf) in chunk.iter_mut() {
                local.push(libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                });
                remote.push(libc::iovec {
                    iov_base: *addr as *mut libc::c_void,
                    iov_len: buf.len(),
                });
            }
            // SAFETY: each local iovec describes one buffer of `chunk`, writable for its
            // length and alive for the call; the remote ones are only interpreted by the
            // kernel, in the target's address space. At most MAX_IOVECS of each.
            let n = unsafe {
                libc::process_vm_readv(
                    self.0,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            // The kernel copies in order and stops at the first range it cannot read: the
            // ranges read whole are those whose lengths fit in `n`.
            let mut left = usize::try_from(n).unwrap_or(0);
            for (_, buf) in chunk.iter() {
                if left < buf.len() {
                    return done;
                }
                left -= buf.len();
                done += 1;
            }
        }
        done
    }
}
