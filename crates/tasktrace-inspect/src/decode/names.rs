//! Names of async fns as people read them: an async method is named with its type.
//!
//! The state machine of `impl Handler { async fn run(&mut self) }` is
//! `app::server::{impl#1}::run::{async_fn_env#0}`: the `impl` block is a number, not the type.
//! The type is in the env itself: its `Unresumed` variant keeps the arguments, `self` among
//! them (`&mut app::server::Handler`, or `Pin<&mut …>`, `Box<…>`, `Arc<…>`), so the method reads
//! `app::server::Handler::run`, as the symbol names of the in-process capture have it.

use crate::type_names::async_env;
use crate::type_names::last_segment;
use crate::value::Reader;
use tasktrace_model::FrameKind;

/// Smart pointers and references a `self` argument comes in, outermost first.
const SELF_WRAPPERS: &[&str] = &[
    "core::pin::Pin<",
    "alloc::boxed::Box<",
    "alloc::sync::Arc<",
    "alloc::rc::Rc<",
];

/// The function and kind of the state machine type `ty` (see [`async_env`]), its `impl` block
/// named by the type of its method's `self` argument where it has one: an async method's own
/// `self`, or for an async block or closure inside an async method, that method's.
pub fn async_fn_name(r: &Reader<'_>, ty: u64) -> Option<(String, FrameKind)> {
    let name = r.type_name(ty);
    let (func, kind) = async_env(name)?;
    if !name.contains("{impl#") {
        return Some((func, kind));
    }
    Some((method_path(r, ty, name).unwrap_or(func), kind))
}

/// `a::b::{impl#1}::run::{closure#0}::{async_block_env#0}` → `a::b::Listener::run`, with the
/// type of `run`'s `self`.
fn method_path(r: &Reader<'_>, ty: u64, name: &str) -> Option<String> {
    let segs = crate::type_names::segments(name);
    let at = segs.iter().rposition(|s| s.starts_with("{impl#"))?;
    let method = *segs.get(at + 1)?;
    if method.starts_with('{') || at + 2 >= segs.len() {
        return None;
    }
    // The method's own state machine: this type itself, or its enclosing async fn's env
    // (same generic arguments as this one's, when it has any).
    let own = segs.len() == at + 3 && segs[at + 2].starts_with("{async_fn_env#");
    let self_ty = if own {
        self_type(r, ty)?
    } else {
        let env = format!("{}::{{async_fn_env#0}}", segs[..=at + 1].join("::"));
        let last = segs[segs.len() - 1];
        let args = last.find('<').map_or("", |i| &last[i..]);
        let found = r
            .info
            .types_named(&format!("{env}{args}"))
            .first()
            .copied()
            .or_else(|| r.info.types_named(&env).first().copied())?;
        self_type(r, found)?
    };
    let rest: Vec<&str> = segs[at + 1..segs.len() - 1]
        .iter()
        .copied()
        .filter(|s| !s.starts_with('{'))
        .collect();
    Some(format!("{self_ty}::{}", rest.join("::")))
}

/// The path of the type of the `self` argument kept in the env's `Unresumed` variant, without
/// its references, smart pointers and generic arguments.
fn self_type(r: &Reader<'_>, env: u64) -> Option<String> {
    let unresumed = r
        .variant_types(env)
        .into_iter()
        .find(|&t| last_segment(r.type_name(t)) == "Unresumed")?;
    let (_, self_ty) = r.member(unresumed, "self")?;
    let mut t = r.strip(self_ty);
    // A reference's DIE may be unnamed: its pointee then names the type.
    let mut name = r.type_name(t);
    if name.is_empty() || name == "?" {
        t = r.pointee(t)?;
        name = r.type_name(t);
    }
    Some(type_path(name))
}

/// `&mut core::pin::Pin<&mut app::Conn<T>>` → `app::Conn`.
fn type_path(mut name: &str) -> String {
    loop {
        name = name.trim();
        if let Some(rest) = ["&mut ", "&", "*mut ", "*const "]
            .iter()
            .find_map(|p| name.strip_prefix(p))
        {
            name = rest;
            continue;
        }
        match SELF_WRAPPERS.iter().find_map(|p| name.strip_prefix(p)) {
            // The first generic argument: up to the comma or bracket that closes it.
            Some(inner) => name = first_argument(inner),
            None => break,
        }
    }
    name.split('<').next().unwrap_or(name).to_string()
}

/// The text of the first generic argument in `args` (what follows a `<`).
fn first_argument(args: &str) -> &str {
    let mut depth = 0i32;
    let b = args.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if i > 0 && b[i - 1] == b'-' => {}
            b'>' | b')' | b']' if depth == 0 => return &args[..i],
            b'>' | b')' | b']' => depth -= 1,
            b',' if depth == 0 => return &args[..i],
            _ => {}
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::type_path;

    #[test]
    fn self_types_without_references_pointers_and_generics() {
        assert_eq!(
            type_path("&mut mini_redis::server::Handler"),
            "mini_redis::server::Handler"
        );
        assert_eq!(
            type_path("tokio::sync::mpsc::bounded::Receiver<u64> *"),
            "tokio::sync::mpsc::bounded::Receiver"
        );
        assert_eq!(
            type_path("core::pin::Pin<&mut app::Conn<alloc::vec::Vec<u8>, u8>>"),
            "app::Conn"
        );
        assert_eq!(
            type_path("alloc::sync::Arc<app::State, alloc::alloc::Global>"),
            "app::State"
        );
        assert_eq!(type_path("&&app::Db"), "app::Db");
    }
}
