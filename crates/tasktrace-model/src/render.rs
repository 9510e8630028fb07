//! Renderers: text (default and verbose), grouped text, JSON, folded stacks, SVG flame graph.
//!
//! Every renderer reads the same model; [`Dump::render`] and [`Trace::render`] pick one by
//! [`Format`]. `Display` of a [`Trace`] or [`Dump`] is [`Format::Text`], and its alternate form
//! (`{:#}`) is [`Format::Verbose`].

use crate::{Dump, Frame, FrameKind, Node, Task, TaskState, Trace, Wait, WaitOn};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;

/// An output format of [`Dump::render`] / [`Trace::render`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The default view: one tree per task, plumbing hidden, leaves annotated
    /// ([`Trace::clean`]), a `file:line` per frame. What `Display` prints.
    #[default]
    Text,
    /// Every frame of every task, with clean names, short paths and columns
    /// ([`Trace::normalized`]).
    /// What `{:#}` prints.
    Verbose,
    /// Tasks with identical clean traces printed once: `1,000 tasks like this: ids 1-400, 402`.
    Grouped,
    /// JSON of the dump with clean traces (schema: `docs/json-schema.md`).
    Json,
    /// JSON of the dump with every frame as the producer captured it.
    JsonRaw,
    /// Folded stacks, one line per distinct root-to-leaf path: `frame;frame;frame count`,
    /// counting tasks (a task waiting in two `join!` branches counts in both).
    Folded,
    /// An SVG flame graph of where tasks wait (the folded stacks drawn by `inferno`).
    #[cfg(feature = "flamegraph")]
    Svg,
}

impl Format {
    /// Every format, in the order of [`Format::name`]s in `--help` texts.
    pub const ALL: &'static [Format] = &[
        Format::Text,
        Format::Verbose,
        Format::Grouped,
        Format::Json,
        Format::JsonRaw,
        Format::Folded,
        #[cfg(feature = "flamegraph")]
        Format::Svg,
    ];

    /// The name `FromStr` accepts: `text`, `verbose`, `grouped`, `json`, `json-raw`, `folded`,
    /// `svg`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Verbose => "verbose",
            Format::Grouped => "grouped",
            Format::Json => "json",
            Format::JsonRaw => "json-raw",
            Format::Folded => "folded",
            #[cfg(feature = "flamegraph")]
            Format::Svg => "svg",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| Format::unknown(s, &[]))
    }
}

impl Format {
    /// The error for an unknown format name: `unknown format "xml" (one of: text, …)`, every
    /// name in the parentheses, the renderers' and then `more` (a caller's own exports, such as
    /// `pprof`).
    pub fn unknown(name: &str, more: &[&str]) -> String {
        let names: Vec<&str> = Format::ALL
            .iter()
            .map(|f| f.name())
            .chain(more.iter().copied())
            .collect();
        format!("unknown format {name:?} (one of: {})", names.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Trace
// ---------------------------------------------------------------------------------------------

impl fmt::Display for Trace {
    /// The default view ([`Trace::clean`]); `{:#}` the verbose view ([`Trace::normalized`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = if f.alternate() {
            self.normalized()
        } else {
            self.clean()
        };
        let label = frame_label(f.alternate());
        view.write_tree(f, "", &label)
    }
}

impl Trace {
    /// This trace in `format` (JSON: the tree, `{"roots": [...]}`; folded stacks and flame
    /// graph: one count per root-to-leaf path).
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text | Format::Grouped => self.to_string(),
            Format::Verbose => format!("{self:#}"),
            Format::Json => to_json(&self.clean()),
            Format::JsonRaw => to_json(self),
            Format::Folded => folded_lines(std::iter::once((self.clean(), 1)), false),
            #[cfg(feature = "flamegraph")]
            Format::Svg => flame_graph(
                &folded_lines(std::iter::once((self.clean(), 1)), true),
                "Where the task waits",
            ),
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("the model always serializes");
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------------------------
// Dump
// ---------------------------------------------------------------------------------------------

/// Fills in the task a trace's join handle awaits (a wait on a task with no id: the in-process
/// capture sees the join handle, not its task), when the task awaits exactly one.
fn name_awaited(trace: Trace, awaits: &[u64]) -> Trace {
    let [id] = awaits else { return trace };
    fn unnamed(w: &Wait) -> bool {
        w.on == WaitOn::Task && w.task.is_none()
    }
    fn has(nodes: &[Node]) -> bool {
        nodes
            .iter()
            .any(|n| n.frame.waits.iter().any(unnamed) || has(&n.children))
    }
    fn rewrite(nodes: &mut [Node], id: u64) {
        for n in nodes {
            for w in n.frame.waits.iter_mut().filter(|w| unnamed(w)) {
                w.task = Some(id);
            }
            rewrite(&mut n.children, id);
        }
    }
    if !has(&trace.roots) {
        return trace;
    }
    let mut trace = trace;
    rewrite(Arc::<Vec<Node>>::make_mut(&mut trace.roots), *id);
    trace
}

/// Cleans each distinct trace once (tasks of a dump usually share a few trees).
#[derive(Default)]
struct CleanCache {
    by_ptr: HashMap<*const Vec<Node>, Trace>,
}

impl CleanCache {
    fn clean(&mut self, trace: &Trace) -> Trace {
        self.by_ptr
            .entry(Arc::as_ptr(&trace.roots))
            .or_insert_with(|| trace.clean())
            .clone()
    }

    fn for_task(&mut self, task: &Task) -> Trace {
        name_awaited(self.clean(&task.trace), &task.awaits)
    }
}

impl Dump {
    /// The same dump with every trace in the default view ([`Trace::clean`]; a task awaiting
    /// one task through its join handle reads `waiting on task N`).
    pub fn cleaned(&self) -> Dump {
        let mut cache = CleanCache::default();
        let mut dump = self.clone();
        for thread in &mut dump.threads {
            thread.trace = cache.clean(&thread.trace);
        }
        let mut paths = crate::clean::LastShortPath::default();
        for (task, original) in dump.tasks.iter_mut().zip(&self.tasks) {
            task.trace = cache.for_task(task);
            if let (Some(loc), Some(from)) = (&mut task.spawned_at, &original.spawned_at) {
                loc.file = paths.get(&from.file).to_owned();
            }
        }
        dump
    }

    /// This dump in `format`.
    ///
    /// ```
    /// use tasktrace_model::{Dump, Format, Frame, FrameKind, Location, Task, Trace};
    ///
    /// let mut trace = Trace::new();
    /// trace.insert_path([
    ///     Frame::new("app::serve::{{closure}}", Some(Location::new("src/main.rs", 9, Some(5)))),
    ///     Frame::new("app::handle::{{closure}}", Some(Location::new("src/main.rs", 20, Some(9)))),
    /// ]);
    /// let tasks: Vec<Task> = (1..=3)
    ///     .map(|id| {
    ///         let mut t = Task::new(id);
    ///         t.trace = trace.clone();
    ///         t
    ///     })
    ///     .collect();
    /// let dump = Dump::new(tasks);
    /// assert!(dump.render(Format::Grouped).starts_with("3 tasks like this: ids 1-3\n"));
    /// assert_eq!(
    ///     dump.render(Format::Folded),
    ///     "app::serve at src/main.rs:9;app::handle at src/main.rs:20 3\n"
    /// );
    /// ```
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_string(),
            Format::Verbose => format!("{self:#}"),
            Format::Grouped => self.grouped(),
            Format::Json => to_json(&self.cleaned()),
            Format::JsonRaw => to_json(self),
            Format::Folded => self.folded(false),
            #[cfg(feature = "flamegraph")]
            Format::Svg => flame_graph(&self.folded(true), "Where tasks wait"),
        }
    }

    fn write_preamble(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        for cycle in &self.deadlocks {
            writeln!(out, "DEADLOCK: {}", crate::cycle_text(cycle))?;
        }
        for diagnosis in &self.diagnoses {
            writeln!(out, "{diagnosis}")?;
        }
        for why in &self.partial {
            writeln!(out, "note: partial: {why}")?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        Ok(())
    }

    /// Whether the text starts with deadlocks or notes.
    fn has_preamble(&self) -> bool {
        !self.deadlocks.is_empty()
            || !self.diagnoses.is_empty()
            || !self.notes.is_empty()
            || !self.partial.is_empty()
    }

    /// The threads section (when the producer listed threads): one header line per thread,
    /// and the root future of a `block_on` thread.
    fn write_threads(&self, out: &mut dyn fmt::Write, verbose: bool) -> fmt::Result {
        if self.threads.is_empty() {
            return Ok(());
        }
        if self.has_preamble() {
            writeln!(out)?;
        }
        for thread in &self.threads {
            writeln!(out, "{thread}")?;
            if !thread.native_stack.is_empty() {
                writeln!(out, "  native stack:")?;
                for (i, f) in thread.native_stack.iter().enumerate() {
                    writeln!(out, "    #{i} {f}")?;
                }
            }
            if !thread.trace.is_empty() {
                let view = if verbose {
                    thread.trace.normalized()
                } else {
                    thread.trace.clean()
                };
                view.write_tree(out, "  ", &frame_label(verbose))?;
            }
        }
        Ok(())
    }

    /// Folded stacks of the clean traces (see [`Format::Folded`]); `split`: each task's
    /// weight shared among its paths (for a flame graph that counts tasks).
    fn folded(&self, split: bool) -> String {
        let mut cache = CleanCache::default();
        let traces = self.tasks.iter().map(|t| {
            if t.trace.is_empty() {
                let label = match t.state {
                    TaskState::Running { .. } | TaskState::InPoll => "(running, no trace)",
                    _ => "(no trace)",
                };
                let mut tr = Trace::new();
                tr.insert_path([Frame::new(label, None)]);
                (tr, 1)
            } else {
                (cache.clean(&t.trace), 1)
            }
        });
        folded_lines(traces, split)
    }

    /// The grouped view (see [`Format::Grouped`]).
    fn grouped(&self) -> String {
        let mut out = String::new();
        let _ = self.write_preamble(&mut out);
        let mut cache = CleanCache::default();
        // Groups in order of first appearance, then sorted by size (largest first).
        let mut index: HashMap<Trace, usize> = HashMap::new();
        let mut groups: Vec<(Trace, Vec<&Task>)> = Vec::new();
        for task in &self.tasks {
            let clean = cache.clean(&task.trace);
            match index.get(&clean) {
                Some(&i) => groups[i].1.push(task),
                None => {
                    index.insert(clean.clone(), groups.len());
                    groups.push((clean, vec![task]));
                }
            }
        }
        groups.sort_by_key(|(_, tasks)| std::cmp::Reverse(tasks.len()));
        for (i, (trace, tasks)) in groups.iter().enumerate() {
            if i > 0 || !out.is_empty() {
                out.push('\n');
            }
            if let [task] = tasks.as_slice() {
                let _ = task.write_header(&mut out);
                out.push('\n');
                if let Some(err) = &task.error {
                    let _ = writeln!(out, "  ({err})");
                }
                let trace = name_awaited(trace.clone(), &task.awaits);
                let _ = trace.write_tree(&mut out, "  ", &|f| f.to_string());
                continue;
            }
            let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
            let _ = writeln!(
                out,
                "{} tasks like this: ids {}",
                thousands(tasks.len() as u64),
                id_ranges(&ids)
            );
            if trace.is_empty() {
                if let Some(err) = tasks.iter().find_map(|t| t.error.as_deref()) {
                    let _ = writeln!(out, "  ({err})");
                }
            }
            let _ = trace.write_tree(&mut out, "  ", &|f| f.to_string());
        }
        out
    }
}

impl fmt::Display for Dump {
    /// Every task: its header line and its trace in the default view; `{:#}` shows every
    /// frame (the verbose view).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verbose = f.alternate();
        self.write_preamble(f)?;
        self.write_threads(f, verbose)?;
        // Many tasks share one trace (a pool of workers, a thousand idle connections): each
        // distinct trace is rendered once and its text reused. Comparing two trees is much
        // cheaper than cleaning and formatting one; a few recent texts are kept, so interleaved
        // shapes hit.
        const RECENT: usize = 8;
        let mut recent: Vec<(&Trace, String)> = Vec::with_capacity(RECENT);
        let mut next_slot = 0;
        let mut paths = crate::clean::LastShortPath::default();
        // Tasks whose trace repeats one shown just before: many of them make a long text that
        // says little; the last line points to the grouped view.
        let mut repeated = 0usize;
        for (i, task) in self.tasks.iter().enumerate() {
            if i > 0 || self.has_preamble() || !self.threads.is_empty() {
                writeln!(f)?;
            }
            task.write_header_with(f, verbose, &mut paths)?;
            writeln!(f)?;
            if let Some(err) = &task.error {
                writeln!(f, "  ({err})")?;
            }
            if task.trace.is_empty() {
                continue;
            }
            if !verbose && !task.awaits.is_empty() {
                // The text names the awaited task: not shared.
                let trace = name_awaited(task.trace.clean(), &task.awaits);
                trace.write_tree(f, "  ", &|frame| frame.to_string())?;
                continue;
            }
            if let Some((_, text)) = recent.iter().find(|(t, _)| **t == task.trace) {
                f.write_str(text)?;
                repeated += 1;
                continue;
            }
            let view = if verbose {
                task.trace.normalized()
            } else {
                task.trace.clean()
            };
            let mut text = String::new();
            view.write_tree(&mut text, "  ", &frame_label(verbose))?;
            f.write_str(&text)?;
            if recent.len() < RECENT {
                recent.push((&task.trace, text));
            } else {
                recent[next_slot] = (&task.trace, text);
                next_slot = (next_slot + 1) % RECENT;
            }
        }
        if repeated >= REPEATS_SUMMARISED {
            writeln!(
                f,
                "\n{} of {} tasks repeat a trace shown above: the grouped view \
                 (`--format grouped`, `?format=grouped`) shows each trace once, with its task ids",
                thousands(repeated as u64),
                thousands(self.tasks.len() as u64)
            )?;
        }
        Ok(())
    }
}

/// From this many tasks that repeat a trace shown before them, the text view ends with a line
/// pointing to the grouped view.
const REPEATS_SUMMARISED: usize = 10;

/// A frame's label in a text view: `file:line` by default (what is needed to find the await;
/// a third of the bytes of a dump were columns), the column too in the verbose view.
fn frame_label(verbose: bool) -> fn(&Frame) -> String {
    if verbose {
        |frame| format!("{frame:#}")
    } else {
        |frame| frame.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Folded stacks and flame graphs
// ---------------------------------------------------------------------------------------------

/// A frame as one element of a folded stack: its name and `file:line`, no `;`.
pub(crate) fn folded_label(frame: &Frame) -> String {
    let mut s = match frame.kind {
        FrameKind::AsyncBlock => format!("async block in {}", frame.function),
        FrameKind::Closure => format!("closure in {}", frame.function),
        _ => frame.function.clone(),
    };
    if let Some(loc) = &frame.location {
        let _ = write!(s, " at {}:{}", loc.file, loc.line);
    }
    s.replace(';', ",")
}

/// A root-to-leaf path as a folded stack: `root;…;leaf;[note]`. The note is bracketed: a
/// folded line ends with its count, and a note ending in a number (`held by task 61`) would
/// read as a second count — a differential flame graph.
pub(crate) fn folded_stack(path: &[impl std::borrow::Borrow<Frame>]) -> String {
    let mut labels: Vec<String> = path.iter().map(|f| folded_label(f.borrow())).collect();
    if let Some(words) = path.last().and_then(|f| f.borrow().annotation()) {
        labels.push(format!("[{}]", words.replace(';', ",")));
    }
    labels.join(";")
}

/// Each task's weight in a flame graph of tasks, split among its paths (a `select!` task
/// waiting on two branches is one task, not two); the graph divides by it again.
const TASK_WEIGHT: u64 = 840;

/// Folded stack lines of clean traces with their weights, identical stacks summed, sorted.
/// With `split`, a trace's weight is shared among its paths ([`TASK_WEIGHT`] a task);
/// without, each path counts the trace's whole weight.
fn folded_lines(traces: impl Iterator<Item = (Trace, u64)>, split: bool) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut memo: HashMap<*const Vec<Node>, Vec<String>> = HashMap::new();
    let mut keep = Vec::new();
    for (trace, weight) in traces {
        let stacks = memo
            .entry(Arc::as_ptr(&trace.roots))
            .or_insert_with(|| trace.paths().iter().map(|p| folded_stack(p)).collect());
        let n = stacks.len().max(1) as u64;
        for (i, stack) in stacks.iter().enumerate() {
            let w = if split {
                let whole = weight * TASK_WEIGHT;
                whole / n + u64::from((i as u64) < whole % n)
            } else {
                weight
            };
            *counts.entry(stack.clone()).or_default() += w;
        }
        // Pointers in `memo` must stay valid: keep every trace alive until the end.
        keep.push(trace);
    }
    let mut out = String::new();
    for (stack, count) in counts {
        let _ = writeln!(out, "{stack} {count}");
    }
    out
}

/// An SVG flame graph of folded stack lines of tasks, each weighing [`TASK_WEIGHT`].
#[cfg(feature = "flamegraph")]
fn flame_graph(folded: &str, title: &str) -> String {
    flame_graph_counting(folded, title, "tasks", TASK_WEIGHT)
}

/// An SVG flame graph of folded stack lines whose counts are `count_name`, each one `unit`
/// in the lines.
#[cfg(feature = "flamegraph")]
pub(crate) fn flame_graph_counting(
    folded: &str,
    title: &str,
    count_name: &str,
    unit: u64,
) -> String {
    let mut options = inferno::flamegraph::Options::default();
    options.factor = 1.0 / unit.max(1) as f64;
    options.title = title.to_string();
    options.count_name = count_name.to_string();
    options.name_type = "Frame:".to_string();
    options.hash = true;
    options.deterministic = true;
    options.colors =
        inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Aqua);
    let mut svg = Vec::new();
    match inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg) {
        Ok(()) => String::from_utf8(svg).unwrap_or_default(),
        Err(e) => format!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"400\" height=\"40\"><text x=\"10\" y=\"24\">no stacks to draw ({})</text></svg>\n",
            e.to_string().replace('<', "&lt;")
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sorted ids as ranges: `1-400, 402, 410-1009`.
fn id_ranges(ids: &[u64]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Holder, Location};

    #[test]
    fn ranges_and_thousands() {
        assert_eq!(
            id_ranges(&[5, 1, 2, 3, 402, 410, 411]),
            "1-3, 5, 402, 410-411"
        );
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), *f);
        }
        assert!("xml".parse::<Format>().is_err());
    }

    fn dump() -> Dump {
        let loc = |l| Some(Location::new("/w/app/src/main.rs", l, Some(5)));
        let tokio = "/c/registry/src/idx/tokio-1.54.1/src/runtime/task/join.rs";
        let mut waiting = Trace::new();
        waiting.insert_path([
            Frame::new("app::main::{{closure}}", loc(3)),
            Frame::new(
                "<tokio::runtime::task::join::JoinHandle<T> as core::future::future::Future>::poll",
                Some(Location::new(tokio, 346, Some(22))),
            ),
        ]);
        let mut tasks = Vec::new();
        for id in [1, 2, 3, 7] {
            let mut t = Task::new(id);
            t.trace = waiting.clone();
            tasks.push(t);
        }
        let mut t = Task::new(9);
        t.trace = waiting;
        t.awaits = vec![4];
        tasks.push(t);
        Dump::new(tasks)
    }

    #[test]
    fn grouped_view() {
        let text = dump().render(Format::Grouped);
        let expected = "\
5 tasks like this: ids 1-3, 7, 9
  ╼ async fn app::main at src/main.rs:3 [waiting on a task]
";
        assert_eq!(text, expected);
    }

    /// Many tasks alike: the text ends with one line pointing to the grouped view; a few do
    /// not get it.
    #[test]
    fn text_of_many_alike_ends_with_a_pointer_to_the_grouped_view() {
        let tasks = |n: u64| {
            let tasks = (1..=n).map(|id| {
                let mut trace = Trace::new();
                trace.insert_path([Frame::new("app::idle::{{closure}}", None)]);
                let mut t = Task::new(id);
                t.trace = trace;
                t
            });
            Dump::new(tasks.collect()).to_string()
        };
        let many = tasks(12);
        assert!(
            many.ends_with(
                "\n11 of 12 tasks repeat a trace shown above: the grouped view \
                 (`--format grouped`, `?format=grouped`) shows each trace once, with its task ids\n"
            ),
            "{many}"
        );
        assert!(!tasks(5).contains("repeat a trace"));
    }

    #[test]
    fn text_names_the_awaited_task() {
        let text = dump().to_string();
        assert!(
            text.contains("task 9 — state unknown, awaits task 4\n  ╼ async fn app::main at src/main.rs:3 [waiting on task 4]\n"),
            "{text}"
        );
        assert!(text.contains(
            "task 1 — state unknown\n  ╼ async fn app::main at src/main.rs:3 [waiting on a task]\n"
        ));
        // Columns: in the verbose view only.
        assert!(!text.contains("src/main.rs:3:5"), "{text}");
        let verbose = format!("{:#}", dump());
        assert!(
            verbose.contains(
                "<JoinHandle<T> as Future>::poll at tokio-1.54.1/src/runtime/task/join.rs:346:22"
            ) && verbose.contains("async fn app::main at src/main.rs:3:5"),
            "{verbose}"
        );
    }

    #[test]
    fn folded_aggregates_tasks() {
        assert_eq!(
            dump().render(Format::Folded),
            "app::main at src/main.rs:3;[waiting on a task] 5\n"
        );
    }

    #[test]
    fn json_is_clean_and_json_raw_is_not() {
        let clean: serde_json::Value = serde_json::from_str(&dump().render(Format::Json)).unwrap();
        let root = &clean["tasks"][4]["trace"]["roots"][0]["frame"];
        assert_eq!(root["function"], "app::main");
        assert_eq!(root["kind"], "async_fn");
        assert_eq!(root["waits"][0]["on"], "task");
        assert_eq!(root["waits"][0]["task"], 4);
        assert_eq!(root["location"]["file"], "src/main.rs");
        let raw: serde_json::Value = serde_json::from_str(&dump().render(Format::JsonRaw)).unwrap();
        assert_eq!(
            raw["tasks"][0]["trace"]["roots"][0]["frame"]["function"],
            "app::main::{{closure}}"
        );
        let back: Dump = serde_json::from_value(clean).unwrap();
        assert_eq!(back.tasks.len(), 5);
    }

    #[cfg(feature = "flamegraph")]
    #[test]
    fn svg_draws_the_stacks() {
        let svg = dump().render(Format::Svg);
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("app::main at src/main.rs:3"));
        assert!(svg.contains("waiting on a task"));
        let empty = Dump::new(vec![]).render(Format::Svg);
        assert!(empty.contains("<svg"), "{empty}");
    }

    /// A flame graph of tasks counts tasks: a task waiting on two branches is one task (its
    /// weight split between them), and notes ending in a number (`held by task 61`) are not
    /// read as a second count (which makes inferno draw a differential graph).
    #[cfg(feature = "flamegraph")]
    #[test]
    fn svg_counts_tasks_and_is_never_differential() {
        let mut tasks = Vec::new();
        for id in 1..=3 {
            let mut trace = Trace::new();
            trace.insert_path([
                Frame::new("app::lock_both::{{closure}}", None),
                Frame::new("tokio::sync::batch_semaphore::Acquire", None)
                    .with_kind(FrameKind::Leaf)
                    .with_wait(Wait {
                        held_by: vec![Holder::Task(60 + id)],
                        ..Wait::new(WaitOn::Acquire)
                    }),
            ]);
            let mut task = Task::new(id);
            task.trace = trace;
            tasks.push(task);
        }
        let mut select = Trace::new();
        for leaf in ["tokio::sync::notify::Notified", "tokio::time::sleep::Sleep"] {
            select.insert_path([
                Frame::new("app::select_loop::{{closure}}", None),
                Frame::new(leaf, None).with_kind(FrameKind::Leaf),
            ]);
        }
        let mut task = Task::new(4);
        task.trace = select;
        tasks.push(task);
        let d = Dump::new(tasks);
        let folded = d.render(Format::Folded);
        for line in folded.lines() {
            let mut words = line.rsplit(' ');
            words.next();
            assert!(
                words.next().is_some_and(|w| w.parse::<u64>().is_err()),
                "a folded line that reads as differential: {line}"
            );
        }
        assert!(
            folded.contains("[waiting on semaphore/mutex acquire, held by task 61] 1"),
            "{folded}"
        );
        let svg = d.render(Format::Svg);
        assert!(svg.contains("all (4 tasks, 100%)"), "{svg}");
        assert!(!svg.contains("%; "), "a differential graph: {svg}");
    }
}
