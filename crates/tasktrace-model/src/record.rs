//! A recording: where tasks waited over time, summed over many dumps of one program (samples),
//! the way a sampling profiler sums stacks. Producers take the samples (`tasktrace record`
//! attaches at a rate); this module sums and renders them.
//!
//! Each sample adds every path of every task's default-view tree with weight 1: a frame's
//! total is task-time spent under it, in samples. The parts of a leaf note that change from
//! one sample to the next (a timer's time left) are dropped, so one wait sums into one stack.

use crate::render::{folded_label, folded_stack};
use crate::{Dump, Frame, NativeFrame};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// What a recording is written as (`tasktrace record --format`, `/debug/tasks/record?format=`).
#[cfg(all(feature = "flamegraph", feature = "pprof"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// Folded stacks (`a;b;c N`).
    Folded,
    /// An SVG flame graph (inferno).
    Svg,
    /// speedscope's JSON file format.
    Speedscope,
    /// pprof: a gzipped `profile.proto` with a `samples` value.
    Pprof,
}

#[cfg(all(feature = "flamegraph", feature = "pprof"))]
impl std::str::FromStr for RecordFormat {
    type Err = String;
    /// `folded`, `svg`, `speedscope` or `pprof`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "folded" => Ok(RecordFormat::Folded),
            "svg" => Ok(RecordFormat::Svg),
            "speedscope" => Ok(RecordFormat::Speedscope),
            "pprof" => Ok(RecordFormat::Pprof),
            _ => Err(format!(
                "unknown format {s:?}: folded, svg, speedscope, pprof"
            )),
        }
    }
}

/// Stacks summed over samples.
///
/// ```
/// use tasktrace_model::{record::Recording, Dump, Frame, Task, Trace};
/// let mut trace = Trace::new();
/// trace.insert_path([Frame::new("app::main", None)]);
/// let mut task = Task::new(1);
/// task.trace = trace;
/// let mut rec = Recording::default();
/// for _ in 0..3 {
///     rec.add(&Dump::new(vec![task.clone()]));
/// }
/// assert_eq!(rec.samples(), 3);
/// assert_eq!(rec.folded(), "app::main 3\n");
/// ```
#[derive(Debug, Default)]
pub struct Recording {
    stacks: HashMap<Vec<Frame>, u64>,
    samples: u64,
}

impl Recording {
    /// Adds one sample: every path of every task of `dump` (default view).
    pub fn add(&mut self, dump: &Dump) {
        self.samples += 1;
        for task in &dump.tasks {
            for path in task.trace.clean().paths() {
                let mut stack: Vec<Frame> = path.into_iter().cloned().collect();
                if let Some(last) = stack.last_mut() {
                    for w in &mut last.waits {
                        *w = w.steady();
                    }
                }
                *self.stacks.entry(stack).or_default() += 1;
            }
        }
    }

    /// Adds a thread's native stack (innermost first) under a frame naming the thread.
    pub fn add_native(&mut self, thread: &str, stack: &[NativeFrame]) {
        let mut frames = vec![Frame::new(thread, None)];
        frames.extend(stack.iter().rev().map(|f| {
            Frame::new(
                f.function.clone().unwrap_or_else(|| format!("{:#x}", f.pc)),
                f.location.clone(),
            )
        }));
        *self.stacks.entry(frames).or_default() += 1;
    }

    /// How many samples were added.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The stacks and their sample counts, sorted by their folded text.
    pub fn stacks(&self) -> Vec<(&[Frame], u64)> {
        let mut out: Vec<(String, &[Frame], u64)> = self
            .stacks
            .iter()
            .map(|(s, n)| (folded_stack(s), s.as_slice(), *n))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        out.into_iter().map(|(_, s, n)| (s, n)).collect()
    }

    /// Folded stacks (`root;…;leaf;note count`), one line per stack, for flame graph tools.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for (stack, n) in self.stacks() {
            let _ = writeln!(out, "{} {n}", folded_stack(stack));
        }
        out
    }

    /// An SVG flame graph: the width of a frame is the task-time spent under it.
    #[cfg(feature = "flamegraph")]
    pub fn svg(&self, title: &str) -> String {
        crate::render::flame_graph_counting(&self.folded(), title, "samples", 1)
    }

    /// pprof (gzipped `profile.proto`) with one value, `samples`.
    #[cfg(feature = "pprof")]
    pub fn pprof(&self) -> Vec<u8> {
        crate::pprof::samples_to_pprof(self.stacks().into_iter())
    }

    /// The recording in `format`; `title` names the flame graph and the speedscope file.
    #[cfg(all(feature = "flamegraph", feature = "pprof"))]
    pub fn render(&self, format: RecordFormat, title: &str) -> Vec<u8> {
        match format {
            RecordFormat::Folded => self.folded().into_bytes(),
            RecordFormat::Svg => self.svg(title).into_bytes(),
            RecordFormat::Speedscope => self.speedscope(title).into_bytes(),
            RecordFormat::Pprof => self.pprof(),
        }
    }

    /// speedscope's file format (<https://www.speedscope.app/file-format-schema.json>): one
    /// `sampled` profile per task group (tasks whose trees start at the same root frame), its
    /// samples the stacks (frame indexes, root first) and its weights their counts.
    pub fn speedscope(&self, name: &str) -> String {
        let mut frames: Vec<serde_json::Value> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: BTreeMap<String, (Vec<Vec<usize>>, Vec<u64>)> = BTreeMap::new();
        for (stack, n) in self.stacks() {
            let mut ids = Vec::new();
            for (i, f) in stack.iter().enumerate() {
                let mut labels = vec![frame_object(f)];
                if i + 1 == stack.len() {
                    if let Some(words) = f.annotation() {
                        labels.push(serde_json::json!({ "name": words }));
                    }
                }
                for label in labels {
                    let key = label.to_string();
                    let next = frames.len();
                    let id = *index.entry(key).or_insert(next);
                    if id == next {
                        frames.push(label);
                    }
                    ids.push(id);
                }
            }
            let group = stack.first().map(folded_label).unwrap_or_default();
            let (samples, weights) = groups.entry(group).or_default();
            samples.push(ids);
            weights.push(n);
        }
        let profiles: Vec<serde_json::Value> = groups
            .into_iter()
            .map(|(group, (samples, weights))| {
                let total: u64 = weights.iter().sum();
                serde_json::json!({
                    "type": "sampled",
                    "name": group,
                    "unit": "none",
                    "startValue": 0,
                    "endValue": total,
                    "samples": samples,
                    "weights": weights,
                })
            })
            .collect();
        serde_json::json!({
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": { "frames": frames },
            "profiles": profiles,
            "name": name,
            "activeProfileIndex": 0,
            "exporter": "tasktrace",
        })
        .to_string()
    }
}

/// A frame of speedscope's `shared.frames`: its label, and its file and line when known.
fn frame_object(f: &Frame) -> serde_json::Value {
    let mut plain = f.clone();
    plain.location = None;
    plain.note = None;
    plain.waits.clear();
    plain.related.clear();
    plain.values.clear();
    let name = folded_label(&plain);
    match &f.location {
        Some(l) => serde_json::json!({ "name": name, "file": l.file, "line": l.line }),
        None => serde_json::json!({ "name": name }),
    }
}
