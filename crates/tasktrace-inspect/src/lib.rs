//! Out-of-process reader of tokio tasks: list every task of an unmodified tokio program (a
//! live process by pid, or a core file) with the logical stack it is suspended in, from its
//! DWARF debuginfo alone, as a [`tasktrace_model::Dump`].
//!
//! Layers, bottom up, one module each: [`process`] (memory, threads and registers of a stopped
//! process or a core file), [`snapshot`] (a page cache: a live process is stopped only while
//! what is needed is copied, then decoded while it runs), [`debuginfo`] (an owned index of the
//! executable's DWARF; [`debugfile`] finds it in a separate file, [`debuginfod`] on a
//! debuginfod server, [`split_dwarf`] in `.dwp` and `.dwo` files), [`value`] (typed reads) and
//! [`type_names`], [`tokio`] (everything
//! tokio-version-specific: runtimes, owned task lists, LocalSets, task cells, workers' queues;
//! member chains per version in [`tokio::layout`]), [`decode`] (state machines, join branches,
//! sets of futures, futures written by hand, tokio's leaves, one file per library → frames),
//! [`threads`] (what each thread does; `block_on` root futures found on the stack),
//! [`unwind`] (native stacks, by framehop). [`Prepared`] is what a read derives from the
//! debuginfo alone, found once per process and before it is stopped. This file only wires:
//! one read is `read.rs`, a live process `session.rs` ([`attach`], [`Session`]), a core file
//! `core_read.rs` ([`core()`]), the options `options.rs`. The map of it all:
//! `docs/ARCHITECTURE.md`.
//!
//! Supported: tokio 1.38 – 1.54 (tested with 1.38.2, 1.43.1, 1.47.1, 1.50.0, 1.52.0, 1.54.1;
//! the layout of each is in [`tokio::layout`]), multi-thread and current-thread runtimes, several
//! runtimes in one process, x86-64 Linux (glibc), PIE and non-PIE executables, debug or
//! optimised, built with full debuginfo (`debug = true`), split (`split-debuginfo`) or not.

#![warn(missing_docs)]

mod addr_hash;
pub mod bytes;
mod core_read;
pub mod debugfile;
pub mod debuginfo;
pub mod debuginfod;
pub mod decode;
mod error;
pub mod frozen;
mod memo;
mod options;
mod prepared;
pub mod process;
mod read;
mod sections;
mod session;
pub mod snapshot;
pub mod sockets;
pub mod split_dwarf;
pub mod threads;
pub mod tokio;
pub mod type_names;
pub mod unwind;
pub mod value;

pub use core_read::core;
pub use error::{Error, FileFound, Looked, Result, ServerAnswer, TaskTypeMissing};
pub use options::Options;
pub use prepared::Prepared;
pub use read::{read, read_prepared};
pub use session::{attach, CopyReads, Session};

/// The README's examples, compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
