//! Drawing: a pure function of [`App`]. Nothing here changes state.
//!
//! The screen, top to bottom: the red DRILL banner (only in a drill), a two-line
//! header (centers' local times, officer, duty and next handover, pipeline health),
//! the body (queue and detail pane side by side from [`crate::app::WIDE`] columns,
//! one at a time below; or the handover digests) and a status line (prompt, last
//! message, connection, key hints). Dialogs (help, confirmation) float on top.

mod detail;
mod handover;
mod header;
mod overlay;
mod queue;
mod status;

use ratatui::prelude::*;

use crate::app::{App, Modal, Screen};

/// Style of severities: colour as well as the symbol (never colour alone).
pub(crate) fn severity_style(s: schemas::Severity) -> Style {
    match s {
        schemas::Severity::Critical => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        schemas::Severity::High => Style::new().fg(Color::LightRed),
        schemas::Severity::Medium => Style::new().fg(Color::Yellow),
        schemas::Severity::Low => Style::new().fg(Color::Cyan),
    }
}

/// Draws the whole terminal.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let drill = app.desk.drill().is_some();
    let [banner, head, body, foot] = Layout::vertical([
        Constraint::Length(u16::from(drill)),
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    if let Some(name) = app.desk.drill() {
        header::drill_banner(frame, banner, name);
    }
    header::render(frame, head, app);
    match app.screen {
        Screen::Handover => handover::render(frame, body, app),
        Screen::Queue if app.wide() => {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(body);
            queue::render(frame, left, app);
            detail::render(frame, right, app);
        }
        Screen::Queue if app.detail_open => detail::render(frame, body, app),
        Screen::Queue => queue::render(frame, body, app),
    }
    status::render(frame, foot, app);
    match &app.modal {
        Some(Modal::Help) => overlay::help(frame, area),
        Some(Modal::Confirm { alert_id, action }) => {
            overlay::confirm(frame, area, alert_id, action);
        }
        Some(Modal::Prompt { .. }) | None => {}
    }
}
