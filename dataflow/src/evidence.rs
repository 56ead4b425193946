//! The evidence of each alert, kept from the matches as they are made, and its end.
//!
//! [`alert_evidence`] keeps every match [`crate::history::history_matches`] makes, per
//! (indicator, UTC day of event time): the alert's window. A match once made stands while
//! its indicator stays current, whatever happens to the history it came from; it is
//! judged again at each new version of the indicator (validity). For each window it
//! emits one [`AlertSightings`], the aggregate an alert shows (counts, spread, victims,
//! hourly trend), replacing it whenever it changes.
//!
//! - **Raw and summarised evidence.** A raw sighting counts once per event (an event
//!   delivered twice, or made again by a new version of the indicator, counts once). A
//!   summary (observable, sensor, hour) counts its events, and is taken the first time the
//!   indicator meets it: later, larger versions of the same summary hold events that were
//!   matched while still raw, so they are dropped.
//! - **Expiry.** A window whose end has passed and whose evidence has not changed for
//!   `grace_ms` of logical time closes: at `max(window end, last change) + grace`, its
//!   aggregate is retracted, an [`Kept::Expired`] marker is emitted (the output says
//!   `expired`, not `retracted`), and its matches are dropped. A match that arrives later
//!   for an expired window is counted ([`Kept::Late`]) and otherwise ignored: the alert is
//!   not reopened. The expired window is remembered until its summaries are gone from the
//!   history (its end plus the retention and a day); a match cannot come later than that.
//! - A change of the indicator's version counts as a change of its windows.
//!
//! All of this is a function of the inputs and logical time. Matches are exchanged by
//! indicator, so each window lives on one worker.
//!
//! Caveat: an indicator that is revoked keeps its windows (an alert comes back if the
//! indicator is reinstated), until they expire.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use differential_dataflow::VecCollection;
use rustc_hash::{FxHashMap, FxHashSet};
use schemas::Indicator;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::Time;
use crate::alerts::{MAX_EVENT_IDS, MAX_PERSONAL, RULE, WINDOW_MS, alert_id, window_start};
use crate::history::{
    Country, Evidence, Made, RawSighting, SummarySighting, Target, indicator_ref,
};
use crate::observables::{indicator_key_hash, string_hash};

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// How long alerts live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryConfig {
    /// Logical ms an alert stays open after its window ended and it last changed.
    pub grace_ms: u64,
    /// The history's retention: how long summaries of a window may still meet indicators.
    pub retention_ms: u64,
}

/// What an alert shows of its evidence: the aggregate of the matches of one indicator in
/// one window.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertSightings {
    /// The indicator ([`indicator_ref`]).
    pub indicator: u64,
    /// The match key hash of the indicator's value ([`KeptIndicator::observable`]) in the
    /// version this evidence was judged with: the alerts of one observable are assembled
    /// together ([`crate::assembly`]).
    pub observable: u64,
    /// Start of the window (event time, ms).
    pub window_ms: i64,
    /// Matching events: raw ones once each, plus the summaries' counts.
    pub sightings: u64,
    /// Of those, the events known only from summaries.
    pub summarised: u64,
    /// Of those, the events ingested before the indicator was created.
    pub retroactive: u64,
    /// Earliest event time, ms.
    pub first_ms: i64,
    /// Latest event time, ms.
    pub last_ms: i64,
    /// Distinct sensors.
    pub sensors: u32,
    /// Distinct sensor countries, sorted.
    pub countries: Vec<Country>,
    /// Distinct victims (raw evidence only).
    pub victims: u32,
    /// The first victims, sorted.
    pub victim_ips: Vec<IpAddr>,
    /// The first victims per sensor country, sorted.
    pub victims_by_country: Vec<(Country, Vec<IpAddr>)>,
    /// The first accounts, sorted.
    pub accounts: Vec<Box<str>>,
    /// The first event ids, sorted.
    pub event_ids: Vec<Box<str>>,
    /// Events per UTC hour of event time (hour start, ms).
    pub hourly: Vec<(i64, u64)>,
}

/// What [`alert_evidence`] emits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kept {
    /// The evidence of a window (a collection: replaced by -1/+1).
    Sightings(Box<AlertSightings>),
    /// The alert with this id expired at this time.
    Expired(String),
    /// Matches arrived for a window that had expired (and were ignored).
    Late(u64),
}

/// The current version of an indicator as the keeper sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeptIndicator {
    /// [`indicator_ref`] of the id.
    pub id: u64,
    /// The id.
    pub id_text: String,
    /// Validity (event time ms), end exclusive.
    pub valid_from_ms: i64,
    /// End of validity, `i64::MAX` for none.
    pub valid_until_ms: i64,
    /// When the owner created it (ms): earlier events are retroactive sightings.
    pub created_ms: i64,
    /// What this version is matched on.
    pub target: Target,
    /// The hash of this version's match key (`indicator_key` of its kind and value).
    pub observable: u64,
}

impl KeptIndicator {
    /// What the keeper needs of `i`, if it can be matched.
    pub fn of(i: &Indicator) -> Option<Self> {
        Some(Self {
            id: indicator_ref(&i.id),
            id_text: i.id.clone(),
            valid_from_ms: i.valid_from.as_millisecond(),
            valid_until_ms: i.valid_until.map_or(i64::MAX, |u| u.as_millisecond()),
            created_ms: i.created.as_millisecond(),
            target: Target::of(i)?,
            observable: indicator_key_hash(i.kind, &i.value),
        })
    }

    fn valid_at(&self, ms: i64) -> bool {
        self.valid_from_ms <= ms && ms < self.valid_until_ms
    }

    fn meets(&self, first_ms: i64, last_ms: i64) -> bool {
        last_ms >= self.valid_from_ms && first_ms < self.valid_until_ms
    }
}

/// The window (event time) of a piece of evidence.
pub fn evidence_window(e: &Evidence) -> i64 {
    match e {
        Evidence::Raw(r) => window_start(r.observed_ms),
        Evidence::Summary(s) => window_start(i64::from(s.hour) * HOUR_MS),
    }
}

/// Whether the indicator's current version admits this match: it is matched on what the
/// match was made on, and its validity holds the event (a summary: meets its hour).
fn admits(ind: &KeptIndicator, m: &Made) -> bool {
    m.target == ind.target
        && match &m.evidence {
            Evidence::Raw(r) => ind.valid_at(r.observed_ms),
            Evidence::Summary(s) => {
                let hour = i64::from(s.hour) * HOUR_MS;
                ind.meets(hour, hour + HOUR_MS - 1)
            }
        }
}

/// The running aggregate of one window's admitted evidence.
#[derive(Debug, Clone, Default)]
struct Agg {
    sightings: u64,
    summarised: u64,
    retroactive: u64,
    first_ms: i64,
    last_ms: i64,
    sensors: FxHashSet<u64>,
    countries: BTreeSet<Country>,
    victims: BTreeSet<IpAddr>,
    by_country: BTreeMap<Country, BTreeSet<IpAddr>>,
    accounts: BTreeSet<Box<str>>,
    event_ids: BTreeSet<Box<str>>,
    hourly: BTreeMap<i64, u64>,
}

impl Agg {
    fn add(&mut self, e: &Evidence, created_ms: i64) {
        let (first, last, hour, n) = match e {
            Evidence::Raw(r) => {
                self.add_raw(r, created_ms);
                (
                    r.observed_ms,
                    r.observed_ms,
                    r.observed_ms.div_euclid(HOUR_MS) * HOUR_MS,
                    1,
                )
            }
            Evidence::Summary(s) => {
                self.add_summary(s);
                (
                    s.first_ms,
                    s.last_ms,
                    i64::from(s.hour) * HOUR_MS,
                    u64::from(s.count),
                )
            }
        };
        if self.sightings == 0 {
            (self.first_ms, self.last_ms) = (first, last);
        } else {
            self.first_ms = self.first_ms.min(first);
            self.last_ms = self.last_ms.max(last);
        }
        self.sightings += n;
        *self.hourly.entry(hour).or_default() += n;
    }

    fn add_raw(&mut self, r: &RawSighting, created_ms: i64) {
        self.sensors.insert(string_hash(&r.sensor_id));
        self.countries.insert(r.country);
        if i64::try_from(r.ingested_ms).unwrap_or(i64::MAX) < created_ms {
            self.retroactive += 1;
        }
        if let Some(v) = r.victim {
            self.victims.insert(v);
            let mine = self.by_country.entry(r.country).or_default();
            mine.insert(v);
            if mine.len() > MAX_PERSONAL {
                mine.pop_last();
            }
        }
        if let Some(a) = &r.account {
            self.accounts.insert(a.clone());
            if self.accounts.len() > MAX_PERSONAL {
                self.accounts.pop_last();
            }
        }
        self.event_ids.insert(r.event_id.clone());
        if self.event_ids.len() > MAX_EVENT_IDS {
            self.event_ids.pop_last();
        }
    }

    fn add_summary(&mut self, s: &SummarySighting) {
        self.sensors.insert(string_hash(&s.sensor_id));
        self.countries.insert(s.country);
        self.summarised += u64::from(s.count);
        self.retroactive += u64::from(s.count);
    }

    fn sightings(&self, ind: &KeptIndicator, window_ms: i64) -> Option<AlertSightings> {
        (self.sightings > 0).then(|| AlertSightings {
            indicator: ind.id,
            observable: ind.observable,
            window_ms,
            sightings: self.sightings,
            summarised: self.summarised,
            retroactive: self.retroactive,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            sensors: u32::try_from(self.sensors.len()).unwrap_or(u32::MAX),
            countries: self.countries.iter().copied().collect(),
            victims: u32::try_from(self.victims.len()).unwrap_or(u32::MAX),
            victim_ips: self.victims.iter().take(MAX_PERSONAL).copied().collect(),
            victims_by_country: self
                .by_country
                .iter()
                .map(|(c, v)| (*c, v.iter().copied().collect()))
                .collect(),
            accounts: self.accounts.iter().cloned().collect(),
            event_ids: self.event_ids.iter().cloned().collect(),
            hourly: self.hourly.iter().map(|(h, n)| (*h, *n)).collect(),
        })
    }
}

/// The aggregate of the matches `made` (each once) of `ind` in the window starting at
/// `window_ms` (pure; the oracle's definition). Only matches `ind` admits count.
pub fn aggregate<'a>(
    ind: &KeptIndicator,
    window_ms: i64,
    made: impl IntoIterator<Item = &'a Made>,
) -> Option<AlertSightings> {
    let mut agg = Agg::default();
    let mut events = FxHashSet::default();
    let mut cells = FxHashSet::default();
    for m in made {
        let first = match &m.evidence {
            Evidence::Raw(r) => events.insert(r.event_ref),
            Evidence::Summary(s) => {
                cells.insert((s.shard, s.observable, s.sensor_id.clone(), s.hour))
            }
        };
        if first && admits(ind, m) {
            agg.add(&m.evidence, ind.created_ms);
        }
    }
    agg.sightings(ind, window_ms)
}

/// The matches of one window.
#[derive(Debug, Default)]
struct Window {
    raw: FxHashMap<u64, Made>,
    /// Summaries by cell.
    summaries: FxHashMap<(u32, u64, Box<str>, u32), Made>,
    agg: Agg,
    /// The aggregate last emitted.
    emitted: Option<AlertSightings>,
    /// Logical time of the last change of the emitted aggregate.
    changed: Time,
    /// Matches added since the last emission (aggregated incrementally).
    fresh: Vec<Made>,
    /// The indicator's version changed: re-aggregate from scratch.
    rebuild: bool,
    /// Listed in [`Keeper::dirty`].
    dirty: bool,
}

/// What the keeper knows of one indicator.
#[derive(Debug, Default)]
struct IndicatorState {
    /// `last` is the current version (the indicator is not withdrawn). One copy of the
    /// version, not two: the keeper holds one state per indicator (100 k on W1).
    current: bool,
    /// The last version seen (kept while the indicator is withdrawn).
    last: Option<KeptIndicator>,
    windows: BTreeSet<i64>,
    /// When each target was first current: summaries are taken then only.
    first: Vec<(Target, Time)>,
    /// When it stopped being current, if it is not.
    withdrawn: Option<Time>,
}

/// The keeper of one worker (see the module documentation).
#[derive(Debug)]
struct Keeper {
    config: ExpiryConfig,
    indicators: FxHashMap<u64, IndicatorState>,
    windows: FxHashMap<(u64, i64), Window>,
    /// Expiry candidates by due time (checked against the window when due).
    due: BTreeMap<Time, Vec<(u64, i64)>>,
    /// Expired windows, until they can no longer get matches.
    expired: FxHashMap<(u64, i64), Time>,
    forget: BTreeMap<Time, Vec<(u64, i64)>>,
    /// Withdrawn indicators to forget (checked when due).
    forget_indicators: BTreeMap<Time, Vec<u64>>,
    /// Windows with fresh matches or a new indicator version.
    dirty: Vec<(u64, i64)>,
}

/// Logical time at which a window that last changed at `changed` expires.
fn expires_at(window_ms: i64, changed: Time, grace_ms: u64) -> Time {
    let end = u64::try_from(window_ms.saturating_add(WINDOW_MS)).unwrap_or(0);
    end.max(changed).saturating_add(grace_ms)
}

impl Keeper {
    fn new(config: ExpiryConfig) -> Self {
        Self {
            config,
            indicators: FxHashMap::default(),
            windows: FxHashMap::default(),
            due: BTreeMap::new(),
            expired: FxHashMap::default(),
            forget: BTreeMap::new(),
            forget_indicators: BTreeMap::new(),
            dirty: Vec::new(),
        }
    }

    fn next_due(&self) -> Option<Time> {
        [
            self.due.keys().next(),
            self.forget.keys().next(),
            self.forget_indicators.keys().next(),
        ]
        .into_iter()
        .flatten()
        .copied()
        .min()
    }

    fn mark(&mut self, key: (u64, i64), rebuild: bool) {
        if let Some(w) = self.windows.get_mut(&key) {
            w.rebuild |= rebuild;
            if !w.dirty {
                w.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Applies the indicator changes of time `t` (consolidated: removals, then additions).
    fn indicators(&mut self, t: Time, changes: &[(KeptIndicator, isize)]) {
        for (i, diff) in changes {
            let state = self.indicators.entry(i.id).or_default();
            if *diff < 0 && state.current && state.last.as_ref() == Some(i) {
                state.current = false;
            }
        }
        let mut rebuild = Vec::new();
        for (i, diff) in changes {
            if *diff > 0 {
                let state = self.indicators.entry(i.id).or_default();
                if state.last.as_ref() != Some(i) {
                    rebuild.extend(state.windows.iter().map(|w| (i.id, *w)));
                }
                if !state.first.iter().any(|(target, _)| *target == i.target) {
                    // Nearly every indicator keeps one target: no room for more until needed.
                    state.first.reserve_exact(1);
                    state.first.push((i.target, t));
                }
                state.current = true;
                state.last = Some(i.clone());
                state.withdrawn = None;
            }
        }
        for (i, _) in changes {
            if let Some(state) = self.indicators.get_mut(&i.id)
                && !state.current
                && state.withdrawn.is_none()
            {
                state.withdrawn = Some(t);
                let at = t.saturating_add(self.config.retention_ms).max(t + 1);
                self.forget_indicators.entry(at).or_default().push(i.id);
            }
        }
        for key in rebuild {
            self.mark(key, true);
        }
    }

    /// Takes one match made at `t`; returns the number of matches ignored because their
    /// window had expired.
    fn made(&mut self, t: Time, m: Made) -> u64 {
        let window = evidence_window(&m.evidence);
        let key = (m.indicator, window);
        if self.expired.contains_key(&key) {
            return 1;
        }
        let state = self.indicators.entry(m.indicator).or_default();
        if let Evidence::Summary(_) = &m.evidence
            && !state.first.contains(&(m.target, t))
        {
            // A later meeting of the same summary: its newer events matched while raw.
            return 0;
        }
        state.windows.insert(window);
        let w = self.windows.entry(key).or_default();
        let new = match &m.evidence {
            Evidence::Raw(r) => {
                let fresh = !w.raw.contains_key(&r.event_ref);
                if fresh {
                    w.raw.insert(r.event_ref, m.clone());
                }
                fresh
            }
            Evidence::Summary(s) => {
                let cell = (s.shard, s.observable, s.sensor_id.clone(), s.hour);
                let fresh = !w.summaries.contains_key(&cell);
                if fresh {
                    w.summaries.insert(cell, m.clone());
                }
                fresh
            }
        };
        if new {
            w.fresh.push(m);
            self.mark(key, false);
        }
        0
    }

    /// Emits the windows changed at `t`.
    fn flush(&mut self, t: Time, out: &mut Vec<(Kept, isize)>) {
        let grace = self.config.grace_ms;
        let mut dirty = std::mem::take(&mut self.dirty);
        // The order of emission does not matter; sorting keeps runs reproducible to debug.
        dirty.sort_unstable();
        for (id, window) in dirty.drain(..) {
            let Some(w) = self.windows.get_mut(&(id, window)) else {
                continue;
            };
            w.dirty = false;
            let Some(ind) = self.indicators.get(&id).and_then(|s| s.last.as_ref()) else {
                continue;
            };
            if w.rebuild {
                w.agg = Agg::default();
                for m in w.raw.values().chain(w.summaries.values()) {
                    if admits(ind, m) {
                        w.agg.add(&m.evidence, ind.created_ms);
                    }
                }
                w.fresh.clear();
                w.rebuild = false;
            } else {
                for m in w.fresh.drain(..) {
                    if admits(ind, &m) {
                        w.agg.add(&m.evidence, ind.created_ms);
                    }
                }
            }
            let now = w.agg.sightings(ind, window);
            if now != w.emitted {
                if let Some(old) = w.emitted.take() {
                    out.push((Kept::Sightings(Box::new(old)), -1));
                }
                if let Some(new) = &now {
                    out.push((Kept::Sightings(Box::new(new.clone())), 1));
                }
                w.emitted = now;
                w.changed = t;
                self.due
                    .entry(expires_at(window, t, grace))
                    .or_default()
                    .push((id, window));
            }
        }
        self.dirty = dirty;
    }

    /// Closes the windows due at `t` and forgets what can no longer matter.
    fn expire(&mut self, t: Time, out: &mut Vec<(Kept, isize)>) {
        let grace = self.config.grace_ms;
        let forget_after = self.config.retention_ms.saturating_add(WINDOW_MS as u64);
        for key in self.due.remove(&t).unwrap_or_default() {
            let Some(w) = self.windows.get(&key) else {
                continue;
            };
            if expires_at(key.1, w.changed, grace) != t {
                continue; // It changed since: a later entry stands.
            }
            let Some(w) = self.windows.remove(&key) else {
                continue;
            };
            let state = self.indicators.entry(key.0).or_default();
            state.windows.remove(&key.1);
            let id_text = state.last.as_ref().map(|i| i.id_text.clone());
            if let Some(old) = w.emitted {
                out.push((Kept::Sightings(Box::new(old)), -1));
                if let Some(id_text) = id_text {
                    out.push((Kept::Expired(alert_id(RULE, &id_text, key.1)), 1));
                }
            }
            let end = u64::try_from(key.1.saturating_add(WINDOW_MS)).unwrap_or(0);
            let at = end.saturating_add(forget_after).max(t + 1);
            self.expired.insert(key, at);
            self.forget.entry(at).or_default().push(key);
        }
        for key in self.forget.remove(&t).unwrap_or_default() {
            if self.expired.get(&key) == Some(&t) {
                self.expired.remove(&key);
            }
        }
        let retention = self.config.retention_ms;
        for id in self.forget_indicators.remove(&t).unwrap_or_default() {
            if let Some(state) = self.indicators.get(&id)
                && !state.current
                && state.windows.is_empty()
                && state
                    .withdrawn
                    .is_some_and(|w| w.saturating_add(retention).max(w + 1) == t)
            {
                self.indicators.remove(&id);
            }
        }
    }

    /// Windows, indicators and expired windows held.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize, usize) {
        (
            self.windows.len(),
            self.indicators.len(),
            self.expired.len(),
        )
    }
}

/// The evidence of every alert from the `made` matches and the `current` indicators (see
/// the module documentation).
pub fn alert_evidence<'s>(
    made: VecCollection<'s, Time, Made>,
    current: VecCollection<'s, Time, KeptIndicator>,
    config: ExpiryConfig,
) -> StreamVec<'s, Time, (Kept, Time, isize)> {
    made.inner
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(Kept, Time, isize)>>, _, _, _, _>(
            current.inner,
            Exchange::new(|(m, _, _): &(Made, Time, isize)| m.indicator),
            Exchange::new(|(i, _, _): &(KeptIndicator, Time, isize)| i.id),
            "AlertEvidence",
            move |cap, _info| {
                let mut cap = Some(cap);
                let mut keeper = Keeper::new(config);
                let mut pending: BTreeMap<Time, (Vec<Made>, Vec<(KeptIndicator, isize)>)> =
                    BTreeMap::new();
                let mut out: Vec<(Kept, isize)> = Vec::new();
                move |(made, made_frontier), (current, current_frontier), output| {
                    made.for_each(|_time, data| {
                        for (m, t, diff) in data.drain(..) {
                            if diff > 0 {
                                pending.entry(t).or_default().0.push(m);
                            }
                        }
                    });
                    current.for_each(|_time, data| {
                        for (i, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().1.push((i, diff));
                        }
                    });
                    let bound = crate::time_order::bound(&[
                        &made_frontier.frontier(),
                        &current_frontier.frontier(),
                    ]);
                    loop {
                        let data_at = pending.keys().next().copied();
                        // Expiries happen on logical time alone, while the inputs are open.
                        let due_at = keeper.next_due().filter(|_| bound.is_some());
                        let Some(t) = [data_at, due_at].into_iter().flatten().min() else {
                            break;
                        };
                        if bound.is_some_and(|b| t >= b) {
                            break;
                        }
                        if data_at == Some(t)
                            && let Some((made, mut changes)) = pending.remove(&t)
                        {
                            changes.sort();
                            crate::history::consolidate(&mut changes);
                            keeper.indicators(t, &changes);
                            let mut late = 0;
                            for m in made {
                                late += keeper.made(t, m);
                            }
                            if late > 0 {
                                out.push((Kept::Late(late), 1));
                            }
                            keeper.flush(t, &mut out);
                        }
                        keeper.expire(t, &mut out);
                        crate::time_order::give_at(output, cap.as_ref(), t, &mut out);
                    }
                    // Everything still to emit is at or after the inputs' frontier.
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Target = Target::Key(42);

    fn ind(from: i64, until: i64) -> KeptIndicator {
        KeptIndicator {
            id: 1,
            id_text: "i1".into(),
            valid_from_ms: from,
            valid_until_ms: until,
            created_ms: 5_000,
            target: T,
            observable: 7,
        }
    }

    fn raw(n: u64, observed_ms: i64, ingested_ms: u64, victim: Option<&str>) -> Made {
        Made {
            indicator: 1,
            target: T,
            evidence: Evidence::Raw(RawSighting {
                event_ref: n,
                event_id: format!("e{n}").into(),
                sensor_id: format!("s{}", n % 2).into(),
                country: Country::new(if n.is_multiple_of(2) { "FR" } else { "DE" }),
                observed_ms,
                ingested_ms,
                victim: victim.map(|v| v.parse().unwrap()),
                account: None,
            }),
        }
    }

    fn summary(count: u32) -> Made {
        Made {
            indicator: 1,
            target: T,
            evidence: Evidence::Summary(SummarySighting {
                shard: 0,
                observable: 9,
                sensor_id: "s9".into(),
                country: Country::new("IT"),
                hour: 1,
                count,
                first_ms: HOUR_MS + 1_000,
                last_ms: HOUR_MS + 9_999,
            }),
        }
    }

    #[test]
    fn the_aggregate_counts_raw_events_and_summaries() {
        let ev = [
            raw(1, 1_000, 1_000, Some("10.0.0.1")),
            raw(2, 2_000, 9_000, Some("10.0.0.1")),
            summary(5),
        ];
        let a = aggregate(&ind(i64::MIN, i64::MAX), 0, &ev).unwrap();
        assert_eq!((a.sightings, a.summarised, a.retroactive), (7, 5, 6));
        assert_eq!((a.sensors, a.victims), (3, 1));
        assert_eq!(a.hourly, vec![(0, 2), (HOUR_MS, 5)]);
        assert_eq!((a.first_ms, a.last_ms), (1_000, HOUR_MS + 9_999));
        assert_eq!(a.event_ids.len(), 2);
        let b = aggregate(&ind(1_500, i64::MAX), 0, &ev).unwrap();
        assert_eq!(b.sightings, 6, "validity at event time");
        let mut other = ind(i64::MIN, i64::MAX);
        other.target = Target::Key(43);
        assert!(aggregate(&other, 0, &ev).is_none(), "made on another value");
    }

    #[test]
    fn a_summary_is_taken_when_its_indicator_first_meets_it_only() {
        let mut k = Keeper::new(ExpiryConfig {
            grace_ms: 1_000,
            retention_ms: 0,
        });
        let mut out = Vec::new();
        k.indicators(10, &[(ind(i64::MIN, i64::MAX), 1)]);
        k.made(10, summary(2));
        k.made(10, raw(1, 1_000, 1_000, None));
        k.flush(10, &mut out);
        // A new version meets the summary again, grown by the raw event that aged into it.
        let mut v2 = ind(i64::MIN, i64::MAX);
        v2.created_ms = 6_000;
        k.indicators(20, &[(ind(i64::MIN, i64::MAX), -1), (v2, 1)]);
        k.made(20, summary(3));
        k.made(20, raw(1, 1_000, 1_000, None));
        k.flush(20, &mut out);
        let last = out
            .iter()
            .rev()
            .find_map(|(k, d)| match k {
                Kept::Sightings(s) if *d > 0 => Some(s.sightings),
                _ => None,
            })
            .unwrap();
        assert_eq!(last, 3, "2 summarised + 1 raw, not 2 + 3 + 1");
    }

    #[test]
    fn a_window_expires_after_the_grace_and_late_matches_are_counted() {
        let mut k = Keeper::new(ExpiryConfig {
            grace_ms: 1_000,
            retention_ms: 0,
        });
        let mut out = Vec::new();
        k.indicators(10, &[(ind(i64::MIN, i64::MAX), 1)]);
        k.made(10, raw(1, 1_000, 1_000, None));
        k.flush(10, &mut out);
        assert_eq!(out.len(), 1);
        let due = WINDOW_MS as u64 + 1_000;
        assert_eq!(k.next_due(), Some(due));
        out.clear();
        k.expire(due, &mut out);
        assert!(matches!(out[0], (Kept::Sightings(_), -1)));
        assert!(matches!(&out[1], (Kept::Expired(id), 1) if *id == alert_id(RULE, "i1", 0)));
        assert_eq!(k.made(due + 5, raw(2, 2_000, 2_000, None)), 1);
        assert_eq!(k.sizes().0, 0, "the window's matches are gone");
        // The expired window is forgotten once no match can come for it any more.
        let forget = k.next_due().unwrap();
        k.expire(forget, &mut out);
        assert_eq!(k.sizes().2, 0);
    }
}
