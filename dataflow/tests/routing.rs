//! Routing in the dataflow: ownership by the center on duty, handover of the open
//! queue with notes, SLA escalation on logical time alone, rejected cross-center
//! actions, and the same outputs on 1 and 2 workers.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dataflow::Time;
use dataflow::roster::{RosterSpec, parse};
use dataflow::routing::routing;
use differential_dataflow::input::Input as _;
use jiff::Timestamp;
use schemas::routing::{
    AlertRouting, AlertState, DutyStatus, Escalation, EscalationReason, HandoverDigest,
    RejectedAction,
};
use schemas::{
    ActionKind, Alert, DeskAction, ErrorCode, IndicatorKind, IndicatorRef, Marking, Severity,
    SourceKind, Tlp,
};
use timely::dataflow::ProbeHandle;

const ROSTER: &str = include_str!("../../deploy/config/roster.toml");

fn ms(s: &str) -> Time {
    u64::try_from(s.parse::<Timestamp>().unwrap().as_millisecond()).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn alert(id: &str, severity: Severity) -> Alert {
    let t = Timestamp::UNIX_EPOCH;
    Alert {
        schema_version: 1,
        id: id.into(),
        rule: "indicator-match".into(),
        rule_version: 1,
        key: format!("ind-{id}"),
        window_start: t,
        window_end: t,
        severity,
        title: format!("alert {id}"),
        indicator: IndicatorRef {
            id: format!("ind-{id}"),
            kind: IndicatorKind::Domain,
            value: "evil.example".into(),
            source_kind: SourceKind::Partner,
            source_id: "p1".into(),
            confidence: 90,
            created: t,
        },
        marking: Marking {
            tlp: Tlp::Green,
            owner: "p1".into(),
            sharing: Vec::new(),
        },
        first_seen: t,
        last_seen: t,
        sightings: 1,
        hourly: Vec::new(),
        sensors: 1,
        victims: 0,
        victim_ips: Vec::new(),
        victims_by_country: Vec::new(),
        accounts: Vec::new(),
        countries: vec!["FR".into()],
        retroactive_sightings: 0,
        event_ids: vec!["e1".into()],
        summarised_sightings: 0,
        drill: false,
        provenance: Default::default(),
    }
}

fn action(n: &str, alert_id: &str, officer: &str, center: &str, kind: ActionKind) -> DeskAction {
    DeskAction {
        schema_version: 1,
        action_id: n.into(),
        alert_id: alert_id.into(),
        officer_id: officer.into(),
        center: center.into(),
        at: Timestamp::UNIX_EPOCH,
        action: kind,
    }
}

/// One scripted input.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // A short test script.
enum In {
    Alert(Alert, isize),
    Action(DeskAction),
    Roster(RosterSpec, isize),
}

/// One output update of a routing view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    Duty(DutyStatus),
    Routing(AlertRouting),
    Escalation(Escalation),
    Handover(HandoverDigest),
    Rejected(RejectedAction),
}

/// Consolidated output updates `(output, time) -> diff`, for times before `end`.
type Updates = BTreeMap<(Out, Time), isize>;

/// An `inspect` callback sending each update of a view, wrapped by `f`.
fn send<D: Clone + 'static>(
    tx: &crossbeam_channel::Sender<(Out, Time, isize)>,
    f: fn(D) -> Out,
) -> impl FnMut(&(D, Time, isize)) + 'static {
    let tx = tx.clone();
    move |(d, t, r)| {
        let _ = tx.send((f(d.clone()), *t, *r));
    }
}

/// Runs routing over `script` (non-decreasing times) on `workers` workers, the
/// clock advanced to `end` with no further input; returns the updates before `end`.
fn run(script: &[(Time, In)], end: Time, workers: usize) -> Updates {
    let (tx, rx) = crossbeam_channel::unbounded::<(Out, Time, isize)>();
    let script = Arc::new(script.to_vec());
    let tx = Arc::new(Mutex::new(tx));
    timely::execute(timely::Config::process(workers), move |worker| {
        let tx = tx.lock().unwrap().clone();
        let probe = ProbeHandle::new();
        let (mut alerts, mut actions, mut roster) = worker.dataflow::<Time, _, _>(|scope| {
            let (ah, alerts) = scope.new_collection::<Alert, isize>();
            let (dh, actions) = scope.new_collection::<DeskAction, isize>();
            let (rh, roster) = scope.new_collection::<RosterSpec, isize>();
            let views = routing(alerts, actions, roster, u64::MAX / 4);
            views.duty.inspect(send(&tx, Out::Duty)).probe_with(&probe);
            views
                .alerts
                .inspect(send(&tx, Out::Routing))
                .probe_with(&probe);
            views
                .escalations
                .inspect(send(&tx, Out::Escalation))
                .probe_with(&probe);
            views
                .handovers
                .inspect(send(&tx, Out::Handover))
                .probe_with(&probe);
            views
                .rejected
                .inspect(send(&tx, Out::Rejected))
                .probe_with(&probe);
            (ah, dh, rh)
        });
        for (time, input) in script.iter() {
            alerts.advance_to(*time);
            actions.advance_to(*time);
            roster.advance_to(*time);
            if worker.index() == 0 {
                match input.clone() {
                    In::Alert(a, d) => alerts.update(a, d),
                    In::Action(a) => actions.insert(a),
                    In::Roster(r, d) => roster.update(r, d),
                }
            }
        }
        alerts.advance_to(end);
        actions.advance_to(end);
        roster.advance_to(end);
        alerts.flush();
        actions.flush();
        roster.flush();
        while probe.less_than(&end) {
            worker.step();
        }
    })
    .unwrap();
    let mut updates = Updates::new();
    for (out, t, d) in rx.try_iter() {
        if t < end {
            *updates.entry((out, t)).or_default() += d;
        }
    }
    updates.retain(|_, d| *d != 0);
    updates
}

/// The contents of the views at `time`.
fn at(updates: &Updates, time: Time) -> Vec<Out> {
    let mut acc: BTreeMap<&Out, isize> = BTreeMap::new();
    for ((out, t), d) in updates {
        if *t <= time {
            *acc.entry(out).or_default() += d;
        }
    }
    acc.into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(o, _)| o.clone())
        .collect()
}

fn routing_at(updates: &Updates, time: Time) -> BTreeMap<String, AlertRouting> {
    at(updates, time)
        .into_iter()
        .filter_map(|o| match o {
            Out::Routing(r) => Some((r.alert_id.clone(), r)),
            _ => None,
        })
        .collect()
}

fn duty_at(updates: &Updates, time: Time) -> Vec<DutyStatus> {
    at(updates, time)
        .into_iter()
        .filter_map(|o| match o {
            Out::Duty(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn digests(updates: &Updates, time: Time) -> Vec<HandoverDigest> {
    at(updates, time)
        .into_iter()
        .filter_map(|o| match o {
            Out::Handover(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn rejected(updates: &Updates, time: Time) -> Vec<RejectedAction> {
    at(updates, time)
        .into_iter()
        .filter_map(|o| match o {
            Out::Rejected(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// The roster, loaded at `day_before` (not a handover instant).
fn roster_at(day_before: &str) -> (Time, In) {
    (ms(day_before), In::Roster(parse(ROSTER).unwrap(), 1))
}

#[test]
fn alerts_are_owned_by_the_center_on_duty_when_they_open() {
    // 2026-06-01 (summer in Paris): Singapore 00:00Z-07:00Z, Lyon 07:00Z-16:00Z,
    // Buenos Aires 16:00Z-00:00Z.
    let script = vec![
        roster_at("2026-05-31T01:00:00Z"),
        (
            ms("2026-06-01T03:00:00Z"),
            In::Alert(alert("sg", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T07:00:00Z"),
            In::Alert(alert("ly-at-handover", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T10:00:00Z"),
            In::Alert(alert("ly", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T20:00:00Z"),
            In::Alert(alert("ba", Severity::Low), 1),
        ),
    ];
    let out = run(&script, ms("2026-06-01T21:00:00Z"), 1);
    let r = routing_at(&out, ms("2026-06-01T20:00:00Z"));
    let opened_by: Vec<(&str, &str)> = r
        .values()
        .map(|a| (a.alert_id.as_str(), a.opened_by.as_str()))
        .collect();
    assert_eq!(
        opened_by,
        vec![
            ("ba", "Buenos Aires"),
            ("ly", "Lyon"),
            ("ly-at-handover", "Lyon"),
            ("sg", "Singapore"),
        ]
    );
    // While open, each is owned by whoever is on duty: Buenos Aires now.
    assert!(r.values().all(|a| a.owner == "Buenos Aires"), "{r:#?}");
    // At 10:00Z, the Singapore alert had moved to Lyon at 07:00Z.
    let r = routing_at(&out, ms("2026-06-01T10:00:00Z"));
    assert_eq!(r["sg"].owner, "Lyon");
    assert_eq!(r["sg"].opened_at, ts("2026-06-01T03:00:00Z"));
    // A low alert is due at the end of the watch in which it opened.
    assert_eq!(r["sg"].ack_deadline, Some(ts("2026-06-01T07:00:00Z")));
    let duty = duty_at(&out, ms("2026-06-01T10:00:00Z"));
    assert_eq!(duty.len(), 1);
    assert_eq!(duty[0].center, "Lyon");
    assert_eq!(duty[0].since, ts("2026-06-01T07:00:00Z"));
    assert_eq!(duty[0].previous.as_deref(), Some("Singapore"));
    assert_eq!(duty[0].next_center.as_deref(), Some("Buenos Aires"));
    // Exactly one center on duty at every output time.
    for ((_, t), _) in out.iter() {
        assert_eq!(duty_at(&out, *t).len(), 1, "at {t}");
    }
}

/// Three alerts in Singapore's watch on 2026-06-01: one left open, one resolved, one
/// acknowledged with a note; the handover to Lyon is at 07:00Z.
fn handover_script() -> Vec<(Time, In)> {
    vec![
        roster_at("2026-05-31T01:00:00Z"),
        (
            ms("2026-06-01T01:00:00Z"),
            In::Alert(alert("open", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T02:00:00Z"),
            In::Alert(alert("resolved", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T02:00:00Z"),
            In::Alert(alert("worked", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T03:00:00Z"),
            In::Action(action(
                "a1",
                "resolved",
                "sg-1",
                "Singapore",
                ActionKind::Resolve,
            )),
        ),
        (
            ms("2026-06-01T04:00:00Z"),
            In::Action(action(
                "a2",
                "worked",
                "sg-1",
                "Singapore",
                ActionKind::Acknowledge,
            )),
        ),
        (
            ms("2026-06-01T05:00:00Z"),
            In::Action(action(
                "a3",
                "worked",
                "sg-1",
                "Singapore",
                ActionKind::Note {
                    text: "victim contacted, waiting for logs".into(),
                },
            )),
        ),
        (
            ms("2026-06-01T07:05:00Z"),
            In::Action(action("a4", "", "ly-1", "Lyon", ActionKind::AcceptHandover)),
        ),
        // Within the 15-minute overlap the outgoing center may still act…
        (
            ms("2026-06-01T07:10:00Z"),
            In::Action(action(
                "a5",
                "worked",
                "sg-1",
                "Singapore",
                ActionKind::Note {
                    text: "logs arrived".into(),
                },
            )),
        ),
        // …after it, not.
        (
            ms("2026-06-01T07:20:00Z"),
            In::Action(action(
                "a6",
                "open",
                "sg-1",
                "Singapore",
                ActionKind::Acknowledge,
            )),
        ),
    ]
}

#[test]
fn handover_moves_exactly_the_open_alerts_with_their_notes() {
    let out = run(&handover_script(), ms("2026-06-01T08:00:00Z"), 1);
    let d = digests(&out, ms("2026-06-01T07:59:00Z"));
    let d: Vec<&HandoverDigest> = d
        .iter()
        .filter(|d| d.at == ts("2026-06-01T07:00:00Z"))
        .collect();
    assert_eq!(d.len(), 1, "{d:#?}");
    let d = d[0];
    assert_eq!(d.at, ts("2026-06-01T07:00:00Z"));
    assert_eq!(d.to, "Lyon");
    let ids: Vec<&str> = d.alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids, vec!["open", "worked"]);
    assert_eq!(d.counts.low, 2);
    assert_eq!(d.counts.critical + d.counts.high + d.counts.medium, 0);
    assert_eq!(d.oldest_unacknowledged.as_deref(), Some("open"));
    let worked = &d.alerts[1];
    assert_eq!(worked.state, AlertState::Acknowledged);
    // The notes as they stood at the handover (the overlap note came later).
    let notes: Vec<&str> = worked.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, vec!["victim contacted, waiting for logs"]);
    let accepted = d.accepted.as_ref().unwrap();
    assert_eq!(accepted.officer_id, "ly-1");
    assert_eq!(accepted.at, ts("2026-06-01T07:05:00Z"));
    // The digest is frozen: a note after the handover does not change it.
    assert_eq!(
        digests(&out, ms("2026-06-01T07:05:00Z")),
        digests(&out, ms("2026-06-01T07:59:00Z"))
    );

    let r = routing_at(&out, ms("2026-06-01T07:59:00Z"));
    assert_eq!(r["open"].owner, "Lyon");
    // "open" is low and unacknowledged at the end of the watch it opened in: it
    // escalates at the handover instant, in the hands of the incoming center.
    let e = r["open"].escalation.as_ref().unwrap();
    assert_eq!(
        (e.at, e.owner.as_str()),
        (ts("2026-06-01T07:00:00Z"), "Lyon")
    );
    assert_eq!(e.notified.as_deref(), Some("Buenos Aires"));
    assert_eq!(r["open"].severity, Severity::Medium);
    assert_eq!(r["worked"].owner, "Lyon");
    assert_eq!(r["resolved"].owner, "Singapore", "closed alerts stay put");
    assert_eq!(r["resolved"].state, AlertState::Resolved);
    assert_eq!(r["worked"].notes.len(), 2, "the overlap note was accepted");
    assert_eq!(
        r["open"].state,
        AlertState::Open,
        "the late ack was rejected"
    );
    let rej = rejected(&out, ms("2026-06-01T07:59:00Z"));
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].action.action_id, "a6");
    assert_eq!(rej[0].code, ErrorCode::NotOwner);
    assert_eq!(rej[0].owner.as_deref(), Some("Lyon"));
    assert!(rej[0].reason.contains("Singapore does not own alert open"));
    assert_eq!(rej[0].at, ts("2026-06-01T07:20:00Z"));
}

#[test]
fn an_unacknowledged_critical_alert_escalates_five_logical_minutes_after_opening() {
    let opened = ms("2026-06-01T10:00:00Z");
    let script = vec![
        roster_at("2026-05-31T01:00:00Z"),
        (opened, In::Alert(alert("quiet", Severity::Critical), 1)),
        (opened, In::Alert(alert("acked", Severity::Critical), 1)),
        (opened, In::Alert(alert("high", Severity::High), 1)),
        (
            opened + 120_000,
            In::Action(action(
                "a1",
                "acked",
                "ly-1",
                "Lyon",
                ActionKind::Acknowledge,
            )),
        ),
    ];
    // No input after 10:02Z: only the clock moves on.
    let out = run(&script, ms("2026-06-01T11:00:00Z"), 1);
    let escalations: Vec<(Escalation, Time)> = out
        .iter()
        .filter_map(|((o, t), d)| match o {
            Out::Escalation(e) if *d > 0 => Some((e.clone(), *t)),
            _ => None,
        })
        .collect();
    assert_eq!(escalations.len(), 2, "{escalations:#?}");
    let (quiet, t) = &escalations
        .iter()
        .find(|(e, _)| e.alert_id == "quiet")
        .unwrap();
    assert_eq!(*t, opened + 5 * 60_000, "escalated at the deadline exactly");
    assert_eq!(quiet.at, ts("2026-06-01T10:05:00Z"));
    assert_eq!(quiet.reason, EscalationReason::Deadline);
    assert_eq!(quiet.owner, "Lyon");
    assert_eq!(quiet.notified.as_deref(), Some("Buenos Aires"));
    assert_eq!(quiet.to_severity, Severity::Critical);
    let (high, t) = &escalations
        .iter()
        .find(|(e, _)| e.alert_id == "high")
        .unwrap();
    assert_eq!(*t, opened + 15 * 60_000);
    assert_eq!(
        (high.from_severity, high.to_severity),
        (Severity::High, Severity::Critical)
    );
    let before = routing_at(&out, opened + 5 * 60_000 - 1);
    assert!(before["quiet"].escalation.is_none());
    let after = routing_at(&out, ms("2026-06-01T10:59:00Z"));
    assert!(after["quiet"].escalation.is_some());
    assert!(after["acked"].escalation.is_none(), "acknowledged in time");
    assert_eq!(after["acked"].acknowledged_by.as_deref(), Some("ly-1"));
    assert_eq!(after["high"].severity, Severity::Critical);
}

#[test]
fn a_rejected_cross_center_action_changes_nothing() {
    let base = vec![
        roster_at("2026-05-31T01:00:00Z"),
        (
            ms("2026-06-01T10:00:00Z"),
            In::Alert(alert("x", Severity::Medium), 1),
        ),
    ];
    let mut with = base.clone();
    for (n, kind) in [
        ActionKind::Acknowledge,
        ActionKind::Assign {
            officer_id: "sg-2".into(),
        },
        ActionKind::Note {
            text: "not ours".into(),
        },
        ActionKind::Resolve,
        ActionKind::FalsePositive,
    ]
    .into_iter()
    .enumerate()
    {
        with.push((
            ms("2026-06-01T10:10:00Z") + n as u64,
            In::Action(action(&format!("b{n}"), "x", "sg-1", "Singapore", kind)),
        ));
    }
    let end = ms("2026-06-01T12:00:00Z");
    let plain = run(&base, end, 1);
    let crossed = run(&with, end, 1);
    let rej = rejected(&crossed, end - 1);
    assert_eq!(rej.len(), 5);
    assert!(rej.iter().all(|r| r.code == ErrorCode::NotOwner));
    let strip = |u: &Updates| -> Updates {
        u.iter()
            .filter(|((o, _), _)| !matches!(o, Out::Rejected(_)))
            .map(|(k, d)| (k.clone(), *d))
            .collect()
    };
    assert_eq!(strip(&plain), strip(&crossed));
    // The medium alert escalates at 11:00Z in both: the rejected ack did not count.
    assert!(routing_at(&crossed, end - 1)["x"].escalation.is_some());

    // Escalation is open to every center.
    let mut esc = base;
    esc.push((
        ms("2026-06-01T10:10:00Z"),
        In::Action(action("e1", "x", "sg-1", "Singapore", ActionKind::Escalate)),
    ));
    let out = run(&esc, end, 1);
    assert!(rejected(&out, end - 1).is_empty());
    let e = routing_at(&out, end - 1)["x"].escalation.clone().unwrap();
    assert_eq!(e.at, ts("2026-06-01T10:10:00Z"));
    assert_eq!(
        e.reason,
        EscalationReason::Officer {
            officer_id: "sg-1".into(),
            center: "Singapore".into()
        }
    );
}

#[test]
fn a_roster_change_reroutes_from_its_own_time_on() {
    // From 09:00Z, Buenos Aires takes the watch at 11:00 local (14:00Z) instead of 13:00.
    let early = ROSTER.replace("watch_starts = \"13:00\"", "watch_starts = \"11:00\"");
    let script = vec![
        roster_at("2026-05-31T01:00:00Z"),
        (
            ms("2026-06-01T08:00:00Z"),
            In::Alert(alert("a", Severity::Low), 1),
        ),
        (
            ms("2026-06-01T09:00:00Z"),
            In::Roster(parse(ROSTER).unwrap(), -1),
        ),
        (
            ms("2026-06-01T09:00:00Z"),
            In::Roster(parse(&early).unwrap(), 1),
        ),
    ];
    let out = run(&script, ms("2026-06-01T18:00:00Z"), 1);
    let duty = duty_at(&out, ms("2026-06-01T15:00:00Z"));
    assert_eq!(duty[0].center, "Buenos Aires");
    assert_eq!(duty[0].since, ts("2026-06-01T14:00:00Z"));
    let r = routing_at(&out, ms("2026-06-01T15:00:00Z"));
    assert_eq!(r["a"].opened_by, "Lyon");
    assert_eq!(r["a"].owner, "Buenos Aires");
    // The low alert's deadline was fixed by the roster in force when it opened.
    assert_eq!(r["a"].ack_deadline, Some(ts("2026-06-01T16:00:00Z")));
}

#[test]
fn same_inputs_give_the_same_outputs_twice_and_on_two_workers() {
    let mut script = handover_script();
    let t = ms("2026-06-01T07:30:00Z");
    script.push((t, In::Alert(alert("crit", Severity::Critical), 1)));
    script.push((t, In::Alert(alert("med", Severity::Medium), 1)));
    script.push((
        t + 60_000,
        In::Action(action("c1", "med", "ly-1", "Lyon", ActionKind::Acknowledge)),
    ));
    script.push((t + 120_000, In::Alert(alert("open", Severity::Low), -1)));
    let end = ms("2026-06-02T02:00:00Z");
    let one = run(&script, end, 1);
    assert!(!one.is_empty());
    assert_eq!(one, run(&script, end, 1));
    assert_eq!(one, run(&script, end, 2));
    // The retracted alert has no routing; the others went on to Buenos Aires and Singapore.
    let r = routing_at(&one, end - 1);
    assert!(!r.contains_key("open"));
    assert_eq!(r["crit"].owner, "Singapore");
    // One digest per handover instant, empty ones included.
    let handovers: Vec<(Timestamp, String, String)> = digests(&one, end - 1)
        .into_iter()
        .map(|d| (d.at, d.from, d.to))
        .collect();
    let h = |at: &str, from: &str, to: &str| (ts(at), from.to_string(), to.to_string());
    assert_eq!(
        handovers,
        vec![
            h("2026-05-31T07:00:00Z", "Singapore", "Lyon"),
            h("2026-05-31T16:00:00Z", "Lyon", "Buenos Aires"),
            h("2026-06-01T00:00:00Z", "Buenos Aires", "Singapore"),
            h("2026-06-01T07:00:00Z", "Singapore", "Lyon"),
            h("2026-06-01T16:00:00Z", "Lyon", "Buenos Aires"),
            h("2026-06-02T00:00:00Z", "Buenos Aires", "Singapore"),
        ]
    );
}

/// Brute force: the routing of every alert at the end of `script`, straight from the
/// roster's pure functions (no dataflow): owner, state, escalation, rejections.
fn oracle(script: &[(Time, In)], end: Time) -> (BTreeMap<String, AlertRouting>, Vec<String>) {
    let roster = dataflow::roster::Roster::from_toml(ROSTER).unwrap();
    let name = |c: Option<usize>| roster.center_name(c.unwrap()).to_string();
    let i = |t: Time| i64::try_from(t).unwrap();
    let on_duty = |t: Time| name(roster.on_duty(i(t)));
    let next_center = |t: Time| {
        roster
            .next_handover(i(t))
            .map(|h| roster.center_name(h.to).to_string())
    };
    let mut rejected = Vec::new();
    let mut accepted: Vec<(Time, DeskAction)> = Vec::new();
    for (t, input) in script {
        if let In::Action(a) = input {
            let owner = on_duty(*t);
            let last = roster.last_handover(i(*t)).unwrap();
            let ok = a.center == owner
                || matches!(a.action, ActionKind::Escalate)
                || (roster.center_name(last.from) == a.center
                    && i(*t) < last.at_ms + 15 * 60_000
                    && !matches!(a.action, ActionKind::AcceptHandover));
            if ok {
                accepted.push((*t, a.clone()));
            } else {
                rejected.push(a.action_id.clone());
            }
        }
    }
    rejected.sort();
    let mut out = BTreeMap::new();
    for (opened, input) in script {
        let In::Alert(a, _) = input else { continue };
        if out.contains_key(&a.id) {
            continue;
        }
        let opened = *opened;
        let due = match a.severity {
            Severity::Critical => opened + 5 * 60_000,
            Severity::High => opened + 15 * 60_000,
            Severity::Medium => opened + 60 * 60_000,
            Severity::Low => u64::try_from(roster.next_handover(i(opened)).unwrap().at_ms).unwrap(),
        };
        let mut r = AlertRouting {
            alert_id: a.id.clone(),
            owner: on_duty(opened),
            opened_by: on_duty(opened),
            opened_at: dataflow::duty_clock::instant(opened),
            state: AlertState::Open,
            severity: a.severity,
            original_severity: a.severity,
            ack_deadline: Some(dataflow::duty_clock::instant(due)),
            acknowledged_by: None,
            assigned_to: None,
            notes: Vec::new(),
            escalation: None,
        };
        let escalate = |r: &mut AlertRouting, at: Time, reason: EscalationReason| {
            if r.escalation.is_none() {
                let to = match r.severity {
                    Severity::Low => Severity::Medium,
                    Severity::Medium => Severity::High,
                    _ => Severity::Critical,
                };
                r.escalation = Some(Escalation {
                    alert_id: r.alert_id.clone(),
                    at: dataflow::duty_clock::instant(at),
                    reason,
                    from_severity: r.severity,
                    to_severity: to,
                    owner: r.owner.clone(),
                    notified: next_center(at),
                });
                r.severity = to;
            }
        };
        let mut deadline_done = false;
        for (t, act) in accepted
            .iter()
            .filter(|(t, x)| x.alert_id == a.id && *t >= opened)
        {
            if !deadline_done && *t > due && due < end {
                deadline_done = true;
                if r.state == AlertState::Open {
                    let owner = on_duty(due);
                    r.owner = owner;
                    escalate(&mut r, due, EscalationReason::Deadline);
                }
            }
            if r.state.is_closed() {
                break;
            }
            r.owner = on_duty(*t);
            match &act.action {
                ActionKind::Acknowledge if r.state == AlertState::Open => {
                    r.state = AlertState::Acknowledged;
                    r.acknowledged_by = Some(act.officer_id.clone());
                }
                ActionKind::Assign { officer_id } => r.assigned_to = Some(officer_id.clone()),
                ActionKind::Note { text } => r.notes.push(schemas::routing::DeskNote {
                    officer_id: act.officer_id.clone(),
                    center: act.center.clone(),
                    text: text.clone(),
                    at: dataflow::duty_clock::instant(*t),
                }),
                ActionKind::Escalate => escalate(
                    &mut r,
                    *t,
                    EscalationReason::Officer {
                        officer_id: act.officer_id.clone(),
                        center: act.center.clone(),
                    },
                ),
                ActionKind::Resolve => r.state = AlertState::Resolved,
                ActionKind::FalsePositive => r.state = AlertState::FalsePositive,
                _ => {}
            }
        }
        if !deadline_done && due < end && r.state == AlertState::Open {
            r.owner = on_duty(due);
            escalate(&mut r, due, EscalationReason::Deadline);
        }
        if !r.state.is_closed() {
            r.owner = on_duty(end - 1);
        }
        out.insert(a.id.clone(), r);
    }
    (out, rejected)
}

mod random {
    use proptest::prelude::*;

    use super::*;

    const CENTERS: [&str; 3] = ["Singapore", "Lyon", "Buenos Aires"];
    const SEVERITIES: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Alerts and actions at random minutes of a day and a half from 2026-06-01T00:00Z.
    fn arb_script() -> impl Strategy<Value = Vec<(Time, In)>> {
        let alerts = prop::collection::vec((0u64..2000, 0usize..4), 1..5);
        let actions = prop::collection::vec((0u64..2000, 0usize..5, 0usize..3, 0usize..7), 0..12);
        (alerts, actions).prop_map(|(alerts, actions)| {
            let base = ms("2026-06-01T00:00:00Z");
            let mut script = vec![roster_at("2026-05-31T01:00:00Z")];
            let n = alerts.len();
            for (k, (minute, sev)) in alerts.into_iter().enumerate() {
                script.push((
                    base + minute * 60_000,
                    In::Alert(alert(&format!("a{k}"), SEVERITIES[sev]), 1),
                ));
            }
            for (k, (minute, target, center, kind)) in actions.into_iter().enumerate() {
                let kind = match kind {
                    0 => ActionKind::Acknowledge,
                    1 => ActionKind::Assign {
                        officer_id: format!("o{k}"),
                    },
                    2 => ActionKind::Note {
                        text: format!("note {k}"),
                    },
                    3 => ActionKind::Escalate,
                    4 => ActionKind::Resolve,
                    5 => ActionKind::FalsePositive,
                    _ => ActionKind::Note {
                        text: "again".into(),
                    },
                };
                script.push((
                    base + minute * 60_000 + 30_000,
                    In::Action(action(
                        &format!("x{k:02}"),
                        &format!("a{}", target % n),
                        &format!("officer-{center}"),
                        CENTERS[center],
                        kind,
                    )),
                ));
            }
            script.sort_by_key(|(t, _)| *t);
            script
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn routing_equals_the_brute_force_oracle_on_one_and_two_workers(script in arb_script()) {
            let end = ms("2026-06-02T12:00:00Z");
            let one = run(&script, end, 1);
            prop_assert_eq!(&one, &run(&script, end, 2));
            let (expected, expected_rejected) = oracle(&script, end);
            prop_assert_eq!(routing_at(&one, end - 1), expected);
            let mut got: Vec<String> = rejected(&one, end - 1)
                .into_iter()
                .map(|r| r.action.action_id)
                .collect();
            got.sort();
            prop_assert_eq!(got, expected_rejected);
        }
    }
}
