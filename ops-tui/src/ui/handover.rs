//! The handover screen: the latest digests, newest first, with the alerts handed
//! over, their notes and whether the incoming center accepted.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::app::App;
use crate::format;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let mut lines: Vec<Line> = Vec::new();
    if app.desk.handovers.is_empty() {
        lines.push(Line::from(Span::styled(
            "No handover since this instance started.",
            Style::new().fg(Color::DarkGray),
        )));
    }
    for d in &app.desk.handovers {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{}  {} → {}", format::utc_day_hm(d.at), d.from, d.to),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                "  ·  {} alerts: ◆{} ▲{} ●{} ○{}",
                d.alerts.len(),
                d.counts.critical,
                d.counts.high,
                d.counts.medium,
                d.counts.low
            )),
        ]));
        let accepted = match &d.accepted {
            Some(a) => Span::styled(
                format!("accepted by {} at {}", a.officer_id, format::utc_hms(a.at)),
                Style::new().fg(Color::Green),
            ),
            None => Span::styled(
                format!("NOT ACCEPTED yet by {} (a: accept)", d.to),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
        };
        let oldest = d
            .oldest_unacknowledged
            .as_deref()
            .map(|o| format!("oldest unacknowledged {} · ", format::short_id(o, 12)))
            .unwrap_or_default();
        lines.push(Line::from(vec![Span::raw(format!("  {oldest}")), accepted]));
        for a in &d.alerts {
            lines.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(
                    format!("{:<6}", format::severity(a.severity)),
                    super::severity_style(a.severity),
                ),
                Span::raw(format!(
                    " {:<5} {} opened {}{}",
                    format::state(a.state),
                    format::short_id(&a.alert_id, 16),
                    format::utc_hms(a.opened_at),
                    a.assigned_to
                        .as_deref()
                        .map(|o| format!(" · assigned to {o}"))
                        .unwrap_or_default()
                )),
            ]));
            for n in &a.notes {
                lines.push(Line::from(format!(
                    "      note {}@{}: {}",
                    n.officer_id, n.center, n.text
                )));
            }
        }
        lines.push(Line::default());
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" Handovers (h: back, a: accept the handover) "))
            .wrap(Wrap { trim: false })
            .scroll((app.handover_scroll, 0)),
        area,
    );
}
