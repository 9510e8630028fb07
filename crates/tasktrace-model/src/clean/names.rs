//! Function names as people read them: the compiler's markers (`{{closure}}`,
//! `{async_fn#0}`, `{async_fn_env#0}`) turned into a [`FrameKind`] and the enclosing
//! function's path, generic arguments cut to their last segment, and async fns whose names
//! only their neighbours give (line-tables-only builds).

use super::UNNAMED;
use crate::{Frame, FrameKind, Node};

/// A compiler-generated path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marker {
    /// `{{closure}}` (legacy mangling) or `{closure#N}` with a path (v0): an async fn body, an
    /// async block or a closure; the symbol does not say which.
    AnyClosure,
    /// `{closure#N}` alone (a DWARF inlined name): a closure.
    Closure,
    /// `{async_fn#N}` / `{async_fn_env#N}`.
    AsyncFn,
    /// `{async_block#N}` / `{async_block_env#N}`.
    AsyncBlock,
    /// `{closure_env#N}`.
    ClosureEnv,
}

pub(super) fn marker(segment: &str) -> Option<Marker> {
    // DWARF names of generic async fns carry their arguments: `{async_fn#0}<u32>`.
    let segment = match segment.find("}<") {
        Some(i) if segment.starts_with('{') && segment.ends_with('>') => &segment[..=i],
        _ => segment,
    };
    let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
    if inner == "{closure}" {
        return Some(Marker::AnyClosure);
    }
    let name = inner.split('#').next().unwrap_or(inner);
    Some(match name {
        "closure" => Marker::AnyClosure,
        "async_fn" | "async_fn_env" => Marker::AsyncFn,
        "async_block" | "async_block_env" => Marker::AsyncBlock,
        "closure_env" => Marker::ClosureEnv,
        _ => return None,
    })
}

/// The kind of state machine a compiler-made path segment names: `{async_fn_env#0}` (or
/// `{async_fn#0}`) an async fn's, `{async_block_env#1}` an async block's; `None` for any
/// other segment. One marker table for both producers (the out-of-process reader names state
/// machine types with it).
///
/// ```
/// use tasktrace_model::{clean::state_machine_kind, FrameKind};
///
/// assert_eq!(state_machine_kind("{async_fn_env#0}"), Some(FrameKind::AsyncFn));
/// assert_eq!(state_machine_kind("{async_block_env#1}"), Some(FrameKind::AsyncBlock));
/// assert_eq!(state_machine_kind("{closure#0}"), None);
/// ```
pub fn state_machine_kind(segment: &str) -> Option<FrameKind> {
    match marker(segment)? {
        Marker::AsyncFn => Some(FrameKind::AsyncFn),
        Marker::AsyncBlock => Some(FrameKind::AsyncBlock),
        _ => None,
    }
}

/// Splits `a::b<c::d>::e` at the `::` that are outside brackets (`<>`, `()`, `[]`; the `>` of
/// a `fn(A) -> B` arrow is not a bracket).
///
/// ```
/// use tasktrace_model::clean::segments;
///
/// assert_eq!(segments("a::b<c::d>::e"), ["a", "b<c::d>", "e"]);
/// assert_eq!(
///     segments("h::{impl#3}::call::{async_block_env#0}<fn(S) -> a::f::{async_fn_env#0}, u8>"),
///     ["h", "{impl#3}", "call", "{async_block_env#0}<fn(S) -> a::f::{async_fn_env#0}, u8>"]
/// );
/// ```
pub fn segments(name: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                out.push(&name[start..i]);
                i += 2;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&name[start..]);
    out
}

/// The last `::` segment of a qualified name (see [`segments`]).
///
/// ```
/// use tasktrace_model::clean::last_segment;
///
/// assert_eq!(last_segment("core::option::Option<a::B>::Some"), "Some");
/// ```
pub fn last_segment(name: &str) -> &str {
    segments(name).pop().unwrap_or(name)
}

/// The function a symbol's or DWARF's name belongs to, without the compiler's markers: the
/// same for both producers' names of one async fn (`app::run::{{closure}}`,
/// `app::run::{async_fn_env#0}` → `app::run`).
///
/// ```
/// use tasktrace_model::clean::enclosing_function;
///
/// assert_eq!(enclosing_function("app::run::{{closure}}"), "app::run");
/// assert_eq!(enclosing_function("app::run::{async_fn_env#0}"), "app::run");
/// ```
pub fn enclosing_function(function: &str) -> String {
    parse(function).base
}

/// A function name without its compiler-generated suffix: the path and the markers.
pub(super) struct Parsed {
    /// The path before the markers (empty for a bare DWARF name like `{async_fn#0}`).
    base: String,
    markers: Vec<Marker>,
}

pub(super) fn parse(function: &str) -> Parsed {
    let mut segs = segments(function);
    // A legacy hash left by a demangler in its plain form.
    if let Some(last) = segs.last() {
        if last.len() == 17
            && last.starts_with('h')
            && last[1..].bytes().all(|b| b.is_ascii_hexdigit())
        {
            segs.pop();
        }
    }
    let mut markers = Vec::new();
    while let Some(m) = segs.last().and_then(|s| marker(s)) {
        markers.push(m);
        segs.pop();
    }
    markers.reverse();
    // Markers inside the path (an item nested in an async fn): `a::f::{{closure}}::g` → `a::f::g`.
    segs.retain(|s| marker(s).is_none());
    if segs.is_empty() && markers == [Marker::AnyClosure] && function.starts_with("{closure#") {
        markers[0] = Marker::Closure;
    }
    Parsed {
        base: segs.join("::"),
        markers,
    }
}

/// Cuts every path inside brackets to its last real segment:
/// `<core::future::poll_fn::PollFn<F> as core::future::future::Future>::poll` →
/// `<PollFn<F> as Future>::poll`. Paths outside brackets stay whole.
pub fn trim_generics(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0i32;
    let mut chars = name.char_indices().peekable();
    let is_path_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | ':' | '{' | '}' | '#');
    while let Some((i, c)) = chars.next() {
        if is_path_char(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if is_path_char(d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let run = &name[i..end];
            if depth == 0 || !run.contains("::") {
                out.push_str(run);
            } else {
                let turbofish = run.ends_with("::");
                let last = run
                    .split("::")
                    .filter(|s| !s.is_empty() && marker(s).is_none())
                    .last()
                    .unwrap_or(run);
                out.push_str(last);
                if turbofish {
                    out.push_str("::");
                }
            }
            continue;
        }
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Paths named by generic arguments of `function` that end in `::{<marker>#N}` (e.g.
/// `poll<seed::fiz::{async_fn_env#0}>` with `async_fn_env#0` gives `seed::fiz`), with their
/// own trailing markers removed.
pub(super) fn hinted_paths(function: &str, marker_text: &str) -> Vec<String> {
    let needle = format!("::{{{marker_text}}}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = function[from..].find(&needle) {
        let at = from + pos;
        let before = &function[..at];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '{' | '}' | '#')))
            .map_or(0, |i| i + 1);
        let path = parse(&before[start..]).base;
        if !path.is_empty() && !out.contains(&path) {
            out.push(path);
        }
        from = at + needle.len();
    }
    out
}

/// The number in a bare DWARF name like `{async_fn#3}`.
pub(super) fn bare_index(function: &str) -> &str {
    function
        .rsplit_once('#')
        .map_or("0", |(_, n)| n.trim_end_matches('}'))
}

/// Whether a `{{closure}}` called by `parent` is a closure rather than an async fn or block
/// body. State machines are polled by a `poll` method or by another state machine (or are the
/// root); closures are called by `PollFn::poll`, `Option::map`, `catch_unwind`, `with_mut`, ….
pub(super) fn is_closure_caller(parent: &str) -> bool {
    if parent.contains("PollFn") || parent.contains("poll_fn") {
        return true;
    }
    let parsed = parse(parent);
    if !parsed.markers.is_empty() {
        return false;
    }
    let last = segments(&parsed.base)
        .last()
        .map_or("", |s| s.trim_start_matches('<'));
    !last.starts_with("poll")
}

/// The clean kind and name of `frame`, given its raw parent and children (for names that only
/// the neighbours carry).
pub(super) fn clean_name(
    frame: &Frame,
    parent: Option<&Frame>,
    children: &[Node],
) -> (FrameKind, String) {
    if frame.kind != FrameKind::Fn {
        return (frame.kind, frame.function.clone());
    }
    let parsed = parse(&frame.function);
    let Some(&last) = parsed.markers.last() else {
        return (FrameKind::Fn, trim_generics(&frame.function));
    };
    let kind = match last {
        Marker::AsyncFn => FrameKind::AsyncFn,
        Marker::AsyncBlock => FrameKind::AsyncBlock,
        Marker::Closure | Marker::ClosureEnv => FrameKind::Closure,
        Marker::AnyClosure => {
            if parent.is_some_and(|p| is_closure_caller(&p.function)) {
                FrameKind::Closure
            } else if parsed.markers.len() == 1 {
                FrameKind::AsyncFn
            } else {
                FrameKind::AsyncBlock
            }
        }
    };
    if !parsed.base.is_empty() {
        return (kind, trim_generics(&parsed.base));
    }
    // A bare DWARF name: look at the neighbours' generic arguments.
    let n = bare_index(&frame.function);
    let mut names: Vec<String> = Vec::new();
    let parent_fn = parent.map_or("", |p| p.function.as_str());
    match kind {
        FrameKind::AsyncFn => {
            names = hinted_paths(parent_fn, &format!("async_fn_env#{n}"));
            if names.is_empty() {
                for child in children {
                    for m in ["closure_env#", "async_block_env#"] {
                        let text = &child.frame.function;
                        let needle = format!("{{async_fn#{n}}}::{{{m}");
                        if let Some(pos) = text.find(&needle) {
                            let head = &text[..pos + format!("{{async_fn#{n}}}").len()];
                            for p in hinted_paths(head, &format!("async_fn#{n}")) {
                                if !names.contains(&p) {
                                    names.push(p);
                                }
                            }
                        }
                    }
                }
            }
        }
        FrameKind::AsyncBlock => names = hinted_paths(parent_fn, &format!("async_block_env#{n}")),
        FrameKind::Closure => names = hinted_paths(parent_fn, &format!("closure_env#{n}")),
        _ => {}
    }
    match names.as_slice() {
        [one] => (kind, trim_generics(one)),
        _ => (kind, UNNAMED.to_string()),
    }
}
