//! `tasktrace top PID --once`: the table printed once, for scripts and tests — as text (the
//! screen's columns, aligned, nothing cut) or as JSON.
//!
//! Invariants: every task of the last sample is listed (no filter, no grouping), in the
//! view's default order (longest wait first, then id); the JSON's fields are stable and
//! documented in the CLI's README.

use super::history::Row;
use super::view::{Column, Line, View};
use std::time::Duration;

/// `--format` of `--once`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnceFormat {
    /// Aligned columns.
    Text,
    /// One JSON object.
    Json,
}

impl std::str::FromStr for OnceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(OnceFormat::Text),
            "json" => Ok(OnceFormat::Json),
            _ => Err(format!("unknown format {s:?} (one of: text, json)")),
        }
    }
}

/// What the table was made of.
pub struct Summary {
    /// The process.
    pub pid: i32,
    /// Samples taken.
    pub samples: usize,
    /// Their period.
    pub interval: Duration,
    /// Stopped time per sample: median and max.
    pub stopped: (Duration, Duration),
    /// Deadlock cycles of the last sample.
    pub deadlocks: Vec<Vec<u64>>,
    /// The last sample's diagnoses.
    pub diagnoses: Vec<tasktrace_model::Diagnosis>,
    /// What the samples proved together, at the last one.
    pub sampled: Vec<tasktrace_model::SampledDiagnosis>,
}

/// A cell's text.
pub fn cell(line: &Line, column: Column) -> String {
    let r = &line.row;
    match column {
        Column::Id if line.ids.len() > 1 => format!("{}×", line.ids.len()),
        Column::Id => r.id.to_string(),
        Column::Name => r.name.clone().unwrap_or_else(|| "-".into()),
        Column::State => r.state.word().into(),
        Column::Diagnosis => r.flags_text(),
        Column::Root => r.root().into(),
        Column::Where => r.place().map_or_else(|| "-".into(), |p| p.label()),
        Column::Wait => r.wait(),
        Column::Waited => r.waited_text(),
        Column::Busy => format!("{}%", r.busy),
    }
}

/// The columns worth showing: NAME only when a task has a name, DIAGNOSIS only when a
/// diagnosis names a task.
pub fn columns(rows: &[Row]) -> Vec<Column> {
    let named = rows.iter().any(|r| r.name.is_some());
    let flagged = rows.iter().any(|r| !r.flags.is_empty());
    Column::ALL
        .into_iter()
        .filter(|c| match c {
            Column::Name => named,
            Column::Diagnosis => flagged,
            _ => true,
        })
        .collect()
}

/// The table as aligned text.
pub fn text(rows: &[Row], summary: &Summary) -> String {
    let lines = View::default().lines(rows);
    let cols = columns(rows);
    let cells: Vec<Vec<String>> = lines
        .iter()
        .map(|l| cols.iter().map(|c| cell(l, *c)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.title(false).len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let samples = match summary.samples {
        1 => "1 sample".to_string(),
        n => format!("{n} samples {:.1}s apart", summary.interval.as_secs_f64()),
    };
    let mut out = format!(
        "process {}: {} tasks; {samples}; stopped per sample: median {:.1} ms, max {:.1} ms\n",
        summary.pid,
        rows.len(),
        summary.stopped.0.as_secs_f64() * 1e3,
        summary.stopped.1.as_secs_f64() * 1e3,
    );
    for d in &summary.deadlocks {
        out.push_str(&format!("DEADLOCK: {}\n", tasktrace_model::cycle_text(d)));
    }
    for d in &summary.diagnoses {
        out.push_str(&format!("{d}\n"));
    }
    for d in &summary.sampled {
        out.push_str(&format!("{d}\n"));
    }
    let header: Vec<String> = cols.iter().map(|c| c.title(false).to_string()).collect();
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, (text, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w.saturating_sub(text.chars().count());
            // Numbers right-aligned, words left-aligned.
            if matches!(cols[i], Column::Id | Column::Waited | Column::Busy) {
                line.push_str(&" ".repeat(pad));
                line.push_str(text);
            } else {
                line.push_str(text);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table as JSON.
pub fn json(rows: &[Row], summary: &Summary) -> String {
    let lines = View::default().lines(rows);
    let tasks: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            let r = &l.row;
            serde_json::json!({
                "id": r.id,
                "name": r.name,
                "state": r.state.word(),
                "root": r.spot.as_ref().map(|s| s.root.clone()),
                "where": r.place().map(|p| serde_json::json!({
                    "function": p.function,
                    "file": p.file,
                    "line": p.line,
                })),
                "waits_on": r.spot.as_ref().filter(|_| r.waited.is_some()).map(|s| s.wait.clone()),
                "other_branches": r.spot.as_ref().map_or(0, |s| s.more),
                "waited_ms": r.waited.map(|d| d.as_millis() as u64),
                "waiting_since_first_sample": r.from_start,
                "busy_pct": r.busy,
                "diagnoses": r.flags.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "pid": summary.pid,
        "samples": summary.samples,
        "interval_ms": summary.interval.as_millis() as u64,
        "stopped_ms": {
            "median": summary.stopped.0.as_secs_f64() * 1e3,
            "max": summary.stopped.1.as_secs_f64() * 1e3,
        },
        "deadlocks": summary
            .deadlocks
            .iter()
            .map(|c| tasktrace_model::cycle_text(c))
            .collect::<Vec<_>>(),
        "diagnoses": summary.diagnoses,
        "sampled_diagnoses": summary.sampled,
        "tasks": tasks,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialize");
    s.push('\n');
    s
}
