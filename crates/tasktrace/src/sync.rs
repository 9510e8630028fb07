//! Synchronisation primitives of the handle/future handshake: std's, or loom's when the crate is
//! built with `RUSTFLAGS="--cfg tasktrace_loom"` to model-check that handshake.

#[cfg(tasktrace_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(tasktrace_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(tasktrace_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(tasktrace_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
