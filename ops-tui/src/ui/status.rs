//! The status line: the prompt being typed, else the last message, else the
//! connection trouble, else the key hints.

use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

use crate::app::{App, Connection, Modal, PromptKind};

const HINTS: &str = "? help  a ack  n note  t assign  e escalate  r resolve  x false+  h handover  / search  s sort  f filter  q quit";

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let line = if let Some(Modal::Prompt { kind, text, .. }) = &app.modal {
        let label = match kind {
            PromptKind::Note => "Note",
            PromptKind::Assign => "Assign to",
            PromptKind::Search => "Search",
        };
        Line::from(vec![
            Span::styled(
                format!("{label}: "),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(text.clone()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "  (Enter: send, Esc: cancel)",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if let Some(flash) = &app.flash {
        let style = if flash.error {
            Style::new().fg(Color::White).bg(Color::Red)
        } else {
            Style::new().fg(Color::Green)
        };
        Line::from(Span::styled(flash.text.clone(), style))
    } else if let Connection::Disconnected { error, attempt } = &app.connection {
        Line::from(Span::styled(
            format!("disconnected from the desk, reconnecting (attempt {attempt}): {error}"),
            Style::new().fg(Color::White).bg(Color::Red),
        ))
    } else {
        Line::from(Span::styled(HINTS, Style::new().fg(Color::DarkGray)))
    };
    frame.render_widget(Paragraph::new(line), area);
}
