//! Harness of the campaigns and rules view tests: runs a view on timely workers over
//! timed insertions and retractions, returns its output updates, and reads and
//! compares golden files.

#![allow(dead_code)] // Each test crate uses part of the harness.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use dataflow::Time;
use dataflow::matching::Match;
use dataflow::views::rules::ListedCard;
use differential_dataflow::input::Input;
use differential_dataflow::{ExchangeData, VecCollection};
use schemas::{Indicator, SensorEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::dataflow::ProbeHandle;

use crate::common_a::{golden_dir, read_json_lines};

/// One input record of a view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rec {
    /// A sensor event.
    Event(SensorEvent),
    /// An indicator (the current version: the views take current indicators).
    Indicator(Indicator),
    /// A card on a compromised-card list.
    Card(ListedCard),
    /// A match.
    Match(Match),
}

/// An insertion (`diff` 1) or retraction (-1) of a record at a logical time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Logical time.
    pub time: Time,
    /// Change of multiplicity.
    #[serde(default = "one")]
    pub diff: isize,
    /// The record, as `"event": {…}`, `"indicator": {…}`, `"card": {…}` or `"match": {…}`.
    #[serde(flatten)]
    pub rec: Rec,
}

fn one() -> isize {
    1
}

/// The input collections a view is built from.
pub struct Inputs<'s> {
    /// Sensor events.
    pub events: VecCollection<'s, Time, SensorEvent>,
    /// Indicators.
    pub indicators: VecCollection<'s, Time, Indicator>,
    /// Listed cards.
    pub cards: VecCollection<'s, Time, ListedCard>,
    /// Matches.
    pub matches: VecCollection<'s, Time, Match>,
}

/// A view under test.
pub trait View: Send + Sync + 'static {
    /// Its output records.
    type Out: ExchangeData + Ord + Debug + Clone + Send;
    /// Builds the view from the inputs.
    fn build<'s>(&self, inputs: Inputs<'s>) -> VecCollection<'s, Time, Self::Out>;
}

/// Runs `view` over `updates` on `workers` workers; returns every output update.
/// Record `n` (in time order) is inserted by worker `n % workers`.
pub fn run<V: View>(view: V, updates: &[Update], workers: usize) -> Vec<(V::Out, Time, isize)> {
    let mut sorted = updates.to_vec();
    sorted.sort_by_key(|u| u.time);
    let updates = Arc::new(sorted);
    let view = Arc::new(view);
    let out: Arc<Mutex<Vec<(V::Out, Time, isize)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let probe = ProbeHandle::new();
        let sink = Arc::clone(&sink);
        let view = Arc::clone(&view);
        let (mut events, mut indicators, mut cards, mut matches) =
            worker.dataflow::<Time, _, _>(|scope| {
                let (events_in, events) = scope.new_collection::<SensorEvent, isize>();
                let (indicators_in, indicators) = scope.new_collection::<Indicator, isize>();
                let (cards_in, cards) = scope.new_collection::<ListedCard, isize>();
                let (matches_in, matches) = scope.new_collection::<Match, isize>();
                view.build(Inputs {
                    events,
                    indicators,
                    cards,
                    matches,
                })
                .inspect(move |(d, t, r)| sink.lock().unwrap().push((d.clone(), *t, *r)))
                .probe_with(&probe);
                (events_in, indicators_in, cards_in, matches_in)
            });
        let mut now: Time = 0;
        let last = updates.last().map_or(0, |u| u.time);
        for (n, u) in updates.iter().enumerate() {
            if u.time > now {
                now = u.time;
                events.advance_to(now);
                indicators.advance_to(now);
                cards.advance_to(now);
                matches.advance_to(now);
            }
            if n % peers == index {
                match &u.rec {
                    Rec::Event(e) => events.update(e.clone(), u.diff),
                    Rec::Indicator(i) => indicators.update(i.clone(), u.diff),
                    Rec::Card(c) => cards.update(c.clone(), u.diff),
                    Rec::Match(m) => matches.update(m.clone(), u.diff),
                }
            }
        }
        events.advance_to(last + 1);
        indicators.advance_to(last + 1);
        cards.advance_to(last + 1);
        matches.advance_to(last + 1);
        drop((events, indicators, cards, matches));
        while !probe.done() {
            worker.step();
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    std::mem::take(&mut *out.lock().unwrap())
}

/// The consolidated output at `time`: every record with its multiplicity, zeros dropped.
pub fn state_at<D: Ord + Clone>(outputs: &[(D, Time, isize)], time: Time) -> BTreeMap<D, isize> {
    let mut state = BTreeMap::new();
    for (d, _, r) in outputs.iter().filter(|(_, t, _)| *t <= time) {
        *state.entry(d.clone()).or_insert(0) += r;
    }
    state.retain(|_, r| *r != 0);
    state
}

/// The distinct input times of `updates`.
pub fn times(updates: &[Update]) -> BTreeSet<Time> {
    updates.iter().map(|u| u.time).collect()
}

/// The records present at `time` (positive multiplicity after every update at or before it).
pub fn present_at(updates: &[Update], time: Time) -> Vec<Rec> {
    let mut count: BTreeMap<&Rec, isize> = BTreeMap::new();
    for u in updates.iter().filter(|u| u.time <= time) {
        *count.entry(&u.rec).or_insert(0) += u.diff;
    }
    count
        .into_iter()
        .filter(|(_, c)| *c > 0)
        .map(|(r, _)| r.clone())
        .collect()
}

/// Turns random operations into updates at non-decreasing times: `(pick, retract,
/// gap)` inserts `pool[pick % len]`, or, with `retract` and something present,
/// retracts the present record number `pick % present`; `gap % 3` (0, 1 or 2) is
/// added to the time first, so several updates share a time.
pub fn script(pool: &[Rec], ops: &[(usize, bool, u8)]) -> Vec<Update> {
    let mut time: Time = 1;
    let mut present: Vec<Rec> = Vec::new();
    let mut out = Vec::new();
    for (pick, retract, gap) in ops {
        time += Time::from(*gap % 3);
        if *retract && !present.is_empty() {
            let rec = present.remove(pick % present.len());
            out.push(Update {
                time,
                diff: -1,
                rec,
            });
        } else {
            let rec = pool[pick % pool.len()].clone();
            present.push(rec.clone());
            out.push(Update { time, diff: 1, rec });
        }
    }
    out
}

/// Checks that `actual` (output updates) equals `oracle` at every input time: every
/// record present with multiplicity one.
pub fn check_against<D: Ord + Clone + Debug>(
    updates: &[Update],
    actual: &[(D, Time, isize)],
    workers: usize,
    oracle: impl Fn(Time) -> BTreeSet<D>,
) -> Result<(), String> {
    for t in times(updates) {
        let got = state_at(actual, t);
        let want: BTreeMap<D, isize> = oracle(t).into_iter().map(|d| (d, 1)).collect();
        if got != want {
            let missing: Vec<&D> = want.keys().filter(|d| got.get(*d) != Some(&1)).collect();
            let extra: Vec<(&D, &isize)> = got
                .iter()
                .filter(|(d, r)| want.get(*d) != Some(*r))
                .collect();
            return Err(format!(
                "at time {t} on {workers} worker(s):\n missing {missing:#?}\n extra or wrong multiplicity {extra:#?}"
            ));
        }
    }
    Ok(())
}

/// One consolidated output change at a closed time, as golden files hold them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change<D> {
    /// The logical time.
    pub time: Time,
    /// +1 appears, -1 disappears.
    pub diff: isize,
    /// The output record.
    pub out: D,
}

/// The consolidated changes of `outputs` per time, sorted by (time, record).
pub fn changes<D: Ord + Clone>(outputs: &[(D, Time, isize)]) -> Vec<Change<D>> {
    let mut acc: BTreeMap<(Time, D), isize> = BTreeMap::new();
    for (d, t, r) in outputs {
        *acc.entry((*t, d.clone())).or_insert(0) += r;
    }
    acc.into_iter()
        .filter(|(_, r)| *r != 0)
        .map(|((time, out), diff)| Change { time, diff, out })
        .collect()
}

/// Runs `view` on the golden input of `name` on 1 and 2 workers and compares the
/// consolidated changes with the expected file (`expected.jsonl`).
pub fn golden<V, F>(name: &str, make: F)
where
    V: View,
    V::Out: Serialize + DeserializeOwned,
    F: Fn() -> V,
{
    let updates: Vec<Update> = read_json_lines(&golden_dir(name).join("input.jsonl"));
    let expected: Vec<Change<V::Out>> = read_json_lines(&golden_dir(name).join("expected.jsonl"));
    for workers in [1, 2] {
        let got = changes(&run(make(), &updates, workers));
        if got != expected {
            let lines: Vec<String> = got
                .iter()
                .map(|c| serde_json::to_string(c).unwrap())
                .collect();
            panic!(
                "golden {name} on {workers} worker(s) differs from expected.jsonl; got:\n{}",
                lines.join("\n")
            );
        }
    }
}
