//! Harness of the view tests (sightings, summaries, corroboration, warning lists,
//! victims): runs a view over scripted updates of up to three input collections on
//! `n` timely workers, reads its contents at any closed time, builds test records,
//! and reads and checks golden files.

// Each test file uses a part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dataflow::Time;
use dataflow::matching::{Match, Retention, Sighting, matches};
use differential_dataflow::input::Input as _;
use differential_dataflow::{ExchangeData, VecCollection};
use jiff::Timestamp;
use proptest::prelude::{TestCaseError, prop_assert_eq};
use schemas::{EventKind, Indicator, IndicatorKind, SensorEvent, SourceKind, Tlp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::dataflow::ProbeHandle;

/// A base event time (2026-09-21T..): tests offset from it.
pub const BASE_MS: i64 = 1_790_000_000_000;

/// One scripted change to one of the (up to) three inputs.
#[derive(Debug, Clone)]
pub enum Update<A, B, C> {
    /// A change to the first input.
    A(A, isize),
    /// A change to the second input.
    B(B, isize),
    /// A change to the third input.
    C(C, isize),
}

/// Every output update `(record, time, diff)` of a run.
pub type Outputs<O> = Vec<(O, Time, isize)>;

/// Runs `view` over `script` (non-decreasing times) on `workers` workers, every input
/// advanced to `end` afterwards, and returns the output updates at times before `end`.
/// Updates are spread over the workers round-robin, so two workers exchange data.
pub fn run<A, B, C, O, F>(
    script: &[(Time, Update<A, B, C>)],
    end: Time,
    workers: usize,
    view: F,
) -> Outputs<O>
where
    A: ExchangeData + Sync,
    B: ExchangeData + Sync,
    C: ExchangeData + Sync,
    O: ExchangeData,
    F: for<'s> Fn(
            VecCollection<'s, Time, A>,
            VecCollection<'s, Time, B>,
            VecCollection<'s, Time, C>,
        ) -> VecCollection<'s, Time, O>
        + Send
        + Sync
        + 'static,
{
    let script = Arc::new(script.to_vec());
    let (tx, rx) = crossbeam_channel::unbounded::<(O, Time, isize)>();
    let tx = Arc::new(Mutex::new(tx));
    timely::execute(timely::Config::process(workers), move |worker| {
        let tx = tx.lock().unwrap().clone();
        let probe = ProbeHandle::new();
        let (index, peers) = (worker.index(), worker.peers());
        let (mut a, mut b, mut c) = worker.dataflow::<Time, _, _>(|scope| {
            let (a, a_coll) = scope.new_collection::<A, isize>();
            let (b, b_coll) = scope.new_collection::<B, isize>();
            let (c, c_coll) = scope.new_collection::<C, isize>();
            view(a_coll, b_coll, c_coll)
                .inspect(move |(o, t, d)| {
                    let _ = tx.send((o.clone(), *t, *d));
                })
                .probe_with(&probe);
            (a, b, c)
        });
        for (n, (time, update)) in script.iter().enumerate() {
            a.advance_to(*time);
            b.advance_to(*time);
            c.advance_to(*time);
            if n % peers == index {
                match update.clone() {
                    Update::A(x, d) => a.update(x, d),
                    Update::B(x, d) => b.update(x, d),
                    Update::C(x, d) => c.update(x, d),
                }
            }
        }
        a.advance_to(end);
        b.advance_to(end);
        c.advance_to(end);
        a.flush();
        b.flush();
        c.flush();
        while probe.less_than(&end) {
            worker.step();
        }
    })
    .unwrap();
    rx.try_iter().filter(|(_, t, _)| *t < end).collect()
}

/// Two inputs' updates as one script in time order: the first input's as [`Update::A`],
/// the second's as [`Update::B`].
pub fn merged<A: Clone, B: Clone>(
    a: &[(Time, A, isize)],
    b: &[(Time, B, isize)],
) -> Vec<(Time, Update<A, B, ()>)> {
    let mut script: Vec<(Time, Update<A, B, ()>)> = a
        .iter()
        .map(|(t, x, d)| (*t, Update::A(x.clone(), *d)))
        .chain(b.iter().map(|(t, x, d)| (*t, Update::B(x.clone(), *d))))
        .collect();
    script.sort_by_key(|(t, _)| *t);
    script
}

/// The first time after the script's last update.
pub fn end_of<A, B, C>(script: &[(Time, Update<A, B, C>)]) -> Time {
    script.last().map_or(1, |(t, _)| t + 1)
}

/// Fails unless the output `out` equals `oracle(t)` at every time `t` of `script`.
pub fn check_oracle<A, B, C, O: Ord + Clone + Debug>(
    script: &[(Time, Update<A, B, C>)],
    out: &Outputs<O>,
    workers: usize,
    oracle: impl Fn(Time) -> BTreeSet<O>,
) -> Result<(), TestCaseError> {
    for (t, _) in script {
        prop_assert_eq!(
            state_at(out, *t),
            oracle(*t),
            "at time {} on {} worker(s)",
            t,
            workers
        );
    }
    Ok(())
}

/// The contents of the output at `time` (every update at or before it, consolidated);
/// fails if a record has a multiplicity other than 1 (views are sets).
pub fn state_at<O: Ord + Clone + Debug>(outputs: &Outputs<O>, time: Time) -> BTreeSet<O> {
    let mut acc: BTreeMap<&O, isize> = BTreeMap::new();
    for (o, t, d) in outputs {
        if *t <= time {
            *acc.entry(o).or_default() += d;
        }
    }
    acc.retain(|_, d| *d != 0);
    for (o, d) in &acc {
        assert_eq!(*d, 1, "multiplicity {d} at time {time} of {o:?}");
    }
    acc.into_keys().cloned().collect()
}

/// The contents of one input at `time`: every record with a positive accumulated count,
/// with that count.
pub fn input_at<T: Ord + Clone>(
    updates: impl IntoIterator<Item = (Time, T, isize)>,
    time: Time,
) -> BTreeMap<T, isize> {
    let mut acc: BTreeMap<T, isize> = BTreeMap::new();
    for (t, x, d) in updates {
        if t <= time {
            *acc.entry(x).or_default() += d;
        }
    }
    acc.retain(|_, d| *d > 0);
    acc
}

/// Turns random steps `(pool index, insert?, time gap)` into a script of updates of
/// records from `pool`, at non-decreasing times from 10. A removal removes a record
/// present (the most recently inserted copy of it), so counts never go negative; a
/// removal of an absent record becomes an insertion.
pub fn script_from<T: Clone + Ord>(
    steps: &[(usize, bool, u8)],
    pool: &[T],
) -> Vec<(Time, T, isize)> {
    let mut time: Time = 10;
    let mut present: BTreeMap<usize, isize> = BTreeMap::new();
    let mut out = Vec::new();
    for &(i, insert, gap) in steps {
        time += u64::from(gap % 3) * 10;
        let i = i % pool.len();
        let count = present.entry(i).or_default();
        let diff = if !insert && *count > 0 { -1 } else { 1 };
        *count += diff;
        out.push((time, pool[i].clone(), diff));
    }
    out
}

/// As [`script_from`], but each record is present at most once: an insertion of a
/// present record and a removal of an absent one are skipped.
pub fn script_from_set<T: Clone + Ord>(
    steps: &[(usize, bool, u8)],
    pool: &[T],
) -> Vec<(Time, T, isize)> {
    let mut time: Time = 10;
    let mut present: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::new();
    for &(i, insert, gap) in steps {
        time += u64::from(gap % 3) * 10;
        let i = i % pool.len();
        if insert && present.insert(i) {
            out.push((time, pool[i].clone(), 1));
        } else if !insert && present.remove(&i) {
            out.push((time, pool[i].clone(), -1));
        }
    }
    out
}

/// A timestamp `ms` after the Unix epoch.
pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// An indicator on `(kind, value)` from `source` at `confidence`, modified at `modified_ms`.
pub fn indicator(
    id: &str,
    kind: IndicatorKind,
    value: &str,
    source: (SourceKind, &str),
    confidence: u8,
    modified_ms: i64,
    labels: &[&str],
) -> Indicator {
    Indicator {
        schema_version: 1,
        id: id.to_string(),
        kind,
        value: value.to_string(),
        owner: source.1.to_string(),
        source_kind: source.0,
        source_id: source.1.to_string(),
        tlp: Tlp::Green,
        sharing: vec![],
        confidence,
        created: ts(BASE_MS - 86_400_000),
        modified: ts(modified_ms),
        valid_from: ts(BASE_MS - 86_400_000),
        valid_until: None,
        revoked: false,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

/// A sensor event with the given fields and nothing else (built from JSON, so optional
/// fields added to the schema later stay absent).
#[allow(clippy::too_many_arguments)] // Named positions read better than a builder here.
pub fn event(
    id: &str,
    sensor: &str,
    country: &str,
    observed_ms: i64,
    kind: EventKind,
    src_ip: Option<&str>,
    dst_ip: Option<&str>,
    domain: Option<&str>,
) -> SensorEvent {
    let mut v = serde_json::json!({
        "schema_version": 1,
        "event_id": id,
        "sensor_id": sensor,
        "country": country,
        "observed_at": ts(observed_ms),
        "kind": kind,
    });
    for (field, value) in [("src_ip", src_ip), ("dst_ip", dst_ip), ("domain", domain)] {
        if let Some(x) = value {
            v[field] = serde_json::Value::from(x);
        }
    }
    serde_json::from_value(v).unwrap()
}

/// A match of `indicator` by a sighting with the given fields.
pub fn a_match(
    indicator: &Indicator,
    event_id: &str,
    sensor: &str,
    country: &str,
    observed_ms: i64,
    victim: Option<&str>,
    account: Option<&str>,
) -> Match {
    Match {
        indicator: indicator.clone(),
        sighting: Sighting {
            event_id: event_id.to_string(),
            sensor_id: sensor.to_string(),
            country: country.to_string(),
            observed_ms,
            ingested_ms: 0,
            victim: victim.map(|v| v.parse().unwrap()),
            account: account.map(str::to_string),
        },
    }
}

/// One line of a golden input file: a record at a logical time, inserted (diff 1,
/// the default) or retracted (diff -1).
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenLine {
    /// Logical (ingestion) time, ms.
    pub time: Time,
    /// The change.
    #[serde(default = "one")]
    pub diff: isize,
    /// The record.
    #[serde(flatten)]
    pub record: GoldenRecord,
}

fn one() -> isize {
    1
}

/// A record of a golden input file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // A few test records.
pub enum GoldenRecord {
    /// A sensor event (ingested at the line's time).
    Event(SensorEvent),
    /// An indicator version.
    Indicator(Indicator),
}

/// The directory of a view's golden files.
pub fn golden_dir(view: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(view)
}

/// Reads a JSON-lines file of `view`'s golden directory.
pub fn read_lines<T: DeserializeOwned>(view: &str, file: &str) -> Vec<T> {
    read_json_lines(&golden_dir(view).join(file))
}

/// Reads JSON lines; blank lines and comments (lines starting with `//` or `#`) are skipped.
pub fn read_json_lines<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            !l.is_empty() && !l.starts_with("//") && !l.starts_with('#')
        })
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// A golden input file as a script of events (first input) and indicator versions
/// (second input).
pub fn golden_script<C>(
    lines: &[GoldenLine],
) -> Vec<(Time, Update<(u64, SensorEvent), Indicator, C>)> {
    lines
        .iter()
        .map(|l| {
            let u = match l.record.clone() {
                GoldenRecord::Event(ev) => Update::A((l.time, ev), l.diff),
                GoldenRecord::Indicator(i) => Update::B(i, l.diff),
            };
            (l.time, u)
        })
        .collect()
}

/// The matches of the golden pipeline: current indicators ([`dataflow::indicators::current`])
/// matched with every event (no retention).
pub fn golden_matches<'s>(
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
    indicators: VecCollection<'s, Time, Indicator>,
) -> VecCollection<'s, Time, Match> {
    matches(
        events,
        dataflow::indicators::current(indicators),
        Retention::Unbounded,
    )
}

/// The view's contents at each of `times`, as JSON: `{"<time>": [record, ...]}`.
pub fn states_json<O: Ord + Clone + Debug + Serialize>(
    outputs: &Outputs<O>,
    times: &[Time],
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for t in times {
        let records: Vec<serde_json::Value> = state_at(outputs, *t)
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        map.insert(t.to_string(), serde_json::Value::Array(records));
    }
    serde_json::Value::Object(map)
}

/// Runs `view` over `script` on 1 and 2 workers and compares its states at `times` with
/// `expected.json` of the golden directory `name`.
pub fn check_golden_at<C, O, F>(
    name: &str,
    script: &[(Time, Update<(u64, SensorEvent), Indicator, C>)],
    times: &[Time],
    end: Time,
    view: F,
) where
    C: ExchangeData + Sync,
    O: ExchangeData + Ord + Debug + Serialize,
    F: for<'s> Fn(
            VecCollection<'s, Time, (u64, SensorEvent)>,
            VecCollection<'s, Time, Indicator>,
            VecCollection<'s, Time, C>,
        ) -> VecCollection<'s, Time, O>
        + Send
        + Sync
        + Clone
        + 'static,
{
    for workers in [1, 2] {
        let out = run(script, end, workers, view.clone());
        assert_golden(name, &states_json(&out, times), workers);
    }
}

/// [`check_golden_at`] over `input.jsonl` of the golden directory `name`, at every time
/// of the input.
pub fn check_golden<O, F>(name: &str, view: F)
where
    O: ExchangeData + Ord + Debug + Serialize,
    F: for<'s> Fn(
            VecCollection<'s, Time, (u64, SensorEvent)>,
            VecCollection<'s, Time, Indicator>,
            VecCollection<'s, Time, ()>,
        ) -> VecCollection<'s, Time, O>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let lines: Vec<GoldenLine> = read_lines(name, "input.jsonl");
    let script = golden_script::<()>(&lines);
    let times: Vec<Time> = lines
        .iter()
        .map(|l| l.time)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let end = times.last().map_or(1, |t| t + 1);
    check_golden_at(name, &script, &times, end, view);
}

/// Compares the view's states with `expected.json` of its golden directory, records
/// compared as sets; on a difference, prints the actual states in full.
pub fn assert_golden(view: &str, actual: &serde_json::Value, workers: usize) {
    let path = golden_dir(view).join("expected.json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        as_sets(&expected),
        as_sets(actual),
        "{view} on {workers} worker(s) differs from {}; actual:\n{}",
        path.display(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

/// `{"time": [records]}` as time -> set of records in canonical JSON.
fn as_sets(v: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(t, records)| {
            let set = records
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
            (t.clone(), set)
        })
        .collect()
}
