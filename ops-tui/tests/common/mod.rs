//! Fixtures of the terminal's tests and benchmark: a desk at a fixed instant, a busy
//! queue, and one alert in full.

#![allow(dead_code, missing_docs)] // Each test binary uses a part.

use jiff::Timestamp;
use ops_tui::app::{App, Connection, Msg};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use schemas::desk::{
    ActionOutcome, AlertDetail, CenterInfo, DeskDelta, DeskEvent, DeskSnapshot, FieldView,
    HistoryEntry, HistoryEvent, OfficerInfo, PipelineHealth, QueueItem, Session,
};
use schemas::marking::{Marking, Tlp};
use schemas::routing::{
    AlertRouting, AlertState, DeskNote, DutyStatus, Escalation, EscalationReason, HandedOverAlert,
    HandoverDigest, SeverityCounts,
};
use schemas::sharing::{PersonalData, SharedAlert, SharedVictims, Treatment};
use schemas::{
    ActionKind, Contributor, ContributorKind, HourlySightings, IndicatorKind, IndicatorRef,
    Provenance, Severity, SourceKind,
};

/// The instant every test looks at: 2026-07-01 12:00Z (Lyon 14:00, Singapore 20:00,
/// Buenos Aires 09:00).
pub fn now() -> Timestamp {
    "2026-07-01T12:00:00Z".parse().unwrap()
}

fn at(minutes_before: i64) -> Timestamp {
    Timestamp::from_millisecond(now().as_millisecond() - minutes_before * 60_000).unwrap()
}

pub fn session(drill: Option<&str>) -> Session {
    Session {
        officer: OfficerInfo {
            name: "alice".into(),
            center: "Lyon".into(),
        },
        drill: drill.map(str::to_string),
        centers: vec![
            CenterInfo {
                name: "Singapore".into(),
                time_zone: "Asia/Singapore".into(),
            },
            CenterInfo {
                name: "Lyon".into(),
                time_zone: "Europe/Paris".into(),
            },
            CenterInfo {
                name: "Buenos Aires".into(),
                time_zone: "America/Argentina/Buenos_Aires".into(),
            },
        ],
    }
}

pub fn duty() -> DutyStatus {
    DutyStatus {
        center: "Lyon".into(),
        since: "2026-07-01T07:00:00Z".parse().unwrap(),
        previous: Some("Singapore".into()),
        overlap_until: "2026-07-01T07:15:00Z".parse().unwrap(),
        next_handover: Some("2026-07-01T16:00:00Z".parse().unwrap()),
        next_center: Some("Buenos Aires".into()),
    }
}

pub fn health() -> PipelineHealth {
    PipelineHealth {
        events_per_sec: 9_874.0,
        lag_ms: Some(240),
        dead_letters: 12,
        rehydrating: false,
        rehydration_ms: Some(0),
        closed_time: Some(now()),
        open_alerts: 30,
        rejected_actions: 1,
    }
}

const SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];
const OWNERS: [&str; 3] = ["Lyon", "Singapore", "Buenos Aires"];

/// A queue line, varied by `i` (deterministic).
pub fn item(i: usize) -> QueueItem {
    let severity = SEVERITIES[(i * 7 + i / 3) % 4];
    let state = if i % 5 == 2 {
        AlertState::Acknowledged
    } else {
        AlertState::Open
    };
    let opened = (i as i64 * 37) % 500 + 1;
    let hidden = i % 11 == 6;
    QueueItem {
        id: format!(
            "{:016x}",
            0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)
        ),
        severity,
        state,
        owner: OWNERS[i % 3].into(),
        opened_at: at(opened),
        ack_deadline: Some(at(opened - [5, 15, 60, 240][(i * 7 + i / 3) % 4])),
        escalated: i % 13 == 4,
        acknowledged_by: (state == AlertState::Acknowledged).then(|| "bob".into()),
        assigned_to: None,
        version: 1_782_907_200_000 + i as u64,
        rule: "indicator_match".into(),
        title: (!hidden).then(|| {
            format!(
                "ipv4 203.0.113.{} seen by {} sensors in {}",
                i % 250,
                i % 9 + 1,
                ["FR", "SG", "AR", "DE"][i % 4]
            )
        }),
        hidden: hidden
            .then(|| "TLP:RED and the recipient is not named on the owner's sharing list".into()),
        sightings: (i as u64 * 13) % 400 + 1,
        drill: false,
    }
}

pub fn snapshot_event(items: usize) -> DeskEvent {
    DeskEvent::Snapshot(DeskSnapshot {
        time_ms: now().as_millisecond() as u64,
        queue: (0..items).map(item).collect(),
        duty: Some(duty()),
        handovers: vec![handover()],
    })
}

pub fn handover() -> HandoverDigest {
    HandoverDigest {
        at: "2026-07-01T07:00:00Z".parse().unwrap(),
        from: "Singapore".into(),
        to: "Lyon".into(),
        counts: SeverityCounts {
            critical: 1,
            high: 1,
            medium: 0,
            low: 1,
        },
        oldest_unacknowledged: Some(item(0).id),
        alerts: vec![
            HandedOverAlert {
                alert_id: item(0).id,
                severity: Severity::Critical,
                state: AlertState::Open,
                opened_at: "2026-07-01T06:41:00Z".parse().unwrap(),
                assigned_to: None,
                notes: vec![DeskNote {
                    officer_id: "wei".into(),
                    center: "Singapore".into(),
                    text: "bureau SG informed; waiting for the partner".into(),
                    at: "2026-07-01T06:50:00Z".parse().unwrap(),
                }],
            },
            HandedOverAlert {
                alert_id: item(1).id,
                severity: Severity::High,
                state: AlertState::Acknowledged,
                opened_at: "2026-07-01T05:12:00Z".parse().unwrap(),
                assigned_to: Some("wei".into()),
                notes: vec![],
            },
            HandedOverAlert {
                alert_id: item(3).id,
                severity: Severity::Low,
                state: AlertState::Open,
                opened_at: "2026-07-01T03:02:00Z".parse().unwrap(),
                assigned_to: None,
                notes: vec![],
            },
        ],
        accepted: None,
    }
}

fn marking(tlp: Tlp, owner: &str, sharing: &[&str]) -> Marking {
    Marking {
        tlp,
        owner: owner.into(),
        sharing: sharing.iter().map(|s| s.to_string()).collect(),
    }
}

/// The full detail of `item(0)` as alice of Lyon sees it.
pub fn detail() -> AlertDetail {
    let item = item(0);
    let routing = AlertRouting {
        alert_id: item.id.clone(),
        owner: "Lyon".into(),
        opened_by: "Singapore".into(),
        opened_at: item.opened_at,
        state: AlertState::Open,
        severity: Severity::Critical,
        original_severity: Severity::High,
        ack_deadline: item.ack_deadline,
        acknowledged_by: None,
        assigned_to: None,
        notes: vec![DeskNote {
            officer_id: "wei".into(),
            center: "Singapore".into(),
            text: "bureau SG informed; waiting for the partner".into(),
            at: at(40),
        }],
        escalation: Some(Escalation {
            alert_id: item.id.clone(),
            at: at(3),
            reason: EscalationReason::Deadline,
            from_severity: Severity::High,
            to_severity: Severity::Critical,
            owner: "Lyon".into(),
            notified: Some("Buenos Aires".into()),
        }),
    };
    let alert = SharedAlert {
        recipient: "desk-lyon".into(),
        personal_data: PersonalData::Pseudonymised,
        id: item.id.clone(),
        rule: "indicator_match".into(),
        rule_version: 2,
        key: "ind-acme-0042".into(),
        window_start: "2026-07-01T00:00:00Z".parse().unwrap(),
        window_end: "2026-07-02T00:00:00Z".parse().unwrap(),
        severity: Severity::High,
        title: item.title.clone().unwrap(),
        indicator: IndicatorRef {
            id: "ind-acme-0042".into(),
            kind: IndicatorKind::Ipv4,
            value: "203.0.113.0".into(),
            source_kind: SourceKind::Partner,
            source_id: "acme-cti".into(),
            confidence: 85,
            created: "2026-06-30T22:00:00Z".parse().unwrap(),
        },
        marking: marking(Tlp::Amber, "acme-cti", &["FR", "SG", "desk-lyon"]),
        first_seen: "2026-07-01T08:02:11Z".parse().unwrap(),
        last_seen: "2026-07-01T11:58:40Z".parse().unwrap(),
        sightings: 1_284,
        hourly: [3, 40, 180, 610, 451]
            .iter()
            .enumerate()
            .map(|(h, n)| HourlySightings {
                hour: Timestamp::from_second(1_782_892_800 + 3600 * h as i64).unwrap(),
                sightings: *n,
            })
            .collect(),
        sensors: 7,
        victims: 9,
        victim_ips: vec![],
        victims_by_country: vec![
            SharedVictims {
                country: "FR".into(),
                victim_ips: (0..6)
                    .map(|i| format!("pseud:{:024x}", 0xabc0 + i))
                    .collect(),
            },
            SharedVictims {
                country: "SG".into(),
                victim_ips: vec!["pseud:0000000000000000000fe11d".into()],
            },
        ],
        accounts: vec![],
        countries: vec!["FR".into(), "SG".into()],
        retroactive_sightings: 212,
        event_ids: vec!["ev-000193".into(), "ev-000388".into(), "ev-004410".into()],
        summarised_sightings: 200,
        drill: false,
        provenance: Provenance {
            input_keys: vec!["ip:203.0.113.0".into()],
            sources: vec![
                Contributor {
                    kind: ContributorKind::Partner,
                    id: "acme-cti".into(),
                    indicator_id: "ind-acme-0042".into(),
                    confidence: 85,
                    reported: "2026-06-30T22:00:00Z".parse().unwrap(),
                    marking: marking(Tlp::Amber, "acme-cti", &["FR", "SG", "desk-lyon"]),
                },
                Contributor {
                    kind: ContributorKind::Osint,
                    id: "abuse-feed".into(),
                    indicator_id: "osint-77".into(),
                    confidence: 40,
                    reported: "2026-06-29T10:00:00Z".parse().unwrap(),
                    marking: marking(Tlp::Clear, "abuse-feed", &[]),
                },
            ],
            corroborated_confidence: 91,
        },
    };
    let action = |min: i64, officer: &str, center: &str, action, outcome| HistoryEntry {
        at: at(min),
        event: HistoryEvent::Action {
            action_id: format!("act-{min}"),
            officer_id: officer.into(),
            center: center.into(),
            action,
            outcome,
        },
    };
    AlertDetail {
        item,
        alert: Some(alert),
        fields: vec![FieldView {
            field: "victim_ips".into(),
            treatment: Treatment::Pseudonymised,
            why: "victim addresses: personal data, and the recipient is not entitled to it".into(),
        }],
        routing: Some(routing),
        history: vec![
            HistoryEntry {
                at: at(301),
                event: HistoryEvent::Opened {
                    center: "Singapore".into(),
                },
            },
            HistoryEntry {
                at: at(300),
                event: HistoryEvent::HandedOver {
                    from: "Singapore".into(),
                    to: "Lyon".into(),
                },
            },
            action(
                40,
                "wei",
                "Singapore",
                ActionKind::Note {
                    text: "bureau SG informed; waiting for the partner".into(),
                },
                ActionOutcome::Accepted,
            ),
            action(
                8,
                "ana",
                "Buenos Aires",
                ActionKind::Resolve,
                ActionOutcome::Rejected {
                    code: "not_owner".into(),
                    reason:
                        "Buenos Aires does not own the alert: Lyon has held the watch since 07:00Z"
                            .into(),
                },
            ),
            HistoryEntry {
                at: at(3),
                event: HistoryEvent::Escalated {
                    reason: EscalationReason::Deadline,
                    from: Severity::High,
                    to: Severity::Critical,
                    notified: Some("Buenos Aires".into()),
                },
            },
        ],
        open: true,
    }
}

/// A connected app of `size` holding `items` open alerts.
pub fn app(size: (u16, u16), items: usize, drill: Option<&str>) -> App {
    let mut app = App::new(now(), size);
    app.update(Msg::Session(session(drill)));
    app.update(Msg::Connection(Connection::Connected));
    app.update(Msg::Stream(snapshot_event(items)));
    app.update(Msg::Stream(DeskEvent::Health(health())));
    app
}

/// An empty delta at `time_ms`.
pub fn delta(time_ms: u64) -> DeskDelta {
    DeskDelta {
        time_ms,
        ..DeskDelta::default()
    }
}

/// The app drawn on a test backend of its size.
pub fn draw(app: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| ops_tui::ui::render(f, app)).unwrap();
    t
}

/// The drawn screen as plain text lines.
pub fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}
