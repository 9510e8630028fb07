//! Helpers shared by the integration tests: project raw traces onto the frames of one source
//! file, so assertions speak of the user's functions whatever the profile inlined.
#![allow(dead_code)]

pub mod http;

use tasktrace::model::{Frame, Node, Trace};

/// A multi-thread runtime with two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The profile these tests were built with: `debug`, `release` or `release-lines`.
pub fn profile() -> String {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True when the build keeps function names of inlined frames (not `line-tables-only`).
pub fn has_names() -> bool {
    profile() != "release-lines"
}

/// A node of the projected tree: a frame of the chosen file and its projected children.
#[derive(Debug, Clone)]
pub struct UserNode {
    pub frame: Frame,
    pub children: Vec<UserNode>,
}

impl UserNode {
    /// Short function name: the path segment before `::{{closure}}` / `::{async_fn_env#0}`.
    pub fn short(&self) -> String {
        short_name(&self.frame.function)
    }

    pub fn line(&self) -> u32 {
        self.frame.location.as_ref().map(|l| l.line).unwrap_or(0)
    }

    pub fn child(&self, name: &str) -> Option<&UserNode> {
        self.children.iter().find(|c| c.short() == name)
    }
}

/// The last meaningful path segment of a demangled name: `a::b::foo::{{closure}}` → `foo`,
/// `a::foo::<tokio::time::Sleep>` (v0 mangling keeps generic arguments) → `foo`.
pub fn short_name(function: &str) -> String {
    let mut depth = 0usize;
    let outside_brackets: String = function
        .chars()
        .filter(|&c| match c {
            '<' => {
                depth += 1;
                false
            }
            '>' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect();
    outside_brackets
        .split("::")
        .filter(|s| !s.starts_with('{') && !s.starts_with('<') && !s.is_empty())
        .last()
        .unwrap_or(function)
        .to_string()
}

/// Keeps only frames located in a file whose path ends with `file`; each kept frame hangs under
/// its nearest kept ancestor. Consecutive kept frames that are the same logical frame merge.
pub fn project(trace: &Trace, file: &str) -> Vec<UserNode> {
    fn keep(frame: &Frame, file: &str) -> bool {
        frame
            .location
            .as_ref()
            .is_some_and(|l| l.file.ends_with(file))
    }
    fn go(nodes: &[Node], file: &str, out: &mut Vec<UserNode>) {
        for n in nodes {
            if keep(&n.frame, file) {
                let mut children = Vec::new();
                go(&n.children, file, &mut children);
                match out
                    .iter_mut()
                    .find(|u| u.frame.same_logical_frame(&n.frame))
                {
                    Some(existing) => existing.children.extend(children),
                    None => out.push(UserNode {
                        frame: n.frame.clone(),
                        children,
                    }),
                }
            } else {
                go(&n.children, file, out);
            }
        }
    }
    let mut out = Vec::new();
    go(&trace.roots, file, &mut out);
    out
}

/// The 1-based line of the first source line of `source` containing `marker`.
pub fn line_of(source: &str, marker: &str) -> u32 {
    source
        .lines()
        .position(|l| l.contains(marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("marker {marker:?} not in source"))
}

/// The 1-based line of the first line containing `needle` after the line containing `start`.
pub fn line_after(source: &str, start: &str, needle: &str) -> u32 {
    let from = line_of(source, start) as usize;
    source
        .lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i as u32 + 1)
        .unwrap_or_else(|| panic!("{needle:?} not after {start:?}"))
}

/// Every frame of the raw tree, depth first.
pub fn all_frames(trace: &Trace) -> Vec<&Frame> {
    trace.walk().into_iter().map(|(_, n)| &n.frame).collect()
}

/// The deepest frames (leaves) of the raw tree.
pub fn leaf_frames(trace: &Trace) -> Vec<&Frame> {
    trace
        .walk()
        .into_iter()
        .filter(|(_, n)| n.children.is_empty())
        .map(|(_, n)| &n.frame)
        .collect()
}

/// Number of root-to-leaf paths passing through a frame at `line` (of any file).
pub fn paths_through_line(trace: &Trace, line: u32) -> usize {
    trace
        .paths()
        .iter()
        .filter(|p| {
            p.iter()
                .any(|f| f.location.as_ref().is_some_and(|l| l.line == line))
        })
        .count()
}
