//! The live view's state and what each key does to it: the latest sample's rows, the view
//! (the model's sort and grouping), the `/` filter (a regex on a row's text, applied before
//! the view), the selected line, the mode (table, typing a filter, a task's
//! tree). No terminal here: [`super::screen`] draws an [`App`], [`super::live`] feeds it.
//!
//! Invariants: the selection follows its task (by id) across refreshes and re-sorts, and is
//! always a valid line index (or 0 on an empty table); a filter being typed is applied at each
//! key when it compiles, and Esc puts back the one from before `/`; nothing here blocks.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use regex::Regex;
use std::sync::Arc;
use std::time::Duration;
use tasktrace_model::top::history::Row;
use tasktrace_model::top::table::columns;
use tasktrace_model::top::view::{id_ranges, Column, Line, View};
use tasktrace_model::Dump;

/// One refresh of the table: a sample's rows and what the status line says of it.
pub struct Refresh {
    /// Every task of the sample, in id order.
    pub rows: Vec<Row>,
    /// The sample itself (a task's tree is rendered from it).
    pub dump: Arc<Dump>,
    /// What the samples up to this one prove together.
    pub sampled: Vec<tasktrace_model::SampledDiagnosis>,
    /// How long the process was stopped for this sample.
    pub stopped: Duration,
    /// Median and max stopped time over the recent samples.
    pub stopped_recent: (Duration, Duration),
    /// Samples so far.
    pub samples: usize,
    /// The period between samples now.
    pub period: Duration,
    /// The period was lengthened: samples take longer than `--interval`.
    pub lowered: bool,
}

/// What the screen shows.
pub enum Mode {
    /// The table.
    Table,
    /// Typing a filter (the text so far; the filter from before `/`).
    Filter {
        /// What was typed.
        text: String,
        /// The filter to put back on Esc.
        before: Option<Regex>,
    },
    /// The tree of a task (or of a group's first task), scrolled by so many lines.
    Tree {
        /// The line's task ids.
        ids: Vec<u64>,
        /// Lines scrolled.
        scroll: u16,
    },
}

/// The live view.
pub struct App {
    /// The process watched.
    pub pid: i32,
    /// The latest refresh; `None` before the first sample.
    pub refresh: Option<Refresh>,
    /// Sort and grouping.
    pub view: View,
    /// Only the rows whose text ([`Row::text`]) matches.
    pub filter: Option<Regex>,
    /// The lines of the latest refresh as the view shows them.
    pub lines: Vec<Line>,
    /// The columns shown.
    pub columns: Vec<Column>,
    /// The selected line.
    pub selected: usize,
    /// The first line on screen (set by the screen, which knows its height).
    pub offset: usize,
    /// Lines on one page of the table (set by the screen).
    pub page: usize,
    /// Table, filter prompt or tree.
    pub mode: Mode,
    /// A filter that does not compile, with why.
    pub error: Option<String>,
    /// Why the view is to end: `q` or Ctrl-C was pressed.
    pub quit: Option<super::Ending>,
}

impl App {
    /// A view of process `pid`, before its first sample.
    pub fn new(pid: i32) -> App {
        App {
            pid,
            refresh: None,
            view: View::default(),
            filter: None,
            lines: Vec::new(),
            columns: Column::ALL.to_vec(),
            selected: 0,
            offset: 0,
            page: 10,
            mode: Mode::Table,
            error: None,
            quit: None,
        }
    }

    /// Shows a new sample.
    pub fn refreshed(&mut self, refresh: Refresh) {
        self.columns = columns(&refresh.rows);
        self.refresh = Some(refresh);
        self.relayout();
    }

    /// Recomputes the lines (after a refresh or a change of view), keeping the selected task.
    fn relayout(&mut self) {
        let keep = self.lines.get(self.selected).map(|l| l.row.id);
        self.lines = match &self.refresh {
            Some(r) => {
                let kept = |r: &&Row| self.filter.as_ref().is_none_or(|re| re.is_match(&r.text()));
                self.view.lines(r.rows.iter().filter(kept))
            }
            None => Vec::new(),
        };
        if let Some(id) = keep {
            if let Some(i) = self.lines.iter().position(|l| l.ids.contains(&id)) {
                self.selected = i;
            }
        }
        self.selected = self.selected.min(self.lines.len().saturating_sub(1));
    }

    /// Handles one key.
    pub fn key(&mut self, key: KeyEvent) {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = Some(super::Ending::Signal(libc::SIGINT));
            return;
        }
        match &mut self.mode {
            Mode::Filter { text, before } => match key.code {
                KeyCode::Esc => {
                    self.filter = before.take();
                    self.error = None;
                    self.mode = Mode::Table;
                    self.relayout();
                }
                KeyCode::Enter if self.error.is_none() => self.mode = Mode::Table,
                KeyCode::Backspace => {
                    text.pop();
                    self.apply_filter();
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    self.apply_filter();
                }
                _ => {}
            },
            Mode::Tree { scroll, .. } => match key.code {
                KeyCode::Char('q') => self.quit = Some(super::Ending::Quit),
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Left => {
                    self.mode = Mode::Table
                }
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
                KeyCode::PageUp => *scroll = scroll.saturating_sub(self.page as u16),
                KeyCode::PageDown => *scroll = scroll.saturating_add(self.page as u16),
                KeyCode::Home => *scroll = 0,
                _ => {}
            },
            Mode::Table => self.table_key(key.code),
        }
    }

    fn table_key(&mut self, code: KeyCode) {
        let last = self.lines.len().saturating_sub(1);
        match code {
            KeyCode::Char('q') => self.quit = Some(super::Ending::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(self.page),
            KeyCode::PageDown => self.selected = (self.selected + self.page).min(last),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = last,
            KeyCode::Left | KeyCode::Char('<') => self.move_sort(-1),
            KeyCode::Right | KeyCode::Char('>') => self.move_sort(1),
            KeyCode::Char('r') => {
                self.view.descending = !self.view.descending;
                self.relayout();
            }
            KeyCode::Char(c @ '1'..='9') => {
                if let Some(&col) = self.columns.get(c as usize - '1' as usize) {
                    self.view.sort_by(col);
                    self.relayout();
                }
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Filter {
                    text: self
                        .filter
                        .as_ref()
                        .map(|re| re.as_str().to_string())
                        .unwrap_or_default(),
                    before: self.filter.clone(),
                }
            }
            KeyCode::Esc if self.filter.is_some() => {
                self.filter = None;
                self.relayout();
            }
            KeyCode::Char('g') => {
                self.view.grouped = !self.view.grouped;
                self.relayout();
            }
            KeyCode::Enter => {
                if let Some(line) = self.lines.get(self.selected) {
                    self.mode = Mode::Tree {
                        ids: line.ids.clone(),
                        scroll: 0,
                    };
                }
            }
            _ => {}
        }
    }

    /// Sorts by the column `step` places left or right of the current one.
    fn move_sort(&mut self, step: isize) {
        let n = self.columns.len() as isize;
        let at = self
            .columns
            .iter()
            .position(|c| *c == self.view.sort)
            .unwrap_or(0) as isize;
        let col = self.columns[((at + step).rem_euclid(n)) as usize];
        self.view.sort_by(col);
        self.relayout();
    }

    fn apply_filter(&mut self) {
        let Mode::Filter { text, .. } = &self.mode else {
            return;
        };
        if text.is_empty() {
            self.filter = None;
            self.error = None;
        } else {
            match Regex::new(text) {
                Ok(re) => {
                    self.filter = Some(re);
                    self.error = None;
                }
                Err(e) => {
                    let e = e.to_string();
                    self.error = Some(e.lines().last().unwrap_or(&e).trim().to_string());
                }
            }
        }
        self.relayout();
    }

    /// The text of the tree shown in [`Mode::Tree`]: the model's text rendering of the task
    /// (a group's first task, under a line naming the group).
    pub fn tree_text(&self, ids: &[u64]) -> String {
        let Some(refresh) = &self.refresh else {
            return String::new();
        };
        let Some(task) = ids.iter().find_map(|id| refresh.dump.task(*id)) else {
            return format!(
                "{} ended: it is not in the last sample.\n",
                match ids {
                    [id] => tasktrace_model::task_label(*id),
                    _ => "every task of this group".into(),
                }
            );
        };
        let mut out = String::new();
        if ids.len() > 1 {
            out.push_str(&format!(
                "{} tasks like this: ids {}\n\n",
                ids.len(),
                id_ranges(ids)
            ));
        }
        out.push_str(&Dump::new(vec![task.clone()]).render(tasktrace_model::Format::Text));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tasktrace_model::top::history::History;
    use tasktrace_model::{Frame, FrameKind, Location, Task, TaskState, Trace};

    fn dump(n: u64) -> Dump {
        Dump::new(
            (1..=n)
                .map(|id| {
                    let mut t = Task::new(id);
                    t.state = TaskState::Suspended;
                    let mut trace = Trace::new();
                    trace.insert_path([
                        Frame::new(
                            if id % 2 == 0 { "app::even" } else { "app::odd" },
                            Some(Location::new("src/main.rs", 3, None)),
                        )
                        .with_kind(FrameKind::AsyncFn),
                        Frame::new("tokio::sync::notify::Notified", None)
                            .with_kind(FrameKind::Leaf),
                    ]);
                    t.trace = trace;
                    t
                })
                .collect(),
        )
    }

    fn app(n: u64) -> App {
        let d = dump(n);
        let rows = History::default().add(&d, Instant::now(), &[]);
        let mut app = App::new(1);
        app.refreshed(Refresh {
            rows,
            dump: Arc::new(d),
            sampled: Vec::new(),
            stopped: Duration::ZERO,
            stopped_recent: (Duration::ZERO, Duration::ZERO),
            samples: 1,
            period: Duration::from_secs(1),
            lowered: false,
        });
        app
    }

    fn press(app: &mut App, code: KeyCode) {
        app.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    #[test]
    fn filter_as_typed_escape_puts_back_enter_keeps() {
        let mut a = app(10);
        press(&mut a, KeyCode::Char('/'));
        for c in "even".chars() {
            press(&mut a, KeyCode::Char(c));
        }
        assert_eq!(a.lines.len(), 5);
        press(&mut a, KeyCode::Char('('));
        assert!(a.error.is_some(), "a regex that does not compile");
        assert_eq!(a.lines.len(), 5, "the last good filter stays");
        press(&mut a, KeyCode::Enter);
        assert!(
            matches!(a.mode, Mode::Filter { .. }),
            "not while it does not compile"
        );
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Enter);
        assert!(matches!(a.mode, Mode::Table));
        press(&mut a, KeyCode::Char('/'));
        press(&mut a, KeyCode::Char('x'));
        assert_eq!(a.lines.len(), 0);
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.lines.len(), 5, "Esc puts back the filter from before");
    }

    #[test]
    fn the_selection_follows_its_task_and_enter_opens_its_tree() {
        let mut a = app(6);
        press(&mut a, KeyCode::End);
        let id = a.lines[a.selected].row.id;
        press(&mut a, KeyCode::Char('r'));
        assert_eq!(a.lines[a.selected].row.id, id);
        press(&mut a, KeyCode::Char('g'));
        assert_eq!(a.lines.len(), 2);
        assert!(a.lines[a.selected].ids.contains(&id));
        press(&mut a, KeyCode::Enter);
        let Mode::Tree { ids, .. } = &a.mode else {
            panic!("a tree")
        };
        let text = a.tree_text(ids);
        assert!(text.starts_with("3 tasks like this: ids"), "{text}");
        assert!(text.contains("async fn app::"), "{text}");
        press(&mut a, KeyCode::Esc);
        assert!(matches!(a.mode, Mode::Table));
        press(&mut a, KeyCode::Char('q'));
        assert!(matches!(a.quit, Some(crate::top::Ending::Quit)));
    }
}
