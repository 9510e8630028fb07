//! Source paths as people read them ([`short_path`]), and the crate a path belongs to.

use std::borrow::Cow;

/// A source path as people read it: registry sources from their crate directory
/// (`tokio-1.54.1/src/time/sleep.rs`), toolchain sources from their library
/// (`core/src/future/poll_fn.rs`), git checkouts from the repository name, absolute user paths
/// from their crate root (`src/lib.rs`, `examples/demo.rs`, `tests/it.rs`). Relative paths are
/// returned unchanged, so shortening twice is shortening once.
///
/// ```
/// use tasktrace_model::clean::short_path;
///
/// assert_eq!(short_path("/home/me/app/crates/seed/src/lib.rs"), "src/lib.rs");
/// assert_eq!(
///     short_path("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/time/sleep.rs"),
///     "tokio-1.54.1/src/time/sleep.rs"
/// );
/// assert_eq!(
///     short_path("/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/future/poll_fn.rs"),
///     "core/src/future/poll_fn.rs"
/// );
/// assert_eq!(short_path("src/lib.rs"), "src/lib.rs");
/// ```
pub fn short_path(file: &str) -> Cow<'_, str> {
    if file.contains('\\') {
        return Cow::Owned(short_path(&file.replace('\\', "/")).into_owned());
    }
    let absolute = file.starts_with('/') || file.as_bytes().get(1) == Some(&b':');
    if !absolute && path_crate(file).is_some() {
        // Already short: a registry or toolchain source.
        return Cow::Borrowed(file);
    }
    if let Some(rest) = file.strip_prefix("/rustc/") {
        // /rustc/<commit>/library/core/src/...
        if let Some(i) = find_dir(rest, "/library/") {
            return Cow::Borrowed(&rest[i + "/library/".len()..]);
        }
        return Cow::Borrowed(rest.split_once('/').map_or(rest, |(_, r)| r));
    }
    for marker in ["/lib/rustlib/src/rust/library/", "/rust/library/"] {
        if let Some(i) = find_dir(file, marker) {
            return Cow::Borrowed(&file[i + marker.len()..]);
        }
    }
    if let Some(i) = find_dir(file, "/registry/src/") {
        // registry/src/<index>/<crate>-<version>/...
        let rest = &file[i + "/registry/src/".len()..];
        return Cow::Borrowed(rest.split_once('/').map_or(rest, |(_, r)| r));
    }
    if let Some(i) = find_dir(file, "/git/checkouts/") {
        // git/checkouts/<repo>-<hash>/<rev>/...
        let rest = &file[i + "/git/checkouts/".len()..];
        if let Some((repo, r)) = rest.split_once('/') {
            let repo = repo.rsplit_once('-').map_or(repo, |(name, _)| name);
            let r = r.split_once('/').map_or(r, |(_, r)| r);
            return Cow::Owned(format!("{repo}/{r}"));
        }
    }
    // A user file: from its crate root, i.e. the last `src/` directory, or else the last
    // `examples/`, `tests/` or `benches/` directory.
    let dir_end = file.rfind('/').unwrap_or(0);
    let dirs = &file[..dir_end];
    let at_dir = |name: &str| {
        let mut found = None;
        let mut pos = 0;
        for seg in dirs.split('/') {
            if seg == name {
                found = Some(pos);
            }
            pos += seg.len() + 1;
        }
        found
    };
    let start = at_dir("src").or_else(|| {
        ["examples", "tests", "benches"]
            .iter()
            .filter_map(|d| at_dir(d))
            .max()
    });
    match start {
        Some(i) => Cow::Borrowed(&file[i..]),
        None => Cow::Borrowed(file),
    }
}

/// [`short_path`] of the last path asked for, remembered: the tasks of a dump are mostly
/// spawned at a few sites, and their headers are written one after the other.
#[derive(Default)]
pub(crate) struct LastShortPath<'a> {
    last: Option<(&'a str, Cow<'a, str>)>,
}

impl<'a> LastShortPath<'a> {
    /// `short_path(file)`.
    pub(crate) fn get(&mut self, file: &'a str) -> &str {
        match &self.last {
            Some((f, _)) if *f == file => {}
            _ => self.last = Some((file, short_path(file))),
        }
        self.last.as_ref().map_or(file, |(_, short)| short)
    }
}

/// `file.find(dir)` for a `dir` that starts with `/`: only the slashes of `file` are tried.
/// (`str::find` builds a two-way searcher per call, which cost ~700 instructions a needle;
/// text dumps shorten a path per task header and per frame.)
pub(super) fn find_dir(file: &str, dir: &str) -> Option<usize> {
    debug_assert!(dir.starts_with('/'));
    file.match_indices('/')
        .map(|(i, _)| i)
        .find(|&i| file[i..].starts_with(dir))
}

/// The crate a (short) path belongs to when it is a registry or toolchain source:
/// `tokio-1.54.1/src/..` → `tokio`, `core/src/..` → `core`.
pub(crate) fn path_crate(short: &str) -> Option<&str> {
    let (first, rest) = short.split_once('/')?;
    if matches!(first, "core" | "std" | "alloc" | "proc_macro" | "test") && rest.starts_with("src/")
    {
        return Some(first);
    }
    let (name, version) = first.rsplit_once('-')?;
    if version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.') {
        return Some(name);
    }
    None
}

/// The crate directory of a raw source path: the directory holding its last `src/`
/// (`/work/crates/tasktrace/src/spawn.rs` → `tasktrace`, `…/tokio-1.54.1/src/…` → `tokio`).
/// Catches plumbing crates built from a path or a vendored copy.
pub(super) fn raw_path_crate(file: &str) -> Option<&str> {
    let i = file.rfind("/src/")?;
    let dir = &file[..i];
    let name = dir.rsplit('/').next()?;
    match name.rsplit_once('-') {
        Some((n, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => Some(n),
        _ => Some(name),
    }
}
