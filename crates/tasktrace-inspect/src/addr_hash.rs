//! Hashes for what the reader looks up: addresses and offsets (one multiplication a word,
//! FxHash's step), and [`fnv1a`] for bytes that are kept as a hash (qualified type names in the
//! debuginfo index, the memory a decode read).
//!
//! A read of 10,000 tasks looks up pages, DIEs and task headers millions of times, most of
//! them while the process is stopped; SipHash (the standard maps' default) is made for keys
//! an adversary picks, and costs a tenth of such a read. Addresses and offsets come from the
//! target and its debuginfo; a target that made its own addresses collide would only slow its
//! own read.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes keys of `u64` words with one multiplication each.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64((self.0 << 8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // FxHash's step: a key of several words (a pair of addresses) mixes them all.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The `BuildHasher` of maps keyed by addresses.
pub(crate) type BuildAddrHasher = BuildHasherDefault<AddrHasher>;

/// A map keyed by addresses or offsets.
pub(crate) type AddrMap<V> = std::collections::HashMap<u64, V, BuildAddrHasher>;

/// A set of addresses.
pub(crate) type AddrSet = std::collections::HashSet<u64, BuildAddrHasher>;

/// A set of keys made of addresses (pairs, triples).
pub(crate) type AddrKeySet<K> = std::collections::HashSet<K, BuildAddrHasher>;

/// FNV-1a's offset basis: the state before any byte.
pub(crate) const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes`, continuing from `state` (so a hash can be built piece by piece: the
/// hash of `a` then `b` is the hash of `ab`).
pub(crate) fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}
