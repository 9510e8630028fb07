//! Draws an [`App`]: a status line (the process, its tasks, the stopped time per sample), a
//! line for the view and any deadlock or diagnosis, the table (or a task's tree) and a line of keys (or the
//! filter being typed).
//!
//! Invariants: only the lines on screen are built (a 4,000-task table costs what 40 rows
//! cost); the selected line is always on screen; every cell fits its column (the WHERE cell
//! keeps its line number and cuts the file name first); drawing never changes what is shown,
//! only where the table is scrolled to.

use super::app::{App, Mode};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;
use tasktrace_model::top::history::human;
use tasktrace_model::top::spot::Place;
use tasktrace_model::top::table::cell;
use tasktrace_model::top::view::{Column, Line};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let alerts = alert_lines(app);
    let [status, alert, info, body, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(alerts.len() as u16),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(status_line(app, status.width)), status);
    frame.render_widget(Paragraph::new(alerts), alert);
    frame.render_widget(Paragraph::new(info_line(app)), info);
    match &app.mode {
        Mode::Tree { ids, scroll } => {
            let text = app.tree_text(ids);
            frame.render_widget(Paragraph::new(text).scroll((*scroll, 0)), body);
        }
        _ => draw_table(frame, app, body),
    }
    frame.render_widget(Paragraph::new(keys_line(app)), keys);
}

/// The status line, in `width` columns: the process, its tasks, the sample, the stopped time
/// (the words shortened when the full line does not fit).
fn status_line(app: &App, width: u16) -> TextLine<'static> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let Some(r) = &app.refresh else {
        return TextLine::from(vec![
            Span::styled("tasktrace top", bold),
            Span::raw(format!(" · pid {} · taking the first sample…", app.pid)),
        ]);
    };
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let (now, median, max) = (
        ms(r.stopped),
        ms(r.stopped_recent.0),
        ms(r.stopped_recent.1),
    );
    let full = format!(
        " · pid {} · {} tasks · sample {} every {} · stopped {now:.1} ms (median {median:.1}, \
         max {max:.1})",
        app.pid,
        r.rows.len(),
        r.samples,
        human(r.period),
    );
    let mut spans = if full.chars().count() + "tasktrace top".len() <= width as usize {
        vec![Span::styled("tasktrace top", bold), Span::raw(full)]
    } else {
        vec![Span::raw(format!(
            "pid {} · {} tasks · sample {}/{} · stopped {now:.1} ms, median {median:.1}, max \
             {max:.1}",
            app.pid,
            r.rows.len(),
            r.samples,
            human(r.period),
        ))]
    };
    if r.lowered {
        spans.push(Span::styled(
            " · slower than --interval",
            Style::default().fg(Color::Yellow),
        ));
    }
    TextLine::from(spans)
}

/// Most alerts given a line each (the rest are counted on the last).
const ALERTS_SHOWN: usize = 3;

/// A line per deadlock cycle and per diagnosis of the last sample (and of the samples
/// together), as the model words them.
fn alert_lines(app: &App) -> Vec<TextLine<'static>> {
    let Some(r) = &app.refresh else {
        return Vec::new();
    };
    let red = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    let all: Vec<String> = r
        .dump
        .deadlocks
        .iter()
        .map(|c| format!("DEADLOCK: {}", tasktrace_model::cycle_text(c)))
        .chain(r.dump.diagnoses.iter().map(ToString::to_string))
        .chain(r.sampled.iter().map(ToString::to_string))
        .collect();
    let mut lines: Vec<TextLine> = all
        .iter()
        .take(ALERTS_SHOWN)
        .map(|a| TextLine::styled(a.clone(), red))
        .collect();
    if all.len() > ALERTS_SHOWN {
        lines.push(TextLine::styled(
            format!(
                "and {} more (the DIAGNOSIS column names their tasks)",
                all.len() - ALERTS_SHOWN
            ),
            red,
        ));
    }
    lines
}

fn info_line(app: &App) -> TextLine<'static> {
    let order = if app.view.descending { "↓" } else { "↑" };
    let mut view = format!("sorted by {}{order}", app.view.sort.title(app.view.grouped));
    if let Some(re) = &app.filter {
        view.push_str(&format!(
            " · filter /{}/ {} shown",
            re.as_str(),
            app.lines.len()
        ));
    }
    if app.view.grouped {
        view.push_str(" · grouped");
    }
    TextLine::styled(view, Style::default().fg(Color::Cyan))
}

fn keys_line(app: &App) -> TextLine<'static> {
    match &app.mode {
        Mode::Filter { text, .. } => {
            let mut spans = vec![Span::raw(format!("/{text}")), Span::raw("█")];
            match &app.error {
                Some(e) => spans.push(Span::styled(
                    format!("  bad regex: {e}"),
                    Style::default().fg(Color::Red),
                )),
                None => spans.push(Span::raw("  Enter keep · Esc cancel")),
            }
            TextLine::from(spans)
        }
        Mode::Tree { .. } => TextLine::from("Esc back · ↑↓ PgUp PgDn scroll · q quit"),
        Mode::Table => TextLine::from(
            "↑↓ move · ←→ 1-9 sort · r reverse · / filter · g group · Enter tree · q quit",
        ),
    }
}

/// Column widths for `width` terminal columns: fixed ones for short cells, the rest shared
/// by WHERE and WAITS ON.
fn widths(columns: &[Column], lines: &[&Line], width: u16, grouped: bool) -> Vec<u16> {
    // A title has room for the sort arrow after it.
    let longest = |c: Column, cap: usize| -> u16 {
        lines
            .iter()
            .map(|l| cell(l, c).chars().count())
            .chain([c.title(grouped).chars().count() + 1])
            .max()
            .unwrap_or(1)
            .min(cap) as u16
    };
    let fixed: Vec<Option<u16>> = columns
        .iter()
        .map(|c| match c {
            Column::Id => Some(longest(*c, 9)),
            Column::Name => Some(longest(*c, 16)),
            Column::State => Some(longest(*c, 9)),
            Column::Diagnosis => Some(longest(*c, 24)),
            Column::Root => Some(longest(*c, 18)),
            Column::Waited => Some(longest(*c, 8)),
            Column::Busy => Some(longest(*c, 5)),
            Column::Where | Column::Wait => None,
        })
        .collect();
    let gaps = columns.len().saturating_sub(1) as u16;
    let used: u16 = fixed.iter().flatten().sum::<u16>() + gaps;
    let left = width.saturating_sub(used);
    // WHERE gets what it needs when WAITS ON needs less than the rest, and at least 2/5.
    let need = |c: Column| {
        lines
            .iter()
            .map(|l| cell(l, c).chars().count())
            .max()
            .unwrap_or(0)
    };
    let place = (need(Column::Where) as u16)
        .min(left.saturating_sub(need(Column::Wait) as u16).max(left / 2));
    fixed
        .iter()
        .zip(columns)
        .map(|(f, c)| match (f, c) {
            (Some(w), _) => *w,
            (None, Column::Where) => place,
            _ => left - place,
        })
        .collect()
}

/// `fiz tasktrace-demo-target.rs:24` in `width` columns: the file name's start is cut first
/// (`fiz …target.rs:24`), then the function's end.
fn fit_place(place: &Place, width: usize) -> String {
    let full = place.label();
    if full.chars().count() <= width {
        return full;
    }
    let file = place.file.rsplit('/').next().unwrap_or(&place.file);
    let tail = format!(":{}", place.line);
    let head = format!("{} …", place.function);
    let room = width.saturating_sub(head.chars().count() + tail.chars().count());
    if room >= 4 {
        let chars: Vec<char> = file.chars().collect();
        let kept: String = chars[chars.len().saturating_sub(room)..].iter().collect();
        return format!("{head}{kept}{tail}");
    }
    let keep = width.saturating_sub(tail.chars().count() + 1);
    let function: String = place.function.chars().take(keep).collect();
    format!("{function}…{tail}")
}

fn draw_table(frame: &mut Frame, app: &mut App, area: Rect) {
    let page = area.height.saturating_sub(1) as usize;
    app.page = page.max(1);
    // Scroll so that the selected line is on screen.
    if app.selected < app.offset {
        app.offset = app.selected;
    } else if page > 0 && app.selected >= app.offset + page {
        app.offset = app.selected + 1 - page;
    }
    app.offset = app.offset.min(app.lines.len().saturating_sub(page.max(1)));
    let visible: Vec<&Line> = app.lines.iter().skip(app.offset).take(page).collect();
    let widths = widths(&app.columns, &visible, area.width, app.view.grouped);
    let header = Row::new(app.columns.iter().map(|c| {
        let mut title = c.title(app.view.grouped).to_string();
        if *c == app.view.sort {
            title.push(if app.view.descending { '↓' } else { '↑' });
        }
        title
    }))
    .style(Style::default().add_modifier(Modifier::REVERSED));
    let rows = visible.iter().enumerate().map(|(i, line)| {
        let cells = app
            .columns
            .iter()
            .zip(&widths)
            .map(|(c, w)| match (c, line.row.place()) {
                (Column::Where, Some(p)) => fit_place(p, *w as usize),
                _ => cell(line, *c),
            });
        let row = Row::new(cells);
        if app.offset + i == app.selected {
            row.style(Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD))
        } else {
            row
        }
    });
    let table = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, area);
    if app.lines.is_empty() && app.refresh.is_some() {
        let text = if app.filter.is_some() {
            "no task matches the filter (Esc clears it)"
        } else {
            "no tasks"
        };
        let below = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(text), below);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_keeps_its_line_and_cuts_the_file_first() {
        let p = Place {
            function: "fiz".into(),
            file: "src/bin/tasktrace-demo-target.rs".into(),
            line: 24,
        };
        assert_eq!(fit_place(&p, 40), "fiz tasktrace-demo-target.rs:24");
        assert_eq!(fit_place(&p, 18), "fiz …-target.rs:24");
        assert_eq!(fit_place(&p, 18).chars().count(), 18);
        assert_eq!(fit_place(&p, 7), "fiz…:24");
    }
}
