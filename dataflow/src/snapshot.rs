//! Consistent snapshots: output updates become alert changes only once their
//! logical time is closed, so a consumer never sees half of an update.
//!
//! Updates `(alert, time, diff)` arrive from every worker in any order; a time is
//! closed once the dataflow's output frontier has passed it. For each closed time,
//! in order, updates are consolidated and each alert id yields at most one
//! [`AlertChange`]: `opened` (new id), `updated` (new content for an open id),
//! `retracted` (content withdrawn, none added) or `expired` (withdrawn because the alert
//! aged out: [`Snapshots::expired`] said so for that id and time). The version of a change
//! is its logical time, so a replay of the same inputs gives the same (id, version,
//! content). An expired alert leaves the snapshotter's state.

use std::collections::{BTreeMap, BTreeSet};

use schemas::{Alert, AlertChange, ChangeKind};

use crate::Time;

/// Collects alert updates and releases the changes of closed times.
#[derive(Debug, Default)]
pub struct Snapshots {
    pending: BTreeMap<Time, Vec<(Alert, isize)>>,
    expiring: BTreeMap<Time, BTreeSet<String>>,
    open: BTreeMap<String, Alert>,
    input_end: Option<Time>,
}

impl Snapshots {
    /// An empty snapshotter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one update of the alert collection at `time`.
    pub fn update(&mut self, alert: Alert, time: Time, diff: isize) {
        self.pending.entry(time).or_default().push((alert, diff));
    }

    /// The alert `id` expired at `time`: its withdrawal then is an expiry, not a retraction.
    pub fn expired(&mut self, id: String, time: Time) {
        self.expiring.entry(time).or_default().insert(id);
    }

    /// The input ended at `time` (on one worker): nothing after the latest such time is released.
    pub fn input_ended(&mut self, time: Time) {
        self.input_end = Some(self.input_end.map_or(time, |e| e.max(time)));
    }

    /// The frontier `frontier` capped at the end of the input: times at or after the
    /// result are not (yet) outputs of the run.
    pub fn bound(&self, frontier: Time) -> Time {
        match self.input_end {
            Some(end) => frontier.min(end.saturating_add(1)),
            None => frontier,
        }
    }

    /// Releases the changes of every time before `frontier` (times at or after it may still change), oldest first.
    pub fn close_before(&mut self, frontier: Time) -> Vec<(Time, Vec<AlertChange>)> {
        let frontier = self.bound(frontier);
        let still_open = self.pending.split_off(&frontier);
        let closed = std::mem::replace(&mut self.pending, still_open);
        let still_expiring = self.expiring.split_off(&frontier);
        let mut expiring = std::mem::replace(&mut self.expiring, still_expiring);
        closed
            .into_iter()
            .map(|(time, updates)| {
                let expired = expiring.remove(&time).unwrap_or_default();
                (time, self.apply(time, updates, &expired))
            })
            .filter(|(_, changes)| !changes.is_empty())
            .collect()
    }

    /// Alerts open now (at the last closed time).
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Number of alerts open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn apply(
        &mut self,
        time: Time,
        updates: Vec<(Alert, isize)>,
        expired: &BTreeSet<String>,
    ) -> Vec<AlertChange> {
        let mut net: BTreeMap<Alert, isize> = BTreeMap::new();
        for (alert, diff) in updates {
            *net.entry(alert).or_default() += diff;
        }
        // Per id: the content added at this time, if any.
        let mut added: BTreeMap<String, Alert> = BTreeMap::new();
        let mut removed: BTreeMap<String, Alert> = BTreeMap::new();
        for (alert, diff) in net {
            if diff > 0 {
                added.insert(alert.id.clone(), alert);
            } else if diff < 0 {
                removed.insert(alert.id.clone(), alert);
            }
        }
        let mut changes = Vec::new();
        for (id, alert) in added {
            removed.remove(&id);
            let change = if self.open.contains_key(&id) {
                ChangeKind::Updated
            } else {
                ChangeKind::Opened
            };
            self.open.insert(id, alert.clone());
            changes.push(AlertChange {
                change,
                version: time,
                alert,
            });
        }
        for (id, alert) in removed {
            let change = if expired.contains(&id) {
                ChangeKind::Expired
            } else {
                ChangeKind::Retracted
            };
            let last = self.open.remove(&id).unwrap_or(alert);
            changes.push(AlertChange {
                change,
                version: time,
                alert: last,
            });
        }
        changes.sort_by(|a, b| a.alert.id.cmp(&b.alert.id));
        changes
    }
}
