//! The DIEs parsed so far, by `.debug_info` offset: an append-only map that hands out
//! references while it grows.
//!
//! Invariants (what makes [`DieCache::get`] and [`DieCache::insert`] sound): every value is a
//! `Box<Die>` inserted once and never removed, replaced or mutated while the cache lives; the
//! map may move the boxes (rehashing) but never the `Die`s they point to, so a `&Die` taken
//! from a box stays valid for as long as the cache is borrowed. All access to the map itself
//! is under its lock.
//!
//! Why not a crate's frozen map: a read of 10,000 tasks looks DIEs up millions of times, and
//! the ones at hand hash with SipHash: a tenth of the read's time ([`crate::addr_hash`]).

use super::Die;
use crate::addr_hash::AddrMap;
use std::sync::RwLock;

/// Parsed DIEs by offset.
#[derive(Default)]
pub(super) struct DieCache {
    map: RwLock<AddrMap<Box<Die>>>,
}

impl DieCache {
    /// The DIE at `off`, if parsed before.
    pub(super) fn get(&self, off: u64) -> Option<&Die> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let die: *const Die = &**map.get(&off)?;
        // SAFETY: the box is never removed, replaced or mutated while `self` lives (module
        // invariants), so the `Die` it points to outlives this borrow of `self`.
        Some(unsafe { &*die })
    }

    /// Keeps `die` as the DIE at `off` (the one kept before, if another thread was first).
    pub(super) fn insert(&self, off: u64, die: Die) -> &Die {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let die: *const Die = &**map.entry(off).or_insert_with(|| Box::new(die));
        // SAFETY: as in `get`: the box stays, unchanged, for as long as `self`.
        unsafe { &*die }
    }

    /// How many DIEs are kept.
    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debuginfo::Kind;

    fn die(name: &str) -> Die {
        Die {
            kind: Kind::Struct,
            name: name.into(),
            size: 8,
            offset: 0,
            ty: None,
            discr: None,
            discr_value: None,
            decl: None,
            children: Vec::new(),
            containing: None,
        }
    }

    #[test]
    fn references_stay_valid_while_the_map_grows() {
        let cache = DieCache::default();
        let first = cache.insert(1, die("first"));
        for i in 2..10_000 {
            cache.insert(i, die("other"));
        }
        assert_eq!(first.name, "first");
        assert_eq!(cache.get(1).map(|d| d.name.as_str()), Some("first"));
        // A second insert at the same offset keeps the first.
        assert_eq!(cache.insert(1, die("second")).name, "first");
        assert!(cache.get(10_000).is_none());
        assert_eq!(cache.len(), 9_999);
    }
}
