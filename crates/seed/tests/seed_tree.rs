//! The seed program's trace, checked as a tree: foo → bar → {fiz → pending | buz → baz →
//! pending}, with the await lines of `src/lib.rs`, in dev, release (`debug = "limited"`) and
//! release-lines (`debug = "line-tables-only"`) builds.

#[path = "../../tasktrace/tests/support/mod.rs"]
mod support;

use support::{has_names, line_after, project, UserNode};

const SOURCE: &str = include_str!("../src/lib.rs");

/// Checks the frame's name (where the build keeps names) and that it is suspended at the
/// first line containing `await_marker` inside `async fn {name}`.
fn check(node: &UserNode, name: &str, await_marker: &str, dump: &str) {
    if has_names() {
        assert_eq!(node.short(), name, "frame name:\n{dump}");
    }
    let expected = line_after(SOURCE, &format!("pub async fn {name}()"), await_marker);
    assert_eq!(
        node.line(),
        expected,
        "{name} suspended at `{await_marker}`:\n{dump}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_tree_has_both_join_branches_with_await_lines() {
    let trace = seed::trace_seed().await.expect("trace");
    let dump = format!("{trace:#}");
    let users = project(&trace, "src/lib.rs");
    assert_eq!(users.len(), 1, "a single root:\n{dump}");
    let foo = &users[0];
    check(foo, "foo", "bar().await", &dump);
    assert_eq!(foo.frame.location.as_ref().unwrap().column, Some(11));
    assert_eq!(foo.line(), 20, "the README quotes foo at line 20");
    assert_eq!(foo.children.len(), 1, "foo awaits bar only:\n{dump}");
    let bar = &foo.children[0];
    check(bar, "bar", "tokio::join!", &dump);
    assert_eq!(bar.children.len(), 2, "bar joins two branches:\n{dump}");
    let (fiz, buz) = (&bar.children[0], &bar.children[1]);
    check(fiz, "fiz", "pending().await", &dump);
    check(buz, "buz", "baz().await", &dump);
    assert_eq!(buz.children.len(), 1, "buz awaits baz:\n{dump}");
    let baz = &buz.children[0];
    check(baz, "baz", "pending().await", &dump);
    // Both branches end in `pending`, suspended at its await, stashing the waker.
    for parent in [fiz, baz] {
        assert_eq!(parent.children.len(), 1, "one pending below:\n{dump}");
        let pending = &parent.children[0];
        check(pending, "pending", ".await", &dump);
    }
}
