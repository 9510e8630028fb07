//! Frame cleanup: from the frames a producer captured to the frames a person reads.
//!
//! Two views are built from a raw [`Trace`]:
//!
//! - [`Trace::normalized`] (the verbose view, `{:#}`): every frame, with readable names and
//!   short paths. `seed::foo::{{closure}}`, `{async_fn#0}` and `seed::foo::{async_fn_env#0}`
//!   become [`FrameKind::AsyncFn`] `seed::foo` (shown `async fn seed::foo`); async blocks and
//!   closures are named after their enclosing function (`async block in app::main`); paths
//!   inside generic arguments are cut to their last segment (`<PollFn<F> as Future>::poll`).
//!   With `debug = "line-tables-only"` inlined async fns are only `{async_fn#0}`: their names
//!   are recovered from the generic arguments of their neighbours
//!   (`poll<seed::fiz::{async_fn_env#0}>` names the frame below it) and from other frames at
//!   the same location; when nothing names them they read `async fn ??`.
//! - [`Trace::clean`] (the default view): the normalized tree without runtime and combinator
//!   plumbing (tokio, futures, core/std/alloc, the tracer itself, any frame located in the
//!   toolchain's sources), keeping the structure that plumbing creates: the branches of a
//!   `join!` stay siblings under the frame that joins. Each leaf gets a note derived from the
//!   hidden frames below it (`waiting on timer`, `waiting on mpsc receive`, …).
//!
//! Both are idempotent: frames that are already clean (as the out-of-process reader produces
//! them: `Frame { function: "app::foo", kind: AsyncFn }` with a relative path) stay as they are.
//!
//! Source paths ([`short_path`]): user files relative to their crate (`src/lib.rs`), registry
//! sources as `tokio-1.54.1/src/time/sleep.rs`, toolchain sources as `core/src/task/wake.rs`.

mod names;
mod paths;
mod plumbing;
mod waits;

pub use names::{enclosing_function, last_segment, segments, state_machine_kind, trim_generics};
pub(crate) use paths::path_crate;
pub use paths::short_path;
pub(crate) use paths::LastShortPath;
pub use plumbing::is_plumbing;

use crate::{Frame, FrameKind, Location, Node, Trace, Wait, WaitOn};
use names::clean_name;
use plumbing::is_hidden;
use std::collections::HashMap;
use std::sync::Arc;
use waits::{classify, refine_leaf_waits, via_poll_fn};

/// The name shown for an async fn whose name is in neither the debuginfo nor any neighbour.
pub const UNNAMED: &str = "??";

// ---------------------------------------------------------------------------------------------
// The verbose view: every frame, readable.
// ---------------------------------------------------------------------------------------------

fn normalize_frame(frame: &Frame, parent: Option<&Frame>, children: &[Node]) -> Frame {
    let (kind, function) = clean_name(frame, parent, children);
    let location = frame.location.as_ref().map(|l| Location {
        file: short_path(&l.file).into_owned(),
        line: l.line,
        column: l.column,
    });
    Frame {
        function,
        location,
        kind,
        status: frame.status,
        note: frame.note.clone(),
        branches: frame.branches,
        waits: frame.waits.clone(),
        related: frame.related.clone(),
        values: frame.values.clone(),
        guards: frame.guards.clone(),
    }
}

fn normalize_nodes(nodes: &[Node], parent: Option<&Frame>) -> Vec<Node> {
    nodes
        .iter()
        .map(|n| Node {
            frame: normalize_frame(&n.frame, parent, &n.children),
            children: normalize_nodes(&n.children, Some(&n.frame)),
        })
        .collect()
}

/// Names unnamed async fns after a named frame at the same location elsewhere in the tree.
fn fill_unnamed(nodes: &mut [Node]) {
    fn collect(nodes: &[Node], names: &mut HashMap<(FrameKind, Location), String>) {
        for n in nodes {
            if let Some(loc) = &n.frame.location {
                if n.frame.function != UNNAMED && n.frame.kind != FrameKind::Fn {
                    names
                        .entry((n.frame.kind, loc.clone()))
                        .or_insert_with(|| n.frame.function.clone());
                }
            }
            collect(&n.children, names);
        }
    }
    fn fill(nodes: &mut [Node], names: &HashMap<(FrameKind, Location), String>) {
        for n in nodes {
            if n.frame.function == UNNAMED {
                if let Some(loc) = &n.frame.location {
                    if let Some(name) = names.get(&(n.frame.kind, loc.clone())) {
                        n.frame.function = name.clone();
                    }
                }
            }
            fill(&mut n.children, names);
        }
    }
    let mut names = HashMap::new();
    collect(nodes, &mut names);
    if !names.is_empty() {
        fill(nodes, &names);
    }
}

// ---------------------------------------------------------------------------------------------
// The default view: plumbing hidden, leaves annotated.
// ---------------------------------------------------------------------------------------------

fn add_waits(frame: &mut Frame, waits: &[Wait]) {
    for w in waits {
        frame.add_wait(w.clone());
    }
}

/// Adds `node` to `out`, merging it into a sibling that is the same logical frame.
fn push_merged(out: &mut Vec<Node>, node: Node) {
    merge_into(out, node, true);
}

/// [`push_merged`]; `count`: whether a merge counts a branch (below a merged node, its
/// children's merges are the same branches again).
fn merge_into(out: &mut Vec<Node>, node: Node, count: bool) {
    if let Some(existing) = out
        .iter_mut()
        .find(|n| n.frame.same_logical_frame(&node.frame) && n.frame.kind == node.frame.kind)
    {
        if count {
            count_branch(&mut existing.frame);
        }
        if let Some(note) = &node.frame.note {
            match &mut existing.frame.note {
                Some(n) if n.contains(note.as_str()) => {}
                Some(n) => {
                    n.push_str("; ");
                    n.push_str(note);
                }
                None => existing.frame.note = Some(note.clone()),
            }
        }
        add_waits(&mut existing.frame, &node.frame.waits);
        for child in node.children {
            merge_into(&mut existing.children, child, false);
        }
    } else {
        out.push(node);
    }
}

/// Counts one more branch merged into `frame` (its note starts `N branches`): siblings that
/// read the same once plumbing is hidden (three lines handled by one `for_each_concurrent`, each
/// in `handle_line`) show once, saying how many they are.
fn count_branch(frame: &mut Frame) {
    const SUFFIX: &str = " branches";
    let note = frame.note.take().unwrap_or_default();
    let (count, rest) = match note.split_once(SUFFIX) {
        Some((n, rest)) if n.parse::<u32>().is_ok() => (n.parse::<u32>().unwrap_or(1), rest),
        _ => (1, &*note),
    };
    let rest = rest.strip_prefix("; ").unwrap_or(rest);
    frame.note = Some(if rest.is_empty() {
        format!("{}{SUFFIX}", count + 1)
    } else {
        format!("{}{SUFFIX}; {rest}", count + 1)
    });
}

/// A future named by its type (a leaf, or a future written by hand: no source location) is
/// shown without its generic arguments in the default view: `H2Stream<TowerToHyper…>` reads
/// `H2Stream` (the verbose view keeps them).
fn shorten_type_name(frame: &mut Frame) {
    if frame.location.is_some()
        || !matches!(frame.kind, FrameKind::Fn | FrameKind::Leaf)
        || frame.function.starts_with(['<', '&', '('])
    {
        return;
    }
    if let Some(i) = frame.function.find('<') {
        frame.function.truncate(i);
    }
}

/// A leaf that only says how it is polled (`poll_fn`'s `PollFn`) is named by the operation the
/// program called, the outermost library async fn hidden above it: `rx.recv()` reads
/// `tokio::sync::mpsc::bounded::Receiver::recv`, `ctrl_c()` reads `tokio::signal::ctrl_c`.
fn name_by_operation(frame: &mut Frame, chain: &[&Frame]) {
    let generic = frame.kind == FrameKind::Leaf
        && (frame.function.ends_with("::PollFn") || frame.function == "PollFn");
    if !generic {
        return;
    }
    if let Some(op) = chain.iter().find(|f| f.kind == FrameKind::AsyncFn) {
        // `Receiver<T>::recv` → `Receiver::recv`: the type's parameters say nothing here.
        let segments: Vec<&str> = segments(&op.function)
            .into_iter()
            .map(|s| s.split('<').next().unwrap_or(s))
            .collect();
        frame.function = if segments.iter().any(|s| s.is_empty()) {
            op.function.clone()
        } else {
            segments.join("::")
        };
    }
}

/// The visible nodes among `nodes` (hidden ones replaced by their visible descendants) and the
/// notes of the leaves reached through hidden frames only. `chain` holds the hidden frames
/// since the last visible ancestor.
fn simplify<'a>(
    raw: &[Node],
    nodes: &'a [Node],
    chain: &mut Vec<&'a Frame>,
) -> (Vec<Node>, Vec<Wait>) {
    let mut visible = Vec::new();
    let mut notes: Vec<Wait> = Vec::new();
    let note = |n: Wait, notes: &mut Vec<Wait>| {
        if !notes.contains(&n) {
            notes.push(n);
        }
    };
    for (r, n) in raw.iter().zip(nodes) {
        if is_hidden(r, n) {
            chain.push(&n.frame);
            let (kids, sub_notes) = simplify(&r.children, &n.children, chain);
            if n.children.is_empty() {
                if let Some(what) = classify(chain) {
                    note(what, &mut notes);
                }
            }
            chain.pop();
            for k in kids {
                push_merged(&mut visible, k);
            }
            for s in sub_notes {
                note(s, &mut notes);
            }
            continue;
        }
        let mut below = Vec::new();
        let (kids, sub_notes) = simplify(&r.children, &n.children, &mut below);
        // A closure handed to `poll_fn` that is itself the leaf: it is how its async fn waits.
        if kids.is_empty() && n.frame.kind == FrameKind::Closure && via_poll_fn(chain) {
            let what = Wait {
                at: n.frame.location.clone(),
                ..Wait::new(WaitOn::Closure)
            };
            note(what, &mut notes);
            continue;
        }
        let mut frame = n.frame.clone();
        shorten_type_name(&mut frame);
        name_by_operation(&mut frame, chain);
        refine_leaf_waits(&mut frame, chain);
        add_waits(&mut frame, &sub_notes);
        push_merged(
            &mut visible,
            Node {
                frame,
                children: kids,
            },
        );
    }
    (visible, notes)
}

impl Trace {
    /// The verbose view's tree: every frame, with clean names ([`FrameKind`] set, async fn
    /// names recovered where the debuginfo lacks them) and short paths. Idempotent.
    pub fn normalized(&self) -> Trace {
        let mut roots = normalize_nodes(&self.roots, None);
        fill_unnamed(&mut roots);
        Trace {
            roots: Arc::new(roots),
        }
    }

    /// The default view's tree: [`normalized`](Self::normalized), then runtime and combinator
    /// plumbing hidden (see [`is_plumbing`]) with the structure it creates kept: the branches
    /// of a `join!` are siblings under the frame that joins, and nodes that become the same
    /// logical frame merge. Each leaf carries a note on what it waits on, derived from the
    /// hidden frames below it (`waiting on timer`, `waiting on mpsc receive`, `waiting on
    /// task`, `waiting on closure at src/lib.rs:12:33` for a closure given to `poll_fn`, …). Idempotent.
    ///
    /// A task's one root frame is kept even when it is plumbing (a task spawned on
    /// `axum::serve`'s connection future, or on a `tokio::time::timeout`): it names the task,
    /// and the user's frames below it show under it. tasktrace's own task wrapper is not kept. A trace made of plumbing only is its
    /// outermost frame, with the note.
    pub fn clean(&self) -> Trace {
        let normalized = self.normalized();
        if let ([raw], [root]) = (&self.roots[..], &normalized.roots[..]) {
            // tasktrace's own wrapper (a task of `tasktrace::spawn` read from outside) names
            // nothing: the future it wraps is the task's root, as in process.
            let wrapper = root.frame.function.starts_with("tasktrace::traced::");
            if root.frame.kind != FrameKind::Leaf && is_hidden(raw, root) && !wrapper {
                let (children, notes) =
                    simplify(&raw.children, &root.children, &mut vec![&root.frame]);
                let mut frame = root.frame.clone();
                shorten_type_name(&mut frame);
                add_waits(&mut frame, &notes);
                return Trace {
                    roots: Arc::new(vec![Node { frame, children }]),
                };
            }
        }
        let (roots, notes) = simplify(&self.roots, &normalized.roots, &mut Vec::new());
        if roots.is_empty() {
            // Plumbing only (a task spawned straight on a tokio leaf): its outermost frame,
            // with the note.
            let Some(first) = normalized.roots.first() else {
                return normalized;
            };
            let mut frame = first.frame.clone();
            add_waits(&mut frame, &notes);
            return Trace {
                roots: Arc::new(vec![Node::new(frame)]),
            };
        }
        Trace {
            roots: Arc::new(roots),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, file: &str, line: u32) -> Frame {
        Frame::new(name, Some(Location::new(file, line, Some(5))))
    }

    const CORE: &str = "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src";
    const TOKIO: &str =
        "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src";

    /// A `PollFn` leaf is named by the library call above it (hidden as plumbing): what the
    /// program wrote, `rx.recv()`.
    #[test]
    fn poll_fn_leaves_are_named_by_the_call_above_them() {
        let mut trace = Trace::new();
        trace.insert_path([
            f("app::consume::{{closure}}", "/w/app/src/main.rs", 9),
            f(
                "tokio::sync::mpsc::bounded::Receiver<u32>::recv::{{closure}}",
                &format!("{TOKIO}/sync/mpsc/bounded.rs"),
                313,
            ),
            Frame::new(
                "core::future::poll_fn::PollFn<tokio::sync::mpsc::bounded::{closure_env#0}<u32>>",
                None,
            )
            .with_kind(FrameKind::Leaf)
            .with_wait(Wait::new(WaitOn::MpscReceive)),
        ]);
        let clean = trace.clean();
        let leaf = &clean.roots[0].children[0].frame;
        assert_eq!(
            leaf.function, "tokio::sync::mpsc::bounded::Receiver::recv",
            "{clean:#?}"
        );
        assert_eq!(
            leaf.annotation().as_deref(),
            Some("waiting on mpsc receive")
        );
    }

    /// Out-of-process leaves that only name their primitive say what they are for when the
    /// hidden frames above them do: a connect, a watch channel's change, a mutex.
    #[test]
    fn leaf_waits_refined_by_the_hidden_frames_above() {
        let leaf = |name: &str, on: WaitOn| {
            Node::new(
                Frame::new(name, None)
                    .with_kind(FrameKind::Leaf)
                    .with_wait(Wait::new(on)),
            )
        };
        let hidden = |name: &str, file: &str, child: Node| {
            let mut n =
                Node::new(f(name, &format!("{TOKIO}/{file}"), 1).with_kind(FrameKind::AsyncFn));
            n.children.push(child);
            n
        };
        let mut root =
            Node::new(f("app::main", "/app/src/main.rs", 3).with_kind(FrameKind::AsyncFn));
        root.children.push(hidden(
            "tokio::net::tcp::socket::TcpSocket::connect",
            "net/tcp/socket.rs",
            leaf("tokio::net::tcp::stream::connect_mio", WaitOn::Io),
        ));
        root.children.push(hidden(
            "tokio::sync::watch::Receiver::changed",
            "sync/watch.rs",
            leaf("tokio::sync::notify::Notified", WaitOn::Notify),
        ));
        let mut acquire = leaf("tokio::sync::batch_semaphore::Acquire", WaitOn::Acquire);
        acquire.frame.waits[0].set_holders(vec![crate::Holder::Task(4)]);
        root.children.push(hidden(
            "tokio::sync::mutex::Mutex<u32>::lock",
            "sync/mutex.rs",
            acquire,
        ));
        let t = Trace {
            roots: Arc::new(vec![root]),
        }
        .clean();
        let notes: Vec<String> = t.roots[0]
            .children
            .iter()
            .filter_map(|c| c.frame.annotation())
            .collect();
        assert_eq!(
            notes,
            [
                "waiting on socket connect",
                "waiting on watch change",
                "waiting on Mutex lock, held by task 4"
            ]
        );
        // Awaited directly, a Notify stays a Notify.
        let mut root =
            Node::new(f("app::main", "/app/src/main.rs", 3).with_kind(FrameKind::AsyncFn));
        root.children
            .push(leaf("tokio::sync::notify::Notified", WaitOn::Notify));
        let t = Trace {
            roots: Arc::new(vec![root]),
        }
        .clean();
        assert_eq!(
            t.roots[0].children[0].frame.annotation().as_deref(),
            Some("waiting on Notify")
        );
    }

    #[test]
    fn short_paths() {
        assert_eq!(
            short_path(&format!("{CORE}/task/wake.rs")),
            "core/src/task/wake.rs"
        );
        assert_eq!(
            short_path(&format!("{TOKIO}/time/sleep.rs")),
            "tokio-1.54.1/src/time/sleep.rs"
        );
        assert_eq!(short_path("/w/app/examples/demo.rs"), "examples/demo.rs");
        assert_eq!(short_path("/w/app/tests/it.rs"), "tests/it.rs");
        assert_eq!(short_path("/w/src/app/src/bin/x.rs"), "src/bin/x.rs");
        assert_eq!(
            short_path("/home/u/.cargo/git/checkouts/tokio-abc123/5f2e1a/tokio/src/lib.rs"),
            "tokio/tokio/src/lib.rs"
        );
        assert_eq!(
            short_path(
                "/home/u/.rustup/toolchains/stable/lib/rustlib/src/rust/library/std/src/panic.rs"
            ),
            "std/src/panic.rs"
        );
        assert_eq!(short_path("/elsewhere/build.rs"), "/elsewhere/build.rs");
        assert_eq!(short_path("crates/seed/tests/it.rs"), "tests/it.rs");
        for p in [
            "src/lib.rs",
            "tokio-1.54.1/src/time/sleep.rs",
            "core/src/task/wake.rs",
        ] {
            assert_eq!(short_path(p), p, "idempotent");
        }
    }

    #[test]
    fn names() {
        let name = |s: &str| clean_name(&Frame::new(s, None), None, &[]);
        assert_eq!(
            name("seed::foo::{{closure}}"),
            (FrameKind::AsyncFn, "seed::foo".into())
        );
        assert_eq!(
            name("seed::foo::{async_fn_env#0}"),
            (FrameKind::AsyncFn, "seed::foo".into())
        );
        assert_eq!(
            name("app::main::{{closure}}::{{closure}}"),
            (FrameKind::AsyncBlock, "app::main".into())
        );
        assert_eq!(
            name("app::main::{async_block#1}"),
            (FrameKind::AsyncBlock, "app::main".into())
        );
        assert_eq!(name("{async_fn#0}"), (FrameKind::AsyncFn, UNNAMED.into()));
        assert_eq!(name("{closure#0}"), (FrameKind::Closure, UNNAMED.into()));
        assert_eq!(
            name("{async_fn#0}<tokio::time::sleep::Sleep>"),
            (FrameKind::AsyncFn, UNNAMED.into())
        );
        assert_eq!(
            name("<core::future::poll_fn::PollFn<F> as core::future::future::Future>::poll"),
            (FrameKind::Fn, "<PollFn<F> as Future>::poll".into())
        );
        assert_eq!(
            name("app::run::<alloc::string::String>"),
            (FrameKind::Fn, "app::run::<String>".into())
        );
        assert_eq!(
            name("seed::foo::{{closure}}::h0123456789abcdef"),
            (FrameKind::AsyncFn, "seed::foo".into())
        );
        // A closure called by `PollFn::poll`.
        let parent = Frame::new("<core::future::poll_fn::PollFn<F> as Future>::poll", None);
        let closure = Frame::new("seed::pending::{{closure}}::{{closure}}", None);
        assert_eq!(
            clean_name(&closure, Some(&parent), &[]),
            (FrameKind::Closure, "seed::pending".into())
        );
        // Called by a plain function: a closure; polled by a `poll` method: an async fn.
        let with_mut = Frame::new(
            "tokio::loom::std::unsafe_cell::UnsafeCell<T>::with_mut",
            None,
        );
        let sem = Frame::new(
            "tokio::sync::batch_semaphore::Semaphore::poll_acquire::{{closure}}",
            None,
        );
        assert_eq!(clean_name(&sem, Some(&with_mut), &[]).0, FrameKind::Closure);
        let maybe_done = Frame::new(
            "<tokio::future::maybe_done::MaybeDone<Fut> as core::future::future::Future>::poll",
            None,
        );
        let fiz = Frame::new("seed::fiz::{{closure}}", None);
        assert_eq!(
            clean_name(&fiz, Some(&maybe_done), &[]).0,
            FrameKind::AsyncFn
        );
        assert_eq!(clean_name(&fiz, Some(&closure), &[]).0, FrameKind::AsyncFn);
        // Already clean: unchanged.
        let clean = Frame::new("app::foo", None).with_kind(FrameKind::AsyncFn);
        assert_eq!(
            clean_name(&clean, None, &[]),
            (FrameKind::AsyncFn, "app::foo".into())
        );
    }

    #[test]
    fn bare_names_recovered_from_neighbours() {
        let parent = Frame::new("poll<seed::fiz::{async_fn_env#0}>", None);
        let bare = Frame::new("{async_fn#0}", None);
        assert_eq!(
            clean_name(&bare, Some(&parent), &[]),
            (FrameKind::AsyncFn, "seed::fiz".into())
        );
        let child = Node::new(Frame::new(
            "poll<(), seed::pending::{async_fn#0}::{closure_env#0}>",
            None,
        ));
        assert_eq!(
            clean_name(&bare, None, std::slice::from_ref(&child)),
            (FrameKind::AsyncFn, "seed::pending".into())
        );
        let closure = Frame::new("{closure#0}", None);
        assert_eq!(
            clean_name(&closure, Some(&child.frame), &[]),
            (FrameKind::Closure, "seed::pending".into())
        );
    }

    /// The seed's dev-build trace, as captured (abridged to its distinct frame kinds).
    fn seed_like() -> Trace {
        let lib = "/work/app/crates/seed/src/lib.rs";
        let pollfn = || {
            f(
                "<core::future::poll_fn::PollFn<F> as core::future::future::Future>::poll",
                &format!("{CORE}/future/poll_fn.rs"),
                151,
            )
        };
        let clone = || {
            f(
                "<core::task::wake::Waker as core::clone::Clone>::clone",
                &format!("{CORE}/task/wake.rs"),
                619,
            )
        };
        let head = vec![
            f("seed::foo::{{closure}}", lib, 20),
            f("seed::bar::{{closure}}", lib, 25),
            pollfn(),
            f(
                "seed::bar::{{closure}}::{{closure}}",
                &format!("{TOKIO}/macros/join.rs"),
                179,
            ),
            f(
                "<tokio::future::maybe_done::MaybeDone<Fut> as core::future::future::Future>::poll",
                &format!("{TOKIO}/future/maybe_done.rs"),
                65,
            ),
        ];
        let tail = vec![
            f("seed::pending::{{closure}}", lib, 15),
            pollfn(),
            f("seed::pending::{{closure}}::{{closure}}", lib, 12),
            clone(),
        ];
        let mut t = Trace::new();
        let mut a = head.clone();
        a.push(f("seed::fiz::{{closure}}", lib, 30));
        a.extend(tail.clone());
        let mut b = head;
        b.push(f("seed::buz::{{closure}}", lib, 35));
        b.push(f("seed::baz::{{closure}}", lib, 40));
        b.extend(tail);
        t.insert_path(a);
        t.insert_path(b);
        t
    }

    #[test]
    fn clean_seed_tree() {
        let clean = seed_like().clean();
        let expected = "\
╼ async fn seed::foo at src/lib.rs:20
  └╼ async fn seed::bar at src/lib.rs:25
     ├╼ async fn seed::fiz at src/lib.rs:30
     │  └╼ async fn seed::pending at src/lib.rs:15 [waiting on closure at src/lib.rs:12]
     └╼ async fn seed::buz at src/lib.rs:35
        └╼ async fn seed::baz at src/lib.rs:40
           └╼ async fn seed::pending at src/lib.rs:15 [waiting on closure at src/lib.rs:12]
";
        assert_eq!(clean.to_string(), expected);
        assert_eq!(clean.clean(), clean, "idempotent");
        assert_eq!(clean.normalized(), clean, "clean frames stay clean");
        let verbose = seed_like().normalized();
        assert_eq!(verbose.node_count(), seed_like().node_count());
        assert_eq!(verbose.normalized(), verbose, "idempotent");
    }

    /// The seed as captured with `debug = "line-tables-only"` (release-lines): inlined async
    /// fns are `{async_fn#0}`; their neighbours' generic arguments name some of them.
    #[test]
    fn line_tables_only_names_from_neighbours() {
        let lib = "/work/app/crates/seed/src/lib.rs";
        let maybe_done = format!("{TOKIO}/future/maybe_done.rs");
        let pollfn = format!("{CORE}/future/poll_fn.rs");
        let tail = |t: &mut Vec<Frame>| {
            t.push(f("{async_fn#0}", lib, 15));
            t.push(f(
                "poll<(), seed::pending::{async_fn#0}::{closure_env#0}>",
                &pollfn,
                151,
            ));
            t.push(f("{closure#0}", lib, 12));
            t.push(f("clone", &format!("{CORE}/task/wake.rs"), 619));
        };
        let head = vec![
            f("{async_fn#0}", lib, 20),
            f("{async_fn#0}", lib, 25),
            f(
                "poll<((), ()), seed::bar::{async_fn#0}::{closure_env#0}>",
                &pollfn,
                151,
            ),
            f("{closure#0}", &format!("{TOKIO}/macros/join.rs"), 179),
        ];
        let mut a = head.clone();
        a.push(f("poll<seed::fiz::{async_fn_env#0}>", &maybe_done, 65));
        a.push(f("{async_fn#0}", lib, 30));
        tail(&mut a);
        let mut b = head;
        b.push(f("poll<seed::buz::{async_fn_env#0}>", &maybe_done, 65));
        b.push(f("{async_fn#0}", lib, 35));
        b.push(f("{async_fn#0}", lib, 40));
        tail(&mut b);
        let mut t = Trace::new();
        t.insert_path(a);
        t.insert_path(b);
        let expected = "\
╼ async fn ?? at src/lib.rs:20
  └╼ async fn seed::bar at src/lib.rs:25
     ├╼ async fn seed::fiz at src/lib.rs:30
     │  └╼ async fn seed::pending at src/lib.rs:15 [waiting on closure at src/lib.rs:12]
     └╼ async fn seed::buz at src/lib.rs:35
        └╼ async fn ?? at src/lib.rs:40
           └╼ async fn seed::pending at src/lib.rs:15 [waiting on closure at src/lib.rs:12]
";
        assert_eq!(t.to_string(), expected);
        assert_eq!(t.clean().clean(), t.clean());
    }

    #[test]
    fn leaf_kinds() {
        let reg = "/c/registry/src/idx";
        let note = |frames: &[(&str, &str)]| {
            let frames: Vec<Frame> = frames
                .iter()
                .map(|(name, file)| f(name, &format!("{reg}/{file}"), 1).clone())
                .collect();
            let normalized: Vec<Frame> = frames
                .iter()
                .map(|fr| normalize_frame(fr, None, &[]))
                .collect();
            classify(&normalized.iter().collect::<Vec<_>>()).map(|w| w.to_string())
        };
        assert_eq!(
            note(&[
                (
                    "tokio::sync::rwlock::RwLock<T>::write::{{closure}}",
                    "tokio-1.54.1/src/sync/rwlock.rs"
                ),
                (
                    "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>::poll",
                    "tokio-1.54.1/src/sync/batch_semaphore.rs"
                ),
            ])
            .as_deref(),
            Some("waiting on RwLock write")
        );
        assert_eq!(
            note(&[
                ("tokio::task::join_set::JoinSet<T>::join_next::{{closure}}", "tokio-1.54.1/src/task/join_set.rs"),
                ("<tokio::runtime::task::join::JoinHandle<T> as core::future::future::Future>::poll", "tokio-1.54.1/src/runtime/task/join.rs"),
            ]).as_deref(),
            Some("waiting on JoinSet")
        );
        assert_eq!(
            note(&[(
                "futures_channel::mpsc::Receiver<T>::next_message",
                "futures-channel-0.3.31/src/mpsc/mod.rs"
            )])
            .as_deref(),
            Some("waiting on mpsc receive")
        );
        assert_eq!(
            note(&[(
                "tokio::net::udp::UdpSocket::recv_from::{{closure}}",
                "tokio-1.54.1/src/net/udp.rs"
            )])
            .as_deref(),
            Some("waiting on socket read")
        );
        assert_eq!(
            note(&[(
                "<hyper::client::conn::ResponseFuture as core::future::future::Future>::poll",
                "hyper-1.5.0/src/client/conn.rs"
            )])
            .as_deref(),
            Some("waiting in <ResponseFuture as Future>::poll")
        );
    }

    #[test]
    fn join_of_leaves_keeps_both_notes() {
        let lib = "/w/app/src/main.rs";
        let mut t = Trace::new();
        let select = f(
            "app::main::{{closure}}::{{closure}}::{{closure}}",
            &format!("{TOKIO}/macros/select.rs"),
            710,
        );
        t.insert_path([
            f("app::main::{{closure}}", lib, 9),
            select.clone(),
            f(
                "<tokio::time::sleep::Sleep as core::future::future::Future>::poll",
                &format!("{TOKIO}/time/sleep.rs"),
                457,
            ),
        ]);
        t.insert_path([
            f("app::main::{{closure}}", lib, 9),
            select,
            f(
                "tokio::sync::notify::Notified::poll_notified",
                &format!("{TOKIO}/sync/notify.rs"),
                1026,
            ),
        ]);
        let clean = t.clean();
        assert_eq!(clean.node_count(), 1);
        assert_eq!(
            clean.roots[0].frame.annotation().as_deref(),
            Some("waiting on timer, Notify")
        );
    }

    #[test]
    fn leaf_frames_from_the_reader_are_kept() {
        let mut t = Trace::new();
        t.insert_path([
            Frame::new("app::foo", Some(Location::new("src/main.rs", 3, None)))
                .with_kind(FrameKind::AsyncFn),
            Frame::new("tokio::time::Sleep", None)
                .with_kind(FrameKind::Leaf)
                .with_wait(Wait::new(WaitOn::Timer)),
        ]);
        assert_eq!(t.clean(), t);
    }
}
