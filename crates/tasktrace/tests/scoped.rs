//! `Trace::root` / `Trace::leaf`: scoped traces of synchronous code, complete in optimised
//! builds (no `#[inline(never)]` here: inlined frames must survive), in execution order.

mod support;

use support::{has_names, line_after, line_of, project};
use tasktrace::Trace;

const SOURCE: &str = include_str!("scoped.rs");
const FILE: &str = "tests/scoped.rs";

fn foo() {
    bar();
    baz();
}

fn bar() {
    Trace::leaf();
}

fn baz() {
    Trace::leaf();
}

#[test]
fn root_over_foo_shows_bar_then_baz() {
    let ((), trace) = Trace::root(foo);
    let dump = format!("{trace:#}");
    let users = project(&trace, FILE);
    // foo appears once per call site (bar's call, baz's call): two branches, bar's first.
    let foos: Vec<_> = users
        .iter()
        .flat_map(|u| {
            if u.short() == "foo" {
                vec![u]
            } else {
                u.children.iter().collect()
            }
        })
        .collect();
    assert_eq!(foos.len(), 2, "foo at two call sites:\n{dump}");
    assert_eq!(
        foos[0].line(),
        line_after(SOURCE, "fn foo()", "bar();"),
        "{dump}"
    );
    assert_eq!(
        foos[1].line(),
        line_after(SOURCE, "fn foo()", "baz();"),
        "{dump}"
    );
    let bar = &foos[0].children[0];
    let baz = &foos[1].children[0];
    assert_eq!(
        bar.line(),
        line_after(SOURCE, "fn bar()", "Trace::leaf()"),
        "{dump}"
    );
    assert_eq!(
        baz.line(),
        line_after(SOURCE, "fn baz()", "Trace::leaf()"),
        "{dump}"
    );
    if has_names() {
        assert_eq!(foos[0].short(), "foo", "{dump}");
        assert_eq!(bar.short(), "bar", "{dump}");
        assert_eq!(baz.short(), "baz", "{dump}");
    }
    // The tracer's own frames are not the leaves.
    for leaf in support::leaf_frames(&trace) {
        assert!(
            !leaf.function.contains("tasktrace::"),
            "tracer frame as a leaf: {leaf}\n{dump}"
        );
    }
}

#[test]
fn leaf_without_root_does_nothing() {
    bar();
    let ((), trace) = Trace::root(|| ());
    assert!(trace.is_empty());
}

#[test]
fn nested_roots_keep_their_own_leaves() {
    let ((inner, ()), outer) = Trace::root(|| {
        bar();
        let (_, inner) = Trace::root(baz);
        (inner, bar())
    });
    let inner_users = project(&inner, FILE);
    let outer_text = format!("{outer:#}");
    let inner_text = format!("{inner:#}");
    assert_eq!(support::leaf_frames(&inner).len(), 1, "{inner_text}");
    assert_eq!(
        inner_users[0].line(),
        line_after(SOURCE, "fn baz()", "Trace::leaf()"),
        "inner root holds baz's leaf:\n{inner_text}"
    );
    // The outer root saw bar twice (same call site merges), never baz.
    let leaves = support::leaf_frames(&outer);
    assert_eq!(leaves.len(), 2, "two bar calls at two sites:\n{outer_text}");
    let baz_line = line_after(SOURCE, "fn baz()", "Trace::leaf()");
    assert!(
        leaves
            .iter()
            .all(|f| f.location.as_ref().map(|l| l.line) != Some(baz_line)),
        "baz belongs to the inner root only:\n{outer_text}"
    );
}

#[test]
fn roots_on_many_threads_at_once() {
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| Trace::root(foo).1))
        .collect();
    for h in handles {
        let trace = h.join().unwrap();
        assert_eq!(support::leaf_frames(&trace).len(), 2, "{trace:#}");
    }
}

#[test]
fn a_panicking_root_leaves_no_scope_behind() {
    let caught = std::panic::catch_unwind(|| Trace::root(|| panic!("boom")));
    assert!(caught.is_err());
    // A leaf now belongs to no root; a new root works normally.
    bar();
    let ((), trace) = Trace::root(bar);
    assert_eq!(support::leaf_frames(&trace).len(), 1);
}

// The published crate's failure: `Trace::leaf()` in tail position of a function that is not
// inlined became a `jmp`, and that function's frame was gone. Ours is never a tail call. (The
// parent does work after its call, so that *its* frame is not lost to a tail call of its own,
// which no unwinder could see through.)
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[inline(never)]
fn outlined_parent() {
    outlined_leaf();
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[inline(never)]
fn outlined_leaf() {
    Trace::leaf();
}

#[test]
fn leaf_in_tail_position_of_outlined_functions() {
    let ((), trace) = Trace::root(outlined_parent);
    let dump = format!("{trace:#}");
    let users = project(&trace, FILE);
    assert_eq!(users.len(), 1, "{dump}");
    let parent = &users[0];
    assert_eq!(
        parent.line(),
        line_after(SOURCE, "fn outlined_parent()", "outlined_leaf();"),
        "{dump}"
    );
    assert_eq!(parent.children.len(), 1, "{dump}");
    assert_eq!(
        parent.children[0].line(),
        line_after(SOURCE, "fn outlined_leaf()", "Trace::leaf()"),
        "{dump}"
    );
    if has_names() {
        assert_eq!(parent.short(), "outlined_parent");
        assert_eq!(parent.children[0].short(), "outlined_leaf");
    }
}

// A call in tail position of a function that is not inlined: in optimised builds it becomes a
// `jmp`, `procedure`'s frame is gone while `second_step` runs, and the unwinder sees
// `second_step` called from `procedure`'s caller. The symboliser puts `procedure` back, from
// the call instruction before the return address (it calls `procedure`, not `second_step`).
#[inline(never)]
fn procedure() {
    first_step();
    second_step()
}

#[inline(never)]
fn first_step() {
    Trace::leaf();
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[inline(never)]
fn second_step() {
    Trace::leaf();
    // Not the same code as first_step's, which the optimiser would fold into one function.
    CALLS.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn a_frame_lost_to_a_tail_call_is_put_back() {
    let ((), trace) = Trace::root(procedure);
    let dump = format!("{trace:#}");
    let users = project(&trace, FILE);
    // `procedure → first_step` and `procedure → second_step`: procedure twice (two call
    // sites, or a call site and the recovered frame), each with one step under it.
    let procedures: Vec<_> = users
        .iter()
        .filter(|u| u.line() >= line_of(SOURCE, "fn procedure()"))
        .collect();
    assert_eq!(procedures.len(), 2, "{dump}");
    let [first, second] = [procedures[0], procedures[1]];
    assert_eq!(first.children.len(), 1, "{dump}");
    assert_eq!(second.children.len(), 1, "{dump}");
    assert_eq!(
        first.children[0].line(),
        line_after(SOURCE, "fn first_step()", "Trace::leaf()"),
        "{dump}"
    );
    assert_eq!(
        second.children[0].line(),
        line_after(SOURCE, "fn second_step()", "Trace::leaf()"),
        "{dump}"
    );
    if has_names() {
        assert_eq!(first.short(), "procedure", "{dump}");
        assert_eq!(second.short(), "procedure", "{dump}");
        assert_eq!(first.children[0].short(), "first_step", "{dump}");
        assert_eq!(second.children[0].short(), "second_step", "{dump}");
    }
    if cfg!(debug_assertions) {
        // No tail call in a debug build: the frame is there, at the call's line.
        assert_eq!(
            second.line(),
            line_after(SOURCE, "fn procedure()", "second_step()"),
            "{dump}"
        );
    } else {
        assert_eq!(
            second.frame.annotation().as_deref(),
            Some("tail call"),
            "{dump}"
        );
        assert_eq!(second.line(), line_of(SOURCE, "fn procedure()"), "{dump}");
    }
}
