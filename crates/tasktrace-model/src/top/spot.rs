//! Where one task waits, in a row's few words: its root function, the innermost user frame of
//! the path it waits on (with its line), and that path's leaf — read from the task's
//! default-view tree ([`crate::Dump::cleaned`]), in which runtime and framework
//! plumbing is already hidden.
//!
//! Invariants: the path shown is the deepest one that still waits (a completed `join!` branch
//! is never chosen while another waits; ties go to the first, as the tree prints them); the
//! leaf is written by the model's own frame renderer (`Display`), never by reading what a
//! frame says it waits on; [`Spot::key`] is a hash of the path's functions, kinds and
//! locations only, so what changes from one sample to the next (a timer's time left) does not
//! change it.

use crate::clean::{segments, trim_generics};
use crate::{Frame, FrameKind, FrameStatus, Trace};
use std::hash::{Hash, Hasher};

/// A frame's place in the source: a short function name, its file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The function, shortened ([`short_name`]).
    pub function: String,
    /// The source file, as the default view writes it (`src/main.rs`).
    pub file: String,
    /// Its line.
    pub line: u32,
}

impl Place {
    /// `fiz main.rs:24`: the function and the file's name with the line.
    pub fn label(&self) -> String {
        let file = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{} {file}:{}", self.function, self.line)
    }
}

/// Where one task waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spot {
    /// The task's root function, shortened.
    pub root: String,
    /// The innermost frame above the leaf of the path shown (the root itself when nothing
    /// else is above the leaf); `None` for a tree of a leaf alone.
    pub place: Option<Place>,
    /// The path's last frame as the model renders it, its type shortened and without
    /// location: `Sleep [waiting on timer, 3597.4s left]`.
    pub wait: String,
    /// Paths of the tree besides the one shown that also wait (the other branches of a
    /// `join!`, a `select!`).
    pub more: usize,
    /// A hash of the path shown: its frames' functions, kinds and locations.
    pub key: u64,
}

/// A function name as a narrow column shows it: the last path segment, with the type before
/// it for a method (`Handler::run`), generics' paths cut; an async block or closure says so.
pub fn short_name(frame: &Frame) -> String {
    let trimmed = trim_generics(&frame.function);
    let segs = segments(&trimmed);
    let last = segs.last().copied().unwrap_or(&trimmed);
    let mut name = match segs.len().checked_sub(2).map(|i| segs[i]) {
        Some(ty) if ty.starts_with(|c: char| c.is_ascii_uppercase() || c == '<') => {
            format!("{ty}::{last}")
        }
        _ => last.to_string(),
    };
    match frame.kind {
        FrameKind::AsyncBlock => name.push_str("::{async}"),
        FrameKind::Closure => name.push_str("::{closure}"),
        _ => {}
    }
    name
}

/// The spot of a task whose default-view tree is `trace`; `None` for an empty tree.
pub fn of(trace: &Trace) -> Option<Spot> {
    let root = trace.roots.first()?;
    let paths = trace.paths();
    let waits = |p: &Vec<&Frame>| p.last().is_some_and(|f| f.status != FrameStatus::Completed);
    let depth = |p: &Vec<&Frame>| p.iter().filter(|f| f.kind != FrameKind::Leaf).count();
    // The deepest waiting path; the first of equals (max_by_key keeps the last, so compare
    // reversed positions).
    let (index, path) = paths
        .iter()
        .enumerate()
        .max_by_key(|(i, p)| (waits(p), depth(p), std::cmp::Reverse(*i)))?;
    let last = *path.last()?;
    let place = path
        .iter()
        .rev()
        .find(|f| f.kind != FrameKind::Leaf)
        .and_then(|f| {
            let loc = f.location.as_ref()?;
            Some(Place {
                function: short_name(f),
                file: loc.file.clone(),
                line: loc.line,
            })
        });
    let mut shown = last.clone();
    shown.function = short_name(last);
    shown.kind = FrameKind::Fn;
    shown.location = None;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for f in path {
        f.function.hash(&mut hasher);
        f.kind.hash(&mut hasher);
        f.location.hash(&mut hasher);
    }
    let more = paths
        .iter()
        .enumerate()
        .filter(|(i, p)| *i != index && waits(p))
        .count();
    Some(Spot {
        root: short_name(&root.frame),
        place,
        wait: shown.to_string(),
        more,
        key: hasher.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Location, Timer, Wait, WaitOn};

    fn async_fn(name: &str, line: u32) -> Frame {
        Frame::new(name, Some(Location::new("src/main.rs", line, None)))
            .with_kind(FrameKind::AsyncFn)
    }

    fn timer(left_ms: u64) -> Frame {
        Frame::new("tokio::time::sleep::Sleep", None)
            .with_kind(FrameKind::Leaf)
            .with_wait(Wait {
                timer: Some(Timer::LeftMs(left_ms)),
                ..Wait::new(WaitOn::Timer)
            })
    }

    #[test]
    fn the_deepest_waiting_path_its_innermost_frame_and_leaf() {
        let mut t = Trace::new();
        t.insert_path([async_fn("app::conn", 9), timer(1_000)]);
        t.insert_path([
            async_fn("app::conn", 9),
            async_fn("app::handle", 20),
            timer(2_000),
        ]);
        let spot = of(&t).unwrap();
        assert_eq!(spot.root, "conn");
        assert_eq!(spot.place.as_ref().unwrap().label(), "handle main.rs:20");
        assert!(
            spot.wait.starts_with("Sleep [waiting on timer"),
            "{}",
            spot.wait
        );
        assert_eq!(spot.more, 1);
    }

    #[test]
    fn the_key_ignores_what_changes_between_samples() {
        let path = |left: u64| {
            let mut t = Trace::new();
            t.insert_path([async_fn("app::fiz", 24), timer(left)]);
            of(&t).unwrap()
        };
        let (a, b) = (path(3_597_400), path(3_596_400));
        assert_ne!(a.wait, b.wait);
        assert_eq!(a.key, b.key);
        let mut moved = Trace::new();
        moved.insert_path([async_fn("app::fiz", 25), timer(1_000)]);
        assert_ne!(of(&moved).unwrap().key, a.key);
    }

    #[test]
    fn a_completed_branch_is_not_where_a_task_waits() {
        let mut t = Trace::new();
        t.insert_path([
            async_fn("app::both", 5),
            async_fn("app::deep", 6),
            async_fn("app::done", 7).with_status(FrameStatus::Completed),
        ]);
        t.insert_path([async_fn("app::both", 5), timer(1_000)]);
        let spot = of(&t).unwrap();
        assert_eq!(spot.place.unwrap().function, "both");
        assert_eq!(spot.more, 0);
    }

    #[test]
    fn short_names_keep_a_method_s_type() {
        let f = |name: &str, kind| Frame::new(name, None).with_kind(kind);
        assert_eq!(
            short_name(&f("mini_redis::server::Handler::run", FrameKind::AsyncFn)),
            "Handler::run"
        );
        assert_eq!(
            short_name(&f("axum::serve::handle_connection", FrameKind::AsyncBlock)),
            "handle_connection::{async}"
        );
        assert_eq!(
            short_name(&f(
                "tokio::runtime::task::join::JoinHandle<u32>",
                FrameKind::Leaf
            )),
            "JoinHandle<u32>"
        );
        assert_eq!(short_name(&f("app::main", FrameKind::AsyncFn)), "main");
    }
}
