//! tokio's memory layouts, 1.38 – 1.54: every member chain the reader follows, by DWARF member
//! names, with the alternatives of each version range (measured in `docs/tokio-layouts.md`).
//! This is the only place that knows tokio's field names; offsets are always read from the
//! debuginfo. A chain none of whose alternatives exists gives
//! `unsupported tokio X.Y: missing Type.member`.
//!
//! Path syntax: members joined with `.`; `[Name]` steps into the variant `Name` of an enum
//! whose variant is statically known (single dataful variants such as `Timer::Traditional`,
//! `InjectQueue::Locked`).

use crate::debuginfo::Kind;
use crate::error::{Error, Result};
use crate::type_names::last_segment;
use crate::value::Reader;

/// A resolved member chain: offset from the start of the outer type, and the member's type.
pub type Field = (u64, u64);

/// The `X.Y` of a `X.Y.Z` tokio version, or `?` when the debuginfo does not say.
pub fn short_version(v: Option<&str>) -> String {
    match v {
        Some(v) => v.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
        None => "?".to_string(),
    }
}

/// Where a chain stopped: (type name, member name).
type Missing = (String, String);

/// Short name of a type for messages: last path segment, without generic arguments.
fn short_type(name: &str) -> String {
    let last = last_segment(name);
    last.split('<').next().unwrap_or(last).to_string()
}

/// Follows `path` from `ty`.
fn walk(r: &Reader<'_>, ty: u64, path: &str) -> std::result::Result<Field, Missing> {
    let mut off = 0u64;
    let mut t = r.strip(ty);
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let found = if let Some(v) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            variant_member(r, t, v)
        } else {
            r.member(t, seg)
        };
        match found {
            Some((o, mt)) => {
                off += o;
                t = r.strip(mt);
            }
            None => return Err((short_type(r.type_name(t)), seg.to_string())),
        }
    }
    Ok((off, t))
}

/// The payload member of variant `name` of the enum `ty`: (offset, payload type).
pub fn variant_member(r: &Reader<'_>, ty: u64, name: &str) -> Option<Field> {
    let d = r.info.die(r.strip(ty))?;
    for part in d.children.iter().filter_map(|c| r.info.die(*c)) {
        if part.kind != Kind::VariantPart {
            continue;
        }
        for v in part.children.iter().filter_map(|c| r.info.die(*c)) {
            for m in v.children.iter().filter_map(|c| r.info.die(*c)) {
                if m.kind != Kind::Member {
                    continue;
                }
                let ty_name = m.ty.map(|t| r.type_name(t)).unwrap_or("");
                if m.name == name || last_segment(ty_name) == name {
                    return Some((m.offset, m.ty?));
                }
            }
        }
    }
    None
}

/// The bits of a task's state word (`Header.state`), the same in every version read: 1.38 –
/// 1.54 define them alike in `runtime/task/state.rs` (`RUNNING` … `CANCELLED` in the low six
/// bits, the reference count above them, three references at spawn).
pub mod state {
    /// Being polled (or cancelled while shutting down).
    pub const RUNNING: u64 = 0b1;
    /// Its future has finished.
    pub const COMPLETE: u64 = 0b10;
    /// Woken: a `Notified` for it is in a run queue (or will be, once its poll ends).
    pub const NOTIFIED: u64 = 0b100;
    /// Its `JoinHandle` exists (and holds one reference).
    pub const JOIN_INTEREST: u64 = 0b1000;
    /// Aborted: cancelled at its next poll.
    pub const CANCELLED: u64 = 0b10_0000;
    /// The reference count is the state word shifted right by this many bits.
    pub const REF_COUNT_SHIFT: u32 = 6;
    /// References a task in an owned list (a runtime's `OwnedTasks` or a LocalSet's
    /// `LocalOwnedTasks`) holds for being there: tokio's `INITIAL_STATE` gives three — this
    /// one, the first `Notified`'s (dropped when a poll ends with the task not notified) and
    /// the `JoinHandle`'s (dropped with the handle, with `JOIN_INTEREST`).
    pub const OWNED_LIST_REFS: u64 = 1;
}

/// The layout of one tokio version, as found in the debuginfo.
pub struct Layout {
    /// `X.Y` (for messages).
    pub version: String,
    /// `task::core::Header`.
    pub header_ty: u64,
    /// `Header.state` (the state word: RUNNING, COMPLETE, NOTIFIED bits).
    pub header_state: u64,
    /// `Header.vtable`.
    pub header_vtable: u64,
    /// `Header.queue_next` (inject / current_thread run queue link).
    pub header_queue_next: u64,
    /// `Vtable.poll`.
    pub vtable_poll: u64,
    /// `Vtable.trailer_offset`.
    pub vtable_trailer_offset: u64,
    /// `Vtable.id_offset`.
    pub vtable_id_offset: u64,
    /// `Vtable.spawn_location_offset`: only with `--cfg tokio_unstable` (1.46+), where the task
    /// keeps the `&'static Location` it was spawned at.
    pub vtable_spawn_location_offset: Option<u64>,
    /// `Trailer.owned` → next task's `Header` (the owned-list link).
    pub trailer_next: u64,
}

impl Layout {
    /// Resolves the chains every read needs; an error names the first missing member.
    pub fn new(r: &Reader<'_>, header_ty: u64, vtable_ty: u64, trailer_ty: u64) -> Result<Self> {
        let version = short_version(r.info.tokio_version.as_deref());
        let l = Resolver {
            r,
            version: version.clone(),
        };
        Ok(Layout {
            header_ty,
            header_state: l.one(header_ty, &["state"])?.0,
            header_vtable: l.one(header_ty, &["vtable"])?.0,
            header_queue_next: l.one(header_ty, &["queue_next"])?.0,
            vtable_poll: l.one(vtable_ty, &["poll"])?.0,
            vtable_trailer_offset: l.one(vtable_ty, &["trailer_offset"])?.0,
            vtable_id_offset: l.one(vtable_ty, &["id_offset"])?.0,
            vtable_spawn_location_offset: l.opt(vtable_ty, &["spawn_location_offset"]).map(|f| f.0),
            // `Pointers { inner: UnsafeCell<PointersInner { prev, next, _pin }> }`.
            trailer_next: l.one(trailer_ty, &["owned.inner.value.next"])?.0,
            version,
        })
    }

    /// A resolver for further chains (types known only later: handles, futures, …).
    pub fn resolver<'r, 'a>(&self, r: &'r Reader<'a>) -> Resolver<'r, 'a> {
        Resolver {
            r,
            version: self.version.clone(),
        }
    }
}

/// Resolves member chains with alternatives, naming what is missing.
pub struct Resolver<'r, 'a> {
    r: &'r Reader<'a>,
    version: String,
}

impl Resolver<'_, '_> {
    /// The first of `paths` that exists from `ty`.
    pub fn one(&self, ty: u64, paths: &[&str]) -> Result<Field> {
        let mut first = None;
        for p in paths {
            match walk(self.r, ty, p) {
                Ok(f) => return Ok(f),
                Err(m) => {
                    first.get_or_insert(m);
                }
            }
        }
        let (t, m) = first.unwrap_or_else(|| (short_type(self.r.type_name(ty)), String::new()));
        Err(self.missing(&format!("{t}.{m}")))
    }

    /// Like [`one`](Self::one), `None` when no alternative exists.
    pub fn opt(&self, ty: u64, paths: &[&str]) -> Option<Field> {
        paths.iter().find_map(|p| walk(self.r, ty, p).ok())
    }

    /// The error for a missing member or type.
    pub fn missing(&self, what: &str) -> Error {
        Error::UnsupportedTokio {
            version: self.version.clone(),
            missing: what.to_string(),
        }
    }
}

/// Member chains of `tokio::time::sleep::Sleep`'s deadline (a `tokio::time::Instant`).
pub const SLEEP_DEADLINE: &[&str] = &[
    // 1.53+: on the Sleep itself.
    "deadline",
    // 1.49 – 1.52: `entry: runtime::Timer`, single dataful variant `Traditional(TimerEntry)`.
    "entry.[Traditional].__0.deadline",
    // ≤ 1.48: `entry: TimerEntry`.
    "entry.deadline",
];

/// `tokio::time::Instant` → `Timespec.tv_sec` (i64) and `.tv_nsec` (u32).
pub const INSTANT_SECS: &[&str] = &["std.__0.t.tv_sec", "std.t.tv_sec"];
/// See [`INSTANT_SECS`].
pub const INSTANT_NANOS: &[&str] = &["std.__0.t.tv_nsec.__0", "std.t.tv_nsec.__0"];

/// From a scheduler handle (`multi_thread::Handle` or `current_thread::Handle`) to the owned
/// task lists (`ShardedList.lists`, a `Box<[Mutex<LinkedList>]>`).
pub const OWNED_LISTS: &[&str] = &["shared.owned.list.lists"];
/// From one shard (`tokio::loom::std::Mutex<LinkedList>`) to its `head`. With tokio's
/// `parking_lot` feature (part of `full`) that mutex is `(PhantomData<std Mutex>,
/// parking_lot::Mutex)`: the list is in `__1`, a `lock_api::Mutex` whose `data` is an
/// `UnsafeCell`.
pub const SHARD_HEAD: &[&str] = &[
    "__0.data.value.head",
    "__1.data.value.head",
    "data.value.head",
    "head",
];

/// `Storage<Context>` (the `CONTEXT` variable) → the `Context`.
pub const CONTEXT_IN_STORAGE: &[&str] = &["val.value", "val"];
/// `Context` → `current.handle`'s `Option<scheduler::Handle>` (inside a `RefCell`).
pub const CONTEXT_HANDLE: &[&str] = &["current.handle.value.value", "current.handle.value"];
/// `Context` → `scheduler.inner` (`Cell<*const scheduler::Context>`).
pub const CONTEXT_SCHEDULER: &[&str] = &["scheduler.inner.value.value", "scheduler.inner.value"];
/// `Context` → `current_task_id` (`Cell<Option<task::Id>>`).
pub const CONTEXT_TASK_ID: &[&str] = &["current_task_id.value.value", "current_task_id.value"];
/// `Context` → `runtime` (`Cell<EnterRuntime>`).
pub const CONTEXT_RUNTIME: &[&str] = &["runtime.value.value", "runtime.value"];
/// Task `Cell<T, S>` → `core.stage` (`CoreStage<T>`: the `Stage<T>` enum inside).
pub const CELL_STAGE: &[&str] = &[
    "core.stage.stage.__0.value",
    "core.stage.stage",
    "core.stage",
];

/// `multi_thread::worker::Context` → `worker` (`Arc<Worker>`).
pub const WORKER_CTX_WORKER: &[&str] = &["worker"];
/// `multi_thread::worker::Worker` → `index`.
pub const WORKER_INDEX: &[&str] = &["index"];
/// `multi_thread::Handle` → `shared.remotes` (`Box<[Remote]>`).
pub const MT_REMOTES: &[&str] = &["shared.remotes"];
/// `worker::Remote` → `steal.__0` (`Arc<queue::Inner>`).
pub const REMOTE_QUEUE: &[&str] = &["steal.__0", "steal"];
/// `queue::Inner` → `head` (packed: low half = real head) and `tail`.
pub const QUEUE_HEAD: &[&str] = &["head"];
/// See [`QUEUE_HEAD`].
pub const QUEUE_TAIL: &[&str] = &["tail"];
/// `current_thread::Context` and `multi_thread::worker::Context` → `core`
/// (`RefCell<Option<Box<Core>>>`: the core, while the thread runs the scheduler).
pub const CT_CTX_CORE: &[&str] = &["core.value.value", "core.value"];
/// A scheduler's `Core` → `tick` (`u32`; a worker's and a current-thread runtime's alike, in
/// every supported version).
pub const CORE_TICK: &[&str] = &["tick"];
/// `current_thread::Core` → `tasks.len` (the local run queue, a `VecDeque`).
pub const CT_CORE_QUEUE_LEN: &[&str] = &["tasks.len"];
/// Subprograms whose template parameter `F` is a `block_on` root future, inline in their frame.
pub const BLOCK_ON_FNS: &[&str] = &[
    "tokio::runtime::park::CachedParkThread::block_on<",
    "tokio::runtime::scheduler::current_thread::CurrentThread::block_on<",
];
/// `task::local::RunUntil` (the root future of `LocalSet::block_on`) → `local_set`
/// (`&LocalSet`) and `future`.
pub const RUN_UNTIL_LOCAL_SET: &[&str] = &["local_set"];
/// See [`RUN_UNTIL_LOCAL_SET`].
pub const RUN_UNTIL_FUTURE: &[&str] = &["future"];
/// `LocalSet` → `context` (`Rc<local::Context>`).
pub const LOCAL_SET_CONTEXT: &[&str] = &["context"];
/// `local::Context` → `shared` (`Arc<local::Shared>`).
pub const LOCAL_CONTEXT_SHARED: &[&str] = &["shared"];
/// `local::Shared` → the head of its `LocalOwnedTasks` list.
pub const LOCAL_OWNED_HEAD: &[&str] = &[
    "local_state.owned.inner.__0.value.list.head",
    "local_state.owned.inner.value.list.head",
];
/// The type name of `RunUntil` (generic: a prefix).
pub const RUN_UNTIL_TYPE: &str = "tokio::task::local::RunUntil<";

/// `JoinSet<T>` → `inner.lists` (`Arc<Mutex<ListsInner<JoinHandle<T>>>>`, an
/// `IdleNotifiedSet`) and `inner.length`.
pub const JOIN_SET_LISTS: &[&str] = &["inner.lists"];
/// See [`JOIN_SET_LISTS`].
pub const JOIN_SET_LENGTH: &[&str] = &["inner.length"];
/// tokio's `loom::std::Mutex<T>` → the `T`: a newtype of std's mutex (`__0.data.value`), or
/// with the `parking_lot` feature (which tokio's `full` turns on) a `PhantomData` and
/// parking_lot's mutex (`lock_api::Mutex { raw, data }`: `__1.data.value`).
pub const MUTEX_DATA: &[&str] = &["__0.data.value", "__1.data.value", "data.value"];
/// `idle_notified_set::ListsInner` → the heads of its two lists (`LinkedList<ListEntry<T>>`).
pub const IDLE_SET_HEADS: &[&[&str]] = &[&["notified.head"], &["idle.head"]];
/// `idle_notified_set::ListEntry<T>` → the next entry of its list
/// (`Pointers { inner: UnsafeCell<PointersInner { next, .. }> }`).
pub const LIST_ENTRY_NEXT: &[&str] = &["pointers.inner.value.next"];
/// `idle_notified_set::ListEntry<T>` → `value`, its `T` inside std's wrappers
/// (`UnsafeCell<ManuallyDrop<T>>`).
pub const LIST_ENTRY_VALUE: &[&str] = &["value"];
/// The type name of `JoinHandle` (generic: a prefix).
pub const JOIN_HANDLE_TYPE: &str = "tokio::runtime::task::join::JoinHandle<";
/// The type name of a `spawn_blocking` task's future (generic: a prefix; its parameter `T` is
/// the closure).
pub const BLOCKING_TASK_TYPE: &str = "tokio::runtime::blocking::task::BlockingTask<";
/// The type name of `JoinSet` (generic: a prefix).
pub const JOIN_SET_TYPE: &str = "tokio::task::join_set::JoinSet<";

/// The type name of `task_local!`'s scope future (generic: a prefix).
pub const TASK_LOCAL_FUTURE: &str = "tokio::task::task_local::TaskLocalFuture";
/// `TaskLocalFuture` → `local` (`&'static LocalKey<T>`, the key's static).
pub const TASK_LOCAL_KEY: &[&str] = &["local"];
/// `TaskLocalFuture` → `slot` (`Option<T>`: the value, kept there while the future is not
/// being polled).
pub const TASK_LOCAL_SLOT: &[&str] = &["slot"];
