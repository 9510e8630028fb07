//! Turning raw paths into logical frames, with a process-wide cache per address.
//!
//! One return address may stand for several logical frames: the function it is in and every
//! function the optimiser inlined at that point. All of them are kept — except in the root
//! frame, whose physical function is the capture boundary itself: there only that outermost
//! symbol is dropped, and everything inlined into it (the task's async fns, in release builds)
//! stays. Names are demangled by `rustc-demangle` in its alternate form, which drops legacy
//! hashes and v0 disambiguators without touching real path segments.

use crate::capture::RawPath;
use crate::dwarf_lookup;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use tasktrace_model::{Frame, Location};

/// Logical frames at one address, outermost first.
type Resolved = Arc<[Frame]>;

fn cache() -> &'static RwLock<HashMap<usize, Resolved>> {
    static CACHE: OnceLock<RwLock<HashMap<usize, Resolved>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The logical frames at return address `ip`, outermost first.
fn resolve_ip(ip: usize) -> Resolved {
    if let Some(hit) = cache().read().unwrap_or_else(|e| e.into_inner()).get(&ip) {
        return hit.clone();
    }
    // `ip` is a return address: `ip - 1` lies inside the call instruction, so the line and the
    // inlining chain are those of the call.
    let addr = ip.wrapping_sub(1);
    let mut frames: Vec<Frame> = match dwarf_lookup::resolve(addr) {
        Some(found) => found
            .into_iter()
            .map(|f| {
                let function = f.name.unwrap_or_else(|| format!("{ip:#x}"));
                let location = match (f.file, f.line) {
                    (Some(file), Some(line)) => Some(Location::new(file, line, f.column)),
                    _ => None,
                };
                Frame::new(function, location)
            })
            .collect(),
        None => resolve_with_backtrace_rs(ip, addr),
    };
    if frames.is_empty() {
        frames.push(Frame::new(format!("{ip:#x}"), None));
    }
    // Both report the innermost inlined frame first.
    frames.reverse();
    let resolved: Resolved = frames.into();
    cache()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ip, resolved.clone());
    resolved
}

/// backtrace-rs's answer: what the lazy index cannot give exactly (shared libraries, units
/// without `.debug_aranges`). Its first call indexes every unit of the executable.
fn resolve_with_backtrace_rs(ip: usize, addr: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    backtrace::resolve(addr as *mut std::ffi::c_void, |symbol| {
        let function = match symbol.name() {
            Some(name) => format!("{name:#}"),
            None => format!("{ip:#x}"),
        };
        let location = match (symbol.filename(), symbol.lineno()) {
            (Some(file), Some(line)) => Some(Location::new(
                file.display().to_string(),
                line,
                symbol.colno(),
            )),
            _ => None,
        };
        frames.push(Frame::new(function, location));
    });
    frames
}

/// The note of a frame recovered from a call site: its own frame was gone from the stack.
pub(crate) const TAIL_CALL: &str = "tail call";

/// The function a frame at return address `caller_ip` called but that is not the function of
/// the frame below it (at `callee_ip`): that function tail-called (jumped to) the one below,
/// and its frame is gone. Read from the `call rel32` before `caller_ip`, the way gdb uses
/// `DW_TAG_call_site`; indirect calls and calls out of the executable say nothing. Cached per
/// pair of addresses.
fn tail_caller(caller_ip: usize, callee_ip: usize) -> Option<Frame> {
    type Tails = RwLock<HashMap<(usize, usize), Option<Frame>>>;
    static TAILS: OnceLock<Tails> = OnceLock::new();
    let tails = TAILS.get_or_init(Default::default);
    let key = (caller_ip, callee_ip);
    if let Some(hit) = tails.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let found = (|| {
        if cfg!(miri) {
            return None;
        }
        // Calls between functions of this executable only: a callee in a shared library is
        // reached through a PLT stub, which is not the callee's address.
        let callee = dwarf_lookup::function_at(callee_ip.checked_sub(1)?)?;
        if !dwarf_lookup::in_executable(caller_ip.checked_sub(5)?) {
            return None;
        }
        let call = read_own_code(caller_ip - 5)?;
        if call[0] != 0xe8 {
            return None; // Not a direct call (`call *%rax`): its target is not known.
        }
        let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
        let target = caller_ip.wrapping_add_signed(rel as isize);
        if !dwarf_lookup::in_executable(target) {
            return None;
        }
        // The common case, a plain call of the callee, needs no symbolising.
        let called = dwarf_lookup::function_at(target);
        if called == Some(callee) {
            return None;
        }
        // The outermost frame at the target is the function called; its location there is
        // where the function begins (the line table's line for its first instructions).
        // Where the DWARF has no subprogram for it (`line-tables-only` keeps only some),
        // backtrace-rs's symbol table lookup answers nothing for a function's first byte:
        // then the byte after it.
        let frames = resolve_ip(target.wrapping_add(1));
        let frames = match frames.first() {
            Some(f) if !f.function.starts_with("0x") => frames,
            _ => resolve_ip(target.wrapping_add(2)),
        };
        let first = frames.first()?;
        if called.is_none() {
            // No subprogram for it: by name.
            let callee_frames = resolve_ip(callee_ip);
            let callee_name = &callee_frames.first()?.function;
            if !first.function.contains("::") || first.function == *callee_name {
                return None;
            }
        }
        Some(Frame::new(first.function.clone(), first.location.clone()).with_note(TAIL_CALL))
    })();
    tails
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, found.clone());
    found
}

/// Five bytes of this process's code at `addr`, read with `process_vm_readv` on itself: a bad
/// address is an error, never a fault.
fn read_own_code(addr: usize) -> Option<[u8; 5]> {
    let mut buf = [0u8; 5];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which lives across the call; the kernel checks the
    // remote range and fails with EFAULT instead of faulting. Reading this process's own
    // memory needs no permission.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (n == 5).then_some(buf)
}

/// The logical frames of `path`, root first. Innermost frames located in `own_file` (the
/// tracer's inlined entry point, e.g. `Trace::leaf`) are dropped. A function that tail-called
/// the next frame's function is put back between them, marked [`TAIL_CALL`].
pub(crate) fn symbolize(path: &RawPath, own_file: Option<&str>) -> Vec<Frame> {
    let mut out = Vec::new();
    let last = path.ips.len().wrapping_sub(1);
    for (i, &ip) in path.ips.iter().enumerate().rev() {
        let frames = resolve_ip(ip);
        let skip = usize::from(i == last && path.reached_root);
        out.extend(frames.iter().skip(skip).cloned());
        if i > 0 {
            out.extend(tail_caller(ip, path.ips[i - 1]));
        }
    }
    if let Some(own) = own_file {
        while out
            .last()
            .and_then(|f| f.location.as_ref())
            .is_some_and(|l| l.file.ends_with(own))
        {
            out.pop();
        }
    }
    out
}
