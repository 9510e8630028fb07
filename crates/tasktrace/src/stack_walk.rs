//! The capture's stack walk on Linux x86-64: framehop over this executable's `.eh_frame`, with
//! the unwind rule of each return address cached (per thread), instead of a full DWARF CFI
//! lookup and interpretation per frame per capture (`_Unwind_Backtrace`). The stacks of
//! thousands of suspended tasks share a few hundred return addresses: after the first dump,
//! nearly every step is a cache hit.
//!
//! Invariants:
//! - Only this executable is registered with the unwinder. A frame whose code is elsewhere (a
//!   shared library, the vDSO), or any unwinding error, ends the walk with `false`: the caller
//!   then walks the stack again with `_Unwind_Backtrace`, which knows every module. A walk
//!   never reports a frame it is unsure of.
//! - Stack reads are bounds-checked against the current thread's stack (from
//!   `pthread_getattr_np`, read once per thread): a bad unwind rule can only end the walk,
//!   never read outside the stack.
//! - The rule cache is per thread (`CacheX86_64` is used by `&mut`), so captures on different
//!   workers never contend; the unwinder itself is shared read-only.
//! - What is reported per frame is what [`crate::capture`] expects from `_Unwind_Backtrace`:
//!   the return address, and the stack pointer at its call site (the callee's CFA).

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

type Walker = UnwinderX86_64<&'static [u8]>;

/// The unwinder with this executable registered; `None` when its unwind tables cannot be
/// found (the walk then always falls back).
fn walker() -> Option<&'static Walker> {
    static WALKER: OnceLock<Option<Walker>> = OnceLock::new();
    WALKER.get_or_init(load).as_ref()
}

fn load() -> Option<Walker> {
    use object::{Object, ObjectSection, ObjectSegment};
    let data = crate::dwarf_lookup::executable()?;
    let obj = object::File::parse(data).ok()?;
    let bias = crate::dwarf_lookup::load_bias(&obj)? as u64;
    let section = |name: &str| {
        let s = obj.section_by_name(name)?;
        let range = s.address()..s.address() + s.size();
        Some((range, s.data().ok()?))
    };
    let (text_svma, text) = section(".text")?;
    let (eh_frame_svma, eh_frame) = section(".eh_frame")?;
    let hdr = section(".eh_frame_hdr");
    let (lo, hi) = obj
        .segments()
        .map(|s| (s.address(), s.address() + s.size()))
        .fold((u64::MAX, 0), |(l, h), (a, b)| (l.min(a), h.max(b)));
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(text_svma),
        text: Some(text),
        eh_frame_svma: Some(eh_frame_svma),
        eh_frame: Some(eh_frame),
        eh_frame_hdr_svma: hdr.as_ref().map(|h| h.0.clone()),
        eh_frame_hdr: hdr.map(|h| h.1),
        ..Default::default()
    };
    let module = Module::new(
        "executable".to_string(),
        lo.wrapping_add(bias)..hi.wrapping_add(bias),
        bias,
        info,
    );
    let mut walker = Walker::new();
    walker.add_module(module);
    Some(walker)
}

thread_local! {
    static CACHE: RefCell<CacheX86_64> = RefCell::new(CacheX86_64::new());
    static STACK: Option<Range<u64>> = stack_bounds();
}

/// This thread's stack, `[lowest, highest)`.
fn stack_bounds() -> Option<Range<u64>> {
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read, and destroyed
    // once; `addr`/`size` are plain out-pointers.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (got == 0).then(|| addr as u64..addr as u64 + size as u64)
    }
}

/// Walks the stack of the calling thread from its caller up, calling `visit(return address,
/// stack pointer at the call site)` per frame until it returns false. Returns false when the
/// walk could not be completed (see the module doc): the caller must start over with another
/// unwinder.
#[inline(never)]
pub(crate) fn walk(mut visit: impl FnMut(usize, usize) -> bool) -> bool {
    let Some(walker) = walker() else {
        return false;
    };
    let Some(stack) = STACK.with(Clone::clone) else {
        return false;
    };
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads this function's own instruction pointer, stack pointer and frame
    // pointer into registers; touches no memory and no flags.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        if addr % 8 != 0 || addr < stack.start || addr.checked_add(8).is_none_or(|e| e > stack.end)
        {
            return Err(());
        }
        // SAFETY: an aligned word inside this thread's own stack mapping (checked above),
        // which is readable for the thread's whole life; read as a plain integer.
        Ok(unsafe { std::ptr::read_volatile(addr as *const u64) })
    };
    CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return false;
        };
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut address = FrameAddress::from_instruction_pointer(ip);
        for _ in 0..4096 {
            match walker.unwind_frame(address, &mut regs, &mut cache, &mut read_stack) {
                Ok(Some(ra)) => {
                    if !visit(ra as usize, regs.sp() as usize) {
                        return true;
                    }
                    match FrameAddress::from_return_address(ra) {
                        Some(next) => address = next,
                        None => return false,
                    }
                }
                // The end of the stack (no caller), or a frame outside this executable.
                Ok(None) | Err(_) => return false,
            }
        }
        false
    })
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// The cached walk finishes where `_Unwind_Backtrace` does, with the same frames: each
    /// caller's return address and stack pointer at its call site.
    #[test]
    #[inline(never)]
    fn walks_this_stack_as_unwind_backtrace_does() {
        let mut ours = Vec::new();
        let finished = walk(|ip, sp| {
            ours.push((ip, sp));
            ours.len() < 6
        });
        assert!(
            finished,
            "the walk through this executable finished: {ours:x?}"
        );
        assert_eq!(ours.len(), 6);
        let mut theirs = Vec::new();
        backtrace::trace(|f| {
            theirs.push((f.ip() as usize, f.sp() as usize));
            theirs.len() < 64
        });
        // Above this test function (whose own frame called the two walkers at different
        // places), both list the same frames.
        for frame in &ours[1..] {
            assert!(theirs.contains(frame), "{frame:x?} not in {theirs:x?}");
        }
        // And a second walk, from the cache, gives the same answer.
        let mut again = Vec::new();
        walk(|ip, sp| {
            again.push((ip, sp));
            again.len() < 6
        });
        assert_eq!(again[1..], ours[1..]);
    }
}
