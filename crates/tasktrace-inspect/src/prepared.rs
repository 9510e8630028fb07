//! What a read derives from the debuginfo alone, found once per process and kept across its
//! reads: tokio's member offsets and task cell types ([`tokio::Types`]), the types a
//! `block_on` root future can have ([`threads::RootTypes`]), and which types can hold a future
//! ([`decode::ShapeCache`]).
//!
//! `attach` finds them before it stops the process, so the stop pays only for reading memory;
//! `tasktrace record` and in-process snapshots find them once for all their samples. Nothing
//! here reads target memory. One `Prepared` serves the reads of one executable: the stage
//! offsets it caches are keyed by the runtime addresses of `poll` functions, which hold for
//! one process (one load bias) and for the copies of it that snapshots read.

use crate::debuginfo::DebugInfo;
use crate::value::Reader;
use crate::{decode, threads, tokio, Result};
use std::sync::Arc;

/// The debuginfo-only part of a read, shared by the reads of one process.
pub struct Prepared {
    pub(crate) tokio: Arc<tokio::Types>,
    pub(crate) roots: threads::RootTypes,
    pub(crate) shapes: decode::ShapeCache,
}

impl Prepared {
    /// Finds tokio's types in `info`; an error when the executable has none (not a tokio
    /// program) or its tokio version is not supported.
    pub fn new(info: &DebugInfo) -> Result<Prepared> {
        let r = Reader::types_only(info);
        Ok(Prepared {
            tokio: Arc::new(tokio::Types::find(&r)?),
            roots: threads::RootTypes::find(&r),
            shapes: decode::ShapeCache::default(),
        })
    }
}
