//! The bytes of an ELF file (an executable or a separate debug file), memory-mapped.
//!
//! A service's executable is 50–500 MB, most of it DWARF. Read into the heap, every byte of it
//! counts against the reader's resident memory for as long as the reader lives, and inside a
//! service (the `snapshot` feature) that is the service's own memory. Mapped, the pages belong
//! to the page cache: the kernel reclaims them under pressure, the index keeps only offsets
//! into them, and a `fork` of the process does not copy their page tables (a read-only file
//! mapping has no anonymous pages). [`FileBytes::forget_pages`] hands a range the reader is
//! done with back to the kernel, so that a one-pass scan of `.debug_info` does not leave its
//! hundreds of megabytes counted as the reader's resident memory.
//!
//! Invariants: the mapping is private and read-only, and lives exactly as long as the
//! `FileBytes`; every slice handed out borrows the `FileBytes`. The bytes are untrusted input
//! (every reader checks bounds); what a mapping cannot guard against is another process
//! truncating the file while it is mapped, which would fault a read past the new end — the
//! same exposure gdb, perf and addr2line accept for their mapped files. An executable that is
//! running cannot be written (`ETXTBSY`); replacing it by rename leaves the mapping intact.

use std::ops::Deref;

/// An ELF file's bytes: mapped from disk, or owned (bytes handed over by a caller, tests,
/// the fuzzer).
pub enum FileBytes {
    /// A private read-only mapping of the whole file.
    Mapped(memmap2::Mmap),
    /// Bytes in the heap.
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Maps the file at `path` (an empty file is owned and empty: it cannot be mapped).
    pub fn open(path: &str) -> std::io::Result<FileBytes> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: a private, read-only mapping of a regular file, owned by the returned value
        // and unmapped when it drops; see the module doc for what another process changing
        // the file would do.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        Ok(FileBytes::Mapped(map))
    }

    /// Tells the kernel the reader will not need `range` of the file soon: its pages stop
    /// counting as this process's resident memory (a later read maps them again from the page
    /// cache). Whole pages inside the range only; a no-op for owned bytes.
    pub fn forget_pages(&self, range: std::ops::Range<usize>) {
        let FileBytes::Mapped(map) = self else {
            return;
        };
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = (range.end.min(map.len()) / PAGE) * PAGE;
        if start < end {
            // MADV_DONTNEED on a private read-only file mapping only drops page table entries:
            // the contents read later are the file's, unchanged. Failure is harmless.
            // SAFETY: `start..end` lies inside the mapping (page aligned, clamped to its
            // length), and no reference into a mapped file changes meaning when its pages are
            // dropped and faulted in again from the same file.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// [`forget_pages`](Self::forget_pages) of the pages of `part`, a slice of these bytes
    /// (anything else: nothing).
    pub fn forget_within(&self, part: &[u8]) {
        let base = self.as_ptr() as usize;
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        if let Some(end) = start.checked_add(part.len()).filter(|&e| e <= self.len()) {
            self.forget_pages(start..end);
        }
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileBytes::Mapped(m) => write!(f, "FileBytes::Mapped({} bytes)", m.len()),
            FileBytes::Owned(v) => write!(f, "FileBytes::Owned({} bytes)", v.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_reads_as_its_bytes_after_its_pages_are_forgotten() {
        let exe = std::env::current_exe().unwrap();
        let path = exe.to_str().unwrap();
        let mapped = FileBytes::open(path).unwrap();
        let read = std::fs::read(path).unwrap();
        assert!(matches!(mapped, FileBytes::Mapped(_)));
        assert_eq!(&mapped[..], &read[..]);
        mapped.forget_pages(0..mapped.len());
        assert_eq!(&mapped[..4096], &read[..4096]);
        assert_eq!(mapped[read.len() - 1], read[read.len() - 1]);
        // A part of it, and bytes that are not its: both harmless.
        mapped.forget_within(&mapped[4096..3 * 4096]);
        mapped.forget_within(&read[..8192]);
        assert_eq!(&mapped[..], &read[..]);
    }
}
