//! Walking the current stack between two boundaries.
//!
//! A capture keeps the physical frames strictly between a *leaf boundary* and a *root
//! boundary*, both given as addresses of locals ("markers") that live in the frames of the two
//! boundary functions. Stacks grow down, and the unwinder reports each frame's stack pointer at
//! its call site (`_Unwind_GetCFA` in libgcc and LLVM libunwind), so:
//!
//! - the frame holding the leaf marker, and every frame it called (our own machinery, the
//!   unwinder), have `sp <= leaf_marker`: they are dropped;
//! - the frame holding the root marker has the greatest `sp <= root_marker`: it is kept, as the
//!   *root frame*, because the async fns the optimiser inlined into it live there;
//! - frames with `sp > root_marker` are outside the capture.
//!
//! This never compares symbol addresses, so it does not break when the optimiser turns the
//! boundary call into a tail call or inlines callees into the boundary functions (the two ways
//! the published `tasktrace` crate lost every frame in release builds).

use std::cell::RefCell;

/// Physical frames of one root-to-leaf path, innermost first. Every address is a return
/// address (symbolise `ip - 1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RawPath {
    /// Return addresses, innermost first; the last one is in the root frame when
    /// `reached_root` is true.
    pub ips: Vec<usize>,
    /// Whether the walk reached the root boundary (false: the unwinder stopped early).
    pub reached_root: bool,
}

/// Longest path kept; deeper stacks lose frames at the leaf end (the root side is what merges
/// paths into one tree).
const MAX_FRAMES: usize = 256;

/// Frames walked at most before giving up on finding the root (runaway or corrupt stacks).
const MAX_WALK: usize = 4096;

/// The address of `marker`, to be used as a boundary. `marker` must be a local of the boundary
/// function, kept in memory by [`std::hint::black_box`].
#[inline(always)]
pub(crate) fn marker_addr(marker: &u8) -> usize {
    std::hint::black_box(marker) as *const u8 as usize
}

thread_local! {
    /// The walk's scratch list of return addresses, reused by every capture on this thread:
    /// a path is then allocated once, at its size (a `Vec` grown during the walk was a
    /// 256-byte allocation per capture).
    static SCRATCH: RefCell<Vec<usize>> = RefCell::new(Vec::with_capacity(64));
}

/// Records the physical frames between the frame holding `leaf_marker` (excluded) and the
/// frame holding `root_marker` (included). Both markers must be on the current thread's stack,
/// with `leaf_marker` below `root_marker`.
#[inline(never)]
pub(crate) fn capture_between(leaf_marker: usize, root_marker: usize) -> RawPath {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut ips) => {
            ips.clear();
            let reached_root = walk_between(&mut ips, leaf_marker, root_marker);
            path_of(&ips, reached_root)
        }
        // Not reentered in practice (nothing in a walk captures); a fresh list if it is.
        Err(_) => {
            let mut ips = Vec::with_capacity(32);
            let reached_root = walk_between(&mut ips, leaf_marker, root_marker);
            path_of(&ips, reached_root)
        }
    })
}

/// Pushes the return addresses between the boundaries onto `ips`, innermost first; true when
/// the walk reached the root boundary.
#[inline(always)]
fn walk_between(ips: &mut Vec<usize>, leaf_marker: usize, root_marker: usize) -> bool {
    let mut reached_root = false;
    if cfg!(miri) {
        // Miri has no native unwinder; the waker protocol is what runs under it.
        return false;
    }
    // One step of the walk: a frame's return address and its stack pointer at the call site.
    let mut step = |ips: &mut Vec<usize>, walked: &mut usize, ip: usize, sp: usize| {
        *walked += 1;
        if sp <= leaf_marker {
            return *walked < MAX_WALK;
        }
        if sp > root_marker {
            reached_root = !ips.is_empty();
            return false;
        }
        ips.push(ip);
        *walked < MAX_WALK
    };
    // The cached walk first; where it cannot finish, `_Unwind_Backtrace` from the start.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let mut walked = 0usize;
        if crate::stack_walk::walk(|ip, sp| step(ips, &mut walked, ip, sp)) {
            return reached_root;
        }
        ips.clear();
    }
    let mut walked = 0usize;
    let mut visit =
        |frame: &backtrace::Frame| step(ips, &mut walked, frame.ip() as usize, frame.sp() as usize);
    // SAFETY: `trace_unsynchronized` only requires that no other unwind through backtrace-rs
    // runs concurrently *on platforms whose unwinder is not thread-safe* (dbghelp on Windows).
    // On Unix it calls `_Unwind_Backtrace`, which is thread-safe (libgcc and LLVM libunwind
    // lock their own caches). Skipping backtrace-rs's global lock keeps captures on different
    // workers from serialising.
    #[cfg(unix)]
    unsafe {
        backtrace::trace_unsynchronized(&mut visit)
    };
    #[cfg(not(unix))]
    backtrace::trace(&mut visit);
    reached_root
}

/// The path of `ips` with at most [`MAX_FRAMES`] frames: the root side is kept (it anchors the
/// path in the tree); the innermost frames go.
fn path_of(ips: &[usize], reached_root: bool) -> RawPath {
    RawPath {
        ips: ips[ips.len().saturating_sub(MAX_FRAMES)..].to_vec(),
        reached_root,
    }
}
