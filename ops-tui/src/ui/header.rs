//! The DRILL banner and the header: centers' local times, officer, duty, health.

use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

use crate::app::{App, Connection};
use crate::format;

/// A full-width red line that no officer can miss.
pub(super) fn drill_banner(frame: &mut Frame, area: Rect, name: &str) {
    let text = format!(" DRILL {name} — exercise traffic, not live operations ");
    let style = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    frame.render_widget(
        Paragraph::new(Line::from(text).centered()).style(style),
        area,
    );
}

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let [first, second] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    frame.render_widget(Paragraph::new(clocks(app, area.width)), first);
    frame.render_widget(Paragraph::new(status(app)), second);
}

/// `FUSION DESK │ ● Lyon 14:02 │ Singapore 21:02 │ Buenos Aires 10:02   alice@Lyon`,
/// with three-letter centers when the full names do not fit.
fn clocks(app: &App, width: u16) -> Line<'static> {
    let on_duty = app.desk.duty.as_ref().map(|d| d.center.as_str());
    let centers = app
        .desk
        .session
        .as_ref()
        .map(|s| s.centers.as_slice())
        .unwrap_or_default();
    let me = app
        .desk
        .session
        .as_ref()
        .map(|s| format!("{}@{}", s.officer.name, s.officer.center))
        .unwrap_or_default();
    let build = |short: bool| {
        let mut spans = vec![Span::styled(
            "FUSION DESK",
            Style::new().add_modifier(Modifier::BOLD),
        )];
        for c in centers {
            spans.push(Span::raw(" │ "));
            let name = if short {
                format::abbreviation(&c.name)
            } else {
                c.name.clone()
            };
            let time = format::local_hm(app.now, &c.time_zone);
            if on_duty == Some(c.name.as_str()) {
                spans.push(Span::styled(
                    format!("● {name} {time}"),
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                ));
            } else {
                spans.push(Span::raw(format!("{name} {time}")));
            }
        }
        spans
    };
    let mut spans = build(false);
    let used = |s: &[Span]| s.iter().map(Span::width).sum::<usize>();
    if used(&spans) + me.len() + 2 > usize::from(width) {
        spans = build(true);
    }
    let pad = usize::from(width).saturating_sub(used(&spans) + me.chars().count());
    spans.push(Span::raw(" ".repeat(pad.max(1))));
    spans.push(Span::styled(me, Style::new().fg(Color::Cyan)));
    Line::from(spans)
}

/// Connection, duty and next handover, then the pipeline's health.
fn status(app: &App) -> Line<'static> {
    let mut spans = Vec::new();
    match &app.connection {
        Connection::Disconnected { .. } => spans.push(Span::styled(
            "DISCONNECTED ",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )),
        Connection::Connecting => {
            spans.push(Span::styled("connecting… ", Style::new().fg(Color::Yellow)))
        }
        Connection::Connected => {}
    }
    match &app.desk.duty {
        Some(d) => {
            spans.push(Span::styled(
                d.center.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(" on duty"));
            if let (Some(next), Some(at)) = (&d.next_center, d.next_handover) {
                spans.push(Span::raw(format!(
                    " → {next} in {}",
                    format::left(at, app.now)
                )));
            }
        }
        None => spans.push(Span::raw("no center on duty (no roster)")),
    }
    if let Some(h) = &app.desk.health {
        spans.push(Span::raw(" │ "));
        if h.rehydrating {
            spans.push(Span::styled(
                "REHYDRATING ",
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
        }
        let lag = h
            .lag_ms
            .map(|l| {
                if l < 1000 {
                    format!(" · lag {}ms", l.max(0))
                } else {
                    format!(" · lag {}", format::duration_ms(l))
                }
            })
            .unwrap_or_default();
        let dead = if h.dead_letters > 0 {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        };
        // The queue's own count, so the header and the queue always agree.
        spans.push(Span::raw(format!(
            "{} ev/s{lag} · {} open · ",
            format::thousands(h.events_per_sec.max(0.0).round() as u64),
            app.desk.queue.len()
        )));
        spans.push(Span::styled(
            format!("{} dead letters", format::thousands(h.dead_letters)),
            dead,
        ));
    }
    Line::from(spans)
}
