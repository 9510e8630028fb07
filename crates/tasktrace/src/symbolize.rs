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

/// The logical frames of `path`, root first. Innermost frames located in `own_file` (the
/// tracer's inlined entry point, e.g. `Trace::leaf`) are dropped.
pub(crate) fn symbolize(path: &RawPath, own_file: Option<&str>) -> Vec<Frame> {
    let mut out = Vec::new();
    let last = path.ips.len().wrapping_sub(1);
    for (i, &ip) in path.ips.iter().enumerate().rev() {
        let frames = resolve_ip(ip);
        let skip = usize::from(i == last && path.reached_root);
        out.extend(frames.iter().skip(skip).cloned());
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
