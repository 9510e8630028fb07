//! Trees of logical frames.
//!
//! A capture yields one root-to-leaf path per suspended leaf; [`Trace::insert_path`] merges
//! paths that share a prefix of logical frames, so the branches of a `join!` or `select!`
//! become siblings under the frame that joins, in the order they were captured.

use crate::Frame;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// One frame of a tree and the frames it is suspended in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// This frame.
    pub frame: Frame,
    /// The frames this one awaits or calls, in the order they were first seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

impl Node {
    /// A node without children.
    pub fn new(frame: Frame) -> Self {
        Node {
            frame,
            children: Vec::new(),
        }
    }

    /// Number of nodes in this subtree, this one included.
    pub fn node_count(&self) -> usize {
        1 + self.children.iter().map(Node::node_count).sum::<usize>()
    }

    /// The child that is the same logical frame as `frame`, if any.
    fn child_mut(&mut self, frame: &Frame) -> Option<&mut Node> {
        self.children
            .iter_mut()
            .find(|c| c.frame.same_logical_frame(frame))
    }
}

/// A logical stack trace: a forest of frames, roots first.
///
/// `Display` renders it in the `╼ └╼ ├╼ │` tree format, one node per line: the default view
/// ([`Trace::clean`]: plumbing hidden, leaves annotated); `{:#}` the verbose view
/// ([`Trace::normalized`]: every frame). [`Trace::write_tree`] renders the tree as it is.
///
/// The frames are shared (`Arc`): cloning a trace is one reference count, so a dump of 10,000
/// tasks that share one trace holds it once and clones, compares (pointer first) and drops it
/// in O(1) per task. Changing a shared tree copies it first ([`Arc::make_mut`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trace {
    /// The outermost frames (usually one: the task's root future).
    pub roots: Arc<Vec<Node>>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    /// An empty trace (shares one empty list: no allocation).
    pub fn new() -> Self {
        static EMPTY: OnceLock<Arc<Vec<Node>>> = OnceLock::new();
        Trace {
            roots: EMPTY.get_or_init(Default::default).clone(),
        }
    }

    /// True when no frame was recorded.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Number of nodes in the whole tree.
    pub fn node_count(&self) -> usize {
        self.roots.iter().map(Node::node_count).sum()
    }

    /// Merges one root-to-leaf path into the tree: the longest prefix of logical frames already
    /// present is shared, the rest hangs below it as a new branch.
    pub fn insert_path<I: IntoIterator<Item = Frame>>(&mut self, path: I) {
        let mut frames = path.into_iter();
        let Some(first) = frames.next() else { return };
        let roots = Arc::make_mut(&mut self.roots);
        let mut node = match roots
            .iter()
            .position(|r| r.frame.same_logical_frame(&first))
        {
            Some(i) => &mut roots[i],
            None => {
                roots.push(Node::new(first));
                roots.last_mut().expect("just pushed")
            }
        };
        for frame in frames {
            // Two-step lookup keeps the borrow checker happy without unsafe.
            if node.child_mut(&frame).is_some() {
                node = node.child_mut(&frame).expect("checked above");
            } else {
                node.children.push(Node::new(frame));
                node = node.children.last_mut().expect("just pushed");
            }
        }
    }

    /// Orders siblings everywhere by source location (frames without one last), keeping the
    /// first-seen order among equals. Used for captures whose branch order is arbitrary
    /// (`join!` rotates which branch it polls first); scoped traces keep execution order.
    pub fn sort_by_location(&mut self) {
        // Siblings can share their own location (two branches of one join pass through the same
        // combinator line), so the key is every location down the first-child chain.
        fn key(node: &Node) -> Vec<Option<&crate::Location>> {
            let mut key = vec![node.frame.location.as_ref()];
            let mut cur = node;
            while let Some(first) = cur.children.first() {
                key.push(first.frame.location.as_ref());
                cur = first;
            }
            key
        }
        fn sort(nodes: &mut [Node]) {
            for n in nodes.iter_mut() {
                sort(&mut n.children);
            }
            // `None` sorts first for `Option`; frames without a location go last instead.
            nodes.sort_by(|a, b| {
                let rank = |n| -> Vec<(bool, Option<&crate::Location>)> {
                    key(n).into_iter().map(|l| (l.is_none(), l)).collect()
                };
                rank(a).cmp(&rank(b))
            });
        }
        sort(Arc::<Vec<Node>>::make_mut(&mut self.roots));
    }

    /// Every root-to-leaf path of the tree, in order.
    pub fn paths(&self) -> Vec<Vec<&Frame>> {
        fn walk<'a>(node: &'a Node, prefix: &mut Vec<&'a Frame>, out: &mut Vec<Vec<&'a Frame>>) {
            prefix.push(&node.frame);
            if node.children.is_empty() {
                out.push(prefix.clone());
            }
            for child in &node.children {
                walk(child, prefix, out);
            }
            prefix.pop();
        }
        let mut out = Vec::new();
        for root in self.roots.iter() {
            walk(root, &mut Vec::new(), &mut out);
        }
        out
    }

    /// Whether `f` holds for some node of the tree, visited depth first and stopping at the
    /// first that does. Unlike [`walk`](Self::walk) it allocates nothing: a dump asks it of
    /// each of its tasks.
    pub fn any_node(&self, mut f: impl FnMut(&Node) -> bool) -> bool {
        fn go(nodes: &[Node], f: &mut dyn FnMut(&Node) -> bool) -> bool {
            nodes.iter().any(|n| f(n) || go(&n.children, f))
        }
        go(&self.roots, &mut f)
    }

    /// Every node of the tree, depth first, with its depth (roots are at 0).
    pub fn walk(&self) -> Vec<(usize, &Node)> {
        fn go<'a>(node: &'a Node, depth: usize, out: &mut Vec<(usize, &'a Node)>) {
            out.push((depth, node));
            for child in &node.children {
                go(child, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        for root in self.roots.iter() {
            go(root, 0, &mut out);
        }
        out
    }

    /// Renders the tree with each line prefixed by `indent`, using `label` for each frame.
    pub fn write_tree(
        &self,
        out: &mut dyn fmt::Write,
        indent: &str,
        label: &dyn Fn(&Frame) -> String,
    ) -> fmt::Result {
        fn node(
            out: &mut dyn fmt::Write,
            n: &Node,
            prefix: &str,
            label: &dyn Fn(&Frame) -> String,
        ) -> fmt::Result {
            let count = n.children.len();
            for (i, child) in n.children.iter().enumerate() {
                let last = i + 1 == count;
                let (branch, cont) = if last {
                    ("└╼ ", "   ")
                } else {
                    ("├╼ ", "│  ")
                };
                writeln!(out, "{prefix}{branch}{}", label(&child.frame))?;
                node(out, child, &format!("{prefix}{cont}"), label)?;
            }
            Ok(())
        }
        for root in self.roots.iter() {
            writeln!(out, "{indent}╼ {}", label(&root.frame))?;
            node(out, root, &format!("{indent}  "), label)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn frame(name: &str, line: u32) -> Frame {
        Frame::new(name, Some(Location::new("src/main.rs", line, Some(5))))
    }

    #[test]
    fn merges_shared_prefix_and_keeps_branch_order() {
        let mut t = Trace::new();
        t.insert_path([frame("foo", 1), frame("bar", 2), frame("fiz", 3)]);
        t.insert_path([
            frame("foo", 1),
            frame("bar", 2),
            frame("buz", 4),
            frame("baz", 5),
        ]);
        assert_eq!(t.roots.len(), 1);
        let bar = &t.roots[0].children[0];
        assert_eq!(bar.frame.function, "bar");
        let names: Vec<_> = bar
            .children
            .iter()
            .map(|c| c.frame.function.as_str())
            .collect();
        assert_eq!(names, ["fiz", "buz"]);
        assert_eq!(t.node_count(), 5);
        assert_eq!(t.paths().len(), 2);
    }

    #[test]
    fn same_function_at_other_line_is_another_node() {
        let mut t = Trace::new();
        t.insert_path([frame("main", 1), frame("foo", 10), frame("bar", 20)]);
        t.insert_path([frame("main", 1), frame("foo", 11), frame("baz", 30)]);
        assert_eq!(t.roots[0].children.len(), 2);
    }

    #[test]
    fn renders_the_seed_tree_format() {
        let mut t = Trace::new();
        t.insert_path([frame("a", 1), frame("b", 2), frame("c", 3)]);
        t.insert_path([frame("a", 1), frame("d", 4)]);
        let mut text = String::new();
        t.write_tree(&mut text, "", &|f| f.to_string()).unwrap();
        let expected = "\
╼ a at src/main.rs:1
  ├╼ b at src/main.rs:2
  │  └╼ c at src/main.rs:3
  └╼ d at src/main.rs:4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn empty_path_is_ignored() {
        let mut t = Trace::new();
        t.insert_path(Vec::<Frame>::new());
        assert!(t.is_empty());
    }
}
