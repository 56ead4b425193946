//! Corroboration: the incremental view equals a brute-force recomputation at every
//! closed time, on 1 and 2 workers; and a golden run from events and indicators.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};

use crate::common_a::{BASE_MS, a_match, indicator, input_at, run, script_from_set};
use crate::common_a::{check_golden, check_oracle, end_of, merged};
use dataflow::Time;
use dataflow::matching::{Match, Retention};
use dataflow::observables::{indicator_key, key_hash};
use dataflow::views::corroboration::{
    Corroboration, CorroborationConfig, Report, Source, confidence, corroboration,
};
use differential_dataflow::VecCollection;
use proptest::prelude::*;
use schemas::{Indicator, IndicatorKind, SourceKind};

const DAY: i64 = 86_400_000;

const VALUES: [(IndicatorKind, &str); 3] = [
    (IndicatorKind::Ipv4, "192.0.2.1"),
    (IndicatorKind::Domain, "evil.example"),
    (
        IndicatorKind::Sha256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ),
];
const SOURCES: [(SourceKind, &str); 4] = [
    (SourceKind::Partner, "p1"),
    (SourceKind::Partner, "p2"),
    (SourceKind::Osint, "f1"),
    // An OSINT feed and a partner may share an id: still two sources.
    (SourceKind::Osint, "p1"),
];

/// Brute force: the corroboration of every observable at `time`.
fn oracle(
    indicators: &[(Time, Indicator, isize)],
    matches: &[(Time, Match, isize)],
    time: Time,
    config: CorroborationConfig,
) -> BTreeSet<Corroboration> {
    let mut reports: BTreeMap<u64, BTreeMap<Source, Report>> = BTreeMap::new();
    let mut offer = |key: u64, source: Source, report: Report| {
        let best = reports
            .entry(key)
            .or_default()
            .entry(source)
            .or_insert(report);
        if (report.at_ms, report.confidence) > (best.at_ms, best.confidence) {
            *best = report;
        }
    };
    for i in input_at(indicators.iter().cloned(), time).keys() {
        let source = match i.source_kind {
            SourceKind::Partner => Source::Partner(i.source_id.clone()),
            SourceKind::Osint => Source::Osint(i.source_id.clone()),
        };
        let report = Report {
            at_ms: i.modified.as_millisecond(),
            confidence: i.confidence,
        };
        offer(key_hash(&indicator_key(i.kind, &i.value)), source, report);
    }
    for m in input_at(matches.iter().cloned(), time).keys() {
        let report = Report {
            at_ms: m.sighting.observed_ms,
            confidence: config.sensor_confidence,
        };
        offer(
            key_hash(&indicator_key(m.indicator.kind, &m.indicator.value)),
            Source::Sensors,
            report,
        );
    }
    reports
        .into_iter()
        .map(|(key, by_source)| {
            let rs: Vec<Report> = by_source.values().copied().collect();
            Corroboration {
                key,
                count: by_source.len() as u32,
                sources: by_source.into_keys().collect(),
                confidence: confidence(&rs, config.half_life_ms),
            }
        })
        .collect()
}

fn check(
    indicators: &[(Time, Indicator, isize)],
    matches: &[(Time, Match, isize)],
    config: CorroborationConfig,
    workers: usize,
) -> Result<(), TestCaseError> {
    let script = merged(indicators, matches);
    let out = run(&script, end_of(&script), workers, move |i, m, _| {
        corroboration(i, m, config)
    });
    check_oracle(&script, &out, workers, |t| {
        oracle(indicators, matches, t, config)
    })
}

/// Indicators: (value, source, confidence, modified offset).
fn indicator_pool(specs: &[(usize, usize, u8, i64)]) -> Vec<Indicator> {
    specs
        .iter()
        .enumerate()
        .map(|(n, &(value, source, conf, modified))| {
            let (kind, v) = VALUES[value];
            indicator(
                &format!("ind-{n}"),
                kind,
                v,
                SOURCES[source],
                conf,
                BASE_MS + modified,
                &[],
            )
        })
        .collect()
}

/// Matches: (indicator of the pool, event, event time offset).
fn match_pool(indicators: &[Indicator], specs: &[(usize, usize, i64)]) -> Vec<Match> {
    specs
        .iter()
        .map(|&(i, e, offset)| {
            a_match(
                &indicators[i % indicators.len()],
                &format!("e{e}"),
                "s1",
                "FR",
                BASE_MS + offset,
                None,
                None,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn corroboration_equals_brute_force_at_every_closed_time(
        ind_specs in proptest::collection::vec((0..3usize, 0..4usize, 0..=100u8, 0..60 * DAY), 1..8),
        match_specs in proptest::collection::vec((any::<usize>(), 0..4usize, 0..60 * DAY), 1..8),
        ind_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.65), any::<u8>()), 1..20),
        match_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.65), any::<u8>()), 0..15),
        half_life in prop_oneof![Just(0u64), Just(DAY as u64), Just(30 * DAY as u64)],
        sensor_confidence in 0..=100u8,
    ) {
        let pool = indicator_pool(&ind_specs);
        let indicators = script_from_set(&ind_steps, &pool);
        let matches = script_from_set(&match_steps, &match_pool(&pool, &match_specs));
        let config = CorroborationConfig { half_life_ms: half_life, sensor_confidence };
        check(&indicators, &matches, config, 1)?;
        check(&indicators, &matches, config, 2)?;
    }
}

#[test]
fn golden_corroboration_from_events_and_indicators() {
    check_golden(
        "corroboration",
        |events, indicators, _: VecCollection<'_, Time, ()>| {
            let current = dataflow::indicators::current(indicators);
            let matches =
                dataflow::matching::matches(events, current.clone(), Retention::Unbounded);
            // Keys are hashes: the expected file names them by their match key.
            corroboration(current, matches, CorroborationConfig::default()).map(|c| {
                let name = KEYS
                    .iter()
                    .find(|k| key_hash(k) == c.key)
                    .map_or_else(|| c.key.to_string(), |k| (*k).to_string());
                (name, c.sources, c.count, c.confidence)
            })
        },
    );
}

/// The match keys of the golden input.
const KEYS: [&str; 2] = ["ip:203.0.113.5", "domain:evil.example"];
