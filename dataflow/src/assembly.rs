//! Alerts assembled from their evidence, per observable: the current version of the
//! indicator makes the base alert ([`base_alert`]), the warning lists may suppress it,
//! and every current indicator on the same match key corroborates it ([`corroborate`]).
//!
//! This is what a join of the evidence with the indicators by id, a split by the warning
//! lists and a reduce per observable over its alerts and indicators would derive, done
//! by one operator that keeps, per observable, its current indicators, the evidence of
//! its windows and the alert it last emitted for each. It handles each logical time in
//! order: takes the time's changes, re-assembles the alerts they touch (an alert whose
//! evidence changed; every alert of an observable whose indicators changed; every alert
//! when the warning lists changed) and emits, for each that differs from what it
//! emitted, the retraction of the old and the new. Its output is therefore the same
//! collection, time by time, without an arrangement of every alert version or a replay
//! of each observable's history at each change.
//!
//! Evidence comes to the worker of its [`AlertSightings::observable`] (that of the
//! indicator version it was judged with: a version on another value re-emits it there),
//! indicators to the worker of their match key, and every worker holds the warning lists.
//! The inputs are sets: one aggregate per window and one current version per indicator
//! ([`crate::evidence`] and the runtime's `Held` see to it); what leaves the state is
//! forgotten at once (an observable without indicators or windows is dropped).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use schemas::{Alert, Contributor, Indicator};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};

use crate::Time;
use crate::alerts::{base_alert, contributor, corroborate};
use crate::evidence::AlertSightings;
use crate::history::{indicator_ref, update_multiset};
use crate::observables::{indicator_key, indicator_key_hash};
use crate::shared::Shared;
use crate::views::warning_lists::{Coverage, WarningEntry};

/// What the operator emits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Assembled {
    /// An alert, corroborated.
    Alert(Shared<Alert>),
    /// An alert the warning lists suppress (before corroboration), with the names of
    /// every list covering its indicator's value, sorted.
    Suppressed(Shared<Alert>, Vec<String>),
}

/// One input change of an observable (exchanged between workers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Part {
    Sightings(Box<AlertSightings>),
    Feed(Shared<Indicator>),
}

/// An alert's window: (indicator ref, window start).
type WindowKey = (u64, i64);

/// One window of an observable: its evidence (a set: one aggregate at a time) and what
/// was emitted for it.
#[derive(Debug, Default)]
struct Window {
    sightings: Vec<(Box<AlertSightings>, isize)>,
    emitted: Option<Assembled>,
}

/// One observable: its current indicators (a set) and windows.
#[derive(Debug, Default)]
struct Observable {
    feeds: Vec<(Shared<Indicator>, isize)>,
    windows: FxHashMap<WindowKey, Window>,
}

impl Observable {
    fn present_feeds(&self) -> impl Iterator<Item = &Indicator> {
        self.feeds.iter().filter(|(_, n)| *n > 0).map(|(i, _)| &**i)
    }

    /// What window `key` shows now (none: no evidence, or its indicator is not current).
    fn assemble(
        &self,
        key: WindowKey,
        coverage: &Coverage,
        half_life_ms: u64,
    ) -> Option<Assembled> {
        let s = self
            .windows
            .get(&key)?
            .sightings
            .iter()
            .find(|(_, n)| *n > 0)
            .map(|(s, _)| s)?;
        let ind = self
            .present_feeds()
            .find(|i| indicator_ref(&i.id) == s.indicator)?;
        let base = base_alert(ind, s);
        let lists = coverage.lists(base.indicator.kind, &base.indicator.value);
        if !lists.is_empty() {
            return Some(Assembled::Suppressed(Shared::new(base), lists));
        }
        // A hash shared by two observables must not mix their sources.
        let key = indicator_key(base.indicator.kind, &base.indicator.value);
        let own: Vec<Contributor> = self
            .present_feeds()
            .filter(|i| indicator_key(i.kind, &i.value) == key)
            .map(contributor)
            .collect();
        let own: Vec<&Contributor> = own.iter().collect();
        Some(Assembled::Alert(Shared::new(corroborate(
            &base,
            key,
            &own,
            half_life_ms,
        ))))
    }

    fn is_empty(&self) -> bool {
        self.feeds.is_empty() && self.windows.is_empty()
    }
}

/// The state of one worker.
#[derive(Debug, Default)]
struct Assembler {
    observables: FxHashMap<u64, Observable>,
    coverage: Coverage,
    half_life_ms: u64,
}

impl Assembler {
    /// Takes the changes of one time and emits what they change into `out`.
    fn step(
        &mut self,
        mut parts: Vec<((u64, Part), isize)>,
        entries: &[(WarningEntry, isize)],
        out: &mut Vec<(Assembled, isize)>,
    ) {
        parts.sort();
        crate::history::consolidate(&mut parts);
        for (e, diff) in entries {
            self.coverage.update(e, *diff);
        }
        let mut dirty: Vec<(u64, WindowKey)> = Vec::new();
        let mut dirty_observables: Vec<u64> = Vec::new();
        for ((obs, part), diff) in parts {
            let o = self.observables.entry(obs).or_default();
            match part {
                Part::Feed(i) => {
                    update_multiset(&mut o.feeds, i, diff);
                    dirty_observables.push(obs);
                }
                Part::Sightings(s) => {
                    let key = (s.indicator, s.window_ms);
                    update_multiset(&mut o.windows.entry(key).or_default().sightings, s, diff);
                    dirty.push((obs, key));
                }
            }
        }
        dirty_observables.sort_unstable();
        dirty_observables.dedup();
        if entries.is_empty() {
            for obs in &dirty_observables {
                if let Some(o) = self.observables.get(obs) {
                    dirty.extend(o.windows.keys().map(|k| (*obs, *k)));
                }
            }
        } else {
            // The warning lists changed: every alert may be covered, or no longer.
            dirty.extend(
                self.observables
                    .iter()
                    .flat_map(|(obs, o)| o.windows.keys().map(|k| (*obs, *k))),
            );
        }
        // The order of emission does not matter; sorting keeps runs reproducible.
        dirty.sort_unstable();
        dirty.dedup();
        for (obs, key) in dirty {
            let Some(o) = self.observables.get_mut(&obs) else {
                continue;
            };
            let now = o.assemble(key, &self.coverage, self.half_life_ms);
            if let Some(w) = o.windows.get_mut(&key) {
                if w.emitted != now {
                    out.extend(w.emitted.take().map(|old| (old, -1)));
                    out.extend(now.clone().map(|new| (new, 1)));
                    w.emitted = now;
                }
                if w.sightings.is_empty() && w.emitted.is_none() {
                    o.windows.remove(&key);
                }
            }
            if o.is_empty() {
                self.observables.remove(&obs);
            }
        }
        // Observables whose last indicator left without windows.
        for obs in dirty_observables {
            if self.observables.get(&obs).is_some_and(Observable::is_empty) {
                self.observables.remove(&obs);
            }
        }
    }
}

/// The alerts of the evidence `sightings` (from [`crate::evidence::alert_evidence`]),
/// built with the `current` indicators, split by the warning-list `entries` and
/// corroborated with `half_life_ms` (see the module documentation).
pub fn assemble<'s>(
    sightings: StreamVec<'s, Time, (Box<AlertSightings>, Time, isize)>,
    current: StreamVec<'s, Time, (Shared<Indicator>, Time, isize)>,
    entries: StreamVec<'s, Time, (WarningEntry, Time, isize)>,
    half_life_ms: u64,
) -> StreamVec<'s, Time, (Assembled, Time, isize)> {
    let parts = sightings
        .map(|(s, t, d)| ((s.observable, Part::Sightings(s)), t, d))
        .concat(current.map(|(i, t, d)| {
            let obs = indicator_key_hash(i.kind, &i.value);
            ((obs, Part::Feed(i)), t, d)
        }));
    parts.binary_frontier::<_, CapacityContainerBuilder<Vec<(Assembled, Time, isize)>>, _, _, _, _>(
        entries.broadcast(),
        Exchange::new(|((obs, _), _, _): &((u64, Part), Time, isize)| *obs),
        Pipeline,
        "AssembleAlerts",
        move |cap, _info| {
            let mut cap = Some(cap);
            let mut state = Assembler {
                half_life_ms,
                ..Assembler::default()
            };
            type Pending = (Vec<((u64, Part), isize)>, Vec<(WarningEntry, isize)>);
            let mut pending: BTreeMap<Time, Pending> = BTreeMap::new();
            let mut out: Vec<(Assembled, isize)> = Vec::new();
            move |(parts, parts_frontier), (entries, entries_frontier), output| {
                parts.for_each(|_time, data| {
                    for (p, t, diff) in data.drain(..) {
                        pending.entry(t).or_default().0.push((p, diff));
                    }
                });
                entries.for_each(|_time, data| {
                    for (e, t, diff) in data.drain(..) {
                        pending.entry(t).or_default().1.push((e, diff));
                    }
                });
                let bound = crate::time_order::bound(&[
                    &parts_frontier.frontier(),
                    &entries_frontier.frontier(),
                ]);
                while let Some(entry) = pending.first_entry() {
                    let t = *entry.key();
                    if bound.is_some_and(|b| t >= b) {
                        break;
                    }
                    let (parts, entries) = entry.remove();
                    state.step(parts, &entries, &mut out);
                    crate::time_order::give_at(output, cap.as_ref(), t, &mut out);
                }
                crate::time_order::hold_at(&mut cap, bound);
            }
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;
    use crate::views::corroboration::CorroborationConfig;

    fn feed(id: &str, source: &str) -> Shared<Indicator> {
        let mut i = crate::test_support::indicator(id, 0, None);
        i.source_id = source.into();
        Shared::new(i)
    }

    fn obs(i: &Indicator) -> u64 {
        indicator_key_hash(i.kind, &i.value)
    }

    fn sightings(i: &Indicator, n: u64) -> AlertSightings {
        AlertSightings {
            indicator: indicator_ref(&i.id),
            observable: obs(i),
            sightings: n,
            sensors: 1,
            ..AlertSightings::default()
        }
    }

    fn step(
        a: &mut Assembler,
        parts: Vec<(Part, isize)>,
        entries: &[(WarningEntry, isize)],
    ) -> Vec<(Assembled, isize)> {
        let parts = parts
            .into_iter()
            .map(|(p, d)| {
                let o = match &p {
                    Part::Sightings(s) => s.observable,
                    Part::Feed(i) => obs(i),
                };
                ((o, p), d)
            })
            .collect();
        let mut out = Vec::new();
        a.step(parts, entries, &mut out);
        out.sort();
        out
    }

    fn alert_of(out: &[(Assembled, isize)], diff: isize) -> &Alert {
        out.iter()
            .find_map(|(a, d)| match a {
                Assembled::Alert(a) if *d == diff => Some(&**a),
                _ => None,
            })
            .unwrap()
    }

    /// An alert comes with its evidence and indicator, follows a second source on its
    /// observable and the warning lists, and leaves no state once both are gone.
    #[test]
    fn alerts_follow_evidence_sources_and_lists_and_leave_no_state_behind() {
        let mut a = Assembler {
            half_life_ms: CorroborationConfig::default().half_life_ms,
            ..Assembler::default()
        };
        let (own, other) = (feed("ind-1", "feed-a"), feed("ind-2", "feed-b"));
        let s = sightings(&own, 3);
        // Evidence without its indicator makes no alert.
        assert!(step(&mut a, vec![(Part::Sightings(Box::new(s.clone())), 1)], &[]).is_empty());
        let out = step(&mut a, vec![(Part::Feed(own.clone()), 1)], &[]);
        assert_eq!(out.len(), 1);
        let alone = alert_of(&out, 1).clone();
        assert_eq!(alone.sightings, 3);
        assert_eq!(alone.provenance.sources.len(), 1);
        // A second source on the observable replaces the alert with one it corroborates.
        let out = step(&mut a, vec![(Part::Feed(other.clone()), 1)], &[]);
        assert_eq!(alert_of(&out, -1), &alone);
        assert_eq!(alert_of(&out, 1).provenance.sources.len(), 2);
        // A list covering the value suppresses it; the list's removal brings it back.
        let entry = WarningEntry {
            list: "doc".into(),
            kind: own.kind,
            value: own.value.clone(),
            subdomains: false,
        };
        let out = step(&mut a, vec![], &[(entry.clone(), 1)]);
        assert!(
            matches!(&out[..], [(Assembled::Alert(_), -1), (Assembled::Suppressed(_, lists), 1)] if *lists == ["doc"])
        );
        let out = step(&mut a, vec![], &[(entry, -1)]);
        assert_eq!(alert_of(&out, 1).provenance.sources.len(), 2);
        // Evidence and indicators leave: so does every trace of the observable.
        let out = step(
            &mut a,
            vec![
                (Part::Sightings(Box::new(s)), -1),
                (Part::Feed(own), -1),
                (Part::Feed(other), -1),
            ],
            &[],
        );
        assert_eq!(out.len(), 1);
        assert!(a.observables.is_empty(), "{:?}", a.observables);
    }
}
