//! The registry's storage: per shard, pages of slots and a free list (the invariants are in
//! [`super`]'s module doc).

use super::SHARDS;
use crate::shared::Shared;
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::{Mutex, MutexGuard};

/// Bytes of a page, and its alignment.
pub(super) const PAGE_BYTES: usize = 16 * 1024;

/// Slots per page: what fits after the header.
pub(super) const SLOTS_PER_PAGE: usize =
    (PAGE_BYTES - std::mem::size_of::<usize>()) / std::mem::size_of::<Shared>();

/// Pages an emptied shard keeps for its next tasks.
pub(super) const KEEP_PAGES: usize = 1;

/// A page: its header, then its slots. `align` must equal [`PAGE_BYTES`] (asserted below).
#[repr(C, align(16384))]
struct Page {
    /// The shard that owns the page.
    shard: u32,
    /// Its position in the shard's `pages`.
    number: u32,
    slots: [Shared; SLOTS_PER_PAGE],
}

const _: () = assert!(std::mem::align_of::<Page>() == PAGE_BYTES);
const _: () = assert!(std::mem::size_of::<Page>() == PAGE_BYTES);
const _: () = assert!(SHARDS <= u32::MAX as usize);

/// A page's pointer: pages are allocated and freed by hand (`Box::into_raw`/`from_raw`), so
/// that slot pointers keep the provenance of the whole page.
struct PagePtr(NonNull<Page>);

// SAFETY: a page is plain shared memory (atomics and cells guarded as `Shared` says); it is
// freed only under its shard's lock when no slot of it is in use.
unsafe impl Send for PagePtr {}

/// One shard's storage.
struct Pages {
    pages: Vec<PagePtr>,
    /// Slots handed out at least once since the last reset, in page order.
    used: usize,
    /// Head of the free list: a [`Link`], 0 for none.
    free: u64,
    /// Slots taken and not yet given back.
    live: usize,
}

// Padded so that two shards never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Pages>);

static STORAGE: [Shard; SHARDS] = [const {
    Shard(Mutex::new(Pages {
        pages: Vec::new(),
        used: 0,
        free: 0,
        live: 0,
    }))
}; SHARDS];

fn lock(shard: usize) -> MutexGuard<'static, Pages> {
    // A poisoned shard only means a panic elsewhere; the pages are consistent between writes.
    STORAGE[shard].0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free-list link: page number and slot index, plus one (0 is the end of the list).
fn link(page: usize, index: usize) -> u64 {
    ((page as u64) << 32 | index as u64) + 1
}

impl Page {
    fn allocate(shard: usize, number: usize) -> PagePtr {
        let mut page = Box::<Page>::new_uninit();
        let p = page.as_mut_ptr();
        // SAFETY: every field of the uninitialised page is written in place before
        // `assume_init`; `i < SLOTS_PER_PAGE` stays inside the slot array.
        unsafe {
            addr_of_mut!((*p).shard).write(shard as u32);
            addr_of_mut!((*p).number).write(number as u32);
            let slots = addr_of_mut!((*p).slots).cast::<Shared>();
            for i in 0..SLOTS_PER_PAGE {
                slots.add(i).write(Shared::vacant());
            }
            PagePtr(NonNull::new_unchecked(Box::into_raw(page.assume_init())))
        }
    }
}

/// Slot `index` of `page`, with the page's provenance.
fn slot(page: &PagePtr, index: usize) -> NonNull<Shared> {
    debug_assert!(index < SLOTS_PER_PAGE);
    // SAFETY: the page is live (it is in a shard's list, read under its lock) and the index is
    // inside the slot array.
    unsafe {
        NonNull::new_unchecked(
            addr_of_mut!((*page.0.as_ptr()).slots)
                .cast::<Shared>()
                .add(index),
        )
    }
}

/// A vacant slot of `shard`, now owned by the caller.
pub(super) fn take_slot(shard: usize) -> NonNull<Shared> {
    let mut pages = lock(shard);
    pages.live += 1;
    if pages.free != 0 {
        let at = pages.free - 1;
        let slot = slot(&pages.pages[(at >> 32) as usize], at as u32 as usize);
        // SAFETY: a slot on the free list is vacant, and we hold its shard's lock.
        pages.free = unsafe { slot.as_ref().link() };
        return slot;
    }
    let (number, index) = (pages.used / SLOTS_PER_PAGE, pages.used % SLOTS_PER_PAGE);
    if number == pages.pages.len() {
        let page = Page::allocate(shard, number);
        pages.pages.push(page);
    }
    pages.used += 1;
    slot(&pages.pages[number], index)
}

/// Puts a slot whose last reference is gone back on its shard's free list.
pub(super) fn give_back(slot: NonNull<Shared>) {
    let page = slot
        .as_ptr()
        .map_addr(|a| a & !(PAGE_BYTES - 1))
        .cast::<Page>();
    // SAFETY: a slot in use lies in a live page (pages are freed only when none of their
    // shard's slots is in use), and the header never changes after allocation.
    let (shard, number, first) = unsafe {
        (
            (*page).shard as usize,
            (*page).number as usize,
            addr_of!((*page).slots) as usize,
        )
    };
    let index = (slot.as_ptr() as usize - first) / std::mem::size_of::<Shared>();
    let mut pages = lock(shard);
    // SAFETY: the slot is vacant now, and we hold its shard's lock.
    unsafe { slot.as_ref().set_link(pages.free) };
    pages.free = link(number, index);
    pages.live -= 1;
    if pages.live == 0 {
        // Empty: start over, and give back the memory of a past burst of tasks.
        let keep = KEEP_PAGES.min(pages.pages.len());
        for page in pages.pages.drain(keep..) {
            // SAFETY: no slot of the shard is in use (`live` is 0), so nothing refers to the
            // page; scans read pages only under this lock.
            drop(unsafe { Box::from_raw(page.0.as_ptr()) });
        }
        pages.used = 0;
        pages.free = 0;
    }
}

/// Calls `f` with every slot ever handed out of every shard, each shard under its lock.
pub(super) fn for_each_slot(mut f: impl FnMut(NonNull<Shared>)) {
    for shard in 0..SHARDS {
        let pages = lock(shard);
        for (number, page) in pages.pages.iter().enumerate() {
            let slots = pages
                .used
                .saturating_sub(number * SLOTS_PER_PAGE)
                .min(SLOTS_PER_PAGE);
            for index in 0..slots {
                f(slot(page, index));
            }
        }
    }
}

/// Pages and slots in use in `shard` (tests).
#[cfg(test)]
pub(super) fn usage(shard: usize) -> (usize, usize) {
    let pages = lock(shard);
    (pages.pages.len(), pages.live)
}

/// The shard that owns `slot` (tests).
#[cfg(test)]
pub(super) fn shard_of(slot: &Shared) -> usize {
    let page = (slot as *const Shared as usize) & !(PAGE_BYTES - 1);
    (0..SHARDS)
        .find(|&shard| {
            lock(shard)
                .pages
                .iter()
                .any(|p| p.0.as_ptr() as usize == page)
        })
        .expect("a referenced slot lies in a shard's page")
}
