//! The registry's storage: per shard, pages of slots and a free list (the invariants are in
//! [`super`]'s module doc).

use super::SHARDS;
use crate::registry::Shared;
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::{Mutex, MutexGuard};

/// Bytes of a page, and its alignment.
pub(super) const PAGE_BYTES: usize = 16 * 1024;

/// Slots per page: what fits after the header.
pub(super) const SLOTS_PER_PAGE: usize =
    (PAGE_BYTES - std::mem::size_of::<usize>()) / std::mem::size_of::<Shared>();

/// Pages a shard keeps when its tasks are gone.
pub(super) const KEEP_PAGES: usize = 1;
const _: () = assert!(KEEP_PAGES >= 1);

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

/// A page and its bookkeeping, kept in its shard (under the shard lock).
struct PageEntry {
    page: PagePtr,
    /// Head of the page's free list: slot index plus one, 0 for none. A vacant slot's link
    /// holds the next one the same way.
    free: u64,
    /// Slots of the page in use.
    live: usize,
}

/// One shard's storage.
///
/// Slots are taken from the lowest page that has one free, so tasks gather in the first pages
/// and the last ones empty out as their tasks end; trailing empty pages are freed (all but one,
/// so that a count going up and down around a page boundary does not allocate each time).
struct Pages {
    pages: Vec<PageEntry>,
    /// No page below this one has a free slot.
    lowest_free: usize,
}

// Padded so that two shards never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Pages>);

static STORAGE: [Shard; SHARDS] = [const {
    Shard(Mutex::new(Pages {
        pages: Vec::new(),
        lowest_free: 0,
    }))
}; SHARDS];

fn lock(shard: usize) -> MutexGuard<'static, Pages> {
    // A poisoned shard only means a panic elsewhere; the pages are consistent between writes.
    STORAGE[shard].0.lock().unwrap_or_else(|e| e.into_inner())
}

impl Page {
    /// A page of vacant slots, all on its free list.
    fn allocate(shard: usize, number: usize) -> PageEntry {
        let mut page = Box::<Page>::new_uninit();
        let p = page.as_mut_ptr();
        // SAFETY: every field of the uninitialised page is written in place before
        // `assume_init`; `i < SLOTS_PER_PAGE` stays inside the slot array.
        let page = unsafe {
            addr_of_mut!((*p).shard).write(shard as u32);
            addr_of_mut!((*p).number).write(number as u32);
            let slots = addr_of_mut!((*p).slots).cast::<Shared>();
            for i in 0..SLOTS_PER_PAGE {
                slots.add(i).write(Shared::vacant());
            }
            PagePtr(NonNull::new_unchecked(Box::into_raw(page.assume_init())))
        };
        for i in 0..SLOTS_PER_PAGE {
            let next = if i + 1 < SLOTS_PER_PAGE {
                i as u64 + 2
            } else {
                0
            };
            // SAFETY: the page is new: its slots are vacant and no one else knows them.
            unsafe { slot(&page, i).as_ref().set_link(next) };
        }
        PageEntry {
            page,
            free: 1,
            live: 0,
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
    let pages = &mut *pages;
    let mut number = pages.lowest_free;
    while number < pages.pages.len() && pages.pages[number].free == 0 {
        number += 1;
    }
    pages.lowest_free = number;
    if number == pages.pages.len() {
        pages.pages.push(Page::allocate(shard, number));
    }
    let entry = &mut pages.pages[number];
    let slot = slot(&entry.page, entry.free as usize - 1);
    // SAFETY: a slot on the free list is vacant, and we hold its shard's lock.
    entry.free = unsafe { slot.as_ref().link() };
    entry.live += 1;
    slot
}

/// Puts a slot whose last reference is gone back on its page's free list.
pub(super) fn give_back(slot: NonNull<Shared>) {
    let page = slot
        .as_ptr()
        .map_addr(|a| a & !(PAGE_BYTES - 1))
        .cast::<Page>();
    // SAFETY: a slot in use lies in a live page (a page is freed only when none of its slots
    // is in use), and the header never changes after allocation.
    let (shard, number, first) = unsafe {
        (
            (*page).shard as usize,
            (*page).number as usize,
            addr_of!((*page).slots) as usize,
        )
    };
    let index = (slot.as_ptr() as usize - first) / std::mem::size_of::<Shared>();
    let mut pages = lock(shard);
    let entry = &mut pages.pages[number];
    // SAFETY: the slot is vacant now, and we hold its shard's lock.
    unsafe { slot.as_ref().set_link(entry.free) };
    entry.free = index as u64 + 1;
    entry.live -= 1;
    pages.lowest_free = pages.lowest_free.min(number);
    // Free the trailing empty pages but one (and keep the first KEEP_PAGES).
    while pages.pages.len() > KEEP_PAGES
        && pages.pages[pages.pages.len() - 1].live == 0
        && pages.pages[pages.pages.len() - 2].live == 0
    {
        let last = pages.pages.pop().expect("more than two pages");
        // SAFETY: no slot of the page is in use, so nothing refers to it; scans read pages
        // only under this lock.
        drop(unsafe { Box::from_raw(last.page.0.as_ptr()) });
    }
    pages.lowest_free = pages.lowest_free.min(pages.pages.len());
}

/// Calls `f` with every slot of every shard, each shard under its lock.
pub(super) fn for_each_slot(mut f: impl FnMut(NonNull<Shared>)) {
    for shard in 0..SHARDS {
        let pages = lock(shard);
        for entry in &pages.pages {
            if entry.live == 0 {
                continue;
            }
            for index in 0..SLOTS_PER_PAGE {
                f(slot(&entry.page, index));
            }
        }
    }
}

/// Pages and slots in use in `shard` (tests).
#[cfg(test)]
pub(super) fn usage(shard: usize) -> (usize, usize) {
    let pages = lock(shard);
    (pages.pages.len(), pages.pages.iter().map(|e| e.live).sum())
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
                .any(|e| e.page.0.as_ptr() as usize == page)
        })
        .expect("a referenced slot lies in a shard's page")
}
