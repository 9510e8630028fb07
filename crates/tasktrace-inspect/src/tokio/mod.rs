//! Everything that depends on tokio's internals, in one place: multi-thread and
//! current-thread runtimes of tokio 1.38 – 1.54. The member chains of each version are in
//! [`layout`] (by DWARF member names, never hard-coded offsets); a missing member gives
//! `unsupported tokio X.Y: missing Type.member`.
//!
//! Path: thread-local `CONTEXT` (`fs_base − roundup(PT_TLS memsz, align) + offset`) →
//! `current.handle` (`Option<scheduler::Handle>`) → `MultiThread`/`CurrentThread(Arc<Handle>)` →
//! `shared.owned.list.lists[i]` → `head` → each task's `Trailer.owned.next` (the trailer is at
//! `vtable.trailer_offset`, the id at `vtable.id_offset`). The future's type is the template
//! parameter `T` of the subprogram at `vtable.poll` (`raw::poll<T, S>`); the future itself is
//! the `Running` variant of `core.stage.stage` in `Cell<T, S>`.

mod context;
pub mod layout;
mod tasks;

pub use context::{Flavor, Runtime, SchedulerContext, ThreadContext};
pub use tasks::RawTask;
use tasks::Stage;

use crate::error::{Error, Result};
use crate::value::Reader;
use layout::Layout;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most tasks read from one runtime (a bound on corrupt lists).
pub const MAX_TASKS: usize = 1_000_000;

/// Where a task cell's `Stage` is and how to read it, or why it cannot be found.
type StageAt = std::result::Result<Arc<Stage>, String>;

/// What this tokio version looks like, found in the debuginfo alone (no memory is read):
/// member offsets, task cell types, the timer's deadline. Kept across the reads of one
/// process ([`crate::Prepared`]), so that a sample does not pay for it while its target is
/// stopped.
pub struct Types {
    /// Member offsets of this tokio version.
    pub layout: Layout,
    cells: HashMap<String, u64>,
    /// `Sleep` → deadline seconds and nanoseconds (offsets), when the version has one.
    pub(crate) sleep_deadline: Option<(u64, u64, u64)>,
    /// Per task `poll` function (a runtime address of the one process these types are used
    /// for, whose load bias does not change): where its `Stage` is (or why not).
    stages: Mutex<HashMap<u64, StageAt>>,
    /// The names of `task_local!` keys, by their static's link-time address.
    task_local_keys: Mutex<HashMap<u64, Option<String>>>,
    /// `core::panic::Location`: offsets of its file (a `&str` or `NonNull<str>`: pointer and
    /// length), line and column.
    location: Option<(u64, u64, u64)>,
}

/// The runtime of one target, read with its version's [`Types`].
pub struct Tokio<'r, 'a> {
    pub(crate) r: &'r Reader<'a>,
    pub(crate) types: Arc<Types>,
    /// The `Stage` last resolved, by its `poll` function.
    last_stage: std::cell::RefCell<Option<(u64, StageAt)>>,
}

impl Types {
    /// Finds tokio's task types in the debuginfo `r.info` (nothing is read from `r.target`).
    pub fn find(r: &Reader<'_>) -> Result<Self> {
        let ty = |name: &str| -> Result<u64> {
            r.info.types_named(name).first().copied().ok_or_else(|| {
                Error::NoRuntime(format!(
                    "the debuginfo has no type `{name}` (is this a tokio program?)"
                ))
            })
        };
        let header_ty = ty("tokio::runtime::task::core::Header")?;
        let vtable_ty = ty("tokio::runtime::task::raw::Vtable")?;
        let trailer_ty = ty("tokio::runtime::task::core::Trailer")?;
        let layout = Layout::new(r, header_ty, vtable_ty, trailer_ty)?;
        let sleep_deadline = r
            .info
            .types_named("tokio::time::sleep::Sleep")
            .first()
            .and_then(|&sleep| {
                let l = layout.resolver(r);
                let (d_off, d_ty) = l.opt(sleep, layout::SLEEP_DEADLINE)?;
                let (s_off, _) = l.opt(d_ty, layout::INSTANT_SECS)?;
                let (n_off, _) = l.opt(d_ty, layout::INSTANT_NANOS)?;
                Some((sleep, d_off + s_off, d_off + n_off))
            });
        let mut cells = HashMap::new();
        for (_, cell) in r
            .info
            .types_with_prefix("tokio::runtime::task::core::Cell<")
        {
            if let Some(d) = r.info.die(cell) {
                for c in &d.children {
                    if let Some(p) = r.info.die(*c) {
                        if p.kind == crate::debuginfo::Kind::TemplateType && p.name == "T" {
                            if let Some(t) = p.ty {
                                cells.entry(r.type_name(t).to_string()).or_insert(cell);
                            }
                        }
                    }
                }
            }
        }
        let location = r
            .info
            .types_named("core::panic::location::Location")
            .iter()
            .find_map(|&ty| {
                let l = layout.resolver(r);
                let (file, _) = l.opt(ty, &["filename", "file"])?;
                let (line, _) = l.opt(ty, &["line"])?;
                let (col, _) = l.opt(ty, &["col"])?;
                Some((file, line, col))
            });
        Ok(Types {
            layout,
            cells,
            sleep_deadline,
            stages: Default::default(),
            task_local_keys: Default::default(),
            location,
        })
    }
}

impl<'r, 'a> Tokio<'r, 'a> {
    /// Finds tokio's task types in the debuginfo, for one read.
    pub fn new(r: &'r Reader<'a>) -> Result<Self> {
        Ok(Self::with(r, Arc::new(Types::find(r)?)))
    }

    /// Reads with types found before ([`Types::find`]).
    pub fn with(r: &'r Reader<'a>, types: Arc<Types>) -> Self {
        Tokio {
            r,
            types,
            last_stage: Default::default(),
        }
    }

    /// Member offsets of this tokio version.
    pub fn layout(&self) -> &Layout {
        &self.types.layout
    }

    /// The file, line and column of the `core::panic::Location` at `addr` (where a task of a
    /// `tokio_unstable` build was spawned). Memory is untrusted: a file name that is not
    /// short UTF-8 gives `None`.
    pub fn location(&self, addr: u64) -> Option<(String, u32, u32)> {
        let (file, line, col) = self.types.location?;
        let r = self.r;
        let ptr = r.pointer(addr.checked_add(file)?).ok()?;
        let len = r.u64(addr.checked_add(file)?.checked_add(8)?).ok()?;
        if ptr == 0 || len == 0 || len > 4096 {
            return None;
        }
        let mut name = vec![0u8; len as usize];
        r.bytes(ptr, &mut name).ok()?;
        let line = r.uint(addr.checked_add(line)?, 4).ok()? as u32;
        let col = r.uint(addr.checked_add(col)?, 4).ok()? as u32;
        Some((String::from_utf8(name).ok()?, line, col))
    }

    /// The path of the `task_local!` key whose static is at `addr` (`app::TRACE_ID`), from the
    /// executable's symbol table; looked up once per key.
    pub fn task_local_key(&self, addr: u64) -> Option<String> {
        let at = addr.wrapping_sub(self.r.bias);
        let mut keys = self
            .types
            .task_local_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        keys.entry(at)
            .or_insert_with(|| self.r.info.static_at(at))
            .clone()
    }

    /// The id of the task whose header is at `header` (for a `JoinHandle`'s raw task).
    pub fn task_id(&self, header: u64) -> Result<u64> {
        let r = self.r;
        let vtable = r.pointer(header + self.types.layout.header_vtable)?;
        r.u64(header.wrapping_add(r.u64(vtable + self.types.layout.vtable_id_offset)?))
    }

    /// The future a tokio wrapper future drives, when `ty` is one whose own frame says
    /// nothing (`RunUntil`, the future of `LocalSet::block_on`/`run_until`): (offset, type).
    pub fn inner_future(&self, ty: u64) -> Option<(u64, u64)> {
        let r = self.r;
        if !r.type_name(ty).starts_with(layout::RUN_UNTIL_TYPE) {
            return None;
        }
        self.types
            .layout
            .resolver(r)
            .opt(ty, layout::RUN_UNTIL_FUTURE)
    }
}
