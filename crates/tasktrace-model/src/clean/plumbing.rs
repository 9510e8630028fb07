//! What the default view hides: runtime, combinator and framework plumbing, told by the
//! crate a frame's source or name is in.

use super::paths::{path_crate, raw_path_crate};
use super::UNNAMED;
use crate::{Frame, FrameKind, Node};

/// Crates whose frames are runtime, combinator or framework plumbing, hidden in the default
/// view.
pub(super) const PLUMBING_CRATES: &[&str] = &[
    "core",
    "std",
    "alloc",
    "tokio",
    "tokio_util",
    "tokio_stream",
    "futures",
    "futures_util",
    "futures_core",
    "futures_channel",
    "futures_executor",
    "futures_timer",
    "pin_project",
    "pin_project_lite",
    "tasktrace",
    "async_task",
    "async_executor",
    "async_io",
    "async_channel",
    "event_listener",
    "backtrace",
    // HTTP and RPC frameworks: connections, dispatchers, service layers and routers stand
    // between a task's root and the handler a request waits in.
    "hyper",
    "hyper_util",
    "h2",
    "http_body_util",
    "axum",
    "axum_core",
    "tower",
    "tower_http",
    "tower_layer",
    "tower_service",
    "tonic",
    "tonic_prost",
    "reqwest",
    "sync_wrapper",
    "async_stream",
];

pub(super) fn is_plumbing_crate(name: &str) -> bool {
    PLUMBING_CRATES.contains(&name.replace('-', "_").as_str())
}

/// True when a (normalized) frame is runtime or combinator plumbing: its source is in the
/// toolchain or in a plumbing crate (tokio, futures, the tracer, …), or its name is in such a
/// crate, or it has neither a location nor a path. Leaf frames (from the out-of-process reader)
/// are never plumbing.
pub fn is_plumbing(frame: &Frame) -> bool {
    if frame.kind == FrameKind::Leaf {
        return false;
    }
    if let Some(loc) = &frame.location {
        if path_crate(&loc.file).is_some_and(is_plumbing_crate) {
            return true;
        }
    }
    let name = frame.function.trim_start_matches(['<', '&', '*']);
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let name = name.strip_prefix("dyn ").unwrap_or(name);
    match name.split_once("::") {
        Some((krate, _)) if !krate.contains(['<', ' ', '(']) => is_plumbing_crate(krate),
        _ => frame.location.is_none() && frame.function != UNNAMED,
    }
}

/// True when the function's own path (the `Self` type of a `<T as Trait>::method`) is in a
/// plumbing crate. Read on the raw name: normalizing cuts the paths inside `<…>`.
pub(super) fn name_in_plumbing_crate(function: &str) -> bool {
    let name = function.trim_start_matches(['<', '&', '*']);
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let name = name.strip_prefix("dyn ").unwrap_or(name);
    match name.split_once("::") {
        Some((krate, _)) if !krate.contains(['<', ' ', '(']) => is_plumbing_crate(krate),
        _ => false,
    }
}

/// Whether the node `n` (normalized from `raw`) is plumbing, hidden in the default view.
pub(super) fn is_hidden(raw: &Node, n: &Node) -> bool {
    is_plumbing(&n.frame)
        || (n.frame.kind != FrameKind::Leaf
            && (name_in_plumbing_crate(&raw.frame.function)
                || raw
                    .frame
                    .location
                    .as_ref()
                    .and_then(|l| raw_path_crate(&l.file))
                    .is_some_and(is_plumbing_crate)))
}
