//! Dialogs on top of the screen: the key help and the confirmation of irreversible actions.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use schemas::ActionKind;

use crate::app::verb;
use crate::format;

/// Every key, as the help shows it.
pub const KEYS: [(&str, &str); 19] = [
    (
        "↑ ↓ j k",
        "move in the queue (scroll the detail when it is open)",
    ),
    ("PgUp PgDn g G", "page, first, last"),
    ("Enter", "open or close the detail (narrow terminal)"),
    ("J K", "scroll the detail pane"),
    ("a", "acknowledge the selected alert"),
    ("n", "add a note"),
    ("t", "assign (to an officer by name)"),
    ("e", "escalate"),
    ("r", "resolve (asks first)"),
    ("x", "false positive (asks first)"),
    ("h", "handover digests (a there: accept the handover)"),
    ("/", "search id, title, rule, owner"),
    ("s", "sort: severity, age, deadline, owner"),
    ("f", "filter: all, my center, unacknowledged, escalated"),
    ("Esc", "close, clear the search or the message"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
    ("◆ ▲ ● ○", "critical, high, medium, low"),
    ("Left", "time before escalation (ESC: escalated)"),
];

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(super) fn help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>14} "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = centered(area, 76, u16::try_from(KEYS.len()).unwrap_or(20) + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (any key closes) ")),
        popup,
    );
}

pub(super) fn confirm(frame: &mut Frame, area: Rect, alert_id: &str, action: &ActionKind) {
    let what = match action {
        ActionKind::FalsePositive => "Mark as a false positive",
        _ => "Resolve",
    };
    let text = vec![
        Line::from(format!("{what} alert {}?", format::short_id(alert_id, 24))),
        Line::from("It closes the alert for every center; it cannot be undone."),
        Line::default(),
        Line::from(Span::styled(
            "y: yes, send it    n / Esc: no",
            Style::new().add_modifier(Modifier::BOLD),
        )),
    ];
    let popup = centered(area, 64, 6);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(format!(" Confirm {} ", verb(action)))
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        popup,
    );
}
