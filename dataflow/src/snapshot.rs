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
    /// Open alerts with retroactive sightings (kept as they change: the output loop reads
    /// it at every closed time, and counting the open alerts then cost a pass over them).
    retroactive: usize,
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

    /// Number of alerts open now with retroactive sightings.
    pub fn retroactive_count(&self) -> usize {
        self.retroactive
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
            let retro = alert.retroactive_sightings > 0;
            if let Some(before) = self.open.insert(id, alert.clone()) {
                self.retroactive -= usize::from(before.retroactive_sightings > 0);
            }
            self.retroactive += usize::from(retro);
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
            let last = match self.open.remove(&id) {
                Some(open) => {
                    self.retroactive -= usize::from(open.retroactive_sightings > 0);
                    open
                }
                None => alert,
            };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    /// An alert of the test indicator `id` with `retroactive` retroactive sightings.
    fn alert(id: &str, retroactive: u64) -> Alert {
        let ind = crate::test_support::indicator(id, 0, None);
        let sightings = crate::evidence::AlertSightings {
            indicator: 1,
            observable: 1,
            window_ms: 0,
            sightings: retroactive.max(1),
            summarised: 0,
            retroactive,
            first_ms: 0,
            last_ms: 0,
            sensors: 1,
            countries: vec![crate::history::Country::new("FR")],
            victims: 0,
            victim_ips: Vec::new(),
            victims_by_country: Vec::new(),
            accounts: Vec::new(),
            event_ids: Vec::new(),
            hourly: Vec::new(),
        };
        crate::alerts::base_alert(&ind, &sightings)
    }

    /// The count kept as alerts change, against a count over the open alerts.
    fn counted(s: &Snapshots) -> usize {
        let kept = s.retroactive_count();
        let recount = s
            .open_alerts()
            .filter(|a| a.retroactive_sightings > 0)
            .count();
        assert_eq!(kept, recount);
        kept
    }

    #[test]
    fn open_alerts_with_retroactive_sightings_are_counted_as_they_change() {
        let mut s = Snapshots::new();
        s.update(alert("a", 0), 1, 1);
        s.update(alert("b", 2), 1, 1);
        s.close_before(2);
        assert_eq!(counted(&s), 1);
        // `a` becomes retroactive, `b` is updated and stays so.
        s.update(alert("a", 0), 2, -1);
        s.update(alert("a", 1), 2, 1);
        s.update(alert("b", 2), 2, -1);
        s.update(alert("b", 3), 2, 1);
        s.close_before(3);
        assert_eq!(counted(&s), 2);
        // `a` is retracted, `b` expires.
        s.update(alert("a", 1), 3, -1);
        s.update(alert("b", 3), 3, -1);
        s.expired("b".into(), 3);
        s.close_before(4);
        assert_eq!(counted(&s), 0);
    }
}
