//! The detail pane: evidence, corroboration and sources with their markings,
//! provenance, routing and the action history of the selected alert, as the egress
//! rule lets the officer's center see them.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Paragraph, Wrap};
use schemas::desk::{ActionOutcome, AlertDetail, HistoryEntry, HistoryEvent};
use schemas::marking::Marking;
use schemas::routing::EscalationReason;
use schemas::sharing::{SharedAlert, Treatment};
use schemas::{ActionKind, ContributorKind};

use crate::app::{App, verb};
use crate::format;

/// Victim addresses listed per country before `(+n)`.
const VICTIMS_SHOWN: usize = 4;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(item) = app.selected_item() else {
        frame.render_widget(
            Paragraph::new("Select an alert in the queue.")
                .style(Style::new().fg(Color::DarkGray))
                .block(Block::bordered().title(" Alert ")),
            area,
        );
        return;
    };
    let block = Block::bordered().title(format!(" Alert {} ", format::short_id(&item.id, 16)));
    let Some(detail) = app.selected_detail() else {
        frame.render_widget(
            Paragraph::new(format!("Loading {}…", item.id))
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    };
    let lines = lines(detail, app);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        area,
    );
}

fn section(name: &str) -> Line<'static> {
    Line::from(Span::styled(
        format!("── {name} "),
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
    ))
}

fn marking(m: &Marking) -> String {
    if m.sharing.is_empty() {
        format!("TLP:{} ({})", m.tlp.as_str(), m.owner)
    } else {
        format!(
            "TLP:{} ({}; {})",
            m.tlp.as_str(),
            m.owner,
            m.sharing.join(",")
        )
    }
}

/// Every line of the pane (also what the tmux test reads).
pub(super) fn lines(d: &AlertDetail, app: &App) -> Vec<Line<'static>> {
    let item = &d.item;
    let now = app.now;
    let mut out = Vec::new();
    let mut first = vec![
        Span::styled(
            format::severity_long(item.severity),
            super::severity_style(item.severity),
        ),
        Span::raw(format!("  {}", format::state(item.state))),
        Span::raw(format!(
            "  owner {}",
            if item.owner.is_empty() {
                "—"
            } else {
                &item.owner
            }
        )),
        Span::raw(format!("  age {}", format::age(item.opened_at, now))),
    ];
    if let Some(deadline) = item.ack_deadline
        && item.state == schemas::routing::AlertState::Open
    {
        first.push(Span::raw(format!(
            "  ack due in {}",
            format::left(deadline, now)
        )));
    }
    if !d.open {
        first.push(Span::styled("  CLOSED", Style::new().fg(Color::DarkGray)));
    }
    out.push(Line::from(first));
    match &d.alert {
        Some(a) => shared(a, &mut out),
        None => {
            out.push(Line::from(Span::styled(
                format!(
                    "⊘ Withheld from your center: {}",
                    item.hidden
                        .as_deref()
                        .unwrap_or("the egress rule withholds it")
                ),
                Style::new().fg(Color::Red),
            )));
            out.push(Line::from(format!(
                "rule {} · {} sightings",
                item.rule, item.sightings
            )));
        }
    }
    routing(d, &mut out);
    history(&d.history, &mut out);
    let treated: Vec<_> = d
        .fields
        .iter()
        .filter(|f| f.treatment != Treatment::Sent)
        .collect();
    if !treated.is_empty() {
        out.push(section(
            "Not in clear for your center (why: /api/alerts/ID/explain)",
        ));
        for f in treated {
            let t = match f.treatment {
                Treatment::Pseudonymised => "pseudonymised",
                Treatment::NotSent => "not shown",
                Treatment::Sent => "shown",
            };
            out.push(Line::from(format!("{} {t}: {}", f.field, f.why)));
        }
    }
    out
}

fn shared(a: &SharedAlert, out: &mut Vec<Line<'static>>) {
    out.push(Line::from(Span::styled(
        a.title.clone(),
        Style::new().add_modifier(Modifier::BOLD),
    )));
    out.push(Line::from(format!(
        "{} {} · rule {} v{} · window {} – {}",
        a.indicator.kind.as_str(),
        a.indicator.value,
        a.rule,
        a.rule_version,
        format::utc_day_hm(a.window_start),
        format::utc_day_hm(a.window_end),
    )));
    out.push(Line::from(format!("marking {}", marking(&a.marking))));

    out.push(section("Evidence"));
    out.push(Line::from(format!(
        "{} sightings ({} retroactive) · {} sensors · {} victims · seen {} – {}",
        format::thousands(a.sightings),
        a.retroactive_sightings,
        a.sensors,
        a.victims,
        format::utc_hms(a.first_seen),
        format::utc_hms(a.last_seen),
    )));
    out.push(Line::from(format!(
        "countries {}",
        if a.countries.is_empty() {
            "—".to_string()
        } else {
            a.countries.join(", ")
        }
    )));
    if !a.hourly.is_empty() {
        let counts: Vec<u64> = a.hourly.iter().map(|h| h.sightings).collect();
        let from = a
            .hourly
            .first()
            .map(|h| format::utc_hms(h.hour))
            .unwrap_or_default();
        out.push(Line::from(vec![
            Span::raw("hourly "),
            Span::styled(format::sparkline(&counts), Style::new().fg(Color::Green)),
            Span::raw(format!(
                " from {from}, peak {}/h",
                counts.iter().max().copied().unwrap_or(0)
            )),
        ]));
    }
    for v in &a.victims_by_country {
        let mut shown: Vec<&str> = v
            .victim_ips
            .iter()
            .take(VICTIMS_SHOWN)
            .map(String::as_str)
            .collect();
        let more = v.victim_ips.len().saturating_sub(VICTIMS_SHOWN);
        let extra = if more > 0 {
            format!(" (+{more})")
        } else {
            String::new()
        };
        if shown.is_empty() {
            shown.push("—");
        }
        out.push(Line::from(format!(
            "victims {}: {}{extra}",
            v.country,
            shown.join(", ")
        )));
    }
    if a.summarised_sightings > 0 {
        out.push(Line::from(Span::styled(
            format!(
                "summarised: {} of {} sightings are known only from hourly summaries (no event ids, victims or accounts for those)",
                a.summarised_sightings, a.sightings
            ),
            Style::new().fg(Color::Yellow),
        )));
    }
    if !a.event_ids.is_empty() {
        out.push(Line::from(format!("events {}", a.event_ids.join(", "))));
    }

    out.push(section("Corroboration"));
    out.push(Line::from(format!(
        "corroborated confidence {} from {} source(s)",
        a.provenance.corroborated_confidence,
        a.provenance.sources.len()
    )));
    for s in &a.provenance.sources {
        let kind = match s.kind {
            ContributorKind::Partner => "partner",
            ContributorKind::Osint => "osint",
        };
        out.push(Line::from(format!(
            "{kind} {} · conf {} · {} · reported {}",
            s.id,
            s.confidence,
            marking(&s.marking),
            format::utc_day_hm(s.reported),
        )));
    }
    out.push(section("Provenance"));
    out.push(Line::from(format!(
        "input keys {} · indicator {} by {} (conf {})",
        a.provenance.input_keys.join(", "),
        a.indicator.id,
        a.indicator.source_id,
        a.indicator.confidence,
    )));
}

fn routing(d: &AlertDetail, out: &mut Vec<Line<'static>>) {
    out.push(section("Routing"));
    let Some(r) = &d.routing else {
        out.push(Line::from("not routed (no roster)"));
        return;
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "—".into());
    out.push(Line::from(format!(
        "owner {} · opened by {} at {} · acknowledged by {} · assigned to {}",
        r.owner,
        r.opened_by,
        format::utc_hms(r.opened_at),
        opt(&r.acknowledged_by),
        opt(&r.assigned_to),
    )));
    if let Some(e) = &r.escalation {
        out.push(Line::from(Span::styled(
            format!(
                "escalated {} → {} at {} ({}){}",
                format::severity(e.from_severity),
                format::severity(e.to_severity),
                format::utc_hms(e.at),
                reason(&e.reason),
                e.notified
                    .as_deref()
                    .map(|n| format!(", {n} notified"))
                    .unwrap_or_default(),
            ),
            Style::new().fg(Color::Red),
        )));
    }
    for n in &r.notes {
        out.push(Line::from(format!(
            "note {} {}@{}: {}",
            format::utc_hms(n.at),
            n.officer_id,
            n.center,
            n.text
        )));
    }
}

fn reason(r: &EscalationReason) -> String {
    match r {
        EscalationReason::Deadline => "deadline passed".into(),
        EscalationReason::Officer { officer_id, center } => format!("by {officer_id}@{center}"),
    }
}

fn history(entries: &[HistoryEntry], out: &mut Vec<Line<'static>>) {
    out.push(section("History"));
    if entries.is_empty() {
        out.push(Line::from("—"));
    }
    for e in entries {
        let at = format::utc_hms(e.at);
        let line = match &e.event {
            HistoryEvent::Opened { center } => Line::from(format!(
                "{at} opened{}",
                if center.is_empty() {
                    String::new()
                } else {
                    format!(", owned by {center}")
                }
            )),
            HistoryEvent::Action {
                officer_id,
                center,
                action,
                outcome,
                ..
            } => {
                let what = match action {
                    ActionKind::Note { text } => format!("note \"{text}\""),
                    ActionKind::Assign { officer_id } => format!("assign to {officer_id}"),
                    other => verb(other).to_string(),
                };
                let (mark, style) = match outcome {
                    ActionOutcome::Pending => {
                        ("… pending".to_string(), Style::new().fg(Color::Yellow))
                    }
                    ActionOutcome::Accepted => {
                        ("✓ accepted".to_string(), Style::new().fg(Color::Green))
                    }
                    ActionOutcome::Rejected { code, reason } => (
                        format!("✗ rejected ({code}): {reason}"),
                        Style::new().fg(Color::Red),
                    ),
                };
                Line::from(vec![
                    Span::raw(format!("{at} {what} by {officer_id}@{center} ")),
                    Span::styled(mark, style),
                ])
            }
            HistoryEvent::Escalated {
                reason: why,
                from,
                to,
                notified,
            } => Line::from(format!(
                "{at} escalated {} → {} ({}){}",
                format::severity(*from),
                format::severity(*to),
                reason(why),
                notified
                    .as_deref()
                    .map(|n| format!(", {n} notified"))
                    .unwrap_or_default()
            )),
            HistoryEvent::HandedOver { from, to } => {
                Line::from(format!("{at} handed over {from} → {to}"))
            }
        };
        out.push(line);
    }
}
