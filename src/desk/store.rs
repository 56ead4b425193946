//! The desk's state: the dataflow's outputs at the last closed logical time, and a
//! bounded ring of what changed at each closed time (the change stream's memory).
//!
//! Fed in order, once per closed frontier, with the alert changes and routing changes
//! of every time before it ([`DeskStore::closed`]); nothing else changes it but the
//! reports of actions entering the dataflow. Semantics:
//!
//! - An alert is open from its `opened` change until it is retracted, expires, or
//!   routing closes it (resolved, false positive). A closed alert leaves the queue;
//!   it is kept (for its detail, and so that its content updates do not reopen it)
//!   until the dataflow retracts or expires it, then forgotten: the store holds no
//!   more than the dataflow's own alert state.
//! - History: opened, handed over and escalated from routing; officers' actions from
//!   the moment they enter the dataflow. An action is rejected when routing reports
//!   its `not_owner` rejection; accepted once the closed frontier has passed the bound
//!   of its logical time without a rejection (routing judges every action at its own
//!   time, so by then the verdict is final).
//! - Every closed time with a change becomes one [`ClosedEntry`]; the last
//!   [`Limits::ring_entries`] are kept so a client can resume after a reconnect.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use schemas::desk::{ActionOutcome, ActionUpdate, HistoryEntry, HistoryEvent, Removal, Removed};
use schemas::routing::{AlertRouting, AlertState, DutyStatus, HandoverDigest, RoutingChange};
use schemas::{AlertChange, ChangeKind, DeskAction};

use super::view::AlertVersion;

/// Bounds of the store.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Closed times kept for resuming clients.
    pub ring_entries: usize,
    /// Queue lines kept over all those entries.
    pub ring_upserts: usize,
    /// History entries kept per alert (the latest).
    pub history: usize,
    /// Handover digests kept (the latest).
    pub handovers: usize,
    /// Actions kept for `GET /api/actions/{id}` (the latest).
    pub actions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ring_entries: 4096,
            ring_upserts: 200_000,
            history: 100,
            handovers: 8,
            actions: 10_000,
        }
    }
}

/// An alert the desk follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Its current version.
    pub current: Arc<AlertVersion>,
    /// Its routing, once routed.
    pub routing: Option<Arc<AlertRouting>>,
    /// The closed time it opened at (ms).
    pub opened_ms: u64,
    /// What happened to it, oldest first (bounded).
    pub history: VecDeque<HistoryEntry>,
}

/// An alert's queue line as of a closed time.
#[derive(Debug, Clone)]
pub struct Upsert {
    /// Its version then.
    pub version: Arc<AlertVersion>,
    /// Its routing then.
    pub routing: Option<Arc<AlertRouting>>,
    /// When it opened (ms).
    pub opened_ms: u64,
}

/// What changed at one closed time.
#[derive(Debug, Clone, Default)]
pub struct ClosedEntry {
    /// The closed time (ms).
    pub time_ms: u64,
    /// Alerts opened or changed.
    pub upserts: Vec<Upsert>,
    /// Alerts that left the queue.
    pub removed: Vec<Removed>,
    /// The new duty status.
    pub duty: Option<DutyStatus>,
    /// Handover digests that appeared or changed.
    pub handovers: Vec<HandoverDigest>,
    /// Actions judged.
    pub actions: Vec<ActionUpdate>,
}

impl ClosedEntry {
    fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.removed.is_empty()
            && self.duty.is_none()
            && self.handovers.is_empty()
            && self.actions.is_empty()
    }
}

/// One action the desk knows of.
#[derive(Debug, Clone)]
pub struct ActionTrack {
    /// The action.
    pub action: DeskAction,
    /// How it was judged.
    pub outcome: ActionOutcome,
    /// The logical time it entered the dataflow at (ms), once routed.
    pub time_ms: Option<u64>,
    /// No worker took it later than this (ms), once routed.
    pub bound_ms: Option<u64>,
    /// For a rejection: the center on duty then, as routing reported it.
    pub owner: Option<String>,
}

/// The desk's state.
#[derive(Debug)]
pub struct DeskStore {
    centers: usize,
    limits: Limits,
    open: HashMap<String, Tracked>,
    closed: HashMap<String, Tracked>,
    duty: Option<DutyStatus>,
    handovers: Vec<HandoverDigest>,
    actions: HashMap<String, ActionTrack>,
    action_order: VecDeque<String>,
    ring: VecDeque<Arc<ClosedEntry>>,
    ring_upserts: usize,
    evicted: bool,
    frontier: u64,
    last_time: u64,
    rejected_total: u64,
}

fn instant(ms: u64) -> Timestamp {
    Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

fn push_history(t: &mut Tracked, entry: HistoryEntry, limit: usize) {
    t.history.push_back(entry);
    while t.history.len() > limit {
        t.history.pop_front();
    }
}

/// Sets the outcome of the history entry of `action_id`, or adds one.
fn record_action(
    t: &mut Tracked,
    track: &ActionTrack,
    at: Timestamp,
    limit: usize,
) -> HistoryEntry {
    let entry = HistoryEntry {
        at,
        event: HistoryEvent::Action {
            action_id: track.action.action_id.clone(),
            officer_id: track.action.officer_id.clone(),
            center: track.action.center.clone(),
            action: track.action.action.clone(),
            outcome: track.outcome.clone(),
        },
    };
    let existing = t.history.iter_mut().find(|h| {
        matches!(&h.event, HistoryEvent::Action { action_id, .. } if *action_id == track.action.action_id)
    });
    match existing {
        Some(h) => *h = entry.clone(),
        None => push_history(t, entry.clone(), limit),
    }
    entry
}

impl DeskStore {
    /// An empty store for `centers` centers.
    pub fn new(centers: usize, limits: Limits) -> Self {
        Self {
            centers,
            limits,
            open: HashMap::new(),
            closed: HashMap::new(),
            duty: None,
            handovers: Vec::new(),
            actions: HashMap::new(),
            action_order: VecDeque::new(),
            ring: VecDeque::new(),
            ring_upserts: 0,
            evicted: false,
            frontier: 0,
            last_time: 0,
            rejected_total: 0,
        }
    }

    /// Open alerts.
    pub fn open(&self) -> impl Iterator<Item = &Tracked> {
        self.open.values()
    }

    /// Number of open alerts.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// An alert by id, and whether it is open (closed alerts are kept until they expire).
    pub fn get(&self, id: &str) -> Option<(&Tracked, bool)> {
        self.open
            .get(id)
            .map(|t| (t, true))
            .or_else(|| self.closed.get(id).map(|t| (t, false)))
    }

    /// The center on duty.
    pub fn duty(&self) -> Option<&DutyStatus> {
        self.duty.as_ref()
    }

    /// The latest handover digests, newest first.
    pub fn handovers(&self) -> &[HandoverDigest] {
        &self.handovers
    }

    /// An action by id.
    pub fn action(&self, id: &str) -> Option<&ActionTrack> {
        self.actions.get(id)
    }

    /// The closed frontier: every time before it has been applied.
    pub fn frontier(&self) -> u64 {
        self.frontier
    }

    /// The time of the last change (the id of a snapshot now; 0 before any).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// Actions rejected so far.
    pub fn rejected_total(&self) -> u64 {
        self.rejected_total
    }

    /// The entries after `last_id`, if the ring still holds every one of them: `last_id`
    /// must be a time this store has given (or 0 while nothing was evicted).
    pub fn entries_after(&self, last_id: u64) -> Option<Vec<Arc<ClosedEntry>>> {
        if last_id == self.last_time {
            return Some(Vec::new());
        }
        let from = if last_id == 0 && !self.evicted {
            0
        } else {
            self.ring.iter().position(|e| e.time_ms == last_id)? + 1
        };
        Some(self.ring.iter().skip(from).cloned().collect())
    }

    fn remember_action(&mut self, track: ActionTrack) {
        let id = track.action.action_id.clone();
        if self.actions.insert(id.clone(), track).is_none() {
            self.action_order.push_back(id);
        }
        while self.action_order.len() > self.limits.actions {
            if let Some(old) = self.action_order.pop_front() {
                self.actions.remove(&old);
            }
        }
    }

    fn tracked_mut(&mut self, id: &str) -> Option<&mut Tracked> {
        match self.open.get_mut(id) {
            Some(t) => Some(t),
            None => self.closed.get_mut(id),
        }
    }

    /// An officer submitted `action` through this desk: it shows as pending.
    pub fn submitted(&mut self, action: DeskAction) {
        if self.actions.contains_key(&action.action_id) {
            return;
        }
        let track = ActionTrack {
            outcome: ActionOutcome::Pending,
            time_ms: None,
            bound_ms: None,
            owner: None,
            action,
        };
        let limit = self.limits.history;
        if let Some(t) = self.tracked_mut(&track.action.alert_id) {
            record_action(t, &track, track.action.at, limit);
        }
        self.remember_action(track);
    }

    /// `action` entered the dataflow at logical time `time_ms`, no later than `bound_ms`
    /// on any worker (from any desk: every instance's actions are seen here).
    pub fn routed(&mut self, action: DeskAction, time_ms: u64, bound_ms: u64) {
        let limit = self.limits.history;
        let mut track = self
            .actions
            .get(&action.action_id)
            .cloned()
            .unwrap_or(ActionTrack {
                action,
                outcome: ActionOutcome::Pending,
                time_ms: None,
                bound_ms: None,
                owner: None,
            });
        if track.time_ms.is_none() {
            track.time_ms = Some(time_ms);
            track.bound_ms = Some(bound_ms);
        }
        if track.outcome == ActionOutcome::Pending
            && let Some(t) = self.tracked_mut(&track.action.alert_id)
        {
            record_action(t, &track, instant(time_ms), limit);
        }
        self.remember_action(track);
    }

    /// Applies every closed time before `frontier`: the routing changes and alert changes
    /// of each (in time order); returns the new ring entries, oldest first.
    pub fn closed(
        &mut self,
        frontier: u64,
        routing: &[(u64, Vec<RoutingChange>)],
        alerts: &[(u64, Vec<AlertChange>)],
    ) -> Vec<Arc<ClosedEntry>> {
        let mut times: BTreeMap<u64, (Vec<&AlertChange>, Vec<&RoutingChange>)> = BTreeMap::new();
        for (t, changes) in alerts {
            times.entry(*t).or_default().0.extend(changes);
        }
        for (t, changes) in routing {
            times.entry(*t).or_default().1.extend(changes);
        }
        let mut entries: Vec<ClosedEntry> = Vec::new();
        for (time, (alerts, routing)) in times {
            if time < self.frontier {
                tracing::warn!(
                    time,
                    frontier = self.frontier,
                    "desk: a change before the closed frontier is ignored"
                );
                continue;
            }
            let entry = self.apply(time, &alerts, &routing);
            if !entry.is_empty() {
                entries.push(entry);
            }
        }
        let accepted = self.accept_judged(frontier);
        if !accepted.is_empty() {
            let last = frontier.saturating_sub(1);
            match entries.last_mut() {
                Some(e) if e.time_ms == last => e.actions.extend(accepted),
                _ => entries.push(ClosedEntry {
                    time_ms: last,
                    actions: accepted,
                    ..ClosedEntry::default()
                }),
            }
        }
        self.frontier = self.frontier.max(frontier);
        let entries: Vec<Arc<ClosedEntry>> = entries.into_iter().map(Arc::new).collect();
        for e in &entries {
            self.last_time = e.time_ms;
            self.ring_upserts += e.upserts.len();
            self.ring.push_back(Arc::clone(e));
        }
        while self.ring.len() > self.limits.ring_entries
            || (self.ring_upserts > self.limits.ring_upserts && self.ring.len() > 1)
        {
            if let Some(old) = self.ring.pop_front() {
                self.ring_upserts -= old.upserts.len();
                self.evicted = true;
            }
        }
        entries
    }

    /// Pending actions whose bound the frontier has passed without a rejection: accepted.
    fn accept_judged(&mut self, frontier: u64) -> Vec<ActionUpdate> {
        let limit = self.limits.history;
        let judged: Vec<String> = self
            .actions
            .values()
            .filter(|a| {
                a.outcome == ActionOutcome::Pending && a.bound_ms.is_some_and(|b| b < frontier)
            })
            .map(|a| a.action.action_id.clone())
            .collect();
        let mut updates = Vec::new();
        for id in judged {
            let Some(mut track) = self.actions.remove(&id) else {
                continue;
            };
            track.outcome = ActionOutcome::Accepted;
            let at = instant(track.time_ms.unwrap_or(0));
            let entry = match self.tracked_mut(&track.action.alert_id) {
                Some(t) => record_action(t, &track, at, limit),
                None => HistoryEntry {
                    at,
                    event: HistoryEvent::Action {
                        action_id: id.clone(),
                        officer_id: track.action.officer_id.clone(),
                        center: track.action.center.clone(),
                        action: track.action.action.clone(),
                        outcome: ActionOutcome::Accepted,
                    },
                },
            };
            updates.push(ActionUpdate {
                alert_id: track.action.alert_id.clone(),
                entry,
            });
            self.actions.insert(id, track);
        }
        updates.sort_by(|a, b| (a.entry.at, &a.alert_id).cmp(&(b.entry.at, &b.alert_id)));
        updates
    }

    fn apply(
        &mut self,
        time: u64,
        alerts: &[&AlertChange],
        routing: &[&RoutingChange],
    ) -> ClosedEntry {
        let mut entry = ClosedEntry {
            time_ms: time,
            ..ClosedEntry::default()
        };
        let mut touched: HashSet<String> = HashSet::new();
        let mut opened: Vec<String> = Vec::new();
        let at = instant(time);

        for c in alerts {
            let id = &c.alert.id;
            match c.change {
                ChangeKind::Opened | ChangeKind::Updated => {
                    let v = Arc::new(AlertVersion::new(c.alert.clone(), c.version, self.centers));
                    if let Some(t) = self.closed.get_mut(id) {
                        // Routing closed it: new content does not reopen it.
                        t.current = v;
                    } else if let Some(t) = self.open.get_mut(id) {
                        t.current = v;
                        touched.insert(id.clone());
                    } else {
                        self.open.insert(
                            id.clone(),
                            Tracked {
                                current: v,
                                routing: None,
                                opened_ms: time,
                                history: VecDeque::new(),
                            },
                        );
                        opened.push(id.clone());
                        touched.insert(id.clone());
                    }
                }
                ChangeKind::Retracted | ChangeKind::Expired => {
                    let why = if c.change == ChangeKind::Retracted {
                        Removal::Retracted
                    } else {
                        Removal::Expired
                    };
                    self.closed.remove(id);
                    if self.open.remove(id).is_some() {
                        entry.removed.push(Removed {
                            id: id.clone(),
                            why,
                        });
                    }
                    touched.remove(id);
                    opened.retain(|o| o != id);
                }
            }
        }

        // Consolidate each view: what is added (net > 0) and what only goes away.
        let mut routed: BTreeMap<&AlertRouting, isize> = BTreeMap::new();
        let mut digests: BTreeMap<&HandoverDigest, isize> = BTreeMap::new();
        let mut duties: BTreeMap<&DutyStatus, isize> = BTreeMap::new();
        let mut rejections = Vec::new();
        for change in routing {
            match change {
                RoutingChange::Alert { diff, routing } => {
                    *routed.entry(routing).or_default() += diff
                }
                RoutingChange::Handover { diff, digest } => {
                    *digests.entry(digest).or_default() += diff
                }
                RoutingChange::Duty { diff, duty } => *duties.entry(duty).or_default() += diff,
                RoutingChange::Rejected { diff, action } if *diff > 0 => rejections.push(action),
                // Escalations are read from the alert's routing, which carries them.
                RoutingChange::Escalation { .. } | RoutingChange::Rejected { .. } => {}
            }
        }
        let added: HashMap<&str, &AlertRouting> = routed
            .iter()
            .filter(|(_, d)| **d > 0)
            .map(|(r, _)| (r.alert_id.as_str(), *r))
            .collect();
        for (r, d) in &routed {
            if *d < 0
                && !added.contains_key(r.alert_id.as_str())
                && let Some(t) = self.tracked_mut(&r.alert_id)
            {
                t.routing = None;
            }
        }
        let limit = self.limits.history;
        let mut added: Vec<&AlertRouting> = added.into_values().collect();
        added.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        for r in added {
            let id = r.alert_id.clone();
            let Some(t) = self.open.get_mut(&id) else {
                if let Some(t) = self.closed.get_mut(&id) {
                    t.routing = Some(Arc::new(r.clone()));
                }
                continue;
            };
            let old = t.routing.take();
            if let Some(old) = &old
                && !old.owner.is_empty()
                && old.owner != r.owner
            {
                push_history(
                    t,
                    HistoryEntry {
                        at,
                        event: HistoryEvent::HandedOver {
                            from: old.owner.clone(),
                            to: r.owner.clone(),
                        },
                    },
                    limit,
                );
            }
            if let Some(e) = &r.escalation
                && old.as_ref().is_none_or(|o| o.escalation.is_none())
            {
                push_history(
                    t,
                    HistoryEntry {
                        at: e.at,
                        event: HistoryEvent::Escalated {
                            reason: e.reason.clone(),
                            from: e.from_severity,
                            to: e.to_severity,
                            notified: e.notified.clone(),
                        },
                    },
                    limit,
                );
            }
            t.routing = Some(Arc::new(r.clone()));
            if r.state.is_closed() {
                let why = if r.state == AlertState::Resolved {
                    Removal::Resolved
                } else {
                    Removal::FalsePositive
                };
                if let Some(t) = self.open.remove(&id) {
                    self.closed.insert(id.clone(), t);
                }
                entry.removed.push(Removed {
                    id: id.clone(),
                    why,
                });
                touched.remove(&id);
            } else {
                touched.insert(id);
            }
        }
        for id in &opened {
            if let Some(t) = self.tracked_mut(id) {
                let center = t
                    .routing
                    .as_ref()
                    .map(|r| r.owner.clone())
                    .unwrap_or_default();
                t.history.push_front(HistoryEntry {
                    at,
                    event: HistoryEvent::Opened { center },
                });
            }
        }

        for (duty, d) in duties {
            if d > 0 {
                self.duty = Some(duty.clone());
                entry.duty = Some(duty.clone());
            }
        }
        let key = |h: &HandoverDigest| (h.at, h.from.clone(), h.to.clone());
        let added_digests: Vec<&HandoverDigest> = digests
            .iter()
            .filter(|(_, d)| **d > 0)
            .map(|(h, _)| *h)
            .collect();
        for (h, d) in &digests {
            if *d < 0 && !added_digests.iter().any(|a| key(a) == key(h)) {
                self.handovers.retain(|x| key(x) != key(h));
            }
        }
        for h in added_digests {
            self.handovers.retain(|x| key(x) != key(h));
            self.handovers.push(h.clone());
            entry.handovers.push(h.clone());
        }
        self.handovers.sort_by_key(|h| std::cmp::Reverse(h.at));
        self.handovers.truncate(self.limits.handovers);

        for rejected in rejections {
            self.rejected_total += 1;
            let id = rejected.action.action_id.clone();
            let mut track = self.actions.get(&id).cloned().unwrap_or(ActionTrack {
                action: rejected.action.clone(),
                outcome: ActionOutcome::Pending,
                time_ms: None,
                bound_ms: None,
                owner: None,
            });
            track.outcome = ActionOutcome::Rejected {
                code: rejected.code.as_str().to_string(),
                reason: rejected.reason.clone(),
            };
            track.time_ms.get_or_insert(ms(rejected.at));
            track.owner.clone_from(&rejected.owner);
            let history = match self.tracked_mut(&rejected.action.alert_id) {
                Some(t) => record_action(t, &track, rejected.at, limit),
                None => HistoryEntry {
                    at: rejected.at,
                    event: HistoryEvent::Action {
                        action_id: id.clone(),
                        officer_id: track.action.officer_id.clone(),
                        center: track.action.center.clone(),
                        action: track.action.action.clone(),
                        outcome: track.outcome.clone(),
                    },
                },
            };
            entry.actions.push(ActionUpdate {
                alert_id: rejected.action.alert_id.clone(),
                entry: history,
            });
            self.remember_action(track);
        }

        let mut touched: Vec<String> = touched.into_iter().collect();
        touched.sort();
        for id in touched {
            if let Some(t) = self.open.get(&id) {
                entry.upserts.push(Upsert {
                    version: Arc::clone(&t.current),
                    routing: t.routing.clone(),
                    opened_ms: t.opened_ms,
                });
            }
        }
        entry
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use schemas::desk::{ActionOutcome, HistoryEvent, Removal};
    use schemas::routing::{
        AlertRouting, AlertState, DutyStatus, Escalation, EscalationReason, RejectedAction,
        RoutingChange,
    };
    use schemas::{ActionKind, AlertChange, ChangeKind, ErrorCode, Severity};

    use super::*;
    use crate::desk::actions;
    use crate::desk::view::tests::alert;

    fn change(kind: ChangeKind, id: &str, version: u64) -> AlertChange {
        AlertChange {
            change: kind,
            version,
            alert: alert(id),
        }
    }

    fn routing(id: &str, owner: &str, state: AlertState) -> AlertRouting {
        AlertRouting {
            alert_id: id.into(),
            owner: owner.into(),
            opened_by: "Lyon".into(),
            opened_at: instant(100),
            state,
            severity: Severity::High,
            original_severity: Severity::High,
            ack_deadline: Some(instant(900_100)),
            acknowledged_by: None,
            assigned_to: None,
            notes: vec![],
            escalation: None,
        }
    }

    fn add(r: AlertRouting) -> RoutingChange {
        RoutingChange::Alert {
            diff: 1,
            routing: r,
        }
    }

    fn remove(r: AlertRouting) -> RoutingChange {
        RoutingChange::Alert {
            diff: -1,
            routing: r,
        }
    }

    fn duty(center: &str) -> RoutingChange {
        RoutingChange::Duty {
            diff: 1,
            duty: DutyStatus {
                center: center.into(),
                since: instant(0),
                previous: None,
                overlap_until: instant(0),
                next_handover: None,
                next_center: None,
            },
        }
    }

    fn store() -> DeskStore {
        DeskStore::new(3, Limits::default())
    }

    #[test]
    fn alerts_open_change_and_leave_the_queue_by_retraction_expiry_or_closing() {
        let mut s = store();
        let e = s.closed(
            101,
            &[(
                100,
                vec![duty("Lyon"), add(routing("a", "Lyon", AlertState::Open))],
            )],
            &[(
                100,
                vec![
                    change(ChangeKind::Opened, "a", 100),
                    change(ChangeKind::Opened, "b", 100),
                ],
            )],
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].time_ms, 100);
        assert_eq!(e[0].upserts.len(), 2);
        assert!(e[0].duty.is_some());
        let (a, open) = s.get("a").unwrap();
        assert!(open);
        assert_eq!(a.routing.as_ref().unwrap().owner, "Lyon");
        assert!(matches!(&a.history[0].event, HistoryEvent::Opened { center } if center == "Lyon"));

        // Resolved: leaves the queue, stays known; new content does not reopen it.
        let e = s.closed(
            201,
            &[(
                200,
                vec![
                    remove(routing("a", "Lyon", AlertState::Open)),
                    add(routing("a", "Lyon", AlertState::Resolved)),
                ],
            )],
            &[(200, vec![change(ChangeKind::Updated, "b", 200)])],
        );
        assert_eq!(
            e[0].removed,
            vec![Removed {
                id: "a".into(),
                why: Removal::Resolved
            }]
        );
        assert_eq!(e[0].upserts.len(), 1, "only b changed in the queue");
        assert_eq!(s.open_count(), 1);
        s.closed(
            301,
            &[],
            &[(300, vec![change(ChangeKind::Updated, "a", 300)])],
        );
        assert_eq!(s.open_count(), 1);
        assert!(!s.get("a").unwrap().1);

        // Expired and retracted alerts are forgotten.
        let e = s.closed(
            401,
            &[],
            &[(
                400,
                vec![
                    change(ChangeKind::Expired, "a", 400),
                    change(ChangeKind::Retracted, "b", 400),
                ],
            )],
        );
        assert_eq!(
            e[0].removed,
            vec![Removed {
                id: "b".into(),
                why: Removal::Retracted
            }]
        );
        assert!(s.get("a").is_none() && s.get("b").is_none());
        assert_eq!(s.open_count(), 0);
    }

    #[test]
    fn handovers_and_escalations_enter_the_history() {
        let mut s = store();
        s.closed(
            101,
            &[(100, vec![add(routing("a", "Lyon", AlertState::Open))])],
            &[(100, vec![change(ChangeKind::Opened, "a", 100)])],
        );
        let mut moved = routing("a", "Buenos Aires", AlertState::Open);
        moved.escalation = Some(Escalation {
            alert_id: "a".into(),
            at: instant(150),
            reason: EscalationReason::Deadline,
            from_severity: Severity::High,
            to_severity: Severity::Critical,
            owner: "Lyon".into(),
            notified: Some("Buenos Aires".into()),
        });
        s.closed(
            201,
            &[(
                200,
                vec![remove(routing("a", "Lyon", AlertState::Open)), add(moved)],
            )],
            &[],
        );
        let (a, _) = s.get("a").unwrap();
        let events: Vec<&HistoryEvent> = a.history.iter().map(|h| &h.event).collect();
        assert!(
            matches!(events[1], HistoryEvent::HandedOver { from, to } if from == "Lyon" && to == "Buenos Aires")
        );
        assert!(matches!(
            events[2],
            HistoryEvent::Escalated {
                to: Severity::Critical,
                ..
            }
        ));
    }

    #[test]
    fn an_action_is_accepted_once_the_frontier_passes_its_bound_without_a_rejection() {
        let mut s = store();
        s.closed(
            101,
            &[(100, vec![add(routing("a", "Lyon", AlertState::Open))])],
            &[(100, vec![change(ChangeKind::Opened, "a", 100)])],
        );
        let ack = actions::action("alice", "Lyon", "a", ActionKind::Acknowledge, instant(100));
        s.submitted(ack.clone());
        assert_eq!(
            s.action(&ack.action_id).unwrap().outcome,
            ActionOutcome::Pending
        );
        s.routed(ack.clone(), 120, 140);
        assert!(
            s.closed(140, &[], &[]).is_empty(),
            "time 140 may still change"
        );
        let e = s.closed(141, &[], &[]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].time_ms, 140);
        assert_eq!(e[0].actions.len(), 1);
        assert_eq!(
            s.action(&ack.action_id).unwrap().outcome,
            ActionOutcome::Accepted
        );
        let (a, _) = s.get("a").unwrap();
        let entry = a.history.back().unwrap();
        assert_eq!(entry.at, instant(120));
        assert!(
            matches!(&entry.event, HistoryEvent::Action { officer_id, center, outcome: ActionOutcome::Accepted, .. }
            if officer_id == "alice" && center == "Lyon")
        );
        assert_eq!(
            a.history.len(),
            2,
            "the pending entry became the accepted one"
        );
    }

    #[test]
    fn a_rejection_is_final_and_keeps_the_owner() {
        let mut s = store();
        s.closed(
            101,
            &[(100, vec![add(routing("a", "Lyon", AlertState::Open))])],
            &[(100, vec![change(ChangeKind::Opened, "a", 100)])],
        );
        let act = actions::action("wei", "Singapore", "a", ActionKind::Resolve, instant(100));
        s.submitted(act.clone());
        s.routed(act.clone(), 120, 120);
        let e = s.closed(
            200,
            &[(
                120,
                vec![RoutingChange::Rejected {
                    diff: 1,
                    action: RejectedAction {
                        action: act.clone(),
                        at: instant(120),
                        code: ErrorCode::NotOwner,
                        reason: "Singapore does not own alert a".into(),
                        owner: Some("Lyon".into()),
                    },
                }],
            )],
            &[],
        );
        assert_eq!(
            e.len(),
            1,
            "one entry: the rejection at 120, nothing accepted after"
        );
        let t = s.action(&act.action_id).unwrap();
        assert!(matches!(&t.outcome, ActionOutcome::Rejected { code, .. } if code == "not_owner"));
        assert_eq!(t.owner.as_deref(), Some("Lyon"));
        assert_eq!(s.rejected_total(), 1);
        s.closed(300, &[], &[]);
        assert!(matches!(
            s.action(&act.action_id).unwrap().outcome,
            ActionOutcome::Rejected { .. }
        ));
    }

    #[test]
    fn streams_resume_only_from_times_still_in_the_ring() {
        let mut s = DeskStore::new(
            3,
            Limits {
                ring_entries: 3,
                ..Limits::default()
            },
        );
        assert_eq!(s.entries_after(0).unwrap().len(), 0);
        for t in 1..=5u64 {
            s.closed(
                t * 10 + 1,
                &[],
                &[(
                    t * 10,
                    vec![change(ChangeKind::Opened, &format!("x{t}"), t * 10)],
                )],
            );
        }
        assert_eq!(s.last_time(), 50);
        let times = |v: Vec<Arc<ClosedEntry>>| v.iter().map(|e| e.time_ms).collect::<Vec<_>>();
        assert_eq!(times(s.entries_after(30).unwrap()), vec![40, 50]);
        assert_eq!(times(s.entries_after(50).unwrap()), Vec::<u64>::new());
        assert!(
            s.entries_after(20).is_none(),
            "30 was evicted: a snapshot is needed"
        );
        assert!(s.entries_after(0).is_none(), "0 after an eviction");
        assert!(s.entries_after(35).is_none(), "an id this desk never gave");
    }
}
