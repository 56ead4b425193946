//! The queue: one line per open alert, only the visible lines built (10,000 alerts
//! cost no more per frame than a screenful).

use ratatui::prelude::*;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use schemas::desk::QueueItem;
use schemas::routing::AlertState;

use crate::app::{App, Connection, sort_label};
use crate::format;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let mut title = format!(
        " Queue {} · sort {} · filter {} ",
        app.view().len(),
        sort_label(app.sort),
        app.filter.label()
    );
    if !app.search.is_empty() {
        title.push_str(&format!("· /{} ", app.search));
    }
    let stale = matches!(app.connection, Connection::Disconnected { .. });
    if stale {
        title.push_str("· STALE ");
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    if app.view().is_empty() {
        let text = match (&app.connection, app.desk.time_ms) {
            (Connection::Connecting, None) => "connecting to the desk…".to_string(),
            _ if !app.search.is_empty() || app.filter != crate::app::Filter::All => {
                "No alert matches the filter and search (f: filter, Esc: clear search).".into()
            }
            _ => "No open alerts.".to_string(),
        };
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new(Line::from(text).centered()).style(Style::new().fg(Color::DarkGray)),
            Rect {
                y: inner.y + inner.height / 2,
                height: 1.min(inner.height),
                ..inner
            },
        );
        return;
    }
    let narrow = area.width < 100;
    let owner_width: u16 = if narrow { 3 } else { 12 };
    let rows_fit = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = (app.selected() + 1).saturating_sub(rows_fit);
    let rows: Vec<Row> = app
        .view()
        .iter()
        .enumerate()
        .skip(offset)
        .take(rows_fit)
        .filter_map(|(i, id)| {
            let item = app.desk.queue.get(id)?;
            Some(row(item, app, narrow, i == app.selected()))
        })
        .collect();
    let header = Row::new(
        [" ", "Sev", "Age", "Left", "Own", "State", "Title"]
            .map(|h| Cell::from(if h == "Own" && !narrow { "Owner" } else { h })),
    )
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Length(1),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(owner_width),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

fn row<'a>(item: &'a QueueItem, app: &App, narrow: bool, selected: bool) -> Row<'a> {
    let left = if item.state != AlertState::Open {
        "—".to_string()
    } else if item.escalated {
        "ESC".to_string()
    } else {
        item.ack_deadline
            .map(|d| format::left(d, app.now))
            .unwrap_or_else(|| "—".into())
    };
    let overdue = item.state == AlertState::Open
        && (item.escalated || item.ack_deadline.is_some_and(|d| d < app.now));
    let owner = if narrow {
        format::abbreviation(&item.owner)
    } else {
        item.owner.clone()
    };
    let title = match (&item.title, &item.hidden) {
        (Some(t), _) => Span::raw(t.as_str()),
        (None, hidden) => Span::styled(
            format!(
                "⊘ withheld from your center: {}",
                hidden.as_deref().unwrap_or("egress rule")
            ),
            Style::new()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        ),
    };
    let state_style = match item.state {
        AlertState::Open => Style::new().add_modifier(Modifier::BOLD),
        _ => Style::new().fg(Color::DarkGray),
    };
    let cells = vec![
        // The selection shows in a plain-text capture too, not only as reverse video.
        Cell::from(if selected { "▶" } else { " " }),
        Cell::from(format::severity(item.severity)).style(super::severity_style(item.severity)),
        Cell::from(format::age(item.opened_at, app.now)),
        Cell::from(left).style(if overdue {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        }),
        Cell::from(owner),
        Cell::from(format::state(item.state)).style(state_style),
        Cell::from(Line::from(title)),
    ];
    let row = Row::new(cells);
    if selected {
        row.style(Style::new().add_modifier(Modifier::REVERSED))
    } else {
        row
    }
}
