//! What the table shows of the rows: the columns, the sort and the grouping of identical
//! tasks. Plain functions of the rows, the same for the CLI's screen, its `--once` and the
//! in-process `/debug/tasks/top`.
//!
//! Filtering is the caller's: [`View::lines`] shows the rows it is given, so a filter (the
//! CLI's `/` regex, an endpoint's `task=`) is applied before grouping, and the model needs no
//! regex engine.
//!
//! Invariants: a sort is stable and breaks ties by task id, so a refresh never shuffles equal
//! rows; a group is the tasks with the same root and the same spot ([`super::spot::Spot::key`]),
//! shown with its first task's row, the longest wait and the mean busy %.

use super::history::{Row, State};
use std::cmp::Ordering;

/// A column of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// The task id (or, grouped, how many tasks).
    Id,
    /// The task's name.
    Name,
    /// Running, scheduled, idle.
    State,
    /// The root function.
    Root,
    /// The innermost user frame and its line.
    Where,
    /// The leaf's wait.
    Wait,
    /// How long seen waiting there.
    Waited,
    /// How often seen running.
    Busy,
    /// The diagnoses naming the task.
    Diagnosis,
}

impl Column {
    /// Every column, left to right.
    pub const ALL: [Column; 9] = [
        Column::Id,
        Column::Name,
        Column::State,
        Column::Root,
        Column::Where,
        Column::Wait,
        Column::Waited,
        Column::Busy,
        Column::Diagnosis,
    ];

    /// The column's header.
    pub fn title(self, grouped: bool) -> &'static str {
        match self {
            Column::Id if grouped => "TASKS",
            Column::Id => "ID",
            Column::Name => "NAME",
            Column::State => "STATE",
            Column::Diagnosis => "DIAGNOSIS",
            Column::Root => "ROOT",
            Column::Where => "WHERE",
            Column::Wait => "WAITS ON",
            Column::Waited => "WAITED",
            Column::Busy => "BUSY",
        }
    }

    /// Sorted largest first unless reversed (durations and percentages), else smallest first.
    pub fn descending_first(self) -> bool {
        matches!(self, Column::Waited | Column::Busy)
    }
}

/// One line of the table: a task, or a group of identical tasks.
#[derive(Clone, Debug)]
pub struct Line {
    /// The row shown (a group's first task's, with the group's longest wait and mean busy %).
    pub row: Row,
    /// Its tasks' ids, in id order.
    pub ids: Vec<u64>,
}

/// How the rows are shown.
#[derive(Clone, Debug)]
pub struct View {
    /// The sort column.
    pub sort: Column,
    /// Largest first.
    pub descending: bool,
    /// Identical tasks as one line.
    pub grouped: bool,
}

impl Default for View {
    /// The longest waits first.
    fn default() -> Self {
        View {
            sort: Column::Waited,
            descending: true,
            grouped: false,
        }
    }
}

impl View {
    /// Sorts by `column`: a column already sorted by is reversed.
    pub fn sort_by(&mut self, column: Column) {
        if self.sort == column {
            self.descending = !self.descending;
        } else {
            self.sort = column;
            self.descending = column.descending_first();
        }
    }

    /// The lines of `rows` (in id order, already filtered) as this view shows them.
    pub fn lines<'a>(&self, rows: impl IntoIterator<Item = &'a Row>) -> Vec<Line> {
        let kept = rows.into_iter();
        let mut lines: Vec<Line> = if self.grouped {
            group(kept)
        } else {
            kept.map(|r| Line {
                row: r.clone(),
                ids: vec![r.id],
            })
            .collect()
        };
        lines.sort_by(|a, b| {
            let o = compare(self.sort, a, b);
            let o = if self.descending { o.reverse() } else { o };
            o.then(a.row.id.cmp(&b.row.id))
        });
        lines
    }
}

fn group<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<Line> {
    let mut index: std::collections::HashMap<(String, Option<u64>), usize> = Default::default();
    let mut lines: Vec<Line> = Vec::new();
    let mut busy_sum: Vec<u64> = Vec::new();
    for r in rows {
        let key = (
            r.root().to_string(),
            r.spot
                .as_ref()
                .filter(|_| r.state != State::Running)
                .map(|s| s.key),
        );
        match index.get(&key) {
            Some(&i) => {
                let line = &mut lines[i];
                line.ids.push(r.id);
                busy_sum[i] += u64::from(r.busy);
                if r.waited > line.row.waited {
                    line.row.waited = r.waited;
                    line.row.from_start = r.from_start;
                }
                if r.state != line.row.state {
                    line.row.state = State::Unknown;
                }
            }
            None => {
                index.insert(key, lines.len());
                busy_sum.push(u64::from(r.busy));
                lines.push(Line {
                    row: r.clone(),
                    ids: vec![r.id],
                });
            }
        }
    }
    for (line, sum) in lines.iter_mut().zip(busy_sum) {
        line.row.busy = (sum / line.ids.len() as u64) as u32;
    }
    lines
}

fn compare(column: Column, a: &Line, b: &Line) -> Ordering {
    let (x, y) = (&a.row, &b.row);
    match column {
        Column::Id if a.ids.len() > 1 || b.ids.len() > 1 => a.ids.len().cmp(&b.ids.len()),
        Column::Id => x.id.cmp(&y.id),
        Column::Name => x.name.cmp(&y.name),
        Column::State => x.state.cmp(&y.state),
        Column::Diagnosis => x.flags.cmp(&y.flags),
        Column::Root => x.root().cmp(y.root()),
        Column::Where => x
            .place()
            .map(|p| (&p.file, p.line, &p.function))
            .cmp(&y.place().map(|p| (&p.file, p.line, &p.function))),
        Column::Wait => x.wait().cmp(&y.wait()),
        Column::Waited => x.waited.cmp(&y.waited),
        Column::Busy => x.busy.cmp(&y.busy),
    }
}

/// Task ids as a short list: `10-59, 61`.
pub fn id_ranges(ids: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", ids[i], ids[j])
        } else {
            ids[i].to_string()
        });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::spot::Spot;
    use std::time::Duration;

    fn row(id: u64, root: &str, key: u64, waited: u64, busy: u32) -> Row {
        Row {
            id,
            name: None,
            state: State::Idle,
            spot: Some(Spot {
                root: root.into(),
                place: None,
                wait: "Notified".into(),
                more: 0,
                key,
            }),
            waited: Some(Duration::from_secs(waited)),
            from_start: false,
            busy,
            flags: Vec::new(),
        }
    }

    fn ids(lines: &[Line]) -> Vec<u64> {
        lines.iter().map(|l| l.row.id).collect()
    }

    #[test]
    fn sorts_longest_wait_first_ties_by_id_and_reverses() {
        let rows = [
            row(1, "a", 1, 5, 0),
            row(2, "b", 2, 9, 0),
            row(3, "c", 3, 5, 0),
        ];
        let mut v = View::default();
        assert_eq!(ids(&v.lines(&rows)), [2, 1, 3]);
        v.sort_by(Column::Waited);
        assert_eq!(ids(&v.lines(&rows)), [1, 3, 2]);
        v.sort_by(Column::Root);
        assert!(!v.descending);
        assert_eq!(ids(&v.lines(&rows)), [1, 2, 3]);
    }

    #[test]
    fn groups_the_rows_kept_by_a_filter() {
        let rows = [
            row(1, "idle", 7, 5, 0),
            row(2, "idle", 7, 9, 50),
            row(3, "serve", 8, 1, 0),
            row(4, "idle", 7, 2, 100),
        ];
        let v = View {
            grouped: true,
            ..View::default()
        };
        // The CLI's `/` filter matches a row's text: `^[124] `.
        let kept = rows
            .iter()
            .filter(|r| r.text().starts_with(['1', '2', '4']));
        let lines = v.lines(kept);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].ids, [1, 2, 4]);
        assert_eq!(lines[0].row.waited, Some(Duration::from_secs(9)));
        assert_eq!(lines[0].row.busy, 50);
        assert_eq!(id_ranges(&[1, 2, 4, 10, 11, 12]), "1-2, 4, 10-12");
    }
}
