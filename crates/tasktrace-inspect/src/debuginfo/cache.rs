//! What is parsed from the DWARF once and kept (DIEs, enum variant tables), by `.debug_info`
//! offset: an append-only map that hands out references while it grows.
//!
//! Invariants (what makes [`Kept::get`] and [`Kept::insert`] sound): every value is a
//! `Box<T>` inserted once and never removed, replaced or mutated while the map lives; the map
//! may move the boxes (rehashing) but never the values they point to, so a `&T` taken from a
//! box stays valid for as long as the map is borrowed. All access to the map itself is under
//! its lock.
//!
//! Why not a crate's frozen map: a read of 10,000 tasks looks DIEs up millions of times, and
//! the ones at hand hash with SipHash: a tenth of the read's time ([`crate::addr_hash`]).

use crate::addr_hash::AddrMap;
use std::sync::RwLock;

/// Values parsed once, by offset.
pub(super) struct Kept<T> {
    map: RwLock<AddrMap<Box<T>>>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept {
            map: RwLock::new(AddrMap::default()),
        }
    }
}

impl<T> Kept<T> {
    /// The value at `off`, if kept before.
    pub(super) fn get(&self, off: u64) -> Option<&T> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let value: *const T = &**map.get(&off)?;
        // SAFETY: the box is never removed, replaced or mutated while `self` lives (module
        // invariants), so the value it points to outlives this borrow of `self`.
        Some(unsafe { &*value })
    }

    /// Keeps `value` at `off` (the one kept before, if another thread was first).
    pub(super) fn insert(&self, off: u64, value: T) -> &T {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let value: *const T = &**map.entry(off).or_insert_with(|| Box::new(value));
        // SAFETY: as in `get`: the box stays, unchanged, for as long as `self`.
        unsafe { &*value }
    }

    /// How many values are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debuginfo::{Die, Kind};

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
            members: Vec::new(),
            containing: None,
        }
    }

    #[test]
    fn references_stay_valid_while_the_map_grows() {
        let cache = Kept::<Die>::default();
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
