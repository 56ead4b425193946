//! History as summaries, and summary hits: the incremental views equal a brute-force
//! recomputation at every closed time (retention included), on 1 and 2 workers; and a
//! golden run with a short retention.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};

use crate::common_a::{
    BASE_MS, GoldenLine, Update, event, indicator, input_at, run, script_from, script_from_set,
    state_at, ts,
};
use dataflow::Time;
use dataflow::matching::Retention;
use dataflow::observables::{event_keys, indicator_key, key_hash};
use dataflow::views::summaries::{
    ObservationSummary, SummaryHit, history, sensor_hash, summary_hits,
};
use differential_dataflow::VecCollection;
use proptest::prelude::*;
use schemas::{EventKind, Indicator, IndicatorKind, SensorEvent, SourceKind};

const HOUR: i64 = 3_600_000;

type Event = (u64, SensorEvent);

/// The event records present at `time`: those updated at `t <= time` and, with a
/// bounded retention, `time < t + retention`.
fn retained_at(
    events: &[(Time, Event, isize)],
    time: Time,
    retention: Retention,
) -> BTreeMap<Event, isize> {
    let window = events.iter().filter(|(t, _, _)| match retention {
        Retention::Unbounded => true,
        Retention::Ms(r) => time < t + r,
    });
    input_at(window.cloned(), time)
}

/// Brute force: the summaries of the events retained at `time`.
fn summaries_oracle(
    events: &[(Time, Event, isize)],
    time: Time,
    retention: Retention,
) -> BTreeSet<ObservationSummary> {
    let mut acc: BTreeMap<(u64, u64, i64), (u64, i64, i64)> = BTreeMap::new();
    for ((_, ev), n) in retained_at(events, time, retention) {
        let ms = ev.observed_at.as_millisecond();
        let hour = ms - ms.rem_euclid(HOUR);
        for k in event_keys(&ev) {
            let e = acc
                .entry((key_hash(&k), sensor_hash(&ev.sensor_id), hour))
                .or_insert((0, i64::MAX, i64::MIN));
            e.0 += n as u64;
            e.1 = e.1.min(ms);
            e.2 = e.2.max(ms);
        }
    }
    acc.into_iter()
        .map(
            |((key, sensor, hour_ms), (count, first, last))| ObservationSummary {
                key,
                sensor,
                hour_ms,
                count,
                first_seen_ms: first,
                last_seen_ms: last,
            },
        )
        .collect()
}

/// Brute force: the summaries at `time` meeting the indicators present at `time`.
fn hits_oracle(
    events: &[(Time, Event, isize)],
    indicators: &[(Time, Indicator, isize)],
    time: Time,
    retention: Retention,
) -> BTreeSet<SummaryHit> {
    let names: BTreeMap<u64, String> = retained_at(events, time, retention)
        .keys()
        .map(|(_, ev)| (sensor_hash(&ev.sensor_id), ev.sensor_id.clone()))
        .collect();
    let mut hits = BTreeSet::new();
    for s in summaries_oracle(events, time, retention) {
        for ind in input_at(indicators.iter().cloned(), time).keys() {
            let from = ind.valid_from.as_millisecond();
            let until = ind.valid_until.map_or(i64::MAX, |u| u.as_millisecond());
            if key_hash(&indicator_key(ind.kind, &ind.value)) == s.key
                && s.last_seen_ms >= from
                && s.first_seen_ms < until
            {
                hits.insert(SummaryHit {
                    indicator_id: ind.id.clone(),
                    sensor_id: names[&s.sensor].clone(),
                    hour_ms: s.hour_ms,
                    count: s.count,
                    first_seen_ms: s.first_seen_ms,
                    last_seen_ms: s.last_seen_ms,
                });
            }
        }
    }
    hits
}

const IPS: [&str; 3] = ["10.0.0.1", "192.0.2.7", "2001:db8::5"];
const DOMAINS: [&str; 3] = ["a.evil.example", "evil.example", "b.other.example"];

/// Events: (sensor, event time offset, source address, destination address, domain).
fn event_pool(specs: &[(usize, i64, usize, Option<usize>, Option<usize>)]) -> Vec<Event> {
    specs
        .iter()
        .enumerate()
        .map(|(n, &(sensor, offset, src, dst, dom))| {
            let ev = event(
                &format!("e{n}"),
                &format!("s{sensor}"),
                "FR",
                BASE_MS + offset,
                EventKind::Dns,
                Some(IPS[src]),
                dst.map(|d| IPS[d]),
                dom.map(|d| DOMAINS[d]),
            );
            (0, ev)
        })
        .collect()
}

/// Indicators: (value, valid from offset, validity length).
fn indicator_pool(specs: &[(usize, i64, Option<i64>)]) -> Vec<Indicator> {
    const VALUES: [(IndicatorKind, &str); 6] = [
        (IndicatorKind::Ipv4, "10.0.0.1"),
        (IndicatorKind::Ipv4, "192.0.2.7"),
        (IndicatorKind::Ipv6, "2001:db8::5"),
        (IndicatorKind::Domain, "evil.example"),
        (IndicatorKind::Domain, "b.other.example"),
        // No summary hits for networks (documented caveat).
        (IndicatorKind::Cidr, "10.0.0.0/8"),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(n, &(value, from, len))| {
            let (kind, v) = VALUES[value % VALUES.len()];
            let mut i = indicator(
                &format!("ind-{n}"),
                kind,
                v,
                (SourceKind::Partner, "p"),
                50,
                BASE_MS,
                &[],
            );
            i.valid_from = ts(BASE_MS + from);
            i.valid_until = len.map(|l| ts(BASE_MS + from + l));
            i
        })
        .collect()
}

fn event_specs() -> impl Strategy<Value = Vec<(usize, i64, usize, Option<usize>, Option<usize>)>> {
    proptest::collection::vec(
        (
            0..3usize,
            0..3 * HOUR,
            0..3usize,
            proptest::option::of(0..3usize),
            proptest::option::of(0..3usize),
        ),
        1..8,
    )
}

fn steps() -> impl Strategy<Value = Vec<(usize, bool, u8)>> {
    proptest::collection::vec(
        (any::<usize>(), proptest::bool::weighted(0.7), any::<u8>()),
        1..25,
    )
}

/// Times to compare at: every input time and, with a retention, every expiry; and the end.
fn check_times(times: impl IntoIterator<Item = Time>, retention: Retention) -> (Vec<Time>, Time) {
    let mut all = BTreeSet::new();
    for t in times {
        all.insert(t);
        if let Retention::Ms(r) = retention {
            all.insert(t + r);
        }
    }
    let end = all.last().copied().unwrap_or(0) + 1;
    (all.into_iter().collect(), end)
}

/// Only insertions (the runtime never retracts an event; retention does).
fn inserts_only(steps: &[(usize, bool, u8)]) -> Vec<(usize, bool, u8)> {
    steps.iter().map(|&(i, _, g)| (i, true, g)).collect()
}

fn check_summaries(
    events: &[(Time, Event, isize)],
    retention: Retention,
    workers: usize,
) -> Result<(), TestCaseError> {
    let script: Vec<(Time, Update<Event, (), ()>)> = events
        .iter()
        .map(|(t, e, d)| (*t, Update::A(e.clone(), *d)))
        .collect();
    let (times, end) = check_times(events.iter().map(|(t, _, _)| *t), retention);
    let out = run(&script, end, workers, move |ev, _, _| {
        history(ev, retention).summaries
    });
    for t in times {
        prop_assert_eq!(
            state_at(&out, t),
            summaries_oracle(events, t, retention),
            "at time {} on {} worker(s), {:?}",
            t,
            workers,
            retention
        );
    }
    Ok(())
}

fn check_hits(
    events: &[(Time, Event, isize)],
    indicators: &[(Time, Indicator, isize)],
    retention: Retention,
    workers: usize,
) -> Result<(), TestCaseError> {
    // Events first, then indicators, merged by time.
    let mut script: Vec<(Time, Update<Event, Indicator, ()>)> = events
        .iter()
        .map(|(t, e, d)| (*t, Update::A(e.clone(), *d)))
        .chain(
            indicators
                .iter()
                .map(|(t, i, d)| (*t, Update::B(i.clone(), *d))),
        )
        .collect();
    script.sort_by_key(|(t, _)| *t);
    let (times, end) = check_times(script.iter().map(|(t, _)| *t), retention);
    let out = run(&script, end, workers, move |ev, ind, _| {
        summary_hits(history(ev, retention), ind)
    });
    for t in times {
        prop_assert_eq!(
            state_at(&out, t),
            hits_oracle(events, indicators, t, retention),
            "at time {} on {} worker(s), {:?}",
            t,
            workers,
            retention
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn summaries_with_retractions_equal_brute_force(specs in event_specs(), steps in steps()) {
        let events = script_from(&steps, &event_pool(&specs));
        check_summaries(&events, Retention::Unbounded, 1)?;
        check_summaries(&events, Retention::Unbounded, 2)?;
    }

    #[test]
    fn summaries_age_out_after_the_retention(specs in event_specs(), steps in steps(), retention in 10u64..80) {
        let events = script_from(&inserts_only(&steps), &event_pool(&specs));
        check_summaries(&events, Retention::Ms(retention), 1)?;
        check_summaries(&events, Retention::Ms(retention), 2)?;
    }

    #[test]
    fn summary_hits_equal_brute_force(
        specs in event_specs(),
        event_steps in steps(),
        ind_specs in proptest::collection::vec((0..6usize, 0..3 * HOUR, proptest::option::of(1..2 * HOUR)), 1..6),
        ind_steps in steps(),
        retention in proptest::option::of(10u64..80),
    ) {
        let retention = retention.map_or(Retention::Unbounded, Retention::Ms);
        let event_steps = match retention {
            Retention::Unbounded => event_steps,
            Retention::Ms(_) => inserts_only(&event_steps),
        };
        let events = script_from(&event_steps, &event_pool(&specs));
        let indicators = script_from_set(&ind_steps, &indicator_pool(&ind_specs));
        check_hits(&events, &indicators, retention, 1)?;
        check_hits(&events, &indicators, retention, 2)?;
    }
}

/// Golden: summaries and hits with a one-second retention; the expected file lists, per
/// time, the summary hits of the current indicators.
#[test]
fn golden_summary_hits_with_retention() {
    let lines: Vec<GoldenLine> = crate::common_a::read_lines("summaries", "input.jsonl");
    let script = crate::common_a::golden_script::<()>(&lines);
    let retention = Retention::Ms(1_000);
    let (times, end) = check_times(lines.iter().map(|l| l.time), retention);
    crate::common_a::check_golden_at(
        "summaries",
        &script,
        &times,
        end,
        move |ev, ind, _: VecCollection<'_, Time, ()>| {
            summary_hits(history(ev, retention), dataflow::indicators::current(ind))
        },
    );
}
