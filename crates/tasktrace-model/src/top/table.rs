//! The table printed once — by `tasktrace top PID --once` and by the in-process
//! `/debug/tasks/top` — as text (the screen's columns, aligned, nothing cut) or as JSON.
//!
//! Invariants: every row given is listed (no grouping), in the view's default order (longest
//! wait first, then id); the JSON's fields are stable and documented in the CLI's README (an
//! in-process table says so with `"in_process": true` and gives how long its dumps took,
//! `dump_ms`, where a table sampled from outside gives how long the process was stopped,
//! `stopped_ms`: a process that dumps itself is not stopped for the whole dump — with the
//! `snapshot` feature its reader process stops it for part of each, as the dump's notes say).

use super::history::Row;
use super::view::{Column, Line, View};
use std::time::Duration;

/// The table's form: `tasktrace top --once --format`, `/debug/tasks/top?format=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns.
    Text,
    /// One JSON object.
    Json,
}

impl std::str::FromStr for TableFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(TableFormat::Text),
            "json" => Ok(TableFormat::Json),
            _ => Err(format!("unknown format {s:?} (one of: text, json)")),
        }
    }
}

/// Who took the samples, and what each cost the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// Another process stopped this one for each sample (`tasktrace top PID`): how long it
    /// was stopped per sample, median and max.
    Attached {
        /// Median and max stopped time per sample.
        stopped: (Duration, Duration),
    },
    /// The process dumped itself (`/debug/tasks/top`): how long each dump took, median and
    /// max (the program ran on meanwhile, but for what the dump needs stopped: each task's
    /// own capture, and with the `snapshot` feature the reader process's stop).
    InProcess {
        /// Median and max time a dump took.
        took: (Duration, Duration),
    },
}

/// What the table was made of.
pub struct Summary {
    /// The process.
    pub pid: i32,
    /// Samples taken.
    pub samples: usize,
    /// Their period.
    pub interval: Duration,
    /// Who took them, and what they cost.
    pub producer: Producer,
    /// Deadlock cycles of the last sample.
    pub deadlocks: Vec<Vec<u64>>,
    /// The last sample's diagnoses.
    pub diagnoses: Vec<crate::Diagnosis>,
    /// What the samples proved together, at the last one.
    pub sampled: Vec<crate::SampledDiagnosis>,
}

/// Median and max of `times` (zero for none).
pub fn median_max(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    (
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default(),
    )
}

/// The table as `format` writes it.
pub fn render(rows: &[Row], summary: &Summary, format: TableFormat) -> String {
    match format {
        TableFormat::Text => text(rows, summary),
        TableFormat::Json => json(rows, summary),
    }
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
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (process, cost, (median, max)) = match summary.producer {
        Producer::Attached { stopped } => ("process", "stopped per sample", stopped),
        Producer::InProcess { took } => ("in-process, process", "each dump took", took),
    };
    let mut out = format!(
        "{process} {}: {} tasks; {samples}; {cost}: median {:.1} ms, max {:.1} ms\n",
        summary.pid,
        rows.len(),
        ms(median),
        ms(max),
    );
    for d in &summary.deadlocks {
        out.push_str(&format!("DEADLOCK: {}\n", crate::cycle_text(d)));
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
    let (cost, (median, max)) = match summary.producer {
        Producer::Attached { stopped } => ("stopped_ms", stopped),
        Producer::InProcess { took } => ("dump_ms", took),
    };
    let mut v = serde_json::json!({
        "pid": summary.pid,
        "samples": summary.samples,
        "interval_ms": summary.interval.as_millis() as u64,
        cost: {
            "median": median.as_secs_f64() * 1e3,
            "max": max.as_secs_f64() * 1e3,
        },
        "deadlocks": summary
            .deadlocks
            .iter()
            .map(|c| crate::cycle_text(c))
            .collect::<Vec<_>>(),
        "diagnoses": summary.diagnoses,
        "sampled_diagnoses": summary.sampled,
        "tasks": tasks,
    });
    if let Producer::InProcess { .. } = summary.producer {
        v["in_process"] = serde_json::Value::Bool(true);
    }
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::history::History;
    use crate::{Dump, Frame, FrameKind, Location, Task, TaskState};
    use std::time::Instant;

    fn rows() -> Vec<Row> {
        let mut t = Task::new(3);
        t.state = TaskState::Suspended;
        t.trace.insert_path([
            Frame::new("app::work", Some(Location::new("src/main.rs", 10, None)))
                .with_kind(FrameKind::AsyncFn),
            Frame::new("tokio::sync::notify::Notified", None).with_kind(FrameKind::Leaf),
        ]);
        let mut running = Task::new(4);
        running.state = TaskState::InPoll;
        let dump = Dump::new(vec![t, running]);
        let mut h = History::default();
        let t0 = Instant::now();
        h.add(&dump, t0, &[]);
        h.add(&dump, t0 + Duration::from_millis(1500), &[])
    }

    fn summary(producer: Producer) -> Summary {
        Summary {
            pid: 77,
            samples: 2,
            interval: Duration::from_millis(1500),
            producer,
            deadlocks: Vec::new(),
            diagnoses: Vec::new(),
            sampled: Vec::new(),
        }
    }

    const MS: (Duration, Duration) = (Duration::from_micros(250), Duration::from_micros(500));

    /// The JSON `tasktrace top --once` printed before the table moved here, to the byte.
    #[test]
    fn the_json_of_a_sampled_process_keeps_its_fields() {
        let json = json(&rows(), &summary(Producer::Attached { stopped: MS }));
        let want = r#"{
  "deadlocks": [],
  "diagnoses": [],
  "interval_ms": 1500,
  "pid": 77,
  "sampled_diagnoses": [],
  "samples": 2,
  "stopped_ms": {
    "max": 0.5,
    "median": 0.25
  },
  "tasks": [
    {
      "busy_pct": 0,
      "diagnoses": [],
      "id": 3,
      "name": null,
      "other_branches": 0,
      "root": "work",
      "state": "idle",
      "waited_ms": 1500,
      "waiting_since_first_sample": true,
      "waits_on": "Notified",
      "where": {
        "file": "src/main.rs",
        "function": "work",
        "line": 10
      }
    },
    {
      "busy_pct": 100,
      "diagnoses": [],
      "id": 4,
      "name": null,
      "other_branches": 0,
      "root": null,
      "state": "running",
      "waited_ms": null,
      "waiting_since_first_sample": false,
      "waits_on": null,
      "where": null
    }
  ]
}
"#;
        assert_eq!(json, want);
    }

    #[test]
    fn an_in_process_table_says_so_and_gives_its_dumps_time() {
        let s = summary(Producer::InProcess { took: MS });
        let v: serde_json::Value = serde_json::from_str(&json(&rows(), &s)).unwrap();
        assert_eq!(v["in_process"], true);
        assert_eq!(v["dump_ms"]["median"], 0.25);
        assert!(v.get("stopped_ms").is_none());
        let text = render(&rows(), &s, TableFormat::Text);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "in-process, process 77: 2 tasks; 2 samples 1.5s apart; each dump took: median \
                 0.2 ms, max 0.5 ms"
            )
        );
        assert_eq!(
            lines.next(),
            Some("ID  STATE    ROOT  WHERE            WAITS ON  WAITED  BUSY")
        );
        assert_eq!(
            lines.next(),
            Some(" 3  idle     work  work main.rs:10  Notified   1.5s+    0%")
        );
        assert_eq!(
            lines.next(),
            Some(" 4  running  ?     -                running        -  100%")
        );
    }
}
