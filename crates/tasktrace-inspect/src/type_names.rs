//! Names of the types the debuginfo gives, as the reader compares and shows them: their path
//! segments (generic arguments kept whole), without the compiler-made segments, and which of
//! them are async state machines. Used by the runtime reader and the decoders alike.

use tasktrace_model::clean::state_machine_kind;
pub use tasktrace_model::clean::{last_segment, segments};
use tasktrace_model::FrameKind;

/// The function a state machine type belongs to, and its kind: `a::b::{async_fn_env#0}` →
/// (`a::b`, AsyncFn).
pub fn async_env(name: &str) -> Option<(String, FrameKind)> {
    let segs = segments(name);
    let kind = state_machine_kind(segs.last()?)?;
    Some((clean_path(&segs[..segs.len() - 1]), kind))
}

/// Joins path segments, leaving out compiler-made ones (`{closure#0}`, `{async_fn#0}`, …).
pub fn clean_path(segs: &[&str]) -> String {
    segs.iter()
        .filter(|s| !s.starts_with('{'))
        .copied()
        .collect::<Vec<_>>()
        .join("::")
}

/// A type's name without its compiler-made segments.
pub fn clean_type(name: &str) -> String {
    clean_path(&segments(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_ignore_colons_inside_generics() {
        let name = "tokio::future::maybe_done::MaybeDone<app::fiz::{async_fn_env#0}>::Future";
        assert_eq!(
            segments(name),
            [
                "tokio",
                "future",
                "maybe_done",
                "MaybeDone<app::fiz::{async_fn_env#0}>",
                "Future"
            ]
        );
        assert_eq!(last_segment(name), "Future");
        assert_eq!(last_segment("u8"), "u8");
    }

    #[test]
    fn state_machine_names_give_clean_paths() {
        assert_eq!(
            async_env("app::foo::{async_fn_env#0}"),
            Some(("app::foo".to_string(), FrameKind::AsyncFn))
        );
        assert_eq!(
            async_env("app::main::{closure#0}::{async_block_env#1}"),
            Some(("app::main".to_string(), FrameKind::AsyncBlock))
        );
        assert_eq!(
            async_env("tokio::sync::mpsc::bounded::{impl#0}::recv::{async_fn_env#0}<u32>"),
            Some((
                "tokio::sync::mpsc::bounded::recv".to_string(),
                FrameKind::AsyncFn
            ))
        );
        assert_eq!(async_env("tokio::time::sleep::Sleep"), None);
    }
}
