//! Follow-the-sun routing, SLA and escalation as views over collections.
//!
//! Inputs: the alert collection, officers' actions (`fusion.desk.actions`) and the
//! roster (a collection holding the roster in force). Everything is a function of
//! those inputs and logical time, so live operation, a restart and a replayed drill
//! route identically:
//!
//! - **Duty.** The center on duty changes at every handover instant of the roster in
//!   force ([`crate::duty_clock`]); a roster change re-routes from its own time on.
//! - **Ownership.** An alert opens at the logical time its id first appears and is
//!   owned by the center on duty then. At each handover (a change of the center on
//!   duty while it is open and not closed) it moves to the incoming center; the
//!   handover digest lists it with its state and notes, per handover instant.
//! - **Actions** are judged at their logical time against the roster in force then:
//!   the center on duty owns every open alert; during the handover overlap the
//!   outgoing center may still act; escalation is open to every center; accepting a
//!   handover is for the incoming center. Anything else is rejected (to be
//!   dead-lettered with `not_owner`) and changes nothing. An accepted action on an
//!   alert that is not open (unknown, or closed) has no effect.
//! - **SLA.** An alert not acknowledged (nor closed) by `opened + deadline(severity)`
//!   escalates *at* that logical time, with no further input: its severity is raised
//!   one level and the next center in the rotation (the one taking the watch at the
//!   next handover) is notified. The deadline follows the alert's current severity;
//!   low alerts are due at the end of the watch in which they opened. An officer's
//!   `escalate` does the same at once.
//!
//! Caveats: an alert retracted and later re-derived keeps its first opening time; a
//! roster change cannot rewrite a decision already taken (judgements are kept once
//! made, like matches in [`crate::matching`]); the cross joins with the duty and
//! roster (one record each) run on one worker.
//!
//! Bounded state: every fact kept once made (openings, actions, judgements, duty steps,
//! deadlines, handover markers) is dropped `horizon_ms` after it was made. The runtime
//! sets the horizon beyond the longest an alert can live (a day of window, the history's
//! retention and the expiry grace), so by then the alert it is about has expired and the
//! fact changes nothing; handover digests older than the horizon leave the handover view.

use std::collections::BTreeMap;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::trace::implementations::{KeyBuilder, KeySpine, ValBuilder, ValSpine};
use differential_dataflow::{AsCollection, VecCollection};
use schemas::routing::{
    Acceptance, AlertRouting, AlertState, DeskNote, DutyStatus, Escalation, EscalationReason,
    HandedOverAlert, HandoverDigest, RejectedAction, SeverityCounts,
};
use schemas::{ActionKind, Alert, DeskAction, ErrorCode, Severity};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};

use crate::Time;
use crate::duty_clock::{duty_at, duty_clock, instant, logical};
use crate::roster::{Roster, RosterSpec, SlaSpec};
use crate::roster_versions::roster_versions;
use crate::shared::Shared;

/// The routing views.
pub struct RoutingViews<'s> {
    /// The center on duty: one record at every time from the first roster on.
    pub duty: VecCollection<'s, Time, DutyStatus>,
    /// Owner and state of every alert in the alert collection.
    pub alerts: VecCollection<'s, Time, AlertRouting>,
    /// Escalations (`escalated` events), one per escalated alert.
    pub escalations: VecCollection<'s, Time, Escalation>,
    /// Handover digests, one per handover instant (and per re-routing by a roster change).
    pub handovers: VecCollection<'s, Time, HandoverDigest>,
    /// Officer actions rejected for not owning the alert.
    pub rejected: VecCollection<'s, Time, RejectedAction>,
}

/// An alert id as routing keys its collections by: the 32-hex-digit content hash
/// (what [`crate::alerts::alert_id`] makes) as two words, any other id as text. The
/// encoding is one-to-one (only lowercase hex, as the hash is written, takes the first
/// form), so routing an alert by its key is routing it by its id; keys compare and hash
/// without following a pointer, which is most of what arrangements do with them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum AlertKey {
    Hash(u64, u64),
    Text(Box<str>),
}

impl AlertKey {
    fn of(id: &str) -> Self {
        let hex = |s: &str| {
            s.bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        match (id.len() == 32)
            .then(|| id.split_at_checked(16))
            .flatten()
            .and_then(|(hi, lo)| Some((hex(hi)?, hex(lo)?)))
        {
            Some((hi, lo)) => AlertKey::Hash(hi, lo),
            None => AlertKey::Text(id.into()),
        }
    }
}

impl std::fmt::Display for AlertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AlertKey::Hash(hi, lo) => write!(f, "{hi:016x}{lo:016x}"),
            AlertKey::Text(id) => f.write_str(id),
        }
    }
}

/// What happens to an alert, judged at its logical time by the roster in force.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Probe {
    /// The alert id first appeared.
    Opened,
    /// An officer acted (on an alert, or accepting a handover).
    Action(DeskAction),
    /// The acknowledgement deadline passed.
    Deadline,
}

/// A step in an alert's life, in the order it is folded (same time: opened first,
/// then actions, duty change, deadline: an alert due at a handover
/// instant escalates in the hands of the incoming center).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Step {
    /// The alert's severity became this (first, so at one time it applies before the rest).
    Severity(Severity),
    Opened {
        duty: Option<Shared<DutyStatus>>,
        sla: SlaSpec,
    },
    Action(DeskAction, Option<Shared<DutyStatus>>),
    Duty(Shared<DutyStatus>),
    Deadline(Option<Shared<DutyStatus>>),
}

/// The per-alert inputs of the fold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Fact {
    /// The alert is present with this severity (current, not kept).
    Content(Severity),
    /// Something happened at a logical time (kept once made). Shared: arrangements copy
    /// their values at every merge, and a step (with the duty it was judged by) is made
    /// once and held by several of them.
    Step(Time, Shared<Step>),
}

/// What the fold of one alert yields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Folded {
    Routing(Shared<AlertRouting>),
    /// Handed over at a time, from a center to a center.
    Handed(Shared<(Time, String, String, HandedOverAlert)>),
}

/// Per-handover inputs of the digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum DigestPart {
    Marker,
    Alert(HandedOverAlert),
    Accept(Time, String),
}

/// The records of `c`, each with the logical time it was added at: every time a record's
/// count rises, `(record, time)` is made; a later retraction does not undo it. A made
/// record is dropped `horizon_ms` of logical time later: a fact about an alert outlives
/// no alert (see [`routing`]), so the routing state is bounded by the alerts' life.
fn made<'s, D>(c: VecCollection<'s, Time, D>, horizon_ms: u64) -> VecCollection<'s, Time, (D, Time)>
where
    D: differential_dataflow::ExchangeData + std::hash::Hash,
{
    c.inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((D, Time), Time, isize)>>, _, _, _>(
            Exchange::new(|(d, _, _): &(D, Time, isize)| d.hashed()),
            "Made",
            move |cap, _info| {
                let mut cap = Some(cap);
                let mut pending: BTreeMap<Time, Vec<(D, isize)>> = BTreeMap::new();
                let mut forget: BTreeMap<Time, Vec<(D, Time)>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|_time, data| {
                        for (d, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().push((d, diff));
                        }
                    });
                    let bound = crate::time_order::bound(&[&frontier.frontier()]);
                    loop {
                        let next = [pending.keys().next(), forget.keys().next()]
                            .into_iter()
                            .flatten()
                            .copied()
                            .min();
                        let Some(t) = next.filter(|t| bound.is_none_or(|b| *t < b)) else {
                            break;
                        };
                        let Some(cap) = cap.as_ref() else { break };
                        let at = cap.delayed(&t);
                        let mut session = output.session(&at);
                        if let Some(mut updates) = pending.remove(&t) {
                            updates.sort();
                            crate::history::consolidate(&mut updates);
                            for (d, diff) in updates {
                                if diff > 0 {
                                    session.give(((d.clone(), t), t, 1));
                                    forget
                                        .entry(t.saturating_add(horizon_ms).max(t + 1))
                                        .or_default()
                                        .push((d, t));
                                }
                            }
                        }
                        for (d, made_at) in forget.remove(&t).unwrap_or_default() {
                            session.give(((d, made_at), t, -1));
                        }
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}

/// The duty in force paired with every present alert `(id, opened)`, at each time the
/// pair starts to hold: when the duty changes (every present alert) or when an alert
/// becomes present (that alert). Only the starts are emitted (`made` keeps each once).
///
/// This is what a join of the two on a unit key would give, without its cost: a join
/// pairs each duty change with every alert its trace has ever held at uncompacted times,
/// so a long quiet gap (thousands of handovers in one frontier step) cost work and
/// memory in the product of the two. Here a handover costs one pair per alert present,
/// and an empty desk costs nothing per handover. Alerts stay on their worker; the duty
/// (one record at a time) is broadcast.
fn duty_while_present<'s>(
    present: VecCollection<'s, Time, (AlertKey, Time)>,
    duty: VecCollection<'s, Time, Shared<DutyStatus>>,
) -> VecCollection<'s, Time, (AlertKey, Time, Shared<DutyStatus>)> {
    let duty = duty.inner.broadcast();
    present
        .inner
        .binary_frontier::<_, CapacityContainerBuilder<Vec<((AlertKey, Time, Shared<DutyStatus>), Time, isize)>>, _, _, _, _>(
            duty,
            Exchange::new(|((id, _), _, _): &((AlertKey, Time), Time, isize)| id.hashed()),
            Pipeline,
            "DutyWhilePresent",
            |cap, _info| {
                let mut cap = Some(cap);
                let mut pending: BTreeMap<Time, DutyPending> = BTreeMap::new();
                let mut alerts: BTreeMap<(AlertKey, Time), isize> = BTreeMap::new();
                let mut duties: BTreeMap<Shared<DutyStatus>, isize> = BTreeMap::new();
                move |(input, present_frontier), (duty_input, duty_frontier), output| {
                    input.for_each(|_time, data| {
                        for (a, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().alerts.push((a, diff));
                        }
                    });
                    duty_input.for_each(|_time, data| {
                        for (d, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().duty.push((d, diff));
                        }
                    });
                    let bound = crate::time_order::bound(&[&present_frontier.frontier(), &duty_frontier.frontier()]);
                    while let Some((&t, _)) = pending.first_key_value() {
                        if bound.is_some_and(|b| t >= b) {
                            break;
                        }
                        let Some((t, p)) = pending.pop_first() else {
                            break;
                        };
                        let before = duties.iter().find(|(_, n)| **n > 0).map(|(d, _)| d.clone());
                        for (d, diff) in p.duty {
                            let n = duties.entry(d.clone()).or_default();
                            *n += diff;
                            if *n == 0 {
                                duties.remove(&d);
                            }
                        }
                        let mut arrived = Vec::new();
                        for (a, diff) in p.alerts {
                            let n = alerts.entry(a.clone()).or_default();
                            let was = *n > 0;
                            *n += diff;
                            if *n == 0 {
                                alerts.remove(&a);
                            } else if !was && *n > 0 {
                                arrived.push(a);
                            }
                        }
                        let now = duties.iter().find(|(_, n)| **n > 0).map(|(d, _)| d.clone());
                        let (Some(d), Some(cap)) = (now.as_ref(), cap.as_ref()) else {
                            continue;
                        };
                        let at = cap.delayed(&t);
                        let mut session = output.session(&at);
                        if before.as_ref() != Some(d) {
                            for ((id, opened), _) in alerts.iter().filter(|(_, n)| **n > 0) {
                                session.give(((id.clone(), *opened, d.clone()), t, 1));
                            }
                        } else {
                            arrived.sort();
                            arrived.dedup();
                            for (id, opened) in arrived {
                                if alerts.get(&(id.clone(), opened)).is_some_and(|n| *n > 0) {
                                    session.give(((id, opened, d.clone()), t, 1));
                                }
                            }
                        }
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}

/// The inputs of [`duty_while_present`] at one logical time.
#[derive(Default)]
struct DutyPending {
    alerts: Vec<((AlertKey, Time), isize)>,
    duty: Vec<(Shared<DutyStatus>, isize)>,
}

/// Judges each probe `(alert_id, time, probe)` with the roster in force at its time
/// (the earliest roster, for probes older than every roster).
fn judge<'s>(
    probes: VecCollection<'s, Time, (AlertKey, Time, Probe)>,
    versions: VecCollection<'s, Time, (RosterSpec, Time)>,
    horizon_ms: u64,
) -> VecCollection<'s, Time, Judged> {
    // The versions (one record at a time) go to every worker; probes stay with their
    // alert's worker. A probe is judged once, when it is made, against the version in
    // force then (before every roster: when the first one arrives), and the judgement is
    // dropped `horizon_ms` later, like every fact made (see [`made`]). This is the join of
    // probes with versions on a unit key, kept once made and reduced to the version in
    // force, without pairing every probe with a copy of the roster on one worker.
    let versions = versions.inner.broadcast();
    probes
        .inner
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(Judged, Time, isize)>>, _, _, _, _>(
            versions,
            Exchange::new(
                |((id, _, _), _, _): &((AlertKey, Time, Probe), Time, isize)| id.hashed(),
            ),
            Pipeline,
            "JudgeAtRoster",
            move |cap, _info| {
                let mut cap = Some(cap);
                let mut pending: BTreeMap<Time, JudgePending> = BTreeMap::new();
                let mut forget: BTreeMap<Time, Vec<Judged>> = BTreeMap::new();
                let mut present: BTreeMap<(RosterSpec, Time), isize> = BTreeMap::new();
                let mut in_force: Option<InForce> = None;
                let mut parked: Vec<(AlertKey, Time, Probe)> = Vec::new();
                move |(input, probe_frontier), (version_input, version_frontier), output| {
                    input.for_each(|_time, data| {
                        for (p, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().probes.push((p, diff));
                        }
                    });
                    version_input.for_each(|_time, data| {
                        for (v, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().versions.push((v, diff));
                        }
                    });
                    let bound = crate::time_order::bound(&[
                        &probe_frontier.frontier(),
                        &version_frontier.frontier(),
                    ]);
                    loop {
                        let next = [pending.keys().next(), forget.keys().next()]
                            .into_iter()
                            .flatten()
                            .copied()
                            .min();
                        let Some(t) = next.filter(|t| bound.is_none_or(|b| *t < b)) else {
                            break;
                        };
                        let Some(cap) = cap.as_ref() else { break };
                        let at = cap.delayed(&t);
                        let mut session = output.session(&at);
                        for judged in forget.remove(&t).unwrap_or_default() {
                            session.give((judged, t, -1));
                        }
                        let Some(mut p) = pending.remove(&t) else {
                            continue;
                        };
                        for (v, diff) in p.versions {
                            let n = present.entry(v.clone()).or_default();
                            *n += diff;
                            if *n == 0 {
                                present.remove(&v);
                            }
                        }
                        // The latest version in force by `t`, else the earliest (for probes
                        // older than every roster).
                        let chosen = present
                            .iter()
                            .filter(|(v, n)| **n > 0 && v.1 <= t)
                            .max_by_key(|(v, _)| v.1)
                            .or_else(|| {
                                present
                                    .iter()
                                    .filter(|(_, n)| **n > 0)
                                    .min_by_key(|(v, _)| v.1)
                            })
                            .map(|(v, _)| v);
                        if chosen != in_force.as_ref().map(|f| &f.version) {
                            in_force = chosen.map(|v| InForce {
                                roster: Roster::compile(&v.0).ok(),
                                version: v.clone(),
                            });
                        }
                        p.probes.sort();
                        crate::history::consolidate(&mut p.probes);
                        for (probe, diff) in p.probes {
                            if diff > 0 {
                                parked.push(probe);
                            } else if let Some(i) = parked.iter().position(|q| *q == probe) {
                                // Gone before any roster judged it.
                                parked.swap_remove(i);
                            }
                        }
                        let Some(force) = in_force.as_ref() else {
                            continue;
                        };
                        let drop_at = t.saturating_add(horizon_ms).max(t + 1);
                        for probe in parked.drain(..) {
                            let judged = (probe.clone(), force.judge(probe.1));
                            session.give((judged.clone(), t, 1));
                            forget.entry(drop_at).or_default().push(judged);
                        }
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}

/// A probe with the duty and SLA it was judged by.
type Judged = (
    (AlertKey, Time, Probe),
    (Option<Shared<DutyStatus>>, SlaSpec),
);

/// The inputs of [`judge`] at one logical time.
#[derive(Default)]
struct JudgePending {
    probes: Vec<((AlertKey, Time, Probe), isize)>,
    versions: Vec<((RosterSpec, Time), isize)>,
}

/// The roster version judging probes, compiled once.
struct InForce {
    version: (RosterSpec, Time),
    roster: Option<Roster>,
}

impl InForce {
    fn judge(&self, te: Time) -> (Option<Shared<DutyStatus>>, SlaSpec) {
        match &self.roster {
            Some(roster) => (duty_at(roster, te).map(Shared::new), roster.sla().clone()),
            None => (None, self.version.0.sla.clone()),
        }
    }
}

/// Whether the officer's center may take `action` at `te` given the duty then.
fn verdict(action: &DeskAction, te: Time, duty: Option<&DutyStatus>) -> Result<(), String> {
    let Some(duty) = duty else {
        return Err("no center is on duty: no roster is loaded".into());
    };
    match action.action {
        ActionKind::Escalate => Ok(()),
        ActionKind::AcceptHandover if action.center == duty.center => Ok(()),
        ActionKind::AcceptHandover => Err(format!(
            "only the center on duty ({}) accepts the handover, not {}",
            duty.center, action.center
        )),
        _ if action.center == duty.center => Ok(()),
        _ if duty.previous.as_deref() == Some(action.center.as_str())
            && instant(te) < duty.overlap_until =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{} does not own alert {}: {} has held the watch since {}",
            action.center, action.alert_id, duty.center, duty.since
        )),
    }
}

/// One level up (critical stays critical).
fn raised(s: Severity) -> Severity {
    match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

/// The acknowledgement deadline of an alert of `severity` opened at `opened` (logical ms).
fn deadline(
    severity: Severity,
    opened: Time,
    duty: Option<&DutyStatus>,
    sla: &SlaSpec,
) -> Option<Time> {
    let minutes = match severity {
        Severity::Critical => sla.critical_minutes,
        Severity::High => sla.high_minutes,
        Severity::Medium => sla.medium_minutes,
        Severity::Low => match sla.low_minutes {
            Some(m) => m,
            None => {
                let end = duty?.next_handover?;
                return Some(logical(end.as_millisecond()));
            }
        },
    };
    Some(opened.saturating_add(u64::from(minutes) * 60_000))
}

/// Routing over `alerts`, `actions` and the `roster` collection (see the module doc).
pub fn routing<'s, A>(
    alerts: VecCollection<'s, Time, A>,
    actions: VecCollection<'s, Time, DeskAction>,
    roster: VecCollection<'s, Time, RosterSpec>,
    horizon_ms: u64,
) -> RoutingViews<'s>
where
    A: differential_dataflow::Data + std::borrow::Borrow<Alert>,
{
    let versions = roster_versions(roster);
    let duty = duty_clock(versions.clone());

    let content = alerts.map(|a| {
        let a: &Alert = a.borrow();
        (AlertKey::of(&a.id), a.severity)
    });
    // The content arranged once, for the ids present and for the deadlines; the ids and
    // the openings stay arranged for the join that pairs them (each arrangement costs a
    // trace, its merges and work at every time it changes).
    let by_id = content
        .clone()
        .arrange_by_key_named("Arrange: AlertContent");
    // The ids present: `distinct` over the content's keys (a key stays while its count is
    // not zero), on the content's arrangement.
    let ids = by_id
        .clone()
        .reduce_abelian::<_, KeyBuilder<AlertKey, Time, isize>, KeySpine<AlertKey, Time, isize>, _, _>(
            "AlertIds",
            |_id, severities: &[(&Severity, isize)], out: &mut Vec<((), isize)>| {
                if severities.iter().map(|(_, n)| n).sum::<isize>() != 0 {
                    out.push(((), 1));
                }
            },
            |vec, id, updates| {
                vec.clear();
                vec.extend(updates.drain(..).map(|(v, t, r)| ((id.clone(), v), t, r)));
            },
        );
    // First appearance of each id, kept.
    let opened = made(ids.clone().as_collection(|id, _| id.clone()), horizon_ms)
        .arrange_by_key_named("Arrange: AlertOpened")
        .reduce_abelian::<_, ValBuilder<AlertKey, Time, Time, isize>, ValSpine<AlertKey, Time, Time, isize>, _, _>(
            "AlertOpened",
            |_id, times: &[(&Time, isize)], out: &mut Vec<(Time, isize)>| {
                if let Some((t, _)) = times.iter().min() {
                    out.push((**t, 1));
                }
            },
            |vec, id, updates| {
                vec.clear();
                vec.extend(updates.drain(..).map(|(v, t, r)| ((id.clone(), v), t, r)));
            },
        );

    let action_probes =
        made(actions, horizon_ms).map(|(a, t)| (AlertKey::of(&a.alert_id), t, Probe::Action(a)));
    let open_probes = opened
        .clone()
        .as_collection(|id, t| (id.clone(), *t, Probe::Opened));
    let judged = judge(
        open_probes.concat(action_probes),
        versions.clone(),
        horizon_ms,
    );

    let judged_opened = judged
        .clone()
        .flat_map(|((id, te, p), (duty, sla))| match p {
            Probe::Opened => Some((id, (te, duty, sla))),
            _ => None,
        });
    let judged_actions = judged.flat_map(|((_, te, p), (duty, _))| match p {
        Probe::Action(a) => Some((a, te, duty)),
        _ => None,
    });
    let verdicts = judged_actions.map(|(a, te, duty)| {
        let v = verdict(&a, te, duty.as_deref());
        (a, te, duty, v)
    });
    let rejected = verdicts.clone().flat_map(|(action, te, duty, v)| {
        v.err().map(|reason| RejectedAction {
            action,
            at: instant(te),
            code: ErrorCode::NotOwner,
            reason,
            owner: duty.map(|d| d.center.clone()),
        })
    });
    let accepted = verdicts.flat_map(|(a, te, duty, v)| v.ok().map(|()| (a, te, duty)));

    // Deadlines follow the current severity; each passes at its own logical time.
    let due = judged_opened
        .clone()
        .arrange_by_key_named("Arrange: AlertJudged")
        .join_core(by_id, |id, (te, duty, sla), sev| {
            deadline(*sev, *te, duty.as_deref(), sla).map(|d| (id.clone(), d))
        });
    let ticks = due
        .inner
        .map(|((id, d), t, r)| ((id, d), t.max(d), r))
        .as_collection();
    let deadline_steps = judge(
        made(ticks, horizon_ms).map(|((id, _), t)| (id, t, Probe::Deadline)),
        versions,
        horizon_ms,
    )
    .map(|((id, te, _), (duty, _))| (id, Fact::Step(te, Shared::new(Step::Deadline(duty)))));

    // Every change of duty while an alert is present, after it opened.
    let present = opened.join_core(ids, |id, t, _| Some((id.clone(), *t)));
    let duty_steps = made(
        duty_while_present(present, duty.clone().map(Shared::new)),
        horizon_ms,
    )
    .filter(|((_, opened, _), t)| t > opened)
    .map(|((id, _, d), t)| (id, Fact::Step(t, Shared::new(Step::Duty(d)))));

    let facts = content
        .clone()
        .map(|(id, sev)| (id, Fact::Content(sev)))
        .concat(judged_opened.map(|(id, (te, duty, sla))| {
            (id, Fact::Step(te, Shared::new(Step::Opened { duty, sla })))
        }))
        .concat(accepted.clone().flat_map(|(a, te, duty)| {
            (!matches!(a.action, ActionKind::AcceptHandover)).then(|| {
                (
                    AlertKey::of(&a.alert_id),
                    Fact::Step(te, Shared::new(Step::Action(a, duty))),
                )
            })
        }))
        .concat(deadline_steps)
        .concat(duty_steps)
        // Severity as it stood at each time, so a handover digest keeps the severity the
        // alert had when it was handed over (digests are frozen: a later change of one
        // alert must not rewrite a digest of thousands).
        .concat(
            made(content.clone(), horizon_ms)
                .map(|((id, sev), t)| (id, Fact::Step(t, Shared::new(Step::Severity(sev))))),
        );

    let folded = facts
        .reduce_named(
            "AlertRoutingFold",
            |id, facts: &[(&Fact, isize)], out: &mut Vec<(Folded, isize)>| {
                for f in fold(id, facts) {
                    out.push((f, 1));
                }
            },
        )
        .map(|(_, f)| f);

    let routed = folded.clone().flat_map(|f| match f {
        Folded::Routing(r) => Some(r.into_inner()),
        Folded::Handed(..) => None,
    });
    let escalations = routed.clone().flat_map(|r| r.escalation);

    // Digests: one per handover instant, with the alerts handed over and the acceptance.
    let markers = made(duty.clone(), horizon_ms)
        .filter(|(d, t)| d.previous.is_some() && logical(d.since.as_millisecond()) == *t)
        .map(|(d, t)| {
            (
                (t, d.previous.clone().unwrap_or_default(), d.center),
                DigestPart::Marker,
            )
        });
    let handed = folded.flat_map(|f| match f {
        Folded::Handed(h) => {
            let (t, from, to, a) = h.into_inner();
            Some(((t, from, to), DigestPart::Alert(a)))
        }
        Folded::Routing(_) => None,
    });
    let accepts = accepted.flat_map(|(a, te, duty)| {
        let duty = duty?;
        let ActionKind::AcceptHandover = a.action else {
            return None;
        };
        let since = logical(duty.since.as_millisecond());
        Some((
            (since, duty.previous.clone()?, duty.center.clone()),
            DigestPart::Accept(te, a.officer_id),
        ))
    });
    let handovers = markers
        .concat(handed)
        .concat(accepts)
        .reduce_named(
            "HandoverDigest",
            |(at, from, to),
             parts: &[(&DigestPart, isize)],
             out: &mut Vec<(HandoverDigest, isize)>| {
                if let Some(d) = digest(*at, from, to, parts) {
                    out.push((d, 1));
                }
            },
        )
        .map(|(_, d)| d);

    RoutingViews {
        duty,
        alerts: routed,
        escalations,
        handovers,
        rejected,
    }
}

/// The routing of one alert from its facts (pure; the definition the tests check).
fn fold(id: &AlertKey, facts: &[(&Fact, isize)]) -> Vec<Folded> {
    let Some(severity) = facts.iter().find_map(|(f, _)| match f {
        Fact::Content(s) => Some(*s),
        Fact::Step(..) => None,
    }) else {
        return Vec::new(); // Retracted: no routing.
    };
    let mut steps: Vec<(Time, &Step)> = facts
        .iter()
        .filter_map(|(f, _)| match f {
            Fact::Step(t, s) => Some((*t, &**s)),
            Fact::Content(_) => None,
        })
        .collect();
    steps.sort();
    let Some((opened_at, duty_at_open, sla)) = steps.iter().find_map(|(t, s)| match s {
        Step::Opened { duty, sla } => Some((*t, duty.as_deref(), sla)),
        _ => None,
    }) else {
        return Vec::new(); // Not judged yet.
    };
    let mut out = Vec::new();
    let opened_by = duty_at_open.map(|d| d.center.clone()).unwrap_or_default();
    let mut r = AlertRouting {
        alert_id: id.to_string(),
        owner: opened_by.clone(),
        opened_by,
        opened_at: instant(opened_at),
        state: AlertState::Open,
        severity,
        original_severity: severity,
        ack_deadline: deadline(severity, opened_at, duty_at_open, sla).map(instant),
        acknowledged_by: None,
        assigned_to: None,
        notes: Vec::new(),
        escalation: None,
    };
    // The severity as it stood at the step being folded (before any escalation).
    let mut severity_then = severity;
    for (t, step) in steps {
        if let Step::Severity(s) = step {
            severity_then = *s;
            continue;
        }
        if t < opened_at || r.state.is_closed() {
            continue;
        }
        let escalate = |r: &mut AlertRouting, reason, duty: Option<&DutyStatus>| {
            if r.escalation.is_some() {
                return;
            }
            let to = raised(r.severity);
            r.escalation = Some(Escalation {
                alert_id: r.alert_id.clone(),
                at: instant(t),
                reason,
                from_severity: r.severity,
                to_severity: to,
                owner: r.owner.clone(),
                notified: duty.and_then(|d| d.next_center.clone()),
            });
            r.severity = to;
        };
        match step {
            Step::Opened { .. } | Step::Severity(_) => {}
            Step::Action(a, duty) => match &a.action {
                ActionKind::Acknowledge => {
                    if r.state == AlertState::Open {
                        r.state = AlertState::Acknowledged;
                        r.acknowledged_by = Some(a.officer_id.clone());
                    }
                }
                ActionKind::Assign { officer_id } => r.assigned_to = Some(officer_id.clone()),
                ActionKind::Note { text } => r.notes.push(DeskNote {
                    officer_id: a.officer_id.clone(),
                    center: a.center.clone(),
                    text: text.clone(),
                    at: instant(t),
                }),
                ActionKind::Escalate => {
                    let reason = EscalationReason::Officer {
                        officer_id: a.officer_id.clone(),
                        center: a.center.clone(),
                    };
                    escalate(&mut r, reason, duty.as_deref());
                }
                ActionKind::Resolve => r.state = AlertState::Resolved,
                ActionKind::FalsePositive => r.state = AlertState::FalsePositive,
                ActionKind::AcceptHandover => {}
            },
            Step::Deadline(duty) => {
                if r.state == AlertState::Open {
                    escalate(&mut r, EscalationReason::Deadline, duty.as_deref());
                }
            }
            Step::Duty(d) => {
                if d.center != r.owner {
                    if !r.owner.is_empty() {
                        out.push(Folded::Handed(Shared::new((
                            t,
                            r.owner.clone(),
                            d.center.clone(),
                            HandedOverAlert {
                                alert_id: r.alert_id.clone(),
                                severity: if r.escalation.is_some() {
                                    raised(severity_then)
                                } else {
                                    severity_then
                                },
                                state: r.state,
                                opened_at: r.opened_at,
                                assigned_to: r.assigned_to.clone(),
                                notes: r.notes.clone(),
                            },
                        ))));
                    }
                    r.owner = d.center.clone();
                }
            }
        }
    }
    out.push(Folded::Routing(Shared::new(r)));
    out
}

/// The digest of the handover at `at` from `from` to `to` (pure).
fn digest(
    at: Time,
    from: &str,
    to: &str,
    parts: &[(&DigestPart, isize)],
) -> Option<HandoverDigest> {
    let mut d = HandoverDigest {
        at: instant(at),
        from: from.to_string(),
        to: to.to_string(),
        counts: SeverityCounts::default(),
        oldest_unacknowledged: None,
        alerts: Vec::new(),
        accepted: None,
    };
    let mut marked = false;
    let mut accepts: Vec<(Time, &str)> = Vec::new();
    for (p, _) in parts {
        match p {
            DigestPart::Marker => marked = true,
            DigestPart::Alert(a) => d.alerts.push(a.clone()),
            DigestPart::Accept(t, officer) => accepts.push((*t, officer)),
        }
    }
    if !marked && d.alerts.is_empty() {
        return None;
    }
    d.alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    for a in &d.alerts {
        d.counts.add(a.severity);
    }
    d.oldest_unacknowledged = d
        .alerts
        .iter()
        .filter(|a| a.state == AlertState::Open)
        .min_by(|a, b| (a.opened_at, &a.alert_id).cmp(&(b.opened_at, &b.alert_id)))
        .map(|a| a.alert_id.clone());
    d.accepted = accepts.into_iter().min().map(|(t, officer)| Acceptance {
        officer_id: officer.to_string(),
        at: instant(t),
    });
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_key_gives_back_the_id_it_was_made_of() {
        let hash = crate::alerts::alert_id("indicator-match", "ind-1", 0);
        assert!(matches!(AlertKey::of(&hash), AlertKey::Hash(..)));
        for id in [
            hash.as_str(),
            "0000000000000000000000000000000f",
            // Not as the hash is written: kept as text, so each still reads back as itself.
            "0000000000000000000000000000000F",
            "000000000000000000000000000000+f",
            "00000000000000000000000000000000f",
            "a1",
            "",
        ] {
            assert_eq!(AlertKey::of(id).to_string(), id);
        }
        assert_ne!(
            AlertKey::of("0000000000000000000000000000000f"),
            AlertKey::of("0000000000000000000000000000000F")
        );
    }
}
